//! `cargo xtask bench`: our echo image (as PV and as PVH domU) and a Linux PV
//! domU (Debian's kernel as shipped, a busybox initramfs serving the same
//! echo and discard ports) measured side by side in one harness session,
//! each guest booted `reps` times, then booted once per size on a memory
//! ladder (smallest memory to network-ready), and mmtest's MMU figures;
//! a markdown table with ratios to Linux and an SVG of the boot timelines.
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::harness::{self, GuestRun, GuestSpec};
use crate::image;
use crate::manifest::Mode;

/// dom0's side of the guests' vif (the echo guests' MAC and address).
const VIF: &str = "bridge=xenbr0,mac=00:16:3e:00:00:02";
const OUR_CMDLINE: &str = "ip=10.0.0.2/24 gw=10.0.0.1";
/// Linux reads `bench.ip` in its /init (plain `ip=` is the kernel's own).
const LINUX_CMDLINE: &str = "console=hvc0 quiet panic=1 bench.ip=10.0.0.2/24";
const OUR_MIB: u32 = 32;
const LINUX_MIB: u32 = 128;

/// Started with `xl create`; one loop, paced by its pings, notes when the
/// guest's console shows its first bytes, when the line saying the program
/// started appears (ours: the app's first line, printed first thing in
/// `main`; Linux: its /init's first line), and when the first ping reply
/// comes. The console log (xenconsoled's) is read incrementally with the
/// shell's own `read`, a line read before its newline arrived kept for the
/// next look: dom0 must not fork more than it has to, as every fork slows
/// the boot being timed (a grep every 20 ms doubled `xl create`'s time).
/// Pings go one at a time with a 100 ms wait (one long `ping` run ended at
/// once while the vif was not there yet); dom0 retries ARP every 100 ms on
/// the bridge so the figure is not rounded up to its default 1 s.
const EARLY: &str = r#"echo 100 >/proc/sys/net/ipv4/neigh/xenbr0/retrans_time_ms
read -r a _ </proc/uptime
end=$(( ${a%.*} + 120 ))
stamp() { read -r b _ </proc/uptime; awk -v a="$a" -v b="$b" -v w="$1" 'BEGIN {printf "%s: %.3f s\n", w, b - a}'; }
exec 4<"/var/log/xen/console/guest-$NAME.log"
first= main= reply= part=
while :; do
    read -r now _ </proc/uptime
    if [ -z "$main" ]; then
        while IFS= read -r line <&4; do
            line=$part$line part=
            [ -n "$first" ] || { first=1; stamp first-line; }
            case $line in "echo: boot: "* | "linux: init at"*) main=1; stamp main; line=; break ;; esac
        done
        part=$part$line
        [ -n "$first" ] || [ -z "$part" ] || { first=1; stamp first-line; }
    fi
    if [ -z "$reply" ]; then
        if ping -c 1 -W 0.1 10.0.0.2 >/dev/null 2>&1; then
            reply=1; stamp first-reply
        else
            sleep 0.05
        fi
    fi
    [ -n "$reply" ] && [ -n "$main" ] && break
    if [ "${now%.*}" -ge "$end" ]; then
        [ -n "$reply" ] || echo "first-reply: none in 120 s"
        break
    fi
    [ -z "$reply" ] || sleep 0.1
done
"#;

/// Run once the guest says `harness: net-ready`: 100 pings, 300 UDP echoes
/// one at a time, 64 MiB to the TCP discard port, then `xl shutdown`.
const DOM0: &str = r#"ip=10.0.0.2
up() { read -r UP _ </proc/uptime; }
ping -c 100 -i 0.05 -W 2 $ip 2>/dev/null | grep -o 'time=[0-9.]*' | cut -d= -f2 | sort -n |
    awk '{a[NR] = $1} END {if (NR) printf "rtt100: median %s ms, p99 %s ms, %d replies\n", a[int((NR + 1) / 2)], a[int(NR * 0.99 + 0.5)], NR}'
if exec 3<>/dev/udp/$ip/7; then
    n=0
    up; a=$UP
    for _ in $(seq 300); do
        printf x >&3
        read -r -N 1 -t 1 _ <&3 && n=$((n + 1))
    done
    up
    awk -v n=$n -v a="$a" -v b="$UP" 'BEGIN {printf "udp: %d of 300 echoed, %.0f per s\n", n, n / (b - a)}'
    exec 3>&-
fi
up; a=$UP
if timeout 300 head -c 67108864 /dev/zero >/dev/tcp/$ip/9; then
    up
    awk -v a="$a" -v b="$UP" 'BEGIN {printf "tcp64: %.2f MB/s\n", 67.108864 / (b - a)}'
else
    echo "tcp64: failed"
fi
timeout -k 5 30 xl shutdown "$NAME"
"#;

/// The guests compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    OursPv,
    OursPvh,
    LinuxPv,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::OursPv, Kind::OursPvh, Kind::LinuxPv];
    fn tag(self) -> &'static str {
        match self {
            Kind::OursPv => "echo-pv",
            Kind::OursPvh => "echo-pvh",
            Kind::LinuxPv => "linux-pv",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Kind::OursPv => "ours PV",
            Kind::OursPvh => "ours PVH",
            Kind::LinuxPv => "Linux PV",
        }
    }
}

/// Median, min and max of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn spread(v: &[f64]) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: s[0],
        max: s[s.len() - 1],
        n: s.len(),
    })
}

/// One figure, each guest kind's samples.
struct Metric {
    name: &'static str,
    unit: &'static str,
    /// Larger is better (throughput) rather than smaller (times, sizes).
    higher_better: bool,
    samples: [Vec<f64>; 3],
}

/// The first number in `text` after `key`.
fn number_after(text: &str, key: &str) -> Option<f64> {
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
fn figures(run: &GuestRun) -> [Option<f64>; 8] {
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

/// The in-guest boot timeline our echo prints (`echo: boot timeline (us
/// since entry): entry=0 rust=... ip=...`): (mark, µs) in order.
fn timeline(run: &GuestRun) -> Vec<(String, f64)> {
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

/// The MMU figures mmtest reports: (batched hypercalls, page-by-page
/// hypercalls, batched µs, page-by-page µs, batched updates/s, page-by-page
/// updates/s) for mapping 64 MiB.
fn mmu_figures(run: &GuestRun) -> [Option<f64>; 6] {
    let line = |k: &str| {
        run.console
            .iter()
            .find(|l| l.starts_with("mm-bench:") && l.contains(k))
    };
    let a = line("batched_hypercalls=");
    let b = line("batched_us=");
    let at = |l: Option<&String>, k: &str| l.and_then(|l| number_after(l, k));
    [
        at(a, "batched_hypercalls="),
        at(a, "naive_hypercalls="),
        at(b, "batched_us="),
        at(b, "naive_us="),
        at(b, "batched_updates_per_s="),
        at(b, "naive_updates_per_s="),
    ]
}

/// The memory ladder: domain sizes (MiB) each guest is booted with to find
/// the smallest that reaches network-ready.
const LADDER_OURS: [u32; 5] = [3, 4, 5, 6, 8];
const LADDER_LINUX: [u32; 6] = [24, 32, 40, 48, 64, 96];

/// The smallest size on the ladder that reached network-ready, with every
/// larger one reaching it too (a size that fails above one that works is
/// noise the table must not hide: then there is no answer).
fn smallest(results: &[(u32, bool)]) -> Option<u32> {
    let mut sorted = results.to_vec();
    sorted.sort();
    let first_ok = sorted.iter().position(|&(_, ok)| ok)?;
    sorted[first_ok..]
        .iter()
        .all(|&(_, ok)| ok)
        .then_some(sorted[first_ok].0)
}

/// Runs the benchmark: `reps` boots of each guest in one harness session.
pub fn run(reps: u32) -> Result<()> {
    if reps == 0 {
        bail!("--reps must be at least 1");
    }
    println!("== building the echo and mmtest images");
    let echo = image::build_app_as("echo", None, "echo")?;
    let mmtest = image::build_app_as("mmtest", None, "mmtest")?;
    println!("\n== building bench-echo (the Linux domU's echo server, static)");
    let server = build_bench_echo()?;
    println!("\n== provisioning the Xen harness");
    let a = harness::provision()?;
    let linux_initrd = linux_initrd(&a.linux_initrd, &server)?;
    let spec = |k: Kind, name: String, memory: u32, dom0: &str, early: bool, timeout: u32| {
        let linux = k == Kind::LinuxPv;
        GuestSpec {
            name,
            elf: if linux {
                a.linux_kernel.clone()
            } else {
                echo.elf.clone()
            },
            mode: if k == Kind::OursPvh {
                Mode::Pvh
            } else {
                Mode::Pv
            },
            memory,
            cmdline: (if linux { LINUX_CMDLINE } else { OUR_CMDLINE }).into(),
            timeout,
            dump_at: None,
            input: vec![],
            vif: Some(VIF.into()),
            dom0: Some(dom0.into()),
            early: early.then(|| EARLY.into()),
            ramdisk: linux.then(|| linux_initrd.clone()),
        }
    };
    let mut guests = Vec::new();
    for r in 1..=reps {
        for k in Kind::ALL {
            let mib = if k == Kind::LinuxPv {
                LINUX_MIB
            } else {
                OUR_MIB
            };
            guests.push(spec(k, format!("{}-{r}", k.tag()), mib, DOM0, true, 240));
        }
    }
    let timed = guests.len();
    // The memory ladder: up to network-ready, then shut down.
    let mut ladder = Vec::new();
    for k in Kind::ALL {
        let (steps, timeout): (&[u32], u32) = if k == Kind::LinuxPv {
            (&LADDER_LINUX, 150)
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
    // The MMU figures: mmtest as PV and PVH (no Linux counterpart).
    for (name, mode) in [("mmtest-pv", Mode::Pv), ("mmtest-pvh", Mode::Pvh)] {
        guests.push(GuestSpec::new(name, &mmtest.elf, mode, 128, 180));
    }
    println!(
        "\n== {} guests in one harness session: {reps} timed boots of each (ours as PV and PVH, Linux PV), \
         {} on the memory ladder, mmtest as PV and PVH",
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
        metrics[2].samples[i].push(f64::from(if linux { LINUX_MIB } else { OUR_MIB }));
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
        if let (Some(a), Some(b), Some(c)) = (f[6], f[7], f[0]) {
            dom0_view[i].push([a, b, c]);
        }
        let t = timeline(run);
        if !t.is_empty() {
            timelines[i].push(t);
        }
    }
    let mut table = render(&metrics, reps);
    let mmu: Vec<[Option<f64>; 6]> = runs[timed + ladder.len()..]
        .iter()
        .map(mmu_figures)
        .collect();
    table.push_str(&render_mmu(&mmu));
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

/// The MMU table: mapping 64 MiB batched vs page by page, PV and PVH.
fn render_mmu(rows: &[[Option<f64>; 6]]) -> String {
    let mut t = String::from(
        "\nMMU, mmtest mapping 64 MiB (16,384 pages) in the same session (no Linux counterpart):\n\n\
         | figure | ours PV | ours PVH |\n|---|---|---|\n",
    );
    let names = [
        "hypercalls, batched",
        "hypercalls, page by page",
        "time, batched (us)",
        "time, page by page (us)",
        "page-table updates per second, batched",
        "page-table updates per second, page by page",
    ];
    let v = |r: usize, k: usize| {
        rows.get(r)
            .and_then(|x| x[k])
            .map_or("-".to_string(), fmt_num)
    };
    for (k, n) in names.iter().enumerate() {
        let _ = writeln!(t, "| {n} | {} | {} |", v(0, k), v(1, k));
    }
    t
}

/// Per mark, the median over boots (marks in the order of the first boot).
fn median_timeline(boots: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let Some(first) = boots.first() else {
        return vec![];
    };
    first
        .iter()
        .filter_map(|(name, _)| {
            let v: Vec<f64> = boots
                .iter()
                .filter_map(|b| b.iter().find(|(n, _)| n == name).map(|&(_, t)| t))
                .collect();
            Some((name.clone(), spread(&v)?.median))
        })
        .collect()
}

/// An SVG of the boot timelines: from `xl create` as dom0 sees it (first
/// console line, main, first ping reply; all three guests), and our guests'
/// own pvclock timelines from the entry point (medians over the boots).
fn timeline_svg(dom0_view: &[Vec<[f64; 3]>; 3], inner: &[Vec<Vec<(String, f64)>>; 3]) -> String {
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

/// Builds `xtask/bench-echo` as a static binary; returns its path.
fn build_bench_echo() -> Result<PathBuf> {
    let target = "x86_64-unknown-linux-gnu";
    let dir = image::root().join("target/bench/echo-build");
    let mut c = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    c.args(["build", "--release", "-p", "bench-echo", "--target", target])
        .arg("--target-dir")
        .arg(&dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(image::root());
    crate::run(&mut c).context("building bench-echo")?;
    Ok(dir.join(target).join("release/bench-echo"))
}

/// The Linux domU's initramfs: the cached one with a second cpio archive
/// appended that holds `/bin/bench-echo` (the kernel unpacks both).
fn linux_initrd(cached: &PathBuf, server: &PathBuf) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = image::root().join("target/bench");
    let stage = dir.join("linux-overlay");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("bin"))?;
    let bin = stage.join("bin/bench-echo");
    std::fs::copy(server, &bin)?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let extra = dir.join("linux-overlay.cpio");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet > \"$0\"")
        .arg(&extra)
        .current_dir(&stage)
        .status()
        .context("running cpio")?;
    if !status.success() {
        bail!("packing the Linux overlay cpio failed");
    }
    let mut data = std::fs::read(cached)?;
    // The kernel looks for an uncompressed archive only at a 4-byte
    // boundary after the compressed one (zeros between are skipped).
    data.resize(data.len().next_multiple_of(512), 0);
    data.extend(std::fs::read(&extra)?);
    let out = dir.join("linux-domu.initrd");
    std::fs::write(&out, data)?;
    Ok(out)
}

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
fn render(metrics: &[Metric], reps: u32) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_samples() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(spread(&[4.0, 1.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
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

    #[test]
    fn the_smallest_memory_needs_every_larger_step_to_work() {
        assert_eq!(
            smallest(&[(8, true), (3, false), (4, true), (6, true)]),
            Some(4)
        );
        assert_eq!(smallest(&[(3, false), (4, false)]), None);
        assert_eq!(
            smallest(&[(3, true), (4, false), (6, true)]),
            None,
            "noise: no answer"
        );
    }

    #[test]
    fn timelines_and_mmu_figures_are_read_and_charted() {
        let run = GuestRun {
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
            mmu_figures(&run),
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
        assert!(render_mmu(&[mmu_figures(&run)]).contains("| hypercalls, batched | 32.0 | - |"));
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
