//! Judges of the shell: the scripted session (every command answered, the
//! toolstack's requests followed), the timer storm, and runs ended by one
//! request. What the harness types is here, beside what is expected of it.
use regex::Regex;

use super::{event_fields, field, shell_lines};
use crate::harness::{End, GuestRun};

/// What the harness types into the shell, a line per prompt; `@` lines are
/// done by the harness while the shell waits (see scripts/dom0/run-guest.sh).
pub const SHELL_SESSION: &[&str] = &[
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
pub const SHELL_MIB: u64 = 32;

/// Judges a scripted shell session: each command's reply, `sleep 500` within
/// 20% by pvclock, the one-line error for an unknown command, the 200-line
/// burst arriving whole, no CPU used while waiting at the prompt, `xl
/// mem-set` to half and back followed (in `xl list` and in `mem`), and `xl
/// shutdown` powering off within 2 s.
pub fn judge_shell(run: &GuestRun) -> Result<String, String> {
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
pub const TIMERS: u32 = 20_000;
pub const TIMERS_SESSION: &[&str] = &["timers 20000", "halt"];
/// `pvh-unpinned-long`'s storm: five times as long (about 80 s under TCG, the
/// time within which pinned-off-CPU-1 PVH guests used to triple-fault).
pub const UNPINNED_TIMERS: u32 = 100_000;
pub const UNPINNED_SESSION: &[&str] = &["timers 100000", "halt"];
/// `pvh-cpu0-ours`'s storm (long mode).
pub const CONTROL_TIMERS: u32 = 200_000;
pub const CONTROL_SESSION: &[&str] = &["timers 200000", "halt"];

/// Judges a storm of `want` timers: every sleep done, most woken by the
/// timer (a deadline that passed before it was armed needs no wake-up), and
/// a clean poweroff after it — no triple fault on the way (the end state
/// says).
pub fn judge_timers(run: &GuestRun, want: u32) -> Result<String, String> {
    let re =
        Regex::new(r"^timers: (\d+) sleeps of 300 us in (\d+) ms; woken (\d+) times by the timer")
            .expect("valid regex");
    let c = shell_lines(run)
        .find_map(|l| re.captures(l))
        .ok_or("no timers report")?;
    let n: u32 = c[1].parse().unwrap_or(0);
    let ms: u64 = c[2].parse().unwrap_or(0);
    let by_timer: u32 = c[3].parse().unwrap_or(0);
    if n != want {
        return Err(format!("{n} sleeps (want {want})"));
    }
    if by_timer < want / 2 {
        return Err(format!(
            "only {by_timer} of {want} sleeps were woken by the one-shot timer"
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} after the storm (want poweroff)", run.end));
    }
    Ok(format!(
        "{n} one-shot timers in {ms} ms, {by_timer} woke the vCPU"
    ))
}

/// Judges the Linux PVH control guest's storm (`bench-echo`'s
/// `bench.timers`): all `want` sleeps done and a poweroff after them. Where
/// it ended otherwise, the detail says how (a triple fault, a hang), which
/// is the evidence the control is for.
pub fn judge_linux_timers(run: &GuestRun, want: u32) -> Result<String, String> {
    let re =
        Regex::new(r"timers: (\d+) sleeps of 300 us in (\d+) ms \(linux\)").expect("valid regex");
    let Some(c) = run.console.iter().find_map(|l| re.captures(l)) else {
        let last = run
            .console
            .iter()
            .rev()
            .find(|l| l.starts_with("timers: "))
            .map_or("no progress line", String::as_str);
        return Err(format!(
            "Linux did not finish its {want} timers: ended {} (last: {last})",
            run.end
        ));
    };
    let n: u32 = c[1].parse().unwrap_or(0);
    let ms: u64 = c[2].parse().unwrap_or(0);
    if n != want {
        return Err(format!("{n} sleeps (want {want})"));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} after the storm (want poweroff)", run.end));
    }
    Ok(format!(
        "Linux PVH: {n} sleeps of 300 us in {ms} ms, then poweroff"
    ))
}

/// Judges a guest ended by one request: `want` the end state, `line` the
/// guest's reply.
pub fn judge_ended_by(run: &GuestRun, want: &End, line: &str) -> Result<String, String> {
    if !shell_lines(run).any(|l| l.starts_with(line)) {
        return Err(format!("no line starting {line:?}"));
    }
    if run.end != *want {
        return Err(format!("ended {} (want {want})", run.end));
    }
    Ok(format!("{line} -> {want}"))
}
