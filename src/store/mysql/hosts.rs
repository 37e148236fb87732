//! Connections to the data hosts as the service account: one pool per host, and every connect
//! and statement under its deadline. What a failure means is the MySQL layer's to say
//! ([`crate::mysql::failure`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use crate::config::{MysqlConfig, MysqlTls};
use crate::error::ErrorKind;
use crate::mysql::{deadline, Access, Class, Failure, HostAddr};

/// Statements each connection keeps prepared: four per partition (get, put, remove, append)
/// of the partitions a host serves, plus batch shapes.
const STATEMENT_CACHE: usize = 256;

/// Sessions must refuse, not truncate: in a non-strict mode MySQL would store '' where an
/// append's size check yields NULL. Nothing else may differ between hosts either. Every OK
/// packet of a write carries the write's GTID ([`super::replication::last_gtid`]).
fn session_init() -> String {
    format!(
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', {}",
        super::replication::TRACK_LAST_GTID
    )
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
    /// TLS to every host (`MYSQL_TLS`); `None`: plain TCP.
    ssl: Option<SslOpts>,
}

/// The TLS options of `MYSQL_TLS`.
fn ssl_opts(tls: &MysqlTls) -> Option<SslOpts> {
    match tls {
        MysqlTls::Off => None,
        MysqlTls::Required => Some(SslOpts::default().with_danger_accept_invalid_certs(true)),
        MysqlTls::Verify { ca_file } => Some(
            SslOpts::default()
                .with_root_certs(vec![ca_file.clone().into()])
                .with_disable_built_in_roots(true),
        ),
    }
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
            ssl: ssl_opts(&config.tls),
        }
    }

    /// Connection options for `addr` with the schema selected.
    pub fn opts(&self, addr: &HostAddr) -> Opts {
        Opts::from(self.builder(addr))
    }

    /// A pool of at most `max` connections to `addr` with the schema selected.
    pub fn pool(&self, addr: &HostAddr, max: usize) -> Pool {
        let constraints = PoolConstraints::new(0, max.max(1)).unwrap_or_default();
        let opts = self.builder(addr).pool_opts(
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

    fn builder(&self, addr: &HostAddr) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(addr.host.clone())
            .tcp_port(addr.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_string()))
            .db_name(Some(self.database.clone()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .stmt_cache_size(STATEMENT_CACHE)
            .ssl_opts(self.ssl.clone())
            .setup(vec![session_init()])
    }

    /// Takes a connection from `pool` (of `addr`) within the connect timeout. Nothing has been
    /// sent when this fails, so a host that is gone or slow is [`ErrorKind::Unavailable`]
    /// whatever the statement would have been (a refusal, such as a login denied, keeps its
    /// kind).
    pub async fn connect(&self, pool: &Pool, addr: &HostAddr) -> Result<Conn, Failure> {
        deadline(
            self.connect_timeout,
            Access::Read,
            format!("connecting to {addr}"),
            |e, what| Failure::for_service(e, Access::Read, what),
            pool.get_conn(),
        )
        .await
        .map_err(|f| match f.class.try_elsewhere() {
            true => Failure {
                error: f.error.with_kind(ErrorKind::Unavailable),
                class: f.class,
            },
            false => f,
        })
    }

    /// Runs one statement's future within the query timeout; `what` names the statement and
    /// its host. A write that times out or loses its connection may have happened, and the
    /// error says so.
    pub async fn statement<T>(
        &self,
        access: Access,
        what: impl fmt::Display,
        fut: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
    ) -> Result<T, Failure> {
        deadline(
            self.query_timeout,
            access,
            what,
            |e, what| Failure::for_service(e, access, what),
            fut,
        )
        .await
    }

    /// Runs one write on `conn` as [`HostSettings::statement`] does. When no answer comes in
    /// time, the connection is reset ([`Conn::abort`]): on a network that drops packets the
    /// statement may still wait in this machine's send queue, and TCP would deliver it once the
    /// network heals, after the client was told the write may not have happened and after
    /// writes acknowledged since. Reset, it reaches the server now or never.
    pub async fn write<T>(
        &self,
        conn: &mut Conn,
        what: impl fmt::Display,
        run: impl AsyncFnOnce(&mut Conn) -> std::result::Result<T, mysql_async::Error>,
    ) -> Result<T, Failure> {
        let result = self.statement(Access::Write, what, run(conn)).await;
        if matches!(&result, Err(f) if f.class == Class::Slow) {
            conn.abort();
        }
        result
    }
}

/// The pools of the data hosts, by address, created on first use and kept across directory
/// reloads (a reload that keeps a host keeps its warm connections).
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<HostAddr, Pool>>,
}

impl Pools {
    /// The pool of `addr`.
    pub fn get(&self, settings: &HostSettings, addr: &HostAddr) -> Pool {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pools
            .entry(addr.clone())
            .or_insert_with(|| settings.pool(addr, settings.pool_size))
            .clone()
    }

    /// Closes every pool: each of its connections says goodbye to its server.
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
