//! The PV console ring (`struct xencons_interface`, `public/io/console.h`).
//!
//! One shared page: `in` carries keyboard input from the backend (xenconsoled) to
//! the guest, `out` carries output the other way. Indices are free-running `u32`s;
//! the slot is `idx % size`. We are the producer of `out` and the consumer of `in`.
//!
//! Invariants kept here:
//! - we keep our own copies of the indices we own (`out_prod`, `in_cons`) and only
//!   ever publish those, so a backend scribbling on them cannot move our position;
//! - an index pair the backend reports that claims more bytes than the ring holds
//!   is rejected with [`RingError::Corrupt`] and nothing is read or written.
//!
//! This module is pure memory logic: the caller maps the page and sends the event.
use core::ptr::{NonNull, addr_of_mut};
use core::sync::atomic::{Ordering, fence};

/// Bytes in the input ring.
pub const IN_SIZE: usize = 1024;
/// Bytes in the output ring.
pub const OUT_SIZE: usize = 2048;

/// Layout of the console page.
#[repr(C)]
#[derive(Debug)]
pub struct XenconsInterface {
    /// Backend → guest.
    pub input: [u8; IN_SIZE],
    /// Guest → backend.
    pub output: [u8; OUT_SIZE],
    /// Guest's read position in `input`.
    pub in_cons: u32,
    /// Backend's write position in `input`.
    pub in_prod: u32,
    /// Backend's read position in `output`.
    pub out_cons: u32,
    /// Guest's write position in `output`.
    pub out_prod: u32,
}

const _: () = assert!(core::mem::size_of::<XenconsInterface>() == 3088);

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

/// The layout of a shared page holding one byte ring each way (console,
/// xenstore): where the buffers and the four free-running indices are.
pub trait RingPage {
    /// Bytes of the ring we produce into.
    const OUT: usize;
    /// Bytes of the ring we consume from.
    const IN: usize;
    /// Field projections. They compute addresses only (no reads).
    ///
    /// # Safety
    /// `p` must point to a mapped page of this layout (as for all six).
    unsafe fn out_buf(p: *mut Self) -> *mut u8;
    /// See [`Self::out_buf`].
    ///
    /// # Safety
    /// As for [`Self::out_buf`].
    unsafe fn in_buf(p: *mut Self) -> *mut u8;
    /// Our producer index of the out ring.
    ///
    /// # Safety
    /// As for [`Self::out_buf`].
    unsafe fn out_prod(p: *mut Self) -> *mut u32;
    /// The peer's consumer index of the out ring.
    ///
    /// # Safety
    /// As for [`Self::out_buf`].
    unsafe fn out_cons(p: *mut Self) -> *mut u32;
    /// The peer's producer index of the in ring.
    ///
    /// # Safety
    /// As for [`Self::out_buf`].
    unsafe fn in_prod(p: *mut Self) -> *mut u32;
    /// Our consumer index of the in ring.
    ///
    /// # Safety
    /// As for [`Self::out_buf`].
    unsafe fn in_cons(p: *mut Self) -> *mut u32;
}

impl RingPage for XenconsInterface {
    const OUT: usize = OUT_SIZE;
    const IN: usize = IN_SIZE;
    unsafe fn out_buf(p: *mut Self) -> *mut u8 {
        // SAFETY: address computation within the page the caller mapped.
        unsafe { addr_of_mut!((*p).output).cast() }
    }
    unsafe fn in_buf(p: *mut Self) -> *mut u8 {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*p).input).cast() }
    }
    unsafe fn out_prod(p: *mut Self) -> *mut u32 {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*p).out_prod) }
    }
    unsafe fn out_cons(p: *mut Self) -> *mut u32 {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*p).out_cons) }
    }
    unsafe fn in_prod(p: *mut Self) -> *mut u32 {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*p).in_prod) }
    }
    unsafe fn in_cons(p: *mut Self) -> *mut u32 {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*p).in_cons) }
    }
}

/// The guest side of a two-ring page.
#[derive(Debug)]
pub struct Ring<P: RingPage> {
    intf: NonNull<P>,
    out_prod: u32,
    in_cons: u32,
}

/// The guest side of a console page.
pub type ConsoleRing = Ring<XenconsInterface>;

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
        let p = intf.as_ptr();
        // SAFETY: the caller guarantees the page is mapped.
        let (out_prod, in_cons) = unsafe {
            (
                P::out_prod(p).read_volatile(),
                P::in_cons(p).read_volatile(),
            )
        };
        Self {
            intf,
            out_prod,
            in_cons,
        }
    }

    /// Bytes written but not yet consumed by the peer.
    pub fn unconsumed(&self) -> Result<u32, RingError> {
        // SAFETY: a field of the mapped page (see `new`).
        let cons = unsafe { P::out_cons(self.intf.as_ptr()).read_volatile() };
        let used = self.out_prod.wrapping_sub(cons);
        if used as usize > P::OUT {
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
        let used = self.unconsumed()? as usize;
        fence(Ordering::SeqCst); // read out_cons before overwriting slots it freed
        let n = data.len().min(P::OUT - used);
        let p = self.intf.as_ptr();
        // SAFETY: `p` is the mapped page (see `new`).
        let buf = unsafe { P::out_buf(p) };
        for (i, &b) in data[..n].iter().enumerate() {
            let slot = self.out_prod.wrapping_add(i as u32) as usize % P::OUT;
            // SAFETY: slot < OUT, inside the mapped page's out buffer.
            unsafe { buf.add(slot).write_volatile(b) };
        }
        self.out_prod = self.out_prod.wrapping_add(n as u32);
        fence(Ordering::SeqCst); // data visible before the index (wmb)
        // SAFETY: field of the mapped page.
        unsafe { P::out_prod(p).write_volatile(self.out_prod) };
        Ok(n)
    }

    /// Bytes waiting in the in ring.
    pub fn available(&self) -> Result<u32, RingError> {
        // SAFETY: a field of the mapped page.
        let prod = unsafe { P::in_prod(self.intf.as_ptr()).read_volatile() };
        let avail = prod.wrapping_sub(self.in_cons);
        if avail as usize > P::IN {
            return Err(RingError::Corrupt {
                prod,
                cons: self.in_cons,
            });
        }
        Ok(avail)
    }

    /// Moves up to `buf.len()` bytes of pending input into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let avail = self.available()?;
        fence(Ordering::SeqCst); // read in_prod before the data (rmb)
        let n = buf.len().min(avail as usize);
        let p = self.intf.as_ptr();
        // SAFETY: `p` is the mapped page (see `new`).
        let src = unsafe { P::in_buf(p) };
        for (i, out) in buf[..n].iter_mut().enumerate() {
            let slot = self.in_cons.wrapping_add(i as u32) as usize % P::IN;
            // SAFETY: slot < IN, inside the mapped page's in buffer.
            *out = unsafe { src.add(slot).read_volatile() };
        }
        self.in_cons = self.in_cons.wrapping_add(n as u32);
        fence(Ordering::SeqCst); // finish reading before freeing the slots (mb)
        // SAFETY: field of the mapped page.
        unsafe { P::in_cons(p).write_volatile(self.in_cons) };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::vec::Vec;

    fn page() -> Box<XenconsInterface> {
        Box::new(XenconsInterface {
            input: [0; IN_SIZE],
            output: [0; OUT_SIZE],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        })
    }

    fn ring(p: &mut XenconsInterface) -> ConsoleRing {
        // SAFETY: the boxed page outlives the ring in every test.
        unsafe { ConsoleRing::new(NonNull::from(p)) }
    }

    #[test]
    fn output_wraps_the_u32_indices() {
        let mut p = page();
        p.out_cons = u32::MAX - 2;
        p.out_prod = u32::MAX - 2;
        let mut r = ring(&mut p);
        assert_eq!(r.write(b"hello"), Ok(5));
        assert_eq!(p.out_prod, 2);
        assert_eq!(p.output[OUT_SIZE - 3], b'h');
        assert_eq!(p.output[1], b'o');
    }

    #[test]
    fn full_ring_takes_nothing_until_the_backend_consumes() {
        let mut p = page();
        let pp: *mut XenconsInterface = &mut *p;
        let mut r = ring(&mut p);
        let big = [b'x'; OUT_SIZE + 100];
        assert_eq!(r.write(&big), Ok(OUT_SIZE));
        assert_eq!(r.write(b"y"), Ok(0));
        // SAFETY: the test is the backend here.
        unsafe { (*pp).out_cons += 10 };
        assert_eq!(r.write(&big), Ok(10));
    }

    #[test]
    fn hostile_backend_indices_are_rejected() {
        let mut p = page();
        let pp: *mut XenconsInterface = &mut *p;
        let mut r = ring(&mut p);
        // SAFETY: the test plays a backend that moves out_cons past our producer.
        unsafe { (*pp).out_cons = 5000 };
        assert!(matches!(r.write(b"a"), Err(RingError::Corrupt { .. })));
        // SAFETY: as above; in_prod claims 4 KiB of input in a 1 KiB ring.
        unsafe { (*pp).in_prod = 4096 };
        let mut buf = [0u8; 8];
        assert!(matches!(r.read(&mut buf), Err(RingError::Corrupt { .. })));
        // SAFETY: as above; the backend also scribbles on the index we own.
        unsafe {
            (*pp).out_prod = 77;
            (*pp).out_cons = 0;
        }
        assert_eq!(r.write(b"z"), Ok(1));
        // SAFETY: reading back the index we published.
        assert_eq!(unsafe { (*pp).out_prod }, 1, "our own producer index wins");
    }

    proptest! {
        /// Random interleavings of guest writes/reads and backend consumption/production
        /// deliver every byte exactly once, in order, in both directions.
        #[test]
        fn bytes_arrive_in_order(ops in proptest::collection::vec((0u8..4, 0usize..3000), 1..200),
                                 start in any::<u32>()) {
            let mut p = page();
            p.out_cons = start; p.out_prod = start; p.in_cons = start; p.in_prod = start;
            let pp: *mut XenconsInterface = &mut *p;
            let mut r = ring(&mut p);
            let (mut sent, mut got_out) = (Vec::new(), Vec::new());
            let (mut typed, mut got_in) = (Vec::new(), Vec::new());
            let mut counter = 0u8;
            for (kind, n) in ops {
                // SAFETY: the test plays the backend through `pp`; the guest side
                // only ever accesses the page through `r`, never at the same time.
                unsafe {
                    match kind {
                        0 => { // guest writes n bytes
                            let data: Vec<u8> = (0..n).map(|_| { counter = counter.wrapping_add(1); counter }).collect();
                            let k = r.write(&data).unwrap();
                            sent.extend_from_slice(&data[..k]);
                        }
                        1 => { // backend consumes up to n bytes
                            let avail = (*pp).out_prod.wrapping_sub((*pp).out_cons) as usize;
                            for _ in 0..n.min(avail) {
                                got_out.push((*pp).output[(*pp).out_cons as usize % OUT_SIZE]);
                                (*pp).out_cons = (*pp).out_cons.wrapping_add(1);
                            }
                        }
                        2 => { // backend types up to n bytes
                            let free = IN_SIZE - (*pp).in_prod.wrapping_sub((*pp).in_cons) as usize;
                            for _ in 0..n.min(free) {
                                counter = counter.wrapping_add(1);
                                (*pp).input[(*pp).in_prod as usize % IN_SIZE] = counter;
                                typed.push(counter);
                                (*pp).in_prod = (*pp).in_prod.wrapping_add(1);
                            }
                        }
                        _ => { // guest reads up to n bytes
                            let mut buf = std::vec![0u8; n];
                            let k = r.read(&mut buf).unwrap();
                            got_in.extend_from_slice(&buf[..k]);
                        }
                    }
                }
                prop_assert!(r.unconsumed().unwrap() as usize <= OUT_SIZE);
            }
            prop_assert!(sent.starts_with(&got_out));
            prop_assert_eq!(sent.len() - got_out.len(), r.unconsumed().unwrap() as usize);
            prop_assert!(typed.starts_with(&got_in));
        }
    }
}
