//! The range operations: map, protect, unmap — one L1's worth of updates
//! costs one queue entry, never a hypercall per page.
use core::cell::Cell;

use super::pending::{FlushPlan, Pending};
use super::{MapError, Mmu, Space};
use crate::backend::{Backend, FrameSource};
use crate::frame::{PAGE_SIZE, Pfn};
use crate::op::Op;
use crate::pte::{self, ENTRIES, Level, Prot};
use x86_64::structures::paging::PageTableFlags;

/// Where [`Mmu::map_with`]'s entries come from. One type for every map
/// path, so `map_with` and `build_l1` are compiled once (a closure per path
/// made three copies, ~2.2 KiB of every image), and matched per entry
/// rather than called through a pointer: under TCG a pointer made mmtest's
/// fill of 16,384 entries ~50% slower, the match left it within the noise
/// (PV 1.13 and 1.14 ms against 0.94 and 1.49 ms with the closures).
#[derive(Clone, Copy)]
pub(super) enum Entries<'a> {
    /// Page `i` to RAM frame `pfn_at(i)` with `flags`; a frame that is a
    /// page table is refused when `write`.
    Pfns {
        pfn_at: &'a dyn Fn(u64) -> Pfn,
        flags: PageTableFlags,
        write: bool,
    },
    /// Page `i` to machine frame `hw + i` with `flags`.
    Machine { hw: u64, flags: PageTableFlags },
    /// Page `i` to frame `start + i` (its identity address) with the rights
    /// `rights` gives (`None`: a hole); on PV (`paravirt`) a page table
    /// read-only. `run` caches the last answer: `rights` is asked once per
    /// run of frames with the same rights, not once per frame (at boot, per
    /// frame it was most of the fill's time).
    Direct {
        start: Pfn,
        rights: &'a dyn Fn(Pfn) -> Run,
        run: &'a Cell<Cached>,
        paravirt: bool,
    },
}

/// The rights of a run of frames in a direct map: frame `pfn` (the one asked
/// about) and every frame after it up to `end` (exclusive) get `prot`
/// (`None`: a hole). An `end` at or below `pfn` means a run of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Rights of the run's frames (`None`: leave them unmapped).
    pub prot: Option<Prot>,
    /// The first frame after the run, whose rights may differ.
    pub end: Pfn,
}

/// The run [`Entries::Direct`] last asked about: `[first, end)` with `prot`.
#[derive(Clone, Copy, Default)]
pub(super) struct Cached {
    first: u64,
    end: u64,
    prot: Option<Prot>,
}

impl<'t, B: Backend> Mmu<'t, B> {
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
    pub(super) fn map_pfns(
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
        let t0 = self.backend.cycles();
        for i in 0..pages {
            let pfn = pfn_at(i);
            self.hw(pfn)?;
            if prot.write && self.table_level(pfn).is_some() {
                return Err(MapError::PageTableFrame(pfn));
            }
        }
        self.stats.check_cycles += self.backend.cycles().wrapping_sub(t0);
        self.submit()?;
        let flags = prot.leaf_flags();
        let write = prot.write;
        self.map_with(
            space,
            va,
            pages,
            frames,
            Entries::Pfns {
                pfn_at,
                flags,
                write,
            },
        )
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
        self.map_with(space, va, pages, frames, Entries::Machine { hw, flags })
    }

    /// Maps frames `[start, end)` at their identity addresses (va = pfn << 12)
    /// with the rights `rights` gives each run of them ([`Run`]; `None`: leave
    /// a hole). Frames that are page tables — including tables created while
    /// this runs — are mapped read-only whatever `rights` says.
    pub fn map_direct(
        &mut self,
        space: &Space,
        start: Pfn,
        end: Pfn,
        rights: &dyn Fn(Pfn) -> Run,
        frames: &mut dyn FrameSource,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        Self::check_range(start.addr(), end.0.saturating_sub(start.0))?;
        let run = Cell::new(Cached::default());
        let paravirt = self.backend.paravirt();
        let entries = Entries::Direct {
            start,
            rights,
            run: &run,
            paravirt,
        };
        self.map_with(space, start.addr(), end.0 - start.0, frames, entries)
    }

    /// The leaf entry for page `i` of a map from `entries` (`None`: a hole).
    #[inline]
    fn entry_of(&self, entries: Entries<'_>, i: u64) -> Result<Option<u64>, MapError> {
        match entries {
            Entries::Pfns {
                pfn_at,
                flags,
                write,
            } => {
                let pfn = pfn_at(i);
                // A frame the frame source just turned into a table of this
                // very range would be a caller bug; refuse rather than map
                // it writable.
                if write && self.table_level(pfn).is_some() {
                    return Err(MapError::PageTableFrame(pfn));
                }
                Ok(Some(pte::make(self.hw(pfn)?, flags)))
            }
            Entries::Machine { hw, flags } => Ok(Some(pte::make(hw + i, flags))),
            Entries::Direct {
                start,
                rights,
                run,
                paravirt,
            } => {
                let pfn = Pfn(start.0 + i);
                let mut c = run.get();
                if !(c.first..c.end).contains(&pfn.0) {
                    let r = rights(pfn);
                    c = Cached {
                        first: pfn.0,
                        end: r.end.0.max(pfn.0 + 1),
                        prot: r.prot,
                    };
                    run.set(c);
                }
                let Some(mut prot) = c.prot else {
                    return Ok(None);
                };
                // PV: tables are read-only everywhere. Native: the direct map
                // is how the mapper writes its tables, so they stay writable
                // there.
                if paravirt && self.table_level(pfn).is_some() {
                    prot.write = false;
                }
                Ok(Some(pte::make(self.hw(pfn)?, prot.leaf_flags())))
            }
        }
    }

    /// Queues one leaf write per page (`entries` gives the entry, `None` for
    /// a hole). On error, what this call queued and did not submit yet is
    /// dropped.
    pub(super) fn map_with(
        &mut self,
        space: &Space,
        va: u64,
        pages: u64,
        frames: &mut dyn FrameSource,
        entries: Entries<'_>,
    ) -> Result<Pending<'_, 't, B>, MapError> {
        let mark = self.len;
        self.plan = FlushPlan {
            active: self.active == Some(space.l4),
            ..FlushPlan::default()
        };
        let mut l1: Option<(u64, Pfn)> = None;
        let mut run = || -> Result<(), MapError> {
            let mut i = 0;
            while i < pages {
                let v = va + i * PAGE_SIZE;
                let Some(value) = self.entry_of(entries, i)? else {
                    i += 1;
                    continue;
                };
                let region = v >> Level::L2.shift();
                let table = match l1 {
                    Some((r, t)) if r == region => t,
                    _ if self.build_then_link => {
                        let l2 = self.ensure_l2(space.l4, v, frames)?;
                        let slot = Level::L2.index(v);
                        match self.child(l2, slot)? {
                            Some(t) => {
                                l1 = Some((region, t));
                                t
                            }
                            None => {
                                // A new L1: build it whole, from this page to
                                // the end of its region or of the range.
                                let first = Level::L1.index(v);
                                let n = ((ENTRIES - first) as u64).min(pages - i) as usize;
                                let t = self.build_l1(l2, slot, frames, |m, idx| {
                                    if idx == first {
                                        Ok(value)
                                    } else if idx > first && idx < first + n {
                                        let e = m.entry_of(entries, i + (idx - first) as u64)?;
                                        Ok(e.unwrap_or(0))
                                    } else {
                                        Ok(0)
                                    }
                                })?;
                                l1 = Some((region, t));
                                i += n as u64;
                                continue;
                            }
                        }
                    }
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
                    self.plan.add(v);
                }
                i += 1;
            }
            Ok(())
        };
        if let Err(e) = run() {
            self.len = self.len.min(mark);
            return Err(e);
        }
        Ok(Pending { mmu: self })
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
        self.plan = FlushPlan {
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
            self.plan.add(v);
        }
        Ok(Pending { mmu: self })
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
        self.plan = FlushPlan {
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
                self.plan.add(v);
            }
        }
        Ok(Pending { mmu: self })
    }
}
