//! The boot sequence on the model: the direct map, pinning, the boot tables given back.

use rt_mm::model::Ty;
use rt_mm::pte::{self, Level};
use rt_mm::{Mmu, Pfn, Prot};

use crate::common::*;

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

#[test]
fn the_builds_steps_split_the_mappers_counters_whole() {
    // 256 MiB with 2 MiB mapped at start: every step has work.
    let b = boot(65536, 512);
    let sum = |f: fn(&rt_mm::kernel::Step) -> u64| b.steps.iter().map(f).sum::<u64>();
    assert_eq!(sum(|s| s.hypercalls), b.stats.hypercalls);
    assert_eq!(sum(|s| s.pte_writes), b.stats.pte_writes);
    assert_eq!(sum(|s| s.entries_filled), b.stats.entries_filled);
    assert_eq!(sum(|s| s.tables), b.stats.tables_allocated);
    assert_eq!(sum(|s| s.released), b.stats.tables_released);
    let [adopt, first, activate, release, rest] = b.steps;
    assert_eq!(
        (adopt.hypercalls, adopt.tables, adopt.pte_writes),
        (0, 0, 0),
        "adopting the boot tables only records their levels"
    );
    assert!(first.tables > 0 && first.entries_filled > 0 && first.hypercalls > 0);
    assert!(
        first.entries_filled < 1024,
        "the first step maps what the boot tables map"
    );
    assert!(activate.hypercalls > 0, "pin and switch");
    assert_eq!((activate.tables, activate.entries_filled), (0, 0));
    assert!(release.released > 0, "the boot tables go back");
    assert_eq!(release.tables, 0);
    assert!(rest.tables > 0 && rest.entries_filled > 60_000, "{rest:?}");
    // The model's clock ticks once per reading: every step read it at least
    // at its end, and the steps that checked or filled frames more often.
    assert!(b.steps.iter().all(|s| s.cycles >= 1), "{:?}", b.steps);
    assert!(rest.cycles > activate.cycles);
    for s in &b.steps {
        assert!(
            s.check_cycles + s.fill_cycles + s.submit_cycles <= s.cycles,
            "{s:?}"
        );
        assert_eq!(s.submit_cycles > 0, s.hypercalls > 0, "{s:?}");
        // The model steals a fixed time per hypercall: each step's stolen
        // time is its hypercalls' (the mapper issues every one it counts).
        assert_eq!(
            s.stolen_ns,
            s.hypercalls * rt_mm::model::STOLEN_PER_HYPERCALL,
            "{s:?}"
        );
    }
}
