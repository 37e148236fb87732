//! What each host has written and applied, as this server last saw it, and which of its writes
//! this server acknowledged: the facts a read from a sibling is checked against while the
//! partition's master is down (`FAILOVER_READS`, [`super::consistent`]).
//!
//! Each server of a master-master pair logs in a GTID domain of its own, so what a sibling
//! must apply to show a master's writes is a position within the master's GTIDs: those whose
//! server id is the master's.
//!
//! - Every write's OK packet carries its GTID (`session_track_system_variables = last_gtid`);
//!   [`Replication::acknowledged`] raises the master's *acknowledged* position to it. No extra
//!   round trip.
//! - Every health probe reads `@@server_id`, `@@gtid_binlog_pos` and `@@gtid_slave_pos` in the
//!   one statement it sends anyway ([`PROBE`]): the host's own writes (*written*, also what
//!   any read of it could have returned by then) and what it has applied of its sibling's.
//!
//! A read through this server has seen at most the master's *acknowledged* and *written*
//! positions raised together, give or take the writes of other servers committed since the
//! last probe; that is the [`Replication::required`] position a sibling must have applied.
//!
//! A sibling's *lag* is how long it has lacked a write its master had: the time between the
//! first probe that saw the master hold a GTID the sibling has not applied, and the sibling's
//! latest probe. It is measured to within a probe interval and keeps growing while the master
//! is down if the sibling never receives what the master held.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql_async::{OkPacket, SessionStateChange};

use crate::mysql::{Gtid, GtidPos};

/// The probe's one statement. A server without these variables (not MariaDB) fails it, and is
/// then probed with `SELECT 1` (see [`Replication::unsupported`]).
pub const PROBE: &str = "SELECT @@server_id, @@global.gtid_binlog_pos, @@global.gtid_slave_pos";

/// Most changes of a host's written position kept for measuring lag (about 17 minutes of
/// probes at the default interval under constant writes). A lag older than the oldest is
/// reported as at least that old.
const HISTORY: usize = 4096;

/// What one probe read of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub server_id: u32,
    /// `@@gtid_binlog_pos`.
    pub binlog: GtidPos,
    /// `@@gtid_slave_pos`.
    pub slave: GtidPos,
}

impl Sample {
    /// The sample of a probe's row.
    pub fn parse(server_id: u32, binlog: &str, slave: &str) -> crate::error::Result<Sample> {
        Ok(Sample {
            server_id,
            binlog: GtidPos::parse(binlog)?,
            slave: GtidPos::parse(slave)?,
        })
    }
}

/// The session variable each write's OK packet reports ([`last_gtid`]); set on every
/// connection of the data hosts' pools.
pub const TRACK_LAST_GTID: &str = "session_track_system_variables = 'last_gtid'";

/// The GTID of the transaction that `ok` acknowledged, if it wrote one (a statement that
/// changed no row writes none) and the server tracks `last_gtid`.
pub fn last_gtid(ok: &OkPacket<'_>) -> Option<Gtid> {
    let infos = ok.session_state_info().ok()?;
    infos
        .iter()
        .rev()
        .find_map(|info| match info.decode().ok()? {
            SessionStateChange::SystemVariables(vars) => vars
                .iter()
                .rev()
                .find(|v| v.name_bytes() == b"last_gtid")
                .and_then(|v| std::str::from_utf8(v.value_bytes()).ok())
                .and_then(|text| GtidPos::parse(text).ok())
                .and_then(|pos| pos.0.last().copied()),
            _ => None,
        })
}

/// One host's replication facts, as this server knows them.
#[derive(Default)]
pub struct Replication {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    server_id: Option<u32>,
    /// When the latest probe answered.
    at: Option<Instant>,
    /// The GTIDs the host originated, as its binary log held them at the latest probe.
    written: GtidPos,
    /// When each written position was first seen, oldest first.
    history: VecDeque<(Instant, GtidPos)>,
    /// What it had applied as a slave at the latest probe, raised by successful waits.
    applied: GtidPos,
    /// GTIDs of the writes this server acknowledged on the host.
    acknowledged: GtidPos,
    /// Its probe could not read positions: not MariaDB.
    unsupported: bool,
}

/// A snapshot for `admin status` and the errors that cite positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationReport {
    pub written: GtidPos,
    pub applied: GtidPos,
    pub acknowledged: GtidPos,
    /// Seconds since the latest probe that read positions.
    pub sampled_secs: Option<f64>,
    pub unsupported: bool,
}

impl Replication {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A probe answered at `at` with `sample`.
    pub fn sampled(&self, sample: Sample, at: Instant) {
        let mut seen = self.seen();
        let written = sample.binlog.of_server(sample.server_id);
        if seen.server_id.is_some_and(|id| id != sample.server_id) {
            // Another server at this address (rebuilt, or a test's restart with a new id):
            // nothing known of the old one applies.
            *seen = Seen::default();
        }
        seen.server_id = Some(sample.server_id);
        if seen.history.back().is_none_or(|(_, p)| *p != written) {
            if seen.history.len() == HISTORY {
                seen.history.pop_front();
            }
            seen.history.push_back((at, written.clone()));
        }
        seen.written = written;
        // A wait may have shown more than this probe, which may have been sent before it.
        seen.applied.raise_to(&sample.slave);
        seen.at = Some(at);
        seen.unsupported = false;
    }

    /// The host's probe cannot read GTID positions.
    pub fn unsupported(&self) {
        self.seen().unsupported = true;
    }

    /// Whether the host's probe found no GTID positions to read.
    pub fn is_unsupported(&self) -> bool {
        self.seen().unsupported
    }

    /// A write this server sent to the host was acknowledged with `gtid`.
    pub fn acknowledged(&self, gtid: Gtid) {
        self.seen().acknowledged.raise(gtid);
    }

    /// What a sibling must have applied before it serves a read of this host's partitions:
    /// every write this server acknowledged on it and everything its latest probe saw.
    pub fn required(&self) -> GtidPos {
        let seen = self.seen();
        let mut pos = seen.acknowledged.clone();
        pos.raise_to(&seen.written);
        pos
    }

    /// What the host is known to have applied as a slave.
    pub fn applied(&self) -> GtidPos {
        self.seen().applied.clone()
    }

    /// The host has applied `pos` (a wait for it succeeded).
    pub fn reached(&self, pos: &GtidPos) {
        self.seen().applied.raise_to(pos);
    }

    /// The host's server id, once a probe has read it.
    pub fn server_id(&self) -> Option<u32> {
        self.seen().server_id
    }

    /// The snapshot of what is known.
    pub fn report(&self) -> ReplicationReport {
        let seen = self.seen();
        ReplicationReport {
            written: seen.written.clone(),
            applied: seen.applied.clone(),
            acknowledged: seen.acknowledged.clone(),
            sampled_secs: seen.at.map(|at| at.elapsed().as_secs_f64()),
            unsupported: seen.unsupported,
        }
    }

    /// How long `sibling` has lacked a write this host had (see the module's words), or
    /// `None` when the sibling was never probed. Zero when it lacks nothing known.
    pub fn lag_of(&self, sibling: &Replication) -> Option<Duration> {
        let (applied, at) = {
            let s = sibling.seen();
            (s.applied.clone(), s.at?)
        };
        let seen = self.seen();
        let first_lacking = seen
            .history
            .iter()
            .find(|(_, written)| !applied.covers(written))
            .map(|(t, _)| *t);
        Some(first_lacking.map_or(Duration::ZERO, |t| at.saturating_duration_since(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(server_id: u32, binlog: &str, slave: &str) -> Sample {
        Sample::parse(server_id, binlog, slave).unwrap()
    }

    fn pos(s: &str) -> GtidPos {
        GtidPos::parse(s).unwrap()
    }

    #[test]
    fn required_joins_acknowledged_writes_and_the_probed_position() {
        let r = Replication::default();
        assert!(r.required().is_empty(), "nothing known, nothing required");
        r.acknowledged(Gtid {
            domain: 1,
            server: 1,
            seq: 7,
        });
        assert_eq!(r.required(), pos("1-1-7"));
        // The binary log also holds the sibling's writes (log_slave_updates): not required.
        r.sampled(sample(1, "1-1-5,2-2-40", "2-2-40"), Instant::now());
        assert_eq!(
            r.required(),
            pos("1-1-7"),
            "an older probe does not lower it"
        );
        r.sampled(sample(1, "1-1-9,2-2-41", "2-2-41"), Instant::now());
        assert_eq!(r.required(), pos("1-1-9"));
        assert_eq!(r.applied(), pos("2-2-41"));
    }

    #[test]
    fn a_wait_raises_what_the_host_is_known_to_have_applied() {
        let r = Replication::default();
        r.sampled(sample(2, "2-2-3", "1-1-10"), Instant::now());
        r.reached(&pos("1-1-12"));
        assert_eq!(r.applied(), pos("1-1-12"));
        r.sampled(sample(2, "2-2-3", "1-1-11"), Instant::now());
        assert_eq!(r.applied(), pos("1-1-12"), "a probe sent before the wait");
    }

    #[test]
    fn another_server_at_the_address_forgets_the_old_one() {
        let r = Replication::default();
        r.sampled(sample(1, "1-1-9", ""), Instant::now());
        r.acknowledged(Gtid {
            domain: 1,
            server: 1,
            seq: 10,
        });
        r.sampled(sample(5, "5-5-1", ""), Instant::now());
        assert_eq!(r.required(), pos("5-5-1"));
        assert_eq!(r.server_id(), Some(5));
    }

    #[test]
    fn lag_counts_from_the_first_write_the_sibling_lacks() {
        let master = Replication::default();
        let sibling = Replication::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(master.lag_of(&sibling), None, "sibling never probed");
        master.sampled(sample(1, "1-1-10", ""), at(0));
        master.sampled(sample(1, "1-1-10", ""), at(100));
        master.sampled(sample(1, "1-1-12", ""), at(200));
        master.sampled(sample(1, "1-1-15", ""), at(300));
        sibling.sampled(sample(2, "", "1-1-10"), at(350));
        assert_eq!(master.lag_of(&sibling), Some(Duration::from_millis(150)));
        sibling.sampled(sample(2, "", "1-1-12"), at(400));
        assert_eq!(master.lag_of(&sibling), Some(Duration::from_millis(100)));
        // The master is gone; the sibling never gets 13-15: its lag keeps growing.
        sibling.sampled(sample(2, "", "1-1-12"), at(2300));
        assert_eq!(master.lag_of(&sibling), Some(Duration::from_millis(2000)));
        sibling.reached(&pos("1-1-15"));
        assert_eq!(master.lag_of(&sibling), Some(Duration::ZERO));
    }

    #[test]
    fn history_is_bounded() {
        let r = Replication::default();
        let t0 = Instant::now();
        for i in 0..(HISTORY as u64 + 10) {
            r.sampled(
                sample(1, &format!("1-1-{i}"), ""),
                t0 + Duration::from_millis(i),
            );
        }
        assert_eq!(r.seen().history.len(), HISTORY);
        assert_eq!(r.seen().history[0].1, pos("1-1-10"));
    }
}
