//! Page-table frames: made (zeroed while ordinary, then read-only
//! everywhere, then linked), typed in the guest-side type table, and the
//! checks of a range.
use x86_64::structures::paging::PageTableFlags as F;

use super::{FRESH_MAX, MapError, Mmu};
use crate::backend::{Backend, FrameSource};
use crate::frame::{PAGE_SIZE, Pfn};
use crate::op::Op;
use crate::pte::{self, ENTRIES, LOWER_HALF_END, Level};

impl<'t, B: Backend> Mmu<'t, B> {
    /// Makes `t` read-only in every direct map that maps it writable, including
    /// a mapping that is only queued so far.
    pub(super) fn make_readonly_everywhere(&mut self, t: Pfn) -> Result<(), MapError> {
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
    pub(super) fn new_table(
        &mut self,
        level: Level,
        frames: &mut dyn FrameSource,
    ) -> Result<Pfn, MapError> {
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
    pub(super) fn ensure_l1(
        &mut self,
        root: Pfn,
        va: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<Pfn, MapError> {
        self.ensure_down_to(root, va, Level::L1, frames)
    }

    /// The L2 table covering `va` in `space`, created (with any missing parents) if needed.
    pub(super) fn ensure_l2(
        &mut self,
        root: Pfn,
        va: u64,
        frames: &mut dyn FrameSource,
    ) -> Result<Pfn, MapError> {
        self.ensure_down_to(root, va, Level::L2, frames)
    }

    fn ensure_down_to(
        &mut self,
        root: Pfn,
        va: u64,
        want: Level,
        frames: &mut dyn FrameSource,
    ) -> Result<Pfn, MapError> {
        let mut t = root;
        for level in [Level::L4, Level::L3, Level::L2] {
            if level == want {
                break;
            }
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

    /// Build-then-link: takes a frame, records it as an L1 table, fills it by
    /// plain stores while Xen still sees an ordinary frame (`entry_at(idx)`
    /// gives entry `idx`; 0 for none), then queues it read-only everywhere and
    /// linked as entry `index` of `l2` — the one update that makes Xen validate
    /// all its entries. On error the frame goes back untyped.
    pub(super) fn build_l1(
        &mut self,
        l2: Pfn,
        index: usize,
        frames: &mut dyn FrameSource,
        mut entry_at: impl FnMut(&Self, usize) -> Result<u64, MapError>,
    ) -> Result<Pfn, MapError> {
        let t = frames.alloc_frame().ok_or(MapError::NoFrames)?;
        if self.table_level(t).is_some() || t.0 as usize >= self.types.len() {
            return Err(MapError::NoSuchFrame(t));
        }
        self.types[t.0 as usize] = Level::L1 as u8;
        let mut filled = 0;
        let t0 = self.backend.cycles();
        // Built in a buffer, stored with one backend call: the per-entry
        // work is the caller's `entry_at` alone.
        let mut fill = || -> Result<(), MapError> {
            let mut entries = [0u64; ENTRIES];
            for (idx, e) in entries.iter_mut().enumerate() {
                *e = entry_at(self, idx)?;
                filled += u64::from(pte::present(*e));
            }
            self.backend
                .write_table(t, &entries)
                .map_err(|_| MapError::NotWritable(t))
        };
        let filling = fill();
        self.stats.fill_cycles += self.backend.cycles().wrapping_sub(t0);
        if let Err(e) = filling {
            self.types[t.0 as usize] = 0;
            frames.free_frame(t);
            return Err(e);
        }
        if self.backend.paravirt() {
            self.make_readonly_everywhere(t)?;
        }
        let value = pte::make(self.hw(t)?, pte::table_flags());
        self.push(Op::Write {
            table: l2,
            index: index as u16,
            value,
        })?;
        self.stats.tables_allocated += 1;
        self.stats.tables_filled += 1;
        self.stats.entries_filled += filled;
        Ok(t)
    }

    pub(super) fn set_type(&mut self, t: Pfn, level: Level) -> Result<(), MapError> {
        let slot = self
            .types
            .get_mut(t.0 as usize)
            .ok_or(MapError::NoSuchFrame(t))?;
        *slot = level as u8;
        Ok(())
    }

    pub(super) fn check_range(va: u64, pages: u64) -> Result<(), MapError> {
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
}
