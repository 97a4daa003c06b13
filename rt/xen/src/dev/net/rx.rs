//! Receive and gathering: the copy model (every RX page is posted; the
//! backend copies a packet in and answers), packets of up to 64 KiB put
//! together from several slots, every answer checked before it is used.
//!
//! We negotiate scatter-gather and TCPv4 GSO (`feature-sg`,
//! `feature-gso-tcpv4`) with checksum offload, so dom0 hands a TCP stream
//! over in packets of up to 64 KiB instead of one per MTU — as Linux's
//! netfront does. Such a packet spans several slots: the first answer
//! carries `NETRXF_more_data` (and `NETRXF_extra_info`, the GSO extra
//! following in the next slot), later answers continue it. Answers sit in
//! the slot of the request they consume (netif.h), so the buffer an answer
//! used is known by its ring index even when an extra-info slot overwrote
//! the id: each index remembers the buffer id posted there.
//!
//! Whatever the backend answers is checked: the answer's id must be the
//! buffer posted at that index, lengths within the page and the packet, no
//! flags or extra types we did not negotiate, chains no longer than netback
//! ever makes, error statuses. A bad answer drops its whole packet (every
//! slot of it) and is counted; every buffer goes back into service.
use alloc::vec::Vec;

use super::buffers::{
    MAX_DATA_SLOTS, MAX_EXTRA_SLOTS, MAX_PACKET, MIN_FRAME, Pages, SLOTS, index_of,
};
use super::csum::l4_checksum_ok;
use super::netif::{
    EXTRA_FLAG_MORE, EXTRA_TYPE_GSO, EXTRA_TYPE_MAX, ExtraInfo, GSO_TYPE_TCPV4, NETRXF_CSUM_BLANK,
    NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, Rx, RxRequest, RxResponse,
};
use super::stats::NetStats;
use crate::abi::PAGE_SIZE;
use crate::proto::shared_ring::{FrontRing, RingError};

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

/// The receive half of a vif's data path.
#[derive(Debug)]
pub(super) struct RxPath {
    ring: FrontRing<Rx>,
    /// The grant of each buffer page, by id.
    gref: [u32; SLOTS],
    /// The buffer id posted at each ring index (index mod the ring size).
    /// Invariant: every index in flight holds exactly one buffer, and every
    /// buffer is in flight at exactly one index, except while the answer
    /// that returned it is being read.
    id_at: [u16; SLOTS],
    /// The packet being gathered across calls (a backend may publish the
    /// first slots of a packet before the rest).
    partial: Option<Partial>,
    /// Where a multi-slot packet is gathered ([`MAX_PACKET`] bytes).
    asm: Vec<u8>,
}

impl RxPath {
    /// Over an initialised ring: posts buffers `0..count` (count <= the
    /// ring's size); returns whether to notify the backend.
    pub(super) fn new(ring: FrontRing<Rx>, gref: [u32; SLOTS], count: usize) -> (RxPath, bool) {
        let mut r = RxPath {
            ring,
            gref,
            id_at: [0; SLOTS],
            partial: None,
            asm: alloc::vec![0; MAX_PACKET],
        };
        for id in 0..count.min(SLOTS) as u16 {
            r.post(id);
        }
        let notify = r.ring.publish();
        (r, notify)
    }

    /// Buffers posted.
    pub(super) fn posted(&self) -> usize {
        self.ring.outstanding() as usize
    }

    fn post(&mut self, id: u16) {
        let at = self.ring.next_request_index() as usize % SLOTS;
        let pushed = self.ring.push(RxRequest {
            id,
            pad: 0,
            gref: self.gref[index_of(id)],
        });
        // Each answer taken frees the index it sat at, and its buffer goes
        // back at once: the ring always has room for it.
        debug_assert!(pushed);
        self.id_at[at] = id;
    }

    /// Hands each packet the backend copied in to `deliver` (at most
    /// `max`), posting its buffers again. Returns (packets delivered,
    /// whether to notify).
    pub(super) fn receive_at_most(
        &mut self,
        pages: &impl Pages,
        max: u32,
        mut deliver: impl FnMut(&[u8]),
        stats: &mut NetStats,
    ) -> (u32, bool) {
        let mut n = 0;
        while n < max {
            let at = self.ring.next_response_index() as usize % SLOTS;
            let rsp = match self.ring.next_response() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(RingError::TooManyResponses { .. }) => {
                    stats.ring_errors += 1;
                    break;
                }
            };
            let id = self.id_at[at];
            if let Some(p) = self.take_slot(pages, id, rsp)
                && let Some(data) = self.finish(pages, id, rsp, p, stats)
            {
                deliver(data);
                n += 1;
            }
            // Its data handed on (or gathered, or not wanted), the slot's
            // buffer goes back; the backend sees it at the next publish.
            self.post(id);
        }
        (n, self.ring.publish())
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
            } else if off + len as usize > PAGE_SIZE || p.len + len as usize > MAX_PACKET {
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
                    // Both ranges were bounded just above (`get` keeps that
                    // a drop, not a panic, should the bounds ever differ).
                    let to = self.asm.get_mut(p.len..p.len + len);
                    match (to, pages.rx_page(id).get(off..off + len)) {
                        (Some(to), Some(from)) => to.copy_from_slice(from),
                        _ => fail(&mut p, RxDrop::Length),
                    }
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
        s: &mut NetStats,
    ) -> Option<&'a [u8]> {
        let mut drop = p.drop;
        if drop.is_none() && p.len < MIN_FRAME {
            drop = Some(RxDrop::Length);
        }
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
            pages.rx_page(id).get(off..off + p.len)
        } else {
            self.asm.get(..p.len)
        };
        // In bounds: `take_slot` checked each slot against its page and the
        // whole against MAX_PACKET.
        let Some(data) = data else {
            s.bad_lengths += 1;
            return None;
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
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::dev::net::fake::{ans, frame, idx, set_idx, setup, setup_with, tcp_frame};
    use crate::dev::net::netif::NETRXF_GSO_PREFIX;
    use crate::dev::net::netif::TxResponse;
    use proptest::prelude::*;

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
    fn a_gso_packet_over_seventeen_slots_arrives_whole() {
        let (mut n, mut b, mut bufs) = setup();
        let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
        let big = tcp_frame(65535 - 40, 9);
        assert_eq!(big.len(), MAX_PACKET);
        b.rx_packet(
            &mut bufs,
            &mut posted,
            &big,
            PAGE_SIZE,
            NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK,
            true,
        );
        // And a plain frame after it.
        let small = tcp_frame(100, 4);
        b.rx_packet(&mut bufs, &mut posted, &small, PAGE_SIZE, 0, false);
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
    fn a_small_guest_posts_few_buffers_and_still_takes_the_largest_packet() {
        use crate::dev::net::buffers::{MIN_BUFFERS, buffers_for};
        // What a guest gets for its free frames: a full ring, or a few.
        assert_eq!(buffers_for(7000), SLOTS);
        assert_eq!(buffers_for(200), 50);
        assert_eq!(buffers_for(10), MIN_BUFFERS);
        let (mut n, mut b, mut bufs) = setup_with(MIN_BUFFERS);
        let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
        assert_eq!(posted.len(), MIN_BUFFERS);
        assert!(posted.iter().all(|r| usize::from(r.id) < MIN_BUFFERS));
        let big = tcp_frame(65535 - 40, 3);
        for _ in 0..3 {
            b.rx_packet(
                &mut bufs,
                &mut posted,
                &big,
                PAGE_SIZE,
                NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK,
                true,
            );
            let mut got = Vec::new();
            assert_eq!(n.receive(&bufs, |d| got.push(d.to_vec())).0, 1);
            assert!(got[0] == big);
            posted.extend(b.rx_requests());
            assert_eq!(n.buffers().1, MIN_BUFFERS, "every buffer went back");
        }
        // A full TX side: MIN_BUFFERS frames, then the ring is full.
        for _ in 0..MIN_BUFFERS {
            n.send(&mut bufs, 60, |_| {}).unwrap();
        }
        assert!(!n.can_send());
        assert_eq!(n.buffers().0, MIN_BUFFERS);
        // A backend answering with an id this guest never used is contained.
        let reqs = b.tx_requests();
        assert!(reqs.iter().all(|r| usize::from(r.id) < MIN_BUFFERS));
        b.tx_answer(TxResponse {
            id: (SLOTS - 1) as u16,
            status: 0,
        });
        n.collect_tx();
        assert_eq!(n.stats.bad_ids, 1);
        assert_eq!(n.buffers().0, MIN_BUFFERS, "nothing freed by it");
        assert!(!n.can_send());
    }

    #[test]
    fn a_packet_published_in_parts_is_delivered_once_complete() {
        let (mut n, mut b, mut bufs) = setup();
        let mut posted: std::collections::VecDeque<_> = b.rx_requests().into();
        let big = tcp_frame(20000, 3);
        b.rx_packet(&mut bufs, &mut posted, &big, PAGE_SIZE, 0, true);
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
        b.rx_packet(&mut bufs, &mut posted, &good, PAGE_SIZE, 0, false);
        b.rx_packet(&mut bufs, &mut posted, &bad, PAGE_SIZE, 0, false);
        // The backend vouches for these: taken as they are.
        b.rx_packet(
            &mut bufs,
            &mut posted,
            &bad,
            PAGE_SIZE,
            NETRXF_DATA_VALIDATED,
            false,
        );
        b.rx_packet(
            &mut bufs,
            &mut posted,
            &bad,
            PAGE_SIZE,
            NETRXF_CSUM_BLANK,
            false,
        );
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
        data!(0, NETRXF_GSO_PREFIX, 60);
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
    }

    proptest! {
        /// Packets of random sizes cut into random chunks (some with a GSO
        /// extra, some validated by the backend), published at random
        /// points: each arrives whole, in order, once.
        #[test]
        fn packets_in_any_slot_layout_and_any_publish_points_arrive_whole(
            pkts in proptest::collection::vec((0usize..20000, 1usize..=PAGE_SIZE, any::<bool>(), any::<bool>()), 1..40),
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
}
