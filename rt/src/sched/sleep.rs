//! Sleeping: the one-shot timer raises `VIRQ_TIMER` at the deadline and the
//! vCPU blocks in the idle loop until then; counters say what woke it.
use core::time::Duration;

use super::idle::idle;
use super::timer;
use crate::time::Instant;

/// Sleep counters: how each block inside [`sleep`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SleepStats {
    /// Sleeps.
    pub sleeps: u64,
    /// Wake-ups by the one-shot timer (`VIRQ_TIMER`).
    pub timer_wakeups: u64,
    /// Wake-ups by another event (the sleep blocks again) or by a poll's
    /// own deadline where no timer could be armed.
    pub other_wakeups: u64,
}

static SLEEP: spin::Mutex<SleepStats> = spin::Mutex::new(SleepStats {
    sleeps: 0,
    timer_wakeups: 0,
    other_wakeups: 0,
});

/// Sleep counters.
pub fn sleep_stats() -> SleepStats {
    *SLEEP.lock()
}

/// Blocks the vCPU for `d`: the one-shot timer raises `VIRQ_TIMER` at the
/// deadline and the vCPU blocks with upcalls enabled until an event comes
/// ([`idle`]); an earlier event (console input, a backend) runs its handler
/// and the sleep blocks again. An idle guest uses no CPU. On bare QEMU (no
/// Xen) it spins on the TSC.
pub fn sleep(d: Duration) {
    let deadline = Instant::now().after(d);
    SLEEP.lock().sleeps += 1;
    if crate::platform::platform().is_xen() {
        // A timer event left over from an earlier, interrupted sleep.
        timer::take_fired();
        while Instant::now() < deadline {
            if idle(Some(deadline)).is_err() {
                // Xen refused to block: spin to the deadline rather than fail.
                break;
            }
            let fired = timer::take_fired();
            let mut s = SLEEP.lock();
            if fired {
                s.timer_wakeups += 1;
            } else {
                s.other_wakeups += 1;
            }
        }
    }
    while Instant::now() < deadline {
        core::hint::spin_loop();
    }
}
