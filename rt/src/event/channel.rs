//! [`Channel`]: an event channel this domain owns — bound, notified, masked,
//! given a handler, waited on, and closed when dropped — and the listing of
//! the ports the runtime uses.
use core::sync::atomic::Ordering;

use rt_xen::abi::evtchn::{self, EventBits, Handler, Port};
use rt_xen::abi::hypercall;

use super::bits::{LATCH, Shared, take};
use super::deliver::{self, HANDLERS, wait};
use super::error::{EventError, on_xen};
use super::ports;
use crate::xen::HYPERVISOR;

/// An event channel this domain owns: closed (and its handler removed) on
/// drop. A close that Xen refuses on drop is counted
/// ([`super::EventStats::close_errors`]); [`Channel::close`] reports it.
#[derive(Debug)]
pub struct Channel {
    port: Port,
    /// The set of ports it belongs to (see `deliver::epoch`).
    epoch: u64,
}

impl Channel {
    fn track(port: Port) -> Channel {
        ports::opened(port);
        Channel {
            port,
            epoch: deliver::epoch(),
        }
    }

    /// Whether the channel was lost with its domain: the domain was
    /// restored (or migrated) since it was opened, so its port is gone.
    /// A stale channel closes nothing when dropped.
    pub fn is_stale(&self) -> bool {
        self.epoch != deliver::epoch()
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
        hypercall::evtchn_send(&HYPERVISOR, self.port.0).map_err(Into::into)
    }

    /// Masks the port: it can still become pending, but [`super::poll`]
    /// skips it.
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

    /// Runs `h` for each event on this port that delivery finds.
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

    /// Closes the channel now, saying whether Xen agreed (dropping it
    /// closes it too, and counts a refusal).
    pub fn close(self) -> Result<(), EventError> {
        let (port, stale) = (self.port, self.is_stale());
        core::mem::forget(self);
        if stale { Ok(()) } else { release(port) }
    }
}

/// Forgets `port`'s handler and tracking, then closes it.
fn release(port: Port) -> Result<(), EventError> {
    ports::closed(port);
    HANDLERS.lock().unregister(port);
    evtchn::close(&HYPERVISOR, port).map_err(Into::into)
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.is_stale() {
            return;
        }
        if let Err(e) = release(self.port) {
            deliver::count_close_error(self.port, e);
        }
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

/// The ports the runtime uses, named (console, xenstore, timer, devices),
/// then the other ports with a handler (for the shell's `evtchn`).
pub fn known_ports() -> alloc::vec::Vec<(&'static str, Port)> {
    let mut v: alloc::vec::Vec<_> = ports::named().collect();
    for p in HANDLERS.lock().ports() {
        if !v.iter().any(|&(_, q)| q == p) {
            v.push(("handler", p));
        }
    }
    v
}
