//! Latency histograms: power-of-two buckets of microseconds, cheap enough to
//! record in the data path, and subtractable for one interval's figures.
use core::fmt;
use core::time::Duration;

/// Buckets: bucket 0 holds samples under 1 us, bucket `k` (1..=30) those
/// in `[2^(k-1), 2^k)` us, the last everything from `2^30` us (~18 min) on.
const BUCKETS: usize = 32;

/// A histogram of durations in power-of-two buckets of microseconds.
///
/// Quantiles are the upper bound of the bucket that holds them (at most
/// twice the true value); the maximum is exact.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Latency {
    counts: [u64; BUCKETS],
    max: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            counts: [0; BUCKETS],
            max: Duration::ZERO,
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let k = (u64::BITS - us.leading_zeros()) as usize;
        self.counts[k.min(BUCKETS - 1)] += 1;
        self.max = self.max.max(d);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The longest sample (over the whole life of the histogram, also in a
    /// [`Latency::since`] difference: a maximum cannot be subtracted).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// An upper bound of the `permille`/1000 quantile (500: the median,
    /// 990: p99); zero when empty.
    pub fn quantile(&self, permille: u32) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        // The rank of the quantile sample, 1-based, at least 1.
        let rank = (n * u64::from(permille.min(1000))).div_ceil(1000).max(1);
        let mut seen = 0;
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let bound = Duration::from_micros(1u64 << k);
                return bound.min(self.max);
            }
        }
        self.max
    }

    /// The samples recorded after `earlier` (a copy of this histogram taken
    /// before): the counts' difference; the maximum stays this one's.
    pub fn since(&self, earlier: &Latency) -> Latency {
        let mut d = *self;
        for (c, e) in d.counts.iter_mut().zip(&earlier.counts) {
            *c = c.saturating_sub(*e);
        }
        d
    }
}

impl fmt::Display for Latency {
    /// `n 100, p50 <= 64 us, p99 <= 512 us, max 301 us`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As u64: formatting a u128 links 1.2 KiB into the image.
        write!(
            f,
            "n {}, p50 <= {} us, p99 <= {} us, max {} us",
            self.count(),
            self.quantile(500).as_micros() as u64,
            self.quantile(990).as_micros() as u64,
            self.max.as_micros() as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let mut h = Latency::new();
        assert_eq!(h.quantile(990), Duration::ZERO);
        // 98 fast samples (100 us: bucket [64, 128)), two slow ones.
        for _ in 0..98 {
            h.record(Duration::from_micros(100));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_millis(20));
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(500), Duration::from_micros(128));
        // p99 is the 99th sample: 3 ms, in [2048, 4096) us.
        assert_eq!(h.quantile(990), Duration::from_micros(4096));
        assert_eq!(h.quantile(1000), Duration::from_millis(20));
        assert_eq!(h.max(), Duration::from_millis(20));
        assert_eq!(
            alloc::format!("{h}"),
            "n 100, p50 <= 128 us, p99 <= 4096 us, max 20000 us"
        );
    }

    #[test]
    fn extremes_and_intervals() {
        let mut h = Latency::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_nanos(999));
        h.record(Duration::MAX);
        assert_eq!(h.count(), 3);
        assert_eq!(h.quantile(500), Duration::from_micros(1));
        assert_eq!(h.max(), Duration::MAX);
        let before = h;
        h.record(Duration::from_micros(5));
        let d = h.since(&before);
        assert_eq!(d.count(), 1);
        assert_eq!(d.quantile(500), Duration::from_micros(8));
        // Subtracting a later histogram never underflows.
        assert_eq!(before.since(&h).count(), 0);
    }
}
