//! Manual read-write failover, switchover and verify (`thrudoc-admin failover`, `switchover`,
//! `verify`) against real MariaDB pairs, with the real `thrudoc` and `thrudoc-admin` binaries.
//!
//! Each test has its own pair (its faults must not disturb the others). The directory lives in
//! schema `thrudoc` on host 1 (server id 1, GTID domain 1), replicated to host 2 (id 2, domain
//! 2). Servers run with a short directory poll, lease and query timeout so that the switchover's
//! freeze wait is short; switchover is told the same values.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::history::{History, Outcome, Workload};
use common::mariadb::{require_mariadb, wait_replicated, wait_slave_running, Cluster, MariaDb};
use common::mysql::{create_bucket, part_of, partitions, sql_hex, thrudoc_on, Part};
use common::ThrudocServer;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

const DB: &str = "thrudoc";
const BUCKET: &str = "m";
/// The servers' settings, and what switchover is told about them.
const SERVER_CONF: &str =
    "MYSQL_DIRECTORY_POLL_MS = 200\nMYSQL_DIRECTORY_LEASE_MS = 1500\nMYSQL_QUERY_TIMEOUT_MS = 1000\n";
const SWITCHOVER_WAIT: [&str; 3] = [
    "--lease-ms=1500",
    "--query-timeout-ms=1000",
    "--margin-ms=1000",
];
/// No admin run may take longer than this.
const ADMIN_DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }

    fn ok(self, what: &str) -> Run {
        assert_eq!(self.code, Some(0), "{what} failed\n{}", self.text());
        self
    }

    fn code(self, want: i32, what: &str) -> Run {
        assert_eq!(
            self.code,
            Some(want),
            "{what}: exit status\n{}",
            self.text()
        );
        self
    }
}

/// Runs `thrudoc-admin args...`, killing it and failing after [`ADMIN_DEADLINE`].
fn admin(args: &[String]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thrudoc-admin"));
    command.args(args);
    let ran = common::process::run(command, ADMIN_DEADLINE);
    let started_took = ran.took;
    let run = Run {
        code: ran.status.code(),
        stdout: ran.stdout,
        stderr: ran.stderr,
    };
    eprintln!(
        "---- thrudoc-admin {} ({:?}, {:?})\n{}{}",
        args.first().map(String::as_str).unwrap_or(""),
        run.code,
        started_took,
        run.stdout,
        run.stderr
    );
    run
}

/// `sub` with the connection flags of the directory on `dir`, then `rest`.
fn cmd(sub: &str, dir: &MariaDb, rest: &[&str]) -> Vec<String> {
    let mut args = vec![
        sub.to_string(),
        format!("--master-hostname={}", dir.host()),
        format!("--master-port={}", dir.port()),
        format!("--database={DB}"),
        "--root-user=root".to_string(),
        "--root-pass=".to_string(),
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

/// A pair with bucket `m` over both hosts (4 partitions each), directory on host 1.
struct Setup {
    cluster: Cluster,
    addrs: Vec<String>,
    parts: Vec<Part>,
}

impl Setup {
    fn new() -> Setup {
        require_mariadb();
        let cluster = Cluster::start_pairs(1);
        let addrs: Vec<String> = cluster.hosts.iter().map(|h| h.addr()).collect();
        create_bucket(&cluster.hosts[0], DB, &addrs, BUCKET, 4);
        let parts = partitions(&cluster.hosts[0], DB, BUCKET, &addrs);
        Setup {
            cluster,
            addrs,
            parts,
        }
    }

    fn h1(&self) -> &MariaDb {
        &self.cluster.hosts[0]
    }

    fn h2(&self) -> &MariaDb {
        &self.cluster.hosts[1]
    }

    fn server(&self) -> ThrudocServer {
        thrudoc_on(self.h1(), Some(self.h2()), DB, SERVER_CONF)
    }

    /// The first `prefix-N` key whose partition's home is host `host`.
    fn key_on(&self, host: usize, prefix: &str) -> String {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|k| part_of(&self.parts, k).host == host)
            .expect("some key lands on every host")
    }

    fn table_of(&self, key: &str) -> String {
        part_of(&self.parts, key).table.clone()
    }

    /// The partitions whose home is host `host`.
    fn home_tables(&self, host: usize) -> Vec<String> {
        self.parts
            .iter()
            .filter(|p| p.host == host)
            .map(|p| p.table.clone())
            .collect()
    }

    /// The directory's id of host `host`, read from the directory copy on `dir`.
    fn host_id(&self, dir: &MariaDb, host: usize) -> String {
        let rows = dir.sql(&format!(
            "SELECT id FROM {DB}.host WHERE CONCAT(hostname, ':', port) = '{}'",
            self.addrs[host]
        ));
        rows[0][0].clone()
    }

    /// Which host the directory on `dir` puts each of `host`'s home partitions on.
    fn placed(&self, dir: &MariaDb, host: usize) -> Vec<String> {
        self.parts
            .iter()
            .filter(|p| p.host == host)
            .map(|p| {
                dir.sql(&format!(
                    "SELECT host_id FROM {DB}.directory WHERE id = {}",
                    p.id
                ))[0][0]
                    .clone()
            })
            .collect()
    }

    fn both_replicated(&self) {
        wait_replicated(self.h1(), self.h2(), Duration::from_secs(30));
        wait_replicated(self.h2(), self.h1(), Duration::from_secs(30));
    }
}

fn read_only(db: &MariaDb) -> bool {
    db.sql("SELECT @@GLOBAL.read_only")[0][0] == "1"
}

/// The sequence number `db` has logged in GTID domain `domain` (0 if none).
fn domain_seq(db: &MariaDb, domain: u32) -> u64 {
    let pos = db.sql("SELECT @@gtid_binlog_pos")[0][0].clone();
    pos.split(',')
        .filter_map(|g| {
            let f: Vec<&str> = g.trim().split('-').collect();
            (f.len() == 3 && f[0] == domain.to_string()).then(|| f[2].parse().ok())?
        })
        .next()
        .unwrap_or(0)
}

/// Snapshot of what failover and switchover change in the directory.
fn directory_state(db: &MariaDb) -> Vec<Vec<String>> {
    db.sql(&format!(
        "SELECT (SELECT version FROM {DB}.directory_version WHERE id = 1),
                (SELECT GROUP_CONCAT(CONCAT(id, ':', host_id) ORDER BY id) FROM {DB}.directory),
                (SELECT COUNT(*) FROM {DB}.partition_moved),
                (SELECT COUNT(*) FROM {DB}.partition_frozen)"
    ))
}

/// One row event of a binary log: the table written, the server that wrote it and the GTID
/// (domain, sequence) of its transaction.
#[derive(Debug, Clone)]
struct RowEvent {
    table: String,
    server: u32,
    domain: u32,
    seq: u64,
}

/// Every table write (`Table_map` event) in `db`'s binary logs, with its transaction's GTID.
fn row_events(db: &MariaDb) -> Vec<RowEvent> {
    let mut events = Vec::new();
    for log in db.sql("SHOW BINARY LOGS") {
        let mut gtid = (0u32, 0u64);
        for ev in db.sql(&format!("SHOW BINLOG EVENTS IN '{}'", log[0])) {
            // Log_name, Pos, Event_type, Server_id, End_log_pos, Info
            match ev[2].as_str() {
                // `BEGIN GTID 2-2-57` (maybe followed by `cid=...`) or `GTID 2-2-57`.
                "Gtid" => {
                    let parsed = ev[5].split_whitespace().find_map(|token| {
                        let f: Vec<&str> = token.split('-').collect();
                        match f[..] {
                            [d, _, n] => Some((d.parse().ok()?, n.parse().ok()?)),
                            _ => None,
                        }
                    });
                    gtid = parsed.unwrap_or_else(|| panic!("GTID event without a GTID: {ev:?}"));
                }
                "Table_map" => {
                    let Some(table) = ev[5].split('(').nth(1).map(|t| t.trim_end_matches(')'))
                    else {
                        continue;
                    };
                    events.push(RowEvent {
                        table: table.to_string(),
                        server: ev[3].parse().unwrap(),
                        domain: gtid.0,
                        seq: gtid.1,
                    });
                }
                _ => {}
            }
        }
    }
    events
}

/// Every key's value, read through the server.
fn final_values(server: &ThrudocServer, keys: &[String]) -> HashMap<String, Option<Vec<u8>>> {
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    keys.iter()
        .map(|k| {
            let v = match c.get(BUCKET.into(), k.clone()) {
                Ok(v) => Some(v),
                Err(e) => {
                    assert_eq!(common::error_code(e), 2, "final read of {k}");
                    None
                }
            };
            (k.clone(), v)
        })
        .collect()
}

/// Writes of keys on `affected` partitions refused between `from` and `to`: how many, and from
/// the start of the first to the end of the last.
fn refusals(
    history: &History,
    from: Instant,
    to: Instant,
    affected: impl Fn(&str) -> bool,
) -> (usize, Duration) {
    let refused: Vec<_> = history
        .ops
        .iter()
        .filter(|o| o.put.is_some() && o.start >= from && o.start <= to && affected(&o.key))
        .filter(|o| !matches!(o.outcome, Outcome::Ok(_)))
        .collect();
    let first = refused.iter().map(|o| o.start).min();
    let last = refused.iter().map(|o| o.end).max();
    match (first, last) {
        (Some(a), Some(b)) => (refused.len(), b - a),
        _ => (0, Duration::ZERO),
    }
}

/// Puts `key` through the server until it is acknowledged, failing after `deadline`.
fn put_until_ok(server: &ThrudocServer, key: &str, value: &[u8], deadline: Duration) -> Duration {
    let start = Instant::now();
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    loop {
        let last = match c.put(BUCKET.into(), key.to_string(), value.to_vec()) {
            Ok(()) => return start.elapsed(),
            Err(e) => format!("{e:?}"),
        };
        assert!(
            start.elapsed() < deadline,
            "put of {key} not accepted within {deadline:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value_on(db: &MariaDb, table: &str, key: &str) -> Vec<Vec<String>> {
    db.sql(&format!(
        "SELECT v FROM {table} WHERE k = {}",
        sql_hex(key.as_bytes())
    ))
}

#[test]
fn failover_and_switchover_round_trip_under_load() {
    let setup = Setup::new();
    let (h1, h2) = (setup.h1(), setup.h2());
    let h1_addr = format!("--host={}", h1.addr());
    let server = setup.server();
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    {
        let mut c = server.client(Transport::Framed, Protocol::Compact);
        for k in &keys {
            c.put(BUCKET.into(), k.clone(), b"initial".to_vec())
                .unwrap();
        }
    }
    let on_h1 = |k: &str| part_of(&setup.parts, k).host == 0;
    let workload = Workload::start(server.addr, BUCKET, &keys, 4);
    std::thread::sleep(Duration::from_millis(1000));

    // Failover while h1 is up: fenced, partitions on h2.
    let s2_before = domain_seq(h2, 2);
    let failover_at = Instant::now();
    let run = admin(&cmd("failover", h1, &[&h1_addr])).ok("failover");
    assert!(run.stdout.contains("is fenced"), "{}", run.text());
    assert!(
        run.stdout.contains("must stay out of service"),
        "{}",
        run.text()
    );
    let s1_fenced = domain_seq(h1, 1);
    assert!(read_only(h1), "h1 is fenced");
    let (id1, id2) = (setup.host_id(h1, 0), setup.host_id(h1, 1));
    assert!(
        setup.placed(h1, 0).iter().all(|h| *h == id2),
        "h1's partitions are on h2: {:?}",
        setup.placed(h1, 0)
    );
    let moved = h1.sql(&format!(
        "SELECT COUNT(*) FROM {DB}.partition_moved WHERE home_host_id = {id1}"
    ));
    assert_eq!(moved[0][0], setup.home_tables(0).len().to_string());

    // The server follows: writes to h1's partitions are executed on h2.
    let key = setup.key_on(0, "after-failover");
    let took = put_until_ok(&server, &key, b"on-h2", Duration::from_secs(5));
    eprintln!(
        "MANUAL FAILOVER: writes to the moved partitions accepted {took:?} after the command"
    );
    let table = setup.table_of(&key);
    assert_eq!(value_on(h2, &table, &key), vec![vec!["on-h2".to_string()]]);
    wait_replicated(h2, h1, Duration::from_secs(30));
    assert_eq!(value_on(h1, &table, &key), vec![vec!["on-h2".to_string()]]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        domain_seq(h1, 1),
        s1_fenced,
        "h1 committed nothing while fenced"
    );

    // Switchover back to h1.
    let switch_at = Instant::now();
    let mut args = cmd("switchover", h1, &[&h1_addr]);
    args.extend(SWITCHOVER_WAIT.iter().map(|s| s.to_string()));
    let run = admin(&args).ok("switchover");
    let switch_done = Instant::now();
    let s2_after = domain_seq(h2, 2);
    assert!(run.stdout.contains("refused for"), "{}", run.text());
    assert!(!read_only(h1), "h1 takes writes again");
    assert!(setup.placed(h1, 0).iter().all(|h| *h == id1));
    assert_eq!(
        directory_state(h1)[0][2..],
        ["0".to_string(), "0".to_string()],
        "no moved or frozen rows left"
    );
    let key = setup.key_on(0, "after-switchover");
    put_until_ok(&server, &key, b"on-h1", Duration::from_secs(5));
    assert_eq!(
        value_on(h1, &setup.table_of(&key), &key),
        vec![vec!["on-h1".to_string()]]
    );
    std::thread::sleep(Duration::from_millis(1000));
    let history = workload.stop();

    // Nothing acknowledged lost; the refusals the switchover caused.
    setup.both_replicated();
    history.check(&final_values(&server, &keys), b"initial");
    let (n, span) = refusals(&history, failover_at, switch_at, on_h1);
    eprintln!(
        "MANUAL FAILOVER: {n} writes to h1's partitions refused around the failover, over {span:?}"
    );
    let (n, span) = refusals(&history, switch_at, switch_done, on_h1);
    eprintln!(
        "SWITCHOVER: {n} writes to the returning partitions refused over {span:?} (command took {:?})",
        switch_done - switch_at
    );
    let unaffected = history
        .ops
        .iter()
        .filter(|o| !on_h1(&o.key) && !matches!(o.outcome, Outcome::Ok(_)))
        .count();
    assert_eq!(unaffected, 0, "h2's own partitions were served throughout");

    // One writer per partition at each moment, from the binary logs: h2 wrote h1's partitions
    // only between the failover and the switchover, h1 wrote nothing while fenced and h1's
    // partitions again after, and nobody but h2 wrote h2's partitions.
    let h1_tables = setup.home_tables(0);
    let h2_tables = setup.home_tables(1);
    let mut h2_wrote_h1 = 0;
    for ev in row_events(h2) {
        if h2_tables.contains(&ev.table) {
            assert_eq!(ev.server, 2, "h2's partition written elsewhere: {ev:?}");
        }
        if h1_tables.contains(&ev.table) && ev.server == 2 {
            h2_wrote_h1 += 1;
            assert_eq!(ev.domain, 2, "{ev:?}");
            assert!(
                ev.seq > s2_before && ev.seq <= s2_after,
                "h2 wrote h1's partition outside the failover ({s2_before}, {s2_after}]: {ev:?}"
            );
        }
    }
    assert!(
        h2_wrote_h1 > 0,
        "h2 took writes for h1's partitions during the failover"
    );
    let h1_after = row_events(h1)
        .into_iter()
        .filter(|ev| h1_tables.contains(&ev.table) && ev.server == 1)
        .filter(|ev| ev.seq > s1_fenced)
        .count();
    assert!(
        h1_after > 0,
        "h1 took writes for its partitions after the switchover"
    );

    // Master and sibling hold the same rows.
    let run = admin(&cmd("verify", h1, &[&format!("--tablename={BUCKET}")])).ok("verify");
    assert_eq!(
        run.stdout.matches("checksum equal").count(),
        setup.parts.len(),
        "{}",
        run.text()
    );
    assert!(run.stdout.contains("0 different"), "{}", run.text());
}

#[test]
fn failover_of_a_killed_master_and_switchover_after_it_returns() {
    let setup = Setup::new();
    let (h1, h2) = (setup.h1(), setup.h2());
    let h1_addr = format!("--host={}", h1.addr());
    let server = setup.server();
    let keys: Vec<String> = (0..40).map(|i| format!("k-{i}")).collect();
    {
        let mut c = server.client(Transport::Framed, Protocol::Binary);
        for k in &keys {
            c.put(BUCKET.into(), k.clone(), b"initial".to_vec())
                .unwrap();
        }
    }
    setup.both_replicated();

    // h2 receives a write of h1's but has not applied it when h1 dies.
    h2.sql("STOP SLAVE SQL_THREAD");
    let direct = setup.key_on(0, "direct");
    h1.sql(&format!(
        "INSERT INTO {} (k, v) VALUES ({}, 'written on h1')",
        setup.table_of(&direct),
        sql_hex(direct.as_bytes())
    ));
    let wanted = domain_seq(h1, 1);
    common::wait_until(Duration::from_secs(10), "h2 to receive h1's write", || {
        let status = h2.sql_named("SHOW SLAVE STATUS");
        status[0]["Gtid_IO_Pos"]
            .split(',')
            .any(|g| g.trim() == format!("1-1-{wanted}"))
    });
    h1.kill9();

    // The directory master is dead: the operator works on the directory's sibling.
    let run = admin(&cmd("failover", h1, &[&h1_addr])).code(1, "failover via a dead directory");
    assert!(run.stderr.contains("directory's sibling"), "{}", run.text());
    let before = directory_state(h2);
    let run = admin(&cmd("failover", h2, &[&h1_addr, "--catch-up-timeout=1"]));
    let run = run.code(1, "failover while h2 has not applied what it received");
    assert!(run.stdout.contains("does not answer"), "{}", run.text());
    assert!(run.stderr.contains("refused"), "{}", run.text());
    assert_eq!(directory_state(h2), before, "a refusal changes nothing");

    h2.sql("START SLAVE SQL_THREAD");
    let run = admin(&cmd("failover", h2, &[&h1_addr])).ok("failover of a dead master");
    assert!(run.stdout.contains("was not fenced"), "{}", run.text());
    assert!(
        run.stdout.contains("lost"),
        "the loss window is stated: {}",
        run.text()
    );
    let id2 = setup.host_id(h2, 1);
    assert!(setup.placed(h2, 0).iter().all(|h| *h == id2));

    // Reads and writes of h1's partitions work through h2.
    let key = setup.key_on(0, "while-dead");
    put_until_ok(&server, &key, b"via-h2", Duration::from_secs(5));
    assert_eq!(
        value_on(h2, &setup.table_of(&key), &key),
        vec![vec!["via-h2".to_string()]]
    );
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    assert_eq!(
        c.get(BUCKET.into(), direct.clone()).unwrap(),
        b"written on h1"
    );
    for k in &keys {
        assert_eq!(c.get(BUCKET.into(), k.clone()).unwrap(), b"initial", "{k}");
        c.put(BUCKET.into(), k.clone(), b"second".to_vec()).unwrap();
    }

    // h1 returns; it stays read_only until the switchover, which it starts replicating for.
    h1.restart();
    h1.sql("SET GLOBAL read_only = ON");
    wait_slave_running(h1, Duration::from_secs(30));
    setup.both_replicated();
    let mut args = cmd("switchover", h1, &[&h1_addr]);
    args.extend(SWITCHOVER_WAIT.iter().map(|s| s.to_string()));
    admin(&args).ok("switchover after the restart");
    assert!(!read_only(h1));
    let id1 = setup.host_id(h1, 0);
    assert!(setup.placed(h1, 0).iter().all(|h| *h == id1));
    let key = setup.key_on(0, "back-home");
    put_until_ok(&server, &key, b"on-h1", Duration::from_secs(5));
    assert_eq!(
        value_on(h1, &setup.table_of(&key), &key),
        vec![vec!["on-h1".to_string()]]
    );
    for k in &keys {
        assert_eq!(c.get(BUCKET.into(), k.clone()).unwrap(), b"second", "{k}");
    }
    setup.both_replicated();
    admin(&cmd("verify", h1, &[&format!("--tablename={BUCKET}")])).ok("verify");
}

#[test]
fn failover_refuses_a_lagging_sibling_unless_forced() {
    let setup = Setup::new();
    let (h1, h2) = (setup.h1(), setup.h2());
    let h1_addr = format!("--host={}", h1.addr());
    h2.sql("STOP SLAVE SQL_THREAD");
    let key = setup.key_on(0, "lag");
    h1.sql(&format!(
        "INSERT INTO {} (k, v) VALUES ({}, 'not on h2 yet')",
        setup.table_of(&key),
        sql_hex(key.as_bytes())
    ));
    let before = directory_state(h1);
    let run = admin(&cmd("failover", h1, &[&h1_addr, "--catch-up-timeout=1"]))
        .code(1, "failover with a lagging sibling");
    assert!(run.stderr.contains("refused"), "{}", run.text());
    assert!(run.stderr.contains("stays fenced"), "{}", run.text());
    assert_eq!(directory_state(h1), before, "the directory is unchanged");
    assert!(read_only(h1), "h1 stays fenced after the refusal");

    let run = admin(&cmd(
        "failover",
        h1,
        &[&h1_addr, "--catch-up-timeout=1", "--force"],
    ))
    .ok("failover --force");
    assert!(run.stdout.contains("--force"), "{}", run.text());
    let id2 = setup.host_id(h1, 1);
    assert!(setup.placed(h1, 0).iter().all(|h| *h == id2));
    assert_ne!(directory_state(h1)[0][0], before[0][0], "version bumped");

    h2.sql("START SLAVE SQL_THREAD");
    setup.both_replicated();
    assert_eq!(
        value_on(h2, &setup.table_of(&key), &key),
        vec![vec!["not on h2 yet".to_string()]]
    );
    admin(&cmd("verify", h1, &[&format!("--tablename={BUCKET}")])).ok("verify");

    // Switchover while h1 cannot catch up (its replication blocked on a table lock): the
    // partitions are unfrozen and stay on h2, h1 stays read_only.
    let table = setup.table_of(&key);
    let mut args = cmd(
        "switchover",
        h1,
        &[&h1_addr, "--catch-up-timeout=1", "--margin-ms=0"],
    );
    args.extend(SWITCHOVER_WAIT[..2].iter().map(|s| s.to_string()));
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            h1.try_sql_timeout(
                &format!("LOCK TABLES {table} READ; SELECT SLEEP(7); UNLOCK TABLES"),
                Duration::from_secs(30),
            )
        });
        common::wait_until(Duration::from_secs(10), "the table lock on h1", || {
            h1.sql(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(7)%'",
            )[0][0]
                == "1"
        });
        h2.sql(&format!(
            "UPDATE {table} SET v = 'written on h2' WHERE k = {}",
            sql_hex(key.as_bytes())
        ));
        let before = directory_state(h1);
        let run = admin(&args).code(1, "switchover while h1 lags");
        assert!(run.stderr.contains("did not apply"), "{}", run.text());
        assert!(run.stderr.contains("unfrozen"), "{}", run.text());
        let after = directory_state(h1);
        assert_eq!(
            after[0][1..],
            before[0][1..],
            "placement, moved and frozen rows as before"
        );
        assert_ne!(
            after[0][0], before[0][0],
            "frozen and unfrozen: version bumped"
        );
        assert!(read_only(h1), "h1 stays read_only");
        holder
            .join()
            .expect("lock holder")
            .expect("lock holder's SQL");
    });
    admin(&args).ok("switchover once h1 catches up");
    assert!(!read_only(h1));
    assert_eq!(
        value_on(h1, &table, &key),
        vec![vec!["written on h2".to_string()]]
    );
}

#[test]
fn verify_reports_a_row_changed_on_the_sibling_only() {
    let setup = Setup::new();
    let (h1, h2) = (setup.h1(), setup.h2());
    let keys: Vec<String> = (0..4).map(|i| setup.key_on(0, &format!("v{i}"))).collect();
    for k in &keys {
        h1.sql(&format!(
            "INSERT INTO {} (k, v) VALUES ({}, 'same')",
            setup.table_of(k),
            sql_hex(k.as_bytes())
        ));
    }
    setup.both_replicated();
    let verify = |rest: &[&str]| {
        let mut args = vec![format!("--tablename={BUCKET}")];
        args.extend(rest.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        admin(&cmd("verify", h1, &args))
    };
    let run = verify(&[]).ok("verify of equal copies");
    assert!(
        run.stdout.contains(&format!("[1/{}]", setup.parts.len())),
        "{}",
        run.text()
    );

    // A row changed on the sibling only, kept out of its binary log.
    let changed = &keys[0];
    let table = setup.table_of(changed);
    h2.sql(&format!(
        "SET sql_log_bin = 0; UPDATE {table} SET v = 'tampered' WHERE k = {}",
        sql_hex(changed.as_bytes())
    ));
    let id = part_of(&setup.parts, changed).id;
    let run = verify(&["--retries=0"]).code(1, "verify with a difference");
    assert!(run.stdout.contains("DIFFERENT"), "{}", run.text());
    assert!(
        run.stdout.contains(&format!("different: partition {id} ")),
        "{}",
        run.text()
    );
    assert!(run.stdout.contains("1 different"), "{}", run.text());
    let other = setup.parts.iter().find(|p| p.id != id).unwrap().id;
    verify(&[&format!("--partition={other}")]).ok("verify of another partition");
    verify(&["--partition=999999"]).code(2, "an unknown partition");

    // A sibling that cannot be reached: not compared, exit 2.
    h2.kill9();
    let run = verify(&[&format!("--partition={other}")]).code(2, "verify with a host down");
    assert!(run.stdout.contains("NOT COMPARED"), "{}", run.text());
}

#[test]
fn help_describes_the_new_subcommands() {
    let run = admin(&["--help".to_string()]).ok("--help");
    for sub in ["failover", "switchover", "verify"] {
        assert!(run.stdout.contains(sub), "{}", run.stdout);
    }
    for (sub, flags) in [
        (
            "failover",
            &["--host", "--force", "--catch-up-timeout", "--probe-timeout"][..],
        ),
        (
            "switchover",
            &[
                "--host",
                "--lease-ms",
                "--query-timeout-ms",
                "--margin-ms",
                "--catch-up-timeout",
            ][..],
        ),
        (
            "verify",
            &["--tablename", "--partition", "--catch-up-timeout"][..],
        ),
    ] {
        let run = admin(&[sub.to_string(), "--help".to_string()]).ok(sub);
        for f in flags
            .iter()
            .chain(&["--master-hostname", "--root-pass-file", "--database"])
        {
            assert!(
                run.stdout.contains(f),
                "{sub} --help lacks {f}:\n{}",
                run.stdout
            );
        }
    }
    admin(&["failover".to_string()]).code(2, "failover without --host");
    admin(&["verify".to_string()]).code(2, "verify without --tablename");
    admin(&[
        "switchover".to_string(),
        "--host=h".into(),
        "--lease-ms=0".into(),
    ])
    .code(2, "a lease of 0");
}
