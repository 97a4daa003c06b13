//! The byte ring: one shared page holding a ring of bytes each way, as the
//! console (`public/io/console.h`) and xenstore (`public/io/xs_wire.h`) use
//! it. Indices are free-running `u32`s; the slot is `idx % size`. We are the
//! producer of one ring (`out`) and the consumer of the other (`in`).
//!
//! Invariants kept here:
//! - we keep our own copies of the indices we own (`out_prod`, `in_cons`) and only
//!   ever publish those, so a backend scribbling on them cannot move our position;
//! - an index pair the backend reports that claims more bytes than the ring holds
//!   is rejected with [`RingError::Corrupt`] and nothing is read or written.
//!
//! This module is pure memory logic: the caller maps the page and sends the event.
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

/// The backend published indices that cannot be true.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RingError {
    /// `prod - cons` exceeds the ring size.
    Corrupt {
        /// Producer index as seen.
        prod: u32,
        /// Consumer index as seen.
        cons: u32,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::Corrupt { prod, cons } => write!(
                f,
                "indices corrupt (prod {prod}, cons {cons}: more than the ring holds)"
            ),
        }
    }
}

/// Where the two rings and the four indices lie in a page, in bytes from
/// its start (computed with `offset_of!` by each page type).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The ring we produce into, and its size.
    pub out_buf: usize,
    /// Bytes of the out ring.
    pub out_size: usize,
    /// The ring we consume from.
    pub in_buf: usize,
    /// Bytes of the in ring.
    pub in_size: usize,
    /// Our producer index of the out ring.
    pub out_prod: usize,
    /// The peer's consumer index of the out ring.
    pub out_cons: usize,
    /// The peer's producer index of the in ring.
    pub in_prod: usize,
    /// Our consumer index of the in ring.
    pub in_cons: usize,
}

/// A shared page holding one byte ring each way.
///
/// # Safety
/// [`Self::LAYOUT`] must describe `Self`: both buffers (of their sizes) and
/// the four `u32` indices lie inside `Self`, the indices 4-byte aligned.
pub unsafe trait RingPage {
    /// Where everything is.
    const LAYOUT: Layout;
}

/// The guest side of a two-ring page.
#[derive(Debug)]
pub struct Ring<P: RingPage> {
    intf: NonNull<P>,
    out_prod: u32,
    in_cons: u32,
}

// SAFETY: the ring is plain shared memory; whoever owns a Ring is its only
// guest-side user (the runtime keeps it behind a lock).
unsafe impl<P: RingPage> Send for Ring<P> {}

impl<P: RingPage> Ring<P> {
    /// Takes over the page at `intf`, continuing from its current indices.
    ///
    /// # Safety
    /// `intf` must point to a mapped page of layout `P` that stays mapped for
    /// the lifetime of the returned value, shared only with the peer.
    pub unsafe fn new(intf: NonNull<P>) -> Self {
        let mut r = Self {
            intf,
            out_prod: 0,
            in_cons: 0,
        };
        r.out_prod = r.index(P::LAYOUT.out_prod);
        r.in_cons = r.index(P::LAYOUT.in_cons);
        r
    }

    /// Takes up the page's indices again, as [`Self::new`] does: after the
    /// domain was restored, the toolstack may have reset the page (a new
    /// xenstored or xenconsoled starts it from zero), and our own copies
    /// would then claim bytes that are not there.
    pub fn resync(&mut self) {
        self.out_prod = self.index(P::LAYOUT.out_prod);
        self.in_cons = self.index(P::LAYOUT.in_cons);
    }

    /// The byte at `offset` of the page.
    fn at(&self, offset: usize) -> *mut u8 {
        // SAFETY: every offset passed is inside `P` (the RingPage contract),
        // and `intf` points to a mapped `P` (see `new`).
        unsafe { self.intf.as_ptr().cast::<u8>().add(offset) }
    }

    fn index(&self, offset: usize) -> u32 {
        // SAFETY: an index field of the mapped page, 4-byte aligned.
        unsafe { self.at(offset).cast::<u32>().read_volatile() }
    }

    fn set_index(&self, offset: usize, v: u32) {
        // SAFETY: as for `index`.
        unsafe { self.at(offset).cast::<u32>().write_volatile(v) }
    }

    /// Bytes written but not yet consumed by the peer.
    pub fn unconsumed(&self) -> Result<u32, RingError> {
        let cons = self.index(P::LAYOUT.out_cons);
        let used = self.out_prod.wrapping_sub(cons);
        if used as usize > P::LAYOUT.out_size {
            return Err(RingError::Corrupt {
                prod: self.out_prod,
                cons,
            });
        }
        Ok(used)
    }

    /// Copies as much of `data` as fits into the out ring and publishes it.
    /// Returns the number of bytes taken (0 when the ring is full).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, RingError> {
        let l = P::LAYOUT;
        let used = self.unconsumed()? as usize;
        fence(Ordering::SeqCst); // read out_cons before overwriting slots it freed
        let n = data.len().min(l.out_size - used);
        for (i, &b) in data[..n].iter().enumerate() {
            let slot = self.out_prod.wrapping_add(i as u32) as usize % l.out_size;
            // SAFETY: slot < out_size, inside the mapped page's out buffer.
            unsafe { self.at(l.out_buf + slot).write_volatile(b) };
        }
        self.out_prod = self.out_prod.wrapping_add(n as u32);
        fence(Ordering::SeqCst); // data visible before the index (wmb)
        self.set_index(l.out_prod, self.out_prod);
        Ok(n)
    }

    /// Bytes waiting in the in ring.
    pub fn available(&self) -> Result<u32, RingError> {
        let prod = self.index(P::LAYOUT.in_prod);
        let avail = prod.wrapping_sub(self.in_cons);
        if avail as usize > P::LAYOUT.in_size {
            return Err(RingError::Corrupt {
                prod,
                cons: self.in_cons,
            });
        }
        Ok(avail)
    }

    /// Moves up to `buf.len()` bytes of pending input into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let l = P::LAYOUT;
        let avail = self.available()?;
        fence(Ordering::SeqCst); // read in_prod before the data (rmb)
        let n = buf.len().min(avail as usize);
        for (i, out) in buf[..n].iter_mut().enumerate() {
            let slot = self.in_cons.wrapping_add(i as u32) as usize % l.in_size;
            // SAFETY: slot < in_size, inside the mapped page's in buffer.
            *out = unsafe { self.at(l.in_buf + slot).read_volatile() };
        }
        self.in_cons = self.in_cons.wrapping_add(n as u32);
        fence(Ordering::SeqCst); // finish reading before freeing the slots (mb)
        self.set_index(l.in_cons, self.in_cons);
        Ok(n)
    }
}
