//! x86_64 glue: entry assembly, Xen notes, exception stubs, and the few CPU
//! instructions the runtime uses.
use core::arch::global_asm;

pub mod idt;

global_asm!(include_str!("entry.S"), options(att_syntax));
global_asm!(include_str!("notes.S"), options(att_syntax));
global_asm!(include_str!("traps.S"), options(att_syntax));

/// Number of exception vectors with a stub (0..=21).
pub const TRAP_VECTORS: usize = 22;

unsafe extern "C" {
    /// The hypercall page (entry.S).
    pub static HYPERCALL_PAGE: [u8; 4096];
    /// TSC at the first instruction of either entry point (entry.S).
    pub static boot_tsc: u64;
    /// Exception stubs for an IDT (PVH), one per vector (traps.S).
    pub static trap_stubs: [u64; TRAP_VECTORS];
    /// Exception stubs for a PV trap table, one per vector (traps.S).
    pub static pv_trap_stubs: [u64; TRAP_VECTORS];
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
