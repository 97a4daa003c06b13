//! The Xen-in-QEMU harness: provisioning, per-run overlays, and the three ways
//! of booting an image (domUs under Xen + dom0, the image as PV dom0, bare QEMU).
//!
//! - [`provision`]: the cached Xen, dom0 kernel and dom0 initramfs;
//! - `initramfs`: each run's overlay on that initramfs;
//! - `xl`: the xl config of a test guest;
//! - `console`: the lines dom0 reports on the serial console, parsed;
//! - `run`: QEMU and Xen's command line, the sessions;
//! - `qemu`: the QEMU process and its serial console;
//! - `guest`: what a guest should do and what it did.
//!
//! Everything is also logged under `target/harness/`.
mod console;
mod guest;
mod initramfs;
mod provision;
pub mod qemu;
mod run;
mod xl;

pub use guest::{End, GuestRun, GuestSpec};
pub use provision::{Artifacts, provision};
pub use run::{Forward, attach, run_bare, run_dom0, run_domus_retrying};
pub use xl::GUEST_CPUS;
