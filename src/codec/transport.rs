//! Transport detection, frames and message boundaries. (Being written.)
use bytes::Bytes;

use super::{AppExceptionKind, DecodeError, Incoming, Protocol, Reply, Transport};

/// Tells transport and protocol apart from a connection's first bytes.
///
/// `Ok(None)`: not enough bytes yet to tell. Framed messages start with a 4-byte length whose
/// first byte is below 0x80 for any frame the server accepts, then a binary (`0x80 0x01`) or
/// compact (`0x82`) header; unframed ones start with the header itself.
pub fn detect(prefix: &[u8]) -> Result<Option<(Transport, Protocol)>, DecodeError> {
    let _ = prefix;
    todo!()
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
    let _ = (buf, transport, protocol, limit);
    todo!()
}

/// Appends `reply` as one REPLY message (with its frame header for [`Transport::Framed`]).
pub fn encode_reply(out: &mut Vec<u8>, transport: Transport, protocol: Protocol, reply: &Reply) {
    let _ = (out, transport, protocol, reply);
    todo!()
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
    let _ = (out, transport, protocol, name, seqid, kind, message);
    todo!()
}
