//! `thrudoc-admin status`: the hosts of the directory, whether each answers, how each
//! replicates, and how many partitions each holds.
//!
//! Hosts are probed at once, each under one overall deadline (connect, `@@server_id`, its GTID
//! positions, `SHOW ALL SLAVES STATUS`), so a hung host (SIGSTOP, black hole) shows as
//! unreachable after the probe timeout instead of holding the report up. Hosts being down is
//! what this command reports, not a failure of it: it fails only when the directory itself
//! cannot be read (from the master, nor, with `--slave-hostname`, from its sibling).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use tokio::task::JoinSet;

use super::list::load_directory_or_sibling;
use super::replica::{self, SlaveStatus};
use super::sql::Login;
use super::table::write_table;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{GtidPos, HostAddr};
use crate::store::mysql::directory::Directory;

/// What `status` is asked to look at.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub master: HostAddr,
    /// Read when `master` cannot be reached.
    pub sibling: Option<HostAddr>,
    pub database: String,
    pub root: Login,
    /// Overall deadline of one host's probe.
    pub probe_timeout: Duration,
}

/// What a probe found out about one host.
#[derive(Debug, Clone)]
pub enum Probe {
    /// It answered.
    Up(Box<Answered>),
    /// It did not answer, with why.
    Down(String),
}

/// What a host that answered said.
#[derive(Debug, Clone)]
pub struct Answered {
    /// Its default replication connection (what `SHOW SLAVE STATUS` shows); `None` when it has
    /// none.
    pub replication: Option<SlaveStatus>,
    /// The GTIDs it originated, as its binary log holds them: the last known position of its
    /// writes as a master.
    pub written: GtidPos,
    /// What it has applied as a slave (`gtid_slave_pos`): how far it has its sibling's writes.
    pub applied: GtidPos,
}

/// The status of every host, by host id.
#[derive(Debug)]
pub struct Report {
    pub directory: Directory,
    pub probes: BTreeMap<u32, Probe>,
}

/// Probes `addr`: connect, `SELECT 1`, replication state, each step within `limit`.
pub async fn probe(root: &Login, addr: &HostAddr, limit: Duration) -> Probe {
    let login = Login {
        connect_timeout: limit,
        query_timeout: limit,
        ..root.clone()
    };
    let attempt = async {
        let mut session = login.connect(addr, None).await?;
        let server_id = replica::server_id(&mut session).await?;
        let written = replica::binlog_pos(&mut session)
            .await?
            .of_server(server_id);
        let applied = replica::slave_pos(&mut session)
            .await?
            .without_server(server_id);
        let replication = replica::default_slave(&mut session).await?;
        session.close().await;
        Ok::<_, Error>(Answered {
            replication,
            written,
            applied,
        })
    };
    match attempt.await {
        Ok(answered) => Probe::Up(Box::new(answered)),
        Err(e) => Probe::Down(e.to_string()),
    }
}

/// Prints the status report to `out`.
pub async fn run(opts: &StatusOptions, out: &mut dyn Write) -> Result<Report> {
    let directory = load_directory_or_sibling(
        &opts.root,
        &opts.master,
        opts.sibling.as_ref(),
        &opts.database,
        out,
    )
    .await?;
    let mut probes = JoinSet::new();
    for host in directory.hosts.values() {
        let (id, root, limit) = (host.id, opts.root.clone(), opts.probe_timeout);
        let addr = HostAddr {
            host: host.hostname.clone(),
            port: host.port,
        };
        probes.spawn(async move { (id, probe(&root, &addr, limit).await) });
    }
    let mut results = BTreeMap::new();
    while let Some(joined) = probes.join_next().await {
        let (id, probe) = joined
            .map_err(|e| Error::new(ErrorKind::Internal, "a host probe failed").with_source(e))?;
        results.insert(id, probe);
    }
    let report = Report {
        directory,
        probes: results,
    };
    print(&report, opts, out)?;
    Ok(report)
}

fn print(report: &Report, opts: &StatusOptions, out: &mut dyn Write) -> Result<()> {
    let dir = &report.directory;
    writeln!(
        out,
        "directory on {} schema `{}`: version {}, {} hosts, {} buckets ({} invalid)",
        opts.master,
        opts.database,
        dir.version,
        dir.hosts.len(),
        dir.buckets.len() + dir.invalid.len(),
        dir.invalid.len()
    )?;
    let mut partitions: BTreeMap<u32, usize> = BTreeMap::new();
    for bucket in dir.buckets.values() {
        for p in &bucket.partitions {
            *partitions.entry(p.host_id).or_default() += 1;
        }
    }
    let address = |id: u32| {
        dir.hosts
            .get(&id)
            .map(|h| h.address().to_string())
            .unwrap_or_else(|| format!("unknown host {id}"))
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for host in dir.hosts.values() {
        let sibling = host.slave_id.map(address);
        let mut row = vec![
            host.id.to_string(),
            host.address().to_string(),
            sibling.clone().unwrap_or_else(|| "-".into()),
        ];
        match report.probes.get(&host.id) {
            Some(Probe::Up(a)) => {
                match &a.replication {
                    Some(r) => {
                        let from = r
                            .master
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| "?".into());
                        if let Some(s) = &sibling {
                            if *s != from {
                                notes.push(format!(
                                    "host {} ({}) replicates from {from}, not from its sibling {s}",
                                    host.id,
                                    host.address()
                                ));
                            }
                        }
                        if !r.last_error.is_empty() {
                            notes.push(format!(
                                "host {} ({}) replication error: {}",
                                host.id,
                                host.address(),
                                r.last_error
                            ));
                        }
                        row.extend([
                            "up".into(),
                            from,
                            r.io_running.clone(),
                            r.sql_running.clone(),
                            r.seconds_behind
                                .map(|s| format!("{s}s"))
                                .unwrap_or_else(|| "-".into()),
                        ]);
                    }
                    None => {
                        if let Some(s) = &sibling {
                            notes.push(format!(
                                "host {} ({}) does not replicate from its sibling {s}",
                                host.id,
                                host.address()
                            ));
                        }
                        row.extend(["up", "-", "-", "-", "-"].map(String::from));
                    }
                }
                row.extend([a.written.to_string(), a.applied.to_string()]);
            }
            Some(Probe::Down(why)) => {
                notes.push(format!(
                    "host {} ({}) is unreachable: {why}",
                    host.id,
                    host.address()
                ));
                row.extend(["DOWN", "?", "?", "?", "?", "?", "?"].map(String::from));
            }
            None => row.extend(["?"; 7].map(String::from)),
        }
        row.push(partitions.get(&host.id).copied().unwrap_or(0).to_string());
        rows.push(row);
    }
    if rows.is_empty() {
        writeln!(out, "no hosts")?;
    } else {
        write_table(
            out,
            0,
            &[
                "id",
                "address",
                "sibling",
                "state",
                "replicates from",
                "io",
                "sql",
                "lag",
                "written",
                "applied",
                "partitions",
            ],
            &rows,
        )?;
    }
    for note in &notes {
        writeln!(out, "warning: {note}")?;
    }
    for (name, why) in &dir.invalid {
        writeln!(
            out,
            "warning: bucket `{name}` is invalid and not served: {why}"
        )?;
    }
    let down = report
        .probes
        .values()
        .filter(|p| matches!(p, Probe::Down(_)))
        .count();
    writeln!(
        out,
        "{} of {} hosts up",
        report.probes.len() - down,
        report.probes.len()
    )?;
    out.flush()?;
    Ok(())
}
