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
