//! The plan of the guest tests, as data: which images to build, and for each
//! test the image, how it boots, its domain, what drives it and who judges
//! it. The runner builds the images, boots the bare and dom0 tests on their
//! own and every domU test in one Xen session, in this order.
use crate::harness::{End, GuestRun};
use crate::manifest::Mode;

use super::judge::backend::judge_hostile_backend;
use super::judge::blk::{judge_blk, judge_fat, judge_store_crash};
use super::judge::boot::{
    HelloExpect, MEMTEST_HEAP_MIB, judge_fault, judge_hello, judge_memtest, judge_mmtest, judge_oot,
};
use super::judge::hostile::{
    FLOOD_SESSION, judge_console_flood, judge_hostile_xenstore, judge_soak,
};
use super::judge::libvirt::{
    VIRSH_MIB, VIRSH_SAVE_SESSION, VIRSH_SESSION, judge_virsh, judge_virsh_migrate,
    judge_virsh_saverestore,
};
use super::judge::lifecycle::{
    judge_checkpoint, judge_migrate, judge_migrate_2host, judge_saverestore,
};
use super::judge::net::{
    judge_cycles, judge_detach, judge_dhcp, judge_echo, judge_httpd, judge_httpd_abuse,
    judge_tcp_tx,
};
use super::judge::shell::{
    CONTROL_SESSION, CONTROL_TIMERS, SHELL_MIB, SHELL_SESSION, TIMERS_SESSION, UNPINNED_SESSION,
    UNPINNED_TIMERS, judge_ended_by, judge_shell, judge_timers, judge_timers_n,
};

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
    /// Runs it may take when a run ends in a triple fault (each retry in a
    /// fresh harness session, reported in its result); 1: no retry.
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
    fn new(
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

    fn cmdline(self, cmdline: &'static str) -> GuestTest {
        GuestTest { cmdline, ..self }
    }

    fn input(self, input: &'static [&'static str]) -> GuestTest {
        GuestTest { input, ..self }
    }

    /// Unpinned (see `harness::xl`), with `attempts` runs when one ends in
    /// a triple fault; long mode only for now (its one run so far hung: the
    /// vCPU halted with interrupts on, its timer event never delivered).
    fn unpinned(self, attempts: u32) -> GuestTest {
        GuestTest {
            cpus: None,
            attempts,
            long_only: true,
            ..self
        }
    }

    /// Pinned to `cpus` (xl's syntax), and run only in the long mode.
    fn long_only_on(self, cpus: &'static str) -> GuestTest {
        GuestTest {
            cpus: Some(cpus),
            long_only: true,
            ..self
        }
    }

    fn long(self, env: &'static str, timeout: u32) -> GuestTest {
        GuestTest {
            long: Some(Long { env, timeout }),
            ..self
        }
    }

    fn dom0(self, script: &'static str) -> GuestTest {
        GuestTest {
            dom0: Some(script),
            ..self
        }
    }

    fn disks(
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

    fn peer(self) -> GuestTest {
        GuestTest { peer: true, ..self }
    }

    fn dump_at(self, line: &'static str) -> GuestTest {
        GuestTest {
            dump_at: Some(line),
            ..self
        }
    }
}

/// The network guests' address (dom0 is 10.0.0.1 on xenbr0) and vif.
pub const NET_CMDLINE: &str = "ip=10.0.0.2/24 gw=10.0.0.1";
/// See [`NET_CMDLINE`].
pub const NET_VIF: &str = "bridge=xenbr0,mac=00:16:3e:00:00:02";

/// What dom0 runs against each kind of network guest, once its network is
/// up (`scripts/dom0/tests/`).
mod dom0 {
    pub const ECHO: &str = include_str!("../../../scripts/dom0/tests/echo.sh");
    pub const HTTPD: &str = include_str!("../../../scripts/dom0/tests/httpd.sh");
    pub const HTTPD_AFTER: &str = include_str!("../../../scripts/dom0/tests/httpd-after.sh");
    pub const TCP_TX: &str = include_str!("../../../scripts/dom0/tests/tcp-tx.sh");
    pub const HTTPD_ABUSE: &str = include_str!("../../../scripts/dom0/tests/httpd-abuse.sh");
    pub const DETACH: &str = include_str!("../../../scripts/dom0/tests/detach.sh");
    pub const DHCP: &str = include_str!("../../../scripts/dom0/tests/dhcp.sh");
    pub const CYCLES: &str = include_str!("../../../scripts/dom0/tests/cycles.sh");
    // The save/restore and migration scripts share lib.sh, prepended.
    macro_rules! with_lib {
        ($script:literal) => {
            concat!(
                include_str!("../../../scripts/dom0/tests/lib.sh"),
                include_str!(concat!("../../../scripts/dom0/tests/", $script))
            )
        };
    }
    pub const SAVERESTORE: &str = with_lib!("saverestore.sh");
    pub const CHECKPOINT: &str = with_lib!("checkpoint.sh");
    pub const MIGRATE: &str = with_lib!("migrate.sh");
    pub const MIGRATE_2HOST: &str = with_lib!("migrate2host.sh");
    pub const VIRSH_MIGRATE: &str = with_lib!("virsh-migrate.sh");
    pub const HOSTILE_XENSTORE: &str = with_lib!("hostile-xenstore.sh");
    pub const SOAK: &str = with_lib!("soak.sh");
    pub const HOSTILE_BACKEND: &str = with_lib!("hostile-backend.sh");
    pub const BLK_BEFORE: &str = include_str!("../../../scripts/dom0/tests/blk-before.sh");
    pub const BLK_AFTER: &str = include_str!("../../../scripts/dom0/tests/blk-after.sh");
    pub const STORE_BEFORE: &str = include_str!("../../../scripts/dom0/tests/store-before.sh");
    pub const STORE_AFTER: &str = include_str!("../../../scripts/dom0/tests/store-after.sh");
    pub const STORE_CRASH: &str = include_str!("../../../scripts/dom0/tests/store-crash.sh");
    pub const FAT_BEFORE: &str = include_str!("../../../scripts/dom0/tests/fat-before.sh");
    pub const FAT_AFTER: &str = include_str!("../../../scripts/dom0/tests/fat-after.sh");
    pub const VIRSH_AFTER: &str = include_str!("../../../scripts/dom0/tests/virsh-after.sh");
    pub const VIRSH_SAVE_AFTER: &str =
        include_str!("../../../scripts/dom0/tests/virsh-save-after.sh");
}

/// fattest's disk: a FAT image dom0 made.
const FAT_DISKS: &[&str] =
    &["format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{NAME}-fat.img"];

fn fat(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest::new(name, "fattest", Boot::DomU(mode), 32, 300, judge_fat).disks(
        FAT_DISKS,
        dom0::FAT_BEFORE,
        dom0::FAT_AFTER,
    )
}

/// The store's disk.
const STORE_DISKS: &[&str] =
    &["format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{NAME}-a.img"];

/// The store under a client, cut down by `xl destroy` mid-stream and booted
/// again on its disk.
fn store_crash(name: &'static str, mode: Mode) -> GuestTest {
    net(
        name,
        "store",
        mode,
        600,
        dom0::STORE_CRASH,
        judge_store_crash,
    )
    .disks(STORE_DISKS, dom0::STORE_BEFORE, dom0::STORE_AFTER)
}

/// blktest's disks: a 256 MiB one to write, a small read-only one.
const BLK_DISKS: &[&str] = &[
    "format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{NAME}-a.img",
    "format=raw,vdev=xvdb,access=ro,backendtype=phy,target=/tmp/{NAME}-ro.img",
];

fn blk(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest::new(name, "blktest", Boot::DomU(mode), 64, 600, judge_blk).disks(
        BLK_DISKS,
        dom0::BLK_BEFORE,
        dom0::BLK_AFTER,
    )
}

fn hello(name: &'static str, boot: Boot, want: &'static str, memory: (u64, u64)) -> GuestTest {
    let timeout = if boot == Boot::Dom0 { 120 } else { 30 };
    let expect = HelloExpect { mode: want, memory };
    GuestTest::new(name, "hello", boot, memory.1 as u32, timeout, move |r| {
        judge_hello(r, &expect)
    })
    .cmdline("timeline")
}

fn mmtest(name: &'static str, mode: Mode) -> GuestTest {
    let pv = mode == Mode::Pv;
    let t = GuestTest::new(name, "mmtest", Boot::DomU(mode), 128, 180, move |r| {
        judge_mmtest(r, pv)
    });
    // The p2m a dump-core walks is PV's; a PVH core (through HVM foreign
    // mappings) takes minutes under TCG.
    if pv {
        t.cmdline("dump-core").dump_at("ready for dump-core")
    } else {
        t
    }
}

fn memtest(name: &'static str, mode: Mode, memory: u32) -> GuestTest {
    GuestTest::new(
        name,
        "memtest",
        Boot::DomU(mode),
        memory,
        240,
        judge_memtest,
    )
}

fn memtest_oom(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest::new(name, "memtest-heap24", Boot::DomU(mode), 64, 120, |r| {
        let want = format!("limit {} KiB;", MEMTEST_HEAP_MIB * 1024);
        if !r.console.iter().any(|l| l.contains(&want)) {
            return Err(format!("the report does not name the limit ({want})"));
        }
        judge_fault(r, "rt: out of memory: asked for", false)
    })
    .cmdline("oom")
}

/// The shell guest managed through libvirt only (see `judge::libvirt`).
fn virsh(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest {
        after: Some(dom0::VIRSH_AFTER),
        libvirt: true,
        ..GuestTest::new(name, "shell", Boot::DomU(mode), VIRSH_MIB, 240, judge_virsh)
            .input(VIRSH_SESSION)
    }
}

fn shell(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest::new(
        name,
        "shell",
        Boot::DomU(mode),
        SHELL_MIB as u32,
        150,
        judge_shell,
    )
    .input(SHELL_SESSION)
}

/// A short shell session ended by one request: `xl reboot`, or the shell's
/// own `halt`/`reboot`.
fn ended_by(
    name: &'static str,
    mode: Mode,
    input: &'static [&'static str],
    want: End,
    line: &'static str,
) -> GuestTest {
    GuestTest::new(
        name,
        "shell",
        Boot::DomU(mode),
        SHELL_MIB as u32,
        60,
        move |r| judge_ended_by(r, &want, line),
    )
    .input(input)
}

fn net(
    name: &'static str,
    image: &'static str,
    mode: Mode,
    timeout: u32,
    script: &'static str,
    judge: impl Fn(&GuestRun) -> Result<String, String> + 'static,
) -> GuestTest {
    GuestTest::new(name, image, Boot::DomU(mode), 32, timeout, judge)
        .cmdline(NET_CMDLINE)
        .dom0(script)
}

fn fault(
    name: &'static str,
    mode: Mode,
    cmdline: &'static str,
    want: &'static str,
    walk: bool,
) -> GuestTest {
    GuestTest::new(name, "faulttest", Boot::DomU(mode), 32, 30, move |r| {
        judge_fault(r, want, walk)
    })
    .cmdline(cmdline)
}

/// Every guest test, in the order it runs.
pub fn guest_tests() -> Vec<GuestTest> {
    use Mode::{Pv, Pvh};
    vec![
        hello("hello-qemu-pvh", Boot::Bare, "qemu-pvh", (60, 64)),
        hello("hello-pv-dom0", Boot::Dom0, "pv-dom0", (32, 32)),
        net("echo-pv", "echo", Pv, 300, dom0::ECHO, judge_echo),
        net("echo-pvh", "echo", Pvh, 300, dom0::ECHO, judge_echo),
        net("httpd-keepalive-pv", "httpd", Pv, 240, dom0::HTTPD, |r| {
            judge_httpd(r, false)
        }),
        // With a FAT disk: its files are served too.
        net("httpd-keepalive-pvh", "httpd", Pvh, 240, dom0::HTTPD, |r| {
            judge_httpd(r, true)
        })
        .disks(FAT_DISKS, dom0::FAT_BEFORE, dom0::HTTPD_AFTER),
        net(
            "httpd-abuse-pv",
            "httpd",
            Pv,
            240,
            dom0::HTTPD_ABUSE,
            judge_httpd_abuse,
        ),
        net("tcp-tx-pv", "echo", Pv, 300, dom0::TCP_TX, judge_tcp_tx),
        net("tcp-tx-pvh", "echo", Pvh, 300, dom0::TCP_TX, judge_tcp_tx),
        net(
            "echo-detach-pv",
            "echo",
            Pv,
            120,
            dom0::DETACH,
            judge_detach,
        ),
        net("echo-dhcp-pv", "echo", Pv, 90, dom0::DHCP, judge_dhcp).cmdline("ip=dhcp"),
        net(
            "echo-cycles-pvh",
            "echo",
            Pvh,
            600,
            dom0::CYCLES,
            judge_cycles,
        ),
        net(
            "saverestore-pv",
            "echo",
            Pv,
            300,
            dom0::SAVERESTORE,
            judge_saverestore,
        ),
        net(
            "saverestore-pvh",
            "echo",
            Pvh,
            300,
            dom0::SAVERESTORE,
            judge_saverestore,
        ),
        net(
            "checkpoint-pv",
            "echo",
            Pv,
            300,
            dom0::CHECKPOINT,
            judge_checkpoint,
        ),
        net(
            "checkpoint-pvh",
            "echo",
            Pvh,
            300,
            dom0::CHECKPOINT,
            judge_checkpoint,
        ),
        net("migrate-pv", "echo", Pv, 900, dom0::MIGRATE, judge_migrate),
        net(
            "migrate-pvh",
            "echo",
            Pvh,
            900,
            dom0::MIGRATE,
            judge_migrate,
        ),
        net(
            "migrate-2host-pv",
            "echo",
            Pv,
            600,
            dom0::MIGRATE_2HOST,
            judge_migrate_2host,
        )
        .peer(),
        net(
            "migrate-2host-pvh",
            "echo",
            Pvh,
            600,
            dom0::MIGRATE_2HOST,
            judge_migrate_2host,
        )
        .peer(),
        // The same move through libvirt: created by `virsh create`,
        // migrated with `virsh migrate --live` there and back.
        GuestTest {
            libvirt: true,
            ..net(
                "virsh-migrate-pv",
                "echo",
                Pv,
                600,
                dom0::VIRSH_MIGRATE,
                judge_virsh_migrate,
            )
            .peer()
        },
        net(
            "hostile-xenstore-pv",
            "echo",
            Pv,
            300,
            dom0::HOSTILE_XENSTORE,
            judge_hostile_xenstore,
        ),
        net(
            "hostile-xenstore-pvh",
            "echo",
            Pvh,
            300,
            dom0::HOSTILE_XENSTORE,
            judge_hostile_xenstore,
        ),
        net(
            "hostile-backend-pvh",
            "echo",
            Pvh,
            300,
            dom0::HOSTILE_BACKEND,
            judge_hostile_backend,
        ),
        // Three minutes of load (SOAK_SECONDS) in a 10-minute budget; the
        // long version: 30 minutes.
        net("soak-pv", "echo", Pv, 600, dom0::SOAK, judge_soak).long("SOAK_SECONDS=1800", 2400),
        // 20 create/destroy cycles of a PV echo guest in the suite, 200 in
        // the long version; then what is left in dom0.
        net("cycles-200-pv", "echo", Pv, 600, dom0::CYCLES, judge_cycles).long("CYCLES=200", 3600),
        blk("blk-pv", Pv),
        blk("blk-pvh", Pvh),
        fat("fat-pv", Pv),
        fat("fat-pvh", Pvh),
        store_crash("blk-crash-pv", Pv),
        store_crash("blk-crash-pvh", Pvh),
        hello("hello-pv", Boot::DomU(Pv), "pv", (32, 32)),
        GuestTest::new("oot-hello-pv", OOT_APP, Boot::DomU(Pv), 32, 30, judge_oot),
        shell("shell-pv", Pv),
        GuestTest::new(
            "console-flood-pv",
            "shell",
            Boot::DomU(Pv),
            SHELL_MIB as u32,
            240,
            judge_console_flood,
        )
        .input(FLOOD_SESSION),
        shell("shell-pvh", Pvh),
        virsh("virsh-pv", Pv),
        virsh("virsh-pvh", Pvh),
        GuestTest {
            libvirt: true,
            after: Some(dom0::VIRSH_SAVE_AFTER),
            ..GuestTest::new(
                "virsh-saverestore-pvh",
                "shell",
                Boot::DomU(Pvh),
                VIRSH_MIB,
                240,
                judge_virsh_saverestore,
            )
            .input(VIRSH_SAVE_SESSION)
        },
        ended_by(
            "xl-reboot-pv",
            Pv,
            &["@xl reboot"],
            End::Reboot,
            "rt: the toolstack asked to reboot",
        ),
        ended_by(
            "xl-reboot-pvh",
            Pvh,
            &["@xl reboot"],
            End::Reboot,
            "rt: the toolstack asked to reboot",
        ),
        ended_by(
            "shell-halt-pv",
            Pv,
            &["halt"],
            End::Poweroff,
            "shell: halting",
        ),
        ended_by(
            "shell-reboot-pvh",
            Pvh,
            &["reboot"],
            End::Reboot,
            "shell: rebooting",
        ),
        GuestTest::new(
            "timers-pvh",
            "shell",
            Boot::DomU(Pvh),
            SHELL_MIB as u32,
            180,
            judge_timers,
        )
        .input(TIMERS_SESSION),
        // The same storm, five times as long, unpinned (long mode): Xen's
        // scheduler puts it on either CPU, CPU 0 included (where QEMU takes
        // the machine's interrupts); a triple fault gets a retry, reported.
        GuestTest::new(
            "pvh-unpinned",
            "shell",
            Boot::DomU(Pvh),
            SHELL_MIB as u32,
            300,
            |r| judge_timers_n(r, UNPINNED_TIMERS),
        )
        .input(UNPINNED_SESSION)
        .unpinned(3),
        // Our PVH guest on CPU 0 (where the triple faults were seen) under
        // 200,000 one-shot timers of 300 us (long mode only).
        GuestTest::new(
            "pvh-cpu0-ours",
            "shell",
            Boot::DomU(Pvh),
            SHELL_MIB as u32,
            420,
            |r| judge_timers_n(r, CONTROL_TIMERS),
        )
        .input(CONTROL_SESSION)
        .long_only_on("0"),
        hello("hello-pvh", Boot::DomU(Pvh), "pvh", (28, 32)),
        // The smallest domains hello boots in: PV needs 4 MiB because Xen's
        // PV builder rounds the initial mapping up to 4 MiB; PVH boots in 2
        // (at 1 MiB the image, loaded at 1 MiB, does not fit).
        hello("hello-pv-4mib", Boot::DomU(Pv), "pv", (4, 4)),
        hello("hello-pvh-2mib", Boot::DomU(Pvh), "pvh", (1, 2)),
        mmtest("mmtest-pv", Pv),
        mmtest("mmtest-pvh", Pvh),
        memtest("memtest-pvh", Pvh, 64),
        memtest("memtest-1gib-pvh", Pvh, 1024),
        memtest_oom("memtest-oom-pv", Pv),
        memtest_oom("memtest-oom-pvh", Pvh),
        fault(
            "fault-guard-pv",
            Pv,
            "guard",
            "stack guard page: stack overflow",
            true,
        ),
        fault(
            "fault-overflow-pvh",
            Pvh,
            "overflow",
            "in a stack guard page: stack overflow",
            true,
        ),
        fault(
            "fault-wx-pv",
            Pv,
            "write-text",
            "page fault: write at",
            true,
        ),
        fault(
            "fault-wx-pvh",
            Pvh,
            "exec-data",
            "page fault: instruction fetch at",
            true,
        ),
        fault(
            "fault-null-pv",
            Pv,
            "null",
            "in page 0: null pointer dereference",
            true,
        ),
        fault("oom-pv", Pv, "oom", "rt: out of memory: asked for", false),
        // Last: twice the dom0 toolstack wedged right after a PV guest that
        // had ballooned was destroyed (see the closing note of issue 4);
        // placed here, such a wedge cannot take other tests with it.
        memtest("memtest-1gib-pv", Pv, 1024),
        memtest("memtest-pv", Pv, 64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_whole() {
        let plan = guest_tests();
        let mut names: Vec<&str> = plan.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 64, "every guest test of the suite");
        names.sort();
        names.dedup();
        assert_eq!(names.len(), plan.len(), "names are unique");
        for t in &plan {
            assert!(
                IMAGES.iter().any(|i| i.name == t.image) || t.image == OOT_APP,
                "{}: no image {}",
                t.name,
                t.image
            );
            assert!(
                t.dom0.is_none() || matches!(t.boot, Boot::DomU(_)),
                "{}: only a domU gets a vif",
                t.name
            );
        }
        // The dom0 scripts are whole bash scripts.
        for s in [
            dom0::ECHO,
            dom0::HTTPD,
            dom0::DETACH,
            dom0::DHCP,
            dom0::CYCLES,
            dom0::HOSTILE_BACKEND,
            dom0::SOAK,
        ] {
            assert!(s.starts_with("#!/bin/bash\n") && s.contains("xl shutdown \"$NAME\""));
        }
    }

    #[test]
    fn a_long_version_sets_its_variables_after_the_shebang() {
        let plan = guest_tests();
        let long: Vec<&str> = plan
            .iter()
            .filter(|t| t.long.is_some())
            .map(|t| t.name)
            .collect();
        assert_eq!(long, ["soak-pv", "cycles-200-pv"]);
        let soak = plan.iter().find(|t| t.name == "soak-pv").unwrap();
        let l = soak.long.unwrap();
        let script = l.script(soak.dom0.unwrap());
        assert!(script.starts_with("#!/bin/bash\nSOAK_SECONDS=1800\n"));
        assert!(script.ends_with(soak.dom0.unwrap().split_once('\n').unwrap().1));
        assert!(l.timeout > 1800 + 300, "the long soak fits its time");
    }
}
