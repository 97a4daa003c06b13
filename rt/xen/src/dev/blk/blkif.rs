//! The wire format of `public/io/blkif.h` on x86_64: the request slot (a
//! read/write request of up to 11 segments, an indirect one whose segments
//! sit in separate pages, or a flush), the response, and the constants.
//!
//! ```text
//! request (112 bytes):  op u8 | nr_segments u8 | handle u16 | pad u32 | id u64
//!                       | sector u64 | 11 x segment (gref u32, first u8, last u8, pad u16)
//! indirect (in a slot): op=6 u8 | indirect_op u8 | nr_segments u16 | pad u32 | id u64
//!                       | sector u64 | handle u16 | pad u16 | 8 x indirect gref u32
//! response (16 bytes):  id u64 | op u8 | pad u8 | status i16 | pad u32
//! ```
//! Sector numbers and `first_sect`/`last_sect` count 512-byte units: we do
//! not publish `feature-large-sector-size`, so a backend with 4096-byte
//! sectors takes the same units (Linux's blkback does).
use crate::proto::shared_ring::Kind;

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`.
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_INDIRECT`.
pub const OP_INDIRECT: u8 = 6;

/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;

/// Segments a request carries in its slot.
pub const MAX_DIRECT_SEGMENTS: usize = 11;
/// Indirect pages a request may name.
pub const MAX_INDIRECT_PAGES: usize = 8;
/// Segments one indirect page holds (8 bytes each).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 512;
/// The protocol's sector: 512 bytes, whatever the disk's own.
pub const SECTOR: u64 = 512;
/// Protocol sectors in a page.
pub const SECTORS_PER_PAGE: u64 = 8;

/// `VDISK_READONLY` in the backend's `info`.
pub const VDISK_READONLY: u32 = 0x4;

/// One segment: a granted page and the sectors of it to move.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The page's grant.
    pub gref: u32,
    /// First sector of the page (0..=7), inclusive.
    pub first_sect: u8,
    /// Last sector of the page (0..=7), inclusive.
    pub last_sect: u8,
    _pad: u16,
}

impl Segment {
    /// Sectors `first..=last` of the page granted as `gref`.
    pub const fn new(gref: u32, first_sect: u8, last_sect: u8) -> Segment {
        Segment {
            gref,
            first_sect,
            last_sect,
            _pad: 0,
        }
    }

    /// As the 8 bytes of an indirect page's entry.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4] = self.first_sect;
        b[5] = self.last_sect;
        b
    }
}

/// A request slot, as the bytes of the C union (112 bytes, 8-aligned).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request([u8; 112]);

impl Request {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// A read or write (`op`) of up to [`MAX_DIRECT_SEGMENTS`] segments.
    pub fn rw(op: u8, handle: u16, id: u64, sector: u64, segs: &[Segment]) -> Request {
        debug_assert!(segs.len() <= MAX_DIRECT_SEGMENTS);
        let mut r = Request([0; 112]);
        r.0[0] = op;
        r.0[1] = segs.len() as u8;
        r.put(2, &handle.to_le_bytes());
        r.put(8, &id.to_le_bytes());
        r.put(16, &sector.to_le_bytes());
        for (i, s) in segs.iter().take(MAX_DIRECT_SEGMENTS).enumerate() {
            r.put(24 + i * 8, &s.to_bytes());
        }
        r
    }

    /// A flush of the backend's cache (or a barrier: `op`); no segments.
    pub fn flush(op: u8, handle: u16, id: u64) -> Request {
        Request::rw(op, handle, id, 0, &[])
    }

    /// An indirect read or write of `nr_segments` segments listed in the
    /// pages granted as `pages`.
    pub fn indirect(
        op: u8,
        handle: u16,
        id: u64,
        sector: u64,
        nr_segments: u16,
        pages: &[u32],
    ) -> Request {
        debug_assert!(pages.len() <= MAX_INDIRECT_PAGES);
        let mut r = Request([0; 112]);
        r.0[0] = OP_INDIRECT;
        r.0[1] = op;
        r.put(2, &nr_segments.to_le_bytes());
        r.put(8, &id.to_le_bytes());
        r.put(16, &sector.to_le_bytes());
        r.put(24, &handle.to_le_bytes());
        for (i, g) in pages.iter().take(MAX_INDIRECT_PAGES).enumerate() {
            r.put(28 + i * 4, &g.to_le_bytes());
        }
        r
    }

    /// The operation byte.
    pub fn operation(&self) -> u8 {
        self.0[0]
    }

    /// Byte 1: `nr_segments` of a direct request, `indirect_op` of an
    /// indirect one.
    pub fn byte1(&self) -> u8 {
        self.0[1]
    }

    /// The segment count of an indirect request (bytes 2..4).
    pub fn indirect_segments(&self) -> u16 {
        u16::from_le_bytes([self.0[2], self.0[3]])
    }

    /// The id (echoed in the response).
    pub fn id(&self) -> u64 {
        u64::from_le_bytes(self.0[8..16].try_into().unwrap_or_default())
    }

    /// The first sector.
    pub fn sector(&self) -> u64 {
        u64::from_le_bytes(self.0[16..24].try_into().unwrap_or_default())
    }

    /// Direct segment `i`.
    pub fn segment(&self, i: usize) -> Segment {
        let at = 24 + i * 8;
        Segment::new(
            u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap_or_default()),
            self.0[at + 4],
            self.0[at + 5],
        )
    }

    /// Indirect page grant `i`.
    pub fn indirect_page(&self, i: usize) -> u32 {
        let at = 28 + i * 4;
        u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap_or_default())
    }
}

/// A response.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    _pad: u8,
    /// A `RSP_*` status.
    pub status: i16,
    _pad2: u32,
}

impl Response {
    /// A response to request `id`.
    pub const fn new(id: u64, operation: u8, status: i16) -> Response {
        Response {
            id,
            operation,
            _pad: 0,
            status,
            _pad2: 0,
        }
    }
}

/// The blkif ring.
#[derive(Debug)]
pub enum Blk {}

impl Kind for Blk {
    type Req = Request;
    type Rsp = Response;
}

/// Requests a one-page ring holds.
pub const RING_SIZE: u32 = <Blk as Kind>::SIZE;

/// Reads segment `i` of an indirect page's bytes.
pub fn indirect_entry(page: &[u8], i: usize) -> Segment {
    let at = i * 8;
    Segment::new(
        u32::from_le_bytes(page[at..at + 4].try_into().unwrap_or_default()),
        page[at + 4],
        page[at + 5],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_blkif_h_on_x86_64() {
        assert_eq!(size_of::<Request>(), 112);
        assert_eq!(size_of::<Response>(), 16);
        assert_eq!(size_of::<Segment>(), 8);
        assert_eq!(RING_SIZE, 32);
        let r = Request::rw(OP_WRITE, 51712, 0x1122, 99, &[Segment::new(5, 0, 7); 3]);
        assert_eq!(r.0[..4], [1, 3, 0x00, 0xca]);
        assert_eq!(r.id(), 0x1122);
        assert_eq!(r.sector(), 99);
        assert_eq!(r.segment(2), Segment::new(5, 0, 7));
        assert_eq!(&r.0[40..48], &[5, 0, 0, 0, 0, 7, 0, 0]);
        let i = Request::indirect(OP_READ, 51712, 7, 1 << 40, 256, &[9, 10]);
        assert_eq!(i.0[..4], [6, 0, 0, 1]);
        assert_eq!(i.indirect_segments(), 256);
        assert_eq!(&i.0[24..26], &51712u16.to_le_bytes());
        assert_eq!((i.indirect_page(0), i.indirect_page(1)), (9, 10));
        assert_eq!(i.sector(), 1 << 40);
        let rsp = Response::new(3, OP_READ, RSP_ERROR);
        // SAFETY: Response is plain old data of 16 bytes.
        let b: [u8; 16] = unsafe { core::mem::transmute(rsp) };
        assert_eq!(&b[8..12], &[0, 0, 0xff, 0xff]);
    }
}
