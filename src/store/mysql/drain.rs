//! The coalescing drainers: the tasks that send a partition's queued gets and puts
//! ([`coalesce`](super::coalesce)) as multi-row statements until its queue is empty.
//!
//! A drainer starts with the routing its first request was located in and keeps using it for
//! as long as it is the current one; only after a directory reload does it look its partition
//! up again (the partition may have moved, or left the directory).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mysql_async::{Params, Value};

use super::batch::{bytes, pad};
use super::coalesce::Queue;
use super::routing::Routing;
use super::sql::{self, padded_rows, size_class};
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

/// Sends the queued gets of partition `id` as multi-row SELECTs until the queue is empty.
pub(super) async fn drain_gets(
    inner: Arc<Inner>,
    mut routing: Arc<Routing>,
    queue: Arc<Queue>,
    id: u64,
) {
    loop {
        let batch = queue.take_gets();
        if batch.is_empty() {
            return;
        }
        current(&inner, &mut routing);
        let Some(part) = routing.partition(id) else {
            for g in batch {
                let _ = g.reply.send(Err(partition_gone(id)));
            }
            continue;
        };
        inner.coalesced_gets.record(batch.len() as f64);
        let mut params: Vec<Value> = batch.iter().map(|g| bytes(&g.key)).collect();
        pad(&mut params, 1, size_class(batch.len()));
        let stmt = sql::get_many(&part.table_sql, params.len());
        let result = inner
            .read::<(Vec<u8>, Vec<u8>)>(&routing, part, &stmt, Params::Positional(params), "get")
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
}

/// Sends the queued puts of partition `id` as multi-row upserts, in key order, until the
/// queue is empty. Each put is acknowledged when its statement has committed.
pub(super) async fn drain_puts(
    inner: Arc<Inner>,
    mut routing: Arc<Routing>,
    queue: Arc<Queue>,
    id: u64,
) {
    loop {
        let mut batch = queue.take_puts();
        if batch.is_empty() {
            return;
        }
        current(&inner, &mut routing);
        let Some(part) = routing.partition(id) else {
            for p in batch {
                let _ = p.reply.send(Err(partition_gone(id)));
            }
            continue;
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
        let stmt = sql::put_many(&part.table_sql, params.len() / 2);
        let result: Result<()> = inner
            .write(&routing, part, &stmt, Params::Positional(params), "put")
            .await
            .map(|_| ());
        for p in batch {
            let _ = p.reply.send(result.clone());
        }
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
