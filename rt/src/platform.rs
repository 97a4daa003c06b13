//! Which way the image was booted. Set once at entry, read by anything that
//! must behave differently (console, exit), and by apps that ask.
//!
//! May import: nothing of `rt` (the bottom layer).
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// The boot mode of this image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Platform {
    /// Before the entry code has decided.
    Unknown = 0,
    /// Xen PV guest (domU).
    XenPv = 1,
    /// Xen PV control domain (booted directly by Xen as dom0).
    XenPvDom0 = 2,
    /// Xen PVH guest (domU).
    XenPvh = 3,
    /// PVH boot without Xen (QEMU's PVH loader): COM1 console.
    QemuPvh = 4,
}

static PLATFORM: AtomicU8 = AtomicU8::new(Platform::Unknown as u8);

/// The boot mode of this image.
pub fn platform() -> Platform {
    match PLATFORM.load(Ordering::Relaxed) {
        1 => Platform::XenPv,
        2 => Platform::XenPvDom0,
        3 => Platform::XenPvh,
        4 => Platform::QemuPvh,
        _ => Platform::Unknown,
    }
}

pub(crate) fn set(p: Platform) {
    PLATFORM.store(p as u8, Ordering::Relaxed);
}

impl Platform {
    /// Whether Xen hypercalls are available.
    pub fn is_xen(self) -> bool {
        matches!(
            self,
            Platform::XenPv | Platform::XenPvDom0 | Platform::XenPvh
        )
    }

    /// Whether this is a PV guest (domU or dom0): MFNs, a p2m, foreign
    /// mappings the saver must not meet.
    pub fn is_pv(self) -> bool {
        matches!(self, Platform::XenPv | Platform::XenPvDom0)
    }

    /// Short name, as in `xl`'s `type =` where one applies.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Unknown => "unknown",
            Platform::XenPv => "pv",
            Platform::XenPvDom0 => "pv-dom0",
            Platform::XenPvh => "pvh",
            Platform::QemuPvh => "qemu-pvh",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
