//! One bucket of the embedded store: its SQLite file, its connections and its statements.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Error, ErrorKind, Result};
use crate::rules::no_such_key;

/// Reader connections per bucket. WAL lets readers run beside the writer and each other; a few
/// are enough to keep reads from queueing behind one another, and each costs a file descriptor
/// and some page cache, multiplied by the number of buckets.
const READERS_PER_BUCKET: usize = 4;

/// How long a statement waits for a lock held by another process (an operator's script, a
/// checkpoint) before failing with [`ErrorKind::Unavailable`]. Writers of this process never
/// wait on each other here: they queue on the bucket's writer mutex instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; a bucket uses fewer than this.
const STATEMENT_CACHE: usize = 32;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS datatable (
    k BLOB PRIMARY KEY,
    v BLOB NOT NULL,
    modified_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID";

const SQL_PUT: &str =
    "INSERT INTO datatable (k, v, modified_at, created_at) VALUES (?1, ?2, ?3, ?3)
    ON CONFLICT(k) DO UPDATE SET v = excluded.v, modified_at = excluded.modified_at";

// `||` yields TEXT (bytes kept as they are, NULs included); the CAST stores a BLOB again so
// reads and byte-order comparisons stay BLOB. The WHERE makes the size check and the write one
// statement, so no other writer can grow the value in between. `length(CAST(v AS BLOB))` counts
// bytes even if a script stored the value as TEXT (where `length` would count characters).
const SQL_APPEND: &str =
    "INSERT INTO datatable (k, v, modified_at, created_at) VALUES (?1, ?2, ?3, ?3)
    ON CONFLICT(k) DO UPDATE SET v = CAST(v || excluded.v AS BLOB), modified_at = excluded.modified_at
    WHERE length(CAST(v AS BLOB)) + length(excluded.v) <= ?4";

const SQL_GET: &str = "SELECT v FROM datatable WHERE k = ?1";
const SQL_REMOVE: &str = "DELETE FROM datatable WHERE k = ?1";
const SQL_SCAN_FIRST: &str = "SELECT k, v FROM datatable ORDER BY k LIMIT ?1";
const SQL_SCAN_AFTER: &str = "SELECT k, v FROM datatable WHERE k > ?1 ORDER BY k LIMIT ?2";
const SQL_COUNT: &str = "SELECT count(*) FROM datatable";

/// One bucket's file and its connections.
///
/// SQLite allows one writer at a time per file, so the bucket keeps exactly one writer
/// connection behind a mutex: writers of this process queue on the mutex (each waiting on a
/// blocking-pool thread) rather than sleeping and retrying in SQLite's busy handler, and one
/// connection per bucket means one statement cache that stays warm. In WAL mode readers never block the writer
/// nor each other, so reads go to a small pool of read-only connections and run in parallel
/// with writes. Each connection is behind its own `std::sync::Mutex` because a
/// [`Connection`] is `Send` but not `Sync`; the mutexes are only ever taken on blocking-pool
/// threads.
pub(super) struct Bucket {
    pub(super) name: String,
    path: PathBuf,
    pub(super) writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// Whether a failed statement could have changed the file; decides how I/O errors are reported.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
}

impl Bucket {
    pub(super) fn open(root: &Path, name: &str) -> Result<Bucket> {
        let path = root.join(format!("{name}.sqlite3"));
        let at = |what: &str| format!("bucket {name:?}: {what} {}", path.display());
        let config = |what: &str, e: rusqlite::Error| Error::config(at(what)).with_source(e);

        let writer = Connection::open(&path).map_err(|e| config("cannot open", e))?;
        writer
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| config("cannot configure", e))?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| config("cannot switch to WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::config(at(&format!(
                "journal mode is {mode:?}, not WAL, for"
            ))));
        }
        // See the module docs: FULL makes every acknowledged commit durable.
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| config("cannot set synchronous = FULL on", e))?;
        writer
            .execute_batch(CREATE_TABLE)
            .map_err(|e| config("cannot create the datatable in", e))?;
        // An existing file may have been made by someone else: make sure the columns we use
        // are there, so a mismatch stops start-up instead of failing every request.
        writer
            .prepare("SELECT k, v, modified_at, created_at FROM datatable LIMIT 0")
            .map_err(|e| config("unexpected datatable columns in", e))?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

        let mut readers = Vec::with_capacity(READERS_PER_BUCKET);
        for _ in 0..READERS_PER_BUCKET {
            // Opened after the writer switched the file to WAL and created the table.
            let reader = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| config("cannot open for reading", e))?;
            reader
                .busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| config("cannot configure", e))?;
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            readers.push(Mutex::new(reader));
        }
        Ok(Bucket {
            name: name.to_string(),
            path,
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    fn writer(&self) -> Result<MutexGuard<'_, Connection>> {
        self.writer.lock().map_err(|_| self.poisoned("writer"))
    }

    /// A free reader if there is one, else waits for one, spreading waiters round-robin.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => return Err(self.poisoned("reader")),
            }
        }
        self.readers[start]
            .lock()
            .map_err(|_| self.poisoned("reader"))
    }

    fn poisoned(&self, which: &str) -> Error {
        Error::internal(format!(
            "bucket {:?}: {which} connection unusable after an earlier panic",
            self.name
        ))
    }

    fn sql(&self, op: Op, what: &str, e: rusqlite::Error) -> Error {
        sql_error(op, e).context(format!("bucket {:?}: {what}", self.name))
    }

    pub(super) fn put(&self, key: &[u8], value: &[u8], now: i64) -> Result<()> {
        let conn = self.writer()?;
        let mut stmt = conn
            .prepare_cached(SQL_PUT)
            .map_err(|e| self.sql(Op::Write, "put", e))?;
        stmt.execute((key, value, now))
            .map_err(|e| self.sql(Op::Write, "put", e))?;
        Ok(())
    }

    pub(super) fn append(&self, key: &[u8], value: &[u8], max: usize, now: i64) -> Result<()> {
        let conn = self.writer()?;
        let mut stmt = conn
            .prepare_cached(SQL_APPEND)
            .map_err(|e| self.sql(Op::Write, "append", e))?;
        let max_sql = i64::try_from(max).unwrap_or(i64::MAX);
        let changed = stmt
            .execute((key, value, now, max_sql))
            .map_err(|e| self.sql(Op::Write, "append", e))?;
        if changed == 0 {
            // The row exists and the guard refused: nothing was written.
            return Err(Error::invalid(format!(
                "appending {} bytes would make the value larger than {max} bytes; nothing changed",
                value.len()
            )));
        }
        Ok(())
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached(SQL_GET)
            .map_err(|e| self.sql(Op::Read, "get", e))?;
        stmt.query_row([key], |row| blob(row, 0))
            .optional()
            .map_err(|e| self.sql(Op::Read, "get", e))
    }

    pub(super) fn remove(&self, key: &[u8]) -> Result<()> {
        let conn = self.writer()?;
        let mut stmt = conn
            .prepare_cached(SQL_REMOVE)
            .map_err(|e| self.sql(Op::Write, "remove", e))?;
        stmt.execute([key])
            .map_err(|e| self.sql(Op::Write, "remove", e))?;
        Ok(())
    }

    pub(super) fn scan(&self, after: Option<&[u8]>, count: usize) -> Result<Vec<(Bytes, Bytes)>> {
        let conn = self.reader()?;
        let limit = i64::try_from(count).unwrap_or(i64::MAX);
        let row =
            |row: &rusqlite::Row<'_>| Ok((Bytes::from(blob(row, 0)?), Bytes::from(blob(row, 1)?)));
        let fail = |e| self.sql(Op::Read, "scan", e);
        let entries = match after {
            None => {
                let mut stmt = conn.prepare_cached(SQL_SCAN_FIRST).map_err(fail)?;
                let rows = stmt.query_map([limit], row).map_err(fail)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            }
            Some(after) => {
                let mut stmt = conn.prepare_cached(SQL_SCAN_AFTER).map_err(fail)?;
                let rows = stmt.query_map((after, limit), row).map_err(fail)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            }
        };
        entries.map_err(fail)
    }

    /// Writes a batch's entries for this bucket in one IMMEDIATE transaction: all or none.
    pub(super) fn put_group(&self, items: &[(Bytes, Bytes)], now: i64) -> Result<()> {
        let mut conn = self.writer()?;
        let fail = |e| self.sql(Op::Write, "batch put", e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        {
            let mut stmt = tx.prepare_cached(SQL_PUT).map_err(fail)?;
            for (key, value) in items {
                stmt.execute((&key[..], &value[..], now)).map_err(fail)?;
            }
        }
        // An error above drops `tx`, which rolls back: no element of the group was written.
        tx.commit().map_err(fail)
    }

    /// Removes a batch's keys for this bucket in one IMMEDIATE transaction: all or none.
    pub(super) fn remove_group(&self, keys: &[Bytes]) -> Result<()> {
        let mut conn = self.writer()?;
        let fail = |e| self.sql(Op::Write, "batch remove", e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        {
            let mut stmt = tx.prepare_cached(SQL_REMOVE).map_err(fail)?;
            for key in keys {
                stmt.execute([&key[..]]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    /// Reads a batch's keys for this bucket on one reader; each key has its own result.
    pub(super) fn get_group(&self, keys: &[Bytes]) -> Vec<Result<Bytes>> {
        let conn = match self.reader() {
            Ok(conn) => conn,
            Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
        };
        let fail = |e| self.sql(Op::Read, "batch get", e);
        let mut stmt = match conn.prepare_cached(SQL_GET) {
            Ok(stmt) => stmt,
            Err(e) => {
                let e = fail(e);
                return keys.iter().map(|_| Err(e.clone())).collect();
            }
        };
        keys.iter()
            .map(|key| {
                stmt.query_row([&key[..]], |row| blob(row, 0))
                    .optional()
                    .map_err(fail)?
                    .map(Bytes::from)
                    .ok_or_else(|| no_such_key(&self.name, key))
            })
            .collect()
    }

    pub(super) fn count(&self) -> Result<i64> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached(SQL_COUNT)
            .map_err(|e| self.sql(Op::Read, "count", e))?;
        stmt.query_row([], |row| row.get(0))
            .map_err(|e| self.sql(Op::Read, "count", e))
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

/// A column as bytes. Accepts TEXT as well as BLOB, in case a user's script wrote the row.
fn blob(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
    match row.get_ref(index)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b.to_vec()),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            index,
            other.data_type(),
            "expected a BLOB".into(),
        )),
    }
}

/// Maps an SQLite failure to the kind a client can act on; the cause stays attached.
pub(super) fn sql_error(op: Op, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let kind = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            // Another process holds the lock past the busy timeout: nothing was done.
            C::DatabaseBusy | C::DatabaseLocked => ErrorKind::Unavailable,
            // The disk or the file's permissions refused before anything was committed.
            C::DiskFull
            | C::CannotOpen
            | C::PermissionDenied
            | C::ReadOnly
            | C::OutOfMemory
            | C::FileLockingProtocolFailed => ErrorKind::Unavailable,
            // A write that hit an I/O error (for instance a failed fsync of the commit) may or
            // may not have reached the disk; a read that did changed nothing.
            C::SystemIoFailure => match op {
                Op::Read => ErrorKind::Unavailable,
                Op::Write => ErrorKind::OutcomeUnknown,
            },
            // Constraint violations, corruption, misuse: a bug or a damaged file.
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    Error::new(kind, "SQLite error").with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_errors_map_to_kinds() {
        use rusqlite::ffi;
        let failure = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        let cases = [
            (ffi::SQLITE_BUSY, Op::Write, ErrorKind::Unavailable),
            (ffi::SQLITE_LOCKED, Op::Read, ErrorKind::Unavailable),
            (ffi::SQLITE_FULL, Op::Write, ErrorKind::Unavailable),
            (ffi::SQLITE_IOERR, Op::Read, ErrorKind::Unavailable),
            (
                ffi::SQLITE_IOERR_FSYNC,
                Op::Write,
                ErrorKind::OutcomeUnknown,
            ),
            (ffi::SQLITE_CONSTRAINT, Op::Write, ErrorKind::Internal),
            (ffi::SQLITE_CORRUPT, Op::Read, ErrorKind::Internal),
        ];
        for (code, op, kind) in cases {
            let e = sql_error(op, failure(code));
            assert_eq!(e.kind(), kind, "code {code}");
            assert!(
                std::error::Error::source(&e).is_some(),
                "code {code}: cause lost"
            );
        }
        let e = sql_error(Op::Read, rusqlite::Error::QueryReturnedNoRows);
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
}
