//! The vbd's keys for the xenbus handshake (`public/io/blkif.h`): what
//! blkfront reads, publishes, and — once the backend is Connected — the
//! disk it describes ([`Geometry`]), every value parsed and bounded (the
//! backend is not trusted: a bad value is an error naming the key).
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::blkif::{MAX_INDIRECT_PAGES, SEGMENTS_PER_INDIRECT_PAGE, VDISK_READONLY};
use crate::proto::untrusted::Shown;
use crate::proto::value::{decimal, is_on, trimmed};
use crate::proto::xenbus::{self, Bus, Device, FrontendKey, HandshakeError, Spec, state};

/// The vbd class: the toolstack's `virtual-device` number; the backend's
/// ring order read at InitWait; Initialised published with our keys (the
/// disk's size and features are read when the backend connects, then we
/// say Connected).
pub const SPEC: Spec = Spec {
    class: "vbd",
    frontend: &[FrontendKey {
        name: "virtual-device",
        what: "a device number",
        valid: |v| decimal(v).is_some_and(|n| u32::try_from(n).is_ok()),
    }],
    required: &[],
    offered: &["max-ring-page-order"],
    publish_state: state::INITIALISED,
};

/// The most segments we put in one request: 1 MiB of pages (Linux's
/// blkback offers 256 too), one indirect page's worth.
pub const MAX_SEGMENTS: u32 = 256;
const _: () = assert!(MAX_SEGMENTS as usize <= SEGMENTS_PER_INDIRECT_PAGE * MAX_INDIRECT_PAGES);

/// The largest ring we make: 2^2 = 4 pages, 128 requests.
pub const MAX_RING_ORDER: u32 = 2;

/// The ring order to use: the backend's `max-ring-page-order` (absent, or
/// not a small number: 0, a one-page ring), capped at [`MAX_RING_ORDER`].
pub fn ring_order(dev: &Device) -> u32 {
    dev.offered
        .iter()
        .find(|(k, _)| *k == "max-ring-page-order")
        .and_then(|(_, v)| decimal(v.as_deref()?))
        .map_or(0, |o| o.min(u64::from(MAX_RING_ORDER)) as u32)
}

/// Names of the ring's page keys: `ring-ref0` .. `ring-ref3`.
const RING_REF_N: [&str; 1 << MAX_RING_ORDER] =
    ["ring-ref0", "ring-ref1", "ring-ref2", "ring-ref3"];

/// What the frontend publishes for the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rings {
    /// Grant references of the ring's pages (1, 2 or 4 of them).
    pub ring_refs: Vec<u32>,
    /// The event channel port allocated for the backend.
    pub event_channel: u32,
}

/// The keys blkfront publishes: its ring (`ring-ref` for one page; else
/// `ring-page-order` and `ring-ref0`..), channel, ABI, and that it reuses
/// its grants (`feature-persistent`: every data page is granted once).
pub fn keys(r: Rings) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if let [one] = r.ring_refs[..] {
        v.push(("ring-ref", format!("{one}")));
    } else {
        let order = r.ring_refs.len().trailing_zeros();
        v.push(("ring-page-order", format!("{order}")));
        for (k, g) in RING_REF_N.iter().zip(&r.ring_refs) {
            v.push((*k, format!("{g}")));
        }
    }
    v.extend([
        ("event-channel", format!("{}", r.event_channel)),
        ("protocol", "x86_64-abi".into()),
        ("feature-persistent", "1".into()),
    ]);
    v
}

/// The disk as its backend describes it once Connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size in logical sectors.
    pub sectors: u64,
    /// Logical sector size in bytes (a power of two, 512..=4096).
    pub sector_size: u32,
    /// Physical sector size in bytes (a multiple of the logical one).
    pub physical_sector_size: u32,
    /// The backend refuses writes (`info` has VDISK_READONLY, or `mode` is r).
    pub read_only: bool,
    /// `feature-flush-cache`.
    pub flush: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-persistent`: the backend keeps our grants mapped.
    pub persistent: bool,
    /// Segments an indirect request may carry (0: no indirect requests),
    /// capped at [`MAX_SEGMENTS`].
    pub indirect_segments: u32,
}

impl Geometry {
    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors * u64::from(self.sector_size)
    }
}

fn read<B: Bus>(bus: &mut B, path: &str) -> Option<String> {
    bus.read(path).ok()
}

fn number<B: Bus>(bus: &mut B, dir: &str, key: &str) -> Result<Option<u64>, HandshakeError> {
    let path = format!("{dir}/{key}");
    match read(bus, &path) {
        None => Ok(None),
        Some(v) => {
            let t = trimmed(&v);
            if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HandshakeError::key(
                    path,
                    format!("{} is not a number", Shown(&v)),
                ));
            }
            decimal(t)
                .map(Some)
                .ok_or_else(|| HandshakeError::key(path, format!("{} is out of range", Shown(&v))))
        }
    }
}

fn flag<B: Bus>(bus: &mut B, dir: &str, key: &str) -> bool {
    read(bus, &format!("{dir}/{key}")).is_some_and(|v| is_on(&v))
}

/// Reads the disk the backend describes (it is Connected: its keys exist).
pub fn geometry<B: Bus>(bus: &mut B, backend: &str) -> Result<Geometry, HandshakeError> {
    let bad = |key: &str, why: String| HandshakeError::key(format!("{backend}/{key}"), why);
    let sector_size = number(bus, backend, "sector-size")?.unwrap_or(512);
    if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Err(bad(
            "sector-size",
            format!("{sector_size} is not a power of two in 512..=4096"),
        ));
    }
    let physical = number(bus, backend, "physical-sector-size")?.unwrap_or(sector_size);
    if physical == 0 || !physical.is_multiple_of(sector_size) || physical > 1 << 20 {
        return Err(bad(
            "physical-sector-size",
            format!("{physical} is not a multiple of {sector_size} up to 1 MiB"),
        ));
    }
    let sectors =
        number(bus, backend, "sectors")?.ok_or_else(|| bad("sectors", "missing".into()))?;
    if sectors
        .checked_mul(sector_size)
        .is_none_or(|b| b >= 1 << 63)
    {
        return Err(bad("sectors", format!("{sectors} sectors overflow")));
    }
    let info = number(bus, backend, "info")?.unwrap_or(0);
    let mode_ro = read(bus, &format!("{backend}/mode")).is_some_and(|m| m.trim_ascii() == "r");
    let indirect = number(bus, backend, "feature-max-indirect-segments")?.unwrap_or(0);
    let indirect_segments = if indirect > super::blkif::MAX_DIRECT_SEGMENTS as u64 {
        indirect.min(u64::from(MAX_SEGMENTS)) as u32
    } else {
        0
    };
    Ok(Geometry {
        sectors,
        sector_size: sector_size as u32,
        physical_sector_size: physical as u32,
        read_only: info & u64::from(VDISK_READONLY) != 0 || mode_ro,
        flush: flag(bus, backend, "feature-flush-cache"),
        barrier: flag(bus, backend, "feature-barrier"),
        persistent: flag(bus, backend, "feature-persistent"),
        indirect_segments,
    })
}

/// A vbd as the handshake found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vbd {
    /// The frontend and backend directories and the backend's domain.
    pub device: Box<Device>,
    /// The disk.
    pub geometry: Geometry,
}

/// Runs the handshake for `device/vbd/<devid>`: `setup` gets the device
/// once the backend waits for us and returns the resources to keep and
/// the ring to publish; once the backend is Connected, the disk is read and
/// we say Connected. On a bad disk description the frontend says Closed.
pub fn connect<B: Bus, R>(
    bus: &mut B,
    devid: u32,
    timeout_ms: u64,
    setup: impl FnOnce(&Device) -> Result<(R, Rings), String>,
) -> Result<(Vbd, R), HandshakeError> {
    let (device, res) = xenbus::connect(bus, &SPEC, devid, timeout_ms, |dev| {
        setup(dev).map(|(res, rings)| (res, keys(rings)))
    })?;
    let connected = geometry(bus, &device.backend).and_then(|g| {
        bus.publish(
            &device.frontend,
            &[("state", format!("{}", state::CONNECTED))],
        )
        .map_err(|e| HandshakeError::key(device.frontend.clone(), format!("saying Connected: {e}")))
        .map(|()| g)
    });
    match connected {
        Ok(geometry) => Ok((Vbd { device, geometry }, res)),
        Err(e) => {
            // Best effort: the error above is what the caller needs.
            let _ = bus.publish(&device.frontend, &[("state", format!("{}", state::CLOSED))]);
            Err(e)
        }
    }
}

/// The `virtual-device` number of a Linux-style name (`xvda` = 51712,
/// `xvdb` = 51728, ...; `xvdaa` and beyond use the extended scheme), for
/// naming disks as the toolstack does.
pub fn vdev_number(name: &str) -> Option<u32> {
    let letters = name.strip_prefix("xvd")?;
    if letters.is_empty() || letters.len() > 2 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let idx = letters
        .bytes()
        .fold(0u32, |a, b| a * 26 + u32::from(b - b'a') + 1)
        - 1;
    if idx < 16 {
        Some(202 << 8 | idx << 4)
    } else {
        Some(1 << 28 | idx << 8)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::proto::xenbus::fake::{self, Fake, TIMEOUT};
    use alloc::collections::BTreeMap;

    const BE: &str = "/local/domain/7/backend/vbd/3/0";

    /// blkback: InitWait with its ring order, Connected (with the disk's
    /// keys) once we say Initialised.
    fn blkback(disk: &'static [(&'static str, &'static str)]) -> Fake {
        Fake::new(
            "vbd",
            &[("virtual-device", "51712")],
            &[("max-ring-page-order", "4")],
            move |s: &mut BTreeMap<String, String>, now| {
                fake::backend("vbd", 10, state::INITIALISED)(s, now);
                if s.get(&format!("{BE}/state")).map(String::as_str) == Some("4")
                    && !s.contains_key(&format!("{BE}/sectors"))
                {
                    for (k, v) in disk {
                        s.insert(format!("{BE}/{k}"), String::from(*v));
                    }
                }
            },
        )
    }

    const GOOD: &[(&str, &str)] = &[
        ("sectors", "524288"),
        ("sector-size", "512"),
        ("physical-sector-size", "4096"),
        ("info", "0"),
        ("feature-flush-cache", "1"),
        ("feature-persistent", "1"),
        ("feature-max-indirect-segments", "256"),
    ];

    fn run(bus: &mut Fake) -> Result<Vbd, HandshakeError> {
        connect(bus, 0, TIMEOUT, |_| {
            Ok((
                (),
                Rings {
                    ring_refs: alloc::vec![8],
                    event_channel: 5,
                },
            ))
        })
        .map(|(v, ())| v)
    }

    #[test]
    fn a_good_backend_describes_the_disk_and_we_connect() {
        let mut bus = blkback(GOOD);
        let v = run(&mut bus).unwrap();
        let g = v.geometry;
        assert_eq!(g.bytes(), 256 << 20);
        assert_eq!((g.sector_size, g.physical_sector_size), (512, 4096));
        assert!(g.flush && g.persistent && !g.read_only && !g.barrier);
        assert_eq!(g.indirect_segments, 256);
        for (k, v) in [
            ("ring-ref", "8"),
            ("event-channel", "5"),
            ("protocol", "x86_64-abi"),
            ("feature-persistent", "1"),
            ("state", "4"),
        ] {
            assert_eq!(bus.get(&format!("device/vbd/0/{k}")), Some(v), "{k}");
        }
    }

    #[test]
    fn read_only_disks_4k_sectors_and_small_indirect_offers() {
        let mut bus = blkback(&[
            ("sectors", "100"),
            ("sector-size", "4096"),
            ("info", "4"),
            ("feature-max-indirect-segments", "8"),
        ]);
        let g = run(&mut bus).unwrap().geometry;
        assert!(g.read_only && !g.flush && !g.persistent);
        assert_eq!(
            (g.sector_size, g.physical_sector_size, g.bytes()),
            (4096, 4096, 409_600)
        );
        assert_eq!(
            g.indirect_segments, 0,
            "8 is fewer than a direct request carries"
        );
        let mut bus = blkback(&[
            ("sectors", "100"),
            ("mode", "r"),
            ("feature-max-indirect-segments", "99999"),
        ]);
        let g = run(&mut bus).unwrap().geometry;
        assert!(g.read_only);
        assert_eq!(g.indirect_segments, MAX_SEGMENTS, "capped at ours");
    }

    #[test]
    fn a_bad_disk_description_names_the_key_and_closes() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("sector-size", "512")], "sectors"),
            (&[("sectors", "-1")], "sectors"),
            (&[("sectors", "")], "sectors"),
            (&[("sectors", "99999999999999999999999")], "sectors"),
            (&[("sectors", "18446744073709551615")], "sectors"),
            (&[("sectors", "8"), ("sector-size", "1000")], "sector-size"),
            (&[("sectors", "8"), ("sector-size", "8192")], "sector-size"),
            (&[("sectors", "8"), ("sector-size", "0x200")], "sector-size"),
            (
                &[("sectors", "8"), ("physical-sector-size", "768")],
                "physical-sector-size",
            ),
            (&[("sectors", "8"), ("info", "many")], "info"),
        ];
        for (disk, key) in cases {
            let mut bus = blkback(disk);
            match run(&mut bus) {
                Err(HandshakeError::Key(k)) => {
                    assert_eq!(k.path, format!("{BE}/{key}"), "{disk:?}")
                }
                other => panic!("{disk:?}: {other:?}"),
            }
            assert_eq!(bus.get("device/vbd/0/state"), Some("6"), "{disk:?}: Closed");
        }
    }

    #[test]
    fn a_multi_page_ring_is_published_as_blkif_h_says() {
        let k = keys(Rings {
            ring_refs: alloc::vec![8, 9, 10, 11],
            event_channel: 5,
        });
        let get = |n: &str| k.iter().find(|(key, _)| *key == n).map(|(_, v)| v.as_str());
        assert_eq!(get("ring-page-order"), Some("2"));
        assert_eq!(
            (get("ring-ref0"), get("ring-ref3")),
            (Some("8"), Some("11"))
        );
        assert_eq!(get("ring-ref"), None, "not with a multi-page ring");
        let mut dev = Device {
            frontend: "f".into(),
            backend: "b".into(),
            backend_id: 0,
            keys: alloc::vec![],
            offered: alloc::vec![("max-ring-page-order", Some("4".into()))],
        };
        assert_eq!(ring_order(&dev), MAX_RING_ORDER);
        for (v, want) in [(Some("1"), 1), (Some("x"), 0), (Some("-1"), 0), (None, 0)] {
            dev.offered[0].1 = v.map(Into::into);
            assert_eq!(ring_order(&dev), want, "{v:?}");
        }
    }

    #[test]
    fn linux_disk_names() {
        assert_eq!(vdev_number("xvda"), Some(51712));
        assert_eq!(vdev_number("xvdb"), Some(51728));
        assert_eq!(vdev_number("xvdp"), Some(51952));
        assert_eq!(vdev_number("xvdq"), Some(1 << 28 | 16 << 8));
        assert_eq!(vdev_number("xvdaa"), Some(1 << 28 | 26 << 8));
        for bad in ["", "xvd", "sda", "xvdA", "xvdaaa", "xvd1"] {
            assert_eq!(vdev_number(bad), None, "{bad}");
        }
    }
}
