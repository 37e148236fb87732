//! The Thrudoc API as Rust values: what a client asks ([`Call`]) and what it is told
//! ([`Reply`]). Field ids and types follow `idl/thrudoc.thrift`.

use bytes::Bytes;

/// The twelve methods of service `Thrudoc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    GetBuckets,
    Put,
    Get,
    Remove,
    Append,
    PutValue,
    Scan,
    PutList,
    GetList,
    RemoveList,
    PutValueList,
    Admin,
    WriteToken,
    GetAfter,
}

impl Method {
    /// Every method, in IDL order.
    pub const ALL: [Method; 14] = [
        Method::GetBuckets,
        Method::Put,
        Method::Get,
        Method::Remove,
        Method::Append,
        Method::PutValue,
        Method::Scan,
        Method::PutList,
        Method::GetList,
        Method::RemoveList,
        Method::PutValueList,
        Method::Admin,
        Method::WriteToken,
        Method::GetAfter,
    ];

    /// Its place in [`Method::ALL`], for per-method tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::GetBuckets => "getBuckets",
            Method::Put => "put",
            Method::Get => "get",
            Method::Remove => "remove",
            Method::Append => "append",
            Method::PutValue => "putValue",
            Method::Scan => "scan",
            Method::PutList => "putList",
            Method::GetList => "getList",
            Method::RemoveList => "removeList",
            Method::PutValueList => "putValueList",
            Method::Admin => "admin",
            Method::WriteToken => "writeToken",
            Method::GetAfter => "getAfter",
        }
    }

    /// The method named `name` on the wire, if any.
    pub fn from_name(name: &[u8]) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name().as_bytes() == name)
    }
}

/// `struct Element { 1: string bucket, 2: string key, 3: binary value }`. Absent fields decode
/// as empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub bucket: Bytes,
    pub key: Bytes,
    pub value: Bytes,
}

/// A decoded call with its arguments. Absent arguments decode as empty (strings) or 0 (count),
/// as the reference Thrift servers do; the service then rejects what is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    GetBuckets,
    Put {
        bucket: Bytes,
        key: Bytes,
        value: Bytes,
    },
    Get {
        bucket: Bytes,
        key: Bytes,
    },
    Remove {
        bucket: Bytes,
        key: Bytes,
    },
    Append {
        bucket: Bytes,
        key: Bytes,
        value: Bytes,
    },
    PutValue {
        bucket: Bytes,
        value: Bytes,
    },
    Scan {
        bucket: Bytes,
        seed: Bytes,
        count: i32,
    },
    PutList(Vec<Element>),
    GetList(Vec<Element>),
    RemoveList(Vec<Element>),
    PutValueList(Vec<Element>),
    Admin {
        op: Bytes,
        data: Bytes,
    },
    WriteToken,
    GetAfter {
        bucket: Bytes,
        key: Bytes,
        token: Bytes,
    },
}

impl Call {
    /// The method this call invokes.
    pub fn method(&self) -> Method {
        match self {
            Call::GetBuckets => Method::GetBuckets,
            Call::Put { .. } => Method::Put,
            Call::Get { .. } => Method::Get,
            Call::Remove { .. } => Method::Remove,
            Call::Append { .. } => Method::Append,
            Call::PutValue { .. } => Method::PutValue,
            Call::Scan { .. } => Method::Scan,
            Call::PutList(_) => Method::PutList,
            Call::GetList(_) => Method::GetList,
            Call::RemoveList(_) => Method::RemoveList,
            Call::PutValueList(_) => Method::PutValueList,
            Call::Admin { .. } => Method::Admin,
            Call::WriteToken => Method::WriteToken,
            Call::GetAfter { .. } => Method::GetAfter,
        }
    }
}

/// What one decoded message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A call (message type CALL or ONEWAY) of a known method.
    Call {
        seqid: i32,
        call: Call,
        oneway: bool,
    },
    /// A well-formed message naming a method this service does not have; its arguments were
    /// skipped. Answer with [`AppExceptionKind::UnknownMethod`].
    UnknownMethod { name: Bytes, seqid: i32 },
    /// A message whose header was readable but whose type is not CALL/ONEWAY, or whose
    /// arguments have the wrong types. Answer with [`AppExceptionKind::InvalidMessageType`] or
    /// [`AppExceptionKind::ProtocolError`], then carry on (its end is known).
    Invalid {
        name: Bytes,
        seqid: i32,
        kind: AppExceptionKind,
        reason: String,
    },
}

/// `exception ThrudocException { 1: string what, 2: ExceptionType type, 3: optional i32 code }`.
///
/// `type_` is an `ExceptionType` of the original IDL (1 UNKNOWN, 2 NO_SUCH_KEY) and nothing
/// else, because strict clients of the original reject other values; `code` is the precise
/// `ErrorCode`, which only clients of the new IDL read. An empty `what` (and no `code`) means
/// success inside the batch methods' result lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireException {
    pub what: String,
    pub type_: i32,
    pub code: Option<i32>,
}

impl WireException {
    /// The per-element success of the batch methods' result lists.
    pub fn success() -> Self {
        WireException {
            what: String::new(),
            type_: 1,
            code: None,
        }
    }
}

/// `struct ListResponse { 1: Element element, 2: ThrudocException ex }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub element: Element,
    pub ex: WireException,
}

/// The body of a REPLY message: the `success` field (id 0) for each return type, or the
/// declared exception (field id 1, written again as -1 for clients of the original IDL; see
/// [`ReplyBody::Thrown`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// `void` methods: an empty result struct.
    Void,
    /// `list<string>` (getBuckets).
    Strings(Vec<Bytes>),
    /// `string`/`binary` (get, putValue, admin).
    Binary(Bytes),
    /// `ScanResponse`.
    Scan { elements: Vec<Element>, seed: Bytes },
    /// `list<ThrudocException>` (putList, removeList).
    Exceptions(Vec<WireException>),
    /// `list<ListResponse>` (getList, putValueList).
    ListResults(Vec<ListResult>),
    /// The method threw `ThrudocException`. It is written twice, as result field 1 (this IDL's
    /// `throws (1: ThrudocException e)`) and as field -1: the original IDL gave its `throws`
    /// clauses no field id, and Thrift compilers number such fields -1. Each client reads the
    /// id it knows and skips the other, as Thrift libraries skip every unknown field.
    Thrown(WireException),
}

/// A REPLY message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub method: Method,
    pub seqid: i32,
    pub body: ReplyBody,
}

/// `TApplicationException` types (thrift's `TApplicationException::TApplicationExceptionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppExceptionKind {
    Unknown = 0,
    UnknownMethod = 1,
    InvalidMessageType = 2,
    WrongMethodName = 3,
    BadSequenceId = 4,
    MissingResult = 5,
    InternalError = 6,
    ProtocolError = 7,
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn each_method_indexes_its_place_in_all() {
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(m.index(), i, "{}", m.name());
        }
    }
}
