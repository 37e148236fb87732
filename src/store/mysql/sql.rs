//! The statements run against datatables. Table names come only from the directory (checked
//! by [`super::directory::is_sql_name`]); keys, values and limits are always bound parameters.

use std::fmt::Write as _;

/// The single-row statements of one partition's table, built once per directory load so the
/// hot path formats no SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statements {
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
}
