//! Xen PV entry (domU and dom0): `pv_start64` calls [`rt_pv_entry`] on our own
//! stack with `start_info` in `rdi`.
//!
//! Xen has mapped the image, the p2m, start_info, the console and xenstore rings
//! and its boot page tables 1:1 at VIRT_BASE 0 (virtual == pseudo-physical), and
//! filled the hypercall page. Event upcalls are masked.
use core::ptr::NonNull;

use rt_mm::Mfn;
use rt_mm::p2m::{M2p, P2m};
use rt_xen::abi::hypercall;
use rt_xen::abi::{self, start_info};

use crate::arch::HYPERCALL_PAGE;
use crate::console::{self, RingConsole, Sink};
use crate::mm::{BootMemory, InitError, Pfn, Prot, PvBackend, XenM2p};
use crate::platform::{self, Platform};
use crate::xen::{self, HYPERVISOR, SHARED_INFO_PAGE};
use rt_mm::Backend;

/// # Safety
/// Called once, by `pv_start64`, with the `start_info` pointer Xen passed.
#[unsafe(no_mangle)]
unsafe extern "C" fn rt_pv_entry(si: *const start_info) -> ! {
    // SAFETY: Xen filled HYPERCALL_PAGE (XEN_ELFNOTE_HYPERCALL_PAGE) before starting us.
    unsafe { HYPERVISOR.set((&raw const HYPERCALL_PAGE).cast()) };
    // SAFETY: Xen maps start_info for us and never moves it while we run.
    let si: &'static start_info = unsafe { &*si };
    let dom0 = si.flags & abi::SIF_INITDOMAIN != 0;
    platform::set(if dom0 {
        Platform::XenPvDom0
    } else {
        Platform::XenPv
    });
    if dom0 {
        console::set(Sink::ConsoleIo);
    }

    // Before the first mark: the timeline's stolen time counts from here.
    let runstate = xen::runstate::register();
    crate::bootinfo::mark("rust");
    let traps = crate::trap::install_pv();
    crate::bootinfo::mark("traps");

    // shared_info: remap one page of our .bss onto the machine frame Xen gave.
    xen::set_start_info(si);
    let mapped = xen::map_shared_info_pv(si.shared_info);
    crate::bootinfo::mark("shared-info");

    let console_ok = dom0 || open_console_ring(si).is_some();
    if !dom0 {
        find_store_ring(si);
    }
    crate::bootinfo::mark("console");

    if let Err(e) = traps {
        crate::console::println!(
            "rt: set_trap_table failed: {e} (exceptions will kill the domain silently)"
        );
    }
    if let Err(e) = runstate {
        crate::console::println!("rt: Xen refused the runstate area: {e} (stolen time reads 0)");
    }
    if let Err(e) = mapped {
        crate::console::println!("rt: mapping shared_info failed: {e} (no clock, no events)");
    }
    if !console_ok {
        // Nowhere to print to: say it in Xen's log (debug Xen shows it), then stop.
        // Best effort: the domain is crashed next whether or not Xen logs this.
        if hypercall::console_write(&HYPERVISOR, b"rt: console ring mfn is not ours\n").is_err() {
            core::hint::spin_loop();
        }
        crate::exit::crash();
    }

    if let Err(e) = init_memory(si) {
        crate::console::println!("rt: building the address space failed: {e}");
        crate::exit::crash();
    }
    crate::bootinfo::mark("space");
    if let Err(e) = crate::mm::publish_p2m(si.mfn_list, si.nr_pages) {
        crate::console::println!(
            "rt: publishing the p2m for the toolstack failed: {e} (xl dump-core will not work)"
        );
    }
    crate::bootinfo::mark("p2m");

    let mut line = [0u8; 1024];
    for (d, &c) in line.iter_mut().zip(si.cmd_line.iter()) {
        *d = c as u8;
    }
    super::enter_main(platform::platform(), si.nr_pages * rt_mm::PAGE_SIZE, &line)
}

/// Leaves Xen's boot tables for the runtime's own address space.
fn init_memory(si: &'static start_info) -> Result<(), InitError> {
    // SAFETY: Xen maps the p2m array (nr_pages entries) read-write at mfn_list
    // for us; it is part of the domain's own memory, stays mapped in the new
    // space, and from here on only the backend refers to it (the console's
    // look-up before this ended).
    let p2m: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(si.mfn_list as *mut u64, si.nr_pages as usize) };
    let backend = PvBackend::new(p2m);
    let boot_root = Pfn(si.pt_base >> 12);
    // Xen mapped [0, end) 1:1, rounded to whole L1 tables: count the boot L2's entries.
    let readable = boot_mapped_pages(&backend, boot_root).min(si.nr_pages);
    let pt_end = boot_root.0 + si.nr_pt_frames;
    // Free: below the image (page 0 stays unused), and after the boot tables
    // and the one-page boot stack Xen placed after them.
    let free = [(1, 0x100), (pt_end + 1, si.nr_pages)];
    let shinfo_va = (&raw const SHARED_INFO_PAGE) as u64;
    let machine = [(shinfo_va, si.shared_info >> 12, Prot::RW)];
    let boot = BootMemory {
        nr_pages: si.nr_pages,
        readable,
        free: &free,
        ram: &[(0, si.nr_pages)],
        skip: &[shinfo_va >> 12],
        machine: &machine,
        boot_root: Some(boot_root),
        free_after: (0, 0),
    };
    crate::mm::init(backend.install().ok_or(InitError::Again)?, &boot)
}

/// Pages the boot tables map from address 0 (whole L1 tables under L4[0]/L3[0]).
fn boot_mapped_pages(b: &PvBackend, root: Pfn) -> u64 {
    let next = |t: Pfn, i: usize| -> Option<Pfn> {
        let e = b.read(t, i);
        if rt_mm::pte::present(e) {
            b.pfn_of(rt_mm::pte::frame(e))
        } else {
            None
        }
    };
    let Some(l2) = next(root, 0).and_then(|l3| next(l3, 0)) else {
        return 0;
    };
    (0..512).take_while(|&i| next(l2, i).is_some()).count() as u64 * 512
}

/// The pfn of one of our machine frames during boot: the M2P, verified
/// against the p2m Xen handed over (before the MMU backend owns it).
fn boot_pfn_of(si: &'static start_info, mfn: Mfn) -> Option<Pfn> {
    // SAFETY: Xen maps the p2m array (nr_pages entries) at mfn_list for us;
    // this borrow ends with the function, before the MMU backend takes it.
    let list: &[u64] =
        unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) };
    XenM2p.pfn(mfn, &P2m::new(list))
}

/// Records where the xenstore ring is: its pfn through the M2P (verified
/// against the p2m); the page lies in the initial 1:1 region, which the
/// runtime's direct map keeps at the same address.
fn find_store_ring(si: &'static start_info) {
    if let Some(pfn) = boot_pfn_of(si, Mfn(si.store_mfn)) {
        crate::xenstore::set_location(pfn.addr(), si.store_evtchn);
    }
}

/// Finds the console ring through the M2P (verified against the p2m) and makes it
/// the console. The ring lies in the initial 1:1 mapping, so its address is pfn << 12.
fn open_console_ring(si: &'static start_info) -> Option<()> {
    // SAFETY: reading a plain-integer field of the union Xen filled for a domU.
    let (mfn, port) = unsafe { (Mfn(si.console.domU.mfn), si.console.domU.evtchn) };
    let pfn: Pfn = boot_pfn_of(si, mfn)?;
    let page = NonNull::new(pfn.addr() as *mut _)?;
    // SAFETY: the console page is this domain's, mapped 1:1 in the initial region.
    console::set(Sink::Ring(unsafe { RingConsole::new(page, port) }));
    Some(())
}
