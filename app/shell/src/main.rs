//! `shell`: commands typed over `xl console`, answered on it.
//!
//! `help`, `uptime`, `date`, `mem` (frames, heap, reservation, MMU counters),
//! `evtchn` (event-channel and sleep counters), `sleep <ms>` (reports the time
//! slept by pvclock), `echo <words>`, `xs ls|read|write|rm <path> [value]`,
//! `halt`, `reboot`. Unknown commands get a
//! one-line error. Prints `shell: ready` once it listens.
#![no_std]
#![no_main]

use core::time::Duration;

rt::main!(main);

const HELP: &str = "commands: help uptime date mem evtchn sleep <ms> echo <text> xs ls|read|write|rm <path> [value] halt reboot";

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
            "evtchn" => evtchn(),
            "sleep" => match words.next().map(str::parse::<u64>) {
                Some(Ok(ms)) => {
                    let t0 = rt::time::Instant::now();
                    rt::time::sleep(Duration::from_millis(ms));
                    let took = t0.elapsed();
                    rt::println!(
                        "sleep: asked {ms} ms, slept {}.{:03} ms by pvclock",
                        took.as_millis(),
                        took.subsec_micros() % 1000
                    );
                }
                _ => rt::println!("sleep: usage: sleep <milliseconds>"),
            },
            "echo" => {
                let rest = line.trim_start().strip_prefix("echo").unwrap_or("").trim();
                rt::println!("{rest}");
            }
            "xs" => xs(words.next(), words.next(), line),
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

/// `evtchn`: delivery mode, counters and the ports in use.
fn evtchn() {
    let e = rt::event::stats();
    let s = rt::time::sleep_stats();
    rt::println!(
        "evtchn: delivery by {}; {} upcalls, {} idle blocks, {} polls; {} handlers, {} delivered, {} unhandled, {} latched",
        e.delivery,
        e.upcalls,
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
