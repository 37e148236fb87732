//! `thrudoc-admin switchover`: the planned return of the partitions a [`super::failover`]
//! moved off their home host.
//!
//! **switchover --host H** returns the partitions recorded as moved off H (and now on S):
//!
//! 1. H must answer and replicate from S (IO and SQL threads running).
//! 2. The partitions are frozen (`partition_frozen`, version bumped): every server refuses
//!    their writes once it reloads, and a server that cannot reload stops writing when its
//!    lease runs out. The command waits lease + servers' query timeout + a margin, so that
//!    every server has done one or the other and writes in flight have ended; then it checks
//!    that no statement on those tables still runs on S.
//! 3. H must apply everything S committed (`MASTER_GTID_WAIT`) within `--catch-up-timeout`;
//!    else the partitions are unfrozen and nothing else changes.
//! 4. `read_only = OFF` on H; one directory transaction moves the partitions back, deletes their
//!    `partition_moved` and `partition_frozen` rows and bumps the version.
//!
//! At no moment do two hosts take writes for one partition: only S until the freeze, nobody
//! while frozen, then only H.

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
use super::sql::{column, Login, Query, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::HostAddr;
use crate::rules::check_sql_name;
use crate::store::mysql::directory::{Directory, Host};

/// What `switchover` is asked to do.
#[derive(Debug, Clone)]
pub struct SwitchoverOptions {
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    /// The home host that takes its partitions back.
    pub host: HostAddr,
    /// The servers' `MYSQL_DIRECTORY_LEASE_MS`.
    pub lease: Duration,
    /// The servers' `MYSQL_QUERY_TIMEOUT_MS`.
    pub server_query_timeout: Duration,
    /// Added to the wait: the servers' connect timeout and slack.
    pub margin: Duration,
    /// How long the home host may take to catch up.
    pub catch_up_timeout: Duration,
    pub tty: bool,
}

/// What `switchover` did.
#[derive(Debug, Clone)]
pub struct SwitchoverReport {
    pub to: HostAddr,
    pub from: HostAddr,
    pub partitions: Vec<MovedPartition>,
    /// The directory version committed; `None` when there was nothing to move.
    pub version: Option<u64>,
    /// From the freeze's commit to the move's commit: writes to the partitions were refused
    /// for this long (plus until each server's next directory check).
    pub frozen_for: Duration,
    pub warnings: Vec<String>,
}

/// The partitions on their way home, and everything their return talks to.
struct Return<'o> {
    opts: &'o SwitchoverOptions,
    /// The directory as loaded at the start.
    dir: Directory,
    /// The directory master.
    dirs: Session,
    home: Host,
    /// The home host, its session and its `server_id`.
    hs: Session,
    home_server_id: u32,
    sibling: Host,
    ss: Session,
    parts: Vec<MovedPartition>,
}

const IF_LOST: IfLost<'static> = IfLost {
    may_be: "the change may or may not have been made",
    look: "look with `thrudoc-admin list --tablename ...` and re-run",
};

/// Returns the partitions recorded as moved off `opts.host` to it.
pub async fn switchover(opts: &SwitchoverOptions, out: &mut dyn Write) -> Result<SwitchoverReport> {
    check_sql_name("--database", &opts.database)?;
    let dir = load_directory(&opts.root, &opts.master, &opts.database).await?;
    let (home, sibling) = find_pair(&dir, &opts.host)?;
    let (h_addr, s_addr) = (home.address(), sibling.address());
    let mut progress = Progress::new(out, opts.tty);
    let p = &mut progress;
    p.say(format_args!(
        "switchover: host {} ({h_addr}) takes back its partitions from its sibling, host {} \
         ({s_addr}) (directory version {} on {})",
        home.id, sibling.id, dir.version, opts.master
    ))?;
    let mut dirs = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dirs, &opts.database).await?;
    let mut report = SwitchoverReport {
        to: h_addr.clone(),
        from: s_addr.clone(),
        partitions: Vec::new(),
        version: None,
        frozen_for: Duration::ZERO,
        warnings: Vec::new(),
    };

    // What moved off H and is on S now.
    const READ: &str = "reading partition_moved";
    let rows = dirs
        .rows(
            READ,
            "SELECT d.id, d.bucket, d.db, d.datatable, d.host_id FROM partition_moved m
             JOIN directory d ON d.id = m.directory_id
             WHERE m.home_host_id = ? AND d.retired_at IS NULL ORDER BY d.bucket, d.`end`, d.id",
            (home.id,),
        )
        .await?;
    let mut parts = Vec::new();
    for (row, part) in rows.iter().zip(partition_rows(&rows, READ)?) {
        let host_id: u32 = column(row, 4, READ)?;
        if host_id == sibling.id {
            parts.push(part);
        } else {
            p.warn(format!(
                "partition {} ({}) is recorded as moved off {h_addr} but is on host {host_id}, \
                 not on {s_addr}: left alone",
                part.id, part.datatable
            ))?;
        }
    }
    if parts.is_empty() {
        p.say(format_args!(
            "nothing to do: no partition recorded as moved off {h_addr} is on {s_addr}; the \
             directory is unchanged"
        ))?;
        dirs.close().await;
        report.warnings = progress.take_warnings();
        return Ok(report);
    }
    p.say(format_args!("{} partitions to move back:", parts.len()))?;
    print_partitions(p, &parts, &s_addr, &h_addr)?;

    // H must answer and replicate from S; S must answer.
    let mut hs = opts.root.connect(&h_addr, None).await.map_err(|e| {
        e.note(format!(
            "{h_addr} must answer to take its partitions back: nothing was changed"
        ))
    })?;
    let Some((st, note)) = replica::slave_of(&mut hs, &s_addr).await? else {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "refused: {h_addr} does not replicate from {s_addr}, so it lacks what was \
                 written there since the failover; nothing was changed"
            ),
        ));
    };
    if let Some(note) = note {
        p.say(format_args!("  note: {note}"))?;
    }
    if !st.running() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "refused: {h_addr} replication from {s_addr} is not running ({}); nothing was \
                 changed",
                st.describe()
            ),
        ));
    }
    p.say(format_args!(
        "  {h_addr} replicates from {s_addr}: {}",
        st.describe()
    ))?;
    let home_server_id = replica::server_id(&mut hs).await?;
    let mut ss = opts.root.connect(&s_addr, None).await.map_err(|e| {
        e.note(format!(
            "{s_addr} must answer so that {h_addr} can catch up with it: nothing was changed"
        ))
    })?;
    match replica::slave_of(&mut ss, &h_addr).await {
        Ok(Some((st, _))) if st.running() => {}
        Ok(Some((st, _))) => p.warn(format!(
            "{s_addr} replication from {h_addr} is not running ({}): once {h_addr} takes writes \
             again, {s_addr} will not hold copies of them until it runs",
            st.describe()
        ))?,
        Ok(None) => p.warn(format!(
            "{s_addr} does not replicate from {h_addr}: once {h_addr} takes writes again, no \
             sibling holds copies of them"
        ))?,
        Err(e) => p.warn(format!("cannot read {s_addr}'s replication state: {e}"))?,
    }

    // Freeze, then wait out every server's lease and every write in flight.
    let reason = format!("switchover to {h_addr} in progress");
    let version = freeze(&mut dirs, &parts, &reason).await?;
    let frozen_at = Instant::now();
    p.say(format_args!(
        "frozen (directory version {version}): every server refuses writes to these partitions \
         from its next directory check"
    ))?;
    let mut back = Return {
        opts,
        dir,
        dirs,
        home,
        hs,
        home_server_id,
        sibling,
        ss,
        parts,
    };
    let moved = back.move_back(frozen_at, p).await;
    let frozen_for = frozen_at.elapsed();
    let result = match moved {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == ErrorKind::OutcomeUnknown => Err(e.note(format!(
            "the partitions may still be frozen: if `list` shows them on {s_addr}, re-run \
             switchover; if on {h_addr}, delete their partition_frozen and partition_moved rows"
        ))),
        Err(e) => Err(back.undo(e).await),
    };
    let Return {
        hs,
        ss,
        dirs,
        parts,
        ..
    } = back;
    hs.close().await;
    ss.close().await;
    dirs.close().await;
    let version = result?;
    p.say(format_args!(
        "moved {} partitions back from {s_addr} to {h_addr}: committed directory version \
         {version}; servers send their writes to {h_addr} from their next directory check",
        parts.len()
    ))?;
    p.say(format_args!(
        "writes to these partitions were refused for {} (from the freeze to this commit), plus \
         until each server's next directory check (MYSQL_DIRECTORY_POLL_MS)",
        secs(frozen_for)
    ))?;
    report.partitions = parts;
    report.version = Some(version);
    report.frozen_for = frozen_for;
    report.warnings = progress.take_warnings();
    Ok(report)
}

impl Return<'_> {
    /// After the freeze: the directory's copy has it, the wait, nothing still writing on S, H
    /// caught up, H writable, partitions moved back. The new directory version.
    async fn move_back(&mut self, frozen_at: Instant, p: &mut Progress<'_>) -> Result<u64> {
        let opts = self.opts;
        let (h_addr, s_addr) = (self.home.address(), self.sibling.address());
        let limit = opts.catch_up_timeout;
        // A server that cannot reach the directory master reads the directory's sibling, and
        // renews its lease there: the lease only counts once the sibling has the freeze.
        let mut countdown_from = frozen_at;
        if let Some(copy) = directory_sibling(&self.dir, &self.dirs.addr) {
            match directory_copy_caught_up(&opts.root, &mut self.dirs, &copy, limit, p).await? {
                None => {}
                Some(true) => countdown_from = Instant::now(),
                Some(false) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the directory's sibling {copy} has not applied the freeze within {}: \
                             a server reading the directory there would go on writing",
                            secs(limit)
                        ),
                    ))
                }
            }
        }
        let wait = opts.lease + opts.server_query_timeout + opts.margin;
        loop {
            let left = wait.saturating_sub(countdown_from.elapsed());
            if left.is_zero() {
                break;
            }
            p.tick(format_args!(
                "  waiting {:>4.1} s: servers load the new directory or stop writing (lease {} \
                 ms), writes in flight end (query timeout {} ms, margin {} ms)",
                left.as_secs_f64(),
                opts.lease.as_millis(),
                opts.server_query_timeout.as_millis(),
                opts.margin.as_millis()
            ))?;
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }

        let started = Instant::now();
        // A statement the client gave up on may still run on the server; none may be left.
        let tables: Vec<String> = self.parts.iter().map(|p| p.datatable.clone()).collect();
        loop {
            let running = replica::running_on(&mut self.ss, &tables).await?;
            let Some(first) = running.first() else { break };
            if started.elapsed() >= limit {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{} statements on the frozen partitions still run on {s_addr} after {} \
                         (e.g. id {} of {}, {} s: {})",
                        running.len(),
                        secs(limit),
                        first.id,
                        first.user,
                        first.secs,
                        first.info
                    ),
                ));
            }
            p.tick(format_args!(
                "  {} statements on the frozen partitions still run on {s_addr}; waiting ...",
                running.len()
            ))?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let committed = replica::binlog_pos(&mut self.ss)
            .await?
            .without_server(self.home_server_id);
        let left = limit.saturating_sub(started.elapsed());
        p.say(format_args!(
            "waiting for {h_addr} to apply everything {s_addr} committed ({committed}), at most {} ...",
            secs(left)
        ))?;
        let caught =
            replica::wait_applied(&mut self.hs, &committed, left, &mut |elapsed, applied| {
                p.tick(format_args!(
                    "  ... {} of {}: {h_addr} has applied {applied}",
                    secs(elapsed),
                    secs(left)
                ))
            })
            .await?;
        if !caught {
            let state = describe_replication(&mut self.hs, &s_addr).await;
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{h_addr} did not apply everything {s_addr} committed within {} ({state})",
                    secs(limit)
                ),
            ));
        }
        p.say(format_args!(
            "  {h_addr} has applied everything {s_addr} committed"
        ))?;
        p.say(format_args!("SET GLOBAL read_only = OFF on {h_addr} ..."))?;
        replica::set_read_only(&mut self.hs, false).await?;

        p.say(format_args!(
            "moving the partitions back (one transaction on {}) ...",
            self.dirs.addr
        ))?;
        let (home, sibling) = (self.home.id, self.sibling.id);
        let parts = &self.parts;
        let moved = dirtx::change(&mut self.dirs, IF_LOST, async |tx: &mut Tx<'_>| {
            return_rows(tx, home, sibling, parts).await.map(Some)
        })
        .await?;
        moved
            .map(|((), version)| version)
            .ok_or_else(|| Error::internal("the move back changed nothing"))
    }

    /// Puts things back as they were after a failed return: the home host fenced again, the
    /// partitions writable on the sibling. `e` with what that did.
    async fn undo(&mut self, e: Error) -> Error {
        let (h_addr, s_addr) = (self.home.address(), self.sibling.address());
        let fenced = match replica::set_read_only(&mut self.hs, true).await {
            Ok(()) => format!("{h_addr} is read_only again"),
            Err(f) => format!("setting {h_addr} read_only again failed ({f}): do it by hand"),
        };
        let thawed = match unfreeze(&mut self.dirs, &self.parts).await {
            Ok(v) => {
                format!("the partitions are unfrozen (directory version {v}) and stay on {s_addr}")
            }
            Err(u) => format!(
                "unfreezing them failed ({u}): they stay frozen (writes refused) until their \
                 partition_frozen rows are deleted or switchover is re-run"
            ),
        };
        e.note(fenced).note(thawed)
    }
}

async fn return_rows(
    tx: &mut Tx<'_>,
    home: u32,
    sibling: u32,
    parts: &[MovedPartition],
) -> Result<()> {
    let ids = id_list(parts);
    let locked = tx
        .rows(
            "reading the partitions",
            &format!(
                "SELECT id FROM directory WHERE id IN ({ids}) AND host_id = ? AND retired_at IS NULL \
                 FOR UPDATE"
            ),
            (sibling,),
        )
        .await?;
    if locked.len() != parts.len() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "the directory changed meanwhile: {} of the {} partitions are still on host \
                 {sibling}",
                locked.len(),
                parts.len()
            ),
        ));
    }
    for (what, sql) in [
        (
            "moving the partitions back",
            format!("UPDATE directory SET host_id = {home} WHERE id IN ({ids})"),
        ),
        (
            "deleting their partition_moved rows",
            format!("DELETE FROM partition_moved WHERE directory_id IN ({ids})"),
        ),
        (
            "deleting their partition_frozen rows",
            format!("DELETE FROM partition_frozen WHERE directory_id IN ({ids})"),
        ),
    ] {
        tx.exec(what, &sql, ()).await?;
    }
    Ok(())
}

/// One transaction: the partitions into `partition_frozen`, version bumped.
async fn freeze(dirs: &mut Session, parts: &[MovedPartition], reason: &str) -> Result<u64> {
    let frozen = dirtx::change(dirs, IF_LOST, async |tx: &mut Tx<'_>| {
        for p in parts {
            tx.exec(
                "freezing the partitions (partition_frozen)",
                "INSERT INTO partition_frozen (directory_id, reason, frozen_at) VALUES (?, ?, NOW())
                 ON DUPLICATE KEY UPDATE reason = VALUES(reason), frozen_at = VALUES(frozen_at)",
                (p.id, reason),
            )
            .await?;
        }
        Ok(Some(()))
    })
    .await?;
    frozen
        .map(|((), v)| v)
        .ok_or_else(|| Error::internal("the freeze changed nothing"))
}

/// One transaction: the partitions' `partition_frozen` rows deleted, version bumped.
async fn unfreeze(dirs: &mut Session, parts: &[MovedPartition]) -> Result<u64> {
    let thawed = dirtx::change(dirs, IF_LOST, async |tx: &mut Tx<'_>| {
        tx.exec(
            "unfreezing the partitions",
            &format!(
                "DELETE FROM partition_frozen WHERE directory_id IN ({})",
                id_list(parts)
            ),
            (),
        )
        .await
        .map(Some)
    })
    .await?;
    thawed
        .map(|((), v)| v)
        .ok_or_else(|| Error::internal("the unfreeze changed nothing"))
}
