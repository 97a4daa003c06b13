//! The handshake itself: [`connect`] takes a device's [`Spec`] and walks
//! the steps of the module doc ([`super`]); [`link_after`] judges the
//! backend's state once connected.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use crate::abi::errno::XenError;
use crate::proto::untrusted::Shown;
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

/// Milliseconds between two looks at the backend's state.
pub const POLL_MS: u64 = 5;

/// The xenstore operations and the clock the handshake needs.
pub trait Bus {
    /// The value at `path`.
    fn read(&mut self, path: &str) -> Result<String, XsError>;
    /// Writes each `(key, value)` below `dir`, all in one transaction.
    fn publish(&mut self, dir: &str, entries: &[(&str, String)]) -> Result<(), XsError>;
    /// Milliseconds on a monotonic clock.
    fn now_ms(&mut self) -> u64;
    /// Sleeps for about `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
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
            .any(|(k, v)| *k == feature && v.as_deref().map(str::trim) == Some("1"))
    }
}

/// Why the handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The frontend directory has no `backend` key: no such device.
    NoDevice(String),
    /// A key is missing, malformed or says no: (path, why).
    Key(String, String),
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

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::NoDevice(fe) => {
                let class = fe.split('/').nth(1).unwrap_or("device");
                write!(f, "no {class} ({fe} is missing: add one to the xl config)")
            }
            HandshakeError::Key(k, why) => write!(f, "xenstore key {k}: {why}"),
            HandshakeError::Timeout {
                want,
                seen,
                waited_ms,
            } => write!(
                f,
                "the backend did not reach state {want} within {waited_ms} ms (last seen: {seen:?})"
            ),
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
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn key<B: Bus>(bus: &mut B, path: &str) -> Result<String, HandshakeError> {
    bus.read(path)
        .map_err(|e| HandshakeError::Key(path.into(), format!("{e}")))
}

/// Reads `device/<class>/<devid>`'s keys: the backend's directory and
/// domain, and the spec's frontend keys (each checked).
pub fn read_device<B: Bus>(bus: &mut B, spec: &Spec, devid: u32) -> Result<Device, HandshakeError> {
    let frontend = format!("device/{}/{devid}", spec.class);
    let path = format!("{frontend}/backend");
    let backend = match bus.read(&path) {
        Ok(b) if !b.trim().is_empty() => String::from(b.trim()),
        Ok(_) => return Err(HandshakeError::Key(path, "empty".into())),
        Err(XsError::Error(XenError::ENOENT)) => return Err(HandshakeError::NoDevice(frontend)),
        Err(e) => return Err(HandshakeError::Key(path, format!("{e}"))),
    };
    let path = format!("{frontend}/backend-id");
    let v = key(bus, &path)?;
    let backend_id = v
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|&id| id < DOMID_FIRST_RESERVED)
        .ok_or_else(|| HandshakeError::Key(path, format!("{} is not a domain id", Shown(&v))))?;
    // The backend's directory is followed (read, watched) from now on: it
    // must be the one the toolstack makes for this device in the backend's
    // domain, never a path into another domain's directory or ours.
    if !valid_backend_dir(&backend, backend_id, spec.class, devid) {
        return Err(HandshakeError::Key(
            format!("{frontend}/backend"),
            format!(
                "{} is not /local/domain/{backend_id}/backend/{}/<our domain>/{devid}: refused",
                Shown(&backend),
                spec.class
            ),
        ));
    }
    let mut keys = Vec::with_capacity(spec.frontend.len());
    for k in spec.frontend {
        let path = format!("{frontend}/{}", k.name);
        let v = key(bus, &path)?;
        if !(k.valid)(&v) {
            return Err(HandshakeError::Key(
                path,
                format!("{} is not {}", Shown(&v), k.what),
            ));
        }
        keys.push((k.name, v));
    }
    Ok(Device {
        frontend,
        backend,
        backend_id,
        keys,
        offered: Vec::new(),
    })
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
            && s.parse::<u16>().is_ok_and(|d| d < DOMID_FIRST_RESERVED)
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
        && be.parse::<u16>().ok() == Some(backend_id)
        && c == class
        && number(fe)
        && !dev.is_empty()
        && (dev == "0" || !dev.starts_with('0'))
        && dev.bytes().all(|b| b.is_ascii_digit())
        && dev.parse::<u32>().ok() == Some(devid)
}

/// The backend's state (None: missing, unreadable or not a number).
pub fn backend_state<B: Bus>(bus: &mut B, backend: &str) -> Option<u32> {
    parse_state(&bus.read(&format!("{backend}/state")).ok()?)
}

/// Waits, looking every [`POLL_MS`], until the backend's state is in
/// `accept`; returns it. Closing or Closed end the wait at once (unless
/// accepted); Unknown, a missing key or garbage count as "not yet".
pub fn wait_backend<B: Bus>(
    bus: &mut B,
    backend: &str,
    accept: RangeInclusive<u32>,
    timeout_ms: u64,
) -> Result<u32, HandshakeError> {
    let want = *accept.start();
    let start = bus.now_ms();
    loop {
        let seen = backend_state(bus, backend);
        match seen {
            Some(s) if accept.contains(&s) => return Ok(s),
            Some(s @ (state::CLOSING | state::CLOSED)) => {
                return Err(HandshakeError::Closed { want, state: s });
            }
            _ => {}
        }
        if bus.now_ms().saturating_sub(start) >= timeout_ms {
            return Err(HandshakeError::Timeout {
                want,
                seen,
                waited_ms: timeout_ms,
            });
        }
        bus.sleep_ms(POLL_MS);
    }
}

/// Reads what the backend offers and checks what the spec requires (the
/// backend is ready: its keys exist).
fn read_backend<B: Bus>(bus: &mut B, spec: &Spec, dev: &mut Device) -> Result<(), HandshakeError> {
    for r in spec.required {
        let path = format!("{}/{}", dev.backend, r.key);
        let v = key(bus, &path)?;
        if v.trim() != "1" {
            return Err(HandshakeError::Key(path, format!("{v:?}: {}", r.why)));
        }
    }
    dev.offered = spec
        .offered
        .iter()
        .map(|&k| (k, bus.read(&format!("{}/{k}", dev.backend)).ok()))
        .collect();
    Ok(())
}

/// Runs the whole handshake for `device/<class>/<devid>`. `setup` is
/// called once the backend is ready, with the device's keys, and returns
/// the resources to keep (dropped if a later step fails) and the frontend
/// keys to publish (ring references, event channel, features); the
/// spec's state is published with them. Each wait gets `timeout_ms`.
pub fn connect<B: Bus, R>(
    bus: &mut B,
    spec: &Spec,
    devid: u32,
    timeout_ms: u64,
    setup: impl FnOnce(&Device) -> Result<(R, Vec<(&'static str, String)>), String>,
) -> Result<(Device, R), HandshakeError> {
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
        HandshakeError::Key(dev.frontend.clone(), format!("publishing the rings: {e}"))
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
mod tests {
    extern crate std;
    use super::*;
    use crate::proto::xenbus::fake::{self, BACKEND_ID, Fake, TIMEOUT};
    use alloc::rc::Rc;
    use alloc::string::ToString;
    use alloc::vec;
    use core::cell::Cell;
    use proptest::prelude::*;

    /// A block device's shape (blkif.h): a frontend key, offered features,
    /// and Initialised published with the keys — nothing netif-like, so the
    /// handshake is shown device-independent.
    const VBD: Spec = Spec {
        class: "vbd",
        frontend: &[FrontendKey {
            name: "virtual-device",
            what: "a device number",
            valid: |v| v.trim().parse::<u32>().is_ok(),
        }],
        required: &[],
        offered: &["feature-persistent", "max-ring-page-order"],
        publish_state: state::INITIALISED,
    };
    const FE: &str = "device/vbd/0";
    const BE: &str = "/local/domain/7/backend/vbd/3/0";

    fn fake_bus(
        script: impl FnMut(&mut alloc::collections::BTreeMap<String, String>, u64) + 'static,
    ) -> Fake {
        Fake::new(
            "vbd",
            &[("virtual-device", "51712")],
            &[("feature-persistent", "1")],
            script,
        )
    }

    fn blkback(delay: u64) -> impl FnMut(&mut alloc::collections::BTreeMap<String, String>, u64) {
        fake::backend("vbd", delay, state::INITIALISED)
    }

    /// Stands for granted pages: counts the live ones.
    struct Granted(Rc<Cell<i32>>);
    impl Drop for Granted {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    fn run(bus: &mut Fake) -> (Result<Device, HandshakeError>, Rc<Cell<i32>>, u32) {
        let live = Rc::new(Cell::new(0));
        let calls = Rc::new(Cell::new(0u32));
        let (l, c) = (live.clone(), calls.clone());
        let r = connect(bus, &VBD, 0, TIMEOUT, move |dev| {
            assert_eq!(dev.backend_id, BACKEND_ID);
            c.set(c.get() + 1);
            l.set(l.get() + 1);
            Ok((
                Granted(l),
                vec![("ring-ref", "8".to_string()), ("event-channel", "5".into())],
            ))
        });
        let r = r.map(|(dev, g)| {
            core::mem::forget(g);
            dev
        });
        (r, live, calls.get())
    }

    #[test]
    fn a_good_backend_gets_our_keys_and_connects() {
        let mut bus = fake_bus(blkback(40));
        let (r, live, calls) = run(&mut bus);
        let dev = r.unwrap();
        assert_eq!(dev.key("virtual-device"), Some("51712"));
        assert!(dev.offers("feature-persistent"));
        assert!(!dev.offers("max-ring-page-order"), "not offered: absent");
        assert_eq!((live.get(), calls, bus.publishes), (1, 1, 1));
        for (k, v) in [("ring-ref", "8"), ("event-channel", "5"), ("state", "3")] {
            assert_eq!(bus.get(&format!("{FE}/{k}")), Some(v), "{k}");
        }
        assert!(bus.now >= 40, "waited for InitWait instead of racing it");
    }

    #[test]
    fn a_backend_already_connected_is_not_waited_on_for_init_wait() {
        let mut bus = fake_bus(|_, _| {});
        bus.set(&format!("{BE}/state"), "4");
        let (r, live, _) = run(&mut bus);
        assert!(r.is_ok());
        assert_eq!(live.get(), 1);
        assert_eq!(bus.now, 0);
    }

    #[test]
    fn a_backend_that_never_starts_times_out_before_anything_is_granted() {
        let mut bus = fake_bus(|_, _| {});
        let (r, live, calls) = run(&mut bus);
        assert_eq!(
            r,
            Err(HandshakeError::Timeout {
                want: state::INIT_WAIT,
                seen: Some(state::INITIALISING),
                waited_ms: TIMEOUT
            })
        );
        assert_eq!((live.get(), calls, bus.publishes), (0, 0, 0));
        assert!(bus.now <= TIMEOUT + POLL_MS);
    }

    #[test]
    fn a_backend_that_never_connects_times_out_releases_and_closes_us() {
        let mut bus = fake_bus(|s, _| {
            s.insert(format!("{BE}/state"), "2".into());
        });
        let (r, live, calls) = run(&mut bus);
        assert_eq!(
            r,
            Err(HandshakeError::Timeout {
                want: state::CONNECTED,
                seen: Some(state::INIT_WAIT),
                waited_ms: TIMEOUT
            })
        );
        assert_eq!((live.get(), calls), (0, 1), "the resources were dropped");
        assert_eq!(
            bus.get(&format!("{FE}/state")),
            Some("6"),
            "frontend Closed"
        );
    }

    #[test]
    fn a_backend_that_closes_mid_handshake_ends_the_wait_at_once() {
        for bad in ["5", "6"] {
            let mut bus = fake_bus(move |s, _| {
                let fe_up = s.get(&format!("{FE}/state")).map(String::as_str) == Some("3");
                let v = if fe_up { bad } else { "2" };
                s.insert(format!("{BE}/state"), v.into());
            });
            bus.set(&format!("{BE}/state"), "2");
            let (r, live, _) = run(&mut bus);
            assert_eq!(
                r,
                Err(HandshakeError::Closed {
                    want: state::CONNECTED,
                    state: parse_state(bad).unwrap()
                }),
                "{bad}"
            );
            assert_eq!(live.get(), 0);
            assert!(bus.now < 100, "{bad}: no waiting out the timeout");
        }
    }

    #[test]
    fn garbage_states_are_no_state() {
        for g in ["4x", "", " ", "-4", "0x4", "2.0", "99999999999"] {
            assert_eq!(parse_state(g), None, "{g:?}");
        }
        assert_eq!(parse_state(" 4\n"), Some(4));
        let mut bus = fake_bus(|_, _| {});
        bus.set(&format!("{BE}/state"), "4garbage");
        let (r, live, _) = run(&mut bus);
        assert_eq!(
            r,
            Err(HandshakeError::Timeout {
                want: state::INIT_WAIT,
                seen: None,
                waited_ms: TIMEOUT
            })
        );
        assert_eq!(live.get(), 0);
    }

    #[test]
    fn a_state_key_that_vanishes_is_waited_out_not_trusted() {
        let mut bus = fake_bus(|s, now| {
            if now % 20 == 0 {
                s.remove(&format!("{BE}/state"));
            } else {
                s.insert(format!("{BE}/state"), "1".into());
            }
        });
        let (r, _, calls) = run(&mut bus);
        assert!(matches!(r, Err(HandshakeError::Timeout { want: 2, .. })));
        assert_eq!(calls, 0);
    }

    #[test]
    fn bad_frontend_keys_are_named() {
        let cases: [(&str, Option<&str>, &str); 4] = [
            ("device/vbd/0/backend", None, "NoDevice"),
            (
                "device/vbd/0/backend-id",
                Some("dom0"),
                "device/vbd/0/backend-id",
            ),
            ("device/vbd/0/backend-id", None, "device/vbd/0/backend-id"),
            (
                "device/vbd/0/virtual-device",
                Some("xvda"),
                "device/vbd/0/virtual-device",
            ),
        ];
        for (k, v, named) in cases {
            let mut bus = fake_bus(blkback(0));
            match v {
                Some(v) => bus.set(k, v),
                None => {
                    bus.store.remove(k);
                }
            }
            let (r, live, _) = run(&mut bus);
            match r {
                Err(HandshakeError::NoDevice(fe)) => {
                    assert_eq!((fe.as_str(), named), (FE, "NoDevice"));
                    let e = HandshakeError::NoDevice(fe).to_string();
                    assert!(e.starts_with("no vbd (device/vbd/0 is missing"), "{e}");
                }
                Err(HandshakeError::Key(path, _)) => assert_eq!(path, named),
                other => panic!("{k}={v:?}: {other:?}"),
            }
            assert_eq!(live.get(), 0);
        }
    }

    #[test]
    fn a_backend_path_out_of_the_devices_directory_is_refused() {
        // What a hostile toolstack could write into device/vbd/0/backend.
        let hostile = [
            "/local/domain/0/backend/vbd/3/0",  // not the backend-id's domain
            "/local/domain/3/device/vbd/0",     // our own frontend directory
            "/local/domain/5/backend/vbd/3/0",  // another domain
            "/local/domain/7/backend/vif/3/0",  // another class
            "/local/domain/7/backend/vbd/3/1",  // another device
            "/local/domain/7/backend/vbd/3/0/", // a trailing slash
            "/local/domain/7/backend/vbd/../../0/backend/vbd/3/0",
            "/local/domain/7/backend/vbd/3/0/../../4/0",
            "/local/domain/07/backend/vbd/3/0", // leading zero
            "/local/domain/7/backend/vbd/-3/0",
            "/local/domain/7/backend/vbd/99999/0",
            "local/domain/7/backend/vbd/3/0",
            "/tool/xenstored",
            "/",
        ];
        for dir in hostile {
            let mut bus = fake_bus(blkback(0));
            bus.set("device/vbd/0/backend", dir);
            let (r, live, calls) = run(&mut bus);
            match r {
                Err(HandshakeError::Key(path, why)) => {
                    assert_eq!(path, "device/vbd/0/backend", "{dir}");
                    assert!(why.ends_with("refused"), "{why}");
                }
                other => panic!("{dir}: {other:?}"),
            }
            assert_eq!((live.get(), calls, bus.publishes), (0, 0, 0), "{dir}");
        }
        // A 4 KiB value is named, not printed whole.
        let mut bus = fake_bus(blkback(0));
        bus.set("device/vbd/0/backend", &"/a".repeat(2048));
        let e = run(&mut bus).0.unwrap_err().to_string();
        assert!(e.len() < 300 && e.contains("(4096 bytes)"), "{e}");
        // The id must be a backend's, not Xen's own.
        assert!(!valid_backend_dir(
            "/local/domain/32753/backend/vbd/3/0",
            0x7FF1,
            "vbd",
            0
        ));
        assert!(valid_backend_dir(BE, BACKEND_ID, "vbd", 0));
        assert!(valid_backend_dir(
            "/local/domain/0/backend/vif/12/10",
            0,
            "vif",
            10
        ));
    }

    #[test]
    fn a_required_feature_the_backend_lacks_is_named_before_anything_is_set_up() {
        const NEEDS: Spec = Spec {
            required: &[Required {
                key: "feature-flush-cache",
                why: "writes could not be made durable",
            }],
            ..VBD
        };
        for v in [Some("0"), None] {
            let mut bus = fake_bus(blkback(0));
            if let Some(v) = v {
                bus.set(&format!("{BE}/feature-flush-cache"), v);
            }
            let r = connect(&mut bus, &NEEDS, 0, TIMEOUT, |_| -> Result<((), _), _> {
                panic!("set up although the backend lacks a required feature")
            });
            assert!(
                matches!(&r, Err(HandshakeError::Key(p, _)) if *p == format!("{BE}/feature-flush-cache")),
                "{v:?}: {r:?}"
            );
            assert_eq!(bus.publishes, 0);
        }
    }

    #[test]
    fn a_failed_publish_or_setup_releases_everything() {
        let mut bus = fake_bus(blkback(0));
        bus.publish_error = Some(XsError::Error(XenError::EAGAIN));
        let (r, live, _) = run(&mut bus);
        assert!(
            matches!(r, Err(HandshakeError::Key(ref p, _)) if p == FE),
            "{r:?}"
        );
        assert_eq!(live.get(), 0);

        let mut bus = fake_bus(blkback(0));
        let r: Result<(Device, ()), _> = connect(&mut bus, &VBD, 0, TIMEOUT, |_| {
            Err("no grant entries".into())
        });
        assert_eq!(r, Err(HandshakeError::Setup("no grant entries".into())));
        assert_eq!(bus.publishes, 0);
    }

    #[test]
    fn the_link_after_connecting() {
        assert_eq!(link_after(Ok("4")), Link::Up);
        assert_eq!(link_after(Ok("5")), Link::Closed(5));
        assert_eq!(link_after(Ok("6\n")), Link::Closed(6));
        // Unknown and reconfiguration states: Linux's frontends ignore them.
        for v in ["0", "7", "8", "99"] {
            assert_eq!(link_after(Ok(v)), Link::Up, "{v}");
        }
        for v in ["", "abc", "-1", "99999999999999999999", "5x"] {
            assert_eq!(link_after(Ok(v)), Link::Garbage(v.into()), "{v}");
        }
        let gone = XsError::Error(XenError::ENOENT);
        assert_eq!(link_after(Err(&gone)), Link::Gone);
        let busy = XsError::Error(XenError::EAGAIN);
        assert!(matches!(link_after(Err(&busy)), Link::Garbage(_)));
    }

    proptest! {
        /// Any string as the backend directory: accepted only when it is
        /// exactly the directory the toolstack would name.
        #[test]
        fn only_the_devices_own_backend_dir_is_accepted(dir in ".{0,80}", id in 0u16..9, dev in 0u32..3) {
            let ok = valid_backend_dir(&dir, id, "vif", dev);
            let fe = dir.split('/').nth(6).unwrap_or("");
            let want = format!("/local/domain/{id}/backend/vif/{fe}/{dev}");
            prop_assert_eq!(ok, dir == want && !fe.is_empty() && fe.parse::<u16>().is_ok_and(|d| d < DOMID_FIRST_RESERVED && d.to_string() == fe));
        }

        /// Whatever a backend's state key holds, judging it never panics and
        /// closes the link only for Closing or Closed.
        #[test]
        fn any_state_value_is_judged(v in ".{0,64}|[0-9]{1,12}") {
            let l = link_after(Ok(&v));
            let closes = matches!(parse_state(&v), Some(5 | 6));
            prop_assert_eq!(matches!(l, Link::Closed(_)), closes);
            prop_assert!(l != Link::Gone);
        }

        /// Whatever the backend writes into its state key, tick by tick, the
        /// handshake ends within its two waits, connects only if the backend
        /// said Connected after our publish, and holds resources only then.
        #[test]
        fn any_backend_script_ends_in_time_and_leaks_nothing(
            states in prop::collection::vec(
                prop_oneof![
                    Just(None),
                    (0u32..8).prop_map(|s| Some(format!("{s}"))),
                    "[ -~]{0,4}".prop_map(Some),
                ],
                1..400,
            )
        ) {
            let script = states.clone();
            let published_at = Rc::new(Cell::new(None::<u64>));
            let p = published_at.clone();
            let mut bus = fake_bus(move |s, now| {
                if p.get().is_none() && s.get(&format!("{FE}/state")).map(String::as_str) == Some("3") {
                    p.set(Some(now));
                }
                match &script[(now / POLL_MS) as usize % script.len()] {
                    Some(v) => s.insert(format!("{BE}/state"), v.clone()),
                    None => s.remove(&format!("{BE}/state")),
                };
            });
            let (r, live, _) = run(&mut bus);
            prop_assert!(bus.now <= 2 * (TIMEOUT + POLL_MS));
            match r {
                Ok(_) => {
                    prop_assert_eq!(live.get(), 1);
                    prop_assert!(published_at.get().is_some());
                    prop_assert_eq!(backend_state(&mut bus, BE), Some(state::CONNECTED));
                }
                Err(_) => prop_assert_eq!(live.get(), 0),
            }
        }
    }
}
