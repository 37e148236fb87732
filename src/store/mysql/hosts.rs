//! Connections to the MySQL hosts: one pool per host, timeouts on every step, and the mapping
//! of MySQL failures to [`ErrorKind`]s that failover decisions hang on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use crate::config::MysqlConfig;
use crate::error::{Error, ErrorKind, Result};

/// Statements each connection keeps prepared: four per partition (get, put, remove, append)
/// of the partitions a host serves, plus batch shapes.
const STATEMENT_CACHE: usize = 256;

/// Sessions must refuse, not truncate: in a non-strict mode MySQL would store '' where an
/// append's size check yields NULL. Nothing else may differ between hosts either.
const SESSION_INIT: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'";

/// What a statement does, for deciding what a failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Connection settings shared by every host.
#[derive(Clone)]
pub struct HostSettings {
    user: String,
    password: crate::config::Secret,
    database: String,
    pool_size: usize,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

impl HostSettings {
    /// The settings of `config`.
    pub fn new(config: &MysqlConfig) -> Self {
        HostSettings {
            user: config.username.clone(),
            password: config.password.clone(),
            database: config.directory_db.clone(),
            pool_size: config.pool_size,
            connect_timeout: config.connect_timeout,
            query_timeout: config.query_timeout,
        }
    }

    /// Connection options for an address `hostname:port`.
    pub fn opts_for(&self, address: &str) -> Opts {
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "3306"));
        self.opts(host, port.parse().unwrap_or(3306))
    }

    /// Connection options for `hostname:port` with the schema selected.
    pub fn opts(&self, hostname: &str, port: u16) -> Opts {
        Opts::from(self.builder(hostname, port))
    }

    /// A pool of connections to `hostname:port` with the schema selected.
    pub fn pool(&self, hostname: &str, port: u16, max: usize) -> Pool {
        let constraints = PoolConstraints::new(0, max.max(1)).unwrap_or_default();
        let opts = self.builder(hostname, port).pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_inactive_connection_ttl(Duration::from_secs(60))
                // The default resets every connection returned to the pool: one more round
                // trip per request, and the reset drops the prepared statements, so each
                // request prepared its statement again. Nothing here changes session state
                // (no transactions are left open, no variables are set after `setup`).
                .with_reset_connection(false),
        );
        Pool::new(Opts::from(opts))
    }

    fn builder(&self, hostname: &str, port: u16) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(hostname)
            .tcp_port(port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_string()))
            .db_name(Some(self.database.clone()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .stmt_cache_size(STATEMENT_CACHE)
            .setup(vec![SESSION_INIT])
    }
}

/// The pools of the data hosts, by address, created on first use and kept across directory
/// reloads (a reload that keeps a host keeps its warm connections).
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<(String, u16), Pool>>,
}

impl Pools {
    /// The pool of `hostname:port`.
    pub fn get(&self, settings: &HostSettings, hostname: &str, port: u16) -> Pool {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pools
            .entry((hostname.to_string(), port))
            .or_insert_with(|| settings.pool(hostname, port, settings.pool_size))
            .clone()
    }

    /// Closes every pool.
    pub async fn close(&self) {
        let pools: Vec<Pool> = {
            let mut map = self
                .pools
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.drain().map(|(_, p)| p).collect()
        };
        for pool in pools {
            let _ = pool.disconnect().await;
        }
    }
}

/// A failure talking to a host, and what it says about the host.
#[derive(Debug)]
pub struct HostError {
    pub error: Error,
    pub cause: Cause,
}

/// What a failure says about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The connection was refused, reset or closed: the host is gone. Mark it DOWN at once.
    Lost,
    /// No answer in time. Under load a live host can be slow, so this alone does not mark it
    /// DOWN (the probes decide); a read may still try the sibling.
    Slow,
    /// The host answered and refused the statement.
    Refused,
    /// A deadlock or lock wait timeout: the statement was rolled back, so trying it again is
    /// safe.
    RolledBack,
}

impl HostError {
    /// True when the operation may be tried on the sibling (reads only).
    pub fn try_elsewhere(&self) -> bool {
        matches!(self.cause, Cause::Lost | Cause::Slow)
    }
}

fn cause_of(e: &mysql_async::Error) -> Cause {
    match e {
        _ if is_connection_level(e) => Cause::Lost,
        mysql_async::Error::Server(s) if matches!(s.code, 1213 | 1205) => Cause::RolledBack,
        _ => Cause::Refused,
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Error {
        e.error
    }
}

/// Takes a connection from `pool` within the connect timeout. Nothing has been sent when this
/// fails, so the failure is [`ErrorKind::Unavailable`] whatever the statement would have been.
pub async fn connect(
    pool: &Pool,
    settings: &HostSettings,
    address: &str,
) -> Result<Conn, HostError> {
    match tokio::time::timeout(settings.connect_timeout, pool.get_conn()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            let cause = cause_of(&e);
            let mut error = classify(e, Access::Read).context(format!("connecting to {address}"));
            if cause == Cause::Lost {
                // Nothing was sent: whatever the statement, it did not happen.
                error = Error::new(ErrorKind::Unavailable, error.to_string());
            }
            Err(HostError { error, cause })
        }
        Err(_) => Err(HostError {
            error: Error::new(
                ErrorKind::Unavailable,
                format!(
                    "connecting to {address}: no answer within {} ms",
                    settings.connect_timeout.as_millis()
                ),
            ),
            cause: Cause::Slow,
        }),
    }
}

/// Runs one statement's future within the query timeout. A write that times out may have
/// happened, and the error says so.
pub async fn timed<T>(
    settings: &HostSettings,
    access: Access,
    what: impl Fn() -> String,
    fut: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
) -> Result<T, HostError> {
    match tokio::time::timeout(settings.query_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let cause = cause_of(&e);
            Err(HostError {
                error: classify(e, access).context(what()),
                cause,
            })
        }
        Err(_) => {
            let ms = settings.query_timeout.as_millis();
            let error = match access {
                Access::Read => Error::new(
                    ErrorKind::Unavailable,
                    format!("{}: no answer within {ms} ms", what()),
                ),
                Access::Write => Error::new(
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "{}: no answer within {ms} ms; the write may or may not have happened",
                        what()
                    ),
                ),
            };
            Err(HostError {
                error,
                cause: Cause::Slow,
            })
        }
    }
}

/// Refused, reset, closed, or a server going away: the host, not the statement.
fn is_connection_level(e: &mysql_async::Error) -> bool {
    use mysql_async::Error as E;
    match e {
        E::Io(_) | E::Driver(_) => true,
        // Server shutdown in progress; too many connections.
        E::Server(s) => matches!(s.code, 1053 | 1040),
        _ => false,
    }
}

/// Maps a MySQL failure to a kind.
///
/// Connection-level failures (I/O, a closed connection, a driver that lost the peer) are
/// [`ErrorKind::Unavailable`] for reads and [`ErrorKind::OutcomeUnknown`] for writes, which may
/// have been applied before the connection died. Server errors are classified by number:
/// deadlock (1213) and lock wait timeout (1205) roll the statement back, so they are safe to
/// retry; read-only (1290, 1836) means the host is fenced or a replica; a missing table (1146)
/// means the directory and the hosts disagree; a NOT NULL violation (1048) only arises from
/// append's size check.
pub fn classify(e: mysql_async::Error, access: Access) -> Error {
    use mysql_async::Error as E;
    let kind = match &e {
        E::Server(s) => match s.code {
            1213 | 1205 => ErrorKind::Unavailable,
            1290 | 1836 => ErrorKind::ReadOnly,
            1048 => ErrorKind::InvalidArgument,
            1153 | 1301 => ErrorKind::InvalidArgument,
            1146 => ErrorKind::Internal,
            // Too many connections, server shutting down, out of resources.
            1040 | 1053 | 1041 | 1135 => ErrorKind::Unavailable,
            // Access denied: the service account is misconfigured on this host.
            1044 | 1045 | 1142 => ErrorKind::Internal,
            _ => ErrorKind::Internal,
        },
        E::Io(_) | E::Driver(_) => match access {
            Access::Read => ErrorKind::Unavailable,
            Access::Write => ErrorKind::OutcomeUnknown,
        },
        E::Url(_) | E::Other(_) => ErrorKind::Internal,
    };
    Error::new(kind, kind_message(kind)).with_source(e)
}

fn kind_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::OutcomeUnknown => {
            "connection lost after the write was sent; it may or may not have happened"
        }
        ErrorKind::Unavailable => "host unavailable",
        ErrorKind::ReadOnly => "host is read-only",
        ErrorKind::InvalidArgument => "refused by the server",
        _ => "MySQL error",
    }
}
