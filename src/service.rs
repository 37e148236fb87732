//! The Thrudoc API on top of a [`Store`]: one function per method.
//!
//! Bucket names, keys, scan counts and seeds are checked here, by the rules of
//! [`crate::rules`], before the store sees them, so a store never receives a bucket name that
//! is not `[A-Za-z0-9_-]{1,64}` or an empty or oversize key; a store checks values against its
//! own size limit. Batch methods check each element alone: one bad element fails alone.
//!
//! [`client_failure`] is the one place that decides what a client sees for an [`Error`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::codec::{AppExceptionKind, Call, Element, ListResult, Method, ReplyBody, WireException};
use crate::config::Limits;
use crate::error::{Error, ErrorKind, Result};
use crate::failure_log::FailureLog;
use crate::gen::thrudoc::{ErrorCode, ExceptionType};
use crate::observe::Metrics;
use crate::rules::{self, MAX_SEED_SIZE};
use crate::store::{Entry, KeyRef, Store};

/// What a client is told about a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFailure {
    /// The method's declared `ThrudocException`.
    Thrudoc(WireException),
    /// A `TApplicationException` (the call itself could not be understood).
    Application {
        kind: AppExceptionKind,
        message: String,
    },
}

/// Maps an error to what the client sees. The only such mapping in the crate.
///
/// `type` carries only what the original IDL defines (NO_SUCH_KEY for a missing key, UNKNOWN
/// for everything else), because strict clients of the original reject any other value; the
/// precise kind travels in `code` (an `ErrorCode`), and `what` names it for every client.
/// Internal errors are logged in full by the caller and reach the client without their cause.
pub fn client_failure(err: &Error) -> ClientFailure {
    let code = match err.kind() {
        ErrorKind::NoSuchKey => ErrorCode::NO_SUCH_KEY,
        ErrorKind::NoSuchBucket => ErrorCode::NO_SUCH_BUCKET,
        ErrorKind::InvalidArgument => ErrorCode::INVALID_ARGUMENT,
        ErrorKind::ReadOnly => ErrorCode::READ_ONLY,
        ErrorKind::Unavailable => ErrorCode::UNAVAILABLE,
        ErrorKind::OutcomeUnknown => ErrorCode::OUTCOME_UNKNOWN,
        ErrorKind::Behind => ErrorCode::BEHIND,
        ErrorKind::Protocol => {
            return ClientFailure::Application {
                kind: AppExceptionKind::ProtocolError,
                message: err.to_string(),
            }
        }
        ErrorKind::Config | ErrorKind::Internal => {
            return ClientFailure::Thrudoc(WireException {
                what: format!("{}: {}", err.kind(), err.message()),
                type_: ExceptionType::UNKNOWN.0,
                code: Some(ErrorCode::UNKNOWN.0),
            })
        }
    };
    let type_ = if code == ErrorCode::NO_SUCH_KEY {
        ExceptionType::NO_SUCH_KEY
    } else {
        ExceptionType::UNKNOWN
    };
    ClientFailure::Thrudoc(WireException {
        what: format!("{}: {err}", err.kind()),
        type_: type_.0,
        code: Some(code.0),
    })
}

/// The exception a batch method puts in its result list for one element.
fn element_exception(result: &Result<()>) -> WireException {
    match result {
        Ok(()) => WireException::success(),
        Err(e) => match client_failure(e) {
            ClientFailure::Thrudoc(ex) => ex,
            ClientFailure::Application { message, .. } => WireException {
                what: message,
                type_: ExceptionType::UNKNOWN.0,
                code: Some(ErrorCode::UNKNOWN.0),
            },
        },
    }
}

/// Every `admin` op: `echo`, `stats` and `status` read; `load_partitions` (MySQL backend)
/// reloads the directory. `ADMIN_OPS` says which a server answers.
pub const ADMIN_OPS: &[&str] = &["echo", "stats", "status", "load_partitions"];

/// Per-method call and error counters, for `admin("stats")`.
#[derive(Default)]
struct Counters {
    calls: [AtomicU64; Method::ALL.len()],
    errors: [AtomicU64; Method::ALL.len()],
}

/// The API implementation shared by all connections.
pub struct Service {
    store: Arc<dyn Store>,
    limits: Limits,
    counters: Counters,
    metrics: Arc<Metrics>,
    failures: FailureLog,
    started: Instant,
}

impl Service {
    /// A service over `store` applying `limits`.
    pub fn new(store: Arc<dyn Store>, limits: Limits) -> Self {
        Service {
            metrics: Arc::new(Metrics::new(store.clone())),
            store,
            limits,
            counters: Counters::default(),
            failures: FailureLog::default(),
            started: Instant::now(),
        }
    }

    /// Runs one call. `Err` is the method's declared exception or an application exception,
    /// already mapped by [`client_failure`].
    pub async fn call(&self, call: Call) -> std::result::Result<ReplyBody, ClientFailure> {
        let method = call.method();
        let index = method.index();
        self.counters.calls[index].fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.dispatch(call).await;
        let took = started.elapsed();
        match result {
            Ok(reply) => {
                self.metrics.call(method, took, None);
                Ok(reply)
            }
            Err(e) => {
                self.metrics.call(method, took, Some(e.kind()));
                self.counters.errors[index].fetch_add(1, Ordering::Relaxed);
                self.failures.record(method, &e);
                Err(client_failure(&e))
            }
        }
    }

    /// How long the service has run.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store's view of its cluster, if it has one.
    pub fn cluster(&self) -> Option<crate::store::view::ClusterView> {
        self.store.view()
    }

    /// Logs the counts of failures that were only counted (see [`FailureLog`]); the server
    /// calls it every few seconds.
    pub fn flush_failure_log(&self) {
        self.failures.flush();
    }

    async fn dispatch(&self, call: Call) -> Result<ReplyBody> {
        let store = &*self.store;
        match call {
            Call::GetBuckets => {
                let names = store.buckets().await?;
                Ok(ReplyBody::Strings(
                    names.into_iter().map(Bytes::from).collect(),
                ))
            }
            Call::Put { bucket, key, value } => {
                let bucket = self.bucket(&bucket)?;
                store.put(bucket, self.key(key)?, value).await?;
                Ok(ReplyBody::Void)
            }
            Call::Get { bucket, key } => {
                let value = store.get(self.bucket(&bucket)?, self.key(key)?).await?;
                Ok(ReplyBody::Binary(value))
            }
            Call::Remove { bucket, key } => {
                store.remove(self.bucket(&bucket)?, self.key(key)?).await?;
                Ok(ReplyBody::Void)
            }
            Call::Append { bucket, key, value } => {
                let bucket = self.bucket(&bucket)?;
                store.append(bucket, self.key(key)?, value).await?;
                Ok(ReplyBody::Void)
            }
            Call::PutValue { bucket, value } => {
                let bucket = self.bucket(&bucket)?;
                let key = new_key();
                store.put(bucket, key.clone(), value).await?;
                Ok(ReplyBody::Binary(key))
            }
            Call::Scan {
                bucket,
                seed,
                count,
            } => self.scan(&bucket, seed, count).await,
            Call::PutList(elements) => {
                self.batch_size(elements.len())?;
                let results = self.put_list(elements, false).await;
                Ok(ReplyBody::Exceptions(
                    results.iter().map(|(_, r)| element_exception(r)).collect(),
                ))
            }
            Call::PutValueList(elements) => {
                self.batch_size(elements.len())?;
                let results = self.put_list(elements, true).await;
                Ok(ReplyBody::ListResults(
                    results
                        .into_iter()
                        .map(|(element, r)| ListResult {
                            ex: element_exception(&r),
                            element,
                        })
                        .collect(),
                ))
            }
            Call::GetList(elements) => {
                self.batch_size(elements.len())?;
                Ok(ReplyBody::ListResults(self.get_list(elements).await))
            }
            Call::RemoveList(elements) => {
                self.batch_size(elements.len())?;
                let results = self.remove_list(elements).await;
                Ok(ReplyBody::Exceptions(
                    results.iter().map(element_exception).collect(),
                ))
            }
            Call::Admin { op, data } => self.admin(&op, &data).await.map(ReplyBody::Binary),
            Call::WriteToken => Ok(ReplyBody::Binary(Bytes::from(store.write_token().await?))),
            Call::GetAfter { bucket, key, token } => {
                let token = std::str::from_utf8(&token)
                    .map_err(|_| Error::invalid("token is not UTF-8"))?;
                let value = store
                    .get_after(self.bucket(&bucket)?, self.key(key)?, token)
                    .await?;
                Ok(ReplyBody::Binary(value))
            }
        }
    }

    async fn scan(&self, bucket: &[u8], seed: Bytes, count: i32) -> Result<ReplyBody> {
        let bucket = self.bucket(bucket)?;
        let max = self.limits.max_scan_count;
        let count = usize::try_from(count)
            .ok()
            .filter(|c| (1..=max).contains(c))
            .ok_or_else(|| Error::invalid(format!("scan count {count} is outside 1..={max}")))?;
        if seed.len() > MAX_SEED_SIZE {
            return Err(Error::invalid("scan seed is not one this server made"));
        }
        let page = self.store.scan(bucket, seed, count).await?;
        let bucket = Bytes::copy_from_slice(bucket.as_bytes());
        let elements = page
            .entries
            .into_iter()
            .map(|(key, value)| Element {
                bucket: bucket.clone(),
                key,
                value,
            })
            .collect();
        Ok(ReplyBody::Scan {
            elements,
            seed: page.seed,
        })
    }

    /// putList and putValueList: check each element, write the good ones in one store call,
    /// and return each element (with its new key for putValueList) beside its result.
    async fn put_list(&self, elements: Vec<Element>, new_keys: bool) -> Vec<(Element, Result<()>)> {
        let mut results: Vec<(Element, Result<()>)> = Vec::with_capacity(elements.len());
        let mut entries = Vec::new();
        let mut positions = Vec::new();
        for mut element in elements {
            if new_keys {
                element.key = new_key();
            }
            let checked = self.entry(&element);
            match checked {
                Ok(entry) => {
                    positions.push(results.len());
                    entries.push(entry);
                    results.push((element, Ok(())));
                }
                Err(e) => results.push((element, Err(e))),
            }
        }
        if !entries.is_empty() {
            for (position, result) in positions
                .into_iter()
                .zip(self.store.put_many(entries).await)
            {
                results[position].1 = result;
            }
        }
        results
    }

    async fn get_list(&self, elements: Vec<Element>) -> Vec<ListResult> {
        let (keys, positions, mut results) = self.key_refs(&elements);
        let mut values: Vec<Option<Result<Bytes>>> = (0..elements.len()).map(|_| None).collect();
        if !keys.is_empty() {
            for (position, value) in positions.into_iter().zip(self.store.get_many(keys).await) {
                values[position] = Some(value);
            }
        }
        elements
            .into_iter()
            .zip(values)
            .enumerate()
            .map(|(i, (mut element, value))| {
                let outcome = match value {
                    Some(Ok(v)) => {
                        element.value = v;
                        Ok(())
                    }
                    Some(Err(e)) => {
                        element.value = Bytes::new();
                        Err(e)
                    }
                    None => {
                        element.value = Bytes::new();
                        std::mem::replace(&mut results[i], Ok(()))
                    }
                };
                ListResult {
                    ex: element_exception(&outcome),
                    element,
                }
            })
            .collect()
    }

    async fn remove_list(&self, elements: Vec<Element>) -> Vec<Result<()>> {
        let (keys, positions, mut results) = self.key_refs(&elements);
        if !keys.is_empty() {
            for (position, result) in positions
                .into_iter()
                .zip(self.store.remove_many(keys).await)
            {
                results[position] = result;
            }
        }
        results
    }

    /// The valid `(bucket, key)`s of `elements`, their positions, and per-element results
    /// holding the argument errors of the others.
    fn key_refs(&self, elements: &[Element]) -> (Vec<KeyRef>, Vec<usize>, Vec<Result<()>>) {
        let mut keys = Vec::new();
        let mut positions = Vec::new();
        let mut results = Vec::with_capacity(elements.len());
        for (i, element) in elements.iter().enumerate() {
            let checked = self
                .bucket(&element.bucket)
                .and_then(|b| Ok((b, self.key(element.key.clone())?)));
            match checked {
                Ok((bucket, key)) => {
                    keys.push(KeyRef {
                        bucket: bucket.to_string(),
                        key,
                    });
                    positions.push(i);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        (keys, positions, results)
    }

    fn entry(&self, element: &Element) -> Result<Entry> {
        Ok(Entry {
            bucket: self.bucket(&element.bucket)?.to_string(),
            key: self.key(element.key.clone())?,
            value: element.value.clone(),
        })
    }

    async fn admin(&self, op: &[u8], data: &[u8]) -> Result<Bytes> {
        let op = std::str::from_utf8(op).map_err(|_| Error::invalid("admin op is not UTF-8"))?;
        let data_text = std::str::from_utf8(data).unwrap_or("");
        if ADMIN_OPS.contains(&op) && !self.limits.admin_ops.iter().any(|o| o == op) {
            return Err(Error::invalid(format!(
                "admin op `{op}` is switched off on this server (ADMIN_OPS = {}); nothing was done",
                self.limits.admin_ops.join(", ")
            )));
        }
        match op {
            "echo" => Ok(Bytes::copy_from_slice(data)),
            "stats" => {
                // The store adds its own figures (host states of the MySQL backend).
                let store = self
                    .store
                    .admin("stats", data_text)
                    .await?
                    .unwrap_or_default();
                Ok(Bytes::from(self.stats() + &store))
            }
            "status" => {
                let store = self
                    .store
                    .admin("status", data_text)
                    .await?
                    .unwrap_or_default();
                Ok(Bytes::from(format!(
                    "uptime_secs={}\n{store}",
                    self.started.elapsed().as_secs()
                )))
            }
            _ => match self.store.admin(op, data_text).await? {
                Some(text) => Ok(Bytes::from(text)),
                None => Err(Error::invalid(format!(
                    "unknown admin op `{}`; known: {}",
                    op.escape_debug(),
                    ADMIN_OPS.join(", ")
                ))),
            },
        }
    }

    /// `name=value` lines: uptime and per-method calls and errors.
    fn stats(&self) -> String {
        let mut out = format!("uptime_secs={}\n", self.started.elapsed().as_secs());
        for method in Method::ALL {
            let i = method.index();
            let calls = self.counters.calls[i].load(Ordering::Relaxed);
            let errors = self.counters.errors[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "calls.{}={calls}\nerrors.{}={errors}",
                method.name(),
                method.name()
            );
        }
        out
    }

    fn bucket<'a>(&self, bucket: &'a [u8]) -> Result<&'a str> {
        rules::bucket_name(bucket)
    }

    fn key(&self, key: Bytes) -> Result<Bytes> {
        rules::check_key(&key)?;
        Ok(key)
    }

    fn batch_size(&self, n: usize) -> Result<()> {
        let max = self.limits.max_batch_size;
        if n > max {
            return Err(Error::invalid(format!(
                "batch of {n} elements is larger than {max}"
            )));
        }
        Ok(())
    }
}

/// A new unique key for putValue: a random (v4) UUID in its hyphenated text form.
fn new_key() -> Bytes {
    Bytes::from(uuid::Uuid::new_v4().hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_KIND: [ErrorKind; 9] = [
        ErrorKind::NoSuchKey,
        ErrorKind::NoSuchBucket,
        ErrorKind::InvalidArgument,
        ErrorKind::ReadOnly,
        ErrorKind::Unavailable,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Protocol,
        ErrorKind::Config,
        ErrorKind::Internal,
    ];

    fn thrown(e: &Error) -> WireException {
        match client_failure(e) {
            ClientFailure::Thrudoc(ex) => ex,
            other => panic!("{e:?} became {other:?}"),
        }
    }

    #[test]
    fn type_only_carries_the_original_values() {
        let e = Error::new(ErrorKind::NoSuchKey, "no key `k` in bucket `data`");
        let ex = thrown(&e);
        assert_eq!(ex.type_, ExceptionType::NO_SUCH_KEY.0);
        assert_eq!(ex.code, Some(ErrorCode::NO_SUCH_KEY.0));
        assert!(ex.what.contains("no key `k`"), "{}", ex.what);
        for kind in EVERY_KIND {
            if kind == ErrorKind::Protocol {
                continue;
            }
            let ex = thrown(&Error::new(kind, "x"));
            let original = [ExceptionType::UNKNOWN.0, ExceptionType::NO_SUCH_KEY.0];
            assert!(
                original.contains(&ex.type_),
                "{kind:?} sent type {}",
                ex.type_
            );
            assert_eq!(
                ex.type_ == ExceptionType::NO_SUCH_KEY.0,
                kind == ErrorKind::NoSuchKey,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn every_kind_has_its_own_code_and_names_itself() {
        let mut seen = std::collections::HashMap::new();
        let precise = EVERY_KIND.iter().filter(|k| {
            !matches!(
                k,
                ErrorKind::Protocol | ErrorKind::Config | ErrorKind::Internal
            )
        });
        for &kind in precise {
            let ex = thrown(&Error::new(kind, "x"));
            let code = ex.code.expect("a code");
            assert!(code > ErrorCode::UNKNOWN.0, "{kind:?}");
            assert!(ex.what.starts_with(kind.as_str()), "{kind:?}: {}", ex.what);
            assert_eq!(seen.insert(code, kind), None, "{kind:?} shares code {code}");
        }
        for kind in [ErrorKind::Config, ErrorKind::Internal] {
            assert_eq!(
                thrown(&Error::new(kind, "x")).code,
                Some(ErrorCode::UNKNOWN.0)
            );
        }
        assert!(matches!(
            client_failure(&Error::new(ErrorKind::Protocol, "bad")),
            ClientFailure::Application {
                kind: AppExceptionKind::ProtocolError,
                ..
            }
        ));
    }

    #[test]
    fn successes_in_lists_have_empty_what() {
        let success = element_exception(&Ok(()));
        assert!(success.what.is_empty());
        assert_eq!(success.code, None);
        let failure = element_exception(&Err(Error::invalid("x")));
        assert!(!failure.what.is_empty());
        assert_eq!(failure.type_, ExceptionType::UNKNOWN.0);
        assert_eq!(failure.code, Some(ErrorCode::INVALID_ARGUMENT.0));
    }

    #[test]
    fn new_keys_are_unique_uuids() {
        let a = new_key();
        let b = new_key();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(std::str::from_utf8(&a).unwrap()).is_ok());
    }
}
