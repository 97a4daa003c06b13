//! Time: TSC readings turned into durations through Xen's pvclock, or through a
//! PIT calibration on bare QEMU.
use core::sync::atomic::{AtomicU64, Ordering};
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
        return Some(Duration::from_nanos(rt_xen::abi::pvclock::scale_delta(
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
    let ns = rt_xen::abi::pvclock::wall_ns(sec, nsec, crate::xen::system_time_ns());
    Some(Duration::from_nanos(ns))
}

/// The wall clock as a UTC date.
pub fn date() -> Option<rt_xen::abi::pvclock::Civil> {
    wall_clock().map(|d| rt_xen::abi::pvclock::Civil::from_unix(d.as_secs()))
}

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

/// The `VIRQ_TIMER` channel, bound on first use.
static TIMER: spin::Once<Option<crate::event::Channel>> = spin::Once::new();

fn timer() -> Option<&'static crate::event::Channel> {
    TIMER
        .call_once(|| crate::event::Channel::bind_virq(crate::event::VIRQ_TIMER).ok())
        .as_ref()
}

/// The timer's port, if it is bound.
pub(crate) fn timer_port() -> Option<crate::event::Port> {
    TIMER.get().and_then(|t| t.as_ref()).map(|t| t.port())
}

/// Makes the vCPU tickless: PV vCPUs start with a 10 ms periodic timer that
/// would wake an idle guest a hundred times a second.
pub(crate) fn init_xen() {
    if let Err(e) = rt_xen::abi::hypercall::stop_timer(&crate::xen::HYPERVISOR, 0, true) {
        crate::println!("rt: stopping the periodic timer failed: {e} (the guest ticks at 100 Hz)");
    }
}

/// What [`arm_timer`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Armed {
    /// `VIRQ_TIMER` will fire at the deadline.
    Yes,
    /// The deadline has passed already: nothing to wait for.
    Passed,
    /// No timer channel, or Xen refused: nothing will wake a block.
    No,
}

/// The deadline (ns of Xen system time) the one-shot timer was last armed
/// for; 0 when none. Kept by [`arm_timer`], the only code that arms it (one
/// vCPU): while this lies ahead, Xen holds a one-shot timer for exactly it.
static ARMED_FOR: AtomicU64 = AtomicU64::new(0);

/// How far ahead an armed deadline must still be for [`arm_timer`] to rely
/// on it. Xen fires a timer up to its `timer_slop` (50 us by default) early,
/// so one due sooner than this may have fired already (its event taken).
const KEEP_MARGIN_NS: u64 = 1_000_000;

/// Arms the one-shot timer (`VCPUOP_set_singleshot_timer`) to raise
/// `VIRQ_TIMER` at `deadline`. A deadline that has passed is never handed
/// to Xen as "fire now" (see `set_singleshot_timer`): it is reported.
///
/// A timer already armed for no later than `deadline` (and more than
/// [`KEEP_MARGIN_NS`] ahead) is kept: the block it ends comes no later
/// than asked, and the caller's loop arms again then. An idle server that
/// waits "10 s or the next packet" over and over thus arms once per 10 s,
/// not once per packet — on PVH every hypercall is a VM exit.
pub(crate) fn arm_timer(deadline: Instant) -> Armed {
    if timer().is_none() {
        return Armed::No;
    }
    let now = Instant::now();
    if deadline <= now {
        return Armed::Passed;
    }
    let armed = ARMED_FOR.load(Ordering::Relaxed);
    if armed > now.as_nanos().saturating_add(KEEP_MARGIN_NS) && armed <= deadline.as_nanos() {
        return Armed::Yes;
    }
    let r = rt_xen::abi::hypercall::set_singleshot_timer(
        &crate::xen::HYPERVISOR,
        0,
        deadline.as_nanos(),
    );
    ARMED_FOR.store(
        if r.is_ok() { deadline.as_nanos() } else { 0 },
        Ordering::Relaxed,
    );
    match r {
        Ok(()) => Armed::Yes,
        // It passed between our look at the clock and Xen's.
        Err(rt_xen::XenError::ETIME) => Armed::Passed,
        Err(_) => Armed::No,
    }
}

/// Sleep counters.
pub fn sleep_stats() -> SleepStats {
    *SLEEP.lock()
}

/// Blocks the vCPU for `d`: the one-shot timer raises `VIRQ_TIMER` at the
/// deadline and the vCPU blocks with upcalls enabled until an event comes
/// ([`crate::event::idle`]); an earlier event (console input, a backend)
/// runs its handler and the sleep blocks again. An idle guest uses no CPU.
/// On bare QEMU (no Xen) it spins on the TSC.
pub fn sleep(d: Duration) {
    let deadline = Instant::now().after(d);
    SLEEP.lock().sleeps += 1;
    if platform().is_xen() {
        if let Some(t) = timer() {
            // A timer event left over from an earlier, interrupted sleep.
            t.take_pending();
        }
        while Instant::now() < deadline {
            if crate::event::idle(Some(deadline)).is_err() {
                // Xen refused to block: spin to the deadline rather than fail.
                break;
            }
            let fired = timer().is_some_and(|t| t.take_pending());
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
