//! Page-table frames: made (zeroed while ordinary, then read-only
//! everywhere, then linked), typed in the guest-side type table, and the
//! checks of a range.
use x86_64::structures::paging::PageTableFlags as F;

use super::{FRESH_MAX, MapError, Mmu};
use crate::backend::{Backend, FrameSource};
use crate::frame::{PAGE_SIZE, Pfn};
use crate::op::Op;
use crate::pte::{self, LOWER_HALF_END, Level};

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
