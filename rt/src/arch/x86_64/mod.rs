//! x86_64 glue: entry assembly, Xen notes, exception stubs, and the few CPU
//! instructions the runtime uses.
use core::arch::global_asm;

use rt_xen::abi::PAGE_SIZE;

pub mod idt;

global_asm!(include_str!("entry.S"), options(att_syntax));
global_asm!(include_str!("notes.S"), options(att_syntax));
global_asm!(include_str!("traps.S"), options(att_syntax));
global_asm!(
    include_str!("events.S"),
    iret = const rt_xen::abi::op::IRET,
    sched_op = const rt_xen::abi::op::SCHED_OP,
    block = const rt_xen::abi::sched::BLOCK,
    options(att_syntax)
);

/// The linker script every image is linked with (passed by xtask as `-T`).
/// Included so that cargo rebuilds the runtime, and relinks the image, when
/// the script changes (it tracks included files, not linker arguments).
const _LINKER_SCRIPT: &str = include_str!("../../../link/image.ld");

/// Number of exception vectors with a stub (0..=21).
pub const TRAP_VECTORS: usize = 22;

unsafe extern "C" {
    /// The hypercall page (entry.S).
    pub static HYPERCALL_PAGE: [u8; PAGE_SIZE];
    /// TSC at the first instruction of either entry point (entry.S).
    pub static boot_tsc: u64;
    /// Exception stubs for an IDT (PVH), one per vector (traps.S).
    pub static trap_stubs: [u64; TRAP_VECTORS];
    /// Exception stubs for a PV trap table, one per vector (traps.S).
    pub static pv_trap_stubs: [u64; TRAP_VECTORS];
    /// PV event callback entry (events.S).
    pub fn pv_event_callback();
    /// PV failsafe callback entry (events.S).
    pub fn pv_failsafe_callback();
    /// PVH callback-vector entry (events.S).
    pub fn hvm_event_vector();
    /// SCHEDOP_block with events enabled only inside (events.S); returns
    /// the hypercall's result.
    pub fn rt_pv_block(upcall_mask: *mut u8) -> i64;
    /// `sti; nop; hlt; cli` (events.S).
    pub fn rt_hvm_idle();
    /// CR2 as the trap stub found it (traps.S).
    pub static trap_cr2: u64;
    /// The PVH boot page tables (6 pages: PML4, PDPT, 4 PDs), entry.S.
    pub static boot_pml4: [u8; PAGE_SIZE];
    /// The unmapped page below the boot stack.
    pub static boot_stack_guard: [u8; PAGE_SIZE];
    /// Linker-script symbols: the image's segments.
    pub static __image_start: u8;
    /// End of code.
    pub static __text_end: u8;
    /// Start of read-only data.
    pub static __rodata_start: u8;
    /// End of read-only data (and notes).
    pub static __rodata_end: u8;
    /// Start of writable data.
    pub static __data_start: u8;
    /// End of the image (bss included).
    pub static __image_end: u8;
}

/// The image's layout in frames, from the linker script.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// `[start, end)` frames of code.
    pub text: (u64, u64),
    /// Read-only data.
    pub rodata: (u64, u64),
    /// Data and bss.
    pub data: (u64, u64),
}

/// Where the image's segments are (all page aligned by the linker script).
pub fn image_layout() -> ImageLayout {
    let pfn = |p: *const u8| p as u64 >> 12;
    let up = |p: *const u8| (p as u64).div_ceil(PAGE_SIZE as u64);
    ImageLayout {
        text: (pfn(&raw const __image_start), up(&raw const __text_end)),
        rodata: (pfn(&raw const __rodata_start), up(&raw const __rodata_end)),
        data: (pfn(&raw const __data_start), up(&raw const __image_end)),
    }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; PV and PVH guests may execute it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC value recorded at the entry point.
pub fn entry_tsc() -> u64 {
    // SAFETY: written once by the entry code before any Rust runs; read-only after.
    unsafe { core::ptr::addr_of!(boot_tsc).read_volatile() }
}

/// CPUID leaf `leaf`, sub-leaf 0.
pub fn cpuid(leaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid(leaf)
}
