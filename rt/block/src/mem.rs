//! A disk in memory for tests and tools: sectors behind a volatile write
//! cache. A write lands in the cache; [`BlockDevice::flush`] makes the cache
//! durable; [`MemDisk::crash`] keeps only what was durable plus, as a real
//! disk might, an arbitrary subset of the cached sectors (the caller picks
//! which, e.g. at random) — so a write cut by a crash can be torn at any
//! sector.
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::{BlockDevice, BlockError};

/// A disk in memory with a volatile write cache.
#[derive(Clone, Debug)]
pub struct MemDisk {
    durable: Vec<u8>,
    /// Sectors written since the last flush, by number.
    cache: BTreeMap<u64, Vec<u8>>,
    sector_size: u32,
    read_only: bool,
    /// Flushes done.
    pub flushes: u64,
    /// Fail every call from now on (a backend gone).
    pub gone: bool,
}

impl MemDisk {
    /// A zeroed disk of `sectors` sectors of `sector_size` bytes.
    pub fn new(sectors: u64, sector_size: u32) -> MemDisk {
        MemDisk {
            durable: vec![0; (sectors * u64::from(sector_size)) as usize],
            cache: BTreeMap::new(),
            sector_size,
            read_only: false,
            flushes: 0,
            gone: false,
        }
    }

    /// Sectors written but not flushed.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The crash: the cache is lost except the sectors for which `keep`
    /// (given their order in the cache, by sector number) says true.
    pub fn crash(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let ss = self.sector_size as usize;
        let cache = core::mem::take(&mut self.cache);
        for (i, (s, data)) in cache.into_iter().enumerate() {
            if keep(i) {
                let at = s as usize * ss;
                self.durable[at..at + ss].copy_from_slice(&data);
            }
        }
    }

    /// The durable bytes.
    pub fn durable(&self) -> &[u8] {
        &self.durable
    }
}

impl BlockDevice for MemDisk {
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn sectors(&self) -> u64 {
        self.durable.len() as u64 / u64::from(self.sector_size)
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if self.gone {
            return Err(BlockError::Gone);
        }
        self.check(sector, buf.len(), false)?;
        let ss = self.sector_size as usize;
        for (i, chunk) in buf.chunks_mut(ss).enumerate() {
            let s = sector + i as u64;
            match self.cache.get(&s) {
                Some(d) => chunk.copy_from_slice(d),
                None => chunk.copy_from_slice(&self.durable[s as usize * ss..][..ss]),
            }
        }
        Ok(())
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.gone {
            return Err(BlockError::Gone);
        }
        self.check(sector, buf.len(), true)?;
        let ss = self.sector_size as usize;
        for (i, chunk) in buf.chunks(ss).enumerate() {
            self.cache.insert(sector + i as u64, chunk.to_vec());
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.gone {
            return Err(BlockError::Gone);
        }
        self.flushes += 1;
        self.crash(|_| true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_volatile_until_flushed() {
        let mut d = MemDisk::new(8, 512);
        d.write(1, &[7; 1024]).unwrap();
        let mut b = [0u8; 512];
        d.read(2, &mut b).unwrap();
        assert_eq!(b, [7; 512], "reads see the cache");
        d.crash(|i| i == 1);
        d.read(1, &mut b).unwrap();
        assert_eq!(b, [0; 512], "sector 1 lost");
        d.read(2, &mut b).unwrap();
        assert_eq!(b, [7; 512], "sector 2 kept");
        d.write(3, &[9; 512]).unwrap();
        d.flush().unwrap();
        d.crash(|_| false);
        d.read(3, &mut b).unwrap();
        assert_eq!(b, [9; 512]);
        assert_eq!(
            d.read(8, &mut b),
            Err(BlockError::OutOfRange {
                sector: 8,
                count: 1,
                sectors: 8
            })
        );
        assert!(matches!(
            d.write(0, &[0; 100]),
            Err(BlockError::Unaligned { .. })
        ));
    }
}
