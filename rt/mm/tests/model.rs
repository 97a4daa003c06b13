//! The MMU layer against the model of Xen's PV rules: the boot sequence, what
//! Xen refuses and accepts, batching, and random operation sequences.
use std::collections::BTreeMap;

use proptest::prelude::*;
use rt_mm::frames::BitmapFrames;
use rt_mm::kernel::{self, Layout};
use rt_mm::mmu::{DirectMap, PRIMARY};
use rt_mm::model::{ModelBackend, Ty, XenModel, errno};
use rt_mm::pte::{self, Level, table_flags};
use rt_mm::{Backend, MapError, Mmu, Pfn, Prot, Space};
use rt_xen::XenError;
use x86_64::structures::paging::PageTableFlags as F;

/// A domain as Xen's PV builder leaves it (see `XenModel::pv_domain`).
struct Domain {
    backend: ModelBackend,
    boot_l4: Pfn,
    region: u64,
    /// First frame after the boot tables.
    pt_end: u64,
}

fn xen_builder(nr_pages: u64, region: u64) -> Domain {
    let d = XenModel::pv_domain(nr_pages, region).unwrap();
    d.xen.check_invariants().unwrap();
    Domain {
        backend: ModelBackend::new(d.xen),
        boot_l4: d.boot_l4,
        region: d.region,
        pt_end: d.free_from,
    }
}

/// Frames the layout leaves unmapped (a guard page) and maps executable.
const GUARD: u64 = 300;
const TEXT: std::ops::Range<u64> = 256..280;

fn prot_of(p: Pfn) -> Option<Prot> {
    match p.0 {
        0 | GUARD => None,
        x if TEXT.contains(&x) => Some(Prot::RX),
        _ => Some(Prot::RW),
    }
}

struct Booted {
    backend: ModelBackend,
    types: Vec<u8>,
    bits: Vec<u64>,
    kernel: Pfn,
    shared_info: u64,
    nr_pages: u64,
}

const SHINFO_VA: u64 = 0x7000_0000;

fn boot(nr_pages: u64, region: u64) -> Booted {
    let mut d = xen_builder(nr_pages, region);
    let shared_info = d.backend.xen.add_foreign_owned();
    let mut types = vec![0u8; nr_pages as usize];
    let mut bits = vec![0u64; BitmapFrames::words_for(nr_pages)];
    let mut frames = BitmapFrames::new(&mut bits);
    frames.add_range(Pfn(1), Pfn(256));
    frames.add_range(Pfn(d.pt_end), Pfn(nr_pages));
    let kernel_root;
    let backend;
    {
        let mut mmu = Mmu::new(d.backend, &mut types, Some(d.boot_l4));
        let layout = Layout {
            nr_pages,
            readable: d.region,
            prot: &prot_of,
            machine: &[(SHINFO_VA, shared_info, Prot::RW)],
        };
        let k = kernel::build(
            &mut mmu,
            &mut frames,
            Some(Space::adopt(d.boot_l4, true)),
            &layout,
        )
        .unwrap();
        kernel_root = k.root();
        assert_eq!(mmu.active(), Some(kernel_root));
        d.backend = mmu.backend().clone();
        backend = d.backend;
    }
    Booted {
        backend,
        types,
        bits,
        kernel: kernel_root,
        shared_info,
        nr_pages,
    }
}

#[test]
fn boot_builds_a_pinned_direct_map_and_returns_the_boot_tables() {
    let nr = 8192; // 32 MiB
    let b = boot(nr, 1024);
    let xen = &b.backend.xen;
    xen.check_invariants().unwrap();
    let kmfn = xen.mfn(Pfn(b.kernel.0)).unwrap();
    assert_eq!(xen.base(), Some(kmfn));
    assert_eq!(
        xen.type_of(kmfn),
        Some((Ty::Table(Level::L4), 2, true)),
        "pinned + active"
    );
    let mut types = b.types.clone();
    let mmu = Mmu::new(b.backend.clone(), &mut types, Some(b.kernel));
    let mut expect_tables = 0;
    for p in 0..nr {
        let e = mmu.translate(b.kernel, p << 12).unwrap();
        let want = prot_of(Pfn(p));
        match want {
            None => assert_eq!(e, 0, "pfn {p} must be a hole"),
            Some(prot) => {
                assert_eq!(
                    pte::frame(e),
                    xen.mfn(Pfn(p)).unwrap(),
                    "pfn {p} maps its own mfn"
                );
                let is_table = mmu.table_level(Pfn(p)).is_some();
                expect_tables += usize::from(is_table);
                let got = Prot::of_entry(e);
                assert_eq!(
                    got.write,
                    prot.write && !is_table,
                    "pfn {p}: writable iff RW and not a table"
                );
                assert_eq!(got.exec, prot.exec, "pfn {p}: W^X as laid out");
            }
        }
    }
    // 1 L4 + 1 L3 + 1 L2 + 16 L1 for 32 MiB, and an L2 + L1 for shared_info's
    // mapping at 1.75 GiB; the boot tables are gone.
    assert_eq!(expect_tables, 21);
    let d = xen_builder(nr, 1024);
    for p in d.pt_end - 8..d.pt_end - 1 {
        assert_eq!(
            mmu.table_level(Pfn(p)),
            None,
            "boot table frame {p} is ordinary again"
        );
        assert!(
            Prot::of_entry(mmu.translate(b.kernel, p << 12).unwrap()).write,
            "and writable"
        );
    }
    let e = mmu.translate(b.kernel, SHINFO_VA).unwrap();
    assert_eq!(pte::frame(e), b.shared_info);
}

#[test]
fn boot_with_more_ram_than_the_boot_tables_map() {
    // 256 MiB with only 2 MiB mapped at start: phase 5 grows the map in chunks.
    let b = boot(65536, 512);
    b.backend.xen.check_invariants().unwrap();
    let mut types = b.types.clone();
    let mmu = Mmu::new(b.backend.clone(), &mut types, Some(b.kernel));
    for p in [1u64, 511, 512, 4096, 65535] {
        assert!(
            pte::present(mmu.translate(b.kernel, p << 12).unwrap()),
            "pfn {p} mapped"
        );
    }
}

/// A fresh Mmu over a copy of the booted state.
struct World {
    backend: ModelBackend,
    types: Vec<u8>,
    bits: Vec<u64>,
    kernel: Pfn,
    nr_pages: u64,
}

impl World {
    fn from(b: &Booted) -> World {
        World {
            backend: b.backend.clone(),
            types: b.types.clone(),
            bits: b.bits.clone(),
            kernel: b.kernel,
            nr_pages: b.nr_pages,
        }
    }
}

fn with_mmu<R>(
    w: &mut World,
    f: impl FnOnce(&mut Mmu<'_, ModelBackend>, &mut BitmapFrames<'_>, Space) -> R,
) -> R {
    let backend = w.backend.clone();
    let mut frames = BitmapFrames::resume(&mut w.bits, w.nr_pages);
    let mut mmu = Mmu::new(backend, &mut w.types, Some(w.kernel));
    mmu.set_direct_map(
        PRIMARY,
        Some(DirectMap {
            root: w.kernel,
            limit: w.nr_pages,
        }),
    );
    let r = f(&mut mmu, &mut frames, Space::adopt(w.kernel, true));
    w.backend = mmu.backend().clone();
    r
}

#[test]
fn the_mapper_refuses_a_writable_mapping_of_a_table_and_keeps_working() {
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
    let mut w = World::from(&b);
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
fn scattered_frames_map_in_one_batch() {
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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

/// Random operations on random spaces, checked against a shadow map and the
/// model's invariants after every step.
#[derive(Clone, Debug)]
enum Step {
    NewSpace,
    Map {
        space: usize,
        page: u64,
        n: u64,
        frame: u64,
        write: bool,
        exec: bool,
    },
    MapTable {
        space: usize,
        page: u64,
    },
    Protect {
        space: usize,
        page: u64,
        n: u64,
        write: bool,
    },
    Unmap {
        space: usize,
        page: u64,
        n: u64,
    },
    Activate {
        space: usize,
    },
    Drop {
        space: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::NewSpace),
        6 => (0..4usize, 0..2048u64, 1..48u64, 0..200u64, any::<bool>(), any::<bool>())
            .prop_map(|(space, page, n, frame, write, exec)| Step::Map { space, page, n, frame, write, exec }),
        1 => (0..4usize, 0..2048u64).prop_map(|(space, page)| Step::MapTable { space, page }),
        3 => (0..4usize, 0..2048u64, 1..32u64, any::<bool>()).prop_map(|(space, page, n, write)| Step::Protect { space, page, n, write }),
        3 => (0..4usize, 0..2048u64, 1..64u64).prop_map(|(space, page, n)| Step::Unmap { space, page, n }),
        1 => (0..4usize).prop_map(|space| Step::Activate { space }),
        1 => (0..4usize).prop_map(|space| Step::Drop { space }),
    ]
}

/// What a space should map: user page number → (pfn, rights).
type Shadow = BTreeMap<u64, (u64, Prot)>;

/// User mappings live at 1 TiB + page * 4 KiB, outside the shared direct map,
/// and spread over two L2 tables (pages 0..2048 cover 8 MiB).
const USER_BASE: u64 = 1 << 40;
/// Data frames user mappings may target (never handed out as tables).
const DATA: u64 = 3600;

/// Frames of the domain the random sequences run in (16 MiB).
const PAGES: u64 = 4096;

thread_local! {
    static BOOTED: Booted = boot(PAGES, 1024);
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut w = BOOTED.with(World::from);
    // Keep the data frames out of the frame source.
    let mut f = BitmapFrames::resume(&mut w.bits, w.nr_pages);
    for p in DATA..DATA + 256 {
        f.take(Pfn(p));
    }
    with_mmu(&mut w, |mmu, frames, k| {
        let mut spaces: Vec<(Space, Shadow)> = Vec::new();
        let total = frames.free_count();
        for s in steps {
            let touched: std::ops::Range<u64> = match *s {
                Step::Map { page, n, .. }
                | Step::Protect { page, n, .. }
                | Step::Unmap { page, n, .. } => page..(page + n).min(2048),
                Step::MapTable { page, .. } => page..page + 1,
                _ => 0..0,
            };
            match s.clone() {
                Step::NewSpace => {
                    if spaces.len() < 4 {
                        let sp = mmu
                            .new_space(frames, Some((&k, 0..1)))
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        spaces.push((sp, BTreeMap::new()));
                    }
                }
                Step::Map {
                    space,
                    page,
                    n,
                    frame,
                    write,
                    exec,
                } => {
                    let Some((sp, shadow)) = spaces.get_mut(space) else {
                        continue;
                    };
                    let n = n.min(2048 - page);
                    let prot = Prot { write, exec };
                    let first = DATA + frame.min(255 - n.min(255));
                    let n = n.min(256);
                    mmu.map_range(sp, USER_BASE + page * 4096, Pfn(first), n, prot, frames)
                        .and_then(|p| p.flush())
                        .map_err(|e| TestCaseError::fail(format!("map: {e}")))?;
                    for i in 0..n {
                        shadow.insert(page + i, (first + i, prot));
                    }
                }
                Step::MapTable { space, page } => {
                    let Some((sp, _)) = spaces.get_mut(space) else {
                        continue;
                    };
                    let table = sp.root();
                    let r = mmu.map_range(sp, USER_BASE + page * 4096, table, 1, Prot::RW, frames);
                    prop_assert_eq!(r.err(), Some(MapError::PageTableFrame(table)));
                }
                Step::Protect {
                    space,
                    page,
                    n,
                    write,
                } => {
                    let Some((sp, shadow)) = spaces.get_mut(space) else {
                        continue;
                    };
                    let n = n.min(2048 - page);
                    let all = (page..page + n).all(|p| shadow.contains_key(&p));
                    let prot = Prot { write, exec: false };
                    let r = mmu
                        .protect_range(sp, USER_BASE + page * 4096, n, prot)
                        .and_then(|p| p.flush());
                    if all {
                        r.map_err(|e| TestCaseError::fail(format!("protect: {e}")))?;
                        for p in page..page + n {
                            shadow.get_mut(&p).unwrap().1 = prot;
                        }
                    } else {
                        prop_assert!(
                            matches!(r, Err(MapError::NotMapped(_))),
                            "protect over a hole: {:?}",
                            r
                        );
                    }
                }
                Step::Unmap { space, page, n } => {
                    let Some((sp, shadow)) = spaces.get_mut(space) else {
                        continue;
                    };
                    let n = n.min(2048 - page);
                    mmu.unmap_range(sp, USER_BASE + page * 4096, n)
                        .and_then(|p| p.flush())
                        .map_err(|e| TestCaseError::fail(format!("unmap: {e}")))?;
                    for p in page..page + n {
                        shadow.remove(&p);
                    }
                }
                Step::Activate { space } => {
                    let Some((sp, _)) = spaces.get_mut(space) else {
                        continue;
                    };
                    mmu.activate(sp)
                        .map_err(|e| TestCaseError::fail(format!("activate: {e}")))?;
                }
                Step::Drop { space } => {
                    if space >= spaces.len() {
                        continue;
                    }
                    let (sp, _) = spaces.remove(space);
                    if mmu.active() == Some(sp.root()) {
                        let mut kk = Space::adopt(k.root(), true);
                        mmu.activate(&mut kk)
                            .map_err(|e| TestCaseError::fail(format!("back to kernel: {e}")))?;
                    }
                    mmu.release(sp, frames)
                        .map_err(|(_, e)| TestCaseError::fail(format!("release: {e}")))?;
                }
            }
            // Invariants after every step.
            mmu.backend()
                .xen
                .check_invariants()
                .map_err(TestCaseError::fail)?;
            for (sp, shadow) in &spaces {
                for page in shadow.keys().copied().chain(touched.clone()) {
                    let e = mmu
                        .translate(sp.root(), USER_BASE + page * 4096)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    match shadow.get(&page) {
                        Some(&(pfn, prot)) => {
                            prop_assert_eq!(
                                pte::frame(e),
                                mmu.backend().hw_frame(Pfn(pfn)).unwrap()
                            );
                            prop_assert_eq!(Prot::of_entry(e), prot);
                        }
                        None => prop_assert_eq!(e, 0, "page {} should be unmapped", page),
                    }
                }
                // The direct map is shared, unchanged, and still ours.
                prop_assert!(pte::present(mmu.translate(sp.root(), 100 << 12).unwrap()));
            }
            // Frames are conserved: free + tables of live spaces == what we started with.
            let tables = (0..PAGES)
                .filter(|&p| mmu.table_level(Pfn(p)).is_some())
                .count() as u64;
            prop_assert_eq!(frames.free_count() + tables, total + base_tables());
        }
        // Tear down: everything returns.
        if mmu.active() != Some(k.root()) {
            let mut kk = Space::adopt(k.root(), true);
            mmu.activate(&mut kk).unwrap();
        }
        for (sp, _) in spaces {
            mmu.release(sp, frames)
                .map_err(|(_, e)| TestCaseError::fail(format!("release: {e}")))?;
        }
        prop_assert_eq!(frames.free_count(), total);
        mmu.backend()
            .xen
            .check_invariants()
            .map_err(TestCaseError::fail)?;
        Ok(())
    })
}

/// Tables of the kernel space right after boot.
fn base_tables() -> u64 {
    BOOTED.with(|b| b.types.iter().filter(|&&t| t != 0).count() as u64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_keep_xens_invariants(steps in proptest::collection::vec(step(), 1..24)) {
        run(&steps)?;
    }
}

// ---------------------------------------------------------------------------
// Heap regions and the balloon, on the model.

use rt_mm::model::ModelReservation;
use rt_mm::region::{map_fresh, unmap_fresh};
use rt_mm::{Balloon, BalloonError, FrameAllocator};

const HEAP_VA: u64 = 0x4000_0000_0000;

/// Runs `f` with the booted world's MMU, a frame allocator over its free
/// frames, and an empty balloon.
fn with_memory<R>(
    w: &mut World,
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
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
    let b = boot(8192, 1024);
    let mut w = World::from(&b);
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
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
fn a_frame_xen_would_keep_is_not_given_back() {
    let b = boot(4096, 1024);
    let mut w = World::from(&b);
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
        let mut w = World::from(&b);
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
