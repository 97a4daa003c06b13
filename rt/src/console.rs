//! The console: one sink chosen at boot, behind [`print!`]/[`println!`].
//!
//! - PV and PVH domU: the Xen console ring (what `xl console` shows). Output is
//!   never dropped while a backend is consuming: when the ring is full we wait on
//!   its event channel until xenconsoled frees space.
//! - PV dom0: `console_io` (Xen's own serial console).
//! - Bare QEMU PVH: COM1 through `uart_16550`.
//!
//! May import: `sched` (input waits in the idle loop), `event` (output waits
//! on the ring's channel), `xen`, `platform`. Everything above prints here.
use core::fmt::{self, Write};
use core::ptr::NonNull;

use rt_xen::abi::hypercall;
use rt_xen::proto::console::{ConsoleRing, XenconsInterface};
use spin::Mutex;
use uart_16550::Uart16550Tty;
use uart_16550::backend::PioBackend;

use crate::event::{Port, wait_port};
use crate::xen::HYPERVISOR;

/// Text escaped for one console line (printable ASCII as is, the rest as
/// `\n`, `\u{e9}`, ...): what `{:?}` on a `str` shows, without linking
/// core's Unicode tables into the image.
pub use rt_xen::proto::untrusted::Escaped;

/// How long one wait for the console backend lasts before we look again.
const BACKEND_WAIT_NS: u64 = 10_000_000;
/// How long [`flush`] waits for the backend to drain the ring at exit.
const FLUSH_LIMIT_NS: u64 = 2_000_000_000;

/// A Xen console ring and its event channel.
pub(crate) struct RingConsole {
    ring: ConsoleRing,
    port: Port,
    /// Set when the backend published impossible indices: we stop writing
    /// rather than scribble over a page we no longer understand.
    broken: bool,
    /// Bytes were written since the backend was last signalled. A print is
    /// signalled once, at its end ([`RingConsole::kick`]), not once per
    /// formatted piece: a line of 60 arguments costs one hypercall, not 60.
    unsent: bool,
}

impl RingConsole {
    /// # Safety
    /// `page` must be the mapped console page of this domain, `port` its event channel.
    pub(crate) unsafe fn new(page: NonNull<XenconsInterface>, port: u32) -> Self {
        Self {
            // SAFETY: forwarded from the caller.
            ring: unsafe { ConsoleRing::new(page) },
            port: Port(port),
            broken: false,
            unsent: false,
        }
    }

    /// Signals the backend if anything was written since the last signal.
    fn kick(&mut self) {
        if self.unsent && !self.broken {
            self.unsent = false;
            self.notify();
        }
    }

    /// Signals the backend. A port Xen refuses can never wake it, so the ring
    /// is given up rather than waited on forever.
    fn notify(&mut self) {
        if hypercall::evtchn_send(&HYPERVISOR, self.port.0).is_err() {
            self.broken = true;
        }
    }

    fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.broken {
            match self.ring.write(bytes) {
                Ok(0) => {
                    // Full: tell the backend and wait for room.
                    self.unsent = false;
                    self.notify();
                    wait_port(self.port, BACKEND_WAIT_NS);
                }
                Ok(n) => {
                    bytes = &bytes[n..];
                    self.unsent = true;
                }
                Err(_) => self.broken = true,
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> usize {
        if self.broken {
            return 0;
        }
        match self.ring.read(buf) {
            Ok(n) => {
                if n > 0 {
                    // Tell the backend there is room again.
                    self.notify();
                }
                n
            }
            Err(_) => {
                self.broken = true;
                0
            }
        }
    }

    fn flush(&mut self) {
        self.kick();
        let deadline = crate::xen::system_time_ns().saturating_add(FLUSH_LIMIT_NS);
        while !self.broken && matches!(self.ring.unconsumed(), Ok(n) if n > 0) {
            if crate::xen::system_time_ns() > deadline {
                break;
            }
            self.notify();
            wait_port(self.port, BACKEND_WAIT_NS);
        }
    }
}

impl Write for RingConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // The Xen console is a terminal: send CRLF line ends.
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.write_bytes(b"\r\n");
            }
            self.write_bytes(line.as_bytes());
        }
        Ok(())
    }
}

/// Where console output goes.
pub(crate) enum Sink {
    /// Nothing set up yet (output is dropped).
    None,
    /// Xen console ring (domU).
    Ring(RingConsole),
    /// `console_io` (dom0).
    ConsoleIo,
    /// COM1 (bare QEMU).
    Serial(Uart16550Tty<PioBackend>),
}

impl Sink {
    /// The end of one print: a ring console signals its backend once for
    /// everything the print wrote.
    fn end_of_print(&mut self) {
        if let Sink::Ring(r) = self {
            r.kick();
        }
    }
}

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self {
            Sink::None => Ok(()),
            Sink::Ring(r) => r.write_str(s),
            Sink::ConsoleIo => {
                hypercall::console_write(&HYPERVISOR, s.as_bytes()).map_err(|_| fmt::Error)
            }
            Sink::Serial(tty) => tty.write_str(s),
        }
    }
}

static CONSOLE: Mutex<Sink> = Mutex::new(Sink::None);

/// Makes `sink` the console (boot code).
pub(crate) fn set(sink: Sink) {
    if let Sink::Ring(r) = &sink {
        crate::event::name_port(r.port, "console");
    }
    *CONSOLE.lock() = sink;
}

/// The domain came back in a new one (restored or migrated): xenconsoled
/// signals on `port` now; the ring page is the same one.
pub(crate) fn resume(port: u32) {
    if let Sink::Ring(r) = &mut *CONSOLE.lock() {
        r.port = Port(port);
        r.ring.resync();
        r.broken = false;
        crate::event::name_port(r.port, "console");
    }
}

/// Waits (bounded) until the backend has consumed everything written, so the
/// last lines are not lost when the domain goes away right after.
pub(crate) fn flush() {
    if let Sink::Ring(r) = &mut *CONSOLE.lock() {
        r.flush();
    }
}

/// Moves pending console input (keys typed into `xl console`, or COM1) into
/// `buf` without waiting. Returns the number of bytes.
pub fn read(buf: &mut [u8]) -> usize {
    match &mut *CONSOLE.lock() {
        Sink::Ring(r) => r.read(buf),
        Sink::Serial(tty) => {
            let mut n = 0;
            while n < buf.len() {
                match tty.inner_mut().try_receive_byte() {
                    Ok(b) => buf[n] = b,
                    Err(_) => break,
                }
                n += 1;
            }
            n
        }
        Sink::ConsoleIo => hypercall::console_read(&HYPERVISOR, buf).unwrap_or(0),
        Sink::None => 0,
    }
}

/// Waits until console input arrives and moves it into `buf` (at least one byte).
pub fn read_blocking(buf: &mut [u8]) -> usize {
    loop {
        let n = read(buf);
        if n > 0 || buf.is_empty() {
            return n;
        }
        let port = match &*CONSOLE.lock() {
            Sink::Ring(r) => Some(r.port),
            _ => None,
        };
        match port {
            // The backend signals the console port when it adds input. The
            // event is taken before the ring is read again, so input that
            // arrives after that read leaves an event that ends the block:
            // no timeout needed, and an idle guest uses no CPU.
            Some(p) => {
                crate::event::clear_pending(p);
                let n = read(buf);
                if n > 0 {
                    return n;
                }
                if crate::sched::idle(None).is_err() {
                    crate::xen::yield_cpu();
                }
            }
            None if crate::platform::platform().is_xen() => crate::xen::yield_cpu(),
            None => core::hint::spin_loop(),
        }
    }
}

/// Reads one line typed on the console, echoing it, with backspace/delete
/// and Ctrl-U editing (see [`rt_xen::proto::line`]); blocks until Enter. Returns the
/// line without its end, cut at `buf.len()` bytes and at the first byte that
/// is not UTF-8.
pub fn read_line(buf: &mut [u8]) -> &str {
    use core::sync::atomic::{AtomicBool, Ordering};
    use rt_xen::proto::line::{LineEditor, Step};
    /// The previous line ended with CR: a leading LF belongs to it.
    static AFTER_CR: AtomicBool = AtomicBool::new(false);
    let mut ed = LineEditor::after(buf, AFTER_CR.load(Ordering::Relaxed));
    // One byte at a time, so input after the line end stays in the ring for
    // the next call.
    let len = 'line: loop {
        let mut chunk = [0u8; 1];
        let n = read_blocking(&mut chunk);
        for &b in &chunk[..n] {
            match ed.feed(b) {
                Step::Quiet => {}
                Step::Echo(s) => {
                    crate::console::print!("{}", core::str::from_utf8(s).unwrap_or(""))
                }
                Step::EchoByte(c) => crate::console::print!("{}", char::from(c)),
                Step::Erase(k) => {
                    for _ in 0..k {
                        crate::console::print!("\x08 \x08");
                    }
                }
                Step::Done(len) => {
                    AFTER_CR.store(ed.ended_with_cr(), Ordering::Relaxed);
                    crate::console::println!();
                    break 'line len;
                }
            }
        }
    };
    let line = &buf[..len];
    match core::str::from_utf8(line) {
        Ok(s) => s,
        Err(e) => {
            core::str::from_utf8(line.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or("")
        }
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut c = CONSOLE.lock();
    let _ = c.write_fmt(args);
    c.end_of_print();
}

/// Prints from a context that may have interrupted a holder of the console lock
/// (panic, fatal trap): takes the lock by force rather than deadlock.
pub(crate) fn print_fatal(args: fmt::Arguments<'_>) {
    // SAFETY: only called on the way to shutting the domain down; whatever held
    // the lock will never run again, so breaking it cannot race with it.
    unsafe { CONSOLE.force_unlock() };
    _print(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => ($crate::console::_print(format_args!("\n")));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

// The runtime's own modules print through `crate::console::println!`, so
// their dependency on the console shows as one (the macros themselves are
// exported at the crate root for apps).
#[allow(unused_imports)]
pub(crate) use {print, println};
