//! `image.toml`: the versioned, strict image manifest.
//!
//! Every key is known (`deny_unknown_fields`) and every value is checked while
//! deserializing, so any mistake comes back as `file:line:column: message`.
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The only manifest version this xtask reads.
pub const SPEC_VERSION: u32 = 1;

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub spec: Spec,
    /// What to build.
    pub image: Image,
    /// What the domain gets.
    #[serde(default)]
    pub resources: Resources,
    /// Optional network interface.
    pub network: Option<Network>,
    /// Disks (`[[disk]]`, in order: the first is usually `xvda`).
    #[serde(default, rename = "disk")]
    pub disks: Vec<Disk>,
}

/// `[[disk]]`: a raw disk image the guest sees as a Xen vbd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The image file (relative paths from the manifest's folder).
    pub path: DiskPath,
    /// Size in MiB: `cargo xtask run` creates a missing file of this size
    /// (zeros, sparse). Without it the file must exist.
    pub size: Option<DiskMib>,
    /// The file's format: only `raw`.
    #[serde(default)]
    pub format: DiskFormat,
    /// Whether the guest gets it read-only.
    #[serde(default, rename = "read-only")]
    pub read_only: bool,
    /// The guest's name for it: `xvda` ... `xvdz`.
    pub vdev: Vdev,
}

/// A disk image path: not empty, no quotes, commas or line breaks (it is
/// written into an xl `disk` entry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DiskPath(pub PathBuf);

impl TryFrom<String> for DiskPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.contains(['"', '\'', ',', '\n', '\r', '\\', '=']) {
            return Err(format!(
                "invalid disk path {s:?}: it must be non-empty, without quotes, commas, '=', backslashes or line breaks"
            ));
        }
        Ok(DiskPath(PathBuf::from(s)))
    }
}

/// Disk size in MiB (1 to 16777216, i.e. up to 16 TiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct DiskMib(pub u64);

impl TryFrom<i64> for DiskMib {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u64::try_from(v) {
            Ok(m @ 1..=16_777_216) => Ok(DiskMib(m)),
            _ => Err(format!("size = {v} MiB is out of range (1 to 16777216)")),
        }
    }
}

/// A disk image's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// The bytes of the disk, as they are (what blkback serves).
    #[default]
    Raw,
}

/// A Xen virtual disk name, `xvda` to `xvdz`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Vdev(pub String);

impl TryFrom<String> for Vdev {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = s.len() == 4 && s.starts_with("xvd") && s.as_bytes()[3].is_ascii_lowercase();
        if ok {
            Ok(Vdev(s))
        } else {
            Err(format!("invalid vdev {s:?}: expected xvda to xvdz"))
        }
    }
}

impl Disk {
    /// The image file, relative paths taken from `base` (the manifest's folder).
    pub fn file(&self, base: &Path) -> PathBuf {
        if self.path.0.is_absolute() {
            self.path.0.clone()
        } else {
            base.join(&self.path.0)
        }
    }

    /// The xl `disk` entry with the backend's path `target`.
    pub fn xl_entry(&self, target: &str) -> String {
        let access = if self.read_only { "ro" } else { "rw" };
        format!(
            "format=raw,vdev={},access={access},target={target}",
            self.vdev.0
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Spec(pub u32);

impl TryFrom<i64> for Spec {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v == i64::from(SPEC_VERSION) {
            Ok(Spec(SPEC_VERSION))
        } else {
            Err(format!(
                "unsupported spec version {v}: this xtask reads spec = {SPEC_VERSION}"
            ))
        }
    }
}

/// `[image]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The app crate: a directory under `app/`, or (with `path`) the
    /// package name of a crate outside this workspace.
    pub app: AppName,
    /// The folder of an app crate of its own (relative to the manifest):
    /// an out-of-tree app (`cargo xtask new` makes one).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `xl` guest type.
    pub mode: Mode,
    /// Guest command line.
    #[serde(default)]
    pub cmdline: Cmdline,
}

/// An app crate name: lowercase letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AppName(pub String);

impl TryFrom<String> for AppName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(AppName(s))
        } else {
            Err(format!(
                "invalid app name {s:?}: use lowercase letters, digits, '-' and '_'"
            ))
        }
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How `xl` boots the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Xen PV guest.
    Pv,
    /// Xen PVH guest.
    Pvh,
}

impl Mode {
    /// The value of `type =` in an xl config.
    pub fn xl_type(self) -> &'static str {
        match self {
            Mode::Pv => "pv",
            Mode::Pvh => "pvh",
        }
    }
}

/// The guest command line: at most 1023 bytes (Xen's `MAX_GUEST_CMDLINE` with
/// its NUL), no double quotes or newlines (it is written into an xl config).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct Cmdline(pub String);

impl TryFrom<String> for Cmdline {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() > 1023 {
            return Err(format!(
                "cmdline is {} bytes; Xen passes at most 1023",
                s.len()
            ));
        }
        if s.contains(['"', '\n', '\r', '\\']) {
            return Err("cmdline must not contain quotes, backslashes or line breaks".into());
        }
        Ok(Cmdline(s))
    }
}

/// `[resources]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory in MiB.
    #[serde(default = "default_memory")]
    pub memory: MemoryMib,
    /// Number of vCPUs.
    #[serde(default = "default_vcpus")]
    pub vcpus: Vcpus,
    /// Most the heap may grow to, in MiB (default: all free RAM). Built into
    /// the image: an allocation beyond it is reported as out of memory.
    #[serde(default)]
    pub heap: Option<HeapMib>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            memory: default_memory(),
            vcpus: default_vcpus(),
            heap: None,
        }
    }
}

/// Heap limit in MiB (1 to 1048576, and below `memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct HeapMib(pub u32);

impl TryFrom<i64> for HeapMib {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(m @ 1..=1_048_576) => Ok(HeapMib(m)),
            _ => Err(format!("heap = {v} MiB is out of range (1 to 1048576)")),
        }
    }
}

fn default_memory() -> MemoryMib {
    MemoryMib(32)
}

fn default_vcpus() -> Vcpus {
    Vcpus(1)
}

/// Memory size in MiB (2 to 1048576).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct MemoryMib(pub u32);

impl TryFrom<i64> for MemoryMib {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(m @ 2..=1_048_576) => Ok(MemoryMib(m)),
            _ => Err(format!("memory = {v} MiB is out of range (2 to 1048576)")),
        }
    }
}

/// vCPU count (1 to 128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Vcpus(pub u32);

impl TryFrom<i64> for Vcpus {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(n @ 1..=128) => Ok(Vcpus(n)),
            _ => Err(format!("vcpus = {v} is out of range (1 to 128)")),
        }
    }
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Bridge in the backend domain.
    #[serde(default = "default_bridge")]
    pub bridge: Bridge,
    /// MAC address (default: chosen by xl in Xen's OUI).
    pub mac: Option<Mac>,
    /// Static address with prefix, or DHCP.
    #[serde(default)]
    pub ip: IpConfig,
    /// Default gateway (static configuration only).
    pub gateway: Option<Ipv4Addr>,
    /// The DNS server `rt::net::dns` asks (with DHCP, the lease's is used
    /// when this is not given).
    pub dns: Option<Ipv4Addr>,
    /// Host ports forwarded to the guest by `cargo xtask run` in the
    /// bundled harness: `"HOST:GUEST"` (static ip only).
    #[serde(default)]
    pub forward: Vec<Forward>,
}

/// A forwarded port: `"8080:80"` — host port 8080 reaches the guest's 80.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Forward {
    /// The port on the machine running `cargo xtask run` (127.0.0.1).
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

impl TryFrom<String> for Forward {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|&p| p != 0);
        match s.split_once(':').map(|(h, g)| (port(h), port(g))) {
            Some((Some(host), Some(guest))) => Ok(Forward { host, guest }),
            _ => Err(format!(
                "forward {s:?} is not \"HOST:GUEST\" (two ports, 1 to 65535)"
            )),
        }
    }
}

fn default_bridge() -> Bridge {
    Bridge("xenbr0".into())
}

/// A Linux interface name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Bridge(pub String);

impl TryFrom<String> for Bridge {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = (1..=15).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Bridge(s))
        } else {
            Err(format!("invalid bridge name {s:?}"))
        }
    }
}

/// A unicast MAC address, `xx:xx:xx:xx:xx:xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Mac(pub [u8; 6]);

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad =
            || format!("invalid MAC address {s:?}: expected six hex pairs like 00:16:3e:00:00:01");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(&parts) {
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 != 0 {
            return Err(format!(
                "MAC address {s:?} is multicast; a vif needs a unicast address"
            ));
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// How the guest gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum IpConfig {
    /// DHCP (the default).
    #[default]
    Dhcp,
    /// Static address and prefix length.
    Static(Ipv4Addr, u8),
}

impl TryFrom<String> for IpConfig {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "dhcp" {
            return Ok(IpConfig::Dhcp);
        }
        let bad = || {
            format!(
                "invalid ip {s:?}: expected \"dhcp\" or an address with prefix like \"10.0.0.2/24\""
            )
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(bad)?;
        Ok(IpConfig::Static(addr, prefix))
    }
}

/// A manifest that could not be read, with where and why.
#[derive(Debug, PartialEq)]
pub struct ManifestError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when the error has a location.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ManifestError {}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Manifest {
    /// Parses manifest `text`; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            location: e.span().map(|s| line_col(text, s.start)),
            message: e.message().trim_end().to_string(),
        })?;
        if m.network
            .as_ref()
            .is_some_and(|n| n.ip == IpConfig::Dhcp && n.gateway.is_some())
        {
            return Err(ManifestError {
                path: path.to_path_buf(),
                location: text.find("gateway").map(|o| line_col(text, o)),
                message: "gateway is only meaningful with a static ip".into(),
            });
        }
        if let Some(n) = &m.network {
            let at = || find_key(text, "forward").map(|o| line_col(text, o));
            let err = |message: String| ManifestError {
                path: path.to_path_buf(),
                location: at(),
                message,
            };
            if !n.forward.is_empty() && n.ip == IpConfig::Dhcp {
                return Err(err(
                    "forward needs a static ip (the harness forwards to that address)".into(),
                ));
            }
            for (i, f) in n.forward.iter().enumerate() {
                if n.forward[..i].iter().any(|g| g.host == f.host) {
                    return Err(err(format!("host port {} is forwarded twice", f.host)));
                }
            }
        }
        for (i, d) in m.disks.iter().enumerate() {
            if m.disks[..i].iter().any(|e| e.vdev == d.vdev) {
                return Err(ManifestError {
                    path: path.to_path_buf(),
                    location: nth_key(text, "vdev", i).map(|o| line_col(text, o)),
                    message: format!("vdev {:?} is given to two disks", d.vdev.0),
                });
            }
        }
        if let Some(h) = m.resources.heap
            && h.0 >= m.resources.memory.0
        {
            return Err(ManifestError {
                path: path.to_path_buf(),
                location: find_key(text, "heap").map(|o| line_col(text, o)),
                message: format!(
                    "heap = {} MiB must be below memory = {} MiB (the runtime needs some too)",
                    h.0, m.resources.memory.0
                ),
            });
        }
        Ok(m)
    }

    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            location: None,
            message: format!("cannot read: {e}"),
        })?;
        Manifest::parse(path, &text)
    }
}

/// Offset of the line that sets `key` (`key =` at the start of a line).
fn find_key(text: &str, key: &str) -> Option<usize> {
    nth_key(text, key, 0)
}

/// Offset of the `n`th (from 0) line that sets `key`.
fn nth_key(text: &str, key: &str, n: usize) -> Option<usize> {
    let mut off = 0;
    let mut seen = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
        {
            if seen == n {
                return Some(off + line.len() - t.len());
            }
            seen += 1;
        }
        off += line.len();
    }
    None
}

#[cfg(test)]
mod tests;
