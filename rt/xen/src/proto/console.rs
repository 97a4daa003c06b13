//! The console page (`struct xencons_interface`, `public/io/console.h`): a
//! byte ring each way. `in` carries keyboard input from the backend
//! (xenconsoled) to the guest, `out` carries output the other way.
use core::mem::offset_of;

use crate::proto::byte_ring::{Layout, Ring, RingPage};

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

// SAFETY: the offsets and sizes are the struct's own (`offset_of!`, the
// arrays' lengths); the u32 fields of a repr(C) struct are 4-byte aligned.
unsafe impl RingPage for XenconsInterface {
    const LAYOUT: Layout = Layout {
        out_buf: offset_of!(XenconsInterface, output),
        out_size: OUT_SIZE,
        in_buf: offset_of!(XenconsInterface, input),
        in_size: IN_SIZE,
        out_prod: offset_of!(XenconsInterface, out_prod),
        out_cons: offset_of!(XenconsInterface, out_cons),
        in_prod: offset_of!(XenconsInterface, in_prod),
        in_cons: offset_of!(XenconsInterface, in_cons),
    };
}

/// The guest side of a console page.
pub type ConsoleRing = Ring<XenconsInterface>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::byte_ring::RingError;
    use core::ptr::NonNull;
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

    #[test]
    fn a_page_reset_by_the_toolstack_is_taken_up_again() {
        let mut p = page();
        // A domain that has run a while: the indices are far from zero.
        p.out_prod = 100_000;
        p.out_cons = 100_000;
        let pp: *mut XenconsInterface = &mut *p;
        let mut r = ring(&mut p);
        assert_eq!(r.write(&[b'x'; 1500]), Ok(1500));
        // SAFETY: the test plays the toolstack of a restored domain, which
        // starts the page from zero.
        unsafe {
            (*pp).out_prod = 0;
            (*pp).out_cons = 0;
        }
        assert!(matches!(r.write(b"a"), Err(RingError::Corrupt { .. })));
        r.resync();
        assert_eq!(r.write(b"after"), Ok(5));
        // SAFETY: reading back what was published.
        assert_eq!(unsafe { (*pp).out_prod }, 5);
        assert_eq!(&p.output[..5], b"after");
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
