//! FAT16/32 on any [`BlockDevice`], through the `embedded-sdmmc` crate
//! (re-exported: its `VolumeManager`, directories and files are the API).
//!
//! [`FatDisk`] adapts a disk of 512-byte sectors to the crate's block
//! device. The crate finds volumes through an MBR partition table; a disk
//! formatted whole (what `mkfs.vfat disk.img` makes, no partition table) is
//! shown to it behind a virtual MBR: one partition, starting at virtual
//! sector 1, that is the whole disk — so both layouts open as volume 0.
//!
//! ```ignore
//! let fat = rt::block::fat::open(Disk::open("xvda")?)?;
//! let vol = fat.open_volume(VolumeIdx(0))?;
//! let root = vol.open_root_dir()?;
//! root.iterate_dir(|e| println!("{}", e.name))?;
//! ```
use alloc::vec;
use core::cell::RefCell;

pub use embedded_sdmmc;
use embedded_sdmmc::{Block, BlockCount, BlockIdx, TimeSource, Timestamp, VolumeManager};

use crate::{BlockDevice, BlockError};

/// How the disk is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// An MBR partition table at sector 0: shown as it is.
    Partitioned,
    /// A FAT file system over the whole disk: shown behind a virtual MBR
    /// (virtual sector `n` is the disk's `n - 1`), partition type `kind`.
    Whole {
        /// The MBR partition type: 0x0C (FAT32, LBA) or 0x0E (FAT16, LBA).
        kind: u8,
    },
}

/// A disk as `embedded-sdmmc` sees it.
#[derive(Debug)]
pub struct FatDisk<D: BlockDevice> {
    dev: RefCell<D>,
    layout: Layout,
}

/// Whether a sector is a FAT boot sector (jump, 512 bytes per sector,
/// signature) and which: FAT32 (0x0C) or FAT12/16 (0x0E).
fn fat_boot_sector(s: &[u8]) -> Option<u8> {
    let jump = s[0] == 0xEB || s[0] == 0xE9;
    let bps = u16::from_le_bytes([s[11], s[12]]);
    if !jump || bps != 512 || s[510..512] != [0x55, 0xAA] {
        return None;
    }
    // FAT32 has no root directory entries and a 16-bit FAT size of 0.
    let root_entries = u16::from_le_bytes([s[17], s[18]]);
    let fat16_size = u16::from_le_bytes([s[22], s[23]]);
    Some(if root_entries == 0 && fat16_size == 0 {
        0x0C
    } else {
        0x0E
    })
}

impl<D: BlockDevice> FatDisk<D> {
    /// Adapts `dev` (512-byte sectors), finding its layout.
    pub fn new(mut dev: D) -> Result<FatDisk<D>, BlockError> {
        if dev.sector_size() != 512 {
            return Err(BlockError::Unaligned {
                len: Block::LEN,
                sector_size: dev.sector_size(),
            });
        }
        let mut s0 = vec![0u8; 512];
        dev.read(0, &mut s0)?;
        let layout = match fat_boot_sector(&s0) {
            Some(kind) => Layout::Whole { kind },
            None => Layout::Partitioned,
        };
        Ok(FatDisk {
            dev: RefCell::new(dev),
            layout,
        })
    }

    /// The layout found.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The disk, back.
    pub fn into_inner(self) -> D {
        self.dev.into_inner()
    }

    /// The virtual MBR of a whole-disk file system.
    fn mbr(&self, kind: u8) -> Block {
        let mut b = Block::new();
        let sectors = self.dev.borrow().sectors().min(u64::from(u32::MAX)) as u32;
        let e = &mut b.contents[446..462];
        e[4] = kind;
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
        b.contents[510] = 0x55;
        b.contents[511] = 0xAA;
        b
    }

    /// The disk's sector for virtual sector `v` (None: the virtual MBR).
    fn real(&self, v: u32) -> Option<u64> {
        match self.layout {
            Layout::Partitioned => Some(u64::from(v)),
            Layout::Whole { .. } => v.checked_sub(1).map(u64::from),
        }
    }
}

impl<D: BlockDevice> embedded_sdmmc::BlockDevice for FatDisk<D> {
    type Error = BlockError;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), BlockError> {
        let mut buf = vec![0u8; 512];
        for (i, b) in blocks.iter_mut().enumerate() {
            let v = start.0 + i as u32;
            match (self.real(v), self.layout) {
                (Some(s), _) => {
                    self.dev.borrow_mut().read(s, &mut buf)?;
                    b.contents.copy_from_slice(&buf);
                }
                (None, Layout::Whole { kind }) => *b = self.mbr(kind),
                (None, Layout::Partitioned) => unreachable!("a partitioned disk maps every sector"),
            }
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), BlockError> {
        for (i, b) in blocks.iter().enumerate() {
            let v = start.0 + i as u32;
            // The virtual MBR is not on the disk: a write to it is refused.
            let s = self.real(v).ok_or(BlockError::ReadOnly)?;
            self.dev.borrow_mut().write(s, &b.contents)?;
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, BlockError> {
        let n = self.dev.borrow().sectors();
        let extra = u64::from(matches!(self.layout, Layout::Whole { .. }));
        Ok(BlockCount((n + extra).min(u64::from(u32::MAX)) as u32))
    }
}

/// A fixed clock for new files' timestamps (2026-01-01 00:00): the guest
/// has no calendar, only a monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedClock;

impl TimeSource for FixedClock {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp {
            year_since_1970: 56,
            zero_indexed_month: 0,
            zero_indexed_day: 0,
            hours: 0,
            minutes: 0,
            seconds: 0,
        }
    }
}

/// A FAT volume manager over a disk.
pub type Fat<D> = VolumeManager<FatDisk<D>, FixedClock>;

/// Opens `dev` for `embedded-sdmmc` (partitioned or whole-disk FAT).
pub fn open<D: BlockDevice>(dev: D) -> Result<Fat<D>, BlockError> {
    Ok(VolumeManager::new(FatDisk::new(dev)?, FixedClock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemDisk;
    use embedded_sdmmc::BlockDevice as _;

    fn boot_sector(fat32: bool) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0] = 0xEB;
        s[11..13].copy_from_slice(&512u16.to_le_bytes());
        if !fat32 {
            s[17..19].copy_from_slice(&512u16.to_le_bytes());
            s[22..24].copy_from_slice(&32u16.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn a_whole_disk_file_system_sits_behind_a_virtual_mbr() {
        for (fat32, kind) in [(true, 0x0C), (false, 0x0E)] {
            let mut d = MemDisk::new(100, 512);
            d.write(0, &boot_sector(fat32)).unwrap();
            d.write(5, &[7; 512]).unwrap();
            let f = FatDisk::new(d).unwrap();
            assert_eq!(f.layout(), Layout::Whole { kind });
            assert_eq!(f.num_blocks().unwrap(), BlockCount(101));
            let mut b = [Block::new(), Block::new()];
            f.read(&mut b, BlockIdx(0)).unwrap();
            assert_eq!(b[0].contents[446 + 4], kind);
            assert_eq!(
                &b[0].contents[446 + 8..446 + 16],
                &[1, 0, 0, 0, 100, 0, 0, 0]
            );
            assert_eq!(b[1].contents[0], 0xEB, "virtual sector 1 is the disk's 0");
            f.read(&mut b[..1], BlockIdx(6)).unwrap();
            assert_eq!(b[0].contents, [7; 512]);
            let w = Block::new();
            assert_eq!(
                f.write(core::slice::from_ref(&w), BlockIdx(0)),
                Err(BlockError::ReadOnly)
            );
            f.write(&[w], BlockIdx(6)).unwrap();
            let mut d = f.into_inner();
            let mut s = [1u8; 512];
            d.read(5, &mut s).unwrap();
            assert_eq!(s, [0; 512]);
        }
    }

    #[test]
    fn a_partitioned_disk_is_shown_as_it_is() {
        let mut d = MemDisk::new(10, 512);
        let mut mbr = [0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        d.write(0, &mbr).unwrap();
        let f = FatDisk::new(d).unwrap();
        assert_eq!(f.layout(), Layout::Partitioned);
        assert_eq!(f.num_blocks().unwrap(), BlockCount(10));
        assert!(matches!(
            FatDisk::new(MemDisk::new(4, 4096)),
            Err(BlockError::Unaligned { .. })
        ));
    }
}
