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
            XsError::Ring(e) => write!(f, "xenstore ring: {e}"),
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
    /// Waits for replies: one per request, or one per batch of requests
    /// sent back to back ([`Client::write_many`]).
    pub round_trips: u64,
    /// Replies that matched no outstanding request (dropped).
    pub stray_replies: u64,
    /// Watch events received.
    pub events: u64,
    /// Watch events dropped, oldest first, because [`MAX_QUEUED_EVENTS`]
    /// were waiting for their owners.
    pub dropped_events: u64,
    /// Watch events not queued because the same path and token were
    /// already waiting.
    pub coalesced_events: u64,
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
    /// Oldest first. A `Vec`, not a `VecDeque`: at most
    /// [`MAX_QUEUED_EVENTS`], so taking from the front moves a few words,
    /// and the image does without the deque's wrap-around code (~1 KiB).
    events: Vec<WatchEvent>,
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

/// The little-endian word at `i` of a message's header (its callers hold
/// the whole header: 0 stands for bytes that are not there).
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |w| u32::from_le_bytes(*w))
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
            events: Vec::with_capacity(MAX_QUEUED_EVENTS),
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
        // The same key's event already waiting says all this one would (its
        // owner reads the key when it takes it): a storm on one key takes
        // one place in the queue and cannot push out other keys' events.
        if self
            .events
            .iter()
            .any(|e| e.path.as_bytes() == path && e.token.as_bytes() == token)
        {
            self.stats.coalesced_events += 1;
            return;
        }
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.remove(0);
            self.stats.dropped_events += 1;
        }
        self.events.push(WatchEvent {
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
        self.stats.round_trips += 1;
        self.reply(ty, id)
    }

    /// Sets each `(path, value)`, the writes sent back to back (see
    /// [`Client::pipeline`]); the first error is returned, after every
    /// reply was taken.
    pub fn write_many(&mut self, tx: u32, entries: &[(&str, &[u8])]) -> Result<(), XsError> {
        let parts: Vec<[&[u8]; 3]> = entries
            .iter()
            .map(|(path, value)| [path.as_bytes(), b"\0", *value])
            .collect();
        let requests: Vec<&[&[u8]]> = parts.iter().map(|p| &p[..]).collect();
        let replies = self.pipeline(ty::WRITE, tx, &requests)?;
        replies
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    /// The values at `paths`, the reads sent back to back (see
    /// [`Client::pipeline`]): each its own result (a missing key is its
    /// `ENOENT`, not the batch's).
    pub fn read_many(
        &mut self,
        tx: u32,
        paths: &[&str],
    ) -> Result<Vec<Result<String, XsError>>, XsError> {
        let parts: Vec<[&[u8]; 2]> = paths.iter().map(|p| [p.as_bytes(), b"\0"]).collect();
        let requests: Vec<&[&[u8]]> = parts.iter().map(|p| &p[..]).collect();
        let replies = self.pipeline(ty::READ, tx, &requests)?;
        Ok(replies.into_iter().map(|r| r.map(|v| text(&v))).collect())
    }

    /// Sends requests of type `ty` back to back and takes their replies
    /// after (xenstored answers a connection's requests in order): one round
    /// trip per batch instead of one per request. A batch is what fits the
    /// request ring at once, so sending never waits for room while replies
    /// pile up unread. Returns each request's reply or the daemon's error
    /// for it; a failure of the connection itself (no reply in time, a
    /// broken stream, a request too long to send) ends the whole call, after
    /// the replies to what was sent were taken where they can be, so none
    /// is left to be mistaken for a later request's.
    fn pipeline(
        &mut self,
        ty: u32,
        tx: u32,
        requests: &[&[&[u8]]],
    ) -> Result<Vec<Result<Vec<u8>, XsError>>, XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        let mut out = Vec::with_capacity(requests.len());
        let mut at = 0;
        while at < requests.len() {
            let mut end = at;
            let mut bytes = 0;
            while let Some(parts) = requests.get(end) {
                let n = HEADER + parts.iter().map(|p| p.len()).sum::<usize>();
                if end > at && bytes + n > RING_SIZE {
                    break;
                }
                bytes += n;
                end += 1;
            }
            let mut ids = Vec::with_capacity(end - at);
            let mut unsent = None;
            for parts in &requests[at..end] {
                match self.send(ty, tx, parts) {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        unsent = Some(e);
                        break;
                    }
                }
            }
            self.stats.round_trips += 1;
            for id in ids {
                match self.reply(ty, id) {
                    Err(e @ XsError::Error(_)) => out.push(Err(e)),
                    Ok(v) => out.push(Ok(v)),
                    // No reply will come, or the stream is unusable.
                    Err(e) => return Err(unsent.unwrap_or(e)),
                }
            }
            if let Some(e) = unsent {
                return Err(e);
            }
            at = end;
        }
        Ok(out)
    }

    /// Waits for the reply to request `id` of type `ty`, queueing watch
    /// events that come first.
    fn reply(&mut self, ty: u32, id: u32) -> Result<Vec<u8>, XsError> {
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
                .and_then(|s| u32::try_from(crate::proto::value::decimal(s)?).ok())
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
        (!self.events.is_empty()).then(|| self.events.remove(0))
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
        Some(self.events.remove(i))
    }
}

#[cfg(test)]
mod tests;
