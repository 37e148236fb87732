//! The whole API through the real `thrudoc` binary on the embedded store, driven by the client
//! generated from the IDL, over every transport/protocol pair.

mod common;

use std::collections::HashSet;

use common::checks::{element, exercise_every_method, walk, INVALID, NO_BUCKET, NO_SUCH_KEY};
use common::{error_code, ThrudocServer};
use thrudoc::client::ALL_KINDS;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

#[test]
fn every_method_over_every_transport_and_protocol() {
    let server = ThrudocServer::start("");
    for (i, (transport, protocol)) in ALL_KINDS.into_iter().enumerate() {
        let mut c = server.client(transport, protocol);
        exercise_every_method(&mut c, "data", &format!("kind{i}/"));
    }
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
        let seen = walk(&mut c, "data", 7);
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
        assert_eq!(error_code(err), want, "{name}");
    }
    // Nothing was stored, anywhere.
    assert_eq!(error_code(c.get(d(), "k".into()).unwrap_err()), NO_SUCH_KEY);
    assert_eq!(
        error_code(c.get(d(), "big".into()).unwrap_err()),
        NO_SUCH_KEY
    );
    assert!(
        walk(&mut c, "data", 100).is_empty(),
        "the bucket is still empty"
    );
    assert_eq!(c.get_buckets().unwrap(), vec!["data".to_string()]);

    // An append that would grow a value past the limit is refused and leaves it as it was.
    c.put(d(), "grow".into(), vec![7; 1 << 20]).unwrap();
    assert_eq!(
        error_code(c.append(d(), "grow".into(), vec![8]).unwrap_err()),
        INVALID
    );
    assert_eq!(c.get(d(), "grow".into()).unwrap(), vec![7; 1 << 20]);

    // Batch size limit.
    let server2 = ThrudocServer::start("MAX_BATCH_SIZE = 3");
    let mut c2 = server2.client(Transport::Unframed, Protocol::Compact);
    let four = vec![element("data", "a", b"1"); 4];
    assert_eq!(error_code(c2.put_list(four.clone()).unwrap_err()), INVALID);
    assert_eq!(
        error_code(c2.get(d(), "a".into()).unwrap_err()),
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
    assert_eq!(walk(&mut c, "data", 100).len(), 50 * 21);
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
        error_code(c.get("data".into(), "k".into()).unwrap_err()),
        NO_BUCKET
    );
}

/// The embedded store keeps one copy of everything: its write token is empty, `getAfter` with
/// it is `get`, and a token of another store is refused without reading.
#[test]
fn write_tokens_on_the_embedded_store() {
    let server = ThrudocServer::start("");
    let mut c = server.client(Transport::Framed, Protocol::Compact);
    c.put("data".into(), "t".into(), b"v".to_vec()).unwrap();
    let token = c.write_token().unwrap();
    assert_eq!(token, "");
    assert_eq!(c.get_after("data".into(), "t".into(), token).unwrap(), b"v");
    let e = c
        .get_after("data".into(), "t".into(), "1-1-5".into())
        .unwrap_err();
    assert_eq!(error_code(e), INVALID);
    let e = c
        .get_after("data".into(), "absent".into(), String::new())
        .unwrap_err();
    assert_eq!(error_code(e), NO_SUCH_KEY);
}

/// A server asked for more connections than its open-files limit allows says so in one line at
/// start-up, naming both figures, and serves anyway.
#[test]
fn a_connection_limit_above_the_open_files_limit_is_logged_at_start_up() {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .expect("/proc/self/limits")
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .expect("the open files line");
    let max = 1_000_000u64;
    // JSON lines: fields are `"name":value`, with no colour codes between.
    let server = ThrudocServer::start(&format!("MAX_CONNECTIONS = {max}\nLOG_FORMAT = json"));
    let mut client = server.client(Transport::Framed, Protocol::Binary);
    assert!(client.get_buckets().is_ok(), "it serves anyway");
    let log = server.stderr_text();
    match hard.parse::<u64>() {
        Ok(hard) if hard < max + 1024 => assert!(
            log.contains("the open-file limit (hard limit) is below MAX_CONNECTIONS")
                && log.contains(&format!("\"limit\":{hard}"))
                && log.contains(&format!("\"max_connections\":{max}")),
            "no start-up line about the limit {hard}: {log}"
        ),
        // An unlimited (or very high) hard limit: the server raises its soft limit instead.
        _ => assert!(
            log.contains("raised the open-file limit"),
            "no line about raising the limit: {log}"
        ),
    }
}
