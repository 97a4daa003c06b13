//! The native backend (PVH, and bare QEMU): the guest owns its page tables
//! outright — entries hold guest frame numbers, writes are plain stores,
//! activation is `mov cr3`, invalidation `invlpg`. Nothing is pinned.
use rt_mm::op::{Op, Outcome};
use rt_mm::{Backend, PAGE_SIZE, Pfn};
use rt_xen::XenError;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

/// Where the native backend lives once installed.
static SLOT: spin::Mutex<Option<NativeBackend>> = spin::Mutex::new(None);

/// The native backend. `limit` is the first pfn that is not RAM of ours.
#[derive(Debug)]
pub struct NativeBackend {
    limit: u64,
}

impl NativeBackend {
    /// A backend for RAM frames below `limit`.
    pub fn new(limit: u64) -> NativeBackend {
        NativeBackend { limit }
    }

    /// Hands the backend to the MMU layer for the rest of the run (once).
    pub(crate) fn install(self) -> Option<super::Machine> {
        super::install(&SLOT, self)
    }

    fn slot(table: Pfn, index: usize) -> *mut u64 {
        (table.addr() + index as u64 * 8) as *mut u64
    }
}

impl Backend for NativeBackend {
    fn submit(&mut self, ops: &[Op], out: &mut [Outcome]) -> Result<u32, XenError> {
        for (op, o) in ops.iter().zip(out.iter_mut()) {
            match *op {
                Op::Write {
                    table,
                    index,
                    value,
                } => {
                    // SAFETY: the mapper writes only entries of tables it created
                    // or adopted, reachable at their identity address.
                    unsafe { Self::slot(table, usize::from(index)).write_volatile(value) }
                }
                Op::ClearPage { frame } => {
                    // SAFETY: a frame the mapper just took for a new table, mapped
                    // at its identity address and not in use.
                    unsafe {
                        core::ptr::write_bytes(frame.addr() as *mut u8, 0, PAGE_SIZE as usize)
                    }
                }
                Op::Pin { .. } | Op::Unpin { .. } => {}
                Op::Activate { l4 } => {
                    let frame = PhysFrame::containing_address(PhysAddr::new(l4.addr()));
                    // SAFETY: the mapper activates only a complete space whose
                    // direct map covers the image, the stacks and all RAM.
                    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
                }
                Op::Invlpg { va } => x86_64::instructions::tlb::flush(VirtAddr::new(va)),
                Op::FlushTlb => x86_64::instructions::tlb::flush_all(),
            }
            *o = Outcome::Done;
        }
        Ok(0)
    }

    fn read(&self, table: Pfn, index: usize) -> u64 {
        // SAFETY: tables are mapped at their identity address (the boot map
        // covers 4 GiB, our direct map all RAM).
        unsafe { Self::slot(table, index).read_volatile() }
    }

    fn hw_frame(&self, pfn: Pfn) -> Option<u64> {
        Some(pfn.0)
    }

    fn pfn_of(&self, hw: u64) -> Option<Pfn> {
        (hw < self.limit).then_some(Pfn(hw))
    }

    fn set_hw_frame(&mut self, pfn: Pfn, _hw: Option<u64>) -> bool {
        // Translated: Xen keeps the p2m; the frame number stays the pfn.
        pfn.0 < self.limit
    }

    fn paravirt(&self) -> bool {
        false
    }

    fn cycles(&self) -> u64 {
        crate::arch::rdtsc()
    }

    fn stolen_ns(&self) -> u64 {
        crate::xen::runstate::stolen_ns()
    }

    fn write_plain(&mut self, frame: Pfn, index: usize, value: u64) -> Result<(), XenError> {
        if index >= rt_mm::pte::ENTRIES || frame.0 >= self.limit {
            return Err(XenError::EINVAL);
        }
        // SAFETY: the mapper fills only a frame it just took from its frame
        // source: RAM of ours, mapped read-write at its identity address,
        // not yet linked into any table.
        unsafe { Self::slot(frame, index).write_volatile(value) };
        Ok(())
    }

    fn write_table(
        &mut self,
        frame: Pfn,
        entries: &[u64; rt_mm::pte::ENTRIES],
    ) -> Result<(), XenError> {
        if frame.0 >= self.limit {
            return Err(XenError::EINVAL);
        }
        // Volatile, like the single entry: the stores stay ahead of the link
        // that makes the frame a table.
        let base = frame.addr() as *mut u64;
        for (index, &value) in entries.iter().enumerate() {
            // SAFETY: as for `write_plain`: a frame the mapper just took from its
            // frame source, RAM of ours mapped read-write at its identity address,
            // not yet linked into any table; `entries` is one page long.
            unsafe { base.add(index).write_volatile(value) };
        }
        Ok(())
    }
}
