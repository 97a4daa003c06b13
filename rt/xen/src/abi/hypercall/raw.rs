//! The raw stubs: `call` into a hypercall-page entry with N arguments.
//!
//! No `nostack`: `call` pushes a return address, which is sound because every
//! crate of the image is compiled with `-Cno-redzone` (nothing live below `rsp`).
use core::arch::asm;

/// # Safety
/// `entry` must be a filled hypercall-page stub and the call valid for Xen.
pub unsafe fn call0(entry: usize) -> i64 {
    let ret: i64;
    // SAFETY: per the function contract; the stub preserves all but rax.
    unsafe { asm!("call {e}", e = in(reg) entry, lateout("rax") ret) };
    ret
}

/// # Safety
/// As for [`call0`]; pointer arguments valid for the hypercall.
pub unsafe fn call1(entry: usize, a1: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the function contract; rdi may be poisoned by debug Xen.
    unsafe { asm!("call {e}", e = in(reg) entry, lateout("rax") ret, inout("rdi") a1 => _) };
    ret
}

/// # Safety
/// As for [`call1`].
pub unsafe fn call2(entry: usize, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the function contract; used argument registers are clobbered.
    unsafe {
        asm!("call {e}", e = in(reg) entry, lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _)
    };
    ret
}

/// # Safety
/// As for [`call1`].
pub unsafe fn call3(entry: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the function contract; used argument registers are clobbered.
    unsafe {
        asm!("call {e}", e = in(reg) entry, lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _)
    };
    ret
}

/// # Safety
/// As for [`call1`].
pub unsafe fn call4(entry: usize, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the function contract; used argument registers are clobbered.
    unsafe {
        asm!("call {e}", e = in(reg) entry, lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
             inout("r10") a4 => _)
    };
    ret
}

/// # Safety
/// As for [`call1`].
pub unsafe fn call5(entry: usize, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the function contract; used argument registers are clobbered.
    unsafe {
        asm!("call {e}", e = in(reg) entry, lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
             inout("r10") a4 => _, inout("r8") a5 => _)
    };
    ret
}
