//! `httpd`: an HTTP/1.1 server on port 80, written on `rt::net` sockets and
//! `rt::task`: one task per connection, keep-alive and pipelined requests,
//! request heads parsed by `httparse` with bounded sizes (431 for a head
//! over 8 KiB or 32 headers, 413 for a body over 64 KiB, 408 for a request
//! not finished in 10 s; an idle keep-alive connection closes after 30 s).
//!
//! Bounded under abuse: past [`MAX_OPEN`] connections, each new one resets
//! the longest-idle keep-alive connection (the socket pool never fills with
//! idle clients, so others are still served); a client that resets
//! mid-answer costs its task only.
//!
//! `GET /` (or `HEAD /`) answers a plain-text page of the guest's uptime,
//! memory, MMU, network and server counters; with a FAT disk `xvda`, its
//! files are served at their paths ([`files`]); other paths get 404, other
//! methods 405.
#![no_std]
#![no_main]

extern crate alloc;

mod files;
mod http;
mod page;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use rt::net::io_async::{Read, Write};
use rt::net::{SocketError, TcpListener, TcpOptions, TcpStream};

use http::{Framed, Request, Status};

rt::main!(main);

const PORT: u16 = 80;
/// A request must arrive whole within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle keep-alive connection is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections past which a new one evicts the longest-idle one.
pub const MAX_OPEN: usize = 48;

/// A live connection, as the eviction sees it.
#[derive(Debug, Default)]
struct Slot {
    /// Set to ask the connection to reset itself.
    evict: AtomicBool,
    /// When it started waiting for a next request (ns of uptime; 0: busy).
    idle_since: AtomicU64,
    /// Its task, to wake when evicted.
    waker: spin::Mutex<Option<Waker>>,
}

/// Every live connection (its id and slot).
static LIVE: spin::Mutex<Vec<(u64, Arc<Slot>)>> = spin::Mutex::new(Vec::new());

/// Past [`MAX_OPEN`], asks the longest-idle connection to go.
fn make_room() {
    let live = LIVE.lock();
    if live.len() <= MAX_OPEN {
        return;
    }
    let oldest = live
        .iter()
        .filter(|(_, s)| {
            s.idle_since.load(Ordering::Relaxed) != 0 && !s.evict.load(Ordering::Relaxed)
        })
        .min_by_key(|(_, s)| s.idle_since.load(Ordering::Relaxed));
    if let Some((_, s)) = oldest {
        s.evict.store(true, Ordering::Relaxed);
        if let Some(w) = s.waker.lock().take() {
            w.wake();
        }
        COUNTERS.evicted.fetch_add(1, Ordering::Relaxed);
    }
}

/// Server counters, for the status page and the log.
#[derive(Debug)]
pub struct Counters {
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Requests refused (4xx/5xx before routing: 400, 408, 413, 431, 501).
    pub refused: AtomicU64,
    /// Connections reset by the client or failed mid-answer.
    pub broken: AtomicU64,
    /// Idle connections reset to make room ([`MAX_OPEN`]).
    pub evicted: AtomicU64,
}

/// The counters.
pub static COUNTERS: Counters = Counters {
    requests: AtomicU64::new(0),
    accepted: AtomicU64::new(0),
    open: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    broken: AtomicU64::new(0),
    evicted: AtomicU64::new(0),
};

/// The disk's files, once loaded (before the first request).
static FILES: spin::Once<Option<files::Files>> = spin::Once::new();

fn main() -> Result<(), alloc::string::String> {
    let loaded = FILES.call_once(files::load);
    if let Some(f) = loaded {
        let (n, bytes, skipped) = f.summary();
        rt::println!("httpd: serving {n} files ({bytes} bytes) from xvda; {skipped} skipped");
    }
    let stack = rt::net::up().map_err(|e| alloc::format!("network: {e}"))?;
    // Up to 16 clients may connect in the same instant.
    let options = TcpOptions {
        rx_buffer: 4096,
        tx_buffer: 16384,
        backlog: 16,
        ..TcpOptions::default()
    };
    let mut listener = TcpListener::bind_with(&stack, PORT, options)
        .map_err(|e| alloc::format!("listen on {PORT}: {e}"))?;
    let addr = stack
        .address()
        .map_or("?".into(), |a| alloc::format!("{a}"));
    rt::println!("httpd: listening on {addr}:{PORT}");
    rt::println!("harness: net-ready");
    rt::task::block_on(async move {
        loop {
            let s = listener.accept_async().await;
            let id = COUNTERS.accepted.fetch_add(1, Ordering::Relaxed);
            let slot = Arc::new(Slot::default());
            LIVE.lock().push((id, slot.clone()));
            make_room();
            rt::task::spawn(connection(s, id, slot));
        }
    })
}

/// How a connection ended.
enum End {
    /// Closed (by either side, or after a refusal or a timeout).
    Closed,
    /// Evicted to make room: reset at once.
    Evicted,
}

/// Serves one connection until it closes, fails, times out or is evicted.
async fn connection(mut s: TcpStream, id: u64, slot: Arc<Slot>) {
    COUNTERS.open.fetch_add(1, Ordering::Relaxed);
    match serve(&mut s, &slot).await {
        Ok(End::Closed) => drop(s),
        // A reset frees the socket now, not after a graceful close.
        Ok(End::Evicted) => s.abort(),
        Err(e) => {
            let n = COUNTERS.broken.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                rt::println!("httpd: connection {n} broken: {e}");
            }
        }
    }
    LIVE.lock().retain(|(i, _)| *i != id);
    COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
}

async fn serve(s: &mut TcpStream, slot: &Slot) -> Result<End, SocketError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        // Answer every whole request already here (pipelining), in order.
        loop {
            match http::parse(&buf) {
                Framed::Request(r) => {
                    buf.drain(..r.len);
                    answer(s, &r).await?;
                    if !r.keep_alive {
                        return Ok(End::Closed);
                    }
                }
                Framed::Partial => break,
                Framed::Refuse(status) => return refuse(s, status).await.map(|()| End::Closed),
            }
        }
        let idle = buf.is_empty();
        let limit = if idle { IDLE_TIMEOUT } else { REQUEST_TIMEOUT };
        if idle {
            let now = rt::time::uptime().as_nanos().max(1) as u64;
            slot.idle_since.store(now, Ordering::Relaxed);
        }
        // The read, unless the connection is evicted meanwhile.
        let got = {
            let mut read = core::pin::pin!(rt::task::timeout(limit, s.read(&mut chunk)));
            poll_fn(|cx| {
                if slot.evict.load(Ordering::Relaxed) {
                    return Poll::Ready(None);
                }
                *slot.waker.lock() = Some(cx.waker().clone());
                read.as_mut().poll(cx).map(Some)
            })
            .await
        };
        slot.idle_since.store(0, Ordering::Relaxed);
        let Some(got) = got else {
            return Ok(End::Evicted);
        };
        match got {
            Ok(Ok(0)) => return Ok(End::Closed),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
            // Idle between requests: close quietly; mid-request: 408.
            Err(_) if idle => return Ok(End::Closed),
            Err(_) => return refuse(s, Status::Timeout).await.map(|()| End::Closed),
        }
    }
}

/// Answers a refused request and closes.
async fn refuse(s: &mut TcpStream, status: Status) -> Result<(), SocketError> {
    COUNTERS.refused.fetch_add(1, Ordering::Relaxed);
    COUNTERS.requests.fetch_add(1, Ordering::Relaxed);
    let body = alloc::format!("{}\n", status.line());
    let head = http::head(status, true, false, body.len(), "text/plain");
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await
}

async fn answer(s: &mut TcpStream, r: &Request) -> Result<(), SocketError> {
    let file = FILES
        .get()
        .and_then(Option::as_ref)
        .and_then(|f| f.get(&r.path));
    let page;
    let (status, body, kind): (Status, &[u8], &str) = match (r.method.as_str(), r.path.as_str()) {
        ("GET" | "HEAD", "/") => {
            page = page::status();
            (Status::Ok, page.as_bytes(), "text/plain")
        }
        ("GET" | "HEAD", path) => match file {
            Some(data) => (Status::Ok, data, files::content_type(path)),
            None => {
                page = alloc::format!("no page at {path}\n");
                (Status::NotFound, page.as_bytes(), "text/plain")
            }
        },
        _ => (
            Status::MethodNotAllowed,
            b"only GET and HEAD are served\n",
            "text/plain",
        ),
    };
    let head = http::head(status, r.http11, r.keep_alive, body.len(), kind);
    s.write_all(head.as_bytes()).await?;
    if r.method != "HEAD" {
        s.write_all(body).await?;
    }
    let n = COUNTERS.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        rt::println!(
            "httpd: {n} requests served ({} for {} {})",
            status.line(),
            r.method,
            r.path
        );
    }
    Ok(())
}
