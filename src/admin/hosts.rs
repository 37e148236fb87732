//! `thrudoc-admin add-hosts` and `remove-hosts`: data hosts joining and leaving the directory,
//! to grow the backend (then `rebalance`) or shrink it (after `drain`).
//!
//! `add-hosts` prepares each host as `create-tablename` does (schema, service account), registers
//! it and, with `--with-circular-slaves`, pairs the hosts in the order given; it checks and
//! reports each pair's replication, which the operator sets up. `remove-hosts` takes hosts out of
//! the host table once no partition (live, retired or being made) is on them.

use std::collections::BTreeMap;
use std::io::Write;

use super::create::hosts::{
    check_replication, known_host, plan_siblings, prepare_host, register_hosts,
};
use super::create::{check_user_name, HostSetup, KnownHost, RegisteredHost};
use super::dirtx::{self, IfLost, Tx};
use super::moves::ensure_tables;
use super::progress::Progress;
use super::sql::{column, Login, Query, Session};
use super::table::write_hosts;
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::rules::check_sql_name;

/// What `add-hosts` is asked to do.
#[derive(Debug, Clone)]
pub struct AddHostsOptions {
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    pub hosts: Vec<HostAddr>,
    pub circular: bool,
    pub service_user: String,
    pub service_password: Secret,
}

/// What `remove-hosts` is asked to do.
#[derive(Debug, Clone)]
pub struct RemoveHostsOptions {
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    pub hosts: Vec<HostAddr>,
}

const IF_LOST: IfLost<'static> = IfLost {
    may_be: "the hosts may or may not be registered",
    look: "look with `thrudoc-admin status` and run it again (it is safe to repeat)",
};

/// Prepares, registers and pairs the hosts. Their directory ids.
pub async fn add(opts: &AddHostsOptions, out: &mut dyn Write) -> Result<Vec<RegisteredHost>> {
    check_sql_name("--database", &opts.database)?;
    check_user_name(&opts.service_user)?;
    if opts.hosts.is_empty() {
        return Err(Error::invalid("--hosts names no host"));
    }
    if opts.circular && opts.hosts.len() % 2 != 0 {
        return Err(Error::invalid(format!(
            "--with-circular-slaves pairs the hosts in the order given (1<->2, 3<->4, ...), so it \
             needs an even number of hosts; --hosts names {}",
            opts.hosts.len()
        )));
    }
    let setup = HostSetup {
        database: &opts.database,
        hosts: &opts.hosts,
        circular: opts.circular,
        service_user: &opts.service_user,
        service_password: &opts.service_password,
    };
    let mut progress = Progress::new(out, false);
    let p = &mut progress;
    p.say(format_args!(
        "connecting to the directory master {} ...",
        opts.master
    ))?;
    let mut dir = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dir, &opts.database).await?;
    let mut sessions: BTreeMap<HostAddr, Session> = BTreeMap::new();
    for addr in &opts.hosts {
        p.say(format_args!("connecting to {addr} ..."))?;
        sessions.insert(addr.clone(), opts.root.connect(addr, None).await?);
    }
    let mut known: BTreeMap<HostAddr, KnownHost> = BTreeMap::new();
    for addr in &opts.hosts {
        if let Some(h) = known_host(&mut dir, addr).await? {
            known.insert(addr.clone(), h);
        }
    }
    let siblings = plan_siblings(&setup, &mut dir, &known).await?;
    p.say(format_args!(
        "creating schema `{}` and service account '{}'@'%' on each ...",
        opts.database, opts.service_user
    ))?;
    for (addr, s) in sessions.iter_mut() {
        prepare_host(s, &setup).await?;
        p.say(format_args!("  {addr}: ready"))?;
    }
    let written = dirtx::change(&mut dir, IF_LOST, async |tx: &mut Tx<'_>| {
        register_hosts(tx, &setup, &known, &siblings)
            .await
            .map(Some)
    })
    .await?;
    let Some((ids, version)) = written else {
        return Err(Error::internal("registering the hosts wrote nothing"));
    };
    let registered: Vec<RegisteredHost> = opts
        .hosts
        .iter()
        .filter_map(|a| {
            Some(RegisteredHost {
                id: *ids.get(a)?,
                addr: a.clone(),
                sibling: siblings.get(a).cloned(),
            })
        })
        .collect();
    p.say(format_args!("registered (directory version {version}):"))?;
    write_hosts(p.out()?, &registered)?;
    p.say("checking replication ...")?;
    for line in check_replication(&registered, &mut sessions).await {
        match line {
            Ok(fine) => p.say(format_args!("  {fine}"))?,
            Err(w) => p.warn(w)?,
        }
    }
    for h in &registered {
        if h.sibling.is_none() {
            p.warn(format!(
                "{} has no sibling: `rebalance` and `move` use only hosts with one",
                h.addr
            ))?;
        }
    }
    dir.close().await;
    for (_, s) in sessions {
        s.close().await;
    }
    p.say(format_args!(
        "next: `thrudoc-admin rebalance --tablename BUCKET` plans moving rows onto them"
    ))?;
    Ok(registered)
}

/// Takes hosts out of the directory once nothing is on them; a host whose sibling stays is
/// unpaired (the sibling's `slave_id` cleared). The ids removed.
pub async fn remove(opts: &RemoveHostsOptions, out: &mut dyn Write) -> Result<Vec<u32>> {
    check_sql_name("--database", &opts.database)?;
    if opts.hosts.is_empty() {
        return Err(Error::invalid("--hosts names no host"));
    }
    let mut dir = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dir, &opts.database).await?;
    let mut ids = Vec::new();
    for addr in &opts.hosts {
        let Some(h) = known_host(&mut dir, addr).await? else {
            return Err(Error::invalid(format!(
                "the directory has no host {addr}; nothing was changed"
            )));
        };
        ids.push(h.id);
    }
    let list = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let removed =
        dirtx::change(&mut dir, IF_LOST, async |tx: &mut Tx<'_>| {
            let rows = tx
                .rows(
                    "looking for partitions on the hosts",
                    &format!(
                        "SELECT d.id, d.bucket, d.retired_at IS NULL FROM directory d
                     WHERE d.host_id IN ({list}) ORDER BY d.id LIMIT 10 FOR UPDATE"
                    ),
                    (),
                )
                .await?;
            if let Some(row) = rows.first() {
                let id: u64 = column(row, 0, "looking for partitions on the hosts")?;
                let bucket: String = column(row, 1, "looking for partitions on the hosts")?;
                let live: i64 = column(row, 2, "looking for partitions on the hosts")?;
                return Err(Error::invalid(format!(
                "partition {id} of bucket `{bucket}` is on one of these hosts ({}): {}; nothing \
                 was changed",
                if live == 1 { "live" } else { "retired, or a target being made" },
                if live == 1 {
                    "move it off first (`thrudoc-admin drain --host ...`)"
                } else {
                    "drop it first (`thrudoc-admin gc`)"
                }
            )));
            }
            tx.exec(
                "unpairing the hosts' siblings",
                &format!("UPDATE host SET slave_id = NULL WHERE slave_id IN ({list})"),
                (),
            )
            .await?;
            tx.exec(
                "removing the hosts",
                &format!("DELETE FROM host WHERE id IN ({list})"),
                (),
            )
            .await?;
            Ok(Some(()))
        })
        .await?;
    let version = removed.map(|(_, v)| v).unwrap_or_default();
    for addr in &opts.hosts {
        writeln!(out, "removed {addr}")?;
    }
    writeln!(out, "directory version {version}")?;
    dir.close().await;
    Ok(ids)
}
