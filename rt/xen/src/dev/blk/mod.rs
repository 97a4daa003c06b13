//! blkfront: a vbd's frontend, as logic over its ring and a pool of data
//! pages (`rt::dev::blk` supplies the pages, grants and event channel; the
//! host tests drive a fake blkback that misbehaves).
//!
//! - [`blkif`]: the wire format of `public/io/blkif.h`;
//! - [`xenbus`]: the vbd's keys for the xenbus handshake and the disk the
//!   backend describes ([`xenbus::Geometry`]);
//! - [`request`]: the request path (direct and indirect requests, the
//!   persistent pool, answers matched by id);
//! - [`stats`]: the counters;
//! - `fake` (tests): the fake blkback over a disk in memory.
pub mod blkif;
#[cfg(test)]
mod fake;
pub mod request;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod xenbus;

pub use request::{Blkfront, Data, IoError, Op, Pages, SubmitError};
pub use stats::BlkStats;
pub use xenbus::Geometry;
