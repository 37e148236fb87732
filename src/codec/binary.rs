//! TBinaryProtocol, strict version: big-endian fixed-width integers, i32 lengths, a type byte
//! and an i16 id per field.
//!
//! Message header: `0x80 0x01 <ignored> <type>`, i32 name length, name, i32 seqid. The third
//! byte is masked off as the reference implementations do.

use bytes::Bytes;

use super::proto::{
    check_count, wire_len, MessageHeader, ProtoRead, ProtoWrite, ReadError, ReadResult, Reader, Ty,
};

const VERSION_1: [u8; 2] = [0x80, 0x01];

fn ty_from_u8(b: u8) -> ReadResult<Ty> {
    Ok(match b {
        2 => Ty::Bool,
        3 => Ty::Byte,
        4 => Ty::Double,
        6 => Ty::I16,
        8 => Ty::I32,
        10 => Ty::I64,
        11 => Ty::Binary,
        12 => Ty::Struct,
        13 => Ty::Map,
        14 => Ty::Set,
        15 => Ty::List,
        16 => Ty::Uuid,
        _ => return Err(ReadError::malformed(format!("unknown binary type id {b}"))),
    })
}

fn ty_to_u8(ty: Ty) -> u8 {
    match ty {
        Ty::Bool => 2,
        Ty::Byte => 3,
        Ty::Double => 4,
        Ty::I16 => 6,
        Ty::I32 => 8,
        Ty::I64 => 10,
        Ty::Binary => 11,
        Ty::Struct => 12,
        Ty::Map => 13,
        Ty::Set => 14,
        Ty::List => 15,
        Ty::Uuid => 16,
    }
}

/// Reads the binary protocol.
pub(super) struct BinaryReader<'a> {
    r: Reader<'a>,
}

impl BinaryReader<'_> {
    /// A non-negative i32 length or size.
    fn len(&mut self, what: &'static str) -> ReadResult<usize> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| ReadError::malformed(format!("negative {what} {n}")))
    }
}

impl<'a> ProtoRead<'a> for BinaryReader<'a> {
    fn new(reader: Reader<'a>) -> Self {
        BinaryReader { r: reader }
    }

    fn reader(&self) -> &Reader<'a> {
        &self.r
    }

    fn reader_mut(&mut self) -> &mut Reader<'a> {
        &mut self.r
    }

    fn message_begin(&mut self) -> ReadResult<MessageHeader> {
        let [v0, v1, _, kind] = self.r.array::<4>()?;
        if [v0, v1] != VERSION_1 {
            return Err(ReadError::malformed(format!(
                "bad binary protocol version bytes {v0:#04x} {v1:#04x}"
            )));
        }
        let name = self.binary()?;
        let seqid = self.i32()?;
        Ok(MessageHeader { name, kind, seqid })
    }

    #[inline]
    fn field_begin(&mut self, _prev: i16) -> ReadResult<Option<(Ty, i16)>> {
        let t = self.r.u8()?;
        if t == 0 {
            return Ok(None);
        }
        let ty = ty_from_u8(t)?;
        let id = i16::from_be_bytes(self.r.array()?);
        Ok(Some((ty, id)))
    }

    #[inline]
    fn i32(&mut self) -> ReadResult<i32> {
        Ok(i32::from_be_bytes(self.r.array()?))
    }

    #[inline]
    fn binary(&mut self) -> ReadResult<Bytes> {
        let n = self.len("string length")?;
        self.r.slice(n)
    }

    fn list_begin(&mut self) -> ReadResult<(Ty, usize)> {
        let ety = ty_from_u8(self.r.u8()?)?;
        let n = self.len("collection size")?;
        Ok((ety, check_count(&self.r, n, Self::min_size(ety))?))
    }

    fn map_begin(&mut self) -> ReadResult<(Ty, Ty, usize)> {
        let kty = ty_from_u8(self.r.u8()?)?;
        let vty = ty_from_u8(self.r.u8()?)?;
        let n = self.len("map size")?;
        let n = check_count(&self.r, n, Self::min_size(kty) + Self::min_size(vty))?;
        Ok((kty, vty, n))
    }

    fn skip_scalar(&mut self, ty: Ty) -> ReadResult<()> {
        match Self::fixed_size(ty) {
            Some(n) => self.r.advance(n),
            None => {
                let n = self.len("string length")?;
                self.r.advance(n)
            }
        }
    }

    fn fixed_size(ty: Ty) -> Option<usize> {
        match ty {
            Ty::Bool | Ty::Byte => Some(1),
            Ty::I16 => Some(2),
            Ty::I32 => Some(4),
            Ty::I64 | Ty::Double => Some(8),
            Ty::Uuid => Some(16),
            Ty::Binary | Ty::Struct | Ty::Map | Ty::Set | Ty::List => None,
        }
    }

    fn min_size(ty: Ty) -> usize {
        match ty {
            Ty::Binary => 4,
            Ty::Struct => 1,
            Ty::Map => 6,
            Ty::Set | Ty::List => 5,
            _ => Self::fixed_size(ty).unwrap_or(1),
        }
    }
}

/// Writes the binary protocol.
pub(super) struct BinaryWriter;

impl ProtoWrite for BinaryWriter {
    fn message_begin(out: &mut Vec<u8>, name: &[u8], kind: u8, seqid: i32) {
        out.extend_from_slice(&[VERSION_1[0], VERSION_1[1], 0, kind]);
        Self::binary(out, name);
        Self::i32(out, seqid);
    }

    #[inline]
    fn field_begin(out: &mut Vec<u8>, ty: Ty, id: i16, _prev: i16) {
        let [a, b] = id.to_be_bytes();
        out.extend_from_slice(&[ty_to_u8(ty), a, b]);
    }

    #[inline]
    fn field_stop(out: &mut Vec<u8>) {
        out.push(0);
    }

    #[inline]
    fn i32(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    #[inline]
    fn binary(out: &mut Vec<u8>, v: &[u8]) {
        Self::i32(out, wire_len(v.len()));
        out.extend_from_slice(v);
    }

    fn list_begin(out: &mut Vec<u8>, ety: Ty, len: usize) {
        out.push(ty_to_u8(ety));
        Self::i32(out, wire_len(len));
    }
}
