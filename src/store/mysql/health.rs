//! Host health: is each MySQL host up or down, as this server sees it.
//!
//! ```text
//!             probe fails FALL times in a row, or a request's connection fails
//!    ┌──────┐ ──────────────────────────────────────────────────────▶ ┌──────┐
//!    │  UP  │                                                          │ DOWN │
//!    └──────┘ ◀──┐                                                     └──────┘
//!                │ RISE probes answered in a row,        one probe answered │ ▲
//!                │ and HOLD since the first     ┌───────────┐ ◀─────────────┘ │ a probe
//!                └───────────────────────────── │ RETURNING │ ────────────────┘ fails
//!                                               └───────────┘
//! ```
//!
//! Each host gets a background probe: one statement over its own connection (not a pooled one,
//! so a pool full of stale connections cannot hide a dead host) every
//! `HEALTH_PROBE_INTERVAL_MS`, each attempt bounded by `HEALTH_PROBE_TIMEOUT_MS`. The statement
//! reads the host's GTID positions ([`replication::PROBE`]), so the same round trip that says
//! the host answers also says how far it has written and applied (`SELECT 1` on a server
//! without MariaDB's GTID variables). A hung host (SIGSTOP, a network black
//! hole) accepts TCP but never answers, so it is caught by the timeout, not by a refusal.
//!
//! While a host is DOWN, reads of its partitions go to its sibling and writes are refused
//! (see [`super::routing`]). Going DOWN wakes every read waiting on the host, so a read stuck
//! on a hung master moves to the sibling at once instead of waiting out its timeout.
//!
//! Switchback takes two steps, because every server on a directory probes on its own: reads
//! return to the host at its first answered probe (RETURNING), writes only after RISE answered
//! probes in a row and at least HOLD (one probe interval plus one probe timeout) since that
//! first answer. So by the time any server writes to a returned master, every server that
//! reaches it has had a whole probe cycle to stop reading its partitions from the sibling,
//! which may not have the new writes yet (docs/DESIGN.md, "Failover"). No operator, no restart.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::sync::Notify;

use super::replication::{self, Replication, Sample};
use crate::mysql::{code, deadline, Access, Failure, HostAddr};
use crate::store::view::{Distribution, StateChange, CHANGES_KEPT};

/// Upper bounds, in seconds, of the time from a host's last answered probe to its DOWN.
const DETECTION_BOUNDS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// Probe settings (`HEALTH_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Failed probes in a row that mark an UP host DOWN.
    pub fall: u32,
    /// Successful probes in a row that let a returning host take writes again.
    pub rise: u32,
}

impl HealthSettings {
    /// How long a returning host answers before it takes writes again, at least.
    pub fn hold(&self) -> Duration {
        self.interval + self.timeout
    }
}

/// A host's state, as this server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reads and writes go to it.
    Up,
    /// It answers again: reads go to it, writes are still refused.
    Returning,
    /// Reads go to its sibling, writes are refused.
    Down,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Up,
            1 => State::Returning,
            _ => State::Down,
        }
    }

    /// `UP`, `RETURNING` or `DOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "UP",
            State::Returning => "RETURNING",
            State::Down => "DOWN",
        }
    }
}

/// The health of one host.
pub struct HostHealth {
    address: HostAddr,
    state: AtomicU8,
    successes: AtomicU32,
    failures: AtomicU32,
    transitions: AtomicU64,
    detail: Mutex<Detail>,
    went_down: Notify,
    /// What its probes read of its GTID positions, and the writes acknowledged on it.
    pub replication: Replication,
    /// Seconds from the last answered probe to DOWN, per outage.
    pub detection: Distribution,
    /// Reads of its partitions served by its sibling, and writes to them refused, because it
    /// was not UP.
    pub sibling_reads: AtomicU64,
    pub writes_refused: AtomicU64,
    /// Every host's state changes, shared by the registry.
    changes: Arc<Changes>,
}

struct Detail {
    since: Instant,
    reason: String,
    /// When a probe last answered (or the host was first seen).
    answered: Instant,
}

/// The last state changes of every host, oldest first.
#[derive(Default)]
pub struct Changes(Mutex<VecDeque<StateChange>>);

impl Changes {
    fn push(&self, host: &HostAddr, to: State, reason: &str) {
        let mut changes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if changes.len() == CHANGES_KEPT {
            changes.pop_front();
        }
        changes.push_back(StateChange {
            at: SystemTime::now(),
            host: host.to_string(),
            to: to.as_str(),
            reason: reason.to_string(),
        });
    }

    /// The changes kept, oldest first.
    pub fn list(&self) -> Vec<StateChange> {
        let changes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        changes.iter().cloned().collect()
    }
}

/// A snapshot of a host's health, for status output.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub address: HostAddr,
    pub state: State,
    pub for_secs: f64,
    pub reason: String,
    pub transitions: u64,
}

impl HostHealth {
    fn new(address: HostAddr, changes: Arc<Changes>) -> Self {
        HostHealth {
            address,
            state: AtomicU8::new(State::Up as u8),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            transitions: AtomicU64::new(0),
            detail: Mutex::new(Detail {
                since: Instant::now(),
                reason: "not probed yet".into(),
                answered: Instant::now(),
            }),
            detection: Distribution::new(DETECTION_BOUNDS),
            sibling_reads: AtomicU64::new(0),
            writes_refused: AtomicU64::new(0),
            changes,
            went_down: Notify::new(),
            replication: Replication::default(),
        }
    }

    /// The state now. One atomic load: this is on every request.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Writes may go to the host.
    pub fn is_up(&self) -> bool {
        self.state() == State::Up
    }

    /// Reads may go to the host.
    pub fn is_readable(&self) -> bool {
        self.state() != State::Down
    }

    /// The host's address.
    pub fn address(&self) -> &HostAddr {
        &self.address
    }

    /// Why the host is in its state (or the last probe's word), and for how long.
    pub fn report(&self) -> HealthReport {
        let detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        HealthReport {
            address: self.address.clone(),
            state: self.state(),
            for_secs: detail.since.elapsed().as_secs_f64(),
            reason: detail.reason.clone(),
            transitions: self.transitions.load(Ordering::Relaxed),
        }
    }

    /// Completes when the host goes DOWN. Reads race their query against it.
    pub async fn wait_down(&self) {
        let notified = self.went_down.notified();
        if !self.is_readable() {
            return;
        }
        notified.await;
    }

    /// A request's connection to the host failed (`why`, said of the host): mark it DOWN now,
    /// without waiting for probes.
    pub fn suspect(&self, why: &str) {
        self.successes.store(0, Ordering::Relaxed);
        self.mark_down(&format!("a connection failed: {why}"));
    }

    fn probe_result(&self, result: Result<(), String>, settings: &HealthSettings) {
        match result {
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
                self.detail().answered = Instant::now();
                let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
                match self.state() {
                    State::Down => self.mark_returning(),
                    State::Returning => {
                        let held = self.detail().since.elapsed() >= settings.hold();
                        if n >= settings.rise && held {
                            self.mark_up(n);
                        }
                    }
                    State::Up => {
                        let mut detail = self.detail();
                        if detail.reason != ANSWERING {
                            detail.reason = ANSWERING.into();
                        }
                    }
                }
            }
            Err(reason) => {
                self.successes.store(0, Ordering::Relaxed);
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                match self.state() {
                    State::Up if n >= settings.fall => {
                        self.mark_down(&format!("{n} probes failed in a row: {reason}"))
                    }
                    State::Up => {}
                    // It answered only just now: one failure sends it back.
                    State::Returning => self.mark_down(&format!("a probe failed again: {reason}")),
                    State::Down => {
                        // A DOWN host's probes keep failing; a new reason is worth one line
                        // (why a host stays down is what an operator asks next).
                        let mut detail = self.detail();
                        if !detail.reason.ends_with(reason.as_str()) {
                            tracing::info!(event = "host_still_down", host = %self.address,
                                %reason, down_secs = detail.since.elapsed().as_secs_f64(),
                                "host still DOWN, for a new reason");
                            detail.reason = reason;
                        }
                    }
                }
            }
        }
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves to `to` from any other state; false when it was there already.
    fn enter(&self, to: State, detail: &mut Detail) -> bool {
        let from = State::from_u8(self.state.swap(to as u8, Ordering::AcqRel));
        if from == to {
            return false;
        }
        detail.since = Instant::now();
        self.transitions.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn mark_down(&self, reason: &str) {
        let mut detail = self.detail();
        if self.enter(State::Down, &mut detail) {
            tracing::warn!(event = "host_down", host = %self.address, %reason, "host DOWN: reads go to its sibling, writes are refused");
            self.went_down.notify_waiters();
            self.detection
                .record(detail.answered.elapsed().as_secs_f64());
            self.changes.push(&self.address, State::Down, reason);
        }
        detail.reason = reason.to_string();
    }

    fn mark_returning(&self) {
        let mut detail = self.detail();
        let down_for = detail.since.elapsed();
        if self.enter(State::Returning, &mut detail) {
            detail.reason = "it answers again; writes wait for more probes".into();
            self.changes
                .push(&self.address, State::Returning, &detail.reason);
            tracing::info!(event = "host_returning", host = %self.address, down_secs = down_for.as_secs_f64(), "host RETURNING: it answers again, reads go to it; writes resume after more probes");
        }
    }

    fn mark_up(&self, probes: u32) {
        let mut detail = self.detail();
        let returning_for = detail.since.elapsed();
        if self.enter(State::Up, &mut detail) {
            detail.reason = format!("{probes} probes answered in a row");
            self.changes.push(&self.address, State::Up, &detail.reason);
            tracing::info!(event = "host_up", host = %self.address, returning_secs = returning_for.as_secs_f64(), "host UP again: writes go to it again");
        }
    }
}

/// The reason shown for an UP host whose probes answer.
const ANSWERING: &str = "probes answer";

/// The health of every host this server has routed to, by address. Entries live as long as the
/// registry; each has one probe task, which ends when the registry is dropped.
pub struct Health {
    settings: HealthSettings,
    hosts: Mutex<HashMap<HostAddr, Arc<HostHealth>>>,
    /// Every host's last state changes.
    pub changes: Arc<Changes>,
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
            changes: Arc::default(),
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
                let host = Arc::new(HostHealth::new(addr.clone(), self.changes.clone()));
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
        match probe(&mut conn, &opts, self.settings.timeout, host).await {
            // A host that refuses or drops the connection is gone: one failure is enough at
            // start-up, where there is no traffic to protect yet.
            Err(f) if f.class.host_gone() => {
                host.mark_down(&format!("start-up probe failed: {}", f.error))
            }
            // One slow answer is not: the host may be busy (a chaos run found a server that
            // marked a live master DOWN at start-up and refused its writes). It counts as one
            // failed probe of FALL, as it would later.
            result => host.probe_result(result.map_err(|f| f.error.to_string()), &self.settings),
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
        let result = probe(&mut conn, &opts, settings.timeout, &host).await;
        host.probe_result(result.map_err(|f| f.error.to_string()), &settings);
    }
    if let Some(c) = conn {
        let _ = tokio::time::timeout(Duration::from_secs(1), c.disconnect()).await;
    }
}

/// One probe: (re)connect when needed, then read the host's positions (or `SELECT 1` where it
/// has none), all within `timeout`. A failed probe drops its connection, so the next one
/// starts afresh.
async fn probe(
    conn: &mut Option<Conn>,
    opts: &Opts,
    timeout: Duration,
    host: &HostHealth,
) -> Result<(), Failure> {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(Conn::new(opts.clone()).await?);
        }
        let Some(c) = conn.as_mut() else {
            return Ok(None);
        };
        if host.replication.is_unsupported() {
            return c.query_drop("SELECT 1").await.map(|()| None);
        }
        type Row = (u32, Option<String>, Option<String>);
        match c.query_first::<Row, _>(replication::PROBE).await {
            Ok(row) => Ok(row),
            Err(mysql_async::Error::Server(e)) if e.code == code::ER_UNKNOWN_SYSTEM_VARIABLE => {
                tracing::warn!(host = %host.address, error = %e.message,
                    "the host has no MariaDB GTID positions: FAILOVER_READS = consistent cannot vouch for reads from it");
                host.replication.unsupported();
                c.query_drop("SELECT 1").await.map(|()| None)
            }
            Err(e) => Err(e),
        }
    };
    let result = deadline(
        timeout,
        Access::Read,
        "health probe",
        |e, what| Failure::for_service(e, Access::Read, what),
        attempt,
    )
    .await;
    match &result {
        Ok(Some((server_id, binlog, slave))) => {
            match Sample::parse(
                *server_id,
                binlog.as_deref().unwrap_or_default(),
                slave.as_deref().unwrap_or_default(),
            ) {
                Ok(sample) => host.replication.sampled(sample, Instant::now()),
                Err(e) => {
                    tracing::warn!(host = %host.address, error = %e, "health probe: unreadable GTID position")
                }
            }
        }
        Ok(None) => {}
        Err(_) => *conn = None,
    }
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No hold: the state machine alone.
    fn settings() -> HealthSettings {
        HealthSettings {
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
            fall: 2,
            rise: 3,
        }
    }

    fn host() -> HostHealth {
        HostHealth::new(HostAddr::new("h", 1).unwrap(), Arc::default())
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        let s = settings();
        let h = host();
        h.probe_result(Err("x".into()), &s);
        assert!(h.is_up(), "one failure is not enough");
        h.probe_result(Ok(()), &s);
        h.probe_result(Err("x".into()), &s);
        assert!(h.is_up(), "failures must be in a row");
        h.probe_result(Err("y".into()), &s);
        assert_eq!(h.state(), State::Down);
        assert!(h.report().reason.contains("y"));
        h.probe_result(Ok(()), &s);
        assert_eq!(
            h.state(),
            State::Returning,
            "reads return at the first answer"
        );
        assert!(h.is_readable() && !h.is_up());
        h.probe_result(Ok(()), &s);
        assert!(!h.is_up(), "two successes are not enough for writes");
        h.probe_result(Err("z".into()), &s);
        assert_eq!(
            h.state(),
            State::Down,
            "a returning host that fails is down again"
        );
        h.probe_result(Ok(()), &s);
        h.probe_result(Ok(()), &s);
        assert!(!h.is_up(), "successes must be in a row");
        h.probe_result(Ok(()), &s);
        assert!(h.is_up());
        // DOWN, RETURNING, DOWN, RETURNING, UP.
        assert_eq!(h.report().transitions, 5);
        assert_eq!(h.report().reason, "3 probes answered in a row");
        h.probe_result(Ok(()), &s);
        assert_eq!(
            h.report().reason,
            ANSWERING,
            "an up host says its probes answer"
        );
    }

    #[test]
    fn writes_wait_a_whole_probe_cycle_after_the_first_answer() {
        let s = HealthSettings {
            interval: Duration::from_millis(40),
            timeout: Duration::from_millis(60),
            fall: 1,
            rise: 2,
        };
        let h = host();
        h.suspect("gone");
        h.probe_result(Ok(()), &s);
        let returning = Instant::now();
        for _ in 0..5 {
            h.probe_result(Ok(()), &s);
        }
        assert!(!h.is_up(), "RISE answers within the hold are not enough");
        std::thread::sleep(s.hold().saturating_sub(returning.elapsed()));
        h.probe_result(Ok(()), &s);
        assert!(
            h.is_up(),
            "after the hold, the next answer lets writes back"
        );
    }

    #[test]
    fn a_failed_request_marks_down_at_once() {
        let s = settings();
        let h = host();
        h.suspect("connection refused");
        assert!(!h.is_readable());
        assert!(h.report().reason.contains("connection refused"));
        for _ in 0..3 {
            h.probe_result(Ok(()), &s);
        }
        assert!(h.is_up());
    }

    #[tokio::test]
    async fn going_down_wakes_waiting_reads() {
        let h = Arc::new(HostHealth::new(
            HostAddr::new("h", 1).unwrap(),
            Arc::default(),
        ));
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
