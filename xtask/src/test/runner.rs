//! The runner: every check the project has, in one command, and the
//! summary. Host steps (fmt, unit and property tests, clippy on host crates
//! and on the image, the image's Xen notes) run first; then the guest tests
//! of the plan ([`super::plan`]) boot — bare QEMU PVH, PV dom0, and every
//! domU in one Xen session — and each ends in a line `test result: PASS
//! <name>` or `FAIL <name>`. A summary table closes the run; the exit status
//! is non-zero if anything failed or never reported.
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use super::plan::{Boot, GuestTest, IMAGES, NET_VIF, guest_tests};
use crate::harness::{self, GuestRun, GuestSpec};
use crate::image;

/// One row of the summary.
struct Row {
    name: String,
    ok: bool,
    secs: Option<f64>,
    detail: String,
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(image::root());
    c
}

/// Which steps and guest tests to run (`--only`).
#[derive(Clone, Copy)]
struct Filter<'a>(Option<&'a str>);

impl Filter<'_> {
    /// Whether `name` contains one of the comma-separated parts of the filter.
    fn wants(self, name: &str) -> bool {
        self.0
            .is_none_or(|f| f.split(',').any(|p| name.contains(p)))
    }
}

fn step(
    rows: &mut Vec<Row>,
    filter: Filter<'_>,
    name: &str,
    f: impl FnOnce() -> Result<String>,
) -> bool {
    if !filter.wants(name) {
        return true;
    }
    println!("\n== {name}");
    let t = Instant::now();
    let r = f();
    let ok = r.is_ok();
    let detail = match r {
        Ok(d) => d,
        Err(e) => format!("{e:#}"),
    };
    println!(
        "== {name}: {}{}",
        if ok { "ok" } else { "FAILED" },
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        }
    );
    rows.push(Row {
        name: name.into(),
        ok,
        secs: Some(t.elapsed().as_secs_f64()),
        detail,
    });
    ok
}

/// Builds an image as a step of the run (never filtered out: guest tests
/// need it).
fn build_step(rows: &mut Vec<Row>, i: &super::plan::Image) -> Option<image::Built> {
    let mut out = None;
    step(
        rows,
        Filter(None),
        &format!("build {} image", i.name),
        || {
            let b = image::build_app_as(i.app, i.heap, i.name)?;
            let detail = format!("{} bytes stripped", b.size);
            out = Some(b);
            Ok(detail)
        },
    );
    out
}

fn apps() -> Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(image::root().join("app"))? {
        let e = e?;
        if e.path().join("Cargo.toml").is_file() {
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    v.sort();
    Ok(v)
}

fn guest_row(rows: &mut Vec<Row>, run: &GuestRun, verdict: Result<String, String>) {
    let ok = verdict.is_ok();
    println!(
        "test result: {} {}",
        if ok { "PASS" } else { "FAIL" },
        run.name
    );
    let detail = match verdict {
        Ok(d) => d,
        Err(e) => {
            for d in &run.diagnostics {
                println!("    {d}");
            }
            e
        }
    };
    rows.push(Row {
        name: run.name.clone(),
        ok,
        secs: run.t_end,
        detail,
    });
}

fn missing_row(rows: &mut Vec<Row>, name: &str, why: &str) {
    println!("test result: FAIL {name}");
    rows.push(Row {
        name: name.into(),
        ok: false,
        secs: None,
        detail: why.into(),
    });
}

fn show(t: f64, line: &str) {
    println!("  [{t:7.2}] {line}");
}

/// Runs everything; fails if any step or guest test failed or is missing.
pub fn run_all(host_only: bool, only: Option<&str>) -> Result<()> {
    let mut rows = Vec::new();
    let filter = Filter(only);
    step(&mut rows, filter, "fmt", || {
        crate::run(cargo().args(["fmt", "--all", "--", "--check"])).map(|_| String::new())
    });
    step(&mut rows, filter, "host tests", || {
        crate::run(cargo().arg("test")).map(|_| String::new())
    });
    step(&mut rows, filter, "clippy (host crates)", || {
        crate::run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
            .map(|_| String::new())
    });
    step(&mut rows, filter, "clippy (image: rt and apps)", || {
        let mut c = image::guest_cargo("clippy");
        c.args(["-p", "rt"]);
        for a in apps()? {
            c.args(["-p", &a]);
        }
        crate::run(c.args(["--", "-D", "warnings"])).map(|_| String::new())
    });
    let mut built = BTreeMap::new();
    for i in IMAGES {
        if let Some(b) = build_step(&mut rows, i) {
            built.insert(i.name, b);
        }
    }
    if let Some(b) = built.get("hello") {
        step(&mut rows, filter, "Xen notes of hello", || {
            crate::notes::report(&b.elf).map(|_| String::new())
        });
    }

    if !host_only {
        run_guests(&mut rows, filter, &built);
    }

    println!("\n{:<30} {:<6} {:>9}  detail", "test", "result", "seconds");
    println!("{}", "-".repeat(78));
    for r in &rows {
        let secs = r.secs.map_or("-".to_string(), |s| format!("{s:.2}"));
        let detail: String = r
            .detail
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        println!(
            "{:<30} {:<6} {:>9}  {detail}",
            r.name,
            if r.ok { "PASS" } else { "FAIL" },
            secs
        );
    }
    println!("(guest tests: seconds from QEMU start to the result; other steps: duration)");
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!("\n{} passed, {failed} failed", rows.len() - failed);
    if failed > 0 {
        bail!("{failed} of {} checks failed", rows.len());
    }
    Ok(())
}

/// Runs the plan's guest tests that `filter` wants: the bare and dom0 boots
/// each on their own, every domU in one Xen + Debian dom0 session.
fn run_guests(rows: &mut Vec<Row>, filter: Filter<'_>, built: &BTreeMap<&str, image::Built>) {
    let tests: Vec<GuestTest> = guest_tests()
        .into_iter()
        .filter(|t| filter.wants(t.name))
        .collect();
    if tests.is_empty() {
        return;
    }
    // Every guest test needs the harness's QEMU, the bare one too: on a
    // fresh machine provisioning is what installs it.
    println!("\n== provisioning the Xen harness");
    let a = match harness::provision() {
        Ok(a) => a,
        Err(e) => {
            for t in &tests {
                missing_row(rows, t.name, &format!("not run: {e:#}"));
            }
            return;
        }
    };
    let mut domus = Vec::new();
    for t in &tests {
        let Some(img) = built.get(t.image) else {
            missing_row(rows, t.name, "not run: the image did not build");
            continue;
        };
        let run = match t.boot {
            Boot::Bare => {
                println!("\n== guest: {} (bare QEMU, PVH entry)", t.name);
                harness::run_bare(t.name, &img.elf, t.cmdline, t.timeout.into(), &mut show)
            }
            Boot::Dom0 => {
                println!(
                    "\n== guest: {} (the image booted by Xen as its PV dom0)",
                    t.name
                );
                harness::run_dom0(&a, t.name, &img.elf, t.cmdline, t.timeout.into(), &mut show)
            }
            Boot::DomU(mode) => {
                domus.push((t, spec(t, img, mode)));
                continue;
            }
        };
        match run {
            Ok(run) => guest_row(rows, &run, (t.judge)(&run)),
            Err(e) => missing_row(rows, t.name, &format!("{e:#}")),
        }
    }
    if domus.is_empty() {
        return;
    }
    let names: Vec<&str> = domus.iter().map(|(t, _)| t.name).collect();
    println!(
        "\n== guests: {} (domUs of one Xen + Debian dom0 session)",
        names.join(", ")
    );
    let guests: Vec<GuestSpec> = domus.iter().map(|(_, g)| g.clone()).collect();
    // A wedged harness session (seen now and then, not caused by a guest)
    // stops; the guests it never finished get a fresh Xen boot (twice at most).
    match harness::run_domus_retrying(&a, "domu", &guests, 2, &mut show) {
        Ok(runs) => {
            for (run, (t, _)) in runs.iter().zip(&domus) {
                guest_row(rows, run, (t.judge)(run));
            }
        }
        Err(e) => {
            for n in names {
                missing_row(rows, n, &format!("{e:#}"));
            }
        }
    }
}

/// The harness's description of a domU test.
fn spec(t: &GuestTest, img: &image::Built, mode: crate::manifest::Mode) -> GuestSpec {
    GuestSpec {
        cmdline: t.cmdline.into(),
        dump_at: t.dump_at.map(Into::into),
        input: t.input.iter().map(|l| l.to_string()).collect(),
        vif: t.dom0.map(|_| NET_VIF.to_string()),
        dom0: t.dom0.map(str::to_string),
        peer: t.peer,
        disks: t
            .disks
            .iter()
            .map(|d| d.replace("{NAME}", t.name))
            .collect(),
        before: t.before.map(str::to_string),
        after: t.after.map(str::to_string),
        ..GuestSpec::new(t.name, &img.elf, mode, t.memory, t.timeout)
    }
}
