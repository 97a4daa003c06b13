//! `fattest`: a FAT file system on a Xen disk, through `rt::block::fat`.
//!
//! dom0 formats `xvda` whole (`mkfs.vfat`, FAT32 or FAT16) and puts files
//! in folders with mtools (`scripts/dom0/tests/fat-before.sh`): `HELLO.TXT`,
//! `DOCS/SEQ.TXT` (the output of `seq 1 50000`) and `DOCS/SUB/NOTE.TXT`.
//! The guest lists the folders, reads the files (checking `SEQ.TXT` line
//! by line), then writes `OUT.TXT` (`seq 1 30000`) at the root and
//! `DOCS/SUB/MORE.TXT`, closes them and flushes the disk. dom0 then runs
//! `fsck.vfat -n` and compares the new files byte for byte. Ends with
//! `test result: PASS fat`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rt::block::fat::embedded_sdmmc::{Mode, VolumeIdx};
use rt::block::{BlockDevice, Disk};

rt::main!(main);

/// What `seq 1 n` prints.
fn seq(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.extend_from_slice(format!("{i}\n").as_bytes());
    }
    v
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            rt::println!("test result: PASS fat");
            0
        }
        Err(why) => {
            rt::println!("fat: FAIL {why}");
            rt::println!("test result: FAIL fat");
            1
        }
    }
}

type FatError = rt::block::fat::embedded_sdmmc::Error<rt::block::BlockError>;

/// Names a file system error with what was being done.
fn e(what: &'static str) -> impl Fn(FatError) -> String {
    move |err| format!("{what}: {err:?}")
}

fn run() -> Result<(), String> {
    let disk = Disk::open("xvda").map_err(|err| format!("opening xvda: {err}"))?;
    let fat = rt::block::fat::open(disk).map_err(|err| format!("xvda: {err}"))?;
    rt::println!("fat: xvda layout {:?}", fat.device(|d| d.layout()));
    let vol = fat
        .open_volume(VolumeIdx(0))
        .map_err(e("opening the volume"))?;
    let root = vol.open_root_dir().map_err(e("the root folder"))?;
    let mut names = Vec::new();
    root.iterate_dir(|d| {
        names.push(format!(
            "{}{}",
            d.name,
            if d.attributes.is_directory() { "/" } else { "" }
        ));
        core::ops::ControlFlow::Continue(())
    })
    .map_err(e("listing /"))?;
    rt::println!("fat: / holds {}", names.join(" "));
    let read_all =
        |f: &rt::block::fat::embedded_sdmmc::File<'_, _, _, 4, 4, 1>| -> Result<Vec<u8>, String> {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while !f.is_eof() {
                let n = f.read(&mut buf).map_err(e("reading"))?;
                out.extend_from_slice(&buf[..n]);
            }
            Ok(out)
        };
    let hello = root
        .open_file_in_dir("HELLO.TXT", Mode::ReadOnly)
        .map_err(e("opening HELLO.TXT"))?;
    let text = read_all(&hello)?;
    hello.close().map_err(e("closing HELLO.TXT"))?;
    rt::println!(
        "fat: HELLO.TXT says {:?}",
        String::from_utf8_lossy(&text).trim_end()
    );
    let docs = root.open_dir("DOCS").map_err(e("opening DOCS"))?;
    let mut names = Vec::new();
    docs.iterate_dir(|d| {
        names.push(format!("{} ({} bytes)", d.name, d.size));
        core::ops::ControlFlow::Continue(())
    })
    .map_err(e("listing DOCS"))?;
    rt::println!("fat: /DOCS holds {}", names.join(", "));
    let f = docs
        .open_file_in_dir("SEQ.TXT", Mode::ReadOnly)
        .map_err(e("opening DOCS/SEQ.TXT"))?;
    let got = read_all(&f)?;
    f.close().map_err(e("closing SEQ.TXT"))?;
    if got != seq(50000) {
        return Err(format!(
            "DOCS/SEQ.TXT is not seq 1 50000 ({} bytes)",
            got.len()
        ));
    }
    rt::println!(
        "fat: DOCS/SEQ.TXT read, {} bytes, as dom0 wrote it",
        got.len()
    );
    let sub = docs.open_dir("SUB").map_err(e("opening DOCS/SUB"))?;
    let f = sub
        .open_file_in_dir("NOTE.TXT", Mode::ReadOnly)
        .map_err(e("opening DOCS/SUB/NOTE.TXT"))?;
    let note = read_all(&f)?;
    f.close().map_err(e("closing NOTE.TXT"))?;
    rt::println!(
        "fat: DOCS/SUB/NOTE.TXT says {:?}",
        String::from_utf8_lossy(&note).trim_end()
    );
    // Writes.
    let out = seq(30000);
    let f = root
        .open_file_in_dir("OUT.TXT", Mode::ReadWriteCreateOrTruncate)
        .map_err(e("creating OUT.TXT"))?;
    for chunk in out.chunks(3000) {
        f.write(chunk).map_err(e("writing OUT.TXT"))?;
    }
    f.close().map_err(e("closing OUT.TXT"))?;
    let f = sub
        .open_file_in_dir("MORE.TXT", Mode::ReadWriteCreateOrTruncate)
        .map_err(e("creating DOCS/SUB/MORE.TXT"))?;
    f.write(b"written by the unikernel\n")
        .map_err(e("writing MORE.TXT"))?;
    f.close().map_err(e("closing MORE.TXT"))?;
    sub.close().map_err(e("closing SUB"))?;
    docs.close().map_err(e("closing DOCS"))?;
    // Read back through the file system, then make it durable.
    let f = root
        .open_file_in_dir("OUT.TXT", Mode::ReadOnly)
        .map_err(e("reopening OUT.TXT"))?;
    let back = read_all(&f)?;
    f.close().map_err(e("closing OUT.TXT"))?;
    if back != out {
        return Err(format!(
            "OUT.TXT read back {} bytes, wrote {}",
            back.len(),
            out.len()
        ));
    }
    root.close().map_err(e("closing /"))?;
    vol.close().map_err(e("closing the volume"))?;
    let (disk, _) = fat.free();
    let mut disk = disk.into_inner();
    disk.flush().map_err(|err| format!("flush: {err}"))?;
    rt::println!(
        "fat: wrote OUT.TXT ({} bytes) and DOCS/SUB/MORE.TXT, flushed",
        out.len()
    );
    Ok(())
}
