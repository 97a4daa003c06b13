//! The mapper: address spaces built from range operations, every change queued
//! and sent in batches.
//!
//! Invariants kept here (Xen enforces the first two for PV; we keep them on
//! every backend so the same code is right everywhere):
//!
//! 1. A frame that is a page table is never mapped writable — except, on the
//!    native backend, at its direct-map address, through which the mapper
//!    writes it. `types[pfn]` is the guest-side mirror of Xen's page types: 0
//!    for an ordinary frame, 1..=4 for an L1..L4 table. [`Mmu::map_range`] and
//!    [`Mmu::protect_range`] refuse a writable mapping of a table frame
//!    themselves ([`MapError::PageTableFrame`]) before Xen would.
//! 2. A new table is zeroed while it is still an ordinary frame
//!    (`MMUEXT_CLEAR_PAGE`), then made read-only in every direct map that maps
//!    it, then linked into its parent — in that order, inside one batch.
//! 3. A space is pinned before it is activated; a released space is unpinned
//!    first, then its tables become ordinary, writable frames again and go back
//!    to the frame source — only after the batch that demoted them ran.
//! 4. Reads see queued work: a walk consults the queue for entries linked but
//!    not yet submitted, and tables created in the current batch read as zero.
//!
//! ```text
//!   map_range ──► checks (pass 1) ──► queue: [clear T][T read-only][link T][leaf writes…]
//!                                         │ full? submit (one multicall)
//!   Pending::flush ──► queue: [invlpg… | flush TLB] ──► submit ──► per-op outcome
//! ```
use core::fmt;

use rt_xen::XenError;
use x86_64::structures::paging::PageTableFlags as F;

use crate::backend::{Backend, FrameSource};
use crate::frame::{PAGE_SIZE, Pfn};
use crate::op::{Op, Outcome, Refused, Stats};
use crate::pte::{self, ENTRIES, LOWER_HALF_END, Level, Prot};

/// Ops held before the queue is submitted on its own.
pub const QUEUE: usize = 512;
/// Above this many pages a flush invalidates the whole TLB instead of each page.
pub const INVLPG_MAX: usize = 32;
/// Tables created within one batch that the walk remembers as "all zero".
const FRESH_MAX: usize = 32;

/// Why a mapping operation did not happen (or did not complete).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// The address is not page aligned.
    Unaligned(u64),
    /// The range leaves the lower half of the address space (or is empty).
    OutOfRange(u64),
    /// The frame is not one of ours.
    NoSuchFrame(Pfn),
    /// A writable mapping of a page-table frame was asked for.
    PageTableFrame(Pfn),
    /// `protect_range` over an address that is not mapped.
    NotMapped(u64),
    /// The frame source is empty.
    NoFrames,
    /// The space is active and cannot be released.
    Busy,
    /// An entry the walk found points outside our memory.
    Corrupt {
        /// The table holding it.
        table: Pfn,
        /// Its index.
        index: usize,
    },
    /// Xen refused an operation of the batch.
    Refused(Refused),
    /// Xen rejected the batch as a whole.
    Submit(XenError),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Unaligned(va) => write!(f, "address {va:#x} is not page aligned"),
            MapError::OutOfRange(va) => {
                write!(f, "range at {va:#x} is empty or leaves the lower half")
            }
            MapError::NoSuchFrame(p) => write!(f, "{p} is not a frame of this domain"),
            MapError::PageTableFrame(p) => {
                write!(f, "{p} is a page table and cannot be mapped writable")
            }
            MapError::NotMapped(va) => write!(f, "{va:#x} is not mapped"),
            MapError::NoFrames => f.write_str("no free frames for page tables"),
            MapError::Busy => f.write_str("the address space is active"),
            MapError::Corrupt { table, index } => write!(
                f,
                "entry {index} of table {table} points outside our memory"
            ),
            MapError::Refused(r) => write!(f, "{r}"),
            MapError::Submit(e) => write!(f, "batch rejected: {e}"),
        }
    }
}

/// An identity map (virtual address == pfn << 12) that may map any frame
/// below `limit`: the runtime's own direct map, and Xen's boot tables while
/// they are in use. A frame that becomes a table is made read-only in each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DirectMap {
    /// Root (L4) of the tree the map lives in.
    pub root: Pfn,
    /// Frames at or above this pfn are never mapped by it.
    pub limit: u64,
}

/// An address space: a root table and what is known about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Space {
    l4: Pfn,
    pinned: bool,
    /// L4 slots whose subtree belongs to another space (never released here).
    borrowed: [u64; 4],
}

impl Space {
    /// The root table.
    pub fn root(&self) -> Pfn {
        self.l4
    }

    /// Whether the root is pinned.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    fn is_borrowed(&self, slot: usize) -> bool {
        self.borrowed[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// A space whose tables someone else built (Xen's boot tables): the caller
    /// asserts `l4` is a root and whether it is pinned.
    pub fn adopt(l4: Pfn, pinned: bool) -> Space {
        Space {
            l4,
            pinned,
            borrowed: [0; 4],
        }
    }
}

/// What a range operation needs flushed from the TLB.
#[derive(Clone, Copy, Debug, Default)]
struct FlushPlan {
    active: bool,
    pages: [u64; INVLPG_MAX],
    n: usize,
    full: bool,
}

impl FlushPlan {
    fn add(&mut self, va: u64) {
        if !self.active || self.full {
            return;
        }
        if self.n == INVLPG_MAX {
            self.full = true;
        } else {
            self.pages[self.n] = va;
            self.n += 1;
        }
    }
}

/// Queued work of a range operation, including its TLB flush. Nothing is
/// guaranteed to have reached Xen until [`Pending::flush`] returns; a pending
/// batch that is dropped stays queued and runs with the next submit.
#[must_use = "queued MMU updates only take effect when flushed"]
pub struct Pending<'m, 't, B: Backend> {
    mmu: &'m mut Mmu<'t, B>,
    plan: FlushPlan,
}

impl<B: Backend> fmt::Debug for Pending<'_, '_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("invlpg", &self.plan.n)
            .field("full_flush", &self.plan.full)
            .finish()
    }
}

impl<B: Backend> Pending<'_, '_, B> {
    /// Queues the TLB flush and submits everything queued.
    pub fn flush(self) -> Result<(), MapError> {
        let Pending { mmu, plan } = self;
        if plan.full {
            mmu.push(Op::FlushTlb)?;
            mmu.stats.flushes += 1;
        } else {
            for &va in &plan.pages[..plan.n] {
                mmu.push(Op::Invlpg { va })?;
                mmu.stats.flushes += 1;
            }
        }
        mmu.submit()
    }
}

/// The MMU layer's state: backend, queue, and the guest-side type table.
pub struct Mmu<'t, B: Backend> {
    backend: B,
    queue: [Op; QUEUE],
    len: usize,
    out: [Outcome; QUEUE],
    fresh: [Pfn; FRESH_MAX],
    nfresh: usize,
    types: &'t mut [u8],
    direct: [Option<DirectMap>; 2],
    active: Option<Pfn>,
    stats: Stats,
}

impl<B: Backend> fmt::Debug for Mmu<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mmu")
            .field("queued", &self.len)
            .field("active", &self.active)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Index of the runtime's own direct map in `Mmu::direct`.
pub const PRIMARY: usize = 0;
/// Index of the boot tables' identity map.
pub const BOOT: usize = 1;

impl<'t, B: Backend> Mmu<'t, B> {
    /// An MMU over `backend`; `types` has one byte per pfn of the domain (all 0:
    /// no tables known yet) and `active` is the root currently in use, if known.
    pub fn new(backend: B, types: &'t mut [u8], active: Option<Pfn>) -> Self {
        Mmu {
            backend,
            queue: [Op::FlushTlb; QUEUE],
            len: 0,
            out: [Outcome::Skipped; QUEUE],
            fresh: [Pfn(0); FRESH_MAX],
            nfresh: 0,
            types,
            direct: [None, None],
            active,
            stats: Stats::default(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (tests drive the model through it).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The active root, if known.
    pub fn active(&self) -> Option<Pfn> {
        self.active
    }

    /// The level of the table in frame `pfn`, if it is one.
    pub fn table_level(&self, pfn: Pfn) -> Option<Level> {
        self.types
            .get(pfn.0 as usize)
            .and_then(|&t| Level::from_u8(t))
    }

    /// Registers (or removes) direct map `which` ([`PRIMARY`] or [`BOOT`]).
    pub fn set_direct_map(&mut self, which: usize, map: Option<DirectMap>) {
        self.direct[which] = map;
    }

    /// The direct map `which`.
    pub fn direct_map(&self, which: usize) -> Option<DirectMap> {
        self.direct[which]
    }

    fn push(&mut self, op: Op) -> Result<(), MapError> {
        if self.len == QUEUE {
            self.submit()?;
        }
        self.queue[self.len] = op;
        self.len += 1;
        self.stats.queued += 1;
        Ok(())
    }

    /// Sends everything queued to the backend as one batch and checks every
    /// op's outcome; the first failure comes back naming the op.
    pub fn submit(&mut self) -> Result<(), MapError> {
        let n = self.len;
        self.len = 0;
        self.nfresh = 0;
        if n == 0 {
            return Ok(());
        }
        let ops = &self.queue[..n];
        let out = &mut self.out[..n];
        out.fill(Outcome::Skipped);
        let calls = self.backend.submit(ops, out).map_err(MapError::Submit)?;
        self.stats.hypercalls += u64::from(calls);
        self.stats.batched_ops += n as u64;
        for (i, o) in out.iter().enumerate() {
            match *o {
                Outcome::Done => {
                    if let Op::Activate { l4 } = ops[i] {
                        self.active = Some(l4);
                    }
                }
                Outcome::Failed(errno) => {
                    return Err(MapError::Refused(Refused {
                        index: i,
                        op: ops[i],
                        errno,
                    }));
                }
                Outcome::Skipped => {
                    // Only possible after a failure, which returned above.
                    return Err(MapError::Refused(Refused {
                        index: i,
                        op: ops[i],
                        errno: XenError::EINTR,
                    }));
                }
            }
        }
        Ok(())
    }

    fn is_fresh(&self, table: Pfn) -> bool {
        self.fresh[..self.nfresh].contains(&table)
    }

    /// A leaf entry that no op queued since the last submit has written: only
    /// fresh tables need the overlay (they read as zero until cleared).
    fn read_unqueued(&self, table: Pfn, index: usize) -> u64 {
        if self.is_fresh(table) {
            0
        } else {
            self.backend.read(table, index)
        }
    }

    /// Entry `index` of `table` as it will be once the queue has run.
    fn read_entry(&self, table: Pfn, index: usize) -> u64 {
        let queued = self.queue[..self.len]
            .iter()
            .rev()
            .find_map(|op| match *op {
                Op::Write {
                    table: t,
                    index: i,
                    value,
                } if t == table && usize::from(i) == index => Some(value),
                _ => None,
            });
        match queued {
            Some(v) => v,
            None if self.is_fresh(table) => 0,
            None => self.backend.read(table, index),
        }
    }

    fn child(&self, table: Pfn, index: usize) -> Result<Option<Pfn>, MapError> {
        let e = self.read_entry(table, index);
        if !pte::present(e) {
            return Ok(None);
        }
        self.backend
            .pfn_of(pte::frame(e))
            .map(Some)
            .ok_or(MapError::Corrupt { table, index })
    }

    /// Entry `index` of the table in frame `table`, as it will be once the
    /// queue has run.
    pub fn entry(&self, table: Pfn, index: usize) -> u64 {
        self.read_entry(table, index)
    }

    /// The L1 table (and index) that maps `va` under `root`, if the tables exist.
    pub fn find_l1(&self, root: Pfn, va: u64) -> Result<Option<(Pfn, usize)>, MapError> {
        let mut t = root;
        for level in [Level::L4, Level::L3, Level::L2] {
            match self.child(t, level.index(va))? {
                Some(c) => t = c,
                None => return Ok(None),
            }
        }
        Ok(Some((t, Level::L1.index(va))))
    }

    /// The entries on the way to `va` under `root`, L4 first (for fault reports).
    pub fn walk(&self, root: Pfn, va: u64) -> [Option<u64>; 4] {
        let mut out = [None; 4];
        let mut t = Some(root);
        for (i, level) in [Level::L4, Level::L3, Level::L2, Level::L1]
            .into_iter()
            .enumerate()
        {
            let Some(table) = t else { break };
            let e = self.read_entry(table, level.index(va));
            out[i] = Some(e);
            t = if pte::present(e) && level != Level::L1 {
                self.backend.pfn_of(pte::frame(e))
            } else {
                None
            };
        }
        out
    }

    /// The leaf entry mapping `va` under `root` (0 if none).
    pub fn translate(&self, root: Pfn, va: u64) -> Result<u64, MapError> {
        Ok(match self.find_l1(root, va)? {
            Some((l1, i)) => self.read_entry(l1, i),
            None => 0,
        })
    }

    fn hw(&self, pfn: Pfn) -> Result<u64, MapError> {
        self.backend.hw_frame(pfn).ok_or(MapError::NoSuchFrame(pfn))
    }

    /// Makes `t` read-only in every direct map that maps it writable, including
    /// a mapping that is only queued so far.
    fn make_readonly_everywhere(&mut self, t: Pfn) -> Result<(), MapError> {
        let va = t.addr();
        for d in self.direct.into_iter().flatten() {
            if t.0 >= d.limit {
                continue;
            }
            let Some((l1, i)) = self.find_l1(d.root, va)? else {
                continue;
            };
            let pending = self.queue[..self.len].iter_mut().rev().find(
                |op| matches!(op, Op::Write { table, index, .. } if *table == l1 && usize::from(*index) == i),
            );
            if let Some(Op::Write { value, .. }) = pending {
                *value &= !(F::WRITABLE | F::DIRTY).bits();
                continue;
            }
            let e = self.read_entry(l1, i);
            if pte::present(e) && pte::flags(e).contains(F::WRITABLE) {
                self.push(Op::Write {
                    table: l1,
                    index: i as u16,
                    value: e & !(F::WRITABLE | F::DIRTY).bits(),
                })?;
            }
        }
        Ok(())
    }

    /// Takes a frame from `frames` and turns it into an empty `level` table:
    /// zeroed while still ordinary, then read-only everywhere. Not linked yet.
    fn new_table(&mut self, level: Level, frames: &mut dyn FrameSource) -> Result<Pfn, MapError> {
        if self.nfresh == FRESH_MAX {
            self.submit()?;
        }
        let t = frames.alloc_frame().ok_or(MapError::NoFrames)?;
        if self.table_level(t).is_some() || t.0 as usize >= self.types.len() {
            return Err(MapError::NoSuchFrame(t));
        }
        self.push(Op::ClearPage { frame: t })?;
        if self.backend.paravirt() {
            self.make_readonly_everywhere(t)?;
        }
        self.types[t.0 as usize] = level as u8;
        self.fresh[self.nfresh] = t;
        self.nfresh += 1;
        self.stats.tables_allocated += 1;
        Ok(t)
    }

    /// The L1 table covering `va` in `space`, created (with any missing parents) if needed.
    fn ensure_l1(
        &mut self,
        root: Pfn,
        va: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<Pfn, MapError> {
        let mut t = root;
        for level in [Level::L4, Level::L3, Level::L2] {
            let i = level.index(va);
            t = match self.child(t, i)? {
                Some(c) => c,
                None => {
                    let lower = level.lower().expect("L4..L2 have a lower level");
                    let c = self.new_table(lower, frames)?;
                    let value = pte::make(self.hw(c)?, pte::table_flags());
                    self.push(Op::Write {
                        table: t,
                        index: i as u16,
                        value,
                    })?;
                    c
                }
            };
        }
        Ok(t)
    }

    fn check_range(va: u64, pages: u64) -> Result<(), MapError> {
        if !va.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned(va));
        }
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| va.checked_add(len));
        match end {
            Some(end) if pages > 0 && end <= LOWER_HALF_END => Ok(()),
            _ => Err(MapError::OutOfRange(va)),
        }
    }

    /// A new, empty address space. With `share`, its L4 slots `slots` point to
    /// the same subtrees as in the other space (e.g. the direct map), which this
    /// space never releases.
    pub fn new_space(
        &mut self,
        frames: &mut dyn FrameSource,
        share: Option<(&Space, core::ops::Range<usize>)>,
    ) -> Result<Space, MapError> {
        self.submit()?;
        let l4 = self.new_table(Level::L4, frames)?;
        let mut space = Space {
            l4,
            pinned: false,
            borrowed: [0; 4],
        };
        if let Some((other, slots)) = share {
            for slot in slots.filter(|&s| s < 256) {
                let e = self.read_entry(other.l4, slot);
                if pte::present(e) {
                    self.push(Op::Write {
                        table: l4,
                        index: slot as u16,
                        value: e,
                    })?;
                    space.borrowed[slot / 64] |= 1 << (slot % 64);
                }
            }
        }
        self.submit()?;
        Ok(space)
    }

    /// Maps `pages` consecutive frames from `first` at `va` with `prot`.
    pub fn map_range(
        &mut self,
        space: &Space,
        va: u64,
        first: Pfn,
        pages: u64,
        prot: Prot,
        frames: &mut dyn FrameSource,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        self.map_pfns(space, va, pages, &|i| Pfn(first.0 + i), prot, frames)
    }

    /// Maps the frames of `list`, in order, at consecutive pages from `va`.
    pub fn map_frames(
        &mut self,
        space: &Space,
        va: u64,
        list: &[Pfn],
        prot: Prot,
        frames: &mut dyn FrameSource,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        self.map_pfns(
            space,
            va,
            list.len() as u64,
            &|i| list[i as usize],
            prot,
            frames,
        )
    }

    /// Maps page `i` of the range to RAM frame `pfn_at(i)`.
    fn map_pfns(
        &mut self,
        space: &Space,
        va: u64,
        pages: u64,
        pfn_at: &dyn Fn(u64) -> Pfn,
        prot: Prot,
        frames: &mut dyn FrameSource,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        Self::check_range(va, pages)?;
        // Pass 1: our own checks, before anything is queued.
        for i in 0..pages {
            let pfn = pfn_at(i);
            self.hw(pfn)?;
            if prot.write && self.table_level(pfn).is_some() {
                return Err(MapError::PageTableFrame(pfn));
            }
        }
        self.submit()?;
        let flags = prot.leaf_flags();
        self.map_with(space, va, pages, frames, |m, i| {
            let pfn = pfn_at(i);
            // A frame the frame source just turned into a table of this very
            // range would be a caller bug; refuse rather than map it writable.
            if prot.write && m.table_level(pfn).is_some() {
                return Err(MapError::PageTableFrame(pfn));
            }
            Ok(Some(pte::make(m.hw(pfn)?, flags)))
        })
    }

    /// Maps `pages` consecutive machine frames from `hw` (frames that are not
    /// RAM of ours, such as shared_info) at `va`.
    pub fn map_machine(
        &mut self,
        space: &Space,
        va: u64,
        hw: u64,
        pages: u64,
        prot: Prot,
        frames: &mut dyn FrameSource,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        Self::check_range(va, pages)?;
        // Machine frames can still be our RAM; the same rule applies to each.
        if prot.write {
            let table = (0..pages)
                .filter_map(|i| self.backend.pfn_of(hw + i))
                .find(|&p| self.table_level(p).is_some());
            if let Some(pfn) = table {
                return Err(MapError::PageTableFrame(pfn));
            }
        }
        self.submit()?;
        let flags = prot.leaf_flags();
        self.map_with(space, va, pages, frames, |_, i| {
            Ok(Some(pte::make(hw + i, flags)))
        })
    }

    /// Maps frames `[start, end)` at their identity addresses (va = pfn << 12)
    /// with the rights `prot_of` gives each (`None`: leave a hole). Frames that
    /// are page tables — including tables created while this runs — are mapped
    /// read-only whatever `prot_of` says.
    pub fn map_direct(
        &mut self,
        space: &Space,
        start: Pfn,
        end: Pfn,
        prot_of: &dyn Fn(Pfn) -> Option<Prot>,
        frames: &mut dyn FrameSource,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        Self::check_range(start.addr(), end.0.saturating_sub(start.0))?;
        self.map_with(space, start.addr(), end.0 - start.0, frames, |m, i| {
            let pfn = Pfn(start.0 + i);
            let Some(mut prot) = prot_of(pfn) else {
                return Ok(None);
            };
            // PV: tables are read-only everywhere. Native: the direct map is
            // how the mapper writes its tables, so they stay writable there.
            if m.backend.paravirt() && m.table_level(pfn).is_some() {
                prot.write = false;
            }
            Ok(Some(pte::make(m.hw(pfn)?, prot.leaf_flags())))
        })
    }

    /// Queues one leaf write per page (`entry_of` gives the entry, `None` for a
    /// hole). On error, what this call queued and did not submit yet is dropped.
    fn map_with(
        &mut self,
        space: &Space,
        va: u64,
        pages: u64,
        frames: &mut dyn FrameSource,
        entry_of: impl Fn(&Self, u64) -> Result<Option<u64>, MapError>,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        let mark = self.len;
        let mut plan = FlushPlan {
            active: self.active == Some(space.l4),
            ..FlushPlan::default()
        };
        let mut l1: Option<(u64, Pfn)> = None;
        let mut run = || -> Result<(), MapError> {
            for i in 0..pages {
                let v = va + i * PAGE_SIZE;
                let Some(value) = entry_of(self, i)? else {
                    continue;
                };
                let region = v >> Level::L2.shift();
                let table = match l1 {
                    Some((r, t)) if r == region => t,
                    _ => {
                        let t = self.ensure_l1(space.l4, v, frames)?;
                        l1 = Some((region, t));
                        t
                    }
                };
                let idx = Level::L1.index(v);
                // Each page is visited once, so no op of this call wrote it yet;
                // only ops queued before the call need the full overlay.
                let old = if mark == 0 {
                    self.read_unqueued(table, idx)
                } else {
                    self.read_entry(table, idx)
                };
                self.push(Op::Write {
                    table,
                    index: idx as u16,
                    value,
                })?;
                if pte::present(old) {
                    plan.add(v);
                }
            }
            Ok(())
        };
        if let Err(e) = run() {
            self.len = self.len.min(mark);
            return Err(e);
        }
        Ok(Pending { mmu: self, plan })
    }

    /// Records the levels of every table of `space` (built by someone else,
    /// such as Xen's boot tables) in the type table.
    pub fn adopt(&mut self, space: &Space) -> Result<(), MapError> {
        let root = space.l4;
        self.set_type(root, Level::L4)?;
        for slot in 0..256 {
            let Some(l3) = self.child(root, slot)? else {
                continue;
            };
            self.set_type(l3, Level::L3)?;
            for i3 in 0..ENTRIES {
                let Some(l2) = self.child(l3, i3)? else {
                    continue;
                };
                self.set_type(l2, Level::L2)?;
                for i2 in 0..ENTRIES {
                    if let Some(l1) = self.child(l2, i2)? {
                        self.set_type(l1, Level::L1)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn set_type(&mut self, t: Pfn, level: Level) -> Result<(), MapError> {
        let slot = self
            .types
            .get_mut(t.0 as usize)
            .ok_or(MapError::NoSuchFrame(t))?;
        *slot = level as u8;
        Ok(())
    }

    /// Changes the rights of every page in the range; all must be mapped.
    pub fn protect_range(
        &mut self,
        space: &Space,
        va: u64,
        pages: u64,
        prot: Prot,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        Self::check_range(va, pages)?;
        self.submit()?;
        for i in 0..pages {
            let v = va + i * PAGE_SIZE;
            let e = self.translate(space.l4, v)?;
            if !pte::present(e) {
                return Err(MapError::NotMapped(v));
            }
            let pfn = self.backend.pfn_of(pte::frame(e));
            if let Some(pfn) = pfn.filter(|&p| prot.write && self.table_level(p).is_some()) {
                return Err(MapError::PageTableFrame(pfn));
            }
        }
        let mut plan = FlushPlan {
            active: self.active == Some(space.l4),
            ..FlushPlan::default()
        };
        let flags = prot.leaf_flags();
        for i in 0..pages {
            let v = va + i * PAGE_SIZE;
            let (table, idx) = self.find_l1(space.l4, v)?.ok_or(MapError::NotMapped(v))?;
            let e = self.read_entry(table, idx);
            self.push(Op::Write {
                table,
                index: idx as u16,
                value: pte::make(pte::frame(e), flags),
            })?;
            plan.add(v);
        }
        Ok(Pending { mmu: self, plan })
    }

    /// Removes every mapping in the range (holes are fine). Tables stay.
    pub fn unmap_range(
        &mut self,
        space: &Space,
        va: u64,
        pages: u64,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        Self::check_range(va, pages)?;
        self.submit()?;
        let mut plan = FlushPlan {
            active: self.active == Some(space.l4),
            ..FlushPlan::default()
        };
        let mut l1: Option<(u64, Option<(Pfn, usize)>)> = None;
        for i in 0..pages {
            let v = va + i * PAGE_SIZE;
            let region = v >> Level::L2.shift();
            let found = match l1 {
                Some((r, f)) if r == region => f.map(|(t, _)| (t, Level::L1.index(v))),
                _ => {
                    let f = self.find_l1(space.l4, v)?;
                    l1 = Some((region, f));
                    f
                }
            };
            let Some((table, idx)) = found else { continue };
            // Clear to 0, not just "not present": Xen checks non-present entries
            // with address bits on L1TF-vulnerable CPUs.
            if pte::present(self.read_entry(table, idx)) {
                self.push(Op::Write {
                    table,
                    index: idx as u16,
                    value: 0,
                })?;
                plan.add(v);
            }
        }
        Ok(Pending { mmu: self, plan })
    }

    /// Pins the space's root (validating the whole tree once).
    pub fn pin(&mut self, space: &mut Space) -> Result<(), MapError> {
        if space.pinned || !self.backend.paravirt() {
            space.pinned = true;
            return Ok(());
        }
        self.push(Op::Pin {
            level: Level::L4,
            table: space.l4,
        })?;
        self.stats.pins += 1;
        self.submit()?;
        space.pinned = true;
        Ok(())
    }

    /// Makes `space` the active address space. It is pinned first if it is not
    /// (our rule; Xen would accept an unpinned root at the cost of validating
    /// the whole tree on every switch).
    pub fn activate(&mut self, space: &mut Space) -> Result<(), MapError> {
        self.pin(space)?;
        self.push(Op::Activate { l4: space.l4 })?;
        self.stats.flushes += 1;
        self.submit()
    }

    /// Unpins and dismantles `space`: its tables (not the borrowed subtrees)
    /// become ordinary writable frames again and go back to `frames`.
    pub fn release(
        &mut self,
        space: Space,
        frames: &mut dyn FrameSource,
    ) -> Result<(), (Space, MapError)> {
        if self.active == Some(space.l4) {
            return Err((space, MapError::Busy));
        }
        if let Err(e) = self.submit() {
            return Err((space, e));
        }
        if space.pinned && self.backend.paravirt() {
            self.stats.unpins += 1;
            if let Err(e) = self.push(Op::Unpin { table: space.l4 }) {
                return Err((space, e));
            }
        }
        // Pass 1: every table becomes ordinary again (queued after the unpin).
        if let Err(e) = self.for_each_table(&space, |m, t| m.retire_table(t)) {
            return Err((space, e));
        }
        if let Err(e) = self.submit() {
            return Err((space, e));
        }
        // Pass 2: the demotion ran, so the frames may be reused. Freeing changes
        // no table contents, so the same walk finds every table again.
        if let Err(e) = self.for_each_table(&space, |_, t| {
            frames.free_frame(t);
            Ok(())
        }) {
            return Err((space, e));
        }
        Ok(())
    }

    /// Clears the type of `t` and restores its writable mapping in the primary direct map.
    fn retire_table(&mut self, t: Pfn) -> Result<(), MapError> {
        self.types[t.0 as usize] = 0;
        self.stats.tables_released += 1;
        let Some(d) = self.direct[PRIMARY].filter(|d| t.0 < d.limit && d.root != t) else {
            return Ok(());
        };
        if let Some((l1, i)) = self.find_l1(d.root, t.addr())? {
            let e = self.read_entry(l1, i);
            if pte::present(e) && !pte::flags(e).contains(F::WRITABLE) {
                self.push(Op::Write {
                    table: l1,
                    index: i as u16,
                    value: e | (F::WRITABLE | F::DIRTY).bits(),
                })?;
            }
        }
        Ok(())
    }

    /// Calls `f` on every table of `space` (root last), skipping borrowed
    /// subtrees and Xen's slots.
    fn for_each_table(
        &mut self,
        space: &Space,
        mut f: impl FnMut(&mut Self, Pfn) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        let mut tables = [Pfn(0); ENTRIES];
        for slot in 0..256 {
            if space.is_borrowed(slot) {
                continue;
            }
            let Some(l3) = self.child(space.l4, slot)? else {
                continue;
            };
            for i3 in 0..ENTRIES {
                let Some(l2) = self.child(l3, i3)? else {
                    continue;
                };
                let mut n = 0;
                for i2 in 0..ENTRIES {
                    if let Some(l1) = self.child(l2, i2)? {
                        tables[n] = l1;
                        n += 1;
                    }
                }
                for &l1 in &tables[..n] {
                    f(self, l1)?;
                }
                f(self, l2)?;
            }
            f(self, l3)?;
        }
        f(self, space.l4)
    }
}
