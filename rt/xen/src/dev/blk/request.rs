//! The request path of one vbd: reads, writes and flushes put on the ring,
//! their answers matched back, over a pool of data pages that are granted
//! once for the life of the connection (persistent grants: the data is
//! copied in and out of them, the data path never grants or ends a grant).
//!
//! - A request of up to 11 pages goes in its ring slot; a larger one (up to
//!   the backend's `feature-max-indirect-segments`, at most 256 pages =
//!   1 MiB) lists its pages in the indirect page kept for its slot.
//! - Requests in flight: up to the ring's 32, as long as the pool has pages.
//! - Ids: `generation << 16 | slot`. A response is taken only for a slot in
//!   flight with that generation: an unknown, stale or duplicate id is
//!   counted and dropped, never completes someone else's request.
//!
//! Invariants kept here: a pool page belongs to at most one request in
//! flight, and returns to the pool only when that request is answered;
//! after the backend broke the ring or went away ([`Blkfront::fail_all`])
//! every request in flight is failed once and no new one is accepted (its
//! pages are not reused: the backend may still write them).
use alloc::vec::Vec;

use super::blkif::{
    Blk, MAX_DIRECT_SEGMENTS, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE, RSP_EOPNOTSUPP,
    RSP_OKAY, Request, SECTOR, SECTORS_PER_PAGE, Segment,
};
use super::stats::BlkStats;
use crate::abi::PAGE_SIZE;
use crate::proto::shared_ring::FrontRing;

/// The pages a vbd's requests use: the data pool and one indirect page per
/// ring slot (`FrontRing::size` of them), each granted to the backend.
pub trait Pages {
    /// Data page `i` of the pool.
    fn data(&mut self, i: u16) -> &mut [u8; PAGE_SIZE];
    /// Data page `i`, to read.
    fn data_ref(&self, i: u16) -> &[u8; PAGE_SIZE];
    /// Data page `i`'s grant.
    fn data_gref(&self, i: u16) -> u32;
    /// The indirect page of ring slot `slot`.
    fn indirect(&mut self, slot: u16) -> &mut [u8; PAGE_SIZE];
    /// Its grant.
    fn indirect_gref(&self, slot: u16) -> u32;
}

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read into the pool.
    Read,
    /// Write from the pool.
    Write,
    /// Flush the backend's cache (or a barrier, where only that is offered).
    Flush,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The backend answered with an error status (`BLKIF_RSP_ERROR` is -1).
    Backend(i16),
    /// The backend does not do this operation (`BLKIF_RSP_EOPNOTSUPP`).
    NotSupported,
    /// The backend's answer broke the protocol (wrong operation echoed, or
    /// a ring whose indices make no sense).
    Protocol,
    /// The backend went away before answering.
    Gone,
}

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IoError::Backend(s) => write!(f, "the backend reported an I/O error (status {s})"),
            IoError::NotSupported => write!(f, "the backend does not support the operation"),
            IoError::Protocol => write!(f, "the backend broke the blkif protocol"),
            IoError::Gone => write!(f, "the disk's backend is gone"),
        }
    }
}

/// Why a request could not be put on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// No ring slot or not enough pool pages now: take answers and retry.
    Busy,
    /// More pages than one request may carry ([`Blkfront::max_request`]).
    TooLarge,
    /// Not a whole number of 512-byte sectors, or empty.
    Unaligned,
    /// No flush or barrier offered by the backend.
    NotSupported,
    /// The backend is gone (or broke the ring).
    Gone,
}

/// The data of an answered read, in its pool pages.
#[derive(Debug)]
pub struct Data<'a, P: Pages> {
    pages: &'a P,
    list: &'a [u16],
    len: usize,
}

impl<P: Pages> Data<'_, P> {
    /// Bytes read.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was read (a flush, a write).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the data into `dst` (at most its length); returns bytes copied.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        for (i, chunk) in dst[..n].chunks_mut(PAGE_SIZE).enumerate() {
            let page = self.pages.data_ref(self.list[i]);
            chunk.copy_from_slice(&page[..chunk.len()]);
        }
        n
    }
}

/// A request in flight.
#[derive(Debug)]
struct InFlight {
    generation: u64,
    op: u8,
    /// Listed in an indirect page (a backend may echo `OP_INDIRECT`).
    indirect: bool,
    pages: Vec<u16>,
    len: usize,
}

/// The request path of one vbd.
#[derive(Debug)]
pub struct Blkfront {
    ring: FrontRing<Blk>,
    handle: u16,
    slots: Vec<Option<InFlight>>,
    free_slots: Vec<u16>,
    /// Free pool pages, used last-in first-out (blkif.h's advice for
    /// persistent grants: a backend that keeps fewer mapped keeps the hot ones).
    free_pages: Vec<u16>,
    pool: usize,
    generation: u64,
    max_segments: usize,
    flush_op: Option<u8>,
    gone: bool,
    /// Counters.
    pub stats: BlkStats,
}

impl Blkfront {
    /// The request path over an initialised ring, for device `handle`, with
    /// `pool` data pages; `indirect_segments` (0: none) from the backend,
    /// and the operation that flushes (cache flush, else barrier, else none).
    pub fn new(
        ring: FrontRing<Blk>,
        handle: u16,
        pool: u16,
        indirect_segments: u32,
        flush_op: Option<u8>,
    ) -> Blkfront {
        let slots = ring.size();
        let max_segments = (indirect_segments as usize)
            .max(MAX_DIRECT_SEGMENTS)
            .min(usize::from(pool));
        Blkfront {
            ring,
            handle,
            slots: (0..slots).map(|_| None).collect(),
            free_slots: (0..slots as u16).rev().collect(),
            free_pages: (0..pool).rev().collect(),
            pool: usize::from(pool),
            generation: 0,
            max_segments,
            flush_op,
            gone: false,
            stats: BlkStats::default(),
        }
    }

    /// The largest request in bytes.
    pub fn max_request(&self) -> usize {
        self.max_segments * PAGE_SIZE
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    /// Requests the ring holds (the most in flight at once).
    pub fn ring_slots(&self) -> usize {
        self.slots.len()
    }

    /// Pool pages not in use.
    pub fn free_pages(&self) -> usize {
        self.free_pages.len()
    }

    /// The pool's size in pages.
    pub fn pool(&self) -> usize {
        self.pool
    }

    /// Whether the backend went away or broke the ring.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// Whether a request of `len` bytes would be taken now.
    pub fn can_submit(&self, len: usize) -> bool {
        !self.gone
            && !self.free_slots.is_empty()
            && self.free_pages.len() >= len.div_ceil(PAGE_SIZE)
    }

    /// Puts a request on the ring (not yet visible: see [`Self::publish`]):
    /// `op` of `len` bytes at protocol sector `sector` (512-byte units); a
    /// write's bytes are `src`. Returns the request's tag, which its answer
    /// carries.
    pub fn submit(
        &mut self,
        pages: &mut impl Pages,
        op: Op,
        sector: u64,
        len: usize,
        src: Option<&[u8]>,
    ) -> Result<u64, SubmitError> {
        if self.gone {
            return Err(SubmitError::Gone);
        }
        let wire = match op {
            Op::Read => OP_READ,
            Op::Write => OP_WRITE,
            Op::Flush => self.flush_op.ok_or(SubmitError::NotSupported)?,
        };
        let nseg = if op == Op::Flush {
            0
        } else {
            if len == 0 || !(len as u64).is_multiple_of(SECTOR) {
                return Err(SubmitError::Unaligned);
            }
            len.div_ceil(PAGE_SIZE)
        };
        if nseg > self.max_segments {
            return Err(SubmitError::TooLarge);
        }
        if self.free_slots.is_empty() || self.free_pages.len() < nseg {
            return Err(SubmitError::Busy);
        }
        let slot = self.free_slots.pop().ok_or(SubmitError::Busy)?;
        let list: Vec<u16> = (0..nseg).filter_map(|_| self.free_pages.pop()).collect();
        if let (Op::Write, Some(src)) = (op, src) {
            for (i, chunk) in src[..len.min(src.len())].chunks(PAGE_SIZE).enumerate() {
                pages.data(list[i])[..chunk.len()].copy_from_slice(chunk);
            }
        }
        let segs: Vec<Segment> = list
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE) as u64;
                Segment::new(pages.data_gref(p), 0, (bytes / SECTOR - 1) as u8)
            })
            .collect();
        self.generation += 1;
        let id = self.generation << 16 | u64::from(slot);
        let indirect = nseg > MAX_DIRECT_SEGMENTS;
        let req = if !indirect {
            Request::rw(wire, self.handle, id, sector, &segs)
        } else {
            let page = pages.indirect(slot);
            for (i, s) in segs.iter().enumerate() {
                page[i * 8..i * 8 + 8].copy_from_slice(&s.to_bytes());
            }
            self.stats.indirect += 1;
            let gref = pages.indirect_gref(slot);
            Request::indirect(wire, self.handle, id, sector, nseg as u16, &[gref])
        };
        let pushed = self.ring.push(req);
        debug_assert!(pushed, "a free slot means a free ring entry");
        self.slots[usize::from(slot)] = Some(InFlight {
            generation: self.generation,
            op: wire,
            indirect,
            pages: list,
            len,
        });
        match op {
            Op::Read => {
                self.stats.reads += 1;
                self.stats.bytes_read += len as u64;
            }
            Op::Write => {
                self.stats.writes += 1;
                self.stats.bytes_written += len as u64;
            }
            Op::Flush => self.stats.flushes += 1,
        }
        Ok(id)
    }

    /// Makes the submitted requests visible; true if the backend must be
    /// notified.
    pub fn publish(&mut self) -> bool {
        let n = self.ring.publish();
        self.stats.notifies += u64::from(n);
        n
    }

    /// Takes the backend's answers: `done(tag, result)` for each, with the
    /// data of a read; its pages return to the pool afterwards. Returns the
    /// number of requests completed. A ring the backend broke fails every
    /// request in flight ([`IoError::Protocol`]) and the device with it.
    pub fn complete<P: Pages>(
        &mut self,
        pages: &P,
        mut done: impl FnMut(u64, Result<Data<'_, P>, IoError>),
    ) -> u32 {
        let mut n = 0;
        loop {
            if self.gone {
                return n;
            }
            let rsp = match self.ring.next_response() {
                Ok(Some(r)) => r,
                Ok(None) => return n,
                Err(_) => {
                    self.stats.ring_errors += 1;
                    return n + self.fail_all(IoError::Protocol, |t, e| done(t, Err(e)));
                }
            };
            let slot = (rsp.id & 0xffff) as usize;
            let generation = rsp.id >> 16;
            let ours = self
                .slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.generation == generation);
            if !ours {
                self.stats.bad_ids += 1;
                continue;
            }
            let Some(f) = self.slots[slot].take() else {
                continue;
            };
            let echoed = rsp.operation == f.op || (f.indirect && rsp.operation == OP_INDIRECT);
            let result = if !echoed {
                self.stats.bad_ops += 1;
                Err(IoError::Protocol)
            } else {
                match rsp.status {
                    RSP_OKAY => Ok(()),
                    RSP_EOPNOTSUPP => Err(IoError::NotSupported),
                    s => Err(IoError::Backend(s)),
                }
            };
            if result.is_err() {
                self.stats.errors += 1;
            }
            let tag = f.generation << 16 | slot as u64;
            match result {
                Ok(()) => {
                    let len = if f.op == OP_READ { f.len } else { 0 };
                    done(
                        tag,
                        Ok(Data {
                            pages,
                            list: &f.pages,
                            len,
                        }),
                    );
                }
                Err(e) => done(tag, Err(e)),
            }
            self.free_pages.extend(f.pages.iter().rev());
            self.free_slots.push(slot as u16);
            n += 1;
        }
    }

    /// The backend went away (or broke the ring): every request in flight
    /// fails with `why`, and the device takes no more. The pages stay out
    /// of the pool (the backend may still write them). Returns the count.
    pub fn fail_all(&mut self, why: IoError, mut done: impl FnMut(u64, IoError)) -> u32 {
        self.gone = true;
        let mut n = 0;
        for (slot, s) in self.slots.iter_mut().enumerate() {
            if let Some(f) = s.take() {
                self.free_slots.push(slot as u16);
                self.stats.errors += 1;
                done(f.generation << 16 | slot as u64, why);
                n += 1;
            }
        }
        n
    }

    /// The operation a flush uses, if any.
    pub fn flush_op(&self) -> Option<u8> {
        self.flush_op
    }
}

/// The flush operation to use given what the backend offers.
pub fn flush_op(flush: bool, barrier: bool) -> Option<u8> {
    if flush {
        Some(OP_FLUSH_DISKCACHE)
    } else if barrier {
        Some(super::blkif::OP_WRITE_BARRIER)
    } else {
        None
    }
}

/// Protocol sectors (512 bytes) in `bytes`.
pub const fn sectors(bytes: u64) -> u64 {
    bytes / SECTOR
}

const _: () = assert!(SECTORS_PER_PAGE * SECTOR == PAGE_SIZE as u64);
