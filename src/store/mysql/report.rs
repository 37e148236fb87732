//! What `admin("status")` and `admin("stats")` say of the MySQL backend, and the
//! [`ClusterView`] of the metrics and the status page: the directory and this server's view of
//! each host.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::consistent::FailoverCounters;
use super::health::State;
use super::routing::{HostRoute, Routing};
use super::Inner;
use crate::store::view::{BucketView, ClusterView, HostView, PartitionView};

/// The cluster as this server sees it now.
pub(super) fn cluster_view(inner: &Inner) -> ClusterView {
    let routing = inner.routing.load();
    let dir = &routing.directory;
    let hosts = routing
        .hosts
        .iter()
        .map(|(id, route)| {
            let r = route.health.report();
            let health = &route.health;
            HostView {
                id: *id,
                address: route.address.to_string(),
                sibling: route
                    .sibling
                    .and_then(|s| routing.hosts.get(&s))
                    .map(|s| s.address.to_string()),
                state: r.state.as_str(),
                state_secs: r.for_secs,
                reason: r.reason,
                transitions: r.transitions,
                detection: health.detection.view(),
                sibling_reads: health.sibling_reads.load(Ordering::Relaxed),
                writes_refused: health.writes_refused.load(Ordering::Relaxed),
                sibling_lag_secs: sibling_lag(&routing, route).map(|d| d.as_secs_f64()),
                pool_in_use: route
                    .pool
                    .metrics()
                    .connections_in_use
                    .load(Ordering::Relaxed),
                partitions: dir
                    .buckets
                    .values()
                    .flat_map(|b| &b.partitions)
                    .filter(|p| p.host_id == *id)
                    .count(),
            }
        })
        .collect();
    let buckets = dir
        .buckets
        .values()
        .map(|b| BucketView {
            name: b.name.clone(),
            hash: b.hash.to_string(),
            partitions: b
                .partitions
                .iter()
                .map(|p| PartitionView {
                    id: p.id,
                    start: p.start,
                    end: p.end,
                    host: routing
                        .hosts
                        .get(&p.host_id)
                        .map_or_else(|| format!("host {}", p.host_id), |h| h.address.to_string()),
                    table: p.datatable.clone(),
                })
                .collect(),
        })
        .collect();
    let failover = &inner.failover;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    ClusterView {
        directory_version: dir.version,
        directory_age_secs: inner.directory_age().as_secs_f64(),
        lease_lost: inner.lease_lost.load(Ordering::Relaxed),
        hosts,
        buckets,
        changes: inner.health.changes.list(),
        sibling_reads: get(&failover.sibling_reads),
        failover_waits: get(&failover.waits),
        failover_refused: get(&failover.refused),
        stale_reads: get(&failover.stale_reads),
        coalesced_gets: inner.coalesced_gets.view(),
        coalesced_puts: inner.coalesced_puts.view(),
    }
}

/// `name=value` lines per host: up (1: takes writes, 0: not), its state (UP, RETURNING, DOWN),
/// seconds in that state, transitions so far, its sibling's lag behind it in seconds (-1: not
/// known); then how reads during outages went.
pub fn stats_text(routing: &Routing, failover: &FailoverCounters) -> String {
    let mut out = format!("directory.version={}\n", routing.directory.version);
    for route in routing.hosts.values() {
        let r = route.health.report();
        let _ = writeln!(
            out,
            "host.{a}.up={}\nhost.{a}.state={}\nhost.{a}.state_secs={:.1}\nhost.{a}.transitions={}",
            u8::from(r.state == State::Up),
            r.state.as_str(),
            r.for_secs,
            r.transitions,
            a = route.address
        );
        let lag = sibling_lag(routing, route).map_or(-1.0, |d| d.as_secs_f64());
        let _ = writeln!(out, "host.{}.sibling_lag_secs={lag:.3}", route.address);
    }
    out.push_str(&failover.text());
    out
}

/// What the host's probes read of its GTID positions and its sibling's lag behind it:
/// `written=1-1-120 applied=2-2-40 acknowledged=1-1-118 sibling_lag=0.0s`.
fn positions(routing: &Routing, route: &HostRoute) -> String {
    let r = route.health.replication.report();
    if r.unsupported {
        return "positions=none (not MariaDB)".into();
    }
    let Some(age) = r.sampled_secs else {
        return "positions=(not probed yet)".into();
    };
    let lag = sibling_lag(routing, route)
        .map_or("unknown".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    format!(
        "written={} applied={} acknowledged={} sibling_lag={lag} (probed {age:.1} s ago)",
        r.written, r.applied, r.acknowledged
    )
}

/// How long `route`'s sibling has lacked writes `route` had (see [`super::replication`]).
fn sibling_lag(routing: &Routing, route: &HostRoute) -> Option<std::time::Duration> {
    let sibling = routing.hosts.get(&route.sibling?)?;
    route.health.replication.lag_of(&sibling.health.replication)
}

/// The directory, each host with its sibling and state, each bucket, and the buckets not
/// served with why.
pub fn status_text(routing: &Routing) -> String {
    let dir = &routing.directory;
    let mut out = format!("backend=mysql\n{dir}\n");
    for h in dir.hosts.values() {
        let sibling = h
            .slave_id
            .and_then(|s| dir.hosts.get(&s))
            .map_or("-".to_string(), |s| s.address().to_string());
        let state = routing.hosts.get(&h.id).map_or_else(
            || "unknown".to_string(),
            |route| {
                let r = route.health.report();
                let state = r.state.as_str();
                format!(
                    "{state} for {:.1} s ({}), transitions={}, {}",
                    r.for_secs,
                    r.reason,
                    r.transitions,
                    positions(routing, route)
                )
            },
        );
        let _ = writeln!(
            out,
            "host {} {} sibling={sibling} state={state}",
            h.id,
            h.address()
        );
    }
    for b in dir.buckets.values() {
        let _ = writeln!(
            out,
            "bucket {} hash={} partitions={}",
            b.name,
            b.hash,
            b.partitions.len()
        );
    }
    for (name, why) in &dir.invalid {
        let _ = writeln!(out, "bucket {name} INVALID: {why}");
    }
    out
}
