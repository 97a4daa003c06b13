//! Page-table entries: levels, indices, permissions, and encoding.
//!
//! An entry holds a *frame number as the hardware sees it*: an MFN on PV (the
//! p2m translates when an entry is built, the M2P when it is read back — Linux's
//! `make_pte`/`pte_val`), a GFN (== pfn) on PVH. This module only packs and
//! unpacks bits; translation is the backend's job.
use x86_64::structures::paging::PageTableFlags as F;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Bits 12..51 of an entry: the frame address.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// First L4 slot reserved for Xen in a 64-bit PV guest (slots 256..=271).
pub const XEN_L4_FIRST: usize = 256;
/// Last L4 slot reserved for Xen.
pub const XEN_L4_LAST: usize = 271;
/// Highest user (lower-half) virtual address + 1.
pub const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;

/// A page-table level (L1 maps 4 KiB pages, L4 is the root).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
#[repr(u8)]
pub enum Level {
    /// Leaf table: entries map 4 KiB pages.
    L1 = 1,
    /// Entries point to L1 tables (2 MiB each).
    L2 = 2,
    /// Entries point to L2 tables (1 GiB each).
    L3 = 3,
    /// The root: entries point to L3 tables (512 GiB each).
    L4 = 4,
}

impl Level {
    /// The level below, if any.
    pub fn lower(self) -> Option<Level> {
        match self {
            Level::L1 => None,
            Level::L2 => Some(Level::L1),
            Level::L3 => Some(Level::L2),
            Level::L4 => Some(Level::L3),
        }
    }

    /// Bit position of this level's index in a virtual address.
    pub fn shift(self) -> u32 {
        12 + 9 * (self as u32 - 1)
    }

    /// Bytes of virtual address space one entry of this level covers.
    pub fn entry_span(self) -> u64 {
        1 << self.shift()
    }

    /// This level's index of virtual address `va`.
    pub fn index(self, va: u64) -> usize {
        ((va >> self.shift()) & 0x1ff) as usize
    }

    /// From the numeric level (1..=4).
    pub fn from_u8(n: u8) -> Option<Level> {
        match n {
            1 => Some(Level::L1),
            2 => Some(Level::L2),
            3 => Some(Level::L3),
            4 => Some(Level::L4),
            _ => None,
        }
    }
}

/// Access rights of a leaf mapping. Readable is implied; writable and
/// executable are never both set by the runtime's own layout (W^X), but the
/// API allows it for callers that must.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Prot {
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub exec: bool,
}

impl Prot {
    /// Read-only data.
    pub const R: Prot = Prot {
        write: false,
        exec: false,
    };
    /// Read-write data.
    pub const RW: Prot = Prot {
        write: true,
        exec: false,
    };
    /// Code.
    pub const RX: Prot = Prot {
        write: false,
        exec: true,
    };

    /// Leaf flags: present, accessed (and dirty when writable, so the CPU never
    /// has to set them), NX unless executable.
    pub fn leaf_flags(self) -> F {
        let mut f = F::PRESENT | F::ACCESSED;
        if self.write {
            f |= F::WRITABLE | F::DIRTY;
        }
        if !self.exec {
            f |= F::NO_EXECUTE;
        }
        f
    }

    /// The protection a leaf entry grants.
    pub fn of_entry(e: u64) -> Prot {
        let f = F::from_bits_truncate(e);
        Prot {
            write: f.contains(F::WRITABLE),
            exec: !f.contains(F::NO_EXECUTE),
        }
    }
}

/// Flags of an entry that points to a lower-level table: everything is decided
/// at the leaf, so tables grant all rights.
pub fn table_flags() -> F {
    F::PRESENT | F::WRITABLE | F::ACCESSED | F::DIRTY | F::USER_ACCESSIBLE
}

/// Builds an entry from a hardware frame number and flags.
pub fn make(frame: u64, flags: F) -> u64 {
    ((frame << 12) & ADDR_MASK) | flags.bits()
}

/// The hardware frame number in an entry.
pub fn frame(e: u64) -> u64 {
    (e & ADDR_MASK) >> 12
}

/// Whether an entry is present.
pub fn present(e: u64) -> bool {
    e & F::PRESENT.bits() != 0
}

/// The flags of an entry.
pub fn flags(e: u64) -> F {
    F::from_bits_truncate(e)
}

/// Whether L4 slot `i` belongs to Xen in a 64-bit PV guest.
pub fn is_xen_l4_slot(i: usize) -> bool {
    (XEN_L4_FIRST..=XEN_L4_LAST).contains(&i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_spans() {
        let va = 0x0000_7f12_3456_7000u64;
        assert_eq!(Level::L1.index(va), (va >> 12) as usize & 511);
        assert_eq!(Level::L4.index(va), (va >> 39) as usize & 511);
        assert_eq!(Level::L2.entry_span(), 2 << 20);
        assert_eq!(Level::L4.lower(), Some(Level::L3));
        assert_eq!(Level::L1.lower(), None);
        assert_eq!(Level::from_u8(3), Some(Level::L3));
        assert_eq!(Level::from_u8(5), None);
    }

    #[test]
    fn entries_round_trip() {
        let e = make(0x12345, Prot::RW.leaf_flags());
        assert!(present(e));
        assert_eq!(frame(e), 0x12345);
        assert_eq!(Prot::of_entry(e), Prot::RW);
        assert_eq!(Prot::of_entry(make(1, Prot::RX.leaf_flags())), Prot::RX);
        assert!(flags(make(1, Prot::R.leaf_flags())).contains(F::NO_EXECUTE));
        assert!(!present(0));
        // Frame numbers beyond 40 bits cannot leak into the flag bits.
        assert_eq!(make(u64::MAX, F::empty()) & !ADDR_MASK, 0);
    }

    #[test]
    fn xen_slots() {
        assert!(!is_xen_l4_slot(255));
        assert!(is_xen_l4_slot(256) && is_xen_l4_slot(271));
        assert!(!is_xen_l4_slot(272));
    }
}
