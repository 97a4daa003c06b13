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
    // SAFETY: the caller guarantees both ranges are valid and disjoint.
    unsafe { copy_forward(dest, src, n) };
    dest
}

/// Copies `n` bytes forwards: eight at a time (`rep movsq`), then the tail
/// (`rep movsb`). Under QEMU's TCG every iteration of a `rep` instruction is
/// one emulated memory access, so whole words copy about 8x faster than
/// bytes; on hardware both are fast-string copies.
///
/// # Safety
/// Both ranges valid for `n` bytes; a byte of `dest` is never written before
/// the byte of `src` at the same offset is read (disjoint, or `dest` below
/// `src` by at least 8 bytes or not overlapping at all).
#[inline(always)]
unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract; DF is clear (the ABI requires it on
    // function entry) so both instructions copy forwards.
    unsafe {
        asm!("rep movsq", "mov rcx, {tail}", "rep movsb",
             tail = in(reg) n & 7,
             inout("rcx") n >> 3 => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// The C `memmove` contract: both ranges valid for `n` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let ahead = (src as usize).wrapping_sub(dest as usize);
    if (dest as usize).wrapping_sub(src as usize) >= n {
        if ahead >= 8 || ahead >= n {
            // Disjoint, or dest at least a word below src: a forward word
            // copy reads each word before anything overwrites it.
            // SAFETY: as for `memcpy`, with the overlap cases excluded above.
            unsafe { copy_forward(dest, src, n) };
        } else {
            // dest 1..7 bytes below an overlapping src: bytes, forwards.
            // SAFETY: a forward byte copy never reads a byte it wrote.
            unsafe {
                asm!("rep movsb",
                     inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
                     options(nostack, preserves_flags));
            }
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
    // The byte repeated in all eight bytes of a word.
    let word = u64::from(c as u8) * 0x0101_0101_0101_0101;
    // SAFETY: the caller guarantees the range; words (`rep stosq`), then the
    // tail (`rep stosb`, AL is the byte), forwards.
    unsafe {
        asm!("rep stosq", "mov rcx, {tail}", "rep stosb",
             tail = in(reg) n & 7,
             inout("rcx") n >> 3 => _, inout("rdi") dest => _, in("rax") word,
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

    /// Every length 0..40 at every alignment 0..8 of both ends, against
    /// `core`'s copy; memmove with every overlap distance.
    #[test]
    fn word_copies_match_bytes() {
        let src: [u8; 64] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for n in 0..40 {
            for a in 0..8 {
                for b in 0..8 {
                    let mut dst = [0xeeu8; 64];
                    // SAFETY: a + n and b + n are below 64.
                    unsafe { memcpy(dst.as_mut_ptr().add(a), src.as_ptr().add(b), n) };
                    assert_eq!(&dst[a..a + n], &src[b..b + n], "memcpy n={n} a={a} b={b}");
                    assert!(dst[..a].iter().chain(&dst[a + n..]).all(|&x| x == 0xee));
                    let mut set = [0u8; 64];
                    // SAFETY: a + n is below 64.
                    unsafe { memset(set.as_mut_ptr().add(a), 0x1a5, n) };
                    assert!(set[a..a + n].iter().all(|&x| x == 0xa5));
                    assert!(set[..a].iter().chain(&set[a + n..]).all(|&x| x == 0));
                    let mut buf = src;
                    let mut want = src;
                    want.copy_within(b..b + n, a);
                    // SAFETY: both ranges inside buf.
                    unsafe { memmove(buf.as_mut_ptr().add(a), buf.as_ptr().add(b), n) };
                    assert_eq!(buf, want, "memmove n={n} to {a} from {b}");
                }
            }
        }
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
