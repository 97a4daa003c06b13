//! The device layer: split-driver frontends, one folder each.
//!
//! May import: `proto` and `abi`. A driver is a folder of small modules —
//! its wire format, its xenbus keys (a [`crate::proto::xenbus::Spec`]),
//! its data path split by concern — each with host tests beside it against
//! the fake backend of its folder. `rt` supplies the pages, grants and
//! event channels (`rt/src/dev/<class>`).
//!
//! - [`net`]: netfront (vif);
//! - [`blk`]: blkfront (vbd).
pub mod blk;
pub mod net;
