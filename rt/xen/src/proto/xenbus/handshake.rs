//! The handshake itself: [`connect`] takes a device's [`Spec`] and walks
//! the steps of the module doc ([`super`]); [`link_after`] judges the
//! backend's state once connected.
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use crate::abi::errno::XenError;
use crate::proto::untrusted::Shown;
use crate::proto::value::{decimal, is_on, trimmed};
use crate::proto::xenstore::XsError;

/// xenbus states (`public/io/xenbus.h`, `enum xenbus_state`).
pub mod state {
    /// Unknown (0): the key's owner has not started.
    pub const UNKNOWN: u32 = 0;
    /// Initialising (1).
    pub const INITIALISING: u32 = 1;
    /// InitWait (2): the backend's keys are written; it waits for ours.
    pub const INIT_WAIT: u32 = 2;
    /// Initialised (3): the frontend's keys are written.
    pub const INITIALISED: u32 = 3;
    /// Connected (4).
    pub const CONNECTED: u32 = 4;
    /// Closing (5).
    pub const CLOSING: u32 = 5;
    /// Closed (6).
    pub const CLOSED: u32 = 6;
}

/// Milliseconds between two looks at the backend's state when the bus
/// cannot watch it.
pub const POLL_MS: u64 = 5;
/// Longest wait on a watch before the state is read again anyway (a lost
/// watch event costs at most this much).
pub const WATCH_RECHECK_MS: u64 = 100;

/// The xenstore operations and the clock the handshake needs.
pub trait Bus {
    /// The value at `path`.
    fn read(&mut self, path: &str) -> Result<String, XsError>;
    /// The values at `paths`, each its own result; a bus that can may send
    /// the reads back to back (one round trip).
    fn read_many(&mut self, paths: &[String]) -> Vec<Result<String, XsError>> {
        paths.iter().map(|p| self.read(p)).collect()
    }
    /// Writes each `(key, value)` below `dir`, all in one transaction.
    fn publish(&mut self, dir: &str, entries: &[(&str, String)]) -> Result<(), XsError>;
    /// Milliseconds on a monotonic clock.
    fn now_ms(&mut self) -> u64;
    /// Sleeps for about `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
    /// Starts a watch on `path` for [`Bus::wait_change`]; false if this bus
    /// cannot watch (then the handshake looks every [`POLL_MS`]).
    fn watch(&mut self, _path: &str) -> bool {
        false
    }
    /// Ends the watch [`Bus::watch`] started.
    fn unwatch(&mut self, _path: &str) {}
    /// Waits until the watched `path` changes (its watch fires) or `ms`
    /// pass, whichever is first.
    fn wait_change(&mut self, _path: &str, ms: u64) {
        self.sleep_ms(ms);
    }
}

/// A key of the frontend directory that the toolstack wrote and the device
/// needs (netif's `mac`, say), with what makes a value good.
#[derive(Clone, Copy, Debug)]
pub struct FrontendKey {
    /// The key, below `device/<class>/<devid>`.
    pub name: &'static str,
    /// What a good value is ("a MAC"), for the error that names a bad one.
    pub what: &'static str,
    /// Whether a value is good.
    pub valid: fn(&str) -> bool,
}

/// A backend feature the frontend cannot do without: its key must read "1".
#[derive(Clone, Copy, Debug)]
pub struct Required {
    /// The key, below the backend's directory.
    pub key: &'static str,
    /// What it means when the backend does not offer it.
    pub why: &'static str,
}

/// What a device class asks of the handshake: its keys, as data.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The class under `device/` (`vif`, `vbd`).
    pub class: &'static str,
    /// Frontend keys to read (and check) before anything is set up.
    pub frontend: &'static [FrontendKey],
    /// Backend features that must be on, read once the backend is ready.
    pub required: &'static [Required],
    /// Backend keys read once it is ready, for the device to choose from
    /// (features it may offer; a missing one is `None`).
    pub offered: &'static [&'static str],
    /// The state published with the frontend's keys: Connected for a
    /// device that needs nothing more (netfront), Initialised for one that
    /// reads what the backend writes when it connects and then says
    /// Connected itself (blkfront).
    pub publish_state: u32,
}

/// A device as the toolstack and its backend describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// `device/<class>/<devid>`.
    pub frontend: String,
    /// The backend's directory.
    pub backend: String,
    /// The backend's domain.
    pub backend_id: u16,
    /// The [`Spec::frontend`] keys and their (checked) values.
    pub keys: Vec<(&'static str, String)>,
    /// The [`Spec::offered`] keys and their values, once the backend is
    /// ready (before that, empty).
    pub offered: Vec<(&'static str, Option<String>)>,
}

impl Device {
    /// The value of frontend key `name` (one of the spec's).
    pub fn key(&self, name: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the backend offers `feature` (its key reads "1").
    pub fn offers(&self, feature: &str) -> bool {
        self.offered
            .iter()
            .any(|(k, v)| *k == feature && v.as_deref().is_some_and(is_on))
    }
}

/// Why the handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The frontend directory has no `backend` key: no such device.
    NoDevice(String),
    /// A key is missing, malformed or says no (boxed: the error is four
    /// words, not six, and every `?` of the handshake copies it).
    Key(Box<KeyError>),
    /// The backend did not reach an accepted state by the deadline.
    Timeout {
        /// The state waited for (the lowest accepted).
        want: u32,
        /// The last state seen (None: missing or not a number).
        seen: Option<u32>,
        /// The time allowed, in ms.
        waited_ms: u64,
    },
    /// The backend went to Closing or Closed during the handshake.
    Closed {
        /// The state waited for.
        want: u32,
        /// The backend's state.
        state: u32,
    },
    /// Setting up rings, buffers or the event channel failed.
    Setup(String),
}

/// A xenstore key the handshake could not use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// The key's full path.
    pub path: String,
    /// What is wrong with it.
    pub why: String,
}

impl HandshakeError {
    /// [`HandshakeError::Key`] for `path` (built out of line: one copy of
    /// the boxing for the 20-odd places that report a key).
    #[inline(never)]
    pub fn key(path: String, why: String) -> HandshakeError {
        HandshakeError::Key(Box::new(KeyError { path, why }))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::NoDevice(fe) => {
                let class = fe.split('/').nth(1).unwrap_or("device");
                write!(f, "no {class} ({fe} is missing: add one to the xl config)")
            }
            HandshakeError::Key(k) => write!(f, "xenstore key {}: {}", k.path, k.why),
            HandshakeError::Timeout {
                want,
                seen,
                waited_ms,
            } => {
                write!(
                    f,
                    "the backend did not reach state {want} within {waited_ms} ms (last seen: "
                )?;
                match seen {
                    Some(s) => write!(f, "{s})"),
                    None => f.write_str("none)"),
                }
            }
            HandshakeError::Closed { want, state } => write!(
                f,
                "the backend went to state {state} while we waited for state {want}"
            ),
            HandshakeError::Setup(why) => write!(f, "setting up the device: {why}"),
        }
    }
}

/// A state value: decimal digits only (surrounding whitespace allowed);
/// anything else is no state.
pub fn parse_state(s: &str) -> Option<u32> {
    decimal(s)?.try_into().ok()
}

/// A key's value as the handshake needs it: a failed read names the key.
fn key_of(path: &str, read: Result<String, XsError>) -> Result<String, HandshakeError> {
    read.map_err(|e| HandshakeError::key(path.into(), format!("{e}")))
}

/// Reads `device/<class>/<devid>`'s keys: the backend's directory and
/// domain, and the spec's frontend keys (each checked).
// Cold (once per connection): kept out of line, the image is smaller.
#[inline(never)]
pub fn read_device<B: Bus>(
    bus: &mut B,
    spec: &Spec,
    devid: u32,
) -> Result<Box<Device>, HandshakeError> {
    let frontend = format!("device/{}/{devid}", spec.class);
    // All of the frontend's keys at once: `backend`, `backend-id`, then the
    // spec's, in that order.
    let (backend_path, id_path) = (
        format!("{frontend}/backend"),
        format!("{frontend}/backend-id"),
    );
    let mut paths = Vec::with_capacity(2 + spec.frontend.len());
    paths.extend([backend_path.clone(), id_path.clone()]);
    paths.extend(
        spec.frontend
            .iter()
            .map(|k| format!("{frontend}/{}", k.name)),
    );
    let mut values = bus.read_many(&paths).into_iter();
    let mut next = || values.next().unwrap_or(Err(XsError::Broken));
    let path = &backend_path;
    let backend = match next() {
        Ok(b) if !trimmed(&b).is_empty() => String::from(trimmed(&b)),
        Ok(_) => return Err(HandshakeError::key(path.clone(), "empty".into())),
        Err(XsError::Error(XenError::ENOENT)) => return Err(HandshakeError::NoDevice(frontend)),
        Err(e) => return Err(HandshakeError::key(path.clone(), format!("{e}"))),
    };
    let path = id_path;
    let v = key_of(&path, next())?;
    let backend_id = decimal(&v)
        .filter(|&id| id < u64::from(DOMID_FIRST_RESERVED))
        .map(|id| id as u16)
        .ok_or_else(|| HandshakeError::key(path, format!("{} is not a domain id", Shown(&v))))?;
    // The backend's directory is followed (read, watched) from now on: it
    // must be the one the toolstack makes for this device in the backend's
    // domain, never a path into another domain's directory or ours.
    if !valid_backend_dir(&backend, backend_id, spec.class, devid) {
        return Err(HandshakeError::key(
            format!("{frontend}/backend"),
            format!(
                "{} is not /local/domain/{backend_id}/backend/{}/<our domain>/{devid}: refused",
                Shown(&backend),
                spec.class
            ),
        ));
    }
    let mut keys = Vec::with_capacity(spec.frontend.len());
    for (k, path) in spec.frontend.iter().zip(&paths[2..]) {
        let path = path.clone();
        let v = key_of(&path, next())?;
        if !(k.valid)(&v) {
            return Err(HandshakeError::key(
                path,
                format!("{} is not {}", Shown(&v), k.what),
            ));
        }
        keys.push((k.name, v));
    }
    Ok(Box::new(Device {
        frontend,
        backend,
        backend_id,
        keys,
        offered: Vec::new(),
    }))
}

/// Domain ids from here on are Xen's own (`DOMID_SELF`, `DOMID_IO`, ...),
/// never a backend's (`public/xen.h`).
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;

/// Whether `dir` is the backend directory a toolstack makes for device
/// `devid` of `class` in domain `backend_id`:
/// `/local/domain/<backend_id>/backend/<class>/<frontend domid>/<devid>`,
/// decimal numbers without signs or leading zeros, nothing else (no `..`,
/// no trailing slash, no other domain's directory).
pub fn valid_backend_dir(dir: &str, backend_id: u16, class: &str, devid: u32) -> bool {
    let number = |s: &str| {
        !s.is_empty()
            && s.len() <= 5
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'))
            && decimal(s).is_some_and(|d| d < u64::from(DOMID_FIRST_RESERVED))
    };
    let Some(rest) = dir.strip_prefix("/local/domain/") else {
        return false;
    };
    let mut parts = rest.split('/');
    let (Some(be), Some("backend"), Some(c), Some(fe), Some(dev), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    number(be)
        && decimal(be) == Some(u64::from(backend_id))
        && c == class
        && number(fe)
        && !dev.is_empty()
        && (dev == "0" || !dev.starts_with('0'))
        && dev.bytes().all(|b| b.is_ascii_digit())
        && decimal(dev) == Some(u64::from(devid))
}

/// The backend's state (None: missing, unreadable or not a number).
pub fn backend_state<B: Bus>(bus: &mut B, backend: &str) -> Option<u32> {
    parse_state(&bus.read(&format!("{backend}/state")).ok()?)
}

/// Waits until the backend's state is in `accept`; returns it. Closing or
/// Closed end the wait at once (unless accepted); Unknown, a missing key or
/// garbage count as "not yet". The state is read first: a backend already
/// there costs one round trip, no watch. Otherwise the wait watches the
/// state where the bus can (xenstored fires a watch once as soon as it is
/// set, so a change between the first read and the watch is not lost —
/// and were it, the state is read again after [`WATCH_RECHECK_MS`]) and
/// looks every [`POLL_MS`] where it cannot.
pub fn wait_backend<B: Bus>(
    bus: &mut B,
    backend: &str,
    accept: RangeInclusive<u32>,
    timeout_ms: u64,
) -> Result<u32, HandshakeError> {
    let want = *accept.start();
    let start = bus.now_ms();
    // Woken by a watch on the state where the bus has one (no fixed sleep:
    // the state is read when it changed), else looking every POLL_MS; the
    // watch is set only once a first read found the backend not there yet.
    let path = format!("{backend}/state");
    let mut watching = None;
    let r = loop {
        let seen = backend_state(bus, backend);
        match seen {
            Some(s) if accept.contains(&s) => break Ok(s),
            Some(s @ (state::CLOSING | state::CLOSED)) => {
                break Err(HandshakeError::Closed { want, state: s });
            }
            _ => {}
        }
        let waited = bus.now_ms().saturating_sub(start);
        if waited >= timeout_ms {
            break Err(HandshakeError::Timeout {
                want,
                seen,
                waited_ms: timeout_ms,
            });
        }
        if *watching.get_or_insert_with(|| bus.watch(&path)) {
            bus.wait_change(&path, (timeout_ms - waited).min(WATCH_RECHECK_MS));
        } else {
            bus.sleep_ms(POLL_MS);
        }
    };
    if watching == Some(true) {
        bus.unwatch(&path);
    }
    r
}

/// Reads what the backend offers and checks what the spec requires (the
/// backend is ready: its keys exist).
// Cold (once per connection): kept out of line, the image is smaller.
#[inline(never)]
fn read_backend<B: Bus>(bus: &mut B, spec: &Spec, dev: &mut Device) -> Result<(), HandshakeError> {
    // The required keys, then the offered ones, all at once.
    let paths: Vec<String> = spec
        .required
        .iter()
        .map(|r| r.key)
        .chain(spec.offered.iter().copied())
        .map(|k| format!("{}/{k}", dev.backend))
        .collect();
    let mut values = bus.read_many(&paths).into_iter();
    for (r, path) in spec.required.iter().zip(&paths) {
        let path = path.clone();
        let v = key_of(&path, values.next().unwrap_or(Err(XsError::Broken)))?;
        if !is_on(&v) {
            return Err(HandshakeError::key(
                path,
                format!("{}: {}", Shown(&v), r.why),
            ));
        }
    }
    dev.offered = spec
        .offered
        .iter()
        .map(|&k| (k, values.next().and_then(Result::ok)))
        .collect();
    Ok(())
}

/// Runs the whole handshake for `device/<class>/<devid>`. `setup` is
/// called once the backend is ready, with the device's keys, and returns
/// the resources to keep (dropped if a later step fails) and the frontend
/// keys to publish (ring references, event channel, features); the
/// spec's state is published with them. Each wait gets `timeout_ms`.
// Cold (once per connection): kept out of line, the image is smaller.
#[inline(never)]
pub fn connect<B: Bus, R>(
    bus: &mut B,
    spec: &Spec,
    devid: u32,
    timeout_ms: u64,
    setup: impl FnOnce(&Device) -> Result<(R, Vec<(&'static str, String)>), String>,
) -> Result<(Box<Device>, R), HandshakeError> {
    let mut dev = read_device(bus, spec, devid)?;
    wait_backend(
        bus,
        &dev.backend,
        state::INIT_WAIT..=state::CONNECTED,
        timeout_ms,
    )?;
    read_backend(bus, spec, &mut dev)?;
    let (res, mut entries) = setup(&dev).map_err(HandshakeError::Setup)?;
    entries.push(("state", format!("{}", spec.publish_state)));
    bus.publish(&dev.frontend, &entries).map_err(|e| {
        HandshakeError::key(dev.frontend.clone(), format!("publishing the rings: {e}"))
    })?;
    if let Err(e) = wait_backend(
        bus,
        &dev.backend,
        state::CONNECTED..=state::CONNECTED,
        timeout_ms,
    ) {
        // Best effort: the error above is what the caller needs to hear.
        let _ = bus.publish(&dev.frontend, &[("state", format!("{}", state::CLOSED))]);
        return Err(e);
    }
    Ok((dev, res))
}

/// What [`rearm`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rearmed {
    /// The backend is at InitWait again: run [`connect`].
    Ready,
    /// The device is being removed or is gone (what says so, for the log):
    /// a detach, not a close to come back from.
    Gone(String),
}

/// Gets a closed connection back to the start of the handshake, after the
/// backend of `frontend` (at `backend`) went Closing or Closed and the
/// frontend answered Closed: checks that the device still exists and that
/// the toolstack is not removing it (the backend's `online` reads 1),
/// writes the frontend's state back to Initialising (a closed netback or
/// blkback "prepares for reconnect" on that) and waits until the backend is
/// at InitWait. Closing, Closed, Connected or garbage count as "not yet";
/// nothing is written when the device is gone.
pub fn rearm<B: Bus>(
    bus: &mut B,
    frontend: &str,
    backend: &str,
    timeout_ms: u64,
) -> Result<Rearmed, HandshakeError> {
    let gone = |e: &XsError| *e == XsError::Error(XenError::ENOENT);
    match bus.read(&format!("{frontend}/backend")) {
        Err(e) if gone(&e) => return Ok(Rearmed::Gone(format!("{frontend} was removed"))),
        Err(e) => {
            return Err(HandshakeError::key(
                format!("{frontend}/backend"),
                format!("{e}"),
            ));
        }
        Ok(_) => {}
    }
    let online = format!("{backend}/online");
    match bus.read(&online) {
        Err(e) if gone(&e) => return Ok(Rearmed::Gone(format!("{backend} was removed"))),
        Err(e) => return Err(HandshakeError::key(online, format!("{e}"))),
        Ok(v) if !is_on(&v) => {
            return Ok(Rearmed::Gone(format!("{online} reads {}", Shown(&v))));
        }
        Ok(_) => {}
    }
    bus.publish(frontend, &[("state", format!("{}", state::INITIALISING))])
        .map_err(|e| HandshakeError::key(format!("{frontend}/state"), format!("{e}")))?;
    let start = bus.now_ms();
    loop {
        let seen = match bus.read(&format!("{backend}/state")) {
            Err(e) if gone(&e) => return Ok(Rearmed::Gone(format!("{backend} was removed"))),
            r => r.ok().and_then(|v| parse_state(&v)),
        };
        if seen == Some(state::INIT_WAIT) {
            return Ok(Rearmed::Ready);
        }
        if bus.now_ms().saturating_sub(start) >= timeout_ms {
            return Err(HandshakeError::Timeout {
                want: state::INIT_WAIT,
                seen,
                waited_ms: timeout_ms,
            });
        }
        bus.sleep_ms(POLL_MS);
    }
}

/// What a change of the backend's state means for a connected frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Still usable.
    Up,
    /// The backend is closing or closed: answer Closing then Closed and
    /// stop using the rings.
    Closed(u32),
    /// The backend's state key is gone (its directory was removed).
    Gone,
    /// The key holds something that is not a state (the value, for the
    /// log): ignored, the link stays up — as Linux's xenbus does, which
    /// reads such a value as Unknown and acts on Closing only.
    Garbage(String),
}

/// Judges what the backend's state key reads once connected: `Ok(value)`,
/// or the read's error. Unknown (0), the states of a reconfiguration
/// (7, 8) and other numbers leave the link up; only Closing and Closed
/// close it, and only a missing key (ENOENT) means it is gone — a failed
/// read (xenstored busy) or a value that is no state is ignored.
pub fn link_after(read: Result<&str, &XsError>) -> Link {
    match read {
        Ok(v) => match parse_state(v) {
            Some(s @ (state::CLOSING | state::CLOSED)) => Link::Closed(s),
            Some(_) => Link::Up,
            None => Link::Garbage(String::from(v)),
        },
        Err(XsError::Error(XenError::ENOENT)) => Link::Gone,
        Err(e) => Link::Garbage(format!("(unreadable: {e})")),
    }
}

#[cfg(test)]
mod tests;
