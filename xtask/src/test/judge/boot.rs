//! Judges of boots, faults and memory: hello (every way of booting), the
//! fault reports, mmtest's MMU figures, memtest's balloon.
use regex::Regex;

use crate::harness::{End, GuestRun};

/// What a hello guest must show to pass.
pub struct HelloExpect {
    /// The mode the greeting and the boot report name.
    pub mode: &'static str,
    /// Acceptable reported memory, MiB (inclusive).
    pub memory: (u64, u64),
}

/// Judges a hello run: the greeting names the mode, the boot report is
/// complete and consistent, nothing panicked or faulted, and it powered off.
pub fn judge_hello(run: &GuestRun, want: &HelloExpect) -> Result<String, String> {
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
    let phases = check_phases(&run.console, want.mode)?;
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!("entry-to-main {} us; {phases}", &c[3]))
}

/// One phase of a `boot: timeline` line: name, microseconds (None: `?`),
/// its counts (hypercalls, page-table entries, tables, xenstore round
/// trips) and the microseconds Xen kept the vCPU from running (stolen).
pub type PhaseFigures = (String, Option<u64>, [u64; 5]);

/// The head of the per-phase timeline line, up to the first phase.
pub const TIMELINE_HEAD: &str =
    "boot: timeline phase=us/hypercalls/ptes/tables/xenstore/stolen-us ";

/// The phases of the first `boot: timeline phase=...` line, the `total`
/// entry last; None if there is no such line or it does not parse.
pub fn boot_phases(console: &[String]) -> Option<Vec<PhaseFigures>> {
    let line = console.iter().find_map(|l| l.strip_prefix(TIMELINE_HEAD))?;
    line.split_whitespace()
        .map(|item| {
            let (name, v) = item.split_once('=')?;
            let mut f = v.split('/');
            let us = match f.next()? {
                "?" => None,
                s => Some(s.parse().ok()?),
            };
            let mut n = [0u64; 5];
            for slot in &mut n {
                *slot = f.next()?.parse().ok()?;
            }
            f.next().is_none().then(|| (name.to_string(), us, n))
        })
        .collect()
}

/// Checks the per-phase boot timeline: present, its phases' counts add up
/// to its total (stolen time is rounded to us per phase, so it is not
/// compared), and the counts show the work each boot mode must do (building the
/// address space writes entries and makes tables; PV does it through
/// hypercalls). Xenstore is not asked before `main` (its client connects on
/// first use), so its count is reported, not required. Returns a short summary.
fn check_phases(console: &[String], mode: &str) -> Result<String, String> {
    let Some(p) = boot_phases(console) else {
        return Err("no per-phase boot timeline (boot: timeline phase=...)".into());
    };
    let Some(((_, _, total), phases)) = p.split_last().filter(|(t, _)| t.0 == "total") else {
        return Err("the boot timeline has no total".into());
    };
    let mut sum = [0u64; 4];
    for (_, _, n) in phases {
        for (s, v) in sum.iter_mut().zip(n) {
            *s += v;
        }
    }
    if sum[..] != total[..4] {
        return Err(format!(
            "phases add up to {sum:?}, the total says {:?}",
            &total[..4]
        ));
    }
    let Some((_, _, space)) = phases.iter().find(|(n, _, _)| n == "space") else {
        return Err("the boot timeline has no address-space phase (space)".into());
    };
    let pv = mode.starts_with("pv") && !mode.starts_with("pvh");
    if space[1] == 0 || space[2] == 0 || (pv && space[0] == 0) {
        return Err(format!(
            "the address-space phase counted {space:?} (hypercalls, entries, tables, xenstore)"
        ));
    }
    Ok(format!(
        "space: {} hypercalls, {} entries, {} tables; total {} hypercalls, {} xenstore round trips",
        space[0], space[1], space[2], total[0], total[3]
    ))
}

/// Judges the out-of-tree app (`cargo xtask new`'s template): its greeting
/// on the console and a clean poweroff when `main` returned.
pub fn judge_oot(run: &GuestRun) -> Result<String, String> {
    let want = format!("{0}: hello from {0} on ", super::super::plan::OOT_APP);
    let Some(line) = run.console.iter().find(|l| l.starts_with(&want)) else {
        return Err(format!("no line starting {want:?}"));
    };
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(line.clone())
}

/// Judges a faulttest run: the fault reported as `want` (a line that must
/// appear), the page-table walk printed (if `walk`), and a crashed end.
pub fn judge_fault(run: &GuestRun, want: &str, walk: bool) -> Result<String, String> {
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
pub fn judge_mmtest(run: &GuestRun, pv: bool) -> Result<String, String> {
    guest_verdict(run, "mmtest")?;
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
    let fresh = Regex::new(r"^mm-bench: fresh_build_us=(\d+) fresh_build_hypercalls=(\d+) fresh_build_pte_writes=(\d+) fresh_build_tables=(\d+) fresh_entry_us=(\d+) fresh_entry_hypercalls=(\d+) fresh_entry_pte_writes=(\d+) fresh_entry_tables=(\d+)$")
        .expect("valid regex");
    let Some(f) = run.console.iter().find_map(|l| fresh.captures(l)) else {
        return Err("no mm-bench line for new tables (fresh_build_...)".into());
    };
    let g = |i: usize| f[i].parse::<u64>().unwrap_or(u64::MAX);
    // 32 new L1s built whole; Xen validates one by one only each table's
    // read-only direct-map entry and its link (plus the new L2 and L3).
    if g(4) != 32 || g(8) != 0 || g(3) > 2 * 34 || g(7) < 16384 {
        return Err(format!(
            "new tables: {} built whole (want 32), {} entry writes (want <= 68) vs {} entry by entry (want >= 16384)",
            g(4),
            g(3),
            g(7)
        ));
    }
    match run.events.iter().find(|e| e.starts_with("dump-core ")) {
        Some(e) if e.starts_with("dump-core rc=0 ") => {}
        Some(e) => return Err(format!("xl {e}")),
        None if pv => return Err("the harness took no dump-core".into()),
        None => {}
    }
    // The boot's build step by step: every step reported; on PV the boot
    // tables go back in `release` and the switch is a hypercall.
    let Some(steps) = build_steps(run) else {
        return Err("no mm-boot-steps line (or a malformed step)".into());
    };
    let step = |name: &str| steps.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    if names != ["adopt", "first", "activate", "release", "rest"] {
        return Err(format!("mm-boot-steps: steps {names:?}"));
    }
    if pv
        && (step("release").map_or(0.0, |v| v[8]) < 1.0
            || step("activate").map_or(0.0, |v| v[4]) < 1.0)
    {
        return Err("mm-boot-steps: no boot tables released or no hypercall to switch (PV)".into());
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!(
        "hypercalls {} vs {}, cycles x{:.1}; new tables built then linked {} us ({} entry writes) vs entry by entry {} us ({})",
        n(1),
        n(2),
        n(4) as f64 / n(3).max(1) as f64,
        g(1),
        g(3),
        g(5),
        g(7)
    ))
}

/// The numbers of each step in mmtest's `mm-boot-steps:` line: time, the
/// mapper's checks, its fill, the backend's submits (us); hypercalls,
/// entries sent, entries filled, tables made, tables released; the time
/// Xen kept the vCPU from running (stolen, us).
pub const STEP_N: usize = 10;

/// One run's steps: each name with its [`STEP_N`] numbers, in order.
pub type BuildSteps = Vec<(String, [f64; STEP_N])>;

/// The boot's address-space build step by step, as mmtest reports it
/// (`mm-boot-steps: step=... adopt=1/2/.../9 first=...`): each step's name
/// and its [`STEP_N`] numbers; `None` without the line or with a malformed
/// step.
pub fn build_steps(run: &GuestRun) -> Option<BuildSteps> {
    let line = run
        .console
        .iter()
        .find_map(|l| l.strip_prefix("mm-boot-steps: "))?;
    line.split_ascii_whitespace()
        .filter(|w| !w.starts_with("step="))
        .map(|w| {
            let (name, v) = w.split_once('=')?;
            let mut n = [0.0; STEP_N];
            let mut it = v.split('/');
            for x in &mut n {
                *x = it.next()?.parse().ok()?;
            }
            it.next().is_none().then(|| (name.to_string(), n))
        })
        .collect()
}

/// The heap limit of the memtest image whose out-of-memory run is checked.
pub const MEMTEST_HEAP_MIB: u32 = 24;

/// Judges a memtest run: the guest's verdict, `xl list` following the
/// balloon as the harness saw it, and a clean poweroff.
pub fn judge_memtest(run: &GuestRun) -> Result<String, String> {
    guest_verdict(run, "memtest")?;
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

/// A self-checking guest test's own verdict: no `<app>: FAIL` or runtime
/// error line, and its `test result: PASS <app>`.
fn guest_verdict(run: &GuestRun, app: &str) -> Result<(), String> {
    let fail = format!("{app}: FAIL");
    if let Some(l) = run
        .console
        .iter()
        .find(|l| l.starts_with(&fail) || l.starts_with("rt: "))
    {
        return Err(l.clone());
    }
    let pass = format!("test result: PASS {app}");
    if !run.console.contains(&pass) {
        return Err(format!("no `{pass}` from the guest"));
    }
    Ok(())
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
    const OK: [&str; 3] = [
        "hello from hello (pv)",
        "boot: mode=pv memory=32 MiB entry-to-main=812 us cmdline=\"\"",
        TIMELINE,
    ];
    const TIMELINE: &str = "boot: timeline phase=us/hypercalls/ptes/tables/xenstore/stolen-us rust=100/0/0/0/0/0 space=500/20/8300/18/0/300 events=10/4/0/0/0/0 control=100/3/0/0/2/0 main=1/0/0/0/0/0 total=711/27/8300/18/2/301";

    #[test]
    fn mmtest_needs_both_paths_for_new_tables() {
        let lines = |writes: u64| {
            let mut r = run(
                &[
                    "mm-bench: pages=16384 batched_hypercalls=32 naive_hypercalls=16384 batched_cycles=10 naive_cycles=30",
                    "test result: PASS mmtest",
                ],
                End::Poweroff,
            );
            r.console.insert(0, format!("mm-bench: fresh_build_us=900 fresh_build_hypercalls=2 fresh_build_pte_writes={writes} fresh_build_tables=32 fresh_entry_us=3000 fresh_entry_hypercalls=32 fresh_entry_pte_writes=16418 fresh_entry_tables=0"));
            r.console.insert(0, STEPS.into());
            r.events.push("dump-core rc=0 seconds=1".into());
            r
        };
        let ok = judge_mmtest(&lines(66), true).unwrap();
        assert!(
            ok.contains("built then linked 900 us (66 entry writes)"),
            "{ok}"
        );
        // Built whole but still written entry by entry: fails.
        assert!(judge_mmtest(&lines(16384), true).is_err());
        let mut old = lines(66);
        old.console.remove(1);
        assert!(judge_mmtest(&old, true).is_err());
    }

    const STEPS: &str = "mm-boot-steps: step=us/check-us/fill-us/submit-us/hypercalls/ptes-sent/entries-filled/tables-made/tables-released/stolen-us adopt=418/0/0/0/0/0/0/0/0/0 first=2992/0/342/834/3/11/1018/5/0/0 activate=486/0/0/358/2/0/0/0/0/0 release=1130/0/0/253/1/5/0/0/5/0 rest=44520/0/19721/24207/2/124/31744/62/0/9800";

    #[test]
    fn mmtest_needs_the_boots_steps() {
        let with = |steps: &str| {
            let mut r = run(
                &[
                    "mm-bench: pages=16384 batched_hypercalls=32 naive_hypercalls=16384 batched_cycles=10 naive_cycles=30",
                    "mm-bench: fresh_build_us=900 fresh_build_hypercalls=2 fresh_build_pte_writes=66 fresh_build_tables=32 fresh_entry_us=3000 fresh_entry_hypercalls=32 fresh_entry_pte_writes=16418 fresh_entry_tables=0",
                    steps,
                    "test result: PASS mmtest",
                ],
                End::Poweroff,
            );
            r.events.push("dump-core rc=0 seconds=1".into());
            r
        };
        assert!(judge_mmtest(&with(STEPS), true).is_ok());
        // No boot tables given back on PV (PVH has none to give).
        let kept = STEPS.replace(
            "release=1130/0/0/253/1/5/0/0/5",
            "release=1130/0/0/253/1/5/0/0/0",
        );
        assert!(judge_mmtest(&with(&kept), true).is_err());
        assert!(judge_mmtest(&with(&kept), false).is_ok());
        // A step missing, or a number of one.
        let short = STEPS.replace(" rest=44520/0/19721/24207/2/124/31744/62/0/9800", "");
        // A line of the format before stolen time (nine numbers a step).
        let old_format = STEPS.replace("/9800", "");
        assert!(judge_mmtest(&with(&old_format), true).is_err());
        assert!(judge_mmtest(&with(&short), true).is_err());
        let cut = STEPS.replace("rest=44520/0/", "rest=44520/");
        assert!(judge_mmtest(&with(&cut), true).is_err());
    }

    #[test]
    fn a_good_run_passes() {
        assert_eq!(
            judge_hello(&run(&OK, End::Poweroff), &PV),
            Ok("entry-to-main 812 us; space: 20 hypercalls, 8300 entries, 18 tables; total 27 hypercalls, 2 xenstore round trips".into())
        );
    }

    #[test]
    fn the_phase_timeline_must_add_up_and_show_the_work() {
        let lines = |t: &str| -> Vec<String> { vec![t.to_string()] };
        let p = boot_phases(&lines(TIMELINE)).unwrap();
        assert_eq!(
            p[1],
            ("space".to_string(), Some(500), [20, 8300, 18, 0, 300])
        );
        assert_eq!(p.last().unwrap().0, "total");
        // Stolen time is rounded per phase (300 + 0 us against 301): only
        // the counts must add up.
        assert!(check_phases(&lines(TIMELINE), "pv").is_ok());
        // A total that is not the sum of the phases.
        let wrong = TIMELINE.replace("total=711/27/", "total=711/28/");
        assert!(check_phases(&lines(&wrong), "pv").is_err());
        // PV building its space without a hypercall (PVH needs none).
        let no_hc = TIMELINE
            .replace("space=500/20/", "space=500/0/")
            .replace("total=711/27/", "total=711/7/");
        assert!(check_phases(&lines(&no_hc), "pv").is_err());
        assert!(check_phases(&lines(&no_hc), "pvh").is_ok());
        assert!(check_phases(&lines(&no_hc), "qemu-pvh").is_ok());
        // No tables made: the address space was not built.
        let no_tables = TIMELINE
            .replace("space=500/20/8300/18/0", "space=500/20/8300/0/0")
            .replace("total=711/27/8300/18/2", "total=711/27/8300/0/2");
        assert!(check_phases(&lines(&no_tables), "pvh").is_err());
        // Malformed: a missing count, a word that is no number.
        let head = TIMELINE_HEAD;
        assert!(boot_phases(&lines(&format!("{head}a=1/2/3"))).is_none());
        assert!(boot_phases(&lines(&format!("{head}a=x/2/3/4/5/6"))).is_none());
        assert!(
            boot_phases(&lines(&format!("{head}a=1/2/3/4/5"))).is_none(),
            "the stolen time is missing"
        );
        assert_eq!(
            boot_phases(&lines(&format!("{head}a=?/2/3/4/5/6"))).unwrap()[0].1,
            None
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
