//! The codec checked against the reference implementation, the `thrift` crate: requests its
//! protocols write must decode to the right calls, replies we write must read back with the
//! generated types (and be the very bytes the reference writes), and the generated client must
//! talk to the codec. Then truncation, malformed input, limits and a small fuzz loop.

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};
use std::rc::Rc;

use bytes::Bytes;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
    TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier, TMessageIdentifier,
    TMessageType, TOutputProtocol, TSerializable, TSetIdentifier, TStructIdentifier, TType,
};
use thrift::transport::{TFramedReadTransport, TFramedWriteTransport};

use super::MAX_LIST_ELEMENTS;
use super::*;
use crate::gen::thrudoc as gen;
use crate::gen::thrudoc::TThrudocSyncClient;

const LIMIT: usize = 16 << 20;
const PROTOCOLS: [Protocol; 2] = [Protocol::Binary, Protocol::Compact];
const TRANSPORTS: [Transport; 2] = [Transport::Framed, Transport::Unframed];

// ---------------------------------------------------------------------------------------------
// Writing with the reference implementation

type Out<'a> = dyn TOutputProtocol + 'a;

fn output<'a>(protocol: Protocol, out: &'a mut Vec<u8>) -> Box<Out<'a>> {
    match protocol {
        Protocol::Binary => Box::new(TBinaryOutputProtocol::new(out, true)),
        Protocol::Compact => Box::new(TCompactOutputProtocol::new(out)),
    }
}

fn input<'a>(protocol: Protocol, r: impl Read + 'a) -> Box<dyn TInputProtocol + 'a> {
    match protocol {
        Protocol::Binary => Box::new(TBinaryInputProtocol::new(r, true)),
        Protocol::Compact => Box::new(TCompactInputProtocol::new(r)),
    }
}

/// A message as the reference writes it: header, then a struct whose fields `body` writes.
fn message(
    protocol: Protocol,
    name: &str,
    kind: TMessageType,
    seqid: i32,
    body: impl FnOnce(&mut Out<'_>),
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut o = output(protocol, &mut out);
        o.write_message_begin(&TMessageIdentifier::new(name, kind, seqid))
            .unwrap();
        o.write_struct_begin(&TStructIdentifier::new("args"))
            .unwrap();
        body(&mut *o);
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.write_message_end().unwrap();
        o.flush().unwrap();
    }
    out
}

fn call_message(
    protocol: Protocol,
    name: &str,
    seqid: i32,
    body: impl FnOnce(&mut Out<'_>),
) -> Vec<u8> {
    message(protocol, name, TMessageType::Call, seqid, body)
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

fn on(transport: Transport, msg: &[u8]) -> Vec<u8> {
    match transport {
        Transport::Framed => frame(msg),
        Transport::Unframed => msg.to_vec(),
    }
}

fn field(o: &mut Out<'_>, ty: TType, id: i16) {
    o.write_field_begin(&TFieldIdentifier::new("f", ty, id))
        .unwrap();
}

fn str_field(o: &mut Out<'_>, id: i16, v: &[u8]) {
    field(o, TType::String, id);
    o.write_bytes(v).unwrap();
    o.write_field_end().unwrap();
}

fn i32_field(o: &mut Out<'_>, id: i16, v: i32) {
    field(o, TType::I32, id);
    o.write_i32(v).unwrap();
    o.write_field_end().unwrap();
}

fn struct_begin(o: &mut Out<'_>) {
    o.write_struct_begin(&TStructIdentifier::new("s")).unwrap();
}

fn struct_end(o: &mut Out<'_>) {
    o.write_field_stop().unwrap();
    o.write_struct_end().unwrap();
}

/// How `elements_field` writes each element.
#[derive(Clone, Copy)]
enum Style {
    Plain,
    /// Fields in reverse order, with unknown fields between them.
    Scrambled,
}

fn elements_field(o: &mut Out<'_>, id: i16, elements: &[Element], style: Style) {
    field(o, TType::List, id);
    o.write_list_begin(&TListIdentifier::new(TType::Struct, elements.len() as i32))
        .unwrap();
    for e in elements {
        struct_begin(o);
        match style {
            Style::Plain => {
                str_field(o, 1, &e.bucket);
                str_field(o, 2, &e.key);
                str_field(o, 3, &e.value);
            }
            Style::Scrambled => {
                str_field(o, 3, &e.value);
                junk(o, 50);
                str_field(o, 2, &e.key);
                i32_field(o, 1, 77); // right id, wrong type: skipped
                str_field(o, 1, &e.bucket);
                junk(o, 4);
            }
        }
        struct_end(o);
    }
    o.write_list_end().unwrap();
    o.write_field_end().unwrap();
}

/// Unknown fields of every type, with ids from `base` up (and a few far off), which the codec
/// must skip.
fn junk(o: &mut Out<'_>, base: i16) {
    field(o, TType::Bool, base);
    o.write_bool(true).unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Bool, base + 1);
    o.write_bool(false).unwrap();
    o.write_field_end().unwrap();
    field(o, TType::I08, base + 2);
    o.write_i8(-7).unwrap();
    o.write_field_end().unwrap();
    field(o, TType::I16, base + 3);
    o.write_i16(i16::MIN).unwrap();
    o.write_field_end().unwrap();
    field(o, TType::I64, base + 4);
    o.write_i64(i64::MIN).unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Double, base + 5);
    o.write_double(-1.5e300).unwrap();
    o.write_field_end().unwrap();
    str_field(o, 1000, b"far away");
    i32_field(o, -5, -1);
    // A struct holding a list, a map, a set, an empty map and a nested struct.
    field(o, TType::Struct, base + 6);
    struct_begin(o);
    field(o, TType::List, 1);
    o.write_list_begin(&TListIdentifier::new(TType::I32, 3))
        .unwrap();
    for i in [1, -2, i32::MAX] {
        o.write_i32(i).unwrap();
    }
    o.write_list_end().unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Map, 2);
    o.write_map_begin(&TMapIdentifier::new(TType::String, TType::List, 2))
        .unwrap();
    for k in ["a", "bb"] {
        o.write_string(k).unwrap();
        o.write_list_begin(&TListIdentifier::new(TType::Bool, 20))
            .unwrap();
        for i in 0..20 {
            o.write_bool(i % 3 == 0).unwrap();
        }
        o.write_list_end().unwrap();
    }
    o.write_map_end().unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Set, 3);
    o.write_set_begin(&TSetIdentifier::new(TType::I64, 2))
        .unwrap();
    o.write_i64(1 << 40).unwrap();
    o.write_i64(-3).unwrap();
    o.write_set_end().unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Map, 4);
    o.write_map_begin(&TMapIdentifier::new(TType::I32, TType::Double, 0))
        .unwrap();
    o.write_map_end().unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Map, 5);
    o.write_map_begin(&TMapIdentifier::new(TType::I08, TType::Double, 2))
        .unwrap();
    for i in 0..2 {
        o.write_i8(i).unwrap();
        o.write_double(f64::from(i)).unwrap();
    }
    o.write_map_end().unwrap();
    o.write_field_end().unwrap();
    field(o, TType::Struct, 6);
    struct_begin(o);
    field(o, TType::Bool, 1);
    o.write_bool(true).unwrap();
    o.write_field_end().unwrap();
    field(o, TType::List, 2);
    o.write_list_begin(&TListIdentifier::new(TType::Struct, 2))
        .unwrap();
    for _ in 0..2 {
        struct_begin(o);
        str_field(o, 9, b"deep");
        struct_end(o);
    }
    o.write_list_end().unwrap();
    o.write_field_end().unwrap();
    struct_end(o);
    o.write_field_end().unwrap();
    struct_end(o);
    o.write_field_end().unwrap();
    // A list of doubles and a list of strings long enough for compact's long list header.
    field(o, TType::List, base + 7);
    o.write_list_begin(&TListIdentifier::new(TType::Double, 16))
        .unwrap();
    for i in 0..16 {
        o.write_double(f64::from(i)).unwrap();
    }
    o.write_list_end().unwrap();
    o.write_field_end().unwrap();
    field(o, TType::List, base + 8);
    o.write_list_begin(&TListIdentifier::new(TType::String, 15))
        .unwrap();
    for i in 0..15 {
        o.write_string(&"x".repeat(i)).unwrap();
    }
    o.write_list_end().unwrap();
    o.write_field_end().unwrap();
}

fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

fn all_bytes() -> Bytes {
    (0..=255u8).collect::<Vec<u8>>().into()
}

fn el(bucket: &str, key: &str, value: impl AsRef<[u8]>) -> Element {
    Element {
        bucket: b(bucket),
        key: b(key),
        value: b(value),
    }
}

fn call(seqid: i32, call: Call) -> Incoming {
    Incoming::Call {
        seqid,
        call,
        oneway: false,
    }
}

/// A request written by the reference, and what it must decode to.
struct Case {
    label: String,
    msg: Vec<u8>,
    expected: Incoming,
}

/// Requests for every method, in one protocol.
fn cases(p: Protocol) -> Vec<Case> {
    let mut v = Vec::new();
    let mut add = |label: &str, msg: Vec<u8>, expected: Incoming| {
        v.push(Case {
            label: format!("{p} {label}"),
            msg,
            expected,
        })
    };
    let unicode = "ключ-🔑-鍵";
    let several = vec![
        el("b1", "k1", "v1"),
        el("", "", ""),
        el("b3", unicode, all_bytes()),
        el("b4", "k4", vec![0u8; 300]),
    ];
    let twenty: Vec<Element> = (0..20)
        .map(|i| el("bucket", &format!("key{i}"), format!("value{i}")))
        .collect();

    add(
        "getBuckets",
        call_message(p, "getBuckets", 1, |_| {}),
        call(1, Call::GetBuckets),
    );
    add(
        "getBuckets with junk",
        call_message(p, "getBuckets", 2, |o| junk(o, 1)),
        call(2, Call::GetBuckets),
    );
    add(
        "put",
        call_message(p, "put", 3, |o| {
            str_field(o, 1, b"bucket");
            str_field(o, 2, unicode.as_bytes());
            str_field(o, 3, &all_bytes());
        }),
        call(
            3,
            Call::Put {
                bucket: b("bucket"),
                key: b(unicode),
                value: all_bytes(),
            },
        ),
    );
    add(
        "put empty strings",
        call_message(p, "put", 0, |o| {
            str_field(o, 1, b"");
            str_field(o, 2, b"");
            str_field(o, 3, b"");
        }),
        call(
            0,
            Call::Put {
                bucket: Bytes::new(),
                key: Bytes::new(),
                value: Bytes::new(),
            },
        ),
    );
    add(
        "put no fields",
        call_message(p, "put", -1, |_| {}),
        call(
            -1,
            Call::Put {
                bucket: Bytes::new(),
                key: Bytes::new(),
                value: Bytes::new(),
            },
        ),
    );
    add(
        "put scrambled with junk",
        call_message(p, "put", i32::MAX, |o| {
            junk(o, 20);
            str_field(o, 3, b"value");
            str_field(o, 2, b"key");
            junk(o, 4);
            str_field(o, 1, b"bucket");
            junk(o, 100);
        }),
        call(
            i32::MAX,
            Call::Put {
                bucket: b("bucket"),
                key: b("key"),
                value: b("value"),
            },
        ),
    );
    add(
        "put wrong types",
        call_message(p, "put", i32::MIN, |o| {
            i32_field(o, 1, 5);
            field(o, TType::List, 2);
            o.write_list_begin(&TListIdentifier::new(TType::String, 1))
                .unwrap();
            o.write_string("key").unwrap();
            o.write_list_end().unwrap();
            o.write_field_end().unwrap();
            field(o, TType::Bool, 3);
            o.write_bool(true).unwrap();
            o.write_field_end().unwrap();
        }),
        call(
            i32::MIN,
            Call::Put {
                bucket: Bytes::new(),
                key: Bytes::new(),
                value: Bytes::new(),
            },
        ),
    );
    add(
        "get",
        call_message(p, "get", 4, |o| {
            str_field(o, 1, b"bucket");
            str_field(o, 2, unicode.as_bytes());
        }),
        call(
            4,
            Call::Get {
                bucket: b("bucket"),
                key: b(unicode),
            },
        ),
    );
    add(
        "remove",
        call_message(p, "remove", 5, |o| {
            str_field(o, 2, b"key");
            str_field(o, 1, b"bucket");
        }),
        call(
            5,
            Call::Remove {
                bucket: b("bucket"),
                key: b("key"),
            },
        ),
    );
    add(
        "append",
        call_message(p, "append", 6, |o| {
            str_field(o, 1, b"b");
            str_field(o, 2, b"k");
            str_field(o, 3, &all_bytes());
            junk(o, 7);
        }),
        call(
            6,
            Call::Append {
                bucket: b("b"),
                key: b("k"),
                value: all_bytes(),
            },
        ),
    );
    add(
        "putValue",
        call_message(p, "putValue", 7, |o| {
            str_field(o, 1, b"b");
            str_field(o, 2, b"some value");
        }),
        call(
            7,
            Call::PutValue {
                bucket: b("b"),
                value: b("some value"),
            },
        ),
    );
    for (i, count) in [1, 0, -1, 1000, 1_000_000, i32::MAX, i32::MIN]
        .into_iter()
        .enumerate()
    {
        add(
            &format!("scan count {count}"),
            call_message(p, "scan", 8 + i as i32, |o| {
                str_field(o, 1, b"bucket");
                str_field(o, 2, unicode.as_bytes());
                i32_field(o, 3, count);
            }),
            call(
                8 + i as i32,
                Call::Scan {
                    bucket: b("bucket"),
                    seed: b(unicode),
                    count,
                },
            ),
        );
    }
    add(
        "scan count as string",
        call_message(p, "scan", 20, |o| {
            str_field(o, 3, b"10");
            str_field(o, 1, b"bucket");
        }),
        call(
            20,
            Call::Scan {
                bucket: b("bucket"),
                seed: Bytes::new(),
                count: 0,
            },
        ),
    );
    type MakeCall = fn(Vec<Element>) -> Call;
    let lists: [(&str, MakeCall); 4] = [
        ("putList", Call::PutList),
        ("getList", Call::GetList),
        ("removeList", Call::RemoveList),
        ("putValueList", Call::PutValueList),
    ];
    for (i, (name, make)) in lists.into_iter().enumerate() {
        let seqid = 100 + 10 * i as i32;
        for (j, (elements, style)) in [
            (vec![], Style::Plain),
            (several[..1].to_vec(), Style::Plain),
            (several.clone(), Style::Plain),
            (several.clone(), Style::Scrambled),
            (twenty.clone(), Style::Plain),
        ]
        .into_iter()
        .enumerate()
        {
            add(
                &format!("{name} {} elements {j}", elements.len()),
                call_message(p, name, seqid + j as i32, |o| {
                    junk(o, 2);
                    elements_field(o, 1, &elements, style);
                }),
                call(seqid + j as i32, make(elements)),
            );
        }
        add(
            &format!("{name} missing list"),
            call_message(p, name, seqid + 9, |o| str_field(o, 1, b"not a list")),
            call(seqid + 9, make(vec![])),
        );
    }
    add(
        "getList element without fields",
        call_message(p, "getList", 200, |o| {
            field(o, TType::List, 1);
            o.write_list_begin(&TListIdentifier::new(TType::Struct, 1))
                .unwrap();
            struct_begin(o);
            struct_end(o);
            o.write_list_end().unwrap();
            o.write_field_end().unwrap();
        }),
        call(200, Call::GetList(vec![Element::default()])),
    );
    add(
        "admin",
        call_message(p, "admin", 300, |o| {
            str_field(o, 1, b"echo");
            str_field(o, 2, "x".repeat(100_000).as_bytes());
        }),
        call(
            300,
            Call::Admin {
                op: b("echo"),
                data: b("x".repeat(100_000)),
            },
        ),
    );
    add(
        "oneway put",
        message(p, "put", TMessageType::OneWay, 301, |o| {
            str_field(o, 1, b"b");
            str_field(o, 2, b"k");
            str_field(o, 3, b"v");
        }),
        Incoming::Call {
            seqid: 301,
            call: Call::Put {
                bucket: b("b"),
                key: b("k"),
                value: b("v"),
            },
            oneway: true,
        },
    );
    add(
        "unknown method",
        call_message(p, "frobnicate", 302, |o| {
            junk(o, 1);
            str_field(o, 1, b"x");
        }),
        Incoming::UnknownMethod {
            name: b("frobnicate"),
            seqid: 302,
        },
    );
    v
}

fn all_cases() -> Vec<(Protocol, Case)> {
    PROTOCOLS
        .into_iter()
        .flat_map(|p| cases(p).into_iter().map(move |c| (p, c)))
        .collect()
}

fn decode(buf: &[u8], t: Transport, p: Protocol) -> Result<(Incoming, usize), DecodeError> {
    decode_message(&Bytes::copy_from_slice(buf), t, p, LIMIT)
}

// ---------------------------------------------------------------------------------------------
// 1. Requests written by the reference

#[test]
fn decodes_every_method_as_the_reference_writes_it() {
    let mut n = 0;
    for (p, case) in all_cases() {
        for t in TRANSPORTS {
            let buf = on(t, &case.msg);
            let got = decode(&buf, t, p);
            assert_eq!(
                got,
                Ok((case.expected.clone(), buf.len())),
                "{} {t}",
                case.label
            );
            n += 1;
        }
    }
    assert!(n > 150, "only {n} cases");
}

#[test]
fn decodes_messages_back_to_back() {
    for p in PROTOCOLS {
        let cases = cases(p);
        for t in TRANSPORTS {
            let all: Vec<u8> = cases.iter().flat_map(|c| on(t, &c.msg)).collect();
            let mut buf = Bytes::from(all);
            for case in &cases {
                let (incoming, n) = decode_message(&buf, t, p, LIMIT).unwrap();
                assert_eq!(incoming, case.expected, "{} {t}", case.label);
                buf = buf.slice(n..);
            }
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn strings_are_slices_of_the_input() {
    for p in PROTOCOLS {
        for t in TRANSPORTS {
            let msg = call_message(p, "put", 1, |o| {
                str_field(o, 1, b"bucket");
                str_field(o, 2, b"key");
                str_field(o, 3, &[7; 1000]);
            });
            let buf = Bytes::from(on(t, &msg));
            let (incoming, _) = decode_message(&buf, t, p, LIMIT).unwrap();
            let Incoming::Call {
                call: Call::Put { value, .. },
                ..
            } = incoming
            else {
                panic!("{incoming:?}")
            };
            let range = buf.as_ptr_range();
            assert!(range.contains(&value.as_ptr()), "value was copied");
            assert_eq!(&value[..], &[7; 1000][..]);
        }
    }
}

#[test]
fn list_of_elements_of_another_type_is_a_protocol_error() {
    for p in PROTOCOLS {
        let msg = call_message(p, "getList", 9, |o| {
            field(o, TType::List, 1);
            o.write_list_begin(&TListIdentifier::new(TType::String, 2))
                .unwrap();
            o.write_string("a").unwrap();
            o.write_string("b").unwrap();
            o.write_list_end().unwrap();
            o.write_field_end().unwrap();
        });
        for t in TRANSPORTS {
            let buf = on(t, &msg);
            let (incoming, n) = decode(&buf, t, p).unwrap();
            assert_eq!(n, buf.len());
            assert!(
                matches!(
                    &incoming,
                    Incoming::Invalid { name, seqid: 9, kind: AppExceptionKind::ProtocolError, .. }
                        if name == "getList"
                ),
                "{incoming:?}"
            );
        }
    }
}

#[test]
fn lists_longer_than_the_element_limit_are_refused_whole() {
    for p in PROTOCOLS {
        for (n, accepted) in [(MAX_LIST_ELEMENTS, true), (MAX_LIST_ELEMENTS + 1, false)] {
            let msg = call_message(p, "putList", 4, |o| {
                field(o, TType::List, 1);
                o.write_list_begin(&TListIdentifier::new(TType::Struct, n as i32))
                    .unwrap();
                for _ in 0..n {
                    struct_begin(o);
                    struct_end(o);
                }
                o.write_list_end().unwrap();
                o.write_field_end().unwrap();
            });
            let buf = on(Transport::Framed, &msg);
            let (incoming, used) = decode(&buf, Transport::Framed, p).unwrap();
            assert_eq!(used, buf.len());
            match incoming {
                Incoming::Call {
                    call: Call::PutList(v),
                    ..
                } if accepted => assert_eq!(v.len(), n),
                Incoming::Invalid {
                    kind: AppExceptionKind::ProtocolError,
                    reason,
                    ..
                } if !accepted => {
                    assert!(reason.contains("longer than"), "{reason}")
                }
                other => panic!("{n} elements: {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Replies read by the reference

fn to_gen(e: &Element) -> gen::Element {
    gen::Element::new(
        String::from_utf8(e.bucket.to_vec()).unwrap(),
        String::from_utf8(e.key.to_vec()).unwrap(),
        e.value.to_vec(),
    )
}

fn from_gen(e: gen::Element) -> Element {
    Element {
        bucket: e.bucket.expect("bucket").into(),
        key: e.key.expect("key").into(),
        value: e.value.expect("value").into(),
    }
}

fn ex(what: &str, type_: i32) -> WireException {
    WireException {
        what: what.to_owned(),
        type_,
        code: None,
    }
}

fn ex_code(what: &str, type_: i32, code: i32) -> WireException {
    WireException {
        code: Some(code),
        ..ex(what, type_)
    }
}

fn to_gen_ex(e: &WireException) -> gen::ThrudocException {
    gen::ThrudocException::new(e.what.clone(), gen::ExceptionType(e.type_), e.code)
}

fn from_gen_ex(e: gen::ThrudocException) -> WireException {
    WireException {
        what: e.what.expect("what"),
        type_: e.type_.expect("type").0,
        code: e.code,
    }
}

fn reply_cases() -> Vec<Reply> {
    let elements: Vec<Element> = (0..20)
        .map(|i| el("bucket", &format!("ключ{i}"), vec![i as u8; i]))
        .collect();
    let exceptions: Vec<WireException> = (0..17)
        .map(|i| match i % 3 {
            0 => ex("", i - 3),
            1 => ex_code("bad key", 1, i),
            _ => ex_code("no such key", 2, i32::MIN + i),
        })
        .collect();
    let results: Vec<ListResult> = elements
        .iter()
        .zip(&exceptions)
        .map(|(e, x)| ListResult {
            element: e.clone(),
            ex: x.clone(),
        })
        .collect();
    let bodies = [
        (Method::Put, ReplyBody::Void),
        (Method::GetBuckets, ReplyBody::Strings(vec![])),
        (
            Method::GetBuckets,
            ReplyBody::Strings(vec![b("alpha"), b(""), b("ключи"), b("x".repeat(300))]),
        ),
        (Method::Get, ReplyBody::Binary(all_bytes())),
        (Method::Get, ReplyBody::Binary(Bytes::new())),
        (
            Method::PutValue,
            ReplyBody::Binary(b("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
        ),
        (Method::Admin, ReplyBody::Binary(b("y".repeat(70_000)))),
        (
            Method::Scan,
            ReplyBody::Scan {
                elements: vec![],
                seed: Bytes::new(),
            },
        ),
        (
            Method::Scan,
            ReplyBody::Scan {
                elements: elements.clone(),
                seed: b("next seed"),
            },
        ),
        (
            Method::PutList,
            ReplyBody::Exceptions(exceptions[..3].to_vec()),
        ),
        (
            Method::RemoveList,
            ReplyBody::Exceptions(exceptions.clone()),
        ),
        (Method::GetList, ReplyBody::ListResults(results.clone())),
        (Method::PutValueList, ReplyBody::ListResults(vec![])),
        (Method::Get, ReplyBody::Thrown(ex_code("no such key", 2, 2))),
        (
            Method::Put,
            ReplyBody::Thrown(ex_code("read-only: p1", 1, 5)),
        ),
        (Method::PutList, ReplyBody::Thrown(ex("", i32::MIN))),
        (
            Method::Scan,
            ReplyBody::Thrown(ex_code("ключ", i32::MAX, i32::MIN)),
        ),
    ];
    bodies
        .into_iter()
        .zip([0, 1, -1, i32::MAX, i32::MIN, 1 << 20].into_iter().cycle())
        .map(|((method, body), seqid)| Reply {
            method,
            seqid,
            body,
        })
        .collect()
}

/// `reply` as the reference writes it.
fn reference_reply(p: Protocol, reply: &Reply) -> Vec<u8> {
    message(
        p,
        reply.method.name(),
        TMessageType::Reply,
        reply.seqid,
        |o| {
            let list = |o: &mut Out<'_>, ty, n: usize| {
                field(o, TType::List, 0);
                o.write_list_begin(&TListIdentifier::new(ty, n as i32))
                    .unwrap();
            };
            match &reply.body {
                ReplyBody::Void => return,
                ReplyBody::Strings(v) => {
                    list(o, TType::String, v.len());
                    for s in v {
                        o.write_bytes(s).unwrap();
                    }
                    o.write_list_end().unwrap();
                }
                ReplyBody::Binary(v) => {
                    field(o, TType::String, 0);
                    o.write_bytes(v).unwrap();
                }
                ReplyBody::Scan { elements, seed } => {
                    field(o, TType::Struct, 0);
                    gen::ScanResponse::new(
                        elements.iter().map(to_gen).collect::<Vec<_>>(),
                        String::from_utf8(seed.to_vec()).unwrap(),
                    )
                    .write_to_out_protocol(o)
                    .unwrap();
                }
                ReplyBody::Exceptions(v) => {
                    list(o, TType::Struct, v.len());
                    for e in v {
                        to_gen_ex(e).write_to_out_protocol(o).unwrap();
                    }
                    o.write_list_end().unwrap();
                }
                ReplyBody::ListResults(v) => {
                    list(o, TType::Struct, v.len());
                    for r in v {
                        gen::ListResponse::new(to_gen(&r.element), to_gen_ex(&r.ex))
                            .write_to_out_protocol(o)
                            .unwrap();
                    }
                    o.write_list_end().unwrap();
                }
                ReplyBody::Thrown(e) => {
                    // This IDL's field 1, then the original IDL's implicit -1.
                    field(o, TType::Struct, 1);
                    to_gen_ex(e).write_to_out_protocol(o).unwrap();
                    o.write_field_end().unwrap();
                    field(o, TType::Struct, -1);
                    to_gen_ex(e).write_to_out_protocol(o).unwrap();
                }
            }
            o.write_field_end().unwrap();
        },
    )
}

/// Reads one message from `bytes` with the reference, checking that exactly all bytes were
/// read.
fn read_with_reference<R>(
    p: Protocol,
    t: Transport,
    bytes: &[u8],
    f: impl FnOnce(&mut dyn TInputProtocol) -> R,
) -> R {
    let mut cursor = Cursor::new(bytes);
    let r = {
        let transport: Box<dyn Read + '_> = match t {
            Transport::Framed => Box::new(TFramedReadTransport::new(&mut cursor)),
            Transport::Unframed => Box::new(&mut cursor),
        };
        let mut i = input(p, transport);
        let r = f(&mut *i);
        i.read_message_end().unwrap();
        r
    };
    assert_eq!(cursor.position() as usize, bytes.len(), "bytes left over");
    r
}

/// The result struct of `method`, read with the generated types. A thrown exception must be
/// there twice, as field 1 and as the original IDL's field -1, with the same content.
fn read_result(i: &mut dyn TInputProtocol, method: Method) -> ReplyBody {
    i.read_struct_begin().unwrap();
    let mut body = ReplyBody::Void;
    let mut original = None;
    loop {
        let f = i.read_field_begin().unwrap();
        if f.field_type == TType::Stop {
            break;
        }
        body = match (f.id, f.field_type) {
            (Some(0), TType::List) => {
                let l = i.read_list_begin().unwrap();
                let n = l.size as usize;
                let r = match method {
                    Method::GetBuckets => {
                        assert_eq!(l.element_type, TType::String);
                        ReplyBody::Strings((0..n).map(|_| i.read_bytes().unwrap().into()).collect())
                    }
                    Method::PutList | Method::RemoveList => {
                        assert_eq!(l.element_type, TType::Struct);
                        ReplyBody::Exceptions(
                            (0..n)
                                .map(|_| {
                                    from_gen_ex(
                                        gen::ThrudocException::read_from_in_protocol(i).unwrap(),
                                    )
                                })
                                .collect(),
                        )
                    }
                    Method::GetList | Method::PutValueList => {
                        assert_eq!(l.element_type, TType::Struct);
                        ReplyBody::ListResults(
                            (0..n)
                                .map(|_| {
                                    let r = gen::ListResponse::read_from_in_protocol(i).unwrap();
                                    ListResult {
                                        element: from_gen(r.element.expect("element")),
                                        ex: from_gen_ex(r.ex.expect("ex")),
                                    }
                                })
                                .collect(),
                        )
                    }
                    m => panic!("{m:?} returns no list"),
                };
                i.read_list_end().unwrap();
                r
            }
            (Some(0), TType::String) => ReplyBody::Binary(i.read_bytes().unwrap().into()),
            (Some(0), TType::Struct) => {
                let s = gen::ScanResponse::read_from_in_protocol(i).unwrap();
                ReplyBody::Scan {
                    elements: s
                        .elements
                        .expect("elements")
                        .into_iter()
                        .map(from_gen)
                        .collect(),
                    seed: s.seed.expect("seed").into(),
                }
            }
            (Some(1), TType::Struct) => ReplyBody::Thrown(from_gen_ex(
                gen::ThrudocException::read_from_in_protocol(i).unwrap(),
            )),
            (Some(-1), TType::Struct) => {
                original = Some(from_gen_ex(
                    gen::ThrudocException::read_from_in_protocol(i).unwrap(),
                ));
                i.read_field_end().unwrap();
                continue;
            }
            other => panic!("unexpected result field {other:?}"),
        };
        i.read_field_end().unwrap();
    }
    i.read_struct_end().unwrap();
    match &body {
        ReplyBody::Thrown(e) => assert_eq!(original.as_ref(), Some(e), "field -1"),
        _ => assert_eq!(original, None, "field -1 without field 1"),
    }
    body
}

#[test]
fn replies_read_back_with_the_generated_types() {
    for reply in reply_cases() {
        for p in PROTOCOLS {
            for t in TRANSPORTS {
                let mut out = b"previous".to_vec();
                encode_reply(&mut out, t, p, &reply);
                assert_eq!(&out[..8], b"previous", "appends");
                let bytes = &out[8..];
                let body = read_with_reference(p, t, bytes, |i| {
                    let id = i.read_message_begin().unwrap();
                    assert_eq!(id.name, reply.method.name());
                    assert_eq!(id.message_type, TMessageType::Reply);
                    assert_eq!(id.sequence_number, reply.seqid);
                    read_result(i, reply.method)
                });
                assert_eq!(body, reply.body, "{p} {t}");
            }
        }
    }
}

#[test]
fn replies_are_the_bytes_the_reference_writes() {
    for reply in reply_cases() {
        for p in PROTOCOLS {
            for t in TRANSPORTS {
                let mut out = Vec::new();
                encode_reply(&mut out, t, p, &reply);
                let expected = on(t, &reference_reply(p, &reply));
                assert!(out == expected, "{p} {t} {:?}", reply.body);
            }
        }
    }
}

#[test]
fn app_exceptions_read_back_with_the_reference() {
    let kinds = [
        AppExceptionKind::Unknown,
        AppExceptionKind::UnknownMethod,
        AppExceptionKind::InvalidMessageType,
        AppExceptionKind::WrongMethodName,
        AppExceptionKind::BadSequenceId,
        AppExceptionKind::MissingResult,
        AppExceptionKind::InternalError,
        AppExceptionKind::ProtocolError,
    ];
    for (n, kind) in kinds.into_iter().enumerate() {
        let text = format!("went wrong {n}: ошибка");
        let seqid = 1 - n as i32 * 1_000_000;
        for p in PROTOCOLS {
            for t in TRANSPORTS {
                let mut out = Vec::new();
                encode_app_exception(&mut out, t, p, b"frobnicate", seqid, kind, &text);
                let err = read_with_reference(p, t, &out, |i| {
                    let id = i.read_message_begin().unwrap();
                    assert_eq!(id.name, "frobnicate");
                    assert_eq!(id.message_type, TMessageType::Exception);
                    assert_eq!(id.sequence_number, seqid);
                    thrift::Error::read_application_error_from_in_protocol(i).unwrap()
                });
                assert_eq!(err.kind as i32, kind as i32);
                assert_eq!(err.message, text);

                let expected = message(p, "frobnicate", TMessageType::Exception, seqid, |_| {});
                let mut reference = Vec::new();
                {
                    let mut o = output(p, &mut reference);
                    o.write_message_begin(&TMessageIdentifier::new(
                        "frobnicate",
                        TMessageType::Exception,
                        seqid,
                    ))
                    .unwrap();
                    let e = thrift::ApplicationError::new(
                        thrift::ApplicationErrorKind::try_from(kind as i32).unwrap(),
                        text.clone(),
                    );
                    thrift::Error::write_application_error_to_out_protocol(&e, &mut *o).unwrap();
                }
                assert!(expected.len() < reference.len());
                assert_eq!(out, on(t, &reference), "{p} {t}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The generated client talking to the codec

thread_local! {
    static CALLS: RefCell<Vec<Call>> = const { RefCell::new(Vec::new()) };
}

/// A server in a `Read`: the first read after the client wrote a request decodes it with the
/// codec, answers it with `handle` and encodes the reply with the codec.
struct Server {
    transport: Transport,
    protocol: Protocol,
    requests: Rc<RefCell<Vec<u8>>>,
    replies: Vec<u8>,
    pos: usize,
}

fn handle(call: Call) -> Result<ReplyBody, (AppExceptionKind, String)> {
    CALLS.with(|c| c.borrow_mut().push(call.clone()));
    Ok(match call {
        Call::GetBuckets => ReplyBody::Strings(vec![b("alpha"), b("ключи")]),
        Call::Put { .. } | Call::Append { .. } | Call::Remove { .. } => ReplyBody::Void,
        Call::Get { key, .. } if &key[..] == b"missing" => ReplyBody::Thrown(ex("no such key", 2)),
        Call::Get { bucket, key } => {
            ReplyBody::Binary([&bucket[..], &key[..], &all_bytes()[..]].concat().into())
        }
        Call::PutValue { .. } => ReplyBody::Binary(b("new-key")),
        Call::Scan { bucket, count, .. } => ReplyBody::Scan {
            elements: (0..count)
                .map(|i| {
                    el(
                        std::str::from_utf8(&bucket).unwrap(),
                        &format!("k{i}"),
                        [i as u8],
                    )
                })
                .collect(),
            seed: b(format!("after{count}")),
        },
        Call::PutList(v) | Call::RemoveList(v) => {
            ReplyBody::Exceptions(v.iter().map(|e| ex("", e.key.len() as i32)).collect())
        }
        Call::GetList(v) | Call::PutValueList(v) => ReplyBody::ListResults(
            v.into_iter()
                .map(|e| {
                    let missing = &e.key[..] == b"missing";
                    ListResult {
                        ex: if missing {
                            ex("no such key", 2)
                        } else {
                            ex("", 1)
                        },
                        element: Element {
                            value: if missing {
                                Bytes::new()
                            } else {
                                b([&b"v:"[..], &e.key].concat())
                            },
                            ..e
                        },
                    }
                })
                .collect(),
        ),
        Call::Admin { op, .. } if &op[..] == b"boom" => {
            return Err((
                AppExceptionKind::InternalError,
                "boom went the server".to_owned(),
            ))
        }
        Call::Admin { op, data } => ReplyBody::Binary([&op[..], b" ", &data[..]].concat().into()),
        Call::WriteToken => ReplyBody::Binary(b("1-1-5,2-2-7")),
        Call::GetAfter { key, token, .. } => {
            ReplyBody::Binary([&key[..], b"@", &token[..]].concat().into())
        }
    })
}

impl Read for Server {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.replies.len() {
            let request = Bytes::from(std::mem::take(&mut *self.requests.borrow_mut()));
            let (incoming, n) =
                decode_message(&request, self.transport, self.protocol, LIMIT).expect("decodes");
            assert_eq!(n, request.len(), "one whole request");
            let Incoming::Call {
                seqid,
                call,
                oneway: false,
            } = incoming
            else {
                panic!("{incoming:?}")
            };
            let method = call.method();
            self.replies.clear();
            self.pos = 0;
            let (t, p) = (self.transport, self.protocol);
            match handle(call) {
                Ok(body) => encode_reply(
                    &mut self.replies,
                    t,
                    p,
                    &Reply {
                        method,
                        seqid,
                        body,
                    },
                ),
                Err((kind, text)) => encode_app_exception(
                    &mut self.replies,
                    t,
                    p,
                    method.name().as_bytes(),
                    seqid,
                    kind,
                    &text,
                ),
            }
        }
        let n = buf.len().min(self.replies.len() - self.pos);
        buf[..n].copy_from_slice(&self.replies[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct Requests(Rc<RefCell<Vec<u8>>>);

impl Write for Requests {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Client = gen::ThrudocSyncClient<Box<dyn TInputProtocol>, Box<dyn TOutputProtocol>>;

fn client(t: Transport, p: Protocol) -> Client {
    let requests = Rc::new(RefCell::new(Vec::new()));
    let server = Server {
        transport: t,
        protocol: p,
        requests: requests.clone(),
        replies: Vec::new(),
        pos: 0,
    };
    let (r, w): (Box<dyn Read>, Box<dyn Write>) = match t {
        Transport::Framed => (
            Box::new(TFramedReadTransport::new(server)),
            Box::new(TFramedWriteTransport::new(Requests(requests))),
        ),
        Transport::Unframed => (Box::new(server), Box::new(Requests(requests))),
    };
    let (i, o): (Box<dyn TInputProtocol>, Box<dyn TOutputProtocol>) = match p {
        Protocol::Binary => (
            Box::new(TBinaryInputProtocol::new(r, true)),
            Box::new(TBinaryOutputProtocol::new(w, true)),
        ),
        Protocol::Compact => (
            Box::new(TCompactInputProtocol::new(r)),
            Box::new(TCompactOutputProtocol::new(w)),
        ),
    };
    gen::ThrudocSyncClient::new(i, o)
}

fn gen_el(bucket: &str, key: &str, value: &[u8]) -> gen::Element {
    gen::Element::new(bucket.to_owned(), key.to_owned(), value.to_vec())
}

#[test]
fn generated_client_talks_to_the_codec() {
    let s = String::from;
    for p in PROTOCOLS {
        for t in TRANSPORTS {
            CALLS.with(|c| c.borrow_mut().clear());
            let mut c = client(t, p);
            let ctx = format!("{p} {t}");

            assert_eq!(
                c.get_buckets().unwrap(),
                vec![s("alpha"), s("ключи")],
                "{ctx}"
            );
            c.put(s("b"), s("ключ"), all_bytes().to_vec()).unwrap();
            assert_eq!(
                c.get(s("b"), s("k")).unwrap(),
                [&b"bk"[..], &all_bytes()].concat(),
                "{ctx}"
            );
            match c.get(s("b"), s("missing")) {
                Err(thrift::Error::User(e)) => {
                    let e = e.downcast::<gen::ThrudocException>().unwrap();
                    assert_eq!(
                        *e,
                        gen::ThrudocException::new(s("no such key"), gen::ExceptionType(2), None)
                    );
                }
                other => panic!("{ctx}: {other:?}"),
            }
            c.remove(s("b"), s("k")).unwrap();
            c.append(s("b"), s("k"), vec![]).unwrap();
            assert_eq!(c.put_value(s("b"), b"v".to_vec()).unwrap(), "new-key");
            for count in [0, 3, 20] {
                let r = c.scan(s("b"), s("seed"), count).unwrap();
                let expected: Vec<gen::Element> = (0..count)
                    .map(|i| gen_el("b", &format!("k{i}"), &[i as u8]))
                    .collect();
                assert_eq!(
                    r,
                    gen::ScanResponse::new(expected, format!("after{count}")),
                    "{ctx}"
                );
            }
            let elements = vec![
                gen_el("b", "k1", b""),
                gen_el("b", "missing", b""),
                gen_el("", "", b""),
            ];
            assert_eq!(
                c.put_list(elements.clone()).unwrap(),
                vec![
                    gen::ThrudocException::new(s(""), gen::ExceptionType(2), None),
                    gen::ThrudocException::new(s(""), gen::ExceptionType(7), None),
                    gen::ThrudocException::new(s(""), gen::ExceptionType(0), None),
                ]
            );
            let got = c.get_list(elements.clone()).unwrap();
            assert_eq!(
                got,
                vec![
                    gen::ListResponse::new(
                        gen_el("b", "k1", b"v:k1"),
                        gen::ThrudocException::new(s(""), gen::ExceptionType(1), None)
                    ),
                    gen::ListResponse::new(
                        gen_el("b", "missing", b""),
                        gen::ThrudocException::new(s("no such key"), gen::ExceptionType(2), None)
                    ),
                    gen::ListResponse::new(
                        gen_el("", "", b"v:"),
                        gen::ThrudocException::new(s(""), gen::ExceptionType(1), None)
                    ),
                ],
                "{ctx}"
            );
            assert_eq!(c.remove_list(vec![]).unwrap(), vec![]);
            assert_eq!(c.put_value_list(elements[..1].to_vec()).unwrap().len(), 1);
            assert_eq!(c.admin(s("echo"), s("hi")).unwrap(), "echo hi");
            match c.admin(s("boom"), s("")) {
                Err(thrift::Error::Application(e)) => {
                    assert_eq!(e.kind, thrift::ApplicationErrorKind::InternalError);
                    assert_eq!(e.message, "boom went the server");
                }
                other => panic!("{ctx}: {other:?}"),
            }
            // The client still works after an exception.
            assert_eq!(c.admin(s("echo"), s("again")).unwrap(), "echo again");
            assert_eq!(c.write_token().unwrap(), "1-1-5,2-2-7", "{ctx}");
            assert_eq!(
                c.get_after(s("b"), s("k"), s("1-1-5")).unwrap(),
                b"k@1-1-5",
                "{ctx}"
            );

            let calls = CALLS.with(|c| c.borrow().clone());
            let to_el = |e: &gen::Element| to_gen(&from_gen(e.clone()));
            assert_eq!(calls.len(), 19, "{ctx}");
            assert_eq!(calls[17], Call::WriteToken, "{ctx}");
            assert_eq!(
                calls[18],
                Call::GetAfter {
                    bucket: b("b"),
                    key: b("k"),
                    token: b("1-1-5")
                },
                "{ctx}"
            );
            assert_eq!(
                calls[1],
                Call::Put {
                    bucket: b("b"),
                    key: b("ключ"),
                    value: all_bytes()
                }
            );
            assert_eq!(
                calls[7],
                Call::Scan {
                    bucket: b("b"),
                    seed: b("seed"),
                    count: 0
                }
            );
            let Call::GetList(got) = &calls[11] else {
                panic!("{:?}", calls[11])
            };
            assert_eq!(
                got.iter().map(to_gen).collect::<Vec<_>>(),
                elements.iter().map(to_el).collect::<Vec<_>>()
            );
            assert_eq!(calls[12], Call::RemoveList(vec![]));
            assert_eq!(
                calls[14],
                Call::Admin {
                    op: b("echo"),
                    data: b("hi")
                }
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Truncation

#[test]
fn every_strict_prefix_is_incomplete() {
    for (p, case) in all_cases() {
        for t in TRANSPORTS {
            let buf = Bytes::from(on(t, &case.msg));
            // The 100 kB admin message: every 97th prefix, and all near its ends.
            let step = if buf.len() > 10_000 { 97 } else { 1 };
            let cuts = (0..buf.len())
                .step_by(step)
                .chain(buf.len().saturating_sub(300)..buf.len());
            for cut in cuts {
                let got = decode_message(&buf.slice(..cut), t, p, LIMIT);
                // A whole frame header says exactly how much is missing; nothing else does.
                let needed = (t == Transport::Framed && cut >= 4).then(|| buf.len() - cut);
                assert_eq!(
                    got,
                    Err(DecodeError::Incomplete { needed }),
                    "{} {t} cut at {cut}",
                    case.label
                );
            }
        }
    }
}

#[test]
fn a_frame_cut_short_is_never_a_call() {
    for (p, case) in all_cases() {
        let step = if case.msg.len() > 10_000 { 97 } else { 1 };
        for cut in (1..case.msg.len()).step_by(step) {
            let buf = frame(&case.msg[..cut]);
            match decode(&buf, Transport::Framed, p) {
                Err(DecodeError::Malformed(_)) => {}
                Ok((
                    Incoming::Invalid {
                        kind: AppExceptionKind::ProtocolError,
                        ..
                    },
                    n,
                )) => {
                    assert_eq!(n, buf.len())
                }
                other => panic!("{} cut at {cut}: {other:?}", case.label),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed input and limits

fn malformed(r: Result<(Incoming, usize), DecodeError>) -> String {
    match r {
        Err(DecodeError::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn protocol_error(r: Result<(Incoming, usize), DecodeError>, len: usize) -> String {
    match r {
        Ok((
            Incoming::Invalid {
                kind: AppExceptionKind::ProtocolError,
                reason,
                ..
            },
            n,
        )) => {
            assert_eq!(n, len);
            reason
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A `get` whose args struct is `args` followed by a stop byte, with the header as the
/// reference writes it.
fn raw_get(p: Protocol, args: &[u8]) -> Vec<u8> {
    let mut msg = call_message(p, "get", 5, |_| {});
    msg.pop(); // the stop byte
    msg.extend_from_slice(args);
    msg.push(0);
    msg
}

/// `args` must be malformed in both transports: Malformed unframed, a protocol error framed.
fn assert_bad_args(p: Protocol, args: &[u8], why: &str) {
    let msg = raw_get(p, args);
    let reason = malformed(decode(&msg, Transport::Unframed, p));
    assert!(reason.contains(why), "{p}: {reason:?} lacks {why:?}");
    let framed = frame(&msg);
    let reason = protocol_error(decode(&framed, Transport::Framed, p), framed.len());
    assert!(reason.contains(why), "{p}: {reason:?} lacks {why:?}");
}

#[test]
fn garbage_is_malformed() {
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(matches!(detect(http), Err(DecodeError::Malformed(_))));
    for p in PROTOCOLS {
        malformed(decode(http, Transport::Unframed, p));
        // As a frame length, "GET " is far beyond the limit; a small limit must say so.
        assert_eq!(
            decode_message(&b(http), Transport::Framed, p, 1000),
            Err(DecodeError::TooLarge {
                size: u64::from(u32::from_be_bytes(*b"GET ")),
                limit: 1000
            })
        );
    }
    let tls = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    assert!(matches!(detect(&tls), Err(DecodeError::Malformed(_))));
    assert!(matches!(detect(&[0xff]), Err(DecodeError::Malformed(_))));
    assert!(matches!(
        detect(&[0x81, 0x01]),
        Err(DecodeError::Malformed(_))
    ));
    // A frame holding something that is no message.
    for p in PROTOCOLS {
        malformed(decode(&frame(b"hello"), Transport::Framed, p));
    }
}

#[test]
fn bad_versions_are_malformed() {
    let get = call_message(Protocol::Binary, "get", 1, |_| {});
    for (i, v) in [(1, 0x02), (1, 0x00), (0, 0x81)] {
        let mut msg = get.clone();
        msg[i] = v;
        for t in TRANSPORTS {
            malformed(decode(&on(t, &msg), t, Protocol::Binary));
        }
    }
    // The third byte is masked off, as the reference does.
    let mut msg = get.clone();
    msg[2] = 0x55;
    assert!(decode(&msg, Transport::Unframed, Protocol::Binary).is_ok());

    let get = call_message(Protocol::Compact, "get", 1, |_| {});
    for (i, v) in [(1, 0x22), (1, 0x20), (0, 0x83)] {
        let mut msg = get.clone();
        msg[i] = v;
        for t in TRANSPORTS {
            malformed(decode(&on(t, &msg), t, Protocol::Compact));
        }
    }
    // Each protocol refuses the other's messages.
    for t in TRANSPORTS {
        malformed(decode(&on(t, &get), t, Protocol::Binary));
        let binary = call_message(Protocol::Binary, "get", 1, |_| {});
        malformed(decode(&on(t, &binary), t, Protocol::Compact));
    }
}

#[test]
fn negative_lengths_are_malformed() {
    // Binary: the name length, then a string argument, then list sizes.
    let mut msg = vec![0x80, 0x01, 0x00, 0x01];
    msg.extend_from_slice(&(-1i32).to_be_bytes());
    malformed(decode(&msg, Transport::Unframed, Protocol::Binary));
    malformed(decode(&frame(&msg), Transport::Framed, Protocol::Binary));

    let p = Protocol::Binary;
    assert_bad_args(
        p,
        &[11, 0, 1, 0xff, 0xff, 0xff, 0xfe],
        "negative string length",
    );
    assert_bad_args(p, &[15, 0, 9, 8, 0x80, 0, 0, 0], "negative collection size");
    assert_bad_args(
        p,
        &[14, 0, 9, 8, 0xff, 0xff, 0xff, 0xff],
        "negative collection size",
    );
    assert_bad_args(
        p,
        &[13, 0, 9, 8, 8, 0xff, 0xff, 0xff, 0xff],
        "negative map size",
    );
    // The list of elements itself.
    assert_bad_args(
        p,
        &[15, 0, 1, 12, 0xff, 0xff, 0xff, 0xff],
        "negative collection size",
    );

    // Compact: lengths are varints; above i32::MAX they are negative i32s.
    let p = Protocol::Compact;
    let minus_one = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut msg = vec![0x82, 0x21, 0x05];
    msg.extend_from_slice(&minus_one);
    malformed(decode(&msg, Transport::Unframed, p));
    assert_bad_args(
        p,
        &[&[0x18][..], &minus_one].concat(),
        "negative string length",
    );
    assert_bad_args(
        p,
        &[&[0x19, 0xf5][..], &minus_one].concat(),
        "negative collection size",
    );
    assert_bad_args(p, &[&[0x1b][..], &minus_one].concat(), "negative map size");
    assert_bad_args(
        p,
        &[&[0x19, 0xfc][..], &[0x80, 0x80, 0x80, 0x80, 0x08]].concat(),
        "negative",
    );
}

#[test]
fn bad_type_ids_are_malformed() {
    for t in [1, 5, 7, 9, 17, 0x80, 0xff] {
        assert_bad_args(Protocol::Binary, &[t, 0, 9], "unknown binary type");
    }
    // A list whose element type is bad, and a map whose value type is.
    assert_bad_args(
        Protocol::Binary,
        &[15, 0, 9, 0, 0, 0, 0, 1],
        "unknown binary type",
    );
    assert_bad_args(
        Protocol::Binary,
        &[13, 0, 9, 8, 99, 0, 0, 0, 1],
        "unknown binary type",
    );
    for t in [14, 15] {
        assert_bad_args(Protocol::Compact, &[0x10 | t], "unknown compact type");
    }
    assert_bad_args(Protocol::Compact, &[0x19, 0x10], "unknown compact type");
    assert_bad_args(Protocol::Compact, &[0x19, 0x1e], "unknown compact type");
    assert_bad_args(
        Protocol::Compact,
        &[0x1b, 0x01, 0x5e],
        "unknown compact type",
    );
    assert_bad_args(
        Protocol::Compact,
        &[0x1b, 0x01, 0x05],
        "unknown compact type",
    );
    // Varints longer than their type allows.
    assert_bad_args(
        Protocol::Compact,
        &[0x15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        "varint",
    );
    assert_bad_args(
        Protocol::Compact,
        &[0x15, 0x80, 0x80, 0x80, 0x80, 0x10],
        "varint",
    );
    assert_bad_args(
        Protocol::Compact,
        &[&[0x16][..], &[0xff; 10]].concat(),
        "varint",
    );
    let mut overflow = vec![0x16];
    overflow.extend_from_slice(&[0xff; 9]);
    overflow.push(0x02);
    assert_bad_args(Protocol::Compact, &overflow, "overflows 64 bits");
    // A long-form field id beyond i16.
    assert_bad_args(Protocol::Compact, &[0x05, 0x80, 0x80, 0x04, 0x00], "i16");
    // The full 10-byte i64 varint is fine.
    let mut ok = vec![0x16];
    ok.extend_from_slice(&[0xff; 9]);
    ok.push(0x01);
    let msg = raw_get(Protocol::Compact, &ok);
    assert!(decode(&msg, Transport::Unframed, Protocol::Compact).is_ok());
}

/// A `get` with an unknown field holding `depth` nested structs.
fn nested(p: Protocol, depth: usize) -> Vec<u8> {
    fn nest(o: &mut Out<'_>, depth: usize) {
        if depth == 0 {
            return;
        }
        field(o, TType::Struct, 1);
        struct_begin(o);
        nest(o, depth - 1);
        struct_end(o);
        o.write_field_end().unwrap();
    }
    call_message(p, "get", 1, |o| {
        str_field(o, 1, b"b");
        nest(o, depth);
        str_field(o, 2, b"k");
    })
}

#[test]
fn nesting_is_limited_to_64() {
    for p in PROTOCOLS {
        for t in TRANSPORTS {
            let ok = on(t, &nested(p, 64));
            let (incoming, n) = decode(&ok, t, p).unwrap();
            assert_eq!(n, ok.len());
            assert_eq!(
                incoming,
                call(
                    1,
                    Call::Get {
                        bucket: b("b"),
                        key: b("k")
                    }
                )
            );
        }
        // Written by hand, as the reference's writer would recurse as deeply.
        let deep = 100_000;
        let header: &[u8] = match p {
            Protocol::Binary => &[12, 0, 1],
            Protocol::Compact => &[0x1c],
        };
        let deep = raw_get(p, &[header.repeat(deep), vec![0; deep]].concat());
        for msg in [nested(p, 65), deep] {
            assert!(malformed(decode(&msg, Transport::Unframed, p)).contains("nested"));
            let framed = frame(&msg);
            assert!(
                protocol_error(decode(&framed, Transport::Framed, p), framed.len())
                    .contains("nested")
            );
        }
        // Lists nest too: a field holding a list of lists of ... (one element each).
        let args = match p {
            Protocol::Binary => [vec![15, 0, 9], [15, 0, 0, 0, 1].repeat(100)].concat(),
            Protocol::Compact => [vec![0x19], vec![0x19; 100]].concat(),
        };
        let msg = raw_get(p, &args);
        assert!(malformed(decode(&msg, Transport::Unframed, p)).contains("nested"));
    }
}

#[test]
fn frame_lengths_are_checked_first() {
    for p in PROTOCOLS {
        for len in [0i32, -1, i32::MIN] {
            let buf = len.to_be_bytes();
            assert!(malformed(decode(&buf, Transport::Framed, p)).contains("frame length"));
        }
        // Only the length has arrived, and it is too much.
        let buf = 1001u32.to_be_bytes();
        assert_eq!(
            decode_message(&b(buf), Transport::Framed, p, 1000),
            Err(DecodeError::TooLarge {
                size: 1001,
                limit: 1000
            })
        );
        let buf = 1000u32.to_be_bytes();
        assert_eq!(
            decode_message(&b(buf), Transport::Framed, p, 1000),
            Err(DecodeError::Incomplete { needed: Some(1000) })
        );
        for short in 0..4 {
            assert_eq!(
                decode_message(&b(&buf[..short]), Transport::Framed, p, 1000),
                Err(DecodeError::Incomplete { needed: None })
            );
        }
    }
}

#[test]
fn trailing_bytes_in_a_frame_are_malformed() {
    for p in PROTOCOLS {
        let mut msg = call_message(p, "get", 1, |o| str_field(o, 1, b"b"));
        msg.push(0);
        assert!(malformed(decode(&frame(&msg), Transport::Framed, p)).contains("after the message"));
    }
}

#[test]
fn unframed_lengths_beyond_the_limit_are_too_large() {
    for p in PROTOCOLS {
        let value = vec![1u8; 5000];
        let msg = call_message(p, "put", 1, |o| {
            str_field(o, 1, b"b");
            str_field(o, 3, &value);
        });
        let limit = 1000;
        // Known from the length alone, with only a few bytes of the value at hand.
        let at = msg.len() - value.len() + 10;
        for cut in [at, msg.len()] {
            match decode_message(&b(&msg[..cut]), Transport::Unframed, p, limit) {
                Err(DecodeError::TooLarge { size, limit: 1000 }) => {
                    assert!(size > 5000 && size <= msg.len() as u64, "{size}")
                }
                other => panic!("{other:?}"),
            }
        }
        // The whole message at exactly the limit is fine, one byte less is not.
        let buf = b(&msg);
        let ok = decode_message(&buf, Transport::Unframed, p, msg.len());
        assert_eq!(ok.unwrap().1, msg.len());
        assert!(matches!(
            decode_message(&buf, Transport::Unframed, p, msg.len() - 1),
            Err(DecodeError::TooLarge { .. })
        ));
        // The name's length.
        let msg = call_message(p, &"m".repeat(2000), 1, |_| {});
        assert!(matches!(
            decode_message(&b(&msg[..20]), Transport::Unframed, p, 1000),
            Err(DecodeError::TooLarge { .. })
        ));
        // A list of elements claiming more elements than the limit allows bytes for.
        let msg = raw_get(
            p,
            match p {
                Protocol::Binary => &[15, 0, 1, 12, 0x7f, 0, 0, 0],
                Protocol::Compact => &[0x19, 0xfc, 0xff, 0xff, 0xff, 0xff, 0x07],
            },
        );
        assert!(matches!(
            decode_message(&b(&msg), Transport::Unframed, p, 1 << 20),
            Err(DecodeError::TooLarge { .. })
        ));
        // ... or than the frame holds: refused without allocating for them.
        let framed = frame(&msg);
        protocol_error(decode(&framed, Transport::Framed, p), framed.len());
        // An unframed buffer beyond the limit that is still incomplete.
        let msg = call_message(p, "put", 1, |o| {
            for _ in 0..100 {
                i32_field(o, 9, 1);
            }
        });
        assert!(matches!(
            decode_message(&b(&msg[..msg.len() - 1]), Transport::Unframed, p, 50),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}

#[test]
fn messages_that_are_not_calls_are_invalid() {
    for p in PROTOCOLS {
        for (kind, name) in [
            (TMessageType::Reply, "REPLY"),
            (TMessageType::Exception, "EXCEPTION"),
        ] {
            let msg = message(p, "get", kind, 42, |o| {
                junk(o, 1);
                str_field(o, 0, b"result");
            });
            for t in TRANSPORTS {
                let buf = on(t, &msg);
                match decode(&buf, t, p) {
                    Ok((
                        Incoming::Invalid {
                            name: n,
                            seqid: 42,
                            kind: AppExceptionKind::InvalidMessageType,
                            reason,
                        },
                        len,
                    )) => {
                        assert_eq!(n, "get");
                        assert_eq!(len, buf.len());
                        assert!(reason.contains(name), "{reason}");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    // Message types no writer uses.
    let mut msg = call_message(Protocol::Compact, "get", 1, |_| {});
    for kind in [0, 5, 7] {
        msg[1] = (kind << 5) | 1;
        assert!(matches!(
            decode(&msg, Transport::Unframed, Protocol::Compact),
            Ok((
                Incoming::Invalid {
                    kind: AppExceptionKind::InvalidMessageType,
                    ..
                },
                _
            ))
        ));
    }
    let mut msg = call_message(Protocol::Binary, "get", 1, |_| {});
    msg[3] = 9;
    assert!(matches!(
        decode(&msg, Transport::Unframed, Protocol::Binary),
        Ok((
            Incoming::Invalid {
                kind: AppExceptionKind::InvalidMessageType,
                ..
            },
            _
        ))
    ));
}

#[test]
fn unknown_methods_are_skipped_to_their_end() {
    for p in PROTOCOLS {
        let unknown = call_message(p, "frobnicate", 7, |o| {
            junk(o, 1);
            elements_field(o, 1, &[el("a", "b", "c")], Style::Scrambled);
        });
        let get = call_message(p, "get", 8, |o| {
            str_field(o, 1, b"b");
            str_field(o, 2, b"k");
        });
        for t in TRANSPORTS {
            let buf = Bytes::from([on(t, &unknown), on(t, &get)].concat());
            let (incoming, n) = decode_message(&buf, t, p, LIMIT).unwrap();
            assert_eq!(
                incoming,
                Incoming::UnknownMethod {
                    name: b("frobnicate"),
                    seqid: 7
                }
            );
            assert_eq!(n, on(t, &unknown).len());
            let (incoming, m) = decode_message(&buf.slice(n..), t, p, LIMIT).unwrap();
            assert_eq!(
                incoming,
                call(
                    8,
                    Call::Get {
                        bucket: b("b"),
                        key: b("k")
                    }
                )
            );
            assert_eq!(n + m, buf.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Detection

#[test]
fn detects_transport_and_protocol() {
    for p in PROTOCOLS {
        let msg = call_message(p, "get", 1, |o| str_field(o, 1, b"b"));
        let framed = frame(&msg);
        assert_eq!(detect(&msg), Ok(Some((Transport::Unframed, p))));
        assert_eq!(detect(&msg[..1]), Ok(Some((Transport::Unframed, p))));
        assert_eq!(detect(&framed), Ok(Some((Transport::Framed, p))));
        assert_eq!(detect(&framed[..5]), Ok(Some((Transport::Framed, p))));
        for short in 0..5 {
            assert_eq!(detect(&framed[..short]), Ok(None), "{p} {short}");
        }
    }
    assert_eq!(detect(&[]), Ok(None));
    assert!(matches!(
        detect(&[0, 0, 0, 9, 0x81]),
        Err(DecodeError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// 7. Fuzzing

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_messages_never_panic() {
    let corpus: Vec<(Protocol, Transport, Vec<u8>)> = all_cases()
        .into_iter()
        .filter(|(_, c)| c.msg.len() < 4000)
        .flat_map(|(p, c)| TRANSPORTS.map(|t| (p, t, on(t, &c.msg))))
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = [0usize; 4];
    for _ in 0..20_000 {
        let (p, t, original) = &corpus[rng.below(corpus.len())];
        let mut buf = original.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(buf.len());
            match rng.below(7) {
                0 => {
                    if let Some(x) = buf.get_mut(at) {
                        *x ^= 1 << rng.below(8)
                    }
                }
                1 => {
                    if let Some(x) = buf.get_mut(at) {
                        *x = rng.next() as u8
                    }
                }
                2 => buf.truncate(at),
                3 => {
                    let n = rng.below(8);
                    for _ in 0..n {
                        buf.insert(at.min(buf.len()), rng.next() as u8);
                    }
                }
                4 => {
                    // A random 32-bit value where a length may be.
                    let v = (rng.next() as u32).to_be_bytes();
                    for (i, x) in v.into_iter().enumerate() {
                        if let Some(y) = buf.get_mut(at + i) {
                            *y = x;
                        }
                    }
                }
                5 => {
                    let end = (at + rng.below(16)).min(buf.len());
                    buf.drain(at..end);
                }
                _ => {
                    let end = (at + rng.below(64)).min(buf.len());
                    let copy = buf[at..end].to_vec();
                    buf.splice(at..at, copy);
                }
            }
        }
        let buf = Bytes::from(buf);
        let limit = if rng.below(4) == 0 {
            rng.below(300)
        } else {
            LIMIT
        };
        for (t, p) in [(*t, *p), (*t, other(*p))] {
            let got = decode_message(&buf, t, p, limit);
            match &got {
                Ok((_, n)) => {
                    outcomes[0] += 1;
                    assert!(*n > 0 && *n <= buf.len());
                    let max = if t == Transport::Framed {
                        limit + 4
                    } else {
                        limit
                    };
                    assert!(*n <= max, "{n} > {max}");
                    // The message does not depend on the bytes after it.
                    assert_eq!(decode_message(&buf.slice(..*n), t, p, limit), got);
                }
                Err(DecodeError::Incomplete { .. }) => outcomes[1] += 1,
                Err(DecodeError::Malformed(_)) => outcomes[2] += 1,
                Err(DecodeError::TooLarge { size, limit: l }) => {
                    outcomes[3] += 1;
                    assert_eq!(*l, limit);
                    assert!(*size > limit as u64);
                }
            }
            let _ = detect(&buf);
        }
    }
    // Every outcome was reached, so the mutations exercised the decoder.
    assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
}

fn other(p: Protocol) -> Protocol {
    match p {
        Protocol::Binary => Protocol::Compact,
        Protocol::Compact => Protocol::Binary,
    }
}
