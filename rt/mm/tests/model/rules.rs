//! What Xen refuses and accepts, as the model says and the mapper obeys, and
//! batching.

use rt_mm::model::{Ty, errno};
use rt_mm::pte::{self, Level, table_flags};
use rt_mm::{Backend, MapError, Pfn, Prot};
use rt_xen::XenError;
use x86_64::structures::paging::PageTableFlags as F;

use crate::common::*;

#[test]
fn the_mapper_refuses_a_writable_mapping_of_a_table_and_keeps_working() {
    let mut w = boot(4096, 1024);
    with_mmu(&mut w, |mmu, frames, k| {
        let table = (0..4096)
            .map(Pfn)
            .find(|&p| mmu.table_level(p) == Some(Level::L1))
            .unwrap();
        let before = mmu.stats();
        let r = mmu.map_range(&k, 1 << 30, table, 1, Prot::RW, frames);
        assert_eq!(r.err(), Some(MapError::PageTableFrame(table)));
        assert_eq!(mmu.stats().queued, before.queued, "nothing was queued");
        // Read-only is fine, and the mapper still works afterwards.
        mmu.map_range(&k, 1 << 30, table, 1, Prot::R, frames)
            .unwrap()
            .flush()
            .unwrap();
        mmu.map_range(&k, (1 << 30) + 4096, Pfn(3000), 4, Prot::RW, frames)
            .unwrap()
            .flush()
            .unwrap();
        mmu.backend().xen.check_invariants().unwrap();
    });
}

#[test]
fn the_model_refuses_what_xen_refuses() {
    let b = boot(4096, 1024);
    let mut xen = b.backend.xen.clone();
    let kernel = xen.mfn(b.kernel).unwrap();
    // Find an L1 of the kernel space and a leaf slot that maps an ordinary frame.
    let l3 = pte::frame(xen.read(kernel, 0));
    let l2 = pte::frame(xen.read(l3, 0));
    let l1 = pte::frame(xen.read(l2, 1));
    assert_eq!(xen.type_of(l1).unwrap().0, Ty::Table(Level::L1));
    // A writable mapping of a frame that is an L1.
    let rw = pte::make(l1, Prot::RW.leaf_flags());
    assert_eq!(xen.update(l1, 5, rw), Err(errno::WRITABLE_TABLE));
    // ... read-only is accepted.
    let old = xen.read(l1, 5);
    xen.update(l1, 5, pte::make(l1, Prot::R.leaf_flags()))
        .unwrap();
    xen.update(l1, 5, old).unwrap();
    // Pinning a pinned table; unpinning one that is not pinned.
    assert_eq!(xen.pin(Level::L4, kernel), Err(errno::PIN_STATE));
    assert_eq!(xen.unpin(l1), Err(errno::PIN_STATE));
    // An entry in Xen's L4 slots.
    assert_eq!(
        xen.update(kernel, 256, pte::make(l3, table_flags())),
        Err(errno::XEN_SLOT)
    );
    assert_eq!(xen.update(kernel, 271, 0), Err(errno::XEN_SLOT));
    // A superpage in an L2.
    let pse = pte::make(xen.mfn(Pfn(2048)).unwrap(), table_flags() | F::HUGE_PAGE);
    assert_eq!(xen.update(l2, 7, pse), Err(errno::BAD_FLAGS));
    // Linking a frame that is mapped writable as a table.
    let data = xen.mfn(Pfn(2000)).unwrap();
    assert_eq!(
        xen.update(l2, 8, pte::make(data, table_flags())),
        Err(errno::TYPE_CONFLICT)
    );
    // Clearing a page that is a table.
    assert_eq!(xen.clear_page(l1), Err(errno::CLEAR_TABLE));
    // Frames that are not ours: as an L1 target, and as an L2 target.
    assert_eq!(
        xen.update(l1, 6, pte::make(0x7_0000_0000, Prot::R.leaf_flags())),
        Err(errno::L1_NOT_OURS)
    );
    assert_eq!(
        xen.update(l2, 6, pte::make(0x7_0000_0000, table_flags())),
        Err(errno::NOT_OURS)
    );
    // Cache attributes in an L1 entry.
    let pcd = pte::make(
        xen.mfn(Pfn(2001)).unwrap(),
        Prot::R.leaf_flags() | F::NO_CACHE,
    );
    assert_eq!(xen.update(l1, 6, pcd), Err(errno::BAD_FLAGS));
    xen.check_invariants().unwrap();
}

#[test]
fn the_model_accepts_what_xen_accepts_and_counts_full_validations() {
    let mut w = boot(4096, 1024);
    with_mmu(&mut w, |mmu, frames, k| {
        // A second space sharing the direct map; activating it unpinned is legal
        // for Xen and costs a full validation, which the model counts.
        let s = mmu.new_space(frames, Some((&k, 0..1))).unwrap();
        let root = mmu.backend().xen.mfn(s.root()).unwrap();
        let before = mmu.backend().xen.counters.baseptr_full_validations;
        mmu.backend_mut().xen.new_baseptr(root).unwrap();
        assert_eq!(
            mmu.backend().xen.counters.baseptr_full_validations,
            before + 1
        );
        // Back to the pinned kernel root: no full validation.
        let kroot = mmu.backend().xen.mfn(k.root()).unwrap();
        mmu.backend_mut().xen.new_baseptr(kroot).unwrap();
        assert_eq!(
            mmu.backend().xen.counters.baseptr_full_validations,
            before + 1
        );
        mmu.backend().xen.check_invariants().unwrap();
    });
}

#[test]
fn sixty_four_mib_in_few_hypercalls() {
    let b = boot(32768, 1024); // 128 MiB
    let mut w = b.clone();
    with_mmu(&mut w, |mmu, frames, k| {
        let before = mmu.stats();
        let va = 0x100_0000_0000; // 1 TiB: its own L4 slot
        mmu.map_range(&k, va, Pfn(8192), 16384, Prot::RW, frames)
            .unwrap()
            .flush()
            .unwrap();
        let s = mmu.stats();
        let calls = s.hypercalls - before.hypercalls;
        assert!(calls <= 64, "64 MiB took {calls} hypercalls");
        assert_eq!(
            s.tables_allocated - before.tables_allocated,
            32 + 1 + 1,
            "32 L1 + L2 + L3"
        );
        // Unmapping a mapped range of the active space flushes the TLB once.
        mmu.unmap_range(&k, va, 16384).unwrap().flush().unwrap();
        assert_eq!(mmu.stats().flushes - s.flushes, 1);
        mmu.backend().xen.check_invariants().unwrap();
    });
}

#[test]
fn each_range_operation_flushes_its_own_pages() {
    let mut w = boot(32768, 1024); // 128 MiB
    with_mmu(&mut w, |mmu, frames, k| {
        let va = 0x100_0000_0000;
        mmu.map_range(&k, va, Pfn(8192), 8, Prot::RW, frames)
            .unwrap()
            .flush()
            .unwrap();
        // Three present pages of the active space unmapped: one invlpg each.
        let s = mmu.stats();
        mmu.unmap_range(&k, va, 3).unwrap().flush().unwrap();
        assert_eq!(mmu.stats().flushes - s.flushes, 3);
        // A range operation whose `Pending` is dropped: its writes stay
        // queued (the next operation submits them), its flush is not
        // carried into the next operation's.
        let s = mmu.stats();
        drop(mmu.unmap_range(&k, va + 3 * 4096, 2).unwrap());
        mmu.unmap_range(&k, va + 5 * 4096, 1)
            .unwrap()
            .flush()
            .unwrap();
        assert_eq!(mmu.stats().flushes - s.flushes, 1);
        for i in 0..8 {
            let present = mmu.translate(k.root(), va + i * 4096).unwrap() & 1;
            assert_eq!(present, u64::from(i >= 6), "page {i}");
        }
        mmu.backend().xen.check_invariants().unwrap();
    });
}

/// Maps 64 MiB of fresh address space on one path; returns (MMU counters
/// of the map, tables Xen validated, translations of every page).
fn map_64_mib(build_then_link: bool) -> (rt_mm::Stats, u64, Vec<u64>) {
    let mut w = boot(32768, 1024); // 128 MiB
    with_mmu(&mut w, |mmu, frames, k| {
        mmu.set_build_then_link(build_then_link);
        let before = mmu.stats();
        let validated = mmu.backend().xen.counters.validations;
        let va = 0x100_0000_0000;
        mmu.map_range(&k, va, Pfn(8192), 16384, Prot::RW, frames)
            .unwrap()
            .flush()
            .unwrap();
        let s = mmu.stats();
        let delta = rt_mm::Stats {
            queued: s.queued - before.queued,
            hypercalls: s.hypercalls - before.hypercalls,
            pte_writes: s.pte_writes - before.pte_writes,
            tables_allocated: s.tables_allocated - before.tables_allocated,
            tables_filled: s.tables_filled - before.tables_filled,
            entries_filled: s.entries_filled - before.entries_filled,
            check_cycles: s.check_cycles - before.check_cycles,
            fill_cycles: s.fill_cycles - before.fill_cycles,
            ..rt_mm::Stats::default()
        };
        mmu.backend().xen.check_invariants().unwrap();
        let map: Vec<u64> = (0..16384)
            .map(|i| mmu.translate(k.root(), va + i * 4096).unwrap())
            .collect();
        let v = mmu.backend().xen.counters.validations - validated;
        (delta, v, map)
    })
}

#[test]
fn build_then_link_validates_each_new_l1_once_instead_of_each_entry() {
    let (fast, fast_validated, fast_map) = map_64_mib(true);
    let (slow, slow_validated, slow_map) = map_64_mib(false);
    assert_eq!(fast_map, slow_map, "both paths map the same");
    // Per-entry path: 16,384 leaf writes + 3 links + the new tables' read-only
    // direct-map entries, each validated on its own.
    assert_eq!(slow.tables_filled, 0);
    assert!(slow.pte_writes >= 16384, "{slow:?}");
    // Build-then-link: 32 L1s filled by plain stores; Xen sees per new table
    // one read-only update and one link (plus the L2 and L3 made empty).
    assert_eq!(fast.tables_filled, 32);
    assert_eq!(fast.entries_filled, 16384);
    assert_eq!(fast.tables_allocated, 34);
    assert!(fast.pte_writes <= 2 * 34, "{fast:?}");
    // Both make Xen validate the same 34 new tables (L1s: in full).
    assert_eq!(fast_validated, slow_validated);
    assert!(fast.hypercalls <= slow.hypercalls);
    assert!(fast.hypercalls <= 2, "{fast:?}");
    // The model's clock ticks once per reading: the checks are one timed
    // stretch per map, the fill one per table built (none on the slow path).
    assert_eq!((fast.check_cycles, fast.fill_cycles), (1, 32), "{fast:?}");
    assert_eq!((slow.check_cycles, slow.fill_cycles), (1, 0), "{slow:?}");
}

#[test]
fn the_model_lets_the_guest_store_only_into_ordinary_frames_it_maps_writable() {
    let b = boot(4096, 1024);
    let mut xen = b.backend.xen.clone();
    let kernel = xen.mfn(b.kernel).unwrap();
    // A page table: read-only to the guest.
    assert!(!xen.guest_write(kernel, 0, 0));
    // An ordinary frame in the direct map: writable.
    let data = xen.mfn(Pfn(2000)).unwrap();
    assert!(xen.guest_write(data, 3, 7));
    assert_eq!(xen.read(data, 3), 7);
    // A frame nobody maps (a new one from Xen): the store would fault.
    let mut list = [0u64; 1];
    xen.max_pages = xen.tot_pages() + 1;
    assert_eq!(xen.populate_physmap(&mut list), 1);
    assert!(!xen.guest_write(list[0], 0, 1));
    xen.check_invariants().unwrap();
}

#[test]
fn scattered_frames_map_in_one_batch() {
    let mut w = boot(4096, 1024);
    with_mmu(&mut w, |mmu, frames, k| {
        let list = [Pfn(3001), Pfn(2500), Pfn(3999), Pfn(2222)];
        let before = mmu.stats().hypercalls;
        mmu.map_frames(&k, 1 << 40, &list, Prot::RW, frames)
            .unwrap()
            .flush()
            .unwrap();
        assert_eq!(mmu.stats().hypercalls - before, 1);
        for (i, p) in list.iter().enumerate() {
            let e = mmu
                .translate(k.root(), (1 << 40) + i as u64 * 4096)
                .unwrap();
            assert_eq!(pte::frame(e), mmu.backend().hw_frame(*p).unwrap());
        }
        let table = k.root();
        assert_eq!(
            mmu.map_frames(&k, 1 << 40, &[table], Prot::RW, frames)
                .err(),
            Some(MapError::PageTableFrame(table))
        );
        mmu.backend().xen.check_invariants().unwrap();
    });
}

#[test]
fn a_refused_op_is_named() {
    let mut w = boot(4096, 1024);
    with_mmu(&mut w, |mmu, _frames, k| {
        // Bypass the mapper's check: queue a raw writable mapping of the root.
        let root_mfn = mmu.backend().hw_frame(k.root()).unwrap();
        let (l1, i) = mmu.find_l1(k.root(), 5 << 12).unwrap().unwrap();
        let mut out = [rt_mm::Outcome::Skipped; 2];
        let ops = [
            rt_mm::Op::Write {
                table: l1,
                index: i as u16,
                value: pte::make(root_mfn, Prot::RW.leaf_flags()),
            },
            rt_mm::Op::FlushTlb,
        ];
        mmu.backend_mut().submit(&ops, &mut out).unwrap();
        assert_eq!(
            out,
            [
                rt_mm::Outcome::Failed(XenError::EBUSY),
                rt_mm::Outcome::Done
            ]
        );
    });
}
