//! The data hosts of `create-tablename`: what the directory knows of them, their pairing,
//! their schema and service account, and their replication.

use std::collections::BTreeMap;

use super::{HostSetup, KnownHost, RegisteredHost, MONITOR_GRANT, SERVICE_GRANTS};
use crate::admin::dirtx::Tx;
use crate::admin::replica;
use crate::admin::sql::{column, quote_ident, quote_literal, Query, Session};
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::mysql::{server_code, HostAddr};

pub(crate) async fn known_host(dir: &mut Session, addr: &HostAddr) -> Result<Option<KnownHost>> {
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
pub(crate) async fn plan_siblings(
    opts: &HostSetup<'_>,
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
        for addr in opts.hosts {
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
pub(crate) async fn prepare_host(session: &mut Session, opts: &HostSetup<'_>) -> Result<()> {
    let db = quote_ident(opts.database);
    let sql_mode: Option<String> = session
        .first("reading sql_mode", "SELECT @@SESSION.sql_mode", ())
        .await?;
    let no_backslash = sql_mode
        .unwrap_or_default()
        .contains("NO_BACKSLASH_ESCAPES");
    let user = format!("{}@'%'", quote_literal(opts.service_user, no_backslash));
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
                    "creating the service account on {}: MySQL error {code}",
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
    session
        .run(
            "granting the service account SLAVE MONITOR",
            &format!("GRANT {MONITOR_GRANT} ON *.* TO {user}"),
        )
        .await?;
    Ok(())
}

/// One line per paired host: `Ok` when it replicates from its sibling, a warning when not.
pub(crate) async fn check_replication(
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

/// Registers every host of `setup` and every sibling in `siblings` in the host table (ids of
/// hosts already there are kept) and, with `circular`, records the pairing. Refuses when the
/// host table changed since `known` was read. Each address's id.
pub(crate) async fn register_hosts(
    tx: &mut Tx<'_>,
    setup: &HostSetup<'_>,
    known: &BTreeMap<HostAddr, KnownHost>,
    siblings: &BTreeMap<HostAddr, HostAddr>,
) -> Result<BTreeMap<HostAddr, u32>> {
    let mut ids: BTreeMap<HostAddr, u32> = BTreeMap::new();
    // In the order given, so that ids follow it; then siblings from earlier pairings.
    let mut all: Vec<&HostAddr> = setup.hosts.iter().collect();
    for sibling in siblings.values() {
        if !all.contains(&sibling) {
            all.push(sibling);
        }
    }
    for addr in all {
        tx.exec("registering a host",
            "INSERT INTO host (hostname, port) VALUES (?, ?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
            (addr.host.as_str(), addr.port),
        )
        .await?;
        let rows = tx
            .rows(
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
    if setup.circular {
        for (me, sibling) in siblings {
            let (Some(me), Some(sibling)) = (ids.get(me), ids.get(sibling)) else {
                return Err(Error::internal("a paired host was not registered"));
            };
            tx.exec(
                "pairing hosts",
                "UPDATE host SET slave_id = ? WHERE id = ?",
                (*sibling, *me),
            )
            .await?;
        }
    }
    Ok(ids)
}
