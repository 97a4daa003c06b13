//! The libvirt tests: the shell guest created by `virsh create` from the
//! XML the harness generates (`harness::xl::test_libvirt_xml`), driven
//! through `virsh -c xen:///system` only — `console`, `setmem`, `reboot`,
//! `shutdown`, then (in dom0, after it) `create` and `destroy` — with
//! `domstate`/`dominfo` read at each step (`scripts/dom0/tests/virsh-after.sh`);
//! and the echo guest moved by `virsh migrate --live` to the second harness
//! host and back (`scripts/dom0/tests/virsh-migrate.sh`).
use super::lifecycle::{dom0, echoed, field as word, two_host_guest};
use super::{event_fields, field, shell_lines};
use crate::harness::{End, GuestRun};

/// The shell guest's memory (MiB) and what `virsh setmem` asks for.
pub const VIRSH_MIB: u32 = 32;
/// See [`VIRSH_MIB`].
pub const VIRSH_SETMEM_MIB: u32 = 20;

/// The session: the harness runs the `@` lines, the others are typed at
/// the shell's prompt. A reboot's next line waits for the new prompt.
pub const VIRSH_SESSION: &[&str] = &[
    "@virsh domstate",
    "@virsh dominfo",
    "@virsh-console echo typed through virsh console",
    "@virsh setmem {} 20M --live",
    "@idle 4",
    "@virsh dominfo",
    "mem",
    "@virsh reboot",
    "@virsh domstate",
    "@virsh shutdown",
];

/// The save/restore session: `virsh save` at the prompt (the guest
/// suspends, libvirt writes its memory and the domain is gone), `virsh
/// restore` (a new domain from the file), then the shell must still answer.
pub const VIRSH_SAVE_SESSION: &[&str] = &[
    "echo before the save",
    "@virsh save {} /tmp/virsh-save.img",
    "@virsh domstate",
    "@virsh restore /tmp/virsh-save.img",
    "@virsh domstate",
    "echo after the restore",
    "mem",
    "@virsh shutdown",
];

/// Judges `virsh-saverestore-*`: the save and the restore succeeded, libvirt
/// knew no running domain in between and a running one after, the shell
/// answered after the restore, and `virsh shutdown` powered it off.
pub fn judge_virsh_saverestore(run: &GuestRun) -> Result<String, String> {
    if run.end == End::CreateFailed {
        return Err(format!(
            "virsh create failed: {}",
            run.diagnostics.join(" / ")
        ));
    }
    let step = |cmd: &str, n: usize| {
        virsh_output(run, cmd, n).ok_or(format!("no report of `virsh {cmd}` #{}", n + 1))
    };
    for cmd in ["save", "restore", "shutdown"] {
        let (out, rc) = step(cmd, 0)?;
        if rc != 0 {
            return Err(format!(
                "`virsh {cmd}` failed (rc {rc}): {}",
                out.join(" / ")
            ));
        }
    }
    // Between: a transient domain saved is gone (domstate fails or says
    // shut off); after the restore it runs.
    let (between, rc) = step("domstate", 0)?;
    if rc == 0 && between.first() == Some(&"running") {
        return Err("libvirt says the saved domain is still running".into());
    }
    let (after, rc) = step("domstate", 1)?;
    if rc != 0 || after.first() != Some(&"running") {
        return Err(format!("domstate after restore: {after:?} (rc {rc})"));
    }
    let lines: Vec<&str> = shell_lines(run).collect();
    let before = lines.iter().position(|l| *l == "before the save");
    let answer = lines.iter().position(|l| *l == "after the restore");
    match (before, answer) {
        (Some(b), Some(a)) if a > b => {}
        _ => return Err("the shell did not answer after the restore".into()),
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after virsh shutdown (want poweroff)",
            run.end
        ));
    }
    Ok("save, restore (the shell answers after it), shutdown".into())
}

/// Judges `virsh-migrate-*`: `virsh migrate --live` to the second harness
/// host and back both succeeded; libvirt on each host said where the domain
/// was at each step (running on one, unknown to the other); the TCP
/// connection from this host's dom0 echoed before, while on the second
/// host and after coming back; the guest reconnected once per move and said
/// on the second host that it resumed in a new domain; `virsh shutdown`
/// powered it off.
pub fn judge_virsh_migrate(run: &GuestRun) -> Result<String, String> {
    if run.end == End::CreateFailed {
        return Err(format!(
            "virsh create failed: {}",
            run.diagnostics.join(" / ")
        ));
    }
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    // `LABEL: <domstate's first line> rc=N` from one host's libvirt.
    let at = |key: &str, running: bool| -> Result<(), String> {
        let l = one(key);
        let rc = word(&l, "rc");
        let ok = if running {
            l.starts_with("running ") && rc == Some(0.0)
        } else {
            l.starts_with("error:") && rc.is_some_and(|rc| rc != 0.0)
        };
        if ok {
            Ok(())
        } else {
            let want = if running { "running" } else { "no such domain" };
            Err(format!("libvirt's domstate at {key}: {l:?} (want {want})"))
        }
    };
    let moved = |key: &str, what: &str| -> Result<String, String> {
        let l = one(key);
        if word(&l, "rc") == Some(0.0) {
            Ok(l)
        } else {
            Err(format!(
                "{what}: {l:?}; virsh said {:?}",
                dom0(run, &format!("{}-log: ", key.trim_end_matches(": ")))
            ))
        }
    };
    echoed(
        run,
        "tcp before: ",
        "hello before migrating",
        "echo before migrating",
    )?;
    at("home-before: ", true)?;
    let away = moved("away: ", "virsh migrate --live to the second host")?;
    at("home-away: ", false)?;
    at("peer-away: ", true)?;
    if !dom0(run, "peer-dominfo: ")
        .iter()
        .any(|l| l.split_whitespace().eq(["State:", "running"]))
    {
        return Err(format!(
            "dominfo on the second host: {:?} (want State: running)",
            dom0(run, "peer-dominfo: ")
        ));
    }
    let back = moved("back: ", "virsh migrate --live back from the second host")?;
    at("peer-back: ", false)?;
    at("home-back: ", true)?;
    two_host_guest(run)?;
    if word(&one("shutdown: "), "rc") != Some(0.0) || run.end != End::Poweroff {
        return Err(format!(
            "virsh shutdown: {:?}, ended {} (want poweroff)",
            one("shutdown: "),
            run.end
        ));
    }
    Ok(format!(
        "there {away}; back {back}; libvirt on both hosts knew where it ran; tcp echoed on both"
    ))
}

/// `virsh| ` output lines from the `n`-th (0-based) run of `cmd`: the
/// lines between the previous `virsh ... rc=` report and this one's.
fn virsh_output<'a>(run: &'a GuestRun, cmd: &str, n: usize) -> Option<(Vec<&'a str>, i32)> {
    let mut out = Vec::new();
    let mut seen = 0;
    for e in &run.events {
        if let Some(l) = e.strip_prefix("virsh| ") {
            out.push(l);
        } else if let Some(rest) = e.strip_prefix("virsh ") {
            if rest.starts_with(cmd) && rest.contains(" rc=") {
                if seen == n {
                    let rc = rest
                        .rsplit_once(" rc=")?
                        .1
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()?;
                    return Some((out, rc));
                }
                seen += 1;
            }
            out.clear();
        }
    }
    None
}

/// `Used memory:      20480 KiB` from dominfo's output, in KiB.
fn dominfo_kib(lines: &[&str], key: &str) -> Option<u64> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Judges a `virsh-*` run: every step's virsh call succeeded and reported
/// the truth, the console through virsh showed the guest's answer, the
/// balloon followed `setmem`, the reboot came back, the shutdown powered
/// off, and dom0's create/destroy after it left nothing behind.
pub fn judge_virsh(run: &GuestRun) -> Result<String, String> {
    if run.end == End::CreateFailed {
        return Err(format!(
            "virsh create failed: {}",
            run.diagnostics.join(" / ")
        ));
    }
    let step = |cmd: &str, n: usize| {
        virsh_output(run, cmd, n)
            .ok_or(format!("no report of `virsh {cmd}` #{}", n + 1))
            .and_then(|(out, rc)| {
                if rc == 0 {
                    Ok(out)
                } else {
                    Err(format!(
                        "`virsh {cmd}` failed (rc {rc}): {}",
                        out.join(" / ")
                    ))
                }
            })
    };
    let state = step("domstate", 0)?;
    if state.first() != Some(&"running") {
        return Err(format!("domstate after create: {state:?} (want running)"));
    }
    let info = step("dominfo", 0)?;
    let full = u64::from(VIRSH_MIB) * 1024;
    // PVH domains carry up to 1 MiB of Xen's own extra pages (32,832 KiB
    // for 32 MiB was seen): the figure is the domain's within that.
    let near = |v: Option<u64>, want: u64| v.is_some_and(|v| (want..=want + 1024).contains(&v));
    if !near(dominfo_kib(&info, "Max memory:"), full)
        || !near(dominfo_kib(&info, "Used memory:"), full)
    {
        return Err(format!(
            "dominfo after create: {info:?} (want {full} KiB max and used)"
        ));
    }
    // The console: what virsh showed contains the guest's answer.
    let console: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| e.strip_prefix("virsh-console| "))
        .collect();
    let crc = event_fields(run, "virsh-console rc=").ok_or("no virsh console report")?;
    if !console
        .iter()
        .any(|l| l.trim_start_matches("rt> ") == "typed through virsh console")
    {
        return Err(format!(
            "virsh console (rc {:?}) did not show the echo: {console:?}",
            field::<i32>(&crc, "rc")
        ));
    }
    step("setmem", 0)?;
    let info = step("dominfo", 1)?;
    let target = u64::from(VIRSH_SETMEM_MIB) * 1024;
    let used = dominfo_kib(&info, "Used memory:");
    if !near(used, target) {
        return Err(format!(
            "dominfo after setmem: used {used:?} KiB (want {target})"
        ));
    }
    // The guest's own reservation after the balloon (`mem: reservation N KiB`).
    let reservation = shell_lines(run)
        .filter_map(|l| l.strip_prefix("mem: reservation "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .last()
        .ok_or("no `mem: reservation` line")?;
    if reservation > target + 1024 {
        return Err(format!(
            "the guest holds {reservation} KiB after setmem to {target} KiB"
        ));
    }
    step("reboot", 0)?;
    // libvirt created the domain again: a new domain id.
    let rebooted = event_fields(run, "rebooted ").ok_or("no `rebooted` report")?;
    let ids: Option<(&str, &str)> = rebooted
        .iter()
        .find(|(k, _)| *k == "domid")
        .and_then(|(_, v)| v.split_once("->"));
    match ids {
        Some((a, b)) if !a.is_empty() && b != "none" && a != b => {}
        _ => {
            return Err(format!(
                "the reboot did not bring a new domain: {rebooted:?}"
            ));
        }
    }
    let state = step("domstate", 1)?;
    if state.first() != Some(&"running") {
        return Err(format!("domstate after reboot: {state:?} (want running)"));
    }
    step("shutdown", 0)?;
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after virsh shutdown (want poweroff)",
            run.end
        ));
    }
    // dom0, after: create and destroy through libvirt once more.
    let after: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| e.strip_prefix("after| "))
        .collect();
    for want in [
        "create rc=0",
        "domstate: running",
        "destroy rc=0",
        "xl list: gone",
    ] {
        if !after.contains(&want) {
            return Err(format!(
                "after the run, dom0 did not see {want:?}: {after:?}"
            ));
        }
    }
    if !after
        .iter()
        .any(|l| l.starts_with("domstate after destroy: error"))
    {
        return Err(format!(
            "libvirt still knows the domain after destroy: {after:?}"
        ));
    }
    Ok(format!(
        "create, console, setmem {VIRSH_MIB} -> {VIRSH_SETMEM_MIB} MiB (guest holds {reservation} KiB), reboot, shutdown, create + destroy"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&str], console: &[&str], end: End) -> GuestRun {
        GuestRun {
            console: console.iter().map(|s| s.to_string()).collect(),
            events: events.iter().map(|s| s.to_string()).collect(),
            end,
            ..GuestRun::new("virsh-pv")
        }
    }

    const GOOD_EVENTS: &[&str] = &[
        "virsh| running",
        "virsh domstate rc=0 at=3 done=3.1",
        "virsh| Max memory:     32768 KiB",
        "virsh| Used memory:    32768 KiB",
        "virsh dominfo rc=0 at=3.2 done=3.3",
        "virsh-console| Connected to domain 'virsh-pv'",
        "virsh-console| rt> echo typed through virsh console",
        "virsh-console| typed through virsh console",
        "virsh-console rc=0",
        "virsh setmem {} 20M --live rc=0 at=9 done=9.2",
        "idle seconds=4 cpu=0.0",
        "virsh| Used memory:    20480 KiB",
        "virsh dominfo rc=0 at=14 done=14.1",
        "virsh reboot rc=0 at=16 done=16.2",
        "rebooted domid=1->2 seconds=18.5",
        "virsh| running",
        "virsh domstate rc=0 at=20 done=20.1",
        "virsh shutdown rc=0 at=20.2 done=20.3",
        "after| create rc=0",
        "after| domstate: running",
        "after| destroy rc=0",
        "after| domstate after destroy: error: failed to get domain 'virsh-pv'",
        "after| xl list: gone",
    ];
    const CONSOLE: &[&str] = &[
        "rt> mem",
        "mem: reservation 20480 KiB (max 32768 KiB, 12288 KiB given back)",
    ];

    #[test]
    fn save_and_restore_are_judged_by_the_shell_answering_after() {
        let ev = [
            "virsh| Domain 'v' saved to /tmp/virsh-save.img",
            "virsh save {} /tmp/virsh-save.img rc=0 at=5 done=9",
            "virsh| error: failed to get domain 'v'",
            "virsh domstate rc=1 at=9 done=9.5",
            "virsh| Domain restored from /tmp/virsh-save.img",
            "virsh restore /tmp/virsh-save.img rc=0 at=9.6 done=12",
            "virsh| running",
            "virsh domstate rc=0 at=12 done=12.5",
            "virsh shutdown rc=0 at=15 done=15.4",
        ];
        let console = [
            "rt> echo before the save",
            "before the save",
            "rt> echo after the restore",
            "after the restore",
        ];
        assert!(judge_virsh_saverestore(&run(&ev, &console, End::Poweroff)).is_ok());
        // No answer after the restore.
        let e = judge_virsh_saverestore(&run(&ev, &console[..2], End::Poweroff)).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        // The restore failed: libvirt's words are in the message.
        let bad: Vec<&str> = ev
            .iter()
            .map(|e| match *e {
                "virsh| Domain restored from /tmp/virsh-save.img" => {
                    "virsh| error: Failed to restore domain"
                }
                "virsh restore /tmp/virsh-save.img rc=0 at=9.6 done=12" => {
                    "virsh restore /tmp/virsh-save.img rc=1 at=9.6 done=12"
                }
                e => e,
            })
            .collect();
        let e = judge_virsh_saverestore(&run(&bad, &console, End::Poweroff)).unwrap_err();
        assert!(e.contains("Failed to restore domain"), "{e}");
    }

    #[test]
    fn a_whole_session_passes() {
        let r = run(GOOD_EVENTS, CONSOLE, End::Poweroff);
        assert!(judge_virsh(&r).is_ok(), "{:?}", judge_virsh(&r));
    }

    #[test]
    fn each_missing_truth_fails() {
        // The balloon did not follow.
        let r = run(
            GOOD_EVENTS,
            &["mem: reservation 32768 KiB (max 32768 KiB)"],
            End::Poweroff,
        );
        assert!(judge_virsh(&r).unwrap_err().contains("holds 32768"));
        // dominfo lies after setmem.
        let ev: Vec<&str> = GOOD_EVENTS
            .iter()
            .map(|e| {
                if e.contains("20480 KiB") {
                    "virsh| Used memory:    32768 KiB"
                } else {
                    e
                }
            })
            .collect();
        assert!(
            judge_virsh(&run(&ev, CONSOLE, End::Poweroff))
                .unwrap_err()
                .contains("after setmem")
        );
        // The console never showed the answer.
        let ev: Vec<&str> = GOOD_EVENTS
            .iter()
            .filter(|e| !e.ends_with("| typed through virsh console"))
            .copied()
            .collect();
        assert!(
            judge_virsh(&run(&ev, CONSOLE, End::Poweroff))
                .unwrap_err()
                .contains("console")
        );
        // A virsh step failed: its output is in the message verbatim.
        let ev: Vec<&str> = GOOD_EVENTS
            .iter()
            .map(|e| match *e {
                "virsh reboot rc=0 at=16 done=16.2" => "virsh reboot rc=1 at=16 done=16.2",
                e => e,
            })
            .collect();
        assert!(
            judge_virsh(&run(&ev, CONSOLE, End::Poweroff))
                .unwrap_err()
                .contains("`virsh reboot` failed")
        );
        // The shutdown did not power off; destroy left the domain behind.
        assert!(judge_virsh(&run(GOOD_EVENTS, CONSOLE, End::Timeout)).is_err());
        assert!(
            judge_virsh(&run(&[], &[], End::CreateFailed))
                .unwrap_err()
                .contains("virsh create failed")
        );
        let ev: Vec<&str> = GOOD_EVENTS
            .iter()
            .map(|e| {
                if *e == "after| xl list: gone" {
                    "after| xl list: still there"
                } else {
                    e
                }
            })
            .collect();
        assert!(
            judge_virsh(&run(&ev, CONSOLE, End::Poweroff))
                .unwrap_err()
                .contains("xl list")
        );
    }

    const MIGRATE_EVENTS: &[&str] = &[
        "dom0| tcp before: hello before migrating",
        "dom0| home-before: running rc=0",
        "dom0| away: rc=0 seconds=7.10 ping-after=0.20",
        "dom0| home-away: error: failed to get domain 'v' rc=1",
        "dom0| peer-away: running rc=0",
        "dom0| peer-dominfo: State:          running",
        "dom0| tcp away: hello from the other host",
        "dom0| stats-away: reconnects 1, ports open 6",
        "dom0| back: rc=0 seconds=6.50 ping-after=0.30",
        "dom0| peer-back: error: failed to get domain 'v' rc=1",
        "dom0| home-back: running rc=0",
        "dom0| tcp home: hello back home",
        "dom0| stats-home: reconnects 2, ports open 6",
        "dom0| peer: console: rt: resumed in a new domain (restored or migrated)",
        "dom0| shutdown: rc=0 Domain 'v' is being shutdown",
    ];

    #[test]
    fn a_virsh_migration_is_judged_on_both_hosts_at_each_step() {
        let ok = judge_virsh_migrate(&run(MIGRATE_EVENTS, &[], End::Poweroff));
        assert!(ok.is_ok(), "{ok:?}");
        for (i, line) in MIGRATE_EVENTS.iter().enumerate() {
            let ev: Vec<&str> = MIGRATE_EVENTS
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect();
            assert!(
                judge_virsh_migrate(&run(&ev, &[], End::Poweroff)).is_err(),
                "passes without {line:?}"
            );
        }
        let with = |i: usize, line: &'static str| {
            let mut ev = MIGRATE_EVENTS.to_vec();
            ev[i] = line;
            ev.push("dom0| away-log: error: internal error: Failed to send migration data");
            judge_virsh_migrate(&run(&ev, &[], End::Poweroff))
        };
        // A failed migration quotes virsh.
        let e = with(2, "dom0| away: rc=1 seconds=0.50 ping-after=0.10").unwrap_err();
        assert!(e.contains("Failed to send migration data"), "{e}");
        // libvirt lying about where the domain is.
        assert!(with(3, "dom0| home-away: running rc=0").is_err());
        assert!(with(4, "dom0| peer-away: shut off rc=0").is_err());
        assert!(with(9, "dom0| peer-back: running rc=0").is_err());
        // No reconnect on the second host; no poweroff.
        assert!(with(7, "dom0| stats-away: reconnects 0, ports open 6").is_err());
        assert!(judge_virsh_migrate(&run(MIGRATE_EVENTS, &[], End::Timeout)).is_err());
    }
}
