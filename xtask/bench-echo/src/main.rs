//! The Linux side of the bench and the tests, one static binary:
//! - with no arguments, the Linux PV domU's side of `cargo xtask bench`:
//!   the same services as `app/echo` — UDP echo and TCP echo on port 7,
//!   TCP discard on port 9, a TCP source on 19 — and an HTTP server like
//!   `app/httpd`'s on 80 ([`serve_http`]), so dom0 measures both guests
//!   with the same commands (added to the domU's busybox initramfs by the bench; with
//!   `bench.disk=DEV` on the kernel command line it first runs the storage
//!   bench, [`disk`]; with `bench.timers=N` it runs the timer storm of
//!   the PVH control test instead, [`timers`], and powers off);
//! - `http-load ...`: an HTTP/1.1 keep-alive load generator that checks
//!   every answer ([`http`]), run in dom0 (`/harness/bench-echo`);
//! - `http-abuse ADDR:PORT`: hostile HTTP clients at once, and a normal
//!   one throughout ([`abuse`]), run in dom0 by `httpd-abuse-pv`;
//! - `forward PORT TARGET:PORT`: a TCP port forwarder ([`forward`]), run
//!   in dom0 by `cargo xtask run` for the manifest's forwarded ports;
//! - `sink ADDR:PORT BYTES`: the receiving end of the bench's TCP guest ->
//!   dom0 row ([`sink`]), run in dom0.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::thread;

/// A subcommand: its arguments in, an error message out.
type Tool = fn(&[String]) -> Result<(), String>;

mod abuse;
mod disk;
mod forward;
mod http;
mod serve_http;
mod sink;
mod timers;

/// Serves every connection on `port` with `serve` in a thread of its own.
fn tcp(port: u16, serve: fn(TcpStream) -> std::io::Result<()>) -> std::io::Result<()> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || {
                if let Err(e) = serve(c) {
                    eprintln!("bench-echo: tcp {port}: {e}");
                }
            });
        }
    });
    Ok(())
}

fn echo(mut c: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 65536];
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        c.write_all(&buf[..n])?;
    }
}

/// Source (like `app/echo`'s port 19): reads `<count>[ fast]\n`, sends
/// that many bytes of the same pattern.
fn source(mut c: TcpStream) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 24 && c.read(&mut b)? == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    // `<count>` or `<count> fast`: the same bytes either way.
    let count: u64 = String::from_utf8_lossy(&line)
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    // app/echo's pattern: 64 KiB period, each 4-byte word its index times
    // a large odd constant.
    let buf: Vec<u8> = (0..65536u32)
        .map(|off| (off / 4).wrapping_mul(2_654_435_761).to_le_bytes()[(off % 4) as usize])
        .collect();
    let mut sent = 0u64;
    while sent < count {
        let at = (sent % 65536) as usize;
        let n = (count - sent).min((65536 - at) as u64) as usize;
        c.write_all(&buf[at..at + n])?;
        sent += n as u64;
    }
    Ok(())
}

fn discard(mut c: TcpStream) -> std::io::Result<()> {
    std::io::copy(&mut c, &mut std::io::sink()).map(drop)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tool: Option<Tool> = match args.first().map(String::as_str) {
        Some("http-load") => Some(http::load),
        Some("forward") => Some(forward::forward),
        Some("http-abuse") => Some(abuse::abuse),
        Some("sink") => Some(sink::sink),
        _ => None,
    };
    if let Some(tool) = tool {
        if let Err(e) = tool(&args[1..]) {
            eprintln!("bench-echo: {e}");
            std::process::exit(2);
        }
        return Ok(());
    }
    // The storage bench first, when the command line names a disk.
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if let Some(dev) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bench.disk="))
    {
        match disk::bench(dev) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("bench-disk: {dev}: {e}"),
        }
    }
    // The control guest's timer storm, instead of the services.
    if let Some(n) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bench.timers="))
    {
        timers::storm_and_power_off(n);
    }
    tcp(7, echo)?;
    tcp(9, discard)?;
    tcp(19, source)?;
    serve_http::start()?;
    let u = UdpSocket::bind(("0.0.0.0", 7))?;
    println!("bench-echo: udp 7, tcp 7, discard tcp 9, source tcp 19, http 80");
    let mut buf = [0u8; 65536];
    loop {
        let (n, from) = u.recv_from(&mut buf)?;
        u.send_to(&buf[..n], from)?;
    }
}
