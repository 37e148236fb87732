//! The embedded store (`BACKEND = disk`): one SQLite file per bucket.
//!
//! Each served bucket `B` lives in `<DISK_DOC_ROOT>/B.sqlite3`, in one table with the same
//! column names as the MySQL backend's datatables, so that users' scripts can read either:
//!
//! ```sql
//! CREATE TABLE datatable (
//!     k           BLOB PRIMARY KEY,  -- the key; BLOBs compare with memcmp, so byte order
//!     v           BLOB NOT NULL,     -- the value
//!     modified_at INTEGER NOT NULL,  -- Unix seconds (UTC) of the last put/append
//!     created_at  INTEGER NOT NULL   -- Unix seconds (UTC) of the write that created the key
//! ) WITHOUT ROWID
//! ```
//!
//! Scripts that write to the table should bind keys and values as BLOBs: SQLite orders TEXT
//! before every BLOB, so a TEXT key would fall outside the byte order that scans walk.
//!
//! Durability: the files use WAL with `synchronous = FULL`. With `NORMAL`, a WAL commit is not
//! synced until the next checkpoint, so a power cut may roll back transactions whose `Ok` was
//! already sent. `FULL` syncs the WAL on every commit, which is what "an acknowledgement means
//! committed durably" (see [`Store`]) needs.
//!
//! Concurrency: every SQLite call runs on tokio's blocking pool ([`tokio::task::spawn_blocking`]),
//! never on an async worker. Each bucket keeps one writer connection and a few readers (see
//! `Bucket` below for why).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{Entry, KeyRef, ScanPage, Store};
use crate::error::{Error, ErrorKind, Result};

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

/// Longest bucket name; the name becomes a file name.
const MAX_BUCKET_NAME: usize = 64;

/// Prefix of the scan seeds this store makes: `k:` + lowercase hex of the last key returned.
const SEED_PREFIX: &str = "k:";

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

/// The embedded store: one SQLite file per bucket under a root directory.
pub struct DiskStore {
    root: PathBuf,
    buckets: BTreeMap<String, Arc<Bucket>>,
    max_value_size: usize,
}

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
struct Bucket {
    name: String,
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// A batch's elements for one bucket: their positions in the batch, and the elements.
struct Group<I> {
    bucket: Arc<Bucket>,
    indexes: Vec<usize>,
    items: Vec<I>,
}

/// Whether a failed statement could have changed the file; decides how I/O errors are reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

impl DiskStore {
    /// Opens (creating when missing) the directory `root` and one `<root>/<bucket>.sqlite3` per
    /// name in `buckets`; the store serves exactly these buckets. `max_value_size` is the
    /// largest value `put` and `append` accept, in bytes.
    ///
    /// Blocking: call it at start-up, before serving (or from `spawn_blocking`).
    ///
    /// Fails with [`ErrorKind::Config`] for a bucket name that is not 1 to 64 characters of
    /// `[A-Za-z0-9_-]` (it becomes a file name), for names listed twice (compared ignoring ASCII
    /// case, as the files would collide on case-insensitive file systems), for a root that
    /// cannot be created, and for a file that cannot be opened or holds a `datatable` without
    /// the expected columns.
    pub fn open(root: &Path, buckets: &[String], max_value_size: usize) -> Result<DiskStore> {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for name in buckets {
            check_bucket_name(name)?;
            if let Some(other) = seen.insert(name.to_ascii_lowercase(), name) {
                return Err(Error::config(format!(
                    "bucket {name:?} is listed twice (as {other:?}; names are compared ignoring case)"
                )));
            }
        }
        std::fs::create_dir_all(root).map_err(|e| {
            Error::config(format!(
                "DISK_DOC_ROOT: cannot create directory {}",
                root.display()
            ))
            .with_source(e)
        })?;
        let mut opened = BTreeMap::new();
        for name in buckets {
            let bucket = Bucket::open(root, name)?;
            opened.insert(name.clone(), Arc::new(bucket));
        }
        Ok(DiskStore {
            root: root.to_path_buf(),
            buckets: opened,
            max_value_size,
        })
    }

    /// The directory holding the bucket files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket(&self, name: &str) -> Result<Arc<Bucket>> {
        self.buckets.get(name).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NoSuchBucket,
                format!("bucket {name:?} is not served by this server"),
            )
        })
    }

    fn check_size(&self, bucket: &str, key: &[u8], len: usize) -> Result<()> {
        if len > self.max_value_size {
            return Err(Error::invalid(format!(
                "value of {len} bytes for key {} in bucket {bucket:?} exceeds the limit of {} bytes",
                show_key(key),
                self.max_value_size
            )));
        }
        Ok(())
    }

    /// Runs a batch: elements already failed (unknown bucket, oversize value) keep their error;
    /// the others are grouped by bucket and each group is handed to `run` on the blocking pool,
    /// all groups at once. `run` returns one result per element of its group, in order.
    async fn batch<I, T, F>(&self, items: Vec<(String, Result<I>)>, run: F) -> Vec<Result<T>>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(&Bucket, Vec<I>) -> Vec<Result<T>> + Clone + Send + 'static,
    {
        let mut results: Vec<Option<Result<T>>> = Vec::with_capacity(items.len());
        let mut groups: BTreeMap<String, Group<I>> = BTreeMap::new();
        for (index, (name, item)) in items.into_iter().enumerate() {
            // An unknown bucket is reported before anything else wrong with the element.
            let item = self.bucket(&name).and_then(|b| item.map(|item| (b, item)));
            match item {
                Err(e) => results.push(Some(Err(e))),
                Ok((bucket, item)) => {
                    results.push(None);
                    let group = groups.entry(name).or_insert_with(|| Group {
                        bucket,
                        indexes: Vec::new(),
                        items: Vec::new(),
                    });
                    group.indexes.push(index);
                    group.items.push(item);
                }
            }
        }
        // spawn_blocking starts each task at once, so groups of different buckets run in
        // parallel even though they are awaited one after the other.
        let tasks: Vec<_> = groups
            .into_values()
            .map(|group| {
                let run = run.clone();
                let Group {
                    bucket,
                    indexes,
                    items,
                } = group;
                let task = tokio::task::spawn_blocking(move || run(&bucket, items));
                (indexes, task)
            })
            .collect();
        for (indexes, task) in tasks {
            let outcome = match task.await {
                Ok(outcome) if outcome.len() == indexes.len() => outcome,
                Ok(_) => {
                    let e = Error::internal("disk store: batch group returned a wrong count");
                    indexes.iter().map(|_| Err(duplicate(&e))).collect()
                }
                Err(join) => {
                    let e = join_error(join);
                    indexes.iter().map(|_| Err(duplicate(&e))).collect()
                }
            };
            for (index, result) in indexes.into_iter().zip(outcome) {
                results[index] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("disk store: batch element lost"))))
            .collect()
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("root", &self.root)
            .field("buckets", &self.buckets.keys().collect::<Vec<_>>())
            .field("max_value_size", &self.max_value_size)
            .finish()
    }
}

/// Runs blocking SQLite work off the async workers; a panic in it becomes an internal error.
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(join_error)?
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::internal("disk store: blocking task failed").with_source(e)
}

#[async_trait]
impl Store for DiskStore {
    async fn buckets(&self) -> Result<Vec<String>> {
        Ok(self.buckets.keys().cloned().collect())
    }

    async fn put(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        let b = self.bucket(bucket)?;
        self.check_size(bucket, &key, value.len())?;
        blocking(move || b.put(&key, &value, now())).await
    }

    async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes> {
        let b = self.bucket(bucket)?;
        blocking(move || {
            b.get(&key)?
                .map(Bytes::from)
                .ok_or_else(|| no_such_key(&b.name, &key))
        })
        .await
    }

    async fn remove(&self, bucket: &str, key: Bytes) -> Result<()> {
        let b = self.bucket(bucket)?;
        blocking(move || b.remove(&key)).await
    }

    async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        let b = self.bucket(bucket)?;
        // A key that does not exist yet takes the INSERT path, which the SQL guard does not
        // cover; a value over the limit on its own can never be appended anyway.
        self.check_size(bucket, &key, value.len())?;
        let max = self.max_value_size;
        blocking(move || b.append(&key, &value, max, now())).await
    }

    async fn scan(&self, bucket: &str, seed: Bytes, count: usize) -> Result<ScanPage> {
        let b = self.bucket(bucket)?;
        let after = decode_seed(&seed)?;
        if count == 0 {
            return Ok(ScanPage {
                entries: Vec::new(),
                seed,
            });
        }
        // Why this walk returns every key present for the whole walk exactly once, even while
        // other clients write: each page is one statement (one consistent WAL snapshot) that
        // returns keys strictly greater than the last key of the previous page, in byte order.
        // So the keys a walk returns are strictly increasing across pages: none can come twice.
        // A key K present from start to end is greater than every key returned before it is
        // reached, so some page's snapshot (which contains K) starts below K and either returns
        // K or fills up with keys below K, leaving K for a later page. Writes to other keys only
        // change which other keys appear; they cannot move the position past K.
        let page = blocking(move || b.scan(after.as_deref(), count)).await?;
        let seed = match page.last() {
            Some((last, _)) => encode_seed(last),
            None => seed,
        };
        Ok(ScanPage {
            entries: page,
            seed,
        })
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Vec<Result<()>> {
        let items = entries
            .into_iter()
            .map(|e| {
                let checked = self
                    .check_size(&e.bucket, &e.key, e.value.len())
                    .map(|()| (e.key, e.value));
                (e.bucket, checked)
            })
            .collect();
        self.batch(items, |bucket: &Bucket, items: Vec<(Bytes, Bytes)>| {
            let n = items.len();
            match bucket.put_group(&items, now()) {
                Ok(()) => (0..n).map(|_| Ok(())).collect(),
                Err(e) => (0..n).map(|_| Err(duplicate(&e))).collect(),
            }
        })
        .await
    }

    async fn get_many(&self, keys: Vec<KeyRef>) -> Vec<Result<Bytes>> {
        let items = keys.into_iter().map(|k| (k.bucket, Ok(k.key))).collect();
        self.batch(items, |bucket: &Bucket, keys: Vec<Bytes>| {
            bucket.get_group(&keys)
        })
        .await
    }

    async fn remove_many(&self, keys: Vec<KeyRef>) -> Vec<Result<()>> {
        let items = keys.into_iter().map(|k| (k.bucket, Ok(k.key))).collect();
        self.batch(items, |bucket: &Bucket, keys: Vec<Bytes>| {
            let n = keys.len();
            match bucket.remove_group(&keys) {
                Ok(()) => (0..n).map(|_| Ok(())).collect(),
                Err(e) => (0..n).map(|_| Err(duplicate(&e))).collect(),
            }
        })
        .await
    }

    async fn admin(&self, op: &str, _data: &str) -> Result<Option<String>> {
        match op {
            "status" => {
                let buckets: Vec<Arc<Bucket>> = self.buckets.values().cloned().collect();
                let mut text = format!(
                    "backend: disk\nroot: {}\nmax_value_size: {} bytes\nbuckets: {}\n",
                    self.root.display(),
                    self.max_value_size,
                    buckets.len()
                );
                // count(*) walks the whole table; fine for an operator's command.
                let counts = blocking(move || {
                    buckets
                        .iter()
                        .map(|b| Ok((b.name.clone(), b.count()?)))
                        .collect::<Result<Vec<_>>>()
                })
                .await?;
                for (name, rows) in counts {
                    text.push_str(&format!("bucket {name}: {rows} rows\n"));
                }
                Ok(Some(text))
            }
            "load_partitions" => Ok(Some("disk backend has no partitions".to_string())),
            _ => Ok(None),
        }
    }

    fn max_value_size(&self) -> usize {
        self.max_value_size
    }
}

impl Bucket {
    fn open(root: &Path, name: &str) -> Result<Bucket> {
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

    fn put(&self, key: &[u8], value: &[u8], now: i64) -> Result<()> {
        let conn = self.writer()?;
        let mut stmt = conn
            .prepare_cached(SQL_PUT)
            .map_err(|e| self.sql(Op::Write, "put", e))?;
        stmt.execute((key, value, now))
            .map_err(|e| self.sql(Op::Write, "put", e))?;
        Ok(())
    }

    fn append(&self, key: &[u8], value: &[u8], max: usize, now: i64) -> Result<()> {
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
                "appending {} bytes to key {} in bucket {:?} would exceed the limit of {max} bytes",
                value.len(),
                show_key(key),
                self.name
            )));
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached(SQL_GET)
            .map_err(|e| self.sql(Op::Read, "get", e))?;
        stmt.query_row([key], |row| blob(row, 0))
            .optional()
            .map_err(|e| self.sql(Op::Read, "get", e))
    }

    fn remove(&self, key: &[u8]) -> Result<()> {
        let conn = self.writer()?;
        let mut stmt = conn
            .prepare_cached(SQL_REMOVE)
            .map_err(|e| self.sql(Op::Write, "remove", e))?;
        stmt.execute([key])
            .map_err(|e| self.sql(Op::Write, "remove", e))?;
        Ok(())
    }

    fn scan(&self, after: Option<&[u8]>, count: usize) -> Result<Vec<(Bytes, Bytes)>> {
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
    fn put_group(&self, items: &[(Bytes, Bytes)], now: i64) -> Result<()> {
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
    fn remove_group(&self, keys: &[Bytes]) -> Result<()> {
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
    fn get_group(&self, keys: &[Bytes]) -> Vec<Result<Bytes>> {
        let conn = match self.reader() {
            Ok(conn) => conn,
            Err(e) => return keys.iter().map(|_| Err(duplicate(&e))).collect(),
        };
        let fail = |e| self.sql(Op::Read, "batch get", e);
        let mut stmt = match conn.prepare_cached(SQL_GET) {
            Ok(stmt) => stmt,
            Err(e) => {
                let e = fail(e);
                return keys.iter().map(|_| Err(duplicate(&e))).collect();
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

    fn count(&self) -> Result<i64> {
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
fn sql_error(op: Op, e: rusqlite::Error) -> Error {
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

/// A copy of `e` for each element of a failed group (the cause is kept in the message).
fn duplicate(e: &Error) -> Error {
    Error::new(e.kind(), e.to_string())
}

fn no_such_key(bucket: &str, key: &[u8]) -> Error {
    Error::new(
        ErrorKind::NoSuchKey,
        format!("no key {} in bucket {bucket:?}", show_key(key)),
    )
}

/// A key for messages: escaped, and cut short when long.
fn show_key(key: &[u8]) -> String {
    const SHOWN: usize = 64;
    let shown = &key[..key.len().min(SHOWN)];
    let more = if key.len() > SHOWN { "..." } else { "" };
    format!("\"{}{more}\"", shown.escape_ascii())
}

/// Bucket names become file names: allow only `[A-Za-z0-9_-]`, 1 to 64 characters.
fn check_bucket_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BUCKET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "bucket name {name:?} is not 1 to {MAX_BUCKET_NAME} characters of [A-Za-z0-9_-]"
        )))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The seed that continues a walk after `last`: `k:` + lowercase hex, valid UTF-8 because
/// clients receive seeds as Thrift `string`s.
fn encode_seed(last: &[u8]) -> Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut seed = Vec::with_capacity(SEED_PREFIX.len() + 2 * last.len());
    seed.extend_from_slice(SEED_PREFIX.as_bytes());
    for b in last {
        seed.push(HEX[usize::from(b >> 4)]);
        seed.push(HEX[usize::from(b & 0x0f)]);
    }
    Bytes::from(seed)
}

/// `None` for the empty seed (start of the bucket), else the last key of the previous page.
fn decode_seed(seed: &[u8]) -> Result<Option<Vec<u8>>> {
    if seed.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("scan seed was not made by this store (disk backend)");
    let hex = seed.strip_prefix(SEED_PREFIX.as_bytes()).ok_or_else(bad)?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;

    const MAX: usize = 4096;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn open(root: &Path) -> DiskStore {
        DiskStore::open(root, &names(&["alpha", "beta"]), MAX).expect("open store")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn disk_store_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        contract::check_store(&store, "alpha").await;
        // The suite leaves the bucket empty, so it can run again, here on the other bucket.
        contract::check_store(&store, "beta").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn scans_walk_keys_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let keys: [&[u8]; 6] = [b"b", b"a\xff", b"\x00", b"a", b"\xff\x00", b"ab"];
        for k in keys {
            store
                .put("alpha", Bytes::copy_from_slice(k), Bytes::new())
                .await
                .unwrap();
        }
        let mut walked = Vec::new();
        let mut seed = Bytes::new();
        loop {
            let page = store.scan("alpha", seed, 4).await.unwrap();
            let n = page.entries.len();
            walked.extend(page.entries.into_iter().map(|(k, _)| k.to_vec()));
            seed = page.seed;
            if n < 4 {
                break;
            }
        }
        let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        sorted.sort();
        assert_eq!(walked, sorted);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rows_are_plain_and_readable_by_other_programs() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store
            .put(
                "alpha",
                Bytes::from_static(b"k\x00\xff"),
                Bytes::from_static(b"v\x01"),
            )
            .await
            .unwrap();
        let path = dir.path().join("alpha.sqlite3");
        assert!(path.is_file(), "{} missing", path.display());

        // A separate connection, as a user's script would open, while the store is open.
        let conn = Connection::open(&path).unwrap();
        let mut columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('datatable') ORDER BY cid")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        columns.sort();
        assert_eq!(columns, ["created_at", "k", "modified_at", "v"]);
        let (k, v, modified, created): (Vec<u8>, Vec<u8>, i64, i64) = conn
            .query_row(
                "SELECT k, v, modified_at, created_at FROM datatable",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(k, b"k\x00\xff");
        assert_eq!(v, b"v\x01");
        assert!(
            created <= modified,
            "created {created} > modified {modified}"
        );
        assert!(
            (now() - created).abs() < 60,
            "created_at {created} is not Unix seconds"
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn append_stores_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let key = Bytes::from_static(b"a");
        store
            .append("alpha", key.clone(), Bytes::from_static(b"x\x00"))
            .await
            .unwrap();
        store
            .append("alpha", key.clone(), Bytes::from_static(b"\xffy"))
            .await
            .unwrap();
        let conn = Connection::open(dir.path().join("alpha.sqlite3")).unwrap();
        let (kind, v): (String, Vec<u8>) = conn
            .query_row("SELECT typeof(v), v FROM datatable", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(kind, "blob");
        assert_eq!(v, b"x\x00\xffy");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store
                .put(
                    "beta",
                    Bytes::from_static(b"kept"),
                    Bytes::from_static(b"yes"),
                )
                .await
                .unwrap();
        }
        let store = open(dir.path());
        let v = store
            .get("beta", Bytes::from_static(b"kept"))
            .await
            .unwrap();
        assert_eq!(v, Bytes::from_static(b"yes"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn put_keeps_created_at_and_sets_modified_at() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let key = Bytes::from_static(b"key");
        store
            .put("alpha", key.clone(), Bytes::from_static(b"1"))
            .await
            .unwrap();
        // Backdate the row instead of sleeping across a second boundary.
        let conn = Connection::open(dir.path().join("alpha.sqlite3")).unwrap();
        conn.execute(
            "UPDATE datatable SET created_at = 100, modified_at = 100",
            [],
        )
        .unwrap();
        store
            .put("alpha", key.clone(), Bytes::from_static(b"2"))
            .await
            .unwrap();
        let times = |conn: &Connection| -> (i64, i64) {
            conn.query_row("SELECT created_at, modified_at FROM datatable", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
        };
        let (created, modified) = times(&conn);
        assert_eq!(created, 100);
        assert!(modified >= now() - 60, "modified_at {modified} not updated");
        conn.execute("UPDATE datatable SET modified_at = 100", [])
            .unwrap();
        store
            .append("alpha", key.clone(), Bytes::from_static(b"3"))
            .await
            .unwrap();
        let (created, modified) = times(&conn);
        assert_eq!(created, 100);
        assert!(modified >= now() - 60, "append did not set modified_at");
        assert_eq!(
            store.get("alpha", key).await.unwrap(),
            Bytes::from_static(b"23")
        );
    }

    #[test]
    fn open_refuses_bad_bucket_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let long = "x".repeat(65);
        for bad in [
            "x; DROP TABLE",
            "../etc",
            "",
            "a/b",
            "a.b",
            "ä",
            long.as_str(),
        ] {
            let err = DiskStore::open(&root, &names(&["ok", bad]), MAX).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad:?}: {err}");
        }
        for twice in [["a", "a"], ["a", "A"]] {
            let err = DiskStore::open(&root, &names(&twice), MAX).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{twice:?}: {err}");
        }
        assert!(!dir.path().join("etc.sqlite3").exists());
        // Names are checked before anything is created.
        assert!(!root.exists());
        assert!(DiskStore::open(&root, &names(&[&"x".repeat(64), "a-b_C9"]), MAX).is_ok());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_bucket_creates_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let k = || Bytes::from_static(b"k");
        let none = "gamma";
        let expect = |r: Result<()>| assert_eq!(r.unwrap_err().kind(), ErrorKind::NoSuchBucket);
        expect(store.put(none, k(), k()).await);
        expect(store.append(none, k(), k()).await);
        expect(store.remove(none, k()).await);
        expect(store.get(none, k()).await.map(drop));
        expect(store.scan(none, Bytes::new(), 10).await.map(drop));
        let err = store.get(none, k()).await.unwrap_err();
        assert!(err.message().contains("gamma"), "{err}");
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert!(
            files
                .iter()
                .all(|f| f.starts_with("alpha.") || f.starts_with("beta.")),
            "{files:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn admin_reports_status() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store
            .put("beta", Bytes::from_static(b"k"), Bytes::from_static(b"v"))
            .await
            .unwrap();
        let status = store.admin("status", "").await.unwrap().unwrap();
        assert!(status.contains("backend: disk"), "{status}");
        assert!(status.contains("bucket alpha: 0 rows"), "{status}");
        assert!(status.contains("bucket beta: 1 rows"), "{status}");
        let partitions = store.admin("load_partitions", "").await.unwrap();
        assert_eq!(
            partitions.as_deref(),
            Some("disk backend has no partitions")
        );
        assert_eq!(store.admin("frobnicate", "").await.unwrap(), None);
        assert_eq!(store.max_value_size(), MAX);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn poisoned_connection_is_an_internal_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let bucket = store.bucket("alpha").unwrap();
        let poisoner = std::thread::spawn(move || {
            let _guard = bucket.writer.lock();
            panic!("poisoning the writer on purpose");
        });
        assert!(poisoner.join().is_err());
        let k = || Bytes::from_static(b"k");
        let err = store.put("alpha", k(), k()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
        let results = store
            .put_many(vec![
                Entry {
                    bucket: "alpha".into(),
                    key: k(),
                    value: k(),
                },
                Entry {
                    bucket: "beta".into(),
                    key: k(),
                    value: k(),
                },
            ])
            .await;
        assert_eq!(results[0].as_ref().unwrap_err().kind(), ErrorKind::Internal);
        assert!(results[1].is_ok(), "{:?}", results[1]);
        // Reads use their own connections and still work.
        let err = store.get("alpha", k()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoSuchKey);
    }

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

    #[test]
    fn seeds_round_trip_and_refuse_garbage() {
        for key in [&b""[..], b"a", b"\x00\xff\x10", "ключ".as_bytes()] {
            let seed = encode_seed(key);
            assert!(std::str::from_utf8(&seed).is_ok());
            assert_eq!(decode_seed(&seed).unwrap().as_deref(), Some(key));
        }
        assert_eq!(&encode_seed(b"\xab\x01")[..], b"k:ab01");
        assert_eq!(decode_seed(b"").unwrap(), None);
        for bad in [&b"x"[..], b"k", b"k:0", b"k:zz", b"K:00", b"k:0g", b"\xff"] {
            let err = decode_seed(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }
}
