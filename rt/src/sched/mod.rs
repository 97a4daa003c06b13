//! How the vCPU waits: the idle loop ([`idle`]) that runs the runtime's
//! registered services, arms the one-shot timer and blocks until an event;
//! [`sleep`] on top of it; the timer itself.
//!
//! May import: `event`, `time`, `xen`, `arch`, `platform`. Prints nothing.
//! Services register themselves here (the toolstack's control requests, by
//! `rt::control`), so the idle loop never names the modules above it.
//!
//! - [`idle`]: the loop's one step and the service table;
//! - `timer`: the one-shot timer (`VCPUOP_set_singleshot_timer`, `VIRQ_TIMER`);
//! - `sleep`: blocking for a duration, with counters;
//! - [`runstate`], [`stolen`]: the vCPU's time as Xen counts it, and the
//!   part Xen kept it from running.
mod idle;
mod sleep;
mod timer;

pub use self::idle::{IdleStats, ServiceError, Wake, idle, idle_stats, register_service};
pub use self::sleep::{SleepStats, sleep, sleep_stats};
pub(crate) use self::timer::{init as init_timer, lost as timer_lost, stop as stop_timer};

/// The vCPU's time as Xen's runstate area counts it, since its domain was
/// created (a restored domain's count starts again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    /// On a physical CPU.
    pub running: core::time::Duration,
    /// Ready to run, waiting for a physical CPU.
    pub runnable: core::time::Duration,
    /// Blocked, waiting for an event (the idle loop).
    pub blocked: core::time::Duration,
    /// Not runnable: paused by the toolstack, or down.
    pub offline: core::time::Duration,
}

/// The vCPU's [`Runstate`] as Xen last wrote it (it rewrites the area when
/// the vCPU stops or starts running); `None` where Xen refused the area.
pub fn runstate() -> Option<Runstate> {
    use rt_xen::abi::runstate::{BLOCKED, OFFLINE, RUNNABLE, RUNNING};
    let t = crate::xen::runstate::times()?;
    let d = core::time::Duration::from_nanos;
    Some(Runstate {
        running: d(t[RUNNING]),
        runnable: d(t[RUNNABLE]),
        blocked: d(t[BLOCKED]),
        offline: d(t[OFFLINE]),
    })
}

/// Time Xen kept this vCPU from running — runnable but waiting for a
/// physical CPU, or offline — since boot (since the restore, in a restored
/// domain), from its runstate area; zero where Xen refused the area. A time
/// measured around some work less the growth of this is the work's own.
pub fn stolen() -> core::time::Duration {
    core::time::Duration::from_nanos(crate::xen::runstate::stolen_ns())
}
