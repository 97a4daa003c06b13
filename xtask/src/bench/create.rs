//! `xl create` to the first ping reply, split where the toolstack hands
//! over: the domain built, the vif's backend at InitWait, dom0's vif
//! hotplug script, the domain let run (its first instruction), then the
//! guest's own console line, `main` and first reply. The toolstack's steps
//! come from `xl -vvv create`'s log as dom0 stamped it (run-guest.sh), the
//! rest from the bench's early script (scripts/dom0/bench/early.sh); both
//! count from the start of `xl create`.
use std::fmt::Write as _;

use super::parse::number_after;
use super::render::render;
use super::{Kind, Metric};
use crate::harness::GuestRun;

/// The figures of one boot, in the table's row order (see [`ROWS`]).
pub(super) const N: usize = 8;

/// The rows: (figure, unit).
const ROWS: [(&str, &str); N] = [
    (
        "toolstack: xl create -> domain built (xl started, config read, domain made, image loaded)",
        "s",
    ),
    ("toolstack: xl create -> vif backend at InitWait", "s"),
    (
        "toolstack: dom0's vif hotplug script (vif-bridge), start to end",
        "s",
    ),
    (
        "toolstack: xl create -> domain unpaused (the guest's first instruction)",
        "s",
    ),
    ("xl create -> first console line", "s"),
    ("xl create -> main (Linux: /init)", "s"),
    ("xl create -> first ping reply", "s"),
    ("the guest's own part: unpaused -> first ping reply", "s"),
];

/// One boot's figures (see [`ROWS`]); absent ones are `None`.
pub(super) fn figures(run: &GuestRun) -> [Option<f64>; N] {
    let ev = |key: &str| {
        run.events
            .iter()
            .find_map(|e| e.strip_prefix("early| ")?.strip_prefix(key))
            .and_then(|l| number_after(l, ""))
    };
    let hotplug = match (ev("xl hotplug-start: "), ev("xl hotplug-end: ")) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    };
    let unpause = ev("xl unpause: ");
    let reply = ev("first-reply: ");
    [
        ev("xl build-end: "),
        ev("xl initwait: "),
        hotplug,
        unpause,
        ev("first-line: "),
        ev("main: "),
        reply,
        match (unpause, reply) {
            (Some(u), Some(r)) if r >= u => Some(r - u),
            _ => None,
        },
    ]
}

/// The table over `boots` (each with its guest kind), medians and ranges
/// of `reps` boots per kind; a boot with figures missing is noted in
/// `failures`.
pub(super) fn table(boots: &[(Kind, &GuestRun)], reps: u32, failures: &mut Vec<String>) -> String {
    let mut metrics = ROWS.map(|(name, unit)| Metric {
        name,
        unit,
        higher_better: false,
        samples: [vec![], vec![], vec![]],
    });
    for (kind, run) in boots {
        let i = Kind::ALL
            .iter()
            .position(|k| k == kind)
            .expect("every kind is in ALL");
        let f = figures(run);
        if f.iter().any(Option::is_none) {
            failures.push(format!(
                "{}: ended {}; some of xl create's steps missing {f:?}",
                run.name, run.end
            ));
        }
        for (m, v) in metrics.iter_mut().zip(f) {
            if let Some(v) = v {
                m.samples[i].push(v);
            }
        }
    }
    let mut t = String::from(
        "\n`xl create` to the first ping reply, split where the toolstack hands over (seconds since `xl create` started; the toolstack's steps from `xl -vvv create`'s log as dom0 stamped it):\n\n",
    );
    t.push_str(&render(&metrics, reps));
    let _ = writeln!(t);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness;

    fn run(events: &[&str]) -> GuestRun {
        GuestRun {
            name: "create-echo-pv-1".into(),
            console: vec![],
            end: harness::End::Poweroff,
            t_end: None,
            diagnostics: vec![],
            events: events.iter().map(|e| e.to_string()).collect(),
            stalled: false,
        }
    }

    #[test]
    fn the_steps_are_read_and_the_parts_derived() {
        let r = run(&[
            "early| xl build-start: 0.520 s",
            "early| xl build-end: 0.620 s",
            "early| xl initwait: 1.140 s",
            "early| xl hotplug-start: 1.190 s",
            "early| xl hotplug-end: 2.640 s",
            "early| xl unpause: 2.680 s",
            "early| first-line: 2.900 s",
            "early| main: 2.950 s",
            "early| first-reply: 3.300 s",
        ]);
        let f = figures(&r).map(|v| v.map(|x| (x * 1000.0).round() / 1000.0));
        assert_eq!(
            f,
            [
                Some(0.62),
                Some(1.14),
                Some(1.45),
                Some(2.68),
                Some(2.9),
                Some(2.95),
                Some(3.3),
                Some(0.62)
            ]
        );
    }

    #[test]
    fn missing_or_disordered_steps_give_no_figure_and_are_reported() {
        let r = run(&[
            "early| xl hotplug-start: 2.0 s",
            "early| xl hotplug-end: 1.0 s",
            "early| xl unpause: 2.5 s",
            "early| first-reply: none in 120 s",
        ]);
        let f = figures(&r);
        assert_eq!(f[2], None, "an end before its start is no duration");
        assert_eq!(f[6], None);
        assert_eq!(f[7], None);
        let mut failures = Vec::new();
        let t = table(&[(Kind::OursPv, &r)], 1, &mut failures);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            t.contains("| toolstack: xl create -> domain unpaused"),
            "{t}"
        );
        assert!(t.contains("2.500"), "{t}");
    }
}
