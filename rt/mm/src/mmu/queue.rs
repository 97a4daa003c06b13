//! The queue: every change is pushed and sent in batches (one multicall on
//! PV), each op's outcome checked; reads of the tables see what is queued.
use rt_xen::XenError;

use super::{MapError, Mmu, QUEUE};
use crate::backend::Backend;
use crate::frame::Pfn;
use crate::op::{Op, OpBrief, Outcome, Refused};
use crate::pte::{self, Level};

impl<'t, B: Backend> Mmu<'t, B> {
    pub(super) fn push(&mut self, op: Op) -> Result<(), MapError> {
        if self.len == QUEUE {
            self.submit()?;
        }
        self.queue[self.len] = op;
        self.len += 1;
        self.stats.queued += 1;
        if op.is_update() {
            self.stats.pte_writes += 1;
        }
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
        let t0 = self.backend.cycles();
        let calls = self.backend.submit(ops, out);
        self.stats.submit_cycles += self.backend.cycles().wrapping_sub(t0);
        let calls = calls.map_err(MapError::Submit)?;
        self.stats.hypercalls += u64::from(calls);
        self.stats.batched_ops += n as u64;
        for (i, o) in out.iter().enumerate() {
            let errno = match *o {
                Outcome::Done => {
                    if let Op::Activate { l4 } = ops[i] {
                        self.active = Some(l4);
                    }
                    continue;
                }
                Outcome::Failed(errno) => errno,
                // Only possible after a failure, which returns below.
                Outcome::Skipped => XenError::EINTR,
            };
            return Err(MapError::Refused(Refused {
                index: i as u32,
                op: OpBrief::of(&ops[i]),
                errno,
            }));
        }
        Ok(())
    }

    pub(super) fn is_fresh(&self, table: Pfn) -> bool {
        self.fresh[..self.nfresh].contains(&table)
    }

    /// A leaf entry that no op queued since the last submit has written: only
    /// fresh tables need the overlay (they read as zero until cleared).
    pub(super) fn read_unqueued(&self, table: Pfn, index: usize) -> u64 {
        if self.is_fresh(table) {
            0
        } else {
            self.backend.read(table, index)
        }
    }

    /// Entry `index` of `table` as it will be once the queue has run.
    pub(super) fn read_entry(&self, table: Pfn, index: usize) -> u64 {
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

    pub(super) fn child(&self, table: Pfn, index: usize) -> Result<Option<Pfn>, MapError> {
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

    pub(super) fn hw(&self, pfn: Pfn) -> Result<u64, MapError> {
        self.backend.hw_frame(pfn).ok_or(MapError::NoSuchFrame(pfn))
    }
}
