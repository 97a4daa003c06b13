//! Translation between pseudo-physical and machine frames.
//!
//! - [`P2m`] wraps the guest-owned pfn → mfn array (`start_info.mfn_list`): lookups
//!   are bounds-checked against `nr_pages`, and the "invalid" marker Xen's tools
//!   use (`!0`) reads as absent.
//! - [`M2p`] wraps Xen's read-only mfn → pfn table. Entries for frames the domain
//!   does not own are meaningless, so a reverse lookup is only trusted when the
//!   p2m maps the answer back to the same mfn.
use crate::frame::{Mfn, Pfn};

/// Marker for a pfn with no machine frame behind it.
pub const INVALID_MFN: u64 = !0;

/// The guest's pfn → mfn table.
#[derive(Debug)]
pub struct P2m<'a> {
    list: &'a [u64],
}

impl<'a> P2m<'a> {
    /// Wraps a p2m array of `nr_pages` entries.
    pub fn new(list: &'a [u64]) -> Self {
        Self { list }
    }

    /// Number of pfns covered.
    pub fn len(&self) -> u64 {
        self.list.len() as u64
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The machine frame behind `pfn`, if any.
    pub fn mfn(&self, pfn: Pfn) -> Option<Mfn> {
        let e = *self.list.get(usize::try_from(pfn.0).ok()?)?;
        (e != INVALID_MFN).then_some(Mfn(e))
    }
}

/// Why a p2m update was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum P2mError {
    /// The pfn is beyond the table.
    OutOfRange(Pfn),
    /// The mfn is the reserved "invalid" marker.
    InvalidMfn,
}

/// The guest's pfn → mfn table, writable: changes as the reservation moves
/// (frames given back to Xen become absent, new ones are recorded).
#[derive(Debug)]
pub struct P2mMut<'a> {
    list: &'a mut [u64],
}

impl<'a> P2mMut<'a> {
    /// Wraps a p2m array of `nr_pages` entries.
    pub fn new(list: &'a mut [u64]) -> Self {
        Self { list }
    }

    /// A read-only view.
    pub fn view(&self) -> P2m<'_> {
        P2m::new(self.list)
    }

    /// Records that `pfn` is backed by `mfn` (`None`: no longer backed).
    pub fn set(&mut self, pfn: Pfn, mfn: Option<Mfn>) -> Result<(), P2mError> {
        let slot = usize::try_from(pfn.0)
            .ok()
            .and_then(|i| self.list.get_mut(i))
            .ok_or(P2mError::OutOfRange(pfn))?;
        *slot = match mfn {
            Some(Mfn(INVALID_MFN)) => return Err(P2mError::InvalidMfn),
            Some(m) => m.0,
            None => INVALID_MFN,
        };
        Ok(())
    }
}

/// Xen's machine → pseudo-physical table, as a lookup function (on the guest it
/// reads the read-only window at `MACH2PHYS_VIRT_START`; in tests, a slice).
pub trait M2p {
    /// The raw M2P entry for `mfn` (untrusted).
    fn raw(&self, mfn: Mfn) -> Option<u64>;

    /// The pfn that `mfn` backs, verified against the p2m.
    fn pfn(&self, mfn: Mfn, p2m: &P2m<'_>) -> Option<Pfn> {
        let pfn = Pfn(self.raw(mfn)?);
        (p2m.mfn(pfn) == Some(mfn)).then_some(pfn)
    }
}

impl M2p for [u64] {
    fn raw(&self, mfn: Mfn) -> Option<u64> {
        self.get(usize::try_from(mfn.0).ok()?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2m_lookups_are_bounds_checked() {
        let list = [7, INVALID_MFN, 9];
        let p2m = P2m::new(&list);
        assert_eq!(p2m.len(), 3);
        assert_eq!(p2m.mfn(Pfn(0)), Some(Mfn(7)));
        assert_eq!(p2m.mfn(Pfn(1)), None);
        assert_eq!(p2m.mfn(Pfn(3)), None);
        assert_eq!(p2m.mfn(Pfn(u64::MAX)), None);
    }

    #[test]
    fn p2m_updates_are_bounds_checked() {
        let mut list = [7, 8, 9];
        let mut p2m = P2mMut::new(&mut list);
        p2m.set(Pfn(1), None).unwrap();
        assert_eq!(p2m.view().mfn(Pfn(1)), None);
        p2m.set(Pfn(1), Some(Mfn(42))).unwrap();
        assert_eq!(p2m.view().mfn(Pfn(1)), Some(Mfn(42)));
        assert_eq!(
            p2m.set(Pfn(3), Some(Mfn(1))),
            Err(P2mError::OutOfRange(Pfn(3)))
        );
        assert_eq!(
            p2m.set(Pfn(0), Some(Mfn(INVALID_MFN))),
            Err(P2mError::InvalidMfn)
        );
        assert_eq!(list, [7, 42, 9]);
    }

    #[test]
    fn m2p_answers_are_checked_against_the_p2m() {
        let list = [7, 8, 9];
        let p2m = P2m::new(&list);
        let mut m2p = [0u64; 16];
        m2p[7] = 0;
        m2p[8] = 1;
        m2p[9] = 5; // stale or foreign: pfn 5 does not map back to mfn 9
        assert_eq!(m2p[..].pfn(Mfn(8), &p2m), Some(Pfn(1)));
        assert_eq!(m2p[..].pfn(Mfn(9), &p2m), None);
        assert_eq!(m2p[..].pfn(Mfn(100), &p2m), None);
    }
}
