//! Provisioning: `scripts/provision.sh` builds the expensive parts once from
//! Debian packages and caches them outside the tree (the Xen ELF, the dom0
//! kernel, a dom0 initramfs with the toolstack, the bench's Linux domU);
//! [`Artifacts`] names them.
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::image::root;

/// The cached harness images.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// Xen (multiboot ELF).
    pub xen: PathBuf,
    /// dom0 kernel (ELF).
    pub vmlinux: PathBuf,
    /// dom0 initramfs (zstd cpio, padded for appending).
    pub rootfs: PathBuf,
    /// Debian's kernel (bzImage) for the benchmarks' Linux PV domU.
    pub linux_kernel: PathBuf,
    /// That domU's busybox initramfs (gzip cpio).
    pub linux_initrd: PathBuf,
}

/// Runs `scripts/provision.sh` (progress on stderr) and returns the cached images.
pub fn provision() -> Result<Artifacts> {
    let script = root().join("scripts/provision.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/provision.sh")?;
    if !out.status.success() {
        bail!("provisioning the harness failed (see the messages above)");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("HARNESS_DIR="))
        .context("provision.sh did not report HARNESS_DIR")?;
    let dir = PathBuf::from(dir);
    let a = Artifacts {
        xen: dir.join("xen.elf"),
        vmlinux: dir.join("vmlinux-dom0.elf"),
        rootfs: dir.join("dom0-rootfs.cpio.zst"),
        linux_kernel: dir.join("linux-domu.vmlinuz"),
        linux_initrd: dir.join("linux-domu.cpio.gz"),
    };
    for p in [
        &a.xen,
        &a.vmlinux,
        &a.rootfs,
        &a.linux_kernel,
        &a.linux_initrd,
    ] {
        if !p.is_file() {
            bail!(
                "harness cache is incomplete: {} is missing (delete {} and retry)",
                p.display(),
                dir.display()
            );
        }
    }
    Ok(a)
}
