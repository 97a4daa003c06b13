//! Block storage, as pure logic over any disk: the API a disk offers
//! ([`BlockDevice`], its typed errors [`BlockError`]) and what is built on it
//! — [`store`], a crash-safe append-only record store, and [`fat`], FAT16/32
//! through the `embedded-sdmmc` crate. `rt` implements the
//! trait for the Xen vbd (`rt::block::Disk`) and re-exports this crate as
//! `rt::block`; the host tests run the store on [`mem::MemDisk`], a disk in
//! memory with a volatile write cache that a simulated crash tears.
#![no_std]

extern crate alloc;

pub mod crc32;
pub mod error;
pub mod fat;
pub mod mem;
pub mod store;

pub use error::BlockError;

/// A block device: what a filesystem or a store needs of a disk.
///
/// Addresses count the device's logical sectors; buffers are whole sectors.
/// A write is durable once a later [`BlockDevice::flush`] returned `Ok`.
pub trait BlockDevice {
    /// Bytes per logical sector (512 or 4096).
    fn sector_size(&self) -> u32;
    /// Size in logical sectors.
    fn sectors(&self) -> u64;
    /// Size in bytes.
    fn capacity(&self) -> u64 {
        self.sectors() * u64::from(self.sector_size())
    }
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// Reads `buf.len()` bytes (whole sectors) from `sector` on.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `buf` (whole sectors) from `sector` on.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Makes every write that returned before this call durable.
    fn flush(&mut self) -> Result<(), BlockError>;

    /// Checks a request of `len` bytes at `sector` against the device: the
    /// error a well-behaved implementation gives, or the sector count.
    fn check(&self, sector: u64, len: usize, write: bool) -> Result<u64, BlockError> {
        let ss = self.sector_size();
        if write && self.read_only() {
            return Err(BlockError::ReadOnly);
        }
        if len == 0 || !len.is_multiple_of(ss as usize) {
            return Err(BlockError::Unaligned {
                len,
                sector_size: ss,
            });
        }
        let count = (len / ss as usize) as u64;
        if sector
            .checked_add(count)
            .is_none_or(|end| end > self.sectors())
        {
            return Err(BlockError::OutOfRange {
                sector,
                count,
                sectors: self.sectors(),
            });
        }
        Ok(count)
    }
}
