//! An executable model of Xen's PV MMU rules (x86_64 guests), and a
//! [`Backend`] that runs the mapper against it.
//!
//! What the model enforces, as Xen does (`xen/arch/x86/mm.c`):
//! - every frame has a type — none, writable, or L1..L4 table — and a type
//!   count; a frame changes type only when its count is 0;
//! - a writable L1 entry takes a *writable* type reference on its target, an
//!   entry in an L(n+1) table an *Ln* reference: so a frame can never be a
//!   page table and mapped writable at the same time;
//! - taking the first reference of a table type validates every entry of the
//!   table (recursively); dropping the last one releases them;
//! - entries are checked: no superpages, no cache attributes, no reserved
//!   bits, no guest writes to Xen's L4 slots, targets must be ours;
//! - pins are references of their own: pinning twice or unpinning an
//!   unpinned table fails; NEW_BASEPTR takes an L4 reference (validating an
//!   unpinned L4 in full, which the model counts) and drops the old root's;
//! - `mmu_update`/`mmuext_op` stop at their first failing request, while the
//!   multicall around them runs its later entries.
//!
//! Errnos and masks follow Xen 4.17.7 (`mm.c`: `mod_lN_entry`,
//! `get_page_from_lNe`, `_get_page_type`, `do_mmuext_op`), release build;
//! each errno is one constant in [`errno`] so the guest test that compares
//! the model with real Xen points at a single line. Like Xen, the model
//! rewrites stored entries (`adjust_guest_lNe`): a present entry read back is
//! not bit-for-bit the value written.
extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use rt_xen::XenError;
use x86_64::structures::paging::PageTableFlags as F;

use crate::backend::Backend;
use crate::frame::Pfn;
use crate::op::{self, Op, Outcome};
use crate::pte::{self, ENTRIES, Level};

/// The errno Xen returns in each refused case.
pub mod errno {
    use rt_xen::XenError;
    /// Linking a frame typed differently (a table of another level, or a frame
    /// still mapped writable): `_get_page_type` "Bad type".
    pub const TYPE_CONFLICT: XenError = XenError::EINVAL;
    /// A writable L1 entry to a frame that is a page table
    /// (`get_page_from_l1e`, `could_not_pin`).
    pub const WRITABLE_TABLE: XenError = XenError::EBUSY;
    /// Flags Xen does not allow at that level ("Bad Ln flags").
    pub const BAD_FLAGS: XenError = XenError::EINVAL;
    /// A guest write to one of Xen's L4 slots ("L4 update in Xen-private area").
    pub const XEN_SLOT: XenError = XenError::EINVAL;
    /// An L1 entry to a frame owned by nobody or by another domain.
    pub const L1_NOT_OURS: XenError = XenError::EBUSY;
    /// An upper-level entry, or an `mmu_update`/`mmuext_op` target, that is not ours.
    pub const NOT_OURS: XenError = XenError::EINVAL;
    /// Pinning a pinned table, unpinning an unpinned one.
    pub const PIN_STATE: XenError = XenError::EINVAL;
    /// `MMUEXT_CLEAR_PAGE` of a frame that cannot become writable (a table).
    pub const CLEAR_TABLE: XenError = XenError::EINVAL;
}

/// What a frame currently is to Xen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    /// No type references.
    None,
    /// Mapped writable somewhere (or being written by Xen).
    Writable,
    /// A validated page table.
    Table(Level),
}

#[derive(Clone, Debug)]
struct Frame {
    ty: Ty,
    count: u32,
    pinned: bool,
    /// Entries of validated L1 tables that map it (read-only or writable):
    /// Xen's general references. A page still mapped is not freed when the
    /// domain gives it back.
    maps: u32,
    /// Contents, kept only once something non-zero was written (most frames
    /// are data the model never looks into).
    data: Option<Box<[u64; ENTRIES]>>,
}

impl Frame {
    fn new() -> Frame {
        Frame {
            ty: Ty::None,
            count: 0,
            pinned: false,
            maps: 0,
            data: None,
        }
    }

    fn get(&self, i: usize) -> u64 {
        self.data.as_ref().map_or(0, |d| d[i])
    }

    fn set(&mut self, i: usize, v: u64) {
        if v != 0 || self.data.is_some() {
            self.data.get_or_insert_with(|| Box::new([0; ENTRIES]))[i] = v;
        }
    }

    fn entries(&self) -> [u64; ENTRIES] {
        self.data.as_deref().copied().unwrap_or([0; ENTRIES])
    }
}

/// Counters the model keeps.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ModelCounters {
    /// Tables validated (promoted), any level.
    pub validations: u64,
    /// L4 validations caused by NEW_BASEPTR of an unpinned, unreferenced root.
    pub baseptr_full_validations: u64,
    /// Hypercalls (one per submitted batch).
    pub hypercalls: u64,
}

/// A PV domain's memory as Xen sees it.
#[derive(Clone, Debug)]
pub struct XenModel {
    frames: BTreeMap<u64, Frame>,
    p2m: Vec<u64>,
    m2p: BTreeMap<u64, u64>,
    base: Option<u64>,
    /// Most frames the domain may hold (`max_pages`, xl's `maxmem`).
    pub max_pages: u64,
    next_mfn: u64,
    /// Frames without a pfn (Xen's own pages, such as shared_info): not in
    /// the reservation.
    foreign: u64,
    /// Counters.
    pub counters: ModelCounters,
}

/// Scrambles pfns into mfns so any pfn/mfn mix-up shows.
fn scramble(pfn: u64) -> u64 {
    (pfn ^ 0x3a5) + 0x10_0000
}

/// `L1_DISALLOW_MASK` for a domU without I/O capabilities (release build):
/// cache attributes PWT, PCD, PAT.
fn l1_disallowed() -> u64 {
    (F::WRITE_THROUGH | F::NO_CACHE | F::HUGE_PAGE).bits()
}

/// `L2..L4_DISALLOW_MASK`: PWT, PCD, PSE (no PV superpages), GLOBAL.
fn upper_disallowed() -> u64 {
    (F::WRITE_THROUGH | F::NO_CACHE | F::HUGE_PAGE | F::GLOBAL).bits()
}

/// Bits outside the fast-path whitelist (NX, AVAIL, GLOBAL, DIRTY, ACCESSED,
/// USER): a change in any of these means re-validation.
const ADDR_AND_FIXED: u64 = pte::ADDR_MASK
    | F::PRESENT.bits()
    | F::WRITABLE.bits()
    | F::WRITE_THROUGH.bits()
    | F::NO_CACHE.bits()
    | F::HUGE_PAGE.bits();

/// PTE bit 52, `_PAGE_GUEST_KERNEL`.
const GUEST_KERNEL: u64 = 1 << 52;

/// What Xen stores for a present entry (`adjust_guest_lNe`, 64-bit PV).
fn adjust(level: Level, e: u64) -> u64 {
    if !pte::present(e) {
        return e;
    }
    let user = F::USER_ACCESSIBLE.bits();
    match level {
        Level::L1 if e & user == 0 => e | GUEST_KERNEL | user,
        Level::L1 if e & GUEST_KERNEL == 0 => e | F::GLOBAL.bits() | user,
        Level::L1 => e,
        Level::L2 | Level::L3 => e | user,
        Level::L4 => e | F::ACCESSED.bits() | user,
    }
}

impl XenModel {
    /// A domain of `nr_pages` frames, nothing typed, no root.
    pub fn new(nr_pages: u64) -> XenModel {
        let p2m: Vec<u64> = (0..nr_pages).map(scramble).collect();
        let m2p = p2m
            .iter()
            .enumerate()
            .map(|(pfn, &mfn)| (mfn, pfn as u64))
            .collect();
        let frames = p2m.iter().map(|&mfn| (mfn, Frame::new())).collect();
        XenModel {
            frames,
            p2m,
            m2p,
            base: None,
            max_pages: nr_pages,
            next_mfn: 0x800_0000,
            foreign: 0,
            counters: ModelCounters::default(),
        }
    }

    /// Gives the domain one more frame that has no pfn (like shared_info); returns its mfn.
    pub fn add_foreign_owned(&mut self) -> u64 {
        let mfn = 0xfff_0000 + self.frames.len() as u64;
        self.frames.insert(mfn, Frame::new());
        self.foreign += 1;
        mfn
    }

    /// The mfn of `pfn` in the guest's p2m.
    pub fn mfn(&self, pfn: Pfn) -> Option<u64> {
        self.p2m
            .get(pfn.0 as usize)
            .copied()
            .filter(|&m| m != crate::p2m::INVALID_MFN)
    }

    /// The guest records `pfn` → `mfn` (or no frame) in its p2m.
    pub fn set_p2m(&mut self, pfn: Pfn, mfn: Option<u64>) -> bool {
        match self.p2m.get_mut(pfn.0 as usize) {
            Some(slot) => {
                *slot = mfn.unwrap_or(crate::p2m::INVALID_MFN);
                true
            }
            None => false,
        }
    }

    /// Frames the domain holds (`tot_pages`, what `xl list` shows).
    pub fn tot_pages(&self) -> u64 {
        self.frames.len() as u64 - self.foreign
    }

    /// `XENMEM_decrease_reservation` (order 0): frees each frame in turn and
    /// returns how many it did, stopping at the first that is not the
    /// domain's. Stricter than Xen: a frame that is still mapped, typed or
    /// pinned is refused too — Xen would accept it but keep the page (and the
    /// domain's reservation) until the last reference goes, which is exactly
    /// the leak a balloon must not have.
    pub fn decrease_reservation(&mut self, mfns: &[u64]) -> usize {
        for (i, &mfn) in mfns.iter().enumerate() {
            match self.frames.get(&mfn) {
                Some(f) if f.count == 0 && f.maps == 0 && !f.pinned && self.base != Some(mfn) => {
                    self.frames.remove(&mfn);
                    self.m2p.remove(&mfn);
                }
                _ => return i,
            }
        }
        mfns.len()
    }

    /// `XENMEM_populate_physmap` (order 0, PV): a new frame for each pfn in
    /// `list`, whose entry becomes the new mfn (the M2P is set); stops when the
    /// domain would exceed `max_pages`. Returns how many it populated.
    pub fn populate_physmap(&mut self, list: &mut [u64]) -> usize {
        for (i, slot) in list.iter_mut().enumerate() {
            if self.tot_pages() >= self.max_pages {
                return i;
            }
            let mfn = self.next_mfn;
            self.next_mfn += 1;
            self.frames.insert(mfn, Frame::new());
            self.m2p.insert(mfn, *slot);
            *slot = mfn;
        }
        list.len()
    }

    /// The pfn of `mfn`.
    pub fn pfn(&self, mfn: u64) -> Option<Pfn> {
        self.m2p.get(&mfn).map(|&p| Pfn(p))
    }

    /// Type and count of a frame.
    pub fn type_of(&self, mfn: u64) -> Option<(Ty, u32, bool)> {
        self.frames.get(&mfn).map(|f| (f.ty, f.count, f.pinned))
    }

    /// The active root.
    pub fn base(&self) -> Option<u64> {
        self.base
    }

    /// Raw memory of a frame (what the guest would read).
    pub fn read(&self, mfn: u64, index: usize) -> u64 {
        self.frames.get(&mfn).map_or(0, |f| f.get(index))
    }

    /// A guest store into a frame: allowed only into an ordinary frame the
    /// guest maps writable (type `Writable`, taken by a writable L1 entry of a
    /// validated table), as the CPU would fault through a read-only or absent
    /// mapping; a frame that is a table is never writable.
    pub fn guest_write(&mut self, mfn: u64, index: usize, value: u64) -> bool {
        match self.frames.get_mut(&mfn) {
            Some(f) if f.ty == Ty::Writable && f.count > 0 => {
                f.set(index, value);
                true
            }
            _ => false,
        }
    }

    /// The domain builder's store, before the guest runs (no checks but
    /// that the frame is the domain's and not a validated table).
    fn builder_write(&mut self, mfn: u64, index: usize, value: u64) {
        if let Some(f) = self.frames.get_mut(&mfn) {
            debug_assert!(!matches!(f.ty, Ty::Table(_)) || f.count == 0);
            f.set(index, value);
        }
    }

    fn frame(&mut self, mfn: u64) -> Result<&mut Frame, XenError> {
        self.frames.get_mut(&mfn).ok_or(errno::NOT_OURS)
    }

    fn check_flags(level: Level, e: u64) -> Result<(), XenError> {
        let bad = if level == Level::L1 {
            l1_disallowed()
        } else {
            upper_disallowed()
        };
        if e & bad != 0 {
            Err(errno::BAD_FLAGS)
        } else {
            Ok(())
        }
    }

    /// Takes a type reference; validates a table on its first reference.
    fn get_type(&mut self, mfn: u64, want: Ty) -> Result<(), XenError> {
        let f = self.frame(mfn)?;
        if f.count > 0 {
            if f.ty == want {
                f.count += 1;
                return Ok(());
            }
            return Err(if want == Ty::Writable {
                errno::WRITABLE_TABLE
            } else {
                errno::TYPE_CONFLICT
            });
        }
        if let Ty::Table(level) = want {
            // Mark first so a table that links to itself is seen as in progress.
            f.ty = want;
            f.count = 1;
            if let Err(e) = self.validate(mfn, level) {
                let f = self.frame(mfn)?;
                f.ty = Ty::None;
                f.count = 0;
                return Err(e);
            }
            self.counters.validations += 1;
            return Ok(());
        }
        f.ty = want;
        f.count = 1;
        Ok(())
    }

    fn put_type(&mut self, mfn: u64) {
        let Some(f) = self.frames.get_mut(&mfn) else {
            return;
        };
        debug_assert!(f.count > 0, "type count underflow on mfn {mfn:#x}");
        f.count -= 1;
        if f.count > 0 {
            return;
        }
        let ty = f.ty;
        f.ty = Ty::None;
        if let Ty::Table(level) = ty {
            let entries = f.entries();
            for (i, &e) in entries.iter().enumerate() {
                if level == Level::L4 && pte::is_xen_l4_slot(i) {
                    continue;
                }
                if pte::present(e) {
                    self.drop_ref(level, e);
                }
            }
        }
    }

    /// The reference an entry of a `level` table holds on its target.
    fn take_ref(&mut self, level: Level, e: u64) -> Result<(), XenError> {
        Self::check_flags(level, e)?;
        let target = pte::frame(e);
        if !self.frames.contains_key(&target) {
            return Err(if level == Level::L1 {
                errno::L1_NOT_OURS
            } else {
                errno::NOT_OURS
            });
        }
        match level.lower() {
            None => {
                if pte::flags(e).contains(F::WRITABLE) {
                    self.get_type(target, Ty::Writable)?;
                }
                self.frame(target)?.maps += 1;
                Ok(())
            }
            Some(lower) => self.get_type(target, Ty::Table(lower)),
        }
    }

    fn drop_ref(&mut self, level: Level, e: u64) {
        let target = pte::frame(e);
        match level.lower() {
            None => {
                if pte::flags(e).contains(F::WRITABLE) {
                    self.put_type(target);
                }
                if let Some(f) = self.frames.get_mut(&target) {
                    debug_assert!(f.maps > 0, "map count underflow on mfn {target:#x}");
                    f.maps -= 1;
                }
            }
            Some(_) => self.put_type(target),
        }
    }

    fn validate(&mut self, mfn: u64, level: Level) -> Result<(), XenError> {
        let entries = self.frame(mfn)?.entries();
        for (i, &e) in entries.iter().enumerate() {
            if level == Level::L4 && pte::is_xen_l4_slot(i) {
                continue; // Xen fills its own slots when it validates an L4
            }
            if !pte::present(e) {
                continue;
            }
            // As `alloc_lN_table`: each entry is checked and referenced, then
            // stored back the way Xen keeps it (`adjust_guest_lNe`).
            if let Err(err) = Self::check_flags(level, e).and_then(|()| self.take_ref(level, e)) {
                for &done in entries[..i].iter() {
                    if pte::present(done) {
                        self.drop_ref(level, done);
                    }
                }
                // Slots skipped above were never referenced; nothing else to undo.
                return Err(err);
            }
            self.frame(mfn)?.set(i, adjust(level, e));
        }
        Ok(())
    }

    /// One `mmu_update` request: write `value` into entry `index` of frame `mfn`.
    pub fn update(&mut self, mfn: u64, index: usize, value: u64) -> Result<(), XenError> {
        let f = self.frame(mfn)?;
        let (ty, count) = (f.ty, f.count);
        let level = match ty {
            Ty::Table(level) if count > 0 => level,
            _ => {
                // Not a table: Xen writes it like any page (a transient writable reference).
                self.frame(mfn)?.set(index, value);
                return Ok(());
            }
        };
        if level == Level::L4 && pte::is_xen_l4_slot(index) {
            return Err(errno::XEN_SLOT);
        }
        if pte::present(value) {
            Self::check_flags(level, value)?;
        }
        let value = adjust(level, value);
        let old = self.frame(mfn)?.get(index);
        // Fast path (`l1e_has_changed` with the whitelist): same frame, same
        // present/RW/cache bits: references do not change.
        let fixed = ADDR_AND_FIXED;
        let same = pte::present(old) && pte::present(value) && (old ^ value) & fixed == 0;
        if !same && pte::present(value) {
            self.take_ref(level, value)?;
        }
        self.frame(mfn)?.set(index, value);
        if pte::present(old) && !same {
            self.drop_ref(level, old);
        }
        Ok(())
    }

    /// `MMUEXT_PIN_Lx_TABLE`.
    pub fn pin(&mut self, level: Level, mfn: u64) -> Result<(), XenError> {
        if self.frame(mfn)?.pinned {
            return Err(errno::PIN_STATE);
        }
        self.get_type(mfn, Ty::Table(level))?;
        self.frame(mfn)?.pinned = true;
        Ok(())
    }

    /// `MMUEXT_UNPIN_TABLE`.
    pub fn unpin(&mut self, mfn: u64) -> Result<(), XenError> {
        let f = self.frame(mfn)?;
        if !f.pinned {
            return Err(errno::PIN_STATE);
        }
        f.pinned = false;
        self.put_type(mfn);
        Ok(())
    }

    /// `MMUEXT_NEW_BASEPTR`.
    pub fn new_baseptr(&mut self, mfn: u64) -> Result<(), XenError> {
        let unreferenced = self.frame(mfn)?.count == 0;
        self.get_type(mfn, Ty::Table(Level::L4))?;
        if unreferenced {
            self.counters.baseptr_full_validations += 1;
        }
        if let Some(old) = self.base.replace(mfn) {
            self.put_type(old);
        }
        Ok(())
    }

    /// `MMUEXT_CLEAR_PAGE`.
    pub fn clear_page(&mut self, mfn: u64) -> Result<(), XenError> {
        self.get_type(mfn, Ty::Writable)
            .map_err(|_| errno::CLEAR_TABLE)?;
        self.frame(mfn)?.data = None;
        self.put_type(mfn);
        Ok(())
    }

    /// Executes one op as Xen would.
    pub fn exec(&mut self, op: &Op) -> Result<(), XenError> {
        let mfn = |m: &Self, p: Pfn| m.mfn(p).ok_or(errno::NOT_OURS);
        match *op {
            Op::Write {
                table,
                index,
                value,
            } => {
                let t = mfn(self, table)?;
                self.update(t, usize::from(index), value)
            }
            Op::ClearPage { frame } => {
                let t = mfn(self, frame)?;
                self.clear_page(t)
            }
            Op::Pin { level, table } => {
                let t = mfn(self, table)?;
                self.pin(level, t)
            }
            Op::Unpin { table } => {
                let t = mfn(self, table)?;
                self.unpin(t)
            }
            Op::Activate { l4 } => {
                let t = mfn(self, l4)?;
                self.new_baseptr(t)
            }
            Op::Invlpg { .. } | Op::FlushTlb => Ok(()),
        }
    }

    /// Recomputes every type count from scratch and compares: returns a
    /// description of the first inconsistency.
    pub fn check_invariants(&self) -> Result<(), alloc::string::String> {
        use alloc::format;
        let mut expect: BTreeMap<u64, (Ty, u32)> = BTreeMap::new();
        let mut maps: BTreeMap<u64, u32> = BTreeMap::new();
        let mut add = |mfn: u64, ty: Ty| {
            let e = expect.entry(mfn).or_insert((ty, 0));
            e.1 += 1;
            if e.0 != ty {
                return Err(format!("mfn {mfn:#x} referenced as {:?} and {ty:?}", e.0));
            }
            Ok(())
        };
        for (&mfn, f) in &self.frames {
            if f.pinned {
                add(mfn, f.ty)?;
            }
            if let (Ty::Table(level), true) = (f.ty, f.count > 0) {
                for (i, &e) in f.entries().iter().enumerate() {
                    if !pte::present(e) || (level == Level::L4 && pte::is_xen_l4_slot(i)) {
                        continue;
                    }
                    match level.lower() {
                        None => {
                            *maps.entry(pte::frame(e)).or_default() += 1;
                            if pte::flags(e).contains(F::WRITABLE) {
                                add(pte::frame(e), Ty::Writable)?
                            }
                        }
                        Some(lower) => add(pte::frame(e), Ty::Table(lower))?,
                    }
                }
            }
        }
        if let Some(b) = self.base {
            add(b, Ty::Table(Level::L4))?;
        }
        for (&mfn, f) in &self.frames {
            let (ty, n) = expect.get(&mfn).copied().unwrap_or((Ty::None, 0));
            let have = if f.count == 0 {
                (Ty::None, 0)
            } else {
                (f.ty, f.count)
            };
            let want = if n == 0 { (Ty::None, 0) } else { (ty, n) };
            if have != want {
                return Err(format!(
                    "mfn {mfn:#x}: type {have:?} but references say {want:?}"
                ));
            }
            let m = maps.get(&mfn).copied().unwrap_or(0);
            if f.maps != m {
                return Err(format!(
                    "mfn {mfn:#x}: map count {} but {m} L1 entries map it",
                    f.maps
                ));
            }
        }
        for (p, &mfn) in self.p2m.iter().enumerate() {
            if mfn != crate::p2m::INVALID_MFN && self.m2p.get(&mfn) != Some(&(p as u64)) {
                return Err(format!("pfn {p:#x} -> mfn {mfn:#x} but the M2P disagrees"));
            }
        }
        Ok(())
    }
}

/// A PV domain as Xen's domain builder leaves it (`xc_dom_x86.c`): frames
/// `[0, region)` identity-mapped read-write by boot tables placed near the end
/// of the region (mapped read-only), followed by one page of boot stack; the
/// boot L4 pinned and active.
#[derive(Clone, Debug)]
pub struct BuiltDomain {
    /// The domain.
    pub xen: XenModel,
    /// The boot root.
    pub boot_l4: Pfn,
    /// Frames the boot tables map.
    pub region: u64,
    /// First frame after the boot tables and the boot stack.
    pub free_from: u64,
}

impl XenModel {
    /// Builds a domain of `nr_pages` frames with `region` of them mapped, as
    /// Xen's PV domain builder does.
    pub fn pv_domain(nr_pages: u64, region: u64) -> Result<BuiltDomain, XenError> {
        let mut xen = XenModel::new(nr_pages);
        let l1s = region.div_ceil(512);
        let nr_pt = 3 + l1s;
        let pt_start = region.checked_sub(nr_pt + 1).ok_or(XenError::EINVAL)?;
        let mfn = |x: &XenModel, p: u64| x.mfn(Pfn(p)).ok_or(XenError::EINVAL);
        let is_pt = |p: u64| (pt_start..pt_start + nr_pt).contains(&p);
        for i in 0..l1s {
            let l1 = mfn(&xen, pt_start + 3 + i)?;
            for j in 0..ENTRIES as u64 {
                let p = i * 512 + j;
                if p >= region {
                    break;
                }
                let mut f = F::PRESENT | F::ACCESSED;
                if !is_pt(p) {
                    f |= F::WRITABLE;
                }
                let e = pte::make(mfn(&xen, p)?, f);
                xen.builder_write(l1, j as usize, e);
            }
            let l2 = mfn(&xen, pt_start + 2)?;
            xen.builder_write(l2, i as usize, pte::make(l1, pte::table_flags()));
        }
        let (l4, l3, l2) = (
            mfn(&xen, pt_start)?,
            mfn(&xen, pt_start + 1)?,
            mfn(&xen, pt_start + 2)?,
        );
        xen.builder_write(l3, 0, pte::make(l2, pte::table_flags()));
        xen.builder_write(l4, 0, pte::make(l3, pte::table_flags()));
        xen.pin(Level::L4, l4)?;
        xen.new_baseptr(l4)?;
        Ok(BuiltDomain {
            xen,
            boot_l4: Pfn(pt_start),
            region,
            free_from: pt_start + nr_pt + 1,
        })
    }
}

/// The model's stolen time per hypercall, in ns ([`Backend::stolen_ns`]).
pub const STOLEN_PER_HYPERCALL: u64 = 1000;

/// The mapper's backend over the model: a batch is one multicall whose
/// entries are runs of `mmu_update` or `mmuext_op`, as on real Xen.
#[derive(Clone, Debug)]
pub struct ModelBackend {
    /// The modelled domain.
    pub xen: XenModel,
    /// Longest run merged into one multicall entry.
    pub max_run: usize,
    /// The model's cycle counter: one tick per reading.
    pub clock: core::cell::Cell<u64>,
}

impl ModelBackend {
    /// A backend over `xen`.
    pub fn new(xen: XenModel) -> ModelBackend {
        ModelBackend {
            xen,
            max_run: crate::mmu::QUEUE,
            clock: core::cell::Cell::new(0),
        }
    }
}

impl Backend for ModelBackend {
    fn submit(&mut self, ops: &[Op], out: &mut [Outcome]) -> Result<u32, XenError> {
        for g in op::groups(ops, self.max_run) {
            let mut done = 0;
            let mut rc = Ok(());
            for o in &ops[g.start..g.end] {
                if let Err(e) = self.xen.exec(o) {
                    rc = Err(e);
                    break;
                }
                done += 1;
            }
            op::record(out, g, done, rc);
        }
        self.xen.counters.hypercalls += 1;
        Ok(1)
    }

    fn read(&self, table: Pfn, index: usize) -> u64 {
        self.xen.mfn(table).map_or(0, |m| self.xen.read(m, index))
    }

    fn hw_frame(&self, pfn: Pfn) -> Option<u64> {
        self.xen.mfn(pfn)
    }

    fn pfn_of(&self, hw: u64) -> Option<Pfn> {
        self.xen.pfn(hw)
    }

    fn set_hw_frame(&mut self, pfn: Pfn, hw: Option<u64>) -> bool {
        self.xen.set_p2m(pfn, hw)
    }

    fn paravirt(&self) -> bool {
        true
    }

    fn cycles(&self) -> u64 {
        self.clock.set(self.clock.get() + 1);
        self.clock.get()
    }

    /// As if Xen descheduled the vCPU for [`STOLEN_PER_HYPERCALL`] ns in
    /// each hypercall the model has counted.
    fn stolen_ns(&self) -> u64 {
        self.xen.counters.hypercalls * STOLEN_PER_HYPERCALL
    }

    fn write_plain(&mut self, frame: Pfn, index: usize, value: u64) -> Result<(), XenError> {
        let mfn = self.xen.mfn(frame).ok_or(errno::NOT_OURS)?;
        if self.xen.guest_write(mfn, index, value) {
            Ok(())
        } else {
            Err(errno::WRITABLE_TABLE)
        }
    }
}

/// The memory hypercalls over the model the backend holds.
#[derive(Clone, Copy, Default, Debug)]
pub struct ModelReservation;

impl crate::reservation::Reservation<ModelBackend> for ModelReservation {
    fn decrease(&mut self, b: &mut ModelBackend, frames: &[u64]) -> Result<usize, XenError> {
        Ok(b.xen.decrease_reservation(frames))
    }

    fn populate(&mut self, b: &mut ModelBackend, list: &mut [u64]) -> Result<usize, XenError> {
        Ok(b.xen.populate_physmap(list))
    }
}
