//! The bulk copy: each source's rows in key order, in chunks, each row to the target whose
//! hash range holds its key, with `modified_at` and `created_at` as they are. Between chunks
//! the change log is applied, the copy's progress is recorded in the directory (so a resumed
//! copy starts where this one stopped), and the copy waits whenever a target's sibling falls
//! more than `--max-lag` behind.

use std::time::{Duration, Instant};

use mysql_async::{Row, Value};

use super::capture::{apply_log, Apply, Upto};
use super::lag::Lag;
use super::record::Reshape;
use super::run::Ctx;
use super::sessions::Sessions;
use super::transitions::checkpoint;
use crate::admin::progress::Progress;
use crate::admin::sql::{column, Query};
use crate::error::{Error, Result};

/// Most bytes of values in one statement of the copy.
const CHUNK_BYTES: usize = 4 << 20;
/// How often the change log is applied and the copy's progress recorded and shown.
const EVERY: Duration = Duration::from_secs(1);

/// One row of a datatable.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRow {
    pub k: Vec<u8>,
    pub v: Vec<u8>,
    pub modified_at: Value,
    pub created_at: Value,
}

impl DataRow {
    /// A row of `SELECT k, v, modified_at, created_at`.
    pub fn from_row(row: Row) -> Result<DataRow> {
        const WHAT: &str = "reading a row";
        Ok(DataRow {
            k: column(&row, 0, WHAT)?,
            v: column(&row, 1, WHAT)?,
            modified_at: row
                .as_ref(2)
                .cloned()
                .ok_or_else(|| Error::internal("a row without modified_at"))?,
            created_at: row
                .as_ref(3)
                .cloned()
                .ok_or_else(|| Error::internal("a row without created_at"))?,
        })
    }
}

/// Writes `rows` to the targets whose ranges hold their keys (an upsert: a row already there
/// takes the source's values).
pub async fn write_rows(sessions: &mut Sessions, r: &Reshape, rows: Vec<DataRow>) -> Result<()> {
    let mut per_target: Vec<Vec<DataRow>> = vec![Vec::new(); r.targets.len()];
    for row in rows {
        let i = target_index(r, &row.k)?;
        per_target[i].push(row);
    }
    for (target, rows) in r.targets.iter().zip(per_target) {
        let mut rest = &rows[..];
        while !rest.is_empty() {
            let mut n = 0;
            let mut bytes = 0;
            while n < rest.len() && (n == 0 || bytes + rest[n].v.len() <= CHUNK_BYTES) {
                bytes += rest[n].v.len();
                n += 1;
            }
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let marks = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO {} (k, v, modified_at, created_at) VALUES {marks}
                 ON DUPLICATE KEY UPDATE v = VALUES(v), modified_at = VALUES(modified_at),
                 created_at = VALUES(created_at)",
                target.table()
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|d| {
                    [
                        Value::Bytes(d.k.clone()),
                        Value::Bytes(d.v.clone()),
                        d.modified_at.clone(),
                        d.created_at.clone(),
                    ]
                })
                .collect();
            let s = sessions.get(&target.addr()).await?;
            s.exec("writing rows to a target", &sql, params)
                .await
                .map_err(|e| e.context(target.describe()))?;
        }
    }
    Ok(())
}

/// Deletes `keys` from the targets whose ranges hold them.
pub async fn delete_keys(sessions: &mut Sessions, r: &Reshape, keys: Vec<Vec<u8>>) -> Result<()> {
    let mut per_target: Vec<Vec<Vec<u8>>> = vec![Vec::new(); r.targets.len()];
    for k in keys {
        let i = target_index(r, &k)?;
        per_target[i].push(k);
    }
    for (target, keys) in r.targets.iter().zip(per_target) {
        for chunk in keys.chunks(1000) {
            let marks = vec!["?"; chunk.len()].join(",");
            let params: Vec<Value> = chunk.iter().map(|k| Value::Bytes(k.clone())).collect();
            let s = sessions.get(&target.addr()).await?;
            s.exec(
                "deleting rows from a target",
                &format!("DELETE FROM {} WHERE k IN ({marks})", target.table()),
                params,
            )
            .await
            .map_err(|e| e.context(target.describe()))?;
        }
    }
    Ok(())
}

/// The target of `key`; an error when no target's range holds it (a row in a source table
/// that does not belong to the source's range).
fn target_index(r: &Reshape, key: &[u8]) -> Result<usize> {
    let point = r.hash.point(key);
    r.target_of(point).ok_or_else(|| {
        Error::internal(format!(
            "key {:?} hashes to {point}, outside every target of reshape {} (a row in a source \
             table outside its partition's range?)",
            String::from_utf8_lossy(key),
            r.id
        ))
    })
}

/// What the copy did.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    pub rows: u64,
    pub bytes: u64,
    /// Changes applied during the copy (to rows copied already).
    pub changes: u64,
    /// Changes dropped during the copy: to rows not copied yet, which the copy read as they
    /// were by then.
    pub skipped: u64,
    pub elapsed: Duration,
    /// Time spent waiting for the targets' siblings.
    pub throttled: Duration,
}

impl Copied {
    /// Adds what another run of the copy did (a resumed copy's figures add up).
    pub fn add(&mut self, other: &Copied) {
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.changes += other.changes;
        self.skipped += other.skipped;
        self.elapsed += other.elapsed;
        self.throttled += other.throttled;
    }

    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// Copies every source not copied yet, from its checkpoint on.
pub async fn copy_all(
    ctx: &mut Ctx<'_>,
    r: &mut Reshape,
    lag: &mut Lag,
    p: &mut Progress<'_>,
) -> Result<Copied> {
    let mut copied = Copied::default();
    let started = Instant::now();
    let chunk_rows = ctx.opts.chunk_rows.max(1);
    for i in 0..r.sources.len() {
        if r.sources[i].copy_done {
            continue;
        }
        let src = r.sources[i].part.clone();
        let addr = src.addr();
        let table = src.table();
        let total: Option<u64> = ctx
            .sessions
            .get(&addr)
            .await?
            .first(
                "counting the source's rows",
                &format!("SELECT COUNT(*) FROM {table}"),
                (),
            )
            .await?;
        let total = total.unwrap_or(0);
        let mut after = r.sources[i].copied_to.clone().unwrap_or_default();
        p.say(format_args!(
            "copying {} ({} rows){} ...",
            src.describe(),
            total,
            if after.is_empty() {
                String::new()
            } else {
                " from where the last run stopped".to_string()
            }
        ))?;
        let mut done_here = 0u64;
        let mut last_tick = Instant::now();
        let this_start = Instant::now();
        loop {
            let s = ctx.sessions.get(&addr).await?;
            let rows = s
                .rows(
                    "reading rows from the source",
                    &format!(
                        "SELECT k, v, modified_at, created_at FROM {table} WHERE k > ?
                         ORDER BY k LIMIT {chunk_rows}"
                    ),
                    (Value::Bytes(after.clone()),),
                )
                .await
                .map_err(|e| e.context(src.describe()))?;
            let last_chunk = rows.len() < chunk_rows;
            let mut data = Vec::with_capacity(rows.len());
            for row in rows {
                data.push(DataRow::from_row(row)?);
            }
            if let Some(last) = data.last() {
                after.clone_from(&last.k);
            }
            let n = data.len() as u64;
            copied.bytes += data
                .iter()
                .map(|d| (d.k.len() + d.v.len()) as u64)
                .sum::<u64>();
            write_rows(&mut ctx.sessions, r, data).await?;
            copied.rows += n;
            done_here += n;
            copied.throttled += lag.after_write(&mut ctx.sessions, p).await?;
            if ctx.opts.max_rate > 0 {
                let due = Duration::from_secs_f64(done_here as f64 / ctx.opts.max_rate as f64);
                if let Some(wait) = due.checked_sub(this_start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if last_chunk {
                super::cutover::hold(ctx, "last-chunk").await;
            }
            if last_chunk || last_tick.elapsed() >= EVERY {
                r.sources[i].copied_to = Some(after.clone());
                // Once the last chunk is read, a key after it (inserted since) is the log's
                // to bring: nothing will read it again.
                r.sources[i].copy_done = last_chunk;
                // Every source's log, not only this one's: a merge's other source keeps its
                // log short too (all of it dropped before its copy starts, applied after).
                for j in 0..r.sources.len() {
                    let other = &r.sources[j];
                    let copied_to = match (j.cmp(&i), other.copy_done) {
                        (_, true) => None,
                        (std::cmp::Ordering::Greater, false) => {
                            Some(other.copied_to.clone().unwrap_or_default())
                        }
                        _ => other.copied_to.clone(),
                    };
                    let how = Apply {
                        copied_to,
                        ..Apply::upto(Upto::Rows(10_000))
                    };
                    let part = other.part.clone();
                    let applied =
                        apply_log(&mut ctx.sessions, r, &part, &part.datatable, &how).await?;
                    copied.changes += applied.changes;
                    copied.skipped += applied.skipped;
                }
                checkpoint(&mut ctx.dirs, r.id, &r.sources[i]).await?;
                last_tick = Instant::now();
                let secs = this_start.elapsed().as_secs_f64().max(1e-3);
                let rate = done_here as f64 / secs;
                let left = total.saturating_sub(done_here);
                p.tick(format_args!(
                    "  {done_here} of ~{total} rows ({:.0}%), {rate:.0} rows/s, {:.1} MB/s, ETA \
                     {:.0} s; {}; {} changes applied",
                    100.0 * done_here as f64 / total.max(1) as f64,
                    copied.bytes as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-3),
                    left as f64 / rate.max(1.0),
                    lag.describe(),
                    copied.changes
                ))?;
            }
            if last_chunk {
                break;
            }
        }
        p.done()?;
    }
    copied.elapsed = started.elapsed();
    Ok(copied)
}
