//! shared_info: the page Xen shares with the domain — the event bitmaps,
//! each vCPU's `vcpu_info` (event mask and selector, the pvclock record),
//! the wall clock, and where the toolstack finds a PV guest's p2m.
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicPtr, Ordering};

use rt_xen::abi::pvclock::TimeInfo;
use rt_xen::abi::{PAGE_SIZE, shared_info, vcpu_info};

/// A page-aligned page of the image's .bss whose virtual address is remapped
/// onto Xen's shared_info (PV: update_va_mapping; PVH: add_to_physmap).
#[repr(C, align(4096))]
pub struct Page(pub [u8; PAGE_SIZE]);
/// See [`Page`].
pub static mut SHARED_INFO_PAGE: Page = Page([0; PAGE_SIZE]);

static SHARED_INFO: AtomicPtr<shared_info> = AtomicPtr::new(core::ptr::null_mut());

/// Records that shared_info is mapped at `SHARED_INFO_PAGE`.
pub fn shared_info_mapped() {
    SHARED_INFO.store((&raw mut SHARED_INFO_PAGE).cast(), Ordering::Release);
}

/// The mapped shared_info page, once boot code mapped it.
pub fn shared_info() -> Option<*mut shared_info> {
    let p = SHARED_INFO.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// The wall clock at Xen system time 0: (seconds since the epoch, ns), read
/// consistently (`wc_version` is a seqlock like the pvclock record's).
pub fn wall_clock_base() -> Option<(u64, u32)> {
    let s = shared_info()?;
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
    shared_info().map(|s| unsafe { addr_of_mut!((*s).vcpu_info[0]) })
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
    if let Some(s) = shared_info() {
        // SAFETY: the fields are inside the mapped shared_info page; the
        // toolstack only reads them.
        unsafe {
            addr_of_mut!((*s).arch.pfn_to_mfn_frame_list_list).write_volatile(frame_list_list);
            addr_of_mut!((*s).arch.max_pfn).write_volatile(max_pfn);
        }
    }
}
