//! The Linux domU's HTTP server for the bench (port 80), comparable to
//! `app/httpd`: HTTP/1.1 keep-alive, a thread per connection, `GET /` a
//! small text page with the uptime and counters, other paths 404 naming
//! the path. Request heads are read up to the blank line (8 KiB at most).
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

static REQUESTS: AtomicU64 = AtomicU64::new(0);

fn page() -> String {
    let up = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let up = up.split_whitespace().next().unwrap_or("0");
    format!(
        "bench-echo on Linux PV\nuptime: {up} s\nhttp: {} requests\n",
        REQUESTS.load(Ordering::Relaxed)
    )
}

fn serve(c: TcpStream) -> std::io::Result<()> {
    c.set_nodelay(true)?;
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path, version) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut keep = version == "HTTP/1.1";
        let mut head = line.len();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head += line.len();
            if head > 8192 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("connection")
            {
                keep = !v.trim().eq_ignore_ascii_case("close");
            }
        }
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let (status, body) = match (method.as_str(), path.as_str()) {
            ("GET", "/") => ("200 OK", page()),
            ("GET", p) => ("404 Not Found", format!("no page at {p}\n")),
            _ => ("405 Method Not Allowed", "only GET\n".to_string()),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nServer: bench-echo\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if keep { "keep-alive" } else { "close" }
        );
        w.write_all(answer.as_bytes())?;
        if !keep {
            return Ok(());
        }
    }
}

/// Serves port 80 in the background.
pub fn start() -> std::io::Result<()> {
    let l = TcpListener::bind(("0.0.0.0", 80))?;
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || {
                let _ = serve(c);
            });
        }
    });
    Ok(())
}
