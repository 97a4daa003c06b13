//! The seams between the pure MMU logic and the world: who executes page-table
//! operations ([`Backend`]) and who provides frames ([`FrameSource`]).
//!
//! Backends: `pv` (mmu_update / mmuext_op through one multicall per batch; in
//! the `rt` crate), `native` (PVH: plain writes, `mov cr3`, `invlpg`; in `rt`)
//! and [`crate::model`] (Xen's PV rules, executable on the host).
use rt_xen::XenError;

use crate::frame::Pfn;
use crate::op::{Op, Outcome};
use crate::pte::ENTRIES;

/// Executes MMU operations and reads page tables.
pub trait Backend {
    /// Executes `ops` in order as one batch (PV: one multicall), writing each
    /// op's outcome into `out[i]`. Returns the number of hypercalls made, or
    /// an error if the batch as a whole was rejected (then nothing was done).
    fn submit(&mut self, ops: &[Op], out: &mut [Outcome]) -> Result<u32, XenError>;

    /// Entry `index` of the table held in frame `table`. The frame must be
    /// readable now (PV: mapped in the active address space).
    fn read(&self, table: Pfn, index: usize) -> u64;

    /// The frame number entries hold for `pfn` (PV: its MFN; PVH: the pfn).
    fn hw_frame(&self, pfn: Pfn) -> Option<u64>;

    /// The pfn behind a frame number read from an entry, if it is ours.
    fn pfn_of(&self, hw: u64) -> Option<Pfn>;

    /// Records that `pfn` is now backed by frame `hw` (`None`: by nothing, its
    /// frame went back to Xen). PV: the guest's p2m. Translated guests have
    /// nothing to record (Xen keeps their p2m). Returns false if `pfn` is
    /// beyond the table.
    fn set_hw_frame(&mut self, pfn: Pfn, hw: Option<u64>) -> bool;

    /// Whether Xen's PV rules apply: page-table frames must be read-only in
    /// every mapping, and tables are pinned before use.
    fn paravirt(&self) -> bool;

    /// Stores `value` as entry `index` of `frame` with a plain memory write,
    /// now, outside any batch. The mapper uses it only for a frame it just
    /// took from its [`FrameSource`] — an ordinary frame, typed nowhere,
    /// mapped writable at its identity address — that it fills before making
    /// it a table (PV: Xen then validates all 512 entries at once when the
    /// table is linked). Fails if the frame is not writable (the model: a
    /// typed or unmapped frame).
    fn write_plain(&mut self, frame: Pfn, index: usize, value: u64) -> Result<(), XenError>;

    /// Stores a whole table, `entries[i]` as entry `i` of `frame`, under the
    /// rules of [`Backend::write_plain`]: one call per table instead of one
    /// per entry (the mapper builds a new L1 in a buffer first). Fails, as a
    /// whole, if the frame is not writable.
    fn write_table(&mut self, frame: Pfn, entries: &[u64; ENTRIES]) -> Result<(), XenError> {
        for (index, &value) in entries.iter().enumerate() {
            self.write_plain(frame, index, value)?;
        }
        Ok(())
    }

    /// A reading of a free-running cycle counter (the TSC), for the
    /// mapper's own time counters ([`crate::Stats::check_cycles`],
    /// [`crate::Stats::fill_cycles`]); 0, the default, for none.
    fn cycles(&self) -> u64 {
        0
    }

    /// Nanoseconds the vCPU has been kept from running so far (Xen's
    /// runstate: runnable or offline), for the build's steps
    /// ([`crate::kernel::Step::stolen_ns`]); 0, the default, for none.
    fn stolen_ns(&self) -> u64 {
        0
    }
}

/// A backend borrowed for good (the runtime picks PV or native at boot and
/// hands the MMU a `&'static mut dyn Backend`).
impl<B: Backend + ?Sized> Backend for &mut B {
    fn submit(&mut self, ops: &[Op], out: &mut [Outcome]) -> Result<u32, XenError> {
        (**self).submit(ops, out)
    }
    fn read(&self, table: Pfn, index: usize) -> u64 {
        (**self).read(table, index)
    }
    fn hw_frame(&self, pfn: Pfn) -> Option<u64> {
        (**self).hw_frame(pfn)
    }
    fn pfn_of(&self, hw: u64) -> Option<Pfn> {
        (**self).pfn_of(hw)
    }
    fn set_hw_frame(&mut self, pfn: Pfn, hw: Option<u64>) -> bool {
        (**self).set_hw_frame(pfn, hw)
    }
    fn paravirt(&self) -> bool {
        (**self).paravirt()
    }
    fn write_plain(&mut self, frame: Pfn, index: usize, value: u64) -> Result<(), XenError> {
        (**self).write_plain(frame, index, value)
    }
    fn write_table(&mut self, frame: Pfn, entries: &[u64; ENTRIES]) -> Result<(), XenError> {
        (**self).write_table(frame, entries)
    }
    fn cycles(&self) -> u64 {
        (**self).cycles()
    }
    fn stolen_ns(&self) -> u64 {
        (**self).stolen_ns()
    }
}

/// Where page-table frames come from and go back to.
pub trait FrameSource {
    /// A free frame that the backend can read right now.
    fn alloc_frame(&mut self) -> Option<Pfn>;
    /// Gives a frame back.
    fn free_frame(&mut self, pfn: Pfn);
}
