//! Netfront's data path, as logic over the two rings and a set of buffer
//! pages (`rt::net` supplies the pages, grants and event channel; the host
//! tests a fake backend that misbehaves).
//!
//! Buffers: one page per slot and direction, granted to the backend once for
//! the life of the device (RX writable, TX read-only), so the number of
//! grants and buffers never changes while traffic flows. A frame is copied
//! into its TX page at offset 0, so no transmit slot ever crosses a page
//! (Linux netback disables the vif when one does). RX is the copy model:
//! every RX page is posted; the backend copies a frame in and answers.
//!
//! Whatever the backend answers is checked before it is used: ids in range
//! and actually outstanding, lengths within the page, no flags we did not
//! negotiate (`more_data`, `extra_info`), error statuses. A bad answer drops
//! that frame and is counted; the buffer goes back into service.
use crate::netif::{
    FrontRing, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, RING_SIZE, RingError, Rx,
    RxRequest, Tx, TxRequest,
};

/// Largest frame sent or accepted (Ethernet without FCS, MTU 1500).
pub const MAX_FRAME: usize = 1514;
/// Smallest frame netback accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
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
    /// Frames received and handed on.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// RX answers with an error status.
    pub rx_errors: u64,
    /// Answers whose id was out of range or not outstanding (both rings).
    pub bad_ids: u64,
    /// RX answers whose offset and length do not fit the page or a frame.
    pub bad_lengths: u64,
    /// RX answers with flags we did not negotiate (multi-slot, extra info).
    pub bad_flags: u64,
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
    /// RX ids posted to the backend.
    rx_posted: [bool; SLOTS],
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
            rx_posted: [false; SLOTS],
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
        let pushed = self.rx.push(RxRequest {
            id,
            pad: 0,
            gref: self.rx_gref[usize::from(id)],
        });
        // The ring has a slot for each id and each id is posted at most once.
        debug_assert!(pushed);
        self.rx_posted[usize::from(id)] = pushed;
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
    pub fn collect_tx(&mut self) -> u32 {
        let mut n = 0;
        loop {
            let rsp = match self.tx.next_response() {
                Ok(Some(r)) => r,
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

    /// Hands each frame the backend copied in to `deliver`, then posts its
    /// buffer again. Returns (frames delivered, whether to notify).
    pub fn receive(&mut self, pages: &impl Pages, deliver: impl FnMut(&[u8])) -> (u32, bool) {
        self.receive_at_most(pages, u32::MAX, deliver)
    }

    /// [`Self::receive`], stopping after `max` frames delivered.
    pub fn receive_at_most(
        &mut self,
        pages: &impl Pages,
        max: u32,
        mut deliver: impl FnMut(&[u8]),
    ) -> (u32, bool) {
        let mut n = 0;
        while n < max {
            let rsp = match self.rx.next_response() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(RingError::TooManyResponses { .. }) => {
                    self.stats.ring_errors += 1;
                    break;
                }
            };
            let id = usize::from(rsp.id);
            if id >= SLOTS || !self.rx_posted[id] {
                self.stats.bad_ids += 1;
                continue;
            }
            self.rx_posted[id] = false;
            let (off, len) = (usize::from(rsp.offset), rsp.status);
            if len <= 0 {
                self.stats.rx_errors += 1;
            } else if rsp.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO) != 0 {
                self.stats.bad_flags += 1;
            } else if off + len as usize > 4096 || len as usize > MAX_FRAME {
                self.stats.bad_lengths += 1;
            } else {
                let len = len as usize;
                deliver(&pages.rx_page(rsp.id)[off..off + len]);
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += len as u64;
                n += 1;
            }
            self.post_rx(rsp.id);
        }
        let notify = self.rx.publish();
        self.count_notify(notify);
        (n, notify)
    }

    /// TX buffers in flight and RX buffers posted.
    pub fn buffers(&self) -> (usize, usize) {
        (
            SLOTS - self.tx_nfree,
            self.rx_posted.iter().filter(|&&p| p).count(),
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::netif::{NETIF_RSP_NULL, NETRXF_CSUM_BLANK, RxResponse, TxResponse};
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
    fn received_frames_are_delivered_and_their_buffers_posted_again() {
        let (mut n, mut b, mut bufs) = setup();
        let posted = b.rx_requests();
        assert_eq!(posted.len(), SLOTS);
        let f = frame(98, 9);
        let id = posted[17].id;
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id,
                offset: 64,
                flags: NETRXF_CSUM_BLANK,
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

    #[test]
    fn a_misbehaving_backend_gets_its_frames_dropped_and_counted() {
        let (mut n, mut b, mut bufs) = setup();
        let posted = b.rx_requests();
        let f = frame(60, 1);
        let id = |k: usize| posted[k].id;
        // Unknown id, error status, more_data, extra_info, length past the
        // page, then a duplicate of an answered id.
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: 999,
                offset: 0,
                flags: 0,
                status: 60,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(0),
                offset: 0,
                flags: 0,
                status: -1,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(1),
                offset: 0,
                flags: NETRXF_MORE_DATA,
                status: 60,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(2),
                offset: 0,
                flags: NETRXF_EXTRA_INFO,
                status: 60,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(3),
                offset: 4000,
                flags: 0,
                status: 1000,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(4),
                offset: 0,
                flags: 0,
                status: 9000u16 as i16,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(5),
                offset: 0,
                flags: 0,
                status: 60,
            },
            &f,
        );
        b.rx_answer(
            &mut bufs,
            RxResponse {
                id: id(5),
                offset: 0,
                flags: 0,
                status: 60,
            },
            &f,
        );
        let mut got = 0;
        n.receive(&bufs, |_| got += 1);
        // id(5)'s buffer was posted again before the duplicate was read, so
        // the duplicate is taken as its next answer: delivered twice at most,
        // never out of a buffer that is not posted.
        assert!(got >= 1);
        let s = n.stats;
        assert_eq!(
            (s.bad_ids, s.rx_errors, s.bad_flags, s.bad_lengths),
            (1, 1, 2, 2)
        );
        assert_eq!(n.buffers().1, SLOTS, "every buffer is posted again");
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
        assert_eq!(n.stats.bad_ids, 2);
        assert_eq!(n.buffers().0, 2);
        set_idx(&mut b.tx, 2, 500);
        n.collect_tx();
        assert_eq!(n.stats.ring_errors, 1);
    }

    proptest! {
        /// A fuzzing backend: random answers (ids, offsets, lengths, flags,
        /// statuses) on both rings, interleaved with sends. Nothing panics,
        /// delivered frames always lie inside their page, and the buffer
        /// counts stay within the ring.
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
                        b.rx_answer(&mut bufs, RxResponse { id: id % 300, offset: off % 4200, flags: flags % 16, status }, &[7; 16]);
                        n.receive(&bufs, |d| assert!(d.len() <= MAX_FRAME));
                        b.rx_requests();
                    }
                }
                let (tx, rx) = n.buffers();
                prop_assert!(tx <= SLOTS && rx <= SLOTS);
            }
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
        assert_eq!(guest.n.stats.bad_ids + guest.n.stats.bad_lengths, 0);
    }
}
