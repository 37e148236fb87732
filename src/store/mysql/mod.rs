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
//! - [`scan`]: walks in stretches of the hash range, with seeds that outlive a split or merge.
//! - [`replication`]: what each host has written and applied, and the writes acknowledged on
//!   it; [`consistent`]: reads from a sibling that never go back in time.
//! - [`relocate`]: a request that meets a partition at its old home (a move's cutover) waits
//!   for the directory and goes to the new one.
//! - [`sql`]: the statements, with every client value bound.
//! - [`report`]: the status and stats text.

pub mod batch;
pub mod coalesce;
pub mod consistent;
pub mod directory;
pub mod drain;
pub mod health;
pub mod hosts;
pub mod placement;
pub mod relocate;
pub mod replication;
pub mod report;
pub mod routing;
pub mod scan;
pub mod sql;
pub mod watch;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use mysql_async::{Params, Value};

use self::batch::bytes;
use self::coalesce::{Kind, PendingGet, PendingPut};
use self::consistent::FailoverCounters;
use self::drain::lead;
use self::health::{Health, HealthSettings};
use self::hosts::{HostSettings, Pools};
use self::report::{stats_text, status_text};
use self::watch::{watch_directory, DirectoryHosts};
use super::view::{ClusterView, Distribution};
use super::{Entry, KeyRef, ScanPage, Store};
use crate::config::MysqlConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::GtidPos;
use crate::rules::{check_value_size, no_such_key};

pub use self::routing::{HostRoute, Routing};

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
    /// Serialises the directory reads of requests that met a moved partition
    /// ([`relocate`]), and when the last of them started.
    refreshing: tokio::sync::Mutex<()>,
    refreshed: Mutex<Option<Instant>>,
    /// How reads during outages went.
    failover: FailoverCounters,
    /// Keys per statement of coalesced gets and puts ([`drain`]).
    coalesced_gets: Distribution,
    coalesced_puts: Distribution,
}

/// Upper bounds of the keys per coalesced statement.
const COALESCED_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

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
            refreshing: tokio::sync::Mutex::new(()),
            refreshed: Mutex::new(None),
            failover: FailoverCounters::default(),
            coalesced_gets: Distribution::new(COALESCED_BOUNDS),
            coalesced_puts: Distribution::new(COALESCED_BOUNDS),
        });
        match inner.reload().await {
            Ok(routing) => inner.serving(&routing).await,
            // Neither directory host answers: come up anyway (a service under a supervisor
            // should not flap), answer UNAVAILABLE, and keep trying.
            Err(e) if e.kind() == ErrorKind::Unavailable => tracing::warn!(
                event = "directory_waiting",
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
        let (key, value) = (&key, &value);
        self.relocating(move |routing: Arc<Routing>| async move {
            let id = routing.locate(bucket, key)?.id;
            let queue = routing.queue(id)?;
            let (reply, done) = tokio::sync::oneshot::channel();
            let put = PendingPut {
                key: key.clone(),
                value: value.clone(),
                reply,
            };
            if queue.push_put(put) {
                lead(&self.inner, routing, &queue, id, Kind::Puts).await;
            }
            done.await
                .map_err(|_| Error::internal("a coalesced put was dropped unanswered"))?
        })
        .await
    }

    async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes> {
        let key = &key;
        self.relocating(move |routing: Arc<Routing>| async move {
            let id = routing.locate(bucket, key)?.id;
            let queue = routing.queue(id)?;
            let (reply, done) = tokio::sync::oneshot::channel();
            if queue.push_get(PendingGet {
                key: key.clone(),
                reply,
            }) {
                lead(&self.inner, routing, &queue, id, Kind::Gets).await;
            }
            done.await
                .map_err(|_| Error::internal("a coalesced get was dropped unanswered"))??
                .ok_or_else(|| no_such_key(bucket, key))
        })
        .await
    }

    async fn write_token(&self) -> Result<String> {
        let mut token = GtidPos::default();
        for route in self.routing().hosts.values() {
            token.raise_to(&route.health.replication.report().acknowledged);
        }
        Ok(if token.is_empty() {
            String::new()
        } else {
            token.to_string()
        })
    }

    async fn get_after(&self, bucket: &str, key: Bytes, token: &str) -> Result<Bytes> {
        let after = GtidPos::parse(token).map_err(|e| {
            Error::invalid(format!(
                "token `{}` is not a write token: {}",
                token.escape_debug(),
                e.message()
            ))
        })?;
        let key = &key;
        let after = &after;
        self.relocating(move |routing: Arc<Routing>| async move {
            let part = routing.locate(bucket, key)?;
            let params = Params::Positional(vec![bytes(key)]);
            let rows: Vec<Vec<u8>> = self
                .inner
                .read_covering(&routing, part, &part.sql.get, params, "getAfter", after)
                .await?;
            rows.into_iter()
                .next()
                .map(Bytes::from)
                .ok_or_else(|| no_such_key(bucket, key))
        })
        .await
    }

    async fn remove(&self, bucket: &str, key: Bytes) -> Result<()> {
        let key = &key;
        self.relocating(move |routing: Arc<Routing>| async move {
            let part = routing.locate(bucket, key)?;
            let params = Params::Positional(vec![bytes(key)]);
            self.inner
                .write(&routing, part, &part.sql.remove, params, "remove")
                .await
                .map(|_| ())
        })
        .await
    }

    async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        let max = self.inner.config.max_value_size;
        check_value_size(value.len(), max)?;
        let (key, value) = (&key, &value);
        let appended = self
            .relocating(move |routing: Arc<Routing>| async move {
                let part = routing.locate(bucket, key)?;
                let params =
                    Params::Positional(vec![bytes(key), bytes(value), Value::UInt(max as u64)]);
                self.inner
                    .write(&routing, part, &part.sql.append, params, "append")
                    .await
            })
            .await;
        match appended {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => Err(Error::invalid(format!(
                "appending {} bytes would make the value larger than {max} bytes; nothing changed",
                value.len()
            ))),
            other => other.map(|_| ()),
        }
    }

    async fn scan(&self, bucket: &str, seed: Bytes, count: usize) -> Result<ScanPage> {
        let seed = &seed;
        let (entries, seed) = self
            .relocating(move |routing: Arc<Routing>| async move {
                self.inner
                    .scan_page(&routing, bucket, seed.clone(), count)
                    .await
            })
            .await?;
        Ok(ScanPage { entries, seed })
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Vec<Result<()>> {
        self.relocating_each(
            entries,
            move |routing: Arc<Routing>, entries: Vec<Entry>| async move {
                self.put_many_in(&routing, &entries).await
            },
        )
        .await
    }

    async fn get_many(&self, keys: Vec<KeyRef>) -> Vec<Result<Bytes>> {
        self.relocating_each(
            keys,
            move |routing: Arc<Routing>, keys: Vec<KeyRef>| async move {
                self.get_many_in(&routing, &keys).await
            },
        )
        .await
    }

    async fn remove_many(&self, keys: Vec<KeyRef>) -> Vec<Result<()>> {
        self.relocating_each(
            keys,
            move |routing: Arc<Routing>, keys: Vec<KeyRef>| async move {
                self.remove_many_in(&routing, &keys).await
            },
        )
        .await
    }

    async fn admin(&self, op: &str, _data: &str) -> Result<Option<String>> {
        match op {
            "load_partitions" => {
                let routing = self.reload().await?;
                Ok(Some(routing.directory.to_string()))
            }
            "status" => Ok(Some(status_text(&self.routing()))),
            "stats" => Ok(Some(stats_text(&self.routing(), &self.inner.failover))),
            _ => Ok(None),
        }
    }

    fn max_value_size(&self) -> usize {
        self.inner.config.max_value_size
    }

    fn view(&self) -> Option<ClusterView> {
        Some(report::cluster_view(&self.inner))
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
