//! Judges of save/restore, checkpoints and migration: what dom0's scripts
//! (`scripts/dom0/tests/{saverestore,checkpoint,migrate}.sh`) saw of the
//! guest across them, and what the guest said.
use crate::harness::{End, GuestRun};

/// dom0's report lines starting with `key`, without it.
pub(super) fn dom0<'a>(run: &'a GuestRun, key: &str) -> Vec<&'a str> {
    run.events
        .iter()
        .filter_map(|e| e.strip_prefix("dom0| "))
        .filter_map(|l| l.strip_prefix(key))
        .collect()
}

/// Whether dom0's TCP connection echoed `want` at the step `key` names
/// (`tcp before: `, ...); if not, says so with `what` and what came back.
pub(super) fn echoed(run: &GuestRun, key: &str, want: &str, what: &str) -> Result<(), String> {
    let got = dom0(run, key).first().copied().unwrap_or("");
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got:?}"))
    }
}

/// dom0's reports of echo's stats at `before` and `after` (keys such as
/// `stats-before: `), when grants, event-channel ports and sockets are the
/// same in both — nothing leaked in between (`when` says what happened
/// then, for the error).
pub(super) fn same_resources(
    run: &GuestRun,
    before: &str,
    after: &str,
    when: &str,
) -> Result<(String, String), String> {
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    let (b, a) = (one(before), one(after));
    for name in ["grants ", "ports open ", "sockets "] {
        let (x, y) = (stat(&b, name), stat(&a, name));
        if x.is_none() || x != y {
            return Err(format!(
                "{name:?}before {x:?}, after {when} {y:?}: {b:?} / {a:?}"
            ));
        }
    }
    Ok((b, a))
}

/// The value of `name` in one of echo's stats lines (`... name N ...`).
pub fn stat(line: &str, name: &str) -> Option<u64> {
    let rest = &line[line.find(name)? + name.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}

/// Judges a save and restore: the TCP connection opened before the save
/// echoes after the restore, the guest reconnected once and said it came
/// back in a new domain, and it powered off on `xl shutdown`; before the
/// save an unknown `control/shutdown` value was logged and ignored.
pub fn judge_saverestore(run: &GuestRun) -> Result<String, String> {
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    echoed(
        run,
        "tcp before: ",
        "hello before the save",
        "echo before the save",
    )?;
    echoed(
        run,
        "tcp unknown: ",
        "hello after an unknown request",
        "echo after control/shutdown = frobnicate",
    )?;
    if !run
        .console
        .iter()
        .any(|l| l.starts_with("rt: control/shutdown = \"frobnicate\" is not supported: ignored"))
    {
        return Err("the guest did not log the unknown control/shutdown value".into());
    }
    let save = one("save: ");
    if !save.starts_with("rc=0 ") {
        return Err(format!("xl save: {save} {:?}", dom0(run, "save-log: ")));
    }
    let restore = one("restore: ");
    if !restore.starts_with("rc=0 ") {
        return Err(format!(
            "xl restore: {restore} {:?}",
            dom0(run, "restore-log: ")
        ));
    }
    echoed(
        run,
        "tcp after: ",
        "hello after the restore",
        "the connection after the restore",
    )
    .map_err(|e| {
        let tail: Vec<_> = run.console.iter().rev().take(5).collect();
        format!("{e} (console: {tail:?})")
    })?;
    let after = one("stats-after: ");
    if stat(&after, "reconnects ") != Some(1) {
        return Err(format!(
            "the guest's stats after the restore: {after:?} (want reconnects 1)"
        ));
    }
    if !run
        .console
        .iter()
        .any(|l| l == "rt: resumed in a new domain (restored or migrated)")
    {
        return Err("the guest did not say it resumed in a new domain".into());
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    Ok(format!(
        "save {save}; restore {restore}; first ping after {}; tcp echoed across",
        one("first ping after restore: ")
    ))
}

/// How many heap bytes nine migrations may add without a leak: the strings
/// that name the domain id (the backend's path) grow when it gains a digit
/// (seen: +2 B from domain 9 to 10). A leaked allocation shows in the count.
const HEAP_DRIFT: u64 = 64;

/// `key=value` words of a report line.
pub(super) fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Judges three checkpoints under a 10 ms ping stream: each `xl save -c`
/// succeeded, the guest went on in the same domain every time (it said so,
/// and never reconnected), and pings were lost only while it was paused.
pub fn judge_checkpoint(run: &GuestRun) -> Result<String, String> {
    let cps = dom0(run, "checkpoint ");
    if cps.len() != 3 || cps.iter().any(|c| field(c, "rc") != Some(0.0)) {
        return Err(format!(
            "checkpoints: {cps:?} {:?}",
            dom0(run, "checkpoint-log: ")
        ));
    }
    let paused: f64 = cps.iter().filter_map(|c| field(c, "seconds")).sum();
    let said = run
        .console
        .iter()
        .filter(|l| l.starts_with("rt: resumed in the same domain"))
        .count();
    if said != 3 {
        return Err(format!(
            "the guest said it went on in place {said} times (want 3)"
        ));
    }
    let after = dom0(run, "stats-after: ").first().copied().unwrap_or("");
    if stat(after, "reconnects ") != Some(0) {
        return Err(format!("the guest's stats: {after:?} (want reconnects 0)"));
    }
    let ping = dom0(run, "ping: ").first().copied().unwrap_or("");
    let nums: Vec<u64> = ping
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(2)
        .filter_map(|w| w.parse().ok())
        .collect();
    let [sent, got] = nums[..] else {
        return Err(format!("no ping summary: {ping:?}"));
    };
    // One ping every 10 ms: a pause of `paused` seconds loses that many,
    // and a few more around each checkpoint's edges.
    let allowed = (paused * 100.0).ceil() as u64 + 30;
    if sent < 1000 || sent - got > allowed {
        return Err(format!(
            "{got} of {sent} pings answered; {} lost, at most {allowed} may be (paused {paused:.2} s)",
            sent - got
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    Ok(format!(
        "3 checkpoints, paused {paused:.2} s in all; {got}/{sent} pings; no reconnect"
    ))
}

/// Judges ten migrations to the same host: every `xl migrate` succeeded,
/// the TCP connection opened before the first echoes after the tenth, and
/// the guest's grants, ports, heap and free frames after the tenth equal
/// those after the first (nothing leaks per migration).
pub fn judge_migrate(run: &GuestRun) -> Result<String, String> {
    let migs = dom0(run, "migrate ");
    // Each one succeeded and the guest answered a ping after it.
    let good = |m: &&str| field(m, "rc") == Some(0.0) && m.ends_with(" answered=yes");
    if migs.len() != 10 || !migs.iter().all(good) {
        return Err(format!(
            "migrations: {migs:?} {:?} (the guest's console: {:?})",
            dom0(run, "migrate-log: "),
            dom0(run, "console-tail: ")
        ));
    }
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    let (first, last) = (one("stats-first: "), one("stats-last: "));
    let reconnects = (stat(&first, "reconnects "), stat(&last, "reconnects "));
    if reconnects != (Some(1), Some(10)) {
        return Err(format!(
            "reconnects after the 1st and the 10th: {reconnects:?} (want 1 and 10)"
        ));
    }
    // A leak shows as one more grant, port, frame or allocation per
    // migration; the heap's bytes may drift by a few bytes without one
    // (see HEAP_DRIFT).
    for name in ["grants ", "ports open ", "B in ", "free frames "] {
        let (a, b) = (stat(&first, name), stat(&last, name));
        if a.is_none() || a != b {
            return Err(format!(
                "{name:?}after the 1st migration {a:?}, after the 10th {b:?}: {first:?} / {last:?}"
            ));
        }
    }
    let heap = (stat(&first, "heap "), stat(&last, "heap "));
    match heap {
        (Some(a), Some(b)) if b <= a + HEAP_DRIFT => {}
        _ => {
            return Err(format!(
                "heap bytes after the 1st and the 10th migration: {heap:?} (want at most {HEAP_DRIFT} B more)"
            ));
        }
    }
    echoed(
        run,
        "tcp after: ",
        "hello after migrating",
        "the connection after ten migrations",
    )?;
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    let secs: Vec<f64> = migs.iter().filter_map(|m| field(m, "seconds")).collect();
    let max = secs.iter().copied().fold(0.0, f64::max);
    Ok(format!(
        "10 migrations (longest {max:.1} s); grants, ports, heap, frames unchanged; tcp echoed across"
    ))
}

/// What a migration to the second harness host and back (by xl or by
/// libvirt) must show of the guest: dom0's TCP connection echoed while it
/// ran there and after it came back, it reconnected once per move, and it
/// said on the second host that it resumed in a new domain.
pub(super) fn two_host_guest(run: &GuestRun) -> Result<(), String> {
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    echoed(
        run,
        "tcp away: ",
        "hello from the other host",
        "the connection while on the second host",
    )?;
    echoed(
        run,
        "tcp home: ",
        "hello back home",
        "the connection after coming back",
    )?;
    let reconnects = (
        stat(&one("stats-away: "), "reconnects "),
        stat(&one("stats-home: "), "reconnects "),
    );
    if reconnects != (Some(1), Some(2)) {
        return Err(format!(
            "reconnects on the second host and back home: {reconnects:?} (want 1 and 2)"
        ));
    }
    if !dom0(run, "peer: console: ").contains(&"rt: resumed in a new domain (restored or migrated)")
    {
        return Err("the guest did not say on the second host that it resumed".into());
    }
    Ok(())
}

/// Judges a migration to the second harness host and back: both `xl
/// migrate`s succeeded, the TCP connection from the first host's dom0
/// echoed while the guest ran on the second host and after it came back,
/// the guest reconnected once per move and said on the second host that it
/// resumed in a new domain, and it powered off on `xl shutdown`.
pub fn judge_migrate_2host(run: &GuestRun) -> Result<String, String> {
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    echoed(
        run,
        "tcp before: ",
        "hello before migrating",
        "echo before migrating",
    )
    .map_err(|e| format!("{e} (peer: {:?})", dom0(run, "peer")))?;
    let away = one("away: ");
    if field(&away, "rc") != Some(0.0) {
        return Err(format!(
            "xl migrate to the second host: {away:?} {:?}",
            dom0(run, "migrate-log: ")
        ));
    }
    let back = one("peer: migrate ");
    if field(&back, "rc") != Some(0.0) {
        return Err(format!(
            "xl migrate back from the second host: {back:?} {:?}",
            dom0(run, "peer: log: ")
        ));
    }
    two_host_guest(run)?;
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    Ok(format!(
        "there {away}; back {back}, {}; tcp echoed on both hosts",
        one("home: ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&str], console: &[&str]) -> GuestRun {
        GuestRun {
            name: "t".into(),
            console: console.iter().map(|s| s.to_string()).collect(),
            end: End::Poweroff,
            t_end: Some(1.0),
            diagnostics: vec![],
            events: events.iter().map(|e| format!("dom0| {e}")).collect(),
            stalled: false,
        }
    }

    const STATS: &str = "rx 1 frames 2 B; events: 3 upcalls; reconnects 1, ports open 6, free frames 7339; buffers tx in flight 1, rx posted 256; heap 617664 B in 28 allocations; grants 514";

    #[test]
    fn stats_are_read_by_name() {
        assert_eq!(stat(STATS, "reconnects "), Some(1));
        assert_eq!(stat(STATS, "ports open "), Some(6));
        assert_eq!(stat(STATS, "free frames "), Some(7339));
        assert_eq!(stat(STATS, "heap "), Some(617664));
        assert_eq!(stat(STATS, "grants "), Some(514));
        assert_eq!(stat(STATS, "missing "), None);
    }

    #[test]
    fn a_save_and_restore_is_judged_by_the_connection_and_the_log() {
        let good = [
            "tcp before: hello before the save",
            "tcp unknown: hello after an unknown request",
            "save: rc=0 seconds=2.0 bytes=4000000",
            "restore: rc=0 seconds=3.0",
            "tcp after: hello after the restore",
            "stats-after: reconnects 1, ports open 6",
        ];
        let said = [
            "rt: control/shutdown = \"frobnicate\" is not supported: ignored (0 more held back)",
            "rt: resumed in a new domain (restored or migrated)",
        ];
        assert!(judge_saverestore(&run(&good, &said)).is_ok());
        let unlogged = judge_saverestore(&run(&good, &said[1..]));
        assert!(unlogged.is_err_and(|e| e.contains("unknown control/shutdown")));
        let mut dropped = good;
        dropped[4] = "tcp after: ";
        assert!(judge_saverestore(&run(&dropped, &said)).is_err());
        let mut twice = good;
        twice[5] = "stats-after: reconnects 2";
        assert!(judge_saverestore(&run(&twice, &said)).is_err());
        let mut failed = good;
        failed[2] = "save: rc=1 seconds=0.5 bytes=0";
        assert!(judge_saverestore(&run(&failed, &said)).is_err());
    }

    #[test]
    fn a_checkpoint_run_is_judged_by_its_pauses() {
        let good = [
            "checkpoint 1: rc=0 seconds=1.50 bytes=1",
            "checkpoint 2: rc=0 seconds=1.00 bytes=1",
            "checkpoint 3: rc=0 seconds=0.50 bytes=1",
            "ping: 2000 packets transmitted, 1750 received, 12% packet loss, time 20000ms",
            "stats-after: reconnects 0, ports open 6",
        ];
        let said = ["rt: resumed in the same domain (the save was a checkpoint or failed)"; 3];
        assert!(judge_checkpoint(&run(&good, &said)).is_ok());
        let mut lossy = good;
        lossy[3] = "ping: 2000 packets transmitted, 1600 received";
        assert!(
            judge_checkpoint(&run(&lossy, &said)).is_err(),
            "400 lost > 330"
        );
        let mut moved = good;
        moved[4] = "stats-after: reconnects 1";
        assert!(judge_checkpoint(&run(&moved, &said)).is_err());
        assert!(judge_checkpoint(&run(&good, &said[..2])).is_err());
    }

    #[test]
    fn a_two_host_migration_is_judged_on_both_hosts() {
        let good = [
            "tcp before: hello before migrating",
            "away: rc=0 seconds=5.00 ping-after=0.20",
            "tcp away: hello from the other host",
            "stats-away: reconnects 1, ports open 6",
            "peer: migrate rc=0 seconds=6.00",
            "peer: console: rt: resumed in a new domain (restored or migrated)",
            "home: ping-after=0.30",
            "tcp home: hello back home",
            "stats-home: reconnects 2, ports open 6",
        ];
        assert!(judge_migrate_2host(&run(&good, &[])).is_ok());
        let without = |i: usize| {
            let v: Vec<&str> = good
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect();
            judge_migrate_2host(&run(&v, &[]))
        };
        for (i, line) in good.iter().enumerate() {
            if i == 6 {
                continue; // the ping time is reported, not judged
            }
            assert!(without(i).is_err(), "passes without {line:?}");
        }
        let mut failed = good;
        failed[4] = "peer: migrate rc=1 seconds=0.50";
        assert!(judge_migrate_2host(&run(&failed, &[])).is_err());
    }

    #[test]
    fn a_migration_that_leaks_fails() {
        let mut ev: Vec<String> = (1..=10)
            .map(|i| format!("migrate {i}: rc=0 seconds=3.0 ping-after=0.5 answered=yes"))
            .collect();
        ev.push(format!("stats-first: {STATS}"));
        ev.push(format!(
            "stats-last: {}",
            STATS.replace("reconnects 1", "reconnects 10")
        ));
        ev.push("tcp after: hello after migrating".into());
        let refs: Vec<&str> = ev.iter().map(String::as_str).collect();
        assert!(
            judge_migrate(&run(&refs, &[])).is_ok(),
            "{:?}",
            judge_migrate(&run(&refs, &[]))
        );
        let judge_last = |from: &str, to: &str| {
            let mut ev2 = ev.clone();
            ev2[11] = ev[11].replace(from, to);
            assert_ne!(ev2[11], ev[11], "{from} is in the stats line");
            let refs: Vec<&str> = ev2.iter().map(String::as_str).collect();
            judge_migrate(&run(&refs, &[]))
        };
        let mut silent = ev.clone();
        silent[4] = silent[4].replace("answered=yes", "answered=no");
        let refs: Vec<&str> = silent.iter().map(String::as_str).collect();
        assert!(
            judge_migrate(&run(&refs, &[])).is_err(),
            "no ping after one"
        );
        assert!(judge_last("grants 514", "grants 1028").is_err());
        assert!(judge_last("ports open 6", "ports open 15").is_err());
        assert!(judge_last("free frames 7339", "free frames 7330").is_err());
        assert!(judge_last("in 28 allocations", "in 37 allocations").is_err());
        // The heap's bytes may drift a little (longer domain ids), not more.
        assert!(judge_last("heap 617664 B", "heap 617666 B").is_ok());
        assert!(judge_last("heap 617664 B", "heap 617856 B").is_err());
    }
}
