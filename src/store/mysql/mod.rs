//! The MySQL/MariaDB backend (`BACKEND = mysql`).
//!
//! Keys hash to table partitions ([`placement`]); the [`directory`] says which host holds each
//! partition and which sibling holds its copy. The store keeps the directory as one immutable
//! [`Routing`] value (directory plus the pool and health of each host) behind an
//! [`ArcSwap`]: a request takes a snapshot without locking, and a reload swaps in a new one
//! atomically, so no request ever sees half a directory.
//!
//! - [`directory`]: the directory's tables, loading and checking them.
//! - [`placement`]: key to partition.
//! - [`watch`]: reading the directory (master, else its sibling), watching its version, the
//!   write lease.
//! - [`routing`]: master or sibling, for every read and write; [`health`]: each host UP or
//!   DOWN (probes, suspicion on lost connections).
//! - [`hosts`]: the service account's pools, connects and statements under their deadlines.
//! - [`coalesce`] and [`drain`]: concurrent gets and puts of one partition sent as one
//!   statement.
//! - [`batch`]: batch elements grouped by partition and cut into statement-sized chunks.
//! - [`sql`]: the statements, with every client value bound.
//! - [`report`]: the status and stats text.

pub mod batch;
pub mod coalesce;
pub mod directory;
pub mod drain;
pub mod health;
pub mod hosts;
pub mod placement;
pub mod report;
pub mod routing;
pub mod sql;
pub mod watch;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use mysql_async::{Params, Value};

use self::batch::{bytes, group, in_key_order, pad, per_chunk, write_chunks};
use self::coalesce::{PendingGet, PendingPut};
use self::directory::{Bucket, Partition};
use self::drain::{by_key, drain_gets, drain_puts};
use self::health::{Health, HealthSettings};
use self::hosts::{HostSettings, Pools};
use self::report::{stats_text, status_text};
use self::sql::size_class;
use self::watch::{watch_directory, DirectoryHosts};
use super::{Entry, KeyRef, ScanPage, Store};
use crate::config::MysqlConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::rules::{check_value_size, no_such_key, seed};

pub use self::routing::{HostRoute, Routing};

/// Prefix of this store's scan seeds: `m1:<partition id>:<hex of the last key>`.
const SEED_PREFIX: &str = "m1:";

/// What the store's parts share.
struct Inner {
    config: MysqlConfig,
    settings: HostSettings,
    routing: ArcSwap<Routing>,
    pools: Pools,
    health: Arc<Health>,
    directory: DirectoryHosts,
    /// When the directory was last read or its version last confirmed (the write lease).
    confirmed: Mutex<Instant>,
    /// The lease ran out and has not been renewed since (logged once each way).
    lease_lost: AtomicBool,
    /// Serialises reloads, so two never race to swap.
    reload: tokio::sync::Mutex<()>,
}

/// The MySQL store.
pub struct MysqlStore {
    inner: Arc<Inner>,
}

impl MysqlStore {
    /// Loads the directory (from the master, or its sibling when the master does not answer),
    /// probes every host once, and starts watching the directory's version and the hosts.
    pub async fn open(config: &MysqlConfig) -> Result<MysqlStore> {
        let settings = HostSettings::new(config);
        let directory = DirectoryHosts {
            master: (config.master.clone(), settings.pool(&config.master, 2)),
            sibling: config
                .slave
                .as_ref()
                .map(|s| (s.clone(), settings.pool(s, 2))),
        };
        let health = Health::new(HealthSettings {
            interval: config.probe_interval,
            timeout: config.probe_timeout,
            fall: config.fall_threshold,
            rise: config.rise_threshold,
        });
        let inner = Arc::new(Inner {
            config: config.clone(),
            settings,
            routing: ArcSwap::from_pointee(Routing::empty()),
            pools: Pools::default(),
            health,
            directory,
            confirmed: Mutex::new(Instant::now()),
            lease_lost: AtomicBool::new(false),
            reload: tokio::sync::Mutex::new(()),
        });
        match inner.reload().await {
            Ok(routing) => inner.serving(&routing).await,
            // Neither directory host answers: come up anyway (a service under a supervisor
            // should not flap), answer UNAVAILABLE, and keep trying.
            Err(e) if e.kind() == ErrorKind::Unavailable => tracing::warn!(
                error = %e,
                "waiting for the directory: every call is UNAVAILABLE until it answers; \
                 retrying with backoff"
            ),
            Err(e) => return Err(e),
        }
        tokio::spawn(watch_directory(Arc::downgrade(&inner)));
        Ok(MysqlStore { inner })
    }

    /// The current routing snapshot.
    pub fn routing(&self) -> Arc<Routing> {
        self.inner.routing.load_full()
    }

    /// Loads the directory now and swaps it in.
    ///
    /// [`ErrorKind::Unavailable`] when neither directory host answers.
    pub async fn reload(&self) -> Result<Arc<Routing>> {
        self.inner.reload().await
    }
}

#[async_trait]
impl Store for MysqlStore {
    async fn buckets(&self) -> Result<Vec<String>> {
        let routing = self.routing();
        routing.directory.check_loaded()?;
        Ok(routing.directory.buckets.keys().cloned().collect())
    }

    async fn put(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        check_value_size(value.len(), self.inner.config.max_value_size)?;
        let routing = self.routing();
        let id = routing.locate(bucket, &key)?.id;
        let queue = routing.queue(id)?;
        let (reply, done) = tokio::sync::oneshot::channel();
        if queue.push_put(PendingPut { key, value, reply }) {
            tokio::spawn(drain_puts(self.inner.clone(), routing, queue, id));
        }
        done.await
            .map_err(|_| Error::internal("a coalesced put was dropped unanswered"))?
    }

    async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes> {
        let routing = self.routing();
        let id = routing.locate(bucket, &key)?.id;
        let queue = routing.queue(id)?;
        let (reply, done) = tokio::sync::oneshot::channel();
        if queue.push_get(PendingGet {
            key: key.clone(),
            reply,
        }) {
            tokio::spawn(drain_gets(self.inner.clone(), routing, queue, id));
        }
        done.await
            .map_err(|_| Error::internal("a coalesced get was dropped unanswered"))??
            .ok_or_else(|| no_such_key(bucket, &key))
    }

    async fn remove(&self, bucket: &str, key: Bytes) -> Result<()> {
        let routing = self.routing();
        let part = routing.locate(bucket, &key)?;
        let params = Params::Positional(vec![bytes(&key)]);
        self.inner
            .write(&routing, part, &part.sql.remove, params, "remove")
            .await?;
        Ok(())
    }

    async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        let max = self.inner.config.max_value_size;
        check_value_size(value.len(), max)?;
        let routing = self.routing();
        let part = routing.locate(bucket, &key)?;
        let params = Params::Positional(vec![bytes(&key), bytes(&value), Value::UInt(max as u64)]);
        match self
            .inner
            .write(&routing, part, &part.sql.append, params, "append")
            .await
        {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => Err(Error::invalid(format!(
                "appending {} bytes would make the value larger than {max} bytes; nothing changed",
                value.len()
            ))),
            other => other.map(|_| ()),
        }
    }

    async fn scan(&self, bucket: &str, seed: Bytes, count: usize) -> Result<ScanPage> {
        let routing = self.routing();
        let b = routing.directory.bucket(bucket)?;
        let (mut index, mut after) = parse_seed(b, &seed)?;
        let mut entries = Vec::with_capacity(count.min(1024));
        let mut last: Option<(u64, Vec<u8>)> = None;
        // Partitions in directory order, each in key order, continuing strictly after the last
        // key returned: a key lives in exactly one partition, so every key present for the whole
        // walk is returned exactly once.
        while index < b.partitions.len() && entries.len() < count {
            let part = &b.partitions[index];
            let need = count - entries.len();
            let params = Params::Positional(vec![Value::Bytes(after), Value::UInt(need as u64)]);
            let rows = self
                .inner
                .read::<(Vec<u8>, Vec<u8>)>(&routing, part, &part.sql.scan, params, "scan")
                .await?;
            let full = rows.len() == need;
            if let Some((k, _)) = rows.last() {
                last = Some((part.id, k.clone()));
            }
            entries.extend(
                rows.into_iter()
                    .map(|(k, v)| (Bytes::from(k), Bytes::from(v))),
            );
            if full {
                break;
            }
            index += 1;
            after = Vec::new();
        }
        let seed = match last {
            Some((id, key)) => make_seed(id, &key),
            None => seed,
        };
        Ok(ScanPage { entries, seed })
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Vec<Result<()>> {
        let routing = self.routing();
        let max = self.inner.config.max_value_size;
        let keys: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|e| (e.bucket.as_str(), &e.key[..]))
            .collect();
        let (groups, mut results) = group(&routing, &keys, |i| {
            check_value_size(entries[i].value.len(), max)
        });
        let groups = in_key_order(groups, &keys);
        let statement = |part: &Partition, chunk: &[usize]| {
            // Not padded to a size class as reads are: a repeated row costs InnoDB a
            // duplicate-key check that measured dearer than preparing the statement.
            let params = chunk
                .iter()
                .flat_map(|&i| [bytes(&entries[i].key), bytes(&entries[i].value)])
                .collect();
            (sql::put_many(&part.table_sql, chunk.len()), params)
        };
        let size = |i: usize| entries[i].value.len();
        write_chunks(
            &self.inner,
            &routing,
            groups,
            size,
            statement,
            "putList",
            &mut results,
        )
        .await;
        results
    }

    async fn get_many(&self, keys: Vec<KeyRef>) -> Vec<Result<Bytes>> {
        let routing = self.routing();
        let refs: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|k| (k.bucket.as_str(), &k.key[..]))
            .collect();
        let (groups, failures) = group(&routing, &refs, |_| Ok(()));
        let mut results: Vec<Result<Bytes>> = failures
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.and_then(|()| Err(no_such_key(&keys[i].bucket, &keys[i].key))))
            .collect();
        let routing = &routing;
        let outcomes = per_chunk(
            groups,
            |_| 0,
            |part, chunk| {
                let mut params: Vec<Value> = chunk.iter().map(|&i| bytes(&keys[i].key)).collect();
                pad(&mut params, 1, size_class(chunk.len()));
                let stmt = sql::get_many(&part.table_sql, params.len());
                async move {
                    let r = self.inner.read::<(Vec<u8>, Vec<u8>)>(
                        routing,
                        part,
                        &stmt,
                        Params::Positional(params),
                        "getList",
                    );
                    r.await
                }
            },
        )
        .await;
        for (positions, outcome) in outcomes {
            match outcome {
                Ok(rows) => {
                    let found = by_key(rows);
                    for i in positions {
                        if let Some(v) = found.get(&keys[i].key[..]) {
                            results[i] = Ok(v.clone());
                        }
                    }
                }
                Err(e) => {
                    for i in positions {
                        results[i] = Err(e.clone());
                    }
                }
            }
        }
        results
    }

    async fn remove_many(&self, keys: Vec<KeyRef>) -> Vec<Result<()>> {
        let routing = self.routing();
        let refs: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|k| (k.bucket.as_str(), &k.key[..]))
            .collect();
        let (groups, mut results) = group(&routing, &refs, |_| Ok(()));
        let statement = |part: &Partition, chunk: &[usize]| {
            let mut params: Vec<Value> = chunk.iter().map(|&i| bytes(&keys[i].key)).collect();
            pad(&mut params, 1, size_class(chunk.len()));
            (sql::remove_many(&part.table_sql, params.len()), params)
        };
        write_chunks(
            &self.inner,
            &routing,
            groups,
            |_| 0,
            statement,
            "removeList",
            &mut results,
        )
        .await;
        results
    }

    async fn admin(&self, op: &str, _data: &str) -> Result<Option<String>> {
        match op {
            "load_partitions" => {
                let routing = self.reload().await?;
                Ok(Some(routing.directory.to_string()))
            }
            "status" => Ok(Some(status_text(&self.routing()))),
            "stats" => Ok(Some(stats_text(&self.routing()))),
            _ => Ok(None),
        }
    }

    fn max_value_size(&self) -> usize {
        self.inner.config.max_value_size
    }

    async fn close(&self) {
        self.inner.health.close().await;
        self.inner.pools.close().await;
        for (_, pool) in [
            Some(&self.inner.directory.master),
            self.inner.directory.sibling.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = pool.clone().disconnect().await;
        }
    }
}

/// The partition index and the last key of a seed this store made; `""` is the start.
fn parse_seed(bucket: &Bucket, seed: &[u8]) -> Result<(usize, Vec<u8>)> {
    if seed.is_empty() {
        return Ok((0, Vec::new()));
    }
    let bad = || Error::invalid("scan seed is not one this server made for this bucket");
    let text = std::str::from_utf8(seed).map_err(|_| bad())?;
    let rest = text.strip_prefix(SEED_PREFIX).ok_or_else(bad)?;
    let (id, hex) = rest.split_once(':').ok_or_else(bad)?;
    let id: u64 = id.parse().map_err(|_| bad())?;
    let key = seed::decode_key(hex).ok_or_else(bad)?;
    let index = bucket.partitions.iter().position(|p| p.id == id).ok_or_else(|| {
        Error::invalid(format!(
            "scan seed names partition {id}, which bucket `{}` no longer has (the directory changed); start the scan again",
            bucket.name
        ))
    })?;
    Ok((index, key))
}

fn make_seed(partition: u64, key: &[u8]) -> Bytes {
    seed::encode(&format!("{SEED_PREFIX}{partition}:"), key)
}
