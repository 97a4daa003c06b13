//! Running QEMU: its serial output as timestamped lines (or raw chunks for an
//! attached terminal), a full log on disk, and a hard deadline.
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What the serial stream produced next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A complete line (without CR/LF), with seconds since QEMU started.
    Line(f64, String),
    /// QEMU closed its output (it exited).
    Ended,
    /// The deadline passed first.
    TimedOut,
}

/// A running QEMU.
pub struct Qemu {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Vec<u8>>,
    start: Instant,
    log: BufWriter<File>,
    partial: Vec<u8>,
    open_readers: usize,
}

fn pump(mut r: impl Read + Send + 'static, tx: Sender<Vec<u8>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Vec::new()); // end-of-stream marker
    });
}

impl Qemu {
    /// Starts `qemu-system-x86_64 args`; serial output is logged to `log_path`.
    pub fn spawn(args: &[OsString], log_path: &Path, with_stdin: bool) -> Result<Qemu> {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut log = BufWriter::new(
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?,
        );
        writeln!(
            log,
            "# qemu-system-x86_64 {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        let mut child = Command::new("qemu-system-x86_64")
            .args(args)
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context(
                "starting qemu-system-x86_64 (run `sudo scripts/provision.sh` to install QEMU 10)",
            )?;
        let (tx, rx) = channel();
        pump(child.stdout.take().expect("piped"), tx.clone());
        pump(child.stderr.take().expect("piped"), tx);
        let stdin = child.stdin.take();
        Ok(Qemu {
            child,
            stdin,
            rx,
            start: Instant::now(),
            log,
            partial: Vec::new(),
            open_readers: 2,
        })
    }

    /// Seconds since QEMU started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The next raw chunk of output (for a terminal), or `None` at end/timeout.
    pub fn next_chunk(&mut self, timeout: Duration) -> Option<Result<Vec<u8>, ()>> {
        loop {
            match self.rx.recv_timeout(timeout) {
                Ok(c) if c.is_empty() => {
                    self.open_readers -= 1;
                    if self.open_readers == 0 {
                        return Some(Err(()));
                    }
                }
                Ok(c) => {
                    let _ = self.log.write_all(&c);
                    return Some(Ok(c));
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return Some(Err(())),
            }
        }
    }

    /// The next complete line, waiting at most until `deadline`.
    pub fn next_line(&mut self, deadline: Instant) -> Next {
        loop {
            if let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
                let rest = self.partial.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.partial, rest);
                line.pop();
                while line.last() == Some(&b'\r') {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                let t = self.elapsed();
                let _ = writeln!(self.log, "[{t:8.3}] {text}");
                return Next::Line(t, text);
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::TimedOut;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(c) if c.is_empty() => {
                    self.open_readers -= 1;
                    if self.open_readers == 0 {
                        if !self.partial.is_empty() {
                            self.partial.push(b'\n');
                            continue;
                        }
                        return Next::Ended;
                    }
                }
                Ok(c) => self.partial.extend_from_slice(&c),
                Err(RecvTimeoutError::Timeout) => return Next::TimedOut,
                Err(RecvTimeoutError::Disconnected) => return Next::Ended,
            }
        }
    }

    /// Sends bytes to QEMU's serial input.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("QEMU was started without input")?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    /// Stops QEMU (if still running) and returns its exit code.
    pub fn finish(mut self, kill: bool) -> Option<i32> {
        if kill {
            let _ = self.child.kill();
        }
        let _ = self.log.flush();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

/// Runs one command on the QEMU monitor listening at `socket` (HMP) and
/// returns what it printed within a second.
pub fn monitor(socket: &Path, cmd: &str) -> Result<String> {
    use std::os::unix::net::UnixStream;
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_millis(300)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(String::from_utf8_lossy(&out).replace('\r', ""))
}
