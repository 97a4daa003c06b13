//! Netfront's data path, as logic over the two rings and a set of buffer
//! pages (`rt::net` supplies the pages, grants and event channel; the host
//! tests a fake backend that misbehaves).
//!
//! Buffers: one page per slot and direction, granted to the backend once for
//! the life of the device (RX writable, TX read-only), so the number of
//! grants and buffers never changes while traffic flows. A frame is copied
//! into its TX page at offset 0, so no transmit slot ever crosses a page
//! (Linux netback disables the vif when one does). RX is the copy model:
//! every RX page is posted; the backend copies a packet in and answers.
//!
//! Receiving: we negotiate scatter-gather and TCPv4 GSO (`feature-sg`,
//! `feature-gso-tcpv4`) with checksum offload, so dom0 hands a TCP stream
//! over in packets of up to 64 KiB instead of one per MTU — as Linux's
//! netfront does. Such a packet spans several slots: the first answer
//! carries `NETRXF_more_data` (and `NETRXF_extra_info`, the GSO extra
//! following in the next slot), later answers continue it. Answers sit in
//! the slot of the request they consume (netif.h), so the buffer an answer
//! used is known by its ring index even when an extra-info slot overwrote
//! the id: each index remembers the buffer id posted there.
//!
//! Checksums: a packet the backend flags `NETRXF_data_validated` (or
//! `csum_blank`: a local packet whose checksum was never filled in) is
//! taken as checked; any other IPv4 TCP or UDP packet has its checksum
//! verified here, and a wrong one is dropped. What is delivered needs no
//! further TCP/UDP checksum check.
//!
//! Whatever the backend answers is checked before it is used: the answer's
//! id must be the buffer posted at that index, lengths within the page and
//! the packet, no flags or extra types we did not negotiate, chains no
//! longer than netback ever makes, error statuses. A bad answer drops its
//! whole packet (every slot of it) and is counted; every buffer goes back
//! into service.
use alloc::vec::Vec;

use crate::netif::{
    EXTRA_FLAG_MORE, EXTRA_TYPE_GSO, EXTRA_TYPE_MAX, ExtraInfo, FrontRing, GSO_TYPE_TCPV4,
    NETIF_RSP_OKAY, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    RING_SIZE, RingError, Rx, RxRequest, RxResponse, Tx, TxRequest,
};

/// Largest frame sent (Ethernet without FCS, MTU 1500).
pub const MAX_FRAME: usize = 1514;
/// Largest packet accepted: a GSO packet (an IPv4 packet of at most 64 KiB)
/// with its Ethernet header.
pub const MAX_PACKET: usize = 14 + 65535;
/// Smallest frame netback accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Most data slots of one received packet (`XEN_NETIF_NR_SLOTS_MIN`:
/// netback fills whole pages, so 64 KiB takes 17).
pub const MAX_DATA_SLOTS: u32 = 18;
/// Most extra-info slots of one packet (one of each type).
pub const MAX_EXTRA_SLOTS: u32 = EXTRA_TYPE_MAX as u32 - 1;
const SLOTS: usize = RING_SIZE as usize;

/// The buffer pages: one per slot and direction.
pub trait Pages {
    /// TX page `id`, to copy a frame into.
    fn tx_page(&mut self, id: u16) -> &mut [u8; 4096];
    /// RX page `id`, as the backend left it.
    fn rx_page(&self, id: u16) -> &[u8; 4096];
}

/// Counters (all frames, all drops by reason).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NetStats {
    /// Frames sent (requests published).
    pub tx_frames: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the backend reported as not sent (error or dropped status).
    pub tx_errors: u64,
    /// Frames not sent because every TX slot was in flight.
    pub tx_ring_full: u64,
    /// Packets received and handed on.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Of the packets handed on, those that came as GSO (several MTUs).
    pub rx_gso: u64,
    /// Of the packets handed on, those whose checksum was verified here
    /// (the backend had not validated it).
    pub rx_csum_checked: u64,
    /// RX packets with an error status in one of their slots.
    pub rx_errors: u64,
    /// Answers whose id was out of range or not outstanding (TX), or not
    /// the buffer posted at that ring index (RX).
    pub bad_ids: u64,
    /// RX packets whose slots do not fit their page, or whose length is
    /// below an Ethernet header or above [`MAX_PACKET`].
    pub bad_lengths: u64,
    /// RX packets with flags we did not negotiate (a GSO prefix, extra info
    /// on a continuation slot, unknown bits).
    pub bad_flags: u64,
    /// RX packets with an extra-info slot of an unknown type or a GSO type
    /// other than TCPv4, or more extra slots than there are types.
    pub bad_extras: u64,
    /// RX packets spread over more than [`MAX_DATA_SLOTS`] slots.
    pub bad_chains: u64,
    /// RX packets whose TCP or UDP checksum is wrong.
    pub bad_checksums: u64,
    /// Times the backend broke the ring protocol itself.
    pub ring_errors: u64,
    /// Notifications sent to the backend.
    pub notifies: u64,
}

/// Why a frame could not be sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxError {
    /// Every TX slot is in flight.
    RingFull,
    /// Shorter than an Ethernet header or longer than [`MAX_FRAME`].
    BadLength(usize),
}

impl core::fmt::Display for TxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TxError::RingFull => f.write_str("the transmit ring is full"),
            TxError::BadLength(n) => write!(f, "a {n}-byte frame cannot be sent"),
        }
    }
}

/// Why a received packet is dropped (each counted in [`NetStats`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RxDrop {
    Error,
    Id,
    Length,
    Flags,
    Extra,
    Chain,
}

/// A received packet being put together from its slots.
#[derive(Clone, Copy, Debug)]
struct Partial {
    /// Bytes gathered into the assembly buffer.
    len: usize,
    /// The first slot's flags.
    flags: u16,
    /// Data slots taken.
    data_slots: u32,
    /// Extra-info slots taken.
    extra_slots: u32,
    /// An extra-info slot comes next.
    extra_next: bool,
    /// More data slots follow (after any extra-info slots).
    more: bool,
    /// The packet came with a GSO extra.
    gso: bool,
    /// A one-slot packet left in its page (not gathered).
    in_page: bool,
    /// The first reason to drop it; its slots are still taken to its end.
    drop: Option<RxDrop>,
}

/// The data path of one vif.
#[derive(Debug)]
pub struct Netfront {
    tx: FrontRing<Tx>,
    rx: FrontRing<Rx>,
    tx_gref: [u32; SLOTS],
    rx_gref: [u32; SLOTS],
    /// TX ids in flight (answered ones are free again).
    tx_busy: [bool; SLOTS],
    /// Free TX ids, used as a stack.
    tx_free: [u16; SLOTS],
    tx_nfree: usize,
    /// The RX buffer id posted at each ring index (index mod the ring
    /// size). Invariant: every index in flight holds exactly one buffer, and
    /// every buffer is in flight at exactly one index, except while the
    /// answer that returned it is being read.
    rx_id_at: [u16; SLOTS],
    /// The packet being gathered across calls (a backend may publish the
    /// first slots of a packet before the rest).
    partial: Option<Partial>,
    /// Where a multi-slot packet is gathered ([`MAX_PACKET`] bytes).
    asm: Vec<u8>,
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
        let mut tx_free = [0u16; SLOTS];
        for (i, f) in tx_free.iter_mut().enumerate() {
            *f = (SLOTS - 1 - i) as u16;
        }
        let mut n = Netfront {
            tx,
            rx,
            tx_gref,
            rx_gref,
            tx_busy: [false; SLOTS],
            tx_free,
            tx_nfree: SLOTS,
            rx_id_at: [0; SLOTS],
            partial: None,
            asm: alloc::vec![0; MAX_PACKET],
            stats: NetStats::default(),
        };
        for id in 0..SLOTS as u16 {
            n.post_rx(id);
        }
        let notify = n.rx.publish();
        n.count_notify(notify);
        (n, notify)
    }

    fn count_notify(&mut self, notify: bool) {
        self.stats.notifies += u64::from(notify);
    }

    fn post_rx(&mut self, id: u16) {
        let at = self.rx.next_request_index() as usize % SLOTS;
        let pushed = self.rx.push(RxRequest {
            id,
            pad: 0,
            gref: self.rx_gref[usize::from(id)],
        });
        // Each answer taken frees the index it sat at, and its buffer goes
        // back at once: the ring always has room for it.
        debug_assert!(pushed);
        self.rx_id_at[at] = id;
    }

    /// Whether a frame can be sent now.
    pub fn can_send(&self) -> bool {
        self.tx_nfree > 0
    }

    /// Sends a frame of `len` bytes that `fill` writes; returns whether to
    /// notify the backend.
    pub fn send(
        &mut self,
        pages: &mut impl Pages,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<bool, TxError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            return Err(TxError::BadLength(len));
        }
        if self.tx_nfree == 0 {
            self.stats.tx_ring_full += 1;
            return Err(TxError::RingFull);
        }
        self.tx_nfree -= 1;
        let id = self.tx_free[self.tx_nfree];
        fill(&mut pages.tx_page(id)[..len]);
        let pushed = self.tx.push(TxRequest {
            gref: self.tx_gref[usize::from(id)],
            offset: 0,
            flags: 0,
            id,
            size: len as u16,
        });
        // Free ids never outnumber free ring slots: each id in flight holds one.
        debug_assert!(pushed);
        self.tx_busy[usize::from(id)] = true;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        let notify = self.tx.publish();
        self.count_notify(notify);
        Ok(notify)
    }

    /// Takes the backend's TX answers: their buffers can be used again.
    /// Returns the number taken.
    ///
    /// TX answers raise no event while a buffer is free: they are taken on
    /// the next send, and an event per answer would wake the guest once
    /// more for every frame it sent (on PVH each wake-up is a VM entry).
    /// Only when every buffer is in flight does netfront ask for an event
    /// at the next answer (`rsp_event`), so a sender waiting for room wakes.
    pub fn collect_tx(&mut self) -> u32 {
        let mut n = 0;
        loop {
            let rsp = match self.tx.take() {
                Ok(Some(r)) => r,
                Ok(None) if self.tx_nfree == 0 && self.tx.final_check() => continue,
                Ok(None) => break,
                Err(RingError::TooManyResponses { .. }) => {
                    self.stats.ring_errors += 1;
                    break;
                }
            };
            n += 1;
            let id = usize::from(rsp.id);
            if rsp.status == crate::netif::NETIF_RSP_NULL {
                continue;
            }
            if id >= SLOTS || !self.tx_busy[id] {
                self.stats.bad_ids += 1;
                continue;
            }
            if rsp.status != NETIF_RSP_OKAY {
                self.stats.tx_errors += 1;
            }
            self.tx_busy[id] = false;
            self.tx_free[self.tx_nfree] = rsp.id;
            self.tx_nfree += 1;
        }
        n
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
        mut deliver: impl FnMut(&[u8]),
    ) -> (u32, bool) {
        let mut n = 0;
        while n < max {
            let at = self.rx.next_response_index() as usize % SLOTS;
            let rsp = match self.rx.next_response() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(RingError::TooManyResponses { .. }) => {
                    self.stats.ring_errors += 1;
                    break;
                }
            };
            let id = self.rx_id_at[at];
            if let Some(p) = self.take_slot(pages, id, rsp)
                && let Some(data) = self.finish(pages, id, rsp, p)
            {
                deliver(data);
                n += 1;
            }
            // Its data handed on (or gathered, or not wanted), the slot's
            // buffer goes back; the backend sees it at the next publish.
            self.post_rx(id);
        }
        let notify = self.rx.publish();
        self.count_notify(notify);
        (n, notify)
    }

    /// Takes one answer (its buffer is `id`) into the packet being gathered;
    /// returns the packet when this was its last slot.
    fn take_slot(&mut self, pages: &impl Pages, id: u16, rsp: RxResponse) -> Option<Partial> {
        let mut p = match self.partial.take() {
            Some(p) => p,
            None => Partial {
                len: 0,
                flags: rsp.flags,
                data_slots: 0,
                extra_slots: 0,
                extra_next: false,
                more: false,
                gso: false,
                in_page: false,
                drop: None,
            },
        };
        let fail = |p: &mut Partial, why| p.drop = p.drop.or(Some(why));
        if p.extra_next {
            let e = ExtraInfo::from_slot(rsp);
            p.extra_slots += 1;
            p.extra_next = e.flags & EXTRA_FLAG_MORE != 0;
            if e.kind == EXTRA_TYPE_GSO && e.gso_type == GSO_TYPE_TCPV4 && e.gso_size > 0 {
                p.gso = true;
            } else if e.kind == 0 || e.kind >= EXTRA_TYPE_MAX || e.kind == EXTRA_TYPE_GSO {
                fail(&mut p, RxDrop::Extra);
            }
            // Other known types (multicast, hash) carry nothing we use.
            if p.extra_slots > MAX_EXTRA_SLOTS {
                // A chain that does not end: cut it here; the slots that
                // follow are taken as packets of their own (and fail).
                fail(&mut p, RxDrop::Extra);
                p.extra_next = false;
            }
        } else {
            let first = p.data_slots == 0;
            p.data_slots += 1;
            let allowed = if first {
                NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK | NETRXF_MORE_DATA | NETRXF_EXTRA_INFO
            } else {
                NETRXF_MORE_DATA
            };
            p.more = rsp.flags & NETRXF_MORE_DATA != 0;
            p.extra_next = first && rsp.flags & NETRXF_EXTRA_INFO != 0;
            let (off, len) = (usize::from(rsp.offset), rsp.status);
            if rsp.id != id {
                fail(&mut p, RxDrop::Id);
            } else if len < 0 || (len == 0 && first) {
                fail(&mut p, RxDrop::Error);
            } else if rsp.flags & !allowed != 0 {
                fail(&mut p, RxDrop::Flags);
            } else if off + len as usize > 4096 || p.len + len as usize > MAX_PACKET {
                fail(&mut p, RxDrop::Length);
            } else if p.data_slots > MAX_DATA_SLOTS {
                fail(&mut p, RxDrop::Chain);
                // Stop following it: what comes next starts over.
                p.more = false;
            } else if p.drop.is_none() {
                let len = len as usize;
                // A one-slot packet is handed on straight from its page.
                p.in_page = first && !p.more && !p.extra_next;
                if !p.in_page {
                    self.asm[p.len..p.len + len]
                        .copy_from_slice(&pages.rx_page(id)[off..off + len]);
                }
                p.len += len;
            }
        }
        if p.extra_next || p.more {
            self.partial = Some(p);
            None
        } else {
            Some(p)
        }
    }

    /// Counts a finished packet (`last` its last answer, in buffer `id`);
    /// returns its bytes if it is to be handed on.
    fn finish<'a>(
        &'a mut self,
        pages: &'a impl Pages,
        id: u16,
        last: RxResponse,
        p: Partial,
    ) -> Option<&'a [u8]> {
        let mut drop = p.drop;
        if drop.is_none() && p.len < MIN_FRAME {
            drop = Some(RxDrop::Length);
        }
        let s = &mut self.stats;
        match drop {
            Some(RxDrop::Error) => s.rx_errors += 1,
            Some(RxDrop::Id) => s.bad_ids += 1,
            Some(RxDrop::Length) => s.bad_lengths += 1,
            Some(RxDrop::Flags) => s.bad_flags += 1,
            Some(RxDrop::Extra) => s.bad_extras += 1,
            Some(RxDrop::Chain) => s.bad_chains += 1,
            None => {}
        }
        if drop.is_some() {
            return None;
        }
        let data = if p.in_page {
            let off = usize::from(last.offset);
            &pages.rx_page(id)[off..off + p.len]
        } else {
            &self.asm[..p.len]
        };
        if p.flags & (NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK) == 0 {
            if !l4_checksum_ok(data) {
                s.bad_checksums += 1;
                return None;
            }
            s.rx_csum_checked += 1;
        }
        s.rx_frames += 1;
        s.rx_bytes += p.len as u64;
        s.rx_gso += u64::from(p.gso);
        Some(data)
    }

    /// TX buffers in flight and RX buffers posted.
    pub fn buffers(&self) -> (usize, usize) {
        (SLOTS - self.tx_nfree, self.rx.outstanding() as usize)
    }
}

/// The Internet checksum's one's-complement sum of `data`, added to `sum`.
fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    // Fold now and then is not needed: 64 KiB of 0xffff stays below 2^32.
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether an Ethernet frame's IPv4 TCP or UDP checksum is right. Frames of
/// other kinds, fragments and malformed headers give true: the stack checks
/// (and drops) those itself; only the TCP/UDP checksum is left to us.
pub fn l4_checksum_ok(frame: &[u8]) -> bool {
    const IPV4: [u8; 2] = [0x08, 0x00];
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    if frame.len() < 14 + 20 || frame[12..14] != IPV4 {
        return true;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() || fragment {
        return true;
    }
    let proto = ip[9];
    let l4 = &ip[ihl..total];
    match proto {
        TCP if l4.len() >= 20 => {}
        UDP if l4.len() >= 8 => {
            if l4[6..8] == [0, 0] {
                // No checksum sent.
                return true;
            }
        }
        TCP | UDP => return false,
        _ => return true,
    }
    let mut sum = ones_sum(0, &ip[12..20]);
    sum += u32::from(proto) + l4.len() as u32;
    fold(ones_sum(sum, l4)) == 0xffff
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::netif::{NETIF_RSP_NULL, TxResponse};
    use core::ptr::NonNull;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::vec::Vec;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    /// A backend over the two ring pages, by hand: it reads requests and
    /// writes whatever answers a test wants.
    struct Back {
        tx: Box<Page>,
        rx: Box<Page>,
        tx_cons: u32,
        rx_cons: u32,
        tx_prod: u32,
        rx_prod: u32,
    }

    struct Bufs {
        tx: Vec<Box<Page>>,
        rx: Vec<Box<Page>>,
    }

    impl Pages for Bufs {
        fn tx_page(&mut self, id: u16) -> &mut [u8; 4096] {
            &mut self.tx[usize::from(id)].0
        }
        fn rx_page(&self, id: u16) -> &[u8; 4096] {
            &self.rx[usize::from(id)].0
        }
    }

    fn idx(p: &Page, i: usize) -> u32 {
        u32::from_ne_bytes(p.0[i * 4..i * 4 + 4].try_into().unwrap())
    }
    fn set_idx(p: &mut Page, i: usize, v: u32) {
        p.0[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }

    impl Back {
        fn tx_requests(&mut self) -> Vec<TxRequest> {
            let mut v = Vec::new();
            while self.tx_cons != idx(&self.tx, 0) {
                let at = 64 + (self.tx_cons & 255) as usize * 12;
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
        fn tx_answer(&mut self, r: TxResponse) {
            let at = 64 + (self.tx_prod & 255) as usize * 12;
            self.tx.0[at..at + 2].copy_from_slice(&r.id.to_ne_bytes());
            self.tx.0[at + 2..at + 4].copy_from_slice(&r.status.to_ne_bytes());
            self.tx_prod += 1;
            set_idx(&mut self.tx, 2, self.tx_prod);
        }
        fn rx_requests(&mut self) -> Vec<RxRequest> {
            let mut v = Vec::new();
            while self.rx_cons != idx(&self.rx, 0) {
                let at = 64 + (self.rx_cons & 255) as usize * 8;
                let b = &self.rx.0[at..at + 8];
                v.push(RxRequest {
                    id: u16::from_ne_bytes(b[0..2].try_into().unwrap()),
                    pad: 0,
                    gref: u32::from_ne_bytes(b[4..8].try_into().unwrap()),
                });
                self.rx_cons += 1;
            }
            // As netback does: ask to be told of the next request.
            set_idx(&mut self.rx, 1, self.rx_cons + 1);
            v
        }
        /// Copies `data` into RX buffer `id` (as GNTTABOP_copy would) and answers.
        fn rx_answer(&mut self, bufs: &mut Bufs, r: RxResponse, data: &[u8]) {
            if let Some(p) = bufs.rx.get_mut(usize::from(r.id)) {
                let off = usize::from(r.offset).min(4096);
                let n = data.len().min(4096 - off);
                p.0[off..off + n].copy_from_slice(&data[..n]);
            }
            let at = 64 + (self.rx_prod & 255) as usize * 8;
            for (k, v) in [r.id, r.offset, r.flags, r.status as u16]
                .iter()
                .enumerate()
            {
                self.rx.0[at + 2 * k..at + 2 * k + 2].copy_from_slice(&v.to_ne_bytes());
            }
            self.rx_prod += 1;
            set_idx(&mut self.rx, 2, self.rx_prod);
        }
    }

    fn setup() -> (Netfront, Back, Bufs) {
        let mut b = Back {
            tx: Box::new(Page([0; 4096])),
            rx: Box::new(Page([0; 4096])),
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
        let (n, notify) = Netfront::new(tx, rx, tg, rg);
        assert!(notify);
        let bufs = Bufs {
            tx: (0..SLOTS).map(|_| Box::new(Page([0; 4096]))).collect(),
            rx: (0..SLOTS).map(|_| Box::new(Page([0; 4096]))).collect(),
        };
        (n, b, bufs)
    }

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn frames_go_out_in_one_slot_at_offset_0_and_buffers_come_back() {
        let (mut n, mut b, mut bufs) = setup();
        let f = frame(1514, 3);
        assert!(
            n.send(&mut bufs, f.len(), |d| d.copy_from_slice(&f))
                .unwrap()
        );
        let reqs = b.tx_requests();
        assert_eq!(reqs.len(), 1);
        let r = reqs[0];
        assert_eq!((r.offset, r.flags, usize::from(r.size)), (0, 0, 1514));
        assert!(usize::from(r.offset) + usize::from(r.size) <= 4096);
        assert_eq!(r.gref, 1000 + u32::from(r.id));
        assert_eq!(&bufs.tx[usize::from(r.id)].0[..1514], &f[..]);
        assert_eq!(n.buffers().0, 1);
        b.tx_answer(TxResponse {
            id: r.id,
            status: 0,
        });
        assert_eq!(n.collect_tx(), 1);
        assert_eq!(n.buffers().0, 0);
        assert_eq!(n.send(&mut bufs, 13, |_| {}), Err(TxError::BadLength(13)));
        assert_eq!(
            n.send(&mut bufs, 1515, |_| {}),
            Err(TxError::BadLength(1515))
        );
    }

    #[test]
    fn a_full_transmit_ring_refuses_until_answers_come() {
        let (mut n, mut b, mut bufs) = setup();
        for _ in 0..SLOTS {
            n.send(&mut bufs, 60, |_| {}).unwrap();
        }
        assert_eq!(n.send(&mut bufs, 60, |_| {}), Err(TxError::RingFull));
        let reqs = b.tx_requests();
        let mut ids: Vec<u16> = reqs.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), SLOTS, "every id in flight once");
        b.tx_answer(TxResponse {
            id: reqs[5].id,
            status: -1,
        });
        assert_eq!(n.collect_tx(), 1);
        assert_eq!(n.stats.tx_errors, 1);
        assert!(n.send(&mut bufs, 60, |_| {}).is_ok());
    }

    #[test]
    fn answers_raise_an_event_only_when_every_buffer_is_in_flight() {
        let (mut n, mut b, mut bufs) = setup();
        let rsp_event = |b: &Back| idx(&b.tx, 3);
        // Room left: answers are collected without asking for an event.
        for _ in 0..10 {
            n.send(&mut bufs, 60, |_| {}).unwrap();
            for r in b.tx_requests() {
                b.tx_answer(TxResponse {
                    id: r.id,
                    status: 0,
                });
            }
            assert_eq!(n.collect_tx(), 1);
        }
        assert_eq!(rsp_event(&b), 1, "the ring's initial value, never moved");
        // Full: the next answer must wake the guest.
        for _ in 0..SLOTS {
            n.send(&mut bufs, 60, |_| {}).unwrap();
        }
        assert!(!n.can_send());
        assert_eq!(n.collect_tx(), 0);
        assert_eq!(rsp_event(&b), 10 + 1, "an event at the next answer");
        let reqs = b.tx_requests();
        b.tx_answer(TxResponse {
            id: reqs[0].id,
            status: 0,
        });
        // The backend notifies when rsp_prod passes rsp_event.
        assert_eq!(idx(&b.tx, 2), rsp_event(&b));
        assert_eq!(n.collect_tx(), 1);
        assert!(n.can_send());
    }

    #[test]
    fn received_frames_are_delivered_and_their_buffers_posted_again() {
        let (mut n, mut b, mut bufs) = setup();
        let posted = b.rx_requests();
        assert_eq!(posted.len(), SLOTS);
        let f = frame(98, 9);
        // Answers come at the index of the request they consume.
        let id = posted[0].id;
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id,
                offset: 64,
                flags: crate::netif::NETRXF_CSUM_BLANK,
                status: 98,
            },
            &f,
        );
        let mut got = Vec::new();
        let (k, notify) = n.receive(&bufs, |d| got.push(d.to_vec()));
        assert_eq!((k, notify), (1, true));
        assert_eq!(got, [f]);
        let again = b.rx_requests();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].id, again[0].gref), (id, 2000 + u32::from(id)));
        assert_eq!(n.buffers().1, SLOTS);
    }

    /// An RX answer for buffer `id`.
    fn ans(id: u16, offset: u16, flags: u16, status: i16) -> RxResponse {
        RxResponse {
            id,
            offset,
            flags,
            status,
        }
    }

    /// A GSO extra-info slot for TCPv4.
    fn gso_extra(more: bool) -> RxResponse {
        ExtraInfo {
            kind: EXTRA_TYPE_GSO,
            flags: if more { EXTRA_FLAG_MORE } else { 0 },
            gso_size: 1448,
            gso_type: GSO_TYPE_TCPV4,
        }
        .to_slot()
    }

    impl Back {
        /// Answers the next posted requests with one packet, as netback
        /// does: `data` in chunks of at most `chunk` bytes, the first slot
        /// flagged `flags0` (plus more_data), a GSO extra after it if `gso`.
        fn rx_packet(
            &mut self,
            bufs: &mut Bufs,
            posted: &mut std::collections::VecDeque<RxRequest>,
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

    /// An Ethernet frame holding an IPv4 TCP segment of `payload` bytes,
    /// checksums filled in (by smoltcp).
    fn tcp_frame(payload: usize, seed: u8) -> Vec<u8> {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{
            EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol,
            Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, TcpSeqNumber,
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
        let mut buf = std::vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
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
    fn udp_frame(payload: usize, csum: bool) -> Vec<u8> {
        use smoltcp::phy::{Checksum, ChecksumCapabilities};
        use smoltcp::wire::{
            EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol,
            Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
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
        let mut buf = std::vec![0u8; 14 + ip.buffer_len() + udp.header_len() + data.len()];
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

    #[test]
    fn the_checksum_check_takes_good_frames_and_rejects_damaged_ones() {
        for f in [
            tcp_frame(0, 1),
            tcp_frame(1460, 2),
            tcp_frame(60001, 3),
            udp_frame(33, true),
        ] {
            assert!(l4_checksum_ok(&f), "a good {}-byte frame", f.len());
            for at in [14 + 12, 14 + 20 + 4, f.len() - 1] {
                let mut bad = f.clone();
                bad[at] ^= 0x10;
                assert!(!l4_checksum_ok(&bad), "damage at {at} of {}", f.len());
            }
        }
        // No UDP checksum: nothing to check.
        let mut none = udp_frame(20, false);
        assert!(l4_checksum_ok(&none));
        let last = none.len() - 1;
        none[last] ^= 1;
        assert!(l4_checksum_ok(&none));
        // A TCP header cut short by the IP length: wrong.
        let mut short = tcp_frame(0, 1);
        short[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes());
        assert!(!l4_checksum_ok(&short));
        // Not ours to judge: ARP, an IP length past the frame, a fragment.
        let mut arp = tcp_frame(10, 1);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(l4_checksum_ok(&arp));
        let mut long = tcp_frame(10, 1);
        long[14 + 2..14 + 4].copy_from_slice(&2000u16.to_be_bytes());
        assert!(l4_checksum_ok(&long));
        let mut frag = tcp_frame(10, 1);
        frag[14 + 6] |= 0x20;
        let last = frag.len() - 1;
        frag[last] ^= 1;
        assert!(l4_checksum_ok(&frag));
    }

    #[test]
    fn a_gso_packet_over_seventeen_slots_arrives_whole() {
        let (mut n, mut b, mut bufs) = setup();
        let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
        let big = tcp_frame(65535 - 40, 9);
        assert_eq!(big.len(), MAX_PACKET);
        b.rx_packet(
            &mut bufs,
            &mut posted,
            &big,
            4096,
            NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK,
            true,
        );
        // And a plain frame after it.
        let small = tcp_frame(100, 4);
        b.rx_packet(&mut bufs, &mut posted, &small, 4096, 0, false);
        let mut got = Vec::new();
        let (k, _) = n.receive(&bufs, |d| got.push(d.to_vec()));
        assert_eq!(k, 2);
        assert!(got[0] == big, "the 64 KiB packet was put together wrong");
        assert_eq!(got[1], small);
        let s = n.stats;
        assert_eq!((s.rx_frames, s.rx_gso, s.rx_csum_checked), (2, 1, 1));
        assert_eq!(s.rx_bytes, (big.len() + small.len()) as u64);
        // 17 data slots + the extra + 1: every buffer went back.
        assert_eq!(b.rx_requests().len(), 19);
        assert_eq!(n.buffers().1, SLOTS);
    }

    #[test]
    fn a_packet_published_in_parts_is_delivered_once_complete() {
        let (mut n, mut b, mut bufs) = setup();
        let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
        let big = tcp_frame(20000, 3);
        b.rx_packet(&mut bufs, &mut posted, &big, 4096, 0, true);
        // Hide the last three slots, then show them.
        let all = b.rx_prod;
        set_idx(&mut b.rx, 2, all - 3);
        let mut got = Vec::new();
        assert_eq!(n.receive(&bufs, |d| got.push(d.to_vec())).0, 0);
        assert_eq!(
            b.rx_requests().len() as u32,
            all - 3,
            "taken slots are posted again"
        );
        set_idx(&mut b.rx, 2, all);
        assert_eq!(n.receive(&bufs, |d| got.push(d.to_vec())).0, 1);
        assert!(got[0] == big);
        assert_eq!(n.stats.rx_csum_checked, 1);
    }

    #[test]
    fn checksums_the_backend_did_not_validate_are_checked_here() {
        let (mut n, mut b, mut bufs) = setup();
        let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
        let good = tcp_frame(500, 1);
        let mut bad = good.clone();
        bad[200] ^= 0x40;
        b.rx_packet(&mut bufs, &mut posted, &good, 4096, 0, false);
        b.rx_packet(&mut bufs, &mut posted, &bad, 4096, 0, false);
        // The backend vouches for these: taken as they are.
        b.rx_packet(
            &mut bufs,
            &mut posted,
            &bad,
            4096,
            NETRXF_DATA_VALIDATED,
            false,
        );
        b.rx_packet(&mut bufs, &mut posted, &bad, 4096, NETRXF_CSUM_BLANK, false);
        let mut got = Vec::new();
        n.receive(&bufs, |d| got.push(d.to_vec()));
        assert_eq!(got, [good, bad.clone(), bad]);
        let s = n.stats;
        assert_eq!((s.bad_checksums, s.rx_csum_checked, s.rx_frames), (1, 1, 3));
    }

    #[test]
    fn a_misbehaving_backend_gets_its_frames_dropped_and_counted() {
        let (mut n, mut b, mut bufs) = setup();
        let posted = b.rx_requests();
        let f = frame(60, 1);
        let extra = |kind, flags, gso_type| {
            ExtraInfo {
                kind,
                flags,
                gso_size: 1448,
                gso_type,
            }
            .to_slot()
        };
        let (m, e) = (NETRXF_MORE_DATA, NETRXF_EXTRA_INFO);
        let mut answers: Vec<RxResponse> = Vec::new();
        // A data answer in the buffer posted at its index.
        macro_rules! data {
            ($off:expr, $flags:expr, $status:expr) => {
                answers.push(ans(posted[answers.len()].id, $off, $flags, $status))
            };
        }
        // An id not posted there, an error status, an empty first slot, a
        // GSO prefix (never negotiated), a slot past its page, a length past
        // any page, too short for Ethernet.
        answers.push(ans(999, 0, 0, 60));
        data!(0, 0, -1);
        data!(0, 0, 0);
        data!(0, crate::netif::NETRXF_GSO_PREFIX, 60);
        data!(4000, 0, 1000);
        data!(0, 0, 9000u16 as i16);
        data!(0, 0, 10);
        // A good one, then a duplicate of its id at the next index.
        data!(0, 0, 60);
        answers.push(ans(answers[7].id, 0, 0, 60));
        // An extra of an unknown type (in a two-slot packet); a GSO extra
        // for TCPv6 (not asked for).
        data!(0, e | m, 60);
        answers.push(extra(7, 0, GSO_TYPE_TCPV4));
        data!(0, 0, 60);
        data!(0, e, 60);
        answers.push(extra(EXTRA_TYPE_GSO, 0, 2));
        // Extra info on a continuation slot.
        data!(0, m, 60);
        data!(0, e, 60);
        // An extra-info chain that never ends: cut at the fifth.
        data!(0, e, 60);
        for _ in 0..5 {
            answers.push(extra(EXTRA_TYPE_GSO, EXTRA_FLAG_MORE, GSO_TYPE_TCPV4));
        }
        // A chain of more data slots than netback ever makes.
        for _ in 0..MAX_DATA_SLOTS + 1 {
            data!(0, m, 60);
        }
        // A good packet at the end: everything before it was taken apart.
        data!(0, 0, 60);
        for a in &answers {
            b.rx_answer(&mut bufs, *a, &f);
        }
        let mut got = 0;
        n.receive(&bufs, |_| got += 1);
        assert_eq!(got, 2, "the two good packets");
        let s = n.stats;
        assert_eq!(
            (s.bad_ids, s.rx_errors, s.bad_flags, s.bad_lengths),
            (2, 2, 2, 3)
        );
        assert_eq!((s.bad_extras, s.bad_chains), (3, 1));
        assert_eq!(
            b.rx_requests().len(),
            answers.len(),
            "every slot's buffer is posted again"
        );
        assert_eq!(n.buffers().1, SLOTS);
        // TX: three frames out; answers for an id never sent, a NULL slot
        // and a real one; then a ring index beyond what was asked.
        for _ in 0..3 {
            n.send(&mut bufs, 60, |_| {}).unwrap();
        }
        let sent = b.tx_requests();
        assert!(!sent.iter().any(|r| r.id == 3));
        b.tx_answer(TxResponse { id: 3, status: 0 });
        b.tx_answer(TxResponse {
            id: 0,
            status: NETIF_RSP_NULL,
        });
        b.tx_answer(TxResponse {
            id: sent[0].id,
            status: 0,
        });
        n.collect_tx();
        assert_eq!(n.stats.bad_ids, 3);
        assert_eq!(n.buffers().0, 2);
        set_idx(&mut b.tx, 2, 500);
        n.collect_tx();
        assert_eq!(n.stats.ring_errors, 1);
    }

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

        /// Packets of random sizes cut into random chunks (some with a GSO
        /// extra, some validated by the backend), published at random
        /// points: each arrives whole, in order, once.
        #[test]
        fn packets_in_any_slot_layout_and_any_publish_points_arrive_whole(
            pkts in proptest::collection::vec((0usize..20000, 1usize..=4096, any::<bool>(), any::<bool>()), 1..40),
            cuts in proptest::collection::vec(any::<u16>(), 0..20),
        ) {
            let (mut n, mut b, mut bufs) = setup();
            let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
            let (mut sent, mut got) = (Vec::new(), Vec::new());
            let mut cuts = cuts.into_iter();
            for (k, (len, chunk, gso, valid)) in pkts.into_iter().enumerate() {
                let f = tcp_frame(len, k as u8);
                let flags = if valid { NETRXF_DATA_VALIDATED } else { 0 };
                if posted.len() < f.len() / chunk + 3 {
                    posted.extend(b.rx_requests());
                }
                if posted.len() < f.len() / chunk + 3 {
                    continue;
                }
                b.rx_packet(&mut bufs, &mut posted, &f, chunk.max(f.len().div_ceil(MAX_DATA_SLOTS as usize)), flags, gso);
                sent.push(f);
                // Let the frontend see only part of what is answered.
                let shown = match cuts.next() {
                    Some(c) => idx(&b.rx, 2).max(b.rx_prod.saturating_sub(u32::from(c) % 8)),
                    None => b.rx_prod,
                };
                set_idx(&mut b.rx, 2, shown.min(b.rx_prod));
                n.receive(&bufs, |d| got.push(d.to_vec()));
                set_idx(&mut b.rx, 2, b.rx_prod);
                n.receive(&bufs, |d| got.push(d.to_vec()));
                posted.extend(b.rx_requests());
            }
            prop_assert_eq!(got.len(), sent.len());
            prop_assert!(got == sent);
            let s = n.stats;
            prop_assert_eq!(s.bad_ids + s.bad_lengths + s.bad_flags + s.bad_extras + s.bad_chains + s.bad_checksums, 0);
        }
    }

    /// smoltcp over this data path, the backend a lossy wire to a second
    /// smoltcp interface: it drops every 9th frame (either way) and flips a
    /// byte in every 13th it delivers. A 64 KiB TCP transfer still arrives
    /// intact (checksums reject the damaged frames, TCP resends), and at
    /// the end every TX buffer is back and every RX buffer posted again.
    #[test]
    fn smoltcp_tcp_crosses_a_lossy_backend_intact() {
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
                for r in self.b.tx_requests() {
                    let at = usize::from(r.offset);
                    let mut f =
                        self.bufs.tx[usize::from(r.id)].0[at..at + usize::from(r.size)].to_vec();
                    if w.pass(&mut f) {
                        w.to_peer.push_back(f);
                    }
                    self.b.tx_answer(TxResponse {
                        id: r.id,
                        status: NETIF_RSP_OKAY,
                    });
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
                caps()
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
        let (n, b, bufs) = setup();
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
        let server = gs.add(tcp::Socket::new(buf(65536), buf(64)));
        gs.get_mut::<tcp::Socket>(server).listen(9).unwrap();
        let client = ps.add(tcp::Socket::new(buf(64), buf(65536)));
        ps.get_mut::<tcp::Socket>(client)
            .connect(pi.context(), (IpAddress::v4(10, 0, 0, 2), 9), 49152)
            .unwrap();
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        for _ in 0..600_000 {
            t += Duration::from_millis(1);
            pi.poll(t, &mut peer, &mut ps);
            guest.backend();
            gi.poll(t, &mut guest, &mut gs);
            guest.backend();
            let c = ps.get_mut::<tcp::Socket>(client);
            if c.can_send() && sent < data.len() {
                sent += c.send_slice(&data[sent..]).unwrap();
            }
            let s = gs.get_mut::<tcp::Socket>(server);
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
        assert!(
            s.bad_checksums > 0 && s.rx_csum_checked > 0,
            "netfront checked the checksums the wire did not vouch for"
        );
    }
}
