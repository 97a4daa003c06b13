//! The fake netback every netfront test drives: the two ring pages by hand
//! (it reads our requests and writes whatever answers a test wants, good or
//! bad), the buffer pages, and frames to send through them.
extern crate std;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use std::collections::VecDeque;

use super::buffers::{Pages, SLOTS};
use super::netfront::Netfront;
use super::netif::{
    EXTRA_TYPE_GSO, ExtraInfo, GSO_TYPE_TCPV4, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, Rx, RxRequest,
    RxResponse, Tx, TxRequest, TxResponse,
};
use crate::abi::PAGE_SIZE;
use crate::proto::shared_ring::{ENTRIES_AT, FrontRing, Kind};

/// A page-aligned page.
#[repr(C, align(4096))]
pub struct Page(pub [u8; PAGE_SIZE]);

impl Page {
    /// A zeroed page on the heap.
    pub fn new() -> Box<Page> {
        Box::new(Page([0; PAGE_SIZE]))
    }
}

/// The backend's view of the two ring pages.
pub struct Back {
    /// The TX ring page.
    pub tx: Box<Page>,
    /// The RX ring page.
    pub rx: Box<Page>,
    /// TX requests taken.
    pub tx_cons: u32,
    /// RX requests taken.
    pub rx_cons: u32,
    /// TX answers written (and published).
    pub tx_prod: u32,
    /// RX answers written (and published).
    pub rx_prod: u32,
}

/// The buffer pages, one per slot and direction.
pub struct Bufs {
    /// TX buffers by id.
    pub tx: Vec<Box<Page>>,
    /// RX buffers by id.
    pub rx: Vec<Box<Page>>,
}

impl Pages for Bufs {
    fn tx_page(&mut self, id: u16) -> &mut [u8; PAGE_SIZE] {
        &mut self.tx[usize::from(id)].0
    }
    fn rx_page(&self, id: u16) -> &[u8; PAGE_SIZE] {
        &self.rx[usize::from(id)].0
    }
}

/// Index `i` of a ring page's header: req_prod 0, req_event 1, rsp_prod 2,
/// rsp_event 3.
pub fn idx(p: &Page, i: usize) -> u32 {
    u32::from_ne_bytes(p.0[i * 4..i * 4 + 4].try_into().unwrap())
}

/// Sets index `i` of a ring page's header.
pub fn set_idx(p: &mut Page, i: usize, v: u32) {
    p.0[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Where ring index `i` of a ring of kind `K` sits in its page.
fn slot<K: Kind>(i: u32) -> usize {
    ENTRIES_AT + (i % K::SIZE) as usize * K::SLOT
}

impl Back {
    /// Takes every TX request published.
    pub fn tx_requests(&mut self) -> Vec<TxRequest> {
        let mut v = Vec::new();
        while self.tx_cons != idx(&self.tx, 0) {
            let at = slot::<Tx>(self.tx_cons);
            let b = &self.tx.0[at..at + 12];
            v.push(TxRequest {
                gref: u32::from_ne_bytes(b[0..4].try_into().unwrap()),
                offset: u16::from_ne_bytes(b[4..6].try_into().unwrap()),
                flags: u16::from_ne_bytes(b[6..8].try_into().unwrap()),
                id: u16::from_ne_bytes(b[8..10].try_into().unwrap()),
                size: u16::from_ne_bytes(b[10..12].try_into().unwrap()),
            });
            self.tx_cons += 1;
        }
        v
    }

    /// Writes and publishes one TX answer.
    pub fn tx_answer(&mut self, r: TxResponse) {
        let at = slot::<Tx>(self.tx_prod);
        self.tx.0[at..at + 2].copy_from_slice(&r.id.to_ne_bytes());
        self.tx.0[at + 2..at + 4].copy_from_slice(&r.status.to_ne_bytes());
        self.tx_prod += 1;
        set_idx(&mut self.tx, 2, self.tx_prod);
    }

    /// Takes every RX request published and, as netback does, asks to be
    /// told of the next one.
    pub fn rx_requests(&mut self) -> Vec<RxRequest> {
        let mut v = Vec::new();
        while self.rx_cons != idx(&self.rx, 0) {
            let at = slot::<Rx>(self.rx_cons);
            let b = &self.rx.0[at..at + 8];
            v.push(RxRequest {
                id: u16::from_ne_bytes(b[0..2].try_into().unwrap()),
                pad: 0,
                gref: u32::from_ne_bytes(b[4..8].try_into().unwrap()),
            });
            self.rx_cons += 1;
        }
        set_idx(&mut self.rx, 1, self.rx_cons + 1);
        v
    }

    /// Copies `data` into RX buffer `r.id` (as GNTTABOP_copy would), then
    /// writes and publishes the answer `r`.
    pub fn rx_answer(&mut self, bufs: &mut Bufs, r: RxResponse, data: &[u8]) {
        if let Some(p) = bufs.rx.get_mut(usize::from(r.id)) {
            let off = usize::from(r.offset).min(PAGE_SIZE);
            let n = data.len().min(PAGE_SIZE - off);
            p.0[off..off + n].copy_from_slice(&data[..n]);
        }
        let at = slot::<Rx>(self.rx_prod);
        for (k, v) in [r.id, r.offset, r.flags, r.status as u16]
            .iter()
            .enumerate()
        {
            self.rx.0[at + 2 * k..at + 2 * k + 2].copy_from_slice(&v.to_ne_bytes());
        }
        self.rx_prod += 1;
        set_idx(&mut self.rx, 2, self.rx_prod);
    }

    /// Answers the next posted requests with one packet, as netback does:
    /// `data` in chunks of at most `chunk` bytes, the first slot flagged
    /// `flags0` (plus more_data), a GSO extra after it if `gso`.
    pub fn rx_packet(
        &mut self,
        bufs: &mut Bufs,
        posted: &mut VecDeque<RxRequest>,
        data: &[u8],
        chunk: usize,
        flags0: u16,
        gso: bool,
    ) {
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        for (i, c) in chunks.iter().enumerate() {
            let r = posted.pop_front().expect("a posted buffer");
            let mut flags = if i == 0 { flags0 } else { 0 };
            if i + 1 < chunks.len() {
                flags |= NETRXF_MORE_DATA;
            }
            if i == 0 && gso {
                flags |= NETRXF_EXTRA_INFO;
            }
            self.rx_answer(bufs, ans(r.id, 0, flags, c.len() as i16), c);
            if i == 0 && gso {
                posted.pop_front().expect("a posted buffer for the extra");
                self.rx_answer(bufs, gso_extra(false), &[]);
            }
        }
    }
}

/// A netfront over fresh rings (TX grants 1000+id, RX 2000+id), the
/// backend of its rings, and its buffers. Every RX buffer is posted.
pub fn setup() -> (Netfront, Back, Bufs) {
    setup_with(SLOTS)
}

/// The same with `buffers` buffers each way.
pub fn setup_with(buffers: usize) -> (Netfront, Back, Bufs) {
    let mut b = Back {
        tx: Page::new(),
        rx: Page::new(),
        tx_cons: 0,
        rx_cons: 0,
        tx_prod: 0,
        rx_prod: 0,
    };
    // SAFETY: the boxed pages outlive the rings in every test (the
    // backend is dropped after the netfront).
    let (tx, rx) = unsafe {
        (
            FrontRing::<Tx>::init(NonNull::new(b.tx.0.as_mut_ptr()).unwrap()),
            FrontRing::<Rx>::init(NonNull::new(b.rx.0.as_mut_ptr()).unwrap()),
        )
    };
    let mut tg = [0u32; SLOTS];
    let mut rg = [0u32; SLOTS];
    for i in 0..SLOTS {
        tg[i] = 1000 + i as u32;
        rg[i] = 2000 + i as u32;
    }
    let (n, notify) = Netfront::with_buffers(tx, rx, tg, rg, buffers);
    assert!(notify);
    let bufs = Bufs {
        tx: (0..SLOTS).map(|_| Page::new()).collect(),
        rx: (0..SLOTS).map(|_| Page::new()).collect(),
    };
    (n, b, bufs)
}

/// `len` bytes counting up from `seed`.
pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// An RX answer for buffer `id`.
pub fn ans(id: u16, offset: u16, flags: u16, status: i16) -> RxResponse {
    RxResponse {
        id,
        offset,
        flags,
        status,
    }
}

/// A GSO extra-info slot for TCPv4.
pub fn gso_extra(more: bool) -> RxResponse {
    ExtraInfo {
        kind: EXTRA_TYPE_GSO,
        flags: if more {
            super::netif::EXTRA_FLAG_MORE
        } else {
            0
        },
        gso_size: 1448,
        gso_type: GSO_TYPE_TCPV4,
    }
    .to_slot()
}

/// An Ethernet frame holding an IPv4 TCP segment of `payload` bytes,
/// checksums filled in (by smoltcp).
pub fn tcp_frame(payload: usize, seed: u8) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address,
        Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, TcpSeqNumber,
    };
    let data = frame(payload, seed);
    let (src, dst) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 9,
        control: smoltcp::wire::TcpControl::None,
        seq_number: TcpSeqNumber(1000),
        ack_number: Some(TcpSeqNumber(7)),
        window_len: 512,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &data,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = alloc::vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &src.into(),
        &dst.into(),
        &caps,
    );
    buf
}

/// An Ethernet frame holding an IPv4 UDP datagram; `csum` false sends
/// none (checksum 0).
pub fn udp_frame(payload: usize, csum: bool) -> Vec<u8> {
    use smoltcp::phy::{Checksum, ChecksumCapabilities};
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address,
        Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };
    let data = frame(payload, 5);
    let (src, dst) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
    let udp = UdpRepr {
        src_port: 5000,
        dst_port: 7,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + data.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = alloc::vec![0u8; 14 + ip.buffer_len() + udp.header_len() + data.len()];
    let mut caps = ChecksumCapabilities::default();
    if !csum {
        caps.udp = Checksum::None;
    }
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(p.payload_mut()),
        &src.into(),
        &dst.into(),
        data.len(),
        |b| b.copy_from_slice(&data),
        &caps,
    );
    buf
}
