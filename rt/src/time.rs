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
