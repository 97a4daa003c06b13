//! MMU operations as Xen executes them, and how a batch of them is grouped
//! into hypercalls.
//!
//! The runtime never issues page-table changes one by one: it queues [`Op`]s
//! (lazy-MMU mode) and a backend submits the queue as ONE multicall in which
//! consecutive entry writes are merged into one `mmu_update` entry and
//! consecutive extended ops into one `mmuext_op` entry ([`groups`]). Xen stops
//! a merged `mmu_update`/`mmuext_op` at its first failing request but still
//! runs the multicall's later entries; [`Outcome`] records exactly that.
use core::fmt;

use rt_xen::XenError;

use crate::frame::Pfn;
use crate::pte::Level;

/// One page-table operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// Set entry `index` of the table (or plain frame) `table` to `value`
    /// (`mmu_update`, `MMU_NORMAL_PT_UPDATE`).
    Write {
        /// Frame holding the table.
        table: Pfn,
        /// Entry index, 0..512.
        index: u16,
        /// New entry (hardware frame number + flags).
        value: u64,
    },
    /// Zero a frame that is not a page table (`MMUEXT_CLEAR_PAGE`).
    ClearPage {
        /// The frame.
        frame: Pfn,
    },
    /// Validate `table` as a `level` table and pin it (`MMUEXT_PIN_Lx_TABLE`).
    Pin {
        /// Its level.
        level: Level,
        /// The table.
        table: Pfn,
    },
    /// Drop the pin of `table` (`MMUEXT_UNPIN_TABLE`).
    Unpin {
        /// The table.
        table: Pfn,
    },
    /// Make `l4` the active root (`MMUEXT_NEW_BASEPTR`; flushes the TLB).
    Activate {
        /// The root table.
        l4: Pfn,
    },
    /// Flush one page's TLB entry (`MMUEXT_INVLPG_LOCAL`).
    Invlpg {
        /// Virtual address.
        va: u64,
    },
    /// Flush the whole TLB (`MMUEXT_TLB_FLUSH_LOCAL`).
    FlushTlb,
}

impl Op {
    /// Whether Xen executes this op through `mmu_update` (else `mmuext_op`).
    pub fn is_update(&self) -> bool {
        matches!(self, Op::Write { .. })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Write {
                table,
                index,
                value,
                // Widened: the image then formats one integer type fewer.
            } => write!(f, "write {table}[{}] = {value:#x}", u32::from(index)),
            Op::ClearPage { frame } => write!(f, "clear {frame}"),
            Op::Pin { level, table } => write!(f, "pin {table} as L{}", u32::from(level as u8)),
            Op::Unpin { table } => write!(f, "unpin {table}"),
            Op::Activate { l4 } => write!(f, "activate {l4}"),
            Op::Invlpg { va } => write!(f, "invlpg {va:#x}"),
            Op::FlushTlb => f.write_str("flush TLB"),
        }
    }
}

/// What became of one queued op.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Done.
    Done,
    /// Xen refused it with this errno.
    Failed(XenError),
    /// Not executed: an earlier request of the same merged call failed.
    Skipped,
}

/// A run of consecutive ops that becomes one multicall entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Group {
    /// `mmu_update` (true) or `mmuext_op` (false).
    pub update: bool,
    /// First op index.
    pub start: usize,
    /// One past the last op index.
    pub end: usize,
}

/// Splits `ops` into runs of the same hypercall, at most `max_run` ops each.
pub fn groups(ops: &[Op], max_run: usize) -> impl Iterator<Item = Group> + '_ {
    let max_run = max_run.max(1);
    let mut start = 0;
    core::iter::from_fn(move || {
        if start >= ops.len() {
            return None;
        }
        let update = ops[start].is_update();
        let mut end = start + 1;
        while end < ops.len() && end - start < max_run && ops[end].is_update() == update {
            end += 1;
        }
        let g = Group { update, start, end };
        start = end;
        Some(g)
    })
}

/// Fills `out[g.start..g.end]` for a merged call that stopped after `done`
/// successful requests with return code `rc`.
pub fn record(out: &mut [Outcome], g: Group, done: usize, rc: Result<(), XenError>) {
    for (i, o) in out[g.start..g.end].iter_mut().enumerate() {
        *o = match rc {
            Ok(()) => Outcome::Done,
            Err(_) if i < done => Outcome::Done,
            Err(e) if i == done => Outcome::Failed(e),
            Err(_) => Outcome::Skipped,
        };
    }
}

/// A refused operation, named: its place in the batch, what it was and
/// Xen's errno.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Refused {
    /// Position of the op in its batch (a batch is at most
    /// [`crate::mmu::QUEUE`] ops).
    pub index: u32,
    /// Xen's answer.
    pub errno: XenError,
    /// The op, in brief.
    pub op: OpBrief,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Xen refused batch entry {} ({}): {}",
            self.index, self.op, self.errno
        )
    }
}

/// An [`Op`] in one word, as a [`Refused`] names it: its kind and what it
/// acts on (a table and the entry, a frame, a page's address), not a
/// write's new value. So [`crate::MapError`] stays three words: every `?`
/// on a mapping result copies it, and with the whole op (four words) the
/// echo image was 1.6 KiB bigger. (Xen's own log, `xl dmesg`, names the
/// value it refused.)
///
/// Bits 0-2: the kind; 3-11: a write's entry or a pin's level; 12-63: the
/// frame (below 2^52, x86-64's physical limit) or the page address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OpBrief(u64);

impl OpBrief {
    /// `op` in brief.
    pub fn of(op: &Op) -> OpBrief {
        let (kind, arg, target) = match *op {
            Op::Write { table, index, .. } => (0, u64::from(index), table.0),
            Op::ClearPage { frame } => (1, 0, frame.0),
            Op::Pin { level, table } => (2, level as u64, table.0),
            Op::Unpin { table } => (3, 0, table.0),
            Op::Activate { l4 } => (4, 0, l4.0),
            Op::Invlpg { va } => (5, 0, va >> 12),
            Op::FlushTlb => (6, 0, 0),
        };
        OpBrief(kind | (arg & 0x1ff) << 3 | target << 12)
    }
}

impl fmt::Display for OpBrief {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arg = (self.0 >> 3) & 0x1ff;
        let target = self.0 >> 12;
        // `u64` throughout: the image then formats one integer type fewer.
        match self.0 & 7 {
            0 => write!(f, "write {}[{arg}]", Pfn(target)),
            1 => write!(f, "clear {}", Pfn(target)),
            2 => write!(f, "pin {} as L{arg}", Pfn(target)),
            3 => write!(f, "unpin {}", Pfn(target)),
            4 => write!(f, "activate {}", Pfn(target)),
            5 => write!(f, "invlpg {:#x}", target << 12),
            _ => f.write_str("flush TLB"),
        }
    }
}

/// MMU counters, readable by apps.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Stats {
    /// Ops queued.
    pub queued: u64,
    /// Hypercalls issued to execute them.
    pub hypercalls: u64,
    /// Ops executed per hypercall, summed (divide by `hypercalls`).
    pub batched_ops: u64,
    /// Tables pinned.
    pub pins: u64,
    /// Tables unpinned.
    pub unpins: u64,
    /// TLB flushes (single-page or full).
    pub flushes: u64,
    /// Page-table frames allocated.
    pub tables_allocated: u64,
    /// Page-table frames released.
    pub tables_released: u64,
    /// Entry writes sent to Xen (`mmu_update` requests; native: stores),
    /// each validated on its own.
    pub pte_writes: u64,
    /// L1 tables filled while still ordinary frames and linked whole (Xen
    /// validates each in one go: the build-then-link path).
    pub tables_filled: u64,
    /// Present entries written into those tables before they were linked.
    pub entries_filled: u64,
    /// Backend cycles spent on the mapper's checks of the frames a map
    /// names, before anything is queued (0 without a backend clock).
    pub check_cycles: u64,
    /// Backend cycles spent computing and storing new L1 tables' entries
    /// (the build of build-then-link; 0 without a backend clock).
    pub fill_cycles: u64,
    /// Backend cycles spent in the backend's `submit` (on PV: the
    /// hypercalls, Xen's checks and validation; 0 without a backend clock).
    pub submit_cycles: u64,
}

impl Stats {
    /// Average ops per hypercall.
    pub fn ops_per_hypercall(&self) -> f64 {
        if self.hypercalls == 0 {
            0.0
        } else {
            self.batched_ops as f64 / self.hypercalls as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn a_brief_names_the_op_without_a_writes_value() {
        let big = Pfn((1 << 52) - 1);
        let cases = [
            (
                Op::Write {
                    table: big,
                    index: 511,
                    value: u64::MAX,
                },
                "write pfn 0xfffffffffffff[511]",
            ),
            (Op::ClearPage { frame: Pfn(0x10) }, "clear pfn 0x10"),
            (
                Op::Pin {
                    level: Level::L4,
                    table: Pfn(7),
                },
                "pin pfn 0x7 as L4",
            ),
            (Op::Unpin { table: Pfn(0) }, "unpin pfn 0x0"),
            (Op::Activate { l4: big }, "activate pfn 0xfffffffffffff"),
            (
                Op::Invlpg {
                    va: 0x7fff_ffff_f000,
                },
                "invlpg 0x7ffffffff000",
            ),
            (Op::FlushTlb, "flush TLB"),
        ];
        for (op, text) in cases {
            assert_eq!(OpBrief::of(&op).to_string(), text, "{op}");
        }
        let r = Refused {
            index: 3,
            errno: XenError::EINVAL,
            op: OpBrief::of(&cases[0].0),
        };
        assert_eq!(
            r.to_string(),
            "Xen refused batch entry 3 (write pfn 0xfffffffffffff[511]): EINVAL (22)"
        );
    }

    fn w(i: u16) -> Op {
        Op::Write {
            table: Pfn(1),
            index: i,
            value: 0,
        }
    }

    #[test]
    fn consecutive_writes_merge_and_ext_ops_split_them() {
        let ops = [
            w(0),
            w(1),
            w(2),
            Op::Pin {
                level: Level::L4,
                table: Pfn(9),
            },
            Op::FlushTlb,
            w(3),
        ];
        let g: Vec<Group> = groups(&ops, 100).collect();
        assert_eq!(
            g,
            [
                Group {
                    update: true,
                    start: 0,
                    end: 3
                },
                Group {
                    update: false,
                    start: 3,
                    end: 5
                },
                Group {
                    update: true,
                    start: 5,
                    end: 6
                },
            ]
        );
        let g: Vec<Group> = groups(&ops, 2).collect();
        assert_eq!(g.len(), 4, "runs are capped at max_run");
        assert_eq!(groups(&[], 8).count(), 0);
    }

    #[test]
    fn a_failed_request_skips_the_rest_of_its_call_only() {
        let mut out = [Outcome::Skipped; 5];
        record(
            &mut out,
            Group {
                update: true,
                start: 0,
                end: 3,
            },
            1,
            Err(XenError::EBUSY),
        );
        record(
            &mut out,
            Group {
                update: false,
                start: 3,
                end: 5,
            },
            2,
            Ok(()),
        );
        assert_eq!(
            out,
            [
                Outcome::Done,
                Outcome::Failed(XenError::EBUSY),
                Outcome::Skipped,
                Outcome::Done,
                Outcome::Done
            ]
        );
    }
}
