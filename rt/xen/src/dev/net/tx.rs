//! Transmit: one granted page per TX slot, a frame copied into its page at
//! offset 0 (so no transmit slot ever crosses a page: Linux netback
//! disables the vif when one does), answers taken on the next send. A TCP
//! frame goes with checksum offload (`NETTXF_csum_blank`: the pseudo-header
//! sum in its field, the backend sums the segment; see `csum`).
//!
//! Invariant: an id is either free (on the `free` stack) or in flight
//! (`busy`), never both; free ids never outnumber free ring slots, because
//! each id in flight holds one.
use super::buffers::{MAX_FRAME, MIN_FRAME, Pages, SLOTS, index_of};
use super::csum::offload_tcp;
use super::gso::{self, Gather};
use super::netif::{
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, Tx, TxRequest,
};
use super::stats::NetStats;
use crate::proto::shared_ring::{FrontRing, RingError};

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

/// The transmit half of a vif's data path.
#[derive(Debug)]
pub(super) struct TxPath {
    ring: FrontRing<Tx>,
    /// The grant of each buffer page, by id.
    gref: [u32; SLOTS],
    /// Ids in flight (answered ones are free again).
    busy: [bool; SLOTS],
    /// Free ids, used as a stack.
    free: [u16; SLOTS],
    /// Buffers this path has (ids `0..count`).
    count: usize,
    nfree: usize,
    /// Each id's frame length (while it is gathered or in flight).
    lens: [u16; SLOTS],
    /// Whether the backend takes GSO packets (`feature-gso-tcpv4` and
    /// `feature-sg`): then TCP segments are gathered ([`super::gso`]).
    gso: bool,
    /// The GSO packet being gathered: the ids of its slots are neither
    /// free nor in flight (an answer naming one is a bad id); a page whose
    /// payload was packed into the one before is free at once.
    gather: Option<Gather>,
}

impl TxPath {
    /// Over an initialised ring, buffers `0..count` free (count <= the
    /// ring's size; the others are never used).
    pub(super) fn new(ring: FrontRing<Tx>, gref: [u32; SLOTS], count: usize) -> TxPath {
        let count = count.min(SLOTS);
        let mut free = [0u16; SLOTS];
        for (i, f) in free[..count].iter_mut().enumerate() {
            *f = (count - 1 - i) as u16;
        }
        TxPath {
            ring,
            gref,
            busy: [false; SLOTS],
            free,
            count,
            nfree: count,
            lens: [0; SLOTS],
            gso: false,
            gather: None,
        }
    }

    /// Turns TCP segmentation offload on or off (what the backend offers).
    pub(super) fn set_gso(&mut self, on: bool) {
        self.gso = on;
    }

    /// Takes a free id off the stack.
    fn take_free(&mut self) -> Option<u16> {
        self.nfree = self.nfree.checked_sub(1)?;
        self.free.get(self.nfree).copied()
    }

    /// Puts id `id` back on the free stack. There is always room: the
    /// stack holds SLOTS and an id is on it at most once (the invariant
    /// above); were it full, the id would stay out of use, not overwrite one.
    fn give_back(&mut self, id: u16) {
        if let Some(slot) = self.free.get_mut(self.nfree) {
            *slot = id;
            self.nfree += 1;
        }
    }

    /// Whether a frame can be sent now.
    pub(super) fn can_send(&self) -> bool {
        self.nfree > 0
    }

    /// Buffers in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.count - self.nfree
    }

    /// Sends a frame of `len` bytes that `fill` writes; returns whether to
    /// notify the backend. With GSO on, a TCP data segment may wait in the
    /// gathered packet until [`Self::flush`] (the caller flushes when its
    /// stack has sent what it had).
    pub(super) fn send(
        &mut self,
        pages: &mut impl Pages,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        stats: &mut NetStats,
    ) -> Result<bool, TxError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            return Err(TxError::BadLength(len));
        }
        let Some(id) = self.take_free() else {
            stats.tx_ring_full += 1;
            return Err(TxError::RingFull);
        };
        let frame = &mut pages.tx_page(id)[..len];
        fill(frame);
        self.lens[index_of(id)] = len as u16;
        stats.tx_frames += 1;
        stats.tx_bytes += len as u64;
        let mut notify = false;
        if self.gso
            && let Some(seg) = gso::segment(frame)
        {
            // The packet's slots, a possible new one and the extra-info
            // slot must fit the ring when it goes.
            let room = self.ring.free_requests() as usize;
            let fits = |g: &Gather| g.n + 2 <= room;
            if let Some(g) = &mut self.gather
                && g.continues(frame, &seg)
                && fits(g)
            {
                let (to, at, left) = g.tail();
                let copied = left.min(seg.payload);
                if copied > 0 {
                    pages.tx_copy(id, seg.hdr, to, at, copied);
                }
                if !g.push(id, &seg, copied) {
                    // Its payload moved whole: the page is free again.
                    self.give_back(id);
                }
            } else {
                let next = Gather::new(id, seg, frame);
                notify |= self.flush(pages, stats);
                self.gather = Some(next);
            }
            if self.gather.as_ref().is_some_and(|g| g.ended) {
                notify |= self.flush(pages, stats);
            }
            return Ok(notify);
        }
        notify |= self.flush(pages, stats);
        notify |= self.push_single(pages, id, stats);
        Ok(notify)
    }

    /// Sends the gathered packet, if any: as one GSO packet, or as a plain
    /// frame when it holds one segment. Returns whether to notify the
    /// backend.
    pub(super) fn flush(&mut self, pages: &mut impl Pages, stats: &mut NetStats) -> bool {
        let Some(g) = self.gather.take() else {
            return false;
        };
        if g.segments == 1 {
            return self.push_single(pages, g.slots[0].0, stats);
        }
        let first = g.slots[0].0;
        g.patch_first(pages.tx_page(first));
        let total = g.first.hdr + g.payload;
        let mut pushed = self.ring.push(TxRequest {
            gref: self.gref[index_of(first)],
            offset: 0,
            flags: NETTXF_CSUM_BLANK
                | NETTXF_DATA_VALIDATED
                | NETTXF_EXTRA_INFO
                | if g.n > 1 { NETTXF_MORE_DATA } else { 0 },
            id: first,
            size: total as u16,
        });
        pushed &= self.ring.push(gso::extra_slot(g.first.payload as u16));
        for (k, &(id, off, len)) in g.slots[..g.n].iter().enumerate().skip(1) {
            pushed &= self.ring.push(TxRequest {
                gref: self.gref[index_of(id)],
                offset: off,
                flags: if k + 1 < g.n { NETTXF_MORE_DATA } else { 0 },
                id,
                size: len,
            });
        }
        // The room was kept while gathering (`fits`).
        debug_assert!(pushed);
        for &(id, _, _) in &g.slots[..g.n] {
            self.busy[index_of(id)] = true;
        }
        stats.tx_gso += 1;
        stats.tx_csum_offloaded += 1;
        self.ring.publish()
    }

    /// Puts frame `id` (whole in its page) on the ring on its own, its TCP
    /// checksum offloaded; with no ring room it is dropped (counted; TCP
    /// retransmits).
    fn push_single(&mut self, pages: &mut impl Pages, id: u16, stats: &mut NetStats) -> bool {
        let len = usize::from(self.lens[index_of(id)]);
        let frame = &mut pages.tx_page(id)[..len];
        let flags = if offload_tcp(frame) {
            stats.tx_csum_offloaded += 1;
            NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED
        } else {
            0
        };
        let pushed = self.ring.push(TxRequest {
            gref: self.gref[index_of(id)],
            offset: 0,
            flags,
            id,
            size: len as u16,
        });
        if !pushed {
            // Extra-info slots awaiting their answers can fill the ring.
            stats.tx_ring_full += 1;
            self.give_back(id);
            return false;
        }
        self.busy[index_of(id)] = true;
        self.ring.publish()
    }

    /// Takes the backend's answers: their buffers can be used again.
    /// Returns the number taken.
    ///
    /// Answers raise no event while a buffer is free: they are taken on the
    /// next send, and an event per answer would wake the guest once more for
    /// every frame it sent (on PVH each wake-up is a VM entry). Only when
    /// every buffer is in flight does netfront ask for an event at the next
    /// answer (`rsp_event`), so a sender waiting for room wakes.
    pub(super) fn collect(&mut self, stats: &mut NetStats) -> u32 {
        let mut n = 0;
        loop {
            let rsp = match self.ring.take() {
                Ok(Some(r)) => r,
                Ok(None) if self.nfree == 0 && self.ring.final_check() => continue,
                Ok(None) => break,
                Err(RingError::TooManyResponses { .. }) => {
                    stats.ring_errors += 1;
                    break;
                }
            };
            n += 1;
            let id = usize::from(rsp.id);
            if rsp.status == NETIF_RSP_NULL {
                continue;
            }
            if id >= SLOTS || !self.busy[id] {
                stats.bad_ids += 1;
                continue;
            }
            if rsp.status != NETIF_RSP_OKAY {
                stats.tx_errors += 1;
            }
            self.busy[id] = false;
            self.give_back(rsp.id);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::dev::net::fake::{frame, idx, set_idx, setup};
    use crate::dev::net::netif::TxResponse;
    use alloc::vec::Vec;

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
        let rsp_event = |b: &crate::dev::net::fake::Back| idx(&b.tx, 3);
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
    fn bad_answers_are_counted_and_an_impossible_index_refused() {
        let (mut n, mut b, mut bufs) = setup();
        // Three frames out; answers for an id never sent, a NULL slot and a
        // real one; then a ring index beyond what was asked.
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
        assert_eq!(n.stats.bad_ids, 1);
        assert_eq!(n.buffers().0, 2);
        set_idx(&mut b.tx, 2, 500);
        n.collect_tx();
        assert_eq!(n.stats.ring_errors, 1);
    }
}
