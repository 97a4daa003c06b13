//! The plan's vocabulary: the images the tests boot, how a test boots,
//! and a guest test with its builder methods (used by `kinds` and the plan).
use crate::harness::GuestRun;
use crate::manifest::Mode;

use crate::test::judge::boot::MEMTEST_HEAP_MIB;

/// An image the tests boot: built from `app` (with a heap limit in MiB if
/// given) under `name`.
pub struct Image {
    /// The image's name (what tests refer to).
    pub name: &'static str,
    /// The app crate.
    pub app: &'static str,
    /// The heap limit built in.
    pub heap: Option<u32>,
}

/// Every image the tests boot, in build order.
pub const IMAGES: &[Image] = &[
    Image::app("hello"),
    Image::app("faulttest"),
    Image::app("mmtest"),
    Image::app("memtest"),
    Image::app("shell"),
    Image::app("echo"),
    Image::app("httpd"),
    Image::app("blktest"),
    Image::app("store"),
    Image::app("fattest"),
    Image {
        name: "memtest-heap24",
        app: "memtest",
        heap: Some(MEMTEST_HEAP_MIB),
    },
];

/// The Linux control guest's "image": Debian's kernel as provisioned, with
/// the busybox initramfs and `bench-echo` (the runner prepares it).
pub const LINUX: &str = "linux";

/// The app the runner makes with `cargo xtask new` outside the workspace
/// and builds with its own `cargo xtask build` (an image like the others).
pub const OOT_APP: &str = "oot-hello";

impl Image {
    const fn app(name: &'static str) -> Image {
        Image {
            name,
            app: name,
            heap: None,
        }
    }
}

/// How a test boots its image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Boot {
    /// Bare QEMU through its PVH loader.
    Bare,
    /// Given to Xen as its PV dom0.
    Dom0,
    /// A domU of the shared Xen + Debian dom0 session.
    DomU(Mode),
}

/// Decides a run: `Ok(detail)` or `Err(why it failed)`.
pub type Judge = Box<dyn Fn(&GuestRun) -> Result<String, String>>;

/// One guest test.
pub struct GuestTest {
    /// The test's name (and the domain's).
    pub name: &'static str,
    /// The image ([`IMAGES`]' name).
    pub image: &'static str,
    /// How it boots.
    pub boot: Boot,
    /// The domain's memory, MiB.
    pub memory: u32,
    /// The kernel command line.
    pub cmdline: &'static str,
    /// Seconds it may take.
    pub timeout: u32,
    /// A console line at which the harness takes an `xl dump-core`.
    pub dump_at: Option<&'static str>,
    /// Lines typed into its console, one per prompt (`@` lines the harness
    /// does itself).
    pub input: &'static [&'static str],
    /// The dom0 script of a network test (the guest then gets a vif).
    pub dom0: Option<&'static str>,
    /// Whether it needs the second harness host (two-host migration).
    pub peer: bool,
    /// Its xl `disk` entries; `{NAME}` stands for the test's name.
    pub disks: &'static [&'static str],
    /// dom0 scripts run before `xl create` and after the domain is gone.
    pub before: Option<&'static str>,
    /// See [`Self::before`].
    pub after: Option<&'static str>,
    /// Created by libvirt (`virsh create`) rather than `xl create`.
    pub libvirt: bool,
    /// Its long version (`cargo xtask test --long`), if it has one.
    pub long: Option<Long>,
    /// The physical CPUs it may use (xl's `cpus`; `None`: unpinned).
    pub cpus: Option<&'static str>,
    /// Run only in the long mode (`cargo xtask test --long`).
    pub long_only: bool,
    /// Runs it may take when a run ends in a triple fault or hangs (each
    /// retry in a fresh harness session, reported in its result); 1: no
    /// retry.
    pub attempts: u32,
    /// Its judge.
    pub judge: Judge,
}

/// A test's long version, run outside CI (`cargo xtask test --long`): its
/// dom0 script with `env` (shell assignments) set first, and more time.
#[derive(Clone, Copy, Debug)]
pub struct Long {
    /// Shell assignments put before the script (`SOAK_SECONDS=1800`).
    pub env: &'static str,
    /// Seconds the long version may take.
    pub timeout: u32,
}

impl Long {
    /// `script` with the assignments after its `#!` line.
    pub fn script(&self, script: &str) -> String {
        match script.split_once('\n') {
            Some((bang, rest)) if bang.starts_with("#!") => format!("{bang}\n{}\n{rest}", self.env),
            _ => format!("{}\n{script}", self.env),
        }
    }
}

impl GuestTest {
    pub(super) fn new(
        name: &'static str,
        image: &'static str,
        boot: Boot,
        memory: u32,
        timeout: u32,
        judge: impl Fn(&GuestRun) -> Result<String, String> + 'static,
    ) -> GuestTest {
        GuestTest {
            name,
            image,
            boot,
            memory,
            cmdline: "",
            timeout,
            dump_at: None,
            input: &[],
            dom0: None,
            peer: false,
            disks: &[],
            before: None,
            after: None,
            libvirt: false,
            long: None,
            cpus: Some(crate::harness::GUEST_CPUS),
            attempts: 1,
            long_only: false,
            judge: Box::new(judge),
        }
    }

    pub(super) fn cmdline(self, cmdline: &'static str) -> GuestTest {
        GuestTest { cmdline, ..self }
    }

    pub(super) fn input(self, input: &'static [&'static str]) -> GuestTest {
        GuestTest { input, ..self }
    }

    /// Unpinned (see `harness::xl`: Xen's scheduler puts it on either CPU),
    /// with `attempts` runs when one ends in a triple fault or hangs (each
    /// retry in a fresh session, reported in the result).
    pub(super) fn unpinned(self, attempts: u32) -> GuestTest {
        GuestTest {
            cpus: None,
            attempts,
            ..self
        }
    }

    /// Run only in the long mode (`cargo xtask test --long`).
    pub(super) fn long_only(self) -> GuestTest {
        GuestTest {
            long_only: true,
            ..self
        }
    }

    /// Pinned to `cpus` (xl's syntax).
    pub(super) fn pinned(self, cpus: &'static str) -> GuestTest {
        GuestTest {
            cpus: Some(cpus),
            ..self
        }
    }

    pub(super) fn long(self, env: &'static str, timeout: u32) -> GuestTest {
        GuestTest {
            long: Some(Long { env, timeout }),
            ..self
        }
    }

    pub(super) fn dom0(self, script: &'static str) -> GuestTest {
        GuestTest {
            dom0: Some(script),
            ..self
        }
    }

    pub(super) fn disks(
        self,
        disks: &'static [&'static str],
        before: &'static str,
        after: &'static str,
    ) -> GuestTest {
        GuestTest {
            disks,
            before: Some(before),
            after: Some(after),
            ..self
        }
    }

    pub(super) fn peer(self) -> GuestTest {
        GuestTest { peer: true, ..self }
    }

    pub(super) fn dump_at(self, line: &'static str) -> GuestTest {
        GuestTest {
            dump_at: Some(line),
            ..self
        }
    }
}
