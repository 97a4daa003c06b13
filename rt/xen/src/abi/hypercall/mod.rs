//! Hypercalls: the raw asm layer, the [`Hypervisor`] seam, and typed wrappers.
//!
//! Calling convention (64-bit PV and PVH alike): number in `eax` — here chosen
//! by jumping to `hypercall_page + 32 * nr` — arguments in `rdi, rsi, rdx, r10,
//! r8`, result in `rax`, negative values are `-errno`. The hypercall page's stubs
//! preserve every register but `rax` (PV's `syscall` clobbers `rcx`/`r11`, and
//! the stub saves them); debug builds of Xen poison the argument registers a
//! call used, so the stubs below declare those clobbered. (`xen-sys`'s own asm
//! passes the 5th argument in `r9` and runs under `nostack`; we do not use it.)
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::abi::errno::XenError;

mod calls;
#[cfg(test)]
pub(crate) mod fake;
pub mod raw;

pub use calls::*;

/// Something that can perform hypercalls: the real hypercall page, or a fake.
pub trait Hypervisor {
    /// Issues hypercall `op` with up to five arguments and returns `rax`.
    ///
    /// # Safety
    /// Every argument that is a pointer must be valid for whatever hypercall
    /// `op` reads or writes through it, for the duration of the call; and the
    /// call must not break an invariant the caller relies on (for instance,
    /// remapping memory that Rust references point to).
    unsafe fn hypercall(&self, op: u32, args: &[u64]) -> i64;
}

/// The hypercall page Xen fills in: for PV through `XEN_ELFNOTE_HYPERCALL_PAGE`,
/// for PVH when the guest writes its address to the Xen MSR.
///
/// Until [`HypercallPage::set`] is called every hypercall fails with `ENOSYS`,
/// so an early panic cannot jump into an unfilled page.
#[derive(Debug)]
pub struct HypercallPage {
    base: AtomicUsize,
    /// Hypercalls issued through the page, by number (`op < 64`; the page
    /// has 128 stubs but Xen defines none above 55).
    issued: [AtomicU64; 64],
}

impl HypercallPage {
    /// An unset page.
    pub const fn new() -> Self {
        Self {
            base: AtomicUsize::new(0),
            issued: [const { AtomicU64::new(0) }; 64],
        }
    }

    /// How many hypercalls number `op` were issued so far (0 for `op >= 64`).
    pub fn issued(&self, op: u32) -> u64 {
        self.issued
            .get(op as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// How many hypercalls were issued so far, of every number.
    pub fn issued_total(&self) -> u64 {
        self.issued.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Publishes the page's address.
    ///
    /// # Safety
    /// `page` must be the page-aligned address of a hypercall page that Xen has
    /// filled (or will have filled before the first hypercall is issued).
    pub unsafe fn set(&self, page: *const u8) {
        self.base.store(page as usize, Ordering::Release);
    }

    /// Whether hypercalls can be issued.
    pub fn is_ready(&self) -> bool {
        self.base.load(Ordering::Acquire) != 0
    }
}

impl Default for HypercallPage {
    fn default() -> Self {
        Self::new()
    }
}

impl Hypervisor for HypercallPage {
    unsafe fn hypercall(&self, op: u32, args: &[u64]) -> i64 {
        let base = self.base.load(Ordering::Acquire);
        if base == 0 || op >= 128 {
            return -i64::from(XenError::ENOSYS.0);
        }
        if let Some(c) = self.issued.get(op as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let entry = base + op as usize * 32;
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        // SAFETY: `entry` is a stub inside the filled hypercall page (op < 128
        // stubs of 32 bytes each); the caller vouches for the arguments.
        unsafe {
            match args.len() {
                0 => raw::call0(entry),
                1 => raw::call1(entry, a(0)),
                2 => raw::call2(entry, a(0), a(1)),
                3 => raw::call3(entry, a(0), a(1), a(2)),
                4 => raw::call4(entry, a(0), a(1), a(2), a(3)),
                _ => raw::call5(entry, a(0), a(1), a(2), a(3), a(4)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::op;

    #[test]
    fn unset_page_refuses_instead_of_jumping() {
        let page = HypercallPage::new();
        assert!(!page.is_ready());
        // SAFETY: the page is unset, so nothing is called.
        assert_eq!(unsafe { page.hypercall(op::SCHED_OP, &[0, 0]) }, -38);
    }
}
