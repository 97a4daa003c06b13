//! `cargo xtask bench`: our echo image (as PV and as PVH domU) and a Linux PV
//! domU (Debian's kernel as shipped, a busybox initramfs serving the same
//! echo and discard ports) measured side by side in one harness session,
//! each guest booted `reps` times; a markdown table with ratios to Linux.
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
const LINUX_CMDLINE: &str = "console=hvc0 quiet bench.ip=10.0.0.2/24";
const OUR_MIB: u32 = 32;
const LINUX_MIB: u32 = 128;

/// Started with `xl create`: pings until the first reply, one ping of
/// 100 ms at a time (one long `ping` run ended at once while the vif was
/// not there yet; a failed ping is followed by a short pause so the loop
/// does not take dom0's CPU from the booting guest). dom0 retries ARP every
/// 100 ms on the bridge so the figure is not rounded up to its default 1 s.
const EARLY: &str = r#"echo 100 >/proc/sys/net/ipv4/neigh/xenbr0/retrans_time_ms
read -r a _ </proc/uptime
end=$(( ${a%.*} + 120 ))
while :; do
    if ping -c 1 -W 0.1 10.0.0.2 >/dev/null 2>&1; then
        read -r b _ </proc/uptime
        awk -v a="$a" -v b="$b" 'BEGIN {printf "first-reply: %.3f s\n", b - a}'
        break
    fi
    read -r b _ </proc/uptime
    [ "${b%.*}" -lt "$end" ] || { echo "first-reply: none in 120 s"; break; }
    sleep 0.05
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
/// tcp MB/s, memory in use KiB); absent ones are left out.
fn figures(run: &GuestRun) -> [Option<f64>; 6] {
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
    ]
}

/// Runs the benchmark: `reps` boots of each guest in one harness session.
pub fn run(reps: u32) -> Result<()> {
    if reps == 0 {
        bail!("--reps must be at least 1");
    }
    println!("== building the echo image");
    let echo = image::build_app_as("echo", None, "echo")?;
    println!("\n== building bench-echo (the Linux domU's echo server, static)");
    let server = build_bench_echo()?;
    println!("\n== provisioning the Xen harness");
    let a = harness::provision()?;
    let linux_initrd = linux_initrd(&a.linux_initrd, &server)?;
    let mut guests = Vec::new();
    for r in 1..=reps {
        for k in Kind::ALL {
            let linux = k == Kind::LinuxPv;
            guests.push(GuestSpec {
                name: format!("{}-{r}", k.tag()),
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
                memory: if linux { LINUX_MIB } else { OUR_MIB },
                cmdline: (if linux { LINUX_CMDLINE } else { OUR_CMDLINE }).into(),
                timeout: 240,
                dump_at: None,
                input: vec![],
                vif: Some(VIF.into()),
                dom0: Some(DOM0.into()),
                early: Some(EARLY.into()),
                ramdisk: linux.then(|| linux_initrd.clone()),
            });
        }
    }
    println!(
        "\n== {} guests in one harness session ({reps} of each: ours as PV and PVH, Linux PV)",
        guests.len()
    );
    let mut show = |t: f64, l: &str| println!("  [{t:7.2}] {l}");
    let runs = harness::run_domus_retrying(&a, "bench", &guests, 3, &mut show)?;

    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len() as f64);
    let linux_size = size(&a.linux_kernel)? + size(&linux_initrd)?;
    let mut metrics = [
        ("image size", "bytes", false),
        ("memory (domain)", "MiB", false),
        ("memory in use at network-ready", "KiB", false),
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
    for (i, k) in Kind::ALL.iter().enumerate() {
        let linux = *k == Kind::LinuxPv;
        metrics[0].samples[i].push(if linux { linux_size } else { echo.size as f64 });
        metrics[1].samples[i].push(f64::from(if linux { LINUX_MIB } else { OUR_MIB }));
    }
    let mut failures = Vec::new();
    for (g, run) in guests.iter().zip(&runs) {
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
            (3, f[0]),
            (4, f[1]),
            (5, f[2]),
            (6, f[3]),
            (7, f[4]),
            (2, f[5]),
        ] {
            if let Some(v) = v {
                metrics[slot].samples[i].push(v);
            }
        }
    }
    let table = render(&metrics, reps);
    let dir = image::root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.md");
    std::fs::write(&path, &table)?;
    println!("\n{table}");
    println!("(written to {})", path.display());
    for f in &failures {
        println!("warning: {f}");
    }
    Ok(())
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
                Some(1234.0)
            ]
        );
        let linux = GuestRun {
            console: vec!["linux: network up at 3.1 s; memory in use 20480 KiB".into()],
            ..run
        };
        assert_eq!(figures(&linux)[5], Some(20480.0));
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
