//! The one error type of the crate.
//!
//! Every failure carries a [`ErrorKind`] that says what went wrong in terms a client can act
//! on, which side failed ([`Side`]), and whether the operation may have taken effect. The
//! mapping from an [`Error`] to what a Thrift client sees lives in exactly one place:
//! [`crate::service::client_failure`].

use std::fmt;
use std::sync::Arc;

/// What went wrong, in terms a client or an operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The key is not stored (`get`, `getList`).
    NoSuchKey,
    /// The bucket is not served by this server.
    NoSuchBucket,
    /// The client sent something the server does not accept; nothing was changed.
    InvalidArgument,
    /// The key's partition cannot take writes now (its master is down); nothing was attempted.
    ReadOnly,
    /// The store could not be reached or refused for a transient reason; nothing happened.
    Unavailable,
    /// A write was sent but the connection died before its answer: it may or may not have happened.
    OutcomeUnknown,
    /// A read was refused because the copy that could serve it has not applied writes it must
    /// show (`FAILOVER_READS = consistent`, or a read token); nothing was read.
    Behind,
    /// A malformed or oversize Thrift message.
    Protocol,
    /// The configuration is wrong; the message names the key.
    Config,
    /// A bug or an unexpected state in this server or its store.
    Internal,
}

/// Which side of the server a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Client,
    /// A store host (SQLite file, MariaDB server) failed.
    Store,
    /// This server itself.
    Server,
}

impl ErrorKind {
    /// Which side failed.
    pub fn side(self) -> Side {
        match self {
            ErrorKind::NoSuchKey
            | ErrorKind::NoSuchBucket
            | ErrorKind::InvalidArgument
            | ErrorKind::Protocol => Side::Client,
            ErrorKind::ReadOnly
            | ErrorKind::Unavailable
            | ErrorKind::OutcomeUnknown
            | ErrorKind::Behind => Side::Store,
            ErrorKind::Config | ErrorKind::Internal => Side::Server,
        }
    }

    /// True when the operation certainly did not take effect, so retrying it is safe.
    pub fn retry_safe(self) -> bool {
        matches!(
            self,
            ErrorKind::ReadOnly | ErrorKind::Unavailable | ErrorKind::Behind
        )
    }

    /// A short stable name, used in logs and in the `what` text clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoSuchKey => "no such key",
            ErrorKind::NoSuchBucket => "no such bucket",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::ReadOnly => "read-only",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::OutcomeUnknown => "outcome unknown",
            ErrorKind::Behind => "behind",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Config => "configuration error",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error: its kind, what failed, the context it was seen in, and its cause.
///
/// Context is added on the way up without re-creating the error, so the kind and the cause
/// (a MySQL error number, say) stay readable however much is added (as pingora-error does).
/// It reads `outer context: inner context: message: cause; note; note`: [`Error::context`]
/// says where the failure was met, [`Error::note`] what it means for the caller ("the directory
/// is unchanged"). Cloning shares the cause, so one statement's failure can be every batch
/// element's.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// Innermost first.
    context: Vec<String>,
    notes: Vec<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    /// The partition the failure belongs to, for summaries of repeated failures.
    partition: Option<u64>,
    /// The request was routed by a directory that no longer holds: see [`Error::moved`].
    moved: bool,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message for humans.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            notes: Vec::new(),
            source: None,
            partition: None,
            moved: false,
        }
    }

    /// Tags the error with the partition it belongs to.
    pub fn with_partition(mut self, id: u64) -> Self {
        self.partition = Some(id);
        self
    }

    /// The partition the error belongs to, when it is one partition's.
    pub fn partition(&self) -> Option<u64> {
        self.partition
    }

    /// Marks the error as met at a partition's old home: its table is fenced or gone because
    /// the directory is moving it elsewhere. Nothing happened; the request may be routed again
    /// once the directory has changed (the MySQL store does so itself, for a while).
    pub fn moved(mut self) -> Self {
        self.moved = true;
        self
    }

    /// True when the error was met at a partition's old home ([`Error::moved`]).
    pub fn is_moved(&self) -> bool {
        self.moved
    }

    /// Attaches the lower-level cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Adds where the error happened, in front of what is there; kind and cause are kept.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.context.push(context.to_string());
        self
    }

    /// Adds what the failure means for the caller, after everything else.
    pub fn note(mut self, note: impl fmt::Display) -> Self {
        self.notes.push(note.to_string());
        self
    }

    /// The same error, of another kind (a connection failure that sent nothing is
    /// `Unavailable` whatever the statement would have done).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without context, cause or notes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The chain of causes below this error, nearest first.
    pub fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let first = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        std::iter::successors(first, |e| e.source())
    }

    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Shorthand for [`ErrorKind::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for context in self.context.iter().rev() {
            write!(f, "{context}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        for note in &self.notes {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages never hold secrets: config errors name keys, not values of password keys.
        write!(f, "Error({:?}: {self})", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Internal, "I/O error").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_context_and_source() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::new(ErrorKind::Unavailable, "reading bucket data")
            .with_source(io)
            .context("get");
        assert_eq!(e.to_string(), "get: reading bucket data: disk on fire");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.kind().retry_safe());
        assert_eq!(e.kind().side(), Side::Store);
    }

    #[test]
    fn context_and_notes_keep_kind_and_cause() {
        let io = std::io::Error::other("refused");
        let e = Error::new(ErrorKind::Unavailable, "connecting to db1:3306")
            .with_source(io)
            .context("loading the directory")
            .context("create-tablename")
            .note("the directory is unchanged");
        assert_eq!(
            e.to_string(),
            "create-tablename: loading the directory: connecting to db1:3306: refused; \
             the directory is unchanged"
        );
        assert_eq!(e.message(), "connecting to db1:3306");
        assert_eq!(e.causes().count(), 1);
        let clone = e.clone().with_kind(ErrorKind::Internal);
        assert_eq!(clone.kind(), ErrorKind::Internal);
        assert_eq!(clone.to_string(), e.to_string());
    }

    #[test]
    fn only_unattempted_failures_are_retry_safe() {
        assert!(!ErrorKind::OutcomeUnknown.retry_safe());
        assert!(!ErrorKind::Internal.retry_safe());
        assert!(ErrorKind::ReadOnly.retry_safe());
    }
}
