//! Reading a run's figures: what dom0's scripts reported (`early| ...`,
//! `dom0| ...`) and what the guest printed (memory in use, its boot
//! timeline, mmtest's MMU figures).
use crate::harness::GuestRun;

/// The first number in `text` after `key`.
pub(super) fn number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let num: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}

/// The figures one run reported: (first reply s, rtt median, rtt p99, udp/s,
/// tcp MB/s, memory in use KiB, first console line s, main s); absent ones
/// are left out.
pub(super) fn figures(run: &GuestRun) -> [Option<f64>; 8] {
    let ev = |p: &str| run.events.iter().find_map(|e| e.strip_prefix(p));
    let rtt = ev("dom0| rtt100: ");
    let mem = run
        .console
        .iter()
        .find(|l| l.contains("memory in use"))
        .and_then(|l| number_after(l, "memory in use"));
    [
        ev("early| first-reply: ").and_then(|l| number_after(l, "")),
        rtt.and_then(|l| number_after(l, "median")),
        rtt.and_then(|l| number_after(l, "p99")),
        ev("dom0| udp: ").and_then(|l| number_after(l, "echoed,")),
        ev("dom0| tcp64: ").and_then(|l| number_after(l, "")),
        mem,
        ev("early| first-line: ").and_then(|l| number_after(l, "")),
        ev("early| main: ").and_then(|l| number_after(l, "")),
    ]
}

/// The save/restore and migration figures (`scripts/dom0/bench/lifecycle.sh`):
/// (ping gap ms, TCP gap ms, `xl migrate` s, save file MiB, `xl save` s,
/// `xl restore` s); a step that failed (rc != 0) gives none of its own.
pub(super) fn lifecycle_figures(run: &GuestRun) -> [Option<f64>; 6] {
    let ev = |p: &str| {
        run.events
            .iter()
            .find_map(|e| e.strip_prefix("dom0| ")?.strip_prefix(p))
    };
    let ok = |p: &str| ev(p).filter(|l| l.starts_with("rc=0 "));
    [
        ev("downtime-ping: ").and_then(|l| number_after(l, "gap=")),
        ev("downtime-tcp: ").and_then(|l| number_after(l, "gap=")),
        ok("migrate: ").and_then(|l| number_after(l, "seconds=")),
        ok("save: ")
            .and_then(|l| number_after(l, "bytes="))
            .map(|b| b / 1048576.0),
        ok("save: ").and_then(|l| number_after(l, "seconds=")),
        ok("restore: ").and_then(|l| number_after(l, "seconds=")),
    ]
}

/// Our guest's own steps of the migration's suspend, in ms: (quiesce, from
/// the request to the hypercall; back, from its return until the devices
/// carried on), from its `rt: suspend: quiesced in N us (..), running again
/// N us after ..` line as dom0 found it; Linux prints none.
pub(super) fn guest_suspend_ms(run: &GuestRun) -> [Option<f64>; 2] {
    let line = run
        .events
        .iter()
        .find_map(|e| e.strip_prefix("dom0| guest-suspend: "));
    [
        line.and_then(|l| number_after(l, "quiesced in")),
        line.and_then(|l| number_after(l, "running again")),
    ]
    .map(|us| us.map(|us| us / 1000.0))
}

/// The in-guest boot timeline our echo prints (`echo: boot timeline (us
/// since entry): entry=0 rust=... ip=...`): (mark, µs) in order.
pub(super) fn timeline(run: &GuestRun) -> Vec<(String, f64)> {
    let Some(l) = run
        .console
        .iter()
        .find_map(|l| l.split_once("boot timeline (us since entry):"))
    else {
        return vec![];
    };
    l.1.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// The MMU figures mmtest reports for mapping 64 MiB: each `mm-bench:` key
/// and its row in the bench's table.
pub(super) const MMU_FIGURES: [(&str, &str); MMU_N] = [
    (
        "fresh_build_us=",
        "time, new L1 tables built then linked (us)",
    ),
    (
        "fresh_entry_us=",
        "time, new L1 tables written entry by entry (us)",
    ),
    (
        "fresh_build_hypercalls=",
        "hypercalls, new tables built then linked",
    ),
    (
        "fresh_entry_hypercalls=",
        "hypercalls, new tables entry by entry",
    ),
    (
        "fresh_build_pte_writes=",
        "entries validated one by one, built then linked",
    ),
    (
        "fresh_entry_pte_writes=",
        "entries validated one by one, entry by entry",
    ),
    ("batched_hypercalls=", "hypercalls, tables exist, batched"),
    (
        "naive_hypercalls=",
        "hypercalls, tables exist, page by page",
    ),
    ("batched_us=", "time, tables exist, batched (us)"),
    ("naive_us=", "time, tables exist, page by page (us)"),
    (
        "batched_updates_per_s=",
        "page-table updates per second, batched",
    ),
    (
        "naive_updates_per_s=",
        "page-table updates per second, page by page",
    ),
    (
        "fresh_build_submit_us=",
        "time, built then linked: its last submit (PV: Xen validating the tables) (us)",
    ),
    (
        "plain_store_us=",
        "time, the same 16,384 entries by plain stores into 32 frames (us)",
    ),
    ("p2m_lookup_us=", "time, 16,384 pfn-to-machine lookups (us)"),
    (
        "fresh_build_check_us=",
        "time, built then linked: the mapper's checks of the 16,384 frames before queueing (us)",
    ),
    (
        "fresh_build_fill_us=",
        "time, built then linked: computing and storing the 32 new tables' entries (us)",
    ),
    (
        "fresh_build_stolen_us=",
        "time, built then linked: stolen (Xen kept the vCPU from running; not the map's) (us)",
    ),
];

/// How many figures [`MMU_FIGURES`] has.
pub(super) const MMU_N: usize = 18;

/// The values of [`MMU_FIGURES`] in one mmtest run.
pub(super) fn mmu_figures(run: &GuestRun) -> [Option<f64>; MMU_N] {
    MMU_FIGURES.map(|(k, _)| {
        run.console
            .iter()
            .filter(|l| l.starts_with("mm-bench:"))
            .find_map(|l| number_after(l, k))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness;

    #[test]
    fn lifecycle_figures_are_read_and_failed_steps_left_out() {
        let mut run = GuestRun::new("life-echo-pv-1");
        run.events = [
            "migrate: rc=0 seconds=6.50",
            "downtime-ping: gap=420 lost=12 replies=900",
            "downtime-tcp: gap=610 echoes=700",
            "save: rc=0 seconds=3.25 bytes=8388608",
            "restore: rc=1 seconds=0.50 ping-after=0.00",
        ]
        .iter()
        .map(|l| format!("dom0| {l}"))
        .collect();
        assert_eq!(
            lifecycle_figures(&run),
            [
                Some(420.0),
                Some(610.0),
                Some(6.5),
                Some(8.0),
                Some(3.25),
                None
            ]
        );
    }

    #[test]
    fn the_guests_share_of_a_suspend_is_read() {
        let mut run = GuestRun::new("life-echo-pv-1");
        assert_eq!(guest_suspend_ms(&run), [None, None]);
        run.events = vec![
            "dom0| guest-suspend: quiesced in 32479 us (7249 free pages handed to Xen), running again 326073 us after the hypercall returned".into(),
        ];
        assert_eq!(guest_suspend_ms(&run), [Some(32.479), Some(326.073)]);
    }

    #[test]
    fn figures_are_read_from_the_reports() {
        let run = GuestRun {
            name: "echo-pv-1".into(),
            console: vec!["echo: memory in use 1234 KiB of 32768 KiB".into()],
            end: harness::End::Poweroff,
            t_end: None,
            diagnostics: vec![],
            events: vec![
                "early| first-reply: 1.250 s".into(),
                "dom0| rtt100: median 2.10 ms, p99 3.90 ms, 100 replies".into(),
                "dom0| udp: 299 of 300 echoed, 250 per s".into(),
                "dom0| tcp64: 5.25 MB/s".into(),
                "early| first-line: 0.500 s".into(),
                "early| main: 0.750 s".into(),
            ],
            stalled: false,
        };
        assert_eq!(
            figures(&run),
            [
                Some(1.25),
                Some(2.1),
                Some(3.9),
                Some(250.0),
                Some(5.25),
                Some(1234.0),
                Some(0.5),
                Some(0.75)
            ]
        );
        let linux = GuestRun {
            console: vec!["linux: network up at 3.1 s; memory in use 20480 KiB".into()],
            ..run
        };
        assert_eq!(figures(&linux)[5], Some(20480.0));
    }
}
