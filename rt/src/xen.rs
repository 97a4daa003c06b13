//! The runtime's handle on Xen: the hypercall page, shared_info, event polling.
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicPtr, Ordering};

use rt_xen::abi::hypercall::{self, HypercallPage};
use rt_xen::abi::pvclock::TimeInfo;
use rt_xen::abi::{shared_info, vcpu_info};

/// The one hypercall page of the image; unset (every call `ENOSYS`) until boot
/// code publishes it.
pub static HYPERVISOR: HypercallPage = HypercallPage::new();

/// A page-aligned page of the image's .bss whose virtual address is remapped
/// onto Xen's shared_info (PV: update_va_mapping; PVH: add_to_physmap).
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);
pub static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

static SHARED_INFO: AtomicPtr<shared_info> = AtomicPtr::new(core::ptr::null_mut());

/// Records that shared_info is mapped at `SHARED_INFO_PAGE`.
pub fn shared_info_mapped() {
    SHARED_INFO.store((&raw mut SHARED_INFO_PAGE).cast(), Ordering::Release);
}

fn shared() -> Option<*mut shared_info> {
    let p = SHARED_INFO.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// The mapped shared_info page, once boot code mapped it.
pub(crate) fn shared_info() -> Option<*mut shared_info> {
    shared()
}

/// The wall clock at Xen system time 0: (seconds since the epoch, ns), read
/// consistently (`wc_version` is a seqlock like the pvclock record's).
pub fn wall_clock_base() -> Option<(u64, u32)> {
    let s = shared()?;
    for _ in 0..1000 {
        // SAFETY: the fields are inside the mapped shared_info page; Xen
        // updates them under the version seqlock, which we follow.
        unsafe {
            let v1 = addr_of!((*s).wc_version).read_volatile();
            core::sync::atomic::fence(Ordering::Acquire);
            let sec = addr_of!((*s).wc_sec).read_volatile();
            let hi = addr_of!((*s).wc_sec_hi).read_volatile();
            let nsec = addr_of!((*s).wc_nsec).read_volatile();
            core::sync::atomic::fence(Ordering::Acquire);
            let v2 = addr_of!((*s).wc_version).read_volatile();
            if v1 == v2 && v1 % 2 == 0 {
                return Some((u64::from(hi) << 32 | u64::from(sec), nsec));
            }
        }
        core::hint::spin_loop();
    }
    None
}

/// vCPU 0's vcpu_info (the only vCPU the runtime runs on).
pub fn vcpu0() -> Option<*mut vcpu_info> {
    // SAFETY: shared_info is mapped; vcpu_info[0] is inside it.
    shared().map(|s| unsafe { addr_of_mut!((*s).vcpu_info[0]) })
}

/// A consistent snapshot of vCPU 0's pvclock record.
pub fn time_info() -> Option<TimeInfo> {
    // SAFETY: the record is inside the mapped shared_info page.
    vcpu0().map(|v| unsafe { TimeInfo::read(addr_of!((*v).time)) })
}

/// Xen system time now, in ns (0 if shared_info is not mapped yet).
pub fn system_time_ns() -> u64 {
    time_info().map_or(0, |t| t.ns_at(crate::arch::rdtsc()))
}

/// Tells the toolstack where the p2m is (`shared_info.arch`): `max_pfn` and
/// the MFN of the top of the three-level frame list.
pub fn publish_p2m(max_pfn: u64, frame_list_list: u64) {
    if let Some(s) = shared() {
        // SAFETY: the fields are inside the mapped shared_info page; the
        // toolstack only reads them.
        unsafe {
            addr_of_mut!((*s).arch.pfn_to_mfn_frame_list_list).write_volatile(frame_list_list);
            addr_of_mut!((*s).arch.max_pfn).write_volatile(max_pfn);
        }
    }
}

/// Gives the CPU away for a moment (`SCHEDOP_yield`). Only a hint: if Xen
/// refuses it, the caller simply polls once more, so the result carries no
/// information worth acting on.
pub fn yield_cpu() {
    if hypercall::sched_yield(&HYPERVISOR).is_err() {
        core::hint::spin_loop();
    }
}

/// Waits until `port` is signalled or `timeout_ns` passes, then takes its
/// event. Upcalls stay masked: this is the polling path (`SCHEDOP_poll`); an
/// event an upcall latched earlier ends it at once.
pub fn wait_port(port: u32, timeout_ns: u64) {
    let port = crate::event::Port(port);
    let deadline = system_time_ns().saturating_add(timeout_ns);
    if crate::event::wait(&[port], Some(deadline)).is_err() {
        // No shared_info yet, or polling refused (bad port): give the CPU
        // away instead; callers bound their waits.
        yield_cpu();
    }
    crate::event::clear_pending(port);
}

/// Hypercalls issued so far: of number `op` (see `rt_xen::abi::op`), or of
/// every number when `op` is `None`.
pub fn hypercalls_issued(op: Option<u32>) -> u64 {
    op.map_or_else(|| HYPERVISOR.issued_total(), |op| HYPERVISOR.issued(op))
}
