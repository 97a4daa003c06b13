//! PV: the p2m's frame list the toolstack reads (`xl save`, `xl migrate`,
//! `xl dump-core`): a three-level list of the MFNs of the p2m's own pages,
//! published in shared_info and written anew after a restore.
use rt_mm::FrameSource;

use super::{MM, MapError, Mm, Pfn, pages_for};

/// Where the toolstack's view of the p2m lives (PV): the p2m itself and the
/// frames of the three-level list of its MFNs.
#[derive(Clone, Copy, Debug)]
pub struct P2mList {
    /// The p2m (`start_info.mfn_list`) and its entries.
    p2m_va: u64,
    nr_pages: u64,
    /// The top page of the list, and the first of its middle pages (taken
    /// as one contiguous run).
    top: Pfn,
    mids: Pfn,
    n_mids: u64,
}

/// Publishes the p2m for the toolstack (PV): a three-level list of the MFNs of
/// the p2m's own pages, and `max_pfn`, in `shared_info.arch` — what `xl
/// dump-core`, save and migration walk. The list's frames are kept: a
/// restore moves every page to a new MFN, and [`republish_p2m`] writes the
/// list anew.
pub(crate) fn publish_p2m(p2m_va: u64, nr_pages: u64) -> Result<(), MapError> {
    let mut guard = MM.lock();
    let mm = guard.as_mut().ok_or(MapError::NoFrames)?;
    let n_mids = pages_for(nr_pages * 8).div_ceil(512);
    if n_mids > 512 {
        return Err(MapError::OutOfRange(p2m_va));
    }
    let top = mm.frames.alloc_frame().ok_or(MapError::NoFrames)?;
    let Some(mids) = mm.frames.alloc_contiguous(n_mids, 1) else {
        mm.frames.free_frame(top);
        return Err(MapError::NoFrames);
    };
    mm.p2m_list = Some(P2mList {
        p2m_va,
        nr_pages,
        top,
        mids,
        n_mids,
    });
    write_p2m_list(mm)
}

/// Writes the p2m's frame list with the MFNs of now and publishes it (PV,
/// after a restore: every MFN changed).
pub(crate) fn republish_p2m() -> Result<(), MapError> {
    let mut guard = MM.lock();
    let mm = guard.as_mut().ok_or(MapError::NoFrames)?;
    write_p2m_list(mm)
}

fn write_p2m_list(mm: &mut Mm) -> Result<(), MapError> {
    let Some(l) = mm.p2m_list else {
        return Ok(());
    };
    let p2m_pages = pages_for(l.nr_pages * 8);
    let mfn = |p: Pfn| mm.mmu.backend().hw_frame(p).ok_or(MapError::NoSuchFrame(p));
    // SAFETY: the list's frames were taken for it alone (`publish_p2m`):
    // ordinary RAM, mapped read-write at their identity address.
    let top_page = unsafe { core::slice::from_raw_parts_mut(l.top.addr() as *mut u64, 512) };
    top_page.fill(0);
    for m in 0..l.n_mids {
        let mid = Pfn(l.mids.0 + m);
        // SAFETY: as for `top_page`.
        let mid_page = unsafe { core::slice::from_raw_parts_mut(mid.addr() as *mut u64, 512) };
        mid_page.fill(0);
        for (i, slot) in mid_page.iter_mut().enumerate() {
            let page = m * 512 + i as u64;
            if page < p2m_pages {
                *slot = mfn(Pfn((l.p2m_va >> 12) + page))?;
            }
        }
        top_page[m as usize] = mfn(mid)?;
    }
    crate::xen::publish_p2m(l.nr_pages, mfn(l.top)?);
    Ok(())
}
