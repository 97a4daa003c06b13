//! Event channels for apps and drivers: owning channels (bind a VIRQ, allocate
//! an unbound port, bind to another domain's port), send, mask and unmask,
//! handlers registered by port, and the polling path.
//!
//! Delivery here is by polling: [`poll`] scans the 2-level bitmaps in
//! shared_info and runs the handlers of the pending ports, and [`wait`] blocks
//! the vCPU in `SCHEDOP_poll` until one of the given ports fires or a deadline
//! passes. Upcalls stay masked, so nothing ever interrupts code mid-function
//! (the red-zone rule of the design: the precompiled `core` uses one).
use core::sync::atomic::{AtomicU64, Ordering};

use rt_xen::XenError;
use rt_xen::evtchn::{self, EventBits, Handler, HandlerError, Handlers};
pub use rt_xen::evtchn::{NR_PORTS, Port, VIRQ_TIMER};
use spin::Mutex;

use crate::xen::HYPERVISOR;

/// Handlers by port (few ports per unikernel: 64 slots).
static HANDLERS: Mutex<Handlers<64>> = Mutex::new(Handlers::new());
/// Calls to [`wait`].
static WAITS: AtomicU64 = AtomicU64::new(0);

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

impl Channel {
    /// Binds virtual IRQ `virq` on vCPU 0.
    pub fn bind_virq(virq: u32) -> Result<Channel, EventError> {
        on_xen()?;
        Ok(Channel {
            port: evtchn::bind_virq(&HYPERVISOR, virq, 0)?,
        })
    }

    /// A port domain `remote` may bind to (a backend connects to it).
    pub fn alloc_unbound(remote: u16) -> Result<Channel, EventError> {
        on_xen()?;
        Ok(Channel {
            port: evtchn::alloc_unbound(&HYPERVISOR, remote)?,
        })
    }

    /// A port connected to `remote_port` of domain `remote`.
    pub fn bind_interdomain(remote: u16, remote_port: u32) -> Result<Channel, EventError> {
        on_xen()?;
        Ok(Channel {
            port: evtchn::bind_interdomain(&HYPERVISOR, remote, remote_port)?,
        })
    }

    /// The local port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Signals the other end (`EVTCHNOP_send`).
    pub fn notify(&self) -> Result<(), EventError> {
        rt_xen::hypercall::evtchn_send(&HYPERVISOR, self.port.0).map_err(Into::into)
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

    /// Takes the port's pending bit: true if an event arrived since the last look.
    pub fn take_pending(&self) -> bool {
        evtchn::take_pending(&Shared, self.port)
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
        HANDLERS.lock().unregister(self.port);
        if let Err(e) = evtchn::close(&HYPERVISOR, self.port) {
            crate::println!("rt: closing event {} failed: {e}", self.port);
        }
    }
}

/// Runs the handlers of every pending, unmasked port (their pending bits are
/// cleared first). Returns the number of events seen. Ports without a handler
/// are counted as unhandled and stay cleared: their owners use
/// [`Channel::take_pending`] or [`Channel::wait`] instead.
pub fn poll() -> u32 {
    if on_xen().is_err() {
        return 0;
    }
    let mut t = HANDLERS.lock();
    evtchn::scan(&Shared, |p| t.dispatch(p))
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
    WAITS.fetch_add(1, Ordering::Relaxed);
    let mut raw = [0u32; WAIT_PORTS];
    let n = ports.len();
    for (r, p) in raw.iter_mut().zip(ports) {
        *r = p.0;
    }
    rt_xen::hypercall::sched_poll(&HYPERVISOR, &raw[..n], deadline_ns.unwrap_or(0))
        .map_err(Into::into)
}

/// Clears `port`'s pending bit (after waiting on it).
pub fn clear_pending(port: Port) {
    evtchn::take_pending(&Shared, port);
}

/// Event-channel counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EventStats {
    /// Events handed to handlers by [`poll`].
    pub delivered: u64,
    /// Events [`poll`] found on ports without a handler.
    pub unhandled: u64,
    /// Blocking waits ([`wait`], sleeps, console waits).
    pub waits: u64,
    /// Ports with a handler.
    pub handlers: u32,
}

/// The counters.
pub fn stats() -> EventStats {
    let t = HANDLERS.lock();
    EventStats {
        delivered: t.delivered,
        unhandled: t.unhandled,
        waits: WAITS.load(Ordering::Relaxed) + crate::xen::POLLS.load(Ordering::Relaxed),
        handlers: t.ports().count() as u32,
    }
}

/// Whether `port` is pending and whether it is masked (for diagnostics).
pub fn port_state(port: Port) -> (bool, bool) {
    let (w, b) = ((port.0 / 64) as usize, port.0 % 64);
    (
        Shared.pending(w) & (1 << b) != 0,
        Shared.masked(w) & (1 << b) != 0,
    )
}
