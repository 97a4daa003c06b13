//! The Xen vif: netfront's xenstore handshake with netback (the logic is
//! [`rt_xen::dev::net::xenbus::connect`] over the generic handshake,
//! host-tested against misbehaving backends), its granted pages and event
//! channel, over the data path of [`rt_xen::dev::net`]. The vif's state is
//! shared with the device registry ([`crate::dev`]), through which the
//! domain's suspend reaches it: its phase follows
//! [`rt_xen::dev::net::lifecycle`] — after a restore or migration it
//! connects to the new backend (new rings, grants and channel, the same
//! MAC), retrying until it can; the app's sockets live on.
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use rt_xen::abi::PAGE_SIZE;
use rt_xen::dev::net::buffers::buffers_for;
use rt_xen::dev::net::lifecycle::{Action, Event, Life, Phase};
use rt_xen::dev::net::netif::RING_SIZE;
use rt_xen::dev::net::xenbus::{self as vif_keys, Rings};
use rt_xen::dev::net::{NetStats, Netfront, Pages};
use rt_xen::proto::shared_ring::FrontRing;
use rt_xen::proto::xenbus::{self, HandshakeError, Rearmed};
use spin::Mutex;

use crate::dev::bus::{Backend, RtBus};
use crate::dev::{Device, Registration, Resumed};
use crate::event::{Channel, Port};
use crate::grant::GrantedPage;
use crate::time::Instant;

/// How long the backend gets for each step of the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the vif could not be brought up.
pub type VifError = HandshakeError;

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
    /// One copy, page to page (GSO packing; two different pages).
    fn tx_copy(&mut self, from: u16, from_at: usize, to: u16, to_at: usize, len: usize) {
        let (a, b) = (usize::from(from), usize::from(to));
        let copied = match self.tx.get_disjoint_mut([a, b]) {
            Ok([src, dst]) => src
                .bytes()
                .get(from_at..from_at + len)
                .zip(dst.bytes_mut().get_mut(to_at..to_at + len))
                .map(|(s, d)| d.copy_from_slice(s))
                .is_some(),
            // The same page: never asked for; copy within it.
            Err(core::slice::GetDisjointMutError::OverlappingIndices) => {
                self.tx[a]
                    .bytes_mut()
                    .copy_within(from_at..from_at + len, to_at);
                true
            }
            Err(core::slice::GetDisjointMutError::IndexOutOfBounds) => false,
        };
        // The gather keeps its slots within their pages and names only
        // buffers it has: anything else is a bug in netfront, not input.
        assert!(copied, "rt: net: a GSO copy outside the TX buffers");
    }
}

/// One connection to a backend: its rings, buffers and channel. Dropped
/// whole when the vif connects anew (its pages end their grants then).
struct Connection {
    nf: Netfront,
    bufs: Bufs,
    chan: Channel,
    backend: String,
    /// The ring pages; kept (granted) for the life of the connection.
    _rings: [GrantedPage; 2],
}

/// What the vif and the device registry share.
struct State {
    link: Connection,
    devid: u32,
    frontend: String,
    mac: [u8; 6],
    /// Where the vif stands: the rings are used only when it is usable.
    life: Life,
    /// Counters carried over from earlier connections.
    earlier: NetStats,
    /// Connections made after the first (restores, migrations).
    reconnects: u64,
}

impl Device for State {
    fn name(&self) -> &str {
        self.frontend
            .strip_prefix("device/")
            .unwrap_or(&self.frontend)
    }
    fn connected(&self) -> bool {
        self.life.phase().usable()
    }
    fn suspend(&mut self) {
        self.act(Event::Suspend);
    }
    fn resume(&mut self, how: Resumed) {
        let ev = match how {
            Resumed::Cancelled => Event::Cancelled,
            Resumed::NewDomain => Event::NewDomain { now_ms: now_ms() },
        };
        self.act(ev);
    }
}

fn now_ms() -> u64 {
    Instant::now().as_nanos() / 1_000_000
}

impl State {
    fn notify(&self) {
        // A refused send leaves the backend to its own polling; counted by
        // the missing traffic, nothing to undo here.
        if self.link.chan.notify().is_err() {
            crate::console::println!("rt: net: notifying the backend failed");
        }
    }

    /// Moves the phase on by `ev` and does what it says.
    fn act(&mut self, ev: Event) {
        match self.life.step(ev) {
            Action::None => {}
            Action::Notify => self.notify(),
            Action::Connect { rearm } => self.reconnect(rearm),
            Action::GiveUp => crate::console::println!(
                "rt: net: giving up on {}: its backend closed it {} times in a row, each soon after connecting, or would not come back (the network is down for good)",
                self.frontend,
                self.life.closes()
            ),
        }
    }

    /// Connects to the backend anew (after a restore or migration, or
    /// after the backend closed: then `rearm` first takes the device back
    /// to the start of the handshake): the handshake, new rings, grants and
    /// channel; the old connection is dropped. On failure the phase says
    /// when to try again.
    fn reconnect(&mut self, rearm: bool) {
        let old_backend = self.link.backend.clone();
        if rearm {
            let timeout = HANDSHAKE_TIMEOUT.as_millis() as u64;
            match xenbus::rearm(&mut RtBus, &self.frontend, &old_backend, timeout) {
                Ok(Rearmed::Ready) => {}
                Ok(Rearmed::Gone(why)) => {
                    crate::console::println!(
                        "rt: net: {} is gone ({why}): the network is down for good",
                        self.frontend
                    );
                    self.act(Event::BackendGone);
                    return;
                }
                Err(e) => {
                    crate::console::println!("rt: net: {} did not come back: {e}", self.frontend);
                    self.act(Event::ConnectFailed { now_ms: now_ms() });
                    return;
                }
            }
        }
        match Vif::handshake(self.devid) {
            Ok((link, mac)) => {
                if mac != self.mac {
                    crate::console::println!(
                        "rt: net: {} came back with MAC {} (was {}): keeping ours",
                        self.frontend,
                        smoltcp::wire::EthernetAddress(mac),
                        smoltcp::wire::EthernetAddress(self.mac)
                    );
                }
                self.earlier.add(&self.link.nf.stats);
                self.link = link;
                self.reconnects += 1;
                // The old backend's state watch is void: watch the new one.
                let _ = crate::xenstore::unwatch(&format!("{old_backend}/state"), BACKEND_TOKEN);
                watch_backend(&self.link.backend);
                crate::console::println!(
                    "rt: net: {} connected to {} again",
                    self.frontend,
                    self.link.backend
                );
                self.act(Event::Connected { now_ms: now_ms() });
            }
            Err(e) => {
                // Logged once per outage: the retries back off quietly.
                if matches!(self.life.phase(), Phase::Reconnecting { failures: 0, .. }) {
                    crate::console::println!(
                        "rt: net: reconnecting {} failed: {e} (the network is down; retrying quietly)",
                        self.frontend
                    );
                }
                self.act(Event::ConnectFailed { now_ms: now_ms() });
            }
        }
    }
}

/// Watches the backend's state (a close, a detach).
fn watch_backend(backend: &str) {
    if let Err(e) = crate::xenstore::watch(&format!("{backend}/state"), BACKEND_TOKEN) {
        crate::console::println!(
            "rt: net: cannot watch the backend's state ({e}): a disconnect will go unnoticed"
        );
    }
}

/// A connected vif.
pub struct Vif {
    state: Arc<Mutex<State>>,
    mac: [u8; 6],
    _registration: Registration,
}

/// The watch token for the backend's state.
const BACKEND_TOKEN: &str = "rt:net:backend-state";

impl core::fmt::Debug for Vif {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Vif")
            .field("frontend", &s.frontend)
            .field("backend", &s.link.backend)
            .field("port", &s.link.chan.port())
            .field("phase", &s.life.phase())
            .finish()
    }
}

impl Vif {
    /// Connects `device/vif/<devid>` to its backend.
    pub fn connect(devid: u32) -> Result<Vif, VifError> {
        let (link, mac) = Self::handshake(devid)?;
        let frontend = format!("device/vif/{devid}");
        watch_backend(&link.backend);
        let state = Arc::new(Mutex::new(State {
            link,
            devid,
            frontend,
            mac,
            life: Life::new(now_ms()),
            earlier: NetStats::default(),
            reconnects: 0,
        }));
        let vif = Vif {
            _registration: crate::dev::register(&state),
            state,
            mac,
        };
        // The RX buffers were posted before the backend connected.
        vif.state.lock().notify();
        Ok(vif)
    }

    /// The xenbus handshake with `device/vif/<devid>`'s backend: the
    /// connection, and the MAC the toolstack gave.
    fn handshake(devid: u32) -> Result<(Connection, [u8; 6]), VifError> {
        // No suspend while the backend is half-connected (see `Connecting`).
        let _connecting = crate::dev::Connecting::start();
        let timeout = HANDSHAKE_TIMEOUT.as_millis() as u64;
        let (found, (rings, bufs, nf, chan)) =
            vif_keys::connect(&mut RtBus, devid, timeout, |dev| {
                Self::set_up(dev.backend_id)
            })?;
        chan.unmask()
            .map_err(|e| HandshakeError::Setup(format!("{e}")))?;
        crate::event::name_port(chan.port(), "vif");
        let mut link = Connection {
            nf,
            bufs,
            chan,
            backend: found.device.backend,
            _rings: rings,
        };
        link.nf.set_tx_gso(Self::backend_takes_gso(&link.backend));
        Ok((link, found.mac))
    }

    /// Whether to gather TCP segments into GSO packets for this backend: it
    /// offers `feature-gso-tcpv4` and `feature-sg` (each exactly "1"; any
    /// other value, or none, is no), and the command line does not say
    /// `net.gso=off`.
    // Cold (once per connection): kept out of line, the image is smaller.
    #[inline(never)]
    fn backend_takes_gso(backend: &str) -> bool {
        if crate::bootinfo::boot_info().cmdline_has("net.gso=off") {
            return false;
        }
        let keys = [
            format!("{backend}/feature-gso-tcpv4"),
            format!("{backend}/feature-sg"),
        ];
        // Both in one round trip.
        crate::xenstore::read_many(&[&keys[0], &keys[1]])
            .iter()
            .all(|v| v.as_deref().is_ok_and(rt_xen::proto::value::is_on))
    }

    /// Grants the two ring pages and the buffer pages to the backend — 256
    /// each way, fewer in a guest short of memory ([`buffers_for`] the free
    /// frames) — and allocates its event channel (masked until connected).
    #[allow(clippy::type_complexity)]
    // Cold (once per connection): kept out of line, the image is smaller.
    #[inline(never)]
    fn set_up(
        backend_id: u16,
    ) -> Result<(([GrantedPage; 2], Bufs, Netfront, Channel), Rings), String> {
        // Called once the backend is at InitWait: what came before is
        // finding the device and waiting for dom0's backend (its hotplug).
        crate::bootinfo::mark_once("vif-initwait");
        let page = |ro| GrantedPage::new(backend_id, ro).map_err(|e| format!("{e}"));
        let rings = [page(false)?, page(false)?];
        let n = buffers_for(crate::mm::free_frames().unwrap_or(0));
        if n < RING_SIZE as usize {
            crate::console::println!(
                "vif: {n} buffers each way (of {RING_SIZE}): the guest is short of memory"
            );
        }
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
        for (g, page) in tx_gref.iter_mut().zip(&bufs.tx) {
            *g = page.gref();
        }
        for (g, page) in rx_gref.iter_mut().zip(&bufs.rx) {
            *g = page.gref();
        }
        // Ids beyond `n` are never used: the data path has `n` buffers.
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
        let (nf, _) = Netfront::with_buffers(tx, rx, tx_gref, rx_gref, n);
        let chan = Channel::alloc_unbound(backend_id).map_err(|e| format!("{e}"))?;
        // From here: publishing our keys, then the backend connecting.
        crate::bootinfo::mark_once("vif-granted");
        let published = Rings {
            tx_ring_ref: rings[0].gref(),
            rx_ring_ref: rings[1].gref(),
            event_channel: chan.port().0,
        };
        Ok(((rings, bufs, nf, chan), published))
    }

    /// Follows the backend's state: when it closes (a backend that
    /// restarts, `xl network-detach`, a hostile one), the frontend answers
    /// Closing then Closed and stops using the rings (their pages stay
    /// granted until the next connection replaces them: the backend may
    /// still have them mapped), then reconnects after a back-off — unless
    /// the device is being removed, or the backend keeps closing it (see
    /// [`rt_xen::dev::net::lifecycle`]): then the network is down for good
    /// and the app's sockets say so. Retries a reconnection that is due.
    /// Returns whether the vif is usable.
    pub fn check_backend(&mut self) -> bool {
        let mut s = self.state.lock();
        if let Phase::Reconnecting { .. } = s.life.phase() {
            s.act(Event::Tick { now_ms: now_ms() });
        }
        if s.life.phase() == Phase::Closed {
            return false;
        }
        let mut changed = false;
        while let Ok(Some(_)) = crate::xenstore::take_event_for(BACKEND_TOKEN) {
            changed = true;
        }
        if !changed || !s.life.phase().usable() {
            return s.life.phase().usable();
        }
        match crate::dev::bus::backend_now(
            "net",
            &s.frontend,
            &s.link.backend,
            "the network is down",
        ) {
            Backend::Up => return true,
            Backend::Closed => s.act(Event::BackendClosed { now_ms: now_ms() }),
            Backend::Gone => s.act(Event::BackendGone),
        }
        if let Some(due) = s.life.phase().retry_due() {
            crate::console::println!(
                "rt: net: reconnecting {} in {} ms (close {} in a row; at {} the vif gives up)",
                s.frontend,
                due.saturating_sub(now_ms()),
                s.life.closes(),
                rt_xen::dev::net::lifecycle::CLOSE_LIMIT
            );
        }
        false
    }

    /// Whether the network is down for good (the backend vanished or was
    /// given up on).
    pub fn is_down(&self) -> bool {
        self.state.lock().life.phase() == Phase::Closed
    }

    /// How long until the next reconnection attempt, while the vif is
    /// reconnecting: a wait should end by then.
    pub fn retry_in(&self) -> Option<Duration> {
        let due = self.state.lock().life.phase().retry_due()?;
        Some(Duration::from_millis(due.saturating_sub(now_ms())))
    }

    /// The MAC address (from xenstore).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The event channel the backend signals (a new one after a restore).
    pub fn port(&self) -> Port {
        self.state.lock().link.chan.port()
    }

    /// Takes the backend's event (true if there was one).
    pub fn take_event(&self) -> bool {
        self.state.lock().link.chan.take_pending()
    }

    /// Sends a frame that `fill` writes into `len` bytes.
    pub fn send(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        let mut g = self.state.lock();
        let s = &mut *g;
        if !s.life.phase().usable() {
            return false;
        }
        let l = &mut s.link;
        l.nf.collect_tx();
        match l.nf.send(&mut l.bufs, len, fill) {
            Ok(notify) => {
                if notify {
                    s.notify();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Sends the TCP segments gathered into a GSO packet, if any (the stack
    /// has sent what it had for now).
    pub fn flush(&mut self) {
        let mut g = self.state.lock();
        let s = &mut *g;
        if !s.life.phase().usable() {
            return;
        }
        let l = &mut s.link;
        if l.nf.flush_tx(&mut l.bufs) {
            s.notify();
        }
    }

    /// Whether a frame can be sent now (reclaiming answered buffers first).
    pub fn can_send(&mut self) -> bool {
        let mut s = self.state.lock();
        if !s.life.phase().usable() {
            return false;
        }
        s.link.nf.collect_tx();
        s.link.nf.can_send()
    }

    /// Hands at most one received frame to `f`.
    pub fn receive_one<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let mut g = self.state.lock();
        let s = &mut *g;
        if !s.life.phase().usable() {
            return None;
        }
        let mut f = Some(f);
        let mut out = None;
        let l = &mut s.link;
        let (_, notify) = l.nf.receive_at_most(&l.bufs, 1, |d| {
            if let Some(f) = f.take() {
                out = Some(f(d));
            }
        });
        if notify {
            s.notify();
        }
        out
    }

    /// Counters, over every connection so far.
    pub fn stats(&self) -> NetStats {
        let s = self.state.lock();
        let mut total = s.earlier;
        total.add(&s.link.nf.stats);
        total
    }

    /// Frames sent, over every connection ([`Vif::stats`]'s `tx_frames`,
    /// without copying the rest).
    pub fn tx_frames(&self) -> u64 {
        let s = self.state.lock();
        s.earlier.tx_frames + s.link.nf.stats.tx_frames
    }

    /// TX buffers in flight, RX buffers posted (of the current connection).
    pub fn buffers(&self) -> (usize, usize) {
        self.state.lock().link.nf.buffers()
    }

    /// Connections made after the first: one per restore or migration.
    pub fn reconnects(&self) -> u64 {
        self.state.lock().reconnects
    }
}
