//! shared_info: the page Xen shares with the domain — the event bitmaps,
//! each vCPU's `vcpu_info` (event mask and selector, the pvclock record),
//! the wall clock, and where the toolstack finds a PV guest's p2m.
//!
//! It moves when the domain is restored or migrated: PV unmaps it before
//! suspending (the saver refuses a page-table entry that maps a frame which
//! is not the guest's) and maps the new one after; PVH places it again.
//! Xen's system time starts anew on the new host, so the runtime's clock is
//! Xen's plus an offset that keeps it from going backwards
//! ([`keep_time_from`]); absolute deadlines handed to Xen go through
//! [`xen_time`].
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use rt_xen::XenError;
use rt_xen::abi::hypercall;
use rt_xen::abi::pvclock::TimeInfo;
use rt_xen::abi::{PAGE_SIZE, UVMF_INVLPG, shared_info, start_info, vcpu_info};

use super::HYPERVISOR;

/// A page-aligned page of the image's .bss whose virtual address is remapped
/// onto Xen's shared_info (PV: update_va_mapping; PVH: add_to_physmap).
#[repr(C, align(4096))]
pub struct Page(pub [u8; PAGE_SIZE]);
/// See [`Page`].
pub static mut SHARED_INFO_PAGE: Page = Page([0; PAGE_SIZE]);

static SHARED_INFO: AtomicPtr<shared_info> = AtomicPtr::new(core::ptr::null_mut());

/// PTE bits for a present, writable, accessed and dirty 4 KiB mapping.
const PTE_RW_DATA: u64 = 0x63;

fn page_va() -> u64 {
    (&raw const SHARED_INFO_PAGE) as u64
}

/// Records that shared_info is mapped at `SHARED_INFO_PAGE`.
fn mapped() {
    SHARED_INFO.store((&raw mut SHARED_INFO_PAGE).cast(), Ordering::Release);
}

/// PV: maps shared_info's machine frame at `ma` (start_info's
/// `shared_info`) over `SHARED_INFO_PAGE`.
pub fn map_shared_info_pv(ma: u64) -> Result<(), XenError> {
    // SAFETY: nothing references SHARED_INFO_PAGE's own contents; the page
    // is only ever accessed through raw pointers as shared_info.
    unsafe {
        hypercall::update_va_mapping(&HYPERVISOR, page_va(), ma | PTE_RW_DATA, UVMF_INVLPG)?;
    }
    mapped();
    Ok(())
}

/// PVH: has Xen place shared_info at `SHARED_INFO_PAGE`'s frame.
pub fn map_shared_info_pvh() -> Result<(), XenError> {
    // SAFETY: the page at that gfn is a .bss page reserved for shared_info;
    // nothing else uses its contents.
    unsafe { hypercall::map_shared_info_at(&HYPERVISOR, page_va() >> 12)? };
    mapped();
    Ok(())
}

/// PV, before suspending: unmaps shared_info. Until it is mapped again
/// nothing may read it: time and events are unavailable.
pub fn unmap_shared_info_pv() -> Result<(), XenError> {
    SHARED_INFO.store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: as for mapping: only raw accesses through SHARED_INFO, which
    // is cleared first.
    unsafe { hypercall::update_va_mapping(&HYPERVISOR, page_va(), 0, UVMF_INVLPG) }
}

/// PV: the start_info page Xen handed over (a page of the domain's own,
/// rewritten by the toolstack when the domain is restored).
static START_INFO: AtomicPtr<start_info> = AtomicPtr::new(core::ptr::null_mut());

/// Records where start_info is (PV boot code).
pub fn set_start_info(si: *const start_info) {
    START_INFO.store(si.cast_mut(), Ordering::Release);
}

/// PV: start_info, to be read field by field with volatile reads (its
/// contents change across a restore).
pub fn start_info_ptr() -> Option<*const start_info> {
    let p = START_INFO.load(Ordering::Acquire);
    (!p.is_null()).then_some(p.cast_const())
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

/// Added to Xen's system time: zero until a restore lands the domain on a
/// clock that is behind the one it left.
static OFFSET_NS: AtomicU64 = AtomicU64::new(0);

/// Xen's own system time now, in ns (0 if shared_info is not mapped).
fn xen_now() -> u64 {
    time_info().map_or(0, |t| t.ns_at(crate::arch::rdtsc()))
}

/// The runtime's system time now, in ns: Xen's plus the offset kept across
/// restores (0 if shared_info is not mapped yet).
pub fn system_time_ns() -> u64 {
    xen_now().saturating_add(OFFSET_NS.load(Ordering::Relaxed))
}

/// Xen's system time at the runtime's `ns` (for deadlines handed to Xen).
pub fn xen_time(ns: u64) -> u64 {
    ns.saturating_sub(OFFSET_NS.load(Ordering::Relaxed))
}

/// After shared_info was mapped anew (a restore): has Xen write the vCPU's
/// time record. Xen fills it when it schedules the vCPU in; until then a
/// new page holds none (and a restored PV one the old host's). A poll with
/// no port and a deadline in the past blocks for no time and is scheduled
/// back in. Returns whether the record is there (bounded: 100 tries).
pub fn settle_clock() -> bool {
    for _ in 0..100 {
        // A refused poll changes nothing; the record is checked below.
        let _ = hypercall::sched_poll(&HYPERVISOR, &[], 1);
        if time_info().is_some_and(|t| t.mul != 0) {
            return true;
        }
    }
    false
}

/// After a restore: the clock goes on from `last` (the runtime's time
/// before suspending) if Xen's new clock is behind it, so time never goes
/// backwards; the time the domain spent suspended is not counted then.
pub fn keep_time_from(last: u64) {
    let now = xen_now();
    let off = OFFSET_NS.load(Ordering::Relaxed);
    if now.saturating_add(off) < last {
        OFFSET_NS.store(last - now, Ordering::Relaxed);
    }
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
