//! The coalescing drainers: what sends a partition's queued gets and puts
//! ([`coalesce`](super::coalesce)) as multi-row statements until its queue is empty.
//!
//! The request that finds no drainer running leads: its own task sends the first batch
//! ([`lead`]), so under light load a request is served where it arrived, with no task to
//! spawn or wake. What queued up meanwhile goes to a drainer task ([`drain`]), which sends
//! batch after batch until the queue is empty.
//!
//! A drainer starts with the routing its first request was located in and keeps using it for
//! as long as it is the current one; only after a directory reload does it look its partition
//! up again (the partition may have moved, or left the directory).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mysql_async::{Params, Value};

use super::batch::{bytes, pad};
use super::coalesce::{Kind, PendingGet, PendingPut, Queue};
use super::routing::Routing;
use super::sql::{padded_rows, size_class};
use super::Inner;
use crate::error::{Error, ErrorKind, Result};

/// The routing to send the next batch of partition `id` with: `routing`, unless a reload
/// replaced it.
fn current(inner: &Inner, routing: &mut Arc<Routing>) {
    let now = inner.routing.load();
    if !Arc::ptr_eq(&now, routing) {
        *routing = now.clone();
    }
}

/// A leading request's promise that its queue is drained: if the request is dropped while
/// its batch runs (a connection dropped at shutdown), a drainer task takes the queue over, so
/// no other request waits for a drainer that is gone.
struct Handoff {
    inner: Arc<Inner>,
    routing: Arc<Routing>,
    queue: Arc<Queue>,
    id: u64,
    kind: Kind,
    armed: bool,
}

impl Handoff {
    /// Done with the batch: drains on in a task when requests are left, else counts out.
    fn finish(mut self) {
        self.armed = false;
        if self.queue.left(self.kind) {
            self.spawn();
        }
    }

    fn spawn(&self) {
        tokio::spawn(drain(
            self.inner.clone(),
            self.routing.clone(),
            self.queue.clone(),
            self.id,
            self.kind,
        ));
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if self.armed {
            self.spawn();
        }
    }
}

/// Sends one batch of partition `id`'s queued gets or puts in the caller's task (the caller's
/// own request is in it unless more than [`MAX_BATCH`](super::coalesce::MAX_BATCH) older ones
/// wait), then hands any left to a drainer task. Called by the request whose push started a
/// drainer.
pub(super) async fn lead(
    inner: &Arc<Inner>,
    routing: Arc<Routing>,
    queue: &Arc<Queue>,
    id: u64,
    kind: Kind,
) {
    let mut handoff = Handoff {
        inner: inner.clone(),
        routing,
        queue: queue.clone(),
        id,
        kind,
        armed: true,
    };
    if send_next(inner, &mut handoff.routing, queue, id, kind).await {
        handoff.finish();
    } else {
        // An empty take has counted the drainer out already: nothing to hand off.
        handoff.armed = false;
    }
}

/// Sends partition `id`'s queued requests of `kind` as multi-row statements until the queue
/// is empty.
async fn drain(
    inner: Arc<Inner>,
    mut routing: Arc<Routing>,
    queue: Arc<Queue>,
    id: u64,
    kind: Kind,
) {
    while send_next(&inner, &mut routing, &queue, id, kind).await {}
}

/// Takes the next batch of `kind` and sends it as one statement; false when none was queued
/// (the drainer is then counted out).
async fn send_next(
    inner: &Inner,
    routing: &mut Arc<Routing>,
    queue: &Queue,
    id: u64,
    kind: Kind,
) -> bool {
    match kind {
        Kind::Gets => {
            let batch = queue.take_gets();
            let any = !batch.is_empty();
            if any {
                send_gets(inner, routing, batch, id).await;
            }
            any
        }
        Kind::Puts => {
            let batch = queue.take_puts();
            let any = !batch.is_empty();
            if any {
                send_puts(inner, routing, batch, id).await;
            }
            any
        }
    }
}

/// One multi-row SELECT for `batch`, each get answered with its row (or none).
async fn send_gets(inner: &Inner, routing: &mut Arc<Routing>, batch: Vec<PendingGet>, id: u64) {
    current(inner, routing);
    let Some(part) = routing.partition(id) else {
        for g in batch {
            let _ = g.reply.send(Err(partition_gone(id)));
        }
        return;
    };
    inner.coalesced_gets.record(batch.len() as f64);
    let mut params: Vec<Value> = batch.iter().map(|g| bytes(&g.key)).collect();
    pad(&mut params, 1, size_class(batch.len()));
    let stmt = part.sql.get_many(params.len());
    let result = inner
        .read::<(Vec<u8>, Vec<u8>)>(routing, part, &stmt, Params::Positional(params), "get")
        .await;
    match result {
        Ok(rows) => {
            let found = by_key(rows);
            for g in batch {
                let value = found.get(&g.key[..]).cloned();
                let _ = g.reply.send(Ok(value));
            }
        }
        Err(e) => {
            for g in batch {
                let _ = g.reply.send(Err(e.clone()));
            }
        }
    }
}

/// One multi-row upsert for `batch`, in key order; each put is acknowledged when it has
/// committed.
async fn send_puts(inner: &Inner, routing: &mut Arc<Routing>, mut batch: Vec<PendingPut>, id: u64) {
    current(inner, routing);
    let Some(part) = routing.partition(id) else {
        for p in batch {
            let _ = p.reply.send(Err(partition_gone(id)));
        }
        return;
    };
    inner.coalesced_puts.record(batch.len() as f64);
    // Stable: of two puts to one key, the later one still wins.
    batch.sort_by(|a, b| a.key.cmp(&b.key));
    let mut params: Vec<Value> = batch
        .iter()
        .flat_map(|p| [bytes(&p.key), bytes(&p.value)])
        .collect();
    let size: usize = batch.iter().map(|p| p.value.len()).sum();
    let last = batch.last().map_or(0, |p| p.value.len());
    pad(&mut params, 2, padded_rows(batch.len(), size, last));
    let stmt = part.sql.put_many(params.len() / 2);
    let result: Result<()> = inner
        .write(routing, part, &stmt, Params::Positional(params), "put")
        .await
        .map(|_| ());
    for p in batch {
        let _ = p.reply.send(result.clone());
    }
}

/// Rows of `(k, v)` by key; values move into `Bytes` once, and a key asked for twice shares
/// its value.
pub(super) fn by_key(rows: Vec<(Vec<u8>, Vec<u8>)>) -> HashMap<Vec<u8>, Bytes> {
    rows.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect()
}

/// The partition was split, merged or moved while the request waited in its queue: nothing
/// was done, and the store routes the request again ([`super::relocate`]).
fn partition_gone(id: u64) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("partition {id} left the directory while the request waited; nothing was done"),
    )
    .moved()
}
