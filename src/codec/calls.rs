//! The Thrudoc service on the wire: call arguments in, result structs out, for any protocol.
//!
//! Field ids and types follow `idl/thrudoc.thrift`. Like generated Thrift servers, decoding
//! skips fields it does not know and fields of a known id but another type, and leaves absent
//! arguments empty (or 0).

use bytes::Bytes;

use super::MAX_LIST_ELEMENTS;

use super::message::{
    AppExceptionKind, Call, Element, Incoming, ListResult, Method, Reply, ReplyBody, WireException,
};
use super::proto::{
    ProtoRead, ProtoWrite, ReadError, ReadResult, Ty, CALL, EXCEPTION, MAX_SKIP_DEPTH, ONEWAY,
    REPLY,
};

/// Reads the fields of a struct up to its stop byte. `field` reads the value of a field it
/// wants and returns `true`; every other field is skipped.
#[inline]
fn read_struct<'a, P: ProtoRead<'a>>(
    p: &mut P,
    mut field: impl FnMut(&mut P, i16, Ty) -> ReadResult<bool>,
) -> ReadResult<()> {
    let mut prev = 0;
    while let Some((ty, id)) = p.field_begin(prev)? {
        prev = id;
        if !field(p, id, ty)? {
            p.skip(ty, MAX_SKIP_DEPTH)?;
        }
    }
    Ok(())
}

fn read_element<'a, P: ProtoRead<'a>>(p: &mut P) -> ReadResult<Element> {
    let mut e = Element::default();
    read_struct(p, |p, id, ty| {
        let slot = match (id, ty) {
            (1, Ty::Binary) => &mut e.bucket,
            (2, Ty::Binary) => &mut e.key,
            (3, Ty::Binary) => &mut e.value,
            _ => return Ok(false),
        };
        *slot = p.binary()?;
        Ok(true)
    })?;
    Ok(e)
}

/// A `list<Element>`, or why it is not one (the list itself is skipped in that case, so the
/// message can still be read to its end).
fn read_elements<'a, P: ProtoRead<'a>>(p: &mut P) -> ReadResult<Result<Vec<Element>, String>> {
    let (ety, n) = p.list_begin()?;
    if ety != Ty::Struct {
        p.skip_n(ety, n, MAX_SKIP_DEPTH)?;
        return Ok(Err(format!("list<Element> with elements of type {ety:?}")));
    }
    // An empty Element is one byte on the wire and ~100 in memory: without this bound a 16 MiB
    // message could make the server allocate over a gigabyte.
    if n > MAX_LIST_ELEMENTS {
        p.skip_n(ety, n, MAX_SKIP_DEPTH)?;
        return Ok(Err(format!(
            "list of {n} elements is longer than {MAX_LIST_ELEMENTS}"
        )));
    }
    // list_begin checked n against the bytes at hand, one byte per element at least.
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(read_element(p)?);
    }
    Ok(Ok(v))
}

/// Fields 1 to `N` of an argument struct whose arguments are all strings.
fn read_strings<'a, P: ProtoRead<'a>, const N: usize>(p: &mut P) -> ReadResult<[Bytes; N]> {
    let mut s: [Bytes; N] = std::array::from_fn(|_| Bytes::new());
    read_struct(p, |p, id, ty| match usize::try_from(id) {
        Ok(i @ 1..) if i <= N && ty == Ty::Binary => {
            s[i - 1] = p.binary()?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(s)
}

/// Reads the arguments of `method`. `Ok(Err(why))`: the struct was read to its end but does
/// not hold arguments of the declared types.
fn read_call<'a, P: ProtoRead<'a>>(p: &mut P, method: Method) -> ReadResult<Result<Call, String>> {
    Ok(Ok(match method {
        Method::GetBuckets => {
            p.skip(Ty::Struct, MAX_SKIP_DEPTH)?;
            Call::GetBuckets
        }
        Method::WriteToken => {
            p.skip(Ty::Struct, MAX_SKIP_DEPTH)?;
            Call::WriteToken
        }
        Method::GetAfter => {
            let [bucket, key, token] = read_strings(p)?;
            Call::GetAfter { bucket, key, token }
        }
        Method::Put => {
            let [bucket, key, value] = read_strings(p)?;
            Call::Put { bucket, key, value }
        }
        Method::Get => {
            let [bucket, key] = read_strings(p)?;
            Call::Get { bucket, key }
        }
        Method::Remove => {
            let [bucket, key] = read_strings(p)?;
            Call::Remove { bucket, key }
        }
        Method::Append => {
            let [bucket, key, value] = read_strings(p)?;
            Call::Append { bucket, key, value }
        }
        Method::PutValue => {
            let [bucket, value] = read_strings(p)?;
            Call::PutValue { bucket, value }
        }
        Method::Admin => {
            let [op, data] = read_strings(p)?;
            Call::Admin { op, data }
        }
        Method::Scan => {
            let (mut bucket, mut seed, mut count) = (Bytes::new(), Bytes::new(), 0);
            read_struct(p, |p, id, ty| {
                match (id, ty) {
                    (1, Ty::Binary) => bucket = p.binary()?,
                    (2, Ty::Binary) => seed = p.binary()?,
                    (3, Ty::I32) => count = p.i32()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Call::Scan {
                bucket,
                seed,
                count,
            }
        }
        Method::PutList | Method::GetList | Method::RemoveList | Method::PutValueList => {
            let mut elements = Ok(Vec::new());
            read_struct(p, |p, id, ty| {
                if (id, ty) != (1, Ty::List) {
                    return Ok(false);
                }
                elements = read_elements(p)?;
                Ok(true)
            })?;
            let elements = match elements {
                Ok(e) => e,
                Err(why) => return Ok(Err(why)),
            };
            match method {
                Method::PutList => Call::PutList(elements),
                Method::GetList => Call::GetList(elements),
                Method::RemoveList => Call::RemoveList(elements),
                _ => Call::PutValueList(elements),
            }
        }
    }))
}

/// Where reading a message failed.
pub(super) enum MessageError {
    /// In the header: nothing is known about the message.
    Header(ReadError),
    /// In the arguments of the message with this name and seqid.
    Args(Bytes, i32, ReadError),
}

/// Reads one message: header, then arguments (or skips them when they are not wanted).
pub(super) fn read_message<'a, P: ProtoRead<'a>>(p: &mut P) -> Result<Incoming, MessageError> {
    let h = p.message_begin().map_err(MessageError::Header)?;
    let args_err = |e| MessageError::Args(h.name.clone(), h.seqid, e);
    if h.kind != CALL && h.kind != ONEWAY {
        p.skip(Ty::Struct, MAX_SKIP_DEPTH).map_err(args_err)?;
        let kind = match h.kind {
            REPLY => "REPLY".to_owned(),
            EXCEPTION => "EXCEPTION".to_owned(),
            other => other.to_string(),
        };
        return Ok(Incoming::Invalid {
            name: h.name,
            seqid: h.seqid,
            kind: AppExceptionKind::InvalidMessageType,
            reason: format!("message type {kind} where CALL or ONEWAY was expected"),
        });
    }
    let Some(method) = Method::from_name(&h.name) else {
        p.skip(Ty::Struct, MAX_SKIP_DEPTH).map_err(args_err)?;
        return Ok(Incoming::UnknownMethod {
            name: h.name,
            seqid: h.seqid,
        });
    };
    Ok(match read_call(p, method).map_err(args_err)? {
        Ok(call) => Incoming::Call {
            seqid: h.seqid,
            call,
            oneway: h.kind == ONEWAY,
        },
        Err(why) => Incoming::Invalid {
            name: h.name,
            seqid: h.seqid,
            kind: AppExceptionKind::ProtocolError,
            reason: format!("arguments of {}: {why}", method.name()),
        },
    })
}

fn write_element<W: ProtoWrite>(out: &mut Vec<u8>, e: &Element) {
    W::field_begin(out, Ty::Binary, 1, 0);
    W::binary(out, &e.bucket);
    W::field_begin(out, Ty::Binary, 2, 1);
    W::binary(out, &e.key);
    W::field_begin(out, Ty::Binary, 3, 2);
    W::binary(out, &e.value);
    W::field_stop(out);
}

fn write_exception<W: ProtoWrite>(out: &mut Vec<u8>, e: &WireException) {
    W::field_begin(out, Ty::Binary, 1, 0);
    W::binary(out, e.what.as_bytes());
    W::field_begin(out, Ty::I32, 2, 1);
    W::i32(out, e.type_);
    if let Some(code) = e.code {
        W::field_begin(out, Ty::I32, 3, 2);
        W::i32(out, code);
    }
    W::field_stop(out);
}

/// The field id clients of the original IDL read the declared exception from: its `throws`
/// clauses named no id, and Thrift compilers number such a field -1.
const ORIGINAL_THROWS_ID: i16 = -1;

/// An upper bound of the encoded size of `body` (short of pathological name lengths), so that
/// `out` grows once instead of copying large values over and over as it doubles.
fn size_hint(body: &ReplyBody) -> usize {
    // Per string: a length of at most 5 bytes and a field header of at most 4.
    const STR: usize = 9;
    const EX: usize = 3 * STR + 1;
    let element = |e: &Element| e.bucket.len() + e.key.len() + e.value.len() + 3 * STR + 1;
    32 + match body {
        ReplyBody::Void => 0,
        ReplyBody::Strings(v) => v.iter().map(|s| s.len() + STR).sum(),
        ReplyBody::Binary(b) => b.len() + STR,
        ReplyBody::Scan { elements, seed } => {
            elements.iter().map(element).sum::<usize>() + seed.len() + 2 * STR
        }
        ReplyBody::Exceptions(v) => v.iter().map(|e| e.what.len() + EX).sum(),
        ReplyBody::ListResults(v) => v
            .iter()
            .map(|r| element(&r.element) + r.ex.what.len() + EX + 9)
            .sum(),
        ReplyBody::Thrown(e) => 2 * (e.what.len() + EX),
    }
}

/// Writes a REPLY message: header, then the method's result struct.
pub(super) fn write_reply<W: ProtoWrite>(out: &mut Vec<u8>, reply: &Reply) {
    let name = reply.method.name().as_bytes();
    out.reserve(size_hint(&reply.body) + name.len());
    W::message_begin(out, name, REPLY, reply.seqid);
    match &reply.body {
        ReplyBody::Void => {}
        ReplyBody::Strings(v) => {
            W::field_begin(out, Ty::List, 0, 0);
            W::list_begin(out, Ty::Binary, v.len());
            for s in v {
                W::binary(out, s);
            }
        }
        ReplyBody::Binary(b) => {
            W::field_begin(out, Ty::Binary, 0, 0);
            W::binary(out, b);
        }
        ReplyBody::Scan { elements, seed } => {
            W::field_begin(out, Ty::Struct, 0, 0);
            W::field_begin(out, Ty::List, 1, 0);
            W::list_begin(out, Ty::Struct, elements.len());
            for e in elements {
                write_element::<W>(out, e);
            }
            W::field_begin(out, Ty::Binary, 2, 1);
            W::binary(out, seed);
            W::field_stop(out);
        }
        ReplyBody::Exceptions(v) => {
            W::field_begin(out, Ty::List, 0, 0);
            W::list_begin(out, Ty::Struct, v.len());
            for e in v {
                write_exception::<W>(out, e);
            }
        }
        ReplyBody::ListResults(v) => {
            W::field_begin(out, Ty::List, 0, 0);
            W::list_begin(out, Ty::Struct, v.len());
            for ListResult { element, ex } in v {
                W::field_begin(out, Ty::Struct, 1, 0);
                write_element::<W>(out, element);
                W::field_begin(out, Ty::Struct, 2, 1);
                write_exception::<W>(out, ex);
                W::field_stop(out);
            }
        }
        ReplyBody::Thrown(e) => {
            W::field_begin(out, Ty::Struct, 1, 0);
            write_exception::<W>(out, e);
            W::field_begin(out, Ty::Struct, ORIGINAL_THROWS_ID, 1);
            write_exception::<W>(out, e);
        }
    }
    W::field_stop(out);
}

/// Writes an EXCEPTION message holding a `TApplicationException {1: string message, 2: i32
/// type}`.
pub(super) fn write_app_exception<W: ProtoWrite>(
    out: &mut Vec<u8>,
    name: &[u8],
    seqid: i32,
    kind: AppExceptionKind,
    message: &str,
) {
    out.reserve(name.len() + message.len() + 32);
    W::message_begin(out, name, EXCEPTION, seqid);
    W::field_begin(out, Ty::Binary, 1, 0);
    W::binary(out, message.as_bytes());
    W::field_begin(out, Ty::I32, 2, 1);
    W::i32(out, kind as i32);
    W::field_stop(out);
}
