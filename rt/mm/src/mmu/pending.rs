//! The queued work of a range operation and the TLB flush it carries,
//! `#[must_use]` like the x86_64 crate's `MapperFlush`.
use core::fmt;

use super::{INVLPG_MAX, MapError, Mmu};
use crate::backend::Backend;
use crate::op::Op;

/// What a range operation needs flushed from the TLB.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FlushPlan {
    pub(super) active: bool,
    pub(super) pages: [u64; INVLPG_MAX],
    pub(super) n: usize,
    pub(super) full: bool,
}

impl FlushPlan {
    pub(super) fn add(&mut self, va: u64) {
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

/// Queued work of a range operation, including its TLB flush (kept in the
/// MMU, `Mmu::plan`, so this is one pointer: a mapping's `Result` is
/// returned and `?`-propagated without copying the 272-byte plan). Nothing is
/// guaranteed to have reached Xen until [`Pending::flush`] returns; a pending
/// batch that is dropped stays queued and runs with the next submit (its
/// TLB flush does not: the next range operation starts a new plan).
#[must_use = "queued MMU updates only take effect when flushed"]
pub struct Pending<'m, 't, B: Backend> {
    pub(super) mmu: &'m mut Mmu<'t, B>,
}

impl<B: Backend> fmt::Debug for Pending<'_, '_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("invlpg", &self.mmu.plan.n)
            .field("full_flush", &self.mmu.plan.full)
            .finish()
    }
}

impl<B: Backend> Pending<'_, '_, B> {
    /// Queues the TLB flush and submits everything queued.
    pub fn flush(self) -> Result<(), MapError> {
        let Pending { mmu } = self;
        let plan = core::mem::take(&mut mmu.plan);
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
