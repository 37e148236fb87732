//! The storage interface the server calls, and its implementations.
//!
//! [`Store`] is what [`crate::service`] talks to. Arguments reach it already checked for
//! shape (bucket name syntax, key and value sizes, scan count; see [`crate::service`]); a
//! store still decides which buckets exist, what a seed means, and how large a value may grow
//! through `append`.
//!
//! - [`disk`]: the embedded store (`BACKEND = disk`), one SQLite file per bucket.
//! - [`contract`]: the conformance suite every implementation's tests run.
//! - [`view`]: what a store shows operators of itself (hosts, buckets, state changes).

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

pub mod contract;
pub mod disk;
pub mod mysql;
pub mod view;

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// `(key, value)` pairs in the store's walk order.
    pub entries: Vec<(Bytes, Bytes)>,
    /// Opaque position to continue from; meaningful only to the store that made it.
    pub seed: Bytes,
}

/// A `(bucket, key)` pair of a batch operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub bucket: String,
    pub key: Bytes,
}

/// A `(bucket, key, value)` triple of a batch write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub bucket: String,
    pub key: Bytes,
    pub value: Bytes,
}

/// A key-document store partitioned into buckets.
///
/// Every method is cancel-safe in the sense that matters to clients: a returned `Ok` means the
/// change is durable in the store; an error's kind says whether it may have happened.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Names of the buckets this store serves, sorted.
    async fn buckets(&self) -> Result<Vec<String>>;

    /// Stores `value` under `key`, replacing any value.
    async fn put(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()>;

    /// The value under `key`; [`crate::ErrorKind::NoSuchKey`] when there is none.
    async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes>;

    /// Removes `key`; removing a key that is not stored succeeds.
    async fn remove(&self, bucket: &str, key: Bytes) -> Result<()>;

    /// Atomically appends `value` to the value under `key`, creating it when absent. Fails with
    /// [`crate::ErrorKind::InvalidArgument`], changing nothing, when the result would be larger
    /// than the store's value limit.
    async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()>;

    /// Up to `count` entries following `seed` (empty: the start of the bucket). Fewer than
    /// `count` entries means the walk is over. Every key present for the whole walk is returned
    /// exactly once across the pages.
    async fn scan(&self, bucket: &str, seed: Bytes, count: usize) -> Result<ScanPage>;

    /// Batch put: one result per entry, in order.
    async fn put_many(&self, entries: Vec<Entry>) -> Vec<Result<()>>;

    /// Batch get: one result per key, in order.
    async fn get_many(&self, keys: Vec<KeyRef>) -> Vec<Result<Bytes>>;

    /// Batch remove: one result per key, in order.
    async fn remove_many(&self, keys: Vec<KeyRef>) -> Vec<Result<()>>;

    /// A token covering every write this store has acknowledged so far, for
    /// [`Store::get_after`] on any server. The embedded store, one copy of everything, has
    /// nothing to wait for: its token is empty.
    async fn write_token(&self) -> Result<String> {
        Ok(String::new())
    }

    /// [`Store::get`], reflecting at least the writes `token` covers; an empty token is a plain
    /// `get`. [`crate::ErrorKind::InvalidArgument`] for a token this store did not make.
    async fn get_after(&self, bucket: &str, key: Bytes, token: &str) -> Result<Bytes> {
        if !token.is_empty() {
            return Err(crate::error::Error::invalid(format!(
                "token `{}` was not made by this store (the embedded store's tokens are empty)",
                token.escape_debug()
            )));
        }
        self.get(bucket, key).await
    }

    /// Store-specific operator commands reached through `admin(op, data)`. `Ok(None)` means the
    /// store does not know `op`.
    async fn admin(&self, op: &str, data: &str) -> Result<Option<String>>;

    /// The largest value this store accepts, in bytes.
    fn max_value_size(&self) -> usize;

    /// The cluster behind the store, for the metrics and the status page; `None` for a store
    /// with no hosts of its own (the embedded one).
    fn view(&self) -> Option<view::ClusterView> {
        None
    }

    /// Ends the store's connections once requests are done (at shutdown).
    async fn close(&self) {}
}
