//! The idle loop's one step: run the registered services, arm the one-shot
//! timer for the caller's deadline, block until an event.
//!
//! A service is runtime work that must happen whenever the app waits — the
//! toolstack's requests (`xl shutdown`, `xl mem-set`: `rt::control`
//! registers one at boot). The loop knows services only by this table, so
//! it imports nothing above it.
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use spin::Mutex;

use super::timer::{self, Armed};
use crate::event::EventError;
use crate::time::Instant;

/// What a service says after it ran.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wake {
    /// Nothing for the waiter: block.
    Sleep,
    /// Something may have arrived meanwhile whose event the service took
    /// (a wait inside it consumed the port's event): do not block, let the
    /// caller look at its condition again.
    Now,
}

/// A service: runs each time the app waits, before the vCPU blocks.
pub type Service = fn() -> Wake;

/// Most services.
const SERVICES: usize = 8;

static TABLE: Mutex<[Option<Service>; SERVICES]> = Mutex::new([None; SERVICES]);

/// The service table is full.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ServiceError;

impl core::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "the idle loop's {SERVICES} service slots are taken")
    }
}

/// Registers `s` to run whenever the app waits (once: registering it again
/// changes nothing).
pub fn register_service(s: Service) -> Result<(), ServiceError> {
    let mut t = TABLE.lock();
    if t.iter().flatten().any(|&f| core::ptr::fn_addr_eq(f, s)) {
        return Ok(());
    }
    let slot = t.iter_mut().find(|f| f.is_none()).ok_or(ServiceError)?;
    *slot = Some(s);
    Ok(())
}

/// Runs every service; whether one asked not to block.
fn serve() -> Wake {
    // Copied out: a service may wait (and so come back here) itself.
    let services = *TABLE.lock();
    let mut wake = Wake::Sleep;
    for s in services.into_iter().flatten() {
        if s() == Wake::Now {
            wake = Wake::Now;
        }
    }
    wake
}

/// How long the vCPU has been blocked in [`idle`], and how often.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IdleStats {
    /// Blocks in the hypervisor.
    pub blocks: u64,
    /// Their total length (Xen system time, from the block to the return).
    pub blocked: Duration,
}

static BLOCKS: AtomicU64 = AtomicU64::new(0);
static BLOCKED_NS: AtomicU64 = AtomicU64::new(0);

/// Blocks so far and the time spent in them: the guest's CPU use over an
/// interval is the interval less the growth of `blocked` (the rest ran the
/// app, the stack and the drivers, or was taken by the hypervisor).
pub fn idle_stats() -> IdleStats {
    IdleStats {
        blocks: BLOCKS.load(Ordering::Relaxed),
        blocked: Duration::from_nanos(BLOCKED_NS.load(Ordering::Relaxed)),
    }
}

/// Blocks the vCPU until an event arrives or Xen system time reaches
/// `deadline` (`None`: until an event). Upcalls are enabled for exactly the
/// blocked time: handlers run in them, other events are latched for their
/// owners. First it runs the services ([`register_service`]). Callers loop
/// on their own condition: any event ends the wait. On bare QEMU it
/// returns at once with [`EventError::NoHypervisor`].
pub fn idle(deadline: Option<Instant>) -> Result<(), EventError> {
    crate::event::available()?;
    if serve() == Wake::Now {
        return Ok(());
    }
    let armed = match deadline.map(timer::arm) {
        None | Some(Armed::Yes) => true,
        // The deadline is here: the caller's loop looks at its condition.
        Some(Armed::Passed) => return Ok(()),
        Some(Armed::No) => false,
    };
    let t0 = Instant::now();
    let r = crate::event::block(armed, deadline.map(|d| d.as_nanos()));
    BLOCKS.fetch_add(1, Ordering::Relaxed);
    BLOCKED_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}
