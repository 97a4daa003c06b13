//! Rendering: the markdown tables (median (min..max) per guest, ratios to
//! Linux; the MMU figures) and the SVG of the boot timelines.
use std::fmt::Write as _;

use super::parse::MMU_FIGURES;
use super::stats::{Spread, median_timeline, spread};
use super::{Kind, Metric};

fn cell(s: Option<Spread>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.n == 1 || s.min == s.max => fmt_num(s.median),
        Some(s) => format!(
            "{} ({}..{})",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max)
        ),
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The markdown table: median (min..max) per guest, and ours/Linux.
pub(super) fn render(metrics: &[Metric], reps: u32) -> String {
    let mut t = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        t,
        "| figure | ours PV | ours PVH | Linux PV | PV / Linux | PVH / Linux |\n|---|---|---|---|---|---|"
    );
    for m in metrics {
        let s: Vec<Option<Spread>> = m.samples.iter().map(|v| spread(v)).collect();
        let ratio = |i: usize| match (s[i], s[2]) {
            (Some(a), Some(b)) if b.median > 0.0 => format!("{:.3}", a.median / b.median),
            _ => "-".into(),
        };
        let _ = writeln!(
            t,
            "| {} ({}{}) | {} | {} | {} | {} | {} |",
            m.name,
            m.unit,
            if m.higher_better {
                ", higher is better"
            } else {
                ""
            },
            cell(s[0]),
            cell(s[1]),
            cell(s[2]),
            ratio(0),
            ratio(1)
        );
    }
    let _ = writeln!(
        t,
        "\nMedian (min..max) of {reps} boots of each guest in one harness session: {} and {} against {}.",
        Kind::OursPv.title(),
        Kind::OursPvh.title(),
        Kind::LinuxPv.title()
    );
    t
}

/// The MMU table: mapping 64 MiB batched vs page by page, PV and PVH.
pub(super) fn render_mmu(rows: &[[Option<f64>; super::parse::MMU_N]]) -> String {
    let mut t = String::from(
        "\nMMU, mmtest mapping 64 MiB (16,384 pages) in the same session (no Linux counterpart):\n\n\
         | figure | ours PV | ours PVH | PV / PVH |\n|---|---|---|---|\n",
    );
    let get = |r: usize, k: usize| rows.get(r).and_then(|x| x[k]);
    let v = |r: usize, k: usize| get(r, k).map_or("-".to_string(), fmt_num);
    for (k, (_, n)) in MMU_FIGURES.iter().enumerate() {
        let ratio = match (get(0, k), get(1, k)) {
            (Some(pv), Some(pvh))
                if n.starts_with("time") && !n.contains("stolen") && pvh > 0.0 =>
            {
                format!("{:.1}x", pv / pvh)
            }
            _ => String::new(),
        };
        let _ = writeln!(t, "| {n} | {} | {} | {ratio} |", v(0, k), v(1, k));
    }
    // Built then linked, what neither the last submit nor the checks nor
    // the fill account for.
    let key = |k: &str| MMU_FIGURES.iter().position(|(f, _)| *f == k);
    let parts = [
        "fresh_build_submit_us=",
        "fresh_build_check_us=",
        "fresh_build_fill_us=",
    ];
    let rest = |r: usize| {
        let whole = get(r, key("fresh_build_us=")?)?;
        parts
            .iter()
            .try_fold(whole, |left, p| Some(left - get(r, key(p)?)?))
    };
    let ratio = match (rest(0), rest(1)) {
        (Some(pv), Some(pvh)) if pvh > 0.0 => format!("{:.1}x", pv / pvh),
        _ => String::new(),
    };
    let show = |x: Option<f64>| x.map_or("-".to_string(), fmt_num);
    let _ = writeln!(
        t,
        "| time, built then linked: the rest of ours (walks to the L2s, links and read-only entries queued, frames taken) (us) | {} | {} | {ratio} |",
        show(rest(0)),
        show(rest(1))
    );
    // Built then linked, its own time: the whole less what Xen gave to
    // others meanwhile (the ratio a session's dom0 activity cannot move).
    let own =
        |r: usize| Some(get(r, key("fresh_build_us=")?)? - get(r, key("fresh_build_stolen_us=")?)?);
    let ratio = match (own(0), own(1)) {
        (Some(pv), Some(pvh)) if pvh > 0.0 => format!("{:.1}x", pv / pvh),
        _ => String::new(),
    };
    let _ = writeln!(
        t,
        "| time, built then linked, less the stolen time (us) | {} | {} | {ratio} |",
        show(own(0)),
        show(own(1))
    );
    t
}

/// An SVG of the boot timelines: from `xl create` as dom0 sees it (first
/// console line, main, first ping reply; all three guests), and our guests'
/// own pvclock timelines from the entry point (medians over the boots).
pub(super) fn timeline_svg(
    dom0_view: &[Vec<[f64; 3]>; 3],
    inner: &[Vec<Vec<(String, f64)>>; 3],
) -> String {
    const W: f64 = 900.0;
    const LEFT: f64 = 110.0;
    const ROW: f64 = 46.0;
    let colours = [
        "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac",
    ];
    let mut body = String::new();
    let mut y = 30.0;
    let section = |title: &str,
                   rows: Vec<(String, Vec<(String, f64)>)>,
                   unit: &str,
                   y: &mut f64,
                   body: &mut String| {
        let max = rows
            .iter()
            .flat_map(|(_, m)| m.iter().map(|&(_, t)| t))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let scale = (W - LEFT - 30.0) / max;
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{title}</text>"#
        );
        *y += 14.0;
        for (label, marks) in rows {
            let _ = writeln!(body, r#"<text x="10" y="{}">{label}</text>"#, *y + 16.0);
            let mut x0 = LEFT;
            for (j, (name, t)) in marks.iter().enumerate() {
                let x1 = LEFT + t * scale;
                let c = colours[j % colours.len()];
                let _ = writeln!(
                    body,
                    r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="20" fill="{c}"><title>{name}: {} {unit}</title></rect>"#,
                    *y + 2.0,
                    (x1 - x0).max(0.5),
                    fmt_num(*t)
                );
                let _ = writeln!(
                    body,
                    r#"<text x="{x1:.1}" y="{:.1}" font-size="9" text-anchor="end">{name}</text>"#,
                    *y + 34.0 + if j % 2 == 1 { 9.0 } else { 0.0 }
                );
                x0 = x1;
            }
            if let Some((_, t)) = marks.last() {
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{:.1}" font-size="10">{} {unit}</text>"#,
                    x0 + 4.0,
                    *y + 16.0,
                    fmt_num(*t)
                );
            }
            *y += ROW;
        }
        *y += 10.0;
    };
    let rows = Kind::ALL
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let col = |c: usize| {
                spread(&dom0_view[i].iter().map(|v| v[c]).collect::<Vec<_>>()).map(|s| s.median)
            };
            let marks = [
                ("first line", col(0)),
                ("main", col(1)),
                ("first ping reply", col(2)),
            ]
            .into_iter()
            .filter_map(|(n, v)| Some((n.to_string(), v?)))
            .collect();
            (k.title().to_string(), marks)
        })
        .collect();
    section(
        "From xl create, as dom0 sees it (median, s)",
        rows,
        "s",
        &mut y,
        &mut body,
    );
    let rows = [Kind::OursPv, Kind::OursPvh]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                k.title().to_string(),
                median_timeline(&inner[i])
                    .into_iter()
                    .map(|(n, t)| (n, t / 1000.0))
                    .collect(),
            )
        })
        .collect();
    section(
        "Our guests' own timeline, pvclock from the entry point (median, ms)",
        rows,
        "ms",
        &mut y,
        &mut body,
    );
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        y + 10.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::parse::{mmu_figures, timeline};
    use crate::harness::{self, GuestRun};

    #[test]
    fn timelines_and_mmu_figures_are_read_and_charted() {
        let mut run = GuestRun {
            name: "echo-pv-1".into(),
            console: vec![
                "echo: boot timeline (us since entry): entry=0 rust=700 mm=30000 main=31000 xenstore=31500 netfront=90000 ip=90100".into(),
                "mm-bench: pages=16384 batched_hypercalls=32 naive_hypercalls=16384 batched_cycles=1 naive_cycles=2".into(),
                "mm-bench: batched_us=50000 naive_us=70000 batched_updates_per_s=327680 naive_updates_per_s=234057".into(),
            ],
            end: harness::End::Poweroff,
            t_end: None,
            diagnostics: vec![],
            events: vec![],
            stalled: false,
        };
        let t = timeline(&run);
        assert_eq!(t.len(), 7);
        assert_eq!(t[6], ("ip".to_string(), 90100.0));
        assert_eq!(
            mmu_figures(&run)[6..12],
            [
                Some(32.0),
                Some(16384.0),
                Some(50000.0),
                Some(70000.0),
                Some(327680.0),
                Some(234057.0)
            ]
        );
        let mut later = t.clone();
        later[6].1 = 100100.0;
        assert_eq!(
            median_timeline(&[t.clone(), later, t.clone()])[6].1,
            90100.0
        );
        let svg = timeline_svg(
            &[vec![[1.0, 1.5, 6.0]], vec![], vec![[2.0, 9.0, 30.0]]],
            &[vec![t], vec![], vec![]],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        for want in ["Linux PV", "first ping reply", ">netfront<", "30.0 s"] {
            assert!(svg.contains(want), "{want} missing");
        }
        let mut pvh = GuestRun::new("mmtest-pvh");
        pvh.console = vec![
            "mm-bench: fresh_build_us=5000 fresh_build_hypercalls=0 fresh_build_pte_writes=3 fresh_build_tables=32".into(),
        ];
        run.console.push("mm-bench: fresh_build_us=12000 fresh_build_hypercalls=2 fresh_build_pte_writes=66 fresh_build_tables=32 fresh_entry_us=40000".into());
        run.console.push(
            "mm-bench: fresh_build_submit_us=3000 fresh_entry_submit_us=9000 fresh_build_check_us=1000 fresh_build_fill_us=2000".into(),
        );
        pvh.console.push(
            "mm-bench: fresh_build_submit_us=30 fresh_entry_submit_us=5 fresh_build_check_us=900 fresh_build_fill_us=1800".into(),
        );
        run.console
            .push("mm-bench: plain_store_us=900 p2m_lookup_us=150".into());
        run.console
            .push("mm-bench: fresh_build_stolen_us=2000 fresh_entry_stolen_us=0".into());
        pvh.console
            .push("mm-bench: fresh_build_stolen_us=0 fresh_entry_stolen_us=0".into());
        pvh.console
            .push("mm-bench: plain_store_us=300 p2m_lookup_us=50".into());
        let t = render_mmu(&[mmu_figures(&run), mmu_figures(&pvh)]);
        assert!(
            t.contains("| hypercalls, tables exist, batched | 32.0 | - |  |"),
            "{t}"
        );
        assert!(
            t.contains("| time, new L1 tables built then linked (us) | 12000 | 5000 | 2.4x |"),
            "{t}"
        );
        assert!(
            t.contains("| time, the same 16,384 entries by plain stores into 32 frames (us) | 900.0 | 300.0 | 3.0x |"),
            "{t}"
        );
        assert!(
            t.contains("| time, built then linked: its last submit (PV: Xen validating the tables) (us) | 3000 | 30.0 | 100.0x |"),
            "{t}"
        );
        assert!(
            t.contains("| time, built then linked: the mapper's checks of the 16,384 frames before queueing (us) | 1000 | 900.0 | 1.1x |"),
            "{t}"
        );
        // 12000 - 3000 - 1000 - 2000 and 5000 - 30 - 900 - 1800.
        assert!(
            t.contains("frames taken) (us) | 6000 | 2270 | 2.6x |"),
            "{t}"
        );
        assert!(
            t.contains("| entries validated one by one, built then linked | 66.0 | 3.000 |  |"),
            "{t}"
        );
        // Stolen time: shown without a ratio, and taken off the whole.
        assert!(
            t.contains("(Xen kept the vCPU from running; not the map's) (us) | 2000 | 0.000 |  |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| time, built then linked, less the stolen time (us) | 10000 | 5000 | 2.0x |"
            ),
            "{t}"
        );
    }

    #[test]
    fn the_table_has_a_ratio_column() {
        let m = Metric {
            name: "x",
            unit: "s",
            higher_better: false,
            samples: [vec![1.0], vec![2.0, 4.0], vec![4.0]],
        };
        let t = render(&[m], 1);
        assert!(t.contains("| x (s) | 1.000 | 3.000 (2.000..4.000) | 4.000 | 0.250 | 0.750 |"));
    }
}
