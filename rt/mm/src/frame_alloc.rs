//! The frame allocator: a 64-ary tree of bitmaps over the domain's frames.
//!
//! ```text
//! level 2:  [1 word]                     bit j: word j of level 1 is non-zero
//! level 1:  [n/4096 words]               bit j: word j of level 0 is non-zero
//! level 0:  [n/64 words]                 bit j: frame j is free
//! ```
//!
//! - single frames: `alloc` descends from the top word by `trailing_zeros` and
//!   `free` climbs back up while a word goes from empty to non-empty — both
//!   O(log64 n): 3 steps for 1 GiB, 4 for 64 GiB;
//! - contiguous runs: `alloc_contiguous` scans level 0 a word at a time,
//!   skipping empty words through level 1 — O(n / 64) in the worst case;
//! - set-up: one pass over the words (32 KiB per GiB of RAM), no per-frame work
//!   beyond setting bits: microseconds per GiB.
//!
//! Invariant kept by every operation: bit j of a word at level k+1 is set iff
//! word j of level k is non-zero. A double free is detected and refused.
use core::fmt;

use crate::frame::Pfn;

/// Deepest tree supported: 64^5 frames (4 PiB of RAM).
const MAX_LEVELS: usize = 5;

/// Counters of the allocator.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct AllocStats {
    /// Frames managed (free or allocated).
    pub frames: u64,
    /// Frames free now.
    pub free: u64,
    /// Single-frame allocations.
    pub allocs: u64,
    /// Contiguous allocations.
    pub contiguous_allocs: u64,
    /// Frames freed.
    pub frees: u64,
    /// Allocations that found no memory.
    pub failures: u64,
}

/// A frame could not be freed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FreeError {
    /// It is beyond the frames this allocator manages.
    OutOfRange(Pfn),
    /// It is already free.
    DoubleFree(Pfn),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeError::OutOfRange(p) => write!(f, "{p} is not managed by the frame allocator"),
            FreeError::DoubleFree(p) => write!(f, "{p} freed twice"),
        }
    }
}

/// The frame allocator. It owns no memory: the caller provides the words
/// ([`FrameAllocator::words_needed`]).
pub struct FrameAllocator<'a> {
    levels: [&'a mut [u64]; MAX_LEVELS],
    depth: usize,
    stats: AllocStats,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("depth", &self.depth)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Words per level for `frames` frames (level 0 first); unused levels are 0.
fn level_sizes(frames: u64) -> ([usize; MAX_LEVELS], usize) {
    let mut sizes = [0usize; MAX_LEVELS];
    let mut n = frames.div_ceil(64).max(1) as usize;
    let mut depth = 0;
    while depth < MAX_LEVELS {
        sizes[depth] = n;
        depth += 1;
        if n == 1 {
            break;
        }
        n = n.div_ceil(64);
    }
    (sizes, depth)
}

impl<'a> FrameAllocator<'a> {
    /// Words of storage needed to manage `frames` frames.
    pub fn words_needed(frames: u64) -> usize {
        level_sizes(frames).0.iter().sum()
    }

    /// An allocator for frames `[0, frames)`, all in use, over `storage` (at
    /// least [`Self::words_needed`] words; its contents are overwritten).
    pub fn new(storage: &'a mut [u64], frames: u64) -> Option<Self> {
        let (sizes, depth) = level_sizes(frames);
        if depth > MAX_LEVELS || storage.len() < sizes.iter().sum() {
            return None;
        }
        storage.fill(0);
        let mut rest = storage;
        let mut levels: [&'a mut [u64]; MAX_LEVELS] = Default::default();
        for (l, &n) in sizes.iter().enumerate().take(depth) {
            let (head, tail) = rest.split_at_mut(n);
            levels[l] = head;
            rest = tail;
        }
        Some(FrameAllocator {
            levels,
            depth,
            stats: AllocStats {
                frames,
                ..AllocStats::default()
            },
        })
    }

    /// An allocator whose free frames are the set bits of `bitmap` (one bit per
    /// frame, as [`crate::frames::BitmapFrames`] keeps them): one pass over the
    /// words builds the summaries.
    pub fn from_bitmap(storage: &'a mut [u64], frames: u64, bitmap: &[u64]) -> Option<Self> {
        let mut a = Self::new(storage, frames)?;
        let words = a.levels[0].len();
        for (w, &bits) in bitmap.iter().take(words).enumerate() {
            let valid = if (w as u64 + 1) * 64 > frames {
                (1u64 << (frames % 64)) - 1
            } else {
                !0
            };
            let bits = bits & valid;
            if bits != 0 {
                a.levels[0][w] = bits;
                a.stats.free += u64::from(bits.count_ones());
                // Summaries: mark this word non-empty all the way up.
                let (mut idx, mut l) = (w, 1);
                while l < a.depth {
                    let was = a.levels[l][idx / 64];
                    a.levels[l][idx / 64] |= 1 << (idx % 64);
                    if was != 0 {
                        break;
                    }
                    idx /= 64;
                    l += 1;
                }
            }
        }
        Some(a)
    }

    /// Counters.
    pub fn stats(&self) -> AllocStats {
        self.stats
    }

    /// Frames free now.
    pub fn free_count(&self) -> u64 {
        self.stats.free
    }

    /// Whether `pfn` is free.
    pub fn is_free(&self, pfn: Pfn) -> bool {
        pfn.0 < self.stats.frames
            && self.levels[0][(pfn.0 / 64) as usize] & (1 << (pfn.0 % 64)) != 0
    }

    /// Marks `[start, end)` free (set-up; frames already free stay free).
    pub fn add_range(&mut self, start: Pfn, end: Pfn) {
        let end = end.0.min(self.stats.frames);
        for p in start.0..end {
            let (w, b) = ((p / 64) as usize, p % 64);
            if self.levels[0][w] & (1 << b) == 0 {
                self.set_free(w, b);
                self.stats.free += 1;
            }
        }
    }

    /// Sets bit `b` of level-0 word `w` and the summary bits above it.
    fn set_free(&mut self, mut w: usize, b: u64) {
        let mut bit = b;
        for l in 0..self.depth {
            let was_empty = self.levels[l][w] == 0;
            self.levels[l][w] |= 1 << bit;
            if !was_empty {
                return;
            }
            bit = (w % 64) as u64;
            w /= 64;
        }
    }

    /// Clears bit `b` of level-0 word `w` and the summary bits it empties.
    fn set_used(&mut self, mut w: usize, b: u64) {
        let mut bit = b;
        for l in 0..self.depth {
            self.levels[l][w] &= !(1 << bit);
            if self.levels[l][w] != 0 {
                return;
            }
            bit = (w % 64) as u64;
            w /= 64;
        }
    }

    /// Takes the free frame with the lowest number. O(log64 n).
    pub fn alloc(&mut self) -> Option<Pfn> {
        let mut w = 0usize;
        for l in (0..self.depth).rev() {
            let word = self.levels[l][w];
            if word == 0 {
                self.stats.failures += 1;
                return None;
            }
            let b = word.trailing_zeros() as usize;
            if l == 0 {
                self.set_used(w, b as u64);
                self.stats.free -= 1;
                self.stats.allocs += 1;
                return Some(Pfn((w * 64 + b) as u64));
            }
            w = w * 64 + b;
        }
        None
    }

    /// Takes a specific frame, if it is free.
    pub fn take(&mut self, pfn: Pfn) -> bool {
        if !self.is_free(pfn) {
            return false;
        }
        self.set_used((pfn.0 / 64) as usize, pfn.0 % 64);
        self.stats.free -= 1;
        true
    }

    /// Gives a frame back. O(log64 n).
    pub fn free(&mut self, pfn: Pfn) -> Result<(), FreeError> {
        if pfn.0 >= self.stats.frames {
            return Err(FreeError::OutOfRange(pfn));
        }
        if self.is_free(pfn) {
            return Err(FreeError::DoubleFree(pfn));
        }
        self.set_free((pfn.0 / 64) as usize, pfn.0 % 64);
        self.stats.free += 1;
        self.stats.frees += 1;
        Ok(())
    }

    /// Whether every frame of `[start, start + n)` is free; if not, the first
    /// frame that is not.
    fn first_used(&self, start: u64, n: u64) -> Option<u64> {
        let end = start + n;
        let mut p = start;
        while p < end {
            let (w, b) = ((p / 64) as usize, p % 64);
            let span = (64 - b).min(end - p);
            let mask = if span == 64 {
                !0
            } else {
                ((1u64 << span) - 1) << b
            };
            let used = !self.levels[0][w] & mask;
            if used != 0 {
                return Some(w as u64 * 64 + u64::from(used.trailing_zeros()));
            }
            p += span;
        }
        None
    }

    /// Takes `n` consecutive free frames starting at a multiple of `align`
    /// (a power of two). O(frames / 64) in the worst case.
    pub fn alloc_contiguous(&mut self, n: u64, align: u64) -> Option<Pfn> {
        let align = align.max(1);
        if n == 0 || !align.is_power_of_two() || n > self.stats.free {
            self.stats.failures += u64::from(n != 0);
            return None;
        }
        let mut start = 0u64;
        while start + n <= self.stats.frames {
            // Skip words with nothing free (level 1 says which).
            let w = (start / 64) as usize;
            if self.levels[0][w] == 0 {
                start = ((w as u64 + 1) * 64).next_multiple_of(align);
                continue;
            }
            match self.first_used(start, n) {
                None => {
                    for p in start..start + n {
                        self.set_used((p / 64) as usize, p % 64);
                    }
                    self.stats.free -= n;
                    self.stats.contiguous_allocs += 1;
                    return Some(Pfn(start));
                }
                Some(used) => start = (used + 1).next_multiple_of(align),
            }
        }
        self.stats.failures += 1;
        None
    }

    /// Checks the summary invariant and the free count (tests, debugging).
    pub fn check(&self) -> Result<(), &'static str> {
        let free: u64 = self.levels[0]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if free != self.stats.free {
            return Err("free count differs from the bitmap");
        }
        for l in 1..self.depth {
            for (j, &word) in self.levels[l - 1].iter().enumerate() {
                let bit = self.levels[l][j / 64] & (1 << (j % 64)) != 0;
                if bit != (word != 0) {
                    return Err("summary bit disagrees with the word below");
                }
            }
        }
        Ok(())
    }
}

impl crate::backend::FrameSource for FrameAllocator<'_> {
    fn alloc_frame(&mut self) -> Option<Pfn> {
        self.alloc()
    }

    fn free_frame(&mut self, pfn: Pfn) {
        // A double free here is a bug in the MMU layer: keep the allocator
        // consistent (the frame stays free) and make it visible in debug builds.
        let r = self.free(pfn);
        debug_assert!(r.is_ok(), "{r:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec;

    #[test]
    fn sizes_and_depth() {
        assert_eq!(level_sizes(64), ([1, 0, 0, 0, 0], 1));
        assert_eq!(level_sizes(65), ([2, 1, 0, 0, 0], 2));
        assert_eq!(level_sizes(1 << 18), ([4096, 64, 1, 0, 0], 3));
        assert_eq!(FrameAllocator::words_needed(1 << 18), 4161);
    }

    #[test]
    fn lowest_first_and_double_free_refused() {
        let mut s = vec![0u64; FrameAllocator::words_needed(1000)];
        let mut a = FrameAllocator::new(&mut s, 1000).unwrap();
        a.add_range(Pfn(10), Pfn(20));
        a.add_range(Pfn(900), Pfn(2000)); // clipped to 1000
        assert_eq!(a.free_count(), 110);
        assert_eq!(a.alloc(), Some(Pfn(10)));
        assert_eq!(a.free(Pfn(11)), Err(FreeError::DoubleFree(Pfn(11))));
        assert_eq!(a.free(Pfn(1000)), Err(FreeError::OutOfRange(Pfn(1000))));
        a.free(Pfn(10)).unwrap();
        assert_eq!(a.alloc_contiguous(10, 2), Some(Pfn(10)));
        assert_eq!(
            a.alloc_contiguous(64, 64),
            None,
            "960..1024 runs past the last frame"
        );
        assert_eq!(a.alloc_contiguous(32, 32), Some(Pfn(928)));
        assert_eq!(a.alloc_contiguous(100, 1), None);
        a.check().unwrap();
    }

    #[test]
    fn from_a_bitmap() {
        let bitmap = [0xffu64, 0, 1 << 63, !0];
        let mut s = vec![0u64; FrameAllocator::words_needed(200)];
        let mut a = FrameAllocator::from_bitmap(&mut s, 200, &bitmap).unwrap();
        a.check().unwrap();
        // 8 + 1 + the 8 frames of the last word below 200.
        assert_eq!(a.free_count(), 8 + 1 + 8);
        assert_eq!(a.alloc(), Some(Pfn(0)));
        assert!(a.is_free(Pfn(191)) && a.is_free(Pfn(199)) && !a.is_free(Pfn(200)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc,
        Contig(u64, u32),
        Free(usize),
        Take(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Alloc),
            2 => (1..200u64, 0..7u32).prop_map(|(n, a)| Op::Contig(n, a)),
            4 => any::<usize>().prop_map(Op::Free),
            1 => (0..5000u64).prop_map(Op::Take),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Against a set of free frames: nothing is handed out twice, frees make
        /// frames (and runs of them) available again, counters and summaries hold.
        #[test]
        fn agrees_with_a_set(frames in 1u64..5000, ranges in proptest::collection::vec((0u64..5000, 0u64..600), 1..6),
                             ops in proptest::collection::vec(op(), 1..150)) {
            let mut s = vec![0u64; FrameAllocator::words_needed(frames)];
            let mut a = FrameAllocator::new(&mut s, frames).unwrap();
            let mut free = BTreeSet::new();
            for (start, len) in ranges {
                a.add_range(Pfn(start), Pfn(start + len));
                free.extend((start..(start + len).min(frames)).map(Pfn));
            }
            let all_free = free.clone();
            let mut held: std::vec::Vec<Pfn> = std::vec::Vec::new();
            for op in ops {
                match op {
                    Op::Alloc => match a.alloc() {
                        Some(p) => {
                            // Lowest first.
                            prop_assert_eq!(Some(&p), free.iter().next());
                            free.remove(&p);
                            held.push(p);
                        }
                        None => prop_assert!(free.is_empty()),
                    },
                    Op::Contig(n, a2) => {
                        let align = 1u64 << a2;
                        match a.alloc_contiguous(n, align) {
                            Some(p) => {
                                prop_assert_eq!(p.0 % align, 0);
                                for q in p.0..p.0 + n { prop_assert!(free.remove(&Pfn(q)), "{} was not free", q); held.push(Pfn(q)); }
                            }
                            None => {
                                // No aligned run of n free frames may exist.
                                let exists = (0..frames).step_by(align as usize)
                                    .any(|st| st + n <= frames && (st..st + n).all(|q| free.contains(&Pfn(q))));
                                prop_assert!(!exists, "missed a free run of {} at align {}", n, align);
                            }
                        }
                    }
                    Op::Free(i) => {
                        if !held.is_empty() {
                            let p = held.swap_remove(i % held.len());
                            a.free(p).unwrap();
                            free.insert(p);
                        }
                    }
                    Op::Take(p) => {
                        let p = Pfn(p % frames);
                        let took = a.take(p);
                        prop_assert_eq!(took, free.remove(&p));
                        if took { held.push(p); }
                    }
                }
                prop_assert_eq!(a.free_count(), free.len() as u64);
                prop_assert!(a.check().is_ok(), "{:?}", a.check());
            }
            // Freeing everything brings back exactly the frames we started with.
            for p in held { a.free(p).unwrap(); }
            prop_assert_eq!(a.free_count(), all_free.len() as u64);
            let mut back = BTreeSet::new();
            while let Some(p) = a.alloc() { back.insert(p); }
            prop_assert_eq!(back, all_free);
        }
    }
}
