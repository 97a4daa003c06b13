//! Judges of the hostile-toolstack tests: what dom0's attacker script
//! (`scripts/dom0/tests/hostile-xenstore.sh`) threw at the echo guest, and
//! whether the guest refused it the way the security model says — one
//! bounded, rate-limited line per kind of refusal, the app serving
//! throughout, nothing leaked, no panic; a console input flood against
//! the shell; and a soak of the echo guest (`scripts/dom0/tests/soak.sh`).
use super::lifecycle::{dom0, echoed, same_resources, stat};
use super::{event_fields, field, shell_lines};
use crate::harness::{End, GuestRun};

/// Lines the guest may print about refused values in the whole run: a few
/// per kind and step, never one per write (the storm alone is 900 writes).
pub const MAX_REFUSAL_LINES: usize = 60;

/// The steps after which dom0's connection must still echo.
const STEPS: &[(&str, &str)] = &[
    ("tcp control: ", "hello after control"),
    ("tcp target: ", "hello after target"),
    ("tcp frontend: ", "hello after frontend"),
    ("tcp backend: ", "hello after backend"),
    ("tcp storm: ", "hello after the storm"),
    ("tcp mem-set: ", "hello after mem-set"),
];

/// What each kind of refusal looks like on the guest's console; each must
/// show at least once (the guest saw the garbage and said so).
const REFUSALS: &[(&str, &str)] = &[
    ("control/shutdown", "rt: control/shutdown = "),
    ("memory/target", "rt: memory/target = "),
    ("the backend's state", "not a state, ignored"),
    (
        "xl mem-set far below",
        "is below what the guest uses: refused",
    ),
];

/// Judges `hostile-xenstore-*` (see the module doc).
pub fn judge_hostile_xenstore(run: &GuestRun) -> Result<String, String> {
    if let Some(l) = run
        .console
        .iter()
        .find(|l| l.contains("panicked") || l.contains("panic:"))
    {
        return Err(format!("the guest panicked: {l:?}"));
    }
    let threw = dom0(run, "threw: ");
    if threw.len() < 7
        || !dom0(run, "storm: ")
            .first()
            .is_some_and(|l| l.starts_with("900 writes"))
    {
        return Err(format!(
            "the attacker did not run to the end: threw {threw:?}, storm {:?}",
            dom0(run, "storm: ")
        ));
    }
    for (key, want) in STEPS {
        echoed(run, key, want, &format!("the echo after step {key:?}"))?;
    }
    let said = |pat: &str| run.console.iter().filter(|l| l.contains(pat)).count();
    let mut counts = Vec::new();
    for (what, pat) in REFUSALS {
        let n = said(pat);
        if n == 0 {
            return Err(format!(
                "no refusal of {what} on the console (want a line with {pat:?})"
            ));
        }
        counts.push(format!("{what} {n}"));
    }
    let total: usize = REFUSALS.iter().map(|(_, p)| said(p)).sum();
    if total > MAX_REFUSAL_LINES {
        return Err(format!(
            "{total} refusal lines (at most {MAX_REFUSAL_LINES}: they are rate-limited)"
        ));
    }
    // The runtime's own lines (the app's stats line is long by design).
    if let Some(l) = run
        .console
        .iter()
        .find(|l| l.starts_with("rt:") && l.chars().count() > 300)
    {
        return Err(format!(
            "a line of {} characters: values are shown bounded",
            l.len()
        ));
    }
    if run
        .console
        .iter()
        .any(|l| l.contains("the network is down"))
    {
        return Err("the guest took garbage for the backend closing".into());
    }
    same_resources(run, "stats-before: ", "stats-after: ", "the attack")?;
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    // How many lines the rate limit held back (reported with the next).
    let held: u64 = run
        .console
        .iter()
        .filter_map(|l| {
            l.rsplit_once(" more held back")?
                .0
                .rsplit(['(', ' '])
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Ok(format!(
        "{} keys attacked + a 900-write storm + mem-set 4 MiB; refusal lines: {} ({held} more held back); echo served at each step; grants, ports, sockets unchanged; {}",
        threw.len(),
        counts.join(", "),
        one("mem-set 4: ")
    ))
}

/// The console-flood session: the shell's memory, megabytes of binary
/// input without a newline, then the shell must answer and hold what it
/// held before.
pub const FLOOD_SESSION: &[&str] = &[
    "mem",
    "@flood 2097152",
    "echo alive after the flood",
    "mem",
    "halt",
];

/// Least flood bytes that must have gone in for the test to mean anything.
pub const FLOOD_MIN_BYTES: u64 = 256 * 1024;

/// `heap N KiB mapped, B B in A allocations` of a `mem` line: (N, A).
fn heap_of(line: &str) -> Option<(u64, u64)> {
    let rest = line.split_once("heap ")?.1;
    let mapped = rest.split_whitespace().next()?.parse().ok()?;
    let allocs = rest
        .split_once(" B in ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((mapped, allocs))
}

/// Judges `console-flood-*` (see [`FLOOD_SESSION`]): the flood went in, the
/// shell answered after it, its heap maps and holds what it did before, no
/// line grew with the flood, no panic, and `halt` powered it off.
pub fn judge_console_flood(run: &GuestRun) -> Result<String, String> {
    if let Some(l) = run.console.iter().find(|l| l.contains("panicked")) {
        return Err(format!("the guest panicked: {l:?}"));
    }
    let flood = event_fields(run, "flood ").ok_or("no flood report")?;
    let bytes: u64 = field(&flood, "bytes").unwrap_or(0);
    let secs: f64 = field(&flood, "seconds").unwrap_or(0.0);
    if bytes < FLOOD_MIN_BYTES {
        return Err(format!(
            "only {bytes} flood bytes went in (want at least {FLOOD_MIN_BYTES})"
        ));
    }
    if !shell_lines(run).any(|l| l == "alive after the flood") {
        return Err("the shell did not answer after the flood".into());
    }
    if let Some(l) = run.console.iter().find(|l| l.len() > 1024) {
        return Err(format!(
            "a console line of {} bytes: input is bounded",
            l.len()
        ));
    }
    let mems: Vec<(u64, u64)> = shell_lines(run)
        .filter(|l| l.starts_with("mem: frames "))
        .filter_map(heap_of)
        .collect();
    match mems.as_slice() {
        [before, .., after] if before == after => {}
        other => {
            return Err(format!(
                "heap (KiB mapped, allocations) before and after the flood: {other:?}"
            ));
        }
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} after halt (want poweroff)", run.end));
    }
    Ok(format!(
        "{bytes} bytes of binary input in {secs:.1} s ({:.0} KiB/s); the shell answered; heap {:?} KiB mapped / allocations unchanged",
        bytes as f64 / 1024.0 / secs.max(0.001),
        mems[0]
    ))
}

/// `N KiB mapped` of an echo stats line.
fn mapped_kib(l: &str) -> Option<u64> {
    l.split_once(" KiB mapped")?
        .0
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// The page tables (frames) that map `pages` heap pages: the heap starts at
/// `rt::heap::HEAP_BASE`, 512 GiB aligned, so it takes one L1 per 2 MiB, one
/// L2 per GiB and one L3 per 512 GiB it has begun.
fn heap_tables(pages: u64) -> u64 {
    pages.div_ceil(512) + pages.div_ceil(512 * 512) + pages.div_ceil(512 * 512 * 512)
}

/// Seconds of the suite's soak (`SOAK_SECONDS` of soak.sh).
pub const SOAK_SECONDS: u64 = 180;

/// Judges `soak-*`: the load ran its time and moved data both ways, the
/// guest answered pings and a new connection after it, and its counters at
/// the end equal those after the warm-up (grants, ports, sockets, heap
/// allocations and free frames exactly; heap bytes within 64 B).
pub fn judge_soak(run: &GuestRun) -> Result<String, String> {
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    let ran = dom0(run, "soak: ran ")
        .first()
        .copied()
        .unwrap_or("")
        .to_string();
    let secs: f64 = ran
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let mib = |after: &str| -> u64 {
        ran.split_once(after)
            .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let (into, out) = (mib("into the guest "), mib("out of it "));
    // The time it was to run (SOAK_SECONDS, more in the long version).
    let planned: f64 = ran
        .split_once(" s of ")
        .and_then(|(_, r)| r.split(';').next()?.parse().ok())
        .unwrap_or(0.0);
    if planned < SOAK_SECONDS as f64 || secs + 5.0 < planned || into < 16 || out < 8 {
        return Err(format!(
            "the soak did not run its course: {ran:?} (want at least {SOAK_SECONDS} s as planned, data both ways)"
        ));
    }
    let ping = one("ping: ");
    let received = ping
        .split(", ")
        .find_map(|p| p.strip_suffix(" received")?.parse::<u64>().ok())
        .unwrap_or(0);
    if received == 0 {
        return Err(format!("no flood ping answered: {ping:?}"));
    }
    echoed(
        run,
        "tcp after: ",
        "hello after the soak",
        "the echo after the soak",
    )?;
    let (a, b) = (one("stats-start: "), one("stats-end: "));
    for name in ["grants ", "ports open ", "sockets ", "B in "] {
        let (x, y) = (stat(&a, name), stat(&b, name));
        if x.is_none() || x != y {
            return Err(format!(
                "{name:?}after the warm-up {x:?}, at the end {y:?}: {a:?} / {b:?}"
            ));
        }
    }
    // The heap keeps the pages it mapped at a peak (a high-water mark the
    // warm-up may not reach): free frames may fall by exactly the heap's
    // growth in mapped pages and the page tables that growth took, no more;
    // its bytes (same allocations) may differ by a buffer's capacity, at
    // most 1 KiB.
    let pages = |l: &str| {
        let heap = mapped_kib(l)? / 4;
        Some(stat(l, "free frames ")? + heap + heap_tables(heap))
    };
    if pages(&a).is_none() || pages(&a) != pages(&b) {
        return Err(format!(
            "free frames + heap pages + their page tables after the warm-up and at the end differ: {a:?} / {b:?}"
        ));
    }
    match (stat(&a, "heap "), stat(&b, "heap ")) {
        (Some(x), Some(y)) if y <= x + 1024 => {}
        h => {
            return Err(format!(
                "heap bytes after the warm-up and at the end: {h:?}"
            ));
        }
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    // Connections the discard port refused (all its listening sockets
    // taken at that instant): reported, not judged.
    let refused = ran
        .split_once("connections refused ")
        .map_or("?", |(_, r)| r.trim());
    Ok(format!(
        "{secs:.0} s: {into} MiB in, {out} MiB out ({refused} connections refused), flood ping {ping}; heap, frames, grants, ports, sockets equal after"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "reconnects 0, ports open 8, free frames 7170; heap 1068312 B in 62 allocations; grants 514; sockets 6 (0 closing)";

    fn good() -> GuestRun {
        let mut events: Vec<String> = (0..8)
            .map(|i| format!("dom0| threw: /k{i} rc=0 values=10"))
            .collect();
        events.push("dom0| storm: 900 writes in 3.10 s".into());
        events.push("dom0| mem-set 4: xl list 9 MiB".into());
        for (k, v) in STEPS {
            events.push(format!("dom0| {k}{v}"));
        }
        events.push(format!("dom0| stats-before: {STATS}"));
        events.push(format!("dom0| stats-after: {STATS}"));
        GuestRun {
            events,
            console: vec![
                "rt: control/shutdown = \"abc\" is not supported: ignored (0 more held back)".into(),
                "rt: memory/target = \"\" is not a number of KiB: ignored (0 more held back)".into(),
                "rt: net: the backend's state of device/vif/0 reads \"abc\": not a state, ignored (0 more held back)".into(),
                "rt: memory target 4096 KiB is below what the guest uses: refused, going to 9000 KiB".into(),
            ],
            end: End::Poweroff,
            ..GuestRun::new("hostile-xenstore-pv")
        }
    }

    #[test]
    fn a_guest_that_refuses_everything_and_keeps_serving_passes() {
        let mut run = good();
        // The app's own long lines are not the runtime's refusals.
        run.console.push(format!("echo: stats {}", "x".repeat(600)));
        run.console
            .push("rt: control/shutdown = \"after-the-storm\" is not supported: ignored (299 more held back)".into());
        let r = judge_hostile_xenstore(&run);
        assert!(
            r.as_ref().is_ok_and(|d| d.contains("(299 more held back)")),
            "{r:?}"
        );
    }

    #[test]
    fn each_way_of_failing_is_caught() {
        let mut r = good();
        r.console.push("rt: panicked at rt/src/control.rs:1".into());
        assert!(judge_hostile_xenstore(&r).unwrap_err().contains("panicked"));

        let mut r = good();
        r.console
            .extend((0..61).map(|_| "rt: memory/target = \"x1\" is not a number of KiB".into()));
        assert!(
            judge_hostile_xenstore(&r)
                .unwrap_err()
                .contains("rate-limited")
        );

        let mut r = good();
        r.console.remove(2);
        assert!(
            judge_hostile_xenstore(&r)
                .unwrap_err()
                .contains("backend's state")
        );

        let mut r = good();
        r.console.push(format!("rt: x = \"{}\"", "7".repeat(4000)));
        r.console.push(format!("echo: stats {}", "x".repeat(600)));
        assert!(judge_hostile_xenstore(&r).unwrap_err().contains("bounded"));

        let mut r = good();
        r.console
            .push("rt: net: the backend closed device/vif/0 (state 5): the network is down".into());
        assert!(judge_hostile_xenstore(&r).is_err());

        let mut r = good();
        let i = r
            .events
            .iter()
            .position(|e| e.contains("tcp storm"))
            .unwrap();
        r.events[i] = "dom0| tcp storm: no reply".into();
        assert!(judge_hostile_xenstore(&r).unwrap_err().contains("storm"));

        let mut r = good();
        let last = r.events.len() - 1;
        r.events[last] = format!(
            "dom0| stats-after: {}",
            STATS.replace("grants 514", "grants 515")
        );
        assert!(judge_hostile_xenstore(&r).unwrap_err().contains("grants"));

        let mut r = good();
        r.events.retain(|e| !e.contains("storm: 900"));
        assert!(judge_hostile_xenstore(&r).unwrap_err().contains("attacker"));

        let mut r = good();
        r.end = End::Timeout;
        assert!(judge_hostile_xenstore(&r).is_err());
    }

    fn flood_run(bytes: u64, answer: bool, after: &str) -> GuestRun {
        let mut console = vec![
            "rt> mem".to_string(),
            "mem: frames 100 free of 200 (400 KiB free); heap 256 KiB mapped, 1000 B in 12 allocations, limit none".into(),
            "rt> ~#garbage".into(),
            "shell: unknown command".into(),
            "rt> echo alive after the flood".into(),
        ];
        if answer {
            console.push("alive after the flood".into());
        }
        console.push("rt> mem".into());
        console.push(after.into());
        GuestRun {
            console,
            events: vec![format!("flood bytes={bytes} seconds=20.0")],
            end: End::Poweroff,
            ..GuestRun::new("console-flood-pv")
        }
    }

    #[test]
    fn a_console_flood_is_judged_by_the_shell_after_it() {
        let same = "mem: frames 100 free of 200 (400 KiB free); heap 256 KiB mapped, 1000 B in 12 allocations, limit none";
        let ok = judge_console_flood(&flood_run(2 << 20, true, same));
        assert!(ok.is_ok(), "{ok:?}");
        assert!(judge_console_flood(&flood_run(1000, true, same)).is_err());
        assert!(judge_console_flood(&flood_run(2 << 20, false, same)).is_err());
        let grown = same.replace("256 KiB mapped", "2304 KiB mapped");
        assert!(judge_console_flood(&flood_run(2 << 20, true, &grown)).is_err());
        let mut long = flood_run(2 << 20, true, same);
        long.console.push("x".repeat(5000));
        assert!(judge_console_flood(&long).is_err());
    }

    #[test]
    fn a_soak_that_leaks_or_stops_short_fails() {
        let stats = "reconnects 0, ports open 8, free frames 7170; heap 1068312 B in 62 allocations, 1544 KiB mapped; grants 514; sockets 6 (0 closing)";
        let good = |end: &str, ran: &str| {
            GuestRun {
            events: vec![
                format!("dom0| stats-start: {stats}"),
                format!("dom0| soak: ran {ran}"),
                "dom0| ping: 9000 packets transmitted, 8800 received, 2% packet loss, time 180000ms".into(),
                format!("dom0| stats-end: {end}"),
                "dom0| tcp after: hello after the soak".into(),
            ],
            end: End::Poweroff,
            ..GuestRun::new("soak-pv")
        }
        };
        let ran = "181.20 s of 180; into the guest 400 MiB, out of it 120 MiB";
        let ok = judge_soak(&good(stats, ran));
        assert!(ok.is_ok(), "{ok:?}");
        for (from, to) in [
            ("grants 514", "grants 516"),
            ("ports open 8", "ports open 9"),
            ("in 62 allocations", "in 63 allocations"),
            ("free frames 7170", "free frames 7169"),
            ("heap 1068312", "heap 1069512"),
            ("1544 KiB mapped", "1548 KiB mapped"),
        ] {
            assert!(
                judge_soak(&good(&stats.replace(from, to), ran)).is_err(),
                "{to}"
            );
        }
        // The heap grew at a peak after the warm-up: by 100 pages within its
        // last 2 MiB, or by 200 pages across into the next (one more L1).
        let grown = stats
            .replace("7170", "7070")
            .replace("1544 KiB", "1944 KiB");
        let ok = judge_soak(&good(&grown, ran));
        assert!(ok.is_ok(), "{ok:?}");
        let across = stats
            .replace("7170", "6969")
            .replace("1544 KiB", "2344 KiB");
        let ok = judge_soak(&good(&across, ran));
        assert!(ok.is_ok(), "{ok:?}");
        let leaked = stats
            .replace("7170", "6968")
            .replace("1544 KiB", "2344 KiB");
        assert!(judge_soak(&good(&leaked, ran)).is_err());
        assert_eq!(heap_tables(0), 0);
        assert_eq!(heap_tables(1), 3);
        assert_eq!(heap_tables(512), 3);
        assert_eq!(heap_tables(513), 4);
        assert!(
            judge_soak(&good(
                stats,
                "20.00 s of 180; into the guest 40 MiB, out of it 8 MiB"
            ))
            .is_err()
        );
        assert!(
            judge_soak(&good(
                stats,
                "181.00 s of 180; into the guest 400 MiB, out of it 0 MiB"
            ))
            .is_err()
        );
        // The long version: judged against its own plan.
        let long = "1801.00 s of 1800; into the guest 4000 MiB, out of it 1200 MiB";
        assert!(judge_soak(&good(stats, long)).is_ok());
        let short = "900.00 s of 1800; into the guest 4000 MiB, out of it 1200 MiB";
        assert!(judge_soak(&good(stats, short)).is_err());
        let old = "181.20 s; into the guest 400 MiB, out of it 120 MiB";
        assert!(judge_soak(&good(stats, old)).is_err(), "no plan reported");
    }

    #[test]
    fn the_soak_script_runs_as_long_as_the_judge_wants() {
        let script = include_str!("../../../../scripts/dom0/tests/soak.sh");
        assert!(script.contains(&format!("SOAK_SECONDS:-{SOAK_SECONDS}")));
    }
}
