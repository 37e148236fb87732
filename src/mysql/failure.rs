//! What a MySQL failure means: MySQL's error numbers by name, the one classifier that sorts a
//! failure into a [`Class`] (the host gone, the statement rolled back, the host read-only,
//! ...), and the one deadline every connect and statement runs under.
//!
//! Failover decisions hang on the class: a lost connection marks a host DOWN, a rolled-back
//! statement may run again, a read-only host is fenced. Both the store and the admin tool
//! classify through [`Class::of`]; they differ only in what a class means to their caller
//! ([`Failure::for_service`], [`Failure::for_operator`]).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// MySQL/MariaDB server error numbers this crate acts on (`include/mysqld_error.h`).
pub mod code {
    pub const ER_CON_COUNT_ERROR: u16 = 1040;
    pub const ER_OUT_OF_RESOURCES: u16 = 1041;
    pub const ER_DBACCESS_DENIED_ERROR: u16 = 1044;
    pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
    pub const ER_BAD_NULL_ERROR: u16 = 1048;
    pub const ER_SERVER_SHUTDOWN: u16 = 1053;
    pub const ER_DUP_ENTRY: u16 = 1062;
    pub const ER_CANT_CREATE_THREAD: u16 = 1135;
    pub const ER_TABLEACCESS_DENIED_ERROR: u16 = 1142;
    pub const ER_NO_SUCH_TABLE: u16 = 1146;
    pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
    pub const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
    pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const ER_LOCK_DEADLOCK: u16 = 1213;
    pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;
    pub const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
    pub const ER_WARN_ALLOWED_PACKET_OVERFLOWED: u16 = 1301;
    pub const ER_SIGNAL_EXCEPTION: u16 = 1644;
    pub const ER_READ_ONLY_MODE: u16 = 1836;
}

/// How the message of a move's fence begins. While `thrudoc-admin` cuts a partition over to
/// its new home, triggers on the old table refuse every write with `SIGNAL SQLSTATE '45000'`
/// (MySQL error 1644) and a message that starts with this; a server that meets it reloads the
/// directory and writes at the new home instead.
pub const FENCE_TAG: &str = "thrudoc fence:";

/// What a statement does, for deciding what a failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What a failure says about the host and the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The connection was refused, reset or closed, or the server is going away: the host, not
    /// the statement. Mark it DOWN at once.
    Lost,
    /// The server answered that it is shutting down or takes no more connections: as good as
    /// gone, but the statement did not run.
    Closing,
    /// No answer in time. Under load a live host can be slow, so this alone does not mark it
    /// DOWN (the probes decide); a read may still try the sibling.
    Slow,
    /// The server is alive but cannot take the statement now (out of resources).
    Busy,
    /// A deadlock or lock wait timeout: the statement was rolled back, so it may run again.
    RolledBack,
    /// The host is read-only (fenced, or a replica).
    ReadOnly,
    /// The login lacks a right.
    AccessDenied,
    /// A table the directory names is not there (a move renamed it, or it was dropped).
    NoSuchTable,
    /// A move's fence refused the write: the table takes no more writes on this host.
    Fenced,
    /// A row with this key exists.
    Duplicate,
    /// The statement's data was refused: too large a packet, or NULL in a NOT NULL column
    /// (which is how `append`'s size check refuses).
    DataRefused,
    /// Any other refusal of the server.
    Refused,
}

impl Class {
    /// The class of a `mysql_async` failure.
    pub fn of(e: &mysql_async::Error) -> Class {
        use code::*;
        use mysql_async::Error as E;
        match e {
            E::Io(_) | E::Driver(_) => Class::Lost,
            E::Server(s) => match s.code {
                ER_SERVER_SHUTDOWN | ER_CON_COUNT_ERROR => Class::Closing,
                ER_OUT_OF_RESOURCES | ER_CANT_CREATE_THREAD => Class::Busy,
                ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT => Class::RolledBack,
                ER_OPTION_PREVENTS_STATEMENT | ER_READ_ONLY_MODE => Class::ReadOnly,
                ER_DBACCESS_DENIED_ERROR
                | ER_ACCESS_DENIED_ERROR
                | ER_TABLEACCESS_DENIED_ERROR
                | ER_SPECIFIC_ACCESS_DENIED_ERROR => Class::AccessDenied,
                ER_NO_SUCH_TABLE => Class::NoSuchTable,
                ER_SIGNAL_EXCEPTION if s.message.starts_with(FENCE_TAG) => Class::Fenced,
                ER_DUP_ENTRY => Class::Duplicate,
                ER_BAD_NULL_ERROR | ER_NET_PACKET_TOO_LARGE | ER_WARN_ALLOWED_PACKET_OVERFLOWED => {
                    Class::DataRefused
                }
                _ => Class::Refused,
            },
            E::Url(_) | E::Other(_) => Class::Refused,
        }
    }

    /// The host is gone: mark it DOWN without waiting for the probes.
    pub fn host_gone(self) -> bool {
        matches!(self, Class::Lost | Class::Closing)
    }

    /// The host did not serve the statement for a reason of its own (gone or slow): a read may
    /// be tried on the sibling.
    pub fn try_elsewhere(self) -> bool {
        matches!(self, Class::Lost | Class::Closing | Class::Slow)
    }

    /// The partition's table is fenced or gone: the directory is moving it, and the request
    /// belongs at its new home. Nothing happened.
    pub fn moved(self) -> bool {
        matches!(self, Class::NoSuchTable | Class::Fenced)
    }
}

/// A `mysql_async` error as a cause, shown once: `mysql_async` prints an I/O error as
/// "Input/output error: Input/output error: connection closed"; this prints "connection closed".
#[derive(Debug)]
pub struct Cause(pub mysql_async::Error);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use mysql_async::{Error as E, IoError};
        match &self.0 {
            E::Io(IoError::Io(io)) => write!(f, "{io}"),
            E::Server(s) => write!(f, "MySQL error {} ({}): {}", s.code, s.state, s.message),
            E::Driver(d) => write!(f, "{d}"),
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The MySQL error number behind `e`, wherever in its chain of causes a server sent one.
pub fn server_code(e: &Error) -> Option<u16> {
    e.causes()
        .find_map(|c| match c.downcast_ref::<mysql_async::Error>() {
            Some(mysql_async::Error::Server(s)) => Some(s.code),
            _ => None,
        })
}

/// A failure talking to a host: the error to report, and its class.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: Error,
    pub class: Class,
}

impl Failure {
    /// `e`, met while doing `what` (which names the host), as the service account sees it:
    /// lost connections are UNAVAILABLE for reads and OUTCOME_UNKNOWN for writes (a write may
    /// have been applied before the connection died); a rolled-back statement or a busy server
    /// is UNAVAILABLE (nothing happened), and so is a missing table (a move renamed it); a
    /// read-only host or a move's fence is READ_ONLY; refused data is an invalid argument; the
    /// rest (missing rights, a duplicate key) means this deployment is broken: internal. A
    /// failure of [`Class::moved`] is marked [`Error::moved`].
    pub fn for_service(e: mysql_async::Error, access: Access, what: impl fmt::Display) -> Failure {
        let class = Class::of(&e);
        let kind = match class {
            Class::Lost | Class::Slow => match access {
                Access::Read => ErrorKind::Unavailable,
                Access::Write => ErrorKind::OutcomeUnknown,
            },
            Class::Closing | Class::Busy | Class::RolledBack | Class::NoSuchTable => {
                ErrorKind::Unavailable
            }
            Class::ReadOnly | Class::Fenced => ErrorKind::ReadOnly,
            Class::DataRefused => ErrorKind::InvalidArgument,
            Class::AccessDenied | Class::Duplicate | Class::Refused => ErrorKind::Internal,
        };
        let error = Error::new(kind, what.to_string()).with_source(Cause(e));
        Failure {
            error: if class.moved() { error.moved() } else { error },
            class,
        }
    }

    /// `e`, met while doing `what`, as an operator running the admin tool sees it: a right the
    /// login lacks is the operator's to fix (an invalid argument); anything else means the host
    /// failed the step (unavailable).
    pub fn for_operator(e: mysql_async::Error, what: impl fmt::Display) -> Failure {
        let class = Class::of(&e);
        let kind = match class {
            Class::AccessDenied => ErrorKind::InvalidArgument,
            _ => ErrorKind::Unavailable,
        };
        Failure {
            error: Error::new(kind, what.to_string()).with_source(Cause(e)),
            class,
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// Awaits `fut` for at most `limit`: the one deadline of every connect and statement, so a dead
/// or hung host gives an error naming it (`what`), never a hang. A failure is classified by
/// `map` ([`Failure::for_service`] or [`Failure::for_operator`]); a timeout is
/// [`Class::Slow`], and for a write it says that the write may or may not have happened.
pub async fn deadline<T>(
    limit: Duration,
    access: Access,
    what: impl fmt::Display,
    map: impl FnOnce(mysql_async::Error, String) -> Failure,
    fut: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map(e, what.to_string())),
        Err(_) => {
            let ms = limit.as_millis();
            let error = match access {
                Access::Read => Error::new(
                    ErrorKind::Unavailable,
                    format!("{what}: no answer within {ms} ms"),
                ),
                Access::Write => Error::new(
                    ErrorKind::OutcomeUnknown,
                    format!("{what}: no answer within {ms} ms; it may or may not have happened"),
                ),
            };
            Err(Failure {
                error,
                class: Class::Slow,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "refused".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn numbers_sort_into_classes() {
        for (n, class) in [
            (code::ER_LOCK_DEADLOCK, Class::RolledBack),
            (code::ER_LOCK_WAIT_TIMEOUT, Class::RolledBack),
            (code::ER_OPTION_PREVENTS_STATEMENT, Class::ReadOnly),
            (code::ER_READ_ONLY_MODE, Class::ReadOnly),
            (code::ER_NO_SUCH_TABLE, Class::NoSuchTable),
            (code::ER_BAD_NULL_ERROR, Class::DataRefused),
            (code::ER_SERVER_SHUTDOWN, Class::Closing),
            (code::ER_CON_COUNT_ERROR, Class::Closing),
            (code::ER_OUT_OF_RESOURCES, Class::Busy),
            (code::ER_ACCESS_DENIED_ERROR, Class::AccessDenied),
            (code::ER_DUP_ENTRY, Class::Duplicate),
            (code::ER_SIGNAL_EXCEPTION, Class::Refused),
            (9999, Class::Refused),
        ] {
            assert_eq!(Class::of(&server(n)), class, "{n}");
        }
        let fence = mysql_async::Error::Server(mysql_async::ServerError {
            code: code::ER_SIGNAL_EXCEPTION,
            message: format!("{FENCE_TAG} partition 7 is being moved"),
            state: "45000".into(),
        });
        assert_eq!(Class::of(&fence), Class::Fenced);
        let f = Failure::for_service(fence, Access::Write, "put on db1:3306");
        assert_eq!(f.error.kind(), ErrorKind::ReadOnly);
        assert!(f.error.is_moved());
        let gone = Failure::for_service(server(code::ER_NO_SUCH_TABLE), Access::Read, "get");
        assert_eq!(gone.error.kind(), ErrorKind::Unavailable);
        assert!(gone.error.is_moved());
        let other = Failure::for_service(server(code::ER_LOCK_DEADLOCK), Access::Write, "put");
        assert!(!other.error.is_moved());
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other("gone")));
        assert_eq!(Class::of(&io), Class::Lost);
    }

    #[test]
    fn the_number_stays_readable_and_the_cause_is_said_once() {
        let f = Failure::for_service(server(1290), Access::Write, "put on db1:3306");
        assert_eq!(f.error.kind(), ErrorKind::ReadOnly);
        let e = f.error.context("putList").note("nothing was written");
        assert_eq!(server_code(&e), Some(1290));
        assert_eq!(
            e.to_string(),
            "putList: put on db1:3306: MySQL error 1290 (HY000): refused; nothing was written"
        );
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(
            "connection closed",
        )));
        let f = Failure::for_service(io, Access::Read, "get on db1:3306");
        assert_eq!(f.error.to_string(), "get on db1:3306: connection closed");
        assert_eq!(f.error.kind(), ErrorKind::Unavailable);
        assert_eq!(server_code(&f.error), None);
    }

    #[test]
    fn operators_are_told_which_right_is_missing() {
        let f = Failure::for_operator(server(code::ER_SPECIFIC_ACCESS_DENIED_ERROR), "SET GLOBAL");
        assert_eq!(f.error.kind(), ErrorKind::InvalidArgument);
        let f = Failure::for_operator(server(code::ER_NO_SUCH_TABLE), "reading host");
        assert_eq!(f.error.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_write_past_its_deadline_may_have_happened() {
        let never = std::future::pending::<std::result::Result<(), mysql_async::Error>>();
        let f = deadline(
            Duration::from_millis(5),
            Access::Write,
            "put on db1:3306",
            |e, w| Failure::for_service(e, Access::Write, w),
            never,
        )
        .await
        .unwrap_err();
        assert_eq!(f.class, Class::Slow);
        assert_eq!(f.error.kind(), ErrorKind::OutcomeUnknown);
        assert!(
            f.error.to_string().contains("may or may not"),
            "{}",
            f.error
        );
    }
}
