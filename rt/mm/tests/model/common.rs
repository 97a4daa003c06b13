//! A domain as Xen's PV builder leaves it, booted by the runtime's own
//! sequence on the model, and fresh mappers over copies of it.

use rt_mm::frames::BitmapFrames;
use rt_mm::kernel::{self, DirectRights, Layout};
use rt_mm::mmu::{DirectMap, PRIMARY};
use rt_mm::model::{ModelBackend, XenModel};
use rt_mm::{Mmu, Pfn, Prot, Space};

/// A domain as Xen's PV builder leaves it (see `XenModel::pv_domain`).
pub(crate) struct Domain {
    pub(crate) backend: ModelBackend,
    pub(crate) boot_l4: Pfn,
    pub(crate) region: u64,
    /// First frame after the boot tables.
    pub(crate) pt_end: u64,
}

pub(crate) fn xen_builder(nr_pages: u64, region: u64) -> Domain {
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
pub(crate) const GUARD: u64 = 300;
pub(crate) const TEXT: std::ops::Range<u64> = 256..280;

/// The layout's rights over `ram`: holes at page 0 and `GUARD`, `TEXT`
/// executable.
pub(crate) fn rights(ram: &[(u64, u64); 1]) -> DirectRights<'_> {
    DirectRights {
        ram,
        holes: &[0, GUARD],
        text: (TEXT.start, TEXT.end),
        rodata: (0, 0),
    }
}

/// Frame `p`'s rights in the layout, asked one frame at a time: what the
/// boot's run-by-run build must agree with.
pub(crate) fn prot_of(p: Pfn) -> Option<Prot> {
    rights(&[(0, u64::MAX)]).prot(p.0)
}

/// The booted domain; tests work on copies of it.
#[derive(Clone)]
pub(crate) struct Booted {
    pub(crate) backend: ModelBackend,
    pub(crate) types: Vec<u8>,
    pub(crate) bits: Vec<u64>,
    pub(crate) kernel: Pfn,
    pub(crate) shared_info: u64,
    pub(crate) nr_pages: u64,
    /// What each step of the build cost, and the mapper's counters after it.
    pub(crate) steps: [kernel::Step; kernel::STEPS],
    pub(crate) stats: rt_mm::Stats,
}

pub(crate) const SHINFO_VA: u64 = 0x7000_0000;

pub(crate) fn boot(nr_pages: u64, region: u64) -> Booted {
    let mut d = xen_builder(nr_pages, region);
    let shared_info = d.backend.xen.add_foreign_owned();
    let mut types = vec![0u8; nr_pages as usize];
    let mut bits = vec![0u64; BitmapFrames::words_for(nr_pages)];
    let mut frames = BitmapFrames::new(&mut bits);
    frames.add_range(Pfn(1), Pfn(256));
    frames.add_range(Pfn(d.pt_end), Pfn(nr_pages));
    let kernel_root;
    let backend;
    let (steps, stats);
    {
        let mut mmu = Mmu::new(d.backend, &mut types, Some(d.boot_l4));
        let layout = Layout {
            nr_pages,
            readable: d.region,
            rights: &|p| rights(&[(0, nr_pages)]).run(p),
            machine: &[(SHINFO_VA, shared_info, Prot::RW)],
        };
        let (k, s) = kernel::build_steps(
            &mut mmu,
            &mut frames,
            Some(Space::adopt(d.boot_l4, true)),
            &layout,
        )
        .unwrap();
        (steps, stats) = (s, mmu.stats());
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
        steps,
        stats,
    }
}

pub(crate) fn with_mmu<R>(
    w: &mut Booted,
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
