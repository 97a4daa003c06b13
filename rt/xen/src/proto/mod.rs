//! The protocol layer: what guests and the toolstack or backends speak over
//! shared pages, event channels and xenstore, independent of any device.
//!
//! May import: `abi`. Never a device (`dev/`).
//!
//! - [`byte_ring`]: a ring of bytes each way in one page, and its two users'
//!   pages: [`console`] and the [`xenstore`] client (wire format, requests
//!   matched to replies, watches, transactions);
//! - [`line`]: line editing of console input;
//! - [`shared_ring`]: the request/response ring of `ring.h` that every split
//!   driver uses;
//! - [`xenbus`]: the frontend's handshake with its backend, with the
//!   device's keys as data;
//! - [`control`]: the toolstack's control keys (`control/shutdown`,
//!   `memory/target`);
//! - [`untrusted`]: how values from other domains are shown in the log
//!   (bounded, rate-limited);
//! - [`value`]: their numbers, flags and addresses, parsed strictly.
pub mod byte_ring;
pub mod console;
pub mod control;
pub mod line;
pub mod shared_ring;
pub mod untrusted;
pub mod value;
pub mod xenbus;
pub mod xenstore;
