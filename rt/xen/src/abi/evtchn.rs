//! Event channels, 2-level ABI: the `EVTCHNOP_*` operations, the scan of the
//! pending bitmaps, and a table of handlers by port.
//!
//! The 2-level ABI (`public/event_channel.h`, `xen/common/event_2l.c`): 4096
//! ports on 64-bit, a pending and a mask bitmap of 64 words each in
//! shared_info, and a per-vCPU selector word whose bit `w` says "word `w` of
//! the pending bitmap may have news". Xen sets pending, then (if the port is
//! not masked) the selector bit and `evtchn_upcall_pending`. The guest takes
//! the selector with an atomic exchange, then clears each pending bit it
//! handles before calling the handler, so an event that arrives during the
//! handler is seen again.
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::DOMID_SELF;
use crate::abi::errno::XenError;
use crate::abi::hypercall::Hypervisor;

/// Ports of the 2-level ABI on 64-bit.
pub const NR_PORTS: u32 = 4096;

/// `EVTCHNOP_*` (`public/event_channel.h`).
mod op {
    pub const BIND_INTERDOMAIN: u64 = xen_sys::EVTCHNOP_bind_interdomain as u64;
    pub const BIND_VIRQ: u64 = xen_sys::EVTCHNOP_bind_virq as u64;
    pub const CLOSE: u64 = xen_sys::EVTCHNOP_close as u64;
    pub const ALLOC_UNBOUND: u64 = xen_sys::EVTCHNOP_alloc_unbound as u64;
    pub const UNMASK: u64 = xen_sys::EVTCHNOP_unmask as u64;
}

/// `VIRQ_TIMER`: the vCPU's timer (one-shot and periodic).
pub const VIRQ_TIMER: u32 = xen_sys::VIRQ_TIMER;

/// A local event-channel port.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Port(pub u32);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

fn event_op<H: Hypervisor + ?Sized, T>(h: &H, cmd: u64, arg: &mut T) -> Result<(), XenError> {
    // SAFETY: `arg` is the struct `cmd` takes (the callers pair them), live
    // and exclusively borrowed for the call; Xen reads it and writes the
    // output fields.
    XenError::check(unsafe {
        h.hypercall(
            crate::abi::op::EVENT_CHANNEL_OP,
            &[cmd, core::ptr::from_mut(arg) as u64],
        )
    })
    .map(drop)
}

/// A port Xen returned, checked against the ABI's range.
fn checked(port: u32) -> Result<Port, XenError> {
    if port < NR_PORTS {
        Ok(Port(port))
    } else {
        Err(XenError::EINVAL)
    }
}

/// `EVTCHNOP_bind_virq`: a port for virtual IRQ `virq` on vCPU `vcpu`.
pub fn bind_virq<H: Hypervisor + ?Sized>(h: &H, virq: u32, vcpu: u32) -> Result<Port, XenError> {
    let mut a = xen_sys::evtchn_bind_virq {
        virq,
        vcpu,
        port: 0,
    };
    event_op(h, op::BIND_VIRQ, &mut a)?;
    checked(a.port)
}

/// `EVTCHNOP_alloc_unbound`: a port that domain `remote` may bind to.
pub fn alloc_unbound<H: Hypervisor + ?Sized>(h: &H, remote: u16) -> Result<Port, XenError> {
    let mut a = xen_sys::evtchn_alloc_unbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    event_op(h, op::ALLOC_UNBOUND, &mut a)?;
    checked(a.port)
}

/// `EVTCHNOP_bind_interdomain`: a local port connected to `remote_port` of
/// domain `remote`.
pub fn bind_interdomain<H: Hypervisor + ?Sized>(
    h: &H,
    remote: u16,
    remote_port: u32,
) -> Result<Port, XenError> {
    let mut a = xen_sys::evtchn_bind_interdomain {
        remote_dom: remote,
        remote_port,
        local_port: 0,
    };
    event_op(h, op::BIND_INTERDOMAIN, &mut a)?;
    checked(a.local_port)
}

/// `EVTCHNOP_close`.
pub fn close<H: Hypervisor + ?Sized>(h: &H, port: Port) -> Result<(), XenError> {
    let mut a = xen_sys::evtchn_close { port: port.0 };
    event_op(h, op::CLOSE, &mut a)
}

/// `EVTCHNOP_unmask`: clears the mask bit and, if the port is pending, has
/// Xen raise the upcall again (clearing the bit by hand would lose that).
pub fn unmask<H: Hypervisor + ?Sized>(h: &H, port: Port) -> Result<(), XenError> {
    let mut a = xen_sys::evtchn_unmask { port: port.0 };
    event_op(h, op::UNMASK, &mut a)
}

/// The event bitmaps as the scan needs them (on the guest: atomics on
/// shared_info and vcpu_info; in tests: a fake).
pub trait EventBits {
    /// Takes the vCPU's selector word (atomic exchange with 0).
    fn take_selector(&self) -> u64;
    /// Word `w` (0..64) of the pending bitmap.
    fn pending(&self, w: usize) -> u64;
    /// Word `w` of the mask bitmap.
    fn masked(&self, w: usize) -> u64;
    /// Atomically clears `bits` in pending word `w`.
    fn clear_pending(&self, w: usize, bits: u64);
}

/// Delivers every pending, unmasked port the selector points at: its pending
/// bit is cleared, then `f(port)` runs. Within a word, ports go in order and
/// the word is re-read after each, so an event raised by a handler is not
/// lost. Returns the number delivered. Masked ports stay pending.
pub fn scan(bits: &impl EventBits, mut f: impl FnMut(Port)) -> u32 {
    let mut n = 0;
    let mut sel = bits.take_selector();
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        // A word can only be emptied by us; bound the work per word anyway,
        // so a peer that keeps a port pending cannot hold us here forever.
        for _ in 0..64 {
            let ready = bits.pending(w) & !bits.masked(w);
            if ready == 0 {
                break;
            }
            let b = ready.trailing_zeros();
            bits.clear_pending(w, 1 << b);
            n += 1;
            f(Port(w as u32 * 64 + b));
        }
    }
    n
}

/// Takes one port's pending bit (the polling path): true if it was pending.
pub fn take_pending(bits: &impl EventBits, port: Port) -> bool {
    let (w, b) = ((port.0 / 64) as usize, port.0 % 64);
    if w >= 64 || bits.pending(w) & (1 << b) == 0 {
        return false;
    }
    bits.clear_pending(w, 1 << b);
    true
}

/// Events taken from Xen's bitmaps but not yet looked at by their owner: a
/// scan (the upcall) clears a port's pending bit in shared_info and, if no
/// handler runs for it, sets its bit here, so the owner waiting on the port
/// still sees it. Atomic bits: the upcall may set while code takes.
#[derive(Debug)]
pub struct Latch {
    words: [AtomicU64; (NR_PORTS / 64) as usize],
}

impl Default for Latch {
    fn default() -> Self {
        Self::new()
    }
}

impl Latch {
    /// No port latched.
    pub const fn new() -> Self {
        Latch {
            words: [const { AtomicU64::new(0) }; (NR_PORTS / 64) as usize],
        }
    }

    fn at(port: Port) -> Option<(usize, u64)> {
        (port.0 < NR_PORTS).then(|| ((port.0 / 64) as usize, 1u64 << (port.0 % 64)))
    }

    /// Forgets every latched event (the ports are gone: a restore).
    pub fn clear(&self) {
        for w in &self.words {
            w.store(0, Ordering::Release);
        }
    }

    /// Records an event on `port` (ports beyond the ABI are ignored).
    pub fn set(&self, port: Port) {
        if let Some((w, b)) = Self::at(port) {
            self.words[w].fetch_or(b, Ordering::AcqRel);
        }
    }

    /// Takes `port`'s latched event: true if there was one.
    pub fn take(&self, port: Port) -> bool {
        Self::at(port).is_some_and(|(w, b)| self.words[w].fetch_and(!b, Ordering::AcqRel) & b != 0)
    }

    /// Whether any of `ports` is latched (without taking it).
    pub fn any(&self, ports: &[Port]) -> bool {
        ports.iter().any(|&p| {
            Self::at(p).is_some_and(|(w, b)| self.words[w].load(Ordering::Acquire) & b != 0)
        })
    }

    /// Latched ports, lowest first.
    pub fn ports(&self) -> impl Iterator<Item = Port> + '_ {
        self.words.iter().enumerate().flat_map(|(w, a)| {
            let bits = a.load(Ordering::Acquire);
            (0..64u32)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| Port(w as u32 * 64 + b))
        })
    }
}

/// One delivery pass (the upcall, or [`scan`] from the polling path): every
/// pending, unmasked port runs its handler or, without one, is latched for
/// its owner. Returns the number of events taken from Xen's bitmaps.
pub fn deliver<const N: usize>(
    bits: &impl EventBits,
    table: &mut Handlers<N>,
    latch: &Latch,
) -> u32 {
    scan(bits, |p| {
        if !table.dispatch(p) {
            latch.set(p);
        }
    })
}

/// Why a handler could not be registered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HandlerError {
    /// The port is beyond the ABI's range.
    BadPort(Port),
    /// A handler is registered for it already.
    Taken(Port),
    /// The table is full.
    Full,
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::BadPort(p) => write!(f, "{p} is beyond the {NR_PORTS} ports"),
            HandlerError::Taken(p) => write!(f, "{p} has a handler already"),
            HandlerError::Full => f.write_str("the event handler table is full"),
        }
    }
}

/// An event handler: called with its port (in event context: keep it short).
pub type Handler = fn(Port);

/// Handlers by port: a small fixed table (a unikernel binds few ports), no
/// allocation, so it can be used from event context.
#[derive(Debug)]
pub struct Handlers<const N: usize> {
    slots: [Option<(Port, Handler)>; N],
    /// Events for ports without a handler.
    pub unhandled: u64,
    /// Events delivered to handlers.
    pub delivered: u64,
}

impl<const N: usize> Default for Handlers<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Handlers<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Handlers {
            slots: [None; N],
            unhandled: 0,
            delivered: 0,
        }
    }

    /// Registers `h` for `port`.
    pub fn register(&mut self, port: Port, h: Handler) -> Result<(), HandlerError> {
        if port.0 >= NR_PORTS {
            return Err(HandlerError::BadPort(port));
        }
        if self.get(port).is_some() {
            return Err(HandlerError::Taken(port));
        }
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(HandlerError::Full)?;
        *slot = Some((port, h));
        Ok(())
    }

    /// Removes the handler of `port`; true if there was one.
    pub fn unregister(&mut self, port: Port) -> bool {
        match self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|(p, _)| p == port))
        {
            Some(s) => {
                *s = None;
                true
            }
            None => false,
        }
    }

    /// The handler of `port`.
    pub fn get(&self, port: Port) -> Option<Handler> {
        self.slots
            .iter()
            .flatten()
            .find(|(p, _)| *p == port)
            .map(|&(_, h)| h)
    }

    /// Calls the handler of `port`, or counts the event as unhandled.
    /// Runs `port`'s handler; false (and counted) if it has none.
    pub fn dispatch(&mut self, port: Port) -> bool {
        match self.get(port) {
            Some(h) => {
                self.delivered += 1;
                h(port);
                true
            }
            None => {
                self.unhandled += 1;
                false
            }
        }
    }

    /// Forgets every handler (the ports are gone: a restore); the counters
    /// stay.
    pub fn clear(&mut self) {
        self.slots = [None; N];
    }

    /// Registered ports, in table order.
    pub fn ports(&self) -> impl Iterator<Item = Port> + '_ {
        self.slots.iter().flatten().map(|&(p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::{Cell, RefCell};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Bitmaps in plain cells; `raise` does what Xen does for one port.
    struct Fake {
        sel: Cell<u64>,
        pending: RefCell<[u64; 64]>,
        mask: RefCell<[u64; 64]>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                sel: Cell::new(0),
                pending: RefCell::new([0; 64]),
                mask: RefCell::new([0; 64]),
            }
        }
        fn raise(&self, p: u32) {
            let (w, b) = ((p / 64) as usize, p % 64);
            self.pending.borrow_mut()[w] |= 1 << b;
            if self.mask.borrow()[w] & (1 << b) == 0 {
                self.sel.set(self.sel.get() | 1 << w);
            }
        }
        fn mask(&self, p: u32) {
            self.mask.borrow_mut()[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    impl EventBits for Fake {
        fn take_selector(&self) -> u64 {
            self.sel.replace(0)
        }
        fn pending(&self, w: usize) -> u64 {
            self.pending.borrow()[w]
        }
        fn masked(&self, w: usize) -> u64 {
            self.mask.borrow()[w]
        }
        fn clear_pending(&self, w: usize, bits: u64) {
            self.pending.borrow_mut()[w] &= !bits;
        }
    }

    #[test]
    fn pending_unmasked_ports_are_delivered_once_in_order() {
        let f = Fake::new();
        for p in [4095, 3, 64, 65, 1] {
            f.raise(p);
        }
        f.mask(7);
        f.raise(7);
        let mut got = Vec::new();
        assert_eq!(scan(&f, |p| got.push(p.0)), 5);
        assert_eq!(got, [1, 3, 64, 65, 4095]);
        assert_eq!(scan(&f, |_| panic!("nothing new")), 0);
        assert!(take_pending(&f, Port(7)), "masked ports stay pending");
        assert!(!take_pending(&f, Port(7)));
        assert!(!take_pending(&f, Port(NR_PORTS + 5)), "out of range");
    }

    #[test]
    fn an_event_raised_by_a_handler_is_not_lost() {
        let f = Fake::new();
        f.raise(10);
        let mut got = Vec::new();
        scan(&f, |p| {
            got.push(p.0);
            if p.0 == 10 {
                f.raise(12); // same word: seen in this scan
                f.raise(200); // other word: the selector brings it next time
            }
        });
        assert_eq!(got, [10, 12]);
        scan(&f, |p| got.push(p.0));
        assert_eq!(got, [10, 12, 200]);
    }

    #[test]
    fn a_port_that_stays_pending_cannot_hold_the_scan() {
        // A hostile peer: the pending bit never clears.
        struct Stuck;
        impl EventBits for Stuck {
            fn take_selector(&self) -> u64 {
                1
            }
            fn pending(&self, _: usize) -> u64 {
                1
            }
            fn masked(&self, _: usize) -> u64 {
                0
            }
            fn clear_pending(&self, _: usize, _: u64) {}
        }
        assert_eq!(scan(&Stuck, |_| {}), 64);
    }

    static HITS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    fn count(_: Port) {
        HITS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    static LATCH_HITS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    fn latch_count(_: Port) {
        LATCH_HITS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn delivery_runs_handlers_and_latches_the_rest_for_their_owners() {
        let f = Fake::new();
        let mut t: Handlers<4> = Handlers::new();
        t.register(Port(3), latch_count).unwrap();
        let latch = Latch::new();
        for p in [3, 70, 4095] {
            f.raise(p);
        }
        f.mask(9);
        f.raise(9);
        assert_eq!(deliver(&f, &mut t, &latch), 3);
        assert_eq!(LATCH_HITS.load(core::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(latch.ports().collect::<Vec<_>>(), [Port(70), Port(4095)]);
        assert!(latch.any(&[Port(1), Port(70)]));
        assert!(
            !latch.any(&[Port(3), Port(9)]),
            "handled and masked ports are not latched"
        );
        assert!(latch.take(Port(70)));
        assert!(!latch.take(Port(70)), "taken once");
        assert!(!latch.take(Port(NR_PORTS)), "out of range");
        latch.set(Port(NR_PORTS + 1));
        assert_eq!(latch.ports().collect::<Vec<_>>(), [Port(4095)]);
        // Xen's bits are clear for every delivered port; the masked one waits.
        assert!(!take_pending(&f, Port(70)));
        assert!(take_pending(&f, Port(9)));
    }

    proptest! {
        /// Whatever is raised, between Xen's bitmap and the latch an
        /// unmasked event without a handler is never lost, and never seen twice.
        #[test]
        fn no_event_is_lost_between_bitmap_and_latch(
            raised in proptest::collection::vec(0u32..NR_PORTS, 0..64),
            rounds in 1usize..4,
        ) {
            let f = Fake::new();
            let mut t: Handlers<1> = Handlers::new();
            let latch = Latch::new();
            let mut want: std::collections::BTreeSet<u32> = Default::default();
            for (i, chunk) in raised.chunks(raised.len().div_ceil(rounds).max(1)).enumerate() {
                for &p in chunk {
                    f.raise(p);
                    want.insert(p);
                }
                if i % 2 == 0 {
                    deliver(&f, &mut t, &latch);
                }
            }
            deliver(&f, &mut t, &latch);
            let got: std::collections::BTreeSet<u32> = latch.ports().map(|p| p.0).collect();
            prop_assert_eq!(&got, &want);
            for p in want {
                prop_assert!(latch.take(Port(p)));
                prop_assert!(!latch.take(Port(p)));
            }
        }
    }

    #[test]
    fn handlers_register_dispatch_and_refuse() {
        let mut t: Handlers<2> = Handlers::new();
        t.register(Port(5), count).unwrap();
        assert_eq!(
            t.register(Port(5), count),
            Err(HandlerError::Taken(Port(5)))
        );
        assert_eq!(
            t.register(Port(NR_PORTS), count),
            Err(HandlerError::BadPort(Port(NR_PORTS)))
        );
        t.register(Port(6), count).unwrap();
        assert_eq!(t.register(Port(7), count), Err(HandlerError::Full));
        let before = HITS.load(core::sync::atomic::Ordering::Relaxed);
        assert!(t.dispatch(Port(5)));
        assert!(!t.dispatch(Port(9)));
        assert_eq!(HITS.load(core::sync::atomic::Ordering::Relaxed), before + 1);
        assert_eq!((t.delivered, t.unhandled), (1, 1));
        assert!(t.unregister(Port(5)));
        assert!(!t.unregister(Port(5)));
        t.register(Port(7), count).unwrap();
        assert_eq!(t.ports().collect::<Vec<_>>(), [Port(7), Port(6)]);
    }

    #[test]
    fn operations_pass_their_struct_and_check_the_port() {
        use crate::abi::hypercall::fake::Fake as Hv;
        let h = Hv {
            capture: Some((1, 12)),
            ..Default::default()
        };
        assert_eq!(bind_virq(&h, VIRQ_TIMER, 0), Ok(Port(0)));
        {
            let c = &h.calls.borrow()[0];
            assert_eq!(c.op, crate::abi::op::EVENT_CHANNEL_OP);
            assert_eq!(c.args[0], op::BIND_VIRQ);
            assert_eq!(c.pointee[..8], [0, 0, 0, 0, 0, 0, 0, 0], "virq 0 on vcpu 0");
        }
        // A 4-byte struct: not captured.
        let h = Hv::default();
        h.replies.borrow_mut().push_back(-22);
        assert_eq!(close(&h, Port(3)), Err(XenError::EINVAL));
    }

    proptest! {
        /// Whatever Xen raises and masks, a scan delivers exactly the raised,
        /// unmasked ports, each once, and leaves the masked ones pending.
        #[test]
        fn scan_delivers_exactly_the_unmasked(
            raised in prop::collection::btree_set(0u32..NR_PORTS, 0..200),
            masked in prop::collection::btree_set(0u32..NR_PORTS, 0..200),
        ) {
            let f = Fake::new();
            for &p in &masked {
                f.mask(p);
            }
            for &p in &raised {
                f.raise(p);
            }
            let mut got = Vec::new();
            scan(&f, |p| got.push(p.0));
            let want: Vec<u32> = raised.difference(&masked).copied().collect();
            prop_assert_eq!(&got, &want);
            for &p in raised.intersection(&masked) {
                prop_assert!(take_pending(&f, Port(p)));
            }
        }
    }
}
