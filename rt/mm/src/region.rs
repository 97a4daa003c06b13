//! Regions backed by fresh frames (the heap): map newly allocated frames at
//! the end of a region, and unmap the end again, frames going back.
//!
//! Invariant: a frame mapped by [`map_fresh`] belongs to the region alone; it
//! goes back to the allocator only after its mapping is gone ([`unmap_fresh`]),
//! and a growth that fails half-way is undone completely.
use crate::backend::Backend;
use crate::frame::{PAGE_SIZE, Pfn};
use crate::frame_alloc::FrameAllocator;
use crate::mmu::{MapError, Mmu, Space};
use crate::pte::{self, Prot};

/// Frames allocated and mapped per batch.
const CHUNK: usize = 64;

/// Maps `pages` fresh frames read-write at `va` in `space`. On failure
/// (frames or page tables run out) nothing stays mapped and every frame taken
/// is free again.
pub fn map_fresh<B: Backend>(
    mmu: &mut Mmu<'_, B>,
    space: &Space,
    frames: &mut FrameAllocator<'_>,
    va: u64,
    pages: u64,
) -> Result<(), MapError> {
    let mut done = 0;
    while done < pages {
        let mut chunk = [Pfn(0); CHUNK];
        let n = (pages - done).min(CHUNK as u64) as usize;
        for i in 0..n {
            match frames.alloc() {
                Some(p) => chunk[i] = p,
                None => {
                    for &p in &chunk[..i] {
                        let r = frames.free(p);
                        debug_assert!(r.is_ok(), "{r:?}");
                    }
                    undo(mmu, space, frames, va, done);
                    return Err(MapError::NoFrames);
                }
            }
        }
        let mapped = mmu
            .map_frames(space, va + done * PAGE_SIZE, &chunk[..n], Prot::RW, frames)
            .and_then(|p| p.flush());
        if let Err(e) = mapped {
            for &p in &chunk[..n] {
                let r = frames.free(p);
                debug_assert!(r.is_ok(), "{r:?}");
            }
            undo(mmu, space, frames, va, done);
            return Err(e);
        }
        done += n as u64;
    }
    Ok(())
}

/// Takes back the first `pages` pages a failed growth mapped at `va`. If even
/// that fails, the shortage is still the error worth reporting, so it is only
/// asserted on.
fn undo<B: Backend>(
    mmu: &mut Mmu<'_, B>,
    space: &Space,
    frames: &mut FrameAllocator<'_>,
    va: u64,
    pages: u64,
) {
    let r = unmap_fresh(mmu, space, frames, va, pages);
    debug_assert!(r.is_ok(), "{r:?}");
}

/// Unmaps `pages` pages of a region from `va` and gives their frames back.
/// Returns the number of frames freed (holes are skipped).
pub fn unmap_fresh<B: Backend>(
    mmu: &mut Mmu<'_, B>,
    space: &Space,
    frames: &mut FrameAllocator<'_>,
    va: u64,
    pages: u64,
) -> Result<u64, MapError> {
    if pages == 0 {
        return Ok(0);
    }
    // Batch by batch: note the frames, unmap them, then free them (a frame is
    // never free while still mapped here).
    let mut freed = 0;
    let mut at = 0;
    while at < pages {
        let n = (pages - at).min(CHUNK as u64);
        let mut chunk = [Pfn(0); CHUNK];
        let mut k = 0;
        for i in 0..n {
            let Ok(e) = mmu.translate(space.root(), va + (at + i) * PAGE_SIZE) else {
                continue;
            };
            if !pte::present(e) {
                continue;
            }
            let p = mmu
                .backend()
                .pfn_of(pte::frame(e))
                .ok_or(MapError::NotMapped(va + (at + i) * PAGE_SIZE))?;
            chunk[k] = p;
            k += 1;
        }
        mmu.unmap_range(space, va + at * PAGE_SIZE, n)?.flush()?;
        for &p in &chunk[..k] {
            let r = frames.free(p);
            debug_assert!(r.is_ok(), "{r:?}");
        }
        freed += k as u64;
        at += n;
    }
    Ok(freed)
}
