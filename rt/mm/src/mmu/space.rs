//! Address spaces: the [`Space`] type, the direct maps a mapper keeps
//! read-only views of tables in, and a space's life — new, adopted,
//! pinned, activated, released.
use x86_64::structures::paging::PageTableFlags as F;

use super::{MapError, Mmu, PRIMARY};
use crate::backend::{Backend, FrameSource};
use crate::frame::Pfn;
use crate::op::Op;
use crate::pte::{self, ENTRIES, Level};

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
    pub(super) l4: Pfn,
    pub(super) pinned: bool,
    /// L4 slots whose subtree belongs to another space (never released here).
    pub(super) borrowed: [u64; 4],
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

    pub(super) fn is_borrowed(&self, slot: usize) -> bool {
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

impl<'t, B: Backend> Mmu<'t, B> {
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
    pub(super) fn retire_table(&mut self, t: Pfn) -> Result<(), MapError> {
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
    pub(super) fn for_each_table(
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
