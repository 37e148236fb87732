//! A conformance suite for [`Store`] implementations, shared by every backend.
//!
//! [`check_store`] drives a store through the behaviour the trait documents and panics with a
//! clear message at the first violation. The disk store runs it in its unit tests; the MySQL
//! backend's integration tests run it against real MariaDB servers, which is why it is public
//! (and hidden from the docs) rather than `#[cfg(test)]`.
//!
//! The suite assumes the bucket it is given exists and is empty, and leaves it empty again, so
//! it can be run twice on the same bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;

use super::{Entry, KeyRef, ScanPage, Store};
use crate::error::{ErrorKind, Result};

/// A bucket name no store under test serves (valid syntax, so stores cannot refuse it for its
/// shape before looking it up).
const UNKNOWN_BUCKET: &str = "thrudoc-contract-no-such-bucket";

/// Keys of the scan checks; 250 keys in pages of 7 leave a last page of 5.
const SCAN_KEYS: usize = 250;
const PAGE: usize = 7;

/// Writers of the concurrency check, and keys each writes.
const WRITERS: usize = 20;
const KEYS_PER_WRITER: usize = 5;

/// Runs the whole suite against `store`, using `bucket`, which must exist and be empty.
///
/// Panics, naming the check, at the first violation.
#[doc(hidden)]
pub async fn check_store(store: &dyn Store, bucket: &str) {
    let max = store.max_value_size();
    assert!(
        max >= 1024,
        "contract: max_value_size() is {max}; the suite needs at least 1024"
    );
    check_buckets(store, bucket).await;
    assert_empty(
        store,
        bucket,
        "at the start (the suite needs an empty bucket)",
    )
    .await;
    check_round_trips(store, bucket).await;
    check_missing_and_remove(store, bucket).await;
    check_append(store, bucket).await;
    check_value_limit(store, bucket).await;
    check_unknown_bucket(store, bucket).await;
    check_batches(store, bucket).await;
    assert_empty(store, bucket, "before the scan checks").await;
    check_scan(store, bucket).await;
    check_scan_while_writing(store, bucket).await;
    check_concurrent_writers(store, bucket).await;
    assert_empty(store, bucket, "at the end").await;
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn key_ref(bucket: &str, key: &Bytes) -> KeyRef {
    KeyRef {
        bucket: bucket.to_string(),
        key: key.clone(),
    }
}

/// Panics unless `result` failed with `kind`.
#[track_caller]
fn expect_kind<T: std::fmt::Debug>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Err(e) if e.kind() == kind => {}
        other => panic!("contract: {what}: expected a {kind:?} error, got {other:?}"),
    }
}

#[track_caller]
fn expect_ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("contract: {what}: expected Ok, got {e:?}"),
    }
}

async fn expect_value(store: &dyn Store, bucket: &str, key: &Bytes, value: &[u8], what: &str) {
    let got = expect_ok(store.get(bucket, key.clone()).await, what);
    assert!(
        got[..] == value[..],
        "contract: {what}: get({key:?}) returned {} bytes {:?}, expected {} bytes {:?}",
        got.len(),
        &got[..got.len().min(64)],
        value.len(),
        &value[..value.len().min(64)]
    );
}

async fn expect_missing(store: &dyn Store, bucket: &str, key: &Bytes, what: &str) {
    expect_kind(
        store.get(bucket, key.clone()).await,
        ErrorKind::NoSuchKey,
        what,
    );
}

async fn scan(store: &dyn Store, bucket: &str, seed: Bytes, count: usize, what: &str) -> ScanPage {
    expect_ok(store.scan(bucket, seed, count).await, what)
}

async fn assert_empty(store: &dyn Store, bucket: &str, when: &str) {
    let page = scan(store, bucket, Bytes::new(), 10, "scan for emptiness").await;
    let keys: Vec<&Bytes> = page.entries.iter().map(|(k, _)| k).collect();
    assert!(
        keys.is_empty(),
        "contract: bucket {bucket:?} is not empty {when}: holds {keys:?}"
    );
}

async fn remove_all(store: &dyn Store, bucket: &str, keys: &[Bytes], what: &str) {
    let refs = keys.iter().map(|k| key_ref(bucket, k)).collect();
    for result in store.remove_many(refs).await {
        expect_ok(result, what);
    }
}

async fn check_buckets(store: &dyn Store, bucket: &str) {
    let buckets = expect_ok(store.buckets().await, "buckets()");
    assert!(
        buckets.iter().any(|b| b == bucket),
        "contract: buckets() {buckets:?} does not list {bucket:?}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0] < w[1]),
        "contract: buckets() {buckets:?} is not sorted (or has duplicates)"
    );
    assert!(
        !buckets.iter().any(|b| b == UNKNOWN_BUCKET),
        "contract: the store serves {UNKNOWN_BUCKET:?}, which the suite uses as an unknown bucket"
    );
}

async fn check_round_trips(store: &dyn Store, bucket: &str) {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let cases: Vec<(Bytes, Bytes, &str)> = vec![
        (
            b("rt/all-bytes"),
            Bytes::from(all_bytes),
            "all 256 byte values",
        ),
        (b("rt/empty"), Bytes::new(), "an empty value"),
        (b("rt/ключ/キー/🔑"), b("unicode key"), "a UTF-8 key"),
        (
            Bytes::from_static(b"rt/\x00\xff\x80\x01"),
            b("binary key"),
            "a key with NUL and high bytes",
        ),
    ];
    for (key, value, what) in &cases {
        expect_ok(store.put(bucket, key.clone(), value.clone()).await, what);
    }
    for (key, value, what) in &cases {
        expect_value(store, bucket, key, value, &format!("round trip of {what}")).await;
    }

    // Overwrite with a longer, then a shorter, then an empty value.
    let key = b("rt/overwrite");
    for value in ["one", "two-longer", "3", ""] {
        expect_ok(store.put(bucket, key.clone(), b(value)).await, "overwrite");
        expect_value(store, bucket, &key, value.as_bytes(), "overwrite").await;
    }

    let mut keys: Vec<Bytes> = cases.into_iter().map(|(k, _, _)| k).collect();
    keys.push(key);
    remove_all(store, bucket, &keys, "clean up round trips").await;
}

async fn check_missing_and_remove(store: &dyn Store, bucket: &str) {
    expect_missing(
        store,
        bucket,
        &b("rm/never-written"),
        "get of a missing key",
    )
    .await;
    expect_ok(
        store.remove(bucket, b("rm/never-written")).await,
        "remove of a missing key",
    );

    let key = b("rm/key");
    expect_ok(
        store.put(bucket, key.clone(), b("v")).await,
        "put before remove",
    );
    expect_ok(store.remove(bucket, key.clone()).await, "remove");
    expect_missing(store, bucket, &key, "get after remove").await;
    expect_ok(store.remove(bucket, key.clone()).await, "second remove");
}

async fn check_append(store: &dyn Store, bucket: &str) {
    let key = b("ap/key");
    expect_ok(
        store.append(bucket, key.clone(), b("ab")).await,
        "append creating a key",
    );
    expect_value(store, bucket, &key, b"ab", "append creating a key").await;
    expect_ok(
        store
            .append(bucket, key.clone(), Bytes::from_static(b"c\x00\xff"))
            .await,
        "append to a key",
    );
    expect_value(store, bucket, &key, b"abc\x00\xff", "append to a key").await;
    expect_ok(
        store.append(bucket, key.clone(), Bytes::new()).await,
        "append of nothing",
    );
    expect_value(store, bucket, &key, b"abc\x00\xff", "append of nothing").await;
    expect_ok(store.remove(bucket, key).await, "clean up append");

    // Appends racing on one key: none may be lost, as they would be if append were a read
    // followed by a write.
    let key = b("ap/racing");
    let appends: Vec<_> = (0..WRITERS)
        .map(|_| store.append(bucket, key.clone(), b("ab")))
        .collect();
    for r in join_all(appends).await {
        expect_ok(r, "concurrent append");
    }
    let got = expect_ok(
        store.get(bucket, key.clone()).await,
        "get after concurrent appends",
    );
    assert!(
        got.len() == 2 * WRITERS && got.chunks(2).all(|c| c == b"ab"),
        "contract: {WRITERS} concurrent appends of \"ab\" left {got:?}"
    );
    expect_ok(
        store.remove(bucket, key).await,
        "clean up concurrent appends",
    );
}

async fn check_value_limit(store: &dyn Store, bucket: &str) {
    let max = store.max_value_size();

    // Append up to the limit, not past it.
    let key = b("lim/append");
    let start = vec![b'x'; max - 3];
    expect_ok(
        store
            .put(bucket, key.clone(), Bytes::from(start.clone()))
            .await,
        "put just under the limit",
    );
    expect_kind(
        store.append(bucket, key.clone(), b("1234")).await,
        ErrorKind::InvalidArgument,
        "append past max_value_size",
    );
    expect_value(store, bucket, &key, &start, "value after a refused append").await;
    expect_ok(
        store.append(bucket, key.clone(), b("123")).await,
        "append up to exactly max_value_size",
    );
    let mut full = start;
    full.extend_from_slice(b"123");
    expect_value(store, bucket, &key, &full, "append up to the limit").await;
    expect_kind(
        store.append(bucket, key.clone(), b("4")).await,
        ErrorKind::InvalidArgument,
        "append of one byte to a full value",
    );
    expect_value(
        store,
        bucket,
        &key,
        &full,
        "full value after a refused append",
    )
    .await;

    let oversize = Bytes::from(vec![b'o'; max + 1]);
    let fresh = b("lim/fresh");
    expect_kind(
        store.append(bucket, fresh.clone(), oversize.clone()).await,
        ErrorKind::InvalidArgument,
        "append of an oversize value to a missing key",
    );
    expect_missing(store, bucket, &fresh, "key after a refused creating append").await;

    // put: over the limit refused and nothing stored; at the limit accepted.
    expect_kind(
        store.put(bucket, fresh.clone(), oversize.clone()).await,
        ErrorKind::InvalidArgument,
        "put of max_value_size + 1 bytes",
    );
    expect_missing(store, bucket, &fresh, "key after a refused put").await;
    expect_kind(
        store.put(bucket, key.clone(), oversize).await,
        ErrorKind::InvalidArgument,
        "oversize put over an existing key",
    );
    expect_value(
        store,
        bucket,
        &key,
        &full,
        "value after a refused overwrite",
    )
    .await;
    expect_ok(
        store
            .put(bucket, fresh.clone(), Bytes::from(vec![b'm'; max]))
            .await,
        "put of exactly max_value_size bytes",
    );
    remove_all(store, bucket, &[key.clone(), fresh], "clean up limits").await;

    // Appends racing towards the limit: the check and the write must be one step, so exactly
    // as many succeed as fit, and the value ends exactly full.
    let room = 10;
    let start = vec![b'x'; max - room];
    expect_ok(
        store.put(bucket, key.clone(), Bytes::from(start)).await,
        "put before racing appends",
    );
    let appends: Vec<_> = (0..WRITERS)
        .map(|_| store.append(bucket, key.clone(), b("y")))
        .collect();
    let mut accepted = 0;
    for r in join_all(appends).await {
        match r {
            Ok(()) => accepted += 1,
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {}
            Err(e) => panic!("contract: racing append near the limit failed with {e:?}"),
        }
    }
    assert_eq!(
        accepted, room,
        "contract: {WRITERS} racing one-byte appends with room for {room}: {accepted} accepted"
    );
    let got = expect_ok(
        store.get(bucket, key.clone()).await,
        "get after racing appends",
    );
    assert_eq!(
        got.len(),
        max,
        "contract: value length after racing appends"
    );
    expect_ok(store.remove(bucket, key).await, "clean up racing appends");
}

async fn check_unknown_bucket(store: &dyn Store, bucket: &str) {
    let u = UNKNOWN_BUCKET;
    let nsb = ErrorKind::NoSuchBucket;
    let k = b("unknown/k");
    expect_kind(
        store.put(u, k.clone(), b("v")).await,
        nsb,
        "put to an unknown bucket",
    );
    expect_kind(
        store.get(u, k.clone()).await,
        nsb,
        "get from an unknown bucket",
    );
    expect_kind(
        store.remove(u, k.clone()).await,
        nsb,
        "remove from an unknown bucket",
    );
    expect_kind(
        store.append(u, k.clone(), b("v")).await,
        nsb,
        "append to an unknown bucket",
    );
    expect_kind(
        store.scan(u, Bytes::new(), PAGE).await,
        nsb,
        "scan of an unknown bucket",
    );
    let entry = Entry {
        bucket: u.to_string(),
        key: k.clone(),
        value: b("v"),
    };
    for r in store.put_many(vec![entry]).await {
        expect_kind(r, nsb, "put_many to an unknown bucket");
    }
    for r in store.get_many(vec![key_ref(u, &k)]).await {
        expect_kind(r, nsb, "get_many from an unknown bucket");
    }
    for r in store.remove_many(vec![key_ref(u, &k)]).await {
        expect_kind(r, nsb, "remove_many from an unknown bucket");
    }
    let buckets = expect_ok(
        store.buckets().await,
        "buckets() after unknown-bucket calls",
    );
    assert!(
        !buckets.iter().any(|b| b == u),
        "contract: calls on unknown bucket {u:?} created it: buckets() is {buckets:?}"
    );
    expect_missing(
        store,
        bucket,
        &k,
        "the served bucket after unknown-bucket calls",
    )
    .await;
}

async fn check_batches(store: &dyn Store, bucket: &str) {
    let max = store.max_value_size();
    let (k1, k2, k3, dup) = (b("batch/1"), b("batch/2"), b("batch/3"), b("batch/dup"));
    let entry = |bucket: &str, key: &Bytes, value: Bytes| Entry {
        bucket: bucket.to_string(),
        key: key.clone(),
        value,
    };
    assert!(
        store.put_many(Vec::new()).await.is_empty(),
        "contract: put_many of nothing returned results"
    );

    let results = store
        .put_many(vec![
            entry(bucket, &k1, b("one")),
            entry(UNKNOWN_BUCKET, &k2, b("two")),
            entry(bucket, &k2, Bytes::from(vec![b'o'; max + 1])),
            entry(bucket, &k3, b("three")),
            entry(bucket, &dup, b("first")),
            entry(bucket, &dup, b("second")),
        ])
        .await;
    assert_eq!(results.len(), 6, "contract: put_many result count");
    let mut results = results.into_iter();
    let mut next = || results.next().expect("length checked");
    expect_ok(next(), "put_many element 0");
    expect_kind(
        next(),
        ErrorKind::NoSuchBucket,
        "put_many element 1 (unknown bucket)",
    );
    expect_kind(
        next(),
        ErrorKind::InvalidArgument,
        "put_many element 2 (oversize value)",
    );
    expect_ok(next(), "put_many element 3");
    expect_ok(next(), "put_many element 4");
    expect_ok(next(), "put_many element 5");
    expect_value(store, bucket, &k1, b"one", "after put_many").await;
    expect_value(store, bucket, &k3, b"three", "after put_many").await;
    expect_value(
        store,
        bucket,
        &dup,
        b"second",
        "put_many of one key twice: last wins",
    )
    .await;
    expect_missing(store, bucket, &k2, "oversize put_many element").await;

    let keys = vec![
        key_ref(bucket, &k1),
        key_ref(UNKNOWN_BUCKET, &k1),
        key_ref(bucket, &k2),
        key_ref(bucket, &k3),
    ];
    let results = store.get_many(keys.clone()).await;
    assert_eq!(results.len(), 4, "contract: get_many result count");
    let mut results = results.into_iter();
    let mut next = || results.next().expect("length checked");
    let v = expect_ok(next(), "get_many element 0");
    assert_eq!(&v[..], b"one", "contract: get_many element 0");
    expect_kind(
        next(),
        ErrorKind::NoSuchBucket,
        "get_many element 1 (unknown bucket)",
    );
    expect_kind(
        next(),
        ErrorKind::NoSuchKey,
        "get_many element 2 (missing key)",
    );
    let v = expect_ok(next(), "get_many element 3");
    assert_eq!(&v[..], b"three", "contract: get_many element 3");

    let results = store.remove_many(keys).await;
    assert_eq!(results.len(), 4, "contract: remove_many result count");
    let mut results = results.into_iter();
    let mut next = || results.next().expect("length checked");
    expect_ok(next(), "remove_many element 0");
    expect_kind(
        next(),
        ErrorKind::NoSuchBucket,
        "remove_many element 1 (unknown bucket)",
    );
    expect_ok(next(), "remove_many element 2 (missing key)");
    expect_ok(next(), "remove_many element 3");
    expect_missing(store, bucket, &k1, "after remove_many").await;
    expect_missing(store, bucket, &k3, "after remove_many").await;
    assert!(store.get_many(Vec::new()).await.is_empty());
    assert!(store.remove_many(Vec::new()).await.is_empty());
    expect_ok(store.remove(bucket, dup).await, "clean up batches");
}

fn scan_key(i: usize) -> Bytes {
    b(&format!("scan/{i:04}"))
}

fn scan_value(i: usize) -> Bytes {
    b(&format!("value {i}"))
}

/// Walks the whole bucket in pages of `PAGE`, yielding between pages so that concurrent
/// writers get to run. Returns the pages.
async fn walk(store: &dyn Store, bucket: &str, what: &str) -> Vec<Vec<(Bytes, Bytes)>> {
    let mut pages = Vec::new();
    let mut seed = Bytes::new();
    loop {
        let page = scan(store, bucket, seed, PAGE, what).await;
        assert!(
            page.entries.len() <= PAGE,
            "contract: {what}: scan returned {} entries for count {PAGE}",
            page.entries.len()
        );
        let last = page.entries.len() < PAGE;
        seed = page.seed;
        pages.push(page.entries);
        if last {
            return pages;
        }
        assert!(
            pages.len() <= 10 * SCAN_KEYS,
            "contract: {what}: the walk does not end"
        );
        tokio::task::yield_now().await;
    }
}

/// Checks that the walk returned no key twice and each stable key with its value. The order is
/// the store's own (the disk store walks in byte order, the MySQL store partition by partition).
fn check_walk(pages: &[Vec<(Bytes, Bytes)>], stable: &BTreeMap<Bytes, Bytes>, what: &str) {
    let mut seen = BTreeSet::new();
    for (key, value) in pages.iter().flatten() {
        assert!(
            seen.insert(key.clone()),
            "contract: {what}: key {key:?} returned twice"
        );
        if let Some(expected) = stable.get(key) {
            assert_eq!(value, expected, "contract: {what}: value of {key:?}");
        }
    }
    let missed: Vec<&Bytes> = stable.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missed.is_empty(),
        "contract: {what}: keys never returned: {missed:?}"
    );
}

async fn check_scan(store: &dyn Store, bucket: &str) {
    let empty = scan(store, bucket, Bytes::new(), PAGE, "scan of an empty bucket").await;
    assert!(
        empty.entries.is_empty(),
        "contract: scan of an empty bucket returned entries"
    );

    // Written in a scrambled order (97 is coprime with 250), so the walk order is the store's.
    let entries: Vec<Entry> = (0..SCAN_KEYS)
        .map(|n| (n * 97) % SCAN_KEYS)
        .map(|i| Entry {
            bucket: bucket.to_string(),
            key: scan_key(i),
            value: scan_value(i),
        })
        .collect();
    for r in store.put_many(entries).await {
        expect_ok(r, "put_many of the scan keys");
    }
    let stable: BTreeMap<Bytes, Bytes> = (0..SCAN_KEYS)
        .map(|i| (scan_key(i), scan_value(i)))
        .collect();

    let pages = walk(store, bucket, "scan in pages").await;
    check_walk(&pages, &stable, "scan in pages");
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    let full = SCAN_KEYS / PAGE;
    assert!(
        sizes.len() == full + 1
            && sizes[..full].iter().all(|&n| n == PAGE)
            && sizes[full] == SCAN_KEYS % PAGE,
        "contract: page sizes {sizes:?}: expected {full} pages of {PAGE} then one of {}",
        SCAN_KEYS % PAGE
    );

    // The last seed, used again, still ends the walk.
    let mut seed = Bytes::new();
    for _ in 0..=full {
        seed = scan(store, bucket, seed, PAGE, "scan to the end")
            .await
            .seed;
    }
    let after = scan(store, bucket, seed, PAGE, "scan past the end").await;
    assert!(
        after.entries.is_empty(),
        "contract: scan with the final seed returned {:?}",
        after.entries
    );

    for garbage in [&b"not-a-seed"[..], b"\xff\xfe\x00"] {
        expect_kind(
            store
                .scan(bucket, Bytes::copy_from_slice(garbage), PAGE)
                .await,
            ErrorKind::InvalidArgument,
            &format!("scan with garbage seed {garbage:?}"),
        );
    }
}

/// Walks while another future inserts and removes keys between the stable ones; the scan
/// keys stay from [`check_scan`] and are removed here at the end.
async fn check_scan_while_writing(store: &dyn Store, bucket: &str) {
    let stable: BTreeMap<Bytes, Bytes> = (0..SCAN_KEYS)
        .map(|i| (scan_key(i), scan_value(i)))
        .collect();
    // "scan/0042-churn" sorts between "scan/0042" and "scan/0043".
    let churn = |i: usize| b(&format!("scan/{:04}-churn", i % SCAN_KEYS));
    let done = AtomicBool::new(false);

    let scanner = async {
        let pages = walk(store, bucket, "scan while writing").await;
        done.store(true, Ordering::SeqCst);
        pages
    };
    let writer = async {
        let mut round = 0usize;
        while !done.load(Ordering::SeqCst) {
            let add = churn(round * 31);
            expect_ok(
                store.put(bucket, add, b("churn")).await,
                "concurrent put during scan",
            );
            let gone = churn(round * 31 + 7 * 31);
            expect_ok(
                store.remove(bucket, gone).await,
                "concurrent remove during scan",
            );
            round += 1;
            tokio::task::yield_now().await;
        }
        round
    };
    let (pages, rounds) = tokio::join!(scanner, writer);
    check_walk(&pages, &stable, "scan while writing");
    assert!(rounds > 0, "contract: the concurrent writer never ran");

    let mut keys: Vec<Bytes> = (0..SCAN_KEYS).map(churn).collect();
    keys.extend(stable.into_keys());
    remove_all(store, bucket, &keys, "clean up scans").await;
}

async fn check_concurrent_writers(store: &dyn Store, bucket: &str) {
    let key = |t: usize, j: usize| b(&format!("conc/{t:02}/{j}"));
    let value = |t: usize, j: usize| b(&format!("writer {t} value {j}"));
    // `store` is borrowed, so the writers are futures polled together (not tokio::spawn'ed
    // tasks, which need 'static); the store still serves them concurrently.
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| async move {
            for j in 0..KEYS_PER_WRITER {
                expect_ok(
                    store.put(bucket, key(t, j), value(t, j)).await,
                    "concurrent put",
                );
            }
            for j in 0..KEYS_PER_WRITER {
                expect_value(store, bucket, &key(t, j), &value(t, j), "concurrent get").await;
            }
        })
        .collect();
    join_all(writers).await;

    let keys: Vec<Bytes> = (0..WRITERS)
        .flat_map(|t| (0..KEYS_PER_WRITER).map(move |j| key(t, j)))
        .collect();
    let refs = keys.iter().map(|k| key_ref(bucket, k)).collect();
    for (i, r) in store.get_many(refs).await.into_iter().enumerate() {
        let (t, j) = (i / KEYS_PER_WRITER, i % KEYS_PER_WRITER);
        let got = expect_ok(r, "get_many after concurrent writers");
        assert_eq!(got, value(t, j), "contract: concurrent writer {t} key {j}");
    }
    remove_all(store, bucket, &keys, "clean up concurrent writers").await;
}

/// Polls all `futures` together until each has finished (a small stand-in for
/// `futures::future::join_all`, to avoid a dependency).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The suite must fail stores that break the contract, not only pass a good one: each test
/// here wraps a [`crate::store::disk::DiskStore`] with one defect and expects a panic.
#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::error::Error;
    use crate::store::disk::DiskStore;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Defect {
        /// Drops the last entry of every full scan page but continues after it.
        ScanSkipsKeys,
        /// Ignores the value limit of `append` (reports success, stores nothing).
        AppendIgnoresLimit,
        /// Fails every element of a `put_many`, with the first failure's kind, when one fails.
        BatchFailsTogether,
        /// Reports an unknown bucket on `get` as a missing key.
        UnknownBucketAsMissingKey,
        /// Appends by reading, then writing: concurrent appends lose updates.
        AppendNotAtomic,
    }

    struct Defective {
        inner: DiskStore,
        defect: Defect,
    }

    #[async_trait]
    impl Store for Defective {
        async fn buckets(&self) -> Result<Vec<String>> {
            self.inner.buckets().await
        }
        async fn put(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
            self.inner.put(bucket, key, value).await
        }
        async fn get(&self, bucket: &str, key: Bytes) -> Result<Bytes> {
            match self.inner.get(bucket, key).await {
                Err(e)
                    if self.defect == Defect::UnknownBucketAsMissingKey
                        && e.kind() == ErrorKind::NoSuchBucket =>
                {
                    Err(Error::new(ErrorKind::NoSuchKey, "missing"))
                }
                other => other,
            }
        }
        async fn remove(&self, bucket: &str, key: Bytes) -> Result<()> {
            self.inner.remove(bucket, key).await
        }
        async fn append(&self, bucket: &str, key: Bytes, value: Bytes) -> Result<()> {
            if self.defect == Defect::AppendNotAtomic {
                let mut joined = match self.inner.get(bucket, key.clone()).await {
                    Ok(old) => old.to_vec(),
                    Err(e) if e.kind() == ErrorKind::NoSuchKey => Vec::new(),
                    Err(e) => return Err(e),
                };
                // Long enough for every racing append to read before any writes.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                joined.extend_from_slice(&value);
                return self.inner.put(bucket, key, Bytes::from(joined)).await;
            }
            match self.inner.append(bucket, key, value).await {
                Err(e)
                    if self.defect == Defect::AppendIgnoresLimit
                        && e.kind() == ErrorKind::InvalidArgument =>
                {
                    Ok(())
                }
                other => other,
            }
        }
        async fn scan(&self, bucket: &str, seed: Bytes, count: usize) -> Result<ScanPage> {
            let mut page = self.inner.scan(bucket, seed, count).await?;
            if self.defect == Defect::ScanSkipsKeys && page.entries.len() == count {
                page.entries.pop();
            }
            Ok(page)
        }
        async fn put_many(&self, entries: Vec<Entry>) -> Vec<Result<()>> {
            let results = self.inner.put_many(entries).await;
            if self.defect == Defect::BatchFailsTogether {
                if let Some(Err(first)) = results.iter().find(|r| r.is_err()) {
                    let kind = first.kind();
                    return results
                        .iter()
                        .map(|_| Err(Error::new(kind, "batch failed")))
                        .collect();
                }
            }
            results
        }
        async fn get_many(&self, keys: Vec<KeyRef>) -> Vec<Result<Bytes>> {
            self.inner.get_many(keys).await
        }
        async fn remove_many(&self, keys: Vec<KeyRef>) -> Vec<Result<()>> {
            self.inner.remove_many(keys).await
        }
        async fn admin(&self, op: &str, data: &str) -> Result<Option<String>> {
            self.inner.admin(op, data).await
        }
        fn max_value_size(&self) -> usize {
            self.inner.max_value_size()
        }
    }

    async fn check_defective(defect: Defect) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let inner = DiskStore::open(dir.path(), &["b".to_string()], 2048).expect("open disk store");
        check_store(&Defective { inner, defect }, "b").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[should_panic(expected = "contract: scan in pages: keys never returned")]
    async fn catches_a_scan_that_skips_keys() {
        check_defective(Defect::ScanSkipsKeys).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[should_panic(expected = "contract: append past max_value_size")]
    async fn catches_an_append_past_the_limit() {
        check_defective(Defect::AppendIgnoresLimit).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[should_panic(expected = "contract: put_many element 0")]
    async fn catches_a_batch_failing_as_a_whole() {
        check_defective(Defect::BatchFailsTogether).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[should_panic(expected = "concurrent appends of")]
    async fn catches_an_append_that_is_not_atomic() {
        check_defective(Defect::AppendNotAtomic).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[should_panic(expected = "contract: get from an unknown bucket")]
    async fn catches_an_unknown_bucket_reported_as_missing_key() {
        check_defective(Defect::UnknownBucketAsMissingKey).await;
    }
}
