//! PVH entry (Xen PVH domU, or bare QEMU): `pvh_start32` has entered long mode
//! with the low 4 GiB identity-mapped (2 MiB pages) and calls [`rt_pvh_entry`]
//! with the physical address of `hvm_start_info`.
//!
//! Xen is detected through its CPUID leaves; without it the image is a plain
//! PVH guest of QEMU and talks to COM1.
use core::ptr::NonNull;

use rt_xen::abi::HvmParam;
use rt_xen::hypercall;
use rt_xen::pvh::{HvmStartInfo, MemmapEntry, ram_bytes};
use x86_64::registers::model_specific::Msr;

use crate::arch::{HYPERCALL_PAGE, cpuid};
use crate::console::{self, RingConsole, Sink};
use crate::platform::{self, Platform};
use crate::xen::{self, HYPERVISOR, SHARED_INFO_PAGE};

/// Everything below this is identity-mapped by the boot page tables.
const IDENTITY_LIMIT: u64 = 4 << 30;

/// The Xen CPUID base leaf, if we run on Xen ("XenVMMXenVMM", at least 2 leaves).
fn xen_cpuid_base() -> Option<u32> {
    (0x4000_0000u32..0x4001_0000).step_by(0x100).find(|&leaf| {
        let r = cpuid(leaf);
        [r.ebx, r.ecx, r.edx] == [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e]
            && r.eax.wrapping_sub(leaf) >= 2
    })
}

/// # Safety
/// Called once, by `pvh_start32`, with the address the loader passed in `ebx`.
#[unsafe(no_mangle)]
unsafe extern "C" fn rt_pvh_entry(start_info_pa: u64) -> ! {
    super::mark("rust");
    let xen_base = xen_cpuid_base();
    super::mark("cpuid");
    if xen_base.is_none() {
        // Console first, so that anything going wrong below can be reported.
        platform::set(Platform::QemuPvh);
        if let Some(serial) = crate::qemu::serial() {
            console::set(serial);
        }
    }
    crate::arch::idt::init();
    super::mark("idt");
    let xen_ok = xen_base.map(init_xen);
    if let Some(Err(what)) = xen_ok {
        crate::println!("rt: PVH setup failed: {what}");
        crate::exit::crash();
    }

    if start_info_pa == 0 || start_info_pa + size_of::<HvmStartInfo>() as u64 > IDENTITY_LIMIT {
        crate::println!("rt: hvm_start_info at {start_info_pa:#x} is not addressable");
        crate::exit::crash();
    }
    // SAFETY: the loader placed hvm_start_info at this address (checked mapped above).
    let si: &'static HvmStartInfo = unsafe { &*(start_info_pa as *const HvmStartInfo) };
    if let Err(e) = si.validate() {
        crate::println!("rt: invalid hvm_start_info: {e:?}");
        crate::exit::crash();
    }
    let memmap = memmap(si);
    let cmdline = cmdline(si.cmdline_paddr);
    super::enter_main(platform::platform(), ram_bytes(memmap), cmdline)
}

/// Xen PVH: hypercall page, shared_info, console ring.
fn init_xen(base: u32) -> Result<(), &'static str> {
    let msr = cpuid(base + 2).ebx;
    let page = (&raw const HYPERCALL_PAGE).cast::<u8>();
    // SAFETY: writing the page's physical address (== virtual here) to the Xen
    // MSR makes Xen fill it with vmcall/vmmcall stubs; the page is ours and
    // nothing runs from it yet.
    unsafe {
        Msr::new(msr).write(page as u64);
        HYPERVISOR.set(page);
    }
    platform::set(Platform::XenPvh);
    super::mark("hypercall-page");

    let gpfn = (&raw const SHARED_INFO_PAGE) as u64 >> 12;
    // SAFETY: the page at gpfn is a .bss page reserved for shared_info; nothing
    // else uses its contents.
    unsafe { hypercall::map_shared_info_at(&HYPERVISOR, gpfn) }
        .map_err(|_| "XENMEM_add_to_physmap(shared_info)")?;
    xen::shared_info_mapped();
    super::mark("shared-info");

    let pfn = hypercall::hvm_get_param(&HYPERVISOR, HvmParam::ConsolePfn)
        .map_err(|_| "HVM_PARAM_CONSOLE_PFN")?;
    let port = hypercall::hvm_get_param(&HYPERVISOR, HvmParam::ConsoleEvtchn)
        .map_err(|_| "HVM_PARAM_CONSOLE_EVTCHN")?;
    let addr = pfn
        .checked_mul(4096)
        .filter(|&a| a != 0 && a < IDENTITY_LIMIT)
        .ok_or("console pfn not mapped")?;
    let port = u32::try_from(port).map_err(|_| "console event channel out of range")?;
    let ring = NonNull::new(addr as *mut _).ok_or("console pfn 0")?;
    // SAFETY: the console page is ours and identity-mapped by the boot tables.
    console::set(Sink::Ring(unsafe { RingConsole::new(ring, port) }));
    super::mark("console");
    Ok(())
}

fn memmap(si: &HvmStartInfo) -> &'static [MemmapEntry] {
    let len = si.memmap_len();
    let end = si
        .memmap_paddr
        .saturating_add((len * size_of::<MemmapEntry>()) as u64);
    if len == 0 || end > IDENTITY_LIMIT {
        return &[];
    }
    // SAFETY: the loader placed `len` entries at memmap_paddr (bounded by
    // validate()), inside the identity map.
    unsafe { core::slice::from_raw_parts(si.memmap_paddr as *const MemmapEntry, len) }
}

fn cmdline(pa: u64) -> impl Iterator<Item = u8> {
    let len = if pa == 0 || pa >= IDENTITY_LIMIT - 4096 {
        0
    } else {
        1024
    };
    (0..len).map(move |i| {
        // SAFETY: inside the identity map (checked above); the loader wrote a
        // NUL-terminated string here and the consumer stops at the NUL.
        unsafe { ((pa + i) as *const u8).read_volatile() }
    })
}
