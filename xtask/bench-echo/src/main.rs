//! The Linux side of the bench and the tests, one static binary:
//! - with no arguments, the Linux PV domU's side of `cargo xtask bench`:
//!   the same services as `app/echo` — UDP echo and TCP echo on port 7,
//!   TCP discard on port 9 — so dom0 measures both guests with the same
//!   commands (added to the domU's busybox initramfs by the bench; with
//!   `bench.disk=DEV` on the kernel command line it first runs the storage
//!   bench, [`disk`]);
//! - `http-load ...`: an HTTP/1.1 keep-alive load generator that checks
//!   every answer ([`http`]), run in dom0 (`/harness/bench-echo`);
//! - `forward PORT TARGET:PORT`: a TCP port forwarder ([`forward`]), run
//!   in dom0 by `cargo xtask run` for the manifest's forwarded ports.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::thread;

/// A subcommand: its arguments in, an error message out.
type Tool = fn(&[String]) -> Result<(), String>;

mod disk;
mod forward;
mod http;

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

fn discard(mut c: TcpStream) -> std::io::Result<()> {
    std::io::copy(&mut c, &mut std::io::sink()).map(drop)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tool: Option<Tool> = match args.first().map(String::as_str) {
        Some("http-load") => Some(http::load),
        Some("forward") => Some(forward::forward),
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
    tcp(7, echo)?;
    tcp(9, discard)?;
    let u = UdpSocket::bind(("0.0.0.0", 7))?;
    println!("bench-echo: udp 7, tcp 7, discard tcp 9");
    let mut buf = [0u8; 65536];
    loop {
        let (n, from) = u.recv_from(&mut buf)?;
        u.send_to(&buf[..n], from)?;
    }
}
