//! `bench-echo forward PORT TARGET:PORT`: a TCP port forwarder, run in the
//! harness's dom0 by `cargo xtask run` for each `[network] forward` of the
//! manifest — QEMU forwards the host's port to dom0, this forwards dom0's
//! to the guest on the bridge. A thread pair per connection copies both
//! ways; either side closing closes the other.
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

/// Copies `from` into `to` until `from` ends, then ends `to`'s sending half.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 65536];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Serves for ever.
pub fn forward(args: &[String]) -> Result<(), String> {
    let usage = "usage: bench-echo forward PORT TARGET:PORT";
    let [port, target] = args else {
        return Err(usage.into());
    };
    let port: u16 = port.parse().map_err(|_| usage.to_string())?;
    let l = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("port {port}: {e}"))?;
    println!("forward: dom0 port {port} -> {target}");
    for c in l.incoming() {
        let Ok(client) = c else { continue };
        let target = target.clone();
        thread::spawn(move || match TcpStream::connect(&target) {
            Ok(server) => {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    return;
                };
                let up = thread::spawn(move || pipe(c2, s2));
                pipe(server, client);
                let _ = up.join();
            }
            Err(e) => eprintln!("forward: {target}: {e}"),
        });
    }
    Ok(())
}
