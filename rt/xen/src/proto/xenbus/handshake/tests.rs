//! Host tests of the xenbus handshake against a fake xenstore whose backend
//! may be late, absent, closing or hostile.
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

fn run(bus: &mut Fake) -> (Result<Box<Device>, HandshakeError>, Rc<Cell<i32>>, u32) {
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
            Err(HandshakeError::Key(k)) => assert_eq!(k.path, named),
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
            Err(HandshakeError::Key(k)) => {
                assert_eq!(k.path, "device/vbd/0/backend", "{dir}");
                assert!(k.why.ends_with("refused"), "{}", k.why);
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
            matches!(&r, Err(HandshakeError::Key(k)) if k.path == format!("{BE}/feature-flush-cache")),
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
        matches!(r, Err(HandshakeError::Key(ref k)) if k.path == FE),
        "{r:?}"
    );
    assert_eq!(live.get(), 0);

    let mut bus = fake_bus(blkback(0));
    let r: Result<(Box<Device>, ()), _> = connect(&mut bus, &VBD, 0, TIMEOUT, |_| {
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

/// A netback-like backend after a close: back to InitWait once the
/// frontend says Initialising (when `comes_back`), then connected as a
/// fresh one would be.
fn closed_backend(comes_back: bool) -> Fake {
    let fe_state = format!("{FE}/state");
    let be_state = format!("{BE}/state");
    let mut bus = fake_bus(move |s, _| {
        let fe = s.get(&fe_state).cloned();
        let be = s.get(&be_state).cloned();
        match (fe.as_deref(), be.as_deref()) {
            (Some("1"), Some("6")) if comes_back => {
                s.insert(be_state.clone(), "2".into());
            }
            (Some("3"), Some("2")) => {
                s.insert(be_state.clone(), "4".into());
            }
            _ => {}
        }
    });
    bus.set(&format!("{BE}/state"), "6");
    bus.set(&format!("{FE}/state"), "6");
    bus.set(&format!("{BE}/online"), "1");
    bus
}

#[test]
fn a_closed_backend_is_rearmed_and_the_handshake_runs_again() {
    let mut bus = closed_backend(true);
    assert_eq!(rearm(&mut bus, FE, BE, TIMEOUT), Ok(Rearmed::Ready));
    assert_eq!(bus.get(&format!("{BE}/state")), Some("2"));
    let (r, live, _) = run(&mut bus);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(live.get(), 1);
    assert_eq!(bus.get(&format!("{BE}/state")), Some("4"));
}

#[test]
fn a_backend_that_stays_closed_times_out_without_going_on() {
    let mut bus = closed_backend(false);
    let r = rearm(&mut bus, FE, BE, TIMEOUT);
    assert_eq!(
        r,
        Err(HandshakeError::Timeout {
            want: state::INIT_WAIT,
            seen: Some(state::CLOSED),
            waited_ms: TIMEOUT
        })
    );
    assert!(bus.now >= TIMEOUT && bus.now < TIMEOUT + 50);
}

#[test]
fn a_connected_or_garbage_state_is_not_init_wait() {
    for v in ["4", "5", "", "2x", "-2"] {
        let mut bus = closed_backend(false);
        bus.set(&format!("{BE}/state"), v);
        assert!(
            matches!(
                rearm(&mut bus, FE, BE, TIMEOUT),
                Err(HandshakeError::Timeout { .. })
            ),
            "{v:?}"
        );
    }
}

#[test]
fn a_detached_device_is_gone_and_nothing_is_written() {
    // The toolstack removing it: online 0, or the directories gone.
    let mut bus = closed_backend(true);
    bus.set(&format!("{BE}/online"), "0");
    assert!(
        matches!(rearm(&mut bus, FE, BE, TIMEOUT), Ok(Rearmed::Gone(w)) if w.contains("online"))
    );
    assert_eq!(bus.get(&format!("{FE}/state")), Some("6"), "left closed");
    assert_eq!(bus.publishes, 0);
    let mut bus = closed_backend(true);
    bus.store.retain(|k, _| !k.starts_with(FE));
    assert!(matches!(
        rearm(&mut bus, FE, BE, TIMEOUT),
        Ok(Rearmed::Gone(_))
    ));
    assert!(
        bus.get(&format!("{FE}/state")).is_none(),
        "no key made in a removed directory"
    );
    let mut bus = closed_backend(true);
    bus.store.retain(|k, _| !k.starts_with(BE));
    assert!(matches!(
        rearm(&mut bus, FE, BE, TIMEOUT),
        Ok(Rearmed::Gone(_))
    ));
    assert_eq!(bus.publishes, 0);
    // A huge online value is shown bounded.
    let mut bus = closed_backend(true);
    bus.set(&format!("{BE}/online"), &"9".repeat(4096));
    let Ok(Rearmed::Gone(w)) = rearm(&mut bus, FE, BE, TIMEOUT) else {
        panic!("not gone")
    };
    assert!(w.len() < 200, "{w}");
}
