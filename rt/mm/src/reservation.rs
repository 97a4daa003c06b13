//! Giving memory back to Xen and taking it again (ballooning) while the domain
//! runs: frames move between the frame allocator and Xen's free pool.
//!
//! - [`Balloon::release`]: free frames leave the allocator, lose their
//!   direct-map mapping (Xen frees a page, and shrinks the reservation, only
//!   once nothing maps it), go back with `XENMEM_decrease_reservation`, and
//!   their pfns become *absent* (PV: the p2m entry is invalidated).
//! - [`Balloon::grow`]: absent pfns get frames again from
//!   `XENMEM_populate_physmap`, recorded in the p2m (PV), mapped read-write in
//!   the direct map, and join the allocator.
//!
//! Invariant kept by both: every pfn of the domain is exactly one of in use,
//! free in the allocator (mapped read-write at its identity address), or absent
//! (in the balloon, unmapped, no frame behind it). A batch Xen takes only in
//! part is undone for the rest, so a failure loses no frame.
use core::fmt;

use rt_xen::XenError;

use crate::backend::Backend;
use crate::frame::Pfn;
use crate::frame_alloc::FrameAllocator;
use crate::mmu::{MapError, Mmu, Space};
use crate::pte::Prot;

/// Frames per hypercall.
pub const BATCH: usize = 256;

/// The two memory hypercalls a balloon needs. They get the backend too, so a
/// model of Xen that lives inside it can serve them.
pub trait Reservation<B> {
    /// `XENMEM_decrease_reservation` of `frames` (entry frame numbers, order
    /// 0). Returns how many Xen took: it stops at the first it refuses.
    fn decrease(&mut self, backend: &mut B, frames: &[u64]) -> Result<usize, XenError>;

    /// `XENMEM_populate_physmap` for the pfns in `list` (order 0). Returns how
    /// many were populated; each of those entries now holds the frame number
    /// behind its pfn (PV: the new MFN; translated guests: the pfn itself).
    fn populate(&mut self, backend: &mut B, list: &mut [u64]) -> Result<usize, XenError>;
}

/// Why the reservation did not move as far as asked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BalloonError {
    /// The allocator ran out of free frames after `done` were given back.
    NoFreeFrames {
        /// Frames given back before that.
        done: u64,
    },
    /// Nothing left in the balloon after `done` frames came back: a domain
    /// cannot grow past the memory it booted with.
    NothingAbsent {
        /// Frames repopulated before that.
        done: u64,
    },
    /// Xen took fewer frames than asked.
    Xen {
        /// `decrease_reservation` or `populate_physmap`.
        op: &'static str,
        /// Frames moved before Xen stopped.
        done: u64,
        /// The hypercall's error, if it failed outright.
        error: Option<XenError>,
    },
    /// Changing the direct map failed.
    Map(MapError),
    /// The pfn is not in the p2m.
    NoP2mSlot(Pfn),
}

impl fmt::Display for BalloonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalloonError::NoFreeFrames { done } => {
                write!(f, "no more free frames to give back ({done} given)")
            }
            BalloonError::NothingAbsent { done } => write!(
                f,
                "cannot grow past the boot memory ({done} frames came back)"
            ),
            BalloonError::Xen {
                op,
                done,
                error: Some(e),
            } => write!(f, "{op} failed after {done} frames: {e}"),
            BalloonError::Xen {
                op,
                done,
                error: None,
            } => write!(f, "Xen stopped {op} after {done} frames"),
            BalloonError::Map(e) => write!(f, "direct map: {e}"),
            BalloonError::NoP2mSlot(p) => write!(f, "{p} has no p2m slot"),
        }
    }
}

impl From<MapError> for BalloonError {
    fn from(e: MapError) -> Self {
        BalloonError::Map(e)
    }
}

/// The absent pfns: an allocator over the domain's pfns whose "free" frames
/// are the ones given back to Xen.
#[derive(Debug)]
pub struct Balloon<'a> {
    absent: FrameAllocator<'a>,
}

/// Calls `f(first, len)` for each run of consecutive pfns in `pfns`.
fn runs(pfns: &[Pfn], mut f: impl FnMut(Pfn, u64) -> Result<(), MapError>) -> Result<(), MapError> {
    let mut i = 0;
    while i < pfns.len() {
        let mut n = 1;
        while i + n < pfns.len() && pfns[i + n].0 == pfns[i].0 + n as u64 {
            n += 1;
        }
        f(pfns[i], n as u64)?;
        i += n;
    }
    Ok(())
}

/// Takes up to `want` frames from `from` (at most [`BATCH`]); returns them
/// and how many there were.
fn take_batch(from: &mut FrameAllocator<'_>, want: u64) -> ([Pfn; BATCH], usize) {
    let mut pfns = [Pfn(0); BATCH];
    let mut got = 0;
    while got < (want as usize).min(BATCH) {
        let Some(p) = from.alloc() else { break };
        pfns[got] = p;
        got += 1;
    }
    (pfns, got)
}

/// Maps `pfns` read-write at their identity addresses and frees them.
fn back_to_allocator<B: Backend>(
    mmu: &mut Mmu<'_, B>,
    space: &Space,
    frames: &mut FrameAllocator<'_>,
    pfns: &[Pfn],
) -> Result<(), MapError> {
    runs(pfns, |p, n| {
        mmu.map_range(space, p.addr(), p, n, Prot::RW, frames)?
            .flush()
    })?;
    for &p in pfns {
        let r = frames.free(p);
        debug_assert!(r.is_ok(), "{r:?}");
    }
    Ok(())
}

impl<'a> Balloon<'a> {
    /// Words of storage for a domain of `frames` frames.
    pub fn words_needed(frames: u64) -> usize {
        FrameAllocator::words_needed(frames)
    }

    /// An empty balloon over pfns `[0, frames)` (storage: at least
    /// [`Self::words_needed`] words).
    pub fn new(storage: &'a mut [u64], frames: u64) -> Option<Self> {
        Some(Balloon {
            absent: FrameAllocator::new(storage, frames)?,
        })
    }

    /// Frames given back to Xen now.
    pub fn absent(&self) -> u64 {
        self.absent.free_count()
    }

    /// Whether `pfn` was given back.
    pub fn is_absent(&self, pfn: Pfn) -> bool {
        self.absent.is_free(pfn)
    }

    /// Gives `pages` free frames back to Xen. Returns the number given (all of
    /// them, or an error that says how many).
    pub fn release<B: Backend>(
        &mut self,
        mmu: &mut Mmu<'_, B>,
        space: &Space,
        frames: &mut FrameAllocator<'_>,
        res: &mut dyn Reservation<B>,
        pages: u64,
    ) -> Result<u64, BalloonError> {
        self.release_recorded(mmu, space, frames, res, pages, &mut |_| {})
    }

    /// [`Self::release`], telling `given` each pfn given back.
    pub fn release_recorded<B: Backend>(
        &mut self,
        mmu: &mut Mmu<'_, B>,
        space: &Space,
        frames: &mut FrameAllocator<'_>,
        res: &mut dyn Reservation<B>,
        pages: u64,
        given: &mut dyn FnMut(Pfn),
    ) -> Result<u64, BalloonError> {
        let empty = |done| BalloonError::NoFreeFrames { done };
        in_batches(pages, "decrease_reservation", empty, |want| {
            let (pfns, got) = take_batch(frames, want);
            if got == 0 {
                return Ok(Batch::NONE);
            }
            let pfns = &pfns[..got];
            // Frame numbers first: nothing is unmapped yet if one is missing.
            let mut hw = [0u64; BATCH];
            for (i, &p) in pfns.iter().enumerate() {
                let Some(h) = mmu.backend().hw_frame(p) else {
                    for &q in pfns {
                        let r = frames.free(q);
                        debug_assert!(r.is_ok(), "{r:?}");
                    }
                    return Err(MapError::NoSuchFrame(p).into());
                };
                hw[i] = h;
            }
            if let Err(e) = runs(pfns, |p, n| mmu.unmap_range(space, p.addr(), n)?.flush()) {
                // Whatever got unmapped is mapped again; the frames stay ours.
                back_to_allocator(mmu, space, frames, pfns)?;
                return Err(e.into());
            }
            let r = res.decrease(mmu.backend_mut(), &hw[..got]);
            let took = r.map_or(0, |n| n.min(got));
            for &p in &pfns[..took] {
                if !mmu.backend_mut().set_hw_frame(p, None) {
                    return Err(BalloonError::NoP2mSlot(p));
                }
                let r = self.absent.free(p);
                debug_assert!(r.is_ok(), "{r:?}");
                given(p);
            }
            back_to_allocator(mmu, space, frames, &pfns[took..])?;
            Ok(Batch {
                got,
                took,
                error: r.err(),
            })
        })
    }

    /// After the domain came back in a new one: of `pfns` (given back
    /// earlier), those the new domain holds anyway rejoin the allocator
    /// without a hypercall. A live migration copies the domain's pages while
    /// it runs, and the restorer keeps every page it once populated, so the
    /// pages a domain gives back at its final suspend are there again. Such
    /// a pfn has a frame (`Backend::hw_frame`: on PV the p2m entry the
    /// restorer wrote; a PVH caller passes only gfns it knows are
    /// populated). Pfns not absent are skipped. Returns how many rejoined.
    pub fn adopt<B: Backend>(
        &mut self,
        mmu: &mut Mmu<'_, B>,
        space: &Space,
        frames: &mut FrameAllocator<'_>,
        pfns: &[Pfn],
    ) -> Result<u64, MapError> {
        let mut batch = [Pfn(0); BATCH];
        let mut n = 0;
        let mut adopted = 0;
        for &p in pfns {
            if !self.absent.is_free(p) || mmu.backend().hw_frame(p).is_none() {
                continue;
            }
            if !self.absent.take(p) {
                continue;
            }
            batch[n] = p;
            n += 1;
            if n == BATCH {
                back_to_allocator(mmu, space, frames, &batch[..n])?;
                adopted += n as u64;
                n = 0;
            }
        }
        back_to_allocator(mmu, space, frames, &batch[..n])?;
        Ok(adopted + n as u64)
    }

    /// Takes `pages` frames back from Xen for pfns given back earlier; they
    /// join the allocator. Returns the number taken.
    pub fn grow<B: Backend>(
        &mut self,
        mmu: &mut Mmu<'_, B>,
        space: &Space,
        frames: &mut FrameAllocator<'_>,
        res: &mut dyn Reservation<B>,
        pages: u64,
    ) -> Result<u64, BalloonError> {
        let empty = |done| BalloonError::NothingAbsent { done };
        in_batches(pages, "populate_physmap", empty, |want| {
            let (pfns, got) = take_batch(&mut self.absent, want);
            if got == 0 {
                return Ok(Batch::NONE);
            }
            let pfns = &pfns[..got];
            let mut list = [0u64; BATCH];
            for (l, p) in list.iter_mut().zip(pfns) {
                *l = p.0;
            }
            let r = res.populate(mmu.backend_mut(), &mut list[..got]);
            let took = r.map_or(0, |n| n.min(got));
            for &p in &pfns[took..] {
                let r = self.absent.free(p);
                debug_assert!(r.is_ok(), "{r:?}");
            }
            for (&p, &hw) in pfns[..took].iter().zip(&list) {
                if !mmu.backend_mut().set_hw_frame(p, Some(hw)) {
                    return Err(BalloonError::NoP2mSlot(p));
                }
            }
            back_to_allocator(mmu, space, frames, &pfns[..took])?;
            Ok(Batch {
                got,
                took,
                error: r.err(),
            })
        })
    }
}

/// What one batch did: frames taken from its source (`got`), frames Xen
/// moved (`took`, the rest went back to the source), and Xen's error if it
/// failed outright.
struct Batch {
    got: usize,
    took: usize,
    error: Option<XenError>,
}

impl Batch {
    /// The source had nothing: no call was made.
    const NONE: Batch = Batch {
        got: 0,
        took: 0,
        error: None,
    };
}

/// Moves `pages` frames in batches of at most [`BATCH`] with `batch`
/// (given how many to move), stopping at the first batch that falls short:
/// its source ran dry (`empty(done)`) or Xen stopped (`op` names the call).
fn in_batches(
    pages: u64,
    op: &'static str,
    empty: impl Fn(u64) -> BalloonError,
    mut batch: impl FnMut(u64) -> Result<Batch, BalloonError>,
) -> Result<u64, BalloonError> {
    let mut done = 0;
    while done < pages {
        let want = (pages - done).min(BATCH as u64) as usize;
        let b = batch(want as u64)?;
        done += b.took as u64;
        if b.took < b.got {
            return Err(BalloonError::Xen {
                op,
                done,
                error: b.error,
            });
        }
        if b.got < want {
            return Err(empty(done));
        }
    }
    Ok(done)
}
