//! Suspending the domain for `xl save`, `xl save -c` and `xl migrate`, and
//! coming back: in the same domain (the suspend was cancelled — a
//! checkpoint, or a save that failed: everything carries on) or in a new one
//! (restored, or migrated: every port, grant and backend is gone).
//!
//! May import: `dev`, `grant`, `xenstore`, `console`, `mm`, `sched`,
//! `event`, `xen`, `platform`. `control` runs it when the toolstack asks.
//!
//! ```text
//! free frames given back to Xen (the saver copies what the domain holds:
//!     a smaller save file, a shorter save and final migration round)
//! devices stop using their rings ─ timer stopped ─ console drained
//! PV: grant frames and shared_info unmapped (the saver refuses mappings
//!     of frames that are not the domain's); start_info's xenstore and
//!     console frames written as pfns (the restorer reads them so, and
//!     writes the new domain's MFNs)
//! SCHEDOP_shutdown(SHUTDOWN_suspend [, start_info MFN on PV])
//!   ├─ cancelled (1): map them again, start_info's MFNs back; devices
//!   │    carry on
//!   └─ new domain (0): map shared_info (PV: its new MFN from start_info;
//!        PVH: place it again), time goes on from where it was, every port
//!        forgotten and the upcall registered again, console and xenstore
//!        on their new ports (watches set again), PV: the p2m's frame list
//!        written anew (every MFN changed), grant frames again, devices
//!        connect to their new backends
//! both: the memory given back is taken again (a domain the toolstack had
//!     ballooned down stays down), devices carry on or reconnect
//! ```
//!
//! Invariant: between the first step and the last nothing prints — the
//! console's channel may be gone — and every step that fails before the
//! hypercall is undone, so a failed suspend leaves the domain as it was.
use core::ptr::addr_of;

use rt_xen::XenError;
use rt_xen::abi::HvmParam;
use rt_xen::abi::hypercall::{self, SuspendReturn};

use crate::dev::Resumed;
use crate::grant::GrantError;
use crate::platform::Platform;
use crate::xen::HYPERVISOR;

/// Why the domain could not be suspended (it goes on as before), or came
/// back without something it needs.
#[derive(Debug)]
pub enum SuspendError {
    /// Not on Xen, or not a guest that can be saved (dom0).
    Unsupported,
    /// PV: start_info's frame is unknown.
    NoStartInfo,
    /// The grant table's frames could not be unmapped or mapped again.
    Grant(GrantError),
    /// shared_info could not be unmapped or mapped again.
    SharedInfo(XenError),
    /// Xen refused to suspend the domain.
    Refused(XenError),
    /// Back in a new domain, a port could not be read.
    Ports(XenError),
}

impl core::fmt::Display for SuspendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SuspendError::Unsupported => f.write_str("this domain cannot be suspended"),
            SuspendError::NoStartInfo => f.write_str("start_info's frame is unknown"),
            SuspendError::Grant(e) => write!(f, "grant table: {e}"),
            SuspendError::SharedInfo(e) => write!(f, "shared_info: {e}"),
            SuspendError::Refused(e) => write!(f, "Xen refused to suspend: {e}"),
            SuspendError::Ports(e) => write!(f, "reading the new ports: {e}"),
        }
    }
}

/// Where a suspend's time went, on the guest's side (the rest of a save's
/// or migration's pause is the toolstack's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// From the request to the hypercall: shedding, devices, timer, console.
    pub(crate) quiesce_us: u64,
    /// From the hypercall's return until every device carried on or
    /// reconnected (the vif's handshake with its new backend included).
    pub(crate) back_us: u64,
    /// Free pages handed to Xen for the suspend.
    pub(crate) shed_pages: u64,
    /// Why fewer free pages went than there were (the save is larger).
    pub(crate) shed_stopped: Option<crate::mm::BalloonError>,
}

/// Microseconds between two TSC readings of one domain.
fn us_between(from: u64, to: u64) -> u64 {
    crate::time::tsc_delta_to_duration(to.saturating_sub(from)).map_or(0, |d| d.as_micros() as u64)
}

/// Suspends the domain and brings it back; says how it came back and how
/// long the guest's own steps took. On an error before the hypercall
/// nothing changed; after it, the domain runs but may lack what the error
/// names.
pub(crate) fn suspend() -> Result<(Resumed, Timing), SuspendError> {
    let t0 = crate::time::cycles();
    let pv = match crate::platform::platform() {
        Platform::XenPv => true,
        Platform::XenPvh => false,
        _ => return Err(SuspendError::Unsupported),
    };
    let start_info_mfn = if pv {
        let si = crate::xen::start_info_ptr().ok_or(SuspendError::NoStartInfo)?;
        let pfn = crate::mm::Pfn(si as u64 >> 12);
        Some(crate::mm::xen_frame(pfn).ok_or(SuspendError::NoStartInfo)?)
    } else {
        None
    };

    let given = shed();
    let shed_pages = given.shed.pages();
    let shed_stopped = given.shed.stopped();
    crate::dev::for_each(|d| d.suspend());
    // A timer still armed would fire into the old domain; if Xen refuses to
    // stop it, the next wait arms it again anyway.
    let _ = crate::sched::stop_timer();
    let last = crate::xen::system_time_ns();
    crate::console::flush();
    if pv {
        if let Err(e) = crate::grant::suspend() {
            return Err(undo(given, SuspendError::Grant(e)));
        }
        if let Err(e) = crate::xen::unmap_shared_info_pv() {
            // Best effort: the grant frames go back where they were.
            let _ = crate::grant::resume(false);
            return Err(undo(given, SuspendError::SharedInfo(e)));
        }
        rings_in_start_info(|mfn| crate::mm::pfn_of_frame(mfn).map(|p| p.0));
    }

    let t1 = crate::time::cycles();
    let how = match hypercall::suspend(&HYPERVISOR, start_info_mfn) {
        Ok(SuspendReturn::NewDomain) => Resumed::NewDomain,
        Ok(SuspendReturn::Cancelled) => Resumed::Cancelled,
        // Refused: the domain goes on as if cancelled, and says why below.
        Err(e) => {
            come_back(pv, Resumed::Cancelled, last, given)?;
            return Err(SuspendError::Refused(e));
        }
    };
    // The TSC may differ in a new domain (another host): read it again.
    let t2 = crate::time::cycles();
    come_back(pv, how, last, given)?;
    let timing = Timing {
        quiesce_us: us_between(t0, t1),
        back_us: us_between(t2, crate::time::cycles()),
        shed_pages,
        shed_stopped,
    };
    Ok((how, timing))
}

/// A suspend that failed before the hypercall: devices carry on, the
/// memory comes back; returns `e`.
fn undo(given: Given, e: SuspendError) -> SuspendError {
    crate::dev::for_each(|d| d.resume(Resumed::Cancelled));
    regrow(given);
    e
}

/// Free frames kept when the rest go back to Xen before a suspend: what
/// the steps after it take before the memory comes back.
const KEEP_FREE_PAGES: u64 = 64;

/// What [`shed`] gave back, and the reservation it left.
struct Given {
    shed: crate::mm::Shed,
    /// The domain's pages once they were given (`None`: unknown).
    left: Option<u64>,
}

/// Gives the domain's free frames back to Xen. (The heap keeps its mapped
/// free space: trimming it here made the heap creep up by two pages per
/// migration — the pages a resume allocates land above the trimmed top.)
fn shed() -> Given {
    let shed = crate::mm::shed(KEEP_FREE_PAGES);
    let left = crate::mm::reservation().ok().map(|r| r.current_pages);
    Given { shed, left }
}

/// Takes back what [`shed`] gave; says so if Xen has fewer to give (the
/// domain runs on with less free memory). In a new domain the pages may be
/// there already: a live migration copies them before the domain gives
/// them at its suspend, and the restorer keeps every page it populated —
/// the reservation then holds them again (PV also finds them in the p2m).
fn regrow(given: Given) {
    let pages = given.shed.pages();
    if pages == 0 {
        return;
    }
    let now = crate::mm::reservation().ok().map(|r| r.current_pages);
    let held = matches!((now, given.left), (Some(n), Some(l)) if n >= l + pages / 2);
    if let Err(e) = crate::mm::unshed(given.shed, held) {
        crate::console::println!(
            "rt: after resume the {pages} free pages handed in before did not all come back ({e}): running with less"
        );
    }
}

/// Everything after the hypercall (see the module doc).
fn come_back(pv: bool, how: Resumed, last: u64, given: Given) -> Result<(), SuspendError> {
    let new = how == Resumed::NewDomain;
    if pv && !new {
        // The restorer writes the new MFNs; cancelled, they are ours again.
        rings_in_start_info(|pfn| crate::mm::xen_frame(crate::mm::Pfn(pfn)));
    }
    if pv {
        let si = crate::xen::start_info_ptr().ok_or(SuspendError::NoStartInfo)?;
        // SAFETY: start_info is the domain's own page, mapped for the whole
        // run; the toolstack rewrote it while the domain was suspended.
        let ma = unsafe { addr_of!((*si).shared_info).read_volatile() };
        crate::xen::map_shared_info_pv(ma).map_err(SuspendError::SharedInfo)?;
    } else if new {
        crate::xen::map_shared_info_pvh().map_err(SuspendError::SharedInfo)?;
    }
    if new {
        let clock = crate::xen::settle_clock();
        crate::xen::keep_time_from(last);
        crate::event::reset();
        // The runstate area was the old domain's vCPU's: registered again.
        let runstate = crate::xen::runstate::register();
        let (console, store) = new_ports(pv)?;
        crate::console::resume(console);
        if let Err(e) = runstate {
            crate::console::println!(
                "rt: Xen refused the runstate area after resume: {e} (stolen time reads 0)"
            );
        }
        if !clock {
            crate::console::println!(
                "rt: Xen wrote no time record after resume: the clock may stand still"
            );
        }
        if let Err(e) = crate::event::init_upcalls() {
            crate::console::println!(
                "rt: event upcalls unavailable after resume ({e}): events are polled"
            );
        }
        if let Err(e) = crate::xenstore::resume(store) {
            crate::console::println!("rt: xenstore after resume: {e}");
        }
        if pv && let Err(e) = crate::mm::republish_p2m() {
            crate::console::println!(
                "rt: publishing the p2m after resume failed: {e} (the next save will fail)"
            );
        }
    }
    crate::grant::resume(new).map_err(SuspendError::Grant)?;
    crate::sched::timer_lost();
    regrow(given);
    crate::dev::for_each(|d| d.resume(how));
    Ok(())
}

/// Back in a new domain: the console's and xenstore's ports (PV: from
/// start_info, rewritten by the toolstack; PVH: from the HVM params).
fn new_ports(pv: bool) -> Result<(u32, u32), SuspendError> {
    if pv {
        let si = crate::xen::start_info_ptr().ok_or(SuspendError::NoStartInfo)?;
        // SAFETY: as in `come_back`; plain integer fields of the page.
        let ports = unsafe {
            (
                addr_of!((*si).console.domU.evtchn).read_volatile(),
                addr_of!((*si).store_evtchn).read_volatile(),
            )
        };
        return Ok(ports);
    }
    let param = |p| {
        hypercall::hvm_get_param(&HYPERVISOR, p)
            .and_then(|v| u32::try_from(v).map_err(|_| XenError::ERANGE))
            .map_err(SuspendError::Ports)
    };
    Ok((
        param(HvmParam::ConsoleEvtchn)?,
        param(HvmParam::StoreEvtchn)?,
    ))
}

/// PV: rewrites start_info's frames of the xenstore and console rings with
/// `f` (MFN to pfn before suspending, as the restorer expects them; pfn to
/// MFN when the suspend was cancelled). A frame `f` does not know is left.
fn rings_in_start_info(f: impl Fn(u64) -> Option<u64>) {
    let Some(si) = crate::xen::start_info_ptr() else {
        return;
    };
    let si = si.cast_mut();
    // SAFETY: start_info is the domain's own page, mapped read-write for the
    // whole run; Xen and the toolstack touch it only while the domain is
    // suspended.
    unsafe {
        for p in [
            core::ptr::addr_of_mut!((*si).store_mfn),
            core::ptr::addr_of_mut!((*si).console.domU.mfn),
        ] {
            if let Some(v) = f(p.read_volatile()) {
                p.write_volatile(v);
            }
        }
    }
}
