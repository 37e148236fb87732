//! TCompactProtocol: varints, zigzag-encoded signed integers, field ids as deltas from the
//! previous field, booleans folded into the field header.
//!
//! Message header: `0x82`, `version 1 | type << 5`, seqid as an unsigned varint, name length
//! as an unsigned varint, name. Follows the Apache Thrift compact protocol spec, including
//! both element type codes (1 and 2) for booleans in collections.

use bytes::Bytes;

use super::proto::{
    check_count, wire_len, MessageHeader, ProtoRead, ProtoWrite, ReadError, ReadResult, Reader, Ty,
};

pub(super) const PROTOCOL_ID: u8 = 0x82;
const VERSION: u8 = 1;
const VERSION_MASK: u8 = 0x1f;

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;

fn ty_from_u8(b: u8) -> ReadResult<Ty> {
    Ok(match b {
        // 1 is what most implementations write for a boolean element type, 2 what the spec
        // first said; readers accept both.
        BOOL_TRUE | BOOL_FALSE => Ty::Bool,
        3 => Ty::Byte,
        4 => Ty::I16,
        5 => Ty::I32,
        6 => Ty::I64,
        7 => Ty::Double,
        8 => Ty::Binary,
        9 => Ty::List,
        10 => Ty::Set,
        11 => Ty::Map,
        12 => Ty::Struct,
        13 => Ty::Uuid,
        _ => return Err(ReadError::malformed(format!("unknown compact type id {b}"))),
    })
}

fn ty_to_u8(ty: Ty) -> u8 {
    match ty {
        Ty::Bool => BOOL_TRUE,
        Ty::Byte => 3,
        Ty::I16 => 4,
        Ty::I32 => 5,
        Ty::I64 => 6,
        Ty::Double => 7,
        Ty::Binary => 8,
        Ty::List => 9,
        Ty::Set => 10,
        Ty::Map => 11,
        Ty::Struct => 12,
        Ty::Uuid => 13,
    }
}

#[inline]
fn zigzag_i32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the compact protocol.
pub(super) struct CompactReader<'a> {
    r: Reader<'a>,
    /// A boolean field's value came in its header: the next skip of a bool reads nothing.
    bool_in_header: bool,
}

impl CompactReader<'_> {
    /// An unsigned varint of at most `max_bytes` bytes and 64 bits.
    #[inline]
    fn varint(&mut self, max_bytes: u32) -> ReadResult<u64> {
        let mut v = 0u64;
        for i in 0..max_bytes {
            let b = self.r.u8()?;
            if i == 9 && b > 1 {
                return Err(ReadError::malformed("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ReadError::malformed("varint too long"))
    }

    fn varint_u32(&mut self) -> ReadResult<u32> {
        let v = self.varint(5)?;
        u32::try_from(v).map_err(|_| ReadError::malformed("varint overflows 32 bits"))
    }

    fn i16(&mut self) -> ReadResult<i16> {
        let v = unzigzag(u64::from(self.varint_u32()?));
        i16::try_from(v).map_err(|_| ReadError::malformed(format!("i16 out of range: {v}")))
    }

    /// A length or size: an unsigned varint that Thrift's i32 must hold.
    fn len(&mut self, what: &'static str) -> ReadResult<usize> {
        let v = self.varint_u32()?;
        if v > i32::MAX as u32 {
            return Err(ReadError::malformed(format!(
                "negative {what} {}",
                v as i32
            )));
        }
        Ok(v as usize)
    }
}

impl<'a> ProtoRead<'a> for CompactReader<'a> {
    fn new(reader: Reader<'a>) -> Self {
        CompactReader {
            r: reader,
            bool_in_header: false,
        }
    }

    fn reader(&self) -> &Reader<'a> {
        &self.r
    }

    fn reader_mut(&mut self) -> &mut Reader<'a> {
        &mut self.r
    }

    fn message_begin(&mut self) -> ReadResult<MessageHeader> {
        let [id, version_and_type] = self.r.array::<2>()?;
        if id != PROTOCOL_ID {
            return Err(ReadError::malformed(format!(
                "bad compact protocol id {id:#04x}"
            )));
        }
        if version_and_type & VERSION_MASK != VERSION {
            return Err(ReadError::malformed(format!(
                "bad compact protocol version {}",
                version_and_type & VERSION_MASK
            )));
        }
        // Written as the u32 of the i32, not zigzagged.
        let seqid = self.varint_u32()? as i32;
        let name = self.binary()?;
        Ok(MessageHeader {
            name,
            kind: version_and_type >> 5,
            seqid,
        })
    }

    #[inline]
    fn field_begin(&mut self, prev: i16) -> ReadResult<Option<(Ty, i16)>> {
        let b = self.r.u8()?;
        let t = b & 0x0f;
        if t == 0 {
            return Ok(None);
        }
        let ty = ty_from_u8(t)?;
        self.bool_in_header = ty == Ty::Bool;
        let delta = b >> 4;
        let id = if delta == 0 {
            self.i16()?
        } else {
            prev.checked_add(i16::from(delta))
                .ok_or_else(|| ReadError::malformed("field id overflows i16"))?
        };
        Ok(Some((ty, id)))
    }

    #[inline]
    fn i32(&mut self) -> ReadResult<i32> {
        let v = unzigzag(u64::from(self.varint_u32()?));
        // A zigzagged u32 always decodes into i32's range.
        Ok(v as i32)
    }

    #[inline]
    fn binary(&mut self) -> ReadResult<Bytes> {
        let n = self.len("string length")?;
        self.r.slice(n)
    }

    fn list_begin(&mut self) -> ReadResult<(Ty, usize)> {
        let header = self.r.u8()?;
        let ety = ty_from_u8(header & 0x0f)?;
        let n = match header >> 4 {
            15 => self.len("collection size")?,
            short => usize::from(short),
        };
        Ok((ety, check_count(&self.r, n, Self::min_size(ety))?))
    }

    fn map_begin(&mut self) -> ReadResult<(Ty, Ty, usize)> {
        let n = self.len("map size")?;
        if n == 0 {
            // An empty map has no type byte.
            return Ok((Ty::Byte, Ty::Byte, 0));
        }
        let types = self.r.u8()?;
        let kty = ty_from_u8(types >> 4)?;
        let vty = ty_from_u8(types & 0x0f)?;
        let n = check_count(&self.r, n, Self::min_size(kty) + Self::min_size(vty))?;
        Ok((kty, vty, n))
    }

    fn skip_scalar(&mut self, ty: Ty) -> ReadResult<()> {
        match ty {
            Ty::Bool if std::mem::take(&mut self.bool_in_header) => Ok(()),
            Ty::Bool | Ty::Byte => self.r.advance(1),
            Ty::I16 => self.i16().map(drop),
            Ty::I32 => self.varint_u32().map(drop),
            Ty::I64 => self.varint(10).map(drop),
            Ty::Double => self.r.advance(8),
            Ty::Uuid => self.r.advance(16),
            Ty::Binary => {
                let n = self.len("string length")?;
                self.r.advance(n)
            }
            Ty::Struct | Ty::Map | Ty::Set | Ty::List => {
                Err(ReadError::malformed("container skipped as a scalar"))
            }
        }
    }

    fn fixed_size(ty: Ty) -> Option<usize> {
        match ty {
            // Only as collection elements: a boolean field's value is in its header, and
            // skip_scalar handles that.
            Ty::Bool | Ty::Byte => Some(1),
            Ty::Double => Some(8),
            Ty::Uuid => Some(16),
            _ => None,
        }
    }

    fn min_size(ty: Ty) -> usize {
        Self::fixed_size(ty).unwrap_or(1)
    }
}

/// Writes the compact protocol.
pub(super) struct CompactWriter;

impl ProtoWrite for CompactWriter {
    fn message_begin(out: &mut Vec<u8>, name: &[u8], kind: u8, seqid: i32) {
        out.extend_from_slice(&[PROTOCOL_ID, (kind << 5) | VERSION]);
        put_varint(out, seqid as u32);
        Self::binary(out, name);
    }

    #[inline]
    fn field_begin(out: &mut Vec<u8>, ty: Ty, id: i16, prev: i16) {
        let t = ty_to_u8(ty);
        // Same choice of short form as the reference writers.
        let delta = i32::from(id) - i32::from(prev);
        if (1..=14).contains(&delta) {
            out.push(((delta as u8) << 4) | t);
        } else {
            out.push(t);
            put_varint(out, zigzag_i32(i32::from(id)));
        }
    }

    #[inline]
    fn field_stop(out: &mut Vec<u8>) {
        out.push(0);
    }

    #[inline]
    fn i32(out: &mut Vec<u8>, v: i32) {
        put_varint(out, zigzag_i32(v));
    }

    #[inline]
    fn binary(out: &mut Vec<u8>, v: &[u8]) {
        put_varint(out, wire_len(v.len()) as u32);
        out.extend_from_slice(v);
    }

    fn list_begin(out: &mut Vec<u8>, ety: Ty, len: usize) {
        let len = wire_len(len) as u32;
        let t = ty_to_u8(ety);
        if len <= 14 {
            out.push(((len as u8) << 4) | t);
        } else {
            out.push(0xf0 | t);
            put_varint(out, len);
        }
    }
}
