//! Block storage for apps (`rt::block`): the Xen vbd ([`vbd`]) behind a
//! small API other crates can adapt to ([`BlockDevice`]: read, write,
//! flush, capacity, sector size), every error typed ([`BlockError`]); and
//! what is built on any such disk (the crate `rt-block`): [`store`], a
//! crash-safe append-only record store.
//!
//! [`Disk::open`] connects a disk of the domain's config (`xvda`, `xvdb`,
//! ... as `image.toml`'s `[[disk]] vdev` names them). Addresses count the
//! disk's own logical sectors ([`BlockDevice::sector_size`]: 512 or 4096);
//! a buffer is a whole number of them. A call returns once the backend
//! answered every request it made: a large buffer goes out as several
//! requests of up to 1 MiB in flight together; [`Disk::read_many`] puts
//! many small reads in flight at once (up to the ring's 32 a page; the
//! ring has up to 4 pages where the backend offers them). Waiting blocks
//! the vCPU on the vbd's event channel — no polling loop.
//!
//! Guarantees: a write is on the backend's disk once it returned `Ok`, and
//! in stable storage once a later [`BlockDevice::flush`] returned `Ok`
//! (the backend's `feature-flush-cache`; where only barriers are offered a
//! barrier stands in; where neither, `flush` is
//! [`BlockError::NotSupported`]). A backend that misbehaves gets one log
//! line per kind of fault and errors for the requests it touched; a backend
//! that closes fails what is outstanding and every later call with
//! [`BlockError::Gone`].
//!
//! May import: `sched`, `event`, `grant`, `xenstore`, `time`, `console`,
//! the registry of [`crate::dev`].
pub mod vbd;

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

pub use rt_block::{BlockDevice, BlockError, crc32, fat, store};
use rt_xen::dev::blk::blkif::SECTOR;
use rt_xen::dev::blk::xenbus::vdev_number;
use rt_xen::dev::blk::{BlkStats, Geometry, Op, SubmitError};
use rt_xen::proto::xenbus::HandshakeError;

use self::vbd::{Phase, State, Vbd};
use crate::time::Instant;

/// Pool pages a disk gets by default: 2 MiB and 32 pages, so that two
/// 1 MiB requests and the ring's worth of small ones can be in flight.
pub const DEFAULT_POOL_PAGES: u16 = 544;
/// How long a request may stay unanswered before the call gives up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(rt_block::error::IO_TIMEOUT_S);
/// How often a wait looks at the backend's state.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The disks in the domain's config (their `virtual-device` numbers).
pub fn disks() -> Vec<u32> {
    let mut v: Vec<u32> = crate::xenstore::directory("device/vbd")
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// One piece of work: a read into, or a write from, a buffer.
enum Job<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
    Flush,
}

/// A connected disk.
pub struct Disk {
    vbd: Vbd,
    name: String,
    geometry: Geometry,
}

impl core::fmt::Debug for Disk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disk")
            .field("name", &self.name)
            .field("geometry", &self.geometry)
            .finish()
    }
}

impl Disk {
    /// Connects the disk named `vdev` (`xvda`, or its `virtual-device`
    /// number) with the default pool.
    pub fn open(vdev: &str) -> Result<Disk, BlockError> {
        Self::open_with(vdev, DEFAULT_POOL_PAGES)
    }

    /// [`Self::open`] with a pool of `pool` pages (at least 11; more
    /// allows larger requests and more of them in flight).
    pub fn open_with(vdev: &str, pool: u16) -> Result<Disk, BlockError> {
        let devid = vdev_number(vdev)
            .or_else(|| vdev.parse().ok())
            .ok_or_else(|| BlockError::NoDevice(vdev.into()))?;
        let state = State::connect(devid, pool.max(11)).map_err(|e| match e {
            HandshakeError::NoDevice(_) => BlockError::NoDevice(vdev.into()),
            e => BlockError::Connect(e),
        })?;
        let geometry = state.link.geometry;
        Ok(Disk {
            vbd: Vbd::new(state),
            name: vdev.into(),
            geometry,
        })
    }

    /// The disk's name as opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The disk as the backend describes it.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Bytes per physical sector (writes of this size and alignment avoid
    /// read-modify-write in the backend's storage).
    pub fn physical_sector_size(&self) -> u32 {
        self.geometry.physical_sector_size
    }

    /// The largest request the backend takes, in bytes (1 MiB with
    /// indirect requests, 44 KiB without).
    pub fn max_request(&self) -> usize {
        self.vbd.state.lock().link.bf.max_request()
    }

    /// Requests the ring holds (32 a page; 128 with four pages, where the
    /// backend offers `max-ring-page-order`).
    pub fn ring_slots(&self) -> usize {
        self.vbd.state.lock().link.bf.ring_slots()
    }

    /// Counters over every connection so far.
    pub fn stats(&self) -> BlkStats {
        let s = self.vbd.state.lock();
        let mut t = s.earlier;
        vbd::add_stats(&mut t, &s.link.bf.stats);
        t
    }

    /// Checks a range of `len` bytes from `sector`; returns the protocol
    /// sector (512-byte units) it starts at.
    fn check_at(&self, sector: u64, len: usize, write: bool) -> Result<u64, BlockError> {
        self.check(sector, len, write)?;
        Ok(sector * (u64::from(self.geometry.sector_size) / SECTOR))
    }

    /// Reads many ranges at once, all in flight together as far as the
    /// ring and pool allow: `(sector, buffer)` each.
    pub fn read_many(&mut self, reads: &mut [(u64, &mut [u8])]) -> Result<(), BlockError> {
        let mut jobs = Vec::with_capacity(reads.len());
        for (sector, buf) in reads.iter_mut() {
            let at = self.check_at(*sector, buf.len(), false)?;
            jobs.push((at, Job::Read(&mut buf[..])));
        }
        self.run(jobs)
    }

    /// Runs `jobs` (split into requests the backend takes), keeping as
    /// many in flight as it can; returns the first error once nothing is
    /// in flight any more.
    fn run(&mut self, jobs: Vec<(u64, Job<'_>)>) -> Result<(), BlockError> {
        let max = self.max_request();
        // Pieces: (protocol sector, job, offset in it, length).
        let mut pieces: Vec<(u64, usize, usize, usize)> = Vec::new();
        for (j, (at, job)) in jobs.iter().enumerate() {
            let len = match job {
                Job::Read(b) => b.len(),
                Job::Write(b) => b.len(),
                Job::Flush => 0,
            };
            if len == 0 {
                pieces.push((0, j, 0, 0));
            }
            let mut off = 0;
            while off < len {
                let n = (len - off).min(max);
                pieces.push((at + (off as u64) / SECTOR, j, off, n));
                off += n;
            }
        }
        let mut jobs = jobs;
        let mut state = self.vbd.state.lock();
        let s = &mut *state;
        if s.phase == Phase::Reconnect {
            s.reconnect().map_err(BlockError::Connect)?;
        }
        if s.phase != Phase::Connected {
            return Err(BlockError::Gone);
        }
        let mut next = 0;
        // In flight: tag -> piece.
        let mut flying: Vec<(u64, usize)> = Vec::new();
        let mut first_error: Option<BlockError> = None;
        let mut last_answer = Instant::now();
        loop {
            // Submit what fits (nothing more after an error).
            let mut submitted = false;
            while next < pieces.len() && first_error.is_none() {
                let (at, j, off, n) = pieces[next];
                let l = &mut s.link;
                let r = match &jobs[j].1 {
                    Job::Read(_) => l.bf.submit(&mut l.bufs, Op::Read, at, n, None),
                    Job::Write(b) => {
                        l.bf.submit(&mut l.bufs, Op::Write, at, n, Some(&b[off..off + n]))
                    }
                    Job::Flush => l.bf.submit(&mut l.bufs, Op::Flush, 0, 0, None),
                };
                match r {
                    Ok(tag) => {
                        flying.push((tag, next));
                        next += 1;
                        submitted = true;
                    }
                    Err(SubmitError::Busy) if !flying.is_empty() => break,
                    Err(e) => {
                        first_error = Some(match e {
                            SubmitError::NotSupported => BlockError::NotSupported,
                            SubmitError::Gone => BlockError::Gone,
                            // Checked above: the pool is smaller than a piece.
                            SubmitError::Busy | SubmitError::TooLarge | SubmitError::Unaligned => {
                                BlockError::Io(-1)
                            }
                        });
                    }
                }
            }
            if submitted && s.link.bf.publish() {
                s.notify();
            }
            if flying.is_empty() {
                break;
            }
            // Take the answers.
            let mut answered = 0;
            {
                let l = &mut s.link;
                l.bf.complete(&l.bufs, |tag, r| {
                    let Some(i) = flying.iter().position(|(t, _)| *t == tag) else {
                        return;
                    };
                    let (_, p) = flying.swap_remove(i);
                    answered += 1;
                    let (_, j, off, n) = pieces[p];
                    match r {
                        Ok(d) => {
                            if let Job::Read(buf) = &mut jobs[j].1 {
                                d.copy_to(&mut buf[off..off + n]);
                            }
                        }
                        Err(e) => {
                            first_error.get_or_insert(e.into());
                        }
                    }
                });
            }
            s.log_misbehaviour();
            if s.phase == Phase::Closed && !flying.is_empty() {
                // The ring broke: complete() failed everything in flight.
                flying.clear();
                first_error.get_or_insert(BlockError::Gone);
            }
            if answered > 0 {
                last_answer = Instant::now();
                continue;
            }
            // A backend that closed fails what is in flight (counted in
            // its stats; the pages stay out of the pool).
            if !s.check_backend(&mut |_, _| {}) {
                flying.clear();
                first_error.get_or_insert(BlockError::Gone);
                continue;
            }
            if last_answer.elapsed() >= IO_TIMEOUT {
                crate::console::println!(
                    "rt: blk: {} did not answer {} request(s) within {} s",
                    s.frontend,
                    flying.len(),
                    IO_TIMEOUT.as_secs()
                );
                return Err(BlockError::TimedOut);
            }
            let deadline =
                crate::xen::system_time_ns().saturating_add(LOOK_EVERY.as_nanos() as u64);
            if s.link.chan.wait(Some(deadline)).is_err() {
                crate::sched::sleep(Duration::from_millis(1));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl BlockDevice for Disk {
    fn sector_size(&self) -> u32 {
        self.geometry.sector_size
    }
    fn sectors(&self) -> u64 {
        self.geometry.sectors
    }
    fn read_only(&self) -> bool {
        self.geometry.read_only
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let at = self.check_at(sector, buf.len(), false)?;
        self.run(alloc::vec![(at, Job::Read(buf))])
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let at = self.check_at(sector, buf.len(), true)?;
        self.run(alloc::vec![(at, Job::Write(buf))])
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.geometry.read_only {
            return Ok(());
        }
        self.run(alloc::vec![(0, Job::Flush)])
    }
}
