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

mod bucket;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use self::bucket::Bucket;
use super::{Entry, KeyRef, ScanPage, Store};
use crate::error::{Error, ErrorKind, Result};
use crate::rules::{check_bucket_name, check_value_size, no_such_key, seed};

/// Prefix of the scan seeds this store makes: `k:` + lowercase hex of the last key returned.
const SEED_PREFIX: &str = "k:";

/// The embedded store: one SQLite file per bucket under a root directory.
pub struct DiskStore {
    root: PathBuf,
    buckets: BTreeMap<String, Arc<Bucket>>,
    max_value_size: usize,
}

/// A batch's elements for one bucket: their positions in the batch, and the elements.
struct Group<I> {
    bucket: Arc<Bucket>,
    indexes: Vec<usize>,
    items: Vec<I>,
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
            check_bucket_name(name).map_err(Error::config)?;
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

    fn bucket(&self, name: &str) -> Result<Arc<Bucket>> {
        self.buckets.get(name).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NoSuchBucket,
                format!("bucket {name:?} is not served by this server"),
            )
        })
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
                    indexes.iter().map(|_| Err(e.clone())).collect()
                }
                Err(join) => {
                    let e = join_error(join);
                    indexes.iter().map(|_| Err(e.clone())).collect()
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
        check_value_size(value.len(), self.max_value_size)?;
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
        check_value_size(value.len(), self.max_value_size)?;
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
                let checked =
                    check_value_size(e.value.len(), self.max_value_size).map(|()| (e.key, e.value));
                (e.bucket, checked)
            })
            .collect();
        self.batch(items, |bucket: &Bucket, items: Vec<(Bytes, Bytes)>| {
            let n = items.len();
            match bucket.put_group(&items, now()) {
                Ok(()) => (0..n).map(|_| Ok(())).collect(),
                Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
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
                Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
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

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The seed that continues a walk after `last`.
fn encode_seed(last: &[u8]) -> Bytes {
    seed::encode(SEED_PREFIX, last)
}

/// `None` for the empty seed (start of the bucket), else the last key of the previous page.
fn decode_seed(text: &[u8]) -> Result<Option<Vec<u8>>> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("scan seed was not made by this store (disk backend)");
    let hex = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.strip_prefix(SEED_PREFIX))
        .ok_or_else(bad)?;
    seed::decode_key(hex).map(Some).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;
    use rusqlite::Connection;

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
