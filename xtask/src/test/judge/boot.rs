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
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!("entry-to-main {} us", &c[3]))
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
