//! Attaching the user's terminal to a guest console inside the harness.
//!
//! The terminal goes raw (so keys reach the guest as `xl console` would pass
//! them); dom0's boot is summarised by its `HARNESS:` progress lines until the
//! guest console attaches, after which output passes through untouched.
//! Ctrl-] (as in `xl console`) stops QEMU and restores the terminal.
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{TryRecvError, channel};
use std::time::Duration;

use anyhow::Result;
use rustix::termios::{self, OptionalActions, Termios};

use crate::harness::qemu::Qemu;

/// The key that leaves (Ctrl-]).
const LEAVE: u8 = 0x1d;

struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        if !termios::isatty(stdin.as_fd()) {
            return RawMode(None);
        }
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, saved);
        }
    }
}

enum Input {
    Bytes(Vec<u8>),
    Leave,
    Closed,
}

/// Runs the interactive session until the guest ends or the user leaves.
pub fn attach(mut q: Qemu) -> Result<()> {
    eprintln!(
        "booting Xen and dom0 in QEMU (TCG); the guest console attaches in about 15 s. Ctrl-] leaves."
    );
    let raw = RawMode::enter();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::Closed);
                    break;
                }
                Ok(n) => {
                    let bytes = &buf[..n];
                    if let Some(i) = bytes.iter().position(|&b| b == LEAVE) {
                        let _ = tx.send(Input::Bytes(bytes[..i].to_vec()));
                        let _ = tx.send(Input::Leave);
                        break;
                    }
                    if tx.send(Input::Bytes(bytes.to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut out = std::io::stdout();
    let mut attached = false;
    let mut line = Vec::new();
    let mut left = false;
    let mut input_open = true;
    loop {
        while input_open {
            match rx.try_recv() {
                Ok(Input::Bytes(b)) if attached => q.send(&b)?,
                Ok(Input::Bytes(_)) => {} // nothing to type into before the guest console is up
                Ok(Input::Leave) => {
                    left = true;
                    break;
                }
                Ok(Input::Closed) | Err(TryRecvError::Disconnected) => input_open = false,
                Err(TryRecvError::Empty) => break,
            }
        }
        if left {
            break;
        }
        match q.next_chunk(Duration::from_millis(20)) {
            None => continue,
            Some(Err(())) => break,
            Some(Ok(chunk)) if attached => {
                out.write_all(&chunk)?;
                out.flush()?;
            }
            Some(Ok(chunk)) => {
                for &b in &chunk {
                    if b != b'\n' {
                        line.push(b);
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches('\r')
                        .to_string();
                    line.clear();
                    if let Some(msg) = text.strip_prefix("HARNESS: ") {
                        write!(out, "[{:5.1}s] {msg}\r\n", q.elapsed())?;
                        out.flush()?;
                        if msg.starts_with("attach") {
                            attached = true;
                        }
                    } else if text.contains("Panic") || text.contains("Kernel panic") {
                        write!(out, "{text}\r\n")?;
                    }
                }
            }
        }
    }
    let code = q.finish(true);
    drop(raw);
    if left {
        eprintln!("\nleft the console (Ctrl-]); QEMU stopped.");
    } else if !attached {
        eprintln!(
            "\nQEMU ended (status {code:?}) before the guest console attached; see target/harness/run/serial.log"
        );
    }
    Ok(())
}
