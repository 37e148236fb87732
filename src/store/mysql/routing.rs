//! Routing: where each request goes, master or sibling. [`health`](super::health) holds each
//! host's state; this module makes the decision for every read and write with it.
//!
//! | the partition's master is… | reads | writes |
//! | --- | --- | --- |
//! | UP | master | master |
//! | UP, but the read's connection fails, it times out, or the host goes DOWN while it waits | retried on the sibling in the same request | `UNAVAILABLE` if nothing was sent, `OUTCOME_UNKNOWN` if it was |
//! | DOWN | sibling, once it has applied what the read must show ([`super::consistent`]) | refused at once: `READ_ONLY` |
//!
//! A write is never queued and never sent to the sibling, so two hosts never take writes for
//! one partition (docs/DESIGN.md, "Failover").

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Params, Pool};

use super::coalesce::Queue;
use super::directory::{Directory, Partition};
use super::health::{HostHealth, State};
use super::replication::last_gtid;
use super::Inner;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{Access, Class, Failure, GtidPos, HostAddr};

/// Tries of a write that InnoDB rolls back for a deadlock or a lock wait timeout.
const WRITE_ATTEMPTS: u32 = 3;

/// How a request reaches one host: its pool, its health, its sibling.
pub struct HostRoute {
    pub address: HostAddr,
    pub(super) pool: Pool,
    pub health: Arc<HostHealth>,
    pub sibling: Option<u32>,
}

/// A live partition's place in the directory, and its coalescing queue.
struct Slot {
    bucket: String,
    index: usize,
    queue: Arc<Queue>,
}

/// A directory with the route to each of its hosts: everything a request needs.
pub struct Routing {
    pub directory: Directory,
    pub hosts: BTreeMap<u32, HostRoute>,
    partitions: HashMap<u64, Slot>,
}

impl Routing {
    /// The routing of `directory` over `hosts`; a partition that `previous` had keeps its
    /// queue, since requests may be waiting in it.
    pub fn new(
        directory: Directory,
        hosts: BTreeMap<u32, HostRoute>,
        previous: Option<&Routing>,
    ) -> Routing {
        let mut partitions = HashMap::new();
        for (name, bucket) in &directory.buckets {
            for (index, part) in bucket.partitions.iter().enumerate() {
                let queue = previous
                    .and_then(|p| p.partitions.get(&part.id))
                    .map_or_else(|| Arc::new(Queue::default()), |s| s.queue.clone());
                let slot = Slot {
                    bucket: name.clone(),
                    index,
                    queue,
                };
                partitions.insert(part.id, slot);
            }
        }
        Routing {
            directory,
            hosts,
            partitions,
        }
    }

    /// The routing of no directory at all, before the first load.
    pub fn empty() -> Routing {
        Routing::new(Directory::default(), BTreeMap::new(), None)
    }

    /// The live partition with directory id `id`.
    pub fn partition(&self, id: u64) -> Option<&Partition> {
        let slot = self.partitions.get(&id)?;
        self.directory
            .buckets
            .get(&slot.bucket)?
            .partitions
            .get(slot.index)
    }

    /// The coalescing queue of partition `id`.
    pub fn queue(&self, id: u64) -> Result<Arc<Queue>> {
        self.partitions
            .get(&id)
            .map(|s| s.queue.clone())
            .ok_or_else(|| Error::internal(format!("no queue for partition {id}")))
    }

    fn host(&self, host_id: u32) -> Result<&HostRoute> {
        self.hosts
            .get(&host_id)
            .ok_or_else(|| Error::internal(format!("directory names unknown host {host_id}")))
    }

    /// The partition that holds `key` of `bucket`.
    pub fn locate(&self, bucket: &str, key: &[u8]) -> Result<&Partition> {
        let bucket = self.directory.bucket(bucket)?;
        Ok(&bucket.partitions[bucket.locate(key)])
    }
}

/// `what` on `part`, for messages: `put on partition 3 (d_000000000003)`.
fn describe(part: &Partition, what: &str) -> String {
    format!("{what} on partition {} ({})", part.id, part.datatable)
}

/// A host-level reason for marking a host DOWN after `f`: the cause alone, not the request
/// (which belongs to one partition, while the host's state is every partition's).
fn host_reason(f: &Failure) -> String {
    match f.error.causes().next() {
        Some(cause) => cause.to_string(),
        None => f.error.message().to_string(),
    }
}

impl Inner {
    /// Runs `stmt` with `params` on `part`'s master, returning the affected row count.
    ///
    /// Refused at once (READ_ONLY, nothing attempted) while the master is DOWN, the partition
    /// is frozen or the directory lease has run out; never sent to the sibling. A lost
    /// connection marks the master DOWN and comes back as UNAVAILABLE (nothing sent) or
    /// OUTCOME_UNKNOWN (sent, no answer).
    pub(super) async fn write(
        &self,
        routing: &Routing,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
    ) -> Result<u64> {
        self.write_once(routing, part, stmt, params, what)
            .await
            .map_err(|e| e.with_partition(part.id))
    }

    async fn write_once(
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
            master
                .health
                .writes_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let report = master.health.report();
            let why = match report.state {
                State::Returning => "answers again but takes writes only after more probes",
                _ => "is down",
            };
            return Err(Error::new(
                ErrorKind::ReadOnly,
                format!(
                    "{what} refused: partition {} ({}) takes no writes while its master {} {why} \
                     ({:.1} s: {}); reads are served by {}",
                    part.id,
                    part.datatable,
                    master.address,
                    report.for_secs,
                    report.reason,
                    if report.state == State::Returning {
                        "the master"
                    } else {
                        "its sibling"
                    }
                ),
            ));
        }
        let mut attempt = 1;
        let result = loop {
            let result = async {
                let mut conn = self.settings.connect(&master.pool, &master.address).await?;
                let on = format!("on {}", master.address);
                let run = async |conn: &mut Conn| {
                    conn.exec_drop(stmt, params.clone()).await?;
                    let gtid = conn.last_ok_packet().and_then(last_gtid);
                    Ok((conn.affected_rows(), gtid))
                };
                self.settings.write(&mut conn, on, run).await
            }
            .await;
            match result {
                // InnoDB rolled the statement back: nothing happened, so it can run again.
                Err(f) if f.class == Class::RolledBack && attempt < WRITE_ATTEMPTS => attempt += 1,
                other => break other,
            }
        };
        let (affected, gtid) = result.map_err(|f| {
            if f.class.host_gone() {
                master.health.suspect(&host_reason(&f));
            }
            f.error.context(describe(part, what))
        })?;
        if let Some(gtid) = gtid {
            master.health.replication.acknowledged(gtid);
        }
        Ok(affected)
    }

    /// Runs a read of `part` on its master, or on the master's sibling when the master is
    /// DOWN, fails for a reason of its own, or goes DOWN while the read waits.
    pub(super) async fn read<T>(
        &self,
        routing: &Routing,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
    ) -> Result<Vec<T>>
    where
        T: FromRow + Send + 'static,
    {
        self.read_covering(routing, part, stmt, params, what, &GtidPos::default())
            .await
    }

    /// [`Inner::read`], on a host that has applied the writes `after` covers (a client's
    /// token), waiting for it when needed ([`super::consistent`]).
    pub(super) async fn read_covering<T>(
        &self,
        routing: &Routing,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
        after: &GtidPos,
    ) -> Result<Vec<T>>
    where
        T: FromRow + Send + 'static,
    {
        self.read_once(routing, part, stmt, params, what, after)
            .await
            .map_err(|e| e.with_partition(part.id))
    }

    async fn read_once<T>(
        &self,
        routing: &Routing,
        part: &Partition,
        stmt: &str,
        params: Params,
        what: &str,
        after: &GtidPos,
    ) -> Result<Vec<T>>
    where
        T: FromRow + Send + 'static,
    {
        let master = routing.host(part.host_id)?;
        let master_failure = if master.health.is_readable() {
            let attempt = self.read_on(master, stmt, params.clone(), Gate::Master(after));
            let outcome = tokio::select! {
                r = attempt => r,
                () = master.health.wait_down() => Err(Failure {
                    error: Error::new(ErrorKind::Unavailable, format!("{} went down", master.address)),
                    class: Class::Lost,
                }),
            };
            match outcome {
                Ok(rows) => return Ok(rows),
                Err(f) if f.class.try_elsewhere() => {
                    if f.class.host_gone() {
                        master.health.suspect(&host_reason(&f));
                    }
                    f.error.to_string()
                }
                Err(f) if f.error.kind() == ErrorKind::Behind => {
                    return Err(Error::new(
                        ErrorKind::Behind,
                        format!("{}: {}", describe(part, what), f.error.message()),
                    ))
                }
                Err(f) => return Err(f.error.context(describe(part, what))),
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
                    "{}: master {master_failure}, and it has no sibling",
                    describe(part, what)
                ),
            ));
        };
        let on_sibling = self.read_on(sibling, stmt, params, Gate::Sibling(master, after));
        on_sibling.await.map_err(|f| {
            if f.error.kind() == ErrorKind::Behind {
                return Error::new(
                    ErrorKind::Behind,
                    format!(
                        "{}: master {master_failure}; {}",
                        describe(part, what),
                        f.error.message()
                    ),
                );
            }
            let e = Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{}: master {master_failure}; sibling {}",
                    describe(part, what),
                    f.error
                ),
            );
            if f.class.moved() {
                e.moved()
            } else {
                e
            }
        })
    }

    /// One read on `host`, once `gate` lets it answer; its errors start with the host's
    /// address.
    async fn read_on<T>(
        &self,
        host: &HostRoute,
        stmt: &str,
        params: Params,
        gate: Gate<'_>,
    ) -> Result<Vec<T>, Failure>
    where
        T: FromRow + Send + 'static,
    {
        let mut conn = self.settings.connect(&host.pool, &host.address).await?;
        match gate {
            Gate::Master(after) => self.caught_up(host, &mut conn, after).await?,
            Gate::Sibling(master, after) => self.vouch(master, host, &mut conn, after).await?,
        }
        let on = host.address.to_string();
        self.settings
            .statement(Access::Read, on, conn.exec(stmt, params))
            .await
    }
}

/// What a host must have applied before it answers a read ([`super::consistent`]).
enum Gate<'a> {
    /// As the partition's master: the other hosts' writes a client's token covers.
    Master(&'a GtidPos),
    /// As the sibling of this master, which is down or failed the read: what the master's
    /// writes and the token require.
    Sibling(&'a HostRoute, &'a GtidPos),
}
