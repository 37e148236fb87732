//! The server's Prometheus metrics: what the request path counts as it goes (calls by method
//! and outcome, their latency, connections, bytes), and, at each scrape, what the store shows
//! of its cluster ([`ClusterView`]: host states, transitions, detection times, sibling reads,
//! refused writes, lag, pools, the directory). `/metrics` serves them in the Prometheus text
//! format (0.0.4), encoded by `prometheus-client`.
//!
//! The request path touches only handles made at start-up: an atomic counter of successes and
//! a lock-free latency distribution per method (two atomic adds; `prometheus-client`'s own
//! histogram takes a mutex per observation, which every connection would share). A failure
//! looks its outcome up in a family, which is rarer.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::codec::Method;
use crate::error::ErrorKind;
use crate::store::view::{ClusterView, Distribution, DistributionView};
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
        registry.register_collector(Box::new(ClusterCollector { store }));
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

/// Encodes the store's [`ClusterView`] at each scrape.
struct ClusterCollector {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCollector")
    }
}

/// One series per host: `(host address, value)`.
type PerHost<T> = Vec<(String, T)>;

fn gauge<T>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: PerHost<T>,
) -> std::fmt::Result
where
    T: prometheus_client::encoding::EncodeGaugeValue,
{
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (host, v) in series {
        let labels = [("host", host.as_str())];
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: PerHost<u64>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (host, v) in series {
        let labels = [("host", host.as_str())];
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(&'static str, String, &DistributionView)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (label, value, d) in series {
        let labels = [(label, value.as_str())];
        m.encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                d.sum, d.count, &d.buckets, None,
            )?;
    }
    Ok(())
}

fn single<T>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: T,
) -> std::fmt::Result
where
    T: prometheus_client::encoding::EncodeGaugeValue
        + prometheus_client::encoding::EncodeCounterValue,
{
    let m = e.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(v).encode(m),
        _ => ConstGauge::new(v).encode(m),
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some(view) = self.store.view() else {
            return Ok(());
        };
        encode_view(&mut e, &view)
    }
}

/// The series of `view`.
fn encode_view(e: &mut DescriptorEncoder, view: &ClusterView) -> std::fmt::Result {
    let hosts = &view.hosts;
    let per = |f: &dyn Fn(&crate::store::view::HostView) -> u64| -> PerHost<u64> {
        hosts.iter().map(|h| (h.address.clone(), f(h))).collect()
    };
    {
        let mut m = e.encode_descriptor(
            "thrudoc_host_state",
            "1 for the state each MySQL host is in as this server sees it (UP: reads and writes; \
             RETURNING: reads only; DOWN: its sibling serves reads, writes refused), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for h in hosts {
            for state in ["UP", "RETURNING", "DOWN"] {
                let labels = [("host", h.address.as_str()), ("state", state)];
                ConstGauge::new(i64::from(h.state == state)).encode(m.encode_family(&labels)?)?;
            }
        }
    }
    counter(
        e,
        "thrudoc_host_transitions",
        "State changes of each host",
        per(&|h| h.transitions),
    )?;
    histogram(
        e,
        "thrudoc_host_down_detection_seconds",
        "Time from a host's last answered probe to its being marked DOWN",
        hosts
            .iter()
            .map(|h| ("host", h.address.clone(), &h.detection))
            .collect(),
    )?;
    counter(
        e,
        "thrudoc_host_sibling_reads",
        "Reads of a host's partitions served by its sibling while it was not readable",
        per(&|h| h.sibling_reads),
    )?;
    counter(
        e,
        "thrudoc_host_writes_refused",
        "Writes to a host's partitions refused because it was not UP",
        per(&|h| h.writes_refused),
    )?;
    gauge(
        e,
        "thrudoc_host_sibling_lag_seconds",
        "How long a host's sibling has lacked writes the host has, as last probed (absent: not known)",
        hosts
            .iter()
            .filter_map(|h| Some((h.address.clone(), h.sibling_lag_secs?)))
            .collect(),
    )?;
    gauge(
        e,
        "thrudoc_host_pool_connections_in_use",
        "Connections of this server's pool to a host serving a request now",
        per(&|h| h.pool_in_use as u64)
            .into_iter()
            .map(|(h, v)| (h, v as i64))
            .collect(),
    )?;
    gauge(
        e,
        "thrudoc_host_partitions",
        "Partitions whose master a host is",
        per(&|h| h.partitions as u64)
            .into_iter()
            .map(|(h, v)| (h, v as i64))
            .collect(),
    )?;
    single(
        e,
        "thrudoc_directory_version",
        "The directory version this server routes by",
        MetricType::Gauge,
        view.directory_version,
    )?;
    single(
        e,
        "thrudoc_directory_age_seconds",
        "Seconds since the directory was last read or its version confirmed",
        MetricType::Gauge,
        view.directory_age_secs,
    )?;
    single(
        e,
        "thrudoc_directory_lease_lost",
        "1 while writes are refused because the directory has not been confirmed within the lease",
        MetricType::Gauge,
        u64::from(view.lease_lost),
    )?;
    for (name, help, v) in [
        (
            "thrudoc_failover_sibling_reads",
            "Reads served by a sibling during an outage",
            view.sibling_reads,
        ),
        (
            "thrudoc_failover_waits",
            "Reads during an outage that waited for the sibling to apply writes",
            view.failover_waits,
        ),
        (
            "thrudoc_failover_refused",
            "Reads during an outage refused BEHIND",
            view.failover_refused,
        ),
        (
            "thrudoc_failover_stale_reads",
            "Reads during an outage served stale (FAILOVER_READS = stale)",
            view.stale_reads,
        ),
    ] {
        single(e, name, help, MetricType::Counter, v)?;
    }
    histogram(
        e,
        "thrudoc_coalesced_statement_keys",
        "Keys per statement of concurrent gets or puts of one partition sent together",
        vec![
            ("op", "get".to_string(), &view.coalesced_gets),
            ("op", "put".to_string(), &view.coalesced_puts),
        ],
    )?;
    Ok(())
}
