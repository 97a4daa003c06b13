//! Time: the clocks — TSC readings turned into durations through Xen's
//! pvclock, or through a PIT calibration on bare QEMU; the wall clock from
//! shared_info. Waiting for time is `rt::sched` (`sleep`).
//!
//! May import: `xen`, `qemu`, `arch`, `platform`.
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

    /// Milliseconds on the clock.
    pub fn as_millis(&self) -> u64 {
        self.0 / 1_000_000
    }

    /// The instant `ns` nanoseconds on the clock.
    pub fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
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
    // Xen's own time: the wall clock record goes with it, not with the
    // runtime's clock, which may run behind after a restore.
    let xen_now = crate::xen::xen_time(crate::xen::system_time_ns());
    let ns = rt_xen::abi::pvclock::wall_ns(sec, nsec, xen_now);
    Some(Duration::from_nanos(ns))
}

/// The wall clock as a UTC date.
pub fn date() -> Option<rt_xen::abi::pvclock::Civil> {
    wall_clock().map(|d| rt_xen::abi::pvclock::Civil::from_unix(d.as_secs()))
}
