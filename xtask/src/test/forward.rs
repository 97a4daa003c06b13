//! `run-forward`: `cargo xtask run --harness` of httpd with `[network]
//! forward = ["PORT:80"]`, as a user runs it (console attached, here on
//! pipes); once the guest listens, the host fetches
//! `http://127.0.0.1:PORT/` through QEMU's and dom0's forwarding, then
//! leaves with Ctrl-].
//!
//! A session that never gets the guest to listen (a wedged Xen boot, seen
//! now and then under TCG and not caused by the guest) is tried once more
//! in a fresh session; the result says so (`attempt 2 of 2`, with the
//! first attempt's last console lines), so a retry is reported, not hidden.
use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::runner::{Row, cargo, show};
use crate::image;

/// Sessions tried when the guest never listens.
const ATTEMPTS: usize = 2;
/// How long one session may take to get the guest listening.
const READY_WITHIN: Duration = Duration::from_secs(300);
/// Console lines kept for a failure's detail.
const TAIL: usize = 6;

/// What one session came to.
enum Outcome {
    /// The page came back: the row's detail.
    Fetched(String),
    /// The guest never said it listens: the last console lines.
    NeverListened(Vec<String>),
    /// Anything else (fetch failed, no exit after Ctrl-]): not retried.
    Failed(anyhow::Error),
}

/// Runs the test (up to [`ATTEMPTS`] sessions) and adds its row.
pub(super) fn run_forward(rows: &mut Vec<Row>) {
    println!("\n== guest: run-forward (cargo xtask run --harness, a forwarded port)");
    let t0 = Instant::now();
    let mut earlier = Vec::new();
    let mut r = Err(anyhow::anyhow!("not run"));
    for attempt in 1..=ATTEMPTS {
        match once(t0) {
            Ok(Outcome::Fetched(d)) => {
                r = Ok(d);
                break;
            }
            Ok(Outcome::NeverListened(tail)) => {
                let what = format!(
                    "attempt {attempt}: the guest never said `httpd: listening on` in {} s (last lines: {})",
                    READY_WITHIN.as_secs(),
                    if tail.is_empty() {
                        "none".to_string()
                    } else {
                        tail.join(" | ")
                    }
                );
                println!("\n== run-forward: {what}");
                earlier.push(what);
                r = Err(anyhow::anyhow!("{}", earlier.join("; ")));
            }
            Ok(Outcome::Failed(e)) | Err(e) => {
                r = Err(e);
                break;
            }
        }
    }
    let r = r.map(|d| {
        if earlier.is_empty() {
            d
        } else {
            format!(
                "attempt {} of {ATTEMPTS}: {d} (earlier: {})",
                earlier.len() + 1,
                earlier.join("; ")
            )
        }
    });
    let ok = r.is_ok();
    println!(
        "test result: {} run-forward",
        if ok { "PASS" } else { "FAIL" }
    );
    rows.push(Row {
        name: "run-forward".into(),
        ok,
        secs: Some(t0.elapsed().as_secs_f64()),
        detail: match r {
            Ok(d) => d,
            Err(e) => format!("{e:#}"),
        },
    });
}

/// One session: boot, wait for the listener, fetch, leave.
fn once(t0: Instant) -> Result<Outcome> {
    let dir = image::root().join("target/run-forward");
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let manifest = dir.join("image.toml");
    std::fs::write(
        &manifest,
        format!(
            "spec = 1\n[image]\napp = \"httpd\"\nmode = \"pv\"\n[resources]\nmemory = 32\n\
             [network]\nip = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\nforward = [\"{port}:80\"]\n"
        ),
    )?;
    let mut child = cargo()
        .args(["xtask", "run", "--harness", "--manifest"])
        .arg(&manifest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            let _ = tx.send(l);
        }
    });
    let outcome = match wait_listening(t0, &rx) {
        Ok(()) => match fetch(port) {
            Ok(page) => Outcome::Fetched(format!(
                "GET http://127.0.0.1:{port}/ -> 200 ({} lines) with the console attached",
                page.lines().count()
            )),
            Err(last) => Outcome::Failed(anyhow::anyhow!(
                "the guest listens but http://127.0.0.1:{port}/ did not answer: {last}"
            )),
        },
        Err(tail) => Outcome::NeverListened(tail),
    };
    leave(&mut child)?;
    Ok(outcome)
}

/// Waits for `httpd: listening on`; else the last console lines.
fn wait_listening(t0: Instant, rx: &Receiver<String>) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut tail = std::collections::VecDeque::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => {
                show(
                    t0.elapsed().as_secs_f64(),
                    &format!("run-forward| {}", l.trim_end()),
                );
                if l.contains("httpd: listening on") {
                    return Ok(());
                }
                if tail.len() == TAIL {
                    tail.pop_front();
                }
                tail.push_back(l.trim_end().to_string());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Err(tail.into())
}

/// GET / through the forwarded port (ten tries, 2 s apart): the page, or
/// what the last try got.
fn fetch(port: u16) -> Result<String, String> {
    let mut last = String::from("no attempt");
    for _ in 0..10 {
        let got = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match got {
            Ok(b) if b.starts_with("HTTP/1.1 200") && b.contains("uptime: ") => return Ok(b),
            Ok(b) => last = format!("answer {:?}", b.chars().take(80).collect::<String>()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    Err(last)
}

/// Leaves as a user does (Ctrl-]); `cargo xtask run` must end within 60 s
/// (else it is killed, and that is an error).
fn leave(child: &mut Child) -> Result<()> {
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(&[0x1d]);
    }
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("cargo xtask run did not end after Ctrl-]")
}
