//! The xenstore client: the shared ring page (`public/io/xs_wire.h`), the wire
//! format, and requests with replies matched by request id.
//!
//! A message is a 16-byte header (`type`, `req_id`, `tx_id`, `len`) and `len`
//! bytes of payload (at most [`PAYLOAD_MAX`]). Requests go into `req`, replies
//! and watch events come back in `rsp`. Everything the daemon sends is
//! checked: ring indices (through the byte [`Ring`]), the payload length (a header that
//! claims more than [`PAYLOAD_MAX`] breaks the connection: the stream can no
//! longer be framed), and the reply type. Watch events that arrive while a
//! reply is awaited are queued; replies to no outstanding request are counted
//! and dropped.
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::offset_of;
use core::ptr::NonNull;

use crate::abi::errno::XenError;
use crate::proto::byte_ring::{Layout, Ring, RingError, RingPage};

/// Bytes of each ring.
pub const RING_SIZE: usize = 1024;
/// Largest payload of a message.
pub const PAYLOAD_MAX: usize = 4096;
const HEADER: usize = 16;

/// `struct xenstore_domain_interface`.
#[repr(C)]
#[derive(Debug)]
pub struct XenstoreInterface {
    /// Requests to the daemon.
    pub req: [u8; RING_SIZE],
    /// Replies and watch events.
    pub rsp: [u8; RING_SIZE],
    /// Daemon's read position in `req`.
    pub req_cons: u32,
    /// Our write position in `req`.
    pub req_prod: u32,
    /// Our read position in `rsp`.
    pub rsp_cons: u32,
    /// Daemon's write position in `rsp`.
    pub rsp_prod: u32,
    /// Features the daemon offers.
    pub server_features: u32,
    /// Connection state.
    pub connection: u32,
    /// Error state.
    pub error: u32,
}

const _: () = assert!(core::mem::size_of::<XenstoreInterface>() == 2076);

// SAFETY: the offsets and sizes are the struct's own (`offset_of!`, the
// arrays' lengths); the u32 fields of a repr(C) struct are 4-byte aligned.
unsafe impl RingPage for XenstoreInterface {
    const LAYOUT: Layout = Layout {
        out_buf: offset_of!(XenstoreInterface, req),
        out_size: RING_SIZE,
        in_buf: offset_of!(XenstoreInterface, rsp),
        in_size: RING_SIZE,
        out_prod: offset_of!(XenstoreInterface, req_prod),
        out_cons: offset_of!(XenstoreInterface, req_cons),
        in_prod: offset_of!(XenstoreInterface, rsp_prod),
        in_cons: offset_of!(XenstoreInterface, rsp_cons),
    };
}

/// Message types (`enum xsd_sockmsg_type`) the client uses.
pub mod ty {
    #![allow(missing_docs)]
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const WRITE: u32 = 11;
    pub const RM: u32 = 13;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

/// Why a xenstore request failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum XsError {
    /// The daemon answered `XS_ERROR` with this errno.
    Error(XenError),
    /// The ring indices are corrupt.
    Ring(RingError),
    /// A message header claimed `len` bytes of payload (over 4096).
    Oversized(u32),
    /// The request is longer than a message can be.
    TooLong,
    /// The reply does not have the shape of its request.
    BadReply(&'static str),
    /// No reply came in time.
    Timeout,
    /// An earlier protocol error left the connection unusable.
    Broken,
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Error(e) => write!(f, "xenstore: {e}"),
            XsError::Ring(e) => write!(f, "xenstore ring: {e:?}"),
            XsError::Oversized(n) => write!(f, "xenstore sent a {n}-byte payload (max 4096)"),
            XsError::TooLong => f.write_str("xenstore request too long (max 4096 bytes)"),
            XsError::BadReply(w) => write!(f, "xenstore reply malformed: {w}"),
            XsError::Timeout => f.write_str("xenstore did not answer in time"),
            XsError::Broken => f.write_str("xenstore connection unusable after a protocol error"),
        }
    }
}

impl From<RingError> for XsError {
    fn from(e: RingError) -> Self {
        XsError::Ring(e)
    }
}

/// The errno an `XS_ERROR` payload names.
pub fn errno_of(payload: &[u8]) -> XenError {
    let name = payload.split(|&b| b == 0).next().unwrap_or(b"");
    match name {
        b"EPERM" => XenError::EPERM,
        b"ENOENT" => XenError::ENOENT,
        b"EIO" => XenError::EIO,
        b"E2BIG" => XenError::E2BIG,
        b"EAGAIN" => XenError::EAGAIN,
        b"ENOMEM" => XenError::ENOMEM,
        b"EACCES" => XenError::EACCES,
        b"EBUSY" => XenError::EBUSY,
        b"EEXIST" => XenError::EEXIST,
        b"EISDIR" => XenError::EISDIR,
        b"EINVAL" => XenError::EINVAL,
        b"ENOSPC" => XenError::ENOSPC,
        b"EROFS" => XenError::EROFS,
        b"ENOSYS" => XenError::ENOSYS,
        _ => XenError::EIO,
    }
}

/// A watch fired: `path` changed; `token` is the one given to [`Client::watch`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WatchEvent {
    /// The path that changed (at or below the watched one).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// Signalling the daemon and waiting for it.
pub trait Link {
    /// Tells the daemon there is news in the ring.
    fn notify(&mut self);
    /// Waits until the daemon signals (or a short while passes); false once
    /// the overall deadline of the current request has passed.
    fn wait(&mut self) -> bool;
}

/// Client counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct XsStats {
    /// Requests sent.
    pub requests: u64,
    /// Replies that matched no outstanding request (dropped).
    pub stray_replies: u64,
    /// Watch events received.
    pub events: u64,
    /// Watch events dropped, oldest first, because [`MAX_QUEUED_EVENTS`]
    /// were waiting for their owners.
    pub dropped_events: u64,
    /// Transactions retried after `EAGAIN`.
    pub retries: u64,
}

/// Transactions end in `EAGAIN` when another writer got in first; they are
/// retried this many times.
pub const TRANSACTION_RETRIES: u32 = 16;

/// Watch events kept for their owners at most; a daemon that fires more
/// than are taken loses the oldest (counted), it does not grow the heap.
/// The queue's room is taken once, up front, so its size never changes.
pub const MAX_QUEUED_EVENTS: usize = 32;

/// A xenstore connection over a ring page.
#[derive(Debug)]
pub struct Client<L: Link> {
    ring: Ring<XenstoreInterface>,
    link: L,
    next_id: u32,
    rx: Vec<u8>,
    events: VecDeque<WatchEvent>,
    broken: bool,
    /// Counters.
    pub stats: XsStats,
}

/// A message read off the ring.
struct Msg {
    ty: u32,
    req_id: u32,
    payload: Vec<u8>,
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<L: Link> Client<L> {
    /// A client over the ring page at `page`, signalled through `link`.
    ///
    /// # Safety
    /// `page` must be the domain's mapped xenstore page, kept mapped for the
    /// life of the client and used by no other guest code.
    pub unsafe fn new(page: NonNull<XenstoreInterface>, link: L) -> Self {
        Client {
            // SAFETY: forwarded from the caller.
            ring: unsafe { Ring::new(page) },
            link,
            next_id: 1,
            rx: Vec::new(),
            events: VecDeque::with_capacity(MAX_QUEUED_EVENTS),
            broken: false,
            stats: XsStats::default(),
        }
    }

    /// Starts over on the same page (the domain was restored: the daemon
    /// and maybe the page's indices are new): the ring's indices are taken
    /// up again, a message half read is dropped, and so is a broken state.
    /// Queued watch events stay for their owners.
    pub fn reconnect(&mut self) {
        self.ring.resync();
        self.rx.clear();
        self.broken = false;
    }

    /// The link (to reach the port it signals).
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The link, to adjust it (e.g. a request's deadline).
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    fn send(&mut self, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<u32, XsError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(XsError::TooLong);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut header = [0u8; HEADER];
        for (i, v) in [ty, id, tx, len as u32].into_iter().enumerate() {
            header[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        for part in core::iter::once(&header[..]).chain(parts.iter().copied()) {
            let mut rest = part;
            while !rest.is_empty() {
                let n = self.ring.write(rest)?;
                rest = &rest[n..];
                self.link.notify();
                if n == 0 && !self.link.wait() {
                    return Err(XsError::Timeout);
                }
            }
        }
        self.stats.requests += 1;
        Ok(id)
    }

    /// Reads what the ring holds; returns a complete message if there is one.
    fn pump(&mut self) -> Result<Option<Msg>, XsError> {
        let mut chunk = [0u8; RING_SIZE];
        let n = self.ring.read(&mut chunk)?;
        if n > 0 {
            self.link.notify();
            self.rx.extend_from_slice(&chunk[..n]);
        }
        if self.rx.len() < HEADER {
            return Ok(None);
        }
        let len = u32_at(&self.rx, 12);
        if len as usize > PAYLOAD_MAX {
            self.broken = true;
            return Err(XsError::Oversized(len));
        }
        let total = HEADER + len as usize;
        if self.rx.len() < total {
            return Ok(None);
        }
        let rest = self.rx.split_off(total);
        let msg = core::mem::replace(&mut self.rx, rest);
        Ok(Some(Msg {
            ty: u32_at(&msg, 0),
            req_id: u32_at(&msg, 4),
            payload: msg[HEADER..].to_vec(),
        }))
    }

    fn queue_event(&mut self, payload: &[u8]) {
        let mut it = payload.split(|&b| b == 0);
        let (Some(path), Some(token)) = (it.next(), it.next()) else {
            return;
        };
        self.stats.events += 1;
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.stats.dropped_events += 1;
        }
        self.events.push_back(WatchEvent {
            path: text(path),
            token: text(token),
        });
    }

    /// Sends a request and waits for its reply; returns the reply payload.
    pub fn request(&mut self, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        let id = self.send(ty, tx, parts)?;
        loop {
            match self.pump()? {
                Some(m) if m.ty == ty::WATCH_EVENT => self.queue_event(&m.payload),
                Some(m) if m.req_id != id => self.stats.stray_replies += 1,
                Some(m) if m.ty == ty::ERROR => return Err(XsError::Error(errno_of(&m.payload))),
                Some(m) if m.ty == ty => return Ok(m.payload),
                Some(_) => return Err(XsError::BadReply("reply type differs from the request")),
                None => {
                    if !self.link.wait() {
                        return Err(XsError::Timeout);
                    }
                }
            }
        }
    }

    /// The value at `path`.
    pub fn read(&mut self, tx: u32, path: &str) -> Result<String, XsError> {
        let v = self.request(ty::READ, tx, &[path.as_bytes(), b"\0"])?;
        Ok(text(&v))
    }

    /// Sets `path` to `value` (creating it).
    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.request(ty::WRITE, tx, &[path.as_bytes(), b"\0", value])
            .map(drop)
    }

    /// The names of `path`'s children.
    pub fn directory(&mut self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        let v = self.request(ty::DIRECTORY, tx, &[path.as_bytes(), b"\0"])?;
        Ok(v.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(text)
            .collect())
    }

    /// Removes `path` and everything below it.
    pub fn remove(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request(ty::RM, tx, &[path.as_bytes(), b"\0"])
            .map(drop)
    }

    /// Watches `path` (and below); events carry `token`. Xenstore fires each
    /// new watch once right away.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(
            ty::WATCH,
            0,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )
        .map(drop)
    }

    /// Removes a watch.
    /// Events of that watch still queued are dropped with it.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.events.retain(|e| {
            let under = e.path.strip_prefix(path).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('/') || path.ends_with('/')
            });
            !(e.token == token && under)
        });
        self.request(
            ty::UNWATCH,
            0,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )
        .map(drop)
    }

    /// Runs `f` in a transaction and commits it, retrying the whole
    /// transaction when the commit ends in `EAGAIN` (someone else wrote
    /// first). An error from `f` aborts the transaction and is returned.
    pub fn transaction<R>(
        &mut self,
        mut f: impl FnMut(&mut Self, u32) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        for attempt in 0..=TRANSACTION_RETRIES {
            let id = self.request(ty::TRANSACTION_START, 0, &[b"\0"])?;
            let tx = core::str::from_utf8(id.split(|&b| b == 0).next().unwrap_or(b""))
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or(XsError::BadReply("transaction id is not a number"))?;
            let r = f(self, tx);
            let commit = r.is_ok();
            let end = self.request(
                ty::TRANSACTION_END,
                tx,
                &[if commit { b"T\0" } else { b"F\0" }],
            );
            match (r, end) {
                (Ok(v), Ok(_)) => return Ok(v),
                (Ok(_), Err(XsError::Error(XenError::EAGAIN))) if attempt < TRANSACTION_RETRIES => {
                    self.stats.retries += 1;
                }
                (Ok(_), Err(e)) => return Err(e),
                (Err(e), _) => return Err(e),
            }
        }
        Err(XsError::Error(XenError::EAGAIN))
    }

    /// Reads what has arrived without waiting, queueing watch events.
    pub fn poll(&mut self) -> Result<(), XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        while let Some(m) = self.pump()? {
            if m.ty == ty::WATCH_EVENT {
                self.queue_event(&m.payload);
            } else {
                self.stats.stray_replies += 1;
            }
        }
        Ok(())
    }

    /// The oldest queued watch event.
    pub fn take_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// Whether the daemon has written bytes not read yet (a reply or watch
    /// event a [`Client::poll`] would pick up). A corrupt ring counts as news:
    /// the next operation reports it.
    pub fn unread(&self) -> bool {
        self.ring.available().is_ok_and(|n| n > 0) || self.ring.available().is_err()
    }

    /// The oldest queued watch event whose token is `token`; the others stay
    /// queued, in order, for their owners.
    pub fn take_event_for(&mut self, token: &str) -> Option<WatchEvent> {
        let i = self.events.iter().position(|e| e.token == token)?;
        self.events.remove(i)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use core::cell::RefCell;
    use proptest::prelude::*;
    use std::rc::Rc;

    fn page() -> Box<XenstoreInterface> {
        Box::new(XenstoreInterface {
            req: [0; RING_SIZE],
            rsp: [0; RING_SIZE],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: 0,
            error: 0,
        })
    }

    /// What the fake daemon does wrong, on purpose.
    #[derive(Clone, Default)]
    struct Faults {
        /// Send a watch event before each reply.
        event_first: bool,
        /// Send a stray reply (wrong id) before each reply.
        stray_first: bool,
        /// Claim an oversized payload.
        oversized: bool,
        /// Corrupt the rsp producer index.
        corrupt_index: bool,
        /// Answer transaction ends with EAGAIN this many times.
        eagain: u32,
        /// Never answer.
        mute: bool,
        /// Raw bytes to send instead of any reply.
        raw: Option<Vec<u8>>,
    }

    /// A xenstored on the other side of the page: parses requests from `req`,
    /// answers into `rsp` (a byte at a time when the ring is full).
    struct Daemon {
        page: *mut XenstoreInterface,
        store: BTreeMap<String, Vec<u8>>,
        inbox: Vec<u8>,
        outbox: VecDeque<u8>,
        faults: Faults,
        next_tx: u32,
    }

    impl Daemon {
        fn reply(&mut self, ty: u32, id: u32, tx: u32, payload: &[u8]) {
            let len = if self.faults.oversized {
                5000
            } else {
                payload.len() as u32
            };
            for v in [ty, id, tx, len] {
                self.outbox.extend(v.to_le_bytes());
            }
            self.outbox.extend(payload);
        }

        fn run(&mut self) {
            // SAFETY: the test owns the page; client and daemon take turns.
            let p = unsafe { &mut *self.page };
            while p.req_cons != p.req_prod {
                self.inbox.push(p.req[p.req_cons as usize % RING_SIZE]);
                p.req_cons = p.req_cons.wrapping_add(1);
            }
            while self.inbox.len() >= HEADER {
                let len = u32_at(&self.inbox, 12) as usize;
                if self.inbox.len() < HEADER + len {
                    break;
                }
                let m: Vec<u8> = self.inbox.drain(..HEADER + len).collect();
                self.handle(u32_at(&m, 0), u32_at(&m, 4), u32_at(&m, 8), &m[HEADER..]);
            }
            while !self.outbox.is_empty() && p.rsp_prod.wrapping_sub(p.rsp_cons) < RING_SIZE as u32
            {
                p.rsp[p.rsp_prod as usize % RING_SIZE] = self.outbox.pop_front().unwrap();
                p.rsp_prod = p.rsp_prod.wrapping_add(1);
            }
            if self.faults.corrupt_index {
                p.rsp_prod = p.rsp_cons.wrapping_add(5000);
            }
        }

        fn handle(&mut self, ty: u32, id: u32, tx: u32, body: &[u8]) {
            if self.faults.mute {
                return;
            }
            if let Some(raw) = self.faults.raw.clone() {
                self.outbox.extend(raw);
                return;
            }
            if self.faults.event_first {
                self.reply(ty::WATCH_EVENT, 0, 0, b"/some/path\0tok\0");
            }
            if self.faults.stray_first {
                self.reply(ty, id.wrapping_add(1000), tx, b"stray");
            }
            let mut parts = body.split(|&b| b == 0);
            let path = text(parts.next().unwrap_or(b""));
            match ty {
                ty::READ => match self.store.get(&path).cloned() {
                    Some(v) => self.reply(ty, id, tx, &v),
                    None => self.reply(ty::ERROR, id, tx, b"ENOENT\0"),
                },
                ty::WRITE => {
                    let at = body.iter().position(|&b| b == 0).unwrap();
                    self.store.insert(path, body[at + 1..].to_vec());
                    self.reply(ty, id, tx, b"OK\0");
                }
                ty::DIRECTORY => {
                    let prefix = std::format!("{path}/");
                    let mut names: Vec<u8> = Vec::new();
                    for k in self.store.keys().filter_map(|k| k.strip_prefix(&prefix)) {
                        names.extend(k.split('/').next().unwrap().as_bytes());
                        names.push(0);
                    }
                    self.reply(ty, id, tx, &names);
                }
                ty::RM => {
                    self.store
                        .retain(|k, _| k != &path && !k.starts_with(&std::format!("{path}/")));
                    self.reply(ty, id, tx, b"OK\0");
                }
                ty::WATCH => {
                    self.reply(ty, id, tx, b"OK\0");
                    let token = text(parts.next().unwrap_or(b""));
                    let ev = std::format!("{path}\0{token}\0");
                    self.reply(ty::WATCH_EVENT, 0, 0, ev.as_bytes());
                }
                ty::TRANSACTION_START => {
                    self.next_tx += 1;
                    let t = std::format!("{}\0", self.next_tx);
                    self.reply(ty, id, tx, t.as_bytes());
                }
                ty::TRANSACTION_END if self.faults.eagain > 0 => {
                    self.faults.eagain -= 1;
                    self.reply(ty::ERROR, id, tx, b"EAGAIN\0");
                }
                _ => self.reply(ty, id, tx, b"OK\0"),
            }
        }
    }

    /// The link: each wait lets the daemon run; it gives up after 1000 waits.
    struct FakeLink {
        daemon: Rc<RefCell<Daemon>>,
        waits: u32,
    }

    impl Link for FakeLink {
        fn notify(&mut self) {
            self.daemon.borrow_mut().run();
        }
        fn wait(&mut self) -> bool {
            self.waits += 1;
            self.daemon.borrow_mut().run();
            self.waits < 1000
        }
    }

    fn client(
        faults: Faults,
    ) -> (
        Client<FakeLink>,
        Rc<RefCell<Daemon>>,
        Box<XenstoreInterface>,
    ) {
        let mut p = page();
        let daemon = Rc::new(RefCell::new(Daemon {
            page: &mut *p,
            store: BTreeMap::new(),
            inbox: Vec::new(),
            outbox: VecDeque::new(),
            faults,
            next_tx: 0,
        }));
        let link = FakeLink {
            daemon: daemon.clone(),
            waits: 0,
        };
        // SAFETY: the boxed page outlives the client in every test.
        let c = unsafe { Client::new(NonNull::from(&mut *p), link) };
        (c, daemon, p)
    }

    #[test]
    fn read_write_directory_remove() {
        let (mut c, _d, _p) = client(Faults::default());
        c.write(0, "data/a", b"1").unwrap();
        c.write(0, "data/b/c", b"2").unwrap();
        assert_eq!(c.read(0, "data/a").unwrap(), "1");
        assert_eq!(c.directory(0, "data").unwrap(), ["a", "b"]);
        c.remove(0, "data/b").unwrap();
        assert_eq!(c.directory(0, "data").unwrap(), ["a"]);
        assert_eq!(c.read(0, "data/b/c"), Err(XsError::Error(XenError::ENOENT)));
    }

    #[test]
    fn values_longer_than_the_ring_cross_it() {
        let (mut c, _d, _p) = client(Faults::default());
        let big = vec![b'z'; 3000];
        c.write(0, "data/big", &big).unwrap();
        assert_eq!(c.read(0, "data/big").unwrap().len(), 3000);
        assert_eq!(c.write(0, "data/huge", &[0; 5000]), Err(XsError::TooLong));
    }

    #[test]
    fn watch_events_are_queued_while_a_reply_is_awaited() {
        let (mut c, d, _p) = client(Faults::default());
        c.watch("control/shutdown", "ctl").unwrap();
        d.borrow_mut().faults.event_first = true;
        c.write(0, "data/x", b"y").unwrap();
        let ev = c.take_event().unwrap();
        assert_eq!(
            (ev.path.as_str(), ev.token.as_str()),
            ("control/shutdown", "ctl")
        );
        assert_eq!(c.take_event().unwrap().token, "tok");
        assert_eq!(c.take_event(), None);
    }

    #[test]
    fn events_taken_by_token_leave_the_others_in_order() {
        let (mut c, d, _p) = client(Faults::default());
        c.watch("control/shutdown", "ctl").unwrap();
        d.borrow_mut().faults.event_first = true;
        c.write(0, "data/x", b"y").unwrap();
        assert_eq!(c.take_event_for("tok").unwrap().token, "tok");
        assert_eq!(c.take_event_for("tok"), None);
        assert_eq!(c.take_event_for("other"), None);
        assert_eq!(c.take_event().unwrap().token, "ctl");
        assert_eq!(c.take_event(), None);
    }

    /// What a restore does to the page: a new daemon, the indices from zero
    /// (the old ones were far along), a half-sent reply lost.
    fn restore(d: &Rc<RefCell<Daemon>>) {
        let mut d = d.borrow_mut();
        d.inbox.clear();
        d.outbox.clear();
        // SAFETY: the test owns the page; client and daemon take turns.
        let p = unsafe { &mut *d.page };
        (p.req_cons, p.req_prod, p.rsp_cons, p.rsp_prod) = (0, 0, 0, 0);
    }

    #[test]
    fn after_a_restore_the_client_talks_to_the_new_daemon() {
        let (mut c, d, _p) = client(Faults::default());
        for i in 0..40 {
            c.write(0, &std::format!("data/{i}"), &[b'v'; 100]).unwrap();
        }
        c.watch("control/shutdown", "ctl").unwrap();
        c.poll().unwrap();
        restore(&d);
        // Without taking up the new indices, the client cannot go on.
        assert!(c.read(0, "data/1").is_err());
        c.reconnect();
        assert_eq!(c.read(0, "data/1").unwrap(), "v".repeat(100));
        c.write(0, "data/new", b"x").unwrap();
        assert_eq!(c.read(0, "data/new").unwrap(), "x");
        assert_eq!(
            c.take_event_for("ctl").map(|e| e.path),
            Some("control/shutdown".into()),
            "events queued before the restore stay for their owner"
        );
    }

    #[test]
    fn a_restore_mid_reply_is_recovered_by_reconnect() {
        let (mut c, d, _p) = client(Faults::default());
        c.write(0, "k", b"v").unwrap();
        d.borrow_mut().faults.mute = true;
        assert!(c.read(0, "k").is_err(), "no reply: the client gives up");
        restore(&d);
        d.borrow_mut().faults.mute = false;
        c.reconnect();
        assert_eq!(c.read(0, "k").unwrap(), "v");
    }

    #[test]
    fn a_flood_of_events_keeps_the_newest_and_counts_the_rest() {
        let (mut c, _d, _p) = client(Faults::default());
        let n = MAX_QUEUED_EVENTS + 8;
        for i in 0..n {
            c.watch(&std::format!("data/{i}"), "flood").unwrap();
        }
        c.poll().unwrap();
        assert_eq!(c.stats.events, n as u64);
        assert_eq!(c.stats.dropped_events, 8);
        assert_eq!(c.take_event().unwrap().path, "data/8");
        let mut left = 1;
        while c.take_event().is_some() {
            left += 1;
        }
        assert_eq!(left, MAX_QUEUED_EVENTS);
    }

    #[test]
    fn unwatch_drops_the_watchs_queued_events_only() {
        let (mut c, _d, _p) = client(Faults::default());
        c.watch("a/b", "t").unwrap();
        c.watch("a/bc", "t").unwrap();
        c.watch("a/b", "u").unwrap();
        c.poll().unwrap();
        c.unwatch("a/b", "t").unwrap();
        let left: Vec<_> = core::iter::from_fn(|| c.take_event())
            .map(|e| (e.path, e.token))
            .collect();
        assert_eq!(
            left,
            [("a/bc".into(), "t".into()), ("a/b".into(), "u".into())]
        );
    }

    #[test]
    fn stray_replies_are_dropped_and_counted() {
        let (mut c, d, _p) = client(Faults::default());
        d.borrow_mut().faults.stray_first = true;
        c.write(0, "k", b"v").unwrap();
        assert_eq!(c.read(0, "k").unwrap(), "v");
        assert_eq!(c.stats.stray_replies, 2);
    }

    #[test]
    fn transactions_retry_on_eagain_and_abort_on_error() {
        let (mut c, d, _p) = client(Faults::default());
        d.borrow_mut().faults.eagain = 2;
        let mut runs = 0;
        c.transaction(|c, tx| {
            runs += 1;
            c.write(tx, "t/x", b"1")
        })
        .unwrap();
        assert_eq!((runs, c.stats.retries), (3, 2));
        let r: Result<(), _> = c.transaction(|c, tx| c.read(tx, "missing").map(drop));
        assert_eq!(r, Err(XsError::Error(XenError::ENOENT)));
        d.borrow_mut().faults.eagain = 100;
        let r = c.transaction(|c, tx| c.write(tx, "t/x", b"2"));
        assert_eq!(
            r,
            Err(XsError::Error(XenError::EAGAIN)),
            "gives up after the retries"
        );
    }

    #[test]
    fn a_hostile_daemon_gets_typed_errors_not_panics() {
        let (mut c, _d, _p) = client(Faults {
            oversized: true,
            ..Faults::default()
        });
        assert_eq!(c.read(0, "x"), Err(XsError::Oversized(5000)));
        assert_eq!(
            c.read(0, "x"),
            Err(XsError::Broken),
            "the stream cannot be framed any more"
        );

        let (mut c, _d, _p) = client(Faults {
            corrupt_index: true,
            ..Faults::default()
        });
        assert!(matches!(
            c.read(0, "x"),
            Err(XsError::Ring(RingError::Corrupt { .. }))
        ));

        let (mut c, _d, _p) = client(Faults {
            mute: true,
            ..Faults::default()
        });
        assert_eq!(c.read(0, "x"), Err(XsError::Timeout));

        // A reply of another type with the right id.
        let mut raw = Vec::new();
        for v in [ty::DIRECTORY, 1, 0, 2] {
            raw.extend(u32::to_le_bytes(v));
        }
        raw.extend(b"a\0");
        let (mut c, _d, _p) = client(Faults {
            raw: Some(raw),
            ..Faults::default()
        });
        assert!(matches!(c.read(0, "x"), Err(XsError::BadReply(_))));
    }

    proptest! {
        /// Whatever bytes the daemon sends back, the client returns a value or
        /// a typed error — never a panic — and stays within its buffers.
        #[test]
        fn random_replies_never_panic(raw in prop::collection::vec(any::<u8>(), 0..3000)) {
            let (mut c, _d, _p) = client(Faults { raw: Some(raw), ..Faults::default() });
            let _ = c.read(0, "x");
            let _ = c.poll();
            while c.take_event().is_some() {}
            prop_assert!(c.rx.len() <= HEADER + PAYLOAD_MAX + RING_SIZE);
        }
    }
}
