//! The hypervisor as this domain sees it (the mirror of `rt_xen::abi`): the
//! hypercall page every call goes through, the shared_info page Xen keeps
//! the event bitmaps and the vCPU's clock in, and the vCPU's runstate area
//! (`runstate`: the time Xen kept it from running).
//!
//! May import: `arch`, `platform`. Prints nothing: the layers above report.
pub mod runstate;
mod shared;

use rt_xen::abi::hypercall::{self, HypercallPage};

pub use self::shared::{
    SHARED_INFO_PAGE, keep_time_from, map_shared_info_pv, map_shared_info_pvh, publish_p2m,
    set_start_info, settle_clock, shared_info, start_info_ptr, system_time_ns, time_info,
    unmap_shared_info_pv, vcpu0, wall_clock_base, xen_time,
};

/// The one hypercall page of the image; unset (every call `ENOSYS`) until boot
/// code publishes it.
pub static HYPERVISOR: HypercallPage = HypercallPage::new();

/// Gives the CPU away for a moment (`SCHEDOP_yield`). Only a hint: if Xen
/// refuses it, the caller simply polls once more, so the result carries no
/// information worth acting on.
pub fn yield_cpu() {
    if hypercall::sched_yield(&HYPERVISOR).is_err() {
        core::hint::spin_loop();
    }
}

/// Hypercalls issued so far: of number `op` (see `rt_xen::abi::op`), or of
/// every number when `op` is `None`.
pub fn hypercalls_issued(op: Option<u32>) -> u64 {
    op.map_or_else(|| HYPERVISOR.issued_total(), |op| HYPERVISOR.issued(op))
}
