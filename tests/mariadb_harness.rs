//! Tests of the MariaDB harness in `tests/common/mariadb.rs`: the servers start, replicate
//! master-master within a pair and only there, survive kill -9 and clean restarts with their data
//! and replication, freeze and thaw, run semi-synchronously, and never outlive their owner.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::mariadb::*;
use common::wait_until;

/// How long replication may take to deliver a write in these tests.
const REPLICATION: Duration = Duration::from_secs(30);

/// The single field of a one-row, one-column result.
fn one(db: &MariaDb, q: &str) -> String {
    let rows = db.sql(q);
    assert_eq!(rows.len(), 1, "expected one row from {q}, got {rows:?}");
    rows[0][0].clone()
}

/// The first column of every row of `q`.
fn column(db: &MariaDb, q: &str) -> Vec<String> {
    db.sql(q).into_iter().map(|row| row[0].clone()).collect()
}

/// Process ids of every process whose command line mentions `path`.
fn processes_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

fn refuses_connections(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

#[test]
fn require_mariadb_passes_where_it_is_installed() {
    require_mariadb();
}

#[test]
fn two_pairs_replicate_master_master_within_each_pair_only() {
    require_mariadb();
    let started = Instant::now();
    let cluster = Cluster::start_pairs(2);
    eprintln!(
        "timing: Cluster::start_pairs(2) took {:?}",
        started.elapsed()
    );
    let [h1, h2, h3, h4] = &cluster.hosts[..] else {
        panic!("expected 4 hosts, got {}", cluster.hosts.len());
    };
    for (i, host) in cluster.hosts.iter().enumerate() {
        assert_eq!(host.server_id(), i as u32 + 1);
        assert_eq!(host.addr(), format!("127.0.0.1:{}", host.port()));
        assert_eq!(one(host, "SELECT @@server_id"), (i + 1).to_string());
        assert_eq!(one(host, "SELECT @@gtid_domain_id"), (i + 1).to_string());
        let (io, sql, behind, error) = replication_status(host);
        assert!(io && sql, "host {} replication not running: {error}", i + 1);
        assert_eq!(error, "");
        assert!(
            behind.is_some(),
            "a running slave reports Seconds_Behind_Master"
        );
    }
    let (a, b) = cluster.pair(1);
    assert_eq!((a.server_id(), b.server_id()), (3, 4));

    // Pair 1↔2, both directions; auto-increment values of the two masters never collide.
    h1.sql(
        "CREATE DATABASE t; \
         CREATE TABLE t.kv (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; \
         INSERT INTO t.kv (v) VALUES ('from1')",
    );
    wait_replicated(h1, h2, REPLICATION);
    assert_eq!(column(h2, "SELECT v FROM t.kv"), ["from1"]);
    h2.sql("INSERT INTO t.kv (v) VALUES ('from2')");
    wait_replicated(h2, h1, REPLICATION);
    assert_eq!(
        h1.sql("SELECT id % 2, v FROM t.kv ORDER BY v"),
        [["1", "from1"], ["0", "from2"]]
    );

    // Pair 3↔4 likewise, with its own data.
    h4.sql("CREATE DATABASE u; CREATE TABLE u.kv (k INT PRIMARY KEY); INSERT INTO u.kv VALUES (4)");
    wait_replicated(h4, h3, REPLICATION);
    h3.sql("INSERT INTO u.kv VALUES (3)");
    wait_replicated(h3, h4, REPLICATION);
    assert_eq!(column(h4, "SELECT k FROM u.kv ORDER BY k"), ["3", "4"]);
    assert_eq!(column(h3, "SELECT k FROM u.kv ORDER BY k"), ["3", "4"]);

    // Nothing crosses pairs.
    for host in [h3, h4] {
        assert!(host.sql("SHOW DATABASES LIKE 't'").is_empty());
    }
    for host in [h1, h2] {
        assert!(host.sql("SHOW DATABASES LIKE 'u'").is_empty());
    }
    // Every host caught up and still replicating without errors.
    for host in &cluster.hosts {
        let (io, sql, _, error) = replication_status(host);
        assert!(
            io && sql && error.is_empty(),
            "host {}: {error}",
            host.server_id()
        );
    }
}

#[test]
fn kill9_and_shutdown_then_restart_keep_data_and_replication() {
    require_mariadb();
    let cluster = Cluster::start_pairs(1);
    let (h1, h2) = cluster.pair(0);
    let port = h1.port();
    h1.sql(
        "CREATE DATABASE d; CREATE TABLE d.log (v VARCHAR(20) PRIMARY KEY); \
         INSERT INTO d.log VALUES ('before')",
    );
    wait_replicated(h1, h2, REPLICATION);

    h1.kill9();
    assert!(h1.pid().is_none());
    assert!(h1
        .try_sql_timeout("SELECT 1", Duration::from_secs(3))
        .is_err());
    // The peer notices its master is gone...
    wait_until(REPLICATION, "host 2 noticing host 1 is gone", || {
        !replication_status(h2).0
    });
    // ...and keeps taking writes.
    h2.sql("INSERT INTO d.log VALUES ('during')");

    let started = Instant::now();
    h1.restart();
    eprintln!("timing: restart after kill -9 took {:?}", started.elapsed());
    assert_eq!(h1.port(), port);
    // Durability: the committed row survived the crash.
    assert!(column(h1, "SELECT v FROM d.log").contains(&"before".to_string()));
    wait_slave_running(h1, REPLICATION);
    wait_slave_running(h2, REPLICATION);
    // The outage write reaches the restarted host, and its new writes reach the peer.
    wait_replicated(h2, h1, REPLICATION);
    assert_eq!(
        column(h1, "SELECT v FROM d.log ORDER BY v"),
        ["before", "during"]
    );
    h1.sql("INSERT INTO d.log VALUES ('after')");
    wait_replicated(h1, h2, REPLICATION);
    assert_eq!(
        column(h2, "SELECT v FROM d.log ORDER BY v"),
        ["after", "before", "during"]
    );

    // A clean shutdown and restart of the other host resumes replication too.
    h2.shutdown();
    assert!(h2.pid().is_none());
    assert!(refuses_connections(h2.port()));
    h1.sql("INSERT INTO d.log VALUES ('h2 down')");
    h2.restart();
    wait_slave_running(h2, REPLICATION);
    wait_replicated(h1, h2, REPLICATION);
    assert!(column(h2, "SELECT v FROM d.log").contains(&"h2 down".to_string()));
    h2.sql("INSERT INTO d.log VALUES ('h2 back')");
    wait_replicated(h2, h1, REPLICATION);
    assert_eq!(one(h1, "SELECT COUNT(*) FROM d.log"), "5");
    for host in [h1, h2] {
        let (io, sql, _, error) = replication_status(host);
        assert!(
            io && sql && error.is_empty(),
            "host {}: {error}",
            host.server_id()
        );
    }
}

#[test]
fn a_restart_resumes_replication_when_the_crash_left_the_applied_position_behind_the_binlog() {
    require_mariadb();
    let cluster = Cluster::start_pairs(1);
    let (h1, h2) = cluster.pair(0);
    h2.sql(
        "CREATE DATABASE d; CREATE TABLE d.log (v INT PRIMARY KEY); INSERT INTO d.log VALUES (1)",
    );
    wait_replicated(h2, h1, REPLICATION);
    let behind = one(h1, "SELECT @@gtid_slave_pos");
    h2.sql("CREATE TRIGGER d.t BEFORE INSERT ON d.log FOR EACH ROW SET NEW.v = NEW.v");
    wait_replicated(h2, h1, REPLICATION);
    // What a kill -9 between binlogging the replicated trigger and recording it as applied
    // leaves: the binary log holds it, the applied position does not.
    h1.sql(&format!(
        "STOP SLAVE; SET GLOBAL gtid_strict_mode = 0; SET GLOBAL gtid_slave_pos = '{behind}'; \
         SET GLOBAL gtid_strict_mode = 1"
    ));
    h1.kill9();
    h1.restart();
    h2.sql("INSERT INTO d.log VALUES (2)");
    wait_replicated(h2, h1, REPLICATION);
    assert_eq!(column(h1, "SELECT v FROM d.log ORDER BY v"), ["1", "2"]);
    let (io, sql, _, error) = replication_status(h1);
    assert!(io && sql && error.is_empty(), "{error}");
}

#[test]
fn stopped_server_fails_calls_within_their_deadline_and_cont_revives_it() {
    require_mariadb();
    let started = Instant::now();
    let db = MariaDb::start(7);
    eprintln!("timing: MariaDb::start took {:?}", started.elapsed());
    assert_eq!(db.sql("SELECT 1"), [["1"]]);
    assert_eq!(
        replication_status(&db),
        (false, false, None, String::new()),
        "an unpaired server replicates from nobody"
    );
    let err = db.try_sql("SELECT * FROM no_such_db.t").unwrap_err();
    assert!(err.contains("no_such_db"), "error text is passed on: {err}");

    db.stop();
    let t = Instant::now();
    let result = db.try_sql_timeout("SELECT 1", Duration::from_secs(2));
    let took = t.elapsed();
    assert!(result.is_err(), "a stopped server answered: {result:?}");
    assert!(took < Duration::from_secs(4), "the call hung for {took:?}");
    db.cont();
    assert_eq!(db.sql("SELECT 1"), [["1"]]);
}

#[test]
fn semisync_is_on_and_acknowledges_commits_and_survives_restart() {
    require_mariadb();
    let cluster = Cluster::start_pairs(1);
    let (h1, h2) = cluster.pair(0);
    enable_semisync(h1, h2, Duration::from_secs(5));
    for host in [h1, h2] {
        assert_eq!(
            host.status_var("Rpl_semi_sync_master_status").as_deref(),
            Some("ON")
        );
        assert_eq!(
            host.status_var("Rpl_semi_sync_slave_status").as_deref(),
            Some("ON")
        );
    }
    h1.sql("CREATE DATABASE s; CREATE TABLE s.t (k INT PRIMARY KEY); INSERT INTO s.t VALUES (1)");
    let acked: u64 = h1
        .status_var("Rpl_semi_sync_master_yes_tx")
        .expect("yes_tx")
        .parse()
        .expect("number");
    assert!(
        acked >= 2,
        "commits were not acknowledged by the peer: {acked}"
    );

    // The setting is kept across a restart.
    h1.shutdown();
    h1.restart();
    wait_slave_running(h1, REPLICATION);
    assert_eq!(one(h1, "SELECT @@rpl_semi_sync_master_enabled"), "1");
    assert_eq!(one(h1, "SELECT @@rpl_semi_sync_slave_enabled"), "1");
    assert_eq!(
        h1.status_var("Rpl_semi_sync_master_status").as_deref(),
        Some("ON")
    );
}

#[test]
fn drop_kills_the_server_and_removes_its_directory() {
    require_mariadb();
    let db = MariaDb::start(9);
    let port = db.port();
    let dir = db.dir().to_path_buf();
    let pid = db.pid().expect("running");
    // The server and its watchdog.
    let watchers = processes_mentioning(&dir);
    assert!(
        watchers.contains(&pid),
        "mariadbd {pid} not among {watchers:?}"
    );
    assert!(watchers.len() >= 2, "no watchdog among {watchers:?}");
    db.stop(); // Drop must end a stopped server too.
    drop(db);
    assert!(
        refuses_connections(port),
        "port {port} still accepts connections"
    );
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "mariadbd {pid} not reaped"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// Set in the child process of [`watchdog_ends_servers_the_test_process_left_behind`].
const CHILD_ENV: &str = "THRUDOC_MARIADB_HARNESS_CHILD";

#[test]
fn watchdog_ends_servers_the_test_process_left_behind() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: start a server, never drop it, report it, and wait to be killed.
        let db = MariaDb::start(11);
        println!("SERVER {} {}", db.pid().unwrap(), db.dir().display());
        std::mem::forget(db);
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    require_mariadb();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "watchdog_ends_servers_the_test_process_left_behind",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the test binary");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("SERVER "));
    let Some(line) = line else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child test process reported no server");
    };
    let mut parts = line.split(' ').skip(1);
    let pid: u32 = parts.next().unwrap().parse().unwrap();
    let dir = Path::new(parts.next().unwrap()).to_path_buf();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(
        processes_mentioning(&dir).len() >= 2,
        "no watchdog for {pid}"
    );
    // The test process dies without running any destructor.
    child.kill().expect("kill the child test process");
    child.wait().expect("wait for the child test process");
    wait_until(Duration::from_secs(10), "the watchdog to clean up", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            && !dir.exists()
            && processes_mentioning(&dir).is_empty()
    });
}
