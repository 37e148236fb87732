//! Setting up Thrudoc on harness-started MariaDB servers: buckets made by the real
//! `thrudoc-admin create-tablename`, servers on the mysql backend, and where the directory says
//! each partition lives.

use std::collections::HashMap;

use super::mariadb::MariaDb;
use super::ThrudocServer;

/// Runs `thrudoc-admin create-tablename` for `bucket` over `hosts` (`host:port`, paired in
/// order), with the directory in schema `db` of `directory`, as an operator would.
pub fn create_bucket(
    directory: &MariaDb,
    db: &str,
    hosts: &[String],
    bucket: &str,
    parts_per: u32,
) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_thrudoc-admin"))
        .arg("create-tablename")
        .arg(format!("--master-hostname={}", directory.host()))
        .arg(format!("--master-port={}", directory.port()))
        .arg(format!("--database={db}"))
        .args([
            "--root-user=root",
            "--root-pass=",
            "--user=thrudoc",
            "--pass=pass",
        ])
        .arg("--with-circular-slaves")
        .arg(format!("--tablename={bucket}"))
        .arg(format!("--hosts={}", hosts.join(",")))
        .arg(format!("--parts-per={parts_per}"))
        .output()
        .expect("run thrudoc-admin");
    assert!(
        out.status.success(),
        "create-tablename {bucket} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A thrudoc server on the mysql backend: directory in schema `db` on `master` (sibling
/// `slave`), logging in as the service account create-tablename made; `extra` conf lines.
pub fn thrudoc_on(
    master: &MariaDb,
    slave: Option<&MariaDb>,
    db: &str,
    extra: &str,
) -> ThrudocServer {
    ThrudocServer::start(&mysql_conf(master, slave, db, extra))
}

/// The conf lines of a server on the mysql backend (see [`thrudoc_on`]).
pub fn mysql_conf(master: &MariaDb, slave: Option<&MariaDb>, db: &str, extra: &str) -> String {
    let slave = slave.map_or(String::new(), |s| {
        format!(
            "MYSQL_SLAVE_HOST = {}\nMYSQL_SLAVE_PORT = {}\n",
            s.host(),
            s.port()
        )
    });
    format!(
        "BACKEND = mysql\nMYSQL_MASTER_HOST = {}\nMYSQL_MASTER_PORT = {}\n{slave}\
         MYSQL_DIRECTORY_DB = {db}\nMYSQL_USERNAME = thrudoc\nMYSQL_PASSWORD = pass\n{extra}\n",
        master.host(),
        master.port()
    )
}

/// One live partition as the directory records it.
#[derive(Debug, Clone)]
pub struct Part {
    pub id: u64,
    pub end: f64,
    /// Index into the `hosts` given to [`partitions`].
    pub host: usize,
    /// `db.datatable`.
    pub table: String,
}

/// The live partitions of `bucket` in order of `end`, their hosts given as indexes into
/// `hosts` (the `host:port` addresses the bucket was created with).
pub fn partitions(directory: &MariaDb, db: &str, bucket: &str, hosts: &[String]) -> Vec<Part> {
    let index_of: HashMap<String, usize> = directory
        .sql(&format!(
            "SELECT id, CONCAT(hostname, ':', port) FROM {db}.host"
        ))
        .into_iter()
        .filter_map(|r| {
            let i = hosts.iter().position(|h| *h == r[1])?;
            Some((r[0].clone(), i))
        })
        .collect();
    directory
        .sql(&format!(
            "SELECT id, `end`, host_id, CONCAT(db, '.', datatable) FROM {db}.directory
             WHERE bucket = '{bucket}' AND retired_at IS NULL ORDER BY `end`, id"
        ))
        .into_iter()
        .map(|r| Part {
            id: r[0].parse().unwrap(),
            end: r[1].parse().unwrap(),
            host: index_of[&r[2]],
            table: r[3].clone(),
        })
        .collect()
}

/// The partition of `parts` (a bucket placed with xxHash64) that holds `key`.
pub fn part_of<'a>(parts: &'a [Part], key: &str) -> &'a Part {
    let point = thrudoc::store::mysql::placement::HashKind::XxHash64.point(key.as_bytes());
    parts
        .iter()
        .find(|p| point <= p.end)
        .expect("partitions cover [0, 1]")
}

/// `X'…'`: a byte string as an SQL literal.
pub fn sql_hex(b: &[u8]) -> String {
    format!(
        "X'{}'",
        b.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The original Thrudoc's modified FNV, written out independently of the crate's.
pub fn original_fnv(key: &[u8]) -> u32 {
    let mut h: u64 = 2_166_136_261;
    for &b in key {
        h ^= u64::from(b);
        h = (h * 16_777_619) & 0xffff_ffff;
        h ^= u64::from(b);
    }
    h as u32
}

/// Makes, in schema `db`, a directory exactly as the original Thrudoc left it, over the four
/// hosts `h` (paired 1↔2, 3↔4): only `host` and `directory` (DECIMAL ranges, no hash column,
/// no version table), bucket `tags` in four partitions, one per host, plus a retired row; and
/// the datatables with the original column set. Each live partition as (id, host index, end).
pub fn create_original_directory(h: &[MariaDb], db: &str) -> [(i32, usize, f64); 4] {
    // Schemas replicate within a pair: create on 1 (reaches 2) and on 3 (reaches 4).
    for host in [&h[0], &h[2]] {
        host.sql(&format!("CREATE DATABASE {db}"));
    }
    h[0].sql(&format!(
        "CREATE TABLE {db}.host (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, hostname VARCHAR(255),
             port INT, slave_id INT);
         CREATE TABLE {db}.directory (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
             bucket VARCHAR(255), start DECIMAL(12,10), end DECIMAL(12,10), host_id INT,
             db VARCHAR(255), datatable VARCHAR(255), created_at DATETIME, retired_at DATETIME);
         INSERT INTO {db}.host VALUES (1, '127.0.0.1', {}, 2), (2, '127.0.0.1', {}, 1),
             (3, '127.0.0.1', {}, 4), (4, '127.0.0.1', {}, 3);
         INSERT INTO {db}.directory VALUES
             (1, 'tags', 0.00, 0.25, 1, '{db}', 'd_000000000001', NOW(), NULL),
             (2, 'tags', 0.25, 0.50, 3, '{db}', 'd_000000000002', NOW(), NULL),
             (3, 'tags', 0.50, 0.75, 2, '{db}', 'd_000000000003', NOW(), NULL),
             (4, 'tags', 0.75, 1.00, 4, '{db}', 'd_000000000004', NOW(), NULL),
             (5, 'tags', 0.00, 1.00, 1, '{db}', 'd_000000000005', NOW(), NOW());",
        h[0].port(),
        h[1].port(),
        h[2].port(),
        h[3].port()
    ));
    let partitions = [(1, 0, 0.25), (2, 2, 0.50), (3, 1, 0.75), (4, 3, 1.00)];
    for (id, host, _) in partitions {
        h[host].sql(&format!(
            "CREATE TABLE {db}.d_{id:012} (k VARCHAR(255) BINARY NOT NULL PRIMARY KEY,
                 v LONGBLOB NOT NULL, modified_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
                 ON UPDATE CURRENT_TIMESTAMP, created_at DATETIME NOT NULL)"
        ));
    }
    partitions
}

/// The partition of [`create_original_directory`]'s that holds `key` (original FNV).
pub fn original_place(partitions: &[(i32, usize, f64)], key: &str) -> (i32, usize, f64) {
    let point = f64::from(original_fnv(key.as_bytes())) / 4_294_967_295.0;
    partitions
        .iter()
        .find(|(_, _, end)| point <= *end)
        .copied()
        .expect("partitions cover [0, 1]")
}
