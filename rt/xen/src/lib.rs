//! Xen guest interfaces for the `rt` runtime, in three layers, one folder each.
//!
//! ```text
//! dev/    device frontends: netfront (dev/net), and next to it any new
//!         driver (dev/blk ...)          may import: proto, abi
//! proto/  protocols over shared memory and xenstore: the byte ring
//!         (console, xenstore), the request/response ring of ring.h,
//!         the xenstore client, the device-independent xenbus handshake,
//!         the toolstack's control keys   may import: abi
//! abi/    what Xen's public headers define: structures and constants,
//!         errno, hypercalls, event channels, grant tables, pvclock,
//!         the PVH start info             may import: nothing above it
//! ```
//!
//! Beside them, `timeline`: the boot timeline's marks and per-phase counts
//! (pure bookkeeping; the runtime stamps it); and `once`: the set-once cell
//! of the runtime's statics.
//!
//! Nothing imports upward: a driver may use every protocol and the whole
//! ABI, a protocol never names a device. Everything here builds and is
//! unit-tested on the host; the only code that touches the hypervisor is
//! [`abi::hypercall::raw`], reached through the [`abi::hypercall::Hypervisor`]
//! trait so tests inject a fake.
#![no_std]

extern crate alloc;

pub mod abi;
pub mod dev;
pub mod once;
pub mod proto;
pub mod timeline;

pub use abi::errno::XenError;
