//! `thrudoc.conf`: parsed, then validated into a typed [`Config`].
//!
//! The file has the original Thrudoc's shape: `KEY = VALUE` lines, `#` comments, blank lines.
//! Any key can be overridden by the environment variable `THRUDOC_<KEY>`. Layering is done by
//! the `config` crate (the file through [`KeyValueFormat`], then the environment); every value
//! is then parsed here, so that an error names the key and where its value came from.
//!
//! Unknown keys are reported as warnings (a conf written for another backend of the original
//! still starts), bad values are errors. Passwords are held in [`Secret`], which never prints
//! its value, and may come from a file (`MYSQL_PASSWORD_FILE`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::rules::{check_bucket_name, is_sql_name};

/// Every key this server reads, with its default (`None`: no default) and what it is for.
/// `conf/thrudoc.conf` documents the same keys; a test keeps the two in step.
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    (
        "BACKEND",
        Some("disk"),
        "storage backend: disk (embedded SQLite) or mysql",
    ),
    ("SERVER_BIND", Some("127.0.0.1"), "address to listen on"),
    (
        "SERVER_PORT",
        Some("9091"),
        "Thrift port; 0 picks a free one",
    ),
    (
        "MAX_CONNECTIONS",
        Some("16384"),
        "client connections served at once; more are closed",
    ),
    (
        "MAX_FRAME_SIZE",
        Some("16777216"),
        "largest Thrift message accepted, bytes",
    ),
    (
        "MAX_SCAN_COUNT",
        Some("10000"),
        "largest `count` a scan may ask for",
    ),
    (
        "MAX_BATCH_SIZE",
        Some("10000"),
        "most elements in one putList/getList/removeList/putValueList",
    ),
    (
        "IDLE_TIMEOUT",
        Some("0"),
        "seconds before an idle client connection is closed; 0: never",
    ),
    (
        "SHUTDOWN_TIMEOUT",
        Some("10"),
        "seconds to finish requests in flight on SIGINT/SIGTERM",
    ),
    (
        "LOG_LEVEL",
        Some("info"),
        "error, warn, info, debug or trace (RUST_LOG overrides)",
    ),
    (
        "DISK_DOC_ROOT",
        Some("thrudoc-data"),
        "directory of the embedded store's files",
    ),
    (
        "DISK_BUCKETS",
        Some("data"),
        "comma-separated buckets of the embedded store, created at start",
    ),
    (
        "DISK_MAX_VALUE_SIZE",
        Some("1048576"),
        "largest value of the embedded store, bytes",
    ),
    ("MYSQL_MASTER_HOST", None, "directory database master host"),
    (
        "MYSQL_MASTER_PORT",
        Some("3306"),
        "directory database master port",
    ),
    (
        "MYSQL_SLAVE_HOST",
        None,
        "directory database sibling host, read when the master is down",
    ),
    (
        "MYSQL_SLAVE_PORT",
        Some("3306"),
        "directory database sibling port",
    ),
    (
        "MYSQL_DIRECTORY_DB",
        Some("thrudoc"),
        "schema of the directory tables and datatables",
    ),
    ("MYSQL_USERNAME", Some("thrudoc"), "service account"),
    (
        "MYSQL_PASSWORD",
        None,
        "service account password (or MYSQL_PASSWORD_FILE)",
    ),
    (
        "MYSQL_PASSWORD_FILE",
        None,
        "file whose first line is the service account password",
    ),
    (
        "MYSQL_MAX_VALUES_SIZE",
        Some("1048576"),
        "largest value of the mysql backend, bytes",
    ),
    (
        "MYSQL_CONNECT_TIMEOUT_MS",
        Some("1000"),
        "milliseconds to open a connection to a MySQL host",
    ),
    (
        "MYSQL_QUERY_TIMEOUT_MS",
        Some("3000"),
        "milliseconds one statement may take",
    ),
    (
        "MYSQL_POOL_SIZE",
        Some("32"),
        "most open connections per MySQL host",
    ),
    (
        "MYSQL_DIRECTORY_POLL_MS",
        Some("1000"),
        "milliseconds between directory version checks",
    ),
    (
        "MYSQL_DIRECTORY_LEASE_MS",
        Some("5000"),
        "writes stop when the directory was not confirmed for this long",
    ),
    (
        "HEALTH_PROBE_INTERVAL_MS",
        Some("250"),
        "milliseconds between health probes of each MySQL host",
    ),
    (
        "HEALTH_PROBE_TIMEOUT_MS",
        Some("500"),
        "milliseconds a health probe may take",
    ),
    (
        "HEALTH_FALL_THRESHOLD",
        Some("2"),
        "failed probes in a row that mark a host down",
    ),
    (
        "HEALTH_RISE_THRESHOLD",
        Some("3"),
        "answered probes in a row that mark a host up again",
    ),
];

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
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub fall_threshold: u32,
    pub rise_threshold: u32,
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
}

/// Limits the service applies to every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_scan_count: usize,
    pub max_batch_size: usize,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    pub server: ServerConfig,
    pub limits: Limits,
    pub log_level: String,
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
        let raw = layer(text, env)?;
        validate(raw)
    }

    /// The configuration with every default (an empty file, no environment).
    pub fn defaults() -> Config {
        Config::from_sources("", std::iter::empty()).expect("the defaults are valid")
    }
}

const ENV_PREFIX: &str = "THRUDOC_";

/// The file format of the original Thrudoc: `KEY = VALUE`, `#` comments. Keys are handed to
/// the `config` crate in lower case, the case its environment source produces.
#[derive(Debug, Clone, Copy)]
pub struct KeyValueFormat;

impl config::Format for KeyValueFormat {
    fn parse(
        &self,
        _uri: Option<&String>,
        text: &str,
    ) -> std::result::Result<
        config::Map<String, config::Value>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let origin = String::from("the config file");
        let mut map = config::Map::new();
        for (key, value) in parse_lines(text)? {
            map.insert(
                key.to_ascii_lowercase(),
                config::Value::new(Some(&origin), value),
            );
        }
        Ok(map)
    }
}

impl config::FileStoredFormat for KeyValueFormat {
    fn file_extensions(&self) -> &'static [&'static str] {
        &["conf"]
    }
}

/// `KEY = VALUE` lines to pairs; errors name the line.
fn parse_lines(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::config(format!(
                "line {}: expected `KEY = VALUE`, found `{}`",
                n + 1,
                line.chars().take(60).collect::<String>()
            )));
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::config(format!(
                "line {}: `{key}` is not a valid key",
                n + 1
            )));
        }
        pairs.push((key.to_ascii_uppercase(), value.trim().to_string()));
    }
    Ok(pairs)
}

/// A raw value with where it came from, for error messages.
struct Raw {
    value: String,
    origin: &'static str,
}

/// File first, environment on top. Returns upper-case keys.
fn layer(text: &str, env: HashMap<String, String>) -> Result<BTreeMap<String, Raw>> {
    use config::Source as _;
    // Parse once here for line-numbered errors; the config crate re-parses through the Format.
    parse_lines(text)?;
    let env_keys: Vec<String> = env
        .keys()
        .map(|k| k[ENV_PREFIX.len()..].to_ascii_uppercase())
        .collect();
    let layered = config::Config::builder()
        .add_source(config::File::from_str(text, KeyValueFormat))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
                .prefix_separator("_")
                .source(Some(env.into_iter().collect())),
        )
        .build()
        .map_err(|e| Error::config("cannot layer the configuration").with_source(e))?;
    let table = layered
        .collect()
        .map_err(|e| Error::config("cannot read the configuration").with_source(e))?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        let key = key.to_ascii_uppercase();
        let origin = if env_keys.contains(&key) {
            "the environment"
        } else {
            "the config file"
        };
        let value = value
            .into_string()
            .map_err(|_| Error::config(format!("{key}: the value is not text")))?;
        raw.insert(key, Raw { value, origin });
    }
    Ok(raw)
}

/// Typed access to raw values, with errors that name the key.
struct Values {
    raw: BTreeMap<String, Raw>,
}

impl Values {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some(r) = self.raw.get(key) {
            return Some(r.value.as_str());
        }
        KEYS.iter()
            .find(|(k, _, _)| *k == key)
            .and_then(|(_, d, _)| *d)
    }

    fn bad(&self, key: &str, why: impl fmt::Display) -> Error {
        let origin = self.raw.get(key).map_or("the defaults", |r| r.origin);
        Error::config(format!("{key} (from {origin}): {why}"))
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    fn required(&self, key: &str) -> Result<String> {
        self.string(key).ok_or_else(|| self.bad(key, "is required"))
    }

    fn number(&self, key: &str, min: u64, max: u64) -> Result<u64> {
        let text = self.required(key)?;
        let n: u64 = text
            .parse()
            .map_err(|_| self.bad(key, format!("`{text}` is not a whole number")))?;
        if n < min || n > max {
            return Err(self.bad(key, format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }

    fn size(&self, key: &str, min: u64, max: u64) -> Result<usize> {
        // Bounds are far below usize::MAX on every supported target.
        Ok(self.number(key, min, max)? as usize)
    }

    fn millis(&self, key: &str, min: u64, max: u64) -> Result<Duration> {
        Ok(Duration::from_millis(self.number(key, min, max)?))
    }

    fn port(&self, key: &str) -> Result<u16> {
        Ok(self.number(key, 1, 65535)? as u16)
    }
}

fn validate(raw: BTreeMap<String, Raw>) -> Result<Config> {
    let mut warnings = Vec::new();
    for key in raw.keys() {
        if !KEYS.iter().any(|(k, _, _)| k == key) {
            warnings.push(format!("unknown key {key} (ignored)"));
        }
    }
    let v = Values { raw };

    let bind_text = v.required("SERVER_BIND")?;
    let bind = bind_text
        .parse()
        .map_err(|_| v.bad("SERVER_BIND", format!("`{bind_text}` is not an IP address")))?;
    let idle = v.number("IDLE_TIMEOUT", 0, 86_400 * 365)?;
    let server = ServerConfig {
        bind,
        // 0 asks the system for a free port; the server prints the one it got.
        port: v.number("SERVER_PORT", 0, 65535)? as u16,
        max_connections: v.size("MAX_CONNECTIONS", 1, 1_000_000)?,
        max_frame_size: v.size("MAX_FRAME_SIZE", 1024, 1 << 30)?,
        idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        shutdown_timeout: Duration::from_secs(v.number("SHUTDOWN_TIMEOUT", 0, 3600)?),
    };
    let limits = Limits {
        max_scan_count: v.size("MAX_SCAN_COUNT", 1, 1_000_000)?,
        max_batch_size: v.size("MAX_BATCH_SIZE", 1, crate::codec::MAX_LIST_ELEMENTS as u64)?,
    };
    let log_level = v.required("LOG_LEVEL")?.to_ascii_lowercase();
    if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
        return Err(v.bad(
            "LOG_LEVEL",
            format!("`{log_level}` is not one of error, warn, info, debug, trace"),
        ));
    }

    // Both backends' keys are checked whichever is chosen, so a typo shows before a switch.
    let disk = disk_config(&v, &server)?;
    let mysql = mysql_config(&v, &server);
    let backend = match v.required("BACKEND")?.to_ascii_lowercase().as_str() {
        "disk" => Backend::Disk(disk),
        "mysql" => Backend::Mysql(mysql?),
        other => return Err(v.bad("BACKEND", format!("`{other}` is not one of disk, mysql"))),
    };
    Ok(Config {
        backend,
        server,
        limits,
        log_level,
        warnings,
    })
}

/// Values must fit in one message with room for the rest of the call.
fn max_value_for(server: &ServerConfig) -> u64 {
    (server.max_frame_size as u64).saturating_sub(64 * 1024)
}

fn disk_config(v: &Values, server: &ServerConfig) -> Result<DiskConfig> {
    let buckets: Vec<String> = v
        .required("DISK_BUCKETS")?
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if buckets.is_empty() {
        return Err(v.bad("DISK_BUCKETS", "names no bucket"));
    }
    for b in &buckets {
        if let Err(why) = check_bucket_name(b) {
            return Err(v.bad("DISK_BUCKETS", why));
        }
    }
    let limit = max_value_for(server);
    Ok(DiskConfig {
        doc_root: PathBuf::from(v.required("DISK_DOC_ROOT")?),
        buckets,
        max_value_size: v
            .size("DISK_MAX_VALUE_SIZE", 1, limit)
            .map_err(|e| e.context("DISK_MAX_VALUE_SIZE must fit in MAX_FRAME_SIZE less 64 KiB"))?,
    })
}

fn mysql_config(v: &Values, server: &ServerConfig) -> Result<MysqlConfig> {
    let password = match (v.raw.get("MYSQL_PASSWORD"), v.string("MYSQL_PASSWORD_FILE")) {
        (Some(_), Some(_)) => {
            return Err(v.bad(
                "MYSQL_PASSWORD",
                "give MYSQL_PASSWORD or MYSQL_PASSWORD_FILE, not both",
            ))
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| v.bad("MYSQL_PASSWORD_FILE", format!("cannot read {file}: {e}")))?;
            Secret::new(text.lines().next().unwrap_or_default())
        }
        (Some(p), None) => Secret::new(p.value.as_str()),
        (None, None) => Secret::default(),
    };
    let db = v.required("MYSQL_DIRECTORY_DB")?;
    if !is_sql_name(&db) {
        return Err(v.bad(
            "MYSQL_DIRECTORY_DB",
            "use letters, digits and _ (at most 64)",
        ));
    }
    Ok(MysqlConfig {
        master: HostAddr::new(
            &v.required("MYSQL_MASTER_HOST")?,
            v.port("MYSQL_MASTER_PORT")?,
        )
        .map_err(|e| v.bad("MYSQL_MASTER_HOST", e))?,
        slave: match v.string("MYSQL_SLAVE_HOST") {
            Some(host) => Some(
                HostAddr::new(&host, v.port("MYSQL_SLAVE_PORT")?)
                    .map_err(|e| v.bad("MYSQL_SLAVE_HOST", e))?,
            ),
            None => None,
        },
        directory_db: db,
        username: v.required("MYSQL_USERNAME")?,
        password,
        max_value_size: v.size("MYSQL_MAX_VALUES_SIZE", 1, max_value_for(server))?,
        connect_timeout: v.millis("MYSQL_CONNECT_TIMEOUT_MS", 10, 600_000)?,
        query_timeout: v.millis("MYSQL_QUERY_TIMEOUT_MS", 10, 3_600_000)?,
        pool_size: v.size("MYSQL_POOL_SIZE", 1, 10_000)?,
        directory_poll: v.millis("MYSQL_DIRECTORY_POLL_MS", 10, 3_600_000)?,
        directory_lease: v.millis("MYSQL_DIRECTORY_LEASE_MS", 100, 86_400_000)?,
        probe_interval: v.millis("HEALTH_PROBE_INTERVAL_MS", 10, 600_000)?,
        probe_timeout: v.millis("HEALTH_PROBE_TIMEOUT_MS", 10, 600_000)?,
        fall_threshold: v.number("HEALTH_FALL_THRESHOLD", 1, 1000)? as u32,
        rise_threshold: v.number("HEALTH_RISE_THRESHOLD", 1, 1000)? as u32,
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
        let text = include_str!("../conf/thrudoc.conf");
        let c = load(text, &[]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for (key, default, _) in KEYS {
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
