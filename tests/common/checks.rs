//! API checks shared by the tests of every backend: they drive a server through the client
//! generated from the IDL and assert what every Thrudoc store must do.

use thrudoc::client::Client;
use thrudoc::gen::thrudoc::{Element, ErrorCode, TThrudocSyncClient};

use super::{code_of, error_code};

pub const NO_SUCH_KEY: i32 = ErrorCode::NO_SUCH_KEY.0;
pub const INVALID: i32 = ErrorCode::INVALID_ARGUMENT.0;
pub const NO_BUCKET: i32 = ErrorCode::NO_SUCH_BUCKET.0;

pub fn element(bucket: &str, key: &str, value: &[u8]) -> Element {
    Element::new(bucket.to_string(), key.to_string(), value.to_vec())
}

fn what(ex: &Option<thrudoc::gen::thrudoc::ThrudocException>) -> String {
    ex.as_ref().and_then(|e| e.what.clone()).unwrap_or_default()
}

fn ex_code(ex: &Option<thrudoc::gen::thrudoc::ThrudocException>) -> i32 {
    code_of(ex.as_ref().expect("an exception"))
}

/// Every method once on `bucket`, with the edge cases of values and keys; `p` prefixes every
/// key, keeping runs over different transports and protocols apart.
pub fn exercise_every_method(c: &mut Client, bucket: &str, p: &str) {
    let b = || bucket.to_string();
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
        error_code(c.get(b(), k("missing")).unwrap_err()),
        NO_SUCH_KEY
    );
    c.remove(b(), k("empty")).unwrap();
    assert_eq!(error_code(c.get(b(), k("empty")).unwrap_err()), NO_SUCH_KEY);
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
        element(bucket, &k("l1"), b"one"),
        element(bucket, &k("l2"), b""),
        element("no_such_bucket", &k("l3"), b"three"),
        element(bucket, "", b"empty key"),
        element(bucket, &k("l5"), &all_bytes),
    ];
    let put = c.put_list(batch.clone()).unwrap();
    assert_eq!(put.len(), 5);
    let types: Vec<(bool, Option<i32>)> = put
        .iter()
        .map(|e| {
            let ok = e.what.clone().unwrap_or_default().is_empty();
            (ok, (!ok).then(|| code_of(e)))
        })
        .collect();
    assert!(types[0].0 && types[1].0 && types[4].0, "{put:?}");
    assert!(put[0].code.is_none() && put[1].code.is_none(), "{put:?}");
    assert_eq!(types[2], (false, Some(NO_BUCKET)), "{put:?}");
    assert_eq!(types[3], (false, Some(INVALID)), "{put:?}");

    let mut wanted = batch.clone();
    wanted.push(element(bucket, &k("l-missing"), b""));
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
    assert_eq!(ex_code(&got[2].ex), NO_BUCKET);
    assert_eq!(ex_code(&got[3].ex), INVALID);
    assert_eq!(ex_code(&got[5].ex), NO_SUCH_KEY);

    let removed = c.remove_list(batch.clone()).unwrap();
    assert_eq!(removed.len(), 5);
    assert!(removed[0].what.clone().unwrap_or_default().is_empty());
    assert_eq!(code_of(&removed[2]), NO_BUCKET);
    let got = c.get_list(batch[..2].to_vec()).unwrap();
    assert!(got.iter().all(|r| ex_code(&r.ex) == NO_SUCH_KEY), "{got:?}");

    let pv = c
        .put_value_list(vec![
            element(bucket, "", b"x"),
            element("nope", "", b"y"),
            element(bucket, "ignored", b"z"),
        ])
        .unwrap();
    assert_eq!(pv.len(), 3);
    assert_eq!(ex_code(&pv[1].ex), NO_BUCKET);
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
    assert!(status.contains(bucket), "{status}");
    assert_eq!(
        error_code(c.admin("shutdown".into(), String::new()).unwrap_err()),
        INVALID
    );
}

/// Walks `bucket` with pages of `count`, returning the keys seen (with duplicates).
pub fn walk(c: &mut Client, bucket: &str, count: i32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut seed = String::new();
    for _ in 0..100_000 {
        let page = c.scan(bucket.into(), seed, count).unwrap();
        let elements = page.elements.unwrap_or_default();
        for e in &elements {
            assert_eq!(e.bucket.as_deref(), Some(bucket));
            seen.push(e.key.clone().unwrap());
        }
        if elements.len() < count as usize {
            return seen;
        }
        seed = page.seed.unwrap();
    }
    panic!("scan did not end");
}
