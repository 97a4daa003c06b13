//! The application rows of `cargo xtask bench`: HTTP requests per second
//! with 1 and with 16 keep-alive clients (`bench-echo http-load` in dom0,
//! every answer checked) against our `app/httpd` (PV and PVH) and the Linux
//! domU's comparable server (`xtask/bench-echo/src/serve_http.rs`), and
//! TCP guest -> dom0 (64 MiB from port 19: our `app/echo`, Linux's
//! bench-echo).
use std::path::{Path, PathBuf};

use crate::harness::{GuestRun, GuestSpec};
use crate::manifest::Mode;

use super::parse::number_after;
use super::render::render;
use super::{Kind, Metric, OUR_CMDLINE, OUR_MIB, VIF, linux};

const HTTP: &str = include_str!("../../../scripts/dom0/bench/http.sh");
const TX: &str = include_str!("../../../scripts/dom0/bench/tx.sh");

/// The images and tools these guests need.
pub(super) struct Inputs<'a> {
    pub httpd: &'a Path,
    pub echo: &'a Path,
    pub linux_kernel: &'a Path,
    pub linux_initrd: &'a Path,
    pub bench_echo: PathBuf,
}

/// `reps` HTTP and `reps` TX guests of each kind.
pub(super) fn guests(reps: u32, i: &Inputs<'_>) -> Vec<GuestSpec> {
    let mut v = Vec::new();
    for r in 1..=reps {
        for (what, script) in [("http", HTTP), ("tx", TX)] {
            for k in Kind::ALL {
                let linux = k == Kind::LinuxPv;
                let (elf, mode, mib) = match (k, what) {
                    (Kind::LinuxPv, _) => (i.linux_kernel, Mode::Pv, linux::MIB),
                    (Kind::OursPv, "http") => (i.httpd, Mode::Pv, OUR_MIB),
                    (Kind::OursPvh, "http") => (i.httpd, Mode::Pvh, OUR_MIB),
                    (Kind::OursPv, _) => (i.echo, Mode::Pv, OUR_MIB),
                    (Kind::OursPvh, _) => (i.echo, Mode::Pvh, OUR_MIB),
                };
                let mut g = GuestSpec::new(&format!("{what}-{}-{r}", k.tag()), elf, mode, mib, 400);
                g.cmdline = (if linux { linux::CMDLINE } else { OUR_CMDLINE }).into();
                g.vif = Some(VIF.into());
                g.dom0 = Some(script.into());
                g.tools = vec![i.bench_echo.clone()];
                if linux {
                    g.ramdisk = Some(i.linux_initrd.into());
                }
                v.push(g);
            }
        }
    }
    v
}

/// The rows: one metric per figure, each kind's samples; runs whose load
/// saw a wrong answer count as failures, not figures.
pub(super) fn table(
    guests: &[GuestSpec],
    runs: &[GuestRun],
    reps: u32,
    failures: &mut Vec<String>,
) -> String {
    let mut metrics = [
        (
            "HTTP requests/s, 1 keep-alive client (600 requests)",
            "/s",
            true,
        ),
        (
            "HTTP requests/s, 16 keep-alive clients (16 x 50)",
            "/s",
            true,
        ),
        ("TCP guest -> dom0, 64 MiB", "MB/s", true),
        // Why the figures are what they are: where the time goes.
        (
            "HTTP, 1 client: the guest's CPU busy (ours: not blocked in Xen)",
            "%",
            false,
        ),
        (
            "HTTP, 1 client: our wake-up -> answer sent, median (bucket bound)",
            "us",
            false,
        ),
        (
            "TCP guest -> dom0: the guest's CPU busy (ours: not blocked in Xen)",
            "%",
            false,
        ),
        ("TCP guest -> dom0: dom0's CPU busy (both CPUs)", "%", false),
    ]
    .map(|(name, unit, higher_better)| Metric {
        name,
        unit,
        higher_better,
        samples: [vec![], vec![], vec![]],
    });
    for (g, run) in guests.iter().zip(runs) {
        let Some(i) = g
            .name
            .split_once('-')
            .and_then(|(_, r)| r.rsplit_once('-'))
            .and_then(|(k, _)| Kind::ALL.iter().position(|x| x.tag() == k))
        else {
            continue;
        };
        let ev = |p: &str| run.events.iter().find_map(|e| e.strip_prefix(p));
        let mut load = |key: &str, slot: usize, want: &str, m: &mut [Metric; 7]| match ev(key) {
            Some(l) if l.contains(want) && l.contains(" 0 bad") => {
                if let Some(v) = l.rsplit(", ").next().and_then(|r| number_after(r, "")) {
                    m[slot].samples[i].push(v);
                }
            }
            other => failures.push(format!("{}: {key}{other:?}", g.name)),
        };
        if g.name.starts_with("http-") {
            load("dom0| http1: ", 0, "600 requests", &mut metrics);
            load("dom0| http16: ", 1, "800 requests", &mut metrics);
            // `cpu: blocked B ms of U ms in N blocks; ...; wake->send n K,
            // p50 <= X us, ...` before and after the one-client load.
            let cpu = |key: &str| {
                let l = ev(key)?;
                Some((number_after(l, "blocked")?, number_after(l, " of")?, l))
            };
            if let (Some((b0, u0, _)), Some((b1, u1, l))) =
                (cpu("dom0| cpu-before: "), cpu("dom0| cpu-http1: "))
                && u1 > u0
            {
                metrics[3].samples[i].push(100.0 * (1.0 - (b1 - b0) / (u1 - u0)));
                if let Some(v) = number_after(l, "p50 <=") {
                    metrics[4].samples[i].push(v);
                }
            }
        } else {
            // echo's `source: of T ms, B ms blocked ...`.
            let busy = run.console.iter().find_map(|l| {
                let l = &l[l.find("echo: source: of ")?..];
                let all = number_after(l, "of")?;
                Some(100.0 * (1.0 - number_after(l, "ms,")? / all.max(1.0)))
            });
            if let Some(v) = busy {
                metrics[5].samples[i].push(v);
            }
            if let Some(v) = ev("dom0| tx64: ").and_then(|l| number_after(l, "dom0 busy")) {
                metrics[6].samples[i].push(v);
            }
            match ev("dom0| tx64: ") {
                Some(l) if l.contains(" 67108864 bytes") => {
                    if let Some(v) = number_after(l, "") {
                        metrics[2].samples[i].push(v);
                    }
                }
                other => failures.push(format!("{}: tx64 {other:?}", g.name)),
            }
        }
    }
    format!(
        "\nApplication rows (HTTP: our httpd vs the Linux domU's server, the same dom0 load generator; TCP: echo's source port):\n\n{}",
        render(&metrics, reps)
    )
}
