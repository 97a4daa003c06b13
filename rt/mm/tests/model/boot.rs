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
