//! The memory-management layer of `rt`: frame numbers and the guest's view of
//! machine memory.
//!
//! A PV guest sees two frame spaces: its own pseudo-physical frames ([`Pfn`],
//! contiguous from 0) and the machine frames Xen actually gave it ([`Mfn`]).
//! The p2m (pfn → mfn, owned by the guest, handed over in `start_info.mfn_list`)
//! and Xen's read-only M2P (mfn → pfn) translate between them. On PVH the two
//! spaces coincide and translation is the identity.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "model")]
extern crate alloc;

pub mod backend;
pub mod frame;
pub mod frame_alloc;
pub mod frames;
pub mod kernel;
pub mod mmu;
#[cfg(feature = "model")]
pub mod model;
pub mod op;
pub mod p2m;
pub mod pte;
pub mod region;
pub mod reservation;

pub use backend::{Backend, FrameSource};
pub use frame::{Mfn, PAGE_SHIFT, PAGE_SIZE, Pfn};
pub use frame_alloc::{AllocStats, FrameAllocator};
pub use mmu::{DirectMap, MapError, Mmu, Pending, Run, Space};
pub use op::{Op, OpBrief, Outcome, Refused, Stats};
pub use pte::{Level, Prot};
pub use reservation::{Balloon, BalloonError, Reservation};
