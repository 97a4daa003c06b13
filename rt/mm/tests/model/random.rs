//! Random operations on random spaces, checked against a shadow map and the
//! model's invariants after every step.
use std::collections::BTreeMap;

use proptest::prelude::*;
use rt_mm::frames::BitmapFrames;
use rt_mm::pte::{self};
use rt_mm::{Backend, MapError, Pfn, Prot, Space};

use crate::common::*;

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
    let mut w = BOOTED.with(Booted::clone);
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
