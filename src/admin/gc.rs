//! `thrudoc-admin gc --older-than AGE`: drops what moves, splits and merges left behind.
//!
//! A partition a reshape replaced keeps its table, renamed `r_<id>`, and its directory row,
//! with `retired_at` set, so that a mistake can still be looked into. Once they are older than
//! `AGE`, `gc` drops the table on its host (the drop replicates to the sibling) with whatever a
//! reshape may have left on it (a change log), then deletes the row; and it deletes the
//! records of reshapes finished that long ago. The targets of a reshape in progress are
//! retired rows too: they are never touched. A host that does not answer is left for the next
//! run.

use std::io::Write;
use std::time::Duration;

use super::dirtx::{self, IfLost, Tx};
use super::moves::ensure_tables;
use super::sql::{column, quote_ident, Login, Query};
use super::table::write_table;
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::rules::{check_sql_name, is_sql_name};

/// What `gc` is asked to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    pub older_than: Duration,
}

const IF_LOST: IfLost<'static> = IfLost {
    may_be: "the directory rows may or may not be deleted",
    look: "run gc again: it is safe to repeat",
};

/// `7d`, `12h`, `30m`, `45s`, `0`: an age for `--older-than`.
pub fn parse_age(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an age such as 7d, 12h, 30m or 0"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit `{other}` (use s, m, h or d)")),
    };
    n.checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long an age"))
}

/// Drops retired tables and forgets finished reshapes older than `older_than`. The tables
/// dropped.
pub async fn run(opts: &GcOptions, out: &mut dyn Write) -> Result<usize> {
    check_sql_name("--database", &opts.database)?;
    let mut dir = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    ensure_tables(&mut dir, &opts.database).await?;
    let secs = opts.older_than.as_secs();
    const WHAT: &str = "reading retired partitions";
    let rows = dir
        .rows(
            WHAT,
            "SELECT d.id, d.bucket, d.db, d.datatable, h.hostname, h.port, d.retired_at
             FROM directory d JOIN host h ON h.id = d.host_id
             WHERE d.retired_at IS NOT NULL AND d.retired_at <= NOW() - INTERVAL ? SECOND
               AND d.id NOT IN (SELECT rp.directory_id FROM reshape_partition rp
                                JOIN reshape r ON r.id = rp.reshape_id
                                WHERE r.state IN ('copying', 'cutover'))
             ORDER BY d.id",
            (secs,),
        )
        .await?;
    let mut dropped: Vec<Vec<String>> = Vec::new();
    let mut gone: Vec<u64> = Vec::new();
    for row in &rows {
        let id: u64 = column(row, 0, WHAT)?;
        let bucket: String = column(row, 1, WHAT)?;
        let db: String = column(row, 2, WHAT)?;
        let table: String = column(row, 3, WHAT)?;
        let addr = HostAddr {
            host: column(row, 4, WHAT)?,
            port: column(row, 5, WHAT)?,
        };
        if !is_sql_name(&db) || !is_sql_name(&table) {
            writeln!(
                out,
                "warning: partition {id} names `{}`.`{}`, not a plain table name: left alone",
                db.escape_debug(),
                table.escape_debug()
            )?;
            continue;
        }
        let mut s = match opts.root.connect(&addr, None).await {
            Ok(s) => s,
            Err(e) => {
                writeln!(out, "warning: {addr} does not answer ({e}): partition {id} is left for the next run")?;
                continue;
            }
        };
        let (qdb, log) = (quote_ident(&db), quote_ident(&format!("l_{id:012}")));
        let dropped_here = async {
            s.run(
                "dropping a retired table",
                &format!("DROP TABLE IF EXISTS {qdb}.{}", quote_ident(&table)),
            )
            .await?;
            s.run(
                "dropping a leftover change log",
                &format!("DROP TABLE IF EXISTS {qdb}.{log}"),
            )
            .await
        }
        .await;
        s.close().await;
        if let Err(e) = dropped_here {
            writeln!(out, "warning: {e}: partition {id} is left for the next run")?;
            continue;
        }
        gone.push(id);
        dropped.push(vec![
            id.to_string(),
            bucket,
            format!("{db}.{table}"),
            addr.to_string(),
        ]);
    }
    let forgotten = dirtx::change(&mut dir, IF_LOST, async |tx: &mut Tx<'_>| {
        for id in &gone {
            tx.exec(
                "deleting a retired partition's row",
                "DELETE FROM directory WHERE id = ? AND retired_at IS NOT NULL",
                (id,),
            )
            .await?;
        }
        tx.exec(
            "forgetting finished reshapes",
            "DELETE rp FROM reshape_partition rp JOIN reshape r ON r.id = rp.reshape_id
             WHERE r.state IN ('done', 'aborted') AND r.finished_at <= NOW() - INTERVAL ? SECOND",
            (secs,),
        )
        .await?;
        tx.exec(
            "forgetting finished reshapes",
            "DELETE FROM reshape WHERE state IN ('done', 'aborted')
             AND finished_at <= NOW() - INTERVAL ? SECOND",
            (secs,),
        )
        .await?;
        Ok(Some(()))
    })
    .await?;
    if forgotten.is_none() {
        return Err(Error::internal("gc's directory transaction wrote nothing"));
    }
    if dropped.is_empty() {
        writeln!(out, "nothing retired more than {secs} s ago")?;
    } else {
        writeln!(out, "dropped {} retired tables:", dropped.len())?;
        write_table(out, 2, &["partition", "bucket", "table", "host"], &dropped)?;
    }
    dir.close().await;
    Ok(dropped.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("0"), Ok(Duration::ZERO));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        for bad in ["", "x", "5y", "-1d", "1.5h"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
