//! A crash-safe append-only record store on a raw disk.
//!
//! ```text
//! sector 0:   superblock: "RTSTORE1" | epoch u64 | sector size u32 | crc32 u32
//! sector 1..: records, each starting on a sector:
//!             magic u32 | length u32 | sequence u64 | epoch u64 | crc32 u32 | 0 u32
//!             | payload (length bytes) | zeros to the sector's end
//! ```
//! Guarantees (the property tests check them against a disk whose
//! unflushed sectors a crash keeps or loses at random):
//! - [`Store::append`] returns only once the record is durable (written,
//!   then the disk flushed): every record whose append returned is found
//!   after a crash, intact and in order;
//! - a record cut by a crash is never returned: its CRC32 (over the header
//!   and payload) fails, and recovery stops at the first record that is
//!   not whole, of another epoch or out of sequence — the next append
//!   overwrites it;
//! - records of an earlier store on the same disk (another epoch) are never
//!   taken for ours.
//!
//! Invariant kept here: the records `0..next_seq` lie back to back from
//! sector 1 to `tail`, each valid; nothing after `tail` is trusted.
use alloc::vec;

use crate::crc32::Crc32;
use crate::{BlockDevice, BlockError};

const SUPER_MAGIC: &[u8; 8] = b"RTSTORE1";
const RECORD_MAGIC: u32 = 0x5243_5244; // "DRCR" little-endian: RCRD
const HEADER: usize = 32;
/// The largest record payload.
pub const MAX_RECORD: usize = 1 << 20;

/// Why a store call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The disk failed.
    Block(BlockError),
    /// The record does not fit in what is left of the disk.
    Full {
        /// Bytes the record needs on disk.
        need: u64,
        /// Bytes left.
        free: u64,
    },
    /// The record is larger than [`MAX_RECORD`].
    TooLarge(usize),
    /// Sector 0 holds something that is not a store's superblock (and is
    /// not blank): the disk is left alone.
    NotAStore,
    /// The superblock was written for another sector size.
    SectorSize {
        /// In the superblock.
        stored: u32,
        /// The disk's.
        disk: u32,
    },
}

impl From<BlockError> for StoreError {
    fn from(e: BlockError) -> Self {
        StoreError::Block(e)
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Block(e) => write!(f, "{e}"),
            StoreError::Full { need, free } => {
                write!(
                    f,
                    "the store is full: the record needs {need} bytes, {free} are left"
                )
            }
            StoreError::TooLarge(n) => write!(f, "a record of {n} bytes is over {MAX_RECORD}"),
            StoreError::NotAStore => write!(
                f,
                "the disk holds something else (sector 0 is neither blank nor a store)"
            ),
            StoreError::SectorSize { stored, disk } => write!(
                f,
                "the store was made on {stored}-byte sectors, the disk has {disk}"
            ),
        }
    }
}

/// Why recovery stopped where it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The disk's end, or a sector that is no record (blank).
    End,
    /// A record whose checksum fails: cut by a crash.
    Torn,
    /// A record of another epoch or out of sequence: left from before.
    Stale,
}

/// What opening the store found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Whether the disk was blank and a store was made on it.
    pub formatted: bool,
    /// Records found.
    pub records: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Why the scan stopped there.
    pub stop: Stop,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The store over a disk.
#[derive(Debug)]
pub struct Store<D: BlockDevice> {
    dev: D,
    crc: alloc::boxed::Box<Crc32>,
    epoch: u64,
    ss: u64,
    /// The sector the next record goes to.
    tail: u64,
    next_seq: u64,
}

impl<D: BlockDevice> Store<D> {
    /// Opens the store on `dev`: reads its superblock (or, on a blank
    /// disk, makes one with `epoch`, flushed before anything else) and
    /// scans the records to find where the next one goes.
    pub fn open(mut dev: D, epoch: u64) -> Result<(Store<D>, Recovered), StoreError> {
        let ss = dev.sector_size();
        let mut crc = Crc32::new();
        let mut sb = vec![0u8; ss as usize];
        dev.read(0, &mut sb)?;
        let mut formatted = false;
        let epoch = if &sb[..8] == SUPER_MAGIC && crc.of(&sb[..20]) == u32_at(&sb, 20) {
            let stored = u32_at(&sb, 16);
            if stored != ss {
                return Err(StoreError::SectorSize { stored, disk: ss });
            }
            u64_at(&sb, 8)
        } else if sb.iter().all(|&b| b == 0) {
            sb[..8].copy_from_slice(SUPER_MAGIC);
            sb[8..16].copy_from_slice(&epoch.to_le_bytes());
            sb[16..20].copy_from_slice(&ss.to_le_bytes());
            let c = crc.of(&sb[..20]);
            sb[20..24].copy_from_slice(&c.to_le_bytes());
            dev.write(0, &sb)?;
            dev.flush()?;
            formatted = true;
            epoch
        } else {
            return Err(StoreError::NotAStore);
        };
        let mut s = Store {
            dev,
            crc: alloc::boxed::Box::new(crc),
            epoch,
            ss: u64::from(ss),
            tail: 1,
            next_seq: 0,
        };
        let (records, bytes, stop) = s.scan(|_, _| {})?;
        Ok((
            s,
            Recovered {
                formatted,
                records,
                bytes,
                stop,
            },
        ))
    }

    /// Sectors a record of `len` bytes takes.
    fn sectors_for(&self, len: usize) -> u64 {
        ((HEADER + len) as u64).div_ceil(self.ss)
    }

    /// Reads the records from the start, handing each to `f` (sequence,
    /// payload); sets the tail after the last valid one. Returns (records,
    /// bytes, why it stopped).
    fn scan(&mut self, mut f: impl FnMut(u64, &[u8])) -> Result<(u64, u64, Stop), StoreError> {
        let (mut at, mut seq, mut bytes) = (1u64, 0u64, 0u64);
        let total = self.dev.sectors();
        let mut head = vec![0u8; self.ss as usize];
        let stop = loop {
            if at >= total {
                break Stop::End;
            }
            self.dev.read(at, &mut head)?;
            if u32_at(&head, 0) != RECORD_MAGIC {
                break Stop::End;
            }
            let len = u32_at(&head, 4) as usize;
            if u64_at(&head, 16) != self.epoch || u64_at(&head, 8) != seq {
                break Stop::Stale;
            }
            let n = self.sectors_for(len.min(MAX_RECORD));
            if len > MAX_RECORD || at + n > total {
                break Stop::Torn;
            }
            let mut rec = vec![0u8; (n * self.ss) as usize];
            self.dev.read(at, &mut rec)?;
            let want = u32_at(&rec, 24);
            self.crc.of(&rec[..24]);
            self.crc.update(&rec[HEADER..HEADER + len]);
            if self.crc.value() != want {
                break Stop::Torn;
            }
            f(seq, &rec[HEADER..HEADER + len]);
            bytes += len as u64;
            seq += 1;
            at += n;
        };
        self.tail = at;
        self.next_seq = seq;
        Ok((seq, bytes, stop))
    }

    /// Appends `data` as the next record and returns its sequence number
    /// once it is durable (written, then the disk flushed).
    pub fn append(&mut self, data: &[u8]) -> Result<u64, StoreError> {
        if data.len() > MAX_RECORD {
            return Err(StoreError::TooLarge(data.len()));
        }
        let n = self.sectors_for(data.len());
        let free = self.dev.sectors().saturating_sub(self.tail) * self.ss;
        if n * self.ss > free {
            return Err(StoreError::Full {
                need: n * self.ss,
                free,
            });
        }
        let mut rec = vec![0u8; (n * self.ss) as usize];
        rec[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        rec[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
        rec[8..16].copy_from_slice(&self.next_seq.to_le_bytes());
        rec[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        rec[HEADER..HEADER + data.len()].copy_from_slice(data);
        self.crc.of(&rec[..24]);
        self.crc.update(data);
        rec[24..28].copy_from_slice(&self.crc.value().to_le_bytes());
        self.dev.write(self.tail, &rec)?;
        self.dev.flush()?;
        let seq = self.next_seq;
        self.tail += n;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Hands every record to `f` (sequence, payload), oldest first.
    pub fn for_each(&mut self, f: impl FnMut(u64, &[u8])) -> Result<u64, StoreError> {
        let (tail, next) = (self.tail, self.next_seq);
        let (n, _, _) = self.scan(f)?;
        // What was durable stays so: a rescan finds the same records.
        self.tail = tail.max(self.tail);
        self.next_seq = next.max(n);
        Ok(n)
    }

    /// Records in the store.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Bytes left for records (headers and padding included).
    pub fn free(&self) -> u64 {
        self.dev.sectors().saturating_sub(self.tail) * self.ss
    }

    /// The store's epoch (made when it was formatted).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The disk, back.
    pub fn into_inner(self) -> D {
        self.dev
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::mem::MemDisk;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn records(s: &mut Store<MemDisk>) -> Vec<(u64, Vec<u8>)> {
        let mut v = Vec::new();
        s.for_each(|q, d| v.push((q, d.to_vec()))).unwrap();
        v
    }

    #[test]
    fn a_blank_disk_becomes_a_store_and_records_come_back_in_order() {
        for ss in [512, 4096] {
            let (mut s, r) = Store::open(MemDisk::new(64, ss), 7).unwrap();
            assert!(r.formatted && r.records == 0);
            assert_eq!(s.append(b"one").unwrap(), 0);
            assert_eq!(s.append(&[5; 1000]).unwrap(), 1);
            assert_eq!(s.append(b"").unwrap(), 2);
            let d = s.into_inner();
            let (mut s, r) = Store::open(d, 99).unwrap();
            assert_eq!(
                (r.formatted, r.records, r.bytes, r.stop),
                (false, 3, 1003, Stop::End)
            );
            assert_eq!(s.epoch(), 7, "the disk's epoch, not the new one");
            let got = records(&mut s);
            assert_eq!(got[0], (0, b"one".to_vec()));
            assert_eq!(got[1].1.len(), 1000);
            assert_eq!(s.append(b"four").unwrap(), 3);
        }
    }

    #[test]
    fn a_disk_holding_something_else_is_left_alone() {
        let mut d = MemDisk::new(16, 512);
        d.write(0, &[1; 512]).unwrap();
        assert_eq!(Store::open(d, 1).unwrap_err(), StoreError::NotAStore);
        let (s, _) = Store::open(MemDisk::new(16, 512), 1).unwrap();
        let mut d = s.into_inner();
        let mut sb = [0u8; 512];
        d.read(0, &mut sb).unwrap();
        let mut d4 = MemDisk::new(16, 4096);
        let mut big = [0u8; 4096];
        big[..512].copy_from_slice(&sb);
        d4.write(0, &big).unwrap();
        assert_eq!(
            Store::open(d4, 1).unwrap_err(),
            StoreError::SectorSize {
                stored: 512,
                disk: 4096
            }
        );
    }

    #[test]
    fn full_and_too_large_are_errors_that_change_nothing() {
        let (mut s, _) = Store::open(MemDisk::new(8, 512), 1).unwrap();
        assert_eq!(s.free(), 7 * 512);
        assert_eq!(
            s.append(&[0; MAX_RECORD + 1]),
            Err(StoreError::TooLarge(MAX_RECORD + 1))
        );
        s.append(&[1; 3000]).unwrap();
        assert_eq!(
            s.append(&[1; 600]),
            Err(StoreError::Full {
                need: 1024,
                free: 512
            })
        );
        assert_eq!(s.append(&[2; 400]).unwrap(), 1);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn records_of_an_earlier_store_are_not_taken_for_ours() {
        let (mut s, _) = Store::open(MemDisk::new(64, 512), 1).unwrap();
        for i in 0..5u8 {
            s.append(&[i; 700]).unwrap();
        }
        let mut d = s.into_inner();
        d.write(0, &[0; 512]).unwrap(); // the superblock wiped: a new store
        let (mut s, r) = Store::open(d, 2).unwrap();
        assert_eq!((r.formatted, r.records, r.stop), (true, 0, Stop::Stale));
        s.append(b"new").unwrap();
        let d = s.into_inner();
        let (mut s, r) = Store::open(d, 3).unwrap();
        // Sector 2 holds the rest of an old record's payload: no record.
        assert_eq!((r.records, r.stop), (1, Stop::End));
        assert_eq!(records(&mut s), vec![(0, b"new".to_vec())]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Appends of random sizes; a crash at a random point that keeps a
        /// random subset of the unflushed sectors (the record being
        /// written, torn anywhere); reopen. Every acknowledged record is
        /// back, intact and in order; anything after them is whole — a
        /// record that was once written with that sequence number (the one
        /// in flight, or an earlier round's whose sectors the later write
        /// completed) — never a torn one. Repeated several crashes deep.
        #[test]
        fn acknowledged_records_survive_random_crashes(
            rounds in proptest::collection::vec(
                (proptest::collection::vec(0usize..3000, 0..12), any::<u64>(), 0usize..12),
                1..4),
            ss in prop_oneof![Just(512u32), Just(4096u32)],
        ) {
            let mut disk = MemDisk::new(if ss == 512 { 4096 } else { 512 }, ss);
            let mut acked: Vec<Vec<u8>> = Vec::new();
            // Every record ever written, acknowledged or not, by sequence.
            let mut written: std::collections::BTreeMap<usize, Vec<Vec<u8>>> = Default::default();
            for (epoch, (sizes, keep_bits, cut)) in (1..).zip(rounds) {
                let (mut s, _) = Store::open(disk, epoch).unwrap();
                let base = acked.len();
                for (i, len) in sizes.iter().enumerate() {
                    let data: Vec<u8> = (0..*len).map(|j| (j as u64 * 31 + (base + i) as u64) as u8).collect();
                    if i == cut {
                        // The crash comes while this record is being written:
                        // written, not flushed (not acknowledged).
                        let n = s.sectors_for(data.len());
                        let mut rec = vec![0u8; (n * s.ss) as usize];
                        rec[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
                        rec[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
                        rec[8..16].copy_from_slice(&s.next_seq.to_le_bytes());
                        rec[16..24].copy_from_slice(&s.epoch.to_le_bytes());
                        rec[HEADER..HEADER + data.len()].copy_from_slice(&data);
                        s.crc.of(&rec[..24]);
                        s.crc.update(&data);
                        rec[24..28].copy_from_slice(&s.crc.value().to_le_bytes());
                        let tail = s.tail;
                        if s.dev.write(tail, &rec).is_ok() {
                            written.entry(s.next_seq as usize).or_default().push(data);
                        }
                        break;
                    }
                    match s.append(&data) {
                        Ok(q) => {
                            prop_assert_eq!(q as usize, acked.len());
                            written.entry(acked.len()).or_default().push(data.clone());
                            acked.push(data);
                        }
                        Err(StoreError::Full { .. }) => break,
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                disk = s.into_inner();
                disk.crash(|i| keep_bits >> (i % 64) & 1 == 1);
                let (mut s, r) = Store::open(disk, 999).unwrap();
                let got = records(&mut s);
                prop_assert!(got.len() >= acked.len(),
                    "{} records back, {} acknowledged ({:?})", got.len(), acked.len(), r);
                for (i, (q, d)) in got.iter().enumerate() {
                    prop_assert_eq!(*q as usize, i);
                    if i < acked.len() {
                        prop_assert_eq!(d, &acked[i], "record {} changed", i);
                    } else {
                        let ever = written.get(&i).is_some_and(|w| w.contains(d));
                        prop_assert!(ever, "record {} was never written as it came back", i);
                    }
                }
                // What came back is what the next round builds on.
                acked = got.into_iter().map(|(_, d)| d).collect();
                disk = s.into_inner();
            }
        }
    }
}
