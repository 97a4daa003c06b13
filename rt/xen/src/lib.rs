//! Xen guest interfaces for the `rt` runtime: ABI types, hypercalls, ring protocols.
//!
//! Everything here builds and is unit-tested on the host. The only code that
//! touches the hypervisor is [`hypercall::raw`], reached through the
//! [`hypercall::Hypervisor`] trait so tests can inject a fake.
//!
//! Layers (the libtock-rs / rust-vmm pattern):
//! 1. [`hypercall::raw`]: one `unsafe` asm stub per arity, clobbers documented;
//! 2. [`hypercall`]'s typed functions, returning `Result<_, XenError>`;
//! 3. owning types built on them (in later modules: grants, ports, mappings).
#![no_std]

extern crate alloc;

pub mod abi;
pub mod console;
pub mod control;
pub mod errno;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall;
pub mod line;
pub mod netfront;
pub mod netif;
pub mod pvclock;
pub mod pvh;
pub mod xenbus;
pub mod xenstore;

pub use errno::XenError;
