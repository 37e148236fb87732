//! `thrudoc-admin create-tablename`: creates a bucket of the MySQL backend.
//!
//! It makes the schema and the directory tables on the directory master, the schema and the
//! service account on every data host, registers (and with `--with-circular-slaves` pairs) the
//! hosts, and writes the bucket's partitions into the directory. The directory rows go in one
//! transaction that commits only after every partition's datatable exists on its host and on
//! its host's sibling, so a server never loads a partition whose table is missing; a failure
//! before the commit leaves the directory as it was.
//!
//! Order matters for "nothing changed on refusal": flags are checked first, then every host is
//! connected to, then the bucket and the pairing are checked against the directory, and only
//! then is anything written. Everything written to the data hosts is `IF NOT EXISTS` (or a
//! `GRANT`, which repeats harmlessly), because it replicates to the host's sibling, where this
//! tool also runs it, and because running the tool again must be safe.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use mysql_async::{Transaction, TxOpts};

use super::replica;
use super::sql::{self, column, quote_ident, quote_literal, Login, Session};
use super::table::{write_partitions, write_table, PartitionLine};
use crate::config::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{code, server_code, HostAddr};
use crate::rules::check_bucket_name;
use crate::rules::check_sql_name;
use crate::store::mysql::directory::{datatable_ddl, datatable_name, DIRECTORY_DDL};
use crate::store::mysql::placement::HashKind;

/// Most partitions per host.
pub const MAX_PARTS_PER: u32 = 1000;

/// The privileges of the service account on the schema: data only, never DDL.
pub const SERVICE_GRANTS: &str = "SELECT, INSERT, UPDATE, DELETE";

/// What `create-tablename` is asked to do.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The directory master.
    pub master: HostAddr,
    /// The schema of the directory tables and of the datatables on every host.
    pub database: String,
    /// The root login used on every host.
    pub root: Login,
    /// The bucket to create.
    pub tablename: String,
    /// The data hosts, in the order given (pairs are 1↔2, 3↔4, ...).
    pub hosts: Vec<HostAddr>,
    /// Partitions per host.
    pub parts_per: u32,
    /// Pair the hosts in the order given.
    pub circular: bool,
    /// The service account created and granted on every host.
    pub service_user: String,
    pub service_password: Secret,
}

impl CreateOptions {
    /// Checks every flag; nothing has been touched when this fails.
    pub fn validate(&self) -> Result<()> {
        check_bucket_name(&self.tablename)
            .map_err(|why| Error::invalid(format!("--tablename: {why}")))?;
        check_sql_name("--database", &self.database)?;
        if self.hosts.is_empty() {
            return Err(Error::invalid("--hosts names no host"));
        }
        let distinct: BTreeSet<&HostAddr> = self.hosts.iter().collect();
        if distinct.len() != self.hosts.len() {
            return Err(Error::invalid("--hosts names a host twice"));
        }
        if !(1..=MAX_PARTS_PER).contains(&self.parts_per) {
            return Err(Error::invalid(format!(
                "--parts-per must be from 1 to {MAX_PARTS_PER}, not {}",
                self.parts_per
            )));
        }
        if self.circular && self.hosts.len() % 2 != 0 {
            return Err(Error::invalid(format!(
                "--with-circular-slaves pairs the hosts in the order given (1<->2, 3<->4, ...), so \
                 it needs an even number of hosts; --hosts names {}",
                self.hosts.len()
            )));
        }
        check_user_name(&self.service_user)?;
        if self.service_user == self.root.user || self.service_user == "root" {
            return Err(Error::invalid(
                "--user names the service account, which must not be the root account",
            ));
        }
        Ok(())
    }
}

/// Account names: 1 to 80 letters, digits, `_`, `.` and `-` (they are quoted into `CREATE USER`).
fn check_user_name(user: &str) -> Result<()> {
    if !user.is_empty()
        && user.len() <= 80
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "--user `{}` must be 1 to 80 letters, digits, `_`, `.` and `-`",
            user.escape_debug()
        )))
    }
}

/// One partition to create: the range `[start, end]` on `hosts[host]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedPartition {
    pub start: f64,
    pub end: f64,
    /// Index into the host list.
    pub host: usize,
}

/// `hosts × parts_per` partitions covering `[0, 1]`: partition `i` covers `[i/N, (i+1)/N]` (the
/// last ends at exactly 1, and each start is bit-for-bit the previous end) on host `i % hosts`,
/// so neighbouring ranges land on different hosts.
pub fn plan_partitions(hosts: usize, parts_per: u32) -> Vec<PlannedPartition> {
    let n = hosts * parts_per as usize;
    let point = |i: usize| if i == n { 1.0 } else { i as f64 / n as f64 };
    (0..n)
        .map(|i| PlannedPartition {
            start: point(i),
            end: point(i + 1),
            host: i % hosts,
        })
        .collect()
}

/// A host as registered in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredHost {
    pub id: u32,
    pub addr: HostAddr,
    pub sibling: Option<HostAddr>,
}

/// A partition as written to the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedPartition {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    pub host: HostAddr,
    pub sibling: Option<HostAddr>,
    pub datatable: String,
}

/// What `create-tablename` did.
#[derive(Debug, Clone)]
pub struct Created {
    pub database: String,
    pub bucket: String,
    pub hosts: Vec<RegisteredHost>,
    pub partitions: Vec<CreatedPartition>,
    pub version: u64,
    /// Things the operator should look at (replication not running, a login that fails, ...).
    pub warnings: Vec<String>,
}

/// What the directory already says about a listed host before anything is written.
#[derive(Debug, Clone)]
struct KnownHost {
    id: u32,
    slave_id: Option<u32>,
}

macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        writeln!($out, $($arg)*)?;
        $out.flush()?;
    }};
}

/// Creates the bucket, printing each step to `out` as it goes and a summary at the end.
pub async fn run(opts: &CreateOptions, out: &mut dyn Write) -> Result<Created> {
    opts.validate()?;
    let db = opts.database.as_str();
    let bucket = opts.tablename.as_str();
    let mut warnings = Vec::new();

    // 1. Reach every host before changing anything.
    say!(
        out,
        "connecting as {} to the directory master {} ...",
        opts.root.user,
        opts.master
    );
    let mut dir = opts.root.connect(&opts.master, None).await?;
    let mut hosts: BTreeMap<HostAddr, Session> = BTreeMap::new();
    for addr in &opts.hosts {
        say!(out, "connecting to data host {addr} ...");
        let session = opts.root.connect(addr, None).await?;
        hosts.insert(addr.clone(), session);
    }

    // 2. Schema and directory tables (all IF NOT EXISTS).
    say!(
        out,
        "creating schema `{db}` and the directory tables on {} ...",
        opts.master
    );
    dir.run(
        "creating the schema",
        &format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(db)),
    )
    .await?;
    dir.run("selecting the schema", &format!("USE {}", quote_ident(db)))
        .await?;
    for ddl in DIRECTORY_DDL {
        dir.run("creating the directory tables", ddl).await?;
    }

    // 3. Refuse an existing bucket and a pairing that contradicts the directory.
    refuse_existing_bucket(&mut dir.conn, &dir.addr, dir.timeout, bucket).await?;
    let mut known: BTreeMap<HostAddr, KnownHost> = BTreeMap::new();
    for addr in &opts.hosts {
        if let Some(host) = known_host(&mut dir, addr).await? {
            known.insert(addr.clone(), host);
        }
    }
    let siblings = plan_siblings(opts, &mut dir, &known).await?;
    for addr in &opts.hosts {
        match siblings.get(addr) {
            Some(s) => say!(out, "  {addr}: sibling {s}"),
            None => {
                let w = format!(
                    "{addr} has no sibling: its partitions have no read-only failover \
                     (pair hosts with --with-circular-slaves)"
                );
                say!(out, "  warning: {w}");
                warnings.push(w);
            }
        }
    }
    // A sibling from an earlier pairing that is not listed holds copies too.
    for sibling in siblings.values() {
        if !hosts.contains_key(sibling) {
            say!(out, "connecting to sibling {sibling} ...");
            let session = opts.root.connect(sibling, None).await?;
            hosts.insert(sibling.clone(), session);
        }
    }

    // 4. Schema and service account on every data host and on the directory master.
    say!(
        out,
        "creating schema `{db}` and service account '{}'@'%' ({SERVICE_GRANTS} on `{db}`.*) ...",
        opts.service_user
    );
    if !hosts.contains_key(&opts.master) {
        prepare_host(&mut dir, opts).await?;
        say!(out, "  {}: ready", opts.master);
    }
    for (addr, session) in hosts.iter_mut() {
        prepare_host(session, opts).await?;
        say!(out, "  {addr}: ready");
    }

    // 5. Hosts, bucket and partitions in one transaction that commits only once every
    // datatable exists.
    say!(
        out,
        "writing the directory (one transaction on {}) ...",
        opts.master
    );
    let limit = dir.timeout;
    let master = dir.addr.clone();
    let mut tx = sql::deadline(
        &master,
        "starting the directory transaction",
        limit,
        dir.conn.start_transaction(TxOpts::default()),
    )
    .await?;
    let written = write_directory(
        &mut tx, &master, limit, opts, &known, &siblings, &mut hosts, out,
    )
    .await;
    let (registered, partitions) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = tokio::time::timeout(limit, tx.rollback()).await;
            return Err(e.note(sql::UNCHANGED));
        }
    };
    let version = sql::commit_directory(
        tx,
        &master,
        limit,
        "the bucket may or may not exist",
        &format!("look with `thrudoc-admin list --tablename {bucket}`"),
    )
    .await?;
    say!(out, "committed: directory version {version}");

    // 6. Replication of each pair (set up by the operator or scripts/dev-cluster, not here).
    say!(out, "checking replication ...");
    for line in check_replication(&registered, &mut hosts).await {
        match line {
            Ok(fine) => say!(out, "  {fine}"),
            Err(w) => {
                say!(out, "  warning: {w}");
                warnings.push(w);
            }
        }
    }
    // The service account must be able to log in where the servers will use it; an account
    // that existed before keeps its old password, which may not be the one given now.
    let service = Login {
        user: opts.service_user.clone(),
        password: opts.service_password.clone(),
        ..opts.root.clone()
    };
    let mut login_targets: Vec<&HostAddr> = vec![&opts.master];
    login_targets.extend(hosts.keys().filter(|a| **a != opts.master));
    for addr in login_targets {
        match service.connect(addr, Some(db)).await {
            Ok(s) => s.close().await,
            Err(e) => {
                let w = format!(
                    "the service account '{}' cannot log in to {addr} with the password given \
                     (an existing account keeps its password): {e}",
                    opts.service_user
                );
                say!(out, "  warning: {w}");
                warnings.push(w);
            }
        }
    }

    dir.close().await;
    for (_, session) in hosts {
        session.close().await;
    }

    let created = Created {
        database: db.to_string(),
        bucket: bucket.to_string(),
        hosts: registered,
        partitions,
        version,
        warnings,
    };
    // 7. What was done.
    print_summary(&created, &opts.master, out)?;
    Ok(created)
}

async fn refuse_existing_bucket<Q: mysql_async::prelude::Queryable>(
    q: &mut Q,
    addr: &HostAddr,
    limit: Duration,
    bucket: &str,
) -> Result<()> {
    let live: Option<u64> = sql::first(
        q,
        addr,
        limit,
        "looking for the bucket",
        "SELECT COUNT(*) FROM directory WHERE bucket = ? AND retired_at IS NULL",
        (bucket,),
    )
    .await?;
    let named: Option<u64> = sql::first(
        q,
        addr,
        limit,
        "looking for the bucket",
        "SELECT COUNT(*) FROM bucket WHERE name = ?",
        (bucket,),
    )
    .await?;
    let live = live.unwrap_or(0);
    if live > 0 || named.unwrap_or(0) > 0 {
        return Err(Error::invalid(format!(
            "bucket `{bucket}` already exists ({live} live partitions in the directory); \
             nothing was changed"
        )));
    }
    Ok(())
}

async fn known_host(dir: &mut Session, addr: &HostAddr) -> Result<Option<KnownHost>> {
    let rows = dir
        .rows(
            "reading the host table",
            "SELECT id, slave_id FROM host WHERE hostname = ? AND port = ?",
            (addr.host.as_str(), addr.port),
        )
        .await?;
    match rows.first() {
        Some(row) => Ok(Some(KnownHost {
            id: column(row, 0, "reading the host table")?,
            slave_id: column(row, 1, "reading the host table")?,
        })),
        None => Ok(None),
    }
}

async fn host_by_id(dir: &mut Session, id: u32) -> Result<Option<HostAddr>> {
    let rows = dir
        .rows(
            "reading the host table",
            "SELECT hostname, port FROM host WHERE id = ?",
            (id,),
        )
        .await?;
    match rows.first() {
        Some(row) => {
            let host: String = column(row, 0, "reading the host table")?;
            let port: u16 = column(row, 1, "reading the host table")?;
            Ok(Some(HostAddr { host, port }))
        }
        None => Ok(None),
    }
}

/// The sibling of each listed host after this run: with `--with-circular-slaves` its pair
/// (refusing a host already paired with another), else whatever the directory says.
async fn plan_siblings(
    opts: &CreateOptions,
    dir: &mut Session,
    known: &BTreeMap<HostAddr, KnownHost>,
) -> Result<BTreeMap<HostAddr, HostAddr>> {
    let mut siblings = BTreeMap::new();
    if opts.circular {
        for pair in opts.hosts.chunks(2) {
            let [a, b] = pair else {
                return Err(Error::internal("odd host count passed validation"));
            };
            for (me, other) in [(a, b), (b, a)] {
                let other_id = known.get(other).map(|h| h.id);
                if let Some(mine) = known.get(me) {
                    if let Some(current) = mine.slave_id {
                        if Some(current) != other_id {
                            let current_addr = host_by_id(dir, current)
                                .await?
                                .map(|a| a.to_string())
                                .unwrap_or_else(|| format!("unknown host id {current}"));
                            return Err(Error::invalid(format!(
                                "{me} is already paired with {current_addr}, not {other}; \
                                 nothing was changed"
                            )));
                        }
                    }
                    // Nobody else may count `me` as its sibling either.
                    let rows = dir
                        .rows(
                            "reading the host table",
                            "SELECT hostname, port FROM host WHERE slave_id = ? AND id <> ?",
                            (mine.id, other_id.unwrap_or(0)),
                        )
                        .await?;
                    if let Some(row) = rows.first() {
                        let host: String = column(row, 0, "reading the host table")?;
                        let port: u16 = column(row, 1, "reading the host table")?;
                        return Err(Error::invalid(format!(
                            "{me} is already the sibling of {}, not of {other}; nothing was changed",
                            HostAddr { host, port }
                        )));
                    }
                }
                siblings.insert(me.clone(), other.clone());
            }
        }
    } else {
        for addr in &opts.hosts {
            if let Some(slave_id) = known.get(addr).and_then(|h| h.slave_id) {
                let sibling = host_by_id(dir, slave_id).await?.ok_or_else(|| {
                    Error::invalid(format!(
                        "{addr} names sibling host id {slave_id}, which is not in the host table; \
                         fix the host table first"
                    ))
                })?;
                siblings.insert(addr.clone(), sibling);
            }
        }
    }
    Ok(siblings)
}

/// Schema and service account on one host. Safe to replicate and to repeat.
async fn prepare_host(session: &mut Session, opts: &CreateOptions) -> Result<()> {
    let db = quote_ident(&opts.database);
    let sql_mode: Option<String> = session
        .first("reading sql_mode", "SELECT @@SESSION.sql_mode", ())
        .await?;
    let no_backslash = sql_mode
        .unwrap_or_default()
        .contains("NO_BACKSLASH_ESCAPES");
    let user = format!("{}@'%'", quote_literal(&opts.service_user, no_backslash));
    session
        .run(
            "creating the schema",
            &format!("CREATE DATABASE IF NOT EXISTS {db}"),
        )
        .await?;
    // The password comes from the operator, never from a network client; it is escaped for
    // the server's sql_mode, and never appears in errors (they name the step, not the SQL).
    let password = quote_literal(opts.service_password.expose(), no_backslash);
    let created = session
        .run(
            "creating the service account",
            &format!("CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {password}"),
        )
        .await;
    if let Err(e) = created {
        // A server's error text may quote the statement, and with it the password: keep only
        // the error number.
        return Err(match server_code(&e) {
            Some(code) => Error::new(
                e.kind(),
                format!(
                    "creating the service account on {}: server error {code}",
                    session.addr
                ),
            ),
            None => e,
        });
    }
    session
        .run(
            "granting the service account",
            &format!("GRANT {SERVICE_GRANTS} ON {db}.* TO {user}"),
        )
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn write_directory(
    tx: &mut Transaction<'_>,
    master: &HostAddr,
    limit: Duration,
    opts: &CreateOptions,
    known: &BTreeMap<HostAddr, KnownHost>,
    siblings: &BTreeMap<HostAddr, HostAddr>,
    hosts: &mut BTreeMap<HostAddr, Session>,
    out: &mut dyn Write,
) -> Result<(Vec<RegisteredHost>, Vec<CreatedPartition>)> {
    let bucket = opts.tablename.as_str();
    let db = opts.database.as_str();
    refuse_existing_bucket(tx, master, limit, bucket).await?;
    let inserted = sql::exec(
        tx,
        master,
        limit,
        "inserting the bucket row",
        "INSERT INTO bucket (name, hash, created_at) VALUES (?, ?, NOW())",
        (bucket, HashKind::XxHash64.as_str()),
    )
    .await;
    if let Err(e) = inserted {
        if server_code(&e) == Some(code::ER_DUP_ENTRY) {
            return Err(Error::invalid(format!("bucket `{bucket}` already exists")));
        }
        return Err(e);
    }

    // Register every host and every sibling; ids of existing ones are kept.
    let mut ids: BTreeMap<HostAddr, u32> = BTreeMap::new();
    // In the order given, so that ids follow it; then siblings from earlier pairings.
    let mut all: Vec<&HostAddr> = opts.hosts.iter().collect();
    for sibling in siblings.values() {
        if !all.contains(&sibling) {
            all.push(sibling);
        }
    }
    for addr in all {
        sql::exec(
            tx,
            master,
            limit,
            "registering a host",
            "INSERT INTO host (hostname, port) VALUES (?, ?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
            (addr.host.as_str(), addr.port),
        )
        .await?;
        let rows = sql::rows(
            tx,
            master,
            limit,
            "registering a host",
            "SELECT id, slave_id FROM host WHERE hostname = ? AND port = ? FOR UPDATE",
            (addr.host.as_str(), addr.port),
        )
        .await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::internal(format!("host {addr} vanished after its insert")))?;
        let id: u32 = column(row, 0, "registering a host")?;
        let slave_id: Option<u32> = column(row, 1, "registering a host")?;
        if let Some(before) = known.get(addr) {
            if before.id != id || before.slave_id != slave_id {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("the host table changed while this ran ({addr}); run it again"),
                ));
            }
        }
        ids.insert(addr.clone(), id);
    }
    let id_of = |addr: &HostAddr| -> Result<u32> {
        ids.get(addr)
            .copied()
            .ok_or_else(|| Error::internal(format!("host {addr} was not registered")))
    };
    if opts.circular {
        for (me, sibling) in siblings {
            sql::exec(
                tx,
                master,
                limit,
                "pairing hosts",
                "UPDATE host SET slave_id = ? WHERE id = ?",
                (id_of(sibling)?, id_of(me)?),
            )
            .await?;
        }
    }
    let mut registered = Vec::new();
    for addr in &opts.hosts {
        registered.push(RegisteredHost {
            id: id_of(addr)?,
            addr: addr.clone(),
            sibling: siblings.get(addr).cloned(),
        });
    }

    let plan = plan_partitions(opts.hosts.len(), opts.parts_per);
    let mut partitions = Vec::with_capacity(plan.len());
    for p in &plan {
        let host = &opts.hosts[p.host];
        sql::exec(
            tx,
            master,
            limit,
            "inserting a partition",
            "INSERT INTO directory (bucket, `start`, `end`, host_id, db, datatable, created_at)
             VALUES (?, ?, ?, ?, ?, '', NOW())",
            (bucket, p.start, p.end, id_of(host)?, db),
        )
        .await?;
        let id = tx
            .last_insert_id()
            .ok_or_else(|| Error::internal("the partition insert returned no id"))?;
        let datatable = datatable_name(id);
        sql::exec(
            tx,
            master,
            limit,
            "naming a partition's datatable",
            "UPDATE directory SET datatable = ? WHERE id = ?",
            (datatable.as_str(), id),
        )
        .await?;
        partitions.push(CreatedPartition {
            id,
            start: p.start,
            end: p.end,
            host: host.clone(),
            sibling: siblings.get(host).cloned(),
            datatable,
        });
    }

    // The datatables, before the directory names them: over the hosts' own connections.
    writeln!(
        out,
        "creating {} datatables on their hosts and siblings ...",
        partitions.len()
    )?;
    let mut created_tables: Vec<String> = Vec::new();
    for p in &partitions {
        let ddl = datatable_ddl(db, &p.datatable);
        for target in std::iter::once(&p.host).chain(p.sibling.iter()) {
            let session = hosts
                .get_mut(target)
                .ok_or_else(|| Error::internal(format!("no connection to {target}")))?;
            if let Err(e) = session.run("creating a datatable", &ddl).await {
                let leftover = if created_tables.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (empty datatables left behind, unused by any directory row: {})",
                        created_tables.join(", ")
                    )
                };
                return Err(Error::new(
                    e.kind(),
                    format!("datatable `{db}`.`{}`: {e}{leftover}", p.datatable),
                ));
            }
            created_tables.push(format!("{}@{target}", p.datatable));
        }
        let copies = match &p.sibling {
            Some(s) => format!("{} and {s}", p.host),
            None => p.host.to_string(),
        };
        writeln!(
            out,
            "  {} [{:.6}, {:.6}] on {copies}",
            p.datatable, p.start, p.end
        )?;
        out.flush()?;
    }
    Ok((registered, partitions))
}

/// One line per paired host: `Ok` when it replicates from its sibling, a warning when not.
async fn check_replication(
    registered: &[RegisteredHost],
    hosts: &mut BTreeMap<HostAddr, Session>,
) -> Vec<std::result::Result<String, String>> {
    let mut lines = Vec::new();
    for host in registered {
        let Some(sibling) = &host.sibling else {
            continue;
        };
        let Some(session) = hosts.get_mut(&host.addr) else {
            continue;
        };
        match replica::default_slave(session).await {
            Err(e) => lines.push(Err(format!(
                "{}: cannot read its replication state: {e}",
                host.addr
            ))),
            Ok(None) => lines.push(Err(format!(
                "{} does not replicate from its sibling {sibling} (no replication configured): \
                 its partitions' copies there will not follow writes",
                host.addr
            ))),
            Ok(Some(r)) => {
                if r.master.as_ref() != Some(sibling) {
                    let from = r
                        .master
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "nobody".into());
                    lines.push(Err(format!(
                        "{} replicates from {from}, not from its sibling {sibling} (compared by name)",
                        host.addr
                    )));
                } else if !r.running() {
                    lines.push(Err(format!(
                        "{} replication from {sibling} is not running (IO {}, SQL {}){}",
                        host.addr,
                        r.io_running,
                        r.sql_running,
                        if r.last_error.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", r.last_error)
                        }
                    )));
                } else {
                    let lag = r
                        .seconds_behind
                        .map(|s| format!("{s} s behind"))
                        .unwrap_or_else(|| "lag unknown".into());
                    lines.push(Ok(format!(
                        "{} replicates from {sibling}: IO and SQL threads running, {lag}",
                        host.addr
                    )));
                }
            }
        }
    }
    lines
}

fn print_summary(c: &Created, master: &HostAddr, out: &mut dyn Write) -> Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "created bucket `{}` (hash {}) in schema `{}`; directory on {master}",
        c.bucket,
        HashKind::XxHash64,
        c.database
    )?;
    writeln!(out, "hosts:")?;
    let rows: Vec<Vec<String>> = c
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.id.to_string(),
                h.addr.to_string(),
                h.sibling
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    write_table(out, 2, &["id", "address", "sibling"], &rows)?;
    writeln!(out, "{} partitions:", c.partitions.len())?;
    write_partitions(
        out,
        c.partitions.iter().map(|p| PartitionLine {
            id: p.id,
            start: p.start,
            end: p.end,
            host: p.host.to_string(),
            sibling: p.sibling.as_ref().map(|s| s.to_string()),
            table: p.datatable.clone(),
        }),
    )?;
    writeln!(out, "directory version: {}", c.version)?;
    if !c.warnings.is_empty() {
        writeln!(out, "{} warnings (see above)", c.warnings.len())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CreateOptions {
        CreateOptions {
            master: HostAddr::parse("127.0.0.1:3306").unwrap(),
            database: "thrudoc".into(),
            root: Login {
                user: "root".into(),
                password: Secret::default(),
                connect_timeout: Duration::from_secs(5),
                query_timeout: Duration::from_secs(30),
            },
            tablename: "data".into(),
            hosts: HostAddr::parse_list("a:1,b:2,c:3,d:4").unwrap(),
            parts_per: 3,
            circular: true,
            service_user: "thrudoc".into(),
            service_password: Secret::new("pw"),
        }
    }

    #[test]
    fn partitions_cover_the_unit_interval_round_robin() {
        let plan = plan_partitions(4, 3);
        assert_eq!(plan.len(), 12);
        assert_eq!(plan[0].start, 0.0);
        assert_eq!(plan[11].end, 1.0);
        for (i, w) in plan.windows(2).enumerate() {
            assert_eq!(w[0].end.to_bits(), w[1].start.to_bits(), "gap after {i}");
            assert_ne!(w[0].host, w[1].host, "neighbours {i} share a host");
        }
        for host in 0..4 {
            assert_eq!(plan.iter().filter(|p| p.host == host).count(), 3);
        }
        assert_eq!(
            plan_partitions(1, 1),
            vec![PlannedPartition {
                start: 0.0,
                end: 1.0,
                host: 0
            }]
        );
        let big = plan_partitions(3, 1000);
        assert_eq!(big.last().map(|p| p.end), Some(1.0));
    }

    #[test]
    fn validation_refuses_bad_flags() {
        assert!(options().validate().is_ok());
        let cases: Vec<(CreateOptions, &str)> = vec![
            (
                CreateOptions {
                    tablename: "x;drop".into(),
                    ..options()
                },
                "--tablename",
            ),
            (
                CreateOptions {
                    database: "a-b".into(),
                    ..options()
                },
                "--database",
            ),
            (
                CreateOptions {
                    parts_per: 0,
                    ..options()
                },
                "--parts-per",
            ),
            (
                CreateOptions {
                    parts_per: 1001,
                    ..options()
                },
                "--parts-per",
            ),
            (
                CreateOptions {
                    hosts: HostAddr::parse_list("a,b,c").unwrap(),
                    ..options()
                },
                "even number",
            ),
            (
                CreateOptions {
                    service_user: "a'b".into(),
                    ..options()
                },
                "--user",
            ),
            (
                CreateOptions {
                    service_user: "root".into(),
                    ..options()
                },
                "root",
            ),
            (
                CreateOptions {
                    hosts: vec![],
                    ..options()
                },
                "no host",
            ),
        ];
        for (opts, needle) in cases {
            let e = opts.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains(needle), "{needle}: {e}");
        }
        let odd_without_pairs = CreateOptions {
            hosts: HostAddr::parse_list("a,b,c").unwrap(),
            circular: false,
            ..options()
        };
        assert!(odd_without_pairs.validate().is_ok());
    }

    #[test]
    fn options_never_show_passwords() {
        let opts = CreateOptions {
            service_password: Secret::new("hunter2-service"),
            root: Login {
                password: Secret::new("hunter2-root"),
                ..options().root
            },
            ..options()
        };
        let text = format!("{opts:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
