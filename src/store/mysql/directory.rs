//! The directory: which host holds which partition of which bucket.
//!
//! It lives in `MYSQL_DIRECTORY_DB` on the directory master, in the original Thrudoc's tables
//! (`host`, `directory`) plus two added beside them (`bucket`: the hash each bucket places keys
//! with; `directory_version`: a counter every change bumps). A server holds it as one
//! immutable, versioned [`Directory`] value and swaps it atomically when the version moves;
//! an original directory without the added tables is served as it is (FNV placement, change
//! detection by fingerprint).
//!
//! Every change to the directory goes through [`bump_version`] in the same transaction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use mysql_async::prelude::Queryable;

use super::placement::{partition_index, HashKind};
use super::sql::Statements;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::failure::Cause;
use crate::mysql::{code, HostAddr};
use crate::rules::{check_bucket_name, is_sql_name};

/// DDL of the directory tables, in creation order. `IF NOT EXISTS` everywhere: the statements
/// replicate to the directory's sibling, and re-running create-tablename must be harmless.
pub const DIRECTORY_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS host (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        hostname VARCHAR(255) NOT NULL,
        port INT UNSIGNED NOT NULL DEFAULT 3306,
        slave_id INT UNSIGNED NULL,
        UNIQUE KEY host_address (hostname, port)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS directory (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        bucket VARCHAR(64) NOT NULL,
        `start` DOUBLE NOT NULL,
        `end` DOUBLE NOT NULL,
        host_id INT UNSIGNED NOT NULL,
        db VARCHAR(64) NOT NULL,
        datatable VARCHAR(64) NOT NULL,
        created_at DATETIME NOT NULL,
        retired_at DATETIME NULL,
        KEY live_partitions (bucket, retired_at, `end`)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS bucket (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        hash VARCHAR(16) NOT NULL,
        created_at DATETIME NOT NULL
    ) ENGINE=InnoDB",
    // Partitions that take no writes for now (a planned switchover moving them); servers refuse
    // writes to them with READ_ONLY.
    "CREATE TABLE IF NOT EXISTS partition_frozen (
        directory_id INT UNSIGNED NOT NULL PRIMARY KEY,
        reason VARCHAR(255) NOT NULL,
        frozen_at DATETIME NOT NULL
    ) ENGINE=InnoDB",
    // Partitions a manual failover moved off their home host, so switchover can take them back.
    "CREATE TABLE IF NOT EXISTS partition_moved (
        directory_id INT UNSIGNED NOT NULL PRIMARY KEY,
        home_host_id INT UNSIGNED NOT NULL,
        moved_at DATETIME NOT NULL
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS directory_version (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        version BIGINT UNSIGNED NOT NULL
    ) ENGINE=InnoDB",
    // A move, split or merge of partitions (`thrudoc-admin move|split|merge`): its state lives
    // here, so that a tool killed on the way can resume or undo it. Servers never read it.
    "CREATE TABLE IF NOT EXISTS reshape (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        bucket VARCHAR(64) NOT NULL,
        kind VARCHAR(8) NOT NULL,
        state VARCHAR(16) NOT NULL,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL,
        finished_at DATETIME NULL,
        KEY reshape_state (state)
    ) ENGINE=InnoDB",
    // The partitions of a reshape: its sources (live until the cutover; `host_id` is where
    // their changes are captured, `copied_to` the copy's checkpoint) and its targets (directory
    // rows that stay retired, so no server loads them, until the cutover makes them live).
    "CREATE TABLE IF NOT EXISTS reshape_partition (
        reshape_id INT UNSIGNED NOT NULL,
        directory_id INT UNSIGNED NOT NULL,
        role VARCHAR(8) NOT NULL,
        host_id INT UNSIGNED NOT NULL,
        copied_to VARBINARY(255) NULL,
        copy_done TINYINT NOT NULL DEFAULT 0,
        PRIMARY KEY (reshape_id, directory_id),
        KEY reshape_by_partition (directory_id)
    ) ENGINE=InnoDB",
];

/// The tables of [`DIRECTORY_DDL`] by name, for finding out which an older directory lacks.
pub const DIRECTORY_TABLES: &[&str] = &[
    "host",
    "directory",
    "bucket",
    "partition_frozen",
    "partition_moved",
    "directory_version",
    "reshape",
    "reshape_partition",
];

/// DDL of one datatable. `k` compares bytewise (VARBINARY), so scans walk keys in byte order.
pub fn datatable_ddl(db: &str, table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{db}`.`{table}` (
            k VARBINARY(255) NOT NULL PRIMARY KEY,
            v LONGBLOB NOT NULL,
            modified_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ) ENGINE=InnoDB"
    )
}

/// The name of the datatable of directory row `id`.
pub fn datatable_name(id: u64) -> String {
    format!("d_{id:012}")
}

/// Bumps the directory version inside the caller's transaction. Every change to the directory
/// calls it, so servers notice within one poll.
pub async fn bump_version(tx: &mut mysql_async::Transaction<'_>) -> Result<u64> {
    tx.query_drop(
        "INSERT INTO directory_version (id, version) VALUES (1, 1)
         ON DUPLICATE KEY UPDATE version = version + 1",
    )
    .await
    .map_err(|e| {
        Error::new(ErrorKind::Unavailable, "bumping the directory version").with_source(e)
    })?;
    let version: Option<u64> = tx
        .query_first("SELECT version FROM directory_version WHERE id = 1")
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Unavailable, "reading the directory version").with_source(e)
        })?;
    Ok(version.unwrap_or(1))
}

/// A data host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub id: u32,
    pub hostname: String,
    pub port: u16,
    /// The sibling holding a copy of this host's partitions.
    pub slave_id: Option<u32>,
}

impl Host {
    /// The host's address. Not checked as an operator's `--hosts` are: the directory is
    /// served as it is, and this only routes to it.
    pub fn address(&self) -> HostAddr {
        HostAddr {
            host: self.hostname.clone(),
            port: self.port,
        }
    }
}

/// One live partition: a range of hash points stored in one table on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// The directory row's id.
    pub id: u64,
    pub start: f64,
    pub end: f64,
    pub host_id: u32,
    pub db: String,
    pub datatable: String,
    /// `` `db`.`datatable` ``, ready for SQL text (both checked by [`is_sql_name`]).
    pub table_sql: String,
    /// The table's statements, formatted once per load.
    pub sql: Arc<Statements>,
    /// Why writes are refused for now (`partition_frozen`), if they are.
    pub frozen: Option<String>,
}

/// A bucket's live partitions, in order of `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub hash: HashKind,
    pub partitions: Vec<Partition>,
    ends: Vec<f64>,
}

impl Bucket {
    /// The index (in [`Bucket::partitions`]) of the partition that holds `key`.
    pub fn locate(&self, key: &[u8]) -> usize {
        partition_index(&self.ends, self.hash.point(key))
    }
}

/// The whole directory at one version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Directory {
    /// The `directory_version` counter, or a fingerprint for an original directory.
    pub version: u64,
    pub hosts: BTreeMap<u32, Host>,
    pub buckets: BTreeMap<String, Bucket>,
    /// Buckets whose rows do not form a valid directory, with why; they are not served.
    pub invalid: BTreeMap<String, String>,
    /// False until a directory has been read (a server started while neither directory host
    /// answered has none yet).
    pub loaded: bool,
}

impl fmt::Display for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "directory version {}: {} hosts, {} buckets, {} partitions",
            self.version,
            self.hosts.len(),
            self.buckets.len(),
            self.buckets
                .values()
                .map(|b| b.partitions.len())
                .sum::<usize>()
        )
    }
}

/// One row of `directory`, as loaded.
#[derive(Debug, Clone)]
pub struct PartitionRow {
    pub id: u64,
    pub frozen: Option<String>,
    pub bucket: String,
    pub start: f64,
    pub end: f64,
    pub host_id: u32,
    pub db: String,
    pub datatable: String,
}

impl Directory {
    /// Builds a directory from its rows, checking each bucket: valid names, ranges from 0 to 1
    /// without gaps or overlaps, known hosts. A bucket that fails is listed in `invalid` and not
    /// served; the others are.
    pub fn build(
        version: u64,
        hosts: Vec<Host>,
        rows: Vec<PartitionRow>,
        hashes: &HashMap<String, HashKind>,
    ) -> Directory {
        let hosts: BTreeMap<u32, Host> = hosts.into_iter().map(|h| (h.id, h)).collect();
        let mut by_bucket: BTreeMap<String, Vec<PartitionRow>> = BTreeMap::new();
        for row in rows {
            by_bucket.entry(row.bucket.clone()).or_default().push(row);
        }
        let mut dir = Directory {
            version,
            hosts,
            loaded: true,
            ..Directory::default()
        };
        for (name, mut rows) in by_bucket {
            rows.sort_by(|a, b| a.end.total_cmp(&b.end).then(a.id.cmp(&b.id)));
            // An original directory has no `bucket` table: its buckets use the original hash.
            let hash = hashes.get(&name).copied().unwrap_or(HashKind::Fnv32);
            match check_bucket(&name, &rows, &dir.hosts) {
                Ok(()) => {
                    let partitions: Vec<Partition> = rows
                        .into_iter()
                        .map(|r| Partition {
                            table_sql: format!("`{}`.`{}`", r.db, r.datatable),
                            sql: Arc::new(Statements::for_table(&format!(
                                "`{}`.`{}`",
                                r.db, r.datatable
                            ))),
                            id: r.id,
                            start: r.start,
                            end: r.end,
                            host_id: r.host_id,
                            db: r.db,
                            datatable: r.datatable,
                            frozen: r.frozen,
                        })
                        .collect();
                    let ends = partitions.iter().map(|p| p.end).collect();
                    dir.buckets.insert(
                        name.clone(),
                        Bucket {
                            name,
                            hash,
                            partitions,
                            ends,
                        },
                    );
                }
                Err(why) => {
                    dir.invalid.insert(name, why);
                }
            }
        }
        dir
    }

    /// The bucket named `name`, or [`ErrorKind::NoSuchBucket`].
    pub fn bucket(&self, name: &str) -> Result<&Bucket> {
        self.check_loaded()?;
        self.buckets
            .get(name)
            .ok_or_else(|| match self.invalid.get(name) {
                Some(why) => Error::new(
                    ErrorKind::Unavailable,
                    format!("bucket `{name}` has an invalid directory: {why}"),
                ),
                None => Error::new(ErrorKind::NoSuchBucket, format!("no bucket `{name}`")),
            })
    }

    /// [`ErrorKind::Unavailable`] until a directory has been read.
    pub fn check_loaded(&self) -> Result<()> {
        if self.loaded {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Unavailable,
                "the directory has not been read yet: waiting for its master or its sibling to \
                 answer; nothing was done",
            ))
        }
    }

    /// Loads the directory from `MYSQL_DIRECTORY_DB` over `conn` (whose default schema is it).
    ///
    /// Every table is read in one consistent snapshot, so the rows and the version agree even
    /// while an admin command changes them.
    pub async fn load(conn: &mut mysql_async::Conn) -> Result<Directory> {
        let opts = mysql_async::TxOpts::default()
            .with_consistent_snapshot(true)
            .with_readonly(true)
            .clone();
        let mut tx = conn.start_transaction(opts).await.map_err(load_error)?;
        let directory = Self::read(&mut tx).await?;
        tx.commit().await.map_err(load_error)?;
        Ok(directory)
    }

    async fn read<Q: Queryable + Send>(conn: &mut Q) -> Result<Directory> {
        let hosts: Vec<(u32, String, u16, Option<u32>)> = conn
            .query("SELECT id, hostname, port, slave_id FROM host ORDER BY id")
            .await
            .map_err(load_error)?;
        let hosts = hosts
            .into_iter()
            .map(|(id, hostname, port, slave_id)| Host {
                id,
                hostname,
                port,
                slave_id,
            })
            .collect();
        let rows: Vec<(u64, String, f64, f64, u32, String, String)> = conn
            .query(
                "SELECT id, bucket, CAST(`start` AS DOUBLE), CAST(`end` AS DOUBLE), host_id, db, datatable
                 FROM directory WHERE retired_at IS NULL",
            )
            .await
            .map_err(load_error)?;
        let frozen: HashMap<u64, String> = match conn
            .query::<(u64, String), _>("SELECT directory_id, reason FROM partition_frozen")
            .await
        {
            Ok(rows) => rows.into_iter().collect(),
            // An original directory has no such table: nothing is frozen.
            Err(e) if is_missing_table(&e) => HashMap::new(),
            Err(e) => return Err(load_error(e)),
        };
        let rows = rows
            .into_iter()
            .map(
                |(id, bucket, start, end, host_id, db, datatable)| PartitionRow {
                    frozen: frozen.get(&id).cloned(),
                    id,
                    bucket,
                    start,
                    end,
                    host_id,
                    db,
                    datatable,
                },
            )
            .collect();
        let hashes = match conn
            .query::<(String, String), _>("SELECT name, hash FROM bucket")
            .await
        {
            Ok(rows) => {
                let mut hashes = HashMap::new();
                for (name, hash) in rows {
                    let kind = hash
                        .parse()
                        .map_err(|why| Error::internal(format!("bucket `{name}`: {why}")))?;
                    hashes.insert(name, kind);
                }
                hashes
            }
            Err(e) if is_missing_table(&e) => HashMap::new(),
            Err(e) => return Err(load_error(e)),
        };
        let version = Self::poll_version(conn).await?;
        Ok(Directory::build(version, hosts, rows, &hashes))
    }

    /// The directory's version: the `directory_version` counter, or, for an original directory
    /// without that table, a fingerprint of its rows that changes whenever they do.
    pub async fn poll_version<Q: Queryable + Send>(conn: &mut Q) -> Result<u64> {
        match conn
            .query_first::<u64, _>("SELECT version FROM directory_version WHERE id = 1")
            .await
        {
            Ok(v) => Ok(v.unwrap_or(0)),
            Err(e) if is_missing_table(&e) => {
                let fingerprint: Option<u64> = conn
                    .query_first(
                        "SELECT (SELECT CRC32(GROUP_CONCAT(CONCAT_WS(',', id, bucket, `start`, `end`, host_id,
                                    db, datatable, retired_at IS NULL) ORDER BY id)) FROM directory)
                              + ((SELECT CRC32(GROUP_CONCAT(CONCAT_WS(',', id, hostname, port, IFNULL(slave_id, 0))
                                    ORDER BY id)) FROM host) << 32)",
                    )
                    .await
                    .map_err(load_error)?;
                Ok(fingerprint.unwrap_or(0) | (1 << 63))
            }
            Err(e) => Err(load_error(e)),
        }
    }
}

fn check_bucket(
    name: &str,
    rows: &[PartitionRow],
    hosts: &BTreeMap<u32, Host>,
) -> std::result::Result<(), String> {
    check_bucket_name(name)?;
    // Points are in [0, 1]; a tiny tolerance absorbs DECIMAL columns of an original directory.
    const EPSILON: f64 = 1e-9;
    let mut expected_start = 0.0;
    for row in rows {
        if !is_sql_name(&row.db) || !is_sql_name(&row.datatable) {
            return Err(format!(
                "partition {} names `{}`.`{}`, which is not a plain table name",
                row.id,
                row.db.escape_debug(),
                row.datatable.escape_debug()
            ));
        }
        if !hosts.contains_key(&row.host_id) {
            return Err(format!(
                "partition {} is on unknown host {}",
                row.id, row.host_id
            ));
        }
        if (row.start - expected_start).abs() > EPSILON || row.end < row.start {
            return Err(format!(
                "partition {} covers [{}, {}] but the previous one ended at {expected_start}",
                row.id, row.start, row.end
            ));
        }
        expected_start = row.end;
    }
    if (expected_start - 1.0).abs() > EPSILON {
        return Err(format!("partitions end at {expected_start}, not 1"));
    }
    Ok(())
}

fn is_missing_table(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == code::ER_NO_SUCH_TABLE)
}

fn load_error(e: mysql_async::Error) -> Error {
    Error::new(ErrorKind::Unavailable, "loading the directory").with_source(Cause(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: u32) -> Host {
        Host {
            id,
            hostname: "127.0.0.1".into(),
            port: 3300 + id as u16,
            slave_id: None,
        }
    }

    fn row(id: u64, bucket: &str, start: f64, end: f64, host_id: u32) -> PartitionRow {
        PartitionRow {
            frozen: None,
            id,
            bucket: bucket.into(),
            start,
            end,
            host_id,
            db: "thrudoc".into(),
            datatable: datatable_name(id),
        }
    }

    #[test]
    fn builds_buckets_in_end_order_and_locates_keys() {
        let rows = vec![row(2, "b", 0.5, 1.0, 2), row(1, "b", 0.0, 0.5, 1)];
        let hashes = HashMap::from([("b".to_string(), HashKind::XxHash64)]);
        let dir = Directory::build(7, vec![host(1), host(2)], rows, &hashes);
        assert!(dir.invalid.is_empty(), "{:?}", dir.invalid);
        let b = dir.bucket("b").unwrap();
        assert_eq!(
            b.partitions.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(b.partitions[0].table_sql, "`thrudoc`.`d_000000000001`");
        for i in 0..1000u32 {
            let key = i.to_string();
            let p = &b.partitions[b.locate(key.as_bytes())];
            let point = HashKind::XxHash64.point(key.as_bytes());
            assert!(p.start <= point && point <= p.end);
        }
        assert_eq!(
            dir.bucket("nope").unwrap_err().kind(),
            ErrorKind::NoSuchBucket
        );
    }

    #[test]
    fn buckets_without_a_hash_row_use_the_original_fnv() {
        let dir = Directory::build(
            1,
            vec![host(1)],
            vec![row(1, "old", 0.0, 1.0, 1)],
            &HashMap::new(),
        );
        assert_eq!(dir.bucket("old").unwrap().hash, HashKind::Fnv32);
    }

    #[test]
    fn invalid_buckets_are_refused_and_others_still_served() {
        let rows = vec![
            row(1, "gap", 0.0, 0.4, 1),
            row(2, "gap", 0.5, 1.0, 1),
            row(3, "short", 0.0, 0.9, 1),
            row(4, "nohost", 0.0, 1.0, 9),
            row(5, "ok", 0.0, 1.0, 1),
            PartitionRow {
                db: "x`; DROP TABLE host; --".into(),
                ..row(6, "evil", 0.0, 1.0, 1)
            },
        ];
        let dir = Directory::build(1, vec![host(1)], rows, &HashMap::new());
        assert_eq!(dir.buckets.keys().collect::<Vec<_>>(), vec!["ok"]);
        for name in ["gap", "short", "nohost", "evil"] {
            assert!(dir.invalid.contains_key(name), "{name}");
            assert_eq!(dir.bucket(name).unwrap_err().kind(), ErrorKind::Unavailable);
        }
    }

    #[test]
    fn datatable_names() {
        assert_eq!(datatable_name(12), "d_000000000012");
        assert!(is_sql_name(&datatable_name(u64::from(u32::MAX))));
    }
}
