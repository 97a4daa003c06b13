//! The vif's keys for the xenbus handshake (`public/io/netif.h`, Linux
//! netfront): what netfront reads, requires and publishes, as data for the
//! device-independent [`crate::proto::xenbus::connect`].
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::proto::xenbus::{self, Bus, Device, FrontendKey, HandshakeError, Required, Spec, state};

/// The vif class: the MAC from the toolstack, receive-copy from the
/// backend (the only receive mode we implement), Connected published with
/// the keys.
pub const SPEC: Spec = Spec {
    class: "vif",
    frontend: &[FrontendKey {
        name: "mac",
        what: "a MAC",
        valid: |v| parse_mac(v).is_some(),
    }],
    required: &[Required {
        key: "feature-rx-copy",
        why: "the backend cannot copy received frames",
    }],
    offered: &[],
    publish_state: state::CONNECTED,
};

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

/// Parses `00:16:3e:xx:xx:xx`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = crate::proto::value::trimmed(s).split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The keys netfront publishes: its rings, its event channel and the
/// features it asks for.
pub fn keys(r: Rings) -> Vec<(&'static str, String)> {
    alloc::vec![
        ("tx-ring-ref", format!("{}", r.tx_ring_ref)),
        ("rx-ring-ref", format!("{}", r.rx_ring_ref)),
        ("event-channel", format!("{}", r.event_channel)),
        ("request-rx-copy", "1".into()),
        ("feature-rx-notify", "1".into()),
        // Packets of up to 64 KiB over several slots, TCP ones as GSO, with
        // checksum offload (no `feature-no-csum-offload`): see rx.rs.
        ("feature-sg", "1".into()),
        ("feature-gso-tcpv4", "1".into()),
    ]
}

/// A vif as the handshake found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vif {
    /// The frontend and backend directories and the backend's domain.
    pub device: Box<Device>,
    /// The MAC address.
    pub mac: [u8; 6],
}

/// Runs the handshake for `device/vif/<devid>`: `setup` gets the device
/// (with its MAC) once the backend is ready, and returns the resources to
/// keep and the rings to publish.
// Cold (once per connection): kept out of line, the image is smaller.
#[inline(never)]
pub fn connect<B: Bus, R>(
    bus: &mut B,
    devid: u32,
    timeout_ms: u64,
    setup: impl FnOnce(&Device) -> Result<(R, Rings), String>,
) -> Result<(Vif, R), HandshakeError> {
    let (device, res) = xenbus::connect(bus, &SPEC, devid, timeout_ms, |dev| {
        setup(dev).map(|(res, rings)| (res, keys(rings)))
    })?;
    let mac = device.key("mac").and_then(parse_mac).ok_or_else(|| {
        // read_device checked it already; say so rather than panic.
        HandshakeError::key(format!("{}/mac", device.frontend), "not a MAC".into())
    })?;
    Ok((Vif { device, mac }, res))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::proto::xenbus::fake::{self, Fake, TIMEOUT};
    use alloc::rc::Rc;
    use core::cell::Cell;

    const FE: &str = "device/vif/0";

    fn fake_bus(delay: u64) -> Fake {
        Fake::new(
            "vif",
            &[("mac", "00:16:3e:00:00:02")],
            &[("feature-rx-copy", "1")],
            fake::backend("vif", delay, state::CONNECTED),
        )
    }

    const RINGS: Rings = Rings {
        tx_ring_ref: 8,
        rx_ring_ref: 9,
        event_channel: 5,
    };

    fn run(bus: &mut Fake) -> (Result<Vif, HandshakeError>, Rc<Cell<i32>>) {
        let live = Rc::new(Cell::new(0));
        let l = live.clone();
        let r = connect(bus, 0, TIMEOUT, move |_| {
            l.set(l.get() + 1);
            Ok(((), RINGS))
        });
        (r.map(|(v, ())| v), live)
    }

    #[test]
    fn a_good_backend_gets_our_rings_and_features_and_connects() {
        let mut bus = fake_bus(40);
        let (r, live) = run(&mut bus);
        let vif = r.unwrap();
        assert_eq!(vif.mac, [0, 0x16, 0x3e, 0, 0, 2]);
        assert_eq!((live.get(), bus.publishes), (1, 1));
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
    fn with_a_watch_the_handshake_reads_the_state_when_it_changed_not_every_5_ms() {
        // Polling: the state is read every 5 ms until InitWait at 43 ms.
        let mut polled = fake_bus(43);
        assert!(run(&mut polled).0.is_ok());
        // Watching: read once, then again when it changed; the wait ends at
        // the change, not at the next 5 ms step, and the watch is gone after.
        let mut watched = fake_bus(43);
        watched.watches = true;
        assert!(run(&mut watched).0.is_ok());
        assert_eq!(watched.watched, None, "the handshake's watch was removed");
        assert!(
            watched.now < polled.now,
            "{} vs {}",
            watched.now,
            polled.now
        );
        assert_eq!(watched.now, 43);
        assert!(
            watched.reads + 5 < polled.reads,
            "{} reads watching vs {} polling",
            watched.reads,
            polled.reads
        );
        // One watch, for InitWait (at 43 ms): this backend connects the
        // moment our keys are published, so the wait for Connected finds
        // it there with its first read, and sets none — as a backend at
        // InitWait before the handshake needs none for the first wait (one
        // read instead of a watch set, a read and the watch removed).
        assert_eq!(watched.watches_set, 1);
        let mut ready = fake_bus(0);
        ready.watches = true;
        ready.set("/local/domain/7/backend/vif/3/0/state", "2");
        assert!(run(&mut ready).0.is_ok());
        assert_eq!(ready.watches_set, 0, "no wait needed a watch");
        assert_eq!(ready.watched, None);
        // A backend that never answers still times out while watched.
        let mut silent = fake_bus(u64::MAX);
        silent.watches = true;
        assert!(matches!(
            run(&mut silent).0,
            Err(HandshakeError::Timeout { .. })
        ));
        assert!(silent.now >= TIMEOUT);
    }

    #[test]
    fn a_bad_mac_or_a_backend_without_rx_copy_is_named_before_setup() {
        let cases: [(&str, Option<&str>, &str); 4] = [
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
                "/local/domain/7/backend/vif/3/0/feature-rx-copy",
                Some("0"),
                "/local/domain/7/backend/vif/3/0/feature-rx-copy",
            ),
            (
                "/local/domain/7/backend/vif/3/0/feature-rx-copy",
                None,
                "/local/domain/7/backend/vif/3/0/feature-rx-copy",
            ),
        ];
        for (k, v, named) in cases {
            let mut bus = fake_bus(0);
            match v {
                Some(v) => bus.set(k, v),
                None => {
                    bus.store.remove(k);
                }
            }
            let (r, live) = run(&mut bus);
            match r {
                Err(HandshakeError::Key(e)) => assert_eq!(e.path, named, "{k}={v:?}"),
                other => panic!("{k}={v:?}: {other:?}"),
            }
            assert_eq!(live.get(), 0, "{k}={v:?}: nothing set up");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:16:3e:0a:ff:02"),
            Some([0, 0x16, 0x3e, 10, 255, 2])
        );
        assert_eq!(
            parse_mac(" 00:16:3e:0a:ff:02\n"),
            Some([0, 0x16, 0x3e, 10, 255, 2])
        );
        for bad in [
            "",
            "00:16:3e:0a:ff",
            "00:16:3e:0a:ff:02:03",
            "0:16:3e:0a:ff:02",
            "zz:16:3e:0a:ff:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}
