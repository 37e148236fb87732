//! `thrudoc-admin failover`: manual read-write failover of a master's partitions to its
//! sibling (docs/DESIGN.md, "Failover"; their planned return is [`super::switchover`]).
//!
//! **failover --host H** makes H's sibling S the master of every live partition of H, for when
//! H is dead or must be taken out of service:
//!
//! 1. H is fenced first when it answers: `SET GLOBAL read_only = ON` (the service account has
//!    neither SUPER nor READ_ONLY ADMIN, so from then on H commits none of its writes, whatever
//!    directory a server still holds). Then S must apply everything H committed (H's
//!    `@@gtid_binlog_pos`, `MASTER_GTID_WAIT` on S) within `--catch-up-timeout`.
//! 2. When H does not answer, S must have applied everything its replication from H received;
//!    what H acknowledged but never sent is lost unless semi-synchronous replication was on.
//! 3. Either wait failing refuses (the directory unchanged; a fenced H stays fenced) unless
//!    `--force`.
//! 4. One directory transaction moves the partitions (`directory.host_id = S`), records each
//!    one's home in `partition_moved` (an earlier home is kept) and bumps the version. Servers
//!    follow at their next directory check; one that cannot read the directory stops writing
//!    when its lease runs out, so it never writes to H behind the directory's back.
//!
//! At no moment do two hosts take writes for one partition: before the move only H (or, once
//! fenced or dead, nobody), after it only S.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use super::dirtx::{self, IfLost, Tx};
use super::list::load_directory;
use super::moves::{
    describe_replication, directory_copy_caught_up, directory_sibling, ensure_tables, find_pair,
    id_list, partition_rows, print_partitions, secs, MovedPartition,
};
use super::progress::Progress;
use super::replica;
use super::sql::{self, column, Login, Query, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::GtidPos;
use crate::mysql::HostAddr;
use crate::rules::check_sql_name;
use crate::store::mysql::directory::Host;

/// What `failover` is asked to do.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// The directory master.
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    /// The master whose partitions move to its sibling.
    pub host: HostAddr,
    /// Promote the sibling even when it has not applied everything of `host`.
    pub force: bool,
    /// How long the sibling may take to catch up.
    pub catch_up_timeout: Duration,
    /// How long `host` gets to answer before it counts as unreachable.
    pub probe_timeout: Duration,
    /// Progress lines rewrite themselves (a terminal).
    pub tty: bool,
}

/// What `failover` did.
#[derive(Debug, Clone)]
pub struct FailoverReport {
    pub from: HostAddr,
    pub to: HostAddr,
    /// The old master answered and was fenced (`read_only = ON`).
    pub fenced: bool,
    pub partitions: Vec<MovedPartition>,
    /// The directory version committed; `None` when there was nothing to move.
    pub version: Option<u64>,
    pub warnings: Vec<String>,
}

/// The sibling taking over from the old master: what every step of the wait needs.
struct Takeover<'o> {
    opts: &'o FailoverOptions,
    /// The old master.
    home: HostAddr,
    sibling: Session,
    /// The sibling's `server_id`: its own transactions are left out of the positions waited
    /// for.
    sibling_id: u32,
}

/// Makes the sibling of `opts.host` the master of its live partitions.
pub async fn failover(opts: &FailoverOptions, out: &mut dyn Write) -> Result<FailoverReport> {
    check_sql_name("--database", &opts.database)?;
    let dir = match load_directory(&opts.root, &opts.master, &opts.database).await {
        Ok(dir) => dir,
        Err(e) if e.kind() == ErrorKind::Unavailable && opts.master == opts.host => {
            return Err(e.note(
                "the directory master is the host being failed over: give the directory's \
                 sibling as --master-hostname/--master-port (nothing was changed)",
            ))
        }
        Err(e) => return Err(e),
    };
    let (home, sibling) = find_pair(&dir, &opts.host)?;
    let (h_addr, s_addr) = (home.address(), sibling.address());
    let mut progress = Progress::new(out, opts.tty);
    let p = &mut progress;
    p.say(format_args!(
        "failover of host {} ({h_addr}): its sibling, host {} ({s_addr}), becomes the master of \
         its partitions (directory version {} on {})",
        home.id, sibling.id, dir.version, opts.master
    ))?;
    let mut dirs = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dirs, &opts.database).await?;

    // The sibling must answer and be able to take writes.
    p.say(format_args!("connecting to the sibling {s_addr} ..."))?;
    let mut sib = opts
        .root
        .connect(&s_addr, None)
        .await
        .map_err(|e| e.note("the sibling must answer to take over: nothing was changed"))?;
    let sibling_id = replica::server_id(&mut sib).await?;
    if replica::read_only(&mut sib).await? {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "refused: the sibling {s_addr} is read_only (fenced, perhaps by an earlier failover \
                 of it), so it would refuse the writes; nothing was changed. If it is fit to take \
                 writes, run `SET GLOBAL read_only = OFF` on it and re-run"
            ),
        ));
    }
    let mut takeover = Takeover {
        opts,
        home: h_addr.clone(),
        sibling: sib,
        sibling_id,
    };

    // Fence the old master, or learn what the sibling received from it.
    p.say(format_args!(
        "connecting to {h_addr} (for at most {}) ...",
        secs(opts.probe_timeout)
    ))?;
    let probe = Login {
        connect_timeout: opts.probe_timeout,
        query_timeout: opts.probe_timeout,
        ..opts.root.clone()
    };
    let connected = match probe.connect(&h_addr, None).await {
        Ok(mut s) => replica::read_only(&mut s).await.map(|_| s),
        Err(e) => Err(e),
    };
    let fenced = match connected {
        Ok(mut hs) => {
            hs.timeout = opts.root.query_timeout;
            let fenced = takeover.fence_and_catch_up(&mut hs, p).await;
            hs.close().await;
            fenced?
        }
        Err(e) => {
            p.say(format_args!("{h_addr} does not answer: {e}"))?;
            p.say(
                "  it cannot be fenced; servers stop writing to it when they load the new \
                 directory, or when their directory lease runs out if they cannot",
            )?;
            takeover.received_and_applied(p).await?;
            false
        }
    };
    takeover.sibling.close().await;

    // One directory transaction.
    p.say(format_args!(
        "moving the partitions (one transaction on {}) ...",
        opts.master
    ))?;
    let lost = IfLost {
        may_be: "the change may or may not have been made",
        look: "look with `thrudoc-admin list --tablename ...` and re-run",
    };
    let mut frozen = None;
    let moved = dirtx::change(&mut dirs, lost, async |tx: &mut Tx<'_>| {
        move_rows(tx, &home, &sibling, &mut frozen).await
    })
    .await?;
    if let Some(w) = frozen {
        p.warn(w)?;
    }
    let (parts, version) = match moved {
        None => {
            p.say(format_args!(
                "{h_addr} holds no live partition: nothing to move; the directory is unchanged"
            ))?;
            (Vec::new(), None)
        }
        Some((parts, v)) => {
            p.say(format_args!(
                "moved {} partitions from {h_addr} to {s_addr}:",
                parts.len()
            ))?;
            print_partitions(p, &parts, &h_addr, &s_addr)?;
            p.say(format_args!(
                "committed: directory version {v}. Every Thrudoc server sends writes of these \
                 partitions to {s_addr} from its next directory check (MYSQL_DIRECTORY_POLL_MS); \
                 one that cannot read the directory stops writing when its lease \
                 (MYSQL_DIRECTORY_LEASE_MS) runs out."
            ))?;
            (parts, Some(v))
        }
    };
    if let (Some(_), Some(copy)) = (version, directory_sibling(&dir, &opts.master)) {
        let limit = opts.catch_up_timeout;
        match directory_copy_caught_up(&opts.root, &mut dirs, &copy, limit, p).await {
            Ok(Some(false)) => p.warn(format!(
                "the directory's sibling {copy} has not applied the change within {}: servers \
                 reading the directory there still route to {h_addr}",
                secs(limit)
            ))?,
            Ok(_) => {}
            Err(e) => p.warn(format!(
                "cannot tell whether the directory's sibling {copy} has the change: {e}"
            ))?,
        }
    }
    dirs.close().await;
    p.warn(if fenced {
        format!(
            "{h_addr} is fenced (read_only = ON) and must stay out of service, read_only, until \
             `thrudoc-admin switchover --host {h_addr}` returns its partitions"
        )
    } else {
        format!(
            "{h_addr} was not fenced: before it runs again make sure it comes up read_only \
             (read_only = ON in its option file: a restart clears SET GLOBAL), and keep it so \
             until `thrudoc-admin switchover --host {h_addr}` returns its partitions"
        )
    })?;
    Ok(FailoverReport {
        from: h_addr,
        to: s_addr,
        fenced,
        partitions: parts,
        version,
        warnings: progress.take_warnings(),
    })
}

impl Takeover<'_> {
    /// The old master answers (`hs`): fence it, then wait until the sibling has applied
    /// everything it committed. `Ok(true)` when fenced; `Ok(false)` when it could not be fenced
    /// and `--force` went on anyway.
    async fn fence_and_catch_up(&mut self, hs: &mut Session, p: &mut Progress<'_>) -> Result<bool> {
        let (opts, h_addr) = (self.opts, self.home.clone());
        let s_addr = self.sibling.addr.clone();
        p.say(format_args!(
            "fencing {h_addr}: SET GLOBAL read_only = ON ..."
        ))?;
        if let Err(e) = replica::set_read_only(hs, true).await {
            if !opts.force {
                return Err(e
                    .context(format!("refused: {h_addr} answers but could not be fenced"))
                    .note(
                        "nothing was changed. Re-run once it can be, or with --force to go on \
                     without fencing it",
                    ));
            }
            p.warn(format!(
                "--force: {h_addr} answers but could not be fenced ({e}); a server that still \
                 routes to it may write there until it loads the new directory or its lease runs \
                 out"
            ))?;
            self.received_and_applied(p).await?;
            return Ok(false);
        }
        p.say(format_args!(
            "  {h_addr} is fenced: accounts without SUPER or READ_ONLY ADMIN (the Thrudoc service \
             account) can commit nothing more there"
        ))?;
        let committed = replica::binlog_pos(hs)
            .await?
            .without_server(self.sibling_id);
        let limit = opts.catch_up_timeout;
        p.say(format_args!(
            "  {h_addr} has committed {committed}; waiting for {s_addr} to apply it (at most {}) ...",
            secs(limit)
        ))?;
        let caught = self.wait_applied(&committed, limit, p).await?;
        if caught {
            p.say(format_args!(
                "  {s_addr} has applied everything {h_addr} committed"
            ))?;
            return Ok(true);
        }
        let state = describe_replication(&mut self.sibling, &h_addr).await;
        if !opts.force {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "refused: {s_addr} has not applied everything {h_addr} committed ({committed}) \
                     within {} ({state}). {h_addr} stays fenced (read_only = ON), so nothing can \
                     be written there; the directory is unchanged. Wait and re-run (a longer \
                     --catch-up-timeout), or re-run with --force to promote {s_addr} without what \
                     it lacks",
                    secs(limit)
                ),
            ));
        }
        p.warn(format!(
            "--force: {s_addr} had not applied everything {h_addr} committed ({state}); what it \
             lacks arrives later through replication, where it may overwrite newer writes made on \
             {s_addr} or stop replication with a conflict. Run `thrudoc-admin verify` afterwards"
        ))?;
        Ok(true)
    }

    /// Waits for the sibling to apply `pos`, showing its progress.
    async fn wait_applied(
        &mut self,
        pos: &GtidPos,
        limit: Duration,
        p: &mut Progress<'_>,
    ) -> Result<bool> {
        let s_addr = self.sibling.addr.clone();
        replica::wait_applied(&mut self.sibling, pos, limit, &mut |elapsed, applied| {
            p.tick(format_args!(
                "  ... {} of {}: {s_addr} has applied {applied}",
                secs(elapsed),
                secs(limit)
            ))
        })
        .await
    }

    /// The old master does not answer: wait until the sibling has applied everything its
    /// replication from it received.
    async fn received_and_applied(&mut self, p: &mut Progress<'_>) -> Result<()> {
        let (opts, h_addr) = (self.opts, self.home.clone());
        let s_addr = self.sibling.addr.clone();
        p.warn(match semisync_state(&mut self.sibling).await.as_deref() {
            Some("ON") => format!(
                "{s_addr} is a semi-synchronous slave (Rpl_semi_sync_slave_status ON): {h_addr} \
                 acknowledged a commit only once {s_addr} had received it, unless it had fallen \
                 back to asynchronous replication (rpl_semi_sync_master_timeout); then writes it \
                 acknowledged but never sent are lost"
            ),
            _ => format!(
                "replication from {h_addr} to {s_addr} is asynchronous (semi-synchronous \
                 replication is not on): writes {h_addr} acknowledged but never sent to {s_addr} \
                 are lost if {h_addr} never comes back, and conflict with newer writes if it does"
            ),
        })?;
        let Some((status, note)) = replica::slave_of(&mut self.sibling, &h_addr).await? else {
            let why = format!(
                "{s_addr} does not replicate from {h_addr}: it may hold none of its writes"
            );
            if !opts.force {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("refused: {why}; nothing was changed (--force promotes it anyway)"),
                ));
            }
            return p.warn(format!("--force: {why}"));
        };
        if let Some(note) = note {
            p.say(format_args!("  note: {note}"))?;
        }
        p.say(format_args!(
            "  {s_addr} replication from {h_addr}: {}",
            status.describe()
        ))?;
        let limit = opts.catch_up_timeout;
        let start = Instant::now();
        let use_gtid = status.using_gtid != "No" && !status.gtid_io_pos.trim().is_empty();
        let caught = if use_gtid {
            let received = GtidPos::parse(&status.gtid_io_pos)?.without_server(self.sibling_id);
            p.say(format_args!(
                "  waiting for {s_addr} to apply all it received ({received}), at most {} ...",
                secs(limit)
            ))?;
            self.wait_applied(&received, limit, p).await?
        } else {
            p.say(format_args!(
                "  waiting for {s_addr} to execute all it received (binary log positions), at \
                 most {} ...",
                secs(limit)
            ))?;
            let mut status = status.clone();
            loop {
                if status.applied_all_received() {
                    break true;
                }
                if start.elapsed() >= limit {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                match replica::slave_of(&mut self.sibling, &h_addr).await? {
                    Some((s, _)) => status = s,
                    None => break false,
                }
                p.tick(format_args!(
                    "  ... {} of {}: {}",
                    secs(start.elapsed()),
                    secs(limit),
                    status.describe()
                ))?;
            }
        };
        if caught {
            return p.say(format_args!(
                "  {s_addr} has applied everything it received from {h_addr}"
            ));
        }
        let state = describe_replication(&mut self.sibling, &h_addr).await;
        if !opts.force {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "refused: {s_addr} has not applied everything it received from {h_addr} \
                     within {} ({state}); nothing was changed. Wait and re-run (a longer \
                     --catch-up-timeout), or re-run with --force to promote it without what it \
                     has not applied",
                    secs(limit)
                ),
            ));
        }
        p.warn(format!(
            "--force: {s_addr} had not applied everything it received from {h_addr} ({state}); \
             it applies the rest later, possibly over newer writes"
        ))
    }
}

/// `Rpl_semi_sync_slave_status` of the session's server, when it can be read.
async fn semisync_state(s: &mut Session) -> Option<String> {
    use mysql_async::prelude::Queryable;
    let row: Option<(String, String)> = sql::deadline(
        &s.addr,
        "reading Rpl_semi_sync_slave_status",
        s.timeout,
        s.conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'"),
    )
    .await
    .ok()?;
    row.map(|(_, v)| v)
}

/// The failover's directory change: every live partition of `from` goes to `to`; `None` when
/// it holds none. `frozen` gets a warning when some of them are frozen.
async fn move_rows(
    tx: &mut Tx<'_>,
    from: &Host,
    to: &Host,
    frozen: &mut Option<String>,
) -> Result<Option<Vec<MovedPartition>>> {
    const READ: &str = "reading the host's partitions";
    let rows = tx
        .rows(
            READ,
            "SELECT id, bucket, db, datatable FROM directory
             WHERE host_id = ? AND retired_at IS NULL ORDER BY bucket, `end`, id FOR UPDATE",
            (from.id,),
        )
        .await?;
    let parts = partition_rows(&rows, READ)?;
    if parts.is_empty() {
        return Ok(None);
    }
    let ids = id_list(&parts);
    const MOVED: &str = "reading partition_moved";
    let homes: BTreeMap<u64, u32> = tx
        .rows(
            MOVED,
            &format!(
                "SELECT directory_id, home_host_id FROM partition_moved
                 WHERE directory_id IN ({ids}) FOR UPDATE"
            ),
            (),
        )
        .await?
        .iter()
        .map(|r| Ok((column(r, 0, MOVED)?, column(r, 1, MOVED)?)))
        .collect::<Result<_>>()?;
    for p in &parts {
        match homes.get(&p.id) {
            // Back on its home host: no longer moved.
            Some(&home) if home == to.id => {
                tx.exec(
                    "updating partition_moved",
                    "DELETE FROM partition_moved WHERE directory_id = ?",
                    (p.id,),
                )
                .await?
            }
            // Moved before: its home stays the one recorded first.
            Some(_) => {}
            None => {
                tx.exec(
                    "recording the move in partition_moved",
                    "INSERT INTO partition_moved (directory_id, home_host_id, moved_at)
                     VALUES (?, ?, NOW())",
                    (p.id, from.id),
                )
                .await?
            }
        }
    }
    let frozen_rows = tx
        .rows(
            "reading partition_frozen",
            &format!("SELECT directory_id FROM partition_frozen WHERE directory_id IN ({ids})"),
            (),
        )
        .await?;
    if !frozen_rows.is_empty() {
        let ids: Vec<String> = frozen_rows
            .iter()
            .filter_map(|r| column::<u64>(r, 0, "reading partition_frozen").ok())
            .map(|id| id.to_string())
            .collect();
        *frozen = Some(format!(
            "partitions {} are frozen (partition_frozen, an unfinished switchover?): they stay \
             read-only on their new master until their rows there are deleted",
            ids.join(", ")
        ));
    }
    tx.exec(
        "moving the partitions",
        &format!(
            "UPDATE directory SET host_id = ? WHERE id IN ({ids}) AND host_id = ? AND retired_at IS NULL"
        ),
        (to.id, from.id),
    )
    .await?;
    Ok(Some(parts))
}
