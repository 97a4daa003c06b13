//! A fake blkback for the host tests: a disk in memory behind the shared
//! ring, serving requests by the blkif rules — direct and indirect segments
//! resolved through the grants of the test's pages — or answering however
//! a test tells it to (wrong ids, statuses, operations, ring indices).
extern crate std;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use super::blkif::{
    MAX_DIRECT_SEGMENTS, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE, OP_WRITE_BARRIER,
    RSP_ERROR, RSP_OKAY, Request, Response, SECTOR, indirect_entry,
};
use super::request::{Blkfront, Pages};
use crate::abi::PAGE_SIZE;
use crate::proto::shared_ring::{ENTRIES_AT, FrontRing, Kind, ring_size_in};

/// A page of the fake's memory.
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct Page(pub [u8; PAGE_SIZE]);

fn page() -> Box<Page> {
    Box::new(Page([0; PAGE_SIZE]))
}

/// First grant of the data pool; indirect pages start at [`INDIRECT_GREF`].
pub const DATA_GREF: u32 = 1000;
/// First grant of the indirect pages.
pub const INDIRECT_GREF: u32 = 5000;

/// The test's pages, granted as `DATA_GREF + i` and `INDIRECT_GREF + slot`.
pub struct Bufs {
    /// The pool.
    pub data: Vec<Box<Page>>,
    /// One per ring slot.
    pub indirect: Vec<Box<Page>>,
}

impl Bufs {
    /// A pool of `n` pages, indirect pages for `slots` ring slots.
    pub fn new(n: u16, slots: u32) -> Bufs {
        Bufs {
            data: (0..n).map(|_| page()).collect(),
            indirect: (0..slots).map(|_| page()).collect(),
        }
    }

    /// The page a grant names, as the backend maps it.
    fn by_gref(&mut self, g: u32) -> Option<&mut [u8; PAGE_SIZE]> {
        if g >= INDIRECT_GREF {
            self.indirect
                .get_mut((g - INDIRECT_GREF) as usize)
                .map(|p| &mut p.0)
        } else {
            self.data
                .get_mut(g.checked_sub(DATA_GREF)? as usize)
                .map(|p| &mut p.0)
        }
    }
}

impl Pages for Bufs {
    fn data(&mut self, i: u16) -> &mut [u8; PAGE_SIZE] {
        &mut self.data[usize::from(i)].0
    }
    fn data_ref(&self, i: u16) -> &[u8; PAGE_SIZE] {
        &self.data[usize::from(i)].0
    }
    fn data_gref(&self, i: u16) -> u32 {
        DATA_GREF + u32::from(i)
    }
    fn indirect(&mut self, slot: u16) -> &mut [u8; PAGE_SIZE] {
        &mut self.indirect[usize::from(slot)].0
    }
    fn indirect_gref(&self, slot: u16) -> u32 {
        INDIRECT_GREF + u32::from(slot)
    }
}

/// The backend's side of the ring and its disk.
pub struct Back {
    /// The ring's 2^order pages, one after another.
    ring: Vec<Page>,
    size: u32,
    req_cons: u32,
    rsp_prod: u32,
    /// The disk's bytes.
    pub disk: Vec<u8>,
    /// Flushes served.
    pub flushes: u32,
}

impl Back {
    /// A backend of a zeroed disk of `bytes`, its ring 2^`order` pages.
    pub fn new(bytes: usize, order: u32) -> Back {
        Back {
            ring: vec![Page([0; PAGE_SIZE]); 1 << order],
            size: ring_size_in(<super::blkif::Blk as Kind>::SLOT, PAGE_SIZE << order),
            req_cons: 0,
            rsp_prod: 0,
            disk: vec![0; bytes],
            flushes: 0,
        }
    }

    fn idx(&self, i: usize) -> u32 {
        u32::from_ne_bytes(self.ring[0].0[i * 4..i * 4 + 4].try_into().unwrap())
    }

    fn base(&self) -> *const u8 {
        self.ring.as_ptr() as *const u8
    }

    /// Sets header index `i` (2 = rsp_prod), to misbehave.
    pub fn set_idx(&mut self, i: usize, v: u32) {
        self.ring[0].0[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }

    /// The requests published since the last call.
    pub fn requests(&mut self) -> Vec<Request> {
        let mut v = Vec::new();
        while self.req_cons != self.idx(0) {
            let at = ENTRIES_AT
                + (self.req_cons % self.size) as usize * <super::blkif::Blk as Kind>::SLOT;
            // SAFETY: the slot is inside the ring's pages (size fits them).
            v.push(unsafe { (self.base().add(at) as *const Request).read_unaligned() });
            self.req_cons = self.req_cons.wrapping_add(1);
        }
        v
    }

    /// Writes one response and publishes it.
    pub fn respond(&mut self, rsp: Response) {
        let at =
            ENTRIES_AT + (self.rsp_prod % self.size) as usize * <super::blkif::Blk as Kind>::SLOT;
        // SAFETY: as in `requests`; the pages are ours to write.
        unsafe {
            (self.ring.as_mut_ptr() as *mut u8)
                .add(at)
                .cast::<Response>()
                .write_unaligned(rsp)
        };
        self.rsp_prod = self.rsp_prod.wrapping_add(1);
        let p = self.rsp_prod;
        self.set_idx(2, p);
    }

    /// Does what `req` asks on the disk; the response a good backend gives.
    pub fn serve(&mut self, bufs: &mut Bufs, req: &Request) -> Response {
        let id = req.id();
        let (op, segs) = match req.operation() {
            OP_FLUSH_DISKCACHE | OP_WRITE_BARRIER => {
                self.flushes += 1;
                return Response::new(id, req.operation(), RSP_OKAY);
            }
            OP_INDIRECT => {
                let n = usize::from(req.indirect_segments());
                let mut segs = Vec::new();
                for i in 0..n {
                    let Some(p) = bufs.by_gref(req.indirect_page(i / 512)) else {
                        return Response::new(id, OP_INDIRECT, RSP_ERROR);
                    };
                    segs.push(indirect_entry(&p[..], i % 512));
                }
                (req.byte1(), segs)
            }
            op @ (OP_READ | OP_WRITE) => {
                let n = usize::from(req.byte1()).min(MAX_DIRECT_SEGMENTS);
                (op, (0..n).map(|i| req.segment(i)).collect())
            }
            op => return Response::new(id, op, RSP_ERROR),
        };
        let mut at = (req.sector() * SECTOR) as usize;
        for s in segs {
            let (first, last) = (usize::from(s.first_sect), usize::from(s.last_sect));
            let len = (last + 1 - first) * SECTOR as usize;
            let Some(p) = bufs.by_gref(s.gref) else {
                return Response::new(id, op, RSP_ERROR);
            };
            if last > 7 || first > last || at + len > self.disk.len() {
                return Response::new(id, op, RSP_ERROR);
            }
            let off = first * SECTOR as usize;
            if op == OP_READ {
                p[off..off + len].copy_from_slice(&self.disk[at..at + len]);
            } else {
                self.disk[at..at + len].copy_from_slice(&p[off..off + len]);
            }
            at += len;
        }
        Response::new(id, op, RSP_OKAY)
    }

    /// Serves and answers every published request, in order.
    pub fn serve_all(&mut self, bufs: &mut Bufs) -> usize {
        let reqs = self.requests();
        for r in &reqs {
            let rsp = self.serve(bufs, r);
            self.respond(rsp);
        }
        reqs.len()
    }
}

/// A request path over a fresh fake: `pool` pages, `indirect` segments
/// offered (0: none), cache flush offered.
pub fn setup(disk: usize, pool: u16, indirect: u32) -> (Blkfront, Back, Bufs) {
    setup_with(disk, pool, indirect, Some(OP_FLUSH_DISKCACHE))
}

/// [`setup`] with the flush operation `flush` (None: no flush offered).
pub fn setup_with(
    disk: usize,
    pool: u16,
    indirect: u32,
    flush: Option<u8>,
) -> (Blkfront, Back, Bufs) {
    setup_ring(disk, pool, indirect, flush, 0)
}

/// [`setup_with`] on a ring of 2^`order` pages.
pub fn setup_ring(
    disk: usize,
    pool: u16,
    indirect: u32,
    flush: Option<u8>,
    order: u32,
) -> (Blkfront, Back, Bufs) {
    let mut b = Back::new(disk, order);
    let ptr = NonNull::new(b.ring.as_mut_ptr() as *mut u8).unwrap();
    // SAFETY: the pages live in `b`, which the tests keep alive for as long
    // as the request path; they are consecutive (one Vec).
    let ring = unsafe { FrontRing::init_pages(ptr, order) };
    let slots = ring.size();
    let f = Blkfront::new(ring, 51712, pool, indirect, flush);
    (f, b, Bufs::new(pool, slots))
}
