//! Root sessions on MySQL/MariaDB hosts, every step under a deadline.
//!
//! The admin tool talks to servers that may be down, hung (SIGSTOP, a network black hole) or
//! misconfigured. Every connect and every statement here runs under [`tokio::time::timeout`],
//! so a dead host gives an error that names it, never a hang, and every MySQL error becomes a
//! [`crate::Error`] that says which host and which step failed.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, OptsBuilder, Params, Row, Transaction};

use crate::config::Secret;
use crate::error::{Error, ErrorKind, Result};

/// The MySQL/MariaDB port used when a host is given without one.
pub const DEFAULT_PORT: u16 = 3306;

/// A MySQL/MariaDB server's address: `hostname:port` (`[v6]:port` for IPv6 literals).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAddr {
    pub host: String,
    pub port: u16,
}

impl HostAddr {
    /// An address from its parts; the host is checked as [`HostAddr::parse`] checks it.
    pub fn new(host: &str, port: u16) -> Result<HostAddr> {
        check_hostname(host)?;
        if port == 0 {
            return Err(Error::invalid(format!(
                "host `{host}`: port 0 is not a port"
            )));
        }
        Ok(HostAddr {
            host: host.to_string(),
            port,
        })
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to [`DEFAULT_PORT`].
    pub fn parse(text: &str) -> Result<HostAddr> {
        let text = text.trim();
        let bad = |why: &str| Error::invalid(format!("host `{}`: {why}", text.escape_debug()));
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing `]`"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("expected `:port` after `]`")),
                },
            }
        } else {
            match text.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host, Some(port)),
                Some(_) => return Err(bad("write IPv6 addresses as [address]:port")),
                None => (text, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        HostAddr::new(host, port)
    }

    /// A comma-separated list of [`HostAddr::parse`] addresses; empty entries and duplicates
    /// are refused.
    pub fn parse_list(text: &str) -> Result<Vec<HostAddr>> {
        let mut hosts: Vec<HostAddr> = Vec::new();
        for item in text.split(',') {
            if item.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "--hosts `{}` has an empty entry",
                    text.escape_debug()
                )));
            }
            let host = HostAddr::parse(item)?;
            if hosts.contains(&host) {
                return Err(Error::invalid(format!("--hosts names {host} twice")));
            }
            hosts.push(host);
        }
        Ok(hosts)
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Host names end up in the directory and in replication settings: letters, digits, `.`, `-`
/// and `_`, or an IPv6 literal; at most 255 bytes (the `host.hostname` column).
fn check_hostname(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "host name `{}` must be 1 to 255 letters, digits, `.`, `-`, `_` (or an IPv6 address)",
            host.escape_debug()
        )))
    }
}

/// How to log in to a server and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Secret,
    /// Deadline of a connect (TCP and the MySQL handshake).
    pub connect_timeout: Duration,
    /// Deadline of each statement.
    pub query_timeout: Duration,
}

impl Login {
    /// Connects to `addr` over TCP, with `db` as the default schema when given.
    pub async fn connect(&self, addr: &HostAddr, db: Option<&str>) -> Result<Session> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(addr.host.clone())
            .tcp_port(addr.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_string()))
            .db_name(db.map(str::to_string))
            // TCP to the address given, never a local socket that a loopback address would
            // otherwise be swapped for: that could be another server.
            .prefer_socket(false);
        let what = format!("connecting to {addr} as {}", self.user);
        let conn = deadline(addr, &what, self.connect_timeout, Conn::new(opts)).await?;
        Ok(Session {
            conn,
            addr: addr.clone(),
            timeout: self.query_timeout,
        })
    }
}

/// An open connection to one server, whose statements run under its deadline.
pub struct Session {
    pub conn: Conn,
    pub addr: HostAddr,
    pub timeout: Duration,
}

impl Session {
    /// Runs `sql` (text protocol), dropping any result. `what` names the step in errors.
    pub async fn run(&mut self, what: &str, sql: &str) -> Result<()> {
        run(&mut self.conn, &self.addr, self.timeout, what, sql).await
    }

    /// Runs the prepared statement `sql` with `params`, dropping any result.
    pub async fn exec(
        &mut self,
        what: &str,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<()> {
        exec(&mut self.conn, &self.addr, self.timeout, what, sql, params).await
    }

    /// The rows of the prepared statement `sql` with `params`.
    pub async fn rows(
        &mut self,
        what: &str,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Vec<Row>> {
        rows(&mut self.conn, &self.addr, self.timeout, what, sql, params).await
    }

    /// Column 0 of the first row of `sql` with `params`, or `None` when there is no row.
    pub async fn first<T: FromValue>(
        &mut self,
        what: &str,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Option<T>> {
        first(&mut self.conn, &self.addr, self.timeout, what, sql, params).await
    }

    /// Ends the session politely; a host that does not answer within a second is left to the
    /// server's own timeout.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.disconnect()).await;
    }
}

/// Runs `sql` (text protocol) on `q` (a connection or a transaction of `addr`) under `limit`.
pub async fn run<Q: Queryable>(
    q: &mut Q,
    addr: &HostAddr,
    limit: Duration,
    what: &str,
    sql: &str,
) -> Result<()> {
    deadline(addr, what, limit, q.query_drop(sql)).await
}

/// Runs the prepared statement `sql` with `params` on `q` under `limit`.
pub async fn exec<Q: Queryable>(
    q: &mut Q,
    addr: &HostAddr,
    limit: Duration,
    what: &str,
    sql: &str,
    params: impl Into<Params> + Send,
) -> Result<()> {
    deadline(addr, what, limit, q.exec_drop(sql, params)).await
}

/// The rows of the prepared statement `sql` with `params` on `q` under `limit`.
pub async fn rows<Q: Queryable>(
    q: &mut Q,
    addr: &HostAddr,
    limit: Duration,
    what: &str,
    sql: &str,
    params: impl Into<Params> + Send,
) -> Result<Vec<Row>> {
    deadline(addr, what, limit, q.exec::<Row, _, _>(sql, params)).await
}

/// Column 0 of the first row of `sql` with `params` on `q`, or `None` when there is no row.
pub async fn first<Q: Queryable, T: FromValue>(
    q: &mut Q,
    addr: &HostAddr,
    limit: Duration,
    what: &str,
    sql: &str,
    params: impl Into<Params> + Send,
) -> Result<Option<T>> {
    match rows(q, addr, limit, what, sql, params).await?.first() {
        Some(row) => column(row, 0, what).map(Some),
        None => Ok(None),
    }
}

/// Column `index` of `row` as `T`; a value of another type is an error, not a panic.
pub fn column<T: FromValue>(row: &Row, index: usize, what: &str) -> Result<T> {
    match row.get_opt::<T, _>(index) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(Error::internal(format!(
            "{what}: unexpected value in column {index}: {e:?}"
        ))),
        None => Err(Error::internal(format!("{what}: no column {index}"))),
    }
}

/// Awaits `fut` for at most `limit`; a timeout or a MySQL error becomes an [`Error`] naming
/// `addr` and the step `what`.
pub async fn deadline<T>(
    addr: &HostAddr,
    what: &str,
    limit: Duration,
    fut: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(mysql_error(addr, what, e)),
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "{what} on {addr}: no answer within {:.1} s (is the server down or hung?)",
                limit.as_secs_f64()
            ),
        )),
    }
}

/// A MySQL error as an [`Error`]: access denied means the operator's login lacks a right
/// ([`ErrorKind::InvalidArgument`]); anything else means the host failed ([`ErrorKind::Unavailable`]).
pub fn mysql_error(addr: &HostAddr, what: &str, e: mysql_async::Error) -> Error {
    let kind = match &e {
        // 1044/1045: access denied to a schema / login; 1142/1227: a missing privilege.
        mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1142 | 1227) => {
            ErrorKind::InvalidArgument
        }
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("{what} on {addr}")).with_source(e)
}

/// The MySQL error number behind `e`, when a server sent one.
pub fn server_code(e: &Error) -> Option<u16> {
    let source = std::error::Error::source(e)?;
    match source.downcast_ref::<mysql_async::Error>()? {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// `s` as the body of a single-quoted SQL string literal. With backslash escapes on (the
/// default `sql_mode`) both `\` and `'` are escaped with a backslash (and NUL written as `\0`);
/// under `NO_BACKSLASH_ESCAPES` a backslash is an ordinary character and `'` is doubled.
pub fn quote_literal(s: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match (c, no_backslash_escapes) {
            ('\'', true) => out.push_str("''"),
            ('\'', false) => out.push_str("\\'"),
            ('\\', false) => out.push_str("\\\\"),
            ('\0', false) => out.push_str("\\0"),
            (c, _) => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `name` quoted as an SQL identifier (names reaching here are already checked to be plain).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// What a directory error says when the transaction was rolled back.
pub const UNCHANGED: &str = "the directory transaction was rolled back: the directory is unchanged";

/// Bumps the directory version and commits `tx` on `master`. Until the commit is sent, a
/// failure rolls back and leaves the directory unchanged; a commit whose answer is lost is
/// [`ErrorKind::OutcomeUnknown`], and the error says what `may_be` true and how to `look`.
pub async fn commit_directory(
    mut tx: Transaction<'_>,
    master: &HostAddr,
    limit: Duration,
    may_be: &str,
    look: &str,
) -> Result<u64> {
    let bump = crate::store::mysql::directory::bump_version(&mut tx);
    let version = match tokio::time::timeout(limit, bump).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            // A timed-out rollback is left to the server, which rolls an uncommitted
            // transaction back when the session ends.
            let _ = tokio::time::timeout(limit, tx.rollback()).await;
            return Err(Error::new(
                e.kind(),
                format!("{e} (on {master}); {UNCHANGED}"),
            ));
        }
        Err(_) => {
            // Dropping the connection rolls the transaction back on the server.
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "bumping the directory version on {master}: no answer within {limit:?}; \
                     {UNCHANGED}"
                ),
            ));
        }
    };
    match tokio::time::timeout(limit, tx.commit()).await {
        Ok(Ok(())) => Ok(version),
        // The server answered: the commit failed and the transaction is gone.
        Ok(Err(e)) if matches!(e, mysql_async::Error::Server(_)) => {
            Err(mysql_error(master, "committing the directory", e).context(UNCHANGED))
        }
        Ok(Err(e)) => Err(Error::new(
            ErrorKind::OutcomeUnknown,
            format!(
                "committing the directory on {master}: the connection failed, so {may_be}; {look}"
            ),
        )
        .with_source(e)),
        Err(_) => Err(Error::new(
            ErrorKind::OutcomeUnknown,
            format!(
                "committing the directory on {master}: no answer within {limit:?}, so {may_be}; \
                 {look}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_parse_with_default_port() {
        assert_eq!(
            HostAddr::parse("db1").unwrap(),
            HostAddr {
                host: "db1".into(),
                port: 3306
            }
        );
        assert_eq!(HostAddr::parse("127.0.0.1:33061").unwrap().port, 33061);
        let v6 = HostAddr::parse("[::1]:3307").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 3307));
        assert_eq!(v6.to_string(), "[::1]:3307");
        assert_eq!(HostAddr::parse("[::1]").unwrap().port, 3306);
        for bad in [
            "", ":3306", "h:0", "h:99999", "h:x", "::1", "[::1", "h;drop:1", "a b",
        ] {
            assert_eq!(
                HostAddr::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn host_lists_refuse_duplicates_and_empty_entries() {
        let hosts = HostAddr::parse_list("a:1,b,c:3").unwrap();
        assert_eq!(
            hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["a:1", "b:3306", "c:3"]
        );
        assert!(HostAddr::parse_list("a:1,a:1")
            .unwrap_err()
            .message()
            .contains("twice"));
        assert!(HostAddr::parse_list("a,b:3306,b").is_err());
        assert!(HostAddr::parse_list("a,,b").is_err());
        assert!(HostAddr::parse_list("").is_err());
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("pa'ss\\", false), r"'pa\'ss\\'");
        assert_eq!(quote_literal("pa'ss\\", true), r"'pa''ss\'");
        assert_eq!(quote_literal("a\0b", false), r"'a\0b'");
        assert_eq!(quote_ident("d_1"), "`d_1`");
    }
}
