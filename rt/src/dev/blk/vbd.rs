//! The Xen vbd: blkfront's xenstore handshake with blkback (the logic is
//! [`rt_xen::dev::blk::xenbus::connect`] over the generic handshake,
//! host-tested against misbehaving backends), its granted pages and event
//! channel, over the request path of [`rt_xen::dev::blk`]. Its state is
//! shared with the device registry ([`crate::dev`]): a suspend finds no
//! request in flight (a caller waits for its answers on the vbd's own
//! channel, never in the idle loop where the toolstack's requests run), and
//! in a new domain the vbd connects to the new backend on its next use.
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use rt_xen::abi::PAGE_SIZE;
use rt_xen::dev::blk::request::flush_op;
use rt_xen::dev::blk::xenbus::{self as vbd_keys, Rings};
use rt_xen::dev::blk::{BlkStats, Blkfront, Geometry, IoError, Pages};
use rt_xen::proto::shared_ring::FrontRing;
use rt_xen::proto::xenbus::HandshakeError;
use spin::Mutex;

use crate::dev::bus::RtBus;
use crate::dev::{Device, Registration, Resumed};
use crate::event::Channel;
use crate::grant::GrantedPage;

/// How long the backend gets for each step of the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The data pool and the indirect pages, each granted once.
pub(super) struct Bufs {
    data: Vec<GrantedPage>,
    indirect: Vec<GrantedPage>,
}

impl Pages for Bufs {
    fn data(&mut self, i: u16) -> &mut [u8; PAGE_SIZE] {
        self.data[usize::from(i)].bytes_mut()
    }
    fn data_ref(&self, i: u16) -> &[u8; PAGE_SIZE] {
        self.data[usize::from(i)].bytes()
    }
    fn data_gref(&self, i: u16) -> u32 {
        self.data[usize::from(i)].gref()
    }
    fn indirect(&mut self, slot: u16) -> &mut [u8; PAGE_SIZE] {
        self.indirect[usize::from(slot)].bytes_mut()
    }
    fn indirect_gref(&self, slot: u16) -> u32 {
        self.indirect[usize::from(slot)].gref()
    }
}

/// One connection to a backend: its ring, pages and channel. Dropped whole
/// when the vbd connects anew (its pages end their grants then, or once
/// the old backend lets go).
pub(super) struct Connection {
    pub(super) bf: Blkfront,
    pub(super) bufs: Bufs,
    pub(super) chan: Channel,
    pub(super) backend: String,
    pub(super) geometry: Geometry,
    /// The ring's pages; kept (granted) for the life of the connection.
    _ring: Vec<GrantedPage>,
}

/// Where the vbd stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Connected: the ring is in use.
    Connected,
    /// Suspended: nothing is submitted until the domain runs again.
    Suspended,
    /// In a new domain: connect to the new backend before the next request.
    Reconnect,
    /// The backend closed or broke the ring: every request fails.
    Closed,
}

/// What the vbd and the device registry share.
pub(super) struct State {
    pub(super) link: Connection,
    pub(super) devid: u32,
    pub(super) frontend: String,
    pub(super) phase: Phase,
    pool: u16,
    /// Counters of earlier connections.
    pub(super) earlier: BlkStats,
    /// The backend misbehaviours already logged (bad ids, ops, ring).
    pub(super) logged: BlkStats,
}

impl Device for State {
    fn name(&self) -> &str {
        self.frontend
            .strip_prefix("device/")
            .unwrap_or(&self.frontend)
    }
    fn connected(&self) -> bool {
        self.phase == Phase::Connected
    }
    fn suspend(&mut self) {
        if self.phase == Phase::Connected {
            self.phase = Phase::Suspended;
        }
    }
    fn resume(&mut self, how: Resumed) {
        if self.phase != Phase::Suspended {
            return;
        }
        self.phase = match how {
            Resumed::Cancelled => Phase::Connected,
            Resumed::NewDomain => Phase::Reconnect,
        };
    }
}

/// The watch token for a vbd's backend state.
pub(super) fn token(devid: u32) -> String {
    format!("rt:blk:{devid}:backend-state")
}

impl State {
    /// Connects `device/vbd/<devid>` with a pool of `pool` pages.
    pub(super) fn connect(devid: u32, pool: u16) -> Result<State, HandshakeError> {
        let link = handshake(devid, pool)?;
        watch_backend(devid, &link.backend);
        Ok(State {
            link,
            devid,
            frontend: format!("device/vbd/{devid}"),
            phase: Phase::Connected,
            pool,
            earlier: BlkStats::default(),
            logged: BlkStats::default(),
        })
    }

    /// Connects to the backend anew (in a new domain): new ring, pages and
    /// channel; the old connection is dropped.
    pub(super) fn reconnect(&mut self) -> Result<(), HandshakeError> {
        let old = self.link.backend.clone();
        let link = handshake(self.devid, self.pool)?;
        add_stats(&mut self.earlier, &self.link.bf.stats);
        let _ = crate::xenstore::unwatch(&format!("{old}/state"), &token(self.devid));
        self.link = link;
        watch_backend(self.devid, &self.link.backend);
        self.phase = Phase::Connected;
        crate::console::println!(
            "rt: blk: {} connected to {} again",
            self.frontend,
            self.link.backend
        );
        Ok(())
    }

    /// Notifies the backend (a refused notify is logged: the request then
    /// waits for the backend's own look at the ring).
    pub(super) fn notify(&self) {
        if self.link.chan.notify().is_err() {
            crate::console::println!("rt: blk: notifying the backend of {} failed", self.frontend);
        }
    }

    /// Looks at the backend's state if its watch fired: a backend that
    /// closes fails what is in flight and the vbd with it (answering
    /// Closing then Closed). Returns whether the vbd is still usable.
    pub(super) fn check_backend(&mut self, failed: &mut impl FnMut(u64, IoError)) -> bool {
        let mut changed = false;
        while let Ok(Some(_)) = crate::xenstore::take_event_for(&token(self.devid)) {
            changed = true;
        }
        if !changed || self.phase != Phase::Connected {
            return self.phase == Phase::Connected;
        }
        if crate::dev::bus::backend_now(
            "blk",
            &self.frontend,
            &self.link.backend,
            "the disk is gone",
        ) == crate::dev::bus::Backend::Up
        {
            return true;
        }
        self.link.bf.fail_all(IoError::Gone, failed);
        self.phase = Phase::Closed;
        false
    }

    /// Logs each kind of backend misbehaviour the first time it is seen.
    pub(super) fn log_misbehaviour(&mut self) {
        let s = self.link.bf.stats;
        let l = &mut self.logged;
        let say = |what: &str, now: u64, seen: &mut u64| {
            if now > 0 && *seen == 0 {
                crate::console::println!(
                    "rt: blk: the backend of {} sent {what} (ignored; counted from now on)",
                    self.frontend
                );
            }
            *seen = now;
        };
        say(
            "an answer to no request in flight",
            s.bad_ids,
            &mut l.bad_ids,
        );
        say(
            "an answer echoing the wrong operation",
            s.bad_ops,
            &mut l.bad_ops,
        );
        say(
            "ring indices beyond its requests (the disk is closed)",
            s.ring_errors,
            &mut l.ring_errors,
        );
        if s.ring_errors > 0 {
            self.phase = Phase::Closed;
        }
    }
}

/// Adds a connection's counters to the running totals.
pub(super) fn add_stats(total: &mut BlkStats, s: &BlkStats) {
    total.reads += s.reads;
    total.writes += s.writes;
    total.flushes += s.flushes;
    total.indirect += s.indirect;
    total.bytes_read += s.bytes_read;
    total.bytes_written += s.bytes_written;
    total.errors += s.errors;
    total.bad_ids += s.bad_ids;
    total.bad_ops += s.bad_ops;
    total.ring_errors += s.ring_errors;
    total.notifies += s.notifies;
}

fn watch_backend(devid: u32, backend: &str) {
    if let Err(e) = crate::xenstore::watch(&format!("{backend}/state"), &token(devid)) {
        crate::console::println!(
            "rt: blk: cannot watch the backend's state ({e}): a disconnect will show as a timeout"
        );
    }
}

/// The handshake with `device/vbd/<devid>`'s backend and the connection.
fn handshake(devid: u32, pool: u16) -> Result<Connection, HandshakeError> {
    let _connecting = crate::dev::Connecting::start();
    let timeout = HANDSHAKE_TIMEOUT.as_millis() as u64;
    let (vbd, (ring, fr, chan, backend_id)) =
        vbd_keys::connect(&mut RtBus, devid, timeout, |dev| {
            // As many ring pages as the backend takes (up to four).
            let order = vbd_keys::ring_order(dev);
            let ring =
                GrantedPage::new_run(dev.backend_id, 1 << order).map_err(|e| format!("{e}"))?;
            let ptr = core::ptr::NonNull::new(ring[0].pfn().addr() as *mut u8)
                .ok_or_else(|| String::from("the ring is page 0"))?;
            // SAFETY: the ring's pages are ours (kept in the connection for
            // its life), consecutive frames mapped read-write at their
            // identity addresses, shared only with the backend they are
            // granted to; initialised here, before their references are
            // published.
            let fr = unsafe { FrontRing::init_pages(ptr, order) };
            let chan = Channel::alloc_unbound(dev.backend_id).map_err(|e| format!("{e}"))?;
            let rings = Rings {
                ring_refs: ring.iter().map(GrantedPage::gref).collect(),
                event_channel: chan.port().0,
            };
            Ok(((ring, fr, chan, dev.backend_id), rings))
        })?;
    let g = vbd.geometry;
    // The pages, granted writable (persistent grants may be mapped for
    // either direction); the indirect ones only if the backend takes them.
    let setup = |e: crate::grant::GrantError| {
        HandshakeError::Setup(format!("granting the disk's pages: {e}"))
    };
    let mut data = Vec::with_capacity(usize::from(pool));
    for _ in 0..pool {
        data.push(GrantedPage::new(backend_id, false).map_err(setup)?);
    }
    let mut indirect = Vec::new();
    if g.indirect_segments > 0 {
        for _ in 0..fr.size() {
            indirect.push(GrantedPage::new(backend_id, false).map_err(setup)?);
        }
    }
    let handle = (devid & 0xffff) as u16;
    let bf = Blkfront::new(
        fr,
        handle,
        pool,
        g.indirect_segments,
        flush_op(g.flush, g.barrier),
    );
    chan.unmask()
        .map_err(|e| HandshakeError::Setup(format!("{e}")))?;
    crate::event::name_port(chan.port(), "vbd");
    Ok(Connection {
        bf,
        bufs: Bufs { data, indirect },
        chan,
        backend: vbd.device.backend,
        geometry: g,
        _ring: ring,
    })
}

/// A registered, connected vbd.
pub(super) struct Vbd {
    pub(super) state: Arc<Mutex<State>>,
    _registration: Registration,
}

impl Vbd {
    pub(super) fn new(state: State) -> Vbd {
        let state = Arc::new(Mutex::new(state));
        Vbd {
            _registration: crate::dev::register(&state),
            state,
        }
    }
}
