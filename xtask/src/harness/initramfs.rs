//! The initramfs of one run: the cached dom0 rootfs with a small
//! uncompressed cpio appended that carries `/init`, `/harness/run-guest.sh`,
//! the images, their xl configs and the plan — milliseconds, no rebuild.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::provision::Artifacts;
use crate::image::root;

/// Where a session keeps its overlay, initramfs and serial log.
pub(super) fn harness_dir(session: &str) -> PathBuf {
    root().join("target/harness").join(session)
}

/// QEMU cannot take every path as a module.
pub(super) fn check_path(p: &Path) -> Result<()> {
    // QEMU separates -initrd modules with commas.
    if p.to_string_lossy().contains(',') {
        bail!(
            "QEMU cannot load {} (the path contains a comma)",
            p.display()
        );
    }
    Ok(())
}

/// Builds the initramfs for one run: the cached rootfs plus an overlay holding
/// `/init`, `/harness/run-guest.sh`, `/harness/peer-agent.sh` and `files`
/// (path in /harness → contents).
pub(super) fn initramfs(
    a: &Artifacts,
    session: &str,
    files: &[(String, Vec<u8>, bool)],
) -> Result<PathBuf> {
    let dir = harness_dir(session);
    let ov = dir.join("overlay");
    let _ = std::fs::remove_dir_all(&ov);
    std::fs::create_dir_all(ov.join("harness"))?;
    let install = |rel: &str, data: &[u8], exec: bool| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = ov.join(rel);
        std::fs::write(&p, data)?;
        std::fs::set_permissions(
            &p,
            std::fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
        )?;
        Ok(())
    };
    install(
        "init",
        &std::fs::read(root().join("scripts/dom0/init"))?,
        true,
    )?;
    for script in ["run-guest.sh", "peer-agent.sh"] {
        install(
            &format!("harness/{script}"),
            &std::fs::read(root().join("scripts/dom0").join(script))?,
            true,
        )?;
    }
    for (rel, data, exec) in files {
        install(&format!("harness/{rel}"), data, *exec)?;
    }
    let cpio = dir.join("overlay.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet > \"$0\"")
        .arg(&cpio)
        .current_dir(&ov)
        .status()
        .context("running cpio (installed by scripts/provision.sh)")?;
    if !status.success() {
        bail!("packing the overlay cpio failed");
    }
    let initrd = dir.join("initrd");
    let mut out = std::fs::read(&a.rootfs)?;
    out.extend(std::fs::read(&cpio)?);
    std::fs::write(&initrd, out)?;
    Ok(initrd)
}

/// Files that go into dom0's /harness once however many guests use them
/// (dom0's initramfs lives in its RAM): host path -> name in /harness.
#[derive(Default)]
pub(super) struct Shared {
    names: std::collections::HashMap<PathBuf, String>,
}

impl Shared {
    /// The dom0 path of `src`, adding the file to `files` the first time.
    pub(super) fn add(
        &mut self,
        files: &mut Vec<(String, Vec<u8>, bool)>,
        src: &Path,
        ext: &str,
    ) -> Result<String> {
        if let Some(n) = self.names.get(src) {
            return Ok(format!("/harness/{n}"));
        }
        let n = format!("shared-{}.{ext}", self.names.len());
        files.push((
            n.clone(),
            std::fs::read(src).with_context(|| format!("reading {}", src.display()))?,
            false,
        ));
        self.names.insert(src.to_path_buf(), n.clone());
        Ok(format!("/harness/{n}"))
    }
}
