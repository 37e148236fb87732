//! `thrudoc-admin move`, `split` and `merge`: which partitions become which, and where.
//!
//! Each finds the live partitions it is given, works out the targets (a move: the same range
//! on another host; a split: two halves, cut where half the rows' hash points fall unless
//! `--at` says; a merge: one range over two neighbours), records the reshape, and drives it
//! ([`super::run::drive`]). Run again while a reshape of those partitions is unfinished, it
//! resumes that one; with `--abort`, it undoes it.

use std::io::Write;

use mysql_async::Value;

use super::record::{self, Kind, Part};
use super::run::{drive, print_report, Report};
use super::transitions::{self, PlannedTarget};
use super::ReshapeOptions;
use crate::admin::moves::ensure_tables;
use crate::admin::sql::{column, Query, Session};
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::rules::{check_bucket_name, check_sql_name};
use crate::store::mysql::placement::HashKind;

/// What to reshape.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `move --partition ID --to H:P`
    Move {
        bucket: String,
        partition: u64,
        to: HostAddr,
    },
    /// `split --partition ID [--at POINT] [--to H:P]`
    Split {
        bucket: String,
        partition: u64,
        at: Option<f64>,
        to: Option<HostAddr>,
    },
    /// `merge --partitions A,B [--to H:P]`
    Merge {
        bucket: String,
        partitions: [u64; 2],
        to: Option<HostAddr>,
    },
}

impl Request {
    fn bucket(&self) -> &str {
        match self {
            Request::Move { bucket, .. }
            | Request::Split { bucket, .. }
            | Request::Merge { bucket, .. } => bucket,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Request::Move { .. } => Kind::Move,
            Request::Split { .. } => Kind::Split,
            Request::Merge { .. } => Kind::Merge,
        }
    }

    fn partitions(&self) -> Vec<u64> {
        match self {
            Request::Move { partition, .. } | Request::Split { partition, .. } => vec![*partition],
            Request::Merge { partitions, .. } => partitions.to_vec(),
        }
    }
}

/// Carries out `req`: a new reshape, the one in progress on its partitions, or (with
/// `--abort`) that one undone. Prints its progress and its report to `out`.
pub async fn run(opts: &ReshapeOptions, req: &Request, out: &mut dyn Write) -> Result<Report> {
    check_sql_name("--database", &opts.database)?;
    check_bucket_name(req.bucket()).map_err(|why| Error::invalid(format!("--tablename: {why}")))?;
    let mut dirs = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dirs, &opts.database).await?;
    let ids = req.partitions();
    let id = match record::unfinished_of(&mut dirs, &ids).await? {
        Some(existing) => {
            let r = record::load(&mut dirs, existing).await?;
            if !opts.abort && r.kind != req.kind() {
                return Err(Error::invalid(format!(
                    "{} is in progress ({}); finish it with its own command or undo it with \
                     --abort; nothing was changed",
                    r.describe(),
                    r.state
                )));
            }
            if !opts.abort {
                if let Request::Move { to, .. } = req {
                    if r.targets.iter().any(|t| t.addr() != *to) {
                        return Err(Error::invalid(format!(
                            "{} is in progress to {}, not to {to}; finish it with --to {} or \
                             undo it with --abort; nothing was changed",
                            r.describe(),
                            r.targets[0].addr(),
                            r.targets[0].addr()
                        )));
                    }
                }
            }
            writeln!(
                out,
                "{} {}: {}",
                if opts.abort { "undoing" } else { "resuming" },
                r.describe(),
                r.state
            )?;
            existing
        }
        None if opts.abort => {
            return Err(Error::invalid(format!(
                "no move, split or merge of partition{} {} is in progress: nothing to undo",
                if ids.len() > 1 { "s" } else { "" },
                ids.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        None => {
            let sources = record::live_parts(&mut dirs, req.bucket(), &ids).await?;
            let targets = plan_targets(opts, &mut dirs, req, &sources).await?;
            let id = transitions::plan(&mut dirs, req.bucket(), req.kind(), &ids, &targets).await?;
            writeln!(
                out,
                "planned {}",
                record::load(&mut dirs, id).await?.describe()
            )?;
            id
        }
    };
    dirs.close().await;
    let report = drive(opts, id, out).await?;
    if !opts.abort {
        print_report(&report, out)?;
    }
    Ok(report)
}

/// The directory id of host `addr`, refusing one the directory does not know.
pub async fn host_id(dirs: &mut Session, addr: &HostAddr) -> Result<(u32, Option<u32>)> {
    let rows = dirs
        .rows(
            "reading the host table",
            "SELECT id, slave_id FROM host WHERE hostname = ? AND port = ?",
            (addr.host.as_str(), addr.port),
        )
        .await?;
    let row = rows.first().ok_or_else(|| {
        Error::invalid(format!(
            "the directory has no host {addr}: register it first with `thrudoc-admin \
             add-hosts --hosts {addr}`; nothing was changed"
        ))
    })?;
    Ok((
        column(row, 0, "reading the host table")?,
        column(row, 1, "reading the host table")?,
    ))
}

/// The bucket's hash.
pub async fn bucket_hash(dirs: &mut Session, bucket: &str) -> Result<HashKind> {
    let hash: Option<String> = dirs
        .first(
            "reading the bucket's hash",
            "SELECT hash FROM bucket WHERE name = ?",
            (bucket,),
        )
        .await?;
    match hash {
        // An original Thrudoc directory has no bucket table rows: FNV.
        None => Ok(HashKind::Fnv32),
        Some(h) => h
            .parse()
            .map_err(|why| Error::internal(format!("bucket `{bucket}`: {why}"))),
    }
}

async fn plan_targets(
    opts: &ReshapeOptions,
    dirs: &mut Session,
    req: &Request,
    sources: &[Part],
) -> Result<Vec<PlannedTarget>> {
    match req {
        Request::Move { to, .. } => {
            let src = &sources[0];
            let (to_id, _) = host_id(dirs, to).await?;
            if to_id == src.host.id {
                return Err(Error::invalid(format!(
                    "{} is on {to} already; nothing was changed",
                    src.describe()
                )));
            }
            Ok(vec![PlannedTarget {
                start: src.start,
                end: src.end,
                host_id: to_id,
            }])
        }
        Request::Split { at, to, bucket, .. } => {
            let src = &sources[0];
            let upper = match to {
                Some(to) => host_id(dirs, to).await?.0,
                None => src.host.id,
            };
            let at = match at {
                Some(at) => {
                    if !(*at > src.start && *at < src.end) {
                        return Err(Error::invalid(format!(
                            "--at {at} is not inside partition {}'s range ({}, {}]; nothing \
                             was changed",
                            src.id, src.start, src.end
                        )));
                    }
                    *at
                }
                None => {
                    let hash = bucket_hash(dirs, bucket).await?;
                    median_point(opts, src, hash).await?
                }
            };
            Ok(vec![
                PlannedTarget {
                    start: src.start,
                    end: at,
                    host_id: src.host.id,
                },
                PlannedTarget {
                    start: at,
                    end: src.end,
                    host_id: upper,
                },
            ])
        }
        Request::Merge { to, .. } => {
            let (a, b) = (&sources[0], &sources[1]);
            if a.end != b.start {
                return Err(Error::invalid(format!(
                    "partitions {} ({}, {}] and {} ({}, {}] are not neighbours: only adjacent \
                     ranges merge; nothing was changed",
                    a.id, a.start, a.end, b.id, b.start, b.end
                )));
            }
            let host = match to {
                Some(to) => host_id(dirs, to).await?.0,
                None => a.host.id,
            };
            Ok(vec![PlannedTarget {
                start: a.start,
                end: b.end,
                host_id: host,
            }])
        }
    }
}

/// The hash point where half the partition's rows fall (see [`quantile_point`]).
pub async fn median_point(opts: &ReshapeOptions, src: &Part, hash: HashKind) -> Result<f64> {
    quantile_point(opts, src, hash, 0.5).await
}

/// The hash point below which `fraction` of the partition's rows fall, strictly inside its
/// range (the middle of the range when it is empty or the point sits on an end). Reads every
/// key of the partition on its master.
pub async fn quantile_point(
    opts: &ReshapeOptions,
    src: &Part,
    hash: HashKind,
    fraction: f64,
) -> Result<f64> {
    let mut s = opts.root.connect(&src.addr(), None).await?;
    let mut points = Vec::new();
    let mut after: Vec<u8> = Vec::new();
    loop {
        let rows = s
            .rows(
                "reading the partition's keys",
                &format!(
                    "SELECT k FROM {} WHERE k > ? ORDER BY k LIMIT 10000",
                    src.table()
                ),
                (Value::Bytes(after.clone()),),
            )
            .await?;
        let n = rows.len();
        for row in &rows {
            let k: Vec<u8> = column(row, 0, "reading the partition's keys")?;
            points.push(hash.point(&k));
            after = k;
        }
        if n < 10000 {
            break;
        }
    }
    s.close().await;
    Ok(split_point(src.start, src.end, points, fraction))
}

/// The point below which `fraction` of `points` fall, if it lies strictly inside
/// `(start, end)`; else the middle of the range.
pub fn split_point(start: f64, end: f64, mut points: Vec<f64>, fraction: f64) -> f64 {
    let middle = start + (end - start) / 2.0;
    if points.is_empty() {
        return middle;
    }
    points.sort_by(f64::total_cmp);
    let i = ((points.len() as f64 * fraction).ceil() as usize).clamp(1, points.len()) - 1;
    let at = points[i];
    if at > start && at < end {
        at
    } else {
        middle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_fall_where_half_the_rows_are_and_stay_inside() {
        assert_eq!(split_point(0.0, 1.0, vec![0.1, 0.2, 0.3, 0.9], 0.5), 0.2);
        assert_eq!(split_point(0.0, 1.0, vec![0.9, 0.1, 0.3, 0.2], 0.75), 0.3);
        assert_eq!(split_point(0.5, 1.0, vec![], 0.5), 0.75);
        // A median on the end of the range would leave an empty upper half: the middle.
        assert_eq!(split_point(0.0, 0.5, vec![0.5, 0.5, 0.5], 0.5), 0.25);
        let p = split_point(0.25, 0.5, vec![0.3; 7], 0.5);
        assert!(p > 0.25 && p < 0.5);
    }
}
