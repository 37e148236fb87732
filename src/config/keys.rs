//! Every key of `thrudoc.conf`, declared once: its name, its default, the bounds of its value
//! when it is a number, and the line that documents it. Validation reads values through these
//! declarations (so a key's name is never written twice); `conf/thrudoc.conf` documents the
//! same keys, and a test keeps the two in step.

/// One key of `thrudoc.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// `None`: no default.
    pub default: Option<&'static str>,
    /// Smallest and largest value, for keys whose value is a whole number.
    pub bounds: Option<(u64, u64)>,
    pub doc: &'static str,
}

macro_rules! keys {
    ($($name:ident: $default:expr, $bounds:expr, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub const $name: Key = Key {
                name: stringify!($name),
                default: $default,
                bounds: $bounds,
                doc: $doc,
            };
        )*
        /// Every key, in the order `conf/thrudoc.conf` documents them.
        pub const KEYS: &[Key] = &[$($name),*];
    };
}

const fn n(min: u64, max: u64) -> Option<(u64, u64)> {
    Some((min, max))
}

const TEXT: Option<(u64, u64)> = None;

keys! {
    BACKEND: Some("disk"), TEXT, "storage backend: disk (embedded SQLite) or mysql";
    SERVER_BIND: Some("127.0.0.1"), TEXT, "address to listen on";
    SERVER_PORT: Some("9091"), n(0, 65535), "Thrift port; 0 picks a free one";
    TLS_CERT_FILE: None, TEXT, "PEM certificate chain: with TLS_KEY_FILE, SERVER_PORT speaks TLS beside plain Thrift";
    TLS_KEY_FILE: None, TEXT, "PEM private key of TLS_CERT_FILE";
    TLS_CLIENT_CA_FILE: None, TEXT, "PEM CA certificates: clients must show a certificate one of them signed (mutual TLS); plaintext is refused";
    TLS_REQUIRED: Some("false"), TEXT, "true: plaintext Thrift connections are refused (needs TLS_CERT_FILE)";
    MAX_CONNECTIONS: Some("16384"), n(1, 1_000_000), "client connections served at once; more are closed";
    MAX_FRAME_SIZE: Some("16777216"), n(1024, 1 << 30), "largest Thrift message accepted, bytes";
    MAX_SCAN_COUNT: Some("10000"), n(1, 1_000_000), "largest `count` a scan may ask for";
    MAX_BATCH_SIZE: Some("10000"), n(1, crate::codec::MAX_LIST_ELEMENTS as u64), "most elements in one putList/getList/removeList/putValueList";
    IDLE_TIMEOUT: Some("0"), n(0, 86_400 * 365), "seconds before an idle client connection is closed; 0: never";
    SHUTDOWN_TIMEOUT: Some("10"), n(0, 3600), "seconds to finish requests in flight on SIGINT/SIGTERM";
    ADMIN_OPS: Some("echo, stats, status, load_partitions"), TEXT, "admin ops this server answers (leave out load_partitions to refuse every change over the network)";
    LOG_LEVEL: Some("info"), TEXT, "error, warn, info, debug or trace (RUST_LOG overrides)";
    LOG_FORMAT: Some("text"), TEXT, "text (one readable line per event) or json (one JSON object per line)";
    METRICS_BIND: Some("127.0.0.1"), TEXT, "address of the operator's port: /metrics (Prometheus) and / (status page)";
    METRICS_PORT: None, n(0, 65535), "operator's port; unset: off; 0 picks a free one";
    DISK_DOC_ROOT: Some("thrudoc-data"), TEXT, "directory of the embedded store's files";
    DISK_BUCKETS: Some("data"), TEXT, "comma-separated buckets of the embedded store, created at start";
    DISK_MAX_VALUE_SIZE: Some("1048576"), n(1, 1 << 30), "largest value of the embedded store, bytes (at most MAX_FRAME_SIZE less 64 KiB)";
    MYSQL_MASTER_HOST: None, TEXT, "directory database master host";
    MYSQL_MASTER_PORT: Some("3306"), n(1, 65535), "directory database master port";
    MYSQL_SLAVE_HOST: None, TEXT, "directory database sibling host, read when the master is down";
    MYSQL_SLAVE_PORT: Some("3306"), n(1, 65535), "directory database sibling port";
    MYSQL_DIRECTORY_DB: Some("thrudoc"), TEXT, "schema of the directory tables and datatables";
    MYSQL_USERNAME: Some("thrudoc"), TEXT, "service account";
    MYSQL_PASSWORD: None, TEXT, "service account password (or MYSQL_PASSWORD_FILE)";
    MYSQL_PASSWORD_FILE: None, TEXT, "file whose first line is the service account password";
    MYSQL_TLS: Some("off"), TEXT, "TLS to the MySQL hosts: off, required (encrypted, certificate not checked) or verify (checked against MYSQL_TLS_CA_FILE and the host name)";
    MYSQL_TLS_CA_FILE: None, TEXT, "PEM CA certificates the MySQL hosts' certificates are checked against (MYSQL_TLS = verify)";
    MYSQL_MAX_VALUES_SIZE: Some("1048576"), n(1, 1 << 30), "largest value of the mysql backend, bytes (at most MAX_FRAME_SIZE less 64 KiB)";
    MYSQL_CONNECT_TIMEOUT_MS: Some("1000"), n(10, 600_000), "milliseconds to open a connection to a MySQL host";
    MYSQL_QUERY_TIMEOUT_MS: Some("3000"), n(10, 3_600_000), "milliseconds one statement may take";
    MYSQL_POOL_SIZE: Some("32"), n(1, 10_000), "most open connections per MySQL host";
    MYSQL_DIRECTORY_POLL_MS: Some("1000"), n(10, 3_600_000), "milliseconds between directory version checks";
    MYSQL_DIRECTORY_LEASE_MS: Some("5000"), n(100, 86_400_000), "writes stop when the directory was not confirmed for this long";
    MYSQL_MOVE_WAIT_MS: Some("3000"), n(0, 600_000), "milliseconds a request to a partition being moved waits for the move's cutover";
    HEALTH_PROBE_INTERVAL_MS: Some("250"), n(10, 600_000), "milliseconds between health probes of each MySQL host";
    HEALTH_PROBE_TIMEOUT_MS: Some("500"), n(10, 600_000), "milliseconds a health probe may take";
    HEALTH_FALL_THRESHOLD: Some("2"), n(1, 1000), "failed probes in a row that mark a host down";
    HEALTH_RISE_THRESHOLD: Some("3"), n(1, 1000), "answered probes in a row that mark a host up again";
    FAILOVER_READS: Some("consistent"), TEXT, "reads of a partition whose master is down: consistent (only from a sibling that has applied what they must show) or stale (from the sibling as it is)";
    FAILOVER_READ_WAIT_MS: Some("1000"), n(0, 600_000), "milliseconds a consistent read waits for the sibling to apply the master's writes";
    FAILOVER_MAX_LAG_MS: Some("5000"), n(0, 86_400_000), "a sibling that has lacked the master's writes for longer serves no consistent reads";
}

/// The declaration of the key named `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
