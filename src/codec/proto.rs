//! The interface both wire protocols implement, and the byte reader under them.
//!
//! [`Reader`] walks a received buffer and hands out strings as [`Bytes`] slices of it, so
//! decoding copies no payload. It also decides what running out of bytes means: inside a
//! complete frame the message is broken ([`ReadError::Eof`]); in an unframed stream more
//! bytes may still come ([`ReadError::Incomplete`]), unless the message would then exceed the
//! limit ([`ReadError::TooLarge`]).
//!
//! [`ProtoRead`] and [`ProtoWrite`] are implemented by `binary` and `compact`; the message
//! code in `calls` is generic over them, so each protocol gets its own monomorphised decoder
//! with no dynamic dispatch.

use std::borrow::Cow;

use bytes::Bytes;

/// How deeply values may nest inside a skipped field, as in the reference implementations.
pub(super) const MAX_SKIP_DEPTH: u32 = 64;

/// Thrift's value types, independent of how a protocol numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Byte,
    I16,
    I32,
    I64,
    Double,
    /// `string` and `binary`, which share one encoding.
    Binary,
    Struct,
    Map,
    Set,
    List,
    Uuid,
}

/// Message types of the message header.
pub(super) const CALL: u8 = 1;
pub(super) const REPLY: u8 = 2;
pub(super) const EXCEPTION: u8 = 3;
pub(super) const ONEWAY: u8 = 4;

/// Why a read failed, before the transport turns it into a [`super::DecodeError`] or an
/// [`super::Incoming::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadError {
    /// Unframed: the buffer ends before the message does.
    Incomplete,
    /// Unframed: the message needs at least this many bytes, more than the limit.
    TooLarge(u64),
    /// Framed: the frame ends before the message does.
    Eof,
    /// Bytes no Thrift writer produces.
    Malformed(Cow<'static, str>),
}

impl ReadError {
    pub(super) fn malformed(why: impl Into<Cow<'static, str>>) -> ReadError {
        ReadError::Malformed(why.into())
    }
}

pub(super) type ReadResult<T> = Result<T, ReadError>;

/// A position in a received buffer, with the rules for what lies beyond its end.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    /// Exclusive end of the bytes this message may use.
    end: usize,
    /// `None` when framed: `end` is the frame's end. `Some(limit)` when unframed: `end` is
    /// `min(buf.len(), limit)` and bytes beyond it may not have arrived yet.
    limit: Option<usize>,
}

impl<'a> Reader<'a> {
    /// A reader of the frame `buf[start..end]`.
    pub(super) fn framed(buf: &'a Bytes, start: usize, end: usize) -> Reader<'a> {
        debug_assert!(start <= end && end <= buf.len());
        Reader {
            buf,
            pos: start,
            end,
            limit: None,
        }
    }

    /// A reader of an unframed message starting at `buf[0]` that may take up to `limit` bytes.
    pub(super) fn unframed(buf: &'a Bytes, limit: usize) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            end: buf.len().min(limit),
            limit: Some(limit),
        }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left before the end (of the frame, or of what has arrived so far).
    pub(super) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Succeeds if `n` more bytes are at hand; otherwise says why not.
    #[inline]
    pub(super) fn need(&self, n: usize) -> ReadResult<()> {
        if n <= self.end - self.pos {
            Ok(())
        } else {
            Err(self.short_of(n))
        }
    }

    #[cold]
    fn short_of(&self, n: usize) -> ReadError {
        match self.limit {
            None => ReadError::Eof,
            Some(limit) => {
                let wanted = self.pos as u64 + n as u64;
                if wanted > limit as u64 {
                    ReadError::TooLarge(wanted)
                } else {
                    ReadError::Incomplete
                }
            }
        }
    }

    #[inline]
    pub(super) fn u8(&mut self) -> ReadResult<u8> {
        self.need(1)?;
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(super) fn array<const N: usize>(&mut self) -> ReadResult<[u8; N]> {
        self.need(N)?;
        let mut a = [0; N];
        a.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(a)
    }

    /// The next `n` bytes, sharing the buffer's memory.
    #[inline]
    pub(super) fn slice(&mut self, n: usize) -> ReadResult<Bytes> {
        self.need(n)?;
        let s = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub(super) fn advance(&mut self, n: usize) -> ReadResult<()> {
        self.need(n)?;
        self.pos += n;
        Ok(())
    }
}

/// A message header as read, before its type or name is judged.
#[derive(Debug)]
pub(super) struct MessageHeader {
    pub(super) name: Bytes,
    pub(super) kind: u8,
    pub(super) seqid: i32,
}

/// Decoding primitives of one protocol. Strings are slices of the input.
pub(super) trait ProtoRead<'a>: Sized {
    fn new(reader: Reader<'a>) -> Self;
    fn reader(&self) -> &Reader<'a>;
    fn reader_mut(&mut self) -> &mut Reader<'a>;

    fn message_begin(&mut self) -> ReadResult<MessageHeader>;
    /// The next field's type and id, or `None` at the struct's stop byte. `prev` is the id of
    /// the struct's previous field (0 before the first), which compact ids are relative to.
    fn field_begin(&mut self, prev: i16) -> ReadResult<Option<(Ty, i16)>>;
    fn i32(&mut self) -> ReadResult<i32>;
    fn binary(&mut self) -> ReadResult<Bytes>;
    /// Element type and size of a list or set. The size is already checked against the bytes
    /// (and limit) at hand, so it may size an allocation.
    fn list_begin(&mut self) -> ReadResult<(Ty, usize)>;
    /// Key type, value type and size of a map, checked like [`ProtoRead::list_begin`].
    fn map_begin(&mut self) -> ReadResult<(Ty, Ty, usize)>;
    /// Skips one value of a type that holds no other values (not struct, map, set or list).
    fn skip_scalar(&mut self, ty: Ty) -> ReadResult<()>;
    /// The encoded size of every value of `ty`, if it is fixed.
    fn fixed_size(ty: Ty) -> Option<usize>;
    /// The fewest bytes a value of `ty` can take.
    fn min_size(ty: Ty) -> usize;

    /// Skips one value of type `ty`, nested at most `depth` levels deep.
    fn skip(&mut self, ty: Ty, depth: u32) -> ReadResult<()> {
        if depth == 0 {
            return Err(ReadError::malformed("values nested too deeply"));
        }
        match ty {
            Ty::Struct => {
                let mut prev = 0;
                while let Some((fty, id)) = self.field_begin(prev)? {
                    prev = id;
                    self.skip(fty, depth - 1)?;
                }
                Ok(())
            }
            Ty::List | Ty::Set => {
                let (ety, n) = self.list_begin()?;
                self.skip_n(ety, n, depth)
            }
            Ty::Map => {
                let (kty, vty, n) = self.map_begin()?;
                match (Self::fixed_size(kty), Self::fixed_size(vty)) {
                    // list_begin/map_begin checked n * size against the bytes at hand.
                    (Some(k), Some(v)) => self.skip_bytes(n * (k + v)),
                    _ => {
                        for _ in 0..n {
                            self.skip(kty, depth - 1)?;
                            self.skip(vty, depth - 1)?;
                        }
                        Ok(())
                    }
                }
            }
            _ => self.skip_scalar(ty),
        }
    }

    /// Skips `n` elements of a list or set.
    fn skip_n(&mut self, ety: Ty, n: usize, depth: u32) -> ReadResult<()> {
        match Self::fixed_size(ety) {
            Some(size) => self.skip_bytes(n * size),
            None => {
                for _ in 0..n {
                    self.skip(ety, depth - 1)?;
                }
                Ok(())
            }
        }
    }

    fn skip_bytes(&mut self, n: usize) -> ReadResult<()> {
        self.reader_mut().advance(n)
    }
}

/// Encoding primitives of one protocol, appending to a `Vec<u8>`. Stateless: the caller
/// passes what compact field headers are relative to.
pub(super) trait ProtoWrite {
    fn message_begin(out: &mut Vec<u8>, name: &[u8], kind: u8, seqid: i32);
    /// Field `id` of type `ty`, following field `prev` of the same struct (0 if first).
    fn field_begin(out: &mut Vec<u8>, ty: Ty, id: i16, prev: i16);
    fn field_stop(out: &mut Vec<u8>);
    fn i32(out: &mut Vec<u8>, v: i32);
    fn binary(out: &mut Vec<u8>, v: &[u8]);
    fn list_begin(out: &mut Vec<u8>, ety: Ty, len: usize);
}

/// A length or size as the i32 both protocols carry.
///
/// # Panics
///
/// If `len` exceeds `i32::MAX`: Thrift cannot express it, and writing a wrong length would
/// corrupt the rest of the connection. The service bounds every value far below this.
#[inline]
pub(super) fn wire_len(len: usize) -> i32 {
    i32::try_from(len).expect("Thrift lengths are at most i32::MAX")
}

/// Checks that `n` values of at least `min` bytes each can be at hand, returning `n`.
#[inline]
pub(super) fn check_count(r: &Reader<'_>, n: usize, min: usize) -> ReadResult<usize> {
    r.need(n.saturating_mul(min))?;
    Ok(n)
}
