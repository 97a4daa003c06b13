//! The boot figures (`cargo xtask bench --boot-only`): each boot phase's
//! time and counts (PV, PVH; 32 MiB and 1 GiB) and, for the phases that
//! lost time to other domains, their own time (`own_time_table`: less the
//! stolen time, with PV/PVH ratios), mmtest's map figures on
//! both paths for new tables, the smallest memory echo reaches
//! network-ready in (PV, PVH), `xl create` to the first ping reply split at
//! the toolstack's steps (`super::create`; echo PV/PVH against Linux PV),
//! and the image sizes (`super::sizes`). The full bench boots the same
//! hello and mmtest guests and draws the same tables (`timeline_guests`,
//! `timeline_tables`, `ladder_table`, `echo_phases`).
use std::fmt::Write as _;

use anyhow::Result;

use super::parse::mmu_figures;
use super::render::render_mmu;
use super::stats::{smallest, spread};
use crate::harness::{self, GuestRun, GuestSpec};
use crate::image::{self, Built};
use crate::manifest::Mode;
use crate::test::judge::boot::{BuildSteps, PhaseFigures, STEP_N, boot_phases, build_steps};

/// The boots whose phases are compared: (column title, mode, MiB).
const BOOTS: [(&str, Mode, u32); 4] = [
    ("PV 32 MiB", Mode::Pv, 32),
    ("PVH 32 MiB", Mode::Pvh, 32),
    ("PV 1 GiB", Mode::Pv, 1024),
    ("PVH 1 GiB", Mode::Pvh, 1024),
];

/// The memory ladder of the echo image (MiB), per mode: the smallest size
/// that reaches network-ready. Xen's PV domain builder needs 4 MiB itself.
const LADDER: [(Mode, &[u32]); 2] = [(Mode::Pv, &[3, 4, 5]), (Mode::Pvh, &[1, 2, 3, 4])];

/// dom0's part of a create-to-ping boot once the guest is network-ready:
/// a ping answered (up to 10 s), then `xl shutdown`.
const CREATE_DOM0: &str = "for _ in $(seq 50); do ping -c 1 -W 0.2 10.0.0.2 >/dev/null 2>&1 && break; done\nsleep 0.5\ntimeout -k 5 30 xl shutdown \"$NAME\"\n";

/// The per-phase table: for each column's boots, each phase's median time,
/// its (exact, from the first boot) counts and its median stolen time, as
/// `us (hypercalls / entries / tables / xenstore; stolen us)`.
pub(super) fn phase_table(columns: &[(&str, Vec<Vec<PhaseFigures>>)]) -> String {
    let names = phase_names(columns);
    let mut t = String::from(
        "\nBoot timeline per phase: median us (hypercalls / page-table entries written / tables made / xenstore round trips; median us Xen kept the vCPU from running, stolen):\n\n| phase |",
    );
    for (title, boots) in columns {
        let _ = write!(t, " {title} ({} boots) |", boots.len());
    }
    t.push_str("\n|---|");
    t.push_str(&"---|".repeat(columns.len()));
    t.push('\n');
    for n in &names {
        let _ = write!(t, "| {n} |");
        for (_, boots) in columns {
            let us: Vec<f64> = phase_of(boots, n)
                .filter_map(|p| Some(p.1? as f64))
                .collect();
            let stolen: Vec<f64> = phase_of(boots, n).map(|p| p.2[4] as f64).collect();
            let counts = phase_of(boots, n).next().map(|p| p.2);
            match (spread(&us), counts, spread(&stolen)) {
                (Some(s), Some(c), Some(st)) => {
                    let _ = write!(
                        t,
                        " {:.0} ({} / {} / {} / {}; {:.0}) |",
                        s.median, c[0], c[1], c[2], c[3], st.median
                    );
                }
                _ => t.push_str(" - |"),
            }
        }
        t.push('\n');
    }
    t
}

/// Each boot's phase `name` (a boot without it is left out).
fn phase_of<'a>(
    boots: &'a [Vec<PhaseFigures>],
    name: &'a str,
) -> impl Iterator<Item = &'a PhaseFigures> + 'a {
    boots
        .iter()
        .filter_map(move |b| b.iter().find(|p| p.0 == name))
}

/// The phases that lost time to other domains, each with its own time:
/// per column the median over its boots of the phase's time less its
/// stolen time (`total` always), and for each `(a, b, title)` of `pairs`
/// the ratio of column `a`'s median to column `b`'s — PV's own time
/// against PVH's, what the wall-clock ratio mixes with dom0's share of
/// our CPU.
pub(super) fn own_time_table(
    columns: &[(&str, Vec<Vec<PhaseFigures>>)],
    pairs: &[(usize, usize, &str)],
) -> String {
    let own = |boots: &[Vec<PhaseFigures>], n: &str| {
        let v: Vec<f64> = phase_of(boots, n)
            .filter_map(|p| Some(p.1?.saturating_sub(p.2[4]) as f64))
            .collect();
        spread(&v).map(|s| s.median)
    };
    let mut t = String::from(
        "\nThe phases that lost time to other domains, less that stolen time (median us of each boot's time less its stolen time; `total` always):\n\n| phase |",
    );
    for (title, _) in columns {
        let _ = write!(t, " {title} |");
    }
    for (_, _, title) in pairs {
        let _ = write!(t, " {title} |");
    }
    t.push_str("\n|---|");
    t.push_str(&"---|".repeat(columns.len() + pairs.len()));
    t.push('\n');
    for n in phase_names(columns) {
        let stole = columns
            .iter()
            .any(|(_, boots)| phase_of(boots, &n).any(|p| p.2[4] > 0));
        if !stole && n != "total" {
            continue;
        }
        let meds: Vec<Option<f64>> = columns.iter().map(|(_, b)| own(b, &n)).collect();
        let _ = write!(t, "| {n} |");
        for m in &meds {
            match m {
                Some(v) => {
                    let _ = write!(t, " {v:.0} |");
                }
                None => t.push_str(" - |"),
            }
        }
        for &(a, b, _) in pairs {
            match (
                meds.get(a).copied().flatten(),
                meds.get(b).copied().flatten(),
            ) {
                (Some(x), Some(y)) if y > 0.0 => {
                    let _ = write!(t, " {:.1}x |", x / y);
                }
                _ => t.push_str(" - |"),
            }
        }
        t.push('\n');
    }
    t
}

/// The phases of all boots of all columns, in the order first seen,
/// `total` last.
fn phase_names(columns: &[(&str, Vec<Vec<PhaseFigures>>)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, boots) in columns {
        for b in boots {
            for (n, _, _) in b {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
    }
    // `total` last, whatever order the boots listed the phases in.
    if let Some(i) = names.iter().position(|n| n == "total") {
        let t = names.remove(i);
        names.push(t);
    }
    names
}

/// Each mmtest figure's median over `runs` (a figure no run reported
/// stays absent).
fn mmu_medians(runs: &[&[Option<f64>; super::parse::MMU_N]]) -> [Option<f64>; super::parse::MMU_N] {
    core::array::from_fn(|k| {
        let v: Vec<f64> = runs.iter().filter_map(|r| r[k]).collect();
        spread(&v).map(|s| s.median)
    })
}

/// hello booted `reps` times per [`BOOTS`] column, then mmtest `reps`
/// times each way (PV and PVH in turn: one run is one sample of a session
/// whose Xen and TCG speeds drift) — in the order [`timeline_tables`]
/// reads their runs.
pub(super) fn timeline_guests(hello: &Built, mmtest: &Built, reps: u32) -> Vec<GuestSpec> {
    let mut guests = Vec::new();
    for r in 1..=reps {
        for (i, &(_, mode, mib)) in BOOTS.iter().enumerate() {
            guests.push(GuestSpec::new(
                &format!("boot-{i}-{r}"),
                &hello.elf,
                mode,
                mib,
                60,
            ));
        }
    }
    for r in 1..=reps {
        for (name, mode) in [("mmtest-pv", Mode::Pv), ("mmtest-pvh", Mode::Pvh)] {
            guests.push(GuestSpec::new(
                &format!("{name}-{r}"),
                &mmtest.elf,
                mode,
                128,
                180,
            ));
        }
    }
    guests
}

/// The tables of [`timeline_guests`]' runs (`guests` and `runs` are just
/// those): hello's boot timeline per phase (median times, exact counts)
/// and mmtest's figures (medians).
pub(super) fn timeline_tables(
    guests: &[GuestSpec],
    runs: &[GuestRun],
    reps: u32,
    failures: &mut Vec<String>,
) -> String {
    let mm_at = BOOTS.len() * reps as usize;
    let columns: Vec<(&str, Vec<Vec<PhaseFigures>>)> = BOOTS
        .iter()
        .enumerate()
        .map(|(i, &(title, _, _))| {
            let boots = guests[..mm_at]
                .iter()
                .zip(runs)
                .filter(|(g, _)| g.name.starts_with(&format!("boot-{i}-")))
                .filter_map(|(g, r)| {
                    let p = boot_phases(&r.console);
                    if p.is_none() {
                        failures.push(format!("{}: ended {}; no boot timeline", g.name, r.end));
                    }
                    p
                })
                .collect();
            (title, boots)
        })
        .collect();
    let mut table = String::from("\nhello's boot:\n");
    table.push_str(&phase_table(&columns));
    table.push_str(&own_time_table(
        &columns,
        &[(0, 1, "PV / PVH 32 MiB"), (2, 3, "PV / PVH 1 GiB")],
    ));
    let mm: Vec<[Option<f64>; super::parse::MMU_N]> =
        runs[mm_at..guests.len()].iter().map(mmu_figures).collect();
    // PV's runs are the even ones, PVH's the odd ones.
    let mmu = [0, 1].map(|mode| {
        let runs: Vec<&[Option<f64>; super::parse::MMU_N]> =
            mm.iter().skip(mode).step_by(2).collect();
        mmu_medians(&runs)
    });
    let _ = write!(
        table,
        "\n(mmtest: the medians of {reps} runs each way; the ratios are of the medians.)\n"
    );
    table.push_str(&render_mmu(&mmu));
    let steps = [0, 1].map(|mode| {
        runs[mm_at..guests.len()]
            .iter()
            .skip(mode)
            .step_by(2)
            .filter_map(build_steps)
            .collect::<Vec<_>>()
    });
    table.push_str(&steps_table(&steps));
    table
}

/// The table of [`build_steps`]: per step, PV's and PVH's medians.
fn steps_table(modes: &[Vec<BuildSteps>; 2]) -> String {
    let mut t = String::from(
        "
The boot's address space step by step (mmtest's boot, 128 MiB; medians): time in us (Xen's part: the backend's submits; the fill of new tables; stolen: Xen kept the vCPU from running; hypercalls / entries sent one by one / entries filled / tables made / tables released):\n\n\
         | step | ours PV | ours PVH |\n|---|---|---|\n",
    );
    let names: Vec<&str> = modes
        .iter()
        .flat_map(|m| m.first())
        .flat_map(|r| r.iter().map(|(n, _)| n.as_str()))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    for name in names {
        let cell = |runs: &Vec<BuildSteps>| {
            let med: Vec<Option<f64>> = (0..STEP_N)
                .map(|k| {
                    let v: Vec<f64> = runs
                        .iter()
                        .filter_map(|r| r.iter().find(|(n, _)| n == name).map(|(_, x)| x[k]))
                        .collect();
                    spread(&v).map(|s| s.median)
                })
                .collect();
            match med[..] {
                [
                    Some(us),
                    _,
                    Some(fill),
                    Some(submit),
                    Some(h),
                    Some(p),
                    Some(f),
                    Some(m),
                    Some(r),
                    Some(st),
                ] => {
                    format!(
                        "{us:.0} (Xen {submit:.0}, fill {fill:.0}, stolen {st:.0}; {h:.0} / {p:.0} / {f:.0} / {m:.0} / {r:.0})"
                    )
                }
                _ => "-".to_string(),
            }
        };
        let _ = writeln!(t, "| {name} | {} | {} |", cell(&modes[0]), cell(&modes[1]));
    }
    t
}

/// The ladder table: per row (a title; each size in MiB and whether the
/// guest reached network-ready with it), the sizes tried and the smallest
/// that made it.
pub(super) fn ladder_table(rows: &[(String, Vec<(u32, bool)>)]) -> String {
    let mut t = String::from(
        "\nSmallest memory to network-ready (ladder search):\n\n| guest | ladder (MiB: reached?) | smallest MiB |\n|---|---|---|\n",
    );
    for (title, seen) in rows {
        let ladder: Vec<String> = seen
            .iter()
            .map(|(m, ok)| format!("{m}: {}", if *ok { "yes" } else { "no" }))
            .collect();
        let _ = writeln!(
            t,
            "| {title} | {} | {} |",
            ladder.join(", "),
            smallest(seen).map_or("-".into(), |m| m.to_string())
        );
    }
    t
}

/// Whether a run reached network-ready.
pub(super) fn net_ready(run: &GuestRun) -> bool {
    run.console
        .iter()
        .any(|l| l.starts_with("harness: net-ready"))
}

/// Echo's own per-phase report (its `echo: boot: timeline` line: the boot,
/// then `main` to the address: xenstore, the vif handshake's marks, ip).
pub(super) fn echo_phases(run: &GuestRun) -> Option<Vec<PhaseFigures>> {
    let lines: Vec<String> = run
        .console
        .iter()
        .filter_map(|l| l.strip_prefix("echo: ").map(str::to_string))
        .collect();
    boot_phases(&lines)
}

/// The caption of the table of [`echo_phases`].
pub(super) const NET_PHASES: &str = "\nEcho's network bring-up, the same report (from `main`: xenstore connected, the device's and backend's keys read, our grants, backend connected, address configured):\n";

/// `cargo xtask bench --boot-only`.
pub fn run(reps: u32) -> Result<()> {
    println!("== building the hello, echo and mmtest images");
    let hello = image::build_app_as("hello", None, "hello")?;
    let echo = image::build_app_as("echo", None, "echo")?;
    let mmtest = image::build_app_as("mmtest", None, "mmtest")?;
    let sizes = super::sizes::table(&[("hello", &hello, 100), ("echo", &echo, 200)])?;
    println!("{sizes}");
    println!("\n== building bench-echo (the Linux domU's echo server, static)");
    let server = super::linux::build_bench_echo()?;
    println!("\n== provisioning the Xen harness");
    let a = harness::provision()?;
    let linux_initrd = super::linux::linux_initrd(&a.linux_initrd, &server)?;
    let mut guests = timeline_guests(&hello, &mmtest, reps);
    let ladder_at = guests.len();
    let mut steps = Vec::new();
    for (mode, sizes) in LADDER {
        for &mib in sizes {
            let mut g = GuestSpec::new(
                &format!("min-{}-{mib}", mode.xl_type()),
                &echo.elf,
                mode,
                mib,
                90,
            );
            g.cmdline = super::OUR_CMDLINE.into();
            g.vif = Some(super::VIF.into());
            g.dom0 = Some("timeout -k 5 30 xl shutdown \"$NAME\"\n".into());
            g.cpus = Some(harness::GUEST_CPUS.into());
            guests.push(g);
            steps.push((mode, mib));
        }
    }
    // `xl create` to the first ping reply, split at the toolstack's steps:
    // echo PV and PVH and Linux PV as in the full bench, shut down once a
    // ping was answered (the early script's own loop has its reply by then).
    let create_at = guests.len();
    let images = super::Images {
        echo: &echo.elf,
        linux_kernel: &a.linux_kernel,
        linux_initrd: &linux_initrd,
    };
    let mut kinds = Vec::new();
    for r in 1..=reps {
        for k in super::Kind::ALL {
            guests.push(super::guest_spec(
                &images,
                k,
                format!("create-{}-{r}", k.tag()),
                k.timed_mib(),
                CREATE_DOM0,
                true,
                240,
            ));
            kinds.push(k);
        }
    }
    println!(
        "\n== {} guests in one harness session: hello booted {reps} times each as PV and PVH with 32 MiB and 1 GiB, mmtest {reps} times each as PV and PVH, echo on the memory ladder, echo PV/PVH and Linux PV from xl create to the first ping reply",
        guests.len()
    );
    let mut show = |t: f64, l: &str| println!("  [{t:7.2}] {l}");
    let runs = harness::run_domus_retrying(&a, "bench-boot", &guests, 3, &mut show)?;
    let mut failures = Vec::new();
    let mut table = timeline_tables(&guests[..ladder_at], &runs, reps, &mut failures);
    let rows: Vec<(String, Vec<(u32, bool)>)> = LADDER
        .iter()
        .map(|&(mode, _)| {
            let seen = steps
                .iter()
                .zip(&runs[ladder_at..])
                .filter(|((m, _), _)| *m == mode)
                .map(|(&(_, mib), r)| (mib, net_ready(r)))
                .collect();
            (format!("echo {}", mode.xl_type()), seen)
        })
        .collect();
    table.push_str(&ladder_table(&rows));
    // The network phases: echo's own per-phase report from the largest
    // step of each mode's ladder.
    let net_columns: Vec<(String, Vec<Vec<PhaseFigures>>)> = LADDER
        .iter()
        .filter_map(|(mode, sizes)| {
            let mib = *sizes.last()?;
            let at = steps.iter().position(|&(m, s)| m == *mode && s == mib)?;
            let p = echo_phases(&runs[ladder_at + at])?;
            Some((format!("echo {} {mib} MiB", mode.xl_type()), vec![p]))
        })
        .collect();
    let net: Vec<(&str, Vec<Vec<PhaseFigures>>)> = net_columns
        .iter()
        .map(|(t, b)| (t.as_str(), b.clone()))
        .collect();
    table.push_str(NET_PHASES);
    table.push_str(&phase_table(&net));
    table.push_str(&own_time_table(&net, &[(0, 1, "PV / PVH")]));
    let boots: Vec<(super::Kind, &harness::GuestRun)> =
        kinds.iter().copied().zip(&runs[create_at..]).collect();
    table.push_str(&super::create::table(&boots, reps, &mut failures));
    table.push_str(&sizes);
    let dir = image::root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("boot.md");
    std::fs::write(&path, &table)?;
    println!("\n{table}\n(written to {})", path.display());
    for f in &failures {
        println!("warning: {f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmtest_figures_are_the_medians_of_the_runs() {
        let mut a = [None; super::super::parse::MMU_N];
        let mut b = a;
        let mut c = a;
        a[0] = Some(7000.0);
        b[0] = Some(4000.0);
        c[0] = Some(12000.0);
        a[1] = Some(1.0);
        let m = mmu_medians(&[&a, &b, &c]);
        assert_eq!(m[0], Some(7000.0));
        assert_eq!(m[1], Some(1.0), "one run's figure is its median");
        assert_eq!(m[2], None);
    }

    #[test]
    fn the_builds_steps_are_read_and_their_medians_shown() {
        let run = |line: &str| {
            let mut r = GuestRun::new("mmtest-pv-1");
            r.console = vec!["mm-boot: build_us=1".into(), line.into()];
            r
        };
        let head = "mm-boot-steps: step=us/check-us/fill-us/submit-us/hypercalls/ptes-sent/entries-filled/tables-made/tables-released/stolen-us";
        let a = run(&format!(
            "{head} adopt=400/0/0/0/0/0/0/0/0/0 rest=40000/0/4000/24000/2/124/31744/62/0/100"
        ));
        let b = run(&format!(
            "{head} adopt=300/0/0/0/0/0/0/0/0/0 rest=50000/0/6000/26000/2/124/31744/62/0/12100"
        ));
        let steps = build_steps(&a).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].0, "rest");
        assert_eq!(steps[1].1[3], 24000.0);
        // A step with a number missing, or none of the line: nothing read.
        assert_eq!(build_steps(&run(&format!("{head} adopt=1/2"))), None);
        assert_eq!(build_steps(&GuestRun::new("x")), None);
        let t = steps_table(&[vec![steps, build_steps(&b).unwrap()], Vec::new()]);
        assert!(
            t.contains(
                "| rest | 45000 (Xen 25000, fill 5000, stolen 6100; 2 / 124 / 31744 / 62 / 0) | - |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| adopt | 350 (Xen 0, fill 0, stolen 0; 0 / 0 / 0 / 0 / 0) | - |"),
            "{t}"
        );
    }

    #[test]
    fn the_ladder_table_names_each_step_and_the_smallest() {
        let t = ladder_table(&[
            ("ours PVH".into(), vec![(1, false), (2, true), (3, true)]),
            ("Linux PV".into(), vec![(24, false), (32, false)]),
        ]);
        assert!(
            t.contains("| ours PVH | 1: no, 2: yes, 3: yes | 2 |"),
            "{t}"
        );
        assert!(t.contains("| Linux PV | 24: no, 32: no | - |"), "{t}");
    }

    #[test]
    fn the_phase_table_has_medians_and_counts_per_column() {
        let boot = |space_us: u64| -> Vec<PhaseFigures> {
            vec![
                (
                    "space".into(),
                    Some(space_us),
                    [7, 8230, 19, 0, space_us / 100],
                ),
                (
                    "total".into(),
                    Some(space_us + 100),
                    [12, 8230, 19, 0, space_us / 100],
                ),
            ]
        };
        let t = phase_table(&[
            ("PV 32 MiB", vec![boot(900), boot(1000), boot(5000)]),
            ("PVH 32 MiB", vec![]),
        ]);
        assert!(
            t.contains("| PV 32 MiB (3 boots) | PVH 32 MiB (0 boots) |"),
            "{t}"
        );
        assert!(
            t.contains("| space | 1000 (7 / 8230 / 19 / 0; 10) | - |"),
            "{t}"
        );
        assert!(
            t.contains("| total | 1100 (12 / 8230 / 19 / 0; 10) | - |"),
            "{t}"
        );
    }

    #[test]
    fn the_own_time_table_takes_each_boots_stolen_time_out_before_the_median() {
        let boot = |space_us: u64, stolen: u64| -> Vec<PhaseFigures> {
            vec![
                ("console".into(), Some(100), [0, 0, 0, 0, 0]),
                ("space".into(), Some(space_us), [7, 8230, 19, 0, stolen]),
                (
                    "total".into(),
                    Some(space_us + 100),
                    [12, 8230, 19, 0, stolen],
                ),
            ]
        };
        let t = own_time_table(
            &[
                // Own times 1000, 1100, 900: median 1000 (the wall
                // clock's median would be 3000).
                (
                    "PV",
                    vec![boot(1000, 0), boot(3000, 1900), boot(5000, 4100)],
                ),
                ("PVH", vec![boot(500, 0), boot(400, 0)]),
                ("none", vec![]),
            ],
            &[(0, 1, "PV / PVH"), (0, 2, "PV / none")],
        );
        assert!(
            t.contains("| phase | PV | PVH | none | PV / PVH | PV / none |"),
            "{t}"
        );
        assert!(t.contains("| space | 1000 | 450 | - | 2.2x | - |"), "{t}");
        assert!(t.contains("| total | 1100 | 550 | - | 2.0x | - |"), "{t}");
        // A phase no boot lost time in is left out.
        assert!(!t.contains("| console |"), "{t}");
        // Stolen time past the phase's own (rounding) counts as none left.
        let t = own_time_table(&[("PV", vec![boot(10, 11)])], &[]);
        assert!(t.contains("| space | 0 |"), "{t}");
    }
}
