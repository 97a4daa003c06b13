//! Xen's pvclock (`struct vcpu_time_info`, `public/xen.h`): TSC → nanoseconds.
//!
//! Xen publishes, per vCPU, a TSC timestamp, the system time (ns since Xen booted)
//! at that timestamp, and a fixed-point scale: `ns = ((tsc_delta << shift) * mul) >> 32`
//! (shift may be negative). The record is a seqlock: an odd or changed `version`
//! means Xen was updating it while we read.
use core::ptr::addr_of;
use core::sync::atomic::{Ordering, fence};

use crate::abi::vcpu_time_info;

/// A consistent snapshot of a vCPU's time record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeInfo {
    /// TSC value at `system_time`.
    pub tsc_timestamp: u64,
    /// Xen system time in ns at `tsc_timestamp`.
    pub system_time: u64,
    /// Fixed-point multiplier (32 fractional bits).
    pub mul: u32,
    /// Power-of-two pre-shift of the TSC delta.
    pub shift: i8,
}

/// Scales a TSC delta to nanoseconds (Xen's `scale_delta`).
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta << shift
    } else {
        delta >> shift.unsigned_abs()
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

impl TimeInfo {
    /// Xen system time (ns) at TSC value `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        self.system_time.wrapping_add(scale_delta(
            tsc.wrapping_sub(self.tsc_timestamp),
            self.mul,
            self.shift,
        ))
    }

    /// The TSC frequency this record implies, in Hz (0 if the record is empty).
    pub fn tsc_hz(&self) -> u64 {
        if self.mul == 0 {
            return 0;
        }
        let hz = (1_000_000_000u128 << 32) / u128::from(self.mul);
        let hz = if self.shift >= 0 {
            hz >> self.shift
        } else {
            hz << self.shift.unsigned_abs()
        };
        hz as u64
    }

    /// Reads a consistent snapshot of `*t`, retrying while Xen updates it.
    ///
    /// # Safety
    /// `t` must point to a mapped `vcpu_time_info` (inside shared_info).
    pub unsafe fn read(t: *const vcpu_time_info) -> TimeInfo {
        loop {
            // SAFETY: the caller guarantees `t` is mapped; fields are read volatile
            // because Xen updates them concurrently.
            unsafe {
                let v1 = addr_of!((*t).version).read_volatile();
                fence(Ordering::Acquire);
                let snap = TimeInfo {
                    tsc_timestamp: addr_of!((*t).tsc_timestamp).read_volatile(),
                    system_time: addr_of!((*t).system_time).read_volatile(),
                    mul: addr_of!((*t).tsc_to_system_mul).read_volatile(),
                    shift: addr_of!((*t).tsc_shift).read_volatile(),
                };
                fence(Ordering::Acquire);
                let v2 = addr_of!((*t).version).read_volatile();
                if v1 & 1 == 0 && v1 == v2 {
                    return snap;
                }
            }
            core::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_matches_a_known_frequency() {
        // A 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
        let t = TimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            mul: 1 << 31,
            shift: 0,
        };
        assert_eq!(t.ns_at(3000), 5_000 + 1000);
        assert_eq!(t.tsc_hz(), 2_000_000_000);
        // A 500 MHz TSC expressed with shift 1: 2 ns per tick.
        let t = TimeInfo {
            tsc_timestamp: 0,
            system_time: 0,
            mul: 1 << 31,
            shift: 2,
        };
        assert_eq!(t.ns_at(10), 20);
        assert_eq!(t.tsc_hz(), 500_000_000);
        let t = TimeInfo {
            tsc_timestamp: 0,
            system_time: 0,
            mul: 1 << 31,
            shift: -1,
        };
        assert_eq!(t.ns_at(10), 2);
        assert_eq!(t.tsc_hz(), 4_000_000_000);
    }

    #[test]
    fn read_takes_a_stable_snapshot() {
        let t = vcpu_time_info {
            version: 4,
            pad0: 0,
            tsc_timestamp: 7,
            system_time: 9,
            tsc_to_system_mul: 3,
            tsc_shift: -2,
            pad1: [0; 3],
        };
        // SAFETY: `t` is a live local.
        let s = unsafe { TimeInfo::read(&t) };
        assert_eq!(
            s,
            TimeInfo {
                tsc_timestamp: 7,
                system_time: 9,
                mul: 3,
                shift: -2
            }
        );
        assert_eq!(TimeInfo { mul: 0, ..s }.tsc_hz(), 0);
    }
}

/// Wall-clock time (ns since the Unix epoch) from shared_info's record of the
/// wall clock at Xen system time 0 (`wc_sec_hi:wc_sec`, `wc_nsec`) and the
/// system time now.
pub fn wall_ns(wc_sec: u64, wc_nsec: u32, system_ns: u64) -> u64 {
    wc_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(wc_nsec))
        .saturating_add(system_ns)
}

/// A UTC calendar date and time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Civil {
    /// Year (e.g. 2026).
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour, minute, second.
    pub hms: (u32, u32, u32),
}

impl Civil {
    /// The calendar date of `secs` since the Unix epoch (proleptic Gregorian,
    /// Howard Hinnant's `civil_from_days`).
    pub fn from_unix(secs: u64) -> Civil {
        let days = (secs / 86_400) as i64;
        let rem = (secs % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hms: (rem / 3600, rem / 60 % 60, rem % 60),
        }
    }
}

impl core::fmt::Display for Civil {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hms.0, self.hms.1, self.hms.2
        )
    }
}

#[cfg(test)]
mod civil_tests {
    use super::*;

    #[test]
    fn dates_of_known_instants() {
        let c = |s| Civil::from_unix(s);
        assert_eq!(
            c(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hms: (0, 0, 0)
            }
        );
        assert_eq!(
            c(951_782_400),
            Civil {
                year: 2000,
                month: 2,
                day: 29,
                hms: (0, 0, 0)
            }
        );
        assert_eq!(c(1_795_327_671).year, 2026);
        assert_eq!(
            c(4_107_542_399),
            Civil {
                year: 2100,
                month: 2,
                day: 28,
                hms: (23, 59, 59)
            }
        );
        extern crate std;
        use std::string::ToString;
        assert_eq!(c(1_700_000_000).to_string(), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn wall_clock_adds_system_time() {
        assert_eq!(wall_ns(10, 5, 7), 10_000_000_012);
        assert_eq!(wall_ns(u64::MAX, 0, 1), u64::MAX, "saturates");
    }
}
