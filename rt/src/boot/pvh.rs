//! PVH entry (Xen PVH domU, or bare QEMU): `pvh_start32` has entered long mode
//! with the low 4 GiB identity-mapped (2 MiB pages) and calls [`rt_pvh_entry`]
//! with the physical address of `hvm_start_info`.
//!
//! Xen is detected through its CPUID leaves; without it the image is a plain
//! PVH guest of QEMU and talks to COM1.
use core::ptr::NonNull;

use rt_xen::abi::HvmParam;
use rt_xen::abi::hypercall;
use rt_xen::abi::pvh::{HvmStartInfo, MEMMAP_TYPE_RAM, MemmapEntry, ram_bytes};
use x86_64::registers::model_specific::Msr;

use crate::arch::{HYPERCALL_PAGE, cpuid};
use crate::console::{self, RingConsole, Sink};
use crate::mm::{BootMemory, InitError, NativeBackend, PAGE_SIZE, Prot};
use crate::platform::{self, Platform};
use crate::xen::{self, HYPERVISOR};

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
    crate::bootinfo::mark("rust");
    let xen_base = xen_cpuid_base();
    crate::bootinfo::mark("cpuid");
    if xen_base.is_none() {
        // Console first, so that anything going wrong below can be reported.
        platform::set(Platform::QemuPvh);
        if let Some(serial) = crate::qemu::serial() {
            console::set(Sink::Serial(serial));
        }
    }
    crate::arch::idt::init();
    crate::bootinfo::mark("idt");
    let special = match xen_base.map(init_xen) {
        Some(Ok(pages)) => pages,
        Some(Err(what)) => {
            crate::console::println!("rt: PVH setup failed: {what}");
            crate::exit::crash();
        }
        None => [0; 2],
    };

    if start_info_pa == 0 || start_info_pa + size_of::<HvmStartInfo>() as u64 > IDENTITY_LIMIT {
        crate::console::println!("rt: hvm_start_info at {start_info_pa:#x} is not addressable");
        crate::exit::crash();
    }
    // SAFETY: the loader placed hvm_start_info at this address (checked mapped above).
    let si: &'static HvmStartInfo = unsafe { &*(start_info_pa as *const HvmStartInfo) };
    if let Err(e) = si.validate() {
        crate::console::println!("rt: invalid hvm_start_info: {e}");
        crate::exit::crash();
    }
    // Copy what we need out of the loader's data before memory is handed out:
    // those pages may become free frames.
    let mut ram = [(0u64, 0u64); MAX_RAM_RANGES];
    let mut nram = 0;
    for e in memmap(si).iter().filter(|e| e.kind == MEMMAP_TYPE_RAM) {
        if nram < ram.len() {
            ram[nram] = (
                e.addr.div_ceil(PAGE_SIZE),
                (e.addr.saturating_add(e.size)) >> 12,
            );
            nram += 1;
        }
    }
    let ram = &ram[..nram];
    let memory = ram_bytes(memmap(si));
    let mut line = [0u8; 1024];
    for (d, c) in line.iter_mut().zip(cmdline(si.cmdline_paddr)) {
        *d = c;
    }
    let loader_data = loader_pages(si, start_info_pa);

    if let Err(e) = init_memory(ram, &loader_data, special) {
        crate::console::println!("rt: building the address space failed: {e}");
        crate::exit::crash();
    }
    crate::bootinfo::mark("space");
    super::enter_main(platform::platform(), memory, &line)
}

/// RAM ranges we keep from the memory map.
const MAX_RAM_RANGES: usize = 8;

/// Frames holding the loader's data (start info, memory map, command line):
/// never handed out while we still read them.
fn loader_pages(si: &HvmStartInfo, start_info_pa: u64) -> [u64; 3] {
    [
        start_info_pa >> 12,
        si.memmap_paddr >> 12,
        si.cmdline_paddr >> 12,
    ]
}

/// Builds the runtime's address space over the RAM ranges and switches to it.
fn init_memory(ram: &[(u64, u64)], loader: &[u64; 3], special: [u64; 2]) -> Result<(), InitError> {
    let nr_pages = ram.iter().map(|r| r.1).max().unwrap_or(0);
    let image_end = crate::arch::image_layout().data.1;
    // Free: RAM outside the image and the loader's pages, and never page 0.
    let mut free = [(0u64, 0u64); 8];
    let mut n = 0;
    for &(s, e) in ram {
        let mut cut = [s.max(1), e];
        for part in [(cut[0], cut[1].min(0x100)), (cut[0].max(image_end), cut[1])] {
            cut = [part.0, part.1];
            let mut start = cut[0];
            let mut pages: [u64; 3] = *loader;
            pages.sort_unstable();
            for &p in pages.iter().filter(|&&p| p >= cut[0] && p < cut[1]) {
                if start < p && n < free.len() {
                    free[n] = (start, p);
                    n += 1;
                }
                start = start.max(p + 1);
            }
            if start < cut[1] && n < free.len() {
                free[n] = (start, cut[1]);
                n += 1;
            }
        }
    }
    let mut machine = [(0u64, 0u64, Prot::RW); 2];
    let mut nm = 0;
    for p in special.into_iter().filter(|&p| p != 0) {
        machine[nm] = (p << 12, p, Prot::RW);
        nm += 1;
    }
    let boot_tables = (&raw const crate::arch::boot_pml4) as u64 >> 12;
    let boot = BootMemory {
        nr_pages,
        readable: nr_pages.min(IDENTITY_LIMIT >> 12),
        free: &free[..n],
        ram,
        skip: &[],
        machine: &machine[..nm],
        boot_root: None,
        free_after: (boot_tables, boot_tables + 6),
    };
    let machine = NativeBackend::new(nr_pages).install();
    crate::mm::init(machine.ok_or(InitError::Again)?, &boot)
}

/// Xen PVH: hypercall page, shared_info, console ring. Returns the frames of
/// the console and xenstore rings (outside RAM, mapped by the runtime too).
fn init_xen(base: u32) -> Result<[u64; 2], &'static str> {
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
    let runstate = xen::runstate::register();
    crate::bootinfo::mark("hypercall-page");

    xen::map_shared_info_pvh().map_err(|_| "XENMEM_add_to_physmap(shared_info)")?;
    crate::bootinfo::mark("shared-info");

    let pfn = hypercall::hvm_get_param(&HYPERVISOR, HvmParam::ConsolePfn)
        .map_err(|_| "HVM_PARAM_CONSOLE_PFN")?;
    let port = hypercall::hvm_get_param(&HYPERVISOR, HvmParam::ConsoleEvtchn)
        .map_err(|_| "HVM_PARAM_CONSOLE_EVTCHN")?;
    let addr = pfn
        .checked_mul(PAGE_SIZE)
        .filter(|&a| a != 0 && a < IDENTITY_LIMIT)
        .ok_or("console pfn not mapped")?;
    let port = u32::try_from(port).map_err(|_| "console event channel out of range")?;
    let ring = NonNull::new(addr as *mut _).ok_or("console pfn 0")?;
    // SAFETY: the console page is ours and identity-mapped by the boot tables.
    console::set(Sink::Ring(unsafe { RingConsole::new(ring, port) }));
    crate::bootinfo::mark("console");
    if let Err(e) = runstate {
        crate::console::println!("rt: Xen refused the runstate area: {e} (stolen time reads 0)");
    }
    let store = hypercall::hvm_get_param(&HYPERVISOR, HvmParam::StorePfn)
        .map_err(|_| "HVM_PARAM_STORE_PFN")?;
    let store_port = hypercall::hvm_get_param(&HYPERVISOR, HvmParam::StoreEvtchn)
        .map_err(|_| "HVM_PARAM_STORE_EVTCHN")?;
    // The page is mapped at its identity address (the boot tables, then the
    // runtime's own space: `init_memory` maps it as a machine frame).
    if let (Some(va), Ok(port)) = (
        store
            .checked_mul(PAGE_SIZE)
            .filter(|&a| a != 0 && a < IDENTITY_LIMIT),
        u32::try_from(store_port),
    ) {
        crate::xenstore::set_location(va, port);
    }
    Ok([pfn, store])
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
    let len = if pa == 0 || pa >= IDENTITY_LIMIT - PAGE_SIZE {
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
