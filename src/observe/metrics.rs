//! The server's Prometheus metrics: what the request path counts as it goes (calls by method
//! and outcome, their latency, connections, bytes), and, at each scrape, what the store shows
//! of its cluster ([`super::cluster`]). `/metrics` serves them in the Prometheus text format
//! (0.0.4), encoded by `prometheus-client`.
//!
//! The request path touches only handles made at start-up: an atomic counter of successes and
//! a lock-free latency distribution per method (two atomic adds; `prometheus-client`'s own
//! histogram takes a mutex per observation, which every connection would share). A failure
//! looks its outcome up in a family, which is rarer.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::cluster::{histogram, ClusterCollector};
use crate::codec::Method;
use crate::error::ErrorKind;
use crate::store::view::{Distribution, DistributionView};
use crate::store::Store;

/// A call's method and outcome (`ok`, or the error kind: `no_such_key`, `read_only`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    outcome: &'static str,
}

/// Upper bounds of the latency buckets, in seconds: 50 µs doubling to about 3.3 s.
const LATENCY_BOUNDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_2, 0.000_4, 0.000_8, 0.001_6, 0.003_2, 0.006_4, 0.012_8, 0.025_6,
    0.051_2, 0.102_4, 0.204_8, 0.409_6, 0.819_2, 1.638_4, 3.276_8,
];

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    /// `calls{outcome="ok"}` and the latency, by [`Method::index`].
    ok: Vec<Counter>,
    latency: Arc<Vec<Distribution>>,
    connections_open: Gauge,
    connections: Counter,
    received: Counter,
    sent: Counter,
}

/// The outcome label of an error kind.
fn outcome(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NoSuchKey => "no_such_key",
        ErrorKind::NoSuchBucket => "no_such_bucket",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::ReadOnly => "read_only",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::OutcomeUnknown => "outcome_unknown",
        ErrorKind::Behind => "behind",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Config => "config",
        ErrorKind::Internal => "internal",
    }
}

impl Metrics {
    /// The metrics of a server over `store`, all at zero.
    pub fn new(store: Arc<dyn Store>) -> Metrics {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "thrudoc_requests",
            "Calls, by method and outcome (ok or the error kind)",
            calls.clone(),
        );
        let latency: Arc<Vec<Distribution>> = Arc::new(
            Method::ALL
                .iter()
                .map(|_| Distribution::new(LATENCY_BOUNDS))
                .collect(),
        );
        registry.register_collector(Box::new(LatencyCollector {
            latency: latency.clone(),
        }));
        let connections_open = Gauge::default();
        registry.register(
            "thrudoc_connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "thrudoc_connections",
            "Client connections accepted",
            connections.clone(),
        );
        let received = Counter::default();
        registry.register(
            "thrudoc_received_bytes",
            "Bytes read from clients",
            received.clone(),
        );
        let sent = Counter::default();
        registry.register("thrudoc_sent_bytes", "Bytes sent to clients", sent.clone());
        registry.register_collector(Box::new(ClusterCollector::new(store)));
        let ok = Method::ALL
            .iter()
            .map(|m| {
                calls
                    .get_or_create(&CallLabels {
                        method: m.name(),
                        outcome: "ok",
                    })
                    .clone()
            })
            .collect();
        Metrics {
            registry,
            calls,
            ok,
            latency,
            connections_open,
            connections,
            received,
            sent,
        }
    }

    /// Counts one call of `method` that took `took` and ended in `failed` (`None`: success).
    pub fn call(&self, method: Method, took: Duration, failed: Option<ErrorKind>) {
        let i = method.index();
        self.latency[i].record(took.as_secs_f64());
        match failed {
            None => {
                self.ok[i].inc();
            }
            Some(kind) => {
                self.calls
                    .get_or_create(&CallLabels {
                        method: method.name(),
                        outcome: outcome(kind),
                    })
                    .inc();
            }
        }
    }

    /// A client connected.
    pub fn connected(&self) {
        self.connections.inc();
        self.connections_open.inc();
    }

    /// A client connection closed.
    pub fn disconnected(&self) {
        self.connections_open.dec();
    }

    /// Bytes read from a client.
    pub fn received(&self, bytes: usize) {
        self.received.inc_by(bytes as u64);
    }

    /// Bytes sent to a client.
    pub fn sent(&self, bytes: usize) {
        self.sent.inc_by(bytes as u64);
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; a collector's error would be a bug, said in the text.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

/// Encodes the request latency at each scrape.
#[derive(Debug)]
struct LatencyCollector {
    latency: Arc<Vec<Distribution>>,
}

impl Collector for LatencyCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let views: Vec<DistributionView> = self.latency.iter().map(Distribution::view).collect();
        histogram(
            &mut e,
            "thrudoc_request_duration_seconds",
            "Time from a decoded call to its reply, by method",
            Method::ALL
                .iter()
                .zip(&views)
                .map(|(m, v)| ("method", m.name().to_string(), v))
                .collect(),
        )
    }
}
