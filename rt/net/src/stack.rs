//! The network stack the sockets share: smoltcp's socket set, the driver
//! under it, the pool limit, and the sockets closing in the background.
//!
//! Invariants kept here: the set never holds more than
//! [`Limits::sockets`] sockets; a socket its owner dropped is in `closing`
//! until it reaches `Closed`/`TimeWait` or its grace period ends, then it is
//! removed — a dropped socket never leaks a slot.
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use smoltcp::iface::{Context, SocketHandle, SocketSet};
use smoltcp::socket::{AnySocket, Socket, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, Ipv4Address};
use spin::{Mutex, MutexGuard};

use crate::SocketError;

/// What moves the frames: an interface over a device, and the clock.
///
/// `rt` implements it for the Xen vif; the host tests for smoltcp's
/// loopback device.
pub trait Driver: Send {
    /// The time now, on the clock smoltcp runs on.
    fn now(&self) -> Instant;
    /// Moves frames both ways and runs the interface over `sockets`.
    fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'static>);
    /// When the interface next needs a poll (its timers), if ever.
    fn poll_delay(&mut self, now: Instant, sockets: &SocketSet<'static>) -> Option<Duration>;
    /// Blocks until the device may have work or `deadline` passes
    /// (`None`: until the device signals).
    fn wait(&mut self, deadline: Option<Instant>);
    /// The interface's context (for connecting and DNS queries).
    fn context(&mut self) -> &mut Context;
    /// The interface's IPv4 address, if it has one yet.
    fn address(&self) -> Option<Ipv4Address>;
    /// The DNS servers to ask (from DHCP or the configuration).
    fn dns_servers(&self) -> Vec<IpAddress> {
        Vec::new()
    }
    /// The driver itself, for its owner to reach its own state.
    fn as_any(&mut self) -> &mut dyn core::any::Any;
    /// Whether the device is down for good (its backend vanished or was
    /// given up on): the sockets' calls then fail with
    /// [`SocketError::NetworkDown`].
    fn is_down(&self) -> bool {
        false
    }
}

/// Bounds on what the sockets may take.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Sockets in the stack at once, listening and closing ones included;
    /// one more gets [`SocketError::NoBuffer`].
    pub sockets: usize,
    /// How long a dropped connection may take to close before it is reset.
    pub close_grace: core::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sockets: 128,
            close_grace: core::time::Duration::from_secs(20),
        }
    }
}

/// Counters of the stack.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StackStats {
    /// Sockets in the set now.
    pub sockets: usize,
    /// Of those, dropped by their owner and still closing.
    pub closing: usize,
    /// Sockets refused because the pool was full.
    pub refused_pool_full: u64,
    /// Connections reset because they did not close within the grace.
    pub closes_forced: u64,
    /// Polls of the interface.
    pub polls: u64,
}

pub(crate) struct Inner {
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) driver: Box<dyn Driver>,
    limits: Limits,
    /// Dropped connections still closing, with their deadline.
    closing: Vec<(SocketHandle, Instant)>,
    /// Ports with a listener.
    pub(crate) listening: Vec<u16>,
    /// The next ephemeral port to try.
    next_port: u16,
    stats: StackStats,
    /// The driver said it is down for good ([`Driver::is_down`]).
    down: bool,
}

/// The network: sockets over a driver. Cloning it gives another handle to
/// the same stack.
#[derive(Clone)]
pub struct Stack(Arc<Mutex<Inner>>);

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("stats", &self.stats())
            .finish()
    }
}

const EPHEMERAL: core::ops::RangeInclusive<u16> = 49152..=65535;

impl Stack {
    /// A stack over `driver`.
    pub fn new(driver: Box<dyn Driver>, limits: Limits) -> Stack {
        Stack(Arc::new(Mutex::new(Inner {
            sockets: SocketSet::new(Vec::new()),
            driver,
            limits,
            closing: Vec::new(),
            listening: Vec::new(),
            next_port: *EPHEMERAL.start(),
            stats: StackStats::default(),
            down: false,
        })))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock()
    }

    /// Moves frames and runs the stack once (the blocking calls and the
    /// executor do this themselves; an app need not).
    pub fn poll(&self) {
        self.lock().poll();
    }

    /// Blocks until the device signals, the stack's next timer, or
    /// `deadline`, whichever is first.
    pub fn wait(&self, deadline: Option<Instant>) {
        self.lock().wait(deadline);
    }

    /// The time on the stack's clock.
    pub fn now(&self) -> Instant {
        self.lock().driver.now()
    }

    /// The interface's IPv4 address.
    pub fn address(&self) -> Option<Ipv4Address> {
        self.lock().driver.address()
    }

    /// Whether the network is down for good (the device's backend vanished
    /// or was given up on): socket calls fail with
    /// [`SocketError::NetworkDown`].
    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Counters.
    pub fn stats(&self) -> StackStats {
        let g = self.lock();
        StackStats {
            sockets: g.sockets.iter().count(),
            closing: g.closing.len(),
            ..g.stats
        }
    }

    /// Runs `f` on the driver (for its own counters).
    pub fn with_driver<R>(&self, f: impl FnOnce(&mut dyn Driver) -> R) -> R {
        f(&mut *self.lock().driver)
    }

    /// Runs `f` on smoltcp's socket set and the driver: the raw stack, for
    /// what the socket types do not cover (ICMP, DHCP). Sockets added here
    /// count against the pool only through [`Stack::add_socket`].
    pub fn with_sockets<R>(
        &self,
        f: impl FnOnce(&mut SocketSet<'static>, &mut dyn Driver) -> R,
    ) -> R {
        let mut g = self.lock();
        let Inner {
            sockets, driver, ..
        } = &mut *g;
        f(sockets, &mut **driver)
    }

    /// Adds a raw smoltcp socket within the pool's limit; the caller
    /// removes it (through [`Stack::with_sockets`]) when done.
    pub fn add_socket<S: AnySocket<'static>>(&self, s: S) -> Result<SocketHandle, SocketError> {
        self.lock().add(s)
    }

    /// Polls and looks with `f` until it answers, or `deadline` passes
    /// ([`SocketError::TimedOut`]); blocks in the driver between looks.
    pub(crate) fn block<R>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut Inner) -> Option<Result<R, SocketError>>,
    ) -> Result<R, SocketError> {
        loop {
            let mut g = self.lock();
            g.poll();
            let r = f(&mut g);
            if let Some(r) = g.gate(r) {
                // What `f` queued goes out now, not at the next call.
                g.poll();
                return r;
            }
            if deadline.is_some_and(|d| g.driver.now() >= d) {
                return Err(SocketError::TimedOut);
            }
            g.wait(deadline);
        }
    }

    /// The deadline `timeout` from now.
    pub(crate) fn deadline(&self, timeout: Option<core::time::Duration>) -> Option<Instant> {
        timeout.map(|t| self.now() + crate::duration(t))
    }
}

impl Inner {
    pub(crate) fn poll(&mut self) {
        let now = self.driver.now();
        self.driver.poll(now, &mut self.sockets);
        self.stats.polls += 1;
        self.reap(now);
        if !self.down && self.driver.is_down() {
            self.go_down();
        }
    }

    /// The device is down for good: every connection is aborted and every
    /// UDP socket closed, which wakes their waiting tasks; from now on
    /// their calls fail with [`SocketError::NetworkDown`] (see
    /// [`Inner::gate`]). Listeners stay: no connection will come.
    fn go_down(&mut self) {
        self.down = true;
        for (_, s) in self.sockets.iter_mut() {
            match s {
                Socket::Tcp(t) if t.state() != tcp::State::Listen => t.abort(),
                Socket::Udp(u) => u.close(),
                _ => {}
            }
        }
    }

    /// What a socket call answers, given what its socket said (`r`: `None`
    /// while it would wait): once the network is down for good, anything
    /// but success is [`SocketError::NetworkDown`], at once.
    pub(crate) fn gate<T>(
        &self,
        r: Option<Result<T, SocketError>>,
    ) -> Option<Result<T, SocketError>> {
        match r {
            Some(Ok(v)) => Some(Ok(v)),
            _ if self.down => Some(Err(SocketError::NetworkDown)),
            r => r,
        }
    }

    pub(crate) fn wait(&mut self, deadline: Option<Instant>) {
        let now = self.driver.now();
        let timer = self.driver.poll_delay(now, &self.sockets).map(|d| now + d);
        let until = [deadline, timer].into_iter().flatten().min();
        if until.is_some_and(|u| u <= now) {
            return;
        }
        self.driver.wait(until);
    }

    /// Adds a socket, within the pool's limit.
    pub(crate) fn add<S: AnySocket<'static>>(&mut self, s: S) -> Result<SocketHandle, SocketError> {
        if self.sockets.iter().count() >= self.limits.sockets {
            self.stats.refused_pool_full += 1;
            return Err(SocketError::NoBuffer);
        }
        Ok(self.sockets.add(s))
    }

    pub(crate) fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// An ephemeral port no socket uses.
    pub(crate) fn ephemeral_port(&mut self) -> Result<u16, SocketError> {
        let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u32 + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                p + 1
            };
            let used = self.sockets.iter().any(|(_, s)| match s {
                Socket::Tcp(t) => t.local_endpoint().is_some_and(|e| e.port == p),
                Socket::Udp(u) => u.endpoint().port == p,
                _ => false,
            });
            if !used && !self.listening.contains(&p) {
                return Ok(p);
            }
        }
        Err(SocketError::AddrInUse)
    }

    /// Hands a connection its owner dropped to the background: it closes
    /// (FIN) and is removed once closed or after the grace period.
    pub(crate) fn release_tcp(&mut self, h: SocketHandle) {
        let now = self.driver.now();
        let s = self.tcp(h);
        s.close();
        if matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            self.sockets.remove(h);
            return;
        }
        let grace = crate::duration(self.limits.close_grace);
        self.closing.push((h, now + grace));
    }

    /// Removes the dropped connections that have closed; resets those past
    /// their grace period.
    fn reap(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.closing.len() {
            let (h, deadline) = self.closing[i];
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            let done = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
            if done || now >= deadline {
                if !done {
                    s.abort();
                    self.stats.closes_forced += 1;
                    // The reset goes out on this poll.
                    let now = self.driver.now();
                    self.driver.poll(now, &mut self.sockets);
                }
                self.sockets.remove(h);
                self.closing.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}
