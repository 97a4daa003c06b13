//! Networking for apps (`rt::net`): std::net-shaped sockets over smoltcp
//! over the Xen vif ([`vif`]).
//!
//! [`up`] connects `device/vif/0`, configures the address — `ip=`, `gw=`
//! and `dns=` on the kernel command line, else `[network]` from
//! `image.toml` (built into the image); `ip=dhcp` asks a DHCP server and
//! keeps the lease renewed — and installs the one network [`Stack`] of the
//! domain. On it the app opens [`TcpListener`], [`TcpStream`], [`UdpSocket`]
//! and, with rt's `dns` feature, looks names up (`dns::resolve`); blocking
//! calls and the executor (`rt::task`) run the stack themselves, blocking
//! the vCPU until the backend signals or smoltcp's next timer — an idle server uses no CPU.
//! The socket types, their errors and the executor are the host-tested
//! crate `rt-net`; this module is its driver for the vif ([`VifDriver`]).
//!
//! May import: `sched`, `event`, `grant`, `xenstore`, `time`, `console`,
//! `bootinfo`, the registry of [`crate::dev`].
pub mod vif;

pub use embedded_io as io;
pub use embedded_io_async as io_async;
/// Name lookups (rt's `dns` feature: smoltcp's DNS socket is linked only
/// into apps that ask for it).
#[cfg(feature = "dns")]
pub use rt_net::dns;
pub use rt_net::{
    IpAddress, IpEndpoint, Ipv4Address, Latency, Limits, SocketError, Stack, StackStats,
    TcpListener, TcpOptions, TcpStream, UdpSocket,
};

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use rt_xen::proto::untrusted::Shown;
pub use smoltcp;
use smoltcp::iface::{Config, Context, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

use self::vif::{Vif, VifError};
use crate::time::Instant;

/// An address configuration (static, or the one a DHCP server gave).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpConfig {
    /// Address and prefix.
    pub cidr: Ipv4Cidr,
    /// Default route.
    pub gateway: Option<Ipv4Address>,
}

/// Where the address comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Addressing {
    /// Given in the image or on the command line.
    Static(IpConfig),
    /// Asked of a DHCP server on the vif's network.
    Dhcp,
}

/// How long [`up`] waits for a DHCP lease.
pub const DHCP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the network could not come up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The vif.
    Vif(VifError),
    /// No address configured, or a malformed one.
    Config(alloc::string::String),
    /// No DHCP lease within [`DHCP_TIMEOUT`].
    NoLease,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::Vif(e) => write!(f, "{e}"),
            NetError::Config(e) => write!(f, "network configuration: {e}"),
            NetError::NoLease => write!(
                f,
                "no DHCP lease within {} s (is a DHCP server on the vif's bridge?)",
                DHCP_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Parses `a.b.c.d` (see [`rt_xen::proto::value::ipv4`]).
fn parse_v4(s: &str) -> Option<Ipv4Address> {
    rt_xen::proto::value::ipv4(s).map(Ipv4Address::from)
}

/// Parses `a.b.c.d/len`.
pub fn parse_cidr(s: &str) -> Option<Ipv4Cidr> {
    let (a, l) = rt_xen::proto::value::trimmed(s).split_once('/')?;
    let addr = parse_v4(a)?;
    let len = rt_xen::proto::value::decimal(l).filter(|&l| l <= 32)? as u8;
    Some(Ipv4Cidr::new(addr, len))
}

/// The address configuration: the command line's `ip=`/`gw=` first, then
/// the image's `[network]`.
pub fn config() -> Result<Addressing, NetError> {
    let word = |k: &str| crate::bootinfo::boot_info().cmdline_value(k);
    let ip = word("ip=").or(built_in("ip"));
    let dns = word("dns=").or(built_in("dns"));
    let gw = word("gw=").or(built_in("gateway"));
    let Some(ip) = ip else {
        return Err(NetError::Config(
            "no address: set [network] ip in image.toml or ip= on the command line".into(),
        ));
    };
    if let Some(d) = dns
        && parse_v4(d).is_none()
    {
        return Err(NetError::Config(alloc::format!(
            "dns server {} is not an address",
            Shown(d)
        )));
    }
    if ip == "dhcp" {
        // The server names the router; a `gateway` beside "dhcp" is unused.
        return Ok(Addressing::Dhcp);
    }
    let cidr = parse_cidr(ip)
        .ok_or_else(|| NetError::Config(alloc::format!("{} is not a.b.c.d/len", Shown(ip))))?;
    let gateway = match gw {
        Some(g) => Some(parse_v4(g).ok_or_else(|| {
            NetError::Config(alloc::format!("gateway {} is not an address", Shown(g)))
        })?),
        None => None,
    };
    Ok(Addressing::Static(IpConfig { cidr, gateway }))
}

unsafe extern "Rust" {
    /// `[network]` of image.toml as `ip=...;gateway=...` (`rt::main!`).
    static __RT_NETWORK: &'static str;
}

fn built_in(k: &str) -> Option<&'static str> {
    // SAFETY: `rt::main!` defines this static in every image; read-only.
    let s: &'static str = unsafe { __RT_NETWORK };
    s.split(';')
        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// smoltcp's view of the vif.
#[derive(Debug)]
pub struct VifDevice {
    vif: Vif,
    /// Where a received packet is copied before smoltcp reads it (its ring
    /// buffers go back to the backend at once). Sized for the largest
    /// packet the backend may send: with `feature-gso-tcpv4` that is a
    /// 64 KiB TCP segment, gathered from several slots by netfront.
    rx: Vec<u8>,
}

/// A received packet, borrowed from the device's receive buffer.
#[derive(Debug)]
pub struct RxFrame<'a> {
    data: &'a [u8],
}

impl smoltcp::phy::RxToken for RxFrame<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.data)
    }
}

/// Room for one frame in the transmit ring.
#[derive(Debug)]
pub struct TxSlot<'a> {
    vif: &'a mut Vif,
}

impl smoltcp::phy::TxToken for TxSlot<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        if !self.vif.send(len, |buf| out = f.take().map(|f| f(buf))) {
            // The ring filled (or smoltcp asked for an impossible length):
            // the frame is built into scratch space and dropped, counted by
            // the vif; TCP retransmits.
            let mut scratch = vec![0u8; len];
            out = f.take().map(|f| f(&mut scratch));
        }
        match out {
            Some(r) => r,
            // `f` ran in one of the two branches above.
            None => unreachable!("the frame was never built"),
        }
    }
}

impl Device for VifDevice {
    type RxToken<'a> = RxFrame<'a>;
    type TxToken<'a> = TxSlot<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxFrame<'_>, TxSlot<'_>)> {
        let Self { vif, rx } = self;
        // netfront never delivers more than MAX_PACKET bytes, the size of
        // `rx`; `min` keeps that a bound rather than a panic.
        let len = vif.receive_one(|d| {
            let n = d.len().min(rx.len());
            rx[..n].copy_from_slice(&d[..n]);
            n
        })?;
        Some((RxFrame { data: &rx[..len] }, TxSlot { vif }))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxSlot<'_>> {
        self.vif.can_send().then_some(TxSlot { vif: &mut self.vif })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = rt_xen::dev::net::MAX_FRAME;
        c.max_burst_size = Some(32);
        // Received: netfront verified TCP and UDP checksums already, or the
        // backend said the data was validated (a frame from dom0's own
        // stack may carry only the pseudo-header sum: `NETRXF_csum_blank`).
        // Sent: netfront offloads TCP checksums to the backend
        // (`NETTXF_csum_blank`, see `rt_xen::dev::net::csum`), so smoltcp
        // never sums a TCP payload; UDP it still sums.
        c.checksum.tcp = Checksum::None;
        c.checksum.udp = Checksum::Tx;
        c
    }
}

/// The domain's network stack, once [`up`] succeeded.
static STACK: spin::Mutex<Option<Stack>> = spin::Mutex::new(None);

/// The network stack, if [`up`] brought it up.
pub fn stack() -> Option<Stack> {
    STACK.lock().clone()
}

/// Connects the vif and configures the interface (with DHCP, waits at most
/// [`DHCP_TIMEOUT`] for the first lease), and installs the domain's
/// [`Stack`] with default [`Limits`]. Called again, it returns the same
/// stack.
pub fn up() -> Result<Stack, NetError> {
    up_with(Limits::default())
}

/// [`up`] with the stack's limits given.
pub fn up_with(limits: Limits) -> Result<Stack, NetError> {
    if let Some(s) = stack() {
        return Ok(s);
    }
    let addressing = config()?;
    let vif = Vif::connect(0).map_err(NetError::Vif)?;
    crate::bootinfo::mark("netfront");
    let mut device = VifDevice {
        vif,
        rx: vec![0; rt_xen::dev::net::MAX_PACKET],
    };
    let mac = EthernetAddress(device.vif.mac());
    let iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(mac)),
        &mut device,
        now(),
    );
    let dns = crate::bootinfo::boot_info()
        .cmdline_value("dns=")
        .or(built_in("dns"))
        .and_then(parse_v4)
        .map(IpAddress::Ipv4);
    let mut driver = VifDriver {
        iface,
        device,
        config: IpConfig {
            cidr: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
            gateway: None,
        },
        dhcp: None,
        dns: dns.into_iter().collect(),
        announced: 0,
        polls: 0,
        poll_ns: 0,
        woke: None,
        turnaround: Latency::new(),
    };
    let mut dhcp_socket = None;
    match addressing {
        Addressing::Static(c) => driver.apply(Some(c))?,
        Addressing::Dhcp => dhcp_socket = Some(dhcpv4::Socket::new()),
    }
    let stack = Stack::new(alloc::boxed::Box::new(driver), limits);
    if let Some(sock) = dhcp_socket {
        let h = stack.with_sockets(|set, _| set.add(sock));
        with_vif(&stack, |d| d.dhcp = Some(h));
        let deadline = Instant::now().after(DHCP_TIMEOUT);
        while stack.address().is_none_or(|a| a.is_unspecified()) {
            if Instant::now() >= deadline {
                return Err(NetError::NoLease);
            }
            stack.poll();
            stack.wait(Some(now() + smoltcp::time::Duration::from_millis(500)));
        }
    }
    crate::bootinfo::mark("ip");
    *STACK.lock() = Some(stack.clone());
    Ok(stack)
}

/// Runs `f` on the vif's driver of `stack`.
fn with_vif<R>(stack: &Stack, f: impl FnOnce(&mut VifDriver) -> R) -> Option<R> {
    stack.with_driver(|d| d.as_any().downcast_mut::<VifDriver>().map(f))
}

/// What the network looks like now.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NetInfo {
    /// The address configuration in use.
    pub config: IpConfig,
    /// Vif counters.
    pub stats: rt_xen::dev::net::NetStats,
    /// TX buffers in flight and RX buffers posted.
    pub buffers: (usize, usize),
    /// Times the vif connected again after the first (one per restore or
    /// migration).
    pub reconnects: u64,
    /// Whether the vif is connected (false once the backend closed it).
    pub connected: bool,
    /// The stack's counters (sockets in use, closing...).
    pub sockets: StackStats,
    /// Stack polls (frames moved, sockets served, GSO packets flushed).
    pub polls: u64,
    /// The time spent in them: with [`crate::sched::idle_stats`], where a
    /// busy guest's CPU goes (the rest is the app's own work).
    pub poll_time: Duration,
    /// From the vCPU's wake-up in a network wait to the end of the first
    /// stack poll after it, for the polls that sent frames: the guest's own
    /// share of a round trip (a ping's reply, an answer to a request).
    pub turnaround: Latency,
}

/// The network's state, if it is up.
pub fn info() -> Option<NetInfo> {
    let s = stack()?;
    let sockets = s.stats();
    with_vif(&s, |d| NetInfo {
        config: d.config,
        stats: d.device.vif.stats(),
        buffers: d.device.vif.buffers(),
        reconnects: d.device.vif.reconnects(),
        connected: d.device.vif.check_backend(),
        sockets,
        polls: d.polls,
        poll_time: Duration::from_nanos(d.poll_ns),
        turnaround: d.turnaround,
    })
}

/// The vif under smoltcp, as the stack's driver.
pub struct VifDriver {
    iface: Interface,
    device: VifDevice,
    /// The address configuration in use.
    config: IpConfig,
    /// The DHCP client, when the address comes from one.
    dhcp: Option<SocketHandle>,
    /// DNS servers: configured, or from the DHCP lease.
    dns: Vec<IpAddress>,
    /// The vif's reconnections already announced to the network.
    announced: u64,
    /// Polls so far and their total time (see [`NetInfo::poll_time`]).
    polls: u64,
    poll_ns: u64,
    /// When the last network wait returned (taken by the next poll).
    woke: Option<Instant>,
    /// See [`NetInfo::turnaround`].
    turnaround: Latency,
}

impl core::fmt::Debug for VifDriver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VifDriver")
            .field("device", &self.device)
            .field("config", &self.config)
            .finish()
    }
}

fn now() -> smoltcp::time::Instant {
    rt_net::instant_from_nanos(Instant::now().as_nanos())
}

impl rt_net::Driver for VifDriver {
    fn now(&self) -> smoltcp::time::Instant {
        now()
    }

    /// Moves frames and runs the stack until it has nothing more to do
    /// (and follows the DHCP lease); counted and timed.
    fn poll(&mut self, now: smoltcp::time::Instant, sockets: &mut SocketSet<'static>) {
        let t0 = Instant::now();
        let sent = self.device.vif.tx_frames();
        self.poll_frames(now, sockets);
        self.polls += 1;
        let t1 = Instant::now();
        self.poll_ns += t1.duration_since(t0).as_nanos() as u64;
        if let Some(w) = self.woke.take()
            && self.device.vif.tx_frames() != sent
        {
            self.turnaround.record(t1.duration_since(w));
        }
    }

    fn poll_delay(
        &mut self,
        now: smoltcp::time::Instant,
        sockets: &SocketSet<'static>,
    ) -> Option<smoltcp::time::Duration> {
        self.iface.poll_delay(now, sockets)
    }

    /// Blocks until the backend signals or `deadline`, serving the
    /// toolstack meanwhile (see [`crate::sched::idle`]).
    fn wait(&mut self, deadline: Option<smoltcp::time::Instant>) {
        let mut deadline =
            deadline.map(|d| Instant::from_nanos(d.total_micros().max(0) as u64 * 1000));
        // While the vif reconnects, its next attempt is a deadline too.
        if let Some(r) = self.device.vif.retry_in() {
            let at = Instant::now().after(r);
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
        // The backend's event may have come while the stack ran: then the
        // block ends at once (the latch keeps it), so nothing is missed.
        if crate::event::port_state(self.device.vif.port()).0 {
            return;
        }
        if crate::sched::idle(deadline).is_err() {
            crate::xen::yield_cpu();
        }
        self.woke = Some(Instant::now());
    }

    fn context(&mut self) -> &mut Context {
        self.iface.context()
    }

    fn address(&self) -> Option<Ipv4Address> {
        Some(self.config.cidr.address()).filter(|a| !a.is_unspecified())
    }

    fn dns_servers(&self) -> Vec<IpAddress> {
        self.dns.clone()
    }

    fn as_any(&mut self) -> &mut dyn core::any::Any {
        self
    }

    fn is_down(&self) -> bool {
        self.device.vif.is_down()
    }
}

impl VifDriver {
    /// Moves frames and runs the stack until it has nothing more to do
    /// (and follows the DHCP lease).
    fn poll_frames(&mut self, now: smoltcp::time::Instant, sockets: &mut SocketSet<'static>) {
        self.device.vif.take_event();
        self.device.vif.check_backend();
        let reconnects = self.device.vif.reconnects();
        if reconnects != self.announced {
            self.announced = reconnects;
            self.announce();
        }
        self.iface.poll(now, &mut self.device, sockets);
        // What the stack sent may wait gathered into a GSO packet: it goes.
        self.device.vif.flush();
        let Some(h) = self.dhcp else { return };
        let change = match sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => {
                crate::console::println!(
                    "net: DHCP lease {} router {} from {}",
                    c.address,
                    c.router.map_or("none".into(), |r| alloc::format!("{r}")),
                    c.server.address
                );
                if self.dns.is_empty() {
                    self.dns = c.dns_servers.iter().map(|&a| IpAddress::Ipv4(a)).collect();
                }
                Some(IpConfig {
                    cidr: c.address,
                    gateway: c.router,
                })
            }
            // Also the client's first report, before any lease: not news.
            Some(dhcpv4::Event::Deconfigured) if self.config.cidr.address().is_unspecified() => {
                return;
            }
            Some(dhcpv4::Event::Deconfigured) => {
                crate::console::println!("net: DHCP lease lost, address removed");
                None
            }
        };
        if let Err(e) = self.apply(change) {
            crate::console::println!("net: {e}");
        }
    }

    /// Sets the interface's address and default route (`None`: none).
    fn apply(&mut self, c: Option<IpConfig>) -> Result<(), NetError> {
        self.iface.update_ip_addrs(|a| {
            a.clear();
            if let Some(c) = c {
                // One address: the vector has room for it.
                let _ = a.push(IpCidr::Ipv4(c.cidr));
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = c.and_then(|c| c.gateway) {
            self.iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .map_err(|_| NetError::Config("the route table is full".into()))?;
        }
        self.config = c.unwrap_or(IpConfig {
            cidr: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
            gateway: None,
        });
        Ok(())
    }

    /// Tells the network where the domain is now (after a restore or a
    /// migration, on another host or another bridge port): a gratuitous
    /// ARP, so switches learn the MAC's new place and peers refresh it.
    fn announce(&mut self) {
        use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetRepr};
        let mac = EthernetAddress(self.device.vif.mac());
        let ip = self.config.cidr.address();
        if ip.is_unspecified() {
            return;
        }
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        let eth = EthernetRepr {
            src_addr: mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: smoltcp::wire::EthernetProtocol::Arp,
        };
        let len = eth.buffer_len() + arp.buffer_len();
        let sent = self.device.vif.send(len, |buf| {
            let mut f = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut f);
            arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        });
        if !sent {
            crate::console::println!("net: the gratuitous ARP after reconnecting was not sent");
        }
    }
}

/// What [`ping`] saw.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PingResult {
    /// Echo requests sent.
    pub sent: u16,
    /// Replies received.
    pub received: u16,
    /// Fastest and slowest round trip.
    pub rtt_min: Duration,
    /// See `rtt_min`.
    pub rtt_max: Duration,
}

/// Pings `addr` `count` times (one request at a time, each given up to
/// `timeout`) on the domain's stack; nothing sent when the network is down.
pub fn ping(addr: Ipv4Address, count: u16, timeout: Duration) -> PingResult {
    match stack() {
        Some(s) => ping_on(&s, addr, count, timeout),
        None => PingResult::default(),
    }
}

fn ping_on(stack: &Stack, addr: Ipv4Address, count: u16, timeout: Duration) -> PingResult {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::socket::icmp;
    use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr};
    const IDENT: u16 = 0x7274;
    let mut r = PingResult::default();
    let sock = icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
    );
    let Ok(h) = stack.add_socket(sock) else {
        return r;
    };
    let bound = stack.with_sockets(|set, _| {
        set.get_mut::<icmp::Socket>(h)
            .bind(icmp::Endpoint::Ident(IDENT))
            .is_ok()
    });
    let data = b"rt ping";
    for seq in 0..if bound { count } else { 0 } {
        let repr = Icmpv4Repr::EchoRequest {
            ident: IDENT,
            seq_no: seq,
            data,
        };
        let queued = stack.with_sockets(|set, _| {
            let s = set.get_mut::<icmp::Socket>(h);
            let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(addr)) else {
                return false;
            };
            repr.emit(
                &mut Icmpv4Packet::new_unchecked(buf),
                &ChecksumCapabilities::default(),
            );
            true
        });
        if !queued {
            continue;
        }
        r.sent += 1;
        let t0 = Instant::now();
        let deadline = t0.after(timeout);
        while Instant::now() < deadline {
            stack.poll();
            let got = stack.with_sockets(|set, _| {
                let s = set.get_mut::<icmp::Socket>(h);
                while let Ok((payload, _)) = s.recv() {
                    let reply = Icmpv4Packet::new_checked(payload)
                        .ok()
                        .and_then(|p| Icmpv4Repr::parse(&p, &ChecksumCapabilities::default()).ok());
                    if let Some(Icmpv4Repr::EchoReply {
                        ident: IDENT,
                        seq_no,
                        ..
                    }) = reply
                        && seq_no == seq
                    {
                        return true;
                    }
                }
                false
            });
            if got {
                let rtt = t0.elapsed();
                r.rtt_min = if r.received == 0 {
                    rtt
                } else {
                    r.rtt_min.min(rtt)
                };
                r.rtt_max = r.rtt_max.max(rtt);
                r.received += 1;
                break;
            }
            stack.wait(Some(rt_net::instant_from_nanos(deadline.as_nanos())));
        }
    }
    stack.with_sockets(|set, _| set.remove(h));
    r
}
