//! The whole API through the real `thrudoc` binary on the embedded store, driven by the client
//! generated from the IDL, over every transport/protocol pair.

mod common;

use std::collections::HashSet;

use common::{exception_type, ThrudocServer};
use thrudoc::client::{Client, ALL_KINDS};
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{Element, ExceptionType, TThrudocSyncClient};

const NO_SUCH_KEY: i32 = ExceptionType::NO_SUCH_KEY.0;
const INVALID: i32 = ExceptionType::INVALID_ARGUMENT.0;
const NO_BUCKET: i32 = ExceptionType::NO_SUCH_BUCKET.0;

fn element(bucket: &str, key: &str, value: &[u8]) -> Element {
    Element::new(bucket.to_string(), key.to_string(), value.to_vec())
}

fn what(ex: &Option<thrudoc::gen::thrudoc::ThrudocException>) -> String {
    ex.as_ref().and_then(|e| e.what.clone()).unwrap_or_default()
}

fn ex_type(ex: &Option<thrudoc::gen::thrudoc::ThrudocException>) -> i32 {
    ex.as_ref().and_then(|e| e.type_).map_or(1, |t| t.0)
}

/// Every method once, with the edge cases of values and keys; `p` keeps keys of the four
/// transport/protocol runs apart.
fn exercise_every_method(c: &mut Client, p: &str) {
    let b = || "data".to_string();
    let k = |s: &str| format!("{p}{s}");

    assert!(c.get_buckets().unwrap().contains(&b()));

    // put/get: raw bytes, empty values, unicode keys, overwrite.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    c.put(b(), k("bytes"), all_bytes.clone()).unwrap();
    assert_eq!(c.get(b(), k("bytes")).unwrap(), all_bytes);
    c.put(b(), k("empty"), Vec::new()).unwrap();
    assert_eq!(c.get(b(), k("empty")).unwrap(), Vec::<u8>::new());
    let unicode = k("ключ-🔑-鍵");
    c.put(b(), unicode.clone(), "значение".as_bytes().to_vec())
        .unwrap();
    assert_eq!(c.get(b(), unicode.clone()).unwrap(), "значение".as_bytes());
    c.put(b(), k("bytes"), b"second".to_vec()).unwrap();
    assert_eq!(c.get(b(), k("bytes")).unwrap(), b"second");
    let big = vec![0xA5u8; 512 * 1024];
    c.put(b(), k("big"), big.clone()).unwrap();
    assert_eq!(c.get(b(), k("big")).unwrap(), big);

    // Missing keys, remove.
    assert_eq!(
        exception_type(c.get(b(), k("missing")).unwrap_err()),
        NO_SUCH_KEY
    );
    c.remove(b(), k("empty")).unwrap();
    assert_eq!(
        exception_type(c.get(b(), k("empty")).unwrap_err()),
        NO_SUCH_KEY
    );
    c.remove(b(), k("never-there")).unwrap();

    // append creates, then concatenates.
    c.append(b(), k("log"), b"a".to_vec()).unwrap();
    c.append(b(), k("log"), vec![0, 255]).unwrap();
    c.append(b(), k("log"), Vec::new()).unwrap();
    assert_eq!(c.get(b(), k("log")).unwrap(), vec![b'a', 0, 255]);

    // putValue makes distinct UUID keys.
    let k1 = c.put_value(b(), b"v1".to_vec()).unwrap();
    let k2 = c.put_value(b(), b"v2".to_vec()).unwrap();
    assert_ne!(k1, k2);
    assert_eq!(k1.len(), 36, "{k1} is not a hyphenated UUID");
    assert_eq!(c.get(b(), k1).unwrap(), b"v1");

    // Batches: per-element results in order, one failure fails alone.
    let batch = vec![
        element("data", &k("l1"), b"one"),
        element("data", &k("l2"), b""),
        element("no_such_bucket", &k("l3"), b"three"),
        element("data", "", b"empty key"),
        element("data", &k("l5"), &all_bytes),
    ];
    let put = c.put_list(batch.clone()).unwrap();
    assert_eq!(put.len(), 5);
    let types: Vec<(bool, i32)> = put
        .iter()
        .map(|e| {
            (
                e.what.clone().unwrap_or_default().is_empty(),
                e.type_.map_or(1, |t| t.0),
            )
        })
        .collect();
    assert!(types[0].0 && types[1].0 && types[4].0, "{put:?}");
    assert_eq!(types[2], (false, NO_BUCKET), "{put:?}");
    assert_eq!(types[3], (false, INVALID), "{put:?}");

    let mut wanted = batch.clone();
    wanted.push(element("data", &k("l-missing"), b""));
    let got = c.get_list(wanted).unwrap();
    assert_eq!(got.len(), 6);
    let values: Vec<Vec<u8>> = got
        .iter()
        .map(|r| {
            r.element
                .as_ref()
                .and_then(|e| e.value.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(values[0], b"one");
    assert_eq!(values[1], b"");
    assert_eq!(values[4], all_bytes);
    for i in [0, 1, 4] {
        assert!(what(&got[i].ex).is_empty(), "element {i}: {:?}", got[i]);
        let key = got[i].element.as_ref().and_then(|e| e.key.clone());
        assert_eq!(key, batch[i].key, "element {i} comes back with its own key");
    }
    assert_eq!(ex_type(&got[2].ex), NO_BUCKET);
    assert_eq!(ex_type(&got[3].ex), INVALID);
    assert_eq!(ex_type(&got[5].ex), NO_SUCH_KEY);

    let removed = c.remove_list(batch.clone()).unwrap();
    assert_eq!(removed.len(), 5);
    assert!(removed[0].what.clone().unwrap_or_default().is_empty());
    assert_eq!(removed[2].type_.map(|t| t.0), Some(NO_BUCKET));
    let got = c.get_list(batch[..2].to_vec()).unwrap();
    assert!(got.iter().all(|r| ex_type(&r.ex) == NO_SUCH_KEY), "{got:?}");

    let pv = c
        .put_value_list(vec![
            element("data", "", b"x"),
            element("nope", "", b"y"),
            element("data", "ignored", b"z"),
        ])
        .unwrap();
    assert_eq!(pv.len(), 3);
    assert_eq!(ex_type(&pv[1].ex), NO_BUCKET);
    let new_keys: Vec<String> = [0, 2]
        .iter()
        .map(|&i| {
            assert!(what(&pv[i].ex).is_empty(), "{:?}", pv[i]);
            pv[i].element.as_ref().unwrap().key.clone().unwrap()
        })
        .collect();
    assert_ne!(new_keys[0], new_keys[1]);
    assert_ne!(new_keys[1], "ignored");
    assert_eq!(c.get(b(), new_keys[0].clone()).unwrap(), b"x");
    assert_eq!(c.get(b(), new_keys[1].clone()).unwrap(), b"z");

    // admin.
    assert_eq!(c.admin("echo".into(), "héllo".into()).unwrap(), "héllo");
    let stats = c.admin("stats".into(), String::new()).unwrap();
    assert!(stats.contains("calls.put="), "{stats}");
    let status = c.admin("status".into(), String::new()).unwrap();
    assert!(status.contains("data"), "{status}");
    assert_eq!(
        exception_type(c.admin("shutdown".into(), String::new()).unwrap_err()),
        INVALID
    );
}

#[test]
fn every_method_over_every_transport_and_protocol() {
    let server = ThrudocServer::start("");
    for (i, (transport, protocol)) in ALL_KINDS.into_iter().enumerate() {
        let mut c = server.client(transport, protocol);
        exercise_every_method(&mut c, &format!("kind{i}/"));
    }
}

/// Walks bucket `data` with pages of `count`, returning the keys seen (with duplicates).
fn walk(c: &mut Client, count: i32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut seed = String::new();
    for _ in 0..100_000 {
        let page = c.scan("data".into(), seed, count).unwrap();
        let elements = page.elements.unwrap_or_default();
        for e in &elements {
            assert_eq!(e.bucket.as_deref(), Some("data"));
            seen.push(e.key.clone().unwrap());
        }
        if elements.len() < count as usize {
            return seen;
        }
        seed = page.seed.unwrap();
    }
    panic!("scan did not end");
}

#[test]
fn scan_in_small_pages_sees_every_key_once() {
    let server = ThrudocServer::start("");
    for (i, (transport, protocol)) in ALL_KINDS.into_iter().enumerate() {
        let mut c = server.client(transport, protocol);
        let mine: HashSet<String> = (0..123).map(|n| format!("scan{i}-{n:04}")).collect();
        for key in &mine {
            c.put("data".into(), key.clone(), key.as_bytes().to_vec())
                .unwrap();
        }
        let seen = walk(&mut c, 7);
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a key was returned twice");
        for key in &mine {
            assert!(unique.contains(key), "{key} not returned");
        }
        // Values come with the keys.
        let page = c.scan("data".into(), String::new(), 3).unwrap();
        for e in page.elements.unwrap() {
            assert_eq!(e.value.unwrap(), e.key.unwrap().as_bytes());
        }
    }
}

#[test]
fn bad_arguments_are_refused_and_change_nothing() {
    let server = ThrudocServer::start("");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let d = || "data".to_string();
    let refused = [
        (
            "empty bucket",
            c.put(String::new(), "k".into(), b"v".to_vec()).unwrap_err(),
            INVALID,
        ),
        (
            "SQL in bucket",
            c.put(
                "data; DROP TABLE directory; --".into(),
                "k".into(),
                b"v".to_vec(),
            )
            .unwrap_err(),
            INVALID,
        ),
        (
            "unknown bucket",
            c.put("nosuch".into(), "k".into(), b"v".to_vec())
                .unwrap_err(),
            NO_BUCKET,
        ),
        (
            "empty key",
            c.put(d(), String::new(), b"v".to_vec()).unwrap_err(),
            INVALID,
        ),
        (
            "long key",
            c.put(d(), "k".repeat(256), b"v".to_vec()).unwrap_err(),
            INVALID,
        ),
        (
            "big value",
            c.put(d(), "big".into(), vec![1; (1 << 20) + 1])
                .unwrap_err(),
            INVALID,
        ),
        (
            "big append",
            c.append(d(), "big".into(), vec![1; (1 << 20) + 1])
                .unwrap_err(),
            INVALID,
        ),
        (
            "big putValue",
            c.put_value(d(), vec![1; (1 << 20) + 1]).unwrap_err(),
            INVALID,
        ),
        (
            "negative count",
            c.scan(d(), String::new(), -1).unwrap_err(),
            INVALID,
        ),
        (
            "zero count",
            c.scan(d(), String::new(), 0).unwrap_err(),
            INVALID,
        ),
        (
            "huge count",
            c.scan(d(), String::new(), i32::MAX).unwrap_err(),
            INVALID,
        ),
        (
            "bad seed",
            c.scan(d(), "garbage!!".into(), 10).unwrap_err(),
            INVALID,
        ),
        (
            "get empty key",
            c.get(d(), String::new()).unwrap_err(),
            INVALID,
        ),
        (
            "remove SQL bucket",
            c.remove("x' OR 1=1".into(), "k".into()).unwrap_err(),
            INVALID,
        ),
    ];
    for (name, err, want) in refused {
        assert_eq!(exception_type(err), want, "{name}");
    }
    // Nothing was stored, anywhere.
    assert_eq!(
        exception_type(c.get(d(), "k".into()).unwrap_err()),
        NO_SUCH_KEY
    );
    assert_eq!(
        exception_type(c.get(d(), "big".into()).unwrap_err()),
        NO_SUCH_KEY
    );
    assert!(walk(&mut c, 100).is_empty(), "the bucket is still empty");
    assert_eq!(c.get_buckets().unwrap(), vec!["data".to_string()]);

    // An append that would grow a value past the limit is refused and leaves it as it was.
    c.put(d(), "grow".into(), vec![7; 1 << 20]).unwrap();
    assert_eq!(
        exception_type(c.append(d(), "grow".into(), vec![8]).unwrap_err()),
        INVALID
    );
    assert_eq!(c.get(d(), "grow".into()).unwrap(), vec![7; 1 << 20]);

    // Batch size limit.
    let server2 = ThrudocServer::start("MAX_BATCH_SIZE = 3");
    let mut c2 = server2.client(Transport::Unframed, Protocol::Compact);
    let four = vec![element("data", "a", b"1"); 4];
    assert_eq!(
        exception_type(c2.put_list(four.clone()).unwrap_err()),
        INVALID
    );
    assert_eq!(
        exception_type(c2.get(d(), "a".into()).unwrap_err()),
        NO_SUCH_KEY
    );
    assert_eq!(c2.put_list(four[..3].to_vec()).unwrap().len(), 3);
}

#[test]
fn fifty_concurrent_clients_read_their_own_writes() {
    let server = ThrudocServer::start("");
    std::thread::scope(|s| {
        for t in 0..50 {
            let server = &server;
            s.spawn(move || {
                let (transport, protocol) = ALL_KINDS[t % 4];
                let mut c = server.client(transport, protocol);
                for n in 0..20 {
                    let key = format!("client{t}/{n}");
                    let value = format!("{t}:{n}").into_bytes();
                    c.put("data".into(), key.clone(), value.clone()).unwrap();
                    assert_eq!(c.get("data".into(), key).unwrap(), value);
                }
                c.append("data".into(), format!("client{t}/log"), b"x".to_vec())
                    .unwrap();
            });
        }
    });
    let mut c = server.client(Transport::Framed, Protocol::Compact);
    assert_eq!(walk(&mut c, 100).len(), 50 * 21);
}

/// Starts a server on `root` with `buckets`, in a fresh config directory.
fn start_on(root: &std::path::Path, buckets: &str) -> ThrudocServer {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("thrudoc.conf");
    let conf = format!(
        "SERVER_PORT = 0\nDISK_DOC_ROOT = {}\nDISK_BUCKETS = {buckets}\n",
        root.display()
    );
    std::fs::write(&file, conf).unwrap();
    ThrudocServer::start_with(dir, &file, &[])
}

#[test]
fn data_survives_a_restart_and_more_buckets_can_be_configured() {
    let root = tempfile::tempdir().unwrap();
    let first = start_on(root.path(), "data, logs");
    let mut c = first.client(Transport::Framed, Protocol::Binary);
    assert_eq!(
        c.get_buckets().unwrap(),
        vec!["data".to_string(), "logs".to_string()]
    );
    c.put("logs".into(), "k".into(), b"kept".to_vec()).unwrap();
    drop(c);
    drop(first); // kill -9: an acknowledged write must still be there
    let second = start_on(root.path(), "logs");
    let mut c = second.client(Transport::Unframed, Protocol::Binary);
    assert_eq!(c.get("logs".into(), "k".into()).unwrap(), b"kept");
    assert_eq!(
        exception_type(c.get("data".into(), "k".into()).unwrap_err()),
        NO_BUCKET
    );
}
