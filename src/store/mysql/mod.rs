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
//! - [`hosts`]: pools, timeouts, and what MySQL failures mean.
//! - [`health`]: each host UP or DOWN (probes, suspicion on lost connections); reads of a DOWN
//!   master's partitions go to its sibling, writes are refused (docs/ARCHITECTURE.md).
//! - [`coalesce`]: concurrent gets and puts of one partition sent as one statement.
//! - [`sql`]: the statements, with every client value bound.
//!
//! The directory is read from `MYSQL_MASTER_*`, or from `MYSQL_SLAVE_*` when the master does
//! not answer, at start-up, every `MYSQL_DIRECTORY_POLL_MS` (a cheap version check; a full load
//! only when the version moved) and on `admin("load_partitions")`.

pub mod coalesce;
pub mod directory;
pub mod health;
pub mod hosts;
pub mod placement;
pub mod sql;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Pool, Value};

use self::coalesce::{PendingGet, PendingPut, Queue};
use self::directory::{Bucket, Directory, Partition};
use self::health::{Health, HealthSettings, HostHealth};
use self::hosts::{connect, timed, Access, Cause, HostError, HostSettings, Pools};
use self::sql::{padded_rows, size_class, BATCH_BYTES, BATCH_ROWS};
use super::{Entry, KeyRef, ScanPage, Store};
use crate::config::MysqlConfig;
use crate::error::{Error, ErrorKind, Result};

/// Prefix of this store's scan seeds: `m1:<partition id>:<hex of the last key>`.
const SEED_PREFIX: &str = "m1:";

/// Tries of a write that InnoDB rolls back for a deadlock or a lock wait timeout.
const WRITE_ATTEMPTS: u32 = 3;

/// How a request reaches one host: its pool, its health, its sibling.
pub struct HostRoute {
    pub address: String,
    pool: Pool,
    pub health: Arc<HostHealth>,
    pub sibling: Option<u32>,
}

/// A directory with the route to each of its hosts: everything a request needs.
pub struct Routing {
    pub directory: Directory,
    pub hosts: BTreeMap<u32, HostRoute>,
    /// Each live partition's place in `directory` (bucket, index) and its coalescing queue.
    partitions: HashMap<u64, (String, usize, Arc<Queue>)>,
}

impl Routing {
    fn new(directory: Directory, hosts: BTreeMap<u32, HostRoute>, previous: &Routing) -> Routing {
        let mut partitions = HashMap::new();
        for (name, bucket) in &directory.buckets {
            for (i, part) in bucket.partitions.iter().enumerate() {
                // Keep a partition's queue across reloads: requests may be waiting in it.
                let queue = previous
                    .partitions
                    .get(&part.id)
                    .map_or_else(|| Arc::new(Queue::default()), |(_, _, q)| q.clone());
                partitions.insert(part.id, (name.clone(), i, queue));
            }
        }
        Routing {
            directory,
            hosts,
            partitions,
        }
    }

    /// The live partition with directory id `id`.
    fn partition(&self, id: u64) -> Option<&Partition> {
        let (bucket, i, _) = self.partitions.get(&id)?;
        self.directory.buckets.get(bucket)?.partitions.get(*i)
    }

    fn queue(&self, id: u64) -> Result<Arc<Queue>> {
        self.partitions
            .get(&id)
            .map(|(_, _, q)| q.clone())
            .ok_or_else(|| Error::internal(format!("no queue for partition {id}")))
    }

    fn host(&self, host_id: u32) -> Result<&HostRoute> {
        self.hosts
            .get(&host_id)
            .ok_or_else(|| Error::internal(format!("directory names unknown host {host_id}")))
    }
}

struct Inner {
    config: MysqlConfig,
    settings: HostSettings,
    routing: ArcSwap<Routing>,
    pools: Pools,
    health: Arc<Health>,
    directory_master: Pool,
    directory_slave: Option<Pool>,
    /// When the directory was last read or its version last confirmed (the write lease).
    confirmed: Mutex<Instant>,
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
        let directory_master = settings.pool(&config.master_host, config.master_port, 2);
        let directory_slave = config
            .slave_host
            .as_ref()
            .map(|h| settings.pool(h, config.slave_port, 2));
        let health = Health::new(HealthSettings {
            interval: config.probe_interval,
            timeout: config.probe_timeout,
            fall: config.fall_threshold,
            rise: config.rise_threshold,
        });
        let inner = Arc::new(Inner {
            config: config.clone(),
            settings,
            routing: ArcSwap::from_pointee(Routing {
                directory: Directory::default(),
                hosts: BTreeMap::new(),
                partitions: HashMap::new(),
            }),
            pools: Pools::default(),
            health,
            directory_master,
            directory_slave,
            confirmed: Mutex::new(Instant::now()),
            reload: tokio::sync::Mutex::new(()),
        });
        let routing = inner.reload().await?;
        // A host that is dead at start-up starts DOWN instead of failing the first requests.
        let probes = routing.hosts.values().map(|route| {
            let opts = inner.settings.opts_for(&route.address);
            let health = inner.health.clone();
            let host = route.health.clone();
            async move { health.probe_now(&host, opts).await }
        });
        futures_util::future::join_all(probes).await;
        let directory = &routing.directory;
        tracing::info!(%directory, "mysql store open");
        for (bucket, why) in &directory.invalid {
            tracing::error!(%bucket, %why, "bucket not served: invalid directory rows");
        }
        tokio::spawn(watch_directory(Arc::downgrade(&inner)));
        Ok(MysqlStore { inner })
    }

    /// The current routing snapshot.
    pub fn routing(&self) -> Arc<Routing> {
        self.inner.routing.load_full()
    }

    /// Loads the directory now and swaps it in.
    pub async fn reload(&self) -> Result<Arc<Routing>> {
        self.inner.reload().await
    }

    /// Runs each statement-sized chunk of `groups` (by row count and the `size` of each
    /// element) as one write on its partition's master, `statement` giving its SQL and
    /// parameters, and gives every element of a chunk the chunk's outcome in `results`.
    async fn write_chunks<'a>(
        &self,
        routing: &'a Routing,
        groups: Vec<Group<'a>>,
        size: impl Fn(usize) -> usize,
        statement: impl Fn(&Partition, &[usize]) -> (String, Vec<Value>),
        what: &str,
        results: &mut [Result<()>],
    ) {
        let outcomes = per_chunk(groups, size, |part, chunk| {
            let (stmt, params) = statement(part, chunk);
            async move {
                let r = self
                    .inner
                    .write(routing, part, &stmt, Params::Positional(params), what);
                r.await.map(|_| ())
            }
        })
        .await;
        for (positions, outcome) in outcomes {
            for i in positions {
                results[i] = clone_result(&outcome);
            }
        }
    }
}

impl Inner {
    /// A connection to the directory: the master, or the sibling when the master is down.
    async fn directory_conn(&self) -> Result<(mysql_async::Conn, &'static str)> {
        let master = format!("{}:{}", self.config.master_host, self.config.master_port);
        let err = match connect(&self.directory_master, &self.settings, &master).await {
            Ok(conn) => return Ok((conn, "master")),
            Err(e) => e.error,
        };
        let Some(slave) = &self.directory_slave else {
            return Err(err.context("directory master (no MYSQL_SLAVE_HOST configured)"));
        };
        let address = format!(
            "{}:{}",
            self.config.slave_host.as_deref().unwrap_or_default(),
            self.config.slave_port
        );
        match connect(slave, &self.settings, &address).await {
            Ok(conn) => Ok((conn, "sibling")),
            Err(e2) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "directory unreachable: master: {err}; sibling: {}",
                    e2.error
                ),
            )),
        }
    }

    fn confirm(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Writes are allowed only while the directory is confirmed: a server cut off from both
    /// directory hosts for longer than the lease cannot know whether a failover moved a
    /// partition elsewhere, and must not become its second writer.
    fn check_lease(&self) -> Result<()> {
        let age = self
            .confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if age > self.config.directory_lease {
            return Err(Error::new(
                ErrorKind::ReadOnly,
                format!(
                    "writes refused: the directory was last confirmed {:.1} s ago (lease {} ms); \
                     neither the directory master nor its sibling answers",
                    age.as_secs_f64(),
                    self.config.directory_lease.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Loads the directory and swaps it in when it differs from the current one.
    async fn reload(&self) -> Result<Arc<Routing>> {
        let _guard = self.reload.lock().await;
        let (mut conn, from) = self.directory_conn().await?;
        let directory = timed(
            &self.settings,
            Access::Read,
            || format!("loading the directory from its {from}"),
            async { Ok(Directory::load(&mut conn).await) },
        )
        .await??;
        let current = self.routing.load();
        if current.directory == directory {
            self.confirm();
            return Ok(self.routing.load_full());
        }
        if !supersedes(directory.version, current.directory.version)
            && !current.directory.hosts.is_empty()
        {
            tracing::warn!(
                from,
                loaded = directory.version,
                current = current.directory.version,
                "ignoring an older directory (its host has not caught up with a change yet)"
            );
            return Ok(self.routing.load_full());
        }
        let hosts = directory
            .hosts
            .values()
            .map(|h| {
                let route = HostRoute {
                    address: h.address(),
                    pool: self.pools.get(&self.settings, &h.hostname, h.port),
                    health: self.health.host(
                        &h.hostname,
                        h.port,
                        self.settings.opts(&h.hostname, h.port),
                    ),
                    sibling: h.slave_id,
                };
                (h.id, route)
            })
            .collect();
        tracing::info!(
            from,
            old_version = current.directory.version,
            new_version = directory.version,
            "directory loaded"
        );
        let routing = Arc::new(Routing::new(directory, hosts, &current));
        self.routing.store(routing.clone());
        self.confirm();
        Ok(routing)
    }

    async fn poll(&self) -> Result<bool> {
        let (mut conn, from) = self.directory_conn().await?;
        let version = timed(
            &self.settings,
            Access::Read,
            || format!("reading the directory version from its {from}"),
            async { Ok(Directory::poll_version(&mut conn).await) },
        )
        .await??;
        let current = self.routing.load().directory.version;
        // Renew the lease only when what this server routes by is still current; a moved
        // version renews it through the reload, once that has succeeded.
        if !supersedes(version, current) {
            self.confirm();
        }
        Ok(supersedes(version, current))
    }
}

/// True when a directory at version `new` should replace one at `current`. Versions only go
/// forward: a directory master that comes back without the changes its sibling took while it
/// was away must not roll servers back. (An original directory has no counter; its
/// fingerprints, marked by the top bit, are only compared for change.)
fn supersedes(new: u64, current: u64) -> bool {
    const FINGERPRINT: u64 = 1 << 63;
    if new & FINGERPRINT != 0 || current & FINGERPRINT != 0 {
        new != current
    } else {
        new > current
    }
}

/// Checks the directory version every poll interval and reloads when it moved. Ends when the
/// store is dropped.
async fn watch_directory(inner: Weak<Inner>) {
    let mut healthy = true;
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.config.directory_poll) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let result = match inner.poll().await {
            Ok(true) => inner.reload().await.map(|_| ()),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        match (result, healthy) {
            (Ok(()), false) => {
                tracing::info!("directory reachable again");
                healthy = true;
            }
            (Err(e), true) => {
                tracing::warn!(error = %e, "cannot check the directory; serving the last one loaded");
                healthy = false;
            }
            _ => {}
        }
    }
}

/// The partition that holds `key` of `bucket`.
fn locate<'a>(routing: &'a Routing, bucket: &str, key: &[u8]) -> Result<&'a Partition> {
    let bucket = routing.directory.bucket(bucket)?;
    Ok(&bucket.partitions[bucket.locate(key)])
}

fn check_value(value: &[u8], max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "value of {} bytes is larger than {max} bytes",
            value.len()
        )));
    }
    Ok(())
}

fn no_such_key(bucket: &str, key: &[u8]) -> Error {
    Error::new(
        ErrorKind::NoSuchKey,
        format!(
            "no key `{}` in bucket `{bucket}`",
            String::from_utf8_lossy(key)
        ),
    )
}

fn describe(part: &Partition, address: &str, what: &str) -> String {
    format!(
        "{what} on partition {} ({}) of {address}",
        part.id, part.datatable
    )
}

impl Inner {
    /// Runs `stmt` with `params` on `part`'s master, returning the affected row count.
    ///
    /// Refused at once (READ_ONLY, nothing attempted) while the master is DOWN or the directory
    /// lease has run out; never sent to the sibling. A connection failure marks the master DOWN
    /// and comes back as UNAVAILABLE (nothing sent) or OUTCOME_UNKNOWN (sent, no answer).
    async fn write(
        &self,
        routing: &Routing,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
    ) -> Result<u64> {
        self.check_lease()?;
        if let Some(reason) = &part.frozen {
            return Err(Error::new(
                ErrorKind::ReadOnly,
                format!(
                    "{what} refused: partition {} ({}) takes no writes for now: {reason}",
                    part.id, part.datatable
                ),
            ));
        }
        let master = routing.host(part.host_id)?;
        if !master.health.is_up() {
            let report = master.health.report();
            return Err(Error::new(
                ErrorKind::ReadOnly,
                format!(
                    "{what} refused: partition {} ({}) is read-only because its master {} is down \
                     ({:.1} s: {}); reads are served by its sibling",
                    part.id, part.datatable, master.address, report.for_secs, report.reason
                ),
            ));
        }
        let mut attempt = 1;
        let result = loop {
            let result = async {
                let mut conn = connect(&master.pool, &self.settings, &master.address).await?;
                timed(
                    &self.settings,
                    Access::Write,
                    || describe(part, &master.address, what),
                    async {
                        conn.exec_drop(stmt, params.clone()).await?;
                        Ok(conn.affected_rows())
                    },
                )
                .await
            }
            .await;
            match result {
                // InnoDB rolled the statement back: nothing happened, so it can run again.
                Err(e) if e.cause == Cause::RolledBack && attempt < WRITE_ATTEMPTS => attempt += 1,
                other => break other,
            }
        };
        result.map_err(|e| {
            if e.cause == Cause::Lost {
                master.health.suspect(&e.error.to_string());
            }
            e.error
        })
    }

    /// Runs a read of `part` on its master, or on the master's sibling when the master is
    /// DOWN, fails for a connection reason, or goes DOWN while the read waits.
    async fn read<T>(
        &self,
        routing: &Routing,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
    ) -> Result<Vec<T>>
    where
        T: mysql_async::prelude::FromRow + Send + 'static,
    {
        let master = routing.host(part.host_id)?;
        let master_failure = if master.health.is_up() {
            let attempt = self.read_on(master, part, stmt, params.clone(), what);
            let outcome = tokio::select! {
                r = attempt => r,
                () = master.health.wait_down() => Err(HostError {
                    error: Error::new(ErrorKind::Unavailable, format!("{} went down", master.address)),
                    cause: Cause::Lost,
                }),
            };
            match outcome {
                Ok(rows) => return Ok(rows),
                Err(e) if e.try_elsewhere() => {
                    if e.cause == Cause::Lost {
                        master.health.suspect(&e.error.to_string());
                    }
                    e.error.to_string()
                }
                Err(e) => return Err(e.error),
            }
        } else {
            let report = master.health.report();
            format!(
                "{} is down ({:.1} s: {})",
                master.address, report.for_secs, report.reason
            )
        };
        let Some(sibling) = master.sibling.and_then(|id| routing.hosts.get(&id)) else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{what} on partition {}: master {master_failure}, and it has no sibling",
                    part.id
                ),
            ));
        };
        self.read_on(sibling, part, stmt, params, what)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{what} on partition {}: master {master_failure}; sibling {} failed too: {}",
                        part.id, sibling.address, e.error
                    ),
                )
            })
    }

    async fn read_on<T>(
        &self,
        host: &HostRoute,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
    ) -> Result<Vec<T>, HostError>
    where
        T: mysql_async::prelude::FromRow + Send + 'static,
    {
        let mut conn = connect(&host.pool, &self.settings, &host.address).await?;
        timed(
            &self.settings,
            Access::Read,
            || describe(part, &host.address, what),
            conn.exec(stmt, params),
        )
        .await
    }
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

#[async_trait]
impl Store for MysqlStore {
    async fn buckets(&self) -> Result<Vec<String>> {
        Ok(self.routing().directory.buckets.keys().cloned().collect())
    }

    async fn put(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        check_value(&value, self.inner.config.max_value_size)?;
        let routing = self.routing();
        let part = locate(&routing, bucket, &key)?;
        let queue = routing.queue(part.id)?;
        let (reply, done) = tokio::sync::oneshot::channel();
        if queue.push_put(PendingPut { key, value, reply }) {
            tokio::spawn(drain_puts(self.inner.clone(), queue, part.id));
        }
        done.await
            .map_err(|_| Error::internal("a coalesced put was dropped unanswered"))?
    }

    async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes> {
        let routing = self.routing();
        let part = locate(&routing, bucket, &key)?;
        let queue = routing.queue(part.id)?;
        let (reply, done) = tokio::sync::oneshot::channel();
        if queue.push_get(PendingGet {
            key: key.clone(),
            reply,
        }) {
            tokio::spawn(drain_gets(self.inner.clone(), queue, part.id));
        }
        done.await
            .map_err(|_| Error::internal("a coalesced get was dropped unanswered"))??
            .ok_or_else(|| no_such_key(bucket, &key))
    }

    async fn remove(&self, bucket: &str, key: Bytes) -> Result<()> {
        let routing = self.routing();
        let part = locate(&routing, bucket, &key)?;
        let params = Params::Positional(vec![bytes(&key)]);
        self.inner
            .write(&routing, part, &part.sql.remove, params, "remove")
            .await?;
        Ok(())
    }

    async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
        let max = self.inner.config.max_value_size;
        check_value(&value, max)?;
        let routing = self.routing();
        let part = locate(&routing, bucket, &key)?;
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
        let (groups, mut results) = group(&routing, &keys, |i| check_value(&entries[i].value, max));
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
        self.write_chunks(&routing, groups, size, statement, "putList", &mut results)
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
                    // Values move into Bytes once; a key asked for twice shares its value.
                    let found: HashMap<Vec<u8>, Bytes> =
                        rows.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect();
                    for i in positions {
                        if let Some(v) = found.get(&keys[i].key[..]) {
                            results[i] = Ok(v.clone());
                        }
                    }
                }
                Err(e) => {
                    for i in positions {
                        results[i] = Err(clone_error(&e));
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
        self.write_chunks(
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
}

/// Sends the queued gets of partition `id` as multi-row SELECTs until the queue is empty.
async fn drain_gets(inner: Arc<Inner>, queue: Arc<Queue>, id: u64) {
    loop {
        let batch = queue.take_gets();
        if batch.is_empty() {
            return;
        }
        let routing = inner.routing.load_full();
        let Some(part) = routing.partition(id) else {
            for g in batch {
                let _ = g.reply.send(Err(partition_gone(id)));
            }
            continue;
        };
        let mut params: Vec<Value> = batch.iter().map(|g| bytes(&g.key)).collect();
        pad(&mut params, 1, size_class(batch.len()));
        let stmt = sql::get_many(&part.table_sql, params.len());
        let result = inner
            .read::<(Vec<u8>, Vec<u8>)>(&routing, part, &stmt, Params::Positional(params), "get")
            .await;
        match result {
            Ok(rows) => {
                let found: HashMap<Vec<u8>, Bytes> =
                    rows.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect();
                for g in batch {
                    let value = found.get(&g.key[..]).cloned();
                    let _ = g.reply.send(Ok(value));
                }
            }
            Err(e) => {
                for g in batch {
                    let _ = g.reply.send(Err(clone_error(&e)));
                }
            }
        }
    }
}

/// Sends the queued puts of partition `id` as multi-row upserts, in key order, until the
/// queue is empty. Each put is acknowledged when its statement has committed.
async fn drain_puts(inner: Arc<Inner>, queue: Arc<Queue>, id: u64) {
    loop {
        let mut batch = queue.take_puts();
        if batch.is_empty() {
            return;
        }
        let routing = inner.routing.load_full();
        let Some(part) = routing.partition(id) else {
            for p in batch {
                let _ = p.reply.send(Err(partition_gone(id)));
            }
            continue;
        };
        // Stable: of two puts to one key, the later one still wins.
        batch.sort_by(|a, b| a.key.cmp(&b.key));
        let mut params: Vec<Value> = batch
            .iter()
            .flat_map(|p| [bytes(&p.key), bytes(&p.value)])
            .collect();
        let size: usize = batch.iter().map(|p| p.value.len()).sum();
        let last = batch.last().map_or(0, |p| p.value.len());
        pad(&mut params, 2, padded_rows(batch.len(), size, last));
        let stmt = sql::put_many(&part.table_sql, params.len() / 2);
        let result = inner
            .write(&routing, part, &stmt, Params::Positional(params), "put")
            .await
            .map(|_| ());
        for p in batch {
            let _ = p.reply.send(clone_result(&result));
        }
    }
}

/// Pads `params` (rows of `width` values) to `rows` rows by repeating its last row: looking a
/// key up twice, or writing the same value twice, changes nothing.
fn pad(params: &mut Vec<Value>, width: usize, rows: usize) {
    let last = params[params.len() - width..].to_vec();
    while params.len() < rows * width {
        params.extend(last.iter().cloned());
    }
}

fn partition_gone(id: u64) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("partition {id} left the directory while the request waited; nothing was done"),
    )
}

/// A partition and the positions of a batch's elements that belong to it.
type Group<'a> = (&'a Partition, Vec<usize>);

/// Groups the keys by partition (keeping input order inside each group) and returns the
/// per-element results of those left out (`Ok(())` for the grouped): unknown buckets and the
/// elements `check` refuses.
fn group<'a>(
    routing: &'a Routing,
    keys: &[(&str, &[u8])],
    check: impl Fn(usize) -> Result<()>,
) -> (Vec<Group<'a>>, Vec<Result<()>>) {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut by_partition: HashMap<u64, usize> = HashMap::new();
    let mut results = Vec::with_capacity(keys.len());
    for (i, (bucket, key)) in keys.iter().enumerate() {
        match check(i).and_then(|()| locate(routing, bucket, key)) {
            Ok(part) => {
                let slot = *by_partition.entry(part.id).or_insert_with(|| {
                    groups.push((part, Vec::new()));
                    groups.len() - 1
                });
                groups[slot].1.push(i);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (groups, results)
}

/// Sorts each group's elements by key, keeping the order of equal keys (so the last write of
/// a key still wins). Multi-row statements that lock rows in one global order cannot deadlock
/// each other; in arrival order, concurrent batches do.
fn in_key_order<'a>(mut groups: Vec<Group<'a>>, keys: &[(&str, &[u8])]) -> Vec<Group<'a>> {
    for (_, positions) in &mut groups {
        positions.sort_by(|&a, &b| keys[a].1.cmp(keys[b].1));
    }
    groups
}

/// Runs `run` on each statement-sized chunk of each group: the chunks of one partition one
/// after another (so a batch's writes to one key keep their order), the partitions all at once.
/// Returns each chunk's positions with its outcome.
async fn per_chunk<'a, T, Fut>(
    groups: Vec<Group<'a>>,
    size: impl Fn(usize) -> usize,
    run: impl Fn(&'a Partition, &[usize]) -> Fut,
) -> Vec<(Vec<usize>, Result<T>)>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let (run, size) = (&run, &size);
    let work = groups.into_iter().map(|(part, positions)| async move {
        let mut outcomes = Vec::new();
        for chunk in chunks(&positions, size) {
            outcomes.push((chunk.to_vec(), run(part, chunk).await));
        }
        outcomes
    });
    futures_util::future::join_all(work)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Splits `positions` into statement-sized chunks by row count and value bytes.
fn chunks(positions: &[usize], size: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (n, &i) in positions.iter().enumerate() {
        let len = n - start;
        if len > 0 && (len >= BATCH_ROWS || bytes + size(i) > BATCH_BYTES) {
            out.push(&positions[start..n]);
            start = n;
            bytes = 0;
        }
        bytes += size(i);
    }
    if start < positions.len() {
        out.push(&positions[start..]);
    }
    out
}

fn clone_error(e: &Error) -> Error {
    Error::new(e.kind(), e.to_string())
}

fn clone_result(r: &Result<()>) -> Result<()> {
    r.as_ref().map(|_| ()).map_err(clone_error)
}

fn make_seed(partition: u64, key: &[u8]) -> Bytes {
    let mut s = format!("{SEED_PREFIX}{partition}:");
    for b in key {
        let _ = write!(s, "{b:02x}");
    }
    Bytes::from(s)
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
    if hex.len() % 2 != 0 || hex.len() > 2 * crate::config::MAX_KEY_SIZE {
        return Err(bad());
    }
    let key = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let index = bucket.partitions.iter().position(|p| p.id == id).ok_or_else(|| {
        Error::invalid(format!(
            "scan seed names partition {id}, which bucket `{}` no longer has (the directory changed); start the scan again",
            bucket.name
        ))
    })?;
    Ok((index, key))
}

/// `name=value` lines per host: up (1/0), seconds in that state, transitions so far.
fn stats_text(routing: &Routing) -> String {
    let mut out = format!("directory.version={}\n", routing.directory.version);
    for route in routing.hosts.values() {
        let r = route.health.report();
        let _ = writeln!(
            out,
            "host.{a}.up={}\nhost.{a}.state_secs={:.1}\nhost.{a}.transitions={}",
            u8::from(r.up),
            r.for_secs,
            r.transitions,
            a = route.address
        );
    }
    out
}

fn status_text(routing: &Routing) -> String {
    let dir = &routing.directory;
    let mut out = format!("backend=mysql\n{dir}\n");
    for h in dir.hosts.values() {
        let sibling = h
            .slave_id
            .and_then(|s| dir.hosts.get(&s))
            .map_or("-".to_string(), |s| s.address());
        let state = routing.hosts.get(&h.id).map_or_else(
            || "unknown".to_string(),
            |route| {
                let r = route.health.report();
                let state = if r.up { "UP" } else { "DOWN" };
                format!(
                    "{state} for {:.1} s ({}), transitions={}",
                    r.for_secs, r.reason, r.transitions
                )
            },
        );
        let _ = writeln!(
            out,
            "host {} {} sibling={sibling} state={state}",
            h.id,
            h.address()
        );
    }
    for b in dir.buckets.values() {
        let _ = writeln!(
            out,
            "bucket {} hash={} partitions={}",
            b.name,
            b.hash,
            b.partitions.len()
        );
    }
    for (name, why) in &dir.invalid {
        let _ = writeln!(out, "bucket {name} INVALID: {why}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_versions_only_go_forward() {
        assert!(supersedes(8, 7));
        assert!(
            !supersedes(7, 8),
            "an older directory never replaces a newer one"
        );
        assert!(!supersedes(7, 7));
        let (a, b) = ((1 << 63) | 5, (1 << 63) | 9);
        assert!(
            supersedes(a, b) && supersedes(b, a),
            "fingerprints compare for change"
        );
        assert!(!supersedes(a, a));
    }

    #[test]
    fn chunks_split_by_rows_and_bytes() {
        let positions: Vec<usize> = (0..2500).collect();
        let by_rows = chunks(&positions, |_| 0);
        assert_eq!(
            by_rows.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        let by_bytes = chunks(&positions[..10], |_| BATCH_BYTES / 3);
        assert_eq!(
            by_bytes.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        // A single value over the byte budget still gets its own statement.
        assert_eq!(chunks(&[7], |_| BATCH_BYTES * 2), vec![&[7][..]]);
        assert!(chunks(&[], |_| 0).is_empty());
    }
}
