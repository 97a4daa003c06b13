//! `shell`: commands typed over `xl console`, answered on it.
//!
//! `help`, `uptime`, `date`, `mem` (frames, heap, reservation, MMU counters),
//! `evtchn` (delivery, counters, ports), `evtchn loop` (a channel to
//! itself: bind_interdomain, notify, a handler run by the upcall, close), `sleep <ms>` (reports the time
//! slept by pvclock), `echo <words>`, `xs ls|read|write|rm <path> [value]`,
//! `grant` (grants a page to this very domain, copies it back through the
//! grant with `GNTTABOP_copy`, ends the access and shows the copy refused),
//! `burst <lines> <length>` (a console stress: numbered lines of letters the
//! harness checks), `halt`, `reboot`. Unknown commands get a
//! one-line error. Prints `shell: ready` once it listens.
#![no_std]
#![no_main]

use core::time::Duration;

rt::main!(main);

const HELP: &str = "commands: help uptime date mem evtchn [loop] sleep <ms> timers <n> echo <text> xs ls|read|write|rm <path> [value] grant burst <lines> <length> halt reboot";

/// `timers N`: N sleeps of 300 µs back to back — each arms the one-shot
/// timer and idles until `VIRQ_TIMER` — a storm of timer events through the
/// upcall path (the harness runs it on PVH, where QEMU's emulated SVM once
/// turned such storms into triple faults).
fn timers(n: u32) {
    let before = rt::sched::sleep_stats();
    let t0 = rt::time::Instant::now();
    for _ in 0..n {
        rt::sched::sleep(Duration::from_micros(300));
    }
    let took = t0.elapsed();
    let after = rt::sched::sleep_stats();
    rt::println!(
        "timers: {n} sleeps of 300 us in {} ms; woken {} times by the timer, {} by other events",
        took.as_millis(),
        after.timer_wakeups - before.timer_wakeups,
        after.other_wakeups - before.other_wakeups
    );
}

fn main() {
    rt::println!("shell: ready ({}); type `help`", rt::platform());
    let mut buf = [0u8; 256];
    loop {
        rt::print!("rt> ");
        let line = rt::console::read_line(&mut buf);
        let mut words = line.split_whitespace();
        let Some(cmd) = words.next() else { continue };
        match cmd {
            "help" => rt::println!("{HELP}"),
            "uptime" => {
                let t = rt::time::uptime();
                rt::println!("uptime: {}.{:03} s", t.as_secs(), t.subsec_millis());
            }
            "date" => match rt::time::date() {
                Some(d) => rt::println!("date: {d}"),
                None => rt::println!("date: no wall clock here (not on Xen)"),
            },
            "mem" => mem(),
            "evtchn" => match words.next() {
                Some("loop") => evtchn_loop(),
                _ => evtchn(),
            },
            "sleep" => match words.next().map(str::parse::<u64>) {
                Some(Ok(ms)) => {
                    let t0 = rt::time::Instant::now();
                    rt::sched::sleep(Duration::from_millis(ms));
                    let took = t0.elapsed();
                    rt::println!(
                        "sleep: asked {ms} ms, slept {}.{:03} ms by pvclock",
                        took.as_millis(),
                        took.subsec_micros() % 1000
                    );
                }
                _ => rt::println!("sleep: usage: sleep <milliseconds>"),
            },
            "timers" => match words.next().map(str::parse::<u32>) {
                Some(Ok(n)) if n <= 1_000_000 => timers(n),
                _ => rt::println!("timers: usage: timers <count up to 1000000>"),
            },
            "echo" => {
                let rest = line.trim_start().strip_prefix("echo").unwrap_or("").trim();
                rt::println!("{rest}");
            }
            "xs" => xs(words.next(), words.next(), line),
            "grant" => grant(),
            "burst" => match (
                words.next().map(str::parse::<u32>),
                words.next().map(str::parse::<u32>),
            ) {
                (Some(Ok(n)), Some(Ok(len))) if n <= 100_000 && len <= 1_000_000 => burst(n, len),
                _ => {
                    rt::println!("burst: usage: burst <lines up to 100000> <length up to 1000000>")
                }
            },
            "halt" => {
                rt::println!("shell: halting");
                rt::exit(0);
            }
            "reboot" => {
                rt::println!("shell: rebooting");
                rt::reboot();
            }
            other => rt::println!("unknown command: {other} (try `help`)"),
        }
    }
}

/// `xs ls|read|write|rm <path> [value]`: xenstore (relative paths are under
/// the domain's home).
fn xs(op: Option<&str>, path: Option<&str>, line: &str) {
    let Some(path) = path else {
        rt::println!("xs: usage: xs ls|read|write|rm <path> [value]");
        return;
    };
    let r = match op {
        Some("ls") => rt::xenstore::directory(path).map(|names| {
            rt::println!("xs: {path}: {} entries", names.len());
            for n in names {
                rt::println!("  {n}");
            }
        }),
        Some("read") => rt::xenstore::read(path).map(|v| rt::println!("xs: {path} = {v:?}")),
        Some("write") => {
            // The value is the rest of the line after the path.
            let value = line.split_once(path).map_or("", |(_, rest)| rest).trim();
            rt::xenstore::write(path, value).map(|()| rt::println!("xs: wrote {path}"))
        }
        Some("rm") => rt::xenstore::remove(path).map(|()| rt::println!("xs: removed {path}")),
        _ => {
            rt::println!("xs: usage: xs ls|read|write|rm <path> [value]");
            return;
        }
    };
    if let Err(e) = r {
        rt::println!("xs: {path}: {e}");
    }
}

/// `grant`: a round trip through the grant table on real Xen. The page is
/// granted to this domain itself, so Xen applies the same checks to the copy
/// as it would for a backend.
fn grant() {
    let me = match rt::xenstore::read("domid").map(|d| d.parse::<u16>()) {
        Ok(Ok(d)) => d,
        other => {
            rt::println!("grant: no domain id ({other:?})");
            return;
        }
    };
    let mut page = match rt::grant::GrantedPage::new(me, true) {
        Ok(p) => p,
        Err(e) => {
            rt::println!("grant: {e}");
            return;
        }
    };
    for (i, b) in page.bytes_mut().iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let gref = page.gref();
    let Some(dst) = rt::grant::GrantedPage::new(me, true).ok() else {
        rt::println!("grant: no second page");
        return;
    };
    let copied = rt::grant::copy_from_grant(me, gref, 0, dst.pfn(), 0, 4096);
    let same = dst.bytes() == page.bytes();
    rt::println!(
        "grant: ref {gref} to domain {me}; GNTTABOP_copy {}; contents {}",
        match copied {
            Ok(()) => "ok",
            Err(_) => "failed",
        },
        if same { "match" } else { "differ" }
    );
    if let Err(e) = copied {
        rt::println!("grant: copy: {e}");
    }
    drop(page);
    match rt::grant::copy_from_grant(me, gref, 0, dst.pfn(), 0, 4096) {
        Ok(()) => rt::println!("grant: after ending access the copy still worked"),
        Err(e) => rt::println!("grant: after ending access the copy is refused: {e}"),
    }
    drop(dst);
    if let Some((s, frames, deferred)) = rt::grant::stats() {
        rt::println!(
            "grant: table {frames} frames, {} entries; {} granted, {} ended, {} active, {} deferred",
            s.entries,
            s.granted,
            s.ended,
            s.active,
            deferred
        );
    }
}

/// `burst`: `n` lines `burst NNN <payload>`, line i's payload being the
/// alphabet from letter i mod 26 onwards, repeated to `len` characters.
fn burst(n: u32, len: u32) {
    const ALPHABET: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    // Every rotation of the alphabet, repeated, is a slice of this.
    let mut chunk = [0u8; 26 * 10 + 26];
    for (i, c) in chunk.iter_mut().enumerate() {
        *c = ALPHABET[i % 26];
    }
    let t0 = rt::time::Instant::now();
    for i in 0..n {
        rt::print!("burst {i:03} ");
        let (mut left, start) = (len as usize, (i % 26) as usize);
        while left > 0 {
            let k = left.min(260);
            // The chunk holds only ASCII letters.
            rt::print!(
                "{}",
                core::str::from_utf8(&chunk[start..start + k]).unwrap_or("")
            );
            left -= k;
        }
        rt::println!();
    }
    let took = t0.elapsed();
    rt::println!(
        "burst: done {n} lines of {len} characters in {} ms",
        took.as_millis()
    );
}

fn mem() {
    let f = rt::mm::frame_stats();
    let h = rt::heap::stats();
    let m = rt::mm::stats();
    rt::println!(
        "mem: frames {} free of {} ({} KiB free); heap {} KiB mapped, {} B in {} allocations, limit {}",
        f.free,
        f.frames,
        f.free * 4,
        h.mapped_bytes / 1024,
        h.allocated_bytes,
        h.allocations,
        Limit(h.limit_bytes)
    );
    match rt::mm::reservation() {
        Ok(r) => rt::println!(
            "mem: reservation {} KiB (max {} KiB, {} KiB given back)",
            r.current_pages * 4,
            r.max_pages * 4,
            r.released_pages * 4
        ),
        Err(e) => rt::println!("mem: reservation: {e}"),
    }
    match rt::mm::p2m_info() {
        Some((entries, pages, absent)) => {
            rt::println!("mem: p2m {entries} entries in {pages} pages, {absent} given back to Xen")
        }
        None => rt::println!("mem: p2m kept by Xen (PVH physmap)"),
    }
    rt::println!(
        "mem: mmu {} ops in {} hypercalls ({:.1} per call), {} pins, {} unpins, {} flushes, {} tables",
        m.queued,
        m.hypercalls,
        m.ops_per_hypercall(),
        m.pins,
        m.unpins,
        m.flushes,
        m.tables_allocated - m.tables_released
    );
}

/// The heap limit for display.
struct Limit(Option<u64>);

impl core::fmt::Display for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(b) => write!(f, "{} KiB", b / 1024),
            None => f.write_str("all free RAM"),
        }
    }
}

/// Runs of the `evtchn loop` handler.
static LOOP_HITS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

fn loop_handler(_: rt::event::Port) {
    LOOP_HITS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

/// `evtchn loop`: an unbound port for this domain, a second port bound to
/// it (interdomain, to itself), a handler on the first, a notify on the
/// second; the vCPU idles until the upcall has run the handler. Both
/// channels are closed on the way out.
fn evtchn_loop() {
    use rt::event::Channel;
    let me = match rt::xenstore::read("domid").map(|d| d.parse::<u16>()) {
        Ok(Ok(d)) => d,
        other => {
            rt::println!("evtchn: no domain id ({other:?})");
            return;
        }
    };
    let r = (|| {
        let a = Channel::alloc_unbound(me)?;
        let b = Channel::bind_interdomain(me, a.port().0)?;
        a.on_event(loop_handler)?;
        let (hits0, up0) = (
            LOOP_HITS.load(core::sync::atomic::Ordering::Relaxed),
            rt::event::stats().upcalls,
        );
        let t0 = rt::time::Instant::now();
        b.notify()?;
        let deadline = t0.after(Duration::from_secs(1));
        while LOOP_HITS.load(core::sync::atomic::Ordering::Relaxed) == hits0
            && rt::time::Instant::now() < deadline
        {
            rt::sched::idle(Some(deadline))?;
        }
        let took = t0.elapsed();
        let hits = LOOP_HITS.load(core::sync::atomic::Ordering::Relaxed) - hits0;
        rt::println!(
            "evtchn: loop {} -> {}: handler ran {hits} time(s), {} upcall(s), {} us",
            b.port(),
            a.port(),
            rt::event::stats().upcalls - up0,
            took.as_micros()
        );
        Ok::<(), rt::event::EventError>(())
    })();
    if let Err(e) = r {
        rt::println!("evtchn: loop: {e}");
    }
}

/// `evtchn`: delivery mode, counters and the ports in use.
fn evtchn() {
    let e = rt::event::stats();
    let s = rt::sched::sleep_stats();
    rt::println!(
        "evtchn: delivery by {}; {} upcalls ({} outside idle, {} repeated), {} idle blocks, {} polls; {} handlers, {} delivered, {} unhandled, {} latched",
        e.delivery,
        e.upcalls,
        e.stray,
        e.repeated,
        e.idles,
        e.waits,
        e.handlers,
        e.delivered,
        e.unhandled,
        e.latched
    );
    rt::println!(
        "evtchn: sleeps {} (timer wake-ups {}, other wake-ups {})",
        s.sleeps,
        s.timer_wakeups,
        s.other_wakeups
    );
    for (what, port) in rt::event::known_ports() {
        let (pending, masked) = rt::event::port_state(port);
        rt::println!(
            "evtchn: port {:>4} {what}{}{}",
            port.0,
            if pending { " pending" } else { "" },
            if masked { " masked" } else { "" }
        );
    }
}
