//! The xenbus handshake's xenstore and clock (a `rt_xen::proto::xenbus::Bus`):
//! the runtime's own, for every device's handshake; and what a connected
//! device does when its backend closes.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use rt_xen::proto::untrusted::{Limit, Shown};
use rt_xen::proto::xenbus::{self, Bus, state};
use rt_xen::proto::xenstore::XsError;
use spin::Mutex;

use crate::time::Instant;

/// The runtime's xenstore and clock, as the handshake sees them.
#[derive(Debug)]
pub(crate) struct RtBus;

impl Bus for RtBus {
    fn read(&mut self, path: &str) -> Result<String, XsError> {
        crate::xenstore::read(path)
    }
    fn read_many(&mut self, paths: &[String]) -> Vec<Result<String, XsError>> {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        crate::xenstore::read_many(&paths)
    }
    fn publish(&mut self, dir: &str, entries: &[(&str, String)]) -> Result<(), XsError> {
        let paths: Vec<String> = entries.iter().map(|(k, _)| format!("{dir}/{k}")).collect();
        let writes: Vec<(&str, &[u8])> = paths
            .iter()
            .zip(entries)
            .map(|(p, (_, v))| (p.as_str(), v.as_bytes()))
            .collect();
        // The keys go out back to back: one round trip for all of them.
        crate::xenstore::transaction(|c, t| c.write_many(t, &writes))
    }
    fn now_ms(&mut self) -> u64 {
        Instant::now().as_nanos() / 1_000_000
    }
    fn sleep_ms(&mut self, ms: u64) {
        crate::sched::sleep(Duration::from_millis(ms));
    }
    fn watch(&mut self, path: &str) -> bool {
        // Only one handshake runs at a time (devices connect one by one).
        crate::xenstore::watch(path, HANDSHAKE_TOKEN).is_ok()
    }
    fn unwatch(&mut self, path: &str) {
        if crate::xenstore::unwatch(path, HANDSHAKE_TOKEN).is_err() {
            // The watch stays; its events are dropped below on the next
            // handshake's first wait. Nothing else depends on it.
            crate::console::println!("rt: xenbus: removing the watch on {path} failed");
        }
        while let Ok(Some(_)) = crate::xenstore::take_event_for(HANDSHAKE_TOKEN) {}
    }
    /// Blocks (the idle loop: services run, the vCPU sleeps) until the
    /// watch fires or `ms` pass. Xenstore's port event is cleared before the
    /// ring is read, so an event that comes after the read ends the block.
    fn wait_change(&mut self, _path: &str, ms: u64) {
        let deadline = Instant::now().after(Duration::from_millis(ms));
        loop {
            if let Some(p) = crate::xenstore::port() {
                crate::event::clear_pending(p);
            }
            match crate::xenstore::take_event_for(HANDSHAKE_TOKEN) {
                Ok(Some(_)) => {
                    while let Ok(Some(_)) = crate::xenstore::take_event_for(HANDSHAKE_TOKEN) {}
                    return;
                }
                Ok(None) => {}
                // The caller reads the state again and decides.
                Err(_) => return,
            }
            if Instant::now() >= deadline || crate::sched::idle(Some(deadline)).is_err() {
                return;
            }
        }
    }
}

/// The token of the handshake's watch on a backend's state.
const HANDSHAKE_TOKEN: &str = "rt-xenbus-handshake";

/// Where a connected device's backend stands, after its state's watch fired.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Backend {
    /// Still up (or its state key holds garbage, which is ignored).
    Up,
    /// It went Closing or Closed; the frontend has answered Closing then
    /// Closed.
    Closed,
    /// Its state key is gone (its directory was removed).
    Gone,
}

/// Looks at `backend`'s state after its watch fired, for the connected
/// frontend `frontend` (`class` and `down` name it in the log: "net", "the
/// network is down"). When it closed or vanished, says so once and answers
/// Closing then Closed (the backend then tears its side down) — the caller
/// stops using the rings. A value that is no state (dom0 may write anything
/// there) is ignored with a line at most once a second, the held-back ones
/// counted.
pub(crate) fn backend_now(class: &str, frontend: &str, backend: &str, down: &str) -> Backend {
    let read = crate::xenstore::read(&format!("{backend}/state"));
    match xenbus::link_after(read.as_ref().map(String::as_str)) {
        xenbus::Link::Up => Backend::Up,
        xenbus::Link::Garbage(v) => {
            static LIMIT: Mutex<Limit> = Mutex::new(Limit::new());
            if let Some(held) = LIMIT.lock().allow(Instant::now().as_millis(), 1000) {
                crate::console::println!(
                    "rt: {class}: the backend's state of {frontend} reads {}: not a state, ignored ({held} more held back)",
                    Shown(&v)
                );
            }
            Backend::Up
        }
        xenbus::Link::Closed(st) => {
            crate::console::println!(
                "rt: {class}: the backend closed {frontend} (state {st}): {down}"
            );
            for st in [state::CLOSING, state::CLOSED] {
                if let Err(e) =
                    crate::xenstore::write(&format!("{frontend}/state"), &format!("{st}"))
                {
                    crate::console::println!("rt: {class}: writing the frontend state failed: {e}");
                }
            }
            Backend::Closed
        }
        xenbus::Link::Gone => {
            crate::console::println!("rt: {class}: the backend of {frontend} is gone: {down}");
            Backend::Gone
        }
    }
}
