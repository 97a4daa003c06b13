//! A driver for the host tests: smoltcp's loopback device (every frame sent
//! comes back) with one address, and a simulated clock that a wait moves
//! forward to its deadline.
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use smoltcp::iface::{Config, Context, Interface, SocketSet};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};

use crate::{Driver, Limits, Stack};

pub(crate) const ADDR: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);

/// The simulated clock (µs) and how often the stack blocked; and the
/// device's switch to "down for good".
#[derive(Clone, Default)]
pub(crate) struct Clock {
    pub(crate) micros: Arc<AtomicI64>,
    pub(crate) waits: Arc<AtomicU64>,
    pub(crate) down: Arc<AtomicBool>,
}

impl Clock {
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.micros.load(Ordering::Relaxed))
    }
    pub(crate) fn advance(&self, d: Duration) {
        self.micros
            .fetch_add(d.total_micros() as i64, Ordering::Relaxed);
    }
}

pub(crate) struct LoopDriver {
    iface: Interface,
    dev: Loopback,
    clock: Clock,
}

impl Driver for LoopDriver {
    fn now(&self) -> Instant {
        self.clock.now()
    }
    fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'static>) {
        self.iface.poll(now, &mut self.dev, sockets);
    }
    fn poll_delay(&mut self, now: Instant, sockets: &SocketSet<'static>) -> Option<Duration> {
        self.iface.poll_delay(now, sockets)
    }
    fn wait(&mut self, deadline: Option<Instant>) {
        self.clock.waits.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        // Nothing arrives from outside: time passes to the deadline (or a
        // millisecond when there is none).
        let to = deadline.unwrap_or(now + Duration::from_millis(1)).max(now);
        self.clock
            .micros
            .store(to.total_micros(), Ordering::Relaxed);
    }
    fn context(&mut self) -> &mut Context {
        self.iface.context()
    }
    fn address(&self) -> Option<Ipv4Address> {
        Some(ADDR)
    }
    fn as_any(&mut self) -> &mut dyn core::any::Any {
        self
    }
    fn dns_servers(&self) -> alloc::vec::Vec<IpAddress> {
        alloc::vec![IpAddress::Ipv4(ADDR)]
    }
    fn is_down(&self) -> bool {
        self.clock.down.load(Ordering::Relaxed)
    }
}

/// A stack over the loopback device, and its clock.
pub(crate) fn stack(limits: Limits) -> (Stack, Clock) {
    let clock = Clock {
        micros: Arc::new(AtomicI64::new(1_000_000)),
        ..Clock::default()
    };
    let mut dev = Loopback::new(Medium::Ethernet);
    let cfg = Config::new(EthernetAddress([0x02, 0, 0, 0, 0, 1]).into());
    let mut iface = Interface::new(cfg, &mut dev, clock.now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(ADDR), 8));
    });
    let d = LoopDriver {
        iface,
        dev,
        clock: clock.clone(),
    };
    (Stack::new(Box::new(d), limits), clock)
}
