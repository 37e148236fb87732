//! Checking the targets against the sources before the cutover.
//!
//! The key space is walked in ranges of at most `CHECK_ROWS` keys of each source. For each
//! range, shared locks on the sources' rows (and the gaps between them) stop writes to it for
//! a moment; the change log is applied up to that moment, which brings in every change to the
//! range; then the rows' count and a checksum over every column must be the same on the
//! sources together as on the targets together. A range that differs is copied again and
//! compared once more (and reported); one that still differs stops the reshape.
//!
//! At the cutover, with the sources fenced, the keys of the last changes applied are compared
//! one by one ([`same_rows`]).

use std::time::{Duration, Instant};

use mysql_async::Value;

use super::capture::{self, apply_log, delete_applied, Apply, Delete, Upto};
use super::copy::{delete_keys, write_rows, DataRow};
use super::record::Reshape;
use super::run::{Ctx, CALM};
use crate::admin::progress::Progress;
use crate::admin::sql::{column, Query, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{code, server_code};

/// Keys of each source per compared range.
const CHECK_ROWS: usize = 2000;
/// Times a range is tried again after a deadlock or lock wait timeout with the servers' writes.
const LOCK_TRIES: u32 = 5;
/// Most change-log rows applied while a range is locked; with more waiting, the locks are let
/// go and the logs caught up first.
const LOCKED_MOST: u64 = 1000;

/// The row count and checksum of a key range.
const SUMMARY: &str = "SELECT COUNT(*), COALESCE(BIT_XOR(CAST(CONV(LEFT(MD5(CONCAT_WS(0x00, \
     LENGTH(k), k, v, modified_at, created_at)), 16), 16, 10) AS UNSIGNED)), 0)";

/// A key range `(lo, hi]` (`hi` `None`: to the end).
#[derive(Debug, Clone)]
struct Range {
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
}

impl Range {
    fn filter(&self) -> &'static str {
        if self.hi.is_some() {
            "WHERE k > ? AND k <= ?"
        } else {
            "WHERE k > ?"
        }
    }

    fn params(&self) -> Vec<Value> {
        let mut p = vec![Value::Bytes(self.lo.clone())];
        if let Some(hi) = &self.hi {
            p.push(Value::Bytes(hi.clone()));
        }
        p
    }
}

/// What the comparison found.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub ranges: u64,
    pub rows: u64,
    /// Ranges that differed and were copied again.
    pub repaired: u64,
    pub elapsed: Duration,
}

/// `(rows, checksum)` of `range` in `table` on `s`, with shared locks when `lock`.
async fn summary(s: &mut Session, table: &str, range: &Range, lock: bool) -> Result<(u64, u64)> {
    let sql = format!(
        "{SUMMARY} FROM {table} {}{}",
        range.filter(),
        if lock { " LOCK IN SHARE MODE" } else { "" }
    );
    let rows = s.rows("summing a key range", &sql, range.params()).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::internal("a sum without a row"))?;
    Ok((
        column(row, 0, "summing a key range")?,
        column(row, 1, "summing a key range")?,
    ))
}

/// The end of the next range after `lo`: the smallest of each source's `CHECK_ROWS`-th key
/// after `lo`; `None` when every source has fewer left.
async fn next_hi(ctx: &mut Ctx<'_>, r: &Reshape, lo: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut hi: Option<Vec<u8>> = None;
    for src in &r.sources {
        let part = &src.part;
        let s = ctx.sessions.get(&part.addr()).await?;
        let k: Option<Vec<u8>> = s
            .first(
                "finding the next key range",
                &format!(
                    "SELECT k FROM {} WHERE k > ? ORDER BY k LIMIT 1 OFFSET {}",
                    part.table(),
                    CHECK_ROWS - 1
                ),
                (Value::Bytes(lo.to_vec()),),
            )
            .await?;
        if let Some(k) = k {
            hi = Some(match hi {
                Some(h) if h <= k => h,
                _ => k,
            });
        }
    }
    Ok(hi)
}

/// Compares every source with the targets, range by range, under locks.
pub async fn check_all(ctx: &mut Ctx<'_>, r: &Reshape, p: &mut Progress<'_>) -> Result<Checked> {
    let started = Instant::now();
    let mut checked = Checked::default();
    let mut lo: Vec<u8> = Vec::new();
    p.say("comparing the targets with the sources, range by range ...")?;
    loop {
        let hi = next_hi(ctx, r, &lo).await?;
        let range = Range {
            lo: lo.clone(),
            hi: hi.clone(),
        };
        let mut tries = 0;
        let rows = loop {
            match check_range(ctx, r, &range, &mut checked).await {
                Ok(Some(rows)) => break rows,
                // Too many changes to apply under the range's locks (the servers' writes to the
                // range wait while they are held): catch up without them first.
                Ok(None) => {
                    capture::catch_up(&mut ctx.sessions, r, CALM, &mut |c| {
                        p.tick(format_args!("  catching up before comparing: {c}"))
                    })
                    .await?;
                }
                Err(e)
                    if tries < LOCK_TRIES
                        && matches!(
                            server_code(&e),
                            Some(code::ER_LOCK_DEADLOCK | code::ER_LOCK_WAIT_TIMEOUT)
                        ) =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(tries))).await;
                }
                Err(e) => return Err(e),
            }
        };
        checked.ranges += 1;
        checked.rows += rows;
        if checked.ranges % 25 == 0 || hi.is_none() {
            p.tick(format_args!(
                "  {} ranges, {} rows equal ({:.0} rows/s){}",
                checked.ranges,
                checked.rows,
                checked.rows as f64 / started.elapsed().as_secs_f64().max(1e-3),
                if checked.repaired > 0 {
                    format!(", {} copied again", checked.repaired)
                } else {
                    String::new()
                }
            ))?;
        }
        match hi {
            Some(h) => lo = h,
            None => break,
        }
    }
    p.done()?;
    checked.elapsed = started.elapsed();
    Ok(checked)
}

/// One range: locked on the sources, the log applied, compared; copied again if it differs.
/// Its row count; `None` when the logs had grown past [`LOCKED_MOST`] by the time the locks
/// were held (nothing was applied: the caller catches up and tries again).
async fn check_range(
    ctx: &mut Ctx<'_>,
    r: &Reshape,
    range: &Range,
    checked: &mut Checked,
) -> Result<Option<u64>> {
    // One extra session per source holds the locks while the usual sessions work.
    let mut lockers: Vec<Session> = Vec::new();
    let mut source_sum = (0u64, 0u64);
    for src in &r.sources {
        let mut s = ctx.sessions.extra(&src.part.addr()).await?;
        s.run("starting a locking read", "START TRANSACTION")
            .await?;
        let (n, x) = summary(&mut s, &src.part.table(), range, true).await?;
        source_sum = (source_sum.0 + n, source_sum.1 ^ x);
        lockers.push(s);
    }
    let mut applied: Vec<Vec<u64>> = Vec::new();
    let outcome = async {
        if capture::waiting(&mut ctx.sessions, r).await? > LOCKED_MOST {
            return Ok(None);
        }
        for src in &r.sources {
            let how = Apply {
                delete: Delete::Later,
                ..Apply::upto(Upto::Now)
            };
            let a = apply_log(&mut ctx.sessions, r, &src.part, &src.part.datatable, &how).await?;
            applied.push(a.seqs);
        }
        let target_sum = targets_summary(ctx, r, range).await?;
        if target_sum == source_sum {
            return Ok(Some(source_sum.0));
        }
        // Copy the range again, under the same locks, and compare once more.
        checked.repaired += 1;
        recopy(ctx, r, range).await?;
        let again = targets_summary(ctx, r, range).await?;
        if again == source_sum {
            Ok(Some(source_sum.0))
        } else {
            Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "keys after {:?} up to {:?} differ between the sources and the targets \
                     even after copying them again ({} rows vs {}): the reshape stops here",
                    String::from_utf8_lossy(&range.lo),
                    range.hi.as_deref().map(String::from_utf8_lossy),
                    source_sum.0,
                    again.0
                ),
            ))
        }
    }
    .await;
    for mut s in lockers {
        let _ = s.run("ending a locking read", "COMMIT").await;
        s.close().await;
    }
    // With the locks gone, the log rows applied under them go too.
    for (src, seqs) in r.sources.iter().zip(&applied) {
        delete_applied(&mut ctx.sessions, &src.part, seqs).await?;
    }
    outcome
}

async fn targets_summary(ctx: &mut Ctx<'_>, r: &Reshape, range: &Range) -> Result<(u64, u64)> {
    let mut sum = (0u64, 0u64);
    for t in &r.targets {
        let s = ctx.sessions.get(&t.addr()).await?;
        let (n, x) = summary(s, &t.table(), range, false).await?;
        sum = (sum.0 + n, sum.1 ^ x);
    }
    Ok(sum)
}

/// Copies a range from the sources to the targets again: rows upserted, keys the sources lack
/// deleted.
async fn recopy(ctx: &mut Ctx<'_>, r: &Reshape, range: &Range) -> Result<()> {
    let mut rows = Vec::new();
    for src in &r.sources {
        let s = ctx.sessions.get(&src.part.addr()).await?;
        for row in s
            .rows(
                "reading a range again",
                &format!(
                    "SELECT k, v, modified_at, created_at FROM {} {}",
                    src.part.table(),
                    range.filter()
                ),
                range.params(),
            )
            .await?
        {
            rows.push(DataRow::from_row(row)?);
        }
    }
    let keys: std::collections::BTreeSet<Vec<u8>> = rows.iter().map(|d| d.k.clone()).collect();
    let mut extra = Vec::new();
    for t in &r.targets {
        let s = ctx.sessions.get(&t.addr()).await?;
        for row in s
            .rows(
                "reading a target's keys",
                &format!("SELECT k FROM {} {}", t.table(), range.filter()),
                range.params(),
            )
            .await?
        {
            let k: Vec<u8> = column(&row, 0, "reading a target's keys")?;
            if !keys.contains(&k) {
                extra.push(k);
            }
        }
    }
    write_rows(&mut ctx.sessions, r, rows).await?;
    delete_keys(&mut ctx.sessions, r, extra).await
}

/// Compares `keys` one by one on the sources (under their current table names) and the
/// targets: the first that differs, if any.
pub async fn same_rows(
    ctx: &mut Ctx<'_>,
    r: &Reshape,
    names: &[String],
    keys: &[Vec<u8>],
) -> Result<Option<String>> {
    for chunk in keys.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let params: Vec<Value> = chunk.iter().map(|k| Value::Bytes(k.clone())).collect();
        let read = async |s: &mut Session, table: String| -> Result<Vec<DataRow>> {
            let rows = s
                .rows(
                    "reading rows to compare",
                    &format!(
                        "SELECT k, v, modified_at, created_at FROM {table} WHERE k IN ({marks})
                         ORDER BY k"
                    ),
                    params.clone(),
                )
                .await?;
            rows.into_iter().map(DataRow::from_row).collect()
        };
        let mut source_rows = Vec::new();
        for (src, name) in r.sources.iter().zip(names) {
            let s = ctx.sessions.get(&src.part.addr()).await?;
            source_rows.extend(read(s, src.part.qualified(name)).await?);
        }
        let mut target_rows = Vec::new();
        for t in &r.targets {
            let s = ctx.sessions.get(&t.addr()).await?;
            target_rows.extend(read(s, t.table()).await?);
        }
        source_rows.sort_by(|a, b| a.k.cmp(&b.k));
        target_rows.sort_by(|a, b| a.k.cmp(&b.k));
        if source_rows != target_rows {
            let first = source_rows
                .iter()
                .zip(&target_rows)
                .find(|(a, b)| a != b)
                .map(|(a, _)| String::from_utf8_lossy(&a.k).into_owned())
                .unwrap_or_else(|| {
                    format!(
                        "{} rows on the sources, {} on the targets",
                        source_rows.len(),
                        target_rows.len()
                    )
                });
            return Ok(Some(first));
        }
    }
    Ok(None)
}
