//! Batches: the elements of `putList`, `getList` and `removeList` grouped by partition, each
//! group cut into statement-sized chunks, the chunks of different partitions run at once; and
//! the three methods themselves, with one routing.

use std::collections::HashMap;

use bytes::Bytes;
use mysql_async::{Params, Value};

use super::directory::Partition;
use super::drain::by_key;
use super::routing::Routing;
use super::sql::{self, size_class, BATCH_BYTES, BATCH_ROWS};
use super::{Inner, MysqlStore};
use crate::error::Result;
use crate::rules::{check_value_size, no_such_key};
use crate::store::{Entry, KeyRef};

/// A partition and the positions of a batch's elements that belong to it.
pub type Group<'a> = (&'a Partition, Vec<usize>);

/// Groups the keys by partition (keeping input order inside each group) and returns the
/// per-element results of those left out (`Ok(())` for the grouped): unknown buckets and the
/// elements `check` refuses.
pub fn group<'a>(
    routing: &'a Routing,
    keys: &[(&str, &[u8])],
    check: impl Fn(usize) -> Result<()>,
) -> (Vec<Group<'a>>, Vec<Result<()>>) {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut by_partition: HashMap<u64, usize> = HashMap::new();
    let mut results = Vec::with_capacity(keys.len());
    for (i, (bucket, key)) in keys.iter().enumerate() {
        match check(i).and_then(|()| routing.locate(bucket, key)) {
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
pub fn in_key_order<'a>(mut groups: Vec<Group<'a>>, keys: &[(&str, &[u8])]) -> Vec<Group<'a>> {
    for (_, positions) in &mut groups {
        positions.sort_by(|&a, &b| keys[a].1.cmp(keys[b].1));
    }
    groups
}

/// Runs `run` on each statement-sized chunk of each group: the chunks of one partition one
/// after another (so a batch's writes to one key keep their order), the partitions all at once.
/// Returns each chunk's positions with its outcome.
pub async fn per_chunk<'a, T, Fut>(
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

/// Runs each statement-sized chunk of `groups` (by row count and the `size` of each element)
/// as one write on its partition's master, `statement` giving its SQL and parameters, and
/// gives every element of a chunk the chunk's outcome in `results`.
pub(super) async fn write_chunks<'a>(
    inner: &Inner,
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
            let written = inner.write(routing, part, &stmt, Params::Positional(params), what);
            written.await.map(|_| ())
        }
    })
    .await;
    for (positions, outcome) in outcomes {
        for i in positions {
            results[i] = outcome.clone();
        }
    }
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

/// Pads `params` (rows of `width` values) to `rows` rows by repeating its last row: looking a
/// key up twice, or writing the same value twice, changes nothing.
pub fn pad(params: &mut Vec<Value>, width: usize, rows: usize) {
    let last = params[params.len() - width..].to_vec();
    while params.len() < rows * width {
        params.extend(last.iter().cloned());
    }
}

/// A bound parameter of raw bytes.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

impl MysqlStore {
    /// `putList` with `routing`: each element's outcome.
    pub(super) async fn put_many_in(
        &self,
        routing: &Routing,
        entries: &[Entry],
    ) -> Vec<Result<()>> {
        let max = self.inner.config.max_value_size;
        let keys: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|e| (e.bucket.as_str(), &e.key[..]))
            .collect();
        let (groups, mut results) = group(routing, &keys, |i| {
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
            routing,
            groups,
            size,
            statement,
            "putList",
            &mut results,
        )
        .await;
        results
    }

    /// `getList` with `routing`: each key's value.
    pub(super) async fn get_many_in(
        &self,
        routing: &Routing,
        keys: &[KeyRef],
    ) -> Vec<Result<Bytes>> {
        let refs: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|k| (k.bucket.as_str(), &k.key[..]))
            .collect();
        let (groups, failures) = group(routing, &refs, |_| Ok(()));
        let mut results: Vec<Result<Bytes>> = failures
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.and_then(|()| Err(no_such_key(&keys[i].bucket, &keys[i].key))))
            .collect();
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

    /// `removeList` with `routing`: each element's outcome.
    pub(super) async fn remove_many_in(
        &self,
        routing: &Routing,
        keys: &[KeyRef],
    ) -> Vec<Result<()>> {
        let refs: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|k| (k.bucket.as_str(), &k.key[..]))
            .collect();
        let (groups, mut results) = group(routing, &refs, |_| Ok(()));
        let statement = |part: &Partition, chunk: &[usize]| {
            let mut params: Vec<Value> = chunk.iter().map(|&i| bytes(&keys[i].key)).collect();
            pad(&mut params, 1, size_class(chunk.len()));
            (sql::remove_many(&part.table_sql, params.len()), params)
        };
        write_chunks(
            &self.inner,
            routing,
            groups,
            |_| 0,
            statement,
            "removeList",
            &mut results,
        )
        .await;
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn padding_repeats_the_last_row() {
        let mut params = vec![bytes(b"a"), bytes(b"1"), bytes(b"b"), bytes(b"2")];
        pad(&mut params, 2, 3);
        assert_eq!(params.len(), 6);
        assert_eq!(params[4..], [bytes(b"b"), bytes(b"2")]);
    }
}
