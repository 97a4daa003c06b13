//! The xenbus handshake of a split device's frontend with its backend
//! (`public/io/xenbus.h`), device-independent: a driver hands its keys over
//! as data (a [`Spec`]) and the logic runs over a [`Bus`], so that it is
//! host-tested against misbehaving fake backends (`fake`).
//!
//! Steps ([`connect`]):
//! 1. read the frontend keys the toolstack wrote: `backend`, `backend-id`
//!    and the device's own (netif's `mac`), each checked;
//! 2. wait until the backend is at least InitWait (2): its keys exist then,
//!    so reading them does not race the backend's own set-up;
//! 3. require the backend features the device cannot do without (netif's
//!    `feature-rx-copy`), read the ones it may use;
//! 4. set up the rings, buffers and event channel (the driver's closure);
//! 5. publish the driver's keys and its state in one transaction;
//! 6. wait until the backend is Connected too.
//!
//! Invariants kept here: every wait ends by the deadline (a backend that
//! stalls gives [`HandshakeError::Timeout`] naming the state last seen); a
//! backend that closes ends the wait at once; a state value that is not a
//! plain number counts as "not there yet", never as a state; when a step
//! after publishing fails, the frontend's state is set to Closed so that the
//! backend tears down its side, and the driver's resources are dropped.
mod handshake;

#[cfg(test)]
pub(crate) mod fake;

pub use handshake::*;
