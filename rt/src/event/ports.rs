//! The ports the runtime has open: those of the [`super::Channel`]s, and the
//! ones Xen's domain builder gave it (console, xenstore) or that it bound
//! for itself (the timer), by name. PVH's polled idle waits on all of them;
//! the shell lists them.
use rt_xen::abi::evtchn::Port;
use spin::Mutex;

/// Most ports the runtime names, and most open channels tracked.
const NAMED: usize = 8;
const OPEN: usize = 32;

/// Named ports (0 and `None`: free slot; all zero bytes when empty, so the
/// table sits in `.bss`, not in the image).
static NAMES: Mutex<[(u32, Option<&str>); NAMED]> = Mutex::new([(0, None); NAMED]);
/// Ports of the open channels (0: free slot).
static CHANNELS: Mutex<[u32; OPEN]> = Mutex::new([0; OPEN]);

/// Records that the runtime uses `port` for `what` ("console", "xenstore",
/// "timer (VIRQ_TIMER)"); a port named again takes the new name.
pub(crate) fn name_port(port: Port, what: &'static str) {
    let mut names = NAMES.lock();
    let slot = (names.iter().position(|&(p, _)| p == port.0))
        .or_else(|| names.iter().position(|&(p, _)| p == 0));
    if let Some(i) = slot {
        names[i] = (port.0, Some(what));
    }
}

/// The named ports, in the order they were named.
pub(super) fn named() -> impl Iterator<Item = (&'static str, Port)> {
    let names = *NAMES.lock();
    names
        .into_iter()
        .filter(|&(p, _)| p != 0)
        .map(|(p, what)| (what.unwrap_or_default(), Port(p)))
}

/// Tracks an open channel's port.
pub(super) fn opened(port: Port) {
    let mut open = CHANNELS.lock();
    if let Some(slot) = open.iter_mut().find(|p| **p == 0) {
        *slot = port.0;
    }
}

/// Stops tracking a closed channel's port (and forgets its name).
pub(super) fn closed(port: Port) {
    if let Some(slot) = CHANNELS.lock().iter_mut().find(|p| **p == port.0) {
        *slot = 0;
    }
    if let Some(slot) = NAMES.lock().iter_mut().find(|(p, _)| *p == port.0) {
        *slot = (0, None);
    }
}

/// Every port the runtime has open: the named ones, then the channels'.
pub(super) fn all() -> impl Iterator<Item = Port> {
    let open = *CHANNELS.lock();
    named()
        .map(|(_, p)| p)
        .chain(open.into_iter().filter(|&p| p != 0).map(Port))
}

/// Forgets every port (they are gone: the domain was restored).
pub(super) fn reset() {
    *NAMES.lock() = [(0, None); NAMED];
    *CHANNELS.lock() = [0; OPEN];
}
