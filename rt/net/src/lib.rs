//! Sockets and tasks for apps, as pure logic over any smoltcp interface:
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`] and, with the `dns`
//! feature, `dns` lookups; blocking calls, timeouts and typed errors
//! ([`SocketError`]), implementing `embedded-io`'s `Read`/`Write` and `embedded-io-async`'s; and a small
//! executor ([`exec`]) whose tasks wake on socket readiness and timers.
//!
//! The network is a [`Stack`]: the socket set plus a [`Driver`] — whatever
//! moves frames and knows the time. `rt` supplies the driver for the Xen vif
//! (its wait blocks the vCPU in the hypervisor) and re-exports this crate as
//! `rt::net`; the host tests drive the same code over smoltcp's loopback
//! device with a simulated clock. Apps never poll the stack: every call that
//! waits runs it.
//!
//! Invariant (one vCPU, no preemption): the stack's lock is taken only by the
//! calls in this crate and never held across an `.await`, so a task never
//! finds it taken.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

#[cfg(feature = "dns")]
pub mod dns;
mod error;
pub mod exec;
mod latency;
mod stack;
mod tcp;
mod timers;
mod udp;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use error::SocketError;
pub use latency::Latency;
pub use smoltcp;
pub use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};
pub use stack::{Driver, Limits, Stack, StackStats};
pub use tcp::{TcpListener, TcpOptions, TcpStream};
pub use udp::UdpSocket;

/// smoltcp's clock from a count of nanoseconds.
pub fn instant_from_nanos(ns: u64) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((ns / 1000) as i64)
}

/// A one-look `poll_*` answer as a future's poll: `None` is "not yet"
/// (the look registered the task's waker).
pub(crate) fn ready<T>(o: Option<T>) -> core::task::Poll<T> {
    o.map_or(core::task::Poll::Pending, core::task::Poll::Ready)
}

/// A `core` duration as smoltcp's.
pub(crate) fn duration(d: core::time::Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(d.as_micros().min(u64::MAX as u128) as u64)
}
