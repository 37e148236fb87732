//! Root sessions on MySQL/MariaDB hosts, every step under a deadline.
//!
//! The admin tool talks to servers that may be down, hung (SIGSTOP, a network black hole) or
//! misconfigured. Every connect and every statement here runs under the MySQL layer's
//! [`deadline`], so a dead host gives an error that names it, never a hang, and every MySQL
//! error becomes a [`crate::Error`] that says which host and which step failed.

use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, OptsBuilder, Params, Row};

use crate::config::Secret;
use crate::error::{Error, Result};
use crate::mysql::{Access, Failure, HostAddr};

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

/// Statements under a deadline, on a session or a directory transaction ([`super::dirtx::Tx`]);
/// `what` names the step in errors, which also name the host.
#[allow(async_fn_in_trait)] // the admin tool runs on one thread: nothing needs `Send` here
pub trait Query {
    /// The connection or transaction, the host it is on, and the deadline of each statement.
    type Conn: Queryable + Send;
    fn target(&mut self) -> (&mut Self::Conn, &HostAddr, Duration);

    /// Runs `sql` (text protocol), dropping any result.
    async fn run(&mut self, what: &str, sql: &str) -> Result<()> {
        let (q, addr, limit) = self.target();
        deadline(addr, what, limit, q.query_drop(sql)).await
    }

    /// Runs the prepared statement `sql` with `params`, dropping any result.
    async fn exec(
        &mut self,
        what: &str,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<()> {
        let (q, addr, limit) = self.target();
        deadline(addr, what, limit, q.exec_drop(sql, params)).await
    }

    /// The rows of the prepared statement `sql` with `params`.
    async fn rows(
        &mut self,
        what: &str,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Vec<Row>> {
        let (q, addr, limit) = self.target();
        deadline(addr, what, limit, q.exec::<Row, _, _>(sql, params)).await
    }

    /// Column 0 of the first row of `sql` with `params`, or `None` when there is no row.
    async fn first<T: FromValue>(
        &mut self,
        what: &str,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Option<T>> {
        match self.rows(what, sql, params).await?.first() {
            Some(row) => column(row, 0, what).map(Some),
            None => Ok(None),
        }
    }
}

impl Query for Session {
    type Conn = Conn;
    fn target(&mut self) -> (&mut Conn, &HostAddr, Duration) {
        (&mut self.conn, &self.addr, self.timeout)
    }
}

impl Session {
    /// Ends the session politely; a host that does not answer within a second is left to the
    /// server's own timeout.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.disconnect()).await;
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
/// `addr` and the step `what`, as an operator should read it ([`Failure::for_operator`]).
pub async fn deadline<T>(
    addr: &HostAddr,
    what: &str,
    limit: Duration,
    fut: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
) -> Result<T> {
    // A timeout is UNAVAILABLE here, writes included: each step of the tool that changes
    // something says itself what a lost answer means (see `dirtx`).
    crate::mysql::deadline(
        limit,
        Access::Read,
        format!("{what} on {addr}"),
        Failure::for_operator,
        fut,
    )
    .await
    .map_err(Error::from)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("pa'ss\\", false), r"'pa\'ss\\'");
        assert_eq!(quote_literal("pa'ss\\", true), r"'pa''ss\'");
        assert_eq!(quote_literal("a\0b", false), r"'a\0b'");
        assert_eq!(quote_ident("d_1"), "`d_1`");
    }
}
