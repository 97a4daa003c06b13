//! `cargo xtask new <dir>`: an app crate of its own, outside this
//! workspace, that depends on `rt` and becomes an image with `cargo xtask
//! build` / `cargo xtask run` run in its folder (its `.cargo/config.toml`
//! points the `xtask` alias at this checkout).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::manifest::AppName;

/// The files of a new app named `name`, with `rt_root` the checkout.
fn files(name: &str, rt_root: &Path) -> Vec<(&'static str, String)> {
    let rt = rt_root.join("rt");
    let xtask = rt_root.join("xtask/Cargo.toml");
    vec![
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[[bin]]
name = "{name}"
test = false
bench = false

[dependencies]
rt = {{ path = "{rt}" }}

# A unikernel has no unwinder: abort on panic (rt prints the message and
# shuts the domain down as crashed). Small, whole-program optimised images.
[profile.dev]
panic = "abort"
[profile.release]
panic = "abort"
opt-level = "s"
lto = "fat"
codegen-units = 1

# Its own workspace, not part of any folder above it.
[workspace]
"#,
                rt = rt.display()
            ),
        ),
        (
            "src/main.rs",
            format!(
                r#"//! `{name}`: an rt unikernel app. `cargo xtask run` builds it and boots
//! it (on this host's Xen, or the bundled Xen-in-QEMU harness).
#![no_std]
#![no_main]

rt::main!(main);

fn main() {{
    rt::println!("{name}: hello from {{}} on {{}}", rt::app_name(), rt::platform());
}}
"#
            ),
        ),
        (
            "image.toml",
            format!(
                r#"# The image `cargo xtask build` and `cargo xtask run` make of this app.
spec = 1

[image]
app = "{name}"
path = "."           # the app's crate: this folder
mode = "pv"          # or "pvh"

[resources]
memory = 32          # MiB

# [network]          # a vif, and the address rt::net::up() configures
# ip = "10.0.0.2/24"
# gateway = "10.0.0.1"
"#
            ),
        ),
        (
            ".cargo/config.toml",
            format!(
                "# `cargo xtask ...` here runs the rt checkout's xtask on this folder.\n[alias]\nxtask = \"run --quiet --manifest-path {} --\"\n",
                xtask.display()
            ),
        ),
        (".gitignore", "/target\n/Cargo.lock\n".to_string()),
    ]
}

/// Makes the app at `dir` (which must not exist yet); its name is the
/// folder's.
pub fn new_app(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the app's folder has no name")?;
    AppName::try_from(name.to_string()).map_err(anyhow::Error::msg)?;
    if dir.exists() {
        bail!("{} exists already", dir.display());
    }
    let root = crate::image::root();
    let root = root.canonicalize().unwrap_or(root);
    for (path, text) in files(name, &root) {
        let f = dir.join(path);
        if let Some(p) = f.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        std::fs::write(&f, text).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_parses_and_names_the_crate() {
        let f = files("my-app", Path::new("/src/xen-rt"));
        let manifest = &f.iter().find(|(p, _)| *p == "image.toml").unwrap().1;
        let m = crate::manifest::Manifest::parse(Path::new("image.toml"), manifest).unwrap();
        assert_eq!(m.image.app.0, "my-app");
        assert_eq!(m.image.path.as_deref(), Some(Path::new(".")));
        let cargo = &f.iter().find(|(p, _)| *p == "Cargo.toml").unwrap().1;
        assert!(cargo.contains("rt = { path = \"/src/xen-rt/rt\" }"));
        let parsed: toml::Table = toml::from_str(cargo).unwrap();
        assert!(parsed.contains_key("workspace"));
    }

    #[test]
    fn bad_names_and_existing_folders_are_refused() {
        let tmp = std::env::temp_dir().join(format!("rt-scaffold-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        assert!(new_app(&tmp.join("Bad Name")).is_err());
        std::fs::create_dir_all(tmp.join("taken")).unwrap();
        assert!(new_app(&tmp.join("taken")).is_err());
        let made = new_app(&tmp.join("fresh")).unwrap();
        assert!(made.join("src/main.rs").is_file());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
