//! Grant tables, v1: entries in frames Xen shares with the guest, handed out
//! by reference to other domains (a backend maps or copies the page).
//!
//! Invariants kept here:
//! - references `0..NR_RESERVED` are never handed out or written (the domain
//!   builder put the console and xenstore rings there);
//! - an entry is only written while it is free (flags 0) or by the atomic
//!   end-of-access below, so the peer never sees a half-written entry: the
//!   frame and domain are written first, then (after a release fence) the
//!   flags that make the entry valid;
//! - ending access never races the peer: it is one compare-and-exchange of
//!   the flags from a value without `GTF_reading`/`GTF_writing` to 0. While
//!   either bit is set the peer is using the page: the end is refused and
//!   the caller must keep the page (and try again later).
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, Ordering, fence};

/// References the domain builder reserves (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const NR_RESERVED: u32 = 8;
/// Entries per 4 KiB frame (8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = 512;

/// `GTF_permit_access`: the peer may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`: only reads.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by Xen while the peer has the frame mapped or is copying from it.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by Xen while the peer has it mapped writable or is copying to it.
pub const GTF_WRITING: u16 = 1 << 4;

/// `struct grant_entry_v1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntry {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain allowed to use the frame.
    pub domid: u16,
    /// The frame: an MFN for PV guests, a GFN for PVH.
    pub frame: u32,
}

const _: () = assert!(core::mem::size_of::<GrantEntry>() == 8);

/// A grant reference (index into the table).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct GrantRef(pub u32);

impl core::fmt::Display for GrantRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "grant {}", self.0)
    }
}

/// Why a grant operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantError {
    /// Every entry is in use.
    Full,
    /// The frame number does not fit the v1 entry (32 bits).
    FrameTooBig(u64),
    /// The peer still uses the page (`GTF_reading`/`GTF_writing`): access
    /// cannot end yet, the page must not be reused.
    InUse(GrantRef),
    /// Not a reference this table handed out.
    NotGranted(GrantRef),
}

impl core::fmt::Display for GrantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GrantError::Full => f.write_str("the grant table is full"),
            GrantError::FrameTooBig(x) => write!(f, "frame {x:#x} does not fit a v1 grant entry"),
            GrantError::InUse(r) => write!(f, "{r} is still in use by the peer"),
            GrantError::NotGranted(r) => write!(f, "{r} was not granted by us"),
        }
    }
}

/// A grant-table hypercall that failed: Xen refused the call, or it ran
/// and reported a `GNTST_*` status.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpError {
    /// The hypercall failed.
    Xen(crate::abi::errno::XenError),
    /// The operation's status (`GNTST_*`, negative).
    Status(i16),
}

impl core::fmt::Display for OpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [&str; 14] = [
            "okay",
            "general error",
            "bad domain",
            "bad grant reference",
            "bad handle",
            "bad virtual address",
            "bad device address",
            "no device space",
            "permission denied",
            "bad page",
            "bad copy argument",
            "address too big",
            "try again",
            "no space",
        ];
        match self {
            OpError::Xen(e) => write!(f, "{e}"),
            OpError::Status(s) => match NAMES.get(s.unsigned_abs() as usize) {
                Some(n) => write!(f, "GNTST {s} ({n})"),
                None => write!(f, "GNTST {s}"),
            },
        }
    }
}

impl From<crate::abi::errno::XenError> for OpError {
    fn from(e: crate::abi::errno::XenError) -> Self {
        OpError::Xen(e)
    }
}

/// Turns a `GNTST_*` status into a result.
pub fn status(s: i16) -> Result<(), OpError> {
    if s == 0 {
        Ok(())
    } else {
        Err(OpError::Status(s))
    }
}

/// Counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GrantStats {
    /// Entries in the table (reserved ones included).
    pub entries: u32,
    /// Entries granted now.
    pub active: u32,
    /// Grants made.
    pub granted: u64,
    /// Accesses ended.
    pub ended: u64,
    /// End attempts refused because the peer still used the page.
    pub busy: u64,
}

/// The table: `len` entries in memory shared with Xen, and which are ours to hand out.
#[derive(Debug)]
pub struct Table {
    entries: NonNull<GrantEntry>,
    len: u32,
    /// Free references, popped from the end (lowest last, so they go first).
    free: Vec<u32>,
    /// Which references are granted.
    granted: Vec<bool>,
    stats: GrantStats,
}

// SAFETY: the table owns its entries (Xen and the peer only touch the flags
// atomically); moving it between contexts is fine.
unsafe impl Send for Table {}

impl Table {
    /// A table over `len` entries at `entries`.
    ///
    /// # Safety
    /// `entries` must point to `len` grant entries shared with Xen (the
    /// grant-table frames, mapped writable) for as long as the table lives,
    /// and nothing else may write entries `NR_RESERVED..len`.
    pub unsafe fn new(entries: NonNull<GrantEntry>, len: u32) -> Table {
        Table {
            entries,
            len,
            free: (NR_RESERVED..len).rev().collect(),
            granted: alloc::vec![false; len as usize],
            stats: GrantStats {
                entries: len,
                ..GrantStats::default()
            },
        }
    }

    fn flags(&self, r: GrantRef) -> &AtomicU16 {
        // SAFETY: callers pass references below `len`; the flags are the
        // first field of the entry, u16-aligned, and every access to them
        // (ours, Xen's, the peer's through Xen) is atomic.
        unsafe { AtomicU16::from_ptr(self.entries.as_ptr().add(r.0 as usize).cast::<u16>()) }
    }

    /// Lets domain `domid` use `frame` (read-only if `readonly`).
    pub fn grant(
        &mut self,
        domid: u16,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooBig(frame))?;
        let r = GrantRef(self.free.pop().ok_or(GrantError::Full)?);
        // SAFETY: `r` is below `len` and free: no peer may use it (its flags
        // are 0), so plain writes of domid and frame cannot be observed
        // half-done; the flags that validate them come after the fence.
        unsafe {
            let e = self.entries.as_ptr().add(r.0 as usize);
            core::ptr::addr_of_mut!((*e).domid).write_volatile(domid);
            core::ptr::addr_of_mut!((*e).frame).write_volatile(frame32);
        }
        fence(Ordering::Release);
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.flags(r).store(flags, Ordering::Release);
        self.granted[r.0 as usize] = true;
        self.stats.granted += 1;
        self.stats.active += 1;
        Ok(r)
    }

    /// Ends the peer's access to `r` if it no longer uses the page; the
    /// reference becomes free. `InUse` leaves everything as it was.
    pub fn end(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if r.0 >= self.len || !self.granted[r.0 as usize] {
            return Err(GrantError::NotGranted(r));
        }
        let f = self.flags(r);
        let mut cur = f.load(Ordering::Acquire);
        loop {
            if cur & (GTF_READING | GTF_WRITING) != 0 {
                self.stats.busy += 1;
                return Err(GrantError::InUse(r));
            }
            match f.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                // Xen set a bit meanwhile (the peer started a copy): look again.
                Err(now) => cur = now,
            }
        }
        self.granted[r.0 as usize] = false;
        self.free.push(r.0);
        self.stats.ended += 1;
        self.stats.active -= 1;
        Ok(())
    }

    /// Whether the peer is using `r` now.
    pub fn in_use(&self, r: GrantRef) -> bool {
        r.0 < self.len && self.flags(r).load(Ordering::Acquire) & (GTF_READING | GTF_WRITING) != 0
    }

    /// Counters.
    pub fn stats(&self) -> GrantStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::BTreeSet;

    /// The table's frames, and a peer acting on them the way Xen does for a
    /// backend (setting and clearing the in-use bits atomically).
    struct Fake {
        mem: Box<[GrantEntry]>,
    }

    impl Fake {
        fn new(len: usize) -> Fake {
            let mut mem = alloc::vec![GrantEntry::default(); len].into_boxed_slice();
            // The builder's entries for the console and xenstore rings.
            mem[0] = GrantEntry {
                flags: GTF_PERMIT_ACCESS,
                domid: 0,
                frame: 0x1234,
            };
            mem[1] = GrantEntry {
                flags: GTF_PERMIT_ACCESS,
                domid: 0,
                frame: 0x1235,
            };
            Fake { mem }
        }
        fn table(&mut self) -> Table {
            let len = self.mem.len() as u32;
            // SAFETY: the boxed slice outlives the table in every test.
            unsafe { Table::new(NonNull::new(self.mem.as_mut_ptr()).unwrap(), len) }
        }
        fn flags(&self, r: GrantRef) -> &AtomicU16 {
            // SAFETY: as in Table::flags.
            unsafe { AtomicU16::from_ptr(self.mem.as_ptr().add(r.0 as usize) as *mut u16) }
        }
        /// Xen's check for a peer `domid` mapping `r` (writable unless `ro`).
        fn map(&self, domid: u16, r: GrantRef, ro: bool) -> bool {
            let e = self.mem[r.0 as usize];
            let f = self.flags(r).load(Ordering::Acquire);
            if f & 3 != GTF_PERMIT_ACCESS || e.domid != domid || (!ro && f & GTF_READONLY != 0) {
                return false;
            }
            self.flags(r).fetch_or(
                if ro {
                    GTF_READING
                } else {
                    GTF_READING | GTF_WRITING
                },
                Ordering::AcqRel,
            );
            true
        }
        fn unmap(&self, r: GrantRef) {
            self.flags(r)
                .fetch_and(!(GTF_READING | GTF_WRITING), Ordering::AcqRel);
        }
    }

    #[test]
    fn grants_skip_the_reserved_entries_and_fill_the_entry() {
        let mut f = Fake::new(16);
        let mut t = f.table();
        let r = t.grant(0, 0xabcd, true).unwrap();
        assert_eq!(r, GrantRef(NR_RESERVED));
        let e = f.mem[r.0 as usize];
        assert_eq!(
            (e.flags, e.domid, e.frame),
            (GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0xabcd)
        );
        assert_eq!(f.mem[0].frame, 0x1234, "the builder's entries stay");
        assert_eq!(t.end(GrantRef(0)), Err(GrantError::NotGranted(GrantRef(0))));
        assert_eq!(f.mem[0].flags, GTF_PERMIT_ACCESS);
        assert_eq!(
            t.grant(0, 1 << 40, false),
            Err(GrantError::FrameTooBig(1 << 40))
        );
    }

    #[test]
    fn access_ends_only_when_the_peer_has_let_go() {
        let mut f = Fake::new(16);
        let mut t = f.table();
        let r = t.grant(3, 0x42, false).unwrap();
        assert!(!f.map(4, r, false), "another domain is refused");
        assert!(f.map(3, r, false));
        assert!(t.in_use(r));
        assert_eq!(t.end(r), Err(GrantError::InUse(r)));
        assert_eq!(t.stats().busy, 1);
        assert_ne!(
            f.mem[r.0 as usize].flags & GTF_PERMIT_ACCESS,
            0,
            "still granted"
        );
        f.unmap(r);
        t.end(r).unwrap();
        assert_eq!(f.mem[r.0 as usize].flags, 0);
        assert!(!f.map(3, r, true), "ended: no new mapping");
        assert_eq!(t.end(r), Err(GrantError::NotGranted(r)), "ended twice");
        let s = t.stats();
        assert_eq!((s.granted, s.ended, s.active), (1, 1, 0));
    }

    #[test]
    fn a_full_table_refuses_and_recovers() {
        let mut f = Fake::new(NR_RESERVED as usize + 3);
        let mut t = f.table();
        let rs: Vec<GrantRef> = (0..3).map(|i| t.grant(1, i, true).unwrap()).collect();
        assert_eq!(t.grant(1, 9, true), Err(GrantError::Full));
        t.end(rs[1]).unwrap();
        assert_eq!(t.grant(1, 9, true), Ok(rs[1]));
    }

    #[test]
    fn a_hostile_peer_setting_bits_on_a_free_entry_does_not_confuse_the_table() {
        let mut f = Fake::new(16);
        let mut t = f.table();
        // Bits on an entry we never granted: not ours to end.
        f.flags(GrantRef(12)).store(GTF_WRITING, Ordering::Release);
        assert_eq!(
            t.end(GrantRef(12)),
            Err(GrantError::NotGranted(GrantRef(12)))
        );
        assert_eq!(
            t.end(GrantRef(99)),
            Err(GrantError::NotGranted(GrantRef(99)))
        );
    }

    proptest! {
        /// Random grants, peer mappings, unmappings and ends: no reference is
        /// handed out twice, reserved ones never, an entry in use is never
        /// ended, and ended entries read 0.
        #[test]
        fn grants_and_ends_keep_the_invariants(ops in proptest::collection::vec((0u8..4, 0usize..32), 1..200)) {
            let mut f = Fake::new(NR_RESERVED as usize + 24);
            let mut t = f.table();
            let mut live: Vec<GrantRef> = Vec::new();
            let mut mapped: BTreeSet<GrantRef> = BTreeSet::new();
            for (op, k) in ops {
                match op {
                    0 => match t.grant(7, k as u64, k % 2 == 0) {
                        Ok(r) => {
                            prop_assert!(r.0 >= NR_RESERVED);
                            prop_assert!(!live.contains(&r), "{} handed out twice", r);
                            live.push(r);
                        }
                        Err(e) => prop_assert_eq!(e, GrantError::Full),
                    },
                    1 if !live.is_empty() => {
                        let r = live[k % live.len()];
                        if f.map(7, r, true) {
                            mapped.insert(r);
                        }
                    }
                    2 if !mapped.is_empty() => {
                        let r = *mapped.iter().nth(k % mapped.len()).unwrap();
                        f.unmap(r);
                        mapped.remove(&r);
                    }
                    3 if !live.is_empty() => {
                        let r = live[k % live.len()];
                        match t.end(r) {
                            Ok(()) => {
                                prop_assert!(!mapped.contains(&r));
                                prop_assert_eq!(f.mem[r.0 as usize].flags, 0);
                                live.retain(|&x| x != r);
                            }
                            Err(e) => {
                                prop_assert_eq!(e, GrantError::InUse(r));
                                prop_assert!(mapped.contains(&r));
                            }
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(t.stats().active as usize, live.len());
            }
            prop_assert_eq!(f.mem[0].frame, 0x1234);
            prop_assert_eq!(f.mem[1].frame, 0x1235);
        }
    }
}
