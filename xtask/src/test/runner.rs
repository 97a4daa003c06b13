//! `cargo xtask test`: every check the project has, in one command.
//!
//! Host steps (fmt, unit and property tests, clippy on host crates and on the
//! image, the image's Xen notes) run first; then the guest tests boot `hello`
//! four ways — bare QEMU PVH, PV dom0, and PV + PVH domUs in one Xen session —
//! and each ends in a line `test result: PASS <name>` or `FAIL <name>`. A summary
//! table closes the run; the exit status is non-zero if anything failed or
//! never reported.
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};
use regex::Regex;

use crate::harness::{self, End, GuestRun, GuestSpec};
use crate::image;
use crate::manifest::Mode;

/// One row of the summary.
struct Row {
    name: String,
    ok: bool,
    secs: Option<f64>,
    detail: String,
}

/// Decides a guest run: `Ok(detail)` or `Err(why it failed)`.
type Judge = dyn Fn(&GuestRun) -> Result<String, String>;

/// What a hello guest must show to pass.
struct HelloExpect {
    mode: &'static str,
    /// Acceptable reported memory, MiB (inclusive).
    memory: (u64, u64),
}

/// Judges a hello run: the greeting names the mode, the boot report is
/// complete and consistent, nothing panicked or faulted, and it powered off.
fn judge_hello(run: &GuestRun, want: &HelloExpect) -> Result<String, String> {
    let greeting = format!("hello from hello ({})", want.mode);
    if !run.console.iter().any(|l| l.trim_end() == greeting) {
        return Err(format!("no line {greeting:?} on the console"));
    }
    let re = Regex::new(
        r"^boot: mode=(\S+) memory=(\d+) MiB entry-to-main=(\d+) (us|tsc-ticks) cmdline=",
    )
    .expect("valid regex");
    let Some(c) = run.console.iter().find_map(|l| re.captures(l)) else {
        return Err("no boot report line".into());
    };
    if &c[1] != want.mode {
        return Err(format!(
            "boot report says mode={} (want {})",
            &c[1], want.mode
        ));
    }
    let mem: u64 = c[2].parse().unwrap_or(0);
    if !(want.memory.0..=want.memory.1).contains(&mem) {
        return Err(format!(
            "boot report says memory={mem} MiB (want {}..={})",
            want.memory.0, want.memory.1
        ));
    }
    if &c[4] != "us" {
        return Err("the boot report has no time base (entry-to-main in TSC ticks)".into());
    }
    if let Some(l) = run.console.iter().find(|l| l.starts_with("rt: ")) {
        return Err(format!("runtime error on the console: {l}"));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!("entry-to-main {} us", &c[3]))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(image::root());
    c
}

/// Which steps and guest tests to run (`--only`).
#[derive(Clone, Copy)]
struct Filter<'a>(Option<&'a str>);

impl Filter<'_> {
    /// Whether `name` contains one of the comma-separated parts of the filter.
    fn wants(self, name: &str) -> bool {
        self.0
            .is_none_or(|f| f.split(',').any(|p| name.contains(p)))
    }
}

fn step(
    rows: &mut Vec<Row>,
    filter: Filter<'_>,
    name: &str,
    f: impl FnOnce() -> Result<String>,
) -> bool {
    if !filter.wants(name) {
        return true;
    }
    println!("\n== {name}");
    let t = Instant::now();
    let r = f();
    let ok = r.is_ok();
    let detail = match r {
        Ok(d) => d,
        Err(e) => format!("{e:#}"),
    };
    println!(
        "== {name}: {}{}",
        if ok { "ok" } else { "FAILED" },
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        }
    );
    rows.push(Row {
        name: name.into(),
        ok,
        secs: Some(t.elapsed().as_secs_f64()),
        detail,
    });
    ok
}

/// Builds `app` as a step of the run (never filtered out: guest tests need
/// it), with a heap limit (MiB) under the image name `name` if given.
fn build_step(rows: &mut Vec<Row>, app: &str, heap: Option<(u32, &str)>) -> Option<image::Built> {
    let mut out = None;
    let name = heap.map_or(app, |h| h.1);
    step(rows, Filter(None), &format!("build {name} image"), || {
        let b = image::build_app_as(app, heap.map(|h| h.0), name)?;
        let detail = format!("{} bytes stripped", b.size);
        out = Some(b);
        Ok(detail)
    });
    out
}

fn apps() -> Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(image::root().join("app"))? {
        let e = e?;
        if e.path().join("Cargo.toml").is_file() {
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    v.sort();
    Ok(v)
}

fn guest_row(rows: &mut Vec<Row>, run: &GuestRun, verdict: Result<String, String>) {
    let ok = verdict.is_ok();
    println!(
        "test result: {} {}",
        if ok { "PASS" } else { "FAIL" },
        run.name
    );
    let detail = match verdict {
        Ok(d) => d,
        Err(e) => {
            for d in &run.diagnostics {
                println!("    {d}");
            }
            e
        }
    };
    rows.push(Row {
        name: run.name.clone(),
        ok,
        secs: run.t_end,
        detail,
    });
}

fn missing_row(rows: &mut Vec<Row>, name: &str, why: &str) {
    println!("test result: FAIL {name}");
    rows.push(Row {
        name: name.into(),
        ok: false,
        secs: None,
        detail: why.into(),
    });
}

fn show(t: f64, line: &str) {
    println!("  [{t:7.2}] {line}");
}

/// Runs everything; fails if any step or guest test failed or is missing.
pub fn run_all(host_only: bool, only: Option<&str>) -> Result<()> {
    let mut rows = Vec::new();
    let filter = Filter(only);
    step(&mut rows, filter, "fmt", || {
        crate::run(cargo().args(["fmt", "--all", "--", "--check"])).map(|_| String::new())
    });
    step(&mut rows, filter, "host tests", || {
        crate::run(cargo().arg("test")).map(|_| String::new())
    });
    step(&mut rows, filter, "clippy (host crates)", || {
        crate::run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
            .map(|_| String::new())
    });
    step(&mut rows, filter, "clippy (image: rt and apps)", || {
        let mut c = image::guest_cargo("clippy");
        c.args(["-p", "rt"]);
        for a in apps()? {
            c.args(["-p", &a]);
        }
        crate::run(c.args(["--", "-D", "warnings"])).map(|_| String::new())
    });
    let built = build_step(&mut rows, "hello", None);
    let faulttest = build_step(&mut rows, "faulttest", None);
    let mmtest = build_step(&mut rows, "mmtest", None);
    let memtest = build_step(&mut rows, "memtest", None);
    let shell = build_step(&mut rows, "shell", None);
    let echo = build_step(&mut rows, "echo", None);
    let httpd = build_step(&mut rows, "httpd", None);
    let memtest_limited = build_step(
        &mut rows,
        "memtest",
        Some((MEMTEST_HEAP_MIB, "memtest-heap24")),
    );
    if let Some(b) = &built {
        step(&mut rows, filter, "Xen notes of hello", || {
            crate::notes::report(&b.elf).map(|_| String::new())
        });
    }

    if !host_only {
        guest_tests(
            &mut rows,
            filter,
            built.as_ref(),
            mmtest.as_ref(),
            faulttest.as_ref(),
            [memtest.as_ref(), memtest_limited.as_ref()],
            [shell.as_ref(), echo.as_ref(), httpd.as_ref()],
        );
    }

    println!("\n{:<30} {:<6} {:>9}  detail", "test", "result", "seconds");
    println!("{}", "-".repeat(78));
    for r in &rows {
        let secs = r.secs.map_or("-".to_string(), |s| format!("{s:.2}"));
        let detail: String = r
            .detail
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        println!(
            "{:<30} {:<6} {:>9}  {detail}",
            r.name,
            if r.ok { "PASS" } else { "FAIL" },
            secs
        );
    }
    println!("(guest tests: seconds from QEMU start to the result; other steps: duration)");
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!("\n{} passed, {failed} failed", rows.len() - failed);
    if failed > 0 {
        bail!("{failed} of {} checks failed", rows.len());
    }
    Ok(())
}

/// Judges a faulttest run: the fault reported as `want` (a line that must
/// appear), the page-table walk printed (if `walk`), and a crashed end.
fn judge_fault(run: &GuestRun, want: &str, walk: bool) -> Result<String, String> {
    if run.console.iter().any(|l| l.contains("FAIL")) {
        return Err("the fault did not happen".into());
    }
    let Some(line) = run.console.iter().find(|l| l.contains(want)) else {
        return Err(format!("no report line containing {want:?}"));
    };
    if walk && !run.console.iter().any(|l| l.starts_with("rt:   L4 entry")) {
        return Err("no page-table walk in the report".into());
    }
    if run.end != End::Crashed {
        return Err(format!("ended {} (want crashed)", run.end));
    }
    Ok(line.trim_start_matches("rt: ").chars().take(48).collect())
}

/// Judges an mmtest run: the guest's own verdict, the batching figure, (PV)
/// the `xl dump-core` the harness took while it ran, and a clean poweroff.
fn judge_mmtest(run: &GuestRun, pv: bool) -> Result<String, String> {
    if let Some(l) = run
        .console
        .iter()
        .find(|l| l.starts_with("mmtest: FAIL") || l.starts_with("rt: "))
    {
        return Err(l.clone());
    }
    if !run.console.iter().any(|l| l == "test result: PASS mmtest") {
        return Err("no `test result: PASS mmtest` from the guest".into());
    }
    let re = Regex::new(r"^mm-bench: pages=16384 batched_hypercalls=(\d+) naive_hypercalls=(\d+) batched_cycles=(\d+) naive_cycles=(\d+)$")
        .expect("valid regex");
    let Some(c) = run.console.iter().find_map(|l| re.captures(l)) else {
        return Err("no mm-bench line".into());
    };
    let n = |i: usize| c[i].parse::<u64>().unwrap_or(u64::MAX);
    if pv && (n(1) > 64 || n(2) < 16384) {
        return Err(format!(
            "batched {} hypercalls (want <= 64), naive {} (want >= 16384)",
            n(1),
            n(2)
        ));
    }
    match run.events.iter().find(|e| e.starts_with("dump-core ")) {
        Some(e) if e.starts_with("dump-core rc=0 ") => {}
        Some(e) => return Err(format!("xl {e}")),
        None if pv => return Err("the harness took no dump-core".into()),
        None => {}
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!(
        "hypercalls {} vs {}, cycles x{:.1}",
        n(1),
        n(2),
        n(4) as f64 / n(3).max(1) as f64
    ))
}

/// What the harness types into the shell, a line per prompt; `@` lines are
/// done by the harness while the shell waits (see scripts/dom0/run-guest.sh).
const SHELL_SESSION: &[&str] = &[
    "help",
    "echo hello from the harness",
    "uptime",
    "date",
    "sleep 500",
    "frobnicate now",
    "ec\x7fcho  edited",
    "mem",
    "xs read name",
    "xs write data/greeting hello xenstore",
    "xs read data/greeting",
    "xs ls data",
    "xs read data/missing",
    "xs rm data/greeting",
    "grant",
    "evtchn loop",
    "burst 200 3000",
    "@idle 5",
    "@mem-set 16",
    "mem",
    "@mem-set 32",
    "mem",
    "evtchn",
    // -w: xl returns when the domain has shut down (the judge times that).
    "@xl shutdown -w",
];

/// The memory of the shell guests (MiB); the session halves it and back.
const SHELL_MIB: u64 = 32;

/// A harness report `KEY...` about the run, as `key=value` words.
fn event_fields<'a>(run: &'a GuestRun, prefix: &str) -> Option<Vec<(&'a str, &'a str)>> {
    run.events.iter().find(|e| e.starts_with(prefix)).map(|e| {
        e.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect()
    })
}

fn field<T: std::str::FromStr>(fields: &[(&str, &str)], key: &str) -> Option<T> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// The shell's console lines without a leading prompt: what the runtime
/// prints while the shell waits (`rt: the toolstack asked ...`) follows it.
fn shell_lines(run: &GuestRun) -> impl Iterator<Item = &str> {
    run.console.iter().map(|l| l.trim_start_matches("rt> "))
}

/// Judges a scripted shell session: each command's reply, `sleep 500` within
/// 20% by pvclock, the one-line error for an unknown command, the 200-line
/// burst arriving whole, no CPU used while waiting at the prompt, `xl
/// mem-set` to half and back followed (in `xl list` and in `mem`), and `xl
/// shutdown` powering off within 2 s.
fn judge_shell(run: &GuestRun) -> Result<String, String> {
    let has = |p: &str| shell_lines(run).any(|l| l.starts_with(p));
    for (what, prefix) in [
        ("help", "commands: help"),
        ("echo", "hello from the harness"),
        ("uptime", "uptime: "),
        ("date", "date: 20"),
        (
            "unknown command",
            "unknown command: frobnicate (try `help`)",
        ),
        ("backspace editing", "edited"),
        ("mem", "mem: frames "),
        ("mem (reservation)", "mem: reservation "),
        ("mem (p2m)", "mem: p2m "),
        ("evtchn", "evtchn: delivery by "),
        ("evtchn (ports)", "evtchn: port "),
        ("xs write", "xs: wrote data/greeting"),
        ("xs read", "xs: data/greeting = \"hello xenstore\""),
        ("xs ls", "xs: data: 1 entries"),
        (
            "xs read of a missing key",
            "xs: data/missing: xenstore: ENOENT",
        ),
        ("xs rm", "xs: removed data/greeting"),
        ("grant (copy through it)", "grant: ref "),
        ("evtchn loop", "evtchn: loop "),
        (
            "grant (ended access)",
            "grant: after ending access the copy is refused",
        ),
        ("grant (table)", "grant: table "),
        ("burst", "burst: done 200 lines of 3000 characters"),
        ("xl shutdown", "rt: the toolstack asked to power off"),
    ] {
        if !has(prefix) {
            return Err(format!("no reply to {what} (a line starting {prefix:?})"));
        }
    }
    let re =
        Regex::new(r"^sleep: asked 500 ms, slept (\d+)\.(\d+) ms by pvclock").expect("valid regex");
    let Some(c) = shell_lines(run).find_map(|l| re.captures(l)) else {
        return Err("no reply to sleep 500".into());
    };
    let ms: u64 = c[1].parse().unwrap_or(0);
    if !(400..=600).contains(&ms) {
        return Err(format!(
            "sleep 500 took {ms} ms by pvclock (want 400..=600)"
        ));
    }
    let own_name = format!("xs: name = \"{}\"", run.name);
    if !has(&own_name) {
        return Err(format!(
            "xs read name did not give the domain's name ({own_name})"
        ));
    }
    // Events: by upcall — PV's event callback, PVH's callback vector
    // (rt::event::HVM_IDLE_WITH_VECTOR) — some taken, all from the idle stub
    // (or at most 1% outside it: see judge_echo).
    let want = if run.name.ends_with("-pvh") {
        "PVH callback vector"
    } else {
        "PV event callback"
    };
    let re = Regex::new(&format!(
        r"^evtchn: delivery by {want}; (\d+) upcalls \((\d+) outside idle, \d+ repeated\)"
    ))
    .expect("valid regex");
    let counts: Option<(u64, u64)> = shell_lines(run).find_map(|l| {
        let c = re.captures(l)?;
        Some((c[1].parse().ok()?, c[2].parse().ok()?))
    });
    match counts {
        Some((up, stray)) if up > 0 && stray * 100 <= up => {}
        Some((up, stray)) => {
            return Err(format!(
                "{up} upcalls by the {want}, {stray} outside the idle stub (want some, at most 1% outside)"
            ));
        }
        None => {
            return Err(format!(
                "events were not delivered by the {want} (see the evtchn line)"
            ));
        }
    }
    // Grants: a reference past the builder's 0-7, the copy through it
    // matched, and every access ended (nothing deferred).
    let re = Regex::new(r"^grant: ref (\d+) to domain \d+; GNTTABOP_copy ok; contents match")
        .expect("valid regex");
    let gref: u32 = shell_lines(run)
        .find_map(|l| re.captures(l))
        .and_then(|c| c[1].parse().ok())
        .ok_or("the grant round trip did not copy the page intact")?;
    if gref < 8 {
        return Err(format!("grant reference {gref} is one of the reserved 0-7"));
    }
    if !shell_lines(run)
        .any(|l| l.starts_with("grant: table ") && l.ends_with(" 0 active, 0 deferred"))
    {
        return Err("grants were left active or deferred".into());
    }
    // A channel to itself: the handler ran once (PV: from the upcall).
    let re = Regex::new(r"^evtchn: loop port \d+ -> port \d+: handler ran 1 time\(s\)")
        .expect("valid regex");
    if !shell_lines(run).any(|l| re.is_match(l)) {
        return Err("evtchn loop: the handler did not run exactly once".into());
    }
    // The burst: every line arrived, whole and in order of content.
    let b = event_fields(run, "burst ").ok_or("the harness did not check the burst")?;
    let (lines, good): (u32, u32) = (
        field(&b, "lines").unwrap_or(0),
        field(&b, "good").unwrap_or(0),
    );
    if lines != 200 || good != 200 {
        return Err(format!(
            "burst: {good} of {lines} lines intact in the console log (want 200 of 200)"
        ));
    }
    // Idle at the prompt: `xl list`'s Time(s) stays flat.
    let idle = event_fields(run, "idle ").ok_or("the harness did not measure the idle prompt")?;
    let cpu: f64 = field(&idle, "cpu").unwrap_or(f64::MAX);
    if cpu > 0.1 {
        return Err(format!(
            "the shell used {cpu} s of CPU in 5 s at its prompt (want <= 0.1)"
        ));
    }
    // xl mem-set to half and back: xl list follows, and the guest says so.
    for mib in [SHELL_MIB / 2, SHELL_MIB] {
        let m = event_fields(run, &format!("mem-set mib={mib} "))
            .ok_or(format!("no xl mem-set {mib} report"))?;
        if field::<u64>(&m, "list") != Some(mib) {
            return Err(format!(
                "after xl mem-set {mib}, xl list shows {:?} MiB",
                field::<String>(&m, "list")
            ));
        }
    }
    let moves: Vec<(u64, u64)> = shell_lines(run)
        .filter_map(|l| {
            let rest = l.strip_prefix("rt: memory target ")?;
            let (_, r) = rest.split_once("reservation ")?;
            let (a, b) = r.trim_end_matches(" KiB").split_once(" -> ")?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    let half_kib = SHELL_MIB / 2 * 1024;
    if moves.len() != 2
        || moves[0].0 - moves[0].1 != half_kib
        || moves[1].1 - moves[1].0 != half_kib
    {
        return Err(format!(
            "the reservation moves the guest reported: {moves:?} (want down by {half_kib} KiB, then up)"
        ));
    }
    let mem_after: Vec<u64> = shell_lines(run)
        .filter_map(|l| {
            l.strip_prefix("mem: reservation ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    if mem_after.len() != 3 || mem_after[1] != moves[0].1 || mem_after[2] != moves[1].1 {
        return Err(format!(
            "`mem` showed reservations {mem_after:?} KiB (want the moved ones)"
        ));
    }
    // xl shutdown: a clean poweroff within 2 s, from starting `xl shutdown
    // -w` to its return (the harness's own watch loop, which notices the end
    // later, is not part of it).
    let xl = event_fields(run, "xl shutdown ").ok_or("no xl shutdown report")?;
    let (at, end): (f64, f64) = field(&xl, "at")
        .zip(field(&xl, "done"))
        .ok_or("the xl shutdown report has no at= and done=")?;
    if field::<i32>(&xl, "rc") != Some(0) {
        return Err(format!(
            "xl shutdown -w failed (rc {:?})",
            field::<String>(&xl, "rc")
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    if end - at > 2.0 {
        return Err(format!(
            "xl shutdown took {:.2} s to power off (want <= 2)",
            end - at
        ));
    }
    if let Some(l) = shell_lines(run).find(|l| {
        l.starts_with("rt: ")
            && !l.starts_with("rt: memory target")
            && !l.starts_with("rt: the toolstack")
    }) {
        return Err(format!("runtime error on the console: {l}"));
    }
    Ok(format!(
        "{} steps; sleep 500 -> {ms} ms; burst 200x3000 intact; idle cpu {cpu:.1} s; mem-set {}->{}->{} MiB; xl shutdown -> poweroff in {:.2} s",
        SHELL_SESSION.len(),
        SHELL_MIB,
        SHELL_MIB / 2,
        SHELL_MIB,
        end - at
    ))
}

/// The timer storm: this many one-shot timers back to back, then `halt`.
const TIMERS: u32 = 20_000;
const TIMERS_SESSION: &[&str] = &["timers 20000", "halt"];

/// Judges the timer storm: every sleep done, most woken by the timer (a
/// deadline that passed before it was armed needs no wake-up), and a clean
/// poweroff after it — no triple fault on the way (the end state says).
fn judge_timers(run: &GuestRun) -> Result<String, String> {
    let re =
        Regex::new(r"^timers: (\d+) sleeps of 300 us in (\d+) ms; woken (\d+) times by the timer")
            .expect("valid regex");
    let c = shell_lines(run)
        .find_map(|l| re.captures(l))
        .ok_or("no timers report")?;
    let n: u32 = c[1].parse().unwrap_or(0);
    let ms: u64 = c[2].parse().unwrap_or(0);
    let by_timer: u32 = c[3].parse().unwrap_or(0);
    if n != TIMERS {
        return Err(format!("{n} sleeps (want {TIMERS})"));
    }
    if by_timer < TIMERS / 2 {
        return Err(format!(
            "only {by_timer} of {TIMERS} sleeps were woken by the one-shot timer"
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} after the storm (want poweroff)", run.end));
    }
    Ok(format!(
        "{n} one-shot timers in {ms} ms, {by_timer} woke the vCPU"
    ))
}

/// Judges a guest ended by one request: `want` the end state, `line` the
/// guest's reply.
fn judge_ended_by(run: &GuestRun, want: &End, line: &str) -> Result<String, String> {
    if !shell_lines(run).any(|l| l.starts_with(line)) {
        return Err(format!("no line starting {line:?}"));
    }
    if run.end != *want {
        return Err(format!("ended {} (want {want})", run.end));
    }
    Ok(format!("{line} -> {want}"))
}

/// The echo guests' address (dom0 is 10.0.0.1 on xenbr0) and vif.
const ECHO_CMDLINE: &str = "ip=10.0.0.2/24 gw=10.0.0.1";
const ECHO_VIF: &str = "bridge=xenbr0,mac=00:16:3e:00:00:02";

/// What dom0 runs against an echo guest once its network is up: ping, a UDP
/// and a TCP echo round trip, the guest's counters, a flood ping, the
/// counters again, then `xl shutdown`.
const ECHO_DOM0: &str = r#"ip=10.0.0.2
stats() {
    local l=
    for _ in 1 2 3 4 5; do
        if exec 4<>/dev/tcp/$ip/7; then
            printf 'stats\n' >&4
            read -r -t 5 l <&4
            exec 4>&-
            [ -n "$l" ] && break
        fi
        sleep 1
    done
    echo "$1: ${l:-no reply}"
}
ping -c 20 -i 0.2 -W 2 $ip 2>&1 | tail -n 2 | sed 's/^/ping: /'
if exec 3<>/dev/udp/$ip/7; then
    printf 'hello over udp\n' >&3
    # One read(2) takes one whole datagram (bash's `read` takes a byte).
    l=$(timeout 5 head -n 1 <&3)
    echo "udp: ${l:-no reply}"
    exec 3>&-
fi
if exec 4<>/dev/tcp/$ip/7; then
    printf 'hello over tcp\n' >&4
    read -r -t 5 l <&4 && echo "tcp: $l" || echo "tcp: no reply"
    exec 4>&-
else
    echo "tcp: no connection"
fi
ping -c 100 -i 0.05 -W 2 $ip 2>/dev/null | grep -o 'time=[0-9.]*' | cut -d= -f2 | sort -n |
    awk '{a[NR] = $1} END {if (NR) printf "rtt100: median %s ms, p99 %s ms, %d replies\n", a[int((NR + 1) / 2)], a[int(NR * 0.99 + 0.5)], NR}'
t0=$(date +%s.%N)
if head -c 67108864 /dev/zero >/dev/tcp/$ip/9; then
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "tcp64: %.1f MB/s (64 MiB in %.2f s)\n", 67.108864 / (b - a), b - a}'
else
    echo "tcp64: failed"
fi
sleep 1
stats stats-before
# The flood takes about a minute under TCG and prints only at its end: a
# heartbeat keeps the session from looking stalled meanwhile.
( while sleep 20; do echo "flood-progress: running"; done ) &
beat=$!
ping -f -c 10000 -W 1 $ip 2>&1 | tail -n 2 | sed 's/^/flood: /'
kill $beat
sleep 1
stats stats-after
timeout -k 5 20 xl shutdown "$NAME"
"#;

/// What dom0 runs against an httpd guest: the status page, a missing page,
/// then `xl shutdown`.
const HTTPD_DOM0: &str = r#"ip=10.0.0.2
timeout 10 busybox wget -q -O - "http://$ip/" 2>&1 | sed 's/^/page: /'
timeout 10 busybox wget -q -O - "http://$ip/missing" 2>&1 | head -n 1 | sed 's/^/missing: /'
timeout -k 5 20 xl shutdown "$NAME"
"#;

/// Detaches the guest's vif while it runs (`xl network-detach`): the guest
/// must notice, close its side and still shut down cleanly.
/// What dom0 runs against the echo guest that took its address from dom0's
/// DHCP server (a static lease: 10.0.0.3): ping, a UDP echo, `xl shutdown`.
const DHCP_DOM0: &str = r#"ip=10.0.0.3
ping -c 5 -i 0.2 -W 2 $ip 2>&1 | tail -n 2 | sed 's/^/ping: /'
if exec 3<>/dev/udp/$ip/7; then
    printf 'hello over dhcp\n' >&3
    echo "udp: $(timeout 5 head -n 1 <&3)"
    exec 3>&-
fi
timeout -k 5 20 xl shutdown "$NAME"
"#;

const DETACH_DOM0: &str = r#"ip=10.0.0.2
ping -c 3 -W 2 $ip 2>&1 | tail -n 2 | sed 's/^/ping: /'
timeout -k 5 30 xl network-detach "$NAME" 0
echo "detach: rc=$?"
sleep 2
echo "vifs left: $(xl network-list "$NAME" 2>/dev/null | tail -n +2 | wc -l)"
timeout -k 5 20 xl shutdown "$NAME"
"#;

/// 20 create/destroy cycles of more guests like this one (own names and
/// MACs), each until its vif is connected; then what is left behind in dom0.
const CYCLES_DOM0: &str = r#"cfg=/harness/$NAME.cfg
ok=0
for i in $(seq 1 20); do
    n=cycle-$i
    read -r c0 _ </proc/uptime
    if ! timeout -k 5 60 xl create "$cfg" "name=\"$n\"" "vif=['bridge=xenbr0,mac=00:16:3e:00:01:$(printf %02x "$i")']" >/tmp/cycle.log 2>&1; then
        sed "s/^/cycle $i: xl create: /" /tmp/cycle.log | tail -n 5
    fi
    read -r c1 _ </proc/uptime
    echo "cycle $i: created"
    # Up to 60 s for the vif to connect: `xl create` itself has been seen
    # to take most of a minute now and then under TCG.
    st=
    for _ in $(seq 600); do
        d=$(xl domid "$n" 2>/dev/null)
        [ -n "$d" ] && st=$(xenstore-read "/local/domain/0/backend/vif/$d/0/state" 2>/dev/null)
        [ "$st" = 4 ] && break
        sleep 0.1
    done
    [ "$st" = 4 ] && ok=$((ok + 1))
    timeout -k 5 30 xl destroy "$n" >/dev/null 2>&1
    echo "cycle $i: vif state ${st:-none} (xl create $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", b - a}') s)"
done
sleep 1
main=$(xl domid "$NAME")
left=$(xenstore-list /local/domain/0/backend/vif 2>/dev/null | grep -vx "$main" | wc -l)
vifs=$(ip -o link show | grep -c ': vif')
echo "cycles: $ok of 20 connected; backend dirs left $left; vifs $vifs"
timeout -k 5 20 xl shutdown "$NAME"
"#;

/// The dom0 script of a network test guest (which also gets a vif).
fn dom0_script(name: &str) -> Option<&'static str> {
    if name.starts_with("echo-detach-") {
        Some(DETACH_DOM0)
    } else if name.starts_with("echo-cycles-") {
        Some(CYCLES_DOM0)
    } else if name.starts_with("echo-dhcp-") {
        Some(DHCP_DOM0)
    } else if name.starts_with("echo-") {
        Some(ECHO_DOM0)
    } else if name.starts_with("httpd-") {
        Some(HTTPD_DOM0)
    } else {
        None
    }
}

/// Judges the vif-detach run: the guest saw its backend close, said so,
/// and still powered off cleanly on `xl shutdown`.
fn judge_detach(run: &GuestRun) -> Result<String, String> {
    let ev = |p: &str| {
        run.events
            .iter()
            .find_map(|e| e.strip_prefix(p))
            .unwrap_or("")
    };
    if ev("dom0| detach: ") != "rc=0" {
        return Err(format!("xl network-detach: {:?}", ev("dom0| detach: ")));
    }
    let Some(seen) = run
        .console
        .iter()
        .find(|l| l.starts_with("rt: net: the backend closed"))
    else {
        return Err("the guest did not notice its backend closing".into());
    };
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after the detach and xl shutdown (want poweroff)",
            run.end
        ));
    }
    Ok(format!("{seen}; vifs left {}", ev("dom0| vifs left: ")))
}

/// Judges the DHCP run: the guest took 10.0.0.3 with dom0 as its router,
/// answered dom0's pings and a UDP echo there, and powered off cleanly.
fn judge_dhcp(run: &GuestRun) -> Result<String, String> {
    let lease = "net: DHCP lease 10.0.0.3/24 router 10.0.0.1 from 10.0.0.1";
    if !run.console.iter().any(|l| l == lease) {
        return Err(format!("no {lease:?} on the console"));
    }
    if !run
        .console
        .iter()
        .any(|l| l.starts_with("echo: ready on 10.0.0.3/24"))
    {
        return Err("the echo server did not come up on the leased address".into());
    }
    let ev = |p: &str| run.events.iter().find_map(|e| e.strip_prefix(p));
    let ping = ev("dom0| ping: 5 packets transmitted, ").unwrap_or("");
    if !ping.starts_with("5 received") {
        return Err(format!("dom0's ping of 10.0.0.3: {ping:?}"));
    }
    if ev("dom0| udp: ") != Some("hello over dhcp") {
        return Err(format!("UDP echo at 10.0.0.3: {:?}", ev("dom0| udp: ")));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!("{lease}; ping 5/5; udp echo"))
}

/// Judges the create/destroy cycles: all 20 connected, nothing left behind
/// but the running guest's own backend directory and vif.
fn judge_cycles(run: &GuestRun) -> Result<String, String> {
    let line = run
        .events
        .iter()
        .find_map(|e| e.strip_prefix("dom0| cycles: "))
        .ok_or("no report of the cycles")?;
    if line != "20 of 20 connected; backend dirs left 0; vifs 1" {
        return Err(format!(
            "cycles: {line} (want 20 of 20 connected, nothing left, one vif)"
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(line.to_string())
}

/// Judges an httpd guest: dom0 fetched the status page (uptime, memory,
/// MMU and network counters, the registered devices), a missing page got
/// 404, `xl shutdown` worked.
fn judge_httpd(run: &GuestRun) -> Result<String, String> {
    let page: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| e.strip_prefix("dom0| page: "))
        .collect();
    for want in ["uptime: ", "memory: ", "mmu: ", "network: rx "] {
        if !page.iter().any(|l| l.starts_with(want)) {
            return Err(format!("the status page has no {want:?} line: {page:?}"));
        }
    }
    // The device registry lists the vif, connected.
    if !page
        .iter()
        .any(|l| l.trim_end() == "devices: vif/0 connected")
    {
        return Err(format!(
            "the status page does not list vif/0 connected: {page:?}"
        ));
    }
    let missing = run
        .events
        .iter()
        .find_map(|e| e.strip_prefix("dom0| missing: "))
        .unwrap_or("");
    if !missing.contains("404") {
        return Err(format!("a missing page gave {missing:?} (want a 404)"));
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    Ok(format!("GET / -> {} lines; missing -> 404", page.len()))
}

/// Judges an echo guest from dom0's side: ping with no loss, UDP and TCP echo
/// round trips, a flood ping losing at most 0.1%, the guest's buffers, grants
/// and heap the same before and after the flood, and a clean `xl shutdown`.
fn judge_echo(run: &GuestRun) -> Result<String, String> {
    let dom0 = |key: &str| {
        run.events
            .iter()
            .filter_map(|e| e.strip_prefix("dom0| "))
            .filter_map(move |l| l.strip_prefix(key))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let loss = |lines: &[String]| -> Option<(u64, u64)> {
        let re = Regex::new(r"(\d+) packets transmitted, (\d+) received").expect("valid regex");
        lines.iter().find_map(|l| {
            let c = re.captures(l)?;
            Some((c[1].parse().ok()?, c[2].parse().ok()?))
        })
    };
    if !run.console.iter().any(|l| l.starts_with("echo: ready on ")) {
        return Err(match run.console.iter().find(|l| l.starts_with("rt: ")) {
            Some(l) => format!("the network did not come up: {l}"),
            None => "the network did not come up".into(),
        });
    }
    if !run
        .console
        .iter()
        .any(|l| l.starts_with("echo: ping 10.0.0.1: 3 of 3 replies"))
    {
        return Err(
            match run.console.iter().find(|l| l.starts_with("echo: ping ")) {
                Some(l) => format!("the guest's ping of dom0: {l}"),
                None => "the guest did not ping dom0".into(),
            },
        );
    }
    let ping = dom0("ping: ");
    let (sent, got) = loss(&ping).ok_or("no ping summary from dom0")?;
    if sent != 20 || got != 20 {
        return Err(format!("ping: {got} of {sent} replies (want 20 of 20)"));
    }
    if dom0("udp: ") != ["hello over udp"] {
        return Err(format!("UDP echo: {:?}", dom0("udp: ")));
    }
    if dom0("tcp: ") != ["hello over tcp"] {
        return Err(format!("TCP echo: {:?}", dom0("tcp: ")));
    }
    let flood = dom0("flood: ");
    let (fs, fg) = loss(&flood).ok_or("no flood ping summary from dom0")?;
    if fs == 0 || (fs - fg) * 1000 > fs {
        return Err(format!(
            "flood ping: {fg} of {fs} replies (at most 0.1% may be lost)"
        ));
    }
    let tail = |key: &str| {
        dom0(key)
            .first()
            .and_then(|l| l.split_once("buffers ").map(|(_, t)| t.to_string()))
    };
    let (before, after) = (tail("stats-before: "), tail("stats-after: "));
    // Upcalls outside the idle stub mean interrupts were on where they must
    // not be — unless the hypervisor injected with them off, which nested
    // Xen under TCG does very rarely (1 in ~7,000 seen; the IST stack makes
    // it harmless). More than 1% would be our defect.
    let events = Regex::new(r"events: (\d+) upcalls, (\d+) repeated, (\d+) outside idle")
        .expect("valid regex");
    let ev: (u64, u64, u64) = dom0("stats-after: ")
        .first()
        .and_then(|l| events.captures(l))
        .and_then(|c| Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?)))
        .ok_or("no event counters in the guest's stats")?;
    if ev.2 * 100 > ev.0 {
        return Err(format!(
            "{} of {} upcalls came outside the idle stub",
            ev.2, ev.0
        ));
    }
    match (&before, &after) {
        (Some(b), Some(a)) if a == b => {}
        _ => {
            return Err(format!(
                "buffers, heap and grants before and after the flood: {before:?} / {after:?}"
            ));
        }
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    let tcp64 = dom0("tcp64: ").first().cloned().unwrap_or_default();
    if !tcp64.contains("MB/s") {
        return Err(format!("64 MiB over TCP to the discard port: {tcp64:?}"));
    }
    let rtt100 = dom0("rtt100: ").first().cloned().unwrap_or_default();
    Ok(format!(
        "ping 20/20; rtt {rtt100}; tcp {tcp64}; udp+tcp echo; flood {fg}/{fs}; upcalls {} ({} repeated, {} outside idle); buffers {}",
        ev.0,
        ev.1,
        ev.2,
        before.unwrap_or_default()
    ))
}

/// The heap limit of the memtest image whose out-of-memory run is checked.
const MEMTEST_HEAP_MIB: u32 = 24;

/// Judges a memtest run: the guest's verdict, `xl list` following the
/// balloon as the harness saw it, and a clean poweroff.
fn judge_memtest(run: &GuestRun) -> Result<String, String> {
    if let Some(l) = run
        .console
        .iter()
        .find(|l| l.starts_with("memtest: FAIL") || l.starts_with("rt: "))
    {
        return Err(l.clone());
    }
    if !run.console.iter().any(|l| l == "test result: PASS memtest") {
        return Err("no `test result: PASS memtest` from the guest".into());
    }
    let mem: Vec<u64> = ["start", "released", "regrown"]
        .iter()
        .filter_map(|tag| {
            let key = format!("xl-mem tag={tag} mib=");
            run.events
                .iter()
                .find_map(|e| e.strip_prefix(&key).and_then(|v| v.parse().ok()))
        })
        .collect();
    if mem.len() != 3 || mem[1] + 8 != mem[0] || mem[2] != mem[0] {
        return Err(format!(
            "xl list memory seen by the harness: {mem:?} (want M, M-8, M)"
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    let after = |key: &str| {
        run.console
            .iter()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    };
    Ok(format!(
        "{}->{}->{} MiB; setup {} us; grow {} us/MiB",
        mem[0],
        mem[1],
        mem[2],
        after("allocator set-up "),
        after("growth ")
    ))
}

fn guest_tests(
    rows: &mut Vec<Row>,
    filter: Filter<'_>,
    hello: Option<&image::Built>,
    mmtest: Option<&image::Built>,
    faulttest: Option<&image::Built>,
    [memtest, memtest_limited]: [Option<&image::Built>; 2],
    [shell, echo, httpd]: [Option<&image::Built>; 3],
) {
    const BARE: &str = "hello-qemu-pvh";
    const DOM0: &str = "hello-pv-dom0";
    /// A domU test: name, image, mode, MiB, cmdline, timeout, dump-core pattern, judge.
    struct Domu<'a> {
        name: &'static str,
        image: Option<&'a image::Built>,
        mode: Mode,
        memory: u32,
        cmdline: &'static str,
        timeout: u32,
        dump_at: Option<&'static str>,
        judge: Box<Judge>,
        input: &'static [&'static str],
    }
    let hello_domu = |name, mode, want: &'static str, memory: (u64, u64)| Domu {
        name,
        image: hello,
        mode,
        memory: memory.1 as u32,
        cmdline: "timeline",
        timeout: 30,
        dump_at: None,
        judge: Box::new(move |r| judge_hello(r, &HelloExpect { mode: want, memory })),
        input: &[],
    };
    let mmtest_domu = |name, mode, pv: bool| Domu {
        name,
        image: mmtest,
        mode,
        memory: 128,
        // The p2m a dump-core walks is PV's; a PVH core (through HVM foreign
        // mappings) takes minutes under TCG.
        cmdline: if pv { "dump-core" } else { "" },
        timeout: 180,
        dump_at: pv.then_some("ready for dump-core"),
        judge: Box::new(move |r| judge_mmtest(r, pv)),
        input: &[],
    };
    let memtest_domu = |name, mode, memory| Domu {
        name,
        image: memtest,
        mode,
        memory,
        cmdline: "",
        timeout: 240,
        dump_at: None,
        judge: Box::new(judge_memtest),
        input: &[],
    };
    let oom_domu = |name, mode| Domu {
        name,
        image: memtest_limited,
        mode,
        memory: 64,
        cmdline: "oom",
        timeout: 120,
        dump_at: None,
        judge: Box::new(|r: &GuestRun| {
            let want = format!("limit {} KiB;", MEMTEST_HEAP_MIB * 1024);
            if !r.console.iter().any(|l| l.contains(&want)) {
                return Err(format!("the report does not name the limit ({want})"));
            }
            judge_fault(r, "rt: out of memory: asked for", false)
        }),
        input: &[],
    };
    let shell_domu = |name, mode| Domu {
        name,
        image: shell,
        mode,
        memory: SHELL_MIB as u32,
        cmdline: "",
        timeout: 150,
        dump_at: None,
        judge: Box::new(judge_shell),
        input: SHELL_SESSION,
    };
    // Short shell sessions ended by one request: `xl reboot`, or the shell's
    // own `halt`/`reboot`.
    let ended_by =
        |name, mode, input: &'static [&'static str], want: End, line: &'static str| Domu {
            name,
            image: shell,
            mode,
            memory: SHELL_MIB as u32,
            cmdline: "",
            timeout: 60,
            dump_at: None,
            judge: Box::new(move |r| judge_ended_by(r, &want, line)),
            input,
        };
    let echo_domu = |name, mode| Domu {
        name,
        image: echo,
        mode,
        memory: 32,
        cmdline: ECHO_CMDLINE,
        timeout: 300,
        dump_at: None,
        judge: Box::new(judge_echo),
        input: &[],
    };
    let httpd_domu = |name, mode| Domu {
        name,
        image: httpd,
        mode,
        memory: 32,
        cmdline: ECHO_CMDLINE,
        timeout: 120,
        dump_at: None,
        judge: Box::new(judge_httpd),
        input: &[],
    };
    let domus = [
        echo_domu("echo-pv", Mode::Pv),
        echo_domu("echo-pvh", Mode::Pvh),
        httpd_domu("httpd-pv", Mode::Pv),
        httpd_domu("httpd-pvh", Mode::Pvh),
        Domu {
            name: "echo-detach-pv",
            timeout: 120,
            judge: Box::new(judge_detach),
            ..echo_domu("echo-detach-pv", Mode::Pv)
        },
        Domu {
            name: "echo-dhcp-pv",
            cmdline: "ip=dhcp",
            timeout: 90,
            judge: Box::new(judge_dhcp),
            ..echo_domu("echo-dhcp-pv", Mode::Pv)
        },
        Domu {
            name: "echo-cycles-pvh",
            timeout: 600,
            judge: Box::new(judge_cycles),
            ..echo_domu("echo-cycles-pvh", Mode::Pvh)
        },
        hello_domu("hello-pv", Mode::Pv, "pv", (32, 32)),
        shell_domu("shell-pv", Mode::Pv),
        shell_domu("shell-pvh", Mode::Pvh),
        ended_by(
            "xl-reboot-pv",
            Mode::Pv,
            &["@xl reboot"],
            End::Reboot,
            "rt: the toolstack asked to reboot",
        ),
        ended_by(
            "xl-reboot-pvh",
            Mode::Pvh,
            &["@xl reboot"],
            End::Reboot,
            "rt: the toolstack asked to reboot",
        ),
        ended_by(
            "shell-halt-pv",
            Mode::Pv,
            &["halt"],
            End::Poweroff,
            "shell: halting",
        ),
        ended_by(
            "shell-reboot-pvh",
            Mode::Pvh,
            &["reboot"],
            End::Reboot,
            "shell: rebooting",
        ),
        Domu {
            name: "timers-pvh",
            timeout: 180,
            judge: Box::new(judge_timers),
            ..ended_by("timers-pvh", Mode::Pvh, TIMERS_SESSION, End::Poweroff, "")
        },
        hello_domu("hello-pvh", Mode::Pvh, "pvh", (28, 32)),
        // The smallest domains hello boots in: PV needs 4 MiB because Xen's
        // PV builder rounds the initial mapping up to 4 MiB; PVH boots in 2
        // (at 1 MiB the image, loaded at 1 MiB, does not fit).
        hello_domu("hello-pv-4mib", Mode::Pv, "pv", (4, 4)),
        hello_domu("hello-pvh-2mib", Mode::Pvh, "pvh", (1, 2)),
        mmtest_domu("mmtest-pv", Mode::Pv, true),
        mmtest_domu("mmtest-pvh", Mode::Pvh, false),
        memtest_domu("memtest-pvh", Mode::Pvh, 64),
        memtest_domu("memtest-1gib-pvh", Mode::Pvh, 1024),
        oom_domu("memtest-oom-pv", Mode::Pv),
        oom_domu("memtest-oom-pvh", Mode::Pvh),
    ];

    let fault =
        |name: &'static str, mode: Mode, cmdline: &'static str, want: &'static str, walk: bool| {
            Domu {
                name,
                image: faulttest,
                mode,
                memory: 32,
                cmdline,
                timeout: 30,
                dump_at: None,
                judge: Box::new(move |r| judge_fault(r, want, walk)),
                input: &[],
            }
        };
    let domus: Vec<Domu> = domus
        .into_iter()
        .chain([
            fault(
                "fault-guard-pv",
                Mode::Pv,
                "guard",
                "stack guard page: stack overflow",
                true,
            ),
            fault(
                "fault-overflow-pvh",
                Mode::Pvh,
                "overflow",
                "in a stack guard page: stack overflow",
                true,
            ),
            fault(
                "fault-wx-pv",
                Mode::Pv,
                "write-text",
                "page fault: write at",
                true,
            ),
            fault(
                "fault-wx-pvh",
                Mode::Pvh,
                "exec-data",
                "page fault: instruction fetch at",
                true,
            ),
            fault(
                "fault-null-pv",
                Mode::Pv,
                "null",
                "in page 0: null pointer dereference",
                true,
            ),
            fault(
                "oom-pv",
                Mode::Pv,
                "oom",
                "rt: out of memory: asked for",
                false,
            ),
            // Last: twice the dom0 toolstack wedged right after a PV guest
            // that had ballooned was destroyed (see the closing note of issue
            // 4); placed here, such a wedge cannot take other tests with it.
            memtest_domu("memtest-1gib-pv", Mode::Pv, 1024),
            memtest_domu("memtest-pv", Mode::Pv, 64),
        ])
        .collect();

    let domus: Vec<Domu> = domus.into_iter().filter(|d| filter.wants(d.name)).collect();
    if !filter.wants(BARE) && !filter.wants(DOM0) && domus.is_empty() {
        return;
    }
    // Every guest test needs the harness's QEMU, the bare one too: on a
    // fresh machine provisioning is what installs it.
    println!("\n== provisioning the Xen harness");
    let a = match harness::provision() {
        Ok(a) => a,
        Err(e) => {
            for n in [BARE, DOM0]
                .into_iter()
                .filter(|n| filter.wants(n))
                .chain(domus.iter().map(|d| d.name))
            {
                missing_row(rows, n, &format!("not run: {e:#}"));
            }
            return;
        }
    };

    if filter.wants(BARE) {
        println!("\n== guest: {BARE} (bare QEMU, PVH entry)");
        match hello.map(|b| harness::run_bare(BARE, &b.elf, "timeline", 30, &mut show)) {
            Some(Ok(run)) => {
                let want = HelloExpect {
                    mode: "qemu-pvh",
                    memory: (60, 64),
                };
                guest_row(rows, &run, judge_hello(&run, &want));
            }
            Some(Err(e)) => missing_row(rows, BARE, &format!("{e:#}")),
            None => missing_row(rows, BARE, "not run: the image did not build"),
        }
    }

    if filter.wants(DOM0) {
        println!("\n== guest: {DOM0} (the image booted by Xen as its PV dom0)");
        match hello.map(|b| harness::run_dom0(&a, DOM0, &b.elf, "timeline", 120, &mut show)) {
            Some(Ok(run)) => {
                let want = HelloExpect {
                    mode: "pv-dom0",
                    memory: (32, 32),
                };
                guest_row(rows, &run, judge_hello(&run, &want));
            }
            Some(Err(e)) => missing_row(rows, DOM0, &format!("{e:#}")),
            None => missing_row(rows, DOM0, "not run: the image did not build"),
        }
    }

    let (runnable, unbuilt): (Vec<&Domu>, Vec<&Domu>) =
        domus.iter().partition(|d| d.image.is_some());
    for d in unbuilt {
        missing_row(rows, d.name, "not run: the image did not build");
    }
    if runnable.is_empty() {
        return;
    }
    let names: Vec<&str> = runnable.iter().map(|d| d.name).collect();
    println!(
        "\n== guests: {} (domUs of one Xen + Debian dom0 session)",
        names.join(", ")
    );
    let guests: Vec<GuestSpec> = runnable
        .iter()
        .map(|d| GuestSpec {
            name: d.name.into(),
            elf: d.image.expect("partitioned on is_some").elf.clone(),
            mode: d.mode,
            memory: d.memory,
            cmdline: d.cmdline.into(),
            timeout: d.timeout,
            dump_at: d.dump_at.map(Into::into),
            input: d.input.iter().map(|l| l.to_string()).collect(),
            vif: dom0_script(d.name).map(|_| ECHO_VIF.to_string()),
            dom0: dom0_script(d.name).map(str::to_string),
            early: None,
            ramdisk: None,
        })
        .collect();
    // A wedged harness session (seen now and then, not caused by a guest)
    // stops; the guests it never finished get a fresh Xen boot (twice at most).
    match harness::run_domus_retrying(&a, "domu", &guests, 2, &mut show) {
        Ok(runs) => {
            for (run, d) in runs.iter().zip(&runnable) {
                guest_row(rows, run, (d.judge)(run));
            }
        }
        Err(e) => {
            for n in names {
                missing_row(rows, n, &format!("{e:#}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str], end: End) -> GuestRun {
        GuestRun {
            name: "t".into(),
            console: lines.iter().map(|s| s.to_string()).collect(),
            end,
            t_end: Some(1.0),
            diagnostics: vec![],
            events: vec![],
            stalled: false,
        }
    }

    const PV: HelloExpect = HelloExpect {
        mode: "pv",
        memory: (32, 32),
    };
    const OK: [&str; 2] = [
        "hello from hello (pv)",
        "boot: mode=pv memory=32 MiB entry-to-main=812 us cmdline=\"\"",
    ];

    #[test]
    fn a_good_run_passes() {
        assert_eq!(
            judge_hello(&run(&OK, End::Poweroff), &PV),
            Ok("entry-to-main 812 us".into())
        );
    }

    #[test]
    fn each_defect_fails() {
        assert!(judge_hello(&run(&OK, End::Crashed), &PV).is_err());
        assert!(judge_hello(&run(&OK[1..], End::Poweroff), &PV).is_err());
        assert!(judge_hello(&run(&OK[..1], End::Poweroff), &PV).is_err());
        let wrong_mode = [
            "hello from hello (pv)",
            "boot: mode=pvh memory=32 MiB entry-to-main=8 us cmdline=\"\"",
        ];
        assert!(judge_hello(&run(&wrong_mode, End::Poweroff), &PV).is_err());
        let wrong_mem = [
            "hello from hello (pv)",
            "boot: mode=pv memory=16 MiB entry-to-main=8 us cmdline=\"\"",
        ];
        assert!(judge_hello(&run(&wrong_mem, End::Poweroff), &PV).is_err());
        let no_clock = [
            "hello from hello (pv)",
            "boot: mode=pv memory=32 MiB entry-to-main=8 tsc-ticks cmdline=\"\"",
        ];
        assert!(judge_hello(&run(&no_clock, End::Poweroff), &PV).is_err());
        let mut err = OK.to_vec();
        err.push("rt: mapping shared_info failed: EINVAL (22)");
        assert!(judge_hello(&run(&err, End::Poweroff), &PV).is_err());
        assert!(judge_hello(&run(&OK, End::Missing), &PV).is_err());
    }
}
