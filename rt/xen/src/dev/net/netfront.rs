//! The data path of one vif: its transmit and receive halves ([`super::tx`],
//! [`super::rx`]) over the two rings and a set of buffer pages, and their
//! counters. `rt`'s vif supplies the pages, grants and event channel.
//!
//! Buffers: one page per slot and direction, granted to the backend once for
//! the life of the device (RX writable, TX read-only), so the number of
//! grants and buffers never changes while traffic flows.
//!
//! Checksums: a packet the backend flags `NETRXF_data_validated` (or
//! `csum_blank`: a local packet whose checksum was never filled in) is
//! taken as checked; any other IPv4 TCP or UDP packet has its checksum
//! verified here ([`super::csum`]), and a wrong one is dropped. What is
//! delivered needs no further TCP/UDP checksum check.
use super::buffers::{MIN_BUFFERS, Pages, SLOTS};
use super::netif::{Rx, Tx};
use super::rx::RxPath;
use super::stats::NetStats;
use super::tx::{TxError, TxPath};
use crate::proto::shared_ring::FrontRing;

/// The data path of one vif.
#[derive(Debug)]
pub struct Netfront {
    tx: TxPath,
    rx: RxPath,
    /// Counters.
    pub stats: NetStats,
}

impl Netfront {
    /// The data path over initialised rings, with the grant of each buffer
    /// page. Posts every RX buffer; returns whether to notify the backend.
    pub fn new(
        tx: FrontRing<Tx>,
        rx: FrontRing<Rx>,
        tx_gref: [u32; SLOTS],
        rx_gref: [u32; SLOTS],
    ) -> (Netfront, bool) {
        Self::with_buffers(tx, rx, tx_gref, rx_gref, SLOTS)
    }

    /// The same with only `buffers` buffers each way (ids `0..buffers`;
    /// clamped to [`MIN_BUFFERS`]`..=`[`SLOTS`]; the grants beyond are unused).
    // Cold (once per connection): kept out of line, the image is smaller.
    #[inline(never)]
    pub fn with_buffers(
        tx: FrontRing<Tx>,
        rx: FrontRing<Rx>,
        tx_gref: [u32; SLOTS],
        rx_gref: [u32; SLOTS],
        buffers: usize,
    ) -> (Netfront, bool) {
        let n = buffers.clamp(MIN_BUFFERS, SLOTS);
        let (rx, notify) = RxPath::new(rx, rx_gref, n);
        let mut n = Netfront {
            tx: TxPath::new(tx, tx_gref, n),
            rx,
            stats: NetStats::default(),
        };
        n.count_notify(notify);
        (n, notify)
    }

    fn count_notify(&mut self, notify: bool) -> bool {
        self.stats.notifies += u64::from(notify);
        notify
    }

    /// Whether a frame can be sent now.
    pub fn can_send(&self) -> bool {
        self.tx.can_send()
    }

    /// Sends a frame of `len` bytes that `fill` writes; returns whether to
    /// notify the backend.
    pub fn send(
        &mut self,
        pages: &mut impl Pages,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<bool, TxError> {
        let notify = self.tx.send(pages, len, fill, &mut self.stats)?;
        Ok(self.count_notify(notify))
    }

    /// Sends what TCP segments are being gathered into a GSO packet (call
    /// when the stack has nothing more to send for now); returns whether to
    /// notify the backend.
    pub fn flush_tx(&mut self, pages: &mut impl Pages) -> bool {
        let notify = self.tx.flush(pages, &mut self.stats);
        self.count_notify(notify)
    }

    /// Gathers TCP segments into GSO packets from now on (the backend
    /// offers `feature-gso-tcpv4` and `feature-sg`), or stops.
    pub fn set_tx_gso(&mut self, on: bool) {
        self.tx.set_gso(on);
    }

    /// Takes the backend's TX answers (see [`TxPath::collect`]): their
    /// buffers can be used again. Returns the number taken.
    pub fn collect_tx(&mut self) -> u32 {
        self.tx.collect(&mut self.stats)
    }

    /// Hands each packet the backend copied in to `deliver`, posting its
    /// buffers again. Returns (packets delivered, whether to notify).
    pub fn receive(&mut self, pages: &impl Pages, deliver: impl FnMut(&[u8])) -> (u32, bool) {
        self.receive_at_most(pages, u32::MAX, deliver)
    }

    /// [`Self::receive`], stopping after `max` packets delivered.
    pub fn receive_at_most(
        &mut self,
        pages: &impl Pages,
        max: u32,
        deliver: impl FnMut(&[u8]),
    ) -> (u32, bool) {
        let (n, notify) = self
            .rx
            .receive_at_most(pages, max, deliver, &mut self.stats);
        (n, self.count_notify(notify))
    }

    /// TX buffers in flight and RX buffers posted.
    pub fn buffers(&self) -> (usize, usize) {
        (self.tx.in_flight(), self.rx.posted())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::dev::net::buffers::{MAX_FRAME, MAX_PACKET, MIN_FRAME};
    use crate::dev::net::fake::{Back, Bufs, ans, idx, setup};
    use crate::dev::net::netif::{
        NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO,
        NETTXF_MORE_DATA, RxRequest, RxResponse, TxRequest, TxResponse,
    };
    use crate::dev::net::stats::NetStats;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    proptest! {
        /// A fuzzing backend: random answers (ids, offsets, lengths, flags,
        /// statuses, extra-info slots) on both rings, interleaved with
        /// sends. Nothing panics, delivered packets fit [`MAX_PACKET`], and
        /// after every receive each RX buffer is posted again.
        #[test]
        fn random_answers_never_break_the_data_path(
            ops in proptest::collection::vec((0u8..3, any::<u16>(), any::<u16>(), any::<u16>(), any::<i16>()), 1..300)
        ) {
            let (mut n, mut b, mut bufs) = setup();
            b.rx_requests();
            for (op, id, off, flags, status) in ops {
                match op {
                    0 => { let _ = n.send(&mut bufs, 60, |_| {}); b.tx_requests(); }
                    1 => {
                        if b.tx_prod.wrapping_sub(idx(&b.tx, 0)) < 300 {
                            b.tx_answer(TxResponse { id: id % 300, status: status % 3 });
                        }
                        n.collect_tx();
                    }
                    _ => {
                        b.rx_answer(&mut bufs, ans(id % 300, off % 4200, flags % 32, status), &[7; 16]);
                        n.receive(&bufs, |d| assert!((MIN_FRAME..=MAX_PACKET).contains(&d.len())));
                        prop_assert_eq!(n.buffers().1, SLOTS);
                        b.rx_requests();
                    }
                }
                let (tx, rx) = n.buffers();
                prop_assert!(tx <= SLOTS && rx <= SLOTS);
            }
        }
    }

    #[test]
    fn tcp_frames_go_with_checksum_offload_and_others_without() {
        use crate::dev::net::csum::{complete_tcp, l4_checksum_ok};
        use crate::dev::net::fake::{tcp_frame, udp_frame};
        let (mut n, mut b, mut bufs) = setup();
        let good = tcp_frame(1000, 9);
        let mut sent = good.clone();
        sent[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&[0, 0]); // as smoltcp leaves it
        n.send(&mut bufs, sent.len(), |f| f.copy_from_slice(&sent))
            .unwrap();
        let udp = udp_frame(40, true);
        n.send(&mut bufs, udp.len(), |f| f.copy_from_slice(&udp))
            .unwrap();
        let reqs = b.tx_requests();
        assert_eq!(reqs[0].flags, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED);
        assert_eq!(reqs[1].flags, 0, "UDP carries its own checksum");
        let mut on_wire = bufs.tx[usize::from(reqs[0].id)].0[..good.len()].to_vec();
        assert!(!l4_checksum_ok(&on_wire), "only the pseudo-header sum");
        complete_tcp(&mut on_wire);
        assert_eq!(on_wire, good);
        assert_eq!(n.stats.tx_csum_offloaded, 1);
    }

    /// smoltcp over this data path, the backend a lossy wire to a second
    /// smoltcp interface: it drops every 9th frame (either way) and flips a
    /// byte in every 13th it delivers. A 64 KiB TCP transfer still arrives
    /// intact (checksums reject the damaged frames, TCP resends), and at
    /// the end every TX buffer is back and every RX buffer posted again.
    #[test]
    fn smoltcp_tcp_crosses_a_lossy_backend_intact() {
        lossy_transfer(false, false);
    }

    /// The same with the guest sending, its TCP segments gathered into GSO
    /// packets that the backend segments again (as netback and Linux do):
    /// the data arrives intact, and GSO packets were sent.
    #[test]
    fn smoltcp_tcp_sends_gso_packets_through_a_lossy_backend_intact() {
        let s = lossy_transfer(true, true);
        assert!(s.tx_gso >= 3, "{} GSO packets", s.tx_gso);
        let plain = lossy_transfer(true, false);
        assert_eq!(plain.tx_gso, 0);
        // Packed into whole pages, a GSO packet carries many segments.
        assert!(
            s.tx_csum_offloaded * 4 < plain.tx_csum_offloaded,
            "fewer packets with GSO: {} vs {}",
            s.tx_csum_offloaded,
            plain.tx_csum_offloaded
        );
    }

    /// A 64 KiB transfer over the lossy wire, the guest receiving or
    /// sending, with GSO on or off; returns the guest's counters.
    fn lossy_transfer(guest_sends: bool, gso: bool) -> NetStats {
        use core::cell::RefCell;
        use smoltcp::iface::{Config, Interface, SocketSet};
        use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
        use smoltcp::socket::tcp;
        use smoltcp::time::{Duration, Instant};
        use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
        use std::collections::VecDeque;
        use std::rc::Rc;
        use std::vec;

        #[derive(Default)]
        struct Wire {
            to_peer: VecDeque<Vec<u8>>,
            to_guest: VecDeque<Vec<u8>>,
            frames: u64,
            dropped: u64,
            damaged: u64,
        }
        impl Wire {
            /// The fate of the next frame: delivered (maybe damaged) or not.
            fn pass(&mut self, f: &mut [u8]) -> bool {
                self.frames += 1;
                if self.frames.is_multiple_of(9) {
                    self.dropped += 1;
                    return false;
                }
                if self.frames.is_multiple_of(13) {
                    let i = f.len() / 2;
                    f[i] ^= 0x5a;
                    self.damaged += 1;
                }
                true
            }
        }

        struct Guest {
            n: Netfront,
            b: Back,
            bufs: Bufs,
            free_rx: VecDeque<RxRequest>,
            wire: Rc<RefCell<Wire>>,
        }
        impl Guest {
            /// The backend's turn: take what the guest sent, fill posted
            /// RX buffers with what the peer sent.
            fn backend(&mut self) {
                let mut w = self.wire.borrow_mut();
                let reqs = self.b.tx_requests();
                let mut i = 0;
                let slot = |r: &TxRequest| -> Vec<u8> {
                    let at = usize::from(r.offset);
                    self.bufs.tx[usize::from(r.id)].0[at..at + usize::from(r.size)].to_vec()
                };
                let mut answers = Vec::new();
                while i < reqs.len() {
                    // A packet: its first slot, an extra-info slot if
                    // flagged, then its further slots while more_data.
                    let first = reqs[i];
                    i += 1;
                    let mut mss = None;
                    if first.flags & NETTXF_EXTRA_INFO != 0 {
                        let e = reqs[i];
                        i += 1;
                        let g = e.gref.to_ne_bytes();
                        mss = Some(usize::from(u16::from_ne_bytes([g[2], g[3]])));
                        answers.push(TxResponse {
                            id: 0,
                            status: crate::dev::net::netif::NETIF_RSP_NULL,
                        });
                    }
                    let mut parts = vec![first];
                    while parts.last().unwrap().flags & NETTXF_MORE_DATA != 0 {
                        parts.push(reqs[i]);
                        i += 1;
                    }
                    // The first slot's size is the packet's; its own bytes
                    // are what the others leave.
                    let rest: usize = parts[1..].iter().map(|p| usize::from(p.size)).sum();
                    let mut head = first;
                    head.size = (usize::from(first.size) - rest) as u16;
                    let mut pkt = slot(&head);
                    for p in &parts[1..] {
                        pkt.extend(slot(p));
                    }
                    // As netback (and dom0's stack) do: a GSO packet is cut
                    // into segments, an offloaded checksum completed.
                    let frames = match mss {
                        Some(m) => crate::dev::net::gso::resegment(&pkt, m),
                        None => {
                            if first.flags & NETTXF_CSUM_BLANK != 0 {
                                crate::dev::net::csum::complete_tcp(&mut pkt);
                            }
                            vec![pkt]
                        }
                    };
                    for mut f in frames {
                        if w.pass(&mut f) {
                            w.to_peer.push_back(f);
                        }
                    }
                    for p in parts {
                        answers.push(TxResponse {
                            id: p.id,
                            status: NETIF_RSP_OKAY,
                        });
                    }
                }
                for a in answers {
                    self.b.tx_answer(a);
                }
                self.free_rx.extend(self.b.rx_requests());
                while !self.free_rx.is_empty() {
                    let Some(mut f) = w.to_guest.pop_front() else {
                        break;
                    };
                    if !w.pass(&mut f) {
                        continue;
                    }
                    let r = self.free_rx.pop_front().unwrap();
                    let rsp = RxResponse {
                        id: r.id,
                        offset: 0,
                        flags: 0,
                        status: f.len() as i16,
                    };
                    self.b.rx_answer(&mut self.bufs, rsp, &f);
                }
            }
        }

        struct Frame(Vec<u8>);
        impl RxToken for Frame {
            fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
                f(&self.0)
            }
        }
        struct GuestTx<'a>(&'a mut Guest);
        impl TxToken for GuestTx<'_> {
            fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
                let g = self.0;
                let mut f = Some(f);
                let mut out = None;
                let _ = g.n.send(&mut g.bufs, len, |b| out = f.take().map(|f| f(b)));
                match (out, f) {
                    (Some(r), _) => r,
                    (None, Some(f)) => f(&mut vec![0; len]),
                    (None, None) => unreachable!(),
                }
            }
        }
        fn caps() -> DeviceCapabilities {
            let mut c = DeviceCapabilities::default();
            c.medium = Medium::Ethernet;
            c.max_transmission_unit = MAX_FRAME;
            c
        }
        /// The guest's side as `rt` configures smoltcp: TCP checksums are
        /// netfront's (checked on receive, offloaded on send).
        fn guest_caps() -> DeviceCapabilities {
            let mut c = caps();
            c.checksum.tcp = smoltcp::phy::Checksum::None;
            c
        }
        impl Device for Guest {
            type RxToken<'a> = Frame;
            type TxToken<'a> = GuestTx<'a>;
            fn receive(&mut self, _: Instant) -> Option<(Frame, GuestTx<'_>)> {
                self.n.collect_tx();
                let mut got = None;
                self.n
                    .receive_at_most(&self.bufs, 1, |d| got = Some(d.to_vec()));
                got.map(|f| (Frame(f), GuestTx(self)))
            }
            fn transmit(&mut self, _: Instant) -> Option<GuestTx<'_>> {
                self.n.collect_tx();
                self.n.can_send().then_some(GuestTx(self))
            }
            fn capabilities(&self) -> DeviceCapabilities {
                guest_caps()
            }
        }

        struct Peer(Rc<RefCell<Wire>>);
        struct PeerTx(Rc<RefCell<Wire>>);
        impl TxToken for PeerTx {
            fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
                let mut v = vec![0; len];
                let r = f(&mut v);
                self.0.borrow_mut().to_guest.push_back(v);
                r
            }
        }
        impl Device for Peer {
            type RxToken<'a> = Frame;
            type TxToken<'a> = PeerTx;
            fn receive(&mut self, _: Instant) -> Option<(Frame, PeerTx)> {
                let f = self.0.borrow_mut().to_peer.pop_front()?;
                Some((Frame(f), PeerTx(self.0.clone())))
            }
            fn transmit(&mut self, _: Instant) -> Option<PeerTx> {
                Some(PeerTx(self.0.clone()))
            }
            fn capabilities(&self) -> DeviceCapabilities {
                caps()
            }
        }

        let wire = Rc::new(RefCell::new(Wire::default()));
        let (mut n, b, bufs) = setup();
        n.set_tx_gso(gso);
        let mut guest = Guest {
            n,
            b,
            bufs,
            free_rx: VecDeque::new(),
            wire: wire.clone(),
        };
        let mut peer = Peer(wire.clone());
        let mac = |x| HardwareAddress::Ethernet(EthernetAddress([2, 0, 0, 0, 0, x]));
        let mut t = Instant::from_millis(0);
        let mut gi = Interface::new(Config::new(mac(2)), &mut guest, t);
        gi.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap());
        let mut pi = Interface::new(Config::new(mac(1)), &mut peer, t);
        pi.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 1), 24)).unwrap());
        let mut gs = SocketSet::new(vec![]);
        let mut ps = SocketSet::new(vec![]);
        let buf = |n: usize| tcp::SocketBuffer::new(vec![0u8; n]);
        // The receiving side listens, the sending side connects.
        let (server, client) = if guest_sends {
            let server = ps.add(tcp::Socket::new(buf(65536), buf(64)));
            ps.get_mut::<tcp::Socket>(server).listen(9).unwrap();
            let client = gs.add(tcp::Socket::new(buf(64), buf(65536)));
            gs.get_mut::<tcp::Socket>(client)
                .connect(gi.context(), (IpAddress::v4(10, 0, 0, 1), 9), 49152)
                .unwrap();
            (server, client)
        } else {
            let server = gs.add(tcp::Socket::new(buf(65536), buf(64)));
            gs.get_mut::<tcp::Socket>(server).listen(9).unwrap();
            let client = ps.add(tcp::Socket::new(buf(64), buf(65536)));
            ps.get_mut::<tcp::Socket>(client)
                .connect(pi.context(), (IpAddress::v4(10, 0, 0, 2), 9), 49152)
                .unwrap();
            (server, client)
        };

        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        for _ in 0..600_000 {
            t += Duration::from_millis(1);
            pi.poll(t, &mut peer, &mut ps);
            guest.backend();
            gi.poll(t, &mut guest, &mut gs);
            // The stack sent what it had: the gathered packet goes.
            guest.n.flush_tx(&mut guest.bufs);
            guest.backend();
            let (cs, ss) = if guest_sends {
                (&mut gs, &mut ps)
            } else {
                (&mut ps, &mut gs)
            };
            let c = cs.get_mut::<tcp::Socket>(client);
            if c.can_send() && sent < data.len() {
                sent += c.send_slice(&data[sent..]).unwrap();
            }
            let s = ss.get_mut::<tcp::Socket>(server);
            while s.can_recv() {
                s.recv(|b| {
                    got.extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
            }
            if got.len() == data.len() {
                break;
            }
        }
        assert_eq!(got.len(), data.len(), "the transfer did not complete");
        assert!(got == data, "the data arrived damaged");
        let w = wire.borrow();
        assert!(
            w.dropped > 10 && w.damaged > 5,
            "the wire was not lossy enough"
        );
        drop(w);
        // The wire drained: every buffer home.
        guest.backend();
        guest.n.collect_tx();
        let g = &mut guest;
        while g.n.receive(&g.bufs, |_| {}).0 > 0 {}
        assert_eq!(guest.n.buffers(), (0, SLOTS));
        let s = guest.n.stats;
        assert_eq!(s.bad_ids + s.bad_lengths, 0);
        if !guest_sends {
            assert!(
                s.bad_checksums > 0 && s.rx_csum_checked > 0,
                "netfront checked the checksums the wire did not vouch for"
            );
        }
        s
    }
}
