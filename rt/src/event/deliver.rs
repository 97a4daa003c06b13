//! How events reach the runtime: the upcall (PV event callback, PVH
//! callback vector) or polling; the handler table it runs; blocking the
//! vCPU until an event ([`block`]); the polling wait ([`wait`]); the
//! counters.
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use rt_xen::XenError;
use rt_xen::abi::evtchn::{self, Handlers, Port};
use rt_xen::abi::hypercall;
use spin::Mutex;

use super::bits::{LATCH, Shared, rearm, take, take_into_latch};
use super::error::{EventError, on_xen};
use super::ports;
use crate::xen::HYPERVISOR;

/// Handlers by port (few ports per unikernel: 64 slots).
pub(super) static HANDLERS: Mutex<Handlers<64>> = Mutex::new(Handlers::new());
/// Calls to [`wait`].
static WAITS: AtomicU64 = AtomicU64::new(0);
/// Upcalls taken, calls to [`block`], upcalls that found the handler table busy.
static UPCALLS: AtomicU64 = AtomicU64::new(0);
static IDLES: AtomicU64 = AtomicU64::new(0);
static CONTENDED: AtomicU64 = AtomicU64::new(0);
/// PVH upcalls that interrupted code outside the idle stub: interrupts on
/// where they must not be, or the vector injected while they were off
/// (nested Xen under TCG, very rarely). Should stay (about) 0.
static STRAY: AtomicU64 = AtomicU64::new(0);
/// Where the last of them interrupted: rip and rsp.
static STRAY_AT: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));
/// PVH upcalls that were the vector injected again at the handler's entry
/// (see `hvm_event_vector` in events.S).
static REPEATED: AtomicU64 = AtomicU64::new(0);
/// Channels whose close Xen refused when they were dropped, and the last
/// such port and errno.
static CLOSE_ERRORS: AtomicU64 = AtomicU64::new(0);
static LAST_CLOSE_ERROR: AtomicU64 = AtomicU64::new(0);

/// How events reach the runtime (see [`Delivery`]).
static DELIVERY: AtomicU8 = AtomicU8::new(Delivery::Polling as u8);

/// Which set of ports is current: a restore into a new domain closes every
/// port at once, and a channel opened before it must not close the new
/// port that happens to bear its number.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current set of ports (see `EPOCH`): it changes when the domain is
/// restored into a new one.
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// After a restore into a new domain: every port is gone. Forgets the
/// handlers, the latched events, the named and open ports, and moves to a
/// new epoch (channels opened before become stale: dropping one closes
/// nothing). The caller binds what the runtime needs again and registers
/// the upcall ([`init_upcalls`]) with the new shared_info.
pub(crate) fn reset() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    HANDLERS.lock().clear();
    LATCH.clear();
    ports::reset();
    // A PV restore leaves every port masked; the new domain's ports start
    // unmasked, as at boot.
    for w in 0..64 {
        if let Some(m) = Shared.word(true, w) {
            m.store(0, Ordering::Release);
        }
    }
}

/// How events reach the runtime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Delivery {
    /// No upcalls: `block` polls in short steps.
    Polling = 0,
    /// The PV event callback.
    PvCallback = 1,
    /// The PVH callback vector.
    HvmVector = 2,
    /// PVH, vector registered but the vCPU blocks in `SCHEDOP_poll` on the
    /// open ports (see `HVM_IDLE_WITH_VECTOR`).
    HvmPolled = 3,
}

impl core::fmt::Display for Delivery {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Delivery::Polling => "polling",
            Delivery::PvCallback => "PV event callback",
            Delivery::HvmVector => "PVH callback vector",
            Delivery::HvmPolled => "PVH poll of the open ports",
        })
    }
}

/// How events are delivered now.
pub fn delivery() -> Delivery {
    match DELIVERY.load(Ordering::Acquire) {
        1 => Delivery::PvCallback,
        2 => Delivery::HvmVector,
        3 => Delivery::HvmPolled,
        _ => Delivery::Polling,
    }
}

/// Registers the upcall with Xen (boot code, once shared_info is mapped):
/// PV the event and failsafe callbacks, PVH `HVM_PARAM_CALLBACK_IRQ` as the
/// vector whose IDT gate `arch::idt` set up. Events stay masked until
/// [`block`]. On failure the runtime keeps polling (the caller says why).
pub(crate) fn init_upcalls() -> Result<Delivery, XenError> {
    use crate::platform::Platform;
    let h = &HYPERVISOR;
    let d = match crate::platform::platform() {
        Platform::XenPv | Platform::XenPvDom0 => {
            let v = crate::xen::vcpu0().ok_or(XenError::ENOSYS)?;
            // SAFETY: vcpu_info[0] is inside the mapped shared_info page.
            unsafe { core::ptr::addr_of_mut!((*v).evtchn_upcall_mask).write_volatile(1) };
            // SAFETY: the stubs are the entry points events.S defines for
            // exactly these callback types; both return with HYPERVISOR_iret
            // or never return.
            unsafe {
                hypercall::register_callback(
                    h,
                    rt_xen::abi::CALLBACKTYPE_EVENT,
                    crate::arch::pv_event_callback as *const () as u64,
                    rt_xen::abi::CALLBACKF_MASK_EVENTS,
                )?;
                hypercall::register_callback(
                    h,
                    rt_xen::abi::CALLBACKTYPE_FAILSAFE,
                    crate::arch::pv_failsafe_callback as *const () as u64,
                    rt_xen::abi::CALLBACKF_MASK_EVENTS,
                )?;
            }
            Delivery::PvCallback
        }
        Platform::XenPvh => {
            hypercall::hvm_set_param(
                h,
                rt_xen::abi::HvmParam::CallbackIrq,
                rt_xen::abi::HVM_PARAM_CALLBACK_TYPE_VECTOR
                    | u64::from(crate::arch::idt::EVENT_VECTOR),
            )?;
            if HVM_IDLE_WITH_VECTOR && !IDLE_POLL.load(Ordering::Acquire) {
                Delivery::HvmVector
            } else {
                Delivery::HvmPolled
            }
        }
        _ => return Err(XenError::ENOSYS),
    };
    DELIVERY.store(d as u8, Ordering::Release);
    Ok(d)
}

/// The upcall (events.S), with events masked: runs handlers, latches the
/// rest. Only ever entered from inside an idle stub, so nothing it takes can
/// be held by the code it interrupted; `try_lock` still guards the table.
#[unsafe(no_mangle)]
extern "C" fn rt_event_upcall(from: u64, rip: u64, rsp: u64) {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    match from {
        0 => {}
        1 => {
            REPEATED.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            STRAY.fetch_add(1, Ordering::Relaxed);
            STRAY_AT.0.store(rip, Ordering::Relaxed);
            STRAY_AT.1.store(rsp, Ordering::Relaxed);
        }
    }
    match HANDLERS.try_lock() {
        Some(mut t) => {
            evtchn::deliver(&Shared, &mut *t, &LATCH);
        }
        None => {
            CONTENDED.fetch_add(1, Ordering::Relaxed);
            evtchn::scan(&Shared, |p| LATCH.set(p));
        }
    }
}

/// Counts a close that Xen refused when a channel was dropped.
pub(super) fn count_close_error(port: Port, e: EventError) {
    CLOSE_ERRORS.fetch_add(1, Ordering::Relaxed);
    let errno = match e {
        EventError::Xen(x) => x.0 as u32,
        _ => 0,
    };
    LAST_CLOSE_ERROR.store(
        u64::from(port.0) << 32 | u64::from(errno),
        Ordering::Relaxed,
    );
}

/// Runs the handlers of every pending, unmasked port (their pending bits are
/// cleared first), from ordinary code. Returns the number of events seen.
/// Events of ports without a handler are latched for their owners
/// ([`super::Channel::take_pending`], [`wait`]).
pub fn poll() -> u32 {
    if on_xen().is_err() {
        return 0;
    }
    let mut t = HANDLERS.lock();
    evtchn::deliver(&Shared, &mut *t, &LATCH)
}

/// Whether PVH idles with interrupts enabled (`sti; nop; hlt`, events by
/// the callback vector; the default) or blocks in `SCHEDOP_poll` on every
/// port the runtime has open and delivers from ordinary code (the fallback,
/// kept for hypervisors whose vector delivery misbehaves). The vector path
/// hung under a flood ping until `hvm_event_vector` (events.S) resumed the
/// idle stub itself. PVH guests also triple-faulted now and then, with
/// either idle, always right after a VM exit with interrupts off (an
/// emulated `rdtsc`, then a `VCPUOP_set_singleshot_timer`): a fault of
/// QEMU's emulated SVM that the harness sidesteps by running PVH guests
/// away from the CPU that takes the machine's interrupts (its `GUEST_CPUS`),
/// and that one-shot timers make rarer by never asking Xen for an event
/// due at once (`VCPU_SSHOTTMR_future`, `rt::sched`'s timer).
const HVM_IDLE_WITH_VECTOR: bool = true;

/// `rt.idle=poll` was asked for (kept across restores: [`init_upcalls`]
/// runs again then).
static IDLE_POLL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// `rt.idle=poll` on the command line (boot code, once the command line is
/// recorded): PVH takes the polled idle (`Delivery::HvmPolled`) instead of
/// the vector's, to tell a fault of the `hlt` path from the rest (the
/// unpinned timer storm's hang). Returns the delivery in force.
pub(crate) fn apply_cmdline() -> Delivery {
    let asked = crate::bootinfo::boot_info().cmdline_has("rt.idle=poll");
    IDLE_POLL.store(asked, Ordering::Release);
    if asked && delivery() == Delivery::HvmVector {
        DELIVERY.store(Delivery::HvmPolled as u8, Ordering::Release);
        crate::console::println!("rt: events: PVH idles in SCHEDOP_poll (rt.idle=poll)");
    }
    delivery()
}

/// Most ports the polled PVH idle watches.
const POLLED_PORTS: usize = 40;

/// PVH idle without interrupts: events signalled since the last look are
/// delivered (or latched) at once; otherwise the vCPU blocks in
/// `SCHEDOP_poll` on every open port (Xen wakes a poller on any of its
/// domain's ports when it polls several, and checks the listed ones for
/// pending events before it blocks, so none is missed), or until
/// `deadline_ns`.
fn hvm_poll_idle(deadline_ns: Option<u64>) -> Result<(), EventError> {
    if poll() > 0 {
        return Ok(());
    }
    let mut ports = [Port(0); POLLED_PORTS];
    let mut n = 0;
    for p in ports::all() {
        if n < ports.len() && !ports[..n].contains(&p) {
            ports[n] = p;
            n += 1;
        }
    }
    // A port pending in Xen's bitmap without its selector bit (the polling
    // path took an earlier event) would end SCHEDOP_poll at once, forever:
    // move such events into the latch for their owners first. Events that
    // were latched before are not news and do not end this wait.
    if take_into_latch(&ports[..n]) {
        return Ok(());
    }
    let mut raw = [0u32; POLLED_PORTS];
    for (r, p) in raw.iter_mut().zip(&ports[..n]) {
        *r = p.0;
    }
    hypercall::sched_poll(&HYPERVISOR, &raw[..n], poll_timeout(deadline_ns))?;
    poll();
    take_into_latch(&ports[..n]);
    Ok(())
}

/// Longest step of [`block`] when there are no upcalls.
const POLLING_STEP_NS: u64 = 10_000_000;

/// Blocks the vCPU until an event arrives, with upcalls enabled for exactly
/// the blocked time: handlers run in them, other events are latched for
/// their owners. `timer_armed` says that a one-shot timer will end the
/// block by `deadline_ns` (Xen system time; `None`: no deadline); without
/// one the block polls in steps instead. Callers loop on their own
/// condition: any event ends the wait. `rt::sched::idle` is the way in.
pub(crate) fn block(timer_armed: bool, deadline_ns: Option<u64>) -> Result<(), EventError> {
    on_xen()?;
    IDLES.fetch_add(1, Ordering::Relaxed);
    rearm();
    match delivery() {
        Delivery::PvCallback if timer_armed => {
            let v = crate::xen::vcpu0().ok_or(EventError::NoHypervisor)?;
            // SAFETY: the mask byte is inside the mapped shared_info page;
            // the stub enables events only around SCHEDOP_block and the
            // callback it may take is the one init_upcalls registered.
            let rc = unsafe {
                crate::arch::rt_pv_block(core::ptr::addr_of_mut!((*v).evtchn_upcall_mask))
            };
            XenError::check(rc).map(drop).map_err(Into::into)
        }
        Delivery::HvmVector if timer_armed => {
            // SAFETY: the callback vector's gate is installed (init_upcalls
            // ran) and uses its own IST stack; the stub disables interrupts
            // again before it returns.
            unsafe { crate::arch::rt_hvm_idle() };
            Ok(())
        }
        Delivery::HvmPolled if timer_armed => hvm_poll_idle(deadline_ns),
        _ => {
            // No upcalls (or no timer to end the block): poll in steps.
            let step = crate::xen::system_time_ns().saturating_add(POLLING_STEP_NS);
            let until = deadline_ns.map_or(step, |d| d.min(step));
            wait(&[], Some(until))?;
            poll();
            Ok(())
        }
    }
}

/// Most ports one [`wait`] watches.
pub const WAIT_PORTS: usize = 16;

/// Blocks the vCPU (`SCHEDOP_poll`) until one of `ports` (at most
/// [`WAIT_PORTS`]; more are an error) is pending or Xen system time reaches
/// `deadline_ns` (`None`: no deadline). Pending bits are left for the caller.
/// On bare QEMU it returns at once.
pub fn wait(ports: &[Port], deadline_ns: Option<u64>) -> Result<(), EventError> {
    on_xen()?;
    if ports.len() > WAIT_PORTS {
        return Err(EventError::Xen(XenError::E2BIG));
    }
    if LATCH.any(ports) {
        return Ok(());
    }
    WAITS.fetch_add(1, Ordering::Relaxed);
    let mut raw = [0u32; WAIT_PORTS];
    let n = ports.len();
    for (r, p) in raw.iter_mut().zip(ports) {
        *r = p.0;
    }
    hypercall::sched_poll(&HYPERVISOR, &raw[..n], poll_timeout(deadline_ns)).map_err(Into::into)
}

/// `SCHEDOP_poll`'s timeout for a deadline of the runtime's clock: Xen's
/// time then (see `xen::xen_time`), 0 for none — and never 0 for a real
/// deadline, which would mean none.
fn poll_timeout(deadline_ns: Option<u64>) -> u64 {
    deadline_ns.map_or(0, |d| crate::xen::xen_time(d).max(1))
}

/// Waits until `port` is signalled or `timeout_ns` passes, then takes its
/// event. Upcalls stay masked: this is the polling path (`SCHEDOP_poll`); an
/// event an upcall latched earlier ends it at once.
pub fn wait_port(port: Port, timeout_ns: u64) {
    let deadline = crate::xen::system_time_ns().saturating_add(timeout_ns);
    if wait(&[port], Some(deadline)).is_err() {
        // No shared_info yet, or polling refused (bad port): give the CPU
        // away instead; callers bound their waits.
        crate::xen::yield_cpu();
    }
    take(port);
}

/// Clears `port`'s event (latched or pending), e.g. after waiting on it.
pub fn clear_pending(port: Port) {
    take(port);
}

/// Event-channel counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventStats {
    /// Events handed to handlers by delivery.
    pub delivered: u64,
    /// Events delivery found on ports without a handler.
    pub unhandled: u64,
    /// Blocking waits in `SCHEDOP_poll` ([`wait`], backend waits).
    pub waits: u64,
    /// Blocks with upcalls enabled (`block`: sleeps, console input).
    pub idles: u64,
    /// Upcalls taken.
    pub upcalls: u64,
    /// Upcalls that came outside the idle stub (a defect if not 0).
    pub stray: u64,
    /// The rip and rsp the last of them interrupted.
    pub stray_at: (u64, u64),
    /// PVH: the vector injected again at its handler's entry (nested Xen).
    pub repeated: u64,
    /// Events latched for their owners and not yet taken.
    pub latched: u32,
    /// Ports with a handler.
    pub handlers: u32,
    /// Ports the runtime has open (its own and its channels').
    pub open: u32,
    /// Channels whose close Xen refused when they were dropped, and the
    /// last one's (port, errno).
    pub close_errors: u64,
    /// See `close_errors`.
    pub last_close_error: (u32, u32),
    /// How events are delivered.
    pub delivery: Delivery,
}

/// The counters.
pub fn stats() -> EventStats {
    let t = HANDLERS.lock();
    let last = LAST_CLOSE_ERROR.load(Ordering::Relaxed);
    EventStats {
        delivered: t.delivered,
        unhandled: t.unhandled,
        waits: WAITS.load(Ordering::Relaxed),
        idles: IDLES.load(Ordering::Relaxed),
        upcalls: UPCALLS.load(Ordering::Relaxed),
        stray: STRAY.load(Ordering::Relaxed),
        stray_at: (
            STRAY_AT.0.load(Ordering::Relaxed),
            STRAY_AT.1.load(Ordering::Relaxed),
        ),
        repeated: REPEATED.load(Ordering::Relaxed),
        latched: LATCH.ports().count() as u32,
        handlers: t.ports().count() as u32,
        open: ports::all().count() as u32,
        close_errors: CLOSE_ERRORS.load(Ordering::Relaxed),
        last_close_error: ((last >> 32) as u32, last as u32),
        delivery: delivery(),
    }
}
