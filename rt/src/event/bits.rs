//! shared_info's event bitmaps as `rt_xen`'s scan needs them, vCPU 0's
//! selector, and the latch: events taken from the bitmaps (by an upcall's
//! scan) for ports without a handler, kept until their owner looks.
//!
//! Invariant: an event is in at most one of the two places — pending in
//! Xen's bitmap, or latched — and [`take`] empties both, so a stale bit can
//! never wake the next wait.
use core::sync::atomic::{AtomicU64, Ordering};

use rt_xen::abi::evtchn::{self, EventBits, Latch, Port};

/// Events taken from Xen's bitmaps for ports without a handler.
pub(super) static LATCH: Latch = Latch::new();

/// The bitmaps in the mapped shared_info page and vCPU 0's selector.
pub(super) struct Shared;

impl Shared {
    /// Word `w` of the mask (`mask`) or the pending bitmap, once
    /// shared_info is mapped.
    pub(super) fn word(&self, mask: bool, w: usize) -> Option<&'static AtomicU64> {
        let s = crate::xen::shared_info()?;
        if w >= 64 {
            return None;
        }
        // SAFETY: the word is inside the mapped shared_info page, which lives
        // for the rest of the run; Xen and we only update it atomically.
        unsafe {
            let p = if mask {
                core::ptr::addr_of!((*s).evtchn_mask[w])
            } else {
                core::ptr::addr_of!((*s).evtchn_pending[w])
            };
            Some(&*(p as *const AtomicU64))
        }
    }
}

impl EventBits for Shared {
    fn take_selector(&self) -> u64 {
        let Some(v) = crate::xen::vcpu0() else {
            return 0;
        };
        // SAFETY: vcpu_info[0] is inside the mapped shared_info page; the
        // selector is only changed atomically (Xen sets bits, we take them).
        let sel = unsafe { &*(core::ptr::addr_of!((*v).evtchn_pending_sel) as *const AtomicU64) };
        // SAFETY: as above; the flag is a byte Xen sets and we clear.
        unsafe { core::ptr::addr_of_mut!((*v).evtchn_upcall_pending).write_volatile(0) };
        sel.swap(0, Ordering::AcqRel)
    }
    fn pending(&self, w: usize) -> u64 {
        self.word(false, w).map_or(0, |a| a.load(Ordering::Acquire))
    }
    fn masked(&self, w: usize) -> u64 {
        self.word(true, w).map_or(!0, |a| a.load(Ordering::Acquire))
    }
    fn clear_pending(&self, w: usize, bits: u64) {
        if let Some(a) = self.word(false, w) {
            a.fetch_and(!bits, Ordering::AcqRel);
        }
    }
}

/// Takes `port`'s event from the latch and from Xen's bitmap (both, so a
/// stale bit cannot wake the next wait): true if there was one.
pub(super) fn take(port: Port) -> bool {
    let latched = LATCH.take(port);
    evtchn::take_pending(&Shared, port) | latched
}

/// Moves the Xen-pending events of `ports` into the latch; true if any.
pub(super) fn take_into_latch(ports: &[Port]) -> bool {
    let mut any = false;
    for &p in ports {
        if evtchn::take_pending(&Shared, p) {
            LATCH.set(p);
            any = true;
        }
    }
    any
}

/// Makes sure the next event wakes the vCPU. Xen raises the upcall only
/// when it sets a word's selector bit afresh; the polling path
/// ([`take`], the waits) takes pending bits but leaves the selector to the
/// upcall, so a selector bit can be left set with nothing pending under it —
/// and then the next event in that word would not wake a blocked vCPU. If
/// any selector bit is set, `evtchn_upcall_pending` is set too: the block
/// ends at once in an upcall whose scan takes the selector.
pub(super) fn rearm() {
    let Some(v) = crate::xen::vcpu0() else {
        return;
    };
    // SAFETY: vcpu_info[0] is inside the mapped shared_info page; the
    // selector is only changed atomically, the flag is a byte we may set.
    unsafe {
        let sel = &*(core::ptr::addr_of!((*v).evtchn_pending_sel) as *const AtomicU64);
        if sel.load(Ordering::Acquire) != 0 {
            core::ptr::addr_of_mut!((*v).evtchn_upcall_pending).write_volatile(1);
        }
    }
}
