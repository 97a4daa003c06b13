//! Event channels for apps and drivers: owning channels (bind a VIRQ, allocate
//! an unbound port, bind to another domain's port), send, mask and unmask,
//! handlers registered by port, upcall delivery, and the polling path.
//!
//! Delivery: Xen enters the runtime through the PV event callback or the PVH
//! callback vector (`events.S`), which runs the handlers of the pending ports
//! and latches the events of ports without one for their owners
//! ([`Channel::take_pending`], [`wait`]). To obey the red-zone rule of the
//! design (the precompiled `core` keeps data below rsp), upcalls are enabled
//! only inside [`idle`], in out-of-line stubs: PV `SCHEDOP_block` (which
//! unmasks atomically), PVH `sti; nop; hlt` with the vector on its own IST
//! stack (an event that arrives just before the hlt makes it skip the hlt).
//! Everywhere else events stay masked (PV `evtchn_upcall_mask`, PVH IF=0).
//!
//! The polling path: [`poll`] runs the same delivery from ordinary code, and
//! [`wait`] blocks in `SCHEDOP_poll` until one of the given ports fires.
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use rt_xen::XenError;
use rt_xen::abi::evtchn::{self, EventBits, Handler, HandlerError, Handlers, Latch};
pub use rt_xen::abi::evtchn::{NR_PORTS, Port, VIRQ_TIMER};
use spin::Mutex;

use crate::xen::HYPERVISOR;

/// Handlers by port (few ports per unikernel: 64 slots).
static HANDLERS: Mutex<Handlers<64>> = Mutex::new(Handlers::new());
/// Events taken from Xen's bitmaps for ports without a handler.
static LATCH: Latch = Latch::new();
/// Calls to [`wait`].
static WAITS: AtomicU64 = AtomicU64::new(0);
/// Upcalls taken, calls to [`idle`], upcalls that found the handler table busy.
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

/// How events reach the runtime (see [`Delivery`]).
static DELIVERY: AtomicU8 = AtomicU8::new(Delivery::Polling as u8);

/// How events reach the runtime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Delivery {
    /// No upcalls: [`idle`] polls in short steps.
    Polling = 0,
    /// The PV event callback.
    PvCallback = 1,
    /// The PVH callback vector.
    HvmVector = 2,
    /// PVH, vector registered but idle blocks in `SCHEDOP_poll` on the
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
/// vector whose IDT gate `arch::idt` set up. Events stay masked until [`idle`].
/// On failure the runtime keeps polling (and says why).
pub(crate) fn init_upcalls() -> Result<Delivery, XenError> {
    use crate::platform::Platform;
    let h = &HYPERVISOR;
    let d = match crate::platform() {
        Platform::XenPv | Platform::XenPvDom0 => {
            let v = crate::xen::vcpu0().ok_or(XenError::ENOSYS)?;
            // SAFETY: vcpu_info[0] is inside the mapped shared_info page.
            unsafe { core::ptr::addr_of_mut!((*v).evtchn_upcall_mask).write_volatile(1) };
            // SAFETY: the stubs are the entry points events.S defines for
            // exactly these callback types; both return with HYPERVISOR_iret
            // or never return.
            unsafe {
                rt_xen::abi::hypercall::register_callback(
                    h,
                    rt_xen::abi::CALLBACKTYPE_EVENT,
                    crate::arch::pv_event_callback as *const () as u64,
                    rt_xen::abi::CALLBACKF_MASK_EVENTS,
                )?;
                rt_xen::abi::hypercall::register_callback(
                    h,
                    rt_xen::abi::CALLBACKTYPE_FAILSAFE,
                    crate::arch::pv_failsafe_callback as *const () as u64,
                    rt_xen::abi::CALLBACKF_MASK_EVENTS,
                )?;
            }
            Delivery::PvCallback
        }
        Platform::XenPvh => {
            rt_xen::abi::hypercall::hvm_set_param(
                h,
                rt_xen::abi::HvmParam::CallbackIrq,
                rt_xen::abi::HVM_PARAM_CALLBACK_TYPE_VECTOR
                    | u64::from(crate::arch::idt::EVENT_VECTOR),
            )?;
            if HVM_IDLE_WITH_VECTOR {
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

/// The PV failsafe callback (events.S): Xen could not return to the guest.
#[unsafe(no_mangle)]
extern "C" fn rt_failsafe(frame: &[u64; 11]) -> ! {
    crate::console::print_fatal(format_args!(
        "\nrt: Xen could not return to the guest (failsafe callback): rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} ss={:#x} ds={:#x} es={:#x} fs={:#x} gs={:#x}\n",
        frame[6], frame[7], frame[8], frame[9], frame[10], frame[2], frame[3], frame[4], frame[5]
    ));
    crate::exit::crash()
}

/// The bitmaps in the mapped shared_info page and vCPU 0's selector.
struct Shared;

impl Shared {
    fn word(&self, mask: bool, w: usize) -> Option<&'static AtomicU64> {
        let s = crate::xen::shared_info()?;
        if w >= 64 {
            return None;
        }
        // SAFETY: the word is inside the mapped shared_info page, which lives
        // for the rest of the run; Xen and we only update it atomically.
        unsafe {
            let p = if mask {
                core::ptr::addr_of!((*s).evtchn_mask[w])
            } else {
                core::ptr::addr_of!((*s).evtchn_pending[w])
            };
            Some(&*(p as *const AtomicU64))
        }
    }
}

impl EventBits for Shared {
    fn take_selector(&self) -> u64 {
        let Some(v) = crate::xen::vcpu0() else {
            return 0;
        };
        // SAFETY: vcpu_info[0] is inside the mapped shared_info page; the
        // selector is only changed atomically (Xen sets bits, we take them).
        let sel = unsafe { &*(core::ptr::addr_of!((*v).evtchn_pending_sel) as *const AtomicU64) };
        // SAFETY: as above; the flag is a byte Xen sets and we clear.
        unsafe { core::ptr::addr_of_mut!((*v).evtchn_upcall_pending).write_volatile(0) };
        sel.swap(0, Ordering::AcqRel)
    }
    fn pending(&self, w: usize) -> u64 {
        self.word(false, w).map_or(0, |a| a.load(Ordering::Acquire))
    }
    fn masked(&self, w: usize) -> u64 {
        self.word(true, w).map_or(!0, |a| a.load(Ordering::Acquire))
    }
    fn clear_pending(&self, w: usize, bits: u64) {
        if let Some(a) = self.word(false, w) {
            a.fetch_and(!bits, Ordering::AcqRel);
        }
    }
}

/// Why a channel operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventError {
    /// Not on Xen (bare QEMU): there are no event channels.
    NoHypervisor,
    /// Xen refused the operation.
    Xen(XenError),
    /// The handler table refused.
    Handler(HandlerError),
}

impl core::fmt::Display for EventError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EventError::NoHypervisor => f.write_str("not running on Xen"),
            EventError::Xen(e) => write!(f, "{e}"),
            EventError::Handler(e) => write!(f, "{e}"),
        }
    }
}

impl From<XenError> for EventError {
    fn from(e: XenError) -> Self {
        EventError::Xen(e)
    }
}

fn on_xen() -> Result<(), EventError> {
    if crate::platform().is_xen() && crate::xen::shared_info().is_some() {
        Ok(())
    } else {
        Err(EventError::NoHypervisor)
    }
}

/// An event channel this domain owns: closed (and its handler removed) on drop.
#[derive(Debug)]
pub struct Channel {
    port: Port,
}

/// Ports of the open [`Channel`]s (0: free slot), for PVH's idle poll.
static OPEN: Mutex<[u32; 32]> = Mutex::new([0; 32]);

impl Channel {
    fn track(port: Port) -> Channel {
        let mut open = OPEN.lock();
        if let Some(slot) = open.iter_mut().find(|p| **p == 0) {
            *slot = port.0;
        }
        Channel { port }
    }

    /// Binds virtual IRQ `virq` on vCPU 0.
    pub fn bind_virq(virq: u32) -> Result<Channel, EventError> {
        on_xen()?;
        Ok(Channel::track(evtchn::bind_virq(&HYPERVISOR, virq, 0)?))
    }

    /// A port domain `remote` may bind to (a backend connects to it).
    pub fn alloc_unbound(remote: u16) -> Result<Channel, EventError> {
        on_xen()?;
        Ok(Channel::track(evtchn::alloc_unbound(&HYPERVISOR, remote)?))
    }

    /// A port connected to `remote_port` of domain `remote`.
    pub fn bind_interdomain(remote: u16, remote_port: u32) -> Result<Channel, EventError> {
        on_xen()?;
        Ok(Channel::track(evtchn::bind_interdomain(
            &HYPERVISOR,
            remote,
            remote_port,
        )?))
    }

    /// The local port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Signals the other end (`EVTCHNOP_send`).
    pub fn notify(&self) -> Result<(), EventError> {
        rt_xen::abi::hypercall::evtchn_send(&HYPERVISOR, self.port.0).map_err(Into::into)
    }

    /// Masks the port: it can still become pending, but [`poll`] skips it.
    pub fn mask(&self) {
        let (w, b) = ((self.port.0 / 64) as usize, self.port.0 % 64);
        if let Some(a) = Shared.word(true, w) {
            a.fetch_or(1 << b, Ordering::AcqRel);
        }
    }

    /// Unmasks the port (through Xen, which re-raises it if it is pending).
    pub fn unmask(&self) -> Result<(), EventError> {
        evtchn::unmask(&HYPERVISOR, self.port).map_err(Into::into)
    }

    /// Runs `h` for each event on this port that [`poll`] finds.
    pub fn on_event(&self, h: Handler) -> Result<(), EventError> {
        HANDLERS
            .lock()
            .register(self.port, h)
            .map_err(EventError::Handler)
    }

    /// Takes the port's event: true if one arrived since the last look
    /// (latched by an upcall, or still pending in Xen's bitmap).
    pub fn take_pending(&self) -> bool {
        take(self.port)
    }

    /// Blocks until an event arrives on this port or Xen system time reaches
    /// `deadline_ns` (`None`: no deadline). True if the event arrived.
    pub fn wait(&self, deadline_ns: Option<u64>) -> Result<bool, EventError> {
        wait(&[self.port], deadline_ns)?;
        Ok(self.take_pending())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if let Some(slot) = OPEN.lock().iter_mut().find(|p| **p == self.port.0) {
            *slot = 0;
        }
        HANDLERS.lock().unregister(self.port);
        if let Err(e) = evtchn::close(&HYPERVISOR, self.port) {
            crate::println!("rt: closing event {} failed: {e}", self.port);
        }
    }
}

/// Takes `port`'s event from the latch and from Xen's bitmap (both, so a
/// stale bit cannot wake the next wait): true if there was one.
fn take(port: Port) -> bool {
    let latched = LATCH.take(port);
    evtchn::take_pending(&Shared, port) | latched
}

/// Runs the handlers of every pending, unmasked port (their pending bits are
/// cleared first), from ordinary code. Returns the number of events seen.
/// Events of ports without a handler are latched for their owners
/// ([`Channel::take_pending`], [`wait`]).
pub fn poll() -> u32 {
    if on_xen().is_err() {
        return 0;
    }
    let mut t = HANDLERS.lock();
    evtchn::deliver(&Shared, &mut *t, &LATCH)
}

/// Makes sure the next event wakes the vCPU. Xen raises the upcall only
/// when it sets a word's selector bit afresh; the polling path
/// ([`Channel::take_pending`], [`wait`]) takes pending bits but leaves the
/// selector to the upcall, so a selector bit can be left set with nothing
/// pending under it — and then the next event in that word would not wake a
/// blocked vCPU. If any selector bit is set, `evtchn_upcall_pending` is set
/// too: the block ends at once in an upcall whose scan takes the selector.
fn rearm() {
    let Some(v) = crate::xen::vcpu0() else {
        return;
    };
    // SAFETY: vcpu_info[0] is inside the mapped shared_info page; the
    // selector is only changed atomically, the flag is a byte we may set.
    unsafe {
        let sel = &*(core::ptr::addr_of!((*v).evtchn_pending_sel) as *const AtomicU64);
        if sel.load(Ordering::Acquire) != 0 {
            core::ptr::addr_of_mut!((*v).evtchn_upcall_pending).write_volatile(1);
        }
    }
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
/// due at once (`VCPU_SSHOTTMR_future`, [`crate::time::arm_timer`]).
const HVM_IDLE_WITH_VECTOR: bool = true;

/// PVH idle without interrupts: events signalled since the last look are
/// delivered (or latched) at once; otherwise the vCPU blocks in `SCHEDOP_poll` on every open port
/// (Xen wakes a poller on any of its domain's ports when it polls several,
/// and checks the listed ones for pending events before it blocks, so none
/// is missed), or until `deadline`.
fn hvm_poll_idle(deadline: Option<crate::time::Instant>) -> Result<(), EventError> {
    if poll() > 0 {
        return Ok(());
    }
    let mut ports = [Port(0); 40];
    let mut n = 0;
    let named = [
        crate::console::port(),
        crate::xenstore::port(),
        crate::time::timer_port(),
    ];
    let open = *OPEN.lock();
    for p in named
        .into_iter()
        .flatten()
        .chain(open.iter().filter(|&&p| p != 0).map(|&p| Port(p)))
    {
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
    let mut raw = [0u32; 40];
    for (r, p) in raw.iter_mut().zip(&ports[..n]) {
        *r = p.0;
    }
    rt_xen::abi::hypercall::sched_poll(
        &HYPERVISOR,
        &raw[..n],
        deadline.map_or(0, |d| d.as_nanos()),
    )?;
    poll();
    take_into_latch(&ports[..n]);
    Ok(())
}

/// Moves the Xen-pending events of `ports` into the latch; true if any.
fn take_into_latch(ports: &[Port]) -> bool {
    let mut any = false;
    for &p in ports {
        if evtchn::take_pending(&Shared, p) {
            LATCH.set(p);
            any = true;
        }
    }
    any
}

/// Longest step of [`idle`] when there are no upcalls.
const POLLING_STEP_NS: u64 = 10_000_000;

/// Blocks the vCPU until an event arrives or Xen system time reaches
/// `deadline` (`None`: until an event). Upcalls are enabled for exactly the
/// blocked time: handlers run in them, other events are latched for their
/// owners. First it serves the toolstack's requests (`xl shutdown`,
/// `xl mem-set`: [`crate::control`]). Callers loop on their own condition:
/// any event ends the wait. On bare QEMU it returns at once.
pub fn idle(deadline: Option<crate::time::Instant>) -> Result<(), EventError> {
    on_xen()?;
    crate::control::service();
    if crate::xenstore::unread() {
        // A watch event arrived while the service talked to xenstored, and
        // its wait took the port's event: blocking now could miss it.
        return Ok(());
    }
    let armed = match deadline.map(crate::time::arm_timer) {
        None | Some(crate::time::Armed::Yes) => true,
        // The deadline is here: the caller's loop looks at its condition.
        Some(crate::time::Armed::Passed) => return Ok(()),
        Some(crate::time::Armed::No) => false,
    };
    IDLES.fetch_add(1, Ordering::Relaxed);
    rearm();
    match delivery() {
        Delivery::PvCallback if armed => {
            let v = crate::xen::vcpu0().ok_or(EventError::NoHypervisor)?;
            // SAFETY: the mask byte is inside the mapped shared_info page;
            // the stub enables events only around SCHEDOP_block and the
            // callback it may take is the one init_upcalls registered.
            let rc = unsafe {
                crate::arch::rt_pv_block(core::ptr::addr_of_mut!((*v).evtchn_upcall_mask))
            };
            XenError::check(rc).map(drop).map_err(Into::into)
        }
        Delivery::HvmVector if armed => {
            // SAFETY: the callback vector's gate is installed (init_upcalls
            // ran) and uses its own IST stack; the stub disables interrupts
            // again before it returns.
            unsafe { crate::arch::rt_hvm_idle() };
            Ok(())
        }
        Delivery::HvmPolled if armed => hvm_poll_idle(deadline),
        _ => {
            // No upcalls (or no timer to end the block): poll in steps.
            let step = crate::xen::system_time_ns().saturating_add(POLLING_STEP_NS);
            let until = deadline.map_or(step, |d| d.as_nanos().min(step));
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
    rt_xen::abi::hypercall::sched_poll(&HYPERVISOR, &raw[..n], deadline_ns.unwrap_or(0))
        .map_err(Into::into)
}

/// Clears `port`'s event (latched or pending), e.g. after waiting on it.
pub fn clear_pending(port: Port) {
    take(port);
}

/// Event-channel counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventStats {
    /// Events handed to handlers by [`poll`].
    pub delivered: u64,
    /// Events [`poll`] found on ports without a handler.
    pub unhandled: u64,
    /// Blocking waits in `SCHEDOP_poll` ([`wait`], backend waits).
    pub waits: u64,
    /// Blocks with upcalls enabled ([`idle`]: sleeps, console input).
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
    /// How events are delivered.
    pub delivery: Delivery,
}

/// The counters.
pub fn stats() -> EventStats {
    let t = HANDLERS.lock();
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
        delivery: delivery(),
    }
}

/// Whether `port` has an event waiting (pending in Xen's bitmap or latched)
/// and whether it is masked (for diagnostics).
pub fn port_state(port: Port) -> (bool, bool) {
    let (w, b) = ((port.0 / 64) as usize, port.0 % 64);
    (
        Shared.pending(w) & (1 << b) != 0 || LATCH.any(&[port]),
        Shared.masked(w) & (1 << b) != 0,
    )
}

/// The ports the runtime uses, named (console, xenstore, timer), then the
/// other ports with a handler (for the shell's `evtchn`).
pub fn known_ports() -> alloc::vec::Vec<(&'static str, Port)> {
    let mut v = alloc::vec::Vec::new();
    let named = [
        ("console", crate::console::port()),
        ("xenstore", crate::xenstore::port()),
        ("timer (VIRQ_TIMER)", crate::time::timer_port()),
    ];
    for (what, p) in named {
        if let Some(p) = p {
            v.push((what, p));
        }
    }
    for p in HANDLERS.lock().ports() {
        if !v.iter().any(|&(_, q)| q == p) {
            v.push(("handler", p));
        }
    }
    v
}
