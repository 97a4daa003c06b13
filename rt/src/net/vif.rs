//! The Xen vif: netfront's xenstore handshake with netback, its granted
//! pages and event channel, over the data path of [`rt_xen::netfront`].
//!
//! Handshake (`public/io/netif.h`, Linux netback): read the frontend keys
//! the toolstack wrote (`backend`, `backend-id`, `mac`), wait until the
//! backend reaches InitWait (2) — its keys exist then, no race — grant the
//! two ring pages and the 2 x 256 buffer pages, allocate an unbound event
//! channel for the backend, publish `tx-ring-ref`, `rx-ring-ref`,
//! `event-channel`, `request-rx-copy`, `feature-rx-notify`,
//! `feature-no-csum-offload` and state Connected (4) in one transaction,
//! then wait for the backend to be Connected too.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use rt_xen::netfront::{Netfront, Pages};
use rt_xen::netif::{FrontRing, RING_SIZE};

use crate::event::Channel;
use crate::grant::GrantedPage;
use crate::time::Instant;

/// How long the backend gets for each step of the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// xenbus states (`public/io/xenbus.h`).
mod state {
    pub const INIT_WAIT: u32 = 2;
    pub const CONNECTED: u32 = 4;
    pub const CLOSING: u32 = 5;
    pub const CLOSED: u32 = 6;
}

/// Why the vif could not be brought up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VifError {
    /// No `device/vif/0` (the domain has no network interface).
    NoVif,
    /// A xenstore key is missing or malformed.
    Key(String, String),
    /// The backend did not reach a state in time.
    Backend {
        /// The state waited for.
        want: u32,
        /// The last state seen.
        seen: Option<u32>,
    },
    /// Grants, pages or the event channel.
    Setup(String),
}

impl core::fmt::Display for VifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VifError::NoVif => {
                f.write_str("no vif (device/vif/0 is missing: add one to the xl config)")
            }
            VifError::Key(k, why) => write!(f, "xenstore key {k}: {why}"),
            VifError::Backend { want, seen } => write!(
                f,
                "the backend did not reach state {want} within {} s (last seen: {seen:?})",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
            VifError::Setup(why) => write!(f, "setting up the vif: {why}"),
        }
    }
}

fn key(path: &str) -> Result<String, VifError> {
    crate::xenstore::read(path).map_err(|e| VifError::Key(path.into(), format!("{e}")))
}

/// Parses `00:16:3e:xx:xx:xx`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn backend_state(backend: &str) -> Option<u32> {
    crate::xenstore::read(&format!("{backend}/state"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Waits (sleeping 5 ms between looks) until the backend's state is `want`.
fn wait_backend(backend: &str, want: u32) -> Result<(), VifError> {
    let deadline = Instant::now().after(HANDSHAKE_TIMEOUT);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = backend_state(backend);
        if seen == Some(want) {
            return Ok(());
        }
        if matches!(seen, Some(state::CLOSING | state::CLOSED)) && want != state::CLOSED {
            break;
        }
        crate::time::sleep(Duration::from_millis(5));
    }
    Err(VifError::Backend { want, seen })
}

/// The buffer pages, one per slot and direction.
struct Bufs {
    tx: Vec<GrantedPage>,
    rx: Vec<GrantedPage>,
}

impl Pages for Bufs {
    fn tx_page(&mut self, id: u16) -> &mut [u8; 4096] {
        self.tx[usize::from(id)].bytes_mut()
    }
    fn rx_page(&self, id: u16) -> &[u8; 4096] {
        self.rx[usize::from(id)].bytes()
    }
}

/// A connected vif.
pub struct Vif {
    nf: Netfront,
    bufs: Bufs,
    chan: Channel,
    mac: [u8; 6],
    frontend: String,
    backend: String,
    /// The ring pages; kept (granted) for the life of the vif.
    _rings: [GrantedPage; 2],
    /// The backend closed the connection: the rings are no longer used.
    closed: bool,
}

/// The watch token for the backend's state.
const BACKEND_TOKEN: &str = "rt:net:backend-state";

impl core::fmt::Debug for Vif {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vif")
            .field("frontend", &self.frontend)
            .field("backend", &self.backend)
            .field("port", &self.chan.port())
            .field("stats", &self.nf.stats)
            .finish()
    }
}

fn setup_err(e: impl core::fmt::Display) -> VifError {
    VifError::Setup(format!("{e}"))
}

impl Vif {
    /// Connects `device/vif/<devid>` to its backend.
    pub fn connect(devid: u32) -> Result<Vif, VifError> {
        let fe = format!("device/vif/{devid}");
        let backend = match crate::xenstore::read(&format!("{fe}/backend")) {
            Ok(b) => b,
            Err(crate::xenstore::XsError::Error(rt_xen::XenError::ENOENT)) => {
                return Err(VifError::NoVif);
            }
            Err(e) => return Err(VifError::Key(format!("{fe}/backend"), format!("{e}"))),
        };
        let backend_id: u16 = key(&format!("{fe}/backend-id"))?
            .trim()
            .parse()
            .map_err(|_| VifError::Key(format!("{fe}/backend-id"), "not a domain id".into()))?;
        let mac_s = key(&format!("{fe}/mac"))?;
        let mac = parse_mac(&mac_s)
            .ok_or_else(|| VifError::Key(format!("{fe}/mac"), format!("{mac_s:?} is not a MAC")))?;
        wait_backend(&backend, state::INIT_WAIT)?;
        if key(&format!("{backend}/feature-rx-copy")).map(|v| v.trim() == "1") != Ok(true) {
            return Err(VifError::Key(
                format!("{backend}/feature-rx-copy"),
                "the backend cannot copy received frames".into(),
            ));
        }

        let page = |ro| GrantedPage::new(backend_id, ro).map_err(setup_err);
        let rings = [page(false)?, page(false)?];
        let n = RING_SIZE as usize;
        let mut bufs = Bufs {
            tx: Vec::with_capacity(n),
            rx: Vec::with_capacity(n),
        };
        for _ in 0..n {
            bufs.tx.push(page(true)?);
            bufs.rx.push(page(false)?);
        }
        let mut tx_gref = [0u32; RING_SIZE as usize];
        let mut rx_gref = [0u32; RING_SIZE as usize];
        for i in 0..n {
            tx_gref[i] = bufs.tx[i].gref();
            rx_gref[i] = bufs.rx[i].gref();
        }
        let ring_ptr = |p: &GrantedPage| {
            core::ptr::NonNull::new(p.pfn().addr() as *mut u8)
                .ok_or(VifError::Setup("page 0".into()))
        };
        // SAFETY: each ring page is ours (owned by `rings`, which the Vif
        // keeps for its life), mapped read-write at its identity address, and
        // shared only with the backend it is granted to.
        let (tx, rx) = unsafe {
            (
                FrontRing::init(ring_ptr(&rings[0])?),
                FrontRing::init(ring_ptr(&rings[1])?),
            )
        };
        let (nf, _) = Netfront::new(tx, rx, tx_gref, rx_gref);
        let chan = Channel::alloc_unbound(backend_id).map_err(setup_err)?;

        let (txr, rxr, port) = (rings[0].gref(), rings[1].gref(), chan.port().0);
        crate::xenstore::transaction(|c, t| {
            for (k, v) in [
                ("tx-ring-ref", format!("{txr}")),
                ("rx-ring-ref", format!("{rxr}")),
                ("event-channel", format!("{port}")),
                ("request-rx-copy", "1".into()),
                ("feature-rx-notify", "1".into()),
                ("feature-no-csum-offload", "1".into()),
                ("feature-sg", "0".into()),
                ("state", format!("{}", state::CONNECTED)),
            ] {
                c.write(t, &format!("{fe}/{k}"), v.as_bytes())?;
            }
            Ok(())
        })
        .map_err(|e| VifError::Key(fe.clone(), format!("publishing the rings: {e}")))?;
        wait_backend(&backend, state::CONNECTED)?;
        chan.unmask().map_err(setup_err)?;
        let vif = Vif {
            nf,
            bufs,
            chan,
            mac,
            frontend: fe,
            backend,
            _rings: rings,
            closed: false,
        };
        if let Err(e) = crate::xenstore::watch(&format!("{}/state", vif.backend), BACKEND_TOKEN) {
            crate::println!(
                "rt: net: cannot watch the backend's state ({e}): a disconnect will go unnoticed"
            );
        }
        // The RX buffers were posted before the backend connected.
        vif.notify();
        Ok(vif)
    }

    /// Follows the backend's state: when it closes (`xl network-detach`, a
    /// backend that dies), the frontend answers Closing then Closed and stops
    /// using the rings; the pages stay granted (the backend may still have
    /// them mapped). Returns whether the vif is still connected.
    pub fn check_backend(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let mut changed = false;
        while let Ok(Some(_)) = crate::xenstore::take_event_for(BACKEND_TOKEN) {
            changed = true;
        }
        if !changed {
            return true;
        }
        match backend_state(&self.backend) {
            Some(s @ (state::CLOSING | state::CLOSED)) | Some(s @ 0) => {
                crate::println!(
                    "rt: net: the backend closed {} (state {s}): the network is down",
                    self.frontend
                );
                for st in [state::CLOSING, state::CLOSED] {
                    if let Err(e) = crate::xenstore::write(
                        &format!("{}/state", self.frontend),
                        &format!("{st}"),
                    ) {
                        crate::println!("rt: net: writing the frontend state failed: {e}");
                    }
                }
                self.closed = true;
                false
            }
            None => {
                crate::println!(
                    "rt: net: the backend of {} is gone: the network is down",
                    self.frontend
                );
                self.closed = true;
                false
            }
            Some(_) => true,
        }
    }

    fn notify(&self) {
        // A refused send leaves the backend to its own polling; counted by
        // the missing traffic, nothing to undo here.
        if self.chan.notify().is_err() {
            crate::println!("rt: net: notifying the backend failed");
        }
    }

    /// The MAC address (from xenstore).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The event channel the backend signals.
    pub fn port(&self) -> crate::event::Port {
        self.chan.port()
    }

    /// Takes the backend's event (true if there was one).
    pub fn take_event(&self) -> bool {
        self.chan.take_pending()
    }

    /// Sends a frame that `fill` writes into `len` bytes.
    pub fn send(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        if self.closed {
            return false;
        }
        self.nf.collect_tx();
        match self.nf.send(&mut self.bufs, len, fill) {
            Ok(notify) => {
                if notify {
                    self.notify();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Whether a frame can be sent now (reclaiming answered buffers first).
    pub fn can_send(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.nf.collect_tx();
        self.nf.can_send()
    }

    /// Hands at most one received frame to `f`.
    pub fn receive_one<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.closed {
            return None;
        }
        let mut f = Some(f);
        let mut out = None;
        let (_, notify) = self.nf.receive_at_most(&self.bufs, 1, |d| {
            if let Some(f) = f.take() {
                out = Some(f(d));
            }
        });
        if notify {
            self.notify();
        }
        out
    }

    /// Counters.
    pub fn stats(&self) -> rt_xen::netfront::NetStats {
        self.nf.stats
    }

    /// TX buffers in flight, RX buffers posted.
    pub fn buffers(&self) -> (usize, usize) {
        self.nf.buffers()
    }
}
