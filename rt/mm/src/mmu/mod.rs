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
//! 2. A new table is written only while it is still an ordinary frame — zeroed
//!    (`MMUEXT_CLEAR_PAGE`), or for a new L1 of a range operation, filled with
//!    its entries by plain stores (build-then-link) — then made read-only in
//!    every direct map that maps it, then linked into its parent, in that
//!    order, inside one batch. Its type is recorded before it is filled, so a
//!    range that covers the table itself maps it read-only.
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
//!
//! The mapper in files: the queue and the reads that see it (`queue`), page-
//! table frames made and typed (`tables`), the range operations (`map`),
//! address spaces and their life (`space`), a range operation's TLB flush
//! (`pending`), the errors (`error`).
use core::fmt;

use crate::backend::Backend;
use crate::frame::Pfn;
use crate::op::{Op, Outcome, Stats};
use crate::pte::Level;

mod error;
mod map;
mod pending;
mod queue;
mod space;
mod tables;

pub use error::MapError;
pub use map::Run;
use pending::FlushPlan;
pub use pending::Pending;
pub use space::{DirectMap, Space};

/// Ops held before the queue is submitted on its own.
pub const QUEUE: usize = 512;
/// Above this many pages a flush invalidates the whole TLB instead of each page.
pub const INVLPG_MAX: usize = 32;
/// Tables created within one batch that the walk remembers as "all zero".
const FRESH_MAX: usize = 32;

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
    /// Build new L1 tables as ordinary frames and link them whole (the
    /// default); off: create them empty and write each entry through Xen.
    build_then_link: bool,
    /// The TLB flush of the range operation whose [`Pending`] is out (set
    /// afresh by each; taken by `Pending::flush`).
    plan: FlushPlan,
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
            build_then_link: true,
            plan: FlushPlan::default(),
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

    /// Chooses how a range operation makes a missing L1 table: `true` (the
    /// default) fills it while it is still an ordinary writable frame, then
    /// makes it read-only and links it with one update, so Xen validates its
    /// 512 entries at once; `false` links it empty and writes each entry
    /// through a validated update (the benchmark compares both).
    pub fn set_build_then_link(&mut self, on: bool) {
        self.build_then_link = on;
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
}
