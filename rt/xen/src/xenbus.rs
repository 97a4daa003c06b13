//! The xenbus handshake of netfront with its backend, as logic over a [`Bus`]
//! so that it runs against a misbehaving fake backend on the host.
//!
//! Steps (`public/io/xenbus.h`, `public/io/netif.h`, Linux netfront):
//! 1. read the frontend keys the toolstack wrote: `backend`, `backend-id`, `mac`;
//! 2. wait until the backend is at least InitWait (2): its keys exist then,
//!    so reading them does not race the backend's own set-up;
//! 3. require `feature-rx-copy` = 1 (we only do rx-copy);
//! 4. set up the rings, buffers and event channel (the caller's closure);
//! 5. publish the ring refs, the port, our features and state Connected (4)
//!    in one transaction;
//! 6. wait until the backend is Connected too.
//!
//! Invariants kept here: every wait ends by the deadline (a backend that
//! stalls gives [`HandshakeError::Timeout`] naming the state last seen); a
//! backend that closes ends the wait at once; a state value that is not a
//! plain number counts as "not there yet", never as a state; when a step
//! after publishing fails, the frontend's state is set to Closed so that the
//! backend tears down its side, and the caller's resources are dropped.
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::ops::RangeInclusive;

use crate::XenError;
use crate::xenstore::XsError;

/// xenbus states (`public/io/xenbus.h`, `enum xenbus_state`).
pub mod state {
    /// Unknown (0): the key's owner has not started.
    pub const UNKNOWN: u32 = 0;
    /// Initialising (1).
    pub const INITIALISING: u32 = 1;
    /// InitWait (2): the backend's keys are written; it waits for ours.
    pub const INIT_WAIT: u32 = 2;
    /// Initialised (3).
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

/// The frontend keys of a device, as the toolstack wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// `device/vif/<devid>`.
    pub frontend: String,
    /// The backend's directory.
    pub backend: String,
    /// The backend's domain.
    pub backend_id: u16,
    /// The MAC address.
    pub mac: [u8; 6],
}

/// What the frontend publishes for the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rings {
    /// Grant reference of the TX ring page.
    pub tx_ring_ref: u32,
    /// Grant reference of the RX ring page.
    pub rx_ring_ref: u32,
    /// The event channel port allocated for the backend.
    pub event_channel: u32,
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
                write!(f, "no vif ({fe} is missing: add one to the xl config)")
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
            HandshakeError::Setup(why) => write!(f, "setting up the vif: {why}"),
        }
    }
}

/// Parses `00:16:3e:xx:xx:xx`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
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

/// Reads `device/vif/<devid>`'s keys.
pub fn read_device<B: Bus>(bus: &mut B, devid: u32) -> Result<Device, HandshakeError> {
    let frontend = format!("device/vif/{devid}");
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
        .parse()
        .map_err(|_| HandshakeError::Key(path, format!("{v:?} is not a domain id")))?;
    let path = format!("{frontend}/mac");
    let v = key(bus, &path)?;
    let mac =
        parse_mac(&v).ok_or_else(|| HandshakeError::Key(path, format!("{v:?} is not a MAC")))?;
    Ok(Device {
        frontend,
        backend,
        backend_id,
        mac,
    })
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

/// Runs the whole handshake for `device/vif/<devid>`. `setup` is called once
/// the backend is ready, with its device keys, and returns the resources to
/// keep (dropped if a later step fails) and what to publish. Each wait gets
/// `timeout_ms`.
pub fn connect<B: Bus, R>(
    bus: &mut B,
    devid: u32,
    timeout_ms: u64,
    setup: impl FnOnce(&Device) -> Result<(R, Rings), String>,
) -> Result<(Device, R), HandshakeError> {
    let dev = read_device(bus, devid)?;
    wait_backend(
        bus,
        &dev.backend,
        state::INIT_WAIT..=state::CONNECTED,
        timeout_ms,
    )?;
    let path = format!("{}/feature-rx-copy", dev.backend);
    let v = key(bus, &path)?;
    if v.trim() != "1" {
        return Err(HandshakeError::Key(
            path,
            format!("{v:?}: the backend cannot copy received frames"),
        ));
    }
    let (res, rings) = setup(&dev).map_err(HandshakeError::Setup)?;
    let entries = [
        ("tx-ring-ref", format!("{}", rings.tx_ring_ref)),
        ("rx-ring-ref", format!("{}", rings.rx_ring_ref)),
        ("event-channel", format!("{}", rings.event_channel)),
        ("request-rx-copy", "1".into()),
        ("feature-rx-notify", "1".into()),
        // Packets of up to 64 KiB over several slots, TCP ones as GSO, with
        // checksum offload (no `feature-no-csum-offload`): see netfront.
        ("feature-sg", "1".into()),
        ("feature-gso-tcpv4", "1".into()),
        ("state", format!("{}", state::CONNECTED)),
    ];
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Still usable.
    Up,
    /// The backend is closing or closed (or reset to Unknown): answer
    /// Closing then Closed and stop using the rings.
    Closed(u32),
    /// The backend's state key is gone.
    Gone,
}

/// Judges the backend's state once connected.
pub fn link_after(state: Option<u32>) -> Link {
    match state {
        Some(s @ (state::UNKNOWN | state::CLOSING | state::CLOSED)) => Link::Closed(s),
        Some(_) => Link::Up,
        None => Link::Gone,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::rc::Rc;
    use alloc::string::ToString;
    use core::cell::Cell;
    use proptest::prelude::*;

    const FE: &str = "device/vif/0";
    const BE: &str = "backend/vif/7/0";
    const TIMEOUT: u64 = 1000;

    type Script = Box<dyn FnMut(&mut BTreeMap<String, String>, u64)>;

    /// xenstore with a backend that acts by `script` on every tick and on
    /// every publish; the clock only moves when the frontend sleeps.
    struct Fake {
        store: BTreeMap<String, String>,
        now: u64,
        script: Script,
        /// Publishes fail with this error.
        publish_error: Option<XsError>,
        publishes: u32,
    }

    impl Fake {
        fn new(script: impl FnMut(&mut BTreeMap<String, String>, u64) + 'static) -> Self {
            let mut store = BTreeMap::new();
            for (k, v) in [
                ("device/vif/0/backend", BE),
                ("device/vif/0/backend-id", "7"),
                ("device/vif/0/mac", "00:16:3e:00:00:02"),
                ("device/vif/0/state", "1"),
                ("backend/vif/7/0/state", "1"),
                ("backend/vif/7/0/feature-rx-copy", "1"),
            ] {
                store.insert(k.to_string(), v.to_string());
            }
            Fake {
                store,
                now: 0,
                script: Box::new(script),
                publish_error: None,
                publishes: 0,
            }
        }
        fn get(&self, k: &str) -> Option<&str> {
            self.store.get(k).map(String::as_str)
        }
        fn set(&mut self, k: &str, v: &str) {
            self.store.insert(k.to_string(), v.to_string());
        }
    }

    impl Bus for Fake {
        fn read(&mut self, path: &str) -> Result<String, XsError> {
            self.store
                .get(path)
                .cloned()
                .ok_or(XsError::Error(XenError::ENOENT))
        }
        fn publish(&mut self, dir: &str, entries: &[(&str, String)]) -> Result<(), XsError> {
            self.publishes += 1;
            if let Some(e) = self.publish_error.clone() {
                return Err(e);
            }
            for (k, v) in entries {
                self.store.insert(format!("{dir}/{k}"), v.clone());
            }
            (self.script)(&mut self.store, self.now);
            Ok(())
        }
        fn now_ms(&mut self) -> u64 {
            self.now
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.now += ms;
            (self.script)(&mut self.store, self.now);
        }
    }

    /// A well-behaved netback: InitWait after `delay` ms, Connected once the
    /// frontend says Connected.
    fn netback(delay: u64) -> impl FnMut(&mut BTreeMap<String, String>, u64) {
        move |s, now| {
            let st = s.get("backend/vif/7/0/state").cloned().unwrap_or_default();
            if now >= delay && st == "1" {
                s.insert("backend/vif/7/0/state".into(), "2".into());
            }
            if st == "2" && s.get("device/vif/0/state").map(String::as_str) == Some("4") {
                s.insert("backend/vif/7/0/state".into(), "4".into());
            }
        }
    }

    /// Stands for granted pages: counts the live ones.
    struct Granted(Rc<Cell<i32>>);
    impl Drop for Granted {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    const RINGS: Rings = Rings {
        tx_ring_ref: 8,
        rx_ring_ref: 9,
        event_channel: 5,
    };

    fn run(bus: &mut Fake) -> (Result<Device, HandshakeError>, Rc<Cell<i32>>, u32) {
        let live = Rc::new(Cell::new(0));
        let calls = Rc::new(Cell::new(0u32));
        let (l, c) = (live.clone(), calls.clone());
        let r = connect(bus, 0, TIMEOUT, move |dev| {
            assert_eq!(dev.backend_id, 7);
            c.set(c.get() + 1);
            l.set(l.get() + 1);
            Ok((Granted(l), RINGS))
        });
        let r = r.map(|(dev, g)| {
            core::mem::forget(g);
            dev
        });
        (r, live, calls.get())
    }

    #[test]
    fn a_good_backend_gets_our_rings_and_connects() {
        let mut bus = Fake::new(netback(40));
        let (r, live, calls) = run(&mut bus);
        let dev = r.unwrap();
        assert_eq!(dev.mac, [0, 0x16, 0x3e, 0, 0, 2]);
        assert_eq!((live.get(), calls, bus.publishes), (1, 1, 1));
        for (k, v) in [
            ("tx-ring-ref", "8"),
            ("rx-ring-ref", "9"),
            ("event-channel", "5"),
            ("request-rx-copy", "1"),
            ("feature-rx-notify", "1"),
            ("feature-sg", "1"),
            ("feature-gso-tcpv4", "1"),
            ("state", "4"),
        ] {
            assert_eq!(bus.get(&format!("{FE}/{k}")), Some(v), "{k}");
        }
        assert!(bus.now >= 40, "waited for InitWait instead of racing it");
    }

    #[test]
    fn a_backend_already_connected_is_not_waited_on_for_init_wait() {
        let mut bus = Fake::new(|_, _| {});
        bus.set("backend/vif/7/0/state", "4");
        let (r, live, _) = run(&mut bus);
        assert!(r.is_ok());
        assert_eq!(live.get(), 1);
        assert_eq!(bus.now, 0);
    }

    #[test]
    fn a_backend_that_never_starts_times_out_before_anything_is_granted() {
        let mut bus = Fake::new(|_, _| {});
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
        let mut bus = Fake::new(|s, _| {
            s.insert("backend/vif/7/0/state".into(), "2".into());
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
        assert_eq!(bus.get("device/vif/0/state"), Some("6"), "frontend Closed");
    }

    #[test]
    fn a_backend_that_closes_mid_handshake_ends_the_wait_at_once() {
        for bad in ["5", "6"] {
            let mut bus = Fake::new(move |s, _| {
                let fe_up = s.get("device/vif/0/state").map(String::as_str) == Some("4");
                let v = if fe_up { bad } else { "2" };
                s.insert("backend/vif/7/0/state".into(), v.into());
            });
            bus.set("backend/vif/7/0/state", "2");
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
        let mut bus = Fake::new(|_, _| {});
        bus.set("backend/vif/7/0/state", "4garbage");
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
        let mut bus = Fake::new(|s, now| {
            if now % 20 == 0 {
                s.remove("backend/vif/7/0/state");
            } else {
                s.insert("backend/vif/7/0/state".into(), "1".into());
            }
        });
        let (r, _, calls) = run(&mut bus);
        assert!(matches!(r, Err(HandshakeError::Timeout { want: 2, .. })));
        assert_eq!(calls, 0);
    }

    #[test]
    fn bad_frontend_and_backend_keys_are_named() {
        let cases: [(&str, Option<&str>, &str); 6] = [
            ("device/vif/0/backend", None, "NoDevice"),
            (
                "device/vif/0/backend-id",
                Some("dom0"),
                "device/vif/0/backend-id",
            ),
            ("device/vif/0/backend-id", None, "device/vif/0/backend-id"),
            (
                "device/vif/0/mac",
                Some("00:16:3e:00:00"),
                "device/vif/0/mac",
            ),
            (
                "device/vif/0/mac",
                Some("00:16:3e:00:00:002"),
                "device/vif/0/mac",
            ),
            (
                "backend/vif/7/0/feature-rx-copy",
                Some("0"),
                "backend/vif/7/0/feature-rx-copy",
            ),
        ];
        for (k, v, named) in cases {
            let mut bus = Fake::new(netback(0));
            match v {
                Some(v) => bus.set(k, v),
                None => {
                    bus.store.remove(k);
                }
            }
            let (r, live, _) = run(&mut bus);
            match r {
                Err(HandshakeError::NoDevice(fe)) => {
                    assert_eq!((fe.as_str(), named), (FE, "NoDevice"))
                }
                Err(HandshakeError::Key(path, _)) => assert_eq!(path, named),
                other => panic!("{k}={v:?}: {other:?}"),
            }
            assert_eq!(live.get(), 0);
        }
    }

    #[test]
    fn a_failed_publish_or_setup_releases_everything() {
        let mut bus = Fake::new(netback(0));
        bus.publish_error = Some(XsError::Error(XenError::EAGAIN));
        let (r, live, _) = run(&mut bus);
        assert!(
            matches!(r, Err(HandshakeError::Key(ref p, _)) if p == FE),
            "{r:?}"
        );
        assert_eq!(live.get(), 0);

        let mut bus = Fake::new(netback(0));
        let r: Result<(Device, ()), _> =
            connect(&mut bus, 0, TIMEOUT, |_| Err("no grant entries".into()));
        assert_eq!(r, Err(HandshakeError::Setup("no grant entries".into())));
        assert_eq!(bus.publishes, 0);
    }

    #[test]
    fn the_link_after_connecting() {
        assert_eq!(link_after(Some(4)), Link::Up);
        assert_eq!(link_after(Some(5)), Link::Closed(5));
        assert_eq!(link_after(Some(6)), Link::Closed(6));
        assert_eq!(link_after(Some(0)), Link::Closed(0));
        assert_eq!(link_after(None), Link::Gone);
    }

    proptest! {
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
            let mut bus = Fake::new(move |s, now| {
                if p.get().is_none() && s.get("device/vif/0/state").map(String::as_str) == Some("4") {
                    p.set(Some(now));
                }
                match &script[(now / POLL_MS) as usize % script.len()] {
                    Some(v) => s.insert("backend/vif/7/0/state".into(), v.clone()),
                    None => s.remove("backend/vif/7/0/state"),
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
