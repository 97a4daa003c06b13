//! Xenstore for apps: the domain's connection to xenstored (the ring page and
//! event channel Xen's domain builder set up), behind one lock.
//!
//! Paths without a leading `/` are relative to the domain's home,
//! `/local/domain/<domid>`. Every call waits at most [`TIMEOUT`] for its
//! reply; watch events that arrive meanwhile are queued for [`take_event`].
//!
//! May import: `event` (the polling wait on its channel), `time`, `xen`,
//! `bootinfo`.
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use rt_xen::proto::xenstore::{Client, Link, XenstoreInterface};
pub use rt_xen::proto::xenstore::{WatchEvent, XsError, XsStats};
use spin::Mutex;

use crate::event::Port;
use crate::time::Instant;

/// Longest wait for one reply.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Where boot code found the ring: its address and event channel (0: none).
static LOCATION: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU64 = AtomicU64::new(0);

/// Records the xenstore ring (boot code: PV from start_info, PVH from the HVM
/// params). `va` is where the page is mapped for the rest of the run.
pub(crate) fn set_location(va: u64, port: u32) {
    PORT.store(u64::from(port), Ordering::Relaxed);
    LOCATION.store(va, Ordering::Release);
    crate::event::name_port(Port(port), "xenstore");
}

/// Signals xenstored through its event channel; waits on it with a deadline.
#[derive(Debug)]
pub struct StoreLink {
    port: Port,
    deadline: Instant,
}

impl Link for StoreLink {
    fn notify(&mut self) {
        // A failed send leaves the daemon unsignalled: the wait below times
        // out and the request reports it.
        if rt_xen::abi::hypercall::evtchn_send(&crate::xen::HYPERVISOR, self.port.0).is_err() {
            self.deadline = Instant::now();
        }
    }

    fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        let step = now.after(Duration::from_millis(100)).min(self.deadline);
        match crate::event::wait(&[self.port], Some(step.as_nanos())) {
            // The pending bit stays set; SCHEDOP_poll returns at once while it
            // is, so clear it: the client re-reads the ring after every wait.
            Ok(()) => {
                crate::event::clear_pending(self.port);
                true
            }
            Err(_) => false,
        }
    }
}

static CLIENT: Mutex<Option<Client<StoreLink>>> = Mutex::new(None);

/// Runs `f` with the connection (opened on first use), with a fresh deadline.
fn with<R>(f: impl FnOnce(&mut Client<StoreLink>) -> Result<R, XsError>) -> Result<R, XsError> {
    let mut g = CLIENT.lock();
    let c = open(&mut g)?;
    let r = f(c);
    ROUND_TRIPS.store(c.stats.round_trips, Ordering::Relaxed);
    r
}

/// The connection, opened on first use, with a fresh deadline: the part of
/// [`with`] that does not depend on its caller, compiled once.
#[inline(never)]
fn open(g: &mut Option<Client<StoreLink>>) -> Result<&mut Client<StoreLink>, XsError> {
    if g.is_none() {
        let va = LOCATION.load(Ordering::Acquire);
        let page = NonNull::new(va as *mut XenstoreInterface).ok_or(XsError::Broken)?;
        let link = StoreLink {
            port: Port(PORT.load(Ordering::Relaxed) as u32),
            deadline: Instant::now(),
        };
        // SAFETY: boot code recorded the domain's xenstore page, mapped at
        // `va` for the rest of the run; this client is its only user.
        *g = Some(unsafe { Client::new(page, link) });
        crate::bootinfo::mark("xenstore");
    }
    let c = g.as_mut().ok_or(XsError::Broken)?;
    c.link_mut().deadline = Instant::now().after(TIMEOUT);
    Ok(c)
}

/// The client's round trips so far, readable without its lock (the boot
/// timeline counts them while the client may be busy).
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

/// Round trips to xenstored so far: a request's, or a batch's sent back to
/// back ([`Client::write_many`]).
pub(crate) fn round_trips() -> u64 {
    ROUND_TRIPS.load(Ordering::Relaxed)
}

/// The value at `path`.
pub fn read(path: &str) -> Result<String, XsError> {
    with(|c| c.read(0, path))
}

/// The values at `paths`, each its own result, the reads sent back to
/// back: one round trip for all of them (a failed connection fails each).
pub fn read_many(paths: &[&str]) -> Vec<Result<String, XsError>> {
    with(|c| c.read_many(0, paths))
        .unwrap_or_else(|e| paths.iter().map(|_| Err(e.clone())).collect())
}

/// Sets `path` to `value`.
pub fn write(path: &str, value: &str) -> Result<(), XsError> {
    with(|c| c.write(0, path, value.as_bytes()))
}

/// The names below `path`.
pub fn directory(path: &str) -> Result<Vec<String>, XsError> {
    with(|c| c.directory(0, path))
}

/// Removes `path` and what is below it.
pub fn remove(path: &str) -> Result<(), XsError> {
    with(|c| c.remove(0, path))
}

/// The watches set, to set again when the domain comes back in a new one
/// (xenstored knows nothing of them there).
static WATCHES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Watches `path`; events carry `token` (one fires at once).
pub fn watch(path: &str, token: &str) -> Result<(), XsError> {
    with(|c| c.watch(path, token))?;
    let mut w = WATCHES.lock();
    if !w.iter().any(|(p, t)| p == path && t == token) {
        w.push((path.into(), token.into()));
    }
    Ok(())
}

/// Removes a watch.
pub fn unwatch(path: &str, token: &str) -> Result<(), XsError> {
    WATCHES.lock().retain(|(p, t)| !(p == path && t == token));
    with(|c| c.unwatch(path, token))
}

/// The domain came back in a new one (restored or migrated): xenstored
/// signals on `port` now. The ring page is the same one; every watch is set
/// again (each fires once, as when first set).
pub(crate) fn resume(port: u32) -> Result<(), XsError> {
    PORT.store(u64::from(port), Ordering::Relaxed);
    crate::event::name_port(Port(port), "xenstore");
    if let Some(c) = CLIENT.lock().as_mut() {
        c.link_mut().port = Port(port);
        c.reconnect();
    }
    // Every watch is tried: one refused (its path gone with the old
    // domain) does not cost the others; the first refusal is returned.
    let watches = WATCHES.lock().clone();
    let mut first = Ok(());
    for (path, token) in &watches {
        if let Err(e) = with(|c| c.watch(path, token))
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

/// Runs `f` (given the transaction id) as a transaction, retried on EAGAIN.
pub fn transaction<R>(
    mut f: impl FnMut(&mut Client<StoreLink>, u32) -> Result<R, XsError>,
) -> Result<R, XsError> {
    with(|c| c.transaction(&mut f))
}

/// The oldest watch event that has arrived (reads the ring without waiting).
/// The runtime's own watches (`rt::control`'s) are taken by it first, in
/// the idle loop.
pub fn take_event() -> Result<Option<WatchEvent>, XsError> {
    with(|c| {
        c.poll()?;
        Ok(c.take_event())
    })
}

/// The oldest watch event with `token` (reads the ring without waiting);
/// events of other watches stay queued for their owners.
pub fn take_event_for(token: &str) -> Result<Option<WatchEvent>, XsError> {
    with(|c| {
        c.poll()?;
        Ok(c.take_event_for(token))
    })
}

/// Whether xenstored wrote something not read yet (false if the connection
/// is busy or not open): a wait that consumed the port's event may have left it.
pub fn unread() -> bool {
    CLIENT
        .try_lock()
        .is_some_and(|g| g.as_ref().is_some_and(|c| c.unread()))
}

/// The event channel xenstored signals (for waiting on it with others).
pub fn port() -> Option<Port> {
    (LOCATION.load(Ordering::Acquire) != 0).then(|| Port(PORT.load(Ordering::Relaxed) as u32))
}

/// Client counters.
pub fn stats() -> XsStats {
    CLIENT.lock().as_ref().map(|c| c.stats).unwrap_or_default()
}
