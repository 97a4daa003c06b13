//! The MMU layer against the model of Xen's PV rules: the boot sequence
//! (`boot`), what Xen refuses and accepts and how batching goes (`rules`),
//! random operation sequences (`random`), heap regions and the balloon
//! (`memory`); the booted domain they share in `common`.
mod boot;
mod common;
mod memory;
mod random;
mod rules;
