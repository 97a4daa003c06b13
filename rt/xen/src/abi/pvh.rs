//! PVH boot information (`struct hvm_start_info`, `public/arch-x86/hvm/start_info.h`).
//!
//! Both Xen and QEMU's PVH loader pass its physical address in `ebx` at the
//! 32-bit entry point. Everything in it is data from the loader, so it is
//! checked before use (magic, version, entry counts).

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Memory map entry type for usable RAM.
pub const MEMMAP_TYPE_RAM: u32 = 1;

/// `struct hvm_start_info`, 56 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HvmStartInfo {
    /// Must equal [`HVM_START_MAGIC`].
    pub magic: u32,
    /// 1 when the memory map fields are valid.
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of modules.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0 = none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP.
    pub rsdp_paddr: u64,
    /// Physical address of the memory map (version >= 1).
    pub memmap_paddr: u64,
    /// Entries in the memory map (version >= 1).
    pub memmap_entries: u32,
    /// Reserved.
    pub reserved: u32,
}

/// `struct hvm_memmap_table_entry`, 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapEntry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820-style type (1 = RAM).
    pub kind: u32,
    /// Reserved.
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == 56);
const _: () = assert!(core::mem::size_of::<MemmapEntry>() == 24);

/// Upper bound on memory map entries we accept (a sane loader passes a handful).
pub const MAX_MEMMAP_ENTRIES: u32 = 128;

/// Why a start-info block was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// The magic value is wrong: not booted through PVH.
    BadMagic(u32),
    /// The memory map claims more entries than we accept.
    TooManyEntries(u32),
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartInfoError::BadMagic(m) => {
                write!(
                    f,
                    "magic {m:#x} (want {HVM_START_MAGIC:#x}): not a PVH boot"
                )
            }
            StartInfoError::TooManyEntries(n) => {
                write!(f, "{n} memory map entries (at most {MAX_MEMMAP_ENTRIES})")
            }
        }
    }
}

impl HvmStartInfo {
    /// Checks the fields that later code relies on.
    pub fn validate(&self) -> Result<(), StartInfoError> {
        if self.magic != HVM_START_MAGIC {
            return Err(StartInfoError::BadMagic(self.magic));
        }
        if self.version >= 1 && self.memmap_entries > MAX_MEMMAP_ENTRIES {
            return Err(StartInfoError::TooManyEntries(self.memmap_entries));
        }
        Ok(())
    }

    /// Number of valid memory map entries (0 for version 0).
    pub fn memmap_len(&self) -> usize {
        if self.version >= 1 && self.memmap_paddr != 0 {
            self.memmap_entries as usize
        } else {
            0
        }
    }
}

/// Total bytes of RAM in a memory map (overflow-safe).
pub fn ram_bytes(entries: &[MemmapEntry]) -> u64 {
    entries
        .iter()
        .filter(|e| e.kind == MEMMAP_TYPE_RAM)
        .fold(0u64, |acc, e| acc.saturating_add(e.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> HvmStartInfo {
        HvmStartInfo {
            magic: HVM_START_MAGIC,
            version: 1,
            flags: 0,
            nr_modules: 0,
            modlist_paddr: 0,
            cmdline_paddr: 0,
            rsdp_paddr: 0,
            memmap_paddr: 0x1000,
            memmap_entries: 3,
            reserved: 0,
        }
    }

    #[test]
    fn validation() {
        assert_eq!(info().validate(), Ok(()));
        assert_eq!(
            HvmStartInfo { magic: 1, ..info() }.validate(),
            Err(StartInfoError::BadMagic(1))
        );
        assert_eq!(
            HvmStartInfo {
                memmap_entries: 100_000,
                ..info()
            }
            .validate(),
            Err(StartInfoError::TooManyEntries(100_000))
        );
        assert_eq!(
            HvmStartInfo {
                version: 0,
                ..info()
            }
            .memmap_len(),
            0
        );
        assert_eq!(info().memmap_len(), 3);
        // The boot's crash line says what was wrong and what was wanted.
        assert_eq!(
            alloc::format!("{}", StartInfoError::BadMagic(1)),
            "magic 0x1 (want 0x336ec578): not a PVH boot"
        );
        assert_eq!(
            alloc::format!("{}", StartInfoError::TooManyEntries(100_000)),
            "100000 memory map entries (at most 128)"
        );
    }

    #[test]
    fn counts_only_ram() {
        let e = |addr, size, kind| MemmapEntry {
            addr,
            size,
            kind,
            reserved: 0,
        };
        let map = [
            e(0, 0x9f000, 1),
            e(0xf0000, 0x10000, 2),
            e(0x100000, 0x1f00000, 1),
        ];
        assert_eq!(ram_bytes(&map), 0x9f000 + 0x1f00000);
        assert_eq!(ram_bytes(&[e(0, u64::MAX, 1), e(0, 5, 1)]), u64::MAX);
    }
}
