//! A lock-free, allocation-free histogram that a real-time thread records into and any other
//! thread reads at any time.
//!
//! Log-linear buckets (exact below 64, then 32 sub-buckets per power of two) bound the relative
//! error of a reported percentile to about 3%, over values up to 2^40. Recording is three relaxed
//! atomic adds and a `fetch_max`; there is no lock, no allocation and no resize, which is why the
//! audio workers use this rather than `hdrhistogram` (whose cross-thread recorder allocates).

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS; // 32 sub-buckets per octave
const EXACT: u64 = 2 * SUB; // values below 64 get a bucket each
const MAX_BITS: u32 = 40;
const BUCKETS: usize = (EXACT + (MAX_BITS as u64 - SUB_BITS as u64 - 1) * SUB) as usize;

fn bucket_of(value: u64) -> usize {
    let v = value.min((1 << MAX_BITS) - 1);
    if v < EXACT {
        return v as usize;
    }
    let exponent = 63 - v.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (v >> shift) - SUB;
    (EXACT + u64::from(exponent - SUB_BITS - 1) * SUB + sub) as usize
}

/// The smallest value and the width of bucket `index`.
fn bucket_range(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < EXACT {
        return (i, 1);
    }
    let octave = (i - EXACT) / SUB;
    let sub = (i - EXACT) % SUB;
    let shift = octave + 1;
    ((SUB + sub) << shift, 1 << shift)
}

/// Concurrent histogram of non-negative integer samples (e.g. microseconds).
pub struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicHistogram")
            .field("count", &self.total.load(Ordering::Relaxed))
            .field("max", &self.max.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl AtomicHistogram {
    pub fn new() -> Self {
        AtomicHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one sample. Wait-free; safe on a real-time thread.
    #[inline]
    pub fn record(&self, value: u64) {
        self.counts[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// A consistent-enough copy for reporting (counts are read one by one while recording goes
    /// on, so a snapshot may lag by the samples recorded during the copy).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of an [`AtomicHistogram`], mergeable across threads.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
    sum: u64,
    max: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot { counts: vec![0; BUCKETS], sum: 0, max: 0 }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        let n = self.count();
        if n == 0 { 0.0 } else { self.sum as f64 / n as f64 }
    }

    /// The value below which a fraction `q` (0..=1) of samples fall, to within one bucket
    /// (about 3%). Zero when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                // The bucket's midpoint, but never above the true maximum.
                return (low as f64 + (width as f64 - 1.0) / 2.0).min(self.max as f64);
            }
        }
        self.max as f64
    }

    /// Adds another snapshot's samples to this one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_are_exact() {
        let h = AtomicHistogram::new();
        for v in [3, 3, 3, 7] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 4);
        assert_eq!(s.quantile(0.5), 3.0);
        assert_eq!(s.quantile(1.0), 7.0);
        assert_eq!(s.max(), 7);
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let s = AtomicHistogram::new().snapshot();
        assert_eq!(s.quantile(0.99), 0.0);
        assert_eq!(s.mean(), 0.0);
    }

    #[test]
    fn merged_snapshots_count_both() {
        let (a, b) = (AtomicHistogram::new(), AtomicHistogram::new());
        a.record(10);
        b.record(1000);
        let mut s = a.snapshot();
        s.merge(&b.snapshot());
        assert_eq!(s.count(), 2);
        assert_eq!(s.max(), 1000);
    }

    #[test]
    fn huge_values_land_in_the_last_bucket_without_panicking() {
        let h = AtomicHistogram::new();
        h.record(u64::MAX);
        assert_eq!(h.snapshot().count(), 1);
    }

    proptest! {
        #[test]
        fn bucket_bounds_contain_their_values(v in 0u64..(1 << 40)) {
            let (low, width) = bucket_range(bucket_of(v));
            prop_assert!(low <= v && v < low + width, "{v} not in [{low}, {})", low + width);
            prop_assert!(width as f64 / low.max(1) as f64 <= 1.0 / 16.0 || v < EXACT);
        }

        #[test]
        fn quantiles_are_within_four_percent(mut values in prop::collection::vec(1u64..10_000_000, 1..500), q in 0.0f64..1.0) {
            let h = AtomicHistogram::new();
            for &v in &values { h.record(v); }
            values.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let got = h.snapshot().quantile(q);
            prop_assert!((got - exact).abs() <= exact * 0.04 + 1.0, "q{q}: {got} vs {exact}");
        }
    }
}
