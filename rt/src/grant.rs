//! Grant tables for drivers: pages this domain shares with another one (a
//! backend) by grant reference.
//!
//! The table is set up on first use: PV asks for its frames with
//! `GNTTABOP_setup_table` (Xen returns their MFNs), PVH places them with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)` at guest frames past
//! the end of RAM; either way they are mapped at
//! [`crate::mm::GRANT_TABLE_VA`]. Entries 0-7 belong to the domain builder.
//!
//! [`GrantedPage`] owns a page and its grant: dropping it ends the access and
//! frees the page — but only once the peer no longer uses it. A page the
//! peer still has mapped is kept (with its grant) on a deferred list and
//! released when a later grant operation finds it unused: memory the
//! backend may still write is never reused.
//!
//! May import: `mm`, `console`, `xen`, `platform`.
use alloc::vec::Vec;
use core::ptr::NonNull;

use rt_xen::abi::PAGE_SIZE;
use rt_xen::abi::gnttab::{ENTRIES_PER_FRAME, GrantRef, GrantStats, OpError, Table};
use spin::Mutex;

use crate::mm::{MapError, Pfn};
use crate::xen::HYPERVISOR;

/// Frames the runtime asks for (512 entries each).
pub const FRAMES: u32 = 4;

/// Why a grant operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantError {
    /// Not on Xen.
    NoHypervisor,
    /// Xen refused to set the table up, or a grant-table operation.
    Op(OpError),
    /// The frames could not be mapped.
    Map(MapError),
    /// No free frame for the table or the page.
    NoFrames,
    /// The table refused (full, frame too big, still in use).
    Table(rt_xen::abi::gnttab::GrantError),
}

impl core::fmt::Display for GrantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GrantError::NoHypervisor => f.write_str("not running on Xen"),
            GrantError::Op(e) => write!(f, "grant table operation failed: {e}"),
            GrantError::Map(e) => write!(f, "mapping the grant table failed: {e}"),
            GrantError::NoFrames => f.write_str("no free frames"),
            GrantError::Table(e) => write!(f, "{e}"),
        }
    }
}

impl From<OpError> for GrantError {
    fn from(e: OpError) -> Self {
        GrantError::Op(e)
    }
}

/// The table and the pages whose access could not end yet.
struct State {
    table: Table,
    frames: u32,
    /// (reference, page) the peer still used when they were dropped.
    deferred: Vec<(GrantRef, Pfn)>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Has Xen provide the table's first `n` frames and says where they are:
/// PV their MFNs (`GNTTABOP_setup_table`), PVH the guest frames past RAM
/// where Xen places them (`XENMAPSPACE_grant_table`).
fn place_frames(n: u32) -> Result<[u64; FRAMES as usize], GrantError> {
    use crate::platform::Platform;
    let h = &HYPERVISOR;
    let mut hw = [0u64; FRAMES as usize];
    let frames = &mut hw[..n as usize];
    match crate::platform::platform() {
        Platform::XenPv | Platform::XenPvDom0 => {
            rt_xen::abi::hypercall::gnttab_setup_table(h, frames)?;
        }
        Platform::XenPvh => {
            // Guest frames that are not RAM: past the end of RAM and of the
            // 4 GiB boundary (below it lie the MMIO holes). Placing the table
            // over RAM would give those pages back to Xen behind the
            // balloon's back.
            let first = crate::mm::with(|m| m.nr_pages).max(1 << 20) + 1;
            for (i, f) in frames.iter_mut().enumerate() {
                *f = first + i as u64;
                // SAFETY: nothing of ours is at these gfns (beyond RAM).
                unsafe { rt_xen::abi::hypercall::map_grant_frame_at(h, i as u64, *f) }
                    .map_err(|e| GrantError::Op(OpError::Xen(e)))?;
            }
        }
        _ => return Err(GrantError::NoHypervisor),
    }
    Ok(hw)
}

/// Sets the table up: `FRAMES` frames (or as many as Xen allows).
fn setup() -> Result<State, GrantError> {
    let (cur, max) = rt_xen::abi::hypercall::gnttab_query_size(&HYPERVISOR)?;
    let n = FRAMES.min(max).max(cur).max(1);
    let n = n.min(FRAMES);
    let hw = place_frames(n)?;
    crate::mm::map_machine_frames(crate::mm::GRANT_TABLE_VA, &hw[..n as usize])
        .map_err(GrantError::Map)?;
    let entries = crate::mm::GRANT_TABLE_VA;
    let frames = n;
    let ptr = NonNull::new(entries as *mut rt_xen::abi::gnttab::GrantEntry)
        .ok_or(GrantError::NoFrames)?;
    // SAFETY: `frames` grant-table frames are mapped writable at `entries`
    // for the rest of the run (but for a suspend: see `suspend`), and only
    // this table writes entries past the reserved ones.
    let table = unsafe { Table::new(ptr, frames * ENTRIES_PER_FRAME) };
    Ok(State {
        table,
        frames,
        deferred: Vec::new(),
    })
}

/// Before the domain is suspended (PV): unmaps the table's frames — they
/// are Xen's, not the domain's, and the saver refuses a page table that
/// maps them. Nothing may grant until [`resume`].
pub(crate) fn suspend() -> Result<(), GrantError> {
    let Some(frames) = STATE.lock().as_ref().map(|s| s.frames) else {
        return Ok(());
    };
    if crate::platform::platform().is_pv() {
        crate::mm::unmap_machine_frames(crate::mm::GRANT_TABLE_VA, frames.into())
            .map_err(GrantError::Map)?;
    }
    Ok(())
}

/// After the suspend hypercall returned: the table's frames again. PV maps
/// them (in a new domain at new MFNs); PVH has Xen place them again in a new
/// domain (its mapping of those guest frames stays). In a new domain every
/// entry is empty: the grants made before are void — their owners drop
/// them, which frees their pages — and the pages kept for a peer that used
/// them are freed at the next grant operation.
pub(crate) fn resume(new_domain: bool) -> Result<(), GrantError> {
    let Some(frames) = STATE.lock().as_ref().map(|s| s.frames) else {
        return Ok(());
    };
    if crate::platform::platform().is_pv() {
        let hw = place_frames(frames)?;
        crate::mm::map_machine_frames(crate::mm::GRANT_TABLE_VA, &hw[..frames as usize])
            .map_err(GrantError::Map)?;
    } else if new_domain {
        place_frames(frames)?;
    }
    Ok(())
}

/// Runs `f` with the table (set up on first use), after releasing the
/// deferred pages the peer has let go of.
fn with<R>(f: impl FnOnce(&mut State) -> Result<R, GrantError>) -> Result<R, GrantError> {
    let mut g = STATE.lock();
    f(ready(&mut g)?)
}

/// The table, set up on first use, its deferred pages reaped: the part of
/// [`with`] that does not depend on its caller, compiled once.
#[inline(never)]
fn ready(g: &mut Option<State>) -> Result<&mut State, GrantError> {
    if !crate::platform::platform().is_xen() {
        return Err(GrantError::NoHypervisor);
    }
    if g.is_none() {
        *g = Some(setup()?);
    }
    let s = g.as_mut().ok_or(GrantError::NoHypervisor)?;
    reap(s);
    Ok(s)
}

/// Ends what it can of the deferred grants and frees their pages.
fn reap(s: &mut State) {
    let State {
        table, deferred, ..
    } = s;
    deferred.retain(|&(r, pfn)| {
        if table.end(r).is_ok() {
            crate::mm::free_frame(pfn);
            false
        } else {
            true
        }
    });
}

/// A zeroed page of ours that domain `peer` may use through its grant
/// reference. Dropping it ends the access and frees the page once the peer
/// no longer uses it (see the module doc).
#[derive(Debug)]
pub struct GrantedPage {
    gref: GrantRef,
    pfn: Pfn,
    peer: u16,
}

impl GrantedPage {
    /// A fresh page granted to `peer` (read-only for it if `readonly`).
    pub fn new(peer: u16, readonly: bool) -> Result<GrantedPage, GrantError> {
        with(|s| {
            let pfn = crate::mm::alloc_frames(1).ok_or(GrantError::NoFrames)?;
            let granted = crate::mm::xen_frame(pfn)
                .ok_or(GrantError::NoFrames)
                .and_then(|frame| {
                    s.table
                        .grant(peer, frame, readonly)
                        .map_err(GrantError::Table)
                });
            match granted {
                Ok(gref) => Ok(GrantedPage { gref, pfn, peer }),
                Err(e) => {
                    crate::mm::free_frame(pfn);
                    Err(e)
                }
            }
        })
    }

    /// `n` fresh pages that lie one after another (a multi-page ring),
    /// each granted to `peer` writable; each frees its own frame when
    /// dropped.
    pub fn new_run(peer: u16, n: u64) -> Result<Vec<GrantedPage>, GrantError> {
        let first = crate::mm::alloc_frames(n).ok_or(GrantError::NoFrames)?;
        let mut pages = Vec::with_capacity(n as usize);
        for i in 0..n {
            let pfn = Pfn(first.0 + i);
            let granted = with(|s| {
                let frame = crate::mm::xen_frame(pfn).ok_or(GrantError::NoFrames)?;
                s.table.grant(peer, frame, false).map_err(GrantError::Table)
            });
            match granted {
                Ok(gref) => pages.push(GrantedPage { gref, pfn, peer }),
                Err(e) => {
                    // The granted ones end with `pages`; the rest are freed.
                    for j in i..n {
                        crate::mm::free_frame(Pfn(first.0 + j));
                    }
                    return Err(e);
                }
            }
        }
        Ok(pages)
    }

    /// The reference to give the peer.
    pub fn gref(&self) -> u32 {
        self.gref.0
    }

    /// The domain the page is granted to.
    pub fn peer(&self) -> u16 {
        self.peer
    }

    /// The page's frame (its identity-mapped address is `pfn << 12`).
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The page's contents.
    pub fn bytes(&self) -> &[u8; PAGE_SIZE] {
        // SAFETY: the page is ours while this value lives, mapped read-write
        // at its identity address; the peer may write it concurrently, which
        // for plain bytes is a data race only in the peer's favour — callers
        // read what the protocol says is stable.
        unsafe { &*(self.pfn.addr() as *const [u8; PAGE_SIZE]) }
    }

    /// The page's contents, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8; PAGE_SIZE] {
        // SAFETY: as for `bytes`; `&mut self` makes this the only reference.
        unsafe { &mut *(self.pfn.addr() as *mut [u8; PAGE_SIZE]) }
    }

    /// Whether the peer is using the page now (mapped, or copying).
    pub fn in_use(&self) -> bool {
        STATE
            .lock()
            .as_ref()
            .is_some_and(|s| s.table.in_use(self.gref))
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        let (gref, pfn) = (self.gref, self.pfn);
        let r = with(|s| match s.table.end(gref) {
            Ok(()) => {
                crate::mm::free_frame(pfn);
                Ok(())
            }
            Err(rt_xen::abi::gnttab::GrantError::InUse(_)) => {
                s.deferred.push((gref, pfn));
                Ok(())
            }
            Err(e) => Err(GrantError::Table(e)),
        });
        if let Err(e) = r {
            crate::console::println!("rt: ending {gref} failed: {e} (its page is kept)");
        }
    }
}

/// Copies `len` bytes with `GNTTABOP_copy` from `src`'s page of domain
/// `src_dom` by grant reference (at `src_off`) into our page `dst` (at
/// `dst_off`): Xen checks the grant as it would for a backend.
pub fn copy_from_grant(
    src_dom: u16,
    src: u32,
    src_off: u16,
    dst: Pfn,
    dst_off: u16,
    len: u16,
) -> Result<(), GrantError> {
    let frame = crate::mm::xen_frame(dst).ok_or(GrantError::NoFrames)?;
    let mut op = [rt_xen::abi::gnttab_copy {
        source: rt_xen::abi::gnttab_copy_ptr {
            u: u64::from(src),
            domid: src_dom,
            offset: src_off,
        },
        dest: rt_xen::abi::gnttab_copy_ptr {
            u: frame,
            domid: rt_xen::abi::DOMID_SELF,
            offset: dst_off,
        },
        len,
        flags: rt_xen::abi::GNTCOPY_SOURCE_GREF,
        status: 0,
    }];
    with(|_| rt_xen::abi::hypercall::gnttab_copy(&HYPERVISOR, &mut op).map_err(GrantError::Op))
}

/// Table counters, frames, and pages waiting for their peer to let go.
pub fn stats() -> Option<(GrantStats, u32, usize)> {
    STATE
        .lock()
        .as_ref()
        .map(|s| (s.table.stats(), s.frames, s.deferred.len()))
}
