//! The direct run: the same workload, with the same number of clients, sent straight to the
//! partition tables with `mysql_async`, as Thrudoc's MySQL store would send it. It is the
//! yardstick of docs/DESIGN.md ("Performance measurement"): what MariaDB itself does on this box at this concurrency.
//!
//! Nothing here is a copy of the store's logic: the directory is read with
//! [`Directory::load`], keys are placed with [`Bucket::locate`], and the statements are the
//! partition's own ([`Partition::sql`](crate::store::mysql::directory::Partition)`.get`/`.put`)
//! or [`sql::put_many`]/[`sql::get_many`] for batches (gets padded to [`sql::size_class`]),
//! grouped by partition and sent to the partitions at once, as the store does. Connections come
//! from [`HostSettings::pool`], so they log in with the conf's service account and run the same
//! session set-up and statement cache.
//!
//! The direct run does not fill the key space: it reads the keys the Thrudoc run wrote through
//! the server, so a key it cannot find shows (as errors) that the conf does not describe the
//! server's cluster or that placement disagrees.
//!
//! Clients are tokio tasks here (`mysql_async` is async), on a runtime with one worker per
//! core, like the server's.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Pool, Value};

use super::cpu::Watched;
use super::run::{Live, Progress, RunStats, Tally, Workload};
use super::workload::{key, Op, Rng};
use crate::config::{Backend, Config, MysqlConfig};
use crate::error::{Error, Result};
use crate::mysql::{deadline, Access, Failure, HostAddr};
use crate::store::mysql::directory::{Bucket, Directory, Partition};
use crate::store::mysql::hosts::HostSettings;
use crate::store::mysql::sql::{self, BATCH_ROWS};

/// A bucket's partitions and a pool to each of their hosts.
pub struct Direct {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

struct Shared {
    bucket: Bucket,
    /// By host id.
    pools: BTreeMap<u32, (HostAddr, Pool)>,
    pool_size: usize,
}

/// `fut` under the MySQL layer's deadline; a failure as the text the bench reports.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, mysql_async::Error>>,
) -> std::result::Result<T, String> {
    let as_service = |e, what| Failure::for_service(e, Access::Read, what);
    deadline(limit, Access::Read, what, as_service, fut)
        .await
        .map_err(|f| f.error.to_string())
}

impl Direct {
    /// Reads `conf` (a thrudoc.conf with `BACKEND = mysql`), loads the directory from its
    /// `MYSQL_MASTER_*` and prepares pools to the hosts of `bucket`: `clients` connections per
    /// host at least, or the conf's `MYSQL_POOL_SIZE` if larger (as many as the server may use).
    pub fn open(conf: &Path, bucket: &str, clients: usize) -> Result<Direct> {
        let config = Config::load(conf).map_err(|e| e.context(format!("{}", conf.display())))?;
        let Backend::Mysql(mysql) = config.backend else {
            return Err(Error::config(format!(
                "{}: --direct-mysql-conf needs a conf with BACKEND = mysql",
                conf.display()
            )));
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal("starting the tokio runtime").with_source(e))?;
        let shared = runtime.block_on(Self::load(&mysql, bucket, clients))?;
        Ok(Direct {
            runtime,
            shared: Arc::new(shared),
        })
    }

    async fn load(mysql: &MysqlConfig, bucket: &str, clients: usize) -> Result<Shared> {
        let settings = HostSettings::new(mysql);
        let master = &mysql.master;
        let pool = settings.pool(master, 1);
        let mut conn = settings.connect(&pool, master).await?;
        let directory = Directory::load(&mut conn).await;
        drop(conn);
        let _ = pool.disconnect().await;
        let directory = directory?;
        let bucket = directory.bucket(bucket)?.clone();
        let pool_size = clients.max(mysql.pool_size);
        let mut pools = BTreeMap::new();
        for part in &bucket.partitions {
            if pools.contains_key(&part.host_id) {
                continue;
            }
            let host = directory.hosts.get(&part.host_id).ok_or_else(|| {
                Error::internal(format!("directory names unknown host {}", part.host_id))
            })?;
            let pool = settings.pool(&host.address(), pool_size);
            pools.insert(host.id, (host.address(), pool));
        }
        Ok(Shared {
            bucket,
            pools,
            pool_size,
        })
    }

    /// Writes `key<TAB>host<TAB>port<TAB>db.table` for the bench keys `0..keys`, placed with the
    /// store's own code.
    pub fn dump_placement(&self, path: &Path, keys: u64) -> Result<()> {
        use std::io::Write as _;
        let file = std::fs::File::create(path)
            .map_err(|e| Error::invalid(format!("cannot write {}: {e}", path.display())))?;
        let mut out = std::io::BufWriter::new(file);
        for i in 0..keys {
            let key = crate::bench::workload::key(i);
            let part = &self.shared.bucket.partitions[self.shared.bucket.locate(key.as_bytes())];
            let (host, port) = self
                .shared
                .pools
                .get(&part.host_id)
                .map_or(("?", 0), |(a, _)| (a.host.as_str(), a.port));
            writeln!(out, "{key}\t{host}\t{port}\t{}.{}", part.db, part.datatable)
                .map_err(|e| Error::invalid(format!("cannot write {}: {e}", path.display())))?;
        }
        out.flush()
            .map_err(|e| Error::invalid(format!("cannot write {}: {e}", path.display())))
    }

    /// `N partitions on M hosts, pool of P per host`.
    pub fn describe(&self) -> String {
        format!(
            "bucket `{}`: {} partitions ({} hash) on {} host(s), up to {} connections per host",
            self.shared.bucket.name,
            self.shared.bucket.partitions.len(),
            self.shared.bucket.hash,
            self.shared.pools.len(),
            self.shared.pool_size
        )
    }

    /// The timed run of `w`, straight against the partitions, with the CPU time it cost
    /// `watched`.
    pub fn run(&self, w: &Workload, watched: &Watched) -> RunStats {
        let live = Arc::new(Live::default());
        let start = Arc::new(tokio::sync::Barrier::new(w.clients + 1));
        let tasks: Vec<_> = (0..w.clients)
            .map(|i| {
                let (shared, w, live, start) =
                    (self.shared.clone(), w.clone(), live.clone(), start.clone());
                self.runtime
                    .spawn(async move { shared.client(&w, i, &live, &start).await })
            })
            .collect();
        self.runtime.block_on(start.wait());
        let cpu_before = watched.read();
        let began = Instant::now();
        let progress = Progress::start(
            format!("direct {}", w.mix.as_str()),
            live,
            None,
            w.duration + w.timeout + Duration::from_secs(5),
        );
        let mut tally = Tally::default();
        for outcome in self.runtime.block_on(join_all(tasks)) {
            match outcome {
                Ok(t) => tally.merge(&t),
                Err(e) => tally.fail(1, || format!("a client task failed: {e}")),
            }
        }
        let elapsed = began.elapsed();
        drop(progress);
        RunStats {
            target: "direct",
            workload: w.clone(),
            elapsed,
            tally,
            cpu: watched.since(cpu_before),
        }
    }

    /// Closes every connection.
    pub fn close(self) {
        let shared = self.shared;
        self.runtime.block_on(async {
            for (_, pool) in shared.pools.values() {
                let _ = pool.clone().disconnect().await;
            }
        });
    }
}

/// What one call did: successful and failed elements, and the first failure.
#[derive(Default)]
struct Outcome {
    ok: u64,
    failed: u64,
    why: Option<String>,
}

impl Outcome {
    fn add(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.why.is_none() {
            self.why = other.why;
        }
    }

    fn failed(n: usize, why: String) -> Outcome {
        Outcome {
            ok: 0,
            failed: n as u64,
            why: Some(why),
        }
    }
}

impl Shared {
    async fn conn(&self, part: &Partition, timeout: Duration) -> std::result::Result<Conn, String> {
        let (address, pool) = self
            .pools
            .get(&part.host_id)
            .ok_or_else(|| format!("no pool for host {}", part.host_id))?;
        bounded(
            timeout,
            &format!("connecting to {address}"),
            pool.get_conn(),
        )
        .await
    }

    /// One client: warm its connections, wait for the others, call until the deadline.
    async fn client(
        &self,
        w: &Workload,
        index: usize,
        live: &Live,
        start: &tokio::sync::Barrier,
    ) -> Tally {
        let mut tally = Tally::default();
        let mut rng = Rng::for_client(w.seed, index);
        // One connection to each host, opened before the clock starts (the server's pools are
        // warm too by the time its run starts) and handed back to the pool.
        let mut seen = HashSet::new();
        let warm = self
            .bucket
            .partitions
            .iter()
            .filter(|p| seen.insert(p.host_id))
            .map(|p| self.conn(p, w.timeout));
        for r in join_all(warm).await {
            if let Err(why) = r {
                tally.fail(1, || why);
            }
        }
        start.wait().await;
        let deadline = Instant::now() + w.duration;
        while Instant::now() < deadline {
            let began = Instant::now();
            let op = rng.op(w.mix);
            let outcome = match w.batch {
                None => {
                    let k = key(rng.below(w.keys)).into_bytes();
                    let value = (op == Op::Put).then(|| rng.bytes(w.size));
                    self.single(w, k, value).await
                }
                Some(n) => {
                    let keys: Vec<Vec<u8>> = rng
                        .key_indexes(w.keys, n)
                        .into_iter()
                        .map(|i| key(i).into_bytes())
                        .collect();
                    let values =
                        (op == Op::Put).then(|| (0..n).map(|_| rng.bytes(w.size)).collect());
                    self.list(w, keys, values).await
                }
            };
            tally.call(
                live,
                began.elapsed(),
                outcome.ok,
                outcome.failed,
                outcome.why,
            );
        }
        tally
    }

    /// A `get` (value `None`) or a `put`.
    async fn single(&self, w: &Workload, key: Vec<u8>, value: Option<Vec<u8>>) -> Outcome {
        let part = &self.bucket.partitions[self.bucket.locate(&key)];
        let mut conn = match self.conn(part, w.timeout).await {
            Ok(c) => c,
            Err(why) => return Outcome::failed(1, why),
        };
        let result = match value {
            None => bounded(w.timeout, "get", async {
                conn.exec_first::<Vec<u8>, _, _>(&part.sql.get, (Value::Bytes(key),))
                    .await
            })
            .await
            .and_then(|v| v.map(|_| ()).ok_or_else(|| "get: no such key".to_string())),
            Some(value) => {
                let params = Params::Positional(vec![Value::Bytes(key), Value::Bytes(value)]);
                bounded(w.timeout, "put", conn.exec_drop(&part.sql.put, params)).await
            }
        };
        match result {
            Ok(()) => Outcome {
                ok: 1,
                ..Outcome::default()
            },
            Err(why) => Outcome::failed(1, why),
        }
    }

    /// A `getList` (values `None`) or a `putList`: the keys grouped by partition, the groups
    /// sent at once, each as multi-row statements of at most [`BATCH_ROWS`] rows.
    async fn list(
        &self,
        w: &Workload,
        keys: Vec<Vec<u8>>,
        values: Option<Vec<Vec<u8>>>,
    ) -> Outcome {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            groups.entry(self.bucket.locate(k)).or_default().push(i);
        }
        // The store writes each partition's rows in key order (so concurrent batches cannot
        // deadlock); send the same statements.
        for positions in groups.values_mut() {
            positions.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        }
        let work = groups.iter().flat_map(|(&p, positions)| {
            positions
                .chunks(BATCH_ROWS)
                .map(move |chunk| (&self.bucket.partitions[p], chunk))
        });
        let (keys, values) = (&keys, &values);
        let calls = work.map(|(part, chunk)| async move {
            let mut conn = match self.conn(part, w.timeout).await {
                Ok(c) => c,
                Err(why) => return Outcome::failed(chunk.len(), why),
            };
            match values {
                Some(values) => {
                    let mut params = Vec::with_capacity(chunk.len() * 2);
                    for &i in chunk {
                        params.push(Value::Bytes(keys[i].clone()));
                        params.push(Value::Bytes(values[i].clone()));
                    }
                    let stmt = sql::put_many(&part.table_sql, chunk.len());
                    match bounded(
                        w.timeout,
                        "putList",
                        conn.exec_drop(stmt, Params::Positional(params)),
                    )
                    .await
                    {
                        Ok(()) => Outcome {
                            ok: chunk.len() as u64,
                            ..Outcome::default()
                        },
                        Err(why) => Outcome::failed(chunk.len(), why),
                    }
                }
                None => {
                    // Padded to the size class by repeating the last key, as the store does.
                    let rows = sql::size_class(chunk.len());
                    let params = (0..rows)
                        .map(|n| Value::Bytes(keys[chunk[n.min(chunk.len() - 1)]].clone()))
                        .collect();
                    let stmt = sql::get_many(&part.table_sql, rows);
                    let rows = bounded(
                        w.timeout,
                        "getList",
                        conn.exec::<(Vec<u8>, Vec<u8>), _, _>(stmt, Params::Positional(params)),
                    )
                    .await;
                    match rows {
                        Ok(rows) => {
                            let found: HashSet<&[u8]> = rows.iter().map(|(k, _)| &k[..]).collect();
                            let ok = chunk
                                .iter()
                                .filter(|&&i| found.contains(&keys[i][..]))
                                .count();
                            let mut out = Outcome {
                                ok: ok as u64,
                                failed: (chunk.len() - ok) as u64,
                                why: None,
                            };
                            if out.failed > 0 {
                                out.why = Some("getList: no such key".into());
                            }
                            out
                        }
                        Err(why) => Outcome::failed(chunk.len(), why),
                    }
                }
            }
        });
        let mut total = Outcome::default();
        for o in join_all(calls).await {
            total.add(o);
        }
        total
    }
}
