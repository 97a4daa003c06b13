//! The PV backend: page-table operations go to Xen as `mmu_update` and
//! `mmuext_op` sub-calls of one multicall per batch.
//!
//! Consecutive entry writes share one `mmu_update` (one request array),
//! consecutive extended ops one `mmuext_op`; Xen stops each at its first
//! failing request and reports how many it did through a per-call `done`
//! counter, which becomes the per-op outcome. Page tables are read through the
//! identity direct map (the boot tables' 1:1 region at first, then ours).
use rt_mm::op::{self, Op, Outcome};
use rt_mm::p2m::{M2p, P2mMut};
use rt_mm::{Backend, Level, Mfn, Pfn};
use rt_xen::XenError;
use rt_xen::abi::hypercall;
use rt_xen::abi::{self, mmu_update, mmuext, mmuext_op, multicall_entry, op as hc};

use crate::mm::QUEUE;
use crate::xen::HYPERVISOR;

/// Multicall entries per hypercall; a batch with more runs issues several.
const MC_MAX: usize = 64;

/// Request buffers Xen reads during a multicall (too big for the stack).
struct Buffers {
    updates: [mmu_update; QUEUE],
    ext: [mmuext_op; QUEUE],
    calls: [multicall_entry; MC_MAX],
    done: [u32; MC_MAX],
}

/// Behind its own lock (never contended: submits already run under the MM
/// lock) so no `static mut` reference is needed.
static BUFFERS: spin::Mutex<Buffers> = spin::Mutex::new(Buffers {
    updates: [mmu_update { ptr: 0, val: 0 }; QUEUE],
    ext: [mmuext_op {
        cmd: 0,
        pad: 0,
        arg1: 0,
        arg2: 0,
    }; QUEUE],
    calls: [multicall_entry {
        op: 0,
        result: 0,
        args: [0; 6],
    }; MC_MAX],
    done: [0; MC_MAX],
});

/// Xen's read-only machine-to-phys table.
#[derive(Debug)]
pub struct XenM2p;

impl M2p for XenM2p {
    fn raw(&self, mfn: Mfn) -> Option<u64> {
        let entries = (abi::MACH2PHYS_VIRT_END - abi::MACH2PHYS_VIRT_START) / 8;
        if mfn.0 >= entries {
            return None;
        }
        // SAFETY: Xen maps the M2P read-only at MACH2PHYS_VIRT_START in every PV
        // guest; the index is inside the window and the entry of a frame we
        // found in our own tables is backed.
        Some(unsafe { ((abi::MACH2PHYS_VIRT_START + mfn.0 * 8) as *const u64).read_volatile() })
    }
}

/// Where the PV backend lives once installed.
static SLOT: spin::Mutex<Option<PvBackend>> = spin::Mutex::new(None);

/// The PV backend.
#[derive(Debug)]
pub struct PvBackend {
    /// The domain's p2m: owned by the backend from boot on, so entries change
    /// only through [`Backend::set_hw_frame`] (the balloon).
    p2m: P2mMut<'static>,
}

impl PvBackend {
    /// A backend over the domain's p2m (`start_info.mfn_list`).
    pub fn new(p2m: &'static mut [u64]) -> PvBackend {
        PvBackend {
            p2m: P2mMut::new(p2m),
        }
    }

    /// Hands the backend to the MMU layer for the rest of the run (once).
    pub(crate) fn install(self) -> Option<super::Machine> {
        super::install(&SLOT, self)
    }

    fn mfn(&self, pfn: Pfn) -> Result<u64, XenError> {
        self.p2m
            .view()
            .mfn(pfn)
            .map(|m| m.0)
            .ok_or(XenError::EINVAL)
    }

    fn ext_op(&self, op: &Op) -> Result<mmuext_op, XenError> {
        let (cmd, arg1) = match *op {
            Op::ClearPage { frame } => (mmuext::CLEAR_PAGE, self.mfn(frame)?),
            Op::Pin { level, table } => {
                let cmd = match level {
                    Level::L1 => mmuext::PIN_L1_TABLE,
                    Level::L2 => mmuext::PIN_L2_TABLE,
                    Level::L3 => mmuext::PIN_L3_TABLE,
                    Level::L4 => mmuext::PIN_L4_TABLE,
                };
                (cmd, self.mfn(table)?)
            }
            Op::Unpin { table } => (mmuext::UNPIN_TABLE, self.mfn(table)?),
            Op::Activate { l4 } => (mmuext::NEW_BASEPTR, self.mfn(l4)?),
            Op::Invlpg { va } => (mmuext::INVLPG_LOCAL, va),
            Op::FlushTlb => (mmuext::TLB_FLUSH_LOCAL, 0),
            Op::Write { .. } => return Err(XenError::EINVAL),
        };
        Ok(mmuext_op {
            cmd,
            pad: 0,
            arg1,
            arg2: 0,
        })
    }
}

impl Backend for PvBackend {
    fn submit(&mut self, ops: &[Op], out: &mut [Outcome]) -> Result<u32, XenError> {
        let mut guard = BUFFERS.lock();
        let b = &mut *guard;
        let mut calls = 0;
        let mut groups = op::groups(ops, QUEUE).peekable();
        while groups.peek().is_some() {
            // Fill up to MC_MAX multicall entries.
            let mut n = 0;
            let mut runs = [op::Group {
                update: false,
                start: 0,
                end: 0,
            }; MC_MAX];
            while n < MC_MAX {
                let Some(g) = groups.next() else { break };
                let count = (g.end - g.start) as u64;
                b.done[n] = 0;
                let done = (&raw mut b.done[n]) as u64;
                let (call, list) = if g.update {
                    for (i, op) in ops[g.start..g.end].iter().enumerate() {
                        let Op::Write {
                            table,
                            index,
                            value,
                        } = *op
                        else {
                            unreachable!("update runs hold writes")
                        };
                        let ptr = (self.mfn(table)? << 12)
                            | (u64::from(index) * 8)
                            | abi::MMU_NORMAL_PT_UPDATE;
                        b.updates[g.start + i] = mmu_update { ptr, val: value };
                    }
                    (hc::MMU_UPDATE, (&raw const b.updates[g.start]) as u64)
                } else {
                    for (i, op) in ops[g.start..g.end].iter().enumerate() {
                        b.ext[g.start + i] = self.ext_op(op)?;
                    }
                    (hc::MMUEXT_OP, (&raw const b.ext[g.start]) as u64)
                };
                b.calls[n] = multicall_entry {
                    op: u64::from(call),
                    result: 0,
                    args: [list, count, done, u64::from(abi::DOMID_SELF), 0, 0],
                };
                runs[n] = g;
                n += 1;
            }
            // SAFETY: every entry points into BUFFERS, which stay valid and
            // untouched until the multicall returns; the ops themselves were
            // built by the mapper, which keeps the runtime's own mappings intact.
            unsafe { hypercall::multicall(&HYPERVISOR, &mut b.calls[..n]) }?;
            calls += 1;
            for (i, g) in runs[..n].iter().enumerate() {
                // The result is read before anything else: debug Xen poisons the
                // rest of each entry after running it.
                let rc = XenError::check(b.calls[i].result as i64).map(drop);
                op::record(out, *g, b.done[i] as usize, rc);
            }
        }
        Ok(calls)
    }

    fn read(&self, table: Pfn, index: usize) -> u64 {
        // SAFETY: the mapper only reads tables it reached from a root, which
        // the active address space maps read-only at their identity address.
        unsafe { ((table.addr() + index as u64 * 8) as *const u64).read_volatile() }
    }

    fn hw_frame(&self, pfn: Pfn) -> Option<u64> {
        self.p2m.view().mfn(pfn).map(|m| m.0)
    }

    fn pfn_of(&self, hw: u64) -> Option<Pfn> {
        XenM2p.pfn(Mfn(hw), &self.p2m.view())
    }

    fn set_hw_frame(&mut self, pfn: Pfn, hw: Option<u64>) -> bool {
        self.p2m.set(pfn, hw.map(Mfn)).is_ok()
    }

    fn paravirt(&self) -> bool {
        true
    }

    fn cycles(&self) -> u64 {
        crate::arch::rdtsc()
    }

    fn stolen_ns(&self) -> u64 {
        crate::xen::runstate::stolen_ns()
    }

    fn write_plain(&mut self, frame: Pfn, index: usize, value: u64) -> Result<(), XenError> {
        if index >= rt_mm::pte::ENTRIES {
            return Err(XenError::EINVAL);
        }
        // SAFETY: the mapper fills only a frame it just took from its frame
        // source: free, not a page table, mapped read-write at its identity
        // address in the active space; nothing else refers to it yet.
        unsafe { ((frame.addr() + index as u64 * 8) as *mut u64).write_volatile(value) };
        Ok(())
    }

    fn write_table(
        &mut self,
        frame: Pfn,
        entries: &[u64; rt_mm::pte::ENTRIES],
    ) -> Result<(), XenError> {
        // Volatile, like the single entry: the stores stay ahead of the link
        // that makes the frame a table.
        let base = frame.addr() as *mut u64;
        for (index, &value) in entries.iter().enumerate() {
            // SAFETY: as for `write_plain`: a frame the mapper just took from its
            // frame source, free, not a page table, mapped read-write at its
            // identity address; `entries` is one page long.
            unsafe { base.add(index).write_volatile(value) };
        }
        Ok(())
    }
}
