//! Reads from a sibling that never go back in time (`FAILOVER_READS`).
//!
//! While a partition's master is down its reads go to the master's sibling, which may not have
//! applied the master's last writes: replication is asynchronous unless semi-synchronous
//! replication is on, and a master that dies may hold writes it never sent. Before a sibling
//! serves such a read, this server compares what the sibling has applied with what the read
//! must show, the master's [`Replication::required`](super::replication::Replication::required)
//! position (every write this server acknowledged there, and the master's position at its last
//! probe):
//!
//! | `FAILOVER_READS` | the sibling has applied it | it has not |
//! | --- | --- | --- |
//! | `consistent` (default) | served | the read waits on its own connection (`MASTER_GTID_WAIT`) for at most `FAILOVER_READ_WAIT_MS`, then is refused with `BEHIND`; at once if the sibling has lacked the master's writes for more than `FAILOVER_MAX_LAG_MS` |
//! | `stale` | served | served, and counted (`failover.stale_reads`) |
//!
//! In `consistent` mode the position also includes what the sibling has received from the
//! master (`Gtid_IO_Pos`, read for each such read): with semi-synchronous replication that is
//! every write any server had acknowledged, so reads through any server show them.
//!
//! A server that has had no answer from the master since it started knows nothing of its
//! position, and refuses such reads in `consistent` mode until it has (a chaos run found a
//! freshly started server serving a sibling 13 s behind).
//!
//! Once a wait succeeds the sibling is known to hold that position: later reads that need no
//! more cost one `SHOW ALL SLAVES STATUS` on their own connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::routing::HostRoute;
use super::Inner;
use crate::config::FailoverReads;
use crate::error::{Error, ErrorKind};
use crate::mysql::{deadline, Access, Class, Failure, GtidPos};

/// How reads during outages went, for `admin("stats")`.
#[derive(Default)]
pub struct FailoverCounters {
    /// `SHOW SLAVE STATUS` was refused once (logged once).
    monitor_warned: AtomicBool,
    /// Reads a sibling served.
    pub sibling_reads: AtomicU64,
    /// Consistent reads that waited for the sibling to apply the master's writes.
    pub waits: AtomicU64,
    /// Consistent reads refused with `BEHIND`.
    pub refused: AtomicU64,
    /// Reads a sibling served in `stale` mode without having applied what they should show.
    pub stale_reads: AtomicU64,
}

impl FailoverCounters {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `name=value` lines.
    pub fn text(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "failover.sibling_reads={}\nfailover.waits={}\nfailover.refused={}\nfailover.stale_reads={}\n",
            get(&self.sibling_reads),
            get(&self.waits),
            get(&self.refused),
            get(&self.stale_reads)
        )
    }
}

/// What `host` must have applied of `after`: the GTIDs it did not originate itself (its own
/// writes are in its tables; its replication never applies them).
fn needed_on(host: &HostRoute, after: &GtidPos) -> GtidPos {
    match host.health.replication.server_id() {
        Some(id) => after.without_server(id),
        None => after.clone(),
    }
}

fn behind(why: String) -> Failure {
    Failure {
        error: Error::new(ErrorKind::Behind, why),
        class: Class::Refused,
    }
}

impl Inner {
    /// Counts a read of `master`'s partitions served by its sibling, for this server and for
    /// the host.
    fn served_by_sibling(&self, master: &HostRoute) {
        FailoverCounters::count(&self.failover.sibling_reads);
        FailoverCounters::count(&master.health.sibling_reads);
    }

    /// Decides whether `sibling` may serve a read of a partition of `master` (see the module's
    /// table), waiting on `conn`, a connection to the sibling, when it must. A refusal is
    /// [`ErrorKind::Behind`] and says which position the sibling lacks.
    pub(super) async fn vouch(
        &self,
        master: &HostRoute,
        sibling: &HostRoute,
        conn: &mut Conn,
        after: &GtidPos,
    ) -> Result<(), Failure> {
        let counters = &self.failover;
        let settings = self.config.failover;
        let theirs = &sibling.health.replication;
        // A client's token holds in either mode.
        let mut required = needed_on(sibling, after);
        let masters = master.health.replication.required();
        match settings.reads {
            FailoverReads::Consistent => {
                if master.health.replication.server_id().is_none()
                    && !master.health.replication.is_unsupported()
                {
                    // Never answered this server (it started while the master was down or
                    // slow): what the sibling lacks cannot be known, so it vouches for nothing.
                    FailoverCounters::count(&counters.refused);
                    return Err(behind(format!(
                        "this server has had no answer from the master since it started, so it \
                         cannot tell what its sibling {} lacks; nothing was read",
                        sibling.address
                    )));
                }
                required.raise_to(&masters);
                required.raise_to(&self.received(master, sibling, conn).await?);
            }
            FailoverReads::Stale => {
                if !theirs.applied().covers(&masters) {
                    FailoverCounters::count(&counters.stale_reads);
                }
            }
        }
        if theirs.applied().covers(&required) {
            self.served_by_sibling(master);
            return Ok(());
        }
        if let Some(lag) = master.health.replication.lag_of(theirs) {
            if lag > settings.max_lag && settings.reads == FailoverReads::Consistent {
                FailoverCounters::count(&counters.refused);
                return Err(behind(format!(
                    "its sibling {} has lacked writes of the master for {:.1} s, more than \
                     FAILOVER_MAX_LAG_MS = {} (it has applied {}; the master's writes reach {}); \
                     nothing was read",
                    sibling.address,
                    lag.as_secs_f64(),
                    settings.max_lag.as_millis(),
                    theirs.applied(),
                    required
                )));
            }
        }
        let who = format!("its sibling {}", sibling.address);
        self.applied_or_refused(sibling, &who, conn, &required)
            .await?;
        self.served_by_sibling(master);
        Ok(())
    }

    /// Makes sure `host`, about to serve a read as its partition's master, has applied the
    /// writes of other hosts that `after` (a client's token) covers, waiting on `conn` for at
    /// most `FAILOVER_READ_WAIT_MS`. Free when the token is empty or already known applied.
    pub(super) async fn caught_up(
        &self,
        host: &HostRoute,
        conn: &mut Conn,
        after: &GtidPos,
    ) -> Result<(), Failure> {
        let who = host.address.to_string();
        self.applied_or_refused(host, &who, conn, &needed_on(host, after))
            .await
    }

    /// Returns once `host` has applied `target`: at once when it is known to have, else after
    /// waiting on `conn` (at most `FAILOVER_READ_WAIT_MS`), counted. `BEHIND`, naming `who`,
    /// when the wait runs out.
    async fn applied_or_refused(
        &self,
        host: &HostRoute,
        who: &str,
        conn: &mut Conn,
        target: &GtidPos,
    ) -> Result<(), Failure> {
        let known = &host.health.replication;
        if known.applied().covers(target) {
            return Ok(());
        }
        let limit = self.config.failover.read_wait;
        FailoverCounters::count(&self.failover.waits);
        if self.wait_applied(host, conn, target, limit).await? {
            known.reached(target);
            return Ok(());
        }
        FailoverCounters::count(&self.failover.refused);
        Err(behind(format!(
            "{who} did not apply the writes up to {target} within FAILOVER_READ_WAIT_MS = {} \
             (it had applied {}); nothing was read",
            limit.as_millis(),
            known.applied()
        )))
    }

    /// What `sibling` has received of `master`'s writes (`Gtid_IO_Pos`), read on `conn` for
    /// every read it serves in consistent mode. With semi-synchronous replication that covers
    /// every write any server had acknowledged, so a read that waits for it shows other
    /// servers' writes too. It is read each time, not once per outage: a master that only this
    /// server cannot reach (a partial network partition) still takes other servers' writes
    /// (a chaos run found reads missing them when it was read once). Empty when it cannot be
    /// known: the master's server id was never probed, or the service account may not run
    /// `SHOW SLAVE STATUS` (logged once; it needs `SLAVE MONITOR`).
    async fn received(
        &self,
        master: &HostRoute,
        sibling: &HostRoute,
        conn: &mut Conn,
    ) -> Result<GtidPos, Failure> {
        let Some(server_id) = master.health.replication.server_id() else {
            return Ok(GtidPos::default());
        };
        let what = format!(
            "reading what {} received from {}",
            sibling.address, master.address
        );
        let status = self
            .settings
            .statement(
                Access::Read,
                &what,
                conn.query::<Row, _>("SHOW ALL SLAVES STATUS"),
            )
            .await;
        let rows = match status {
            Ok(rows) => rows,
            Err(f) if f.class == Class::AccessDenied || f.class == Class::Refused => {
                if !self.failover.monitor_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(host = %sibling.address, error = %f.error,
                        "consistent reads during an outage show only this server's writes: \
                         grant the service account SLAVE MONITOR to show every server's");
                }
                return Ok(GtidPos::default());
            }
            Err(f) => return Err(f),
        };
        let mut received = GtidPos::default();
        for row in &rows {
            let text: Option<String> = row.get_opt("Gtid_IO_Pos").and_then(Result::ok);
            let pos = GtidPos::parse(text.as_deref().unwrap_or_default()).map_err(|e| Failure {
                error: e.context(&what),
                class: Class::Refused,
            })?;
            received.raise_to(&pos.of_server(server_id));
        }
        Ok(received)
    }

    /// `MASTER_GTID_WAIT(target, limit)` on `conn`: true once `host` has applied `target`,
    /// false when `limit` passed first (or replication was stopped under the wait).
    async fn wait_applied(
        &self,
        host: &HostRoute,
        conn: &mut Conn,
        target: &GtidPos,
        limit: Duration,
    ) -> Result<bool, Failure> {
        let wait = conn.exec_first::<Option<i64>, _, _>(
            "SELECT MASTER_GTID_WAIT(?, ?)",
            (target.to_string(), limit.as_secs_f64()),
        );
        let answer = deadline(
            limit + self.settings.query_timeout,
            Access::Read,
            format!("waiting on {} for {target}", host.address),
            |e, what| Failure::for_service(e, Access::Read, what),
            wait,
        )
        .await?;
        Ok(answer.flatten() == Some(0))
    }
}
