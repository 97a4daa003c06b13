//! `cargo xtask`: build, run and test rt images.
//!
//! - `build`: reads `image.toml`, builds the app into `target/image/<app>.elf`
//!   (stripped; `<app>.debug.elf` keeps symbols), `target/image/<app>.cfg`
//!   and the libvirt domain XML `target/image/<app>.xml`.
//! - `run`: builds and boots the image with its console on this terminal — with
//!   `xl create -c` where `xl` works, else in the bundled Xen-in-QEMU harness.
//! - `test`: host tests, fmt, clippy (host and image), then the guest tests.
//! - `notes`: decodes and checks an image's Xen ELF notes.
//! - `provision`: prepares the harness (also done on demand by `run`/`test`).
mod bench;
mod fuzz;
mod harness;
mod image;
mod libvirt;
mod manifest;
mod notes;
mod scaffold;
mod terminal;
mod test;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::manifest::Manifest;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run and test rt unikernel images for Xen"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the image described by the manifest.
    Build {
        /// The image manifest.
        #[arg(long, default_value = "image.toml")]
        manifest: PathBuf,
    },
    /// Build the image and boot it with its console attached (Ctrl-] leaves the harness).
    Run {
        /// The image manifest.
        #[arg(long, default_value = "image.toml")]
        manifest: PathBuf,
        /// Use the bundled Xen-in-QEMU harness even where `xl` works.
        #[arg(long)]
        harness: bool,
    },
    /// Run every test: host tests, fmt, clippy, then guest tests on real Xen.
    Test {
        /// Only the host-side steps (no QEMU, no Xen).
        #[arg(long)]
        host_only: bool,
        /// Only the steps and guest tests whose name contains this text (or one
        /// of several, comma-separated: `--only memtest-pv,hello-pv`).
        #[arg(long)]
        only: Option<String>,
        /// The long versions of the tests that have one, outside CI: a
        /// 30-minute soak (`soak-pv`), 200 create/destroy cycles
        /// (`cycles-200-pv`).
        #[arg(long)]
        long: bool,
    },
    /// Measure our echo image (PV and PVH) against a Linux PV domU in one
    /// harness session; prints a table and writes target/bench/bench.md.
    Bench {
        /// Boots of each guest (figures are median, min and max over them).
        #[arg(long, default_value_t = 5)]
        reps: u32,
        /// Only the storage rows (the disk guests).
        #[arg(long)]
        storage_only: bool,
        /// Only the boot figures: the per-phase boot timeline (PV, PVH; 32
        /// MiB and 1 GiB), mmtest's map figures, the memory ladder, `xl
        /// create` to the first ping reply split at the toolstack's steps
        /// (echo PV/PVH, Linux PV), the image sizes by area and their ten
        /// biggest symbols (writes target/bench/boot.md).
        #[arg(long)]
        boot_only: bool,
        /// Only the image sizes: hello and echo against their goals, their
        /// bytes by area of the runtime and their ten biggest symbols (no
        /// Xen needed).
        #[arg(long)]
        sizes_only: bool,
        /// Only the application rows (HTTP requests/s, TCP guest -> dom0).
        #[arg(long)]
        app_only: bool,
    },
    /// The property tests of every parser of cross-domain data (xenstore,
    /// xenbus, netif, blkif, console) and of image.toml, with many cases.
    Fuzz {
        /// Cases per property test.
        #[arg(long, default_value_t = 100_000)]
        cases: u32,
    },
    /// Decode and check the Xen ELF notes of an image (default: the manifest's app).
    Notes {
        /// The ELF to inspect.
        elf: Option<PathBuf>,
    },
    /// Prepare (or find cached) the Xen-in-QEMU harness images.
    Provision,
    /// Make a new app in a folder of its own, outside this workspace: a
    /// crate depending on rt, its image.toml, and a `cargo xtask` alias
    /// there (then `cd DIR && cargo xtask run`).
    New {
        /// The app's folder (its name is the app's).
        dir: PathBuf,
    },
}

/// Runs a command, inheriting the terminal; fails on a non-zero exit.
pub fn run(c: &mut Command) -> Result<()> {
    let st = c
        .status()
        .with_context(|| format!("starting {:?}", c.get_program()))?;
    if !st.success() {
        bail!("{:?} failed ({st})", c.get_program());
    }
    Ok(())
}

/// Like [`run`], but shows the command's output only if it fails.
pub fn run_quiet(c: &mut Command) -> Result<()> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {:?}", c.get_program()))?;
    if !out.status.success() {
        eprint!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        bail!("{:?} failed ({})", c.get_program(), out.status);
    }
    Ok(())
}

/// A relative manifest path is looked up in the current folder first (an
/// out-of-tree app runs `cargo xtask` in its own folder), then in this
/// workspace.
fn manifest_path(path: &PathBuf) -> PathBuf {
    if path.is_relative() {
        let here = std::env::current_dir().map(|d| d.join(path));
        match here {
            Ok(h) if h.is_file() => h,
            _ => image::root().join(path),
        }
    } else {
        path.clone()
    }
}

fn load_manifest(path: &PathBuf) -> Result<Manifest> {
    Ok(Manifest::load(&manifest_path(path))?)
}

/// The folder relative disk paths of the manifest at `path` start from.
fn manifest_dir(path: &PathBuf) -> PathBuf {
    manifest_path(path)
        .parent()
        .map_or_else(image::root, PathBuf::from)
}

/// Builds the manifest's image and its xl config; returns (manifest, built, cfg path).
fn build(manifest: &PathBuf) -> Result<(Manifest, image::Built, PathBuf)> {
    let m = load_manifest(manifest)?;
    let app = m.image.app.0.clone();
    let built = image::build_manifest(&m, &manifest_dir(manifest))?;
    let cfg = built.elf.with_extension("cfg");
    let base = manifest_dir(manifest);
    let disks: Vec<String> = m
        .disks
        .iter()
        .map(|d| d.file(&base).display().to_string())
        .collect();
    std::fs::write(
        &cfg,
        image::xl_config(&m, &app, &built.elf, m.image.mode, &disks),
    )?;
    // The libvirt domain XML beside it, from the same manifest; a manifest
    // it cannot express stops the build (naming the key) after the xl
    // config, so `cargo xtask run` is not blocked by the message.
    let xml = built.elf.with_extension("xml");
    let domain = libvirt::domain_xml(&m, &app, &built.elf, m.image.mode, &disks)
        .map_err(|e| anyhow::anyhow!("{}: libvirt XML: {e}", manifest_path(manifest).display()))?;
    std::fs::write(&xml, domain)?;
    println!(
        "image   {} ({} bytes stripped)",
        built.elf.display(),
        built.size
    );
    println!("symbols {}", built.debug_elf.display());
    println!(
        "xl cfg  {}  (boot on a Xen host: xl create -c {})",
        cfg.display(),
        cfg.display()
    );
    println!(
        "libvirt {}  (virsh -c xen:///system create {} --console)",
        xml.display(),
        xml.display()
    );
    Ok((m, built, cfg))
}

fn xl_works() -> bool {
    Command::new("xl")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cmd_run(manifest: &PathBuf, force_harness: bool) -> Result<()> {
    let (m, built, cfg) = build(manifest)?;
    let files = image::make_disks(&m, &manifest_dir(manifest))?;
    if !force_harness && xl_works() {
        println!("xl works here: xl create -c {}", cfg.display());
        return run(Command::new("xl").arg("create").arg("-c").arg(&cfg));
    }
    println!("no working xl on this host: booting the bundled Xen-in-QEMU harness");
    let a = harness::provision()?;
    let app = m.image.app.0.clone();
    // `[network] forward`: host ports reach the guest through QEMU and a
    // forwarder in dom0 (bench-echo, built static).
    let forwards: Vec<harness::Forward> = match &m.network {
        Some(n) => match n.ip {
            manifest::IpConfig::Static(ip, _) => n
                .forward
                .iter()
                .map(|f| harness::Forward {
                    host: f.host,
                    guest_ip: ip,
                    guest: f.guest,
                })
                .collect(),
            manifest::IpConfig::Dhcp => vec![],
        },
        None => vec![],
    };
    let tools = if forwards.is_empty() {
        vec![]
    } else {
        vec![bench::build_bench_echo()?]
    };
    for f in &forwards {
        println!(
            "forwarding 127.0.0.1:{} to the guest's port {} (once it is up)",
            f.host, f.guest
        );
    }
    let g = harness::GuestSpec {
        cmdline: m.image.cmdline.0.clone(),
        tools,
        ..harness::GuestSpec::new(&app, &built.elf, m.image.mode, m.resources.memory.0, 0)
    };
    // In dom0 the image sits at /harness/<app>.elf, and the disks are its
    // virtio disks (the files on this host, so what the guest writes stays).
    let targets: Vec<String> = (0..files.len())
        .map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char))
        .collect();
    let cfg_text = image::xl_config(
        &m,
        &app,
        &PathBuf::from(format!("/harness/{app}.elf")),
        m.image.mode,
        &targets,
    );
    let drives: Vec<(PathBuf, bool)> = files
        .into_iter()
        .zip(&m.disks)
        .map(|(f, d)| (f, d.read_only))
        .collect();
    harness::attach(&a, &g, &cfg_text, &drives, &forwards)
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Build { manifest } => build(&manifest).map(drop),
        Cmd::Run { manifest, harness } => cmd_run(&manifest, harness),
        Cmd::Test {
            host_only,
            only,
            long,
        } => test::run_all(host_only, only.as_deref(), long),
        Cmd::Bench {
            sizes_only: true, ..
        } => bench::sizes::run(),
        Cmd::Bench {
            reps,
            boot_only: true,
            ..
        } => bench::boot::run(reps),
        Cmd::Bench {
            reps,
            storage_only,
            app_only,
            boot_only: false,
            sizes_only: false,
        } => bench::run(reps, storage_only, app_only),
        Cmd::Fuzz { cases } => fuzz::run(cases),
        Cmd::Notes { elf } => (|| {
            let elf = match elf {
                Some(e) => e,
                None => build(&PathBuf::from("image.toml"))?.1.elf,
            };
            notes::report(&elf)
        })(),
        Cmd::New { dir } => scaffold::new_app(&dir).map(|d| {
            println!(
                "made {}: cd there and `cargo xtask run` (boots it), `cargo xtask build` (the image)",
                d.display()
            );
        }),
        Cmd::Provision => harness::provision().map(|a| {
            println!(
                "xen    {}\nkernel {}\nrootfs {}",
                a.xen.display(),
                a.vmlinux.display(),
                a.rootfs.display()
            );
        }),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
