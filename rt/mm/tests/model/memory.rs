//! Heap regions and the balloon, on the model.

use proptest::prelude::*;
use rt_mm::model::ModelBackend;
use rt_mm::pte::{self};
use rt_mm::{Backend, MapError, Mmu, Pfn, Prot, Space};
use x86_64::structures::paging::PageTableFlags as F;

use crate::common::*;

// ---------------------------------------------------------------------------
// Heap regions and the balloon, on the model.

use rt_mm::model::ModelReservation;
use rt_mm::region::{map_fresh, unmap_fresh};
use rt_mm::{Balloon, BalloonError, FrameAllocator, Reservation};

const HEAP_VA: u64 = 0x4000_0000_0000;

/// Runs `f` with the booted world's MMU, a frame allocator over its free
/// frames, and an empty balloon.
fn with_memory<R>(
    w: &mut Booted,
    f: impl FnOnce(&mut Mmu<'_, ModelBackend>, &mut FrameAllocator<'_>, &mut Balloon<'_>, Space) -> R,
) -> R {
    let nr = w.nr_pages;
    let mut store = vec![0u64; FrameAllocator::words_needed(nr)];
    let mut absent_store = vec![0u64; Balloon::words_needed(nr)];
    let bits = w.bits.clone();
    with_mmu(w, |mmu, _, k| {
        let mut frames = FrameAllocator::from_bitmap(&mut store, nr, &bits).unwrap();
        let mut balloon = Balloon::new(&mut absent_store, nr).unwrap();
        f(mmu, &mut frames, &mut balloon, k)
    })
}

/// The balloon's invariant, pfn by pfn: a free frame is mapped read-write at
/// its identity address, an absent one is unmapped and has no frame.
fn check_memory(
    mmu: &Mmu<'_, ModelBackend>,
    frames: &FrameAllocator<'_>,
    balloon: &Balloon<'_>,
    k: &Space,
) -> Result<(), String> {
    mmu.backend().xen.check_invariants()?;
    frames.check().map_err(String::from)?;
    for p in (0..frames.stats().frames).map(Pfn) {
        let e = mmu.translate(k.root(), p.addr()).unwrap_or(0);
        if balloon.is_absent(p) {
            if frames.is_free(p) || pte::present(e) || mmu.backend().hw_frame(p).is_some() {
                return Err(format!("absent {p} is free, mapped or backed"));
            }
        } else if frames.is_free(p)
            && (!pte::present(e)
                || !pte::flags(e).contains(F::WRITABLE)
                || mmu.backend().pfn_of(pte::frame(e)) != Some(p))
        {
            return Err(format!("free {p} is not mapped read-write: {e:#x}"));
        }
    }
    Ok(())
}

#[test]
fn heap_growth_maps_fresh_frames_and_gives_them_back() {
    let mut w = boot(4096, 1024);
    with_memory(&mut w, |mmu, frames, balloon, k| {
        let free0 = frames.free_count();
        let t0 = mmu.stats().tables_allocated;
        map_fresh(mmu, &k, frames, HEAP_VA, 1000).unwrap();
        let tables = mmu.stats().tables_allocated - t0;
        assert_eq!(tables, 1 + 1 + 2, "L3 + L2 + two L1s");
        assert_eq!(frames.free_count(), free0 - 1000 - tables);
        for i in [0, 511, 512, 999] {
            let e = mmu.translate(k.root(), HEAP_VA + i * 4096).unwrap();
            assert!(pte::flags(e).contains(F::WRITABLE | F::NO_EXECUTE));
        }
        // Growing again continues at the end; shrinking the top returns frames.
        map_fresh(mmu, &k, frames, HEAP_VA + 1000 * 4096, 24).unwrap();
        assert_eq!(
            unmap_fresh(mmu, &k, frames, HEAP_VA + 512 * 4096, 512).unwrap(),
            512
        );
        assert_eq!(unmap_fresh(mmu, &k, frames, HEAP_VA, 512).unwrap(), 512);
        assert_eq!(
            frames.free_count(),
            free0 - tables,
            "tables stay for regrowth"
        );
        check_memory(mmu, frames, balloon, &k).unwrap();
    });
}

#[test]
fn heap_growth_that_runs_out_is_undone() {
    let mut w = boot(4096, 1024);
    with_memory(&mut w, |mmu, frames, balloon, k| {
        let free0 = frames.free_count();
        let t0 = mmu.stats().tables_allocated;
        let r = map_fresh(mmu, &k, frames, HEAP_VA, free0 + 10);
        assert_eq!(r, Err(MapError::NoFrames));
        let tables = mmu.stats().tables_allocated - t0;
        assert_eq!(
            frames.free_count() + tables,
            free0,
            "every data frame is back"
        );
        assert!(!pte::present(mmu.translate(k.root(), HEAP_VA).unwrap_or(0)));
        check_memory(mmu, frames, balloon, &k).unwrap();
        // And the heap can still grow afterwards.
        map_fresh(mmu, &k, frames, HEAP_VA, 64).unwrap();
    });
}

#[test]
fn the_balloon_moves_the_reservation_both_ways() {
    let mut w = boot(8192, 1024);
    with_memory(&mut w, |mmu, frames, balloon, k| {
        let tot0 = mmu.backend().xen.tot_pages();
        let free0 = frames.free_count();
        let calls0 = mmu.backend().xen.counters.hypercalls;
        let n = balloon
            .release(mmu, &k, frames, &mut ModelReservation, 2048)
            .unwrap();
        assert_eq!(n, 2048);
        assert_eq!(mmu.backend().xen.tot_pages(), tot0 - 2048, "Xen freed them");
        assert_eq!(frames.free_count(), free0 - 2048);
        assert_eq!(balloon.absent(), 2048);
        let calls = mmu.backend().xen.counters.hypercalls - calls0;
        assert!(calls <= 16, "unmapping 2048 pages took {calls} batches");
        check_memory(mmu, frames, balloon, &k).unwrap();

        let n = balloon
            .grow(mmu, &k, frames, &mut ModelReservation, 2048)
            .unwrap();
        assert_eq!(n, 2048);
        assert_eq!(mmu.backend().xen.tot_pages(), tot0);
        assert_eq!(frames.free_count(), free0);
        assert_eq!(balloon.absent(), 0);
        check_memory(mmu, frames, balloon, &k).unwrap();
        // The new frames are usable: the heap can map them.
        map_fresh(mmu, &k, frames, HEAP_VA, 2048).unwrap();
        check_memory(mmu, frames, balloon, &k).unwrap();
    });
}

#[test]
fn the_balloon_stops_cleanly_at_each_limit() {
    let mut w = boot(4096, 1024);
    with_memory(&mut w, |mmu, frames, balloon, k| {
        let free0 = frames.free_count();
        // Releasing more than is free gives back what is free, and says so.
        let r = balloon.release(mmu, &k, frames, &mut ModelReservation, free0 + 5);
        assert_eq!(r, Err(BalloonError::NoFreeFrames { done: free0 }));
        assert_eq!(frames.free_count(), 0);
        check_memory(mmu, frames, balloon, &k).unwrap();
        // Growing past the boot memory stops when the balloon is empty.
        let r = balloon.grow(mmu, &k, frames, &mut ModelReservation, free0 + 5);
        assert_eq!(r, Err(BalloonError::NothingAbsent { done: free0 }));
        assert_eq!(frames.free_count(), free0);
        check_memory(mmu, frames, balloon, &k).unwrap();
        // Xen refusing part of a populate: the rest stays in the balloon.
        balloon
            .release(mmu, &k, frames, &mut ModelReservation, 300)
            .unwrap();
        let tot = mmu.backend().xen.tot_pages();
        mmu.backend_mut().xen.max_pages = tot + 100;
        let r = balloon.grow(mmu, &k, frames, &mut ModelReservation, 300);
        assert_eq!(
            r,
            Err(BalloonError::Xen {
                op: "populate_physmap",
                done: 100,
                error: None
            })
        );
        assert_eq!(balloon.absent(), 200);
        assert_eq!(frames.free_count(), free0 - 200);
        check_memory(mmu, frames, balloon, &k).unwrap();
    });
}

#[test]
fn pages_the_restorer_kept_are_adopted_the_rest_grown() {
    let mut w = boot(4096, 1024);
    with_memory(&mut w, |mmu, frames, balloon, k| {
        let free0 = frames.free_count();
        let mut given = Vec::new();
        balloon
            .release_recorded(mmu, &k, frames, &mut ModelReservation, 300, &mut |p| {
                given.push(p)
            })
            .unwrap();
        assert_eq!(given.len(), 300);
        // A live migration's restorer populated the even ones again (it had
        // copied them before the domain gave them back).
        let kept: Vec<Pfn> = given.iter().copied().step_by(2).collect();
        let mut list: Vec<u64> = kept.iter().map(|p| p.0).collect();
        let n = ModelReservation
            .populate(mmu.backend_mut(), &mut list)
            .unwrap();
        assert_eq!(n, kept.len());
        for (&p, &hw) in kept.iter().zip(&list) {
            assert!(mmu.backend_mut().set_hw_frame(p, Some(hw)));
        }
        let tot = mmu.backend().xen.tot_pages();
        // Pfns not absent (in use, free) are left alone.
        let mut asked = given.clone();
        asked.push(Pfn(0));
        assert_eq!(balloon.adopt(mmu, &k, frames, &asked).unwrap(), 150);
        assert_eq!(
            mmu.backend().xen.tot_pages(),
            tot,
            "no hypercall took a page"
        );
        assert_eq!(balloon.absent(), 150);
        check_memory(mmu, frames, balloon, &k).unwrap();
        // The rest come from Xen as usual.
        assert_eq!(
            balloon
                .grow(mmu, &k, frames, &mut ModelReservation, 150)
                .unwrap(),
            150
        );
        assert_eq!(frames.free_count(), free0);
        check_memory(mmu, frames, balloon, &k).unwrap();
    });
}

#[test]
fn a_frame_xen_would_keep_is_not_given_back() {
    let mut w = boot(4096, 1024);
    with_memory(&mut w, |mmu, frames, balloon, k| {
        // A caller bug: a free frame still mapped elsewhere. Xen would keep the
        // page (and the reservation) alive; the balloon must notice and undo.
        mmu.map_range(&k, 1 << 30, Pfn(2000), 1, Prot::R, frames)
            .unwrap()
            .flush()
            .unwrap();
        let victim = frames.alloc().unwrap();
        frames.free(victim).unwrap();
        mmu.map_range(&k, (1 << 30) + 4096, victim, 1, Prot::R, frames)
            .unwrap()
            .flush()
            .unwrap();
        let free0 = frames.free_count();
        let tot0 = mmu.backend().xen.tot_pages();
        let r = balloon.release(mmu, &k, frames, &mut ModelReservation, 4);
        assert_eq!(
            r,
            Err(BalloonError::Xen {
                op: "decrease_reservation",
                done: 0,
                error: None
            })
        );
        assert_eq!(frames.free_count(), free0, "nothing lost");
        assert_eq!(mmu.backend().xen.tot_pages(), tot0);
        mmu.unmap_range(&k, 1 << 30, 2).unwrap().flush().unwrap();
        check_memory(mmu, frames, balloon, &k).unwrap();
    });
}

#[derive(Clone, Debug)]
enum MemStep {
    Grow(u64),
    Shrink(u64),
    Release(u64),
    Regrow(u64),
}

fn mem_step() -> impl Strategy<Value = MemStep> {
    prop_oneof![
        (1u64..600).prop_map(MemStep::Grow),
        (1u64..600).prop_map(MemStep::Shrink),
        (1u64..900).prop_map(MemStep::Release),
        (1u64..900).prop_map(MemStep::Regrow),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random heap growth and shrinking mixed with ballooning: every step
    /// keeps Xen's rules, the balloon's invariant, and frame conservation.
    #[test]
    fn heap_and_balloon_random_sequences(steps in prop::collection::vec(mem_step(), 1..12)) {
        let b = boot(4096, 1024);
        let mut w = b.clone();
        with_memory(&mut w, |mmu, frames, balloon, k| {
            let free0 = frames.free_count();
            let t0 = mmu.stats().tables_allocated;
            let mut heap = 0u64;
            for s in &steps {
                match *s {
                    MemStep::Grow(n) => {
                        if map_fresh(mmu, &k, frames, HEAP_VA + heap * 4096, n).is_ok() {
                            heap += n;
                        }
                    }
                    MemStep::Shrink(n) => {
                        let n = n.min(heap);
                        heap -= n;
                        let freed = unmap_fresh(mmu, &k, frames, HEAP_VA + heap * 4096, n).unwrap();
                        prop_assert_eq!(freed, n);
                    }
                    MemStep::Release(n) => {
                        let r = balloon.release(mmu, &k, frames, &mut ModelReservation, n);
                        prop_assert!(matches!(r, Ok(_) | Err(BalloonError::NoFreeFrames { .. })), "{:?}", r);
                    }
                    MemStep::Regrow(n) => {
                        let r = balloon.grow(mmu, &k, frames, &mut ModelReservation, n);
                        prop_assert!(matches!(r, Ok(_) | Err(BalloonError::NothingAbsent { .. })), "{:?}", r);
                    }
                }
                let tables = mmu.stats().tables_allocated - t0;
                prop_assert_eq!(frames.free_count() + heap + balloon.absent() + tables, free0);
                check_memory(mmu, frames, balloon, &k).map_err(TestCaseError::fail)?;
            }
            Ok(())
        })?;
    }
}
