//! `thrudoc-admin rebalance` and `drain`: plans of splits and moves that even out a bucket's
//! rows over hosts, and carrying them out one reshape at a time.
//!
//! The plan is made by [`super::plan`].
//!
//! **Carrying it out.** One step at a time, each a reshape of its own; after each, the plan is
//! made again from the directory and fresh row counts. So `rebalance --execute` killed at any
//! point carries on when run again: the reshape it was in resumes, and the rest is planned anew.

use std::collections::BTreeMap;
use std::io::Write;

use super::commands::{self, Request};
use super::plan::{loads, plan, too_many, Goal, Load, Step, MAX_STEPS};
use super::record::Part;
use super::ReshapeOptions;
use crate::admin::list::load_directory;
use crate::admin::moves::ensure_tables;
use crate::admin::sql::{Query, Session};
use crate::admin::table::write_table;
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::store::mysql::directory::Directory;

/// What `rebalance` (or `drain`) is asked to do.
#[derive(Debug, Clone)]
pub struct RebalanceOptions {
    pub reshape: ReshapeOptions,
    /// The bucket; `None` for `drain`, which works on every bucket with a partition on the pair.
    pub bucket: Option<String>,
    /// The hosts to spread over (`rebalance --hosts`; default every host with a sibling).
    pub hosts: Option<Vec<HostAddr>>,
    /// `drain --host`: this host and its sibling are emptied.
    pub drain: Option<HostAddr>,
    pub max_rows: Option<u64>,
    pub tolerance: f64,
    pub execute: bool,
}

/// Plans (and with `execute`, carries out) the steps for every bucket concerned. The steps
/// taken.
pub async fn run(opts: &RebalanceOptions, out: &mut dyn Write) -> Result<usize> {
    let ro = &opts.reshape;
    let mut taken = 0;
    let mut first = true;
    loop {
        let dir = load_directory(&ro.root, &ro.master, &ro.database).await?;
        let mut dirs = ro.root.connect(&ro.master, Some(&ro.database)).await?;
        ensure_tables(&mut dirs, &ro.database).await?;
        // A reshape in progress on these buckets is finished first.
        let in_progress = super::record::unfinished(&mut dirs).await?;
        dirs.close().await;
        if let Some(&id) = in_progress.first() {
            if opts.execute {
                writeln!(out, "finishing reshape {id}, which is in progress ...")?;
                super::run::drive(ro, id, out).await?;
                continue;
            }
            writeln!(
                out,
                "note: reshape {id} is in progress; --execute finishes it before anything else"
            )?;
        }
        let hosts = goal_hosts(&dir, opts)?;
        let buckets: Vec<String> = match &opts.bucket {
            Some(b) => {
                dir.bucket(b)?;
                vec![b.clone()]
            }
            None => dir
                .buckets
                .iter()
                .filter(|(_, b)| b.partitions.iter().any(|p| !hosts.contains(&p.host_id)))
                .map(|(name, _)| name.clone())
                .collect(),
        };
        let goal = Goal {
            hosts: hosts.clone(),
            max_rows: opts.max_rows,
            tolerance: opts.tolerance,
        };
        let mut next: Option<(String, Step)> = None;
        for bucket in &buckets {
            let parts = bucket_loads(ro, &dir, bucket).await?;
            let steps = plan(parts.clone(), &goal)?;
            if first {
                print_plan(&dir, bucket, &parts, &steps, &hosts, out)?;
            }
            if next.is_none() {
                if let Some(step) = steps.into_iter().next() {
                    next = Some((bucket.clone(), step));
                }
            }
        }
        first = false;
        let Some((bucket, step)) = next else {
            if taken == 0 {
                writeln!(out, "nothing to do: every bucket is balanced")?;
                return Ok(0);
            }
            writeln!(out)?;
            writeln!(out, "balanced after {taken} steps:")?;
            for bucket in &buckets {
                let parts = bucket_loads(ro, &dir, bucket).await?;
                let rows: Vec<Vec<String>> = loads(&parts, &hosts)
                    .iter()
                    .map(|(h, l)| vec![bucket.clone(), host_name(&dir, *h), l.to_string()])
                    .collect();
                write_table(out, 2, &["bucket", "host", "rows"], &rows)?;
            }
            return Ok(taken);
        };
        if !opts.execute {
            writeln!(out, "(a plan only: run with --execute to carry it out)")?;
            return Ok(0);
        }
        taken += 1;
        writeln!(out)?;
        writeln!(out, "step {taken}: {}", describe(&dir, &bucket, &step))?;
        let req = request(ro, &dir, &bucket, &step).await?;
        commands::run(ro, &req, out).await?;
        if taken > MAX_STEPS {
            return Err(too_many());
        }
    }
}

/// The hosts the goal spreads over, as directory ids.
fn goal_hosts(dir: &Directory, opts: &RebalanceOptions) -> Result<Vec<u32>> {
    let id_of = |addr: &HostAddr| -> Result<u32> {
        dir.hosts
            .values()
            .find(|h| h.address() == *addr)
            .map(|h| h.id)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "the directory has no host {addr}: register it with `thrudoc-admin \
                     add-hosts`"
                ))
            })
    };
    let mut hosts: Vec<u32> = match &opts.hosts {
        Some(list) => list.iter().map(id_of).collect::<Result<_>>()?,
        None => dir
            .hosts
            .values()
            .filter(|h| h.slave_id.is_some())
            .map(|h| h.id)
            .collect(),
    };
    if let Some(drained) = &opts.drain {
        let h = id_of(drained)?;
        let sibling = dir.hosts.get(&h).and_then(|h| h.slave_id);
        hosts.retain(|&x| x != h && Some(x) != sibling);
    }
    if hosts.is_empty() {
        return Err(Error::invalid(
            "no host is left to hold the partitions (hosts need a sibling to be used; \
             register more with `thrudoc-admin add-hosts`)",
        ));
    }
    hosts.sort_unstable();
    Ok(hosts)
}

/// Each live partition of `bucket` with its row count (counted on its master).
async fn bucket_loads(ro: &ReshapeOptions, dir: &Directory, bucket: &str) -> Result<Vec<Load>> {
    let b = dir.bucket(bucket)?;
    let mut sessions: BTreeMap<HostAddr, Session> = BTreeMap::new();
    let mut loads = Vec::new();
    for p in &b.partitions {
        let host = dir
            .hosts
            .get(&p.host_id)
            .ok_or_else(|| Error::internal(format!("partition {} on unknown host", p.id)))?;
        let addr = host.address();
        if !sessions.contains_key(&addr) {
            sessions.insert(addr.clone(), ro.root.connect(&addr, None).await?);
        }
        let s = sessions.get_mut(&addr).expect("just opened");
        let rows: Option<u64> = s
            .first(
                "counting a partition's rows",
                &format!("SELECT COUNT(*) FROM {}", p.table_sql),
                (),
            )
            .await?;
        loads.push(Load {
            label: p.id.to_string(),
            id: Some(p.id),
            start: p.start,
            end: p.end,
            host: p.host_id,
            rows: rows.unwrap_or(0),
        });
    }
    for (_, s) in sessions {
        s.close().await;
    }
    Ok(loads)
}

fn host_name(dir: &Directory, id: u32) -> String {
    dir.hosts
        .get(&id)
        .map(|h| h.address().to_string())
        .unwrap_or_else(|| format!("host {id}"))
}

fn describe(dir: &Directory, bucket: &str, step: &Step) -> String {
    match step {
        Step::Split {
            label,
            at,
            to: None,
            ..
        } => format!("split partition {label} of `{bucket}` at {at:.6}"),
        Step::Split {
            label,
            at,
            to: Some(to),
            ..
        } => format!(
            "split partition {label} of `{bucket}` at {at:.6}, the upper part to {}",
            host_name(dir, *to)
        ),
        Step::Move { label, to, .. } => format!(
            "move partition {label} of `{bucket}` to {}",
            host_name(dir, *to)
        ),
    }
}

/// The reshape that carries out `step` (whose partition is live).
async fn request(
    ro: &ReshapeOptions,
    dir: &Directory,
    bucket: &str,
    step: &Step,
) -> Result<Request> {
    let id = step
        .partition()
        .ok_or_else(|| Error::internal("the first step of a plan starts from a planned half"))?;
    Ok(match step {
        Step::Move { to, .. } => Request::Move {
            bucket: bucket.to_string(),
            partition: id,
            to: addr_of(dir, *to)?,
        },
        Step::Split {
            to,
            at,
            rows,
            upper_rows,
            ..
        } => {
            // Cut where the upper part holds its planned share of the real rows.
            let at = match to {
                None => None,
                Some(_) => Some(real_cut(ro, dir, bucket, id, *at, *rows, *upper_rows).await?),
            };
            Request::Split {
                bucket: bucket.to_string(),
                partition: id,
                at,
                to: to.map(|h| addr_of(dir, h)).transpose()?,
            }
        }
    })
}

fn addr_of(dir: &Directory, host: u32) -> Result<HostAddr> {
    dir.hosts
        .get(&host)
        .map(|h| h.address())
        .ok_or_else(|| Error::internal(format!("no host {host}")))
}

/// The point of partition `id` above which `upper_rows` of its `rows` lie, from its keys;
/// `planned` when it has none.
async fn real_cut(
    ro: &ReshapeOptions,
    dir: &Directory,
    bucket: &str,
    id: u64,
    planned: f64,
    rows: u64,
    upper_rows: u64,
) -> Result<f64> {
    let b = dir.bucket(bucket)?;
    let Some(p) = b.partitions.iter().find(|p| p.id == id) else {
        return Ok(planned);
    };
    let host = dir
        .hosts
        .get(&p.host_id)
        .ok_or_else(|| Error::internal("partition on an unknown host"))?;
    let part = Part {
        id: p.id,
        start: p.start,
        end: p.end,
        host: host.clone(),
        sibling: None,
        db: p.db.clone(),
        datatable: p.datatable.clone(),
    };
    if rows == 0 || upper_rows == 0 {
        return Ok(planned);
    }
    let fraction = 1.0 - upper_rows as f64 / rows as f64;
    super::commands::quantile_point(ro, &part, b.hash, fraction)
        .await
        .map(|q| if q > p.start && q < p.end { q } else { planned })
}

/// The plan as a table: partition, rows, from, to, step.
fn print_plan(
    dir: &Directory,
    bucket: &str,
    parts: &[Load],
    steps: &[Step],
    hosts: &[u32],
    out: &mut dyn Write,
) -> Result<()> {
    let total: u64 = parts.iter().map(|p| p.rows).sum();
    let before = loads(parts, hosts);
    writeln!(
        out,
        "bucket `{bucket}`: {} partitions, {total} rows; even share over {} hosts: {:.0} rows each",
        parts.len(),
        hosts.len(),
        total as f64 / hosts.len().max(1) as f64
    )?;
    let rows: Vec<Vec<String>> = before
        .iter()
        .map(|(h, l)| vec![host_name(dir, *h), l.to_string()])
        .collect();
    write_table(out, 2, &["host", "rows now"], &rows)?;
    if steps.is_empty() {
        writeln!(out, "  balanced: no step")?;
        return Ok(());
    }
    let lines: Vec<Vec<String>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Step::Split {
                label,
                rows,
                from,
                to,
                at,
                upper_rows,
                ..
            } => vec![
                (i + 1).to_string(),
                label.clone(),
                rows.to_string(),
                host_name(dir, *from),
                to.map(|t| host_name(dir, t)).unwrap_or_else(|| "-".into()),
                format!("split at {at:.6} ({upper_rows} rows above)"),
            ],
            Step::Move {
                label,
                rows,
                from,
                to,
                ..
            } => vec![
                (i + 1).to_string(),
                label.clone(),
                rows.to_string(),
                host_name(dir, *from),
                host_name(dir, *to),
                "move".into(),
            ],
        })
        .collect();
    write_table(
        out,
        2,
        &["step", "partition", "rows", "from", "to", "what"],
        &lines,
    )?;
    Ok(())
}
