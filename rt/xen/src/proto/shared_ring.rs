//! The shared request/response ring of `public/io/ring.h`, the frontend's
//! side: requests go out, responses come back, in one shared page. Every
//! split driver uses it (netif's TX and RX rings, blkif's ring); a device
//! says what its slots hold through [`Kind`].
//!
//! ```text
//!  0               16                      64
//!  | req_prod req_event rsp_prod rsp_event | padding | slot 0 | slot 1 | ...
//! ```
//! A slot holds a request or, once the backend answered, a response (a
//! union in C: the slot is the larger of the two). The number of slots is
//! the largest power of two that fits the page (`__RING_SIZE`) — or the
//! 2^order pages of a multi-page ring (blkif's `ring-page-order`), which
//! lie one after another in our address space.
//!
//! Invariants kept here:
//! - requests are written into the page before `req_prod` moves (release
//!   fence), and responses are copied out of the page before they are looked
//!   at (`RING_COPY_RESPONSE`): the backend can change the page at any time;
//! - the backend can never make us read more responses than we have
//!   requests outstanding: a `rsp_prod` beyond that is reported
//!   ([`RingError`]) and nothing is consumed;
//! - notifications follow ring.h: after publishing, notify only if the
//!   backend's `req_event` lies in the newly published range; before
//!   sleeping, set `rsp_event` and look once more (no lost wake-up).
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

use crate::abi::PAGE_SIZE;

/// Where the slots start in the page (after the four indices and padding).
pub const ENTRIES_AT: usize = 64;

/// Slots of a one-page ring whose slots are `slot` bytes: the largest power
/// of two that fits (`__RING_SIZE`).
pub const fn ring_size(slot: usize) -> u32 {
    ring_size_in(slot, PAGE_SIZE)
}

/// Slots of a ring of `bytes` whose slots are `slot` bytes.
pub const fn ring_size_in(slot: usize, bytes: usize) -> u32 {
    let fit = ((bytes - ENTRIES_AT) / slot) as u32;
    if fit == 0 {
        0
    } else {
        1 << (31 - fit.leading_zeros())
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Which entries a ring carries.
pub trait Kind {
    /// Requests (ours).
    type Req: Copy;
    /// Responses (the backend's).
    type Rsp: Copy;
    /// Bytes per slot: the larger of the two.
    const SLOT: usize = max(size_of::<Self::Req>(), size_of::<Self::Rsp>());
    /// Slots in the ring.
    const SIZE: u32 = ring_size(Self::SLOT);
}

/// The backend broke the ring protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RingError {
    /// `rsp_prod` claims more responses than there are requests outstanding.
    TooManyResponses {
        /// The backend's `rsp_prod`.
        rsp_prod: u32,
        /// Our next response to consume.
        rsp_cons: u32,
        /// Our requests published so far.
        req_prod: u32,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::TooManyResponses {
                rsp_prod,
                rsp_cons,
                req_prod,
            } => write!(
                f,
                "the backend claims responses up to {rsp_prod} with {rsp_cons}..{req_prod} outstanding"
            ),
        }
    }
}

/// The frontend's view of one shared ring page.
#[derive(Debug)]
pub struct FrontRing<K: Kind> {
    page: NonNull<u8>,
    /// Slots (a power of two): `K::SIZE` for one page, more for a
    /// multi-page ring.
    size: u32,
    /// Requests written (published or not).
    req_prod_pvt: u32,
    /// Responses consumed.
    rsp_cons: u32,
    kind: PhantomData<K>,
}

// SAFETY: the ring owns its view of the page; moving it between contexts
// is fine (the backend's side is only touched through volatile accesses).
unsafe impl<K: Kind> Send for FrontRing<K> {}

impl<K: Kind> FrontRing<K> {
    /// Initialises the shared page (`SHARED_RING_INIT`) and takes it.
    ///
    /// # Safety
    /// `page` must be a page-aligned, writable page that only this ring
    /// and the backend use, for as long as the ring lives.
    pub unsafe fn init(page: NonNull<u8>) -> Self {
        // SAFETY: the caller's promise, for one page.
        unsafe { Self::init_pages(page, 0) }
    }

    /// Initialises a ring of 2^`order` pages that lie one after another
    /// from `page` (`SHARED_RING_INIT`) and takes them.
    ///
    /// # Safety
    /// `page` must start 2^`order` page-aligned, writable, consecutive
    /// pages that only this ring and the backend use, for as long as the
    /// ring lives.
    pub unsafe fn init_pages(page: NonNull<u8>, order: u32) -> Self {
        let bytes = PAGE_SIZE << order;
        // SAFETY: the caller gives us all the pages.
        unsafe {
            core::ptr::write_bytes(page.as_ptr(), 0, bytes);
        }
        let r = FrontRing {
            page,
            size: ring_size_in(K::SLOT, bytes),
            req_prod_pvt: 0,
            rsp_cons: 0,
            kind: PhantomData,
        };
        r.write_index(1, 1); // req_event
        r.write_index(3, 1); // rsp_event
        r
    }

    /// Index `i` of the header: req_prod 0, req_event 1, rsp_prod 2, rsp_event 3.
    fn read_index(&self, i: usize) -> u32 {
        // SAFETY: the header's four u32 are inside the page.
        unsafe { (self.page.as_ptr() as *const u32).add(i).read_volatile() }
    }

    fn write_index(&self, i: usize, v: u32) {
        // SAFETY: as above.
        unsafe { (self.page.as_ptr() as *mut u32).add(i).write_volatile(v) }
    }

    fn slot(&self, idx: u32) -> *mut u8 {
        let n = (idx & (self.size - 1)) as usize;
        // SAFETY: ENTRIES_AT + SLOT * size fits the ring's pages (size is
        // computed from SLOT and their bytes so that it does), `n < size`.
        unsafe { self.page.as_ptr().add(ENTRIES_AT + n * K::SLOT) }
    }

    /// Requests that can still be written.
    pub fn free_requests(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Slots in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The ring index the next request goes to (free-running).
    pub fn next_request_index(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The ring index of the next response to take (free-running).
    pub fn next_response_index(&self) -> u32 {
        self.rsp_cons
    }

    /// Requests written and not answered yet.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes a request into the next slot (not yet visible to the backend:
    /// see [`Self::publish`]). False if the ring is full.
    pub fn push(&mut self, req: K::Req) -> bool {
        if self.free_requests() == 0 {
            return false;
        }
        // SAFETY: the slot is inside the page and, being free, not read by
        // the backend until req_prod covers it.
        unsafe { (self.slot(self.req_prod_pvt) as *mut K::Req).write_unaligned(req) };
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Makes the written requests visible; true if the backend must be
    /// notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn publish(&mut self) -> bool {
        let old = self.read_index(0);
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        fence(Ordering::Release);
        self.write_index(0, new);
        fence(Ordering::SeqCst);
        let event = self.read_index(1);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// The next response, copied out of the page; `None` if there is none.
    pub fn take(&mut self) -> Result<Option<K::Rsp>, RingError> {
        let rp = self.read_index(2);
        let available = rp.wrapping_sub(self.rsp_cons);
        if available > self.outstanding() {
            return Err(RingError::TooManyResponses {
                rsp_prod: rp,
                rsp_cons: self.rsp_cons,
                req_prod: self.req_prod_pvt,
            });
        }
        if available == 0 {
            return Ok(None);
        }
        fence(Ordering::Acquire);
        // SAFETY: the slot is inside the page; the backend wrote it before
        // moving rsp_prod past it; we copy it before looking at it.
        let rsp = unsafe { (self.slot(self.rsp_cons) as *const K::Rsp).read_unaligned() };
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// The next response, looking once more after asking for an event
    /// (so none is missed); `Ok(None)` when the ring is empty.
    pub fn next_response(&mut self) -> Result<Option<K::Rsp>, RingError> {
        loop {
            match self.take()? {
                Some(r) => return Ok(Some(r)),
                None if self.final_check() => continue,
                None => return Ok(None),
            }
        }
    }

    /// Before waiting: asks for an event at the next response and tells
    /// whether one arrived meanwhile (`RING_FINAL_CHECK_FOR_RESPONSES`).
    pub fn final_check(&mut self) -> bool {
        if self.read_index(2) != self.rsp_cons {
            return true;
        }
        self.write_index(3, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.read_index(2) != self.rsp_cons
    }

    /// The page (to grant to the backend).
    pub fn page(&self) -> NonNull<u8> {
        self.page
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;

    #[repr(C, align(4096))]
    struct Page([u8; PAGE_SIZE]);

    /// A request of 12 bytes and a response of 4 (netif's TX shape): 256 slots.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Req {
        gref: u32,
        offset: u16,
        flags: u16,
        id: u16,
        size: u16,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Rsp {
        id: u16,
        status: i16,
    }
    #[derive(Debug)]
    enum Test {}
    impl Kind for Test {
        type Req = Req;
        type Rsp = Rsp;
    }
    const SLOTS: u32 = Test::SIZE;

    #[test]
    fn the_ring_size_is_the_power_of_two_that_fits_the_page() {
        assert_eq!((Test::SLOT, Test::SIZE), (12, 256));
        assert_eq!(ring_size(8), 256, "netif RX: 504 fit");
        assert_eq!(ring_size(112), 32, "blkif: 36 fit");
        assert_eq!(ring_size(4032), 1);
        assert_eq!(ring_size(4033), 0);
    }

    /// A backend acting on the same page, by the ring.h rules (or not).
    struct Back {
        page: Box<Page>,
        req_cons: u32,
        rsp_prod_pvt: u32,
    }

    impl Back {
        fn new() -> Back {
            Back {
                page: Box::new(Page([0; PAGE_SIZE])),
                req_cons: 0,
                rsp_prod_pvt: 0,
            }
        }
        fn ptr(&mut self) -> NonNull<u8> {
            NonNull::new(self.page.0.as_mut_ptr()).unwrap()
        }
        fn idx(&self, i: usize) -> u32 {
            u32::from_ne_bytes(self.page.0[i * 4..i * 4 + 4].try_into().unwrap())
        }
        fn set_idx(&mut self, i: usize, v: u32) {
            self.page.0[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        /// Consumes one request, answering it with `status`.
        fn answer(&mut self, status: i16) -> Option<Req> {
            if self.req_cons == self.idx(0) {
                return None;
            }
            let at = ENTRIES_AT + (self.req_cons % SLOTS) as usize * Test::SLOT;
            // SAFETY: the slot is inside the boxed page.
            let req: Req = unsafe { (self.page.0.as_ptr().add(at) as *const Req).read_unaligned() };
            self.req_cons = self.req_cons.wrapping_add(1);
            let rsp = Rsp { id: req.id, status };
            let at = ENTRIES_AT + (self.rsp_prod_pvt % SLOTS) as usize * Test::SLOT;
            // SAFETY: as above.
            unsafe { (self.page.0.as_mut_ptr().add(at) as *mut Rsp).write_unaligned(rsp) };
            self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
            Some(req)
        }
        /// Publishes responses; true if the frontend asked to be told.
        fn push_responses(&mut self) -> bool {
            let old = self.idx(2);
            let new = self.rsp_prod_pvt;
            self.set_idx(2, new);
            let ev = self.idx(3);
            new.wrapping_sub(ev) < new.wrapping_sub(old)
        }
    }

    fn front(b: &mut Back) -> FrontRing<Test> {
        // SAFETY: the boxed page lives as long as the test's backend, which
        // outlives the ring in every test.
        unsafe { FrontRing::init(b.ptr()) }
    }

    fn req(id: u16) -> Req {
        Req {
            gref: 100 + u32::from(id),
            offset: 0,
            flags: 0,
            id,
            size: 60,
        }
    }

    #[test]
    fn requests_round_trip_and_notifications_follow_the_events() {
        let mut b = Back::new();
        let mut f = front(&mut b);
        assert_eq!((b.idx(1), b.idx(3)), (1, 1), "SHARED_RING_INIT");
        assert!(f.push(req(7)));
        assert!(f.publish(), "req_event 1 is in the new range");
        assert!(!f.publish(), "nothing new");
        assert_eq!(b.answer(0).unwrap().gref, 107);
        // The backend asks for the next request's event.
        b.set_idx(1, 2);
        assert!(b.push_responses(), "rsp_event 1 is in the new range");
        assert_eq!(f.take().unwrap(), Some(Rsp { id: 7, status: 0 }));
        assert_eq!(f.take().unwrap(), None);
        assert!(!f.final_check());
        assert_eq!(b.idx(3), 2, "asks for the next response");
        assert!(f.push(req(8)) && f.push(req(9)));
        assert!(f.publish(), "req_event 2 is in 2..3");
        assert!(f.push(req(10)));
        assert!(!f.publish(), "req_event 2 was passed already");
    }

    #[test]
    fn the_ring_fills_at_256_and_frees_on_responses() {
        let mut b = Back::new();
        let mut f = front(&mut b);
        for i in 0..SLOTS as u16 {
            assert!(f.push(req(i)));
        }
        assert!(!f.push(req(999)), "full");
        f.publish();
        for _ in 0..10 {
            b.answer(0);
        }
        b.push_responses();
        for _ in 0..10 {
            assert!(f.take().unwrap().is_some());
        }
        assert_eq!(f.free_requests(), 10);
    }

    #[test]
    fn a_ring_of_four_pages_has_four_times_the_slots_less_the_header() {
        #[repr(C, align(4096))]
        struct Four([u8; 4 * PAGE_SIZE]);
        let mut pages = Box::new(Four([0xff; 4 * PAGE_SIZE]));
        let p = NonNull::new(pages.0.as_mut_ptr()).unwrap();
        // SAFETY: the four boxed pages outlive the ring.
        let mut f: FrontRing<Test> = unsafe { FrontRing::init_pages(p, 2) };
        assert_eq!(f.size(), 1024, "(16384 - 64) / 12 = 1360: 1024 fit");
        assert_eq!(ring_size_in(112, 4 * PAGE_SIZE), 128, "blkif: 145 fit");
        assert!(
            pages.0[64..].iter().all(|&b| b == 0),
            "all four pages zeroed"
        );
        for i in 0..1024 {
            assert!(f.push(req(i)));
        }
        assert!(!f.push(req(0)));
        // Slot 1023 is in the fourth page.
        let last = ENTRIES_AT + 1023 * Test::SLOT;
        assert!(last >= 3 * PAGE_SIZE);
        assert_eq!(
            u32::from_ne_bytes(pages.0[last..last + 4].try_into().unwrap()),
            100 + 1023
        );
    }

    #[test]
    fn a_backend_claiming_more_responses_than_requests_is_refused() {
        let mut b = Back::new();
        let mut f = front(&mut b);
        f.push(req(1));
        f.publish();
        b.set_idx(2, 300);
        let e = f.take().unwrap_err();
        assert_eq!(
            e,
            RingError::TooManyResponses {
                rsp_prod: 300,
                rsp_cons: 0,
                req_prod: 1
            }
        );
        // Nothing consumed; a sane index later works.
        b.answer(0);
        b.push_responses();
        assert_eq!(f.take().unwrap().map(|r| r.id), Some(1));
    }

    proptest! {
        /// Random pushes, backend answers and takes, with free-running
        /// indices starting anywhere near the wrap: every request gets
        /// exactly its response back, in order, and the ring never claims
        /// more room than it has.
        #[test]
        fn indices_wrap_and_nothing_is_lost(ops in proptest::collection::vec(0u8..3, 1..600), start in proptest::num::u32::ANY) {
            let mut b = Back::new();
            let mut f = front(&mut b);
            // Start the indices anywhere (they are free-running).
            f.req_prod_pvt = start;
            f.rsp_cons = start;
            b.set_idx(0, start);
            b.set_idx(2, start);
            b.req_cons = start;
            b.rsp_prod_pvt = start;
            let (mut next, mut expect) = (0u16, 0u16);
            for op in ops {
                match op {
                    0 => {
                        if f.push(req(next)) { next = next.wrapping_add(1); }
                        f.publish();
                    }
                    1 => { b.answer(0); b.push_responses(); }
                    _ => {
                        while let Some(r) = f.take().unwrap() {
                            prop_assert_eq!(r.id, expect);
                            expect = expect.wrapping_add(1);
                        }
                    }
                }
                prop_assert!(f.outstanding() <= SLOTS);
            }
        }
    }
}
