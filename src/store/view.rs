//! What a store shows of itself to operators: the hosts with their states, the buckets with
//! their hash ranges, the last state changes and a few counters. The metrics endpoint and the
//! status page ([`crate::observe`]) read it; it holds plain values, taken at one moment, and
//! nothing of the backend's types.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The cluster as this server sees it (the MySQL backend; the embedded store has none).
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The directory's version, and seconds since it was last read or confirmed.
    pub directory_version: u64,
    pub directory_age_secs: f64,
    /// Writes are refused: the directory has not been confirmed within the lease.
    pub lease_lost: bool,
    pub hosts: Vec<HostView>,
    pub buckets: Vec<BucketView>,
    /// Host state changes, oldest first (the last [`CHANGES_KEPT`]).
    pub changes: Vec<StateChange>,
    /// Reads during outages: served by a sibling, waits for a sibling to catch up, refused
    /// `BEHIND`, served stale (`FAILOVER_READS = stale`).
    pub sibling_reads: u64,
    pub failover_waits: u64,
    pub failover_refused: u64,
    pub stale_reads: u64,
    /// Keys per statement of coalesced gets, and of coalesced puts.
    pub coalesced_gets: DistributionView,
    pub coalesced_puts: DistributionView,
}

/// One host.
#[derive(Debug, Clone)]
pub struct HostView {
    pub id: u32,
    pub address: String,
    /// Its sibling's address, if it has one.
    pub sibling: Option<String>,
    /// `UP`, `RETURNING` or `DOWN`.
    pub state: &'static str,
    /// Seconds in that state, and why.
    pub state_secs: f64,
    pub reason: String,
    pub transitions: u64,
    /// Seconds from the last answered probe to being marked DOWN, one sample per outage.
    pub detection: DistributionView,
    /// Reads of its partitions served by its sibling while it was DOWN.
    pub sibling_reads: u64,
    /// Writes to its partitions refused because it was not UP.
    pub writes_refused: u64,
    /// How long its sibling has lacked writes it has (`None`: not known).
    pub sibling_lag_secs: Option<f64>,
    /// Connections of this server's pool to it that serve a request now.
    pub pool_in_use: usize,
    /// Partitions whose master it is.
    pub partitions: usize,
}

/// One bucket, its partitions in hash order.
#[derive(Debug, Clone)]
pub struct BucketView {
    pub name: String,
    pub hash: String,
    pub partitions: Vec<PartitionView>,
}

/// One partition: the hash range `(start, end]` (as fractions of the hash space), its master.
#[derive(Debug, Clone)]
pub struct PartitionView {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    pub host: String,
    pub table: String,
}

/// A host's state changed.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub at: SystemTime,
    pub host: String,
    pub to: &'static str,
    pub reason: String,
}

/// State changes a store keeps for [`ClusterView::changes`].
pub const CHANGES_KEPT: usize = 20;

/// A distribution counted into fixed buckets, as Prometheus histograms are: lock-free, so it
/// can sit on a request path.
#[derive(Debug)]
pub struct Distribution {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative), then above the last.
    counts: Vec<AtomicU64>,
    /// The sum, in billionths (nanoseconds, for a distribution of seconds).
    sum_nanos: AtomicU64,
}

/// A [`Distribution`] read at one moment.
#[derive(Debug, Clone, Default)]
pub struct DistributionView {
    pub sum: f64,
    pub count: u64,
    /// `(upper bound, observations at or below it)`, cumulative; the last bound is infinity.
    pub buckets: Vec<(f64, u64)>,
}

impl Distribution {
    /// An empty distribution with the upper bounds `bounds`, ascending.
    pub fn new(bounds: &'static [f64]) -> Distribution {
        Distribution {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn record(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = (value.max(0.0) * 1e9).round() as u64;
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn view(&self) -> DistributionView {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            total += count.load(Ordering::Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), total));
        }
        DistributionView {
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: total,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distribution_counts_each_value_into_its_bucket_and_the_view_is_cumulative() {
        let d = Distribution::new(&[1.0, 2.0, 4.0]);
        for v in [0.5, 1.0, 1.5, 3.0, 9.0, 9.0] {
            d.record(v);
        }
        let v = d.view();
        assert_eq!(v.count, 6);
        assert!((v.sum - 24.0).abs() < 1e-6, "{}", v.sum);
        assert_eq!(
            v.buckets,
            vec![(1.0, 2), (2.0, 3), (4.0, 4), (f64::INFINITY, 6)]
        );
    }
}
