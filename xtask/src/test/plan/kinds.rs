//! The kinds of guest test the plan is made of (a network guest, a disk
//! guest, a shell session, a fault ...), each a [`GuestTest`] with its
//! judge, image, disks and dom0 scripts.
use crate::harness::{End, GuestRun};
use crate::manifest::Mode;

use crate::test::judge::blk::{judge_blk, judge_fat, judge_store_crash};
use crate::test::judge::boot::{
    HelloExpect, MEMTEST_HEAP_MIB, judge_fault, judge_hello, judge_memtest, judge_mmtest,
};
use crate::test::judge::libvirt::{VIRSH_MIB, VIRSH_SESSION, judge_virsh};
use crate::test::judge::shell::{
    SHELL_MIB, SHELL_SESSION, judge_ended_by, judge_shell, judge_timers,
};

use super::NET_CMDLINE;
use super::dom0;
use super::model::{Boot, GuestTest};

/// fattest's disk: a FAT image dom0 made.
pub(super) const FAT_DISKS: &[&str] =
    &["format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{NAME}-fat.img"];

pub(super) fn fat(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest::new(name, "fattest", Boot::DomU(mode), 32, 300, judge_fat).disks(
        FAT_DISKS,
        dom0::FAT_BEFORE,
        dom0::FAT_AFTER,
    )
}

/// The store's disk.
pub(super) const STORE_DISKS: &[&str] =
    &["format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{NAME}-a.img"];

/// The store under a client, cut down by `xl destroy` mid-stream and booted
/// again on its disk.
pub(super) fn store_crash(name: &'static str, mode: Mode) -> GuestTest {
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
pub(super) const BLK_DISKS: &[&str] = &[
    "format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{NAME}-a.img",
    "format=raw,vdev=xvdb,access=ro,backendtype=phy,target=/tmp/{NAME}-ro.img",
];

pub(super) fn blk(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest::new(name, "blktest", Boot::DomU(mode), 64, 600, judge_blk).disks(
        BLK_DISKS,
        dom0::BLK_BEFORE,
        dom0::BLK_AFTER,
    )
}

pub(super) fn hello(
    name: &'static str,
    boot: Boot,
    want: &'static str,
    memory: (u64, u64),
) -> GuestTest {
    let timeout = if boot == Boot::Dom0 { 120 } else { 30 };
    let expect = HelloExpect { mode: want, memory };
    GuestTest::new(name, "hello", boot, memory.1 as u32, timeout, move |r| {
        judge_hello(r, &expect)
    })
    .cmdline("timeline")
}

pub(super) fn mmtest(name: &'static str, mode: Mode) -> GuestTest {
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

pub(super) fn memtest(name: &'static str, mode: Mode, memory: u32) -> GuestTest {
    GuestTest::new(
        name,
        "memtest",
        Boot::DomU(mode),
        memory,
        240,
        judge_memtest,
    )
}

pub(super) fn memtest_oom(name: &'static str, mode: Mode) -> GuestTest {
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
pub(super) fn virsh(name: &'static str, mode: Mode) -> GuestTest {
    GuestTest {
        after: Some(dom0::VIRSH_AFTER),
        libvirt: true,
        ..GuestTest::new(name, "shell", Boot::DomU(mode), VIRSH_MIB, 240, judge_virsh)
            .input(VIRSH_SESSION)
    }
}

pub(super) fn shell(name: &'static str, mode: Mode) -> GuestTest {
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
pub(super) fn ended_by(
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

pub(super) fn net(
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

pub(super) fn fault(
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

/// A storm of one-shot timers of 300 us in the PVH shell (`session`: its
/// input, asking for `n` of them).
pub(super) fn timer_storm(
    name: &'static str,
    session: &'static [&'static str],
    n: u32,
    timeout: u32,
) -> GuestTest {
    GuestTest::new(
        name,
        "shell",
        Boot::DomU(Mode::Pvh),
        SHELL_MIB as u32,
        timeout,
        move |r| judge_timers(r, n),
    )
    .input(session)
}
