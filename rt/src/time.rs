//! Time: TSC readings turned into durations through Xen's pvclock, or through a
//! PIT calibration on bare QEMU.
use core::time::Duration;

use crate::platform::{Platform, platform};

/// TSC ticks per second on this machine, if known.
pub fn tsc_hz() -> Option<u64> {
    match platform() {
        p if p.is_xen() => crate::xen::time_info()
            .map(|t| t.tsc_hz())
            .filter(|&hz| hz != 0),
        Platform::QemuPvh => crate::qemu::tsc_hz(),
        _ => None,
    }
}

/// Converts a TSC difference to a duration, if the TSC frequency is known.
pub fn tsc_delta_to_duration(ticks: u64) -> Option<Duration> {
    if platform().is_xen() {
        let t = crate::xen::time_info()?;
        if t.mul == 0 {
            return None;
        }
        return Some(Duration::from_nanos(rt_xen::pvclock::scale_delta(
            ticks, t.mul, t.shift,
        )));
    }
    let hz = tsc_hz()?;
    Some(Duration::from_nanos(
        (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64,
    ))
}

/// The CPU's time-stamp counter (cycles on the machines we run on).
pub fn cycles() -> u64 {
    crate::arch::rdtsc()
}

/// A point on the monotonic clock: ns of Xen system time (pvclock) on Xen,
/// ns of TSC time on bare QEMU.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Instant {
        if platform().is_xen() {
            Instant(crate::xen::system_time_ns())
        } else {
            Instant(tsc_delta_to_duration(cycles()).map_or(0, |d| d.as_nanos() as u64))
        }
    }

    /// Time since `earlier` (zero if `earlier` is later).
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time since this instant.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    /// The instant `d` later.
    pub fn after(&self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(d.as_nanos().min(u128::from(u64::MAX)) as u64),
        )
    }

    /// Nanoseconds on the clock (Xen system time on Xen).
    pub fn as_nanos(&self) -> u64 {
        self.0
    }
}

/// Time since the image was entered.
pub fn uptime() -> Duration {
    let entry = crate::arch::entry_tsc();
    tsc_delta_to_duration(cycles().wrapping_sub(entry)).unwrap_or_default()
}

/// Wall-clock time since the Unix epoch (Xen's, from shared_info); `None` on
/// bare QEMU or before shared_info is mapped.
pub fn wall_clock() -> Option<Duration> {
    if !platform().is_xen() {
        return None;
    }
    let (sec, nsec) = crate::xen::wall_clock_base()?;
    let ns = rt_xen::pvclock::wall_ns(sec, nsec, crate::xen::system_time_ns());
    Some(Duration::from_nanos(ns))
}

/// The wall clock as a UTC date.
pub fn date() -> Option<rt_xen::pvclock::Civil> {
    wall_clock().map(|d| rt_xen::pvclock::Civil::from_unix(d.as_secs()))
}

/// Sleep counters: how each wait inside [`sleep`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SleepStats {
    /// Sleeps.
    pub sleeps: u64,
    /// Wake-ups by the one-shot timer (`VIRQ_TIMER`).
    pub timer_wakeups: u64,
    /// Wake-ups by the poll's own deadline (the timer event did not come).
    pub poll_timeouts: u64,
}

static SLEEP: spin::Mutex<SleepStats> = spin::Mutex::new(SleepStats {
    sleeps: 0,
    timer_wakeups: 0,
    poll_timeouts: 0,
});

/// The `VIRQ_TIMER` channel, bound on first use.
static TIMER: spin::Once<Option<crate::event::Channel>> = spin::Once::new();

fn timer() -> Option<&'static crate::event::Channel> {
    TIMER
        .call_once(|| crate::event::Channel::bind_virq(crate::event::VIRQ_TIMER).ok())
        .as_ref()
}

/// Makes the vCPU tickless: PV vCPUs start with a 10 ms periodic timer that
/// would wake an idle guest a hundred times a second.
pub(crate) fn init_xen() {
    if let Err(e) = rt_xen::hypercall::stop_timer(&crate::xen::HYPERVISOR, 0, true) {
        crate::println!("rt: stopping the periodic timer failed: {e} (the guest ticks at 100 Hz)");
    }
}

/// Sleep counters.
pub fn sleep_stats() -> SleepStats {
    *SLEEP.lock()
}

/// Blocks the vCPU for `d`: a one-shot timer (`VCPUOP_set_singleshot_timer`)
/// raises `VIRQ_TIMER` at the deadline and the vCPU waits for it in
/// `SCHEDOP_poll` (1 ms later the poll gives up by itself, so a lost timer
/// event cannot hang the guest; such wake-ups are counted). An idle guest
/// uses no CPU. On bare QEMU (no Xen) it spins on the TSC.
pub fn sleep(d: Duration) {
    let deadline = Instant::now().after(d);
    SLEEP.lock().sleeps += 1;
    if !platform().is_xen() {
        while Instant::now() < deadline {
            core::hint::spin_loop();
        }
        return;
    }
    while Instant::now() < deadline {
        let armed = timer().filter(|_| {
            rt_xen::hypercall::set_singleshot_timer(&crate::xen::HYPERVISOR, 0, deadline.as_nanos())
                .is_ok()
        });
        let woke = match armed {
            // 1 ms after the deadline the poll gives up by itself.
            Some(t) => t.wait(Some(deadline.as_nanos() + 1_000_000)),
            // No timer: the poll's own deadline does the job.
            None => crate::event::wait(&[], Some(deadline.as_nanos())).map(|()| false),
        };
        let mut s = SLEEP.lock();
        match woke {
            Ok(true) => s.timer_wakeups += 1,
            Ok(false) => s.poll_timeouts += 1,
            Err(_) => {
                // Xen refused to block: spin to the deadline rather than fail.
                s.poll_timeouts += 1;
                drop(s);
                while Instant::now() < deadline {
                    core::hint::spin_loop();
                }
            }
        }
    }
}
