//! Frame-number newtypes: a `Pfn` can never be passed where an `Mfn` is meant.
use core::fmt;

/// log2 of the page size (Xen's, `rt_xen::abi::PAGE_SHIFT`).
pub const PAGE_SHIFT: u32 = rt_xen::abi::PAGE_SHIFT;
/// Bytes per page, as an address step (`rt_xen::abi::PAGE_SIZE`).
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A guest pseudo-physical frame number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pfn(pub u64);

/// A machine frame number (what Xen's page tables and grant entries hold for PV).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Mfn(pub u64);

impl Pfn {
    /// The frame containing physical address `pa`.
    pub const fn containing(pa: u64) -> Self {
        Pfn(pa >> PAGE_SHIFT)
    }
    /// The frame's first physical address.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl Mfn {
    /// The frame containing machine address `ma`.
    pub const fn containing(ma: u64) -> Self {
        Mfn(ma >> PAGE_SHIFT)
    }
    /// The frame's first machine address.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

impl fmt::Display for Mfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mfn {:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_down_to_their_frame() {
        assert_eq!(Pfn::containing(0x1fff), Pfn(1));
        assert_eq!(Pfn(3).addr(), 0x3000);
        assert_eq!(Mfn::containing(0x12_3456), Mfn(0x123));
        assert_eq!(Mfn(0x123).addr(), 0x12_3000);
    }
}
