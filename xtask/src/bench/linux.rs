//! The Linux peer: Debian's kernel as shipped (the dom0 one) with a
//! busybox initramfs and a static Rust echo server (`xtask/bench-echo`)
//! serving TCP echo, TCP discard and UDP echo, as the bench's Linux PV domU.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::image;

/// Linux reads `bench.ip` in its /init (plain `ip=` is the kernel's own).
pub(super) const CMDLINE: &str = "console=hvc0 quiet panic=1 bench.ip=10.0.0.2/24";
/// The Linux domU's memory in the timed boots (MiB).
pub(super) const MIB: u32 = 128;
/// Its memory ladder (MiB).
pub(super) const LADDER: [u32; 6] = [24, 32, 40, 48, 64, 96];

/// Builds `xtask/bench-echo` as a static binary; returns its path.
pub(crate) fn build_bench_echo() -> Result<PathBuf> {
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
pub(crate) fn linux_initrd(cached: &Path, server: &Path) -> Result<PathBuf> {
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
