//! vCPU 0's runstate area: Xen keeps in it how long the vCPU has been
//! running, runnable, blocked and offline, which gives the time it wanted
//! to run and did not — stolen time, counted on the boot timeline and in
//! the address-space build's steps so that a phase slowed down by a
//! deschedule says so.
//!
//! Invariant: the area is registered with Xen only at its one static
//! address (mapped at the same address by the boot tables and by the
//! runtime's own space), and `BASE` holds the stolen time Xen reported at
//! registration, so [`stolen_ns`] counts from then (before, and when the
//! registration failed, it is 0).
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rt_xen::abi::errno::XenError;
use rt_xen::abi::hypercall;
use rt_xen::abi::runstate::RunstateInfo;

use super::HYPERVISOR;

/// The area Xen writes: 48 bytes, aligned so it never straddles a page.
#[repr(C, align(64))]
struct Area(UnsafeCell<RunstateInfo>);

// SAFETY: only Xen writes the area (between our instructions, while vCPU 0
// is off the CPU or in a hypercall); we only read it, volatile.
unsafe impl Sync for Area {}

/// All-zero until Xen first writes it, so it sits in `.bss`.
static AREA: Area = Area(UnsafeCell::new(RunstateInfo::new()));
static REGISTERED: AtomicBool = AtomicBool::new(false);
static BASE: AtomicU64 = AtomicU64::new(0);

/// Consistent reads tried before giving up on one (Xen's rewrite is over
/// long before a retry; a second try is the most ever needed).
const TRIES: u32 = 4;

/// Registers the area for vCPU 0 (boot, and again in a restored domain:
/// the registration belongs to the vCPU, not to the domain's memory) and
/// starts the stolen count from what Xen reports now.
pub fn register() -> Result<(), XenError> {
    // SAFETY: AREA is a static used for nothing else, mapped for the whole
    // run at this address in every page table the vCPU runs on.
    unsafe { hypercall::register_runstate_area(&HYPERVISOR, 0, AREA.0.get())? };
    REGISTERED.store(true, Ordering::Release);
    // Xen wrote the area during the call (the caller is vCPU 0 itself).
    // Between the two stores nothing reads the stolen time: at boot no mark
    // is taken yet, and after a restore `come_back` runs before any task,
    // mark or build step, and event handlers never read it.
    BASE.store(raw_stolen().unwrap_or(0), Ordering::Relaxed);
    Ok(())
}

/// Stolen time as Xen last wrote it (`None`: no consistent read). Xen's
/// `time` only: the period in progress is ours (running).
fn raw_stolen() -> Option<u64> {
    read().map(|r| r.stolen_ns())
}

/// The area, read consistently (`None`: not registered, or no read was).
fn read() -> Option<RunstateInfo> {
    if !REGISTERED.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: AREA is a live, aligned static of the right type.
    unsafe { RunstateInfo::read(AREA.0.get(), TRIES) }
}

/// The vCPU's nanoseconds running, runnable, blocked and offline
/// (`rt_xen::abi::runstate::RUNNING`...) since its domain was created, up
/// to now (the period in progress included); `None` before the area is
/// registered, if Xen refused it, or if no read was consistent.
pub fn times() -> Option<[u64; 4]> {
    let now = super::xen_time(super::system_time_ns());
    read().map(|r| r.times_at(now))
}

/// Nanoseconds vCPU 0 was runnable but not running, or offline, since the
/// area was registered (0 before that, or if Xen refused it). Xen updates
/// the area when the vCPU stops and starts running, so a read while running
/// includes every such period that ended. Never blocks, no hypercall.
// Out of line: the boot's marks and the mapper's steps share one copy.
#[inline(never)]
pub fn stolen_ns() -> u64 {
    raw_stolen().map_or(0, |s| s.saturating_sub(BASE.load(Ordering::Relaxed)))
}
