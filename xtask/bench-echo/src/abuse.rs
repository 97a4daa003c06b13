//! `bench-echo http-abuse ADDR:PORT`: the hostile clients of an HTTP
//! server at once, while a normal client keeps asking for `/`:
//! - a request whose head grows to 1 MiB (expects 431, then a close);
//! - a request never finished (expects 408 after the server's timeout);
//! - 200 connections opened and held idle (the pool filling up);
//! - 30 connections that send pipelined requests and reset mid-answer.
//!
//! Prints `abuse: <client>: <what happened>` lines, the normal client's
//! tally, and the server's heap (from its status page) before and after.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn connect(addr: &SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

/// The whole answer to `GET /` on a fresh connection.
fn get_page(addr: &SocketAddr) -> std::io::Result<String> {
    let mut s = connect(addr)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n")?;
    let mut page = String::new();
    s.read_to_string(&mut page)?;
    Ok(page)
}

/// The heap's allocated bytes on the status page (`... heap N KiB mapped,
/// B B in A allocations`).
fn heap_bytes(page: &str) -> Option<u64> {
    let line = page.lines().find(|l| l.starts_with("memory: "))?;
    let after = line.split("KiB mapped, ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

/// Reads until the peer closes or the timeout; returns what came.
fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e)),
        }
    }
}

fn status_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or("nothing")
        .to_string()
}

fn big_header(addr: SocketAddr) -> String {
    let Ok(mut s) = connect(&addr) else {
        return "cannot connect".into();
    };
    let Ok(mut w) = s.try_clone() else {
        return "cannot clone the socket".into();
    };
    // The writer keeps going until the server stops it; the answer is read
    // meanwhile, so a reset after it cannot lose it.
    let writer = thread::spawn(move || {
        let _ = w.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\nX-Big: ");
        let chunk = [b'a'; 16384];
        let mut sent = 0usize;
        while sent < 1 << 20 {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let (got, err) = read_all(&mut s);
    let sent = writer.join().unwrap_or(0);
    format!(
        "{} after {} KiB of header sent{}",
        status_line(&got),
        sent / 1024,
        err.map_or(String::new(), |e| format!(" ({e})"))
    )
}

fn slow_request(addr: SocketAddr) -> String {
    let Ok(mut s) = connect(&addr) else {
        return "cannot connect".into();
    };
    let t0 = Instant::now();
    if s.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\n").is_err() {
        return "could not send".into();
    }
    let (got, err) = read_all(&mut s);
    format!(
        "{} after {:.1} s{}",
        status_line(&got),
        t0.elapsed().as_secs_f64(),
        err.map_or(", then closed".to_string(), |e| format!(" ({e})"))
    )
}

fn flood(addr: SocketAddr) -> String {
    let (mut held, mut failed) = (Vec::new(), 0);
    for _ in 0..200 {
        match connect(&addr) {
            Ok(s) => held.push(s),
            Err(_) => failed += 1,
        }
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_secs(5));
    // Which of the held ones the server closed or reset to make room.
    let mut closed = 0;
    for s in &held {
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        match (&*s).read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => closed += 1,
            _ => {}
        }
    }
    format!(
        "200 attempted, {} opened, {failed} failed; {closed} of them closed by the server",
        held.len()
    )
}

/// Makes the next close send a reset (SO_LINGER with a zero timeout).
fn linger_zero(s: &TcpStream) {
    #[repr(C)]
    struct Linger {
        onoff: i32,
        secs: i32,
    }
    unsafe extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger { onoff: 1, secs: 0 };
    // SAFETY: a valid socket descriptor, a pointer to a live `struct linger`
    // and its size; setsockopt only reads it.
    let _ = unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &l,
            size_of::<Linger>() as u32,
        )
    };
}

fn resets(addr: SocketAddr) -> String {
    let mut done = 0;
    for _ in 0..30 {
        let Ok(mut s) = connect(&addr) else { continue };
        let reqs = "GET / HTTP/1.1\r\nHost: guest\r\n\r\n".repeat(10);
        if s.write_all(reqs.as_bytes()).is_err() {
            continue;
        }
        let mut b = [0u8; 100];
        if s.read(&mut b).is_ok() {
            done += 1;
        }
        linger_zero(&s);
        drop(s);
    }
    format!("{done} of 30 reset mid-answer")
}

/// Runs the abuse; prints the report.
pub fn abuse(args: &[String]) -> Result<(), String> {
    let [addr] = args else {
        return Err("usage: bench-echo http-abuse ADDR:PORT".into());
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let before = get_page(&addr).map_err(|e| format!("status page before: {e}"))?;
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<(&str, thread::JoinHandle<String>)> = vec![
        ("big-header", thread::spawn(move || big_header(addr))),
        ("slow-request", thread::spawn(move || slow_request(addr))),
        ("flood", thread::spawn(move || flood(addr))),
        ("resets", thread::spawn(move || resets(addr))),
    ];
    // The normal client, throughout.
    let d = done.clone();
    let normal = thread::spawn(move || {
        let (mut ok, mut bad, mut worst) = (0u32, 0u32, Duration::ZERO);
        let mut first_bad = String::new();
        while !d.load(Ordering::Relaxed) {
            let t = Instant::now();
            match get_page(&addr) {
                Ok(p) if p.starts_with("HTTP/1.1 200") && p.contains("uptime: ") => ok += 1,
                Ok(p) => {
                    bad += 1;
                    if first_bad.is_empty() {
                        first_bad = status_line(p.as_bytes());
                    }
                }
                Err(e) => {
                    bad += 1;
                    if first_bad.is_empty() {
                        first_bad = e.to_string();
                    }
                }
            }
            worst = worst.max(t.elapsed());
            thread::sleep(Duration::from_millis(250));
        }
        format!(
            "{ok} of {} served, slowest {:.2} s{}",
            ok + bad,
            worst.as_secs_f64(),
            if first_bad.is_empty() {
                String::new()
            } else {
                format!(" (first failure: {first_bad})")
            }
        )
    });
    for (name, c) in clients {
        let r = c
            .join()
            .unwrap_or_else(|_| "the client thread panicked".into());
        println!("abuse: {name}: {r}");
    }
    done.store(true, Ordering::Relaxed);
    let n = normal.join().unwrap_or_else(|_| "panicked".into());
    println!("abuse: normal: {n}");
    thread::sleep(Duration::from_secs(3));
    let after = get_page(&addr).map_err(|e| format!("status page after: {e}"))?;
    println!(
        "abuse: heap before {} B, after {} B",
        heap_bytes(&before).map_or("?".into(), |b| b.to_string()),
        heap_bytes(&after).map_or("?".into(), |b| b.to_string())
    );
    if let Some(l) = after.lines().find(|l| l.starts_with("http: ")) {
        println!("abuse: server {l}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_is_read_from_the_page() {
        let p = "x\nmemory: 1 of 2 frames free; heap 768 KiB mapped, 587728 B in 36 allocations\n";
        assert_eq!(heap_bytes(p), Some(587728));
        assert_eq!(heap_bytes("nothing"), None);
    }
}
