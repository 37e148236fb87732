//! The cross-language conformance script: one list of checks that the clients of every
//! language (tests/interop/*/) run against a server. The script is data (JSON), so each
//! language's driver is a small interpreter and all languages check exactly the same things.
//! `tests/interop/README.md` describes the format; this module writes it.

use serde_json::{json, Value};
use thrudoc::client::ALL_KINDS;

/// Keys are at most this many UTF-8 bytes.
const MAX_KEY_BYTES: usize = 255;
/// Larger than any server's value limit in the tests.
const OVERSIZE_VALUE: usize = 2 * 1024 * 1024 + 1;
const SCAN_PAGE: i32 = 10;
const SCAN_KEYS: usize = 257;
const MISSING_BUCKET: &str = "no_such_bucket_xyz";

/// `ErrorCode`s and the `what` text naming each kind.
const NO_SUCH_KEY: (i32, &str) = (2, "no such key");
const INVALID: (i32, &str) = (3, "invalid argument");
const NO_BUCKET: (i32, &str) = (4, "no such bucket");

/// Which IDL the client was generated from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Idl {
    /// `tests/interop/original.thrift`: no `code`, values are `string`.
    Original,
    /// `idl/thrudoc.thrift`: `code`, values are `binary`.
    New,
}

/// How the client's bindings carry values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Values {
    /// As raw bytes (any `binary` field; a `string` in Ruby).
    Bytes,
    /// As text: the language decodes a `string` field as UTF-8 (Java, Node.js, Python), so
    /// values that are not UTF-8 cannot round-trip through its bindings of the original IDL.
    Text,
}

/// A whole script: every check on each of the four transport/protocol pairs, each pair under
/// its own key prefix (`{tag}-{transport}-{protocol}-{nonce}/`).
pub fn script(bucket: &str, idl: Idl, values: Values, tag: &str) -> Value {
    let nonce = std::process::id();
    let runs: Vec<Value> = ALL_KINDS
        .iter()
        .map(|(t, p)| {
            let prefix = format!("{tag}-{t}-{p}-{nonce}/");
            json!({
                "transport": t.to_string(),
                "protocol": p.to_string(),
                "checks": Checks { bucket, prefix: &prefix, values }.all(),
            })
        })
        .collect();
    json!({
        "bucket": bucket,
        "idl": match idl { Idl::Original => "original", Idl::New => "new" },
        "values": match values { Values::Bytes => "bytes", Values::Text => "text" },
        "runs": runs,
    })
}

/// A script of given checks on one pair: for tests that set up a fault first.
pub fn single_run(
    bucket: &str,
    idl: Idl,
    transport: &str,
    protocol: &str,
    checks: Vec<Value>,
) -> Value {
    json!({
        "bucket": bucket,
        "idl": match idl { Idl::Original => "original", Idl::New => "new" },
        "values": "bytes",
        "runs": [{"transport": transport, "protocol": protocol, "checks": checks}],
    })
}

/// How many checks a run of [`script`] holds per pair.
pub fn checks_per_run(values: Values) -> usize {
    Checks {
        bucket: "b",
        prefix: "p/",
        values,
    }
    .all()
    .len()
}

// --- the script's vocabulary (see tests/interop/README.md) ---------------------------------

pub fn text(s: &str) -> Value {
    json!({ "text": s })
}

pub fn hex(b: &[u8]) -> Value {
    json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() })
}

pub fn fill(c: char, count: usize) -> Value {
    json!({ "fill": c.to_string(), "count": count })
}

pub fn check(name: &str, steps: Vec<Value>) -> Value {
    json!({ "name": name, "steps": steps })
}

pub fn call(method: &str, args: Vec<Value>, expect: Value) -> Value {
    json!({ "op": "call", "method": method, "args": args, "expect": expect })
}

/// A `ThrudocException` with `code` (read by clients of the new IDL only), a `type` derived
/// from it as the server must (NO_SUCH_KEY or UNKNOWN), and `what` naming the kind.
pub fn error((code, what): (i32, &str)) -> Value {
    let type_ = if code == NO_SUCH_KEY.0 { 2 } else { 1 };
    json!({ "error": { "type": type_, "code": code, "what": what } })
}

pub fn element(bucket: &str, key: &str, value: Value) -> Value {
    json!({ "bucket": bucket, "key": key, "value": value })
}

fn void() -> Value {
    json!("void")
}

fn value(v: Value) -> Value {
    json!({ "value": v })
}

fn new_key() -> Value {
    json!({ "new_key": true })
}

fn ok() -> Value {
    json!("ok")
}

/// A key of exactly `size` UTF-8 bytes: `prefix`, then `fill` repeated (padded with `k`).
fn padded_key(prefix: &str, size: usize, fill: char) -> String {
    let room = size - prefix.len();
    let width = fill.len_utf8();
    let mut key = prefix.to_string();
    key.extend(std::iter::repeat_n('k', room % width));
    key.extend(std::iter::repeat_n(fill, room / width));
    assert_eq!(key.len(), size);
    key
}

/// The longest prefix of `key` of at most `max` bytes that ends on a character boundary.
fn cut(key: &str, max: usize) -> &str {
    let mut end = max.min(key.len());
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

struct Checks<'a> {
    bucket: &'a str,
    prefix: &'a str,
    values: Values,
}

impl Checks<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn b(&self) -> Value {
        json!(self.bucket)
    }

    fn put(&self, key: &str, v: Value) -> Value {
        call("put", vec![self.b(), json!(key), v], void())
    }

    fn get(&self, key: &str, v: Value) -> Value {
        call("get", vec![self.b(), json!(key)], value(v))
    }

    fn missing(&self, key: &str) -> Value {
        call("get", vec![self.b(), json!(key)], error(NO_SUCH_KEY))
    }

    fn round_trip(&self, key: &str, v: Value) -> Vec<Value> {
        vec![self.put(key, v.clone()), self.get(key, v)]
    }

    /// Text, or bytes where the client carries bytes.
    fn binary_or_text(&self, bytes: &[u8], text_instead: &str) -> Value {
        match self.values {
            Values::Bytes => hex(bytes),
            Values::Text => text(text_instead),
        }
    }

    fn all(&self) -> Vec<Value> {
        let mut checks = vec![
            check(
                "get_buckets",
                vec![call(
                    "getBuckets",
                    vec![],
                    json!({ "contains": self.bucket }),
                )],
            ),
            check(
                "put_get",
                self.round_trip(&self.key("put-get"), text("hello thrudoc")),
            ),
            check("put_overwrite", {
                let k = self.key("overwrite");
                let mut s = self.round_trip(&k, text("first value, the longer one"));
                s.extend(self.round_trip(&k, text("second")));
                s
            }),
        ];
        checks.push(match self.values {
            Values::Bytes => check(
                "value_all_bytes",
                self.round_trip(
                    &self.key("all-bytes"),
                    hex(&(0..=255u8).collect::<Vec<_>>()),
                ),
            ),
            Values::Text => {
                let every_ascii: String = (0..128u8).map(char::from).collect();
                check(
                    "value_all_ascii_and_multibyte_text",
                    self.round_trip(&self.key("all-text"), text(&(every_ascii + "é€🔑鍵"))),
                )
            }
        });
        checks.push(check(
            "value_empty",
            self.round_trip(&self.key("empty-value"), text("")),
        ));
        let sixty_four_k: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 256) as u8).collect();
        let sixty_four_k_text: String = (0..64 * 1024)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        checks.push(check(
            "value_64k",
            self.round_trip(
                &self.key("64k"),
                self.binary_or_text(&sixty_four_k, &sixty_four_k_text),
            ),
        ));
        checks.push(check(
            "unicode_key",
            self.round_trip(&self.key("ключ-🔑-鍵"), text("значение-🔑-値")),
        ));
        checks.push(check(
            "key_max_length",
            self.round_trip(
                &padded_key(&self.key("max/"), MAX_KEY_BYTES, 'k'),
                text("a key of the largest size allowed"),
            ),
        ));
        checks.push(check(
            "get_missing",
            vec![self.missing(&self.key("never-written"))],
        ));
        checks.push(check("remove", {
            let k = self.key("remove");
            let mut s = self.round_trip(&k, text("doomed"));
            s.push(call("remove", vec![self.b(), json!(k)], void()));
            s.push(self.missing(&k));
            s.push(call("remove", vec![self.b(), json!(k)], void()));
            s.push(call(
                "remove",
                vec![self.b(), json!(self.key("remove-never-written"))],
                void(),
            ));
            s
        }));
        checks.push(check("append", {
            let k = self.key("append");
            let (second, total) = match self.values {
                Values::Bytes => (hex(b"\x00cd\xff"), hex(b"ab\x00cd\xff")),
                Values::Text => (text("\u{0}cd✓"), text("ab\u{0}cd✓")),
            };
            vec![
                self.missing(&k),
                call("append", vec![self.b(), json!(k), text("ab")], void()),
                self.get(&k, text("ab")),
                call("append", vec![self.b(), json!(k), second], void()),
                self.get(&k, total.clone()),
                call("append", vec![self.b(), json!(k), text("")], void()),
                self.get(&k, total),
            ]
        }));
        checks.push(check(
            "put_value",
            vec![
                call(
                    "putValue",
                    vec![self.b(), text("first anonymous value")],
                    new_key(),
                ),
                call(
                    "putValue",
                    vec![self.b(), text("second anonymous value")],
                    new_key(),
                ),
            ],
        ));
        checks.push(self.scan_walk());
        checks.extend(self.batches());
        checks.push(check(
            "admin_echo",
            vec![call(
                "admin",
                vec![json!("echo"), json!("hello")],
                json!({ "string": "hello" }),
            )],
        ));
        checks.push(check(
            "admin_unknown_op",
            vec![call(
                "admin",
                vec![json!("no_such_op"), json!("")],
                error(INVALID),
            )],
        ));
        checks.extend(self.bad_input());
        checks.push(check(
            "server_alive",
            vec![call(
                "getBuckets",
                vec![],
                json!({ "contains": self.bucket }),
            )],
        ));
        checks
    }

    fn scan_walk(&self) -> Value {
        let prefix = self.key("scan/");
        let mut steps = Vec::new();
        let mut expect = serde_json::Map::new();
        for i in 0..SCAN_KEYS {
            let k = format!("{prefix}{i:04}");
            let v = self.binary_or_text(
                format!("scan value {i} \0\u{ff}").as_bytes(),
                &format!("scan value {i} ✓"),
            );
            steps.push(self.put(&k, v.clone()));
            expect.insert(k, v);
        }
        steps.push(json!({
            "op": "walk",
            "bucket": self.bucket,
            "count": SCAN_PAGE,
            "prefix": prefix,
            "expect": expect,
        }));
        check("scan_walk", steps)
    }

    /// The batch methods, each with failing elements in the middle of good ones.
    fn batches(&self) -> Vec<Value> {
        let bucket = self.bucket;
        let good = |name: &str, i: usize| {
            element(
                bucket,
                &self.key(&format!("{name}/{i}")),
                text(&format!("list value {i}")),
            )
        };
        let long_key = padded_key(&self.key("list-long/"), MAX_KEY_BYTES + 1, 'k');

        let put_list = {
            let e = |i| good("put-list", i);
            let elements = vec![
                e(0),
                e(1),
                element(
                    MISSING_BUCKET,
                    &self.key("put-list/2"),
                    text("list value 2"),
                ),
                e(3),
                element(bucket, "", text("an empty key")),
                element(bucket, &long_key, text("a key too long")),
                element(bucket, &self.key("put-list/big"), fill('x', OVERSIZE_VALUE)),
                e(7),
            ];
            let mut s = vec![call(
                "putList",
                vec![json!(elements)],
                json!({ "results": [ok(), ok(), error(NO_BUCKET), ok(), error(INVALID),
                    error(INVALID), error(INVALID), ok()] }),
            )];
            for i in [0, 1, 3, 7] {
                s.push(self.get(
                    &self.key(&format!("put-list/{i}")),
                    text(&format!("list value {i}")),
                ));
            }
            // The failed elements stored nothing, not even in the real bucket.
            s.push(self.missing(&self.key("put-list/2")));
            s.push(self.missing(&self.key("put-list/big")));
            s.push(self.missing(cut(&long_key, MAX_KEY_BYTES)));
            check("put_list", s)
        };

        let get_list = {
            let e = |i| good("get-list", i);
            let mut s: Vec<Value> = (0..4)
                .map(|i| {
                    self.put(
                        &self.key(&format!("get-list/{i}")),
                        text(&format!("list value {i}")),
                    )
                })
                .collect();
            let request = vec![
                e(0),
                e(1),
                element(MISSING_BUCKET, &self.key("get-list/0"), text("")),
                element(bucket, &self.key("get-list/missing"), text("")),
                e(2),
                element(bucket, "", text("")),
                element(bucket, &long_key, text("")),
                e(3),
            ];
            let v = |i: usize| value(text(&format!("list value {i}")));
            s.push(call(
                "getList",
                vec![json!(request)],
                json!({ "results": [v(0), v(1), error(NO_BUCKET), error(NO_SUCH_KEY), v(2),
                    error(INVALID), error(INVALID), v(3)] }),
            ));
            check("get_list", s)
        };

        let remove_list = {
            let e = |i| good("remove-list", i);
            let mut s: Vec<Value> = (0..3)
                .map(|i| {
                    self.put(
                        &self.key(&format!("remove-list/{i}")),
                        text(&format!("list value {i}")),
                    )
                })
                .collect();
            let request = vec![
                e(0),
                element(MISSING_BUCKET, &self.key("remove-list/1"), text("")),
                e(1),
                element(bucket, "", text("")),
                // Removing a missing key succeeds, as remove() of one does.
                element(bucket, &self.key("remove-list/missing"), text("")),
                e(2),
            ];
            s.push(call(
                "removeList",
                vec![json!(request)],
                json!({ "results": [ok(), error(NO_BUCKET), ok(), error(INVALID), ok(), ok()] }),
            ));
            s.push(call(
                "getList",
                vec![json!([e(0), e(1), e(2)])],
                json!({ "results": [error(NO_SUCH_KEY), error(NO_SUCH_KEY), error(NO_SUCH_KEY)] }),
            ));
            check("remove_list", s)
        };

        let put_value_list = {
            let ignored = self.key("put-value-list/ignored");
            let anonymous = |i: usize| element(bucket, &ignored, text(&format!("anonymous {i}")));
            let request = vec![
                anonymous(0),
                element(MISSING_BUCKET, &ignored, text("anonymous 1")),
                anonymous(2),
                element(bucket, &ignored, fill('x', OVERSIZE_VALUE)),
                anonymous(4),
            ];
            check(
                "put_value_list",
                vec![
                    call(
                        "putValueList",
                        vec![json!(request)],
                        json!({ "results": [new_key(), error(NO_BUCKET), new_key(), error(INVALID),
                            new_key()] }),
                    ),
                    // The keys given are ignored: nothing is stored under them.
                    self.missing(&ignored),
                ],
            )
        };

        vec![put_list, get_list, remove_list, put_value_list]
    }

    /// Bad input: each gets a clear error on a connection that goes on serving, and nothing
    /// stored changes.
    fn bad_input(&self) -> Vec<Value> {
        let mut checks = Vec::new();
        for (name, bucket, err) in [
            ("bad_bucket_empty", "", INVALID),
            (
                "bad_bucket_injection",
                "data; DROP TABLE directory; --",
                INVALID,
            ),
            ("bad_bucket_unknown", "nosuchbucket", NO_BUCKET),
        ] {
            let k = self.key(&format!("{name}/k"));
            let (b, kk) = (json!(bucket), json!(k));
            checks.push(check(
                name,
                vec![
                    call("put", vec![b.clone(), kk.clone(), text("v")], error(err)),
                    call("get", vec![b.clone(), kk.clone()], error(err)),
                    call("append", vec![b.clone(), kk.clone(), text("v")], error(err)),
                    call("remove", vec![b.clone(), kk.clone()], error(err)),
                    call("putValue", vec![b.clone(), text("v")], error(err)),
                    call("scan", vec![b, json!(""), json!(SCAN_PAGE)], error(err)),
                    // Nor did the writes land in the real bucket.
                    self.missing(&k),
                ],
            ));
        }
        let bad_key = |key: &str| {
            let k = json!(key);
            vec![
                call("put", vec![self.b(), k.clone(), text("v")], error(INVALID)),
                call(
                    "append",
                    vec![self.b(), k.clone(), text("v")],
                    error(INVALID),
                ),
                call("get", vec![self.b(), k.clone()], error(INVALID)),
                call("remove", vec![self.b(), k], error(INVALID)),
            ]
        };
        checks.push(check("bad_key_empty", bad_key("")));
        checks.push(check("bad_key_too_long", {
            let prefix = self.key("long/");
            // The limit is in UTF-8 bytes: 128 two-byte characters are too many.
            let mut s = Vec::new();
            for key in [
                padded_key(&prefix, 1000, 'k'),
                padded_key(&prefix, MAX_KEY_BYTES + 1, 'k'),
                padded_key(&prefix, MAX_KEY_BYTES + 1, 'é'),
            ] {
                s.extend(bad_key(&key));
                // Nor was it stored cut down to the limit.
                s.push(self.missing(cut(&key, MAX_KEY_BYTES)));
            }
            s
        }));
        checks.push(check("bad_value_too_large", {
            let fresh = self.key("big/fresh");
            let existing = self.key("big/existing");
            let big = fill('x', OVERSIZE_VALUE);
            let mut s = vec![
                call(
                    "put",
                    vec![self.b(), json!(fresh), big.clone()],
                    error(INVALID),
                ),
                self.missing(&fresh),
            ];
            s.extend(self.round_trip(&existing, text("original")));
            s.push(call(
                "put",
                vec![self.b(), json!(existing), big.clone()],
                error(INVALID),
            ));
            s.push(self.get(&existing, text("original")));
            s.push(call(
                "append",
                vec![self.b(), json!(existing), big],
                error(INVALID),
            ));
            s.push(self.get(&existing, text("original")));
            s
        }));
        for (name, seed, count) in [
            ("bad_scan_count_negative", "", -1),
            ("bad_scan_count_zero", "", 0),
            ("bad_scan_count_huge", "", i32::MAX),
            ("bad_scan_seed", "garbage!!", SCAN_PAGE),
        ] {
            checks.push(check(
                name,
                vec![call(
                    "scan",
                    vec![self.b(), json!(seed), json!(count)],
                    error(INVALID),
                )],
            ));
        }
        checks
    }
}
