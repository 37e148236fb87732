//! A log-linear latency histogram: exact below 64 ns, then 64 buckets per power of two, so any
//! recorded value is reported within 1/64 (1.6 %) above its true value, over the whole `u64`
//! range, in a fixed 30 KiB. Recording is an index computation and an increment, cheap
//! enough for every operation; histograms of several clients merge by adding counts.
//!
//! (The `hdrhistogram` crate does the same and more; this is the 80 lines the bench needs,
//! without a dependency.)

use std::time::Duration;

/// log2 of the buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: `SUB` exact ones, then `SUB` for each exponent from `SUB_BITS` to 63.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of values (nanoseconds, for the bench) in log-linear buckets, plus the exact
/// count, sum, minimum and maximum.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    // v is in [2^e, 2^(e+1)) with e >= SUB_BITS; its top SUB_BITS + 1 bits pick the bucket.
    let e = 63 - v.leading_zeros();
    let shift = e - SUB_BITS;
    let sub = (v >> shift) - SUB;
    ((shift as u64 + 1) * SUB + sub) as usize
}

/// The largest value that falls in bucket `i`.
fn highest(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let sub = i % SUB;
    let low = (SUB + sub) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Records a duration in nanoseconds (saturating at about 584 years).
    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds `other`'s values to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The mean of the values recorded (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.5 for the median, 0.99 for p99): the smallest value that at
    /// least `q` of the recorded values are at or below, reported as the highest value of its
    /// bucket (never below the true value, at most 1/64 above it) and never above the maximum.
    /// 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        // The ends are known exactly.
        if rank == 1 {
            return self.min;
        }
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        assert_eq!(index(0), 0);
        assert_eq!(index(63), 63);
        assert_eq!(index(64), 64);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(highest(BUCKETS - 1), u64::MAX);
        // Each bucket starts right after the previous one's highest value.
        for i in 1..BUCKETS {
            let low = highest(i - 1) + 1;
            assert_eq!(index(low), i, "bucket {i}");
            assert_eq!(index(highest(i)), i, "bucket {i}");
        }
    }

    #[test]
    fn values_are_reported_within_one_sixty_fourth() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            let top = highest(index(v));
            assert!(
                top >= v && (top - v) as f64 <= v as f64 / 64.0,
                "{v} -> {top}"
            );
            v = v * 3 / 2 + 1;
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=10_000 microseconds, once each: p50 is 5 ms, p99 9.9 ms, max 10 ms.
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(us * 1000);
        }
        let close = |got: u64, want: u64| {
            assert!(
                got >= want && got - want <= want / 64,
                "got {got}, want {want}"
            )
        };
        assert_eq!(h.count(), 10_000);
        close(h.quantile(0.5), 5_000_000);
        close(h.quantile(0.99), 9_900_000);
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.quantile(0.0), 1000);
        assert!((h.mean() - 5_000_500.0).abs() < 1e-6);
    }

    #[test]
    fn a_slow_tail_shows_in_p99_not_p50() {
        let mut h = Histogram::new();
        for _ in 0..980 {
            h.record(1_000_000); // 1 ms
        }
        for _ in 0..20 {
            h.record(200_000_000); // 200 ms
        }
        assert!(h.quantile(0.5) <= 1_016_000);
        assert!(h.quantile(0.99) >= 200_000_000);
        assert_eq!(h.max(), 200_000_000);
    }

    #[test]
    fn merging_adds_counts_and_keeps_extremes() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..100 {
            a.record(v);
            b.record(v + 100);
        }
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.min(), 0);
        assert_eq!(a.max(), 199);
        let median = a.quantile(0.5);
        assert!((99..=101).contains(&median), "{median}");
        let empty = Histogram::new();
        assert_eq!(empty.quantile(0.99), 0);
        assert_eq!(empty.min(), 0);
        a.merge(&empty);
        assert_eq!(a.count(), 200);
    }
}
