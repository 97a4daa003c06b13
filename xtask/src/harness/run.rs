//! Running sessions: the QEMU machine, Xen's command line, and the three
//! ways of booting an image — domUs under Xen + the Debian dom0
//! ([`run_domus`], with retries of a stalled session), the image itself as
//! Xen's PV dom0 ([`run_dom0`]), bare QEMU through its PVH loader
//! ([`run_bare`]) — plus an interactive session ([`attach`]).
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::console;
use super::guest::{End, GuestRun, GuestSpec};
use super::initramfs::{Shared, check_path, harness_dir, initramfs};
use super::provision::Artifacts;
use super::qemu::{self, Next, Qemu};
use super::xl::test_xl_config;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

const TCG: &[&str] = &[
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-display",
    "none",
    "-nodefaults",
    "-no-reboot",
];

/// Xen's console on COM1 with IRQ 0, i.e. polled every millisecond. With
/// its interrupt (IRQ 4), Xen writes from a buffer refilled on each "transmit
/// empty" interrupt and stops polling once one has arrived; under QEMU TCG a
/// lost edge then leaves the buffer full for good and every later line — Xen's,
/// dom0's, the guests' — is dropped silently while the session runs on. That
/// is the suspected cause of the whole-session silences this harness showed
/// now and then (see `NUDGE` for the check that tells).
const XEN_SERIAL: &str = "console=com1 com1=115200,8n1,0x3f8,0";

/// Xen option for every session (tests and bench). No XSAVE: Xen switches
/// vector state with FXSAVE/FXRSTOR and hides AVX (and the other
/// XSAVE-managed state) from every domain. With XSAVE, glibc programs in PV
/// domains — `xl` in dom0, a static server in a Linux domU — died now and
/// then of heap corruption ("corrupted double-linked list", "malloc():
/// corrupted top size", a segfaulting `xl create` in the create/destroy
/// cycles); with `xsave=0` those runs were clean. Suspected, not proven:
/// QEMU TCG's emulation of the extended state. Our guests use no vector
/// registers and are not affected either way.
const XEN_NO_XSAVE: &str = "xsave=0";

/// Xen's command line: its console, no XSAVE, full logs, dom0 with
/// `dom0_mib` MiB and `vcpus` vCPUs.
fn xen_cmdline(dom0_mib: u32, vcpus: u32) -> String {
    format!(
        "{XEN_SERIAL} {XEN_NO_XSAVE} loglvl=all guest_loglvl=all dom0_mem={dom0_mib}M,max:{dom0_mib}M dom0_max_vcpus={vcpus}"
    )
}

/// The QEMU machine: TCG, `cpus` CPUs, `mib` of RAM, the serial console on
/// stdio, and (`debug_exit`) the exit device a guest or dom0 ends the run
/// with.
fn machine(cpus: u32, mib: u32, debug_exit: bool) -> Vec<OsString> {
    let mut v = os(TCG);
    v.extend(os(&["-smp", &cpus.to_string(), "-m", &mib.to_string()]));
    v.extend(os(&["-serial", "stdio"]));
    if debug_exit {
        v.extend(os(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]));
    }
    v
}

/// QEMU booting Xen (`xen` the `-append`ed command line) with `modules` as
/// its multiboot modules (`-initrd`: dom0's kernel and command line, then
/// its initramfs, comma-separated).
fn with_xen(mut v: Vec<OsString>, a: &Artifacts, xen: String, modules: String) -> Vec<OsString> {
    v.push("-kernel".into());
    v.push(a.xen.clone().into());
    v.push("-append".into());
    v.push(xen.into());
    v.push("-initrd".into());
    v.push(modules.into());
    v
}

/// QEMU arguments for Xen + the Debian dom0 with `initrd`.
fn xen_dom0_linux_args(a: &Artifacts, initrd: &Path, dom0_args: &str) -> Result<Vec<OsString>> {
    check_path(&a.vmlinux)?;
    check_path(initrd)?;
    Ok(with_xen(
        machine(2, 3072, true),
        a,
        xen_cmdline(1024, 2),
        format!(
            "{} console=hvc0 earlyprintk=xen panic=1 loglevel=4 {dom0_args},{}",
            a.vmlinux.display(),
            initrd.display()
        ),
    ))
}

/// The link between the two hosts of a two-host session: each QEMU's NIC
/// sends its frames as UDP datagrams to the other's port on 127.0.0.1.
struct HostLink {
    /// This machine's port and the other's.
    ports: (u16, u16),
    /// The NIC's MAC.
    mac: &'static str,
}

impl HostLink {
    /// Two free UDP ports on 127.0.0.1 (taken and let go: another program
    /// could take one meanwhile; QEMU then fails to start, and says so).
    fn pair() -> Result<(HostLink, HostLink)> {
        let free = || -> Result<u16> {
            Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (a, b) = (free()?, free()?);
        Ok((
            HostLink {
                ports: (a, b),
                mac: "52:54:00:00:01:01",
            },
            HostLink {
                ports: (b, a),
                mac: "52:54:00:00:01:02",
            },
        ))
    }

    /// QEMU's arguments for the NIC.
    fn args(&self) -> Vec<OsString> {
        let (local, remote) = self.ports;
        os(&[
            "-netdev",
            &format!(
                "dgram,id=hosts,local.type=inet,local.host=127.0.0.1,local.port={local},remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"
            ),
            "-device",
            &format!("virtio-net-pci,netdev=hosts,mac={}", self.mac),
        ])
    }
}

/// The second host of a two-host session: the same Xen and dom0 (and the
/// same initramfs) in `harness.mode=peer`, its serial console in a file.
/// Stopped when dropped.
struct PeerHost {
    child: std::process::Child,
}

impl PeerHost {
    fn start(
        a: &Artifacts,
        initrd: &Path,
        link: &HostLink,
        session: &str,
        total: u64,
    ) -> Result<PeerHost> {
        let mut args = xen_dom0_linux_args(
            a,
            initrd,
            &format!("harness.mode=peer harness.timeout={total}"),
        )?;
        // Its console goes to a file, not to the session's stream.
        let log = harness_dir(session).join("peer-serial.log");
        let at = args
            .iter()
            .position(|x| x == "stdio")
            .context("the machine's serial argument")?;
        args[at] = format!("file:{}", log.display()).into();
        args.extend(link.args());
        // Niced: the first host runs the tests and their clocks; the second
        // only receives and sends back a guest. Sessions with a second host
        // met the harness's stalls (both CPUs idle, dom0's programs no
        // longer woken) more often; the suspect is two TCG machines on two
        // cores starving the first one's timers.
        let child = std::process::Command::new("nice")
            .args(["-n", "10", "qemu-system-x86_64"])
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the second harness host (qemu-system-x86_64)")?;
        Ok(PeerHost { child })
    }
}

impl Drop for PeerHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The longest silence of a healthy harness session.
const QUIET: Duration = Duration::from_secs(120);

/// After this much silence a byte goes to the serial input, as a probe:
/// dom0's console echoes it if dom0's kernel runs (so far it always has —
/// in the stalls seen, dom0's programs stopped waking while Xen and dom0's
/// kernel ran; see the CPU state printed at a stall).
const NUDGE: Duration = Duration::from_secs(45);

/// [`run_domus`], then up to `retries` fresh sessions for the guests a
/// stalled session never finished (each retry says so). A stall is the
/// harness's, not a guest's: dom0 goes quiet with both CPUs idle in Xen
/// (seen with QEMU's monitor), see `QUIET`.
pub fn run_domus_retrying(
    a: &Artifacts,
    session: &str,
    guests: &[GuestSpec],
    retries: u32,
    show: &mut dyn FnMut(f64, &str),
) -> Result<Vec<GuestRun>> {
    let mut runs = run_domus(a, session, guests, show)?;
    for n in 1..=retries {
        let again: Vec<GuestSpec> = guests
            .iter()
            .zip(&runs)
            .filter(|(_, r)| r.stalled)
            .map(|(g, _)| g.clone())
            .collect();
        if again.is_empty() {
            break;
        }
        let names: Vec<&str> = again.iter().map(|g| g.name.as_str()).collect();
        println!(
            "\n== retrying {} in a fresh harness session (the previous one stalled)",
            names.join(", ")
        );
        let Ok(retried) = run_domus(a, &format!("{session}-retry{n}"), &again, show) else {
            break;
        };
        for r in retried {
            if let Some(slot) = runs.iter_mut().find(|x| x.name == r.name) {
                *slot = r;
                slot.diagnostics.push(format!("(run in retry session {n})"));
            }
        }
    }
    Ok(runs)
}

/// A port `cargo xtask run` forwards: the host's `127.0.0.1:host` to the
/// guest's `guest_ip:guest` (through QEMU's user network and dom0).
#[derive(Debug, Clone)]
pub struct Forward {
    /// The host's port (also dom0's).
    pub host: u16,
    /// The guest's address on the bridge.
    pub guest_ip: std::net::Ipv4Addr,
    /// The guest's port.
    pub guest: u16,
}

/// Boots Xen + dom0 once and runs `guests` one after another as domUs.
/// `show` receives progress and guest console lines as they arrive.
pub fn run_domus(
    a: &Artifacts,
    session: &str,
    guests: &[GuestSpec],
    show: &mut dyn FnMut(f64, &str),
) -> Result<Vec<GuestRun>> {
    let mut files = Vec::new();
    let mut plan =
        String::from("#!/bin/bash\n# Generated by cargo xtask: one line per guest.\nrc=0\n");
    let mut total: u64 = 60; // dom0 boot + toolstack
    let mut shared = Shared::default();
    for g in guests {
        let kernel = shared.add(&mut files, &g.elf, "elf")?;
        let ramdisk = match &g.ramdisk {
            Some(r) => Some(shared.add(&mut files, r, "ramdisk")?),
            None => None,
        };
        files.push((
            format!("{}.cfg", g.name),
            test_xl_config(g, &kernel, ramdisk.as_deref()).into_bytes(),
            false,
        ));
        if g.libvirt {
            if ramdisk.is_some() {
                bail!("{}: a libvirt test guest takes no ramdisk", g.name);
            }
            files.push((
                format!("{}.xml", g.name),
                super::xl::test_libvirt_xml(g, &kernel).into_bytes(),
                false,
            ));
        }
        for tool in &g.tools {
            let name = tool
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("tool {} has no file name", tool.display()))?
                .to_string();
            if !files.iter().any(|(n, _, _)| *n == name) {
                let data =
                    std::fs::read(tool).with_context(|| format!("reading {}", tool.display()))?;
                files.push((name, data, true));
            }
        }
        if let Some(script) = &g.dom0 {
            files.push((
                format!("{}.dom0", g.name),
                script.clone().into_bytes(),
                true,
            ));
        }
        for (script, suffix) in [
            (&g.early, "early"),
            (&g.before, "before"),
            (&g.after, "after"),
        ] {
            if let Some(script) = script {
                files.push((
                    format!("{}.{suffix}", g.name),
                    script.clone().into_bytes(),
                    true,
                ));
            }
        }
        if !g.input.is_empty() {
            let mut text = g.input.join("\n");
            text.push('\n');
            files.push((format!("{}.input", g.name), text.into_bytes(), false));
        }
        // The pattern is quoted for the shell; it must not contain a quote.
        let dump = match g.dump_at.as_deref() {
            Some(d) if d.contains('\'') => bail!("dump-core pattern {d:?} contains a quote"),
            Some(d) => format!(" '{d}'"),
            None => String::new(),
        };
        plan.push_str(&format!(
            "/harness/run-guest.sh {} /harness/{}.cfg {}{dump} || rc=1\n",
            g.name, g.name, g.timeout
        ));
        total += u64::from(g.timeout) + 10;
    }
    plan.push_str("exit $rc\n");
    files.push(("plan".into(), plan.into_bytes(), true));
    let initrd = initramfs(a, session, &files)?;
    // Two-host migrations: a second host on a link with this one, started
    // with the session (it boots while the first guests run).
    let mut dom0_args = format!("harness.mode=test harness.timeout={total}");
    let (link, _peer) = if guests.iter().any(|g| g.peer) {
        let (here, there) = HostLink::pair()?;
        let peer = PeerHost::start(a, &initrd, &there, session, total)?;
        show(
            0.0,
            &format!(
                "harness: second host started (its console: {})",
                harness_dir(session).join("peer-serial.log").display()
            ),
        );
        dom0_args.push_str(" harness.peer=10.0.0.254");
        (Some(here), Some(peer))
    } else {
        (None, None)
    };
    let mut args = xen_dom0_linux_args(a, &initrd, &dom0_args)?;
    if let Some(l) = &link {
        args.extend(l.args());
    }
    // A monitor socket, to see where the CPUs are if the session stalls.
    let monitor = harness_dir(session).join("monitor.sock");
    let _ = std::fs::remove_file(&monitor);
    args.push("-monitor".into());
    args.push(format!("unix:{},server=on,wait=off", monitor.display()).into());
    let mut q = Qemu::spawn(&args, &harness_dir(session).join("serial.log"), true)?;
    let deadline = Instant::now() + Duration::from_secs(total + 30);
    let mut runs: Vec<GuestRun> = guests.iter().map(|g| GuestRun::new(&g.name)).collect();
    // run-guest.sh reports every 30 s while it watches a guest, and dom0
    // scripts print as they go: a healthy session is never silent for long.
    // Past `QUIET` the toolstack is wedged and waiting longer only delays
    // the report (and the retry).
    let mut last_line = Instant::now();
    let mut nudged = false;
    loop {
        let wait = if nudged { QUIET - NUDGE } else { NUDGE };
        let until = deadline.min(Instant::now() + wait);
        match q.next_line(until) {
            // dom0's console echoes the byte sent to it: its kernel runs,
            // but that is not the output we wait for.
            Next::Line(t, line) if nudged && line.trim().is_empty() => {
                show(
                    t,
                    "harness: dom0's console echoed the byte (its kernel runs)",
                );
            }
            Next::Line(t, line) => {
                if nudged {
                    show(
                        t,
                        &format!(
                            "harness: output again after {:.0} s of silence (a byte went to the serial input after {} s)",
                            last_line.elapsed().as_secs_f64(),
                            NUDGE.as_secs()
                        ),
                    );
                    nudged = false;
                }
                last_line = Instant::now();
                if let Some(l) = console::take_line(&mut runs, t, &line) {
                    show(t, &l);
                }
            }
            Next::Ended => break,
            Next::TimedOut if Instant::now() < deadline && !nudged => {
                show(
                    q.elapsed(),
                    &format!(
                        "harness: no output for {} s, sending a byte to the serial input",
                        NUDGE.as_secs()
                    ),
                );
                if let Err(e) = q.send(b"\n") {
                    show(q.elapsed(), &format!("harness: writing to QEMU: {e:#}"));
                }
                nudged = true;
            }
            Next::TimedOut if Instant::now() < deadline => {
                show(
                    q.elapsed(),
                    &format!(
                        "harness: no output for {} s: dom0 is stuck, stopping QEMU",
                        QUIET.as_secs()
                    ),
                );
                // Where the CPUs are: in Xen (0xffff82d0...), in dom0's
                // kernel, or in a guest.
                match qemu::monitor(&monitor, "info registers -a") {
                    Ok(out) => {
                        for l in out
                            .lines()
                            .filter(|l| ["CPU#", "RIP=", "EIP="].iter().any(|p| l.starts_with(p)))
                        {
                            show(q.elapsed(), &format!("harness: qemu: {l}"));
                        }
                    }
                    Err(e) => show(q.elapsed(), &format!("harness: qemu monitor: {e:#}")),
                }
                for r in runs.iter_mut().filter(|r| r.end == End::Missing) {
                    r.stalled = true;
                }
                break;
            }
            Next::TimedOut => {
                show(q.elapsed(), "harness: host timeout, stopping QEMU");
                break;
            }
        }
    }
    q.finish(true);
    Ok(runs)
}

/// Boots `elf` directly as Xen's PV dom0 (the XTF-style fast path); the log
/// goes to `target/harness/<name>/`.
pub fn run_dom0(
    a: &Artifacts,
    name: &str,
    elf: &Path,
    cmdline: &str,
    timeout: u64,
    show: &mut dyn FnMut(f64, &str),
) -> Result<GuestRun> {
    check_path(elf)?;
    let args = with_xen(
        machine(1, 512, false),
        a,
        xen_cmdline(32, 1),
        format!("{} {cmdline}", elf.display()),
    );
    let mut q = Qemu::spawn(&args, &harness_dir(name).join("serial.log"), false)?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut run = GuestRun::new(name);
    let mut booted = false;
    loop {
        match q.next_line(deadline) {
            Next::Line(t, line) => {
                // Xen stays up after dom0 powers off; these lines are the end.
                if line.contains("Hardware Dom0 halted") {
                    run.end = End::Poweroff;
                } else if line.contains("Hardware Dom0 crashed") {
                    run.end = End::Crashed;
                } else if line.contains("Hardware Dom0 shutdown") {
                    run.end = End::Reboot;
                } else if line.contains("Panic on CPU") {
                    run.end = End::Other("xen panic".into());
                }
                if run.end != End::Missing {
                    run.t_end = Some(t);
                    show(t, &line);
                    break;
                }
                if line.starts_with("(XEN)") {
                    booted |= line.contains("Freed") && line.contains("init memory");
                    if line.contains("d0") && (line.contains("Unhandled") || line.contains("Bad")) {
                        run.diagnostics.push(line);
                    }
                } else if booted {
                    show(t, &format!("{name}| {line}"));
                    run.console.push(line);
                }
            }
            Next::Ended => break,
            Next::TimedOut => {
                run.end = End::Timeout;
                break;
            }
        }
    }
    q.finish(true);
    Ok(run)
}

/// Boots `elf` under bare QEMU through its PVH loader; the log goes to
/// `target/harness/<name>/`.
pub fn run_bare(
    name: &str,
    elf: &Path,
    cmdline: &str,
    timeout: u64,
    show: &mut dyn FnMut(f64, &str),
) -> Result<GuestRun> {
    let mut args = machine(1, 64, true);
    args.push("-kernel".into());
    args.push(elf.into());
    args.push("-append".into());
    args.push(cmdline.into());
    let mut q = Qemu::spawn(&args, &harness_dir(name).join("serial.log"), false)?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut run = GuestRun::new(name);
    let timed_out = loop {
        match q.next_line(deadline) {
            Next::Line(t, line) => {
                show(t, &format!("{name}| {line}"));
                run.console.push(line);
            }
            Next::Ended => break false,
            Next::TimedOut => break true,
        }
    };
    let t = q.elapsed();
    let code = q.finish(timed_out);
    run.t_end = Some(t);
    // isa-debug-exit: QEMU's status is (code << 1) | 1.
    run.end = match code {
        _ if timed_out => End::Timeout,
        Some(1) => End::Poweroff,
        Some(c) if c & 1 == 1 => End::Crashed,
        Some(c) => End::Other(format!("qemu exit status {c}")),
        None => End::Other("qemu killed by a signal".into()),
    };
    Ok(run)
}

/// Boots Xen + dom0 and attaches the terminal to the guest's console
/// (`xl create -c` in dom0). Ctrl-] leaves. `drives` (file, read-only)
/// become dom0's virtio disks `/dev/vda`, `/dev/vdb`, ... in order.
pub fn attach(
    a: &Artifacts,
    g: &GuestSpec,
    xl_cfg: &str,
    drives: &[(PathBuf, bool)],
    forwards: &[Forward],
) -> Result<()> {
    let mut files = vec![
        (format!("{}.elf", g.name), std::fs::read(&g.elf)?, false),
        ("attach.cfg".to_string(), xl_cfg.as_bytes().to_vec(), false),
    ];
    for tool in &g.tools {
        let name = tool
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("tool {} has no file name", tool.display()))?;
        files.push((name.to_string(), std::fs::read(tool)?, true));
    }
    let initrd = initramfs(a, "run", &files)?;
    // No watchdog to speak of: an interactive session lasts as long as the user wants.
    let mut dom0_args = String::from("harness.mode=attach harness.timeout=86400");
    if !forwards.is_empty() {
        let rules: Vec<String> = forwards
            .iter()
            .map(|f| format!("{}:{}:{}", f.host, f.guest_ip, f.guest))
            .collect();
        dom0_args.push_str(&format!(" harness.forward={}", rules.join(",")));
    }
    let mut args = xen_dom0_linux_args(a, &initrd, &dom0_args)?;
    if !forwards.is_empty() {
        // QEMU's user network: the host's 127.0.0.1:PORT reaches dom0's
        // PORT (10.0.2.15), where a forwarder passes it to the guest.
        let fwd: String = forwards
            .iter()
            .map(|f| format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.host))
            .collect();
        args.push("-netdev".into());
        args.push(format!("user,id=fwd,net=10.0.2.0/24{fwd}").into());
        args.push("-device".into());
        args.push("virtio-net-pci,netdev=fwd".into());
    }
    for (file, ro) in drives {
        check_path(file)?;
        let mut d = format!(
            "file={},if=virtio,format=raw,cache=writeback",
            file.display()
        );
        if *ro {
            d.push_str(",readonly=on");
        }
        args.push("-drive".into());
        args.push(d.into());
    }
    let q = Qemu::spawn(&args, &harness_dir("run").join("serial.log"), true)?;
    crate::terminal::attach(q)
}
