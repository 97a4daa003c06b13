//! The runtime's own address space, built at boot: every frame of RAM in an
//! identity direct map (virtual address == pfn << 12) with per-frame rights,
//! plus a few machine frames of Xen's (shared_info, rings).
//!
//! Sequence (the same on PV and PVH; the backend decides what each step costs):
//!
//! ```text
//! 1. adopt the boot tables (PV): record their frames as tables, and their
//!    identity map as a direct map in which new tables must be made read-only
//! 2. new root K; direct-map the frames the boot tables map (page tables
//!    read-only, holes where `rights` says so) and the machine frames
//! 3. pin K, activate it (NEW_BASEPTR / mov cr3)
//! 4. release the boot tables (PV): unpin, make their frames ordinary and
//!    writable again, return them to the frame source
//! 5. direct-map the rest of RAM in chunks; each chunk's tables come from
//!    frames an earlier chunk mapped
//! ```
use crate::backend::Backend;
use crate::frame::Pfn;
use crate::frames::BitmapFrames;
use crate::mmu::{BOOT, DirectMap, MapError, Mmu, PRIMARY, Run, Space};
use crate::op::Stats;
use crate::pte::Prot;

/// Frames direct-mapped per step of phase 5 (64 MiB: 32 L1 tables).
pub const CHUNK_PAGES: u64 = 16 * 1024;

/// What to build.
pub struct Layout<'a> {
    /// Frames `[0, nr_pages)` are the domain's RAM.
    pub nr_pages: u64,
    /// Frames below this are mapped by the boot tables, hence readable now.
    pub readable: u64,
    /// Rights of the direct-map pages of the run of frames from a frame on
    /// (`None`: leave holes); asked once per run, not per frame.
    pub rights: &'a dyn Fn(Pfn) -> Run,
    /// Machine frames mapped at a virtual address of their own: (va, hw frame, rights).
    pub machine: &'a [(u64, u64, Prot)],
}

impl core::fmt::Debug for Layout<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Layout")
            .field("nr_pages", &self.nr_pages)
            .field("readable", &self.readable)
            .finish()
    }
}

/// The runtime's rights in its direct map, from the image's layout: a hole
/// outside RAM and at the `holes` frames (page 0, stack guards, frames
/// replaced by Xen's), code read+execute, read-only data read-only, every
/// other frame read-write. [`DirectRights::run`] answers for a whole run of
/// frames at once, as [`Layout::rights`] wants.
#[derive(Clone, Copy, Debug)]
pub struct DirectRights<'a> {
    /// RAM, as `[start, end)` frame ranges.
    pub ram: &'a [(u64, u64)],
    /// Frames left unmapped.
    pub holes: &'a [u64],
    /// `[start, end)` frames of code.
    pub text: (u64, u64),
    /// `[start, end)` frames of read-only data.
    pub rodata: (u64, u64),
}

impl DirectRights<'_> {
    /// The rights of frame `pfn` (`None`: a hole).
    pub fn prot(&self, pfn: u64) -> Option<Prot> {
        let within = |r: (u64, u64)| (r.0..r.1).contains(&pfn);
        if !self.ram.iter().any(|&r| within(r)) || self.holes.contains(&pfn) {
            None
        } else if within(self.text) {
            Some(Prot::RX)
        } else if within(self.rodata) {
            Some(Prot::R)
        } else {
            Some(Prot::RW)
        }
    }

    /// The rights of `pfn` and of the frames after it up to the next edge
    /// of any range or hole: every frame of the run has `pfn`'s rights.
    pub fn run(&self, pfn: Pfn) -> Run {
        let p = pfn.0;
        let mut end = u64::MAX;
        let mut edge = |e: u64| {
            if e > p && e < end {
                end = e;
            }
        };
        for &(s, e) in self.ram.iter().chain([self.text, self.rodata].iter()) {
            edge(s);
            edge(e);
        }
        for &h in self.holes {
            edge(h);
            edge(h.saturating_add(1));
        }
        Run {
            prot: self.prot(p),
            end: Pfn(end),
        }
    }
}

/// The steps of [`build`], in order: the numbered sequence above (2 with the
/// machine frames).
pub const STEP_NAMES: [&str; STEPS] = ["adopt", "first", "activate", "release", "rest"];
/// How many steps [`build`] reports.
pub const STEPS: usize = 5;

/// What one step of [`build`] cost: the backend's cycles (0 without a
/// clock) and the mapper's counters over the step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Backend cycles from the step's start to its end.
    pub cycles: u64,
    /// Hypercalls issued.
    pub hypercalls: u64,
    /// Entries sent to Xen one by one.
    pub pte_writes: u64,
    /// Entries stored into tables built whole (validated with their table).
    pub entries_filled: u64,
    /// Page-table frames made.
    pub tables: u64,
    /// Page-table frames released.
    pub released: u64,
    /// Of `cycles`: the mapper's checks of the frames it was asked to map
    /// ([`Stats::check_cycles`]).
    pub check_cycles: u64,
    /// Of `cycles`: computing and storing new tables' entries
    /// ([`Stats::fill_cycles`]).
    pub fill_cycles: u64,
    /// Of `cycles`: the backend's submits (on PV, Xen's hypercalls;
    /// [`Stats::submit_cycles`]).
    pub submit_cycles: u64,
    /// Nanoseconds of the step in which Xen kept the vCPU from running
    /// ([`Backend::stolen_ns`]): not the mapper's time, whatever it overlaps.
    pub stolen_ns: u64,
}

/// The counters at a step's start: cycles, the mapper's stats, stolen ns.
struct Clock(u64, Stats, u64);

impl Clock {
    fn start<B: Backend>(mmu: &Mmu<'_, B>) -> Self {
        let b = mmu.backend();
        Clock(b.cycles(), mmu.stats(), b.stolen_ns())
    }

    /// Ends the step begun at `self` and starts the next (out of line: one
    /// copy for the five steps).
    #[inline(never)]
    fn lap<B: Backend>(&mut self, mmu: &Mmu<'_, B>) -> Step {
        let now = Clock::start(mmu);
        let (a, b) = (&self.1, &now.1);
        let step = Step {
            cycles: now.0.wrapping_sub(self.0),
            hypercalls: b.hypercalls - a.hypercalls,
            pte_writes: b.pte_writes - a.pte_writes,
            entries_filled: b.entries_filled - a.entries_filled,
            tables: b.tables_allocated - a.tables_allocated,
            released: b.tables_released - a.tables_released,
            check_cycles: b.check_cycles - a.check_cycles,
            fill_cycles: b.fill_cycles - a.fill_cycles,
            submit_cycles: b.submit_cycles - a.submit_cycles,
            stolen_ns: now.2.saturating_sub(self.2),
        };
        *self = now;
        step
    }
}

/// Builds and activates the kernel address space; returns it. `boot` is the
/// root Xen built (PV), adopted and released along the way.
pub fn build<B: Backend>(
    mmu: &mut Mmu<'_, B>,
    frames: &mut BitmapFrames<'_>,
    boot: Option<Space>,
    layout: &Layout<'_>,
) -> Result<Space, MapError> {
    build_steps(mmu, frames, boot, layout).map(|(k, _)| k)
}

/// [`build`], also returning what each of its steps ([`STEP_NAMES`]) cost:
/// the boot reports them to split its `space` phase.
pub fn build_steps<B: Backend>(
    mmu: &mut Mmu<'_, B>,
    frames: &mut BitmapFrames<'_>,
    boot: Option<Space>,
    layout: &Layout<'_>,
) -> Result<(Space, [Step; STEPS]), MapError> {
    let mut steps = [Step::default(); STEPS];
    let mut clock = Clock::start(mmu);
    let first_end = layout.readable.min(layout.nr_pages);
    frames.set_limit(first_end);
    if let Some(b) = &boot {
        mmu.adopt(b)?;
        mmu.set_direct_map(
            BOOT,
            Some(DirectMap {
                root: b.root(),
                limit: first_end,
            }),
        );
    }
    steps[0] = clock.lap(mmu);
    let mut k = mmu.new_space(frames, None)?;
    mmu.set_direct_map(
        PRIMARY,
        Some(DirectMap {
            root: k.root(),
            limit: layout.nr_pages,
        }),
    );
    mmu.map_direct(&k, Pfn(0), Pfn(first_end), layout.rights, frames)?
        .flush()?;
    for &(va, hw, prot) in layout.machine {
        mmu.map_machine(&k, va, hw, 1, prot, frames)?.flush()?;
    }
    steps[1] = clock.lap(mmu);
    mmu.activate(&mut k)?;
    steps[2] = clock.lap(mmu);
    if let Some(b) = boot {
        mmu.set_direct_map(BOOT, None);
        mmu.release(b, frames).map_err(|(_, e)| e)?;
    }
    steps[3] = clock.lap(mmu);
    let mut mapped = first_end;
    while mapped < layout.nr_pages {
        frames.set_limit(mapped);
        let end = (mapped + CHUNK_PAGES).min(layout.nr_pages);
        mmu.map_direct(&k, Pfn(mapped), Pfn(end), layout.rights, frames)?
            .flush()?;
        mapped = end;
    }
    frames.set_limit(layout.nr_pages);
    steps[4] = clock.lap(mmu);
    Ok((k, steps))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const RAM: [(u64, u64); 2] = [(0, 0x9f), (0x100, 0x4000)];
    const HOLES: [u64; 3] = [0, 0x180, 0x181];

    fn rights() -> DirectRights<'static> {
        DirectRights {
            ram: &RAM,
            holes: &HOLES,
            text: (0x100, 0x140),
            rodata: (0x140, 0x160),
        }
    }

    #[test]
    fn each_frame_gets_the_rights_of_its_range() {
        let r = rights();
        assert_eq!(r.prot(0), None, "page 0 is a hole");
        assert_eq!(r.prot(1), Some(Prot::RW));
        assert_eq!(r.prot(0x9f), None, "outside RAM");
        assert_eq!(r.prot(0x100), Some(Prot::RX));
        assert_eq!(r.prot(0x140), Some(Prot::R));
        assert_eq!(r.prot(0x160), Some(Prot::RW));
        assert_eq!(r.prot(0x181), None, "a guard page");
        assert_eq!(r.prot(0x4000), None, "past RAM");
    }

    #[test]
    fn a_run_ends_at_the_next_edge() {
        let r = rights();
        assert_eq!(r.run(Pfn(0)).end, Pfn(1));
        assert_eq!(r.run(Pfn(1)).end, Pfn(0x9f));
        assert_eq!(r.run(Pfn(0xa0)).end, Pfn(0x100));
        assert_eq!(r.run(Pfn(0x150)).end, Pfn(0x160));
        assert_eq!(r.run(Pfn(0x182)).end, Pfn(0x4000));
        assert_eq!(r.run(Pfn(0x5000)).end, Pfn(u64::MAX));
    }

    proptest! {
        /// The mapper asks once per run: every frame of a run must have the
        /// rights the per-frame answer gives it.
        #[test]
        fn every_frame_of_a_run_has_its_first_frames_rights(
            ram in proptest::collection::vec((0u64..600, 1u64..200), 1..4),
            holes in proptest::collection::vec(0u64..800, 0..6),
            text in (0u64..700, 0u64..60),
            rodata in (0u64..700, 0u64..60),
            from in 0u64..800,
        ) {
            let ram: Vec<(u64, u64)> = ram.iter().map(|&(s, n)| (s, s + n)).collect();
            let r = DirectRights {
                ram: &ram,
                holes: &holes,
                text: (text.0, text.0 + text.1),
                rodata: (rodata.0, rodata.0 + rodata.1),
            };
            let run = r.run(Pfn(from));
            prop_assert!(run.end.0 > from);
            prop_assert_eq!(run.prot, r.prot(from));
            for q in from..run.end.0.min(1000) {
                prop_assert_eq!(r.prot(q), run.prot, "frame {} of the run from {}", q, from);
            }
        }
    }
}
