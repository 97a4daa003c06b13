//! Async tasks for apps (`rt::task`): [`spawn`], [`block_on`], [`sleep`],
//! [`timeout`] on the runtime's one executor (the host-tested
//! `rt_net::exec`).
//!
//! Tasks wake on socket readiness (the network stack, once `rt::net::up`
//! ran) and on timers; with nothing ready the vCPU blocks in the hypervisor
//! until the vif's event channel or the one-shot timer fires. A task that
//! calls a *blocking* socket method blocks every task: use the `_async`
//! methods and `rt::net::io_async` traits inside tasks.
//!
//! May import: `dev::net` (the stack), `sched`, `time` — it sits beside the
//! app, above the devices.
use alloc::sync::Arc;
use core::future::Future;
use core::time::Duration;

pub use rt_net::exec::{Aborted, ExecStats, Handle, JoinHandle, Sleep, Timeout};
use rt_net::exec::{Executor, Reactor};

use crate::time::Instant;

/// The executor's view of the runtime: the network stack if it is up, else
/// just the clock and the idle loop.
struct RtReactor;

impl Reactor for RtReactor {
    fn now(&self) -> rt_net::smoltcp::time::Instant {
        rt_net::instant_from_nanos(Instant::now().as_nanos())
    }

    fn poll(&self) {
        if let Some(s) = crate::net::stack() {
            s.poll();
        }
    }

    fn block(&self, deadline: Option<rt_net::smoltcp::time::Instant>) {
        if let Some(s) = crate::net::stack() {
            return s.wait(deadline);
        }
        let d = deadline.map(|d| Instant::from_nanos(d.total_micros().max(0) as u64 * 1000));
        if crate::sched::idle(d).is_err() {
            // Bare QEMU: no events; the loop looks at its timers again.
            core::hint::spin_loop();
        }
    }
}

static EXEC: rt_xen::once::Once<Executor> = rt_xen::once::Once::new();

fn exec() -> &'static Executor {
    EXEC.call_once(|| Executor::new(Arc::new(RtReactor)))
}

/// A handle to the runtime's executor.
pub fn handle() -> Handle {
    exec().handle()
}

/// Runs `fut` (and every spawned task) until `fut` completes.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    exec().block_on(fut)
}

/// Starts `fut` as a task; it runs while some `block_on` runs.
pub fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> JoinHandle<T> {
    handle().spawn(fut)
}

/// Completes `d` after its first poll.
pub fn sleep(d: Duration) -> Sleep {
    handle().sleep(d)
}

/// `fut`'s output, or `SocketError::TimedOut` after `d` (`fut` dropped).
pub fn timeout<F: Future>(d: Duration, fut: F) -> Timeout<F> {
    handle().timeout(d, fut)
}

/// Executor counters.
pub fn stats() -> ExecStats {
    handle().stats()
}
