//! `cargo xtask bench`: our echo image (as PV and as PVH domU) and a Linux PV
//! domU (Debian's kernel as shipped, a busybox initramfs serving the same
//! echo and discard ports) measured side by side in one harness session,
//! each guest booted `reps` times, then booted once per size on a memory
//! ladder (smallest memory to network-ready), then hello's boot timeline
//! per phase and mmtest's MMU figures (`boot`), save/restore and migration,
//! storage and the HTTP and TCP rows (`storage`, `apps`), and the image
//! sizes: markdown tables with ratios to Linux and an SVG of the boot
//! timelines.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

mod apps;
pub(crate) mod boot;
mod create;
mod linux;
pub(crate) use linux::{build_bench_echo, linux_initrd};
mod parse;
mod render;
pub mod sizes;
mod stats;
mod storage;

use self::parse::{figures, guest_suspend_ms, lifecycle_figures, timeline};
use self::render::{render, timeline_svg};
use self::stats::smallest;

use crate::harness::{self, GuestSpec};
use crate::image;
use crate::manifest::Mode;
use crate::test::judge::boot::PhaseFigures;

/// dom0's side of a timed boot (`scripts/dom0/bench/`): `early` starts with
/// `xl create` and times the boot, `net` measures once the guest is ready.
const EARLY: &str = include_str!("../../../scripts/dom0/bench/early.sh");
const NET: &str = include_str!("../../../scripts/dom0/bench/net.sh");
/// Save/restore and migration figures, once the guest is ready.
const LIFECYCLE: &str = include_str!("../../../scripts/dom0/bench/lifecycle.sh");

/// dom0's side of the guests' vif (the echo guests' MAC and address).
const VIF: &str = "bridge=xenbr0,mac=00:16:3e:00:00:02";
const OUR_CMDLINE: &str = "ip=10.0.0.2/24 gw=10.0.0.1";
const OUR_MIB: u32 = 32;

/// The guests compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    OursPv,
    OursPvh,
    LinuxPv,
}

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::OursPv, Kind::OursPvh, Kind::LinuxPv];
    pub(super) fn tag(self) -> &'static str {
        match self {
            Kind::OursPv => "echo-pv",
            Kind::OursPvh => "echo-pvh",
            Kind::LinuxPv => "linux-pv",
        }
    }
    /// The domain's memory in the timed boots (MiB).
    pub(super) fn timed_mib(self) -> u32 {
        if self == Kind::LinuxPv {
            linux::MIB
        } else {
            OUR_MIB
        }
    }
    pub(super) fn title(self) -> &'static str {
        match self {
            Kind::OursPv => "ours PV",
            Kind::OursPvh => "ours PVH",
            Kind::LinuxPv => "Linux PV",
        }
    }
}

/// One figure, each guest kind's samples.
pub(super) struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    /// Larger is better (throughput) rather than smaller (times, sizes).
    pub higher_better: bool,
    pub samples: [Vec<f64>; 3],
}

/// What the compared guests boot: our echo image, Linux's kernel and
/// initramfs (with bench-echo).
pub(super) struct Images<'a> {
    pub echo: &'a PathBuf,
    pub linux_kernel: &'a PathBuf,
    pub linux_initrd: &'a PathBuf,
}

/// A guest of kind `k` on the bench's vif: our echo (PV or PVH) or Linux
/// PV, `memory` MiB, `dom0` run once it is network-ready, the early
/// script (`xl create` to the first ping reply, and the toolstack's steps)
/// if `early`.
pub(super) fn guest_spec(
    images: &Images<'_>,
    k: Kind,
    name: String,
    memory: u32,
    dom0: &str,
    early: bool,
    timeout: u32,
) -> GuestSpec {
    let linux = k == Kind::LinuxPv;
    GuestSpec {
        name,
        elf: if linux {
            images.linux_kernel.clone()
        } else {
            images.echo.clone()
        },
        mode: if k == Kind::OursPvh {
            Mode::Pvh
        } else {
            Mode::Pv
        },
        memory,
        cmdline: (if linux { linux::CMDLINE } else { OUR_CMDLINE }).into(),
        timeout,
        dump_at: None,
        input: vec![],
        vif: Some(VIF.into()),
        dom0: Some(dom0.into()),
        early: early.then(|| EARLY.into()),
        disks: vec![],
        before: None,
        after: None,
        ramdisk: linux.then(|| images.linux_initrd.clone()),
        peer: false,
        tools: vec![],
        libvirt: false,
        cpus: Some(harness::GUEST_CPUS.into()),
    }
}

/// The memory ladder: domain sizes (MiB) each guest is booted with to find
/// the smallest that reaches network-ready.
const LADDER_OURS: [u32; 6] = [2, 3, 4, 5, 6, 8];

/// Runs the benchmark: `reps` boots of each guest in one harness session
/// (with `storage_only`, just the storage rows; with `app_only`, just the
/// HTTP and TCP guest -> dom0 rows).
pub fn run(reps: u32, storage_only: bool, app_only: bool) -> Result<()> {
    if reps == 0 {
        bail!("--reps must be at least 1");
    }
    println!("== building the hello, echo, httpd, mmtest and blktest images");
    let hello = image::build_app_as("hello", None, "hello")?;
    let echo = image::build_app_as("echo", None, "echo")?;
    let httpd = image::build_app_as("httpd", None, "httpd")?;
    let mmtest = image::build_app_as("mmtest", None, "mmtest")?;
    let blktest = image::build_app_as("blktest", None, "blktest")?;
    println!("\n== building bench-echo (the Linux domU's echo server, static)");
    let server = linux::build_bench_echo()?;
    println!("\n== provisioning the Xen harness");
    let a = harness::provision()?;
    let linux_initrd = linux::linux_initrd(&a.linux_initrd, &server)?;
    let disks = storage::guests(reps, &blktest.elf, &a.linux_kernel, &linux_initrd);
    let app_guests = apps::guests(
        reps,
        &apps::Inputs {
            httpd: &httpd.elf,
            echo: &echo.elf,
            linux_kernel: &a.linux_kernel,
            linux_initrd: &linux_initrd,
            bench_echo: server.clone(),
        },
    );
    if app_only {
        println!(
            "\n== {} HTTP and TCP guests in one harness session",
            app_guests.len()
        );
        let mut show = |t: f64, l: &str| println!("  [{t:7.2}] {l}");
        let runs = harness::run_domus_retrying(&a, "bench", &app_guests, 3, &mut show)?;
        let mut failures = Vec::new();
        println!("{}", apps::table(&app_guests, &runs, reps, &mut failures));
        for f in &failures {
            println!("warning: {f}");
        }
        return Ok(());
    }
    if storage_only {
        println!("\n== {} storage guests in one harness session", disks.len());
        let mut show = |t: f64, l: &str| println!("  [{t:7.2}] {l}");
        let runs = harness::run_domus_retrying(&a, "bench", &disks, 3, &mut show)?;
        let mut failures = Vec::new();
        println!("{}", storage::table(&disks, &runs, reps, &mut failures));
        for f in &failures {
            println!("warning: {f}");
        }
        return Ok(());
    }
    let images = Images {
        echo: &echo.elf,
        linux_kernel: &a.linux_kernel,
        linux_initrd: &linux_initrd,
    };
    let spec = |k: Kind, name: String, memory: u32, dom0: &str, early: bool, timeout: u32| {
        guest_spec(&images, k, name, memory, dom0, early, timeout)
    };
    let mut guests = Vec::new();
    for r in 1..=reps {
        for k in Kind::ALL {
            let mib = k.timed_mib();
            guests.push(spec(k, format!("{}-{r}", k.tag()), mib, NET, true, 240));
        }
    }
    let timed = guests.len();
    // The memory ladder: up to network-ready, then shut down.
    let mut ladder = Vec::new();
    for k in Kind::ALL {
        let (steps, timeout): (&[u32], u32) = if k == Kind::LinuxPv {
            (&linux::LADDER, 150)
        } else {
            (&LADDER_OURS, 90)
        };
        for &mib in steps {
            ladder.push((k, mib));
            let dom0 = "timeout -k 5 30 xl shutdown \"$NAME\"\n";
            guests.push(spec(
                k,
                format!("min-{}-{mib}", k.tag()),
                mib,
                dom0,
                false,
                timeout,
            ));
        }
    }
    // hello's boot timeline (PV and PVH, 32 MiB and 1 GiB) and the MMU
    // figures (mmtest as PV and PVH; no Linux counterpart), `reps` runs
    // each, as `--boot-only` has them: every figure of the README's
    // Performance section comes from this one session.
    let timeline_at = guests.len();
    guests.extend(boot::timeline_guests(&hello, &mmtest, reps));
    // Save/restore and migration: every guest with the Linux domU's memory
    // (a save file's size is compared for the same memory).
    let lifecycle_at = guests.len();
    for r in 1..=reps {
        for k in Kind::ALL {
            guests.push(spec(
                k,
                format!("life-{}-{r}", k.tag()),
                linux::MIB,
                LIFECYCLE,
                false,
                600,
            ));
        }
    }
    let storage_at = guests.len();
    guests.extend(disks);
    let apps_at = guests.len();
    guests.extend(app_guests);
    println!(
        "\n== {} guests in one harness session: {reps} timed boots of each (ours as PV and PVH, Linux PV), \
         {} on the memory ladder, hello {reps} times each as PV and PVH with 32 MiB and 1 GiB, \
         mmtest {reps} times each as PV and PVH, {reps} save/restore and migration runs of each, \
         {reps} storage runs of each, {reps} HTTP and TCP guest -> dom0 runs of each",
        guests.len(),
        ladder.len()
    );
    let mut show = |t: f64, l: &str| println!("  [{t:7.2}] {l}");
    let runs = harness::run_domus_retrying(&a, "bench", &guests, 3, &mut show)?;

    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len() as f64);
    let linux_size = size(&a.linux_kernel)? + size(&linux_initrd)?;
    let mut metrics = [
        ("image size", "bytes", false),
        (
            "smallest memory to network-ready (ladder search)",
            "MiB",
            false,
        ),
        ("memory (domain, timed boots)", "MiB", false),
        ("memory in use at network-ready", "KiB", false),
        ("xl create -> first console line", "s", false),
        ("xl create -> main (Linux: /init)", "s", false),
        ("xl create -> first ping reply", "s", false),
        ("ping RTT median (100 pings)", "ms", false),
        ("ping RTT p99 (100 pings)", "ms", false),
        ("UDP echo rate (one at a time)", "/s", true),
        ("TCP dom0 -> guest, 64 MiB", "MB/s", true),
        // Ours only (echo's `stats` around the pings, `NetInfo::turnaround`):
        // how much of a ping's round trip the guest itself spends.
        (
            "our guest's share of a ping: wake-up -> reply sent, p99 (bucket bound)",
            "us",
            false,
        ),
        (
            "our guest's share of a ping: wake-up -> reply sent, max",
            "us",
            false,
        ),
    ]
    .map(|(name, unit, higher_better)| Metric {
        name,
        unit,
        higher_better,
        samples: [vec![], vec![], vec![]],
    });
    let mut failures = Vec::new();
    for (i, k) in Kind::ALL.iter().enumerate() {
        let linux = *k == Kind::LinuxPv;
        metrics[0].samples[i].push(if linux { linux_size } else { echo.size as f64 });
        metrics[2].samples[i].push(f64::from(k.timed_mib()));
        let steps: Vec<(u32, bool)> = ladder
            .iter()
            .zip(&runs[timed..])
            .filter(|((lk, _), _)| lk == k)
            .map(|(&(_, mib), run)| {
                (
                    mib,
                    run.console
                        .iter()
                        .any(|l| l.starts_with("harness: net-ready")),
                )
            })
            .collect();
        match smallest(&steps) {
            Some(mib) => metrics[1].samples[i].push(f64::from(mib)),
            None => failures.push(format!(
                "{}: no smallest memory on the ladder {steps:?}",
                k.title()
            )),
        }
    }
    let mut timelines: [Vec<Vec<(String, f64)>>; 3] = [vec![], vec![], vec![]];
    let mut dom0_view: [Vec<[f64; 3]>; 3] = [vec![], vec![], vec![]];
    for (g, run) in guests[..timed].iter().zip(&runs) {
        let i = (g.name.rsplit_once('-').map(|(k, _)| k))
            .and_then(|k| Kind::ALL.iter().position(|x| x.tag() == k))
            .context("bench guest name")?;
        let f = figures(run);
        if f.iter().any(Option::is_none) {
            failures.push(format!(
                "{}: ended {}; some figures missing {:?}",
                g.name, run.end, f
            ));
        }
        for (slot, v) in [
            (3, f[5]),
            (4, f[6]),
            (5, f[7]),
            (6, f[0]),
            (7, f[1]),
            (8, f[2]),
            (9, f[3]),
            (10, f[4]),
        ] {
            if let Some(v) = v {
                metrics[slot].samples[i].push(v);
            }
        }
        let share = run
            .events
            .iter()
            .find_map(|e| e.strip_prefix("dom0| guest-ping: wake->send "));
        for (slot, key) in [(11, "p99 <="), (12, "max")] {
            if let Some(v) = share.and_then(|l| parse::number_after(l, key)) {
                metrics[slot].samples[i].push(v);
            }
        }
        if let (Some(a), Some(b), Some(c)) = (f[6], f[7], f[0]) {
            dom0_view[i].push([a, b, c]);
        }
        let t = timeline(run);
        if !t.is_empty() {
            timelines[i].push(t);
        }
    }
    let mut table = render(&metrics, reps);
    let boots: Vec<(Kind, &harness::GuestRun)> = guests[..timed]
        .iter()
        .zip(&runs)
        .filter_map(|(g, r)| {
            let tag = g.name.rsplit_once('-')?.0;
            Some((*Kind::ALL.iter().find(|k| k.tag() == tag)?, r))
        })
        .collect();
    table.push_str(&create::table(&boots, reps, &mut failures));
    // The ladder in full, and echo's own per-phase report of its network
    // bring-up (the timed boots, 32 MiB).
    let rows: Vec<(String, Vec<(u32, bool)>)> = Kind::ALL
        .iter()
        .map(|k| {
            let seen = ladder
                .iter()
                .zip(&runs[timed..])
                .filter(|((lk, _), _)| lk == k)
                .map(|(&(_, mib), r)| (mib, boot::net_ready(r)))
                .collect();
            (k.title().to_string(), seen)
        })
        .collect();
    table.push_str(&boot::ladder_table(&rows));
    let net: Vec<(&str, Vec<Vec<PhaseFigures>>)> = [Kind::OursPv, Kind::OursPvh]
        .iter()
        .map(|&k| {
            let boots = guests[..timed]
                .iter()
                .zip(&runs)
                .filter(|(g, _)| g.name.rsplit_once('-').map(|(t, _)| t) == Some(k.tag()))
                .filter_map(|(_, r)| boot::echo_phases(r))
                .collect();
            (k.title(), boots)
        })
        .collect();
    table.push_str(boot::NET_PHASES);
    table.push_str(&boot::phase_table(&net));
    table.push_str(&boot::own_time_table(&net, &[(0, 1, "PV / PVH")]));
    table.push_str(&boot::timeline_tables(
        &guests[timeline_at..lifecycle_at],
        &runs[timeline_at..lifecycle_at],
        reps,
        &mut failures,
    ));
    table.push_str(&lifecycle_table(
        &guests[lifecycle_at..storage_at],
        &runs[lifecycle_at..storage_at],
        reps,
        &mut failures,
    )?);
    table.push_str(&storage::table(
        &guests[storage_at..apps_at],
        &runs[storage_at..apps_at],
        reps,
        &mut failures,
    ));
    table.push_str(&apps::table(
        &guests[apps_at..],
        &runs[apps_at..],
        reps,
        &mut failures,
    ));
    table.push_str(&sizes::table(&[
        ("hello", &hello, 100),
        ("echo", &echo, 200),
    ])?);
    let svg = timeline_svg(&dom0_view, &timelines);
    let dir = image::root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.md");
    std::fs::write(&path, &table)?;
    std::fs::write(dir.join("boot-timeline.svg"), svg)?;
    println!("\n{table}");
    println!(
        "(written to {} and the boot timelines to {})",
        path.display(),
        dir.join("boot-timeline.svg").display()
    );
    for f in &failures {
        println!("warning: {f}");
    }
    Ok(())
}

/// The save/restore and migration table: each guest kind's figures, ratios
/// to Linux.
fn lifecycle_table(
    guests: &[GuestSpec],
    runs: &[harness::GuestRun],
    reps: u32,
    failures: &mut Vec<String>,
) -> Result<String> {
    let mut metrics = [
        ("migration downtime, gap in a 10 ms ping stream", "ms"),
        ("migration downtime, gap in a 10 ms TCP echo stream", "ms"),
        ("xl migrate (to the same host), start to end", "s"),
        ("xl save file", "MiB"),
        ("xl save", "s"),
        ("xl restore", "s"),
        (
            "migration: the guest's own quiesce (request to suspend hypercall)",
            "ms",
        ),
        (
            "migration: the guest's own resume (hypercall return to vif reconnected)",
            "ms",
        ),
    ]
    .map(|(name, unit)| Metric {
        name,
        unit,
        higher_better: false,
        samples: [vec![], vec![], vec![]],
    });
    for (g, run) in guests.iter().zip(runs) {
        let i = g
            .name
            .strip_prefix("life-")
            .and_then(|n| n.rsplit_once('-'))
            .and_then(|(k, _)| Kind::ALL.iter().position(|x| x.tag() == k))
            .context("lifecycle bench guest name")?;
        let f = lifecycle_figures(run);
        if f.iter().any(Option::is_none) {
            failures.push(format!(
                "{}: ended {}; some save/restore or migration figures missing {f:?}",
                g.name, run.end
            ));
        }
        let guest = guest_suspend_ms(run);
        if i != Kind::LinuxPv as usize && guest.iter().any(Option::is_none) {
            failures.push(format!(
                "{}: no `rt: suspend:` line from the guest after the migration",
                g.name
            ));
        }
        for (m, v) in metrics.iter_mut().zip(f.into_iter().chain(guest)) {
            if let Some(v) = v {
                m.samples[i].push(v);
            }
        }
    }
    Ok(format!(
        "\nSave, restore and migration, every guest with {} MiB (the same session):\n\n{}",
        linux::MIB,
        render(&metrics, reps)
    ))
}
