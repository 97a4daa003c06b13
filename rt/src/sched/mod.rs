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
//! - `sleep`: blocking for a duration, with counters.
mod idle;
mod sleep;
mod timer;

pub use self::idle::{IdleStats, ServiceError, Wake, idle, idle_stats, register_service};
pub use self::sleep::{SleepStats, sleep, sleep_stats};
pub(crate) use self::timer::{init as init_timer, lost as timer_lost, stop as stop_timer};
