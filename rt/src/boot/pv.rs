//! Xen PV entry (domU and dom0): `pv_start64` calls [`rt_pv_entry`] on our own
//! stack with `start_info` in `rdi`.
//!
//! Xen has mapped the image, the p2m, start_info, the console and xenstore rings
//! and its boot page tables 1:1 at VIRT_BASE 0 (virtual == pseudo-physical), and
//! filled the hypercall page. Event upcalls are masked.
use core::ptr::NonNull;

use rt_mm::p2m::{M2p, P2m};
use rt_mm::{Mfn, Pfn};
use rt_xen::abi::{self, start_info};
use rt_xen::hypercall;

use crate::arch::HYPERCALL_PAGE;
use crate::console::{self, RingConsole, Sink};
use crate::platform::{self, Platform};
use crate::xen::{self, HYPERVISOR, SHARED_INFO_PAGE};

/// PTE bits for a present, writable, accessed and dirty 4 KiB mapping.
const PTE_RW_DATA: u64 = 0x63;

/// Xen's read-only M2P window.
struct XenM2p;

impl M2p for XenM2p {
    fn raw(&self, mfn: Mfn) -> Option<u64> {
        let entries = (abi::MACH2PHYS_VIRT_END - abi::MACH2PHYS_VIRT_START) / 8;
        if mfn.0 >= entries {
            return None;
        }
        // SAFETY: Xen maps the M2P read-only at MACH2PHYS_VIRT_START into every PV
        // guest; the index is inside the window. Only asked for our own frames.
        Some(unsafe { ((abi::MACH2PHYS_VIRT_START + mfn.0 * 8) as *const u64).read_volatile() })
    }
}

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

    super::mark("rust");
    let traps = crate::trap::install_pv();
    super::mark("traps");

    // shared_info: remap one page of our .bss onto the machine frame Xen gave.
    let va = (&raw const SHARED_INFO_PAGE) as u64;
    // SAFETY: nothing references SHARED_INFO_PAGE's old contents; after this the
    // page is only accessed through raw pointers as shared_info.
    let mapped = unsafe {
        hypercall::update_va_mapping(
            &HYPERVISOR,
            va,
            si.shared_info | PTE_RW_DATA,
            abi::UVMF_INVLPG,
        )
    };
    if mapped.is_ok() {
        xen::shared_info_mapped();
    }
    super::mark("shared-info");

    let console_ok = dom0 || open_console_ring(si).is_some();
    super::mark("console");

    if let Err(e) = traps {
        crate::println!(
            "rt: set_trap_table failed: {e} (exceptions will kill the domain silently)"
        );
    }
    if let Err(e) = mapped {
        crate::println!("rt: mapping shared_info failed: {e} (no clock, no events)");
    }
    if !console_ok {
        // Nowhere to print to: say it in Xen's log (debug Xen shows it), then stop.
        let _ = hypercall::console_write(&HYPERVISOR, b"rt: console ring mfn is not ours\n");
        crate::exit::crash();
    }

    let cmdline = si.cmd_line.iter().map(|&c| c as u8);
    super::enter_main(
        platform::platform(),
        si.nr_pages * rt_mm::PAGE_SIZE,
        cmdline,
    )
}

/// Finds the console ring through the M2P (verified against the p2m) and makes it
/// the console. The ring lies in the initial 1:1 mapping, so its address is pfn << 12.
fn open_console_ring(si: &'static start_info) -> Option<()> {
    // SAFETY: Xen maps the p2m array (nr_pages entries) at mfn_list for us.
    let list =
        unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) };
    let p2m = P2m::new(list);
    // SAFETY: reading a plain-integer field of the union Xen filled for a domU.
    let (mfn, port) = unsafe { (Mfn(si.console.domU.mfn), si.console.domU.evtchn) };
    let pfn: Pfn = XenM2p.pfn(mfn, &p2m)?;
    let page = NonNull::new(pfn.addr() as *mut _)?;
    // SAFETY: the console page is this domain's, mapped 1:1 in the initial region.
    console::set(Sink::Ring(unsafe { RingConsole::new(page, port) }));
    Some(())
}
