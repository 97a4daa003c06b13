//! `httpd`: a small HTTP/1.0 server on port 80. `GET /` answers a plain
//! text page of the guest's uptime, memory, MMU and network counters;
//! anything else gets 404 (unknown path) or 400 (not a GET). Four
//! connections are served at once; each request is answered and the
//! connection closed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::time::Duration;

use rt::net::Net;
use rt::net::smoltcp::iface::SocketHandle;
use rt::net::smoltcp::socket::tcp;

rt::main!(main);

const PORT: u16 = 80;
const CONNECTIONS: usize = 4;

/// One connection: its socket and the request read so far.
struct Conn {
    h: SocketHandle,
    req: Vec<u8>,
    answered: bool,
}

fn main() -> Result<(), rt::net::NetError> {
    let mut net = Net::up()?;
    let mut conns: Vec<Conn> = (0..CONNECTIONS)
        .map(|_| Conn {
            h: net.sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 4096]),
                tcp::SocketBuffer::new(vec![0; 16384]),
            )),
            req: Vec::new(),
            answered: false,
        })
        .collect();
    rt::println!("httpd: listening on {}:{PORT}", net.config.cidr.address());
    rt::println!("harness: net-ready");
    let mut served = 0u64;
    loop {
        net.poll();
        for c in conns.iter_mut() {
            let h = c.h;
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                c.req.clear();
                c.answered = false;
                if s.listen(PORT).is_err() {
                    rt::println!("httpd: cannot listen on {PORT}");
                }
                continue;
            }
            if c.answered {
                continue;
            }
            let mut chunk = [0u8; 512];
            while let Ok(n) = s.recv_slice(&mut chunk) {
                if n == 0 {
                    break;
                }
                c.req.extend_from_slice(&chunk[..n]);
            }
            let req = &c.req;
            let complete =
                req.windows(4).any(|w| w == b"\r\n\r\n") || req.windows(2).any(|w| w == b"\n\n");
            if !complete && req.len() < 4096 {
                continue;
            }
            let line: String = core::str::from_utf8(req)
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .into();
            let (status, body) = match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["GET", "/", ..] => ("200 OK", page(&net)),
                ["GET", path, ..] => ("404 Not Found", alloc::format!("no page at {path}\n")),
                _ => ("400 Bad Request", String::from("only GET is served\n")),
            };
            let resp = alloc::format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            match s.send_slice(resp.as_bytes()) {
                Ok(n) if n == resp.len() => {}
                _ => rt::println!("httpd: the answer did not fit the send buffer"),
            }
            s.close();
            c.answered = true;
            served += 1;
            if served.is_power_of_two() {
                rt::println!("httpd: {served} requests served ({status} for {line:?})");
            }
        }
        net.wait(Some(Duration::from_secs(10)));
    }
}

/// The status page.
fn page(net: &Net) -> String {
    let mut p = String::new();
    let up = rt::time::uptime();
    let f = rt::mm::frame_stats();
    let h = rt::heap::stats();
    let m = rt::mm::stats();
    let n = net.stats();
    let (tx_busy, rx_posted) = net.buffers();
    // Writing into a String cannot fail.
    let _ = writeln!(
        p,
        "{} on {} ({})",
        rt::app_name(),
        rt::platform(),
        net.config.cidr
    );
    let _ = writeln!(p, "uptime: {}.{:03} s", up.as_secs(), up.subsec_millis());
    let _ = writeln!(
        p,
        "memory: {} of {} frames free; heap {} KiB mapped, {} B in {} allocations",
        f.free,
        f.frames,
        h.mapped_bytes / 1024,
        h.allocated_bytes,
        h.allocations
    );
    let _ = writeln!(
        p,
        "mmu: {} updates in {} hypercalls, {} page tables",
        m.queued,
        m.hypercalls,
        m.tables_allocated - m.tables_released
    );
    let _ = writeln!(
        p,
        "network: rx {} frames ({} B), tx {} frames ({} B); drops {}; buffers tx {tx_busy} in flight, rx {rx_posted} posted",
        n.rx_frames,
        n.rx_bytes,
        n.tx_frames,
        n.tx_bytes,
        n.bad_ids
            + n.bad_lengths
            + n.bad_flags
            + n.bad_extras
            + n.bad_chains
            + n.bad_checksums
            + n.rx_errors
            + n.tx_errors
            + n.tx_ring_full
    );
    let devices: Vec<String> = rt::dev::list()
        .into_iter()
        .map(|(name, up)| alloc::format!("{name} {}", if up { "connected" } else { "closed" }))
        .collect();
    let _ = writeln!(p, "devices: {}", devices.join(", "));
    p
}
