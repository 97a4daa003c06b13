//! The Xen vif: netfront's xenstore handshake with netback (the logic is
//! [`rt_xen::dev::net::xenbus::connect`] over the generic handshake,
//! host-tested against misbehaving backends), its granted pages and event
//! channel, over the data path of [`rt_xen::dev::net`]. The vif's state is
//! shared with the device registry ([`crate::dev`]).
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use rt_xen::abi::PAGE_SIZE;
use rt_xen::dev::net::netif::RING_SIZE;
use rt_xen::dev::net::xenbus::{self as vif_keys, Rings};
use rt_xen::dev::net::{NetStats, Netfront, Pages};
use rt_xen::proto::shared_ring::FrontRing;
use rt_xen::proto::xenbus::{self, Bus, HandshakeError, Link, state};
use rt_xen::proto::xenstore::XsError;
use spin::Mutex;

use crate::dev::{Device, Registration};
use crate::event::{Channel, Port};
use crate::grant::GrantedPage;
use crate::time::Instant;

/// How long the backend gets for each step of the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the vif could not be brought up.
pub type VifError = HandshakeError;

/// The handshake's xenstore and clock: the runtime's own.
struct RtBus;

impl Bus for RtBus {
    fn read(&mut self, path: &str) -> Result<String, XsError> {
        crate::xenstore::read(path)
    }
    fn publish(&mut self, dir: &str, entries: &[(&str, String)]) -> Result<(), XsError> {
        crate::xenstore::transaction(|c, t| {
            for (k, v) in entries {
                c.write(t, &format!("{dir}/{k}"), v.as_bytes())?;
            }
            Ok(())
        })
    }
    fn now_ms(&mut self) -> u64 {
        Instant::now().as_nanos() / 1_000_000
    }
    fn sleep_ms(&mut self, ms: u64) {
        crate::sched::sleep(Duration::from_millis(ms));
    }
}

/// The buffer pages, one per slot and direction.
struct Bufs {
    tx: Vec<GrantedPage>,
    rx: Vec<GrantedPage>,
}

impl Pages for Bufs {
    fn tx_page(&mut self, id: u16) -> &mut [u8; PAGE_SIZE] {
        self.tx[usize::from(id)].bytes_mut()
    }
    fn rx_page(&self, id: u16) -> &[u8; PAGE_SIZE] {
        self.rx[usize::from(id)].bytes()
    }
}

/// What the vif and the device registry share.
struct State {
    nf: Netfront,
    bufs: Bufs,
    chan: Channel,
    frontend: String,
    backend: String,
    /// The ring pages; kept (granted) for the life of the vif.
    _rings: [GrantedPage; 2],
    /// The backend closed the connection: the rings are no longer used.
    closed: bool,
}

impl Device for State {
    fn name(&self) -> &str {
        self.frontend
            .strip_prefix("device/")
            .unwrap_or(&self.frontend)
    }
    fn connected(&self) -> bool {
        !self.closed
    }
}

impl State {
    fn notify(&self) {
        // A refused send leaves the backend to its own polling; counted by
        // the missing traffic, nothing to undo here.
        if self.chan.notify().is_err() {
            crate::console::println!("rt: net: notifying the backend failed");
        }
    }
}

/// A connected vif.
pub struct Vif {
    state: Arc<Mutex<State>>,
    mac: [u8; 6],
    port: Port,
    _registration: Registration,
}

/// The watch token for the backend's state.
const BACKEND_TOKEN: &str = "rt:net:backend-state";

impl core::fmt::Debug for Vif {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Vif")
            .field("frontend", &s.frontend)
            .field("backend", &s.backend)
            .field("port", &self.port)
            .field("stats", &s.nf.stats)
            .finish()
    }
}

impl Vif {
    /// Connects `device/vif/<devid>` to its backend.
    pub fn connect(devid: u32) -> Result<Vif, VifError> {
        let timeout = HANDSHAKE_TIMEOUT.as_millis() as u64;
        let (found, (rings, bufs, nf, chan)) =
            vif_keys::connect(&mut RtBus, devid, timeout, |dev| {
                Self::set_up(dev.backend_id)
            })?;
        chan.unmask()
            .map_err(|e| HandshakeError::Setup(format!("{e}")))?;
        let port = chan.port();
        crate::event::name_port(port, "vif");
        let dev = found.device;
        let state = Arc::new(Mutex::new(State {
            nf,
            bufs,
            chan,
            frontend: dev.frontend,
            backend: dev.backend,
            _rings: rings,
            closed: false,
        }));
        let vif = Vif {
            _registration: crate::dev::register(&state),
            state,
            mac: found.mac,
            port,
        };
        let s = vif.state.lock();
        if let Err(e) = crate::xenstore::watch(&format!("{}/state", s.backend), BACKEND_TOKEN) {
            crate::console::println!(
                "rt: net: cannot watch the backend's state ({e}): a disconnect will go unnoticed"
            );
        }
        // The RX buffers were posted before the backend connected.
        s.notify();
        drop(s);
        Ok(vif)
    }

    /// Grants the two ring pages and the 2 x 256 buffer pages to the backend
    /// and allocates its event channel (masked until connected).
    #[allow(clippy::type_complexity)]
    fn set_up(
        backend_id: u16,
    ) -> Result<(([GrantedPage; 2], Bufs, Netfront, Channel), Rings), String> {
        let page = |ro| GrantedPage::new(backend_id, ro).map_err(|e| format!("{e}"));
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
            core::ptr::NonNull::new(p.pfn().addr() as *mut u8).ok_or(String::from("page 0"))
        };
        // SAFETY: each ring page is ours (owned by `rings`, which the vif
        // keeps for its life), mapped read-write at its identity address, and
        // shared only with the backend it is granted to.
        let (tx, rx) = unsafe {
            (
                FrontRing::init(ring_ptr(&rings[0])?),
                FrontRing::init(ring_ptr(&rings[1])?),
            )
        };
        let (nf, _) = Netfront::new(tx, rx, tx_gref, rx_gref);
        let chan = Channel::alloc_unbound(backend_id).map_err(|e| format!("{e}"))?;
        let published = Rings {
            tx_ring_ref: rings[0].gref(),
            rx_ring_ref: rings[1].gref(),
            event_channel: chan.port().0,
        };
        Ok(((rings, bufs, nf, chan), published))
    }

    /// Follows the backend's state: when it closes (`xl network-detach`, a
    /// backend that dies), the frontend answers Closing then Closed and stops
    /// using the rings; the pages stay granted (the backend may still have
    /// them mapped). Returns whether the vif is still connected.
    pub fn check_backend(&mut self) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        let mut changed = false;
        while let Ok(Some(_)) = crate::xenstore::take_event_for(BACKEND_TOKEN) {
            changed = true;
        }
        if !changed {
            return true;
        }
        let now = xenbus::backend_state(&mut RtBus, &s.backend);
        match xenbus::link_after(now) {
            Link::Up => return true,
            Link::Closed(st) => {
                crate::console::println!(
                    "rt: net: the backend closed {} (state {st}): the network is down",
                    s.frontend
                );
                for st in [state::CLOSING, state::CLOSED] {
                    if let Err(e) =
                        crate::xenstore::write(&format!("{}/state", s.frontend), &format!("{st}"))
                    {
                        crate::console::println!("rt: net: writing the frontend state failed: {e}");
                    }
                }
            }
            Link::Gone => crate::console::println!(
                "rt: net: the backend of {} is gone: the network is down",
                s.frontend
            ),
        }
        s.closed = true;
        false
    }

    /// The MAC address (from xenstore).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The event channel the backend signals.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Takes the backend's event (true if there was one).
    pub fn take_event(&self) -> bool {
        self.state.lock().chan.take_pending()
    }

    /// Sends a frame that `fill` writes into `len` bytes.
    pub fn send(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        let mut g = self.state.lock();
        let s = &mut *g;
        if s.closed {
            return false;
        }
        s.nf.collect_tx();
        match s.nf.send(&mut s.bufs, len, fill) {
            Ok(notify) => {
                if notify {
                    s.notify();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Whether a frame can be sent now (reclaiming answered buffers first).
    pub fn can_send(&mut self) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        s.nf.collect_tx();
        s.nf.can_send()
    }

    /// Hands at most one received frame to `f`.
    pub fn receive_one<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let mut g = self.state.lock();
        let s = &mut *g;
        if s.closed {
            return None;
        }
        let mut f = Some(f);
        let mut out = None;
        let (_, notify) = s.nf.receive_at_most(&s.bufs, 1, |d| {
            if let Some(f) = f.take() {
                out = Some(f(d));
            }
        });
        if notify {
            s.notify();
        }
        out
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.state.lock().nf.stats
    }

    /// TX buffers in flight, RX buffers posted.
    pub fn buffers(&self) -> (usize, usize) {
        self.state.lock().nf.buffers()
    }
}
