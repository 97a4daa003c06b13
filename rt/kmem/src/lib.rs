//! The C memory routines a freestanding image must provide itself.
//!
//! The precompiled `core` for `x86_64-unknown-linux-gnu` calls `memcpy`, `memmove`,
//! `memset`, `memcmp`, `bcmp` and `strlen`, expecting libc to supply them. Its own
//! `compiler_builtins` copies are hidden, mangled symbols, so the guest image links
//! these instead. The unmangled symbols are exported everywhere except in this
//! crate's own unit tests, so host test binaries keep libc's versions.
//!
//! `#![no_builtins]` stops LLVM from recognising the loops below as the very
//! functions they implement and turning them into recursive calls.
#![no_std]
#![no_builtins]

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest`.
///
/// # Safety
/// The C `memcpy` contract: both ranges valid for `n` bytes and not overlapping.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; `rep movsb` copies
    // forwards (DF is clear: the ABI requires it on function entry).
    unsafe {
        asm!("rep movsb",
             inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// The C `memmove` contract: both ranges valid for `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest below src, or disjoint: a forward copy never reads a byte it wrote.
        // SAFETY: as for `memcpy`, with the overlap case excluded above.
        unsafe {
            asm!("rep movsb",
                 inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
                 options(nostack, preserves_flags));
        }
    } else {
        // dest overlaps the tail of src: copy backwards, then restore DF=0.
        // SAFETY: the last byte of each range is `base + n - 1`, valid because n > 0
        // here (n == 0 always takes the first branch).
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _,
                 inout("rdi") dest.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _,
                 options(nostack));
        }
    }
    dest
}

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// The C `memset` contract: `dest` valid for `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range; `rep stosb` writes forwards.
    unsafe {
        asm!("rep stosb",
             inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// Compares `n` bytes; returns the difference of the first unequal pair.
///
/// # Safety
/// The C `memcmp` contract: both ranges valid for `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and both ranges are valid for n bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Like `memcmp`, but only zero/non-zero is meaningful.
///
/// # Safety
/// As for [`memcmp`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Length of a NUL-terminated string.
///
/// # Safety
/// `s` must point to a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees a terminating NUL, so every byte up to it is valid.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_set_compare() {
        let src = *b"hello, world";
        let mut dst = [0u8; 12];
        // SAFETY: both arrays are 12 bytes.
        unsafe { memcpy(dst.as_mut_ptr(), src.as_ptr(), 12) };
        assert_eq!(dst, src);
        // SAFETY: 5 bytes inside `dst`.
        unsafe { memset(dst.as_mut_ptr(), b'x' as i32, 5) };
        assert_eq!(&dst, b"xxxxx, world");
        // SAFETY: 12 valid bytes each.
        assert!(unsafe { memcmp(dst.as_ptr(), src.as_ptr(), 12) } > 0);
        // SAFETY: as above.
        assert_eq!(unsafe { bcmp(src.as_ptr(), src.as_ptr(), 12) }, 0);
        // SAFETY: NUL-terminated literal.
        assert_eq!(unsafe { strlen(c"abc".as_ptr().cast()) }, 3);
    }

    #[test]
    fn memmove_both_directions() {
        let mut buf = *b"0123456789";
        // SAFETY: ranges [2, 10) and [0, 8) inside buf.
        unsafe { memmove(buf.as_mut_ptr().add(2), buf.as_ptr(), 8) };
        assert_eq!(&buf, b"0101234567");
        let mut buf = *b"0123456789";
        // SAFETY: ranges [0, 8) and [2, 10) inside buf.
        unsafe { memmove(buf.as_mut_ptr(), buf.as_ptr().add(2), 8) };
        assert_eq!(&buf, b"2345678989");
        // SAFETY: n == 0 touches nothing.
        unsafe { memmove(buf.as_mut_ptr(), buf.as_ptr(), 0) };
    }
}
