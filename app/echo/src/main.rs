//! `echo`: UDP and TCP echo servers on port 7 (RFC 862), a TCP discard
//! server on port 9 (RFC 863) and a TCP source on port 19 (a client sends a
//! byte count and a newline, gets that many bytes of a fixed pattern with a
//! 64 KiB period and the guest logs their CRC-32 — or, after `<count>
//! fast`, only the rate: guest → peer throughput) over the vif, written on
//! `rt::net`'s sockets and `rt::task`: one task per service and one per
//! connection, so several clients are served at once.
//!
//! Prints its boot report, brings the network up, prints `echo: ready on <ip>`, then serves until
//! the toolstack shuts the guest down (`xl shutdown`). Ping is answered by
//! the stack. Every 2^k-th datagram and each TCP connection is logged, and
//! the counters (frames, drops, buffers, heap, sockets, tasks) are printed
//! on `echo: stats` lines, and sent to a TCP client that sends `stats`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use rt::net::io_async::{Read, Write};
use rt::net::{SocketError, TcpListener, TcpOptions, TcpStream, UdpSocket};

rt::main!(main);

const PORT: u16 = 7;
const DISCARD: u16 = 9;
const SOURCE: u16 = 19;
/// Most bytes one source request may ask for.
const SOURCE_MAX: u64 = 1 << 30;

/// Why the echo server stopped.
#[derive(Debug)]
enum EchoError {
    Net(rt::net::NetError),
    Bind(&'static str, SocketError),
}

impl core::fmt::Display for EchoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EchoError::Net(e) => write!(f, "{e}"),
            EchoError::Bind(what, e) => write!(f, "cannot open {what}: {e}"),
        }
    }
}

fn main() -> Result<(), EchoError> {
    // First thing: the boot report (`cargo xtask bench` times `main` by it).
    rt::println!("echo: {}", rt::boot_info());
    let t0 = rt::time::Instant::now();
    let stack = rt::net::up().map_err(EchoError::Net)?;
    let udp = UdpSocket::bind(&stack, PORT).map_err(|e| EchoError::Bind("udp 7", e))?;
    // Big windows for the throughput benches; two connections may arrive
    // at once per port (a third in the same instant is refused). A small
    // domain (under 8 MiB: the memory ladder goes down to 2 MiB on PVH)
    // gets small windows instead, so the sockets fit beside the vif.
    let small = rt::boot_info().memory_bytes() < SMALL_DOMAIN;
    let window = if small { 8192 } else { 65536 };
    let big = TcpOptions {
        rx_buffer: window,
        tx_buffer: window,
        backlog: 2,
        ..TcpOptions::default()
    };
    let tcp = TcpListener::bind_with(&stack, PORT, big).map_err(|e| EchoError::Bind("tcp 7", e))?;
    let sink = TcpListener::bind_with(
        &stack,
        DISCARD,
        TcpOptions {
            tx_buffer: 64,
            backlog: 1,
            ..big
        },
    )
    .map_err(|e| EchoError::Bind("tcp 9", e))?;
    let source = TcpListener::bind_with(
        &stack,
        SOURCE,
        TcpOptions {
            rx_buffer: 1024,
            tx_buffer: if small { 16384 } else { 256 * 1024 },
            backlog: 1,
            ..big
        },
    )
    .map_err(|e| EchoError::Bind("tcp 19", e))?;
    let info = rt::net::info();
    let cidr = info.map(|i| i.config.cidr);
    rt::println!(
        "echo: ready on {} (udp {PORT}, tcp {PORT}, discard tcp {DISCARD}, source tcp {SOURCE}); network up in {} ms",
        cidr.map_or("?".into(), |c| alloc::format!("{c}")),
        t0.elapsed().as_millis() as u64
    );
    rt::println!("echo: {}", rt::timeline());
    // The same per phase with its counts (network phases included).
    rt::println!("echo: {}", rt::timeline().report());
    if let Some(gw) = info.and_then(|i| i.config.gateway) {
        let p = rt::net::ping(gw, 3, Duration::from_secs(1));
        rt::println!(
            "echo: ping {gw}: {} of {} replies, rtt {}..{} us",
            p.received,
            p.sent,
            p.rtt_min.as_micros() as u64,
            p.rtt_max.as_micros() as u64
        );
    }
    // Memory in use: the domain's pages less the allocator's free frames.
    if let Ok(r) = rt::mm::reservation() {
        let free = rt::mm::frame_stats().free;
        rt::println!(
            "echo: memory in use {} KiB of {} KiB",
            r.current_pages.saturating_sub(free as u64) * 4,
            r.current_pages * 4
        );
    }
    rt::println!("harness: net-ready");
    report();
    rt::task::spawn(udp_echo(udp, if small { 16384 } else { 65536 }));
    rt::task::spawn(serve(tcp, Kind::Echo));
    rt::task::spawn(serve(sink, Kind::Discard));
    rt::task::spawn(serve(source, Kind::Source));
    // Serve until the toolstack ends the domain.
    rt::task::block_on(core::future::pending::<()>());
    drop(stack);
    Ok(())
}

/// Below this much memory the sockets get small buffers.
const SMALL_DOMAIN: u64 = 8 << 20;

/// UDP: every datagram (up to `max` bytes) straight back to its sender.
async fn udp_echo(s: UdpSocket, max: usize) {
    let mut buf = vec![0u8; max];
    let mut datagrams = 0u64;
    loop {
        let (n, from) = match s.recv_from_async(&mut buf).await {
            Ok(r) => r,
            Err(SocketError::NetworkDown) => {
                rt::println!("echo: udp: the network is down for good: no more echoes");
                return;
            }
            Err(e) => {
                rt::println!("echo: udp receive: {e}");
                continue;
            }
        };
        datagrams += 1;
        if datagrams.is_power_of_two() {
            rt::println!("echo: udp datagram {datagrams} ({n} bytes from {from})");
        }
        if let Err(e) = s.send_to_async(&buf[..n], from).await {
            rt::println!("echo: udp reply dropped: {e}");
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Echo,
    Discard,
    Source,
}

/// Accepts connections for ever, one task each.
async fn serve(mut l: TcpListener, kind: Kind) {
    loop {
        let s = l.accept_async().await;
        match kind {
            Kind::Echo => rt::task::spawn(echo(s)),
            Kind::Discard => rt::task::spawn(discard(s)),
            Kind::Source => rt::task::spawn(source(s)),
        };
    }
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// TCP echo: everything back; a read of exactly `stats\n` asks for the
/// counters instead.
async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                rt::println!("echo: tcp receive: {e}");
                return;
            }
        };
        let r = if &buf[..n] == b"stats\n" {
            let line = alloc::format!("{}\n", net_stats_line());
            s.write_all(line.as_bytes()).await
        } else {
            s.write_all(&buf[..n]).await
        };
        if let Err(e) = r {
            rt::println!("echo: tcp send: {e}");
            return;
        }
    }
    let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
    rt::println!("echo: tcp connection {n} closed by the peer");
}

/// Discard: read and drop; logged per connection.
async fn discard(mut s: TcpStream) {
    let mut buf = vec![0u8; 16384];
    let mut discarded = 0u64;
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => discarded += n as u64,
            Err(e) => {
                rt::println!("echo: discard: {e} after {discarded} bytes");
                return;
            }
        }
    }
    rt::println!("echo: discarded {discarded} bytes");
}

/// Source: reads `<count>\n`, sends `count` bytes of [`pattern`], logs
/// their CRC-32 and rate, closes.
async fn source(mut s: TcpStream) {
    let mut line = [0u8; 24];
    let mut got = 0;
    while !line[..got].contains(&b'\n') {
        let r = rt::task::timeout(Duration::from_secs(10), s.read(&mut line[got..])).await;
        match r {
            Ok(Ok(n)) if n > 0 && got + n < line.len() => got += n,
            _ => {
                rt::println!("echo: source: no byte count line");
                return;
            }
        }
    }
    // `<count>` or `<count> fast` (no CRC: the bench's throughput figure).
    let text = core::str::from_utf8(&line[..got]).unwrap_or("");
    let mut words = text.split_ascii_whitespace();
    let count = words
        .next()
        .and_then(rt::parse::decimal)
        .filter(|&n| n <= SOURCE_MAX);
    let fast = words.next() == Some("fast");
    let Some(count) = count else {
        rt::println!("echo: source: bad byte count (at most {SOURCE_MAX})");
        return;
    };
    let t0 = rt::time::Instant::now();
    let (idle0, net0) = (rt::sched::idle_stats(), rt::net::info());
    let mut crc = (!fast).then(rt::block::crc32::Crc32::new);
    // The pattern repeats every PERIOD bytes: made once, sent in slices.
    let mut buf = vec![0u8; PERIOD];
    pattern(0, &mut buf);
    let mut sent = 0u64;
    while sent < count {
        let at = (sent % PERIOD as u64) as usize;
        let n = (count - sent).min((PERIOD - at) as u64) as usize;
        let chunk = &buf[at..at + n];
        if let Some(c) = crc.as_mut() {
            c.update(chunk);
        }
        if let Err(e) = s.write_all(chunk).await {
            rt::println!("echo: source: {e} after {sent} bytes");
            return;
        }
        sent += n as u64;
    }
    let _ = s.flush().await;
    let ms = t0.elapsed().as_millis().max(1) as u64;
    if let Some(i) = rt::net::info() {
        rt::println!(
            "echo: source: the vif has sent {} TCP packets with checksum offload, {} of them GSO",
            i.stats.tx_csum_offloaded,
            i.stats.tx_gso
        );
        // Where the vCPU's time went: blocked in Xen, in the stack's polls
        // (frames, TCP, the ring), or in this task (copies into the socket).
        let idle = rt::sched::idle_stats();
        let all = t0.elapsed();
        let blocked = idle.blocked - idle0.blocked;
        let polls = net0.map_or(Duration::ZERO, |n| i.poll_time - n.poll_time);
        rt::println!(
            "echo: source: of {} ms, {} ms blocked ({} blocks), {} ms in {} stack polls, {} ms else",
            all.as_millis() as u64,
            blocked.as_millis() as u64,
            idle.blocks - idle0.blocks,
            polls.as_millis() as u64,
            i.polls - net0.map_or(0, |n| n.polls),
            all.saturating_sub(blocked + polls).as_millis() as u64
        );
    }
    match crc {
        Some(c) => rt::println!(
            "echo: source sent {sent} bytes crc32 {} in {ms} ms ({} KB/s)",
            c.value(),
            sent / ms
        ),
        None => rt::println!(
            "echo: source sent {sent} bytes in {ms} ms ({} KB/s)",
            sent / ms
        ),
    }
}

/// The source pattern's period (bytes).
const PERIOD: usize = 65536;

/// The source's bytes from offset `at` (within one period): each 4-byte
/// word is its index times a large odd constant (not one repeated byte).
fn pattern(at: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let off = at + i as u64;
        let word = ((off / 4) as u32).wrapping_mul(2_654_435_761);
        *b = word.to_le_bytes()[(off % 4) as usize];
    }
}

fn net_stats_line() -> alloc::string::String {
    let Some(info) = rt::net::info() else {
        return "the network is down".into();
    };
    let s = info.stats;
    let (tx, rx) = info.buffers;
    let x = rt::task::stats();
    let h = rt::heap::stats();
    let e = rt::event::stats();
    alloc::format!(
        "rx {} frames {} B, tx {} frames {} B; drops: ring full {}, bad ids {}, lengths {}, flags {}, errors rx {} tx {}; offload: {} gso packets, {} checksums checked, {} sent with checksum offload ({} GSO), bad extras {}, chains {}, checksums {}; events: {} upcalls, {} repeated, {} outside idle (last rip {:#x} rsp {:#x}), {} hypercalls; reconnects {}, ports open {}, free frames {}; buffers tx in flight {tx}, rx posted {rx}; heap {} B in {} allocations, {} KiB mapped; grants {}; sockets {} ({} closing); tasks {} alive",
        s.rx_frames,
        s.rx_bytes,
        s.tx_frames,
        s.tx_bytes,
        s.tx_ring_full,
        s.bad_ids,
        s.bad_lengths,
        s.bad_flags,
        s.rx_errors,
        s.tx_errors,
        s.rx_gso,
        s.rx_csum_checked,
        s.tx_csum_offloaded,
        s.tx_gso,
        s.bad_extras,
        s.bad_chains,
        s.bad_checksums,
        e.upcalls,
        e.repeated,
        e.stray,
        e.stray_at.0,
        e.stray_at.1,
        rt::hypercalls_issued(None),
        info.reconnects,
        e.open,
        rt::mm::frame_stats().free,
        h.allocated_bytes,
        h.allocations,
        h.mapped_bytes / 1024,
        rt::grant::stats().map_or(0, |(g, _, _)| g.active),
        info.sockets.sockets,
        info.sockets.closing,
        x.alive
    ) + &interval_line(&info)
}

/// What the previous stats line saw (all zero before the first, which
/// counts from boot): its figures become this one's base. All-zero when
/// empty, so it sits in `.bss`, not in the image.
static LAST: spin::Mutex<(rt::net::Latency, rt::sched::IdleStats, u64, Duration)> =
    spin::Mutex::new((
        rt::net::Latency::new(),
        rt::sched::IdleStats {
            blocks: 0,
            blocked: Duration::ZERO,
        },
        0,
        Duration::ZERO,
    ));

/// The guest's share of the time since the previous stats line (since boot
/// for the first): wake-up to reply sent (`NetInfo::turnaround`), time
/// blocked in Xen, time in the stack's polls.
fn interval_line(info: &rt::net::NetInfo) -> alloc::string::String {
    let idle = rt::sched::idle_stats();
    let now = (info.turnaround, idle, info.polls, info.poll_time);
    let base = core::mem::replace(&mut *LAST.lock(), now);
    alloc::format!(
        "; since the last stats: wake->send {}; blocked {} ms in {} blocks; {} polls in {} ms",
        info.turnaround.since(&base.0),
        (idle.blocked - base.1.blocked).as_millis() as u64,
        idle.blocks - base.1.blocks,
        info.polls - base.2,
        (info.poll_time - base.3).as_millis() as u64
    )
}

fn report() {
    rt::println!("echo: stats {}", net_stats_line());
}
