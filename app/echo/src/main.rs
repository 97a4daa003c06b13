//! `echo`: UDP and TCP echo servers on port 7 (RFC 862) and a TCP discard
//! server on port 9 (RFC 863, for throughput) over the vif.
//!
//! Prints its boot report, brings the network up, prints `echo: ready on <ip>`, then serves until
//! the toolstack shuts the guest down (`xl shutdown`). Ping is answered by
//! the stack. Every 2^k-th datagram and each TCP connection is logged, and
//! the counters (frames, drops, buffers, heap) are printed on `echo: stats`
//! lines when a TCP client sends `stats`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use core::time::Duration;

use rt::net::Net;
use rt::net::smoltcp::socket::{tcp, udp};
use rt::net::smoltcp::storage::PacketMetadata;

rt::main!(main);

const PORT: u16 = 7;
const DISCARD: u16 = 9;

fn main() -> Result<(), rt::net::NetError> {
    // First thing: the boot report (`cargo xtask bench` times `main` by it).
    rt::println!("echo: {}", rt::boot_info());
    let t0 = rt::time::Instant::now();
    let mut net = Net::up()?;
    let udp_rx = udp::PacketBuffer::new(vec![PacketMetadata::EMPTY; 64], vec![0; 64 * 1536]);
    let udp_tx = udp::PacketBuffer::new(vec![PacketMetadata::EMPTY; 64], vec![0; 64 * 1536]);
    let mut us = udp::Socket::new(udp_rx, udp_tx);
    if us.bind(PORT).is_err() {
        rt::println!("echo: cannot bind udp {PORT}");
    }
    let udp = net.sockets.add(us);
    let tcp = net.sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    ));
    let discard = net.sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 64]),
    ));
    let mut discarded = 0u64;
    rt::println!(
        "echo: ready on {} (udp {PORT}, tcp {PORT}, discard tcp {DISCARD}); network up in {} ms",
        net.config.cidr,
        t0.elapsed().as_millis()
    );
    rt::println!("echo: {}", rt::timeline());
    if let Some(gw) = net.config.gateway {
        let p = net.ping(gw, 3, Duration::from_secs(1));
        rt::println!(
            "echo: ping {gw}: {} of {} replies, rtt {}..{} us",
            p.received,
            p.sent,
            p.rtt_min.as_micros(),
            p.rtt_max.as_micros()
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
    report(&net);
    let (mut datagrams, mut connections) = (0u64, 0u64);
    let mut buf = vec![0u8; 65536];
    loop {
        net.poll();
        // UDP: every datagram straight back to its sender.
        let s = net.sockets.get_mut::<udp::Socket>(udp);
        while let Ok((n, meta)) = s.recv_slice(&mut buf) {
            datagrams += 1;
            if datagrams.is_power_of_two() {
                rt::println!(
                    "echo: udp datagram {datagrams} ({n} bytes from {})",
                    meta.endpoint
                );
            }
            if s.send_slice(&buf[..n], meta.endpoint).is_err() {
                rt::println!("echo: udp reply dropped (send buffer full)");
            }
        }
        // TCP: one connection at a time, everything echoed; `stats` asks
        // for the counters instead.
        let s = net.sockets.get_mut::<tcp::Socket>(tcp);
        if !s.is_open() {
            if s.listen(PORT).is_err() {
                rt::println!("echo: cannot listen on tcp {PORT}");
            }
        } else if s.may_recv() && s.can_send() {
            // Take no more than can be sent back: the rest waits in the
            // receive window (TCP flow control), nothing is dropped.
            let room = (s.send_capacity() - s.send_queue()).min(buf.len());
            match s.recv_slice(&mut buf[..room]) {
                Ok(n) if &buf[..n] == b"stats\n" => {
                    let line = alloc::format!("{}\n", net_stats_line(&net));
                    let s = net.sockets.get_mut::<tcp::Socket>(tcp);
                    if s.send_slice(line.as_bytes()).is_err() {
                        rt::println!("echo: the stats reply was dropped");
                    }
                }
                Ok(n) => {
                    let mut off = 0;
                    while off < n {
                        match s.send_slice(&buf[off..n]) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => off += k,
                        }
                    }
                    if off < n {
                        // Cannot happen: `room` bytes fit the send buffer.
                        rt::println!("echo: {} bytes not echoed", n - off);
                    }
                }
                Err(e) => rt::println!("echo: tcp receive: {e}"),
            }
        } else if s.state() == tcp::State::CloseWait {
            connections += 1;
            rt::println!("echo: tcp connection {connections} closed by the peer");
            s.close();
        }
        // Discard: read and drop; logged per connection.
        let s = net.sockets.get_mut::<tcp::Socket>(discard);
        if !s.is_open() {
            if s.listen(DISCARD).is_err() {
                rt::println!("echo: cannot listen on tcp {DISCARD}");
            }
        } else {
            while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                if n == 0 {
                    break;
                }
                discarded += n as u64;
            }
            if s.state() == tcp::State::CloseWait {
                rt::println!("echo: discarded {discarded} bytes");
                discarded = 0;
                s.close();
            }
        }
        net.wait(Some(Duration::from_secs(10)));
    }
}

fn net_stats_line(net: &Net) -> alloc::string::String {
    let s = net.stats();
    let (tx, rx) = net.buffers();
    let h = rt::heap::stats();
    let e = rt::event::stats();
    alloc::format!(
        "rx {} frames {} B, tx {} frames {} B; drops: ring full {}, bad ids {}, lengths {}, flags {}, errors rx {} tx {}; offload: {} gso packets, {} checksums checked, bad extras {}, chains {}, checksums {}; events: {} upcalls, {} repeated, {} outside idle (last rip {:#x} rsp {:#x}), {} hypercalls; reconnects {}, ports open {}, free frames {}; buffers tx in flight {tx}, rx posted {rx}; heap {} B in {} allocations, {} KiB mapped; grants {}",
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
        s.bad_extras,
        s.bad_chains,
        s.bad_checksums,
        e.upcalls,
        e.repeated,
        e.stray,
        e.stray_at.0,
        e.stray_at.1,
        rt::hypercalls_issued(None),
        net.reconnects(),
        e.open,
        rt::mm::frame_stats().free,
        h.allocated_bytes,
        h.allocations,
        h.mapped_bytes / 1024,
        rt::grant::stats().map_or(0, |(g, _, _)| g.active)
    )
}

fn report(net: &Net) {
    rt::println!("echo: stats {}", net_stats_line(net));
}
