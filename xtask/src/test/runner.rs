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

use super::plan::{Boot, GuestTest, IMAGES, LINUX, NET_VIF, guest_tests};
use crate::harness::{self, GuestRun, GuestSpec};
use crate::image;

/// One row of the summary.
pub(super) struct Row {
    pub(super) name: String,
    pub(super) ok: bool,
    pub(super) secs: Option<f64>,
    pub(super) detail: String,
}

pub(super) fn cargo() -> Command {
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

/// The out-of-tree path as a user takes it: `cargo xtask new` makes an app
/// under `target/oot/`, and `cargo xtask build` run in its folder (through
/// the alias the template sets up) builds its image and its libvirt XML
/// (checked once provisioning installed the schema checker: see
/// [`run_guests`]). Never filtered out: a guest test boots the image.
fn build_out_of_tree(rows: &mut Vec<Row>) -> Option<image::Built> {
    let mut out = None;
    let name = super::plan::OOT_APP;
    step(
        rows,
        Filter(None),
        "build out-of-tree app (xtask new)",
        || {
            let parent = image::root().join("target/oot");
            let dir = parent.join(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&parent)?;
            crate::run(cargo().args(["xtask", "new"]).arg(&dir))?;
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            // As a user would: in the app's folder, the alias finds xtask.
            c.current_dir(&dir)
                .args(["xtask", "build"])
                .env_remove("CARGO_TARGET_DIR");
            crate::run(&mut c)?;
            let elf = dir.join(format!("target/image/{name}.elf"));
            let size = std::fs::metadata(&elf)?.len();
            crate::notes::report(&elf)?;

            out = Some(image::Built {
                debug_elf: dir.join(format!("target/image/{name}.debug.elf")),
                elf,
                size,
            });
            Ok(format!("{size} bytes stripped, outside the workspace"))
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

pub(super) fn show(t: f64, line: &str) {
    println!("  [{t:7.2}] {line}");
}

/// Runs everything; fails if any step or guest test failed or is missing.
pub fn run_all(host_only: bool, only: Option<&str>, long: bool) -> Result<()> {
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
    step(&mut rows, filter, "rustdoc (rt, no warnings)", || {
        // Every public rt item is documented (`missing_docs` is denied in
        // rt and rt-net) and every doc link resolves.
        crate::run(
            cargo()
                .args([
                    "doc",
                    "--no-deps",
                    "-p",
                    "rt",
                    "-p",
                    "rt-net",
                    "-p",
                    "rt-block",
                ])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
        .map(|_| String::new())
    });
    let mut built = BTreeMap::new();
    for i in IMAGES {
        if let Some(b) = build_step(&mut rows, i) {
            built.insert(i.name, b);
        }
    }
    if let Some(b) = build_out_of_tree(&mut rows) {
        built.insert(super::plan::OOT_APP, b);
    }
    if let Some(b) = built.get("hello") {
        step(&mut rows, filter, "Xen notes of hello", || {
            crate::notes::report(&b.elf).map(|_| String::new())
        });
    }

    if !host_only {
        run_guests(&mut rows, filter, &built, long);
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
fn run_guests(
    rows: &mut Vec<Row>,
    filter: Filter<'_>,
    built: &BTreeMap<&str, image::Built>,
    long: bool,
) {
    let tests: Vec<GuestTest> = guest_tests()
        .into_iter()
        .filter(|t| filter.wants(t.name) && (long || !t.long_only))
        .collect();
    if tests.is_empty() && !filter.wants("run-forward") {
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
    // Provisioning installed libvirt's schema checker: the domain XML
    // `cargo xtask build` wrote for the out-of-tree app (as a user gets it)
    // and the generator's golden files must pass it.
    if let Some(b) = built.get(super::plan::OOT_APP) {
        step(rows, filter, "libvirt XML (virt-xml-validate)", || {
            let golden = image::root().join("xtask/tests/libvirt");
            let files = [
                b.elf.with_extension("xml"),
                golden.join("echo-pv.xml"),
                golden.join("httpd-pvh.xml"),
            ];
            for f in &files {
                crate::libvirt::validate(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            }
            Ok(format!("{} domain files valid", files.len()))
        });
    }
    // dom0's tools: the static bench-echo (HTTP load generator), built
    // once when a test's scripts call it.
    let uses_tool = |t: &GuestTest| {
        [t.dom0, t.before, t.after]
            .iter()
            .flatten()
            .any(|s| s.contains(BENCH_ECHO))
    };
    let tools = if tests.iter().any(uses_tool) {
        match crate::bench::build_bench_echo() {
            Ok(p) => vec![p],
            Err(e) => {
                println!("building bench-echo for dom0 failed: {e:#}");
                vec![]
            }
        }
    } else {
        vec![]
    };
    // The Linux control guest (Debian's kernel, the busybox initramfs with
    // bench-echo appended), when a test boots it.
    let linux = if tests.iter().any(|t| t.image == LINUX) {
        match linux_guest(&a) {
            Ok(l) => Some(l),
            Err(e) => {
                println!("preparing the Linux control guest failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let mut domus = Vec::new();
    for t in &tests {
        let img = if t.image == LINUX {
            linux.as_ref().map(|(b, _)| b)
        } else {
            built.get(t.image)
        };
        let Some(img) = img else {
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
                let mut g = spec(t, img, mode, long);
                if uses_tool(t) {
                    g.tools = tools.clone();
                }
                if t.image == LINUX {
                    g.ramdisk = linux.as_ref().map(|(_, initrd)| initrd.clone());
                }
                domus.push((t, g));
                continue;
            }
        };
        match run {
            Ok(run) => guest_row(rows, &run, (t.judge)(&run)),
            Err(e) => missing_row(rows, t.name, &format!("{e:#}")),
        }
    }
    if filter.wants("run-forward") {
        super::forward::run_forward(rows);
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
        Ok(mut runs) => {
            let tries = retry_faults(&a, &domus, &mut runs, &mut show);
            for ((run, (t, _)), tried) in runs.iter().zip(&domus).zip(tries) {
                let said = |d: String| match &tried {
                    Some(n) => format!("{n}: {d}"),
                    None => d,
                };
                guest_row(rows, run, (t.judge)(run).map(said).map_err(said));
            }
        }
        Err(e) => {
            for n in names {
                missing_row(rows, n, &format!("{e:#}"));
            }
        }
    }
}

/// The Linux control guest: Debian's kernel as an ELF (the harness's dom0
/// kernel, the same package as the bench's PV domU's bzImage; booted as a
/// PVH domU, both end the same way so far, see README) and the bench
/// domU's initramfs with `bench-echo` appended.
fn linux_guest(a: &harness::Artifacts) -> Result<(image::Built, std::path::PathBuf)> {
    let server = crate::bench::build_bench_echo()?;
    let initrd = crate::bench::linux_initrd(&a.linux_initrd, &server)?;
    let size = std::fs::metadata(&a.vmlinux)?.len();
    let b = image::Built {
        elf: a.vmlinux.clone(),
        debug_elf: a.vmlinux.clone(),
        size,
    };
    Ok((b, initrd))
}

/// What went wrong with `run` that earns a retry: a triple fault (Xen's
/// log says so) or a hang (still running when its time was up).
fn retry_cause(run: &GuestRun) -> Option<String> {
    // Xen ends a triple-faulted PVH domain with its HVM shutdown action:
    // a reboot (the default) or a crash.
    let triple = run
        .diagnostics
        .iter()
        .find(|d| d.contains("Triple fault"))
        .map(|d| d.trim().to_string());
    match run.end {
        harness::End::Crashed | harness::End::Reboot => triple,
        harness::End::Timeout => Some(format!(
            "hung (still running when its time was up; last console line {:?})",
            run.console.last().map_or("", String::as_str)
        )),
        _ => None,
    }
}

/// The guests with a retry budget (`GuestTest::attempts`) whose run ended
/// in a triple fault or hung run again, each in a fresh harness session,
/// until one run does not or the budget is spent; the run kept says how
/// many it took (`attempt N of M`, with what the earlier ones came to: for
/// the judge's detail), so a retry is reported, never hidden.
fn retry_faults(
    a: &harness::Artifacts,
    domus: &[(&GuestTest, GuestSpec)],
    runs: &mut [GuestRun],
    show: &mut dyn FnMut(f64, &str),
) -> Vec<Option<String>> {
    let mut tries = Vec::new();
    for ((t, g), run) in domus.iter().zip(runs.iter_mut()) {
        let mut faults = Vec::new();
        let mut attempt = 1;
        while attempt < t.attempts {
            let Some(cause) = retry_cause(run) else { break };
            println!(
                "\n== {}: attempt {attempt} of {}: {cause}; again in a fresh harness session",
                t.name, t.attempts
            );
            faults.push(format!("attempt {attempt}: {cause}"));
            attempt += 1;
            match harness::run_domus_retrying(
                a,
                &format!("{}-{attempt}", t.name),
                std::slice::from_ref(g),
                0,
                show,
            ) {
                Ok(mut r) if !r.is_empty() => *run = r.remove(0),
                _ => break,
            }
        }
        tries.push((t.attempts > 1).then(|| {
            format!(
                "attempt {attempt} of {}{}",
                t.attempts,
                if faults.is_empty() {
                    String::new()
                } else {
                    format!(" (earlier: {})", faults.join("; "))
                }
            )
        }));
    }
    tries
}

/// Where dom0 finds the load generator.
const BENCH_ECHO: &str = "/harness/bench-echo";

/// The harness's description of a domU test (its long version when `long`
/// and it has one).
fn spec(t: &GuestTest, img: &image::Built, mode: crate::manifest::Mode, long: bool) -> GuestSpec {
    let long = t.long.filter(|_| long);
    let timeout = long.map_or(t.timeout, |l| l.timeout);
    GuestSpec {
        cmdline: t.cmdline.into(),
        dump_at: t.dump_at.map(Into::into),
        input: t.input.iter().map(|l| l.to_string()).collect(),
        vif: t.dom0.map(|_| NET_VIF.to_string()),
        dom0: t
            .dom0
            .map(|s| long.map_or_else(|| s.to_string(), |l| l.script(s))),
        peer: t.peer,
        disks: t
            .disks
            .iter()
            .map(|d| d.replace("{NAME}", t.name))
            .collect(),
        before: t.before.map(str::to_string),
        after: t.after.map(str::to_string),
        libvirt: t.libvirt,
        cpus: t.cpus.map(str::to_string),
        ..GuestSpec::new(t.name, &img.elf, mode, t.memory, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::End;

    #[test]
    fn a_triple_fault_or_a_hang_earns_a_retry_and_nothing_else_does() {
        let mut run = GuestRun::new("t");
        run.end = End::Crashed;
        run.diagnostics = vec!["(XEN) d3v0 Triple fault - invoking HVM shutdown action 1 ".into()];
        assert_eq!(
            retry_cause(&run).as_deref(),
            Some("(XEN) d3v0 Triple fault - invoking HVM shutdown action 1")
        );
        run.end = End::Reboot;
        assert!(
            retry_cause(&run).is_some(),
            "Xen's default action for a triple fault is a reboot"
        );
        run.diagnostics = vec!["rt: panic".into()];
        assert_eq!(
            retry_cause(&run),
            None,
            "a reboot without a triple fault is not retried"
        );
        run.end = End::Crashed;
        assert_eq!(retry_cause(&run), None, "a crash of ours is not retried");
        run.end = End::Timeout;
        run.console = vec!["timers: 5000".into()];
        let c = retry_cause(&run).unwrap();
        assert!(c.starts_with("hung") && c.contains("timers: 5000"), "{c}");
        for end in [End::Poweroff, End::Missing, End::CreateFailed] {
            run.end = end;
            assert_eq!(retry_cause(&run), None);
        }
    }
}
