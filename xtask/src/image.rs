//! Building images: the guest compile flags, the ELF under `target/image/`, and
//! the matching `xl` config.
//!
//! The guest needs codegen flags (static relocation model, no red zone) and link
//! arguments (our linker script, no C runtime) that must not reach host builds.
//! Cargo has no stable per-package rustflags, so they travel in
//! `CARGO_ENCODED_RUSTFLAGS` together with an explicit `--target`: with
//! `--target`, cargo applies them to target artifacts only, never to build
//! scripts or proc-macros. A separate target directory keeps host and guest
//! build caches from invalidating each other.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::manifest::{IpConfig, Manifest, Mode};

/// The only target this toolchain has; host triple == guest triple.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The rustflags of a guest build.
pub fn guest_rustflags() -> Vec<String> {
    let ld = root().join("rt/link/image.ld");
    let mut f = vec![
        "-Crelocation-model=static".to_string(), // absolute addressing, no PIE
        "-Cno-redzone=yes".to_string(),          // Xen writes exception frames right below rsp
        // No jump tables: with absolute addressing each entry of one is 8
        // bytes, and a `match` lowered to a tree of compares is smaller in
        // these images (echo 1.7 KiB, hello 0.9 KiB); the compares are
        // direct branches, which TCG chains, where a table is an indirect
        // jump.
        "-Cllvm-args=-min-jump-table-entries=1000".to_string(),
        format!("-Clink-arg=-T{}", ld.display()),
    ];
    for a in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
        "-Wl,-z,noexecstack",
        "-Wl,--icf=all",
        // Segments start in the file where the previous one ends, not at a
        // page boundary: the addresses keep their page alignment (image.ld),
        // and Xen's and QEMU's ELF loaders copy each segment from its offset.
        "-Wl,--nmagic",
    ] {
        f.push(format!("-Clink-arg={a}"));
    }
    // Panic locations name their source file: a dependency's path starts
    // with cargo's registry folder (its home, the index's host name and a
    // hash; ~60 bytes each, 1 KiB of an image). Shortened to `crates/...`,
    // the same on every machine.
    for dir in registry_source_dirs() {
        f.push(format!("--remap-path-prefix={}=crates", dir.display()));
    }
    f
}

/// Cargo's unpacked registry sources (`$CARGO_HOME/registry/src/*`), in a
/// stable order (the flags are part of cargo's build fingerprint).
fn registry_source_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry/src")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&src)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// A cargo command for the guest (`build`, `clippy`, ...).
pub fn guest_cargo(sub: &str) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root())
        .arg(sub)
        .args(["--release", "--target", TARGET, "--target-dir"])
        .arg(root().join("target/guest"))
        .env("CARGO_ENCODED_RUSTFLAGS", guest_rustflags().join("\x1f"))
        .env_remove("RUSTFLAGS");
    c
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// Stripped ELF: what gets booted.
    pub elf: PathBuf,
    /// The same with symbols, for debugging (addresses in crash reports).
    pub debug_elf: PathBuf,
    /// Size of `elf` in bytes.
    pub size: u64,
}

/// `[network]` as the image carries it (`RT_NETWORK`, read by `rt::net`):
/// `ip=a.b.c.d/len;gateway=a.b.c.d;dns=a.b.c.d`, or `ip=dhcp` (`;dns=`).
pub fn network_env(n: &crate::manifest::Network) -> String {
    let mut s = match n.ip {
        IpConfig::Static(ip, len) => format!("ip={ip}/{len}"),
        IpConfig::Dhcp => "ip=dhcp".to_string(),
    };
    if let Some(gw) = n.gateway {
        s.push_str(&format!(";gateway={gw}"));
    }
    if let Some(d) = n.dns {
        s.push_str(&format!(";dns={d}"));
    }
    s
}

/// Builds the image a manifest describes (its heap limit and network
/// configuration built in); `base` is the manifest's folder (an
/// out-of-tree app's `path` starts there).
pub fn build_manifest(m: &Manifest, base: &Path) -> Result<Built> {
    let app = &m.image.app.0;
    let net = m.network.as_ref().map(network_env);
    let heap = m.resources.heap.map(|h| h.0);
    match &m.image.path {
        Some(p) => {
            let dir = base.join(p);
            let dir = dir.canonicalize().unwrap_or(dir);
            build_external(&dir, app, heap, net.as_deref())
        }
        None => build_image(app, heap, app, net.as_deref()),
    }
}

/// Builds an app crate outside this workspace (its own `Cargo.toml`,
/// depending on `rt` by path or git) into `<dir>/target/image/<app>.elf`,
/// with the same guest flags as ours.
pub fn build_external(
    dir: &Path,
    app: &str,
    heap: Option<u32>,
    network: Option<&str>,
) -> Result<Built> {
    let toml = dir.join("Cargo.toml");
    if !toml.is_file() {
        bail!(
            "[image] path: no Cargo.toml in {} (the app's crate folder)",
            dir.display()
        );
    }
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(dir)
        .arg("build")
        .args(["--release", "--target", TARGET, "--manifest-path"])
        .arg(&toml)
        .arg("--target-dir")
        .arg(dir.join("target/guest"))
        .env("CARGO_ENCODED_RUSTFLAGS", guest_rustflags().join("\x1f"))
        .env_remove("RUSTFLAGS");
    image_env(&mut c, heap, network);
    crate::run(&mut c).context(format!("building the app at {}", dir.display()))?;
    let bin = dir.join(format!("target/guest/{TARGET}/release/{app}"));
    if !bin.is_file() {
        bail!(
            "{} built no binary named {app:?}: [image] app must be the crate's package name",
            toml.display()
        );
    }
    finish(&bin, &dir.join("target/image"), app)
}

/// The image's build-time settings, as the `rt::main!` macro reads them.
fn image_env(c: &mut Command, heap: Option<u32>, network: Option<&str>) {
    match heap {
        Some(mib) => c.env("RT_HEAP_LIMIT_MIB", mib.to_string()),
        None => c.env_remove("RT_HEAP_LIMIT_MIB"),
    };
    match network {
        Some(n) => c.env("RT_NETWORK", n),
        None => c.env_remove("RT_NETWORK"),
    };
}

/// Copies the linked binary to `<out>/<name>.debug.elf` and strips it to
/// `<out>/<name>.elf`.
fn finish(bin: &Path, out: &Path, name: &str) -> Result<Built> {
    std::fs::create_dir_all(out)?;
    let debug_elf = out.join(format!("{name}.debug.elf"));
    std::fs::copy(bin, &debug_elf)?;
    let elf = out.join(format!("{name}.elf"));
    let mut strip = Command::new("strip");
    strip.arg("-o").arg(&elf).arg(&debug_elf);
    crate::run_quiet(&mut strip).context("strip (from binutils) is needed to produce the image")?;
    let size = std::fs::metadata(&elf)?.len();
    Ok(Built {
        elf,
        debug_elf,
        size,
    })
}

/// Builds app `app` with the heap limit `heap` (MiB) into
/// `target/image/<name>.elf` (+ `.debug.elf`). The limit is built into the
/// image (`RT_HEAP_LIMIT_MIB`, read by `rt::main!`).
pub fn build_app_as(app: &str, heap: Option<u32>, name: &str) -> Result<Built> {
    build_image(app, heap, name, None)
}

fn build_image(app: &str, heap: Option<u32>, name: &str, network: Option<&str>) -> Result<Built> {
    if !root().join("app").join(app).join("Cargo.toml").is_file() {
        bail!("no app named {app:?}: expected a crate at app/{app}/");
    }
    let mut c = guest_cargo("build");
    c.args(["-p", app]);
    image_env(&mut c, heap, network);
    crate::run(&mut c).context(format!("building app {app}"))?;
    finish(
        &root().join(format!("target/guest/{TARGET}/release/{app}")),
        &root().join("target/image"),
        name,
    )
}

/// `tsc_mode = "native"`: the guest's `rdtsc` runs on the CPU. Xen's
/// default emulates it (a trap per read) whenever the host's TSC is not
/// marked invariant — as under QEMU, and on older hosts — although our time
/// comes from pvclock, which corrects each vCPU's TSC reading (scale and
/// offset per update), like Linux's Xen clocksource. With emulation every
/// clock read was a trap to Xen, and under QEMU's emulated SVM (no next-RIP
/// save) a PVH guest triple-faulted right after such an `rdtsc` now and then
/// (seen three times; none since). Native also made the harness's PV flood
/// ping twice as fast.
pub const TSC_NATIVE: &str = "tsc_mode = \"native\"\n";

/// The `xl` config for an image described by `m`; `disks` are the backend's
/// paths of the manifest's disks, in order (the files on a Xen host, the
/// harness dom0's virtio disks under QEMU).
pub fn xl_config(m: &Manifest, name: &str, kernel: &Path, mode: Mode, disks: &[String]) -> String {
    let mut s = String::new();
    s.push_str(
        "# Generated by `cargo xtask build` from image.toml: edit the manifest, not this file.\n",
    );
    s.push_str(&format!("name = \"{name}\"\n"));
    s.push_str(&format!("type = \"{}\"\n", mode.xl_type()));
    s.push_str(&format!("kernel = \"{}\"\n", kernel.display()));
    s.push_str(&format!("cmdline = \"{}\"\n", m.image.cmdline.0));
    s.push_str(&format!("memory = {}\n", m.resources.memory.0));
    s.push_str(&format!("vcpus = {}\n", m.resources.vcpus.0));
    s.push_str("on_poweroff = \"destroy\"\non_reboot = \"restart\"\non_crash = \"preserve\"\n");
    s.push_str(TSC_NATIVE);
    if let Some(n) = &m.network {
        let mut vif = format!("bridge={}", n.bridge.0);
        if let Some(mac) = n.mac {
            vif.push_str(&format!(",mac={mac}"));
        }
        if let IpConfig::Static(ip, _) = n.ip {
            vif.push_str(&format!(",ip={ip}"));
        }
        s.push_str(&format!("vif = [ '{vif}' ]\n"));
    }
    if !m.disks.is_empty() {
        let entries: Vec<String> = m
            .disks
            .iter()
            .zip(disks)
            .map(|(d, t)| format!("'{}'", d.xl_entry(t)))
            .collect();
        s.push_str(&format!("disk = [ {} ]\n", entries.join(", ")));
    }
    s
}

/// Makes each disk file of `m` that is missing (zeros, sparse, of its
/// `size`); `base` is the manifest's folder. Returns the files, in order.
pub fn make_disks(m: &Manifest, base: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for d in &m.disks {
        let f = d.file(base);
        if !f.exists() {
            let Some(size) = d.size else {
                bail!(
                    "disk {} ({}) does not exist and has no size to create it with",
                    d.vdev.0,
                    f.display()
                );
            };
            if let Some(dir) = f.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::File::create(&f)
                .with_context(|| format!("creating disk {} at {}", d.vdev.0, f.display()))?;
            file.set_len(size.0 << 20)?;
            println!(
                "disk    {} created: {} MiB of zeros ({})",
                d.vdev.0,
                size.0,
                f.display()
            );
        } else if !f.is_file() {
            bail!("disk {} ({}) is not a file", d.vdev.0, f.display());
        }
        files.push(f);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_section_is_built_into_the_image_as_one_string() {
        let m = Manifest::parse(
            Path::new("image.toml"),
            "spec = 1\n[image]\napp = \"echo\"\nmode = \"pv\"\n[resources]\nmemory = 32\n[network]\nip = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\n",
        )
        .unwrap();
        assert_eq!(
            network_env(m.network.as_ref().unwrap()),
            "ip=10.0.0.2/24;gateway=10.0.0.1"
        );
        let d = Manifest::parse(
            Path::new("image.toml"),
            "spec = 1\n[image]\napp = \"echo\"\nmode = \"pv\"\n[resources]\nmemory = 32\n[network]\n",
        )
        .unwrap();
        assert_eq!(network_env(d.network.as_ref().unwrap()), "ip=dhcp");
    }

    #[test]
    fn config_carries_the_manifest() {
        let text = "spec = 1\n[image]\napp = \"hello\"\nmode = \"pvh\"\ncmdline = \"x=1\"\n\
                    [resources]\nmemory = 48\n[network]\nmac = \"00:16:3e:00:00:09\"\nip = \"10.0.0.2/24\"\n";
        let m = Manifest::parse(Path::new("t"), text).unwrap();
        let cfg = xl_config(&m, "hello", Path::new("/img/hello.elf"), m.image.mode, &[]);
        for want in [
            "name = \"hello\"\n",
            "type = \"pvh\"\n",
            "kernel = \"/img/hello.elf\"\n",
            "cmdline = \"x=1\"\n",
            "memory = 48\n",
            "vcpus = 1\n",
            "on_crash = \"preserve\"\n",
            "tsc_mode = \"native\"\n",
            "vif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:09,ip=10.0.0.2' ]\n",
        ] {
            assert!(cfg.contains(want), "missing {want:?} in\n{cfg}");
        }
    }

    #[test]
    fn disks_become_one_xl_entry_each_and_missing_files_are_made() {
        let dir = std::env::temp_dir().join(format!("xtask-disks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let text = "spec = 1\n[image]\napp = \"blktest\"\nmode = \"pv\"\n\
                    [[disk]]\npath = \"d/a.img\"\nsize = 3\nvdev = \"xvda\"\n\
                    [[disk]]\npath = \"b.img\"\nread-only = true\nvdev = \"xvdb\"\n";
        let m = Manifest::parse(Path::new("t"), text).unwrap();
        let e = make_disks(&m, &dir).unwrap_err().to_string();
        assert!(e.contains("disk xvdb") && e.contains("no size"), "{e}");
        std::fs::write(dir.join("b.img"), b"ro").unwrap();
        let files = make_disks(&m, &dir).unwrap();
        assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 3 << 20);
        assert_eq!(
            std::fs::read(&files[1]).unwrap(),
            b"ro",
            "an existing file is kept"
        );
        let cfg = xl_config(
            &m,
            "b",
            Path::new("/k"),
            Mode::Pv,
            &["/dev/vda".into(), "/dev/vdb".into()],
        );
        assert!(cfg.contains(
            "disk = [ 'format=raw,vdev=xvda,access=rw,target=/dev/vda', 'format=raw,vdev=xvdb,access=ro,target=/dev/vdb' ]\n"
        ), "{cfg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn guest_flags_disable_the_red_zone() {
        let f = guest_rustflags();
        assert!(f.contains(&"-Cno-redzone=yes".to_string()));
        assert!(f.iter().any(|a| a.ends_with("rt/link/image.ld")));
    }
}
