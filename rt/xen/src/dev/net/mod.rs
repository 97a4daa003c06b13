//! netfront: a vif's frontend, as logic over its two rings and a set of
//! buffer pages (`rt::dev::net` supplies the pages, grants and event
//! channel; the host tests drive a fake backend that misbehaves).
//!
//! - [`netif`]: the wire format of `public/io/netif.h`;
//! - [`xenbus`]: the vif's keys for the xenbus handshake;
//! - [`netfront`]: the data path, the two halves together:
//!   - `tx`: transmit (one page per slot, answers taken on the next send),
//!   - `rx`: receive and the gathering of multi-slot (GSO) packets,
//!   - `csum`: the TCP/UDP checksum check of what the backend did not
//!     validate;
//! - [`lifecycle`]: the vif across suspends, restores and its backend
//!   closing, as a state machine;
//! - [`buffers`]: the buffer pages and the limits of a frame; [`stats`]:
//!   the counters;
//! - `fake` (tests): the fake netback all of them are tested against.
pub mod buffers;
mod csum;
#[cfg(test)]
mod fake;
pub mod gso;
pub mod lifecycle;
pub mod netfront;
pub mod netif;
mod rx;
pub mod stats;
mod tx;
pub mod xenbus;

pub use buffers::{MAX_FRAME, MAX_PACKET, Pages};
pub use csum::l4_checksum_ok;
pub use netfront::Netfront;
pub use stats::NetStats;
pub use tx::TxError;
