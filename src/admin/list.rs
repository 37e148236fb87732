//! `thrudoc-admin list`: the buckets of the directory, and one bucket's partitions.
//!
//! It reads the directory exactly as a server does ([`Directory::load`]), so what it shows as
//! invalid is what a server would refuse to serve, with the same reason.

use std::io::Write;

use super::reshape::record;
use super::sql::Login;
use super::table::{write_partitions, write_table, PartitionLine};
use crate::error::Result;
use crate::mysql::{master_else_sibling, Access, Failure, HostAddr};
use crate::store::mysql::directory::Directory;

/// What `list` is asked to show.
#[derive(Debug, Clone)]
pub struct ListOptions {
    pub master: HostAddr,
    /// Read when `master` cannot be reached.
    pub sibling: Option<HostAddr>,
    pub database: String,
    pub root: Login,
    /// Show this bucket's partitions too.
    pub tablename: Option<String>,
}

/// Loads the directory from `db` on `master`, under the login's deadlines.
pub async fn load_directory(root: &Login, master: &HostAddr, db: &str) -> Result<Directory> {
    let mut session = root.connect(master, Some(db)).await?;
    let what = format!("loading the directory from schema `{db}` on {master}");
    let loaded = crate::mysql::deadline(
        root.query_timeout,
        Access::Read,
        &what,
        Failure::for_operator,
        async { Ok(Directory::load(&mut session.conn).await) },
    )
    .await?;
    session.close().await;
    loaded.map_err(|e| e.context(what))
}

/// Loads the directory from `master`, or from `sibling` when the master cannot be reached (a
/// connection failure or no answer: an answer that is an invalid directory is not retried), as
/// a server does; a line on `out` says so. Only for reading: a change must go to the master.
pub async fn load_directory_or_sibling(
    root: &Login,
    master: &HostAddr,
    sibling: Option<&HostAddr>,
    db: &str,
    out: &mut dyn Write,
) -> Result<Directory> {
    let got = master_else_sibling(
        "loading the directory",
        master,
        sibling,
        |addr| async move { load_directory(root, &addr, db).await },
    )
    .await?;
    if let (Some(e), Some(sibling)) = (&got.master_failure, sibling) {
        writeln!(
            out,
            "note: the directory master did not answer ({e}); this is the directory as \
             its sibling {sibling} has it"
        )?;
    }
    Ok(got.value)
}

/// Prints the directory's buckets (and with `tablename`, that bucket's partitions) to `out`.
pub async fn run(opts: &ListOptions, out: &mut dyn Write) -> Result<Directory> {
    let dir = load_directory_or_sibling(
        &opts.root,
        &opts.master,
        opts.sibling.as_ref(),
        &opts.database,
        out,
    )
    .await?;
    print(&dir, opts, out)?;
    print_reshapes(opts, out).await?;
    if let Some(name) = &opts.tablename {
        // Shown above; the exit status says it too.
        dir.bucket(name)?;
    }
    Ok(dir)
}

/// The moves, splits and merges in progress (of `--tablename`'s bucket, when given), read from
/// the directory master; nothing when it does not answer or predates them.
async fn print_reshapes(opts: &ListOptions, out: &mut dyn Write) -> Result<()> {
    let Ok(mut s) = opts.root.connect(&opts.master, Some(&opts.database)).await else {
        return Ok(());
    };
    let ids = record::unfinished(&mut s).await.unwrap_or_default();
    for id in ids {
        let Ok(r) = record::load(&mut s, id).await else {
            continue;
        };
        if opts.tablename.as_ref().is_some_and(|t| *t != r.bucket) {
            continue;
        }
        writeln!(
            out,
            "in progress: {} ({}): run its command again to finish it, or with --abort to undo it",
            r.describe(),
            r.state
        )?;
    }
    s.close().await;
    Ok(())
}

fn address(dir: &Directory, host_id: u32) -> String {
    dir.hosts
        .get(&host_id)
        .map(|h| h.address().to_string())
        .unwrap_or_else(|| format!("unknown host {host_id}"))
}

fn sibling(dir: &Directory, host_id: u32) -> Option<String> {
    dir.hosts
        .get(&host_id)
        .and_then(|h| h.slave_id)
        .map(|s| address(dir, s))
}

fn print(dir: &Directory, opts: &ListOptions, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "directory on {} schema `{}`: version {}, {} hosts, {} buckets",
        opts.master,
        opts.database,
        dir.version,
        dir.hosts.len(),
        dir.buckets.len() + dir.invalid.len()
    )?;
    let mut rows: Vec<Vec<String>> = dir
        .buckets
        .values()
        .map(|b| {
            vec![
                b.name.clone(),
                b.hash.to_string(),
                b.partitions.len().to_string(),
                "ok".into(),
            ]
        })
        .collect();
    rows.extend(dir.invalid.iter().map(|(name, why)| {
        vec![
            name.clone(),
            "-".into(),
            "-".into(),
            format!("INVALID: {why}"),
        ]
    }));
    rows.sort();
    if rows.is_empty() {
        writeln!(out, "no buckets")?;
    } else {
        write_table(out, 0, &["bucket", "hash", "partitions", "state"], &rows)?;
    }
    let Some(name) = &opts.tablename else {
        return Ok(());
    };
    writeln!(out)?;
    match (dir.buckets.get(name), dir.invalid.get(name)) {
        (Some(b), _) => {
            writeln!(
                out,
                "bucket `{name}` (hash {}), {} partitions:",
                b.hash,
                b.partitions.len()
            )?;
            write_partitions(
                out,
                b.partitions.iter().map(|p| PartitionLine {
                    id: p.id,
                    start: p.start,
                    end: p.end,
                    host: address(dir, p.host_id),
                    sibling: sibling(dir, p.host_id),
                    table: format!("{}.{}", p.db, p.datatable),
                }),
            )?;
        }
        (None, Some(why)) => writeln!(out, "bucket `{name}` is invalid and not served: {why}")?,
        (None, None) => writeln!(out, "no bucket `{name}`")?,
    }
    out.flush()?;
    Ok(())
}
