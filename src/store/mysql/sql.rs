//! The statements run against datatables. Table names come only from the directory (checked
//! by [`crate::rules::is_sql_name`]); keys, values and limits are always bound parameters.
//!
//! The single-row statements of each partition are formatted once per directory load
//! ([`Statements`]), and so are the multi-row ones that coalescing sends, on first use of each
//! size class. Those of client batches are formatted for each statement sent, since their row
//! counts vary more (padding to size classes keeps the number of distinct texts, and so of
//! prepared statements, small).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Most rows in one multi-row statement of a batch.
pub const BATCH_ROWS: usize = 1000;

/// Most bytes of values in one multi-row statement (well under MariaDB's default 16 MiB
/// `max_allowed_packet`), padding included.
pub const BATCH_BYTES: usize = 4 << 20;

/// Row counts of the multi-row statements sent: a statement is padded up to the next one
/// (repeating its last row, which changes nothing), so each partition needs a few prepared
/// statements for every batch size, not one per size. Each class is at most 1.5x the one
/// before, so padding never adds more than half the rows.
const SIZE_CLASSES: [usize; 20] = [
    1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, BATCH_ROWS,
];

/// The statement size that holds `n` rows.
pub fn size_class(n: usize) -> usize {
    SIZE_CLASSES.iter().copied().find(|&c| c >= n).unwrap_or(n)
}

/// Rows of the statement that carries `rows` rows holding `bytes` bytes of values, the last
/// row `last` bytes: its size class, unless repeating the last row up to it would pass
/// [`BATCH_BYTES`] (large values: then a statement of exactly `rows` rows, whose prepare
/// costs little beside the values it carries).
pub fn padded_rows(rows: usize, bytes: usize, last: usize) -> usize {
    let class = size_class(rows);
    if bytes + (class - rows) * last > BATCH_BYTES {
        rows
    } else {
        class
    }
}

/// Size classes whose coalesced statements are kept once formatted: those up to
/// [`MAX_BATCH`](super::coalesce::MAX_BATCH) rows.
const KEPT_CLASSES: usize = 10;

/// The single-row statements of one partition's table, built once per directory load, and
/// its coalesced statements, built on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statements {
    /// The table, quoted: `` `db`.`table` ``.
    table: String,
    /// [`get_many`] and [`put_many`] texts by size class, formatted on first use.
    coalesced_gets: Kept,
    coalesced_puts: Kept,
    pub get: String,
    pub put: String,
    pub remove: String,
    /// Params: key, value, max size. The size check and the write are one statement: past the
    /// limit the new value is NULL, which the NOT NULL column refuses (error 1048) in the strict
    /// mode every session runs in, so nothing changes.
    pub append: String,
    /// Params: last key, count.
    pub scan: String,
}

impl Statements {
    /// The statements of `table` (already quoted: `` `db`.`table` ``).
    pub fn for_table(table: &str) -> Statements {
        Statements {
            table: table.to_owned(),
            coalesced_gets: Default::default(),
            coalesced_puts: Default::default(),
            get: format!("SELECT v FROM {table} WHERE k = ?"),
            put: format!(
                "INSERT INTO {table} (k, v, modified_at, created_at) VALUES (?, ?, NOW(6), NOW(6)) \
                 ON DUPLICATE KEY UPDATE v = VALUES(v), modified_at = VALUES(modified_at)"
            ),
            remove: format!("DELETE FROM {table} WHERE k = ?"),
            append: format!(
                "INSERT INTO {table} (k, v, modified_at, created_at) VALUES (?, ?, NOW(6), NOW(6)) \
                 ON DUPLICATE KEY UPDATE \
                 v = IF(LENGTH(v) + LENGTH(VALUES(v)) <= ?, CONCAT(v, VALUES(v)), NULL), \
                 modified_at = VALUES(modified_at)"
            ),
            scan: format!("SELECT k, v FROM {table} WHERE k > ? ORDER BY k LIMIT ?"),
        }
    }

    /// [`get_many`] of this table: kept once formatted when `keys` is a size class of
    /// coalescing, formatted afresh otherwise.
    pub fn get_many(&self, keys: usize) -> Cow<'_, str> {
        kept(&self.coalesced_gets, keys, || get_many(&self.table, keys))
    }

    /// [`put_many`] of this table, kept as [`Statements::get_many`] is.
    pub fn put_many(&self, rows: usize) -> Cow<'_, str> {
        kept(&self.coalesced_puts, rows, || put_many(&self.table, rows))
    }
}

/// Statement texts by size class, formatted on first use. Only a cache: two are equal
/// whatever they hold, so a directory loaded again compares equal to the one in use (the
/// reload compares them to decide whether anything changed).
#[derive(Debug, Clone, Default)]
struct Kept([OnceLock<String>; KEPT_CLASSES]);

impl PartialEq for Kept {
    fn eq(&self, _: &Kept) -> bool {
        true
    }
}

impl Eq for Kept {}

/// The text for `rows` rows: from `texts` (formatted there by `format` on first use) when
/// `rows` is one of the kept size classes, else formatted now.
fn kept(texts: &Kept, rows: usize, format: impl FnOnce() -> String) -> Cow<'_, str> {
    match SIZE_CLASSES[..KEPT_CLASSES].iter().position(|&c| c == rows) {
        Some(i) => Cow::Borrowed(texts.0[i].get_or_init(format).as_str()),
        None => Cow::Owned(format()),
    }
}

/// A multi-row upsert of `rows` (key, value) pairs into `table`.
pub fn put_many(table: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} (k, v, modified_at, created_at) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?, ?, NOW(6), NOW(6))"
        } else {
            ", (?, ?, NOW(6), NOW(6))"
        });
    }
    sql.push_str(" ON DUPLICATE KEY UPDATE v = VALUES(v), modified_at = VALUES(modified_at)");
    sql
}

/// `SELECT k, v ... WHERE k IN (?, ...)` with `keys` placeholders.
pub fn get_many(table: &str, keys: usize) -> String {
    let mut sql = format!("SELECT k, v FROM {table} WHERE k IN (");
    placeholders(&mut sql, keys);
    sql.push(')');
    sql
}

/// `DELETE ... WHERE k IN (?, ...)` with `keys` placeholders.
pub fn remove_many(table: &str, keys: usize) -> String {
    let mut sql = format!("DELETE FROM {table} WHERE k IN (");
    placeholders(&mut sql, keys);
    sql.push(')');
    sql
}

fn placeholders(sql: &mut String, n: usize) {
    for i in 0..n {
        let _ = write!(sql, "{}?", if i == 0 { "" } else { ", " });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_client_value() {
        let s = Statements::for_table("`thrudoc`.`d_000000000001`");
        for sql in [&s.get, &s.put, &s.remove, &s.append, &s.scan] {
            assert!(sql.contains("`thrudoc`.`d_000000000001`"), "{sql}");
            assert!(sql.contains('?'), "{sql}");
        }
        assert_eq!(s.append.matches('?').count(), 3);
        assert_eq!(put_many("t", 3).matches('?').count(), 6);
        assert_eq!(get_many("t", 3), "SELECT k, v FROM t WHERE k IN (?, ?, ?)");
        assert_eq!(remove_many("t", 1), "DELETE FROM t WHERE k IN (?)");
    }

    #[test]
    fn coalesced_statements_are_kept_once_formatted() {
        assert!(
            SIZE_CLASSES[KEPT_CLASSES - 1] >= super::super::coalesce::MAX_BATCH,
            "every size class of coalescing is kept"
        );
        let s = Statements::for_table("t");
        for rows in 1..=40 {
            assert_eq!(s.get_many(rows), get_many("t", rows));
            assert_eq!(s.put_many(rows), put_many("t", rows));
        }
        let first = s.get_many(32);
        assert!(matches!(first, Cow::Borrowed(_)), "32 rows: kept");
        assert!(
            std::ptr::eq(first.as_ptr(), s.get_many(32).as_ptr()),
            "the same text each time"
        );
        assert!(matches!(s.put_many(5), Cow::Owned(_)), "not a size class");
        assert!(
            matches!(s.get_many(48), Cow::Owned(_)),
            "above coalescing's"
        );
    }

    #[test]
    fn size_classes_cover_every_statement_size() {
        assert_eq!(size_class(BATCH_ROWS), BATCH_ROWS);
        for n in 1..=BATCH_ROWS {
            let c = size_class(n);
            assert!(c >= n && c <= BATCH_ROWS, "{n} -> {c}");
            assert!(c - n <= n / 2, "padding of {n} to {c} is at most half");
        }
    }

    #[test]
    fn padding_stays_within_the_byte_budget() {
        assert_eq!(padded_rows(17, 17 * 1024, 1024), 24);
        assert_eq!(padded_rows(24, 0, 0), 24);
        // 5 rows of 800 KiB: a sixth would pass 4 MiB, so the statement has 5.
        assert_eq!(padded_rows(5, 5 * (800 << 10), 800 << 10), 5);
        assert_eq!(padded_rows(5, 5 * (600 << 10), 600 << 10), 6);
    }
}
