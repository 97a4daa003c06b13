//! The Linux PV domU's side of `cargo xtask bench`: the same services as
//! `app/echo` — UDP echo and TCP echo on port 7, TCP discard on port 9 — so
//! dom0 measures both guests with the same commands. Built statically and
//! added to the domU's busybox initramfs by the bench. With `bench.disk=DEV`
//! on the kernel command line it first runs the storage bench ([`disk`]).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::thread;

mod disk;

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
