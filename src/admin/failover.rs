//! `thrudoc-admin failover` and `switchover`: manual read-write failover of a master's
//! partitions to its sibling, and their planned return (DESIGN.md section 5).
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
//! At no moment do two hosts take writes for one partition: before the move only H (or, once
//! fenced or dead, nobody), after it only S; on the way back, nobody while frozen, then only H.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use mysql_async::{Transaction, TxOpts};

use super::list::load_directory;
use super::replica::{self, GtidPos, Ticker};
use super::sql::{self, column, Login, Session, UNCHANGED};
use super::table::write_table;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::HostAddr;
use crate::rules::check_sql_name;
use crate::store::mysql::directory::{Directory, Host, DIRECTORY_DDL};

macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        writeln!($out, $($arg)*)?;
        $out.flush()?;
    }};
}

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

/// A partition moved by either command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedPartition {
    pub id: u64,
    pub bucket: String,
    pub db: String,
    pub datatable: String,
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

fn addr_of(h: &Host) -> Result<HostAddr> {
    HostAddr::new(&h.hostname, h.port).map_err(|e| e.context(format!("host {}", h.id)))
}

/// `host` and its sibling, as the directory records them.
pub fn find_pair(dir: &Directory, host: &HostAddr) -> Result<(Host, Host)> {
    let Some(h) = dir
        .hosts
        .values()
        .find(|h| h.hostname == host.host && h.port == host.port)
    else {
        let known: Vec<String> = dir
            .hosts
            .values()
            .map(|h| h.address().to_string())
            .collect();
        return Err(Error::invalid(format!(
            "the directory has no host {host} (its hosts: {}); give the address as the directory \
             records it (`thrudoc-admin status` lists them)",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let Some(sid) = h.slave_id else {
        return Err(Error::invalid(format!(
            "host {} ({host}) has no sibling in the directory (host.slave_id is NULL): no other \
             host holds a copy of its partitions; nothing was changed",
            h.id
        )));
    };
    match dir.hosts.get(&sid) {
        Some(s) if s.id != h.id => Ok((h.clone(), s.clone())),
        _ => Err(Error::invalid(format!(
            "host {} ({host}) names sibling host {sid}, which is not another host of the \
             directory; nothing was changed",
            h.id
        ))),
    }
}

/// Creates the directory tables a directory made before them lacks (`partition_frozen`,
/// `partition_moved`, ...); all `IF NOT EXISTS`, and run only when one is missing.
async fn ensure_tables(dir: &mut Session, db: &str) -> Result<()> {
    let present: Option<u64> = dir
        .first(
            "looking for the directory tables",
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
             AND TABLE_NAME IN ('partition_frozen', 'partition_moved', 'directory_version')",
            (db,),
        )
        .await?;
    if present.unwrap_or(0) < 3 {
        for ddl in DIRECTORY_DDL {
            dir.run("creating the missing directory tables", ddl)
                .await?;
        }
    }
    Ok(())
}

async fn begin<'a>(dir: &'a mut Session) -> Result<Transaction<'a>> {
    sql::deadline(
        &dir.addr,
        "starting the directory transaction",
        dir.timeout,
        dir.conn.start_transaction(TxOpts::default()),
    )
    .await
}

async fn rollback(tx: Transaction<'_>, limit: Duration) {
    // Dropping the connection or a timed-out rollback leaves it to the server, which rolls an
    // uncommitted transaction back when the session ends.
    let _ = tokio::time::timeout(limit, tx.rollback()).await;
}

/// Bumps the directory version and commits (see [`sql::commit_directory`]).
async fn commit_directory(tx: Transaction<'_>, master: &HostAddr, limit: Duration) -> Result<u64> {
    sql::commit_directory(
        tx,
        master,
        limit,
        "the change may or may not have been made",
        "look with `thrudoc-admin list --tablename ...` and re-run",
    )
    .await
}

/// `1,2,3`: directory ids (integers read from the directory) for an `IN (...)` list.
fn id_list(parts: &[MovedPartition]) -> String {
    parts
        .iter()
        .map(|p| p.id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn partition_rows(rows: &[mysql_async::Row], what: &str) -> Result<Vec<MovedPartition>> {
    rows.iter()
        .map(|row| {
            Ok(MovedPartition {
                id: column(row, 0, what)?,
                bucket: column(row, 1, what)?,
                db: column(row, 2, what)?,
                datatable: column(row, 3, what)?,
            })
        })
        .collect()
}

fn print_partitions(
    out: &mut dyn Write,
    parts: &[MovedPartition],
    from: &HostAddr,
    to: &HostAddr,
) -> Result<()> {
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.bucket.clone(),
                format!("{}.{}", p.db, p.datatable),
                from.to_string(),
                to.to_string(),
            ]
        })
        .collect();
    write_table(out, 2, &["id", "bucket", "table", "from", "to"], &rows)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Makes the sibling of `opts.host` the master of its live partitions.
pub async fn failover(opts: &FailoverOptions, out: &mut dyn Write) -> Result<FailoverReport> {
    check_sql_name("--database", &opts.database)?;
    let dir = match load_directory(&opts.root, &opts.master, &opts.database).await {
        Ok(dir) => dir,
        Err(e) if e.kind() == ErrorKind::Unavailable && opts.master == opts.host => {
            return Err(Error::new(
                e.kind(),
                format!(
                    "{e}; the directory master is the host being failed over: give the \
                     directory's sibling as --master-hostname/--master-port (nothing was changed)"
                ),
            ))
        }
        Err(e) => return Err(e),
    };
    let (home, sibling) = find_pair(&dir, &opts.host)?;
    let (h_addr, s_addr) = (addr_of(&home)?, addr_of(&sibling)?);
    say!(
        out,
        "failover of host {} ({h_addr}): its sibling, host {} ({s_addr}), becomes the master of \
         its partitions (directory version {} on {})",
        home.id,
        sibling.id,
        dir.version,
        opts.master
    );
    let mut warnings = Vec::new();
    let mut dirs = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dirs, &opts.database).await?;

    // The sibling must answer and be able to take writes.
    say!(out, "connecting to the sibling {s_addr} ...");
    let mut sib = opts
        .root
        .connect(&s_addr, None)
        .await
        .map_err(|e| e.note("the sibling must answer to take over: nothing was changed"))?;
    let sib_id = replica::server_id(&mut sib).await?;
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

    // Fence the old master, or learn what the sibling received from it.
    say!(
        out,
        "connecting to {h_addr} (for at most {}) ...",
        secs(opts.probe_timeout)
    );
    let probe = Login {
        connect_timeout: opts.probe_timeout,
        query_timeout: opts.probe_timeout,
        ..opts.root.clone()
    };
    let connected = match probe.connect(&h_addr, None).await {
        Ok(mut s) => match replica::read_only(&mut s).await {
            Ok(_) => Ok(s),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let mut ticker = Ticker::new(opts.tty);
    let fenced = match connected {
        Ok(mut hs) => {
            hs.timeout = opts.root.query_timeout;
            let fenced = fence_and_catch_up(
                opts,
                &mut hs,
                &mut sib,
                sib_id,
                &h_addr,
                &s_addr,
                &mut ticker,
                &mut warnings,
                out,
            )
            .await;
            hs.close().await;
            fenced?
        }
        Err(e) => {
            say!(out, "{h_addr} does not answer: {e}");
            say!(
                out,
                "  it cannot be fenced; servers stop writing to it when they load the new directory, \
                 or when their directory lease runs out if they cannot"
            );
            received_and_applied(
                opts,
                &mut sib,
                sib_id,
                &h_addr,
                &s_addr,
                &mut ticker,
                &mut warnings,
                out,
            )
            .await?;
            false
        }
    };
    sib.close().await;

    // One directory transaction.
    let printed = warnings.len();
    say!(
        out,
        "moving the partitions (one transaction on {}) ...",
        opts.master
    );
    let (parts, version) = move_partitions(&mut dirs, &home, &sibling, &mut warnings).await?;
    match version {
        None => say!(
            out,
            "{h_addr} holds no live partition: nothing to move; the directory is unchanged"
        ),
        Some(v) => {
            say!(
                out,
                "moved {} partitions from {h_addr} to {s_addr}:",
                parts.len()
            );
            print_partitions(out, &parts, &h_addr, &s_addr)?;
            say!(
                out,
                "committed: directory version {v}. Every Thrudoc server sends writes of these \
                 partitions to {s_addr} from its next directory check (MYSQL_DIRECTORY_POLL_MS); \
                 one that cannot read the directory stops writing when its lease \
                 (MYSQL_DIRECTORY_LEASE_MS) runs out."
            );
        }
    }
    if let (Some(_), Some(copy)) = (version, directory_sibling(&dir, &opts.master)) {
        let limit = opts.catch_up_timeout;
        match directory_copy_caught_up(&opts.root, &mut dirs, &copy, limit, &mut ticker, out).await
        {
            Ok(Some(false)) => warnings.push(format!(
                "the directory's sibling {copy} has not applied the change within {}: servers \
                 reading the directory there still route to {h_addr}",
                secs(limit)
            )),
            Ok(_) => {}
            Err(e) => warnings.push(format!(
                "cannot tell whether the directory's sibling {copy} has the change: {e}"
            )),
        }
    }
    dirs.close().await;
    for w in &warnings[printed..] {
        say!(out, "warning: {w}");
    }
    let stay_out = if fenced {
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
    };
    say!(out, "warning: {stay_out}");
    warnings.push(stay_out);
    Ok(FailoverReport {
        from: h_addr,
        to: s_addr,
        fenced,
        partitions: parts,
        version,
        warnings,
    })
}

/// H answers: fence it, then wait until S has applied everything H committed. `Ok(true)` when
/// fenced; `Ok(false)` when it could not be fenced and `--force` went on anyway.
#[allow(clippy::too_many_arguments)]
async fn fence_and_catch_up(
    opts: &FailoverOptions,
    hs: &mut Session,
    sib: &mut Session,
    sib_id: u32,
    h_addr: &HostAddr,
    s_addr: &HostAddr,
    ticker: &mut Ticker,
    warnings: &mut Vec<String>,
    out: &mut dyn Write,
) -> Result<bool> {
    say!(out, "fencing {h_addr}: SET GLOBAL read_only = ON ...");
    if let Err(e) = replica::set_read_only(hs, true).await {
        if !opts.force {
            return Err(Error::new(
                e.kind(),
                format!(
                    "refused: {h_addr} answers but could not be fenced ({e}); nothing was \
                     changed. Re-run once it can be, or with --force to go on without fencing it"
                ),
            ));
        }
        let w = format!(
            "--force: {h_addr} answers but could not be fenced ({e}); a server that still routes \
             to it may write there until it loads the new directory or its lease runs out"
        );
        say!(out, "warning: {w}");
        warnings.push(w);
        received_and_applied(opts, sib, sib_id, h_addr, s_addr, ticker, warnings, out).await?;
        return Ok(false);
    }
    say!(
        out,
        "  {h_addr} is fenced: accounts without SUPER or READ_ONLY ADMIN (the Thrudoc service \
         account) can commit nothing more there"
    );
    let committed = replica::binlog_pos(hs).await?.without_server(sib_id);
    say!(
        out,
        "  {h_addr} has committed {committed}; waiting for {s_addr} to apply it (at most {}) ...",
        secs(opts.catch_up_timeout)
    );
    let limit = opts.catch_up_timeout;
    let caught = replica::wait_applied(sib, &committed, limit, &mut |elapsed, applied| {
        ticker.tick(
            out,
            &format!(
                "  ... {} of {}: {s_addr} has applied {applied}",
                secs(elapsed),
                secs(limit)
            ),
        )
    })
    .await?;
    ticker.done(out)?;
    if caught {
        say!(out, "  {s_addr} has applied everything {h_addr} committed");
        return Ok(true);
    }
    let state = describe_replication(sib, h_addr).await;
    if !opts.force {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "refused: {s_addr} has not applied everything {h_addr} committed ({committed}) \
                 within {} ({state}). {h_addr} stays fenced (read_only = ON), so nothing can be \
                 written there; the directory is unchanged. Wait and re-run (a longer \
                 --catch-up-timeout), or re-run with --force to promote {s_addr} without what it \
                 lacks",
                secs(limit)
            ),
        ));
    }
    let w = format!(
        "--force: {s_addr} had not applied everything {h_addr} committed ({state}); what it lacks \
         arrives later through replication, where it may overwrite newer writes made on {s_addr} \
         or stop replication with a conflict. Run `thrudoc-admin verify` afterwards"
    );
    say!(out, "warning: {w}");
    warnings.push(w);
    Ok(true)
}

/// H does not answer: wait until S has applied everything its replication from H received.
#[allow(clippy::too_many_arguments)]
async fn received_and_applied(
    opts: &FailoverOptions,
    sib: &mut Session,
    sib_id: u32,
    h_addr: &HostAddr,
    s_addr: &HostAddr,
    ticker: &mut Ticker,
    warnings: &mut Vec<String>,
    out: &mut dyn Write,
) -> Result<()> {
    let semisync = semisync_state(sib).await;
    let loss = match semisync.as_deref() {
        Some("ON") => format!(
            "{s_addr} is a semi-synchronous slave (Rpl_semi_sync_slave_status ON): {h_addr} \
             acknowledged a commit only once {s_addr} had received it, unless it had fallen back \
             to asynchronous replication (rpl_semi_sync_master_timeout); then writes it \
             acknowledged but never sent are lost"
        ),
        _ => format!(
            "replication from {h_addr} to {s_addr} is asynchronous (semi-synchronous replication \
             is not on): writes {h_addr} acknowledged but never sent to {s_addr} are lost if \
             {h_addr} never comes back, and conflict with newer writes if it does"
        ),
    };
    say!(out, "warning: {loss}");
    warnings.push(loss);
    let Some((status, note)) = replica::slave_of(sib, h_addr).await? else {
        let why =
            format!("{s_addr} does not replicate from {h_addr}: it may hold none of its writes");
        if !opts.force {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("refused: {why}; nothing was changed (--force promotes it anyway)"),
            ));
        }
        let w = format!("--force: {why}");
        say!(out, "warning: {w}");
        warnings.push(w);
        return Ok(());
    };
    if let Some(note) = note {
        say!(out, "  note: {note}");
    }
    say!(
        out,
        "  {s_addr} replication from {h_addr}: {}",
        status.describe()
    );
    let limit = opts.catch_up_timeout;
    let start = Instant::now();
    let use_gtid = status.using_gtid != "No" && !status.gtid_io_pos.trim().is_empty();
    let caught = if use_gtid {
        let received = GtidPos::parse(&status.gtid_io_pos)?.without_server(sib_id);
        say!(
            out,
            "  waiting for {s_addr} to apply all it received ({received}), at most {} ...",
            secs(limit)
        );
        replica::wait_applied(sib, &received, limit, &mut |elapsed, applied| {
            ticker.tick(
                out,
                &format!(
                    "  ... {} of {}: {s_addr} has applied {applied}",
                    secs(elapsed),
                    secs(limit)
                ),
            )
        })
        .await?
    } else {
        say!(
            out,
            "  waiting for {s_addr} to execute all it received (binary log positions), at most {} ...",
            secs(limit)
        );
        let mut status = status.clone();
        loop {
            if status.applied_all_received() {
                break true;
            }
            if start.elapsed() >= limit {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            match replica::slave_of(sib, h_addr).await? {
                Some((s, _)) => status = s,
                None => break false,
            }
            ticker.tick(
                out,
                &format!(
                    "  ... {} of {}: {}",
                    secs(start.elapsed()),
                    secs(limit),
                    status.describe()
                ),
            )?;
        }
    };
    ticker.done(out)?;
    if caught {
        say!(
            out,
            "  {s_addr} has applied everything it received from {h_addr}"
        );
        return Ok(());
    }
    let state = describe_replication(sib, h_addr).await;
    if !opts.force {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "refused: {s_addr} has not applied everything it received from {h_addr} within {} \
                 ({state}); nothing was changed. Wait and re-run (a longer --catch-up-timeout), or \
                 re-run with --force to promote it without what it has not applied",
                secs(limit)
            ),
        ));
    }
    let w = format!(
        "--force: {s_addr} had not applied everything it received from {h_addr} ({state}); \
         it applies the rest later, possibly over newer writes"
    );
    say!(out, "warning: {w}");
    warnings.push(w);
    Ok(())
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

/// How the session's server replicates from `master`, for messages.
async fn describe_replication(s: &mut Session, master: &HostAddr) -> String {
    match replica::slave_of(s, master).await {
        Ok(Some((st, _))) => format!("its replication from {master}: {}", st.describe()),
        Ok(None) => format!("it does not replicate from {master}"),
        Err(e) => format!("its replication state cannot be read: {e}"),
    }
}

/// The failover's directory transaction: every live partition of `from` goes to `to`.
async fn move_partitions(
    dirs: &mut Session,
    from: &Host,
    to: &Host,
    warnings: &mut Vec<String>,
) -> Result<(Vec<MovedPartition>, Option<u64>)> {
    let master = dirs.addr.clone();
    let limit = dirs.timeout;
    let mut tx = begin(dirs).await?;
    let changed = move_rows(&mut tx, &master, limit, from, to, warnings).await;
    match changed {
        Err(e) => {
            rollback(tx, limit).await;
            Err(e.note(UNCHANGED))
        }
        Ok(parts) if parts.is_empty() => {
            rollback(tx, limit).await;
            Ok((parts, None))
        }
        Ok(parts) => {
            let version = commit_directory(tx, &master, limit).await?;
            Ok((parts, Some(version)))
        }
    }
}

async fn move_rows(
    tx: &mut Transaction<'_>,
    master: &HostAddr,
    limit: Duration,
    from: &Host,
    to: &Host,
    warnings: &mut Vec<String>,
) -> Result<Vec<MovedPartition>> {
    const READ: &str = "reading the host's partitions";
    let rows = sql::rows(
        tx,
        master,
        limit,
        READ,
        "SELECT id, bucket, db, datatable FROM directory
         WHERE host_id = ? AND retired_at IS NULL ORDER BY bucket, `end`, id FOR UPDATE",
        (from.id,),
    )
    .await?;
    let parts = partition_rows(&rows, READ)?;
    if parts.is_empty() {
        return Ok(parts);
    }
    let ids = id_list(&parts);
    let homes: BTreeMap<u64, u32> = sql::rows(
        tx,
        master,
        limit,
        "reading partition_moved",
        &format!(
            "SELECT directory_id, home_host_id FROM partition_moved
             WHERE directory_id IN ({ids}) FOR UPDATE"
        ),
        (),
    )
    .await?
    .iter()
    .map(|r| {
        Ok((
            column(r, 0, "reading partition_moved")?,
            column(r, 1, "reading partition_moved")?,
        ))
    })
    .collect::<Result<_>>()?;
    for p in &parts {
        match homes.get(&p.id) {
            // Back on its home host: no longer moved.
            Some(&home) if home == to.id => {
                sql::exec(
                    tx,
                    master,
                    limit,
                    "updating partition_moved",
                    "DELETE FROM partition_moved WHERE directory_id = ?",
                    (p.id,),
                )
                .await?
            }
            // Moved before: its home stays the one recorded first.
            Some(_) => {}
            None => {
                sql::exec(
                    tx,
                    master,
                    limit,
                    "recording the move in partition_moved",
                    "INSERT INTO partition_moved (directory_id, home_host_id, moved_at)
                     VALUES (?, ?, NOW())",
                    (p.id, from.id),
                )
                .await?
            }
        }
    }
    let frozen = sql::rows(
        tx,
        master,
        limit,
        "reading partition_frozen",
        &format!("SELECT directory_id FROM partition_frozen WHERE directory_id IN ({ids})"),
        (),
    )
    .await?;
    if !frozen.is_empty() {
        let ids: Vec<String> = frozen
            .iter()
            .filter_map(|r| column::<u64>(r, 0, "reading partition_frozen").ok())
            .map(|id| id.to_string())
            .collect();
        warnings.push(format!(
            "partitions {} are frozen (partition_frozen, an unfinished switchover?): they stay \
             read-only on their new master until their rows there are deleted",
            ids.join(", ")
        ));
    }
    sql::exec(
        tx,
        master,
        limit,
        "moving the partitions",
        &format!(
            "UPDATE directory SET host_id = ? WHERE id IN ({ids}) AND host_id = ? AND retired_at IS NULL"
        ),
        (to.id, from.id),
    )
    .await?;
    Ok(parts)
}

/// Returns the partitions recorded as moved off `opts.host` to it.
pub async fn switchover(opts: &SwitchoverOptions, out: &mut dyn Write) -> Result<SwitchoverReport> {
    check_sql_name("--database", &opts.database)?;
    let dir = load_directory(&opts.root, &opts.master, &opts.database).await?;
    let (home, sibling) = find_pair(&dir, &opts.host)?;
    let (h_addr, s_addr) = (addr_of(&home)?, addr_of(&sibling)?);
    say!(
        out,
        "switchover: host {} ({h_addr}) takes back its partitions from its sibling, host {} \
         ({s_addr}) (directory version {} on {})",
        home.id,
        sibling.id,
        dir.version,
        opts.master
    );
    let mut warnings = Vec::new();
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
    for row in &rows {
        let host_id: u32 = column(row, 4, READ)?;
        let p = partition_rows(std::slice::from_ref(row), READ)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("a partition row vanished"))?;
        if host_id == sibling.id {
            parts.push(p);
        } else {
            warnings.push(format!(
                "partition {} ({}) is recorded as moved off {h_addr} but is on host {host_id}, \
                 not on {s_addr}: left alone",
                p.id, p.datatable
            ));
        }
    }
    if parts.is_empty() {
        say!(
            out,
            "nothing to do: no partition recorded as moved off {h_addr} is on {s_addr}; the \
             directory is unchanged"
        );
        for w in &warnings {
            say!(out, "warning: {w}");
        }
        dirs.close().await;
        report.warnings = warnings;
        return Ok(report);
    }
    say!(out, "{} partitions to move back:", parts.len());
    print_partitions(out, &parts, &s_addr, &h_addr)?;

    // H must answer and replicate from S; S must answer.
    let mut hs = opts.root.connect(&h_addr, None).await.map_err(|e| {
        e.note(format!(
            "{h_addr} must answer to take its partitions back: nothing was changed"
        ))
    })?;
    match replica::slave_of(&mut hs, &s_addr).await? {
        None => {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "refused: {h_addr} does not replicate from {s_addr}, so it lacks what was \
                     written there since the failover; nothing was changed"
                ),
            ))
        }
        Some((st, note)) => {
            if let Some(note) = note {
                say!(out, "  note: {note}");
            }
            if !st.running() {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "refused: {h_addr} replication from {s_addr} is not running ({}); \
                         nothing was changed",
                        st.describe()
                    ),
                ));
            }
            say!(
                out,
                "  {h_addr} replicates from {s_addr}: {}",
                st.describe()
            );
        }
    }
    let h_id = replica::server_id(&mut hs).await?;
    let mut ss = opts.root.connect(&s_addr, None).await.map_err(|e| {
        Error::new(
            e.kind(),
            format!(
                "{e}; {s_addr} must answer so that {h_addr} can catch up with it: nothing was \
                 changed"
            ),
        )
    })?;
    match replica::slave_of(&mut ss, &h_addr).await {
        Ok(Some((st, _))) if st.running() => {}
        Ok(Some((st, _))) => warnings.push(format!(
            "{s_addr} replication from {h_addr} is not running ({}): once {h_addr} takes writes \
             again, {s_addr} will not hold copies of them until it runs",
            st.describe()
        )),
        Ok(None) => warnings.push(format!(
            "{s_addr} does not replicate from {h_addr}: once {h_addr} takes writes again, no \
             sibling holds copies of them"
        )),
        Err(e) => warnings.push(format!("cannot read {s_addr}'s replication state: {e}")),
    }

    // Freeze, then wait out every server's lease and every write in flight.
    let reason = format!("switchover to {h_addr} in progress");
    let version = freeze(&mut dirs, &parts, &reason).await?;
    let frozen_at = Instant::now();
    say!(
        out,
        "frozen (directory version {version}): every server refuses writes to these partitions \
         from its next directory check"
    );
    let mut ticker = Ticker::new(opts.tty);
    let moved = move_back(
        opts,
        &dir,
        frozen_at,
        &mut dirs,
        &mut hs,
        &mut ss,
        h_id,
        (&home, &h_addr),
        (&sibling, &s_addr),
        &parts,
        &mut ticker,
        out,
    )
    .await;
    let frozen_for = frozen_at.elapsed();
    let result = match moved {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == ErrorKind::OutcomeUnknown => Err(Error::new(
            e.kind(),
            format!(
                "{e}. The partitions may still be frozen: if `list` shows them on {s_addr}, \
                 re-run switchover; if on {h_addr}, delete their partition_frozen and \
                 partition_moved rows"
            ),
        )),
        Err(e) => {
            // Back as before: H fenced again, the partitions writable on S.
            let _ = ticker.done(out);
            let fenced = replica::set_read_only(&mut hs, true).await;
            let thawed = unfreeze(&mut dirs, &parts).await;
            let fenced = match fenced {
                Ok(()) => format!("{h_addr} is read_only again"),
                Err(f) => format!("setting {h_addr} read_only again failed ({f}): do it by hand"),
            };
            let thawed = match thawed {
                Ok(v) => format!(
                    "the partitions are unfrozen (directory version {v}) and stay on {s_addr}"
                ),
                Err(u) => format!(
                    "unfreezing them failed ({u}): they stay frozen (writes refused) until their \
                     partition_frozen rows are deleted or switchover is re-run"
                ),
            };
            Err(e.note(fenced).note(thawed))
        }
    };
    hs.close().await;
    ss.close().await;
    dirs.close().await;
    let version = result?;
    say!(
        out,
        "moved {} partitions back from {s_addr} to {h_addr}: committed directory version \
         {version}; servers send their writes to {h_addr} from their next directory check",
        parts.len()
    );
    say!(
        out,
        "writes to these partitions were refused for {} (from the freeze to this commit), plus \
         until each server's next directory check (MYSQL_DIRECTORY_POLL_MS)",
        secs(frozen_for)
    );
    for w in &warnings {
        say!(out, "warning: {w}");
    }
    report.partitions = parts;
    report.version = Some(version);
    report.frozen_for = frozen_for;
    report.warnings = warnings;
    Ok(report)
}

/// After the freeze: the directory's copy has it, the wait, nothing still writing on S, H caught
/// up, H writable, partitions moved back.
#[allow(clippy::too_many_arguments)]
async fn move_back(
    opts: &SwitchoverOptions,
    dir: &Directory,
    frozen_at: Instant,
    dirs: &mut Session,
    hs: &mut Session,
    ss: &mut Session,
    h_id: u32,
    (home, h_addr): (&Host, &HostAddr),
    (sibling, s_addr): (&Host, &HostAddr),
    parts: &[MovedPartition],
    ticker: &mut Ticker,
    out: &mut dyn Write,
) -> Result<u64> {
    let limit = opts.catch_up_timeout;
    // A server that cannot reach the directory master reads the directory's sibling, and
    // renews its lease there: the lease only counts once the sibling has the freeze.
    let mut countdown_from = frozen_at;
    if let Some(copy) = directory_sibling(dir, &dirs.addr) {
        match directory_copy_caught_up(&opts.root, dirs, &copy, limit, ticker, out).await? {
            None => {}
            Some(true) => countdown_from = Instant::now(),
            Some(false) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the directory's sibling {copy} has not applied the freeze within {}: a \
                         server reading the directory there would go on writing",
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
        ticker.tick(
            out,
            &format!(
                "  waiting {:>4.1} s: servers load the new directory or stop writing (lease {} \
                 ms), writes in flight end (query timeout {} ms, margin {} ms)",
                left.as_secs_f64(),
                opts.lease.as_millis(),
                opts.server_query_timeout.as_millis(),
                opts.margin.as_millis()
            ),
        )?;
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    ticker.done(out)?;

    let started = Instant::now();
    // A statement the client gave up on may still run on the server; none may be left.
    let tables: Vec<String> = parts.iter().map(|p| p.datatable.clone()).collect();
    loop {
        let running = replica::running_on(ss, &tables).await?;
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
        ticker.tick(
            out,
            &format!(
                "  {} statements on the frozen partitions still run on {s_addr}; waiting ...",
                running.len()
            ),
        )?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ticker.done(out)?;
    let committed = replica::binlog_pos(ss).await?.without_server(h_id);
    let left = limit.saturating_sub(started.elapsed());
    say!(
        out,
        "waiting for {h_addr} to apply everything {s_addr} committed ({committed}), at most {} ...",
        secs(left)
    );
    let caught = replica::wait_applied(hs, &committed, left, &mut |elapsed, applied| {
        ticker.tick(
            out,
            &format!(
                "  ... {} of {}: {h_addr} has applied {applied}",
                secs(elapsed),
                secs(left)
            ),
        )
    })
    .await?;
    ticker.done(out)?;
    if !caught {
        let state = describe_replication(hs, s_addr).await;
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "{h_addr} did not apply everything {s_addr} committed within {} ({state})",
                secs(opts.catch_up_timeout)
            ),
        ));
    }
    say!(out, "  {h_addr} has applied everything {s_addr} committed");
    say!(out, "SET GLOBAL read_only = OFF on {h_addr} ...");
    replica::set_read_only(hs, false).await?;

    say!(
        out,
        "moving the partitions back (one transaction on {}) ...",
        dirs.addr
    );
    let master = dirs.addr.clone();
    let dlimit = dirs.timeout;
    let mut tx = begin(dirs).await?;
    match return_rows(&mut tx, &master, dlimit, home.id, sibling.id, parts).await {
        Ok(()) => commit_directory(tx, &master, dlimit).await,
        Err(e) => {
            rollback(tx, dlimit).await;
            Err(e.note(UNCHANGED))
        }
    }
}

async fn return_rows(
    tx: &mut Transaction<'_>,
    master: &HostAddr,
    limit: Duration,
    home: u32,
    sibling: u32,
    parts: &[MovedPartition],
) -> Result<()> {
    let ids = id_list(parts);
    let locked = sql::rows(
        tx,
        master,
        limit,
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
        sql::exec(tx, master, limit, what, &sql, ()).await?;
    }
    Ok(())
}

/// The directory master's sibling, when the directory master is a data host of the directory
/// (servers configured with it as `MYSQL_SLAVE_HOST` read the directory there when the master
/// does not answer). `None` when the directory does not know it.
pub fn directory_sibling(dir: &Directory, master: &HostAddr) -> Option<HostAddr> {
    let h = dir
        .hosts
        .values()
        .find(|h| h.hostname == master.host && h.port == master.port)?;
    let s = dir.hosts.get(&h.slave_id?)?;
    HostAddr::new(&s.hostname, s.port).ok()
}

/// Waits until `copy` (the directory's sibling) has applied everything the directory master
/// (`dirs`) has committed, for at most `limit`. `None`, with a note, when `copy` does not
/// answer: servers cannot read the directory there either.
async fn directory_copy_caught_up(
    root: &Login,
    dirs: &mut Session,
    copy: &HostAddr,
    limit: Duration,
    ticker: &mut Ticker,
    out: &mut dyn Write,
) -> Result<Option<bool>> {
    let mut cs = match root.connect(copy, None).await {
        Ok(s) => s,
        Err(e) => {
            say!(
                out,
                "  note: the directory's sibling {copy} does not answer ({e}); servers cannot read \
                 the directory there"
            );
            return Ok(None);
        }
    };
    let copy_id = replica::server_id(&mut cs).await?;
    let committed = replica::binlog_pos(dirs).await?.without_server(copy_id);
    let caught = replica::wait_applied(&mut cs, &committed, limit, &mut |elapsed, applied| {
        ticker.tick(
            out,
            &format!(
                "  ... {} of {}: the directory's sibling {copy} has applied {applied}",
                secs(elapsed),
                secs(limit)
            ),
        )
    })
    .await?;
    ticker.done(out)?;
    cs.close().await;
    if caught {
        say!(out, "  the directory's sibling {copy} has the change too");
    }
    Ok(Some(caught))
}

/// One transaction: the partitions into `partition_frozen`, version bumped.
async fn freeze(dirs: &mut Session, parts: &[MovedPartition], reason: &str) -> Result<u64> {
    let master = dirs.addr.clone();
    let limit = dirs.timeout;
    let mut tx = begin(dirs).await?;
    let mut written = Ok(());
    for p in parts {
        written = sql::exec(
            &mut tx,
            &master,
            limit,
            "freezing the partitions (partition_frozen)",
            "INSERT INTO partition_frozen (directory_id, reason, frozen_at) VALUES (?, ?, NOW())
             ON DUPLICATE KEY UPDATE reason = VALUES(reason), frozen_at = VALUES(frozen_at)",
            (p.id, reason),
        )
        .await;
        if written.is_err() {
            break;
        }
    }
    match written {
        Ok(()) => commit_directory(tx, &master, limit).await,
        Err(e) => {
            rollback(tx, limit).await;
            Err(e.note(UNCHANGED))
        }
    }
}

/// One transaction: the partitions' `partition_frozen` rows deleted, version bumped.
async fn unfreeze(dirs: &mut Session, parts: &[MovedPartition]) -> Result<u64> {
    let master = dirs.addr.clone();
    let limit = dirs.timeout;
    let mut tx = begin(dirs).await?;
    let deleted = sql::exec(
        &mut tx,
        &master,
        limit,
        "unfreezing the partitions",
        &format!(
            "DELETE FROM partition_frozen WHERE directory_id IN ({})",
            id_list(parts)
        ),
        (),
    )
    .await;
    match deleted {
        Ok(()) => commit_directory(tx, &master, limit).await,
        Err(e) => {
            rollback(tx, limit).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: u32, port: u16, slave_id: Option<u32>) -> Host {
        Host {
            id,
            hostname: "127.0.0.1".into(),
            port,
            slave_id,
        }
    }

    #[test]
    fn pairs_are_found_by_address() {
        let dir = Directory::build(
            3,
            vec![
                host(1, 3301, Some(2)),
                host(2, 3302, Some(1)),
                host(3, 3303, None),
                host(4, 3304, Some(4)),
            ],
            Vec::new(),
            &Default::default(),
        );
        let addr = |port| HostAddr::new("127.0.0.1", port).unwrap();
        let (h, s) = find_pair(&dir, &addr(3301)).unwrap();
        assert_eq!((h.id, s.id), (1, 2));
        let e = find_pair(&dir, &addr(3309)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("127.0.0.1:3302"), "{e}");
        assert!(find_pair(&dir, &addr(3303))
            .unwrap_err()
            .message()
            .contains("no sibling"));
        assert!(find_pair(&dir, &addr(3304)).is_err());
    }

    #[test]
    fn id_lists_are_plain_integers() {
        let p = |id| MovedPartition {
            id,
            bucket: "b".into(),
            db: "thrudoc".into(),
            datatable: crate::store::mysql::directory::datatable_name(id),
        };
        assert_eq!(id_list(&[p(3), p(17)]), "3,17");
    }
}
