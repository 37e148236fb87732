//! The store's [`ClusterView`] as Prometheus series, encoded at each scrape: per host its
//! state, transitions, time to detect an outage, reads served by its sibling, refused writes,
//! its sibling's lag, pool connections in use and partitions; the directory's version, age and
//! lease; reads during outages; the sizes of coalesced statements.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::store::view::{ClusterView, DistributionView, HostView};
use crate::store::Store;

/// Encodes the store's [`ClusterView`] at each scrape.
pub struct ClusterCollector {
    store: Arc<dyn Store>,
}

impl ClusterCollector {
    pub fn new(store: Arc<dyn Store>) -> ClusterCollector {
        ClusterCollector { store }
    }
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
    T: EncodeGaugeValue,
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

/// One histogram family, a series per `(label, value, distribution)`.
pub fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(&'static str, String, &DistributionView)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (label, value, d) in series {
        let labels = [(label, value.as_str())];
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(d.sum, d.count, &d.buckets, None)?;
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
    T: EncodeGaugeValue + EncodeCounterValue,
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
    let per = |f: &dyn Fn(&HostView) -> u64| -> PerHost<u64> {
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
        per(&|h| h.pool_in_use as u64),
    )?;
    gauge(
        e,
        "thrudoc_host_partitions",
        "Partitions whose master a host is",
        per(&|h| h.partitions as u64),
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
