//! A vCPU's runstate (`struct vcpu_runstate_info`, `public/vcpu.h`): how long
//! it has been running, runnable (waiting for a physical CPU), blocked and
//! offline (paused, or down) since the domain was created.
//!
//! A guest registers an area with `VCPUOP_register_runstate_memory_area`
//! (see [`crate::abi::hypercall::register_runstate_area`]); Xen then
//! rewrites it whenever the vCPU changes state — when it is descheduled and
//! when it runs again — so its `runnable` and `offline` times, read while
//! the vCPU runs, count every completed period in which it wanted to run
//! and did not: its *stolen* time.
use core::ptr::addr_of;
use core::sync::atomic::{Ordering, fence};

/// `RUNSTATE_running`: on a physical CPU.
pub const RUNNING: usize = 0;
/// `RUNSTATE_runnable`: ready to run, waiting for a physical CPU.
pub const RUNNABLE: usize = 1;
/// `RUNSTATE_blocked`: waiting for an event (`SCHEDOP_block`).
pub const BLOCKED: usize = 2;
/// `RUNSTATE_offline`: not runnable (paused by the toolstack, or down).
pub const OFFLINE: usize = 3;

/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen rewrites the
/// area (only with `VMASST_TYPE_runstate_update_flag`; harmless without).
pub const UPDATE: u64 = 1 << 63;

/// `struct vcpu_runstate_info`, 48 bytes: the layout Xen writes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunstateInfo {
    /// The state the vCPU is in (`RUNSTATE_*`).
    pub state: i32,
    /// Xen system time (ns) at which it entered that state.
    pub state_entry_time: u64,
    /// Nanoseconds spent in each state, indexed by `RUNSTATE_*`.
    pub time: [u64; 4],
}

const _: () = assert!(core::mem::size_of::<RunstateInfo>() == 48);

impl RunstateInfo {
    /// An all-zero area (what a static holds before Xen first writes it).
    pub const fn new() -> Self {
        RunstateInfo {
            state: 0,
            state_entry_time: 0,
            time: [0; 4],
        }
    }

    /// Time the vCPU wanted to run and did not (runnable), or was kept off
    /// every CPU (offline), in ns — saturating, never wrapping.
    pub fn stolen_ns(&self) -> u64 {
        self.time[RUNNABLE].saturating_add(self.time[OFFLINE])
    }

    /// The times as of Xen system time `now_ns`: [`Self::time`] plus the
    /// period in progress (`state` since `state_entry_time`), which Xen
    /// adds only when it ends. A state that is no `RUNSTATE_*` or a `now`
    /// before the entry time adds nothing.
    pub fn times_at(&self, now_ns: u64) -> [u64; 4] {
        let mut t = self.time;
        let entered = self.state_entry_time & !UPDATE;
        if let Some(slot) = usize::try_from(self.state).ok().and_then(|s| t.get_mut(s)) {
            *slot = slot.saturating_add(now_ns.saturating_sub(entered));
        }
        t
    }

    /// Reads the area at `area` consistently: retried while Xen's update
    /// flag is set or `state_entry_time` changed during the read (a state
    /// change in between), at most `tries` times; `None` if no read was
    /// consistent.
    ///
    /// # Safety
    /// `area` must point to a mapped, aligned `vcpu_runstate_info`.
    pub unsafe fn read(area: *const RunstateInfo, tries: u32) -> Option<RunstateInfo> {
        for _ in 0..tries {
            // SAFETY: the caller guarantees `area` is mapped and aligned;
            // fields are read volatile because Xen rewrites them.
            let (snap, e2) = unsafe {
                let e1 = addr_of!((*area).state_entry_time).read_volatile();
                fence(Ordering::Acquire);
                let snap = RunstateInfo {
                    state: addr_of!((*area).state).read_volatile(),
                    state_entry_time: e1,
                    time: addr_of!((*area).time).read_volatile(),
                };
                fence(Ordering::Acquire);
                (snap, addr_of!((*area).state_entry_time).read_volatile())
            };
            if snap.state_entry_time & UPDATE == 0 && snap.state_entry_time == e2 {
                return Some(snap);
            }
            core::hint::spin_loop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stolen_is_runnable_plus_offline() {
        let r = RunstateInfo {
            state: RUNNING as i32,
            state_entry_time: 9,
            time: [1000, 20, 300, 4],
        };
        assert_eq!(r.stolen_ns(), 24);
        let big = RunstateInfo {
            time: [0, u64::MAX, 0, 5],
            ..r
        };
        assert_eq!(big.stolen_ns(), u64::MAX, "saturates");
    }

    #[test]
    fn a_read_is_refused_while_xen_says_it_updates() {
        let mut r = RunstateInfo {
            state: 0,
            state_entry_time: 77,
            time: [1, 2, 3, 4],
        };
        // SAFETY: `r` is a live, aligned RunstateInfo.
        let read = unsafe { RunstateInfo::read(&r, 3) };
        assert_eq!(read, Some(r));
        r.state_entry_time |= UPDATE;
        // SAFETY: as above.
        assert_eq!(unsafe { RunstateInfo::read(&r, 3) }, None);
        // SAFETY: as above.
        let none = unsafe { RunstateInfo::read(&r, 0) };
        assert_eq!(none, None, "no tries, no read");
    }

    #[test]
    fn the_period_in_progress_counts_up_to_now() {
        let r = RunstateInfo {
            state: RUNNING as i32,
            state_entry_time: 1_000,
            time: [50, 20, 300, 4],
        };
        assert_eq!(r.times_at(1_600), [650, 20, 300, 4]);
        assert_eq!(
            r.times_at(900),
            r.time,
            "a clock behind the entry adds nothing"
        );
        let odd = RunstateInfo { state: 9, ..r };
        assert_eq!(odd.times_at(5_000), r.time, "no such state: nothing added");
        let neg = RunstateInfo { state: -1, ..r };
        assert_eq!(neg.times_at(5_000), r.time);
        let blocked = RunstateInfo {
            state: BLOCKED as i32,
            ..r
        };
        assert_eq!(blocked.times_at(1_100), [50, 20, 400, 4]);
    }
}
