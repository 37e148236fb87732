//! `thrudoc-admin` against real MariaDB servers (tests/common/mariadb.rs): the real binary is
//! run as an operator would, and what it did is checked with SQL on the servers.
//!
//! One cluster of two master-master pairs is shared by the tests; each test works in its own
//! schema (so its own directory) and its own buckets, so they can run at once.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::mariadb::*;
use mysql_async::prelude::Queryable;
use thrudoc::store::mysql::directory::Directory;
use thrudoc::store::mysql::placement::HashKind;

/// No admin run may take longer than this (they take well under a second normally).
const ADMIN_DEADLINE: Duration = Duration::from_secs(60);

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        require_mariadb();
        Cluster::start_pairs(2)
    })
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn ok(self, what: &str) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn refused(self, what: &str) -> Run {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "{what} should have failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `thrudoc-admin args...`, killing it and failing after [`ADMIN_DEADLINE`].
fn admin(args: &[String]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thrudoc-admin"));
    command.args(args);
    let ran = common::process::run(command, ADMIN_DEADLINE);
    Run {
        code: ran.status.code(),
        stdout: ran.stdout,
        stderr: ran.stderr,
        took: ran.took,
    }
}

/// `sub` with the connection flags of a directory in `schema` on `master`, then `rest`.
fn cmd(sub: &str, master: &MariaDb, schema: &str, rest: &[&str]) -> Vec<String> {
    let mut args = vec![
        sub.to_string(),
        format!("--master-hostname={}", master.host()),
        format!("--master-port={}", master.port()),
        format!("--database={schema}"),
        "--root-user=root".to_string(),
        "--root-pass=".to_string(),
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

fn hosts_flag(hosts: &[&MariaDb]) -> String {
    let list: Vec<String> = hosts.iter().map(|h| h.addr()).collect();
    format!("--hosts={}", list.join(","))
}

/// A port on 127.0.0.1 where nothing listens.
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What create-tablename may change in a directory: row counts, pairings and the version.
fn snapshot(db: &MariaDb, schema: &str) -> Vec<Vec<String>> {
    db.sql(&format!(
        "SELECT (SELECT COUNT(*) FROM {schema}.directory), (SELECT COUNT(*) FROM {schema}.bucket),
                (SELECT GROUP_CONCAT(CONCAT(id, ':', hostname, ':', port, ':', IFNULL(slave_id, '-'))
                    ORDER BY id) FROM {schema}.host),
                (SELECT version FROM {schema}.directory_version WHERE id = 1)"
    ))
}

fn version(db: &MariaDb, schema: &str) -> u64 {
    db.try_sql(&format!(
        "SELECT version FROM {schema}.directory_version WHERE id = 1"
    ))
    .ok()
    .and_then(|rows| rows.first()?.first()?.parse().ok())
    .unwrap_or(0)
}

/// Table name -> its columns in order, for every table of `schema` on `db`.
fn tables(db: &MariaDb, schema: &str) -> HashMap<String, String> {
    db.sql(&format!(
        "SELECT TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION)
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{schema}' GROUP BY TABLE_NAME"
    ))
    .into_iter()
    .map(|row| (row[0].clone(), row[1].clone()))
    .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(
    db: &MariaDb,
    user: &str,
    pass: &str,
    schema: &str,
) -> mysql_async::Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(db.host())
        .tcp_port(db.port())
        .user(Some(user))
        .pass(Some(pass))
        .db_name(Some(schema))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// The issue's "done when": twelve partitions over two pairs, every table where it belongs,
/// a service account that can use the data and not drop it, and a directory that loads.
#[test]
fn create_tablename_lays_out_a_bucket_over_two_pairs() {
    let c = cluster();
    let [h1, h2, h3, h4] = &c.hosts[..] else {
        panic!("expected 4 hosts")
    };
    let before = version(h1, "thrudoc");
    let hosts = hosts_flag(&[h1, h2, h3, h4]);
    let run = admin(&cmd(
        "create-tablename",
        h1,
        "thrudoc",
        &[
            "--user=thrudoc",
            "--pass=pass",
            "--tablename=data",
            &hosts,
            "--parts-per=3",
            "--with-circular-slaves",
        ],
    ))
    .ok("create-tablename");
    eprintln!("create-tablename took {:?}\n{}", run.took, run.stdout);
    assert!(
        !run.stdout.contains("warning"),
        "replication is running, yet:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("12 partitions"), "{}", run.stdout);

    // Hosts: four, paired 1<->2, 3<->4.
    let host_rows =
        h1.sql("SELECT id, hostname, port, IFNULL(slave_id, 0) FROM thrudoc.host ORDER BY id");
    assert_eq!(host_rows.len(), 4, "{host_rows:?}");
    let id_of: BTreeMap<u16, String> = host_rows
        .iter()
        .map(|r| (r[2].parse().expect("port"), r[0].clone()))
        .collect();
    let slave_of: BTreeMap<String, String> = host_rows
        .iter()
        .map(|r| (r[0].clone(), r[3].clone()))
        .collect();
    for (a, b) in [(h1, h2), (h2, h1), (h3, h4), (h4, h3)] {
        assert_eq!(
            host_rows
                .iter()
                .find(|r| r[2] == a.port().to_string())
                .map(|r| r[1].as_str()),
            Some("127.0.0.1")
        );
        assert_eq!(
            slave_of[&id_of[&a.port()]],
            id_of[&b.port()],
            "sibling of {}",
            a.addr()
        );
    }

    // Partitions: twelve live ones covering [0, 1] in order, round robin, three per host.
    let parts = h1.sql(
        "SELECT id, `start`, `end`, host_id, db, datatable FROM thrudoc.directory
         WHERE bucket = 'data' AND retired_at IS NULL ORDER BY `end`",
    );
    assert_eq!(parts.len(), 12, "{parts:?}");
    let order = [h1, h2, h3, h4];
    let mut previous_end = 0.0f64;
    for (i, p) in parts.iter().enumerate() {
        let start: f64 = p[1].parse().expect("start");
        let end: f64 = p[2].parse().expect("end");
        assert_eq!(
            start,
            previous_end,
            "partition {i} starts where {} ended",
            i.saturating_sub(1)
        );
        assert!(
            (end - (i + 1) as f64 / 12.0).abs() < 1e-12,
            "partition {i} ends at {end}"
        );
        previous_end = end;
        assert_eq!(p[3], id_of[&order[i % 4].port()], "partition {i} host");
        assert_eq!(p[4], "thrudoc");
        assert_eq!(p[5], format!("d_{:012}", p[0].parse::<u64>().expect("id")));
    }
    assert_eq!(previous_end, 1.0);
    for h in order {
        assert_eq!(parts.iter().filter(|p| p[3] == id_of[&h.port()]).count(), 3);
    }

    // Each datatable on its host and its sibling, with the documented columns; not on the
    // other pair.
    let on: Vec<HashMap<String, String>> = order.iter().map(|h| tables(h, "thrudoc")).collect();
    for (i, p) in parts.iter().enumerate() {
        let home = i % 4;
        let sibling = home ^ 1;
        for j in [home, sibling] {
            assert_eq!(
                on[j].get(&p[5]).map(String::as_str),
                Some("k,v,modified_at,created_at"),
                "{} on {}",
                p[5],
                order[j].addr()
            );
        }
        for j in [(home + 2) % 4, (sibling + 2) % 4] {
            assert!(
                !on[j].contains_key(&p[5]),
                "{} leaked to {}",
                p[5],
                order[j].addr()
            );
        }
    }

    assert_eq!(
        h1.sql("SELECT hash FROM thrudoc.bucket WHERE name = 'data'"),
        vec![vec!["xxhash64".to_string()]]
    );
    let after = version(h1, "thrudoc");
    assert!(after > before, "version {before} -> {after}");

    // The service account: data yes, DDL no.
    let table = parts[0][5].clone();
    runtime().block_on(async {
        let mut conn = connect(h1, "thrudoc", "pass", "thrudoc")
            .await
            .expect("service login");
        conn.exec_drop(
            format!("INSERT INTO {table} (k, v) VALUES (?, ?)"),
            (b"key".to_vec(), b"v1".to_vec()),
        )
        .await
        .expect("INSERT");
        conn.exec_drop(
            format!("UPDATE {table} SET v = ? WHERE k = ?"),
            (b"v2".to_vec(), b"key".to_vec()),
        )
        .await
        .expect("UPDATE");
        let v: Option<Vec<u8>> = conn
            .exec_first(
                format!("SELECT v FROM {table} WHERE k = ?"),
                (b"key".to_vec(),),
            )
            .await
            .expect("SELECT");
        assert_eq!(v.as_deref(), Some(&b"v2"[..]));
        conn.exec_drop(
            format!("DELETE FROM {table} WHERE k = ?"),
            (b"key".to_vec(),),
        )
        .await
        .expect("DELETE");
        let dropped = conn.query_drop(format!("DROP TABLE {table}")).await;
        assert_eq!(
            dropped.as_ref().err().and_then(server_code),
            Some(1142),
            "DROP: {dropped:?}"
        );
        let created = conn.query_drop("CREATE TABLE x (a INT)").await;
        assert_eq!(
            created.as_ref().err().and_then(server_code),
            Some(1142),
            "CREATE: {created:?}"
        );
        let _ = conn.disconnect().await;

        // What a server loads from it.
        let mut root = connect(h1, "root", "", "thrudoc")
            .await
            .expect("root login");
        let dir = Directory::load(&mut root)
            .await
            .expect("load the directory");
        assert!(dir.invalid.is_empty(), "{:?}", dir.invalid);
        let bucket = dir.bucket("data").expect("bucket data");
        assert_eq!(bucket.partitions.len(), 12);
        assert_eq!(bucket.hash, HashKind::XxHash64);
        assert_eq!(dir.hosts.len(), 4);
        assert_eq!(dir.version, after);
        let _ = root.disconnect().await;
    });
    assert!(
        on[0].contains_key(&table),
        "DROP by the service account must have failed"
    );
}

/// Refusals change nothing: an existing bucket, an odd pairing, a bad name, an unreachable
/// host or master, a host already paired elsewhere.
#[test]
fn create_tablename_refuses_and_changes_nothing() {
    let c = cluster();
    let [h1, h2, h3, _] = &c.hosts[..] else {
        panic!("expected 4 hosts")
    };
    let schema = "refusals";
    let pair = hosts_flag(&[h1, h2]);
    admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=existing",
            &pair,
            "--parts-per=1",
            "--with-circular-slaves",
            "--pass=pass",
        ],
    ))
    .ok("first create-tablename");
    let before = snapshot(h1, schema);
    let tables_before = tables(h1, schema);

    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=existing",
            &pair,
            "--parts-per=2",
            "--with-circular-slaves",
            "--pass=pass",
        ],
    ))
    .refused("an existing bucket");
    assert!(
        run.stderr.contains("`existing` already exists"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, Some(2));
    assert_eq!(snapshot(h1, schema), before);

    let odd = hosts_flag(&[h1, h2, h3]);
    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &["--tablename=odd", &odd, "--with-circular-slaves"],
    ))
    .refused("an odd host count with --with-circular-slaves");
    assert!(
        run.stderr.contains("even number of hosts"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(h1, schema), before);

    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &["--tablename=x;drop", &pair],
    ))
    .refused("a bad bucket name");
    assert!(run.stderr.contains("x;drop"), "{}", run.stderr);
    assert_eq!(snapshot(h1, schema), before);
    // Validation comes first: not even the schema is made.
    admin(&cmd(
        "create-tablename",
        h1,
        "never_made",
        &["--tablename=x;drop"],
    ))
    .refused("a bad name");
    assert!(h1.sql("SHOW DATABASES LIKE 'never_made'").is_empty());

    let dead = format!("127.0.0.1:{}", dead_port());
    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=unreachable",
            &format!("--hosts={},{dead}", h1.addr()),
        ],
    ))
    .refused("an unreachable host");
    assert!(run.stderr.contains(&dead), "{}", run.stderr);
    assert_eq!(snapshot(h1, schema), before);

    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=repaired",
            &hosts_flag(&[h1, h3]),
            "--with-circular-slaves",
        ],
    ))
    .refused("a host already paired with another");
    assert!(run.stderr.contains("already paired"), "{}", run.stderr);
    assert_eq!(snapshot(h1, schema), before);

    let mut args = cmd("create-tablename", h1, schema, &["--tablename=nomaster"]);
    args[2] = format!("--master-port={}", dead_port());
    let run = admin(&args).refused("an unreachable master");
    assert!(run.stderr.contains("connecting to"), "{}", run.stderr);

    assert_eq!(snapshot(h1, schema), before);
    assert_eq!(
        tables(h1, schema),
        tables_before,
        "no datatable was made by a refused run"
    );
}

/// `list` and `status` show what create-tablename made; an account with an awkward password
/// works and the password is never printed.
#[test]
fn list_and_status_show_buckets_partitions_and_hosts() {
    let c = cluster();
    let [h1, _, h3, h4] = &c.hosts[..] else {
        panic!("expected 4 hosts")
    };
    let schema = "listing";
    let password = r#"Sekr3t'x\"q%_"#;
    let pair = hosts_flag(&[h3, h4]);
    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=listed",
            &pair,
            "--parts-per=2",
            "--with-circular-slaves",
            "--user=lister",
            &format!("--pass={password}"),
        ],
    ))
    .ok("create-tablename");
    assert!(
        !run.stdout.contains("Sekr3t") && !run.stderr.contains("Sekr3t"),
        "{}",
        run.stdout
    );
    // The directory master holds the account too; the data hosts as well.
    runtime().block_on(async {
        for db in [h1, h3, h4] {
            let conn = connect(db, "lister", password, schema).await;
            let conn = conn.unwrap_or_else(|e| panic!("lister on {}: {e}", db.addr()));
            let _ = conn.disconnect().await;
        }
    });

    let run = admin(&cmd("list", h1, schema, &[])).ok("list");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("listed "))
        .unwrap_or_else(|| panic!("no bucket line:\n{}", run.stdout));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["listed", "xxhash64", "4", "ok"]
    );

    let run = admin(&cmd("list", h1, schema, &["--tablename=listed"])).ok("list --tablename");
    let tables_in_dir = h1.sql(&format!(
        "SELECT datatable FROM {schema}.directory WHERE bucket = 'listed' ORDER BY `end`"
    ));
    assert_eq!(tables_in_dir.len(), 4);
    for (i, t) in tables_in_dir.iter().enumerate() {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(&t[0]))
            .unwrap_or_else(|| panic!("{} not listed:\n{}", t[0], run.stdout));
        let (host, sibling) = if i % 2 == 0 { (h3, h4) } else { (h4, h3) };
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields[3..],
            [host.addr(), sibling.addr(), format!("{schema}.{}", t[0])],
            "{line}"
        );
    }
    let run = admin(&cmd("list", h1, schema, &["--tablename=nope"])).refused("an unknown bucket");
    assert!(run.stdout.contains("no bucket `nope`"), "{}", run.stdout);

    let run = admin(&cmd("status", h1, schema, &[])).ok("status");
    for (host, sibling) in [(h3, h4), (h4, h3)] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(host.addr().as_str()))
            .unwrap_or_else(|| panic!("{} not in status:\n{}", host.addr(), run.stdout));
        let fields: Vec<&str> = line.split_whitespace().collect();
        // id address sibling state replicates-from io sql lag written applied partitions
        assert_eq!(
            fields[2..5],
            [sibling.addr().as_str(), "up", sibling.addr().as_str()],
            "{line}"
        );
        assert_eq!(fields[5..7], ["Yes", "Yes"], "{line}");
        // Each wrote its partitions' tables (DDL is logged) and applied its sibling's.
        let (own, theirs) = (host.server_id(), sibling.server_id());
        assert!(
            fields[8].starts_with(&format!("{own}-{own}-")),
            "written: {line}"
        );
        assert!(
            fields[9].contains(&format!("{theirs}-{theirs}-")),
            "applied: {line}"
        );
        assert_eq!(fields[10], "2", "{line}");
    }
    assert!(run.stdout.contains("2 of 2 hosts up"), "{}", run.stdout);
    assert!(!run.stdout.contains("warning"), "{}", run.stdout);
}

/// A hung host (SIGSTOP) and a killed one show as down, promptly, and status still exits 0;
/// a directory that cannot be read fails it.
#[test]
fn status_reports_hung_and_killed_hosts_as_down() {
    let c = cluster();
    let h1 = &c.hosts[0];
    // A server of its own, so that stopping it disturbs no other test.
    let lone = MariaDb::start(9);
    let schema = "downs";
    admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=lonely",
            &hosts_flag(&[&lone]),
            "--parts-per=1",
            "--pass=pass",
        ],
    ))
    .ok("create-tablename");
    let status = || admin(&cmd("status", h1, schema, &[]));
    let line_of = |run: &Run| -> String {
        run.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(lone.addr().as_str()))
            .unwrap_or_else(|| panic!("{} not in status:\n{}", lone.addr(), run.stdout))
            .to_string()
    };
    let run = status().ok("status");
    assert_eq!(
        line_of(&run).split_whitespace().nth(3),
        Some("up"),
        "{}",
        run.stdout
    );

    lone.stop();
    let run = status();
    lone.cont();
    let run = run.ok("status with a hung host");
    assert_eq!(
        line_of(&run).split_whitespace().nth(3),
        Some("DOWN"),
        "{}",
        run.stdout
    );
    assert!(
        run.took < Duration::from_secs(5),
        "status took {:?} with a hung host",
        run.took
    );
    assert!(run.stdout.contains("0 of 1 hosts up"), "{}", run.stdout);

    lone.kill9();
    let run = status().ok("status with a killed host");
    assert_eq!(
        line_of(&run).split_whitespace().nth(3),
        Some("DOWN"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("is unreachable"), "{}", run.stdout);

    let mut args = cmd("status", h1, schema, &[]);
    args[2] = format!("--master-port={}", dead_port());
    let run = admin(&args).refused("status without a directory");
    assert!(run.stderr.contains("connecting to"), "{}", run.stderr);
}

#[test]
fn help_works_for_the_binary_and_every_subcommand() {
    let run = admin(&["--help".to_string()]).ok("--help");
    for sub in ["create-tablename", "list", "status"] {
        assert!(run.stdout.contains(sub), "{}", run.stdout);
    }
    for (sub, flag) in [
        ("create-tablename", "--with-circular-slaves"),
        ("list", "--tablename"),
        ("status", "--probe-timeout"),
    ] {
        let run = admin(&[sub.to_string(), "--help".to_string()]).ok(sub);
        for f in [flag, "--master-hostname", "--root-pass-file", "--database"] {
            assert!(
                run.stdout.contains(f),
                "{sub} --help lacks {f}:\n{}",
                run.stdout
            );
        }
        admin(&["help".to_string(), sub.to_string()]).ok("help");
    }
    let run = admin(&["create-tablename".to_string(), "--help".to_string()]).ok("help");
    for f in [
        "--hosts",
        "--parts-per",
        "--user",
        "--pass-file",
        "--master-port",
        "--root-user",
    ] {
        assert!(run.stdout.contains(f), "{f}");
    }
    admin(&["create-tablename".to_string()]).refused("no --tablename");
}

/// A datatable that cannot be made rolls the directory transaction back: no bucket, no
/// partitions, no host row, no version bump; the error says so.
#[test]
fn a_failed_datatable_leaves_the_directory_unchanged() {
    let c = cluster();
    let h1 = &c.hosts[0];
    // A server of its own that refuses InnoDB tables for every new session.
    let lone = MariaDb::start(10);
    let schema = "rollbacks";
    admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=first",
            "--parts-per=1",
            "--pass=pass",
            &hosts_flag(&[h1]),
        ],
    ))
    .ok("create-tablename");
    let before = snapshot(h1, schema);
    lone.sql("SET GLOBAL enforce_storage_engine = 'MyISAM'");
    let run = admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=doomed",
            "--parts-per=2",
            "--pass=pass",
            &hosts_flag(&[h1, &lone]),
        ],
    ))
    .refused("a datatable that cannot be created");
    eprintln!("{}", run.stderr);
    assert!(run.stderr.contains("rolled back"), "{}", run.stderr);
    assert!(
        run.stderr.contains("creating a datatable"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&lone.addr()), "{}", run.stderr);
    assert_eq!(snapshot(h1, schema), before);
    assert!(h1
        .sql(&format!(
            "SELECT * FROM {schema}.bucket WHERE name = 'doomed'"
        ))
        .is_empty());
}

/// With `--slave-hostname`, `list` and `status` read the directory from the master's sibling
/// when the master is down, and say so, as a server does; without it they fail naming the
/// master, and with both down they fail naming both.
#[test]
fn list_and_status_read_the_directory_from_the_sibling_when_the_master_is_down() {
    require_mariadb();
    // A pair of its own: its master is killed.
    let pair = Cluster::start_pairs(1);
    let (h1, h2) = (&pair.hosts[0], &pair.hosts[1]);
    let schema = "sibread";
    admin(&cmd(
        "create-tablename",
        h1,
        schema,
        &[
            "--tablename=twin",
            &hosts_flag(&[h1, h2]),
            "--parts-per=1",
            "--with-circular-slaves",
            "--pass=pass",
        ],
    ))
    .ok("create-tablename");
    wait_replicated(h1, h2, Duration::from_secs(20));
    let port = format!("--slave-port={}", h2.port());
    let host = format!("--slave-hostname={}", h2.host());
    let with_sibling = |sub: &str, rest: &[&str]| {
        let mut args = cmd(sub, h1, schema, rest);
        args.extend([host.clone(), port.clone()]);
        admin(&args)
    };

    let run = with_sibling("list", &["--tablename=twin"]).ok("list, master up");
    assert!(!run.stdout.contains("note:"), "{}", run.stdout);
    let from_master = run.stdout;

    h1.kill9();
    let run = admin(&cmd("status", h1, schema, &[])).refused("status with no sibling given");
    assert!(run.stderr.contains(&h1.addr()), "{}", run.stderr);

    let run = with_sibling("list", &["--tablename=twin"]).ok("list from the sibling");
    assert!(
        run.stdout
            .contains("note: the directory master did not answer"),
        "{}",
        run.stdout
    );
    let listed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("note:"))
        .collect();
    assert_eq!(
        listed,
        from_master.lines().collect::<Vec<_>>(),
        "the sibling's directory is the master's"
    );

    let run = with_sibling("status", &[]).ok("status from the sibling");
    let state = |addr: String| {
        run.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(addr.as_str()))
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
            .unwrap_or_else(|| panic!("{addr} not in status:\n{}", run.stdout))
    };
    assert_eq!(state(h1.addr()), "DOWN", "{}", run.stdout);
    assert_eq!(state(h2.addr()), "up", "{}", run.stdout);
    assert!(run.stdout.contains("1 of 2 hosts up"), "{}", run.stdout);

    h2.kill9();
    let run = with_sibling("status", &[]).refused("status with both down");
    assert!(
        run.stderr.contains(&h1.addr()) && run.stderr.contains("failed too"),
        "{}",
        run.stderr
    );
}
