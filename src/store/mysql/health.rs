//! Host health: is each MySQL host up or down, as this server sees it.
//!
//! ```text
//!                 probe fails FALL times in a row,
//!                 or a request's connection fails
//!        ┌──────┐ ───────────────────────────────▶ ┌──────┐
//!        │  UP  │                                   │ DOWN │
//!        └──────┘ ◀─────────────────────────────── └──────┘
//!                 probe succeeds RISE times in a row
//! ```
//!
//! Each host gets a background probe: `SELECT 1` over its own connection (not a pooled one, so
//! a pool full of stale connections cannot hide a dead host) every `HEALTH_PROBE_INTERVAL_MS`,
//! each attempt bounded by `HEALTH_PROBE_TIMEOUT_MS`. A hung host (SIGSTOP, a network black
//! hole) accepts TCP but never answers, so it is caught by the timeout, not by a refusal.
//!
//! While a host is DOWN, reads of its partitions go to its sibling and writes are refused
//! (see the parent module). Going DOWN wakes every read waiting on the host, so a read stuck
//! on a hung master moves to the sibling at once instead of waiting out its timeout.
//! Switchback is the RISE transition: no operator, no restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::sync::Notify;

use crate::mysql::{deadline, Access, Failure, HostAddr};

/// Probe settings (`HEALTH_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Failed probes in a row that mark an UP host DOWN.
    pub fall: u32,
    /// Successful probes in a row that mark a DOWN host UP.
    pub rise: u32,
}

/// The health of one host.
pub struct HostHealth {
    address: HostAddr,
    up: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
    transitions: AtomicU64,
    detail: Mutex<Detail>,
    went_down: Notify,
}

struct Detail {
    since: Instant,
    reason: String,
}

/// A snapshot of a host's health, for status output.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub address: HostAddr,
    pub up: bool,
    pub for_secs: f64,
    pub reason: String,
    pub transitions: u64,
}

impl HostHealth {
    fn new(address: HostAddr) -> Self {
        HostHealth {
            address,
            up: AtomicBool::new(true),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            transitions: AtomicU64::new(0),
            detail: Mutex::new(Detail {
                since: Instant::now(),
                reason: "not probed yet".into(),
            }),
            went_down: Notify::new(),
        }
    }

    /// True unless the host is known to be down. One atomic load: this is on every request.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The host's address.
    pub fn address(&self) -> &HostAddr {
        &self.address
    }

    /// Why the host is down (or the last probe's word), and for how long.
    pub fn report(&self) -> HealthReport {
        let detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        HealthReport {
            address: self.address.clone(),
            up: self.is_up(),
            for_secs: detail.since.elapsed().as_secs_f64(),
            reason: detail.reason.clone(),
            transitions: self.transitions.load(Ordering::Relaxed),
        }
    }

    /// Completes when the host goes DOWN. Reads race their query against it.
    pub async fn wait_down(&self) {
        let notified = self.went_down.notified();
        if !self.is_up() {
            return;
        }
        notified.await;
    }

    /// A request's connection to the host failed: mark it DOWN now, without waiting for probes.
    pub fn suspect(&self, reason: &str) {
        self.successes.store(0, Ordering::Relaxed);
        self.mark_down(&format!("request failed: {reason}"));
    }

    fn probe_result(&self, result: Result<(), String>, settings: &HealthSettings) {
        match result {
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
                let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.is_up() && n >= settings.rise {
                    self.mark_up(n);
                }
            }
            Err(reason) => {
                self.successes.store(0, Ordering::Relaxed);
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if self.is_up() && n >= settings.fall {
                    self.mark_down(&format!("{n} probes failed in a row: {reason}"));
                } else if !self.is_up() {
                    self.detail.lock().unwrap_or_else(|p| p.into_inner()).reason = reason;
                }
            }
        }
    }

    fn mark_down(&self, reason: &str) {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        if self.up.swap(false, Ordering::AcqRel) {
            detail.since = Instant::now();
            self.transitions.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(host = %self.address, %reason, "host DOWN: reads go to its sibling, writes are refused");
            self.went_down.notify_waiters();
        }
        detail.reason = reason.to_string();
    }

    fn mark_up(&self, probes: u32) {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        if !self.up.swap(true, Ordering::AcqRel) {
            let down_for = detail.since.elapsed();
            detail.since = Instant::now();
            detail.reason = format!("{probes} probes answered in a row");
            self.transitions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(host = %self.address, ?down_for, "host UP again: its partitions are served by it again");
        }
    }
}

/// The health of every host this server has routed to, by address. Entries live as long as the
/// registry; each has one probe task, which ends when the registry is dropped.
pub struct Health {
    settings: HealthSettings,
    hosts: Mutex<HashMap<HostAddr, Arc<HostHealth>>>,
    /// Set by [`Health::close`]: the probes end, saying goodbye to their hosts.
    closed: tokio::sync::watch::Sender<bool>,
    probes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Health {
    /// An empty registry.
    pub fn new(settings: HealthSettings) -> Arc<Self> {
        Arc::new(Health {
            settings,
            hosts: Mutex::new(HashMap::new()),
            closed: tokio::sync::watch::Sender::new(false),
            probes: Mutex::new(Vec::new()),
        })
    }

    /// Ends every probe and waits until each has closed its connection (at shutdown).
    pub async fn close(&self) {
        self.closed.send_replace(true);
        let probes = std::mem::take(&mut *self.probes.lock().unwrap_or_else(|p| p.into_inner()));
        for probe in probes {
            let _ = probe.await;
        }
    }

    /// The health of `addr`, starting its probe (connecting with `opts`) on first use.
    pub fn host(self: &Arc<Self>, addr: &HostAddr, opts: Opts) -> Arc<HostHealth> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(addr.clone())
            .or_insert_with(|| {
                let host = Arc::new(HostHealth::new(addr.clone()));
                let probe = tokio::spawn(probe_loop(
                    Arc::downgrade(self),
                    Arc::downgrade(&host),
                    opts,
                ));
                self.probes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(probe);
                host
            })
            .clone()
    }

    /// Probes `host` once now (used at start-up so a server never begins by routing to a host
    /// that is already dead).
    pub async fn probe_now(&self, host: &HostHealth, opts: Opts) {
        let mut conn = None;
        let result = probe(&mut conn, &opts, self.settings.timeout).await;
        if let Err(reason) = &result {
            // At start-up one failure is enough: there is no traffic to protect yet.
            host.mark_down(&format!("start-up probe failed: {reason}"));
        } else {
            host.probe_result(result, &self.settings);
        }
        if let Some(c) = conn {
            let _ = tokio::time::timeout(self.settings.timeout, c.disconnect()).await;
        }
    }
}

async fn probe_loop(registry: Weak<Health>, host: Weak<HostHealth>, opts: Opts) {
    let mut conn: Option<Conn> = None;
    let Some(mut closed) = registry.upgrade().map(|r| r.closed.subscribe()) else {
        return;
    };
    loop {
        let Some(settings) = registry.upgrade().map(|r| r.settings) else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            _ = closed.wait_for(|closed| *closed) => break,
        }
        let Some(host) = host.upgrade() else { return };
        let result = probe(&mut conn, &opts, settings.timeout).await;
        host.probe_result(result, &settings);
    }
    if let Some(c) = conn {
        let _ = tokio::time::timeout(Duration::from_secs(1), c.disconnect()).await;
    }
}

/// One probe: (re)connect when needed, then `SELECT 1`, all within `timeout`. A failed probe
/// drops its connection, so the next one starts afresh.
async fn probe(conn: &mut Option<Conn>, opts: &Opts, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(Conn::new(opts.clone()).await?);
        }
        match conn.as_mut() {
            Some(c) => c.query_drop("SELECT 1").await,
            None => Ok(()),
        }
    };
    let result = deadline(
        timeout,
        Access::Read,
        "health probe",
        |e, what| Failure::for_service(e, Access::Read, what),
        attempt,
    )
    .await
    .map_err(|f| f.error.to_string());
    if result.is_err() {
        *conn = None;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HealthSettings {
        HealthSettings {
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(10),
            fall: 2,
            rise: 3,
        }
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        let s = settings();
        let h = HostHealth::new(HostAddr::new("h", 1).unwrap());
        h.probe_result(Err("x".into()), &s);
        assert!(h.is_up(), "one failure is not enough");
        h.probe_result(Ok(()), &s);
        h.probe_result(Err("x".into()), &s);
        assert!(h.is_up(), "failures must be in a row");
        h.probe_result(Err("y".into()), &s);
        assert!(!h.is_up());
        assert!(h.report().reason.contains("y"));
        h.probe_result(Ok(()), &s);
        h.probe_result(Ok(()), &s);
        assert!(!h.is_up(), "two successes are not enough");
        h.probe_result(Err("z".into()), &s);
        h.probe_result(Ok(()), &s);
        h.probe_result(Ok(()), &s);
        assert!(!h.is_up(), "successes must be in a row");
        h.probe_result(Ok(()), &s);
        assert!(h.is_up());
        assert_eq!(h.report().transitions, 2);
    }

    #[test]
    fn a_failed_request_marks_down_at_once() {
        let s = settings();
        let h = HostHealth::new(HostAddr::new("h", 1).unwrap());
        h.suspect("connection refused");
        assert!(!h.is_up());
        assert!(h.report().reason.contains("connection refused"));
        for _ in 0..3 {
            h.probe_result(Ok(()), &s);
        }
        assert!(h.is_up());
    }

    #[tokio::test]
    async fn going_down_wakes_waiting_reads() {
        let h = Arc::new(HostHealth::new(HostAddr::new("h", 1).unwrap()));
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.wait_down().await }
        });
        tokio::task::yield_now().await;
        h.suspect("gone");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        // Already down: returns at once.
        tokio::time::timeout(Duration::from_secs(5), h.wait_down())
            .await
            .unwrap();
    }
}
