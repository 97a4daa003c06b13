//! A guest as a test or the bench asks for it ([`GuestSpec`]) and as the
//! harness saw it run ([`GuestRun`], ended as an [`End`]).
use std::fmt;
use std::path::{Path, PathBuf};

use crate::manifest::Mode;

/// One guest for a domU session.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Domain name (also the test name).
    pub name: String,
    /// The image.
    pub elf: PathBuf,
    /// PV or PVH.
    pub mode: Mode,
    /// MiB.
    pub memory: u32,
    /// Guest command line.
    pub cmdline: String,
    /// Seconds from `xl create` to giving up.
    pub timeout: u32,
    /// A console pattern at which the harness takes `xl dump-core` of the guest.
    pub dump_at: Option<String>,
    /// Lines typed into the guest's console, one per `rt> ` prompt.
    pub input: Vec<String>,
    /// The xl `vif` entry (e.g. `bridge=xenbr0,mac=...`), if it has one.
    pub vif: Option<String>,
    /// A script dom0 runs (bash, `$NAME` set) once the guest prints
    /// `harness: net-ready`; its output is reported line by line.
    pub dom0: Option<String>,
    /// A script dom0 starts in the background as `xl create` starts (bash,
    /// `$NAME` set), reported as `early| <line>`: timings from creation.
    pub early: Option<String>,
    /// The xl `disk` entries (e.g. `format=raw,vdev=xvda,access=rw,target=/tmp/d.img`).
    pub disks: Vec<String>,
    /// A script dom0 runs before `xl create` (bash, `$NAME` set), reported
    /// as `before| <line>`; if it fails the guest is not created.
    pub before: Option<String>,
    /// A script dom0 runs once the domain is destroyed (bash, `$NAME` set),
    /// reported as `after| <line>`: checks of the guest's disks.
    pub after: Option<String>,
    /// An initramfs for the kernel (`ramdisk` in the xl config).
    pub ramdisk: Option<PathBuf>,
    /// Whether it needs the second harness host (two-host migration): the
    /// session then starts one (see `harness::run`).
    pub peer: bool,
    /// Host programs dom0 gets as `/harness/<file name>` (executable; once
    /// per session however many guests name them), for its scripts.
    pub tools: Vec<PathBuf>,
    /// Created by libvirt (`virsh -c xen:///system create`, from the XML of
    /// `harness::xl::test_libvirt_xml`) instead of `xl create`; the harness
    /// follows it across a reboot (libvirt restarts it).
    pub libvirt: bool,
    /// The physical CPUs it may run on (xl's `cpus`); `None`: unpinned,
    /// wherever Xen's scheduler puts it.
    pub cpus: Option<String>,
}

impl GuestSpec {
    /// A guest with no command line, console input, vif or dom0 scripts.
    pub fn new(name: &str, elf: &Path, mode: Mode, memory: u32, timeout: u32) -> GuestSpec {
        GuestSpec {
            name: name.into(),
            elf: elf.into(),
            mode,
            memory,
            cmdline: String::new(),
            timeout,
            dump_at: None,
            input: vec![],
            vif: None,
            dom0: None,
            early: None,
            disks: vec![],
            before: None,
            after: None,
            ramdisk: None,
            peer: false,
            tools: vec![],
            libvirt: false,
            cpus: Some(super::xl::GUEST_CPUS.into()),
        }
    }
}

/// How a guest ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Shut down with SHUTDOWN_poweroff (bare QEMU: exit code 0).
    Poweroff,
    /// SHUTDOWN_reboot.
    Reboot,
    /// SHUTDOWN_crash (bare QEMU: a non-zero exit code).
    Crashed,
    /// Still running when its time was up.
    Timeout,
    /// `xl create` failed and no domain appeared.
    CreateFailed,
    /// The harness never reported an end (the session died).
    Missing,
    /// Anything else the harness reported.
    Other(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Poweroff => f.write_str("poweroff"),
            End::Reboot => f.write_str("reboot"),
            End::Crashed => f.write_str("crashed"),
            End::Timeout => f.write_str("timeout"),
            End::CreateFailed => f.write_str("create-failed"),
            End::Missing => f.write_str("no result"),
            End::Other(s) => f.write_str(s),
        }
    }
}

/// What one guest did.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// Name.
    pub name: String,
    /// Its console output, line by line.
    pub console: Vec<String>,
    /// How it ended.
    pub end: End,
    /// Seconds from QEMU start until the end was known.
    pub t_end: Option<f64>,
    /// Diagnostics the harness printed about it (xl errors, Xen log tail).
    pub diagnostics: Vec<String>,
    /// Other harness reports about it (e.g. `dump-core rc=0 bytes=...`).
    pub events: Vec<String>,
    /// The session stalled (the dom0 toolstack stopped answering) before this
    /// guest reported: it never ran or never finished through no fault of its own.
    pub stalled: bool,
}

impl GuestRun {
    /// A run that has not reported yet.
    pub fn new(name: &str) -> GuestRun {
        GuestRun {
            name: name.into(),
            console: vec![],
            end: End::Missing,
            t_end: None,
            diagnostics: vec![],
            events: vec![],
            stalled: false,
        }
    }
}
