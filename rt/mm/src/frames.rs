//! A bitmap of free frames: where page tables come from during boot (and,
//! until the memory layer grows its own allocator, afterwards).
//!
//! One bit per pfn (1 = free). `limit` bounds what may be handed out: during
//! boot only frames the current page tables map can be zeroed and read, and
//! the boot code raises the limit as the direct map grows.
use crate::backend::FrameSource;
use crate::frame::Pfn;

/// Free frames, one bit each.
#[derive(Debug)]
pub struct BitmapFrames<'a> {
    bits: &'a mut [u64],
    limit: u64,
    next: u64,
    free: u64,
}

impl<'a> BitmapFrames<'a> {
    /// Words needed for `nr_pages` frames.
    pub const fn words_for(nr_pages: u64) -> usize {
        nr_pages.div_ceil(64) as usize
    }

    /// An allocator with every frame in use; `bits` covers the domain's pfns.
    pub fn new(bits: &'a mut [u64]) -> Self {
        bits.fill(0);
        BitmapFrames {
            bits,
            limit: 0,
            next: 0,
            free: 0,
        }
    }

    /// Continues with a bitmap a previous allocator left (counts its free bits).
    /// Everything below `limit` may be handed out.
    pub fn resume(bits: &'a mut [u64], limit: u64) -> Self {
        let free = bits.iter().map(|w| u64::from(w.count_ones())).sum();
        let limit = limit.min(bits.len() as u64 * 64);
        BitmapFrames {
            bits,
            limit,
            next: 0,
            free,
        }
    }

    /// Takes a specific frame out of the free set (false if it was not free).
    pub fn take(&mut self, pfn: Pfn) -> bool {
        if !self.is_free(pfn) {
            return false;
        }
        self.bits[(pfn.0 / 64) as usize] &= !(1 << (pfn.0 % 64));
        self.free -= 1;
        true
    }

    /// Marks `[start, end)` free.
    pub fn add_range(&mut self, start: Pfn, end: Pfn) {
        let cap = self.bits.len() as u64 * 64;
        for p in start.0..end.0.min(cap) {
            let (w, b) = ((p / 64) as usize, p % 64);
            if self.bits[w] & (1 << b) == 0 {
                self.bits[w] |= 1 << b;
                self.free += 1;
            }
        }
    }

    /// Only frames below `limit` are handed out from now on.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit.min(self.bits.len() as u64 * 64);
    }

    /// Free frames (below and above the limit).
    pub fn free_count(&self) -> u64 {
        self.free
    }

    /// Takes `n` consecutive free frames below the limit (lowest first).
    pub fn take_run(&mut self, n: u64) -> Option<Pfn> {
        let mut start = 0;
        while start + n <= self.limit {
            match (start..start + n).find(|&p| !self.is_free(Pfn(p))) {
                None => {
                    for p in start..start + n {
                        self.take(Pfn(p));
                    }
                    return Some(Pfn(start));
                }
                Some(used) => start = used + 1,
            }
        }
        None
    }

    /// The bitmap (bit set: frame free).
    pub fn bits(&self) -> &[u64] {
        self.bits
    }

    /// Whether `pfn` is free.
    pub fn is_free(&self, pfn: Pfn) -> bool {
        self.bits
            .get((pfn.0 / 64) as usize)
            .is_some_and(|w| w & (1 << (pfn.0 % 64)) != 0)
    }
}

impl FrameSource for BitmapFrames<'_> {
    fn alloc_frame(&mut self) -> Option<Pfn> {
        let words = (self.limit.div_ceil(64)) as usize;
        if words == 0 {
            return None;
        }
        let start = (self.next / 64) as usize % words;
        for k in 0..words {
            let w = (start + k) % words;
            let mut word = self.bits[w];
            if w as u64 * 64 + 64 > self.limit {
                let keep = self.limit - w as u64 * 64;
                word &= (1u64 << keep) - 1;
            }
            if word != 0 {
                let b = word.trailing_zeros() as u64;
                self.bits[w] &= !(1 << b);
                self.free -= 1;
                let pfn = w as u64 * 64 + b;
                self.next = pfn + 1;
                return Some(Pfn(pfn));
            }
        }
        None
    }

    fn free_frame(&mut self, pfn: Pfn) {
        let (w, b) = ((pfn.0 / 64) as usize, pfn.0 % 64);
        if let Some(word) = self.bits.get_mut(w) {
            debug_assert!(*word & (1 << b) == 0, "double free of {pfn}");
            if *word & (1 << b) == 0 {
                *word |= 1 << b;
                self.free += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    #[test]
    fn hands_out_free_frames_below_the_limit_once() {
        let mut bits = vec![0u64; 4];
        let mut f = BitmapFrames::new(&mut bits);
        f.add_range(Pfn(10), Pfn(200));
        assert_eq!(f.free_count(), 190);
        assert_eq!(f.alloc_frame(), None, "limit 0: nothing");
        f.set_limit(70);
        let got: std::vec::Vec<u64> = core::iter::from_fn(|| f.alloc_frame())
            .map(|p| p.0)
            .collect();
        assert_eq!(got, (10..70).collect::<std::vec::Vec<_>>());
        f.free_frame(Pfn(33));
        assert!(f.is_free(Pfn(33)));
        assert_eq!(f.alloc_frame(), Some(Pfn(33)));
        f.set_limit(1000);
        assert_eq!(f.alloc_frame(), Some(Pfn(70)));
        assert_eq!(f.free_count(), 190 - 61);
        assert_eq!(f.take_run(3), Some(Pfn(71)));
        assert!(!f.is_free(Pfn(73)) && f.is_free(Pfn(74)));
    }
}
