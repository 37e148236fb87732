//! Transport detection, frames and message boundaries.
//!
//! A framed message is judged by its 4-byte length before anything else, so an oversized or
//! nonsensical frame is refused before it is buffered. Inside a complete frame the message's
//! end is known, so broken arguments become an [`Incoming::Invalid`] the server can answer
//! and carry on from. An unframed message's end is only known once it has been decoded, so
//! there any malformed byte ends the connection.

use bytes::Bytes;

use super::binary::{BinaryReader, BinaryWriter};
use super::calls::{read_message, write_app_exception, write_reply, MessageError};
use super::compact::{CompactReader, CompactWriter, PROTOCOL_ID as COMPACT_ID};
use super::proto::{wire_len, ProtoRead, ReadError, Reader};
use super::{AppExceptionKind, DecodeError, Incoming, Protocol, Reply, Transport};

const BINARY_ID: u8 = 0x80;
const FRAME_HEADER: usize = 4;

/// Tells transport and protocol apart from a connection's first bytes.
///
/// `Ok(None)`: not enough bytes yet to tell. Framed messages start with a 4-byte length whose
/// first byte is below 0x80 for any frame the server accepts, then a binary (`0x80 0x01`) or
/// compact (`0x82`) header; unframed ones start with the header itself.
pub fn detect(prefix: &[u8]) -> Result<Option<(Transport, Protocol)>, DecodeError> {
    let protocol = |b: u8| match b {
        BINARY_ID => Some(Protocol::Binary),
        COMPACT_ID => Some(Protocol::Compact),
        _ => None,
    };
    let Some(&first) = prefix.first() else {
        return Ok(None);
    };
    if let Some(p) = protocol(first) {
        return Ok(Some((Transport::Unframed, p)));
    }
    if first >= 0x80 {
        // Neither header, nor the length of a frame (it would be negative).
        return Err(DecodeError::Malformed(format!(
            "first byte {first:#04x} starts neither a Thrift message nor a frame"
        )));
    }
    let Some(&fifth) = prefix.get(FRAME_HEADER) else {
        return Ok(None);
    };
    match protocol(fifth) {
        Some(p) => Ok(Some((Transport::Framed, p))),
        None => Err(DecodeError::Malformed(format!(
            "byte {fifth:#04x} after a frame length starts no Thrift message"
        ))),
    }
}

/// Decodes the first message in `buf`, returning it and the number of bytes it took (for
/// [`Transport::Framed`], including the 4-byte length).
///
/// [`DecodeError::Incomplete`] when `buf` does not hold the whole message yet;
/// [`DecodeError::TooLarge`] as soon as a frame length, or any length inside the message,
/// shows that the message exceeds `limit` bytes, before any of it is buffered.
pub fn decode_message(
    buf: &Bytes,
    transport: Transport,
    protocol: Protocol,
    limit: usize,
) -> Result<(Incoming, usize), DecodeError> {
    match (transport, protocol) {
        (Transport::Framed, Protocol::Binary) => decode_framed::<BinaryReader>(buf, limit),
        (Transport::Framed, Protocol::Compact) => decode_framed::<CompactReader>(buf, limit),
        (Transport::Unframed, Protocol::Binary) => decode_unframed::<BinaryReader>(buf, limit),
        (Transport::Unframed, Protocol::Compact) => decode_unframed::<CompactReader>(buf, limit),
    }
}

fn decode_framed<'a, P: ProtoRead<'a>>(
    buf: &'a Bytes,
    limit: usize,
) -> Result<(Incoming, usize), DecodeError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER>() else {
        return Err(DecodeError::Incomplete { needed: None });
    };
    let len = i32::from_be_bytes(*header);
    if len <= 0 {
        return Err(DecodeError::Malformed(format!("frame length {len}")));
    }
    if len as u64 > limit as u64 {
        return Err(DecodeError::TooLarge {
            size: len as u64,
            limit,
        });
    }
    let end = FRAME_HEADER + len as usize;
    if buf.len() < end {
        return Err(DecodeError::Incomplete {
            needed: Some(end - buf.len()),
        });
    }
    let mut p = P::new(Reader::framed(buf, FRAME_HEADER, end));
    match read_message(&mut p) {
        Ok(incoming) => match p.reader().remaining() {
            0 => Ok((incoming, end)),
            n => Err(DecodeError::Malformed(format!(
                "{n} bytes after the message in its frame"
            ))),
        },
        Err(MessageError::Header(e)) => Err(DecodeError::Malformed(match e {
            ReadError::Malformed(why) => why.into_owned(),
            _ => "frame ends inside the message header".to_owned(),
        })),
        // The frame says where the message ends: answer it and go on with the next.
        Err(MessageError::Args(name, seqid, e)) => Ok((
            Incoming::Invalid {
                name,
                seqid,
                kind: AppExceptionKind::ProtocolError,
                reason: match e {
                    ReadError::Malformed(why) => why.into_owned(),
                    _ => "frame ends inside the arguments".to_owned(),
                },
            },
            end,
        )),
    }
}

fn decode_unframed<'a, P: ProtoRead<'a>>(
    buf: &'a Bytes,
    limit: usize,
) -> Result<(Incoming, usize), DecodeError> {
    let mut p = P::new(Reader::unframed(buf, limit));
    let err = match read_message(&mut p) {
        Ok(incoming) => return Ok((incoming, p.reader().pos())),
        Err(MessageError::Header(e) | MessageError::Args(_, _, e)) => e,
    };
    Err(match err {
        ReadError::Incomplete => DecodeError::Incomplete { needed: None },
        ReadError::TooLarge(size) => DecodeError::TooLarge { size, limit },
        ReadError::Malformed(why) => DecodeError::Malformed(why.into_owned()),
        // An unframed reader has no frame to run out of.
        ReadError::Eof => DecodeError::Incomplete { needed: None },
    })
}

/// Runs `write`, inside a frame for [`Transport::Framed`].
fn framed(out: &mut Vec<u8>, transport: Transport, write: impl FnOnce(&mut Vec<u8>)) {
    match transport {
        Transport::Unframed => write(out),
        Transport::Framed => {
            // Reserve the length and patch it in afterwards: the body is written only once.
            let start = out.len();
            out.extend_from_slice(&[0; FRAME_HEADER]);
            write(out);
            let len = wire_len(out.len() - start - FRAME_HEADER);
            out[start..start + FRAME_HEADER].copy_from_slice(&len.to_be_bytes());
        }
    }
}

/// Appends `reply` as one REPLY message (with its frame header for [`Transport::Framed`]).
pub fn encode_reply(out: &mut Vec<u8>, transport: Transport, protocol: Protocol, reply: &Reply) {
    framed(out, transport, |out| match protocol {
        Protocol::Binary => write_reply::<BinaryWriter>(out, reply),
        Protocol::Compact => write_reply::<CompactWriter>(out, reply),
    });
}

/// Appends a `TApplicationException` as an EXCEPTION message answering method `name`.
pub fn encode_app_exception(
    out: &mut Vec<u8>,
    transport: Transport,
    protocol: Protocol,
    name: &[u8],
    seqid: i32,
    kind: AppExceptionKind,
    message: &str,
) {
    framed(out, transport, |out| match protocol {
        Protocol::Binary => write_app_exception::<BinaryWriter>(out, name, seqid, kind, message),
        Protocol::Compact => write_app_exception::<CompactWriter>(out, name, seqid, kind, message),
    });
}
