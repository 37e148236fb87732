//! `thrudoc.conf`: parsed, then validated into a typed [`Config`] (docs/DESIGN.md,
//! "Configuration").
//!
//! - [`keys`]: every key, declared once (name, default, bounds, doc line).
//! - [`source`]: the file's `KEY = VALUE` lines with `THRUDOC_<KEY>` environment variables on
//!   top, each value with its origin.
//! - here: validation into [`Config`], each field read through its key's declaration.
//!
//! Unknown keys are reported as warnings (a conf written for another backend of the original
//! still starts), bad values are errors that name the key and where its value came from.
//! Passwords are held in [`Secret`], which never prints its value, and may come from a file
//! (`MYSQL_PASSWORD_FILE`).

pub mod keys;
pub mod source;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self::keys::*;
pub use self::keys::{Key, KEYS};
use self::source::{Values, ENV_PREFIX};
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::rules::{check_bucket_name, is_sql_name};

/// A string that never shows itself in `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must hand it on (a database login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which store serves the data.
#[derive(Debug, Clone, PartialEq, Eq)]
// Made once at start-up and never moved about: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// The embedded SQLite store.
    Disk(DiskConfig),
    /// Partitions over MariaDB/MySQL master-master pairs.
    Mysql(MysqlConfig),
}

/// `DISK_*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub doc_root: PathBuf,
    pub buckets: Vec<String>,
    pub max_value_size: usize,
}

/// `MYSQL_*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    /// The directory master (`MYSQL_MASTER_HOST`, `MYSQL_MASTER_PORT`).
    pub master: HostAddr,
    /// Its sibling, read when the master is down (`MYSQL_SLAVE_HOST`, `MYSQL_SLAVE_PORT`).
    pub slave: Option<HostAddr>,
    pub directory_db: String,
    pub username: String,
    pub password: Secret,
    pub max_value_size: usize,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub pool_size: usize,
    pub directory_poll: Duration,
    pub directory_lease: Duration,
    /// How long a request to a partition whose table is fenced or gone (a move's cutover)
    /// waits for the directory to name its new home before it is refused.
    pub move_wait: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub fall_threshold: u32,
    pub rise_threshold: u32,
    /// Reads of a partition whose master is down (`FAILOVER_*`).
    pub failover: FailoverConfig,
    /// TLS to the hosts (`MYSQL_TLS`, `MYSQL_TLS_CA_FILE`).
    pub tls: MysqlTls,
}

/// `MYSQL_TLS`: how the server's connections to MySQL hosts are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlTls {
    /// Plain TCP.
    Off,
    /// TLS, without checking the host's certificate (protects against listening, not against
    /// a host that pretends).
    Required,
    /// TLS, the certificate checked against these CAs and the host's name.
    Verify { ca_file: PathBuf },
}

/// `FAILOVER_READS`: what a read may return while its partition's master is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverReads {
    /// Only what the sibling has once it has applied every write of the master this server
    /// acknowledged or saw; otherwise the read is refused (`BEHIND`).
    Consistent,
    /// Whatever the sibling has; reads it cannot vouch for are counted.
    Stale,
}

impl FailoverReads {
    /// `consistent` or `stale`, as the key spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverReads::Consistent => "consistent",
            FailoverReads::Stale => "stale",
        }
    }
}

/// The `FAILOVER_*` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    pub reads: FailoverReads,
    /// How long a consistent read waits for the sibling to apply the master's writes.
    pub read_wait: Duration,
    /// A sibling that has lacked the master's writes for longer is not waited for.
    pub max_lag: Duration,
}

/// The listener's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub max_connections: usize,
    pub max_frame_size: usize,
    pub idle_timeout: Option<Duration>,
    pub shutdown_timeout: Duration,
    /// The operator's port (`METRICS_BIND`, `METRICS_PORT`); `None`: off.
    pub metrics: Option<std::net::SocketAddr>,
    /// TLS on the Thrift port (`TLS_*`); `None`: plain Thrift only.
    pub tls: Option<TlsConfig>,
}

/// TLS on the Thrift port. The files are read at start-up ([`crate::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Mutual TLS: the CAs whose client certificates are accepted.
    pub client_ca_file: Option<PathBuf>,
    /// Plaintext connections are refused (`TLS_REQUIRED`, or mutual TLS).
    pub required: bool,
}

/// How the log is written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Limits the service applies to every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_scan_count: usize,
    pub max_batch_size: usize,
    /// The `admin` ops answered (`ADMIN_OPS`); the others are refused.
    pub admin_ops: Vec<String>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    pub server: ServerConfig,
    pub limits: Limits,
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Problems that do not stop start-up (unknown keys), for the caller to report.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `path`, applies `THRUDOC_<KEY>` variables of the process environment, validates.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}", path.display())).with_source(e)
        })?;
        Config::from_sources(&text, std::env::vars())
    }

    /// Parses file `text` with the `THRUDOC_`-prefixed variables among `env` applied on top.
    pub fn from_sources(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let env: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        validate(Values::layer(text, env)?)
    }

    /// The configuration with every default (an empty file, no environment).
    pub fn defaults() -> Config {
        Config::from_sources("", std::iter::empty()).expect("the defaults are valid")
    }
}

/// `TLS_*`: a certificate and its key go together; a client CA or `TLS_REQUIRED` needs them.
fn tls_config(v: &Values) -> Result<Option<TlsConfig>> {
    let required = match v.required(&TLS_REQUIRED)?.to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        other => return Err(v.bad(&TLS_REQUIRED, format!("`{other}` is not true or false"))),
    };
    let cert = v.string(&TLS_CERT_FILE).map(PathBuf::from);
    let key = v.string(&TLS_KEY_FILE).map(PathBuf::from);
    let client_ca = v.string(&TLS_CLIENT_CA_FILE).map(PathBuf::from);
    match (cert, key) {
        (Some(cert_file), Some(key_file)) => Ok(Some(TlsConfig {
            cert_file,
            key_file,
            required: required || client_ca.is_some(),
            client_ca_file: client_ca,
        })),
        (Some(_), None) => Err(v.bad(&TLS_KEY_FILE, "is required with TLS_CERT_FILE")),
        (None, Some(_)) => Err(v.bad(&TLS_CERT_FILE, "is required with TLS_KEY_FILE")),
        (None, None) if client_ca.is_some() => Err(v.bad(
            &TLS_CLIENT_CA_FILE,
            "needs TLS_CERT_FILE and TLS_KEY_FILE (the server's own certificate)",
        )),
        (None, None) if required => Err(v.bad(
            &TLS_REQUIRED,
            "is true, but TLS_CERT_FILE and TLS_KEY_FILE are not set",
        )),
        (None, None) => Ok(None),
    }
}

/// `ADMIN_OPS`: a comma-separated list of known ops; empty (given as nothing) allows none.
fn admin_ops(v: &Values) -> Result<Vec<String>> {
    let text = v.string(&ADMIN_OPS).unwrap_or_default();
    let mut ops = Vec::new();
    for op in text.split(',').map(str::trim).filter(|op| !op.is_empty()) {
        if !crate::service::ADMIN_OPS.contains(&op) {
            return Err(v.bad(
                &ADMIN_OPS,
                format!(
                    "`{op}` is not an admin op; known: {}",
                    crate::service::ADMIN_OPS.join(", ")
                ),
            ));
        }
        if !ops.iter().any(|o| o == op) {
            ops.push(op.to_string());
        }
    }
    Ok(ops)
}

fn validate(v: Values) -> Result<Config> {
    let warnings = v
        .unknown()
        .map(|key| format!("unknown key {key} (ignored)"))
        .collect();

    let bind_text = v.required(&SERVER_BIND)?;
    let bind = bind_text
        .parse()
        .map_err(|_| v.bad(&SERVER_BIND, format!("`{bind_text}` is not an IP address")))?;
    let idle = v.number(&IDLE_TIMEOUT)?;
    let server = ServerConfig {
        bind,
        // 0 asks the system for a free port; the server prints the one it got.
        port: v.number(&SERVER_PORT)? as u16,
        max_connections: v.size(&MAX_CONNECTIONS)?,
        max_frame_size: v.size(&MAX_FRAME_SIZE)?,
        idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        shutdown_timeout: v.secs(&SHUTDOWN_TIMEOUT)?,
        tls: tls_config(&v)?,
        metrics: match v.string(&METRICS_PORT) {
            None => None,
            Some(_) => {
                let text = v.required(&METRICS_BIND)?;
                let ip: IpAddr = text
                    .parse()
                    .map_err(|_| v.bad(&METRICS_BIND, format!("`{text}` is not an IP address")))?;
                Some((ip, v.port(&METRICS_PORT)?).into())
            }
        },
    };
    let limits = Limits {
        max_scan_count: v.size(&MAX_SCAN_COUNT)?,
        max_batch_size: v.size(&MAX_BATCH_SIZE)?,
        admin_ops: admin_ops(&v)?,
    };
    let log_format = match v.required(&LOG_FORMAT)?.to_ascii_lowercase().as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(v.bad(&LOG_FORMAT, format!("`{other}` is not one of text, json"))),
    };
    let log_level = v.required(&LOG_LEVEL)?.to_ascii_lowercase();
    if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
        return Err(v.bad(
            &LOG_LEVEL,
            format!("`{log_level}` is not one of error, warn, info, debug, trace"),
        ));
    }

    // Both backends' keys are checked whichever is chosen, so a typo shows before a switch.
    let disk = disk_config(&v, &server)?;
    let mysql = mysql_config(&v, &server);
    let backend = match v.required(&BACKEND)?.to_ascii_lowercase().as_str() {
        "disk" => Backend::Disk(disk),
        "mysql" => Backend::Mysql(mysql?),
        other => return Err(v.bad(&BACKEND, format!("`{other}` is not one of disk, mysql"))),
    };
    Ok(Config {
        backend,
        server,
        limits,
        log_level,
        log_format,
        warnings,
    })
}

/// A value limit: within its key's bounds, and small enough to fit in one message with room
/// for the rest of the call.
fn value_limit(v: &Values, key: &Key, server: &ServerConfig) -> Result<usize> {
    let size = v.size(key)?;
    let fits = server.max_frame_size.saturating_sub(64 * 1024);
    if size > fits {
        return Err(v.bad(
            key,
            format!(
                "{size} does not fit in MAX_FRAME_SIZE ({}) less 64 KiB",
                server.max_frame_size
            ),
        ));
    }
    Ok(size)
}

fn disk_config(v: &Values, server: &ServerConfig) -> Result<DiskConfig> {
    let buckets: Vec<String> = v
        .required(&DISK_BUCKETS)?
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if buckets.is_empty() {
        return Err(v.bad(&DISK_BUCKETS, "names no bucket"));
    }
    for b in &buckets {
        if let Err(why) = check_bucket_name(b) {
            return Err(v.bad(&DISK_BUCKETS, why));
        }
    }
    Ok(DiskConfig {
        doc_root: PathBuf::from(v.required(&DISK_DOC_ROOT)?),
        buckets,
        max_value_size: value_limit(v, &DISK_MAX_VALUE_SIZE, server)?,
    })
}

fn mysql_config(v: &Values, server: &ServerConfig) -> Result<MysqlConfig> {
    let password = match (v.given(&MYSQL_PASSWORD), v.string(&MYSQL_PASSWORD_FILE)) {
        (true, Some(_)) => {
            return Err(v.bad(
                &MYSQL_PASSWORD,
                "give MYSQL_PASSWORD or MYSQL_PASSWORD_FILE, not both",
            ))
        }
        (false, Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| v.bad(&MYSQL_PASSWORD_FILE, format!("cannot read {file}: {e}")))?;
            Secret::new(text.lines().next().unwrap_or_default())
        }
        (true, None) => Secret::new(v.string(&MYSQL_PASSWORD).unwrap_or_default()),
        (false, None) => Secret::default(),
    };
    let db = v.required(&MYSQL_DIRECTORY_DB)?;
    if !is_sql_name(&db) {
        return Err(v.bad(
            &MYSQL_DIRECTORY_DB,
            "use letters, digits and _ (at most 64)",
        ));
    }
    let ca = v.string(&MYSQL_TLS_CA_FILE).map(PathBuf::from);
    let tls = match v.required(&MYSQL_TLS)?.to_ascii_lowercase().as_str() {
        "off" => MysqlTls::Off,
        "required" => MysqlTls::Required,
        "verify" => {
            let ca_file =
                ca.ok_or_else(|| v.bad(&MYSQL_TLS_CA_FILE, "is required with MYSQL_TLS = verify"))?;
            if let Err(e) = std::fs::metadata(&ca_file) {
                return Err(v.bad(
                    &MYSQL_TLS_CA_FILE,
                    format!("cannot read {}: {e}", ca_file.display()),
                ));
            }
            MysqlTls::Verify { ca_file }
        }
        other => {
            return Err(v.bad(
                &MYSQL_TLS,
                format!("`{other}` is not one of off, required, verify"),
            ))
        }
    };
    Ok(MysqlConfig {
        master: HostAddr::new(
            &v.required(&MYSQL_MASTER_HOST)?,
            v.port(&MYSQL_MASTER_PORT)?,
        )
        .map_err(|e| v.bad(&MYSQL_MASTER_HOST, e))?,
        slave: match v.string(&MYSQL_SLAVE_HOST) {
            Some(host) => Some(
                HostAddr::new(&host, v.port(&MYSQL_SLAVE_PORT)?)
                    .map_err(|e| v.bad(&MYSQL_SLAVE_HOST, e))?,
            ),
            None => None,
        },
        directory_db: db,
        username: v.required(&MYSQL_USERNAME)?,
        password,
        max_value_size: value_limit(v, &MYSQL_MAX_VALUES_SIZE, server)?,
        connect_timeout: v.millis(&MYSQL_CONNECT_TIMEOUT_MS)?,
        query_timeout: v.millis(&MYSQL_QUERY_TIMEOUT_MS)?,
        pool_size: v.size(&MYSQL_POOL_SIZE)?,
        directory_poll: v.millis(&MYSQL_DIRECTORY_POLL_MS)?,
        directory_lease: v.millis(&MYSQL_DIRECTORY_LEASE_MS)?,
        move_wait: v.millis(&MYSQL_MOVE_WAIT_MS)?,
        probe_interval: v.millis(&HEALTH_PROBE_INTERVAL_MS)?,
        probe_timeout: v.millis(&HEALTH_PROBE_TIMEOUT_MS)?,
        fall_threshold: v.number(&HEALTH_FALL_THRESHOLD)? as u32,
        rise_threshold: v.number(&HEALTH_RISE_THRESHOLD)? as u32,
        failover: FailoverConfig {
            reads: match v.required(&FAILOVER_READS)?.to_ascii_lowercase().as_str() {
                "consistent" => FailoverReads::Consistent,
                "stale" => FailoverReads::Stale,
                other => {
                    return Err(v.bad(
                        &FAILOVER_READS,
                        format!("`{other}` is not one of consistent, stale"),
                    ))
                }
            },
            read_wait: v.millis(&FAILOVER_READ_WAIT_MS)?,
            max_lag: v.millis(&FAILOVER_MAX_LAG_MS)?,
        },
        tls,
    })
}

/// The value of a command-line flag in seconds (the tools' `--timeout`, `--duration` and the
/// like, fractions allowed): above 0 and at most a day. A clap `value_parser`.
pub fn seconds_flag(value: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err("give a number of seconds above 0 and at most 86400".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(text: &str, pairs: &[(&str, &str)]) -> Result<Config> {
        Config::from_sources(text, env(pairs))
    }

    #[test]
    fn defaults_serve_bucket_data_on_9091() {
        let c = Config::defaults();
        assert_eq!(c.server.port, 9091);
        assert_eq!(c.server.bind.to_string(), "127.0.0.1");
        assert_eq!(c.server.max_frame_size, 16 << 20);
        assert_eq!(c.server.idle_timeout, None);
        let Backend::Disk(d) = c.backend else {
            panic!("default backend is disk")
        };
        assert_eq!(d.buckets, vec!["data".to_string()]);
        assert_eq!(d.max_value_size, 1 << 20);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn file_values_comments_and_blank_lines() {
        let c = load(
            "# comment\n\n  SERVER_PORT = 9200  \nDISK_BUCKETS = a, b-2 ,c_3\nIDLE_TIMEOUT=30\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.server.port, 9200);
        assert_eq!(c.server.idle_timeout, Some(Duration::from_secs(30)));
        let Backend::Disk(d) = c.backend else {
            panic!()
        };
        assert_eq!(d.buckets, vec!["a", "b-2", "c_3"]);
    }

    #[test]
    fn admin_ops_and_the_metrics_port() {
        let c = load("", &[]).unwrap();
        assert_eq!(
            c.limits.admin_ops,
            vec!["echo", "stats", "status", "load_partitions"]
        );
        assert_eq!(
            c.server.metrics, None,
            "the operator's port is off by default"
        );
        let c = load(
            "ADMIN_OPS = stats , status,stats\nMETRICS_PORT = 9300\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.limits.admin_ops, vec!["stats", "status"]);
        assert_eq!(c.server.metrics, Some("127.0.0.1:9300".parse().unwrap()));
        let c = load(
            "ADMIN_OPS =\nMETRICS_BIND = 0.0.0.0\nMETRICS_PORT = 0\n",
            &[],
        )
        .unwrap();
        assert!(c.limits.admin_ops.is_empty());
        assert_eq!(c.server.metrics, Some("0.0.0.0:0".parse().unwrap()));
        let e = load("ADMIN_OPS = stats, reboot\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("ADMIN_OPS (from the config file): `reboot` is not an admin op; known: echo, stats, status, load_partitions"),
            "{e}"
        );
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(
            load("LOG_FORMAT = JSON\n", &[]).unwrap().log_format,
            LogFormat::Json
        );
        let e = load("LOG_FORMAT = xml\n", &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("LOG_FORMAT (from the config file): `xml` is not one of text, json"),
            "{e}"
        );
        let e = load("METRICS_PORT = 9300\nMETRICS_BIND = localhost\n", &[]).unwrap_err();
        assert!(e.to_string().contains("METRICS_BIND"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "SERVER_PORT = 9200\nDISK_DOC_ROOT = /from/file\n",
            &[
                ("THRUDOC_SERVER_PORT", "9300"),
                ("THRUDOC_DISK_DOC_ROOT", "/from/env"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.port, 9300);
        let Backend::Disk(d) = c.backend else {
            panic!()
        };
        assert_eq!(d.doc_root, PathBuf::from("/from/env"));
    }

    #[test]
    fn bad_values_name_the_key_and_origin() {
        let e = load("SERVER_PORT = 70000\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("SERVER_PORT (from the config file)"),
            "{e}"
        );
        let e = load("", &[("THRUDOC_MAX_FRAME_SIZE", "lots")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("MAX_FRAME_SIZE (from the environment)"),
            "{e}"
        );
        assert!(
            e.to_string().contains("`lots` is not a whole number"),
            "{e}"
        );
        for (text, key) in [
            ("BACKEND = cassandra", "BACKEND"),
            ("SERVER_BIND = localhost:1", "SERVER_BIND"),
            ("LOG_LEVEL = loud", "LOG_LEVEL"),
            ("DISK_BUCKETS = ok, bad;name", "DISK_BUCKETS"),
            ("DISK_BUCKETS = ,", "DISK_BUCKETS"),
            ("DISK_MAX_VALUE_SIZE = 0", "DISK_MAX_VALUE_SIZE"),
            (
                "MAX_FRAME_SIZE = 1048576\nDISK_MAX_VALUE_SIZE = 1048576",
                "DISK_MAX_VALUE_SIZE",
            ),
            ("MAX_CONNECTIONS = 0", "MAX_CONNECTIONS"),
            ("BACKEND = mysql", "MYSQL_MASTER_HOST"),
            (
                "BACKEND = mysql\nMYSQL_MASTER_HOST = h\nMYSQL_DIRECTORY_DB = a`b",
                "MYSQL_DIRECTORY_DB",
            ),
        ] {
            let e = load(text, &[]).expect_err(text);
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = load("SERVER_PORT = 1\nthis is not a pair\n", &[]).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = load("BAD KEY = 1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let c = load("DISK_NUM_PARTITIONS = 4\n", &[("THRUDOC_NO_SUCH", "1")]).unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("DISK_NUM_PARTITIONS")));
        assert!(c.warnings.iter().any(|w| w.contains("NO_SUCH")));
    }

    #[test]
    fn mysql_keys_and_secret_redaction() {
        let c = load(
            "BACKEND = mysql\nMYSQL_MASTER_HOST = db1\nMYSQL_MASTER_PORT = 3307\nMYSQL_SLAVE_HOST = db2\n\
             MYSQL_DIRECTORY_DB = thrudoc\nMYSQL_USERNAME = svc\nMYSQL_PASSWORD = hunter2\n",
            &[],
        )
        .unwrap();
        let Backend::Mysql(m) = &c.backend else {
            panic!()
        };
        assert_eq!(m.master.to_string(), "db1:3307");
        assert_eq!(
            m.slave.as_ref().map(ToString::to_string).as_deref(),
            Some("db2:3306")
        );
        assert_eq!(m.password.expose(), "hunter2");
        let shown = format!("{c:?} {}", m.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn password_from_file_and_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let base = "BACKEND = mysql\nMYSQL_MASTER_HOST = db1\n";
        let tls = |extra: &str| load(&format!("{base}{extra}"), &[]);
        let Backend::Mysql(m) = tls("").unwrap().backend else {
            panic!()
        };
        assert_eq!(m.tls, MysqlTls::Off);
        let e = tls("MYSQL_TLS = verify\n").unwrap_err();
        assert!(e.to_string().contains("MYSQL_TLS_CA_FILE"), "{e}");
        let e = tls("MYSQL_TLS = verify\nMYSQL_TLS_CA_FILE = /no/such/ca.pem\n").unwrap_err();
        assert!(e.to_string().contains("cannot read /no/such/ca.pem"), "{e}");
        let e = tls("MYSQL_TLS = maybe\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("`maybe` is not one of off, required, verify"),
            "{e}"
        );
        let c = load(
            &format!("{base}MYSQL_PASSWORD_FILE = {}\n", file.display()),
            &[],
        )
        .unwrap();
        let Backend::Mysql(m) = &c.backend else {
            panic!()
        };
        assert_eq!(m.password.expose(), "s3cret");
        let e = load(
            &format!(
                "{base}MYSQL_PASSWORD = x\nMYSQL_PASSWORD_FILE = {}\n",
                file.display()
            ),
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = load(&format!("{base}MYSQL_PASSWORD_FILE = /no/such/file\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("MYSQL_PASSWORD_FILE"), "{e}");
    }

    #[test]
    fn shipped_conf_documents_every_key_and_is_valid() {
        let text = include_str!("../../conf/thrudoc.conf");
        let c = load(text, &[]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for Key {
            name: key, default, ..
        } in KEYS
        {
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches('#').trim();
                l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
            });
            assert!(documented, "conf/thrudoc.conf does not document {key}");
            if let Some(d) = default {
                assert!(
                    text.contains(&format!("{key} = {d}"))
                        || text.contains(&format!("(default {d})")),
                    "conf/thrudoc.conf does not give {key}'s default {d}"
                );
            }
        }
    }
}
