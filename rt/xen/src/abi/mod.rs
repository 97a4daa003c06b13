//! The ABI layer: what Xen's public headers (`xen/include/public/**`) define,
//! and the operations on it that need no protocol above.
//!
//! May import: nothing of this crate outside `abi/` (and `xen-sys`).
//!
//! - [`public`]: structures and constants (re-exported here, so
//!   `rt_xen::abi::start_info` names the struct);
//! - [`errno`]: Xen's errno values as [`XenError`](errno::XenError);
//! - [`hypercall`]: the raw stubs, the [`Hypervisor`](hypercall::Hypervisor)
//!   seam and the typed calls;
//! - [`evtchn`]: event-channel operations, the 2-level bitmaps' scan, the
//!   handler table and the latch;
//! - [`gnttab`]: grant-table v1 entries;
//! - [`pvclock`]: the vCPU time record and the wall clock;
//! - [`pvh`]: the PVH start info;
//! - [`runstate`]: the vCPU's runstate area (time running, runnable,
//!   blocked, offline).
pub mod errno;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall;
pub mod public;
pub mod pvclock;
pub mod pvh;
pub mod runstate;

pub use public::*;
