//! The Thrift codec: bytes in, [`Incoming`] calls out; [`Reply`]s in, bytes out. No I/O here.
//!
//! The server decodes straight from the connection's buffer: strings and values are
//! [`bytes::Bytes`] slices of the received frame, so a value is never copied between the socket and
//! the store. Both Thrift protocols are spoken ([`Protocol::Binary`], strict version, and
//! [`Protocol::Compact`]) over both transports ([`Transport::Framed`] and
//! [`Transport::Unframed`], i.e. buffered); [`detect`] tells them apart from a connection's
//! first bytes.
//!
//! Decoding never panics and never trusts a length: every length is checked against the bytes
//! at hand and against the message limit before anything is allocated.
//!
//! - [`message`]: the Thrudoc calls and replies as Rust values.
//! - [`transport`]: detection, frames and message boundaries.
//! - `binary`, `compact`: the two wire protocols behind one reader/writer interface (`proto`).
//! - `calls`: the service's argument and result structs, over either protocol.

mod binary;
mod calls;
mod compact;
pub mod message;
mod proto;
pub mod transport;

#[cfg(test)]
mod tests;

pub use message::{
    AppExceptionKind, Call, Element, Incoming, ListResult, Method, Reply, ReplyBody, WireException,
};
pub use transport::{decode_message, detect, encode_app_exception, encode_reply};

use std::fmt;

/// Most elements a decoded `list<Element>` may hold; longer lists are skipped and the call is
/// answered with a protocol error. `MAX_BATCH_SIZE` cannot be set above it.
pub const MAX_LIST_ELEMENTS: usize = 100_000;

/// A Thrift protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TBinaryProtocol, strict (versioned) message headers.
    Binary,
    /// TCompactProtocol.
    Compact,
}

/// A Thrift transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TFramedTransport: each message preceded by its length as a 4-byte big-endian integer.
    Framed,
    /// TBufferedTransport (unframed): messages follow each other with no length prefix.
    Unframed,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Binary => "binary",
            Protocol::Compact => "compact",
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Framed => "framed",
            Transport::Unframed => "unframed",
        })
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the message does: read more and try again. `needed` is how many
    /// more bytes the message takes when its frame says so, `None` when nothing says.
    Incomplete { needed: Option<usize> },
    /// The bytes are not a Thrift message this server accepts; the connection cannot go on.
    Malformed(String),
    /// The message (or a frame, or a length inside it) is larger than the configured limit.
    TooLarge { size: u64, limit: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { .. } => f.write_str("message incomplete"),
            DecodeError::Malformed(why) => write!(f, "malformed message: {why}"),
            DecodeError::TooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}
