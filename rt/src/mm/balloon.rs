//! The domain's reservation: giving free frames back to Xen and taking them
//! again (`xl mem-set`, [`release_to`], [`grow_to`]), and the frames a
//! suspend sheds and takes back (`rt::suspend`), on `rt-mm`'s balloon.
//!
//! Invariant (kept by `rt_mm::reservation::Balloon`): a pfn is either in the
//! frame allocator, in use, or given back (absent) — never two of these.
use rt_mm::reservation::Balloon;
use rt_xen::XenError;

use super::{BalloonError, MM, Mm, PAGE_SIZE, Pfn, pages_for};

/// The memory hypercalls on real Xen.
struct XenReservation;

impl<B> rt_mm::reservation::Reservation<B> for XenReservation {
    fn decrease(&mut self, _: &mut B, frames: &[u64]) -> Result<usize, XenError> {
        // SAFETY: the balloon hands over frames it took out of the allocator
        // and unmapped from the direct map: nothing uses them.
        unsafe { rt_xen::abi::hypercall::decrease_reservation(&crate::xen::HYPERVISOR, frames) }
    }

    fn populate(&mut self, _: &mut B, list: &mut [u64]) -> Result<usize, XenError> {
        rt_xen::abi::hypercall::populate_physmap(&crate::xen::HYPERVISOR, list)
    }
}

/// The domain's memory as Xen counts it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Reservation {
    /// Pages the domain holds now (`tot_pages`; `xl list`'s memory column).
    pub current_pages: u64,
    /// Most pages it may hold (`max_pages`, xl's `maxmem`).
    pub max_pages: u64,
    /// Pages given back with [`release_to`] and not taken again.
    pub released_pages: u64,
}

/// Why the reservation could not be read or moved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReservationError {
    /// Not running on Xen (bare QEMU): there is no reservation.
    NoHypervisor,
    /// Xen refused to report the reservation.
    Query(XenError),
    /// No frames for the balloon's bookkeeping.
    NoStorage,
    /// The move stopped part-way.
    Balloon(BalloonError),
}

impl core::fmt::Display for ReservationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReservationError::NoHypervisor => f.write_str("not running on Xen"),
            ReservationError::Query(e) => write!(f, "reading the reservation: {e}"),
            ReservationError::NoStorage => f.write_str("no frames for the balloon's bookkeeping"),
            ReservationError::Balloon(e) => write!(f, "{e}"),
        }
    }
}

/// The domain's reservation.
pub fn reservation() -> Result<Reservation, ReservationError> {
    if !crate::platform::platform().is_xen() {
        return Err(ReservationError::NoHypervisor);
    }
    let h = &crate::xen::HYPERVISOR;
    let current_pages =
        rt_xen::abi::hypercall::reservation(h, false).map_err(ReservationError::Query)?;
    let max_pages =
        rt_xen::abi::hypercall::reservation(h, true).map_err(ReservationError::Query)?;
    let released_pages = MM
        .lock()
        .as_ref()
        .and_then(|m| m.balloon.as_ref().map(|b| b.absent()))
        .unwrap_or(0);
    Ok(Reservation {
        current_pages,
        max_pages,
        released_pages,
    })
}

/// Creates the balloon's bookkeeping on first use.
fn ensure_balloon(mm: &mut Mm) -> Result<(), ReservationError> {
    if mm.balloon.is_none() {
        let words = Balloon::words_needed(mm.nr_pages);
        let frames = pages_for(words as u64 * 8);
        let at = mm
            .frames
            .alloc_contiguous(frames, 1)
            .ok_or(ReservationError::NoStorage)?;
        // SAFETY: `frames` consecutive free frames just taken from the
        // allocator, mapped read-write at their identity address; used only
        // by the balloon, which lives as long as the memory state.
        let storage: &'static mut [u64] =
            unsafe { core::slice::from_raw_parts_mut(at.addr() as *mut u64, words) };
        mm.balloon = Some(Balloon::new(storage, mm.nr_pages).ok_or(ReservationError::NoStorage)?);
    }
    Ok(())
}

/// Creates the bitmap of shed pfns on the first suspend (a guest that never
/// suspends never pays for it).
fn ensure_shed_bits(mm: &mut Mm) -> Result<(), ReservationError> {
    if mm.shed_bits.is_none() {
        let words = mm.nr_pages.div_ceil(64) as usize;
        let at = mm
            .frames
            .alloc_contiguous(pages_for(words as u64 * 8), 1)
            .ok_or(ReservationError::NoStorage)?;
        // SAFETY: as for the balloon's storage: fresh frames, mapped
        // read-write at their identity address, used only for this.
        let bits: &'static mut [u64] =
            unsafe { core::slice::from_raw_parts_mut(at.addr() as *mut u64, words) };
        mm.shed_bits = Some(bits);
    }
    Ok(())
}

/// Moves the reservation by `pages` (release: down; else up) with the
/// balloon.
fn move_reservation(pages: u64, release: bool) -> Result<(), ReservationError> {
    let mut guard = MM.lock();
    let mm = guard.as_mut().ok_or(ReservationError::NoStorage)?;
    ensure_balloon(mm)?;
    let Mm {
        mmu,
        frames,
        kernel,
        balloon,
        ..
    } = mm;
    let balloon = balloon.as_mut().ok_or(ReservationError::NoStorage)?;
    let r = if release {
        balloon.release(mmu, kernel, frames, &mut XenReservation, pages)
    } else {
        balloon.grow(mmu, kernel, frames, &mut XenReservation, pages)
    };
    r.map(drop).map_err(ReservationError::Balloon)
}

/// Gives memory back to Xen until the domain holds at most `target_bytes`
/// (rounded down to pages): free frames leave the frame allocator and go back
/// with `XENMEM_decrease_reservation` (PV: their p2m entries are invalidated;
/// PVH: Xen removes them from the physmap). Returns the reservation after.
/// Frames in use (by the heap too: see `rt::heap::trim`) stay.
pub fn release_to(target_bytes: u64) -> Result<Reservation, ReservationError> {
    let r = reservation()?;
    let target = target_bytes / PAGE_SIZE;
    if target < r.current_pages {
        move_reservation(r.current_pages - target, true)?;
    }
    reservation()
}

/// What a suspend gave back to Xen ([`shed`]), to take back after it (the
/// pfns themselves are marked in `Mm::shed_bits`).
#[derive(Debug, Default)]
pub(crate) struct Shed {
    pages: u64,
    /// Why fewer than the free frames went (the rest stayed free: the save
    /// is only larger).
    stopped: Option<BalloonError>,
}

impl Shed {
    /// How many pages were given.
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// Why the shedding stopped short, if it did.
    pub(crate) fn stopped(&self) -> Option<BalloonError> {
        self.stopped
    }
}

/// What shedding and taking back work on, once both exist.
struct ShedParts<'m> {
    mmu: &'m mut super::Mmu<'static, super::Machine>,
    frames: &'m mut super::FrameAllocator<'static>,
    kernel: &'m super::Space,
    balloon: &'m mut Balloon<'static>,
    bits: &'m mut [u64],
}

fn shed_parts(mm: &mut Mm) -> Option<ShedParts<'_>> {
    let Mm {
        mmu,
        frames,
        kernel,
        balloon,
        shed_bits,
        ..
    } = mm;
    Some(ShedParts {
        mmu,
        frames,
        kernel,
        balloon: balloon.as_mut()?,
        bits: shed_bits.as_deref_mut()?,
    })
}

/// Gives the free frames beyond `keep` back to Xen before a suspend (the
/// saver then copies only what the domain holds), marking which.
pub(crate) fn shed(keep: u64) -> Shed {
    let mut out = Shed::default();
    let mut guard = MM.lock();
    let Some(mm) = guard.as_mut() else {
        return out;
    };
    let give = mm.frames.free_count().saturating_sub(keep);
    if give == 0 || ensure_balloon(mm).is_err() || ensure_shed_bits(mm).is_err() {
        return out;
    }
    if let Some(ShedParts {
        mmu,
        frames,
        kernel,
        balloon,
        bits,
    }) = shed_parts(mm)
    {
        bits.fill(0);
        // A release that stops short gave back part: the bits say which.
        let r =
            balloon.release_recorded(mmu, kernel, frames, &mut XenReservation, give, &mut |p| {
                bits[(p.0 / 64) as usize] |= 1 << (p.0 % 64);
                out.pages += 1;
            });
        out.stopped = r.err();
    }
    out
}

/// Takes back what [`shed`] gave, after the suspend. Pages the domain holds
/// again (`held`: a live migration's restorer copied them before they were
/// given, and kept them; PV finds them in the p2m it wrote, PVH only knows
/// from the reservation) rejoin the allocator as they are; the others come
/// from Xen. Returns how many were adopted.
pub(crate) fn unshed(shed: Shed, held: bool) -> Result<u64, ReservationError> {
    if shed.pages == 0 {
        return Ok(0);
    }
    let pv = crate::platform::platform().is_pv();
    let adopted = {
        let mut guard = MM.lock();
        let mm = guard.as_mut().ok_or(ReservationError::NoStorage)?;
        let ShedParts {
            mmu,
            frames,
            kernel,
            balloon: b,
            bits,
        } = shed_parts(mm).ok_or(ReservationError::NoStorage)?;
        let mut adopted = 0;
        if pv || held {
            // The marked pfns, a batch at a time.
            let mut batch = [Pfn(0); rt_mm::reservation::BATCH];
            let mut n = 0;
            for (w, word) in bits.iter().enumerate() {
                let mut rest = *word;
                while rest != 0 {
                    let bit = rest.trailing_zeros() as u64;
                    rest &= rest - 1;
                    batch[n] = Pfn(w as u64 * 64 + bit);
                    n += 1;
                    if n == batch.len() {
                        adopted += b
                            .adopt(mmu, kernel, frames, &batch)
                            .map_err(|e| ReservationError::Balloon(e.into()))?;
                        n = 0;
                    }
                }
            }
            adopted += b
                .adopt(mmu, kernel, frames, &batch[..n])
                .map_err(|e| ReservationError::Balloon(e.into()))?;
        }
        bits.fill(0);
        adopted
    };
    let rest = shed.pages - adopted;
    if rest > 0 {
        move_reservation(rest, false)?;
    }
    Ok(adopted)
}

/// Takes memory back from Xen (`XENMEM_populate_physmap`) until the domain
/// holds `target_bytes`, up to what [`release_to`] gave away: the domain
/// cannot grow past the memory it booted with. The frames join the frame
/// allocator. Returns the reservation after.
pub fn grow_to(target_bytes: u64) -> Result<Reservation, ReservationError> {
    let r = reservation()?;
    let target = (target_bytes / PAGE_SIZE).min(r.max_pages);
    if target > r.current_pages {
        move_reservation(target - r.current_pages, false)?;
    }
    reservation()
}
