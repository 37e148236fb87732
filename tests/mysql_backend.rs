//! The MySQL backend through the real `thrudoc` binary, against real MariaDB servers started by
//! the harness: four hosts in two master-master pairs (1↔2, 3↔4), shared by the tests of this
//! file; each test uses its own bucket (or directory schema).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use common::checks::{element, exercise_every_method, walk, INVALID, NO_BUCKET, NO_SUCH_KEY};
use common::conformance::{checks_per_run, script, Idl, Values};
use common::drivers::{Bindings, Lang, Source};
use common::mariadb::{require_mariadb, wait_replicated, Cluster, MariaDb};
use common::mysql::{
    create_bucket, create_original_directory, original_fnv, original_place, part_of, partitions,
    sql_hex, thrudoc_on,
};
use common::{code_of, error_code, ThrudocServer};
use thrudoc::client::ALL_KINDS;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

const REPLICATION_DEADLINE: Duration = Duration::from_secs(30);

/// The four hosts shared by this file's tests (ended by the harness's watchdog at exit).
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        require_mariadb();
        Cluster::start_pairs(2)
    })
}

/// A server on the directory in schema `db` of host 1 (sibling: host 2).
fn thrudoc_in(cluster: &Cluster, db: &str, extra: &str) -> ThrudocServer {
    thrudoc_on(&cluster.hosts[0], Some(&cluster.hosts[1]), db, extra)
}

/// The four hosts' addresses.
fn addrs(cluster: &Cluster) -> Vec<String> {
    cluster.hosts.iter().map(|h| h.addr()).collect()
}

/// Makes `bucket` over the four hosts, paired, directory in schema `thrudoc` on host 1.
fn create(cluster: &Cluster, bucket: &str, parts_per: u32) {
    create_bucket(
        &cluster.hosts[0],
        "thrudoc",
        &addrs(cluster),
        bucket,
        parts_per,
    );
}

/// A directory exactly as the original Thrudoc left it: only `host` and `directory` (DECIMAL
/// ranges, no hash column, no version table), datatables with the original column set, rows
/// placed by the original FNV. Thrudoc must serve it as it is.
#[test]
fn an_existing_thrudoc_directory_is_served_unchanged() {
    assert_eq!(original_fnv(b"a"), 3_826_002_253, "hand-computed value");
    let cluster = cluster();
    let h = &cluster.hosts;
    // Partition id -> (host index, range end); row 5 is retired and must be ignored.
    let partitions = create_original_directory(&h[..4], "legacy");
    let place = |key: &str| original_place(&partitions, key);
    // Rows the original server wrote.
    let old: Vec<String> = (0..40).map(|i| format!("{i}-old")).collect();
    for key in &old {
        let (id, host, _) = place(key);
        h[host].sql(&format!(
            "INSERT INTO legacy.d_{id:012} (k, v, created_at) VALUES ('{key}', 'v:{key}', NOW())"
        ));
    }
    let used: HashSet<i32> = old.iter().map(|k| place(k).0).collect();
    assert_eq!(used.len(), 4, "the keys spread over every partition");

    let server = thrudoc_in(cluster, "legacy", "MYSQL_USERNAME = root\nMYSQL_PASSWORD =");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    assert_eq!(c.get_buckets().unwrap(), vec!["tags".to_string()]);
    for key in &old {
        assert_eq!(
            c.get("tags".into(), key.clone()).unwrap(),
            format!("v:{key}").into_bytes()
        );
    }
    // New writes land where the original would have put them, on that host.
    let new: Vec<String> = (0..40).map(|i| format!("{i}-new")).collect();
    for key in &new {
        c.put("tags".into(), key.clone(), key.as_bytes().to_vec())
            .unwrap();
        let (id, host, _) = place(key);
        let rows = h[host].sql(&format!(
            "SELECT v FROM legacy.d_{id:012} WHERE k = {}",
            sql_hex(key.as_bytes())
        ));
        assert_eq!(
            rows,
            vec![vec![key.clone()]],
            "{key} is in partition {id} on host {}",
            host + 1
        );
    }
    c.remove("tags".into(), "0-old".into()).unwrap();
    assert_eq!(
        error_code(c.get("tags".into(), "0-old".into()).unwrap_err()),
        NO_SUCH_KEY
    );
    let seen = walk(&mut c, "tags", 7);
    assert_eq!(seen.len(), 79, "every key once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 79);
    // The directory is untouched: no table was added to it.
    let tables = h[0].sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'legacy'
                           AND table_name NOT LIKE 'd\\_%' ORDER BY table_name",
    );
    assert_eq!(
        tables,
        vec![vec!["directory".to_string()], vec!["host".to_string()]]
    );
}

/// Rows written through Thrudoc reach the sibling of the host that took them.
fn assert_on_sibling(master: &MariaDb, sibling: &MariaDb, table: &str, key: &str) {
    wait_replicated(master, sibling, REPLICATION_DEADLINE);
    let rows = sibling.sql(&format!(
        "SELECT COUNT(*) FROM {table} WHERE k = {}",
        sql_hex(key.as_bytes())
    ));
    assert_eq!(
        rows,
        vec![vec!["1".to_string()]],
        "{key} replicated to the sibling"
    );
}

/// The sibling of host `i` (pairs 0↔1, 2↔3).
fn sibling(i: usize) -> usize {
    i ^ 1
}

#[test]
fn every_method_on_two_pairs_and_rows_where_placement_says() {
    let cluster = cluster();
    let h = &cluster.hosts;
    create(cluster, "api4", 3);
    let parts = partitions(&h[0], "thrudoc", "api4", &addrs(cluster));
    assert_eq!(parts.len(), 12);
    let server = thrudoc_in(cluster, "thrudoc", "");
    for (i, (transport, protocol)) in ALL_KINDS.into_iter().enumerate() {
        let mut c = server.client(transport, protocol);
        exercise_every_method(&mut c, "api4", &format!("kind{i}/"));
    }

    // Each key's row is in the partition placement names, on that host, and nowhere else.
    let mut c = server.client(Transport::Unframed, Protocol::Compact);
    let keys: Vec<String> = (0..300).map(|i| format!("placed-{i}")).collect();
    let mut per_partition: HashMap<u64, usize> = HashMap::new();
    for key in &keys {
        c.put("api4".into(), key.clone(), key.as_bytes().to_vec())
            .unwrap();
        let part = part_of(&parts, key);
        *per_partition.entry(part.id).or_default() += 1;
        let where_k = format!("WHERE k = {}", sql_hex(key.as_bytes()));
        let rows = h[part.host].sql(&format!("SELECT v FROM {} {where_k}", part.table));
        assert_eq!(
            rows,
            vec![vec![key.clone()]],
            "{key} on host {}",
            part.host + 1
        );
        let other = parts
            .iter()
            .find(|p| p.id != part.id && p.host != sibling(part.host))
            .unwrap();
        let rows = h[other.host].sql(&format!("SELECT COUNT(*) FROM {} {where_k}", other.table));
        assert_eq!(
            rows,
            vec![vec!["0".to_string()]],
            "{key} only in its own partition"
        );
    }
    assert!(
        per_partition.len() >= 11,
        "nearly every partition holds rows: {per_partition:?}"
    );

    // Every partition's table is identical on the host's sibling.
    for (i, host) in h.iter().enumerate() {
        wait_replicated(host, &h[sibling(i)], REPLICATION_DEADLINE);
    }
    for part in &parts {
        let sum = |db: &MariaDb| db.sql(&format!("CHECKSUM TABLE {}", part.table))[0][1].clone();
        assert_eq!(
            sum(&h[part.host]),
            sum(&h[sibling(part.host)]),
            "partition {}",
            part.id
        );
    }
    assert_on_sibling(
        &h[parts[0].host],
        &h[sibling(parts[0].host)],
        &parts[0].table,
        "placed-0",
    );
}

#[test]
fn python_client_passes_the_conformance_check_against_mysql() {
    let cluster = cluster();
    create(cluster, "pyapi", 2);
    let server = thrudoc_in(cluster, "thrudoc", "");
    let values = Values::Bytes;
    let report = Bindings::generate(Lang::Python, Source::New)
        .run(server.addr, &script("pyapi", Idl::New, values, "mysql"));
    report.assert_passed(
        checks_per_run(values) * ALL_KINDS.len(),
        &server.stderr_text(),
    );
}

#[test]
fn scan_under_concurrent_writes_returns_each_stable_key_once() {
    let cluster = cluster();
    create(cluster, "scanw", 2);
    let server = thrudoc_in(cluster, "thrudoc", "");
    let mut c = server.client(Transport::Framed, Protocol::Compact);
    let stable: Vec<String> = (0..400).map(|i| format!("stable-{i}")).collect();
    let batch: Vec<_> = stable
        .iter()
        .map(|k| element("scanw", k, k.as_bytes()))
        .collect();
    assert!(c
        .put_list(batch)
        .unwrap()
        .iter()
        .all(|e| e.what.as_deref() == Some("")));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut w = server.client(Transport::Framed, Protocol::Binary);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("churn-{}", n % 50);
                if n % 3 == 2 {
                    w.remove("scanw".into(), key).unwrap();
                } else {
                    w.put("scanw".into(), key, vec![n as u8]).unwrap();
                }
                n += 1;
            }
            n
        });
        let seen = walk(&mut c, "scanw", 13);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let writes = writer.join().unwrap();
        assert!(
            writes > 10,
            "the writer ran during the walk ({writes} writes)"
        );
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a key was returned twice");
        for key in &stable {
            assert!(unique.contains(key), "{key} missing from the walk");
        }
    });
}

#[test]
fn batches_span_buckets_partitions_and_hosts_with_failing_elements() {
    let cluster = cluster();
    create(cluster, "batch_a", 2);
    create(cluster, "batch_b", 1);
    let server = thrudoc_in(cluster, "thrudoc", "");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let mut elements = Vec::new();
    for i in 0..120 {
        let bucket = match i % 10 {
            3 => "no_such_bucket",
            7 => "bad bucket!",
            n if n % 2 == 0 => "batch_a",
            _ => "batch_b",
        };
        let key = if i == 55 {
            String::new()
        } else {
            format!("e{i}")
        };
        elements.push(element(bucket, &key, format!("value {i}").as_bytes()));
    }
    let expect = |i: usize| match (i % 10, i) {
        (3, _) => NO_BUCKET,
        (7, _) | (_, 55) => INVALID,
        _ => 0,
    };
    let put = c.put_list(elements.clone()).unwrap();
    assert_eq!(put.len(), elements.len());
    for (i, r) in put.iter().enumerate() {
        let ok = r.what.as_deref() == Some("");
        assert_eq!(ok, expect(i) == 0, "put element {i}: {r:?}");
        if !ok {
            assert_eq!(code_of(r), expect(i), "put element {i}");
        }
    }
    let got = c.get_list(elements.clone()).unwrap();
    for (i, r) in got.iter().enumerate() {
        let element = r.element.as_ref().unwrap();
        assert_eq!(element.key, elements[i].key, "getList keeps order");
        let ex = r.ex.as_ref().unwrap();
        if expect(i) == 0 {
            assert_eq!(ex.what.as_deref(), Some(""), "{i}");
            assert_eq!(element.value, elements[i].value, "{i}");
        } else {
            assert_eq!(code_of(ex), expect(i), "get element {i}");
        }
    }
    let removed = c.remove_list(elements.clone()).unwrap();
    assert_eq!(removed.len(), elements.len());
    let got = c.get_list(elements.clone()).unwrap();
    for (i, r) in got.iter().enumerate() {
        let want = if expect(i) == 0 {
            NO_SUCH_KEY
        } else {
            expect(i)
        };
        assert_eq!(code_of(r.ex.as_ref().unwrap()), want, "after remove {i}");
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let cluster = cluster();
    create(cluster, "badin", 1);
    let server = thrudoc_in(cluster, "thrudoc", "");
    let mut c = server.client(Transport::Unframed, Protocol::Binary);
    let b = || "badin".to_string();
    for (name, err, want) in [
        (
            "sql bucket",
            c.put("badin`; DROP TABLE host; --".into(), "k".into(), vec![1])
                .unwrap_err(),
            INVALID,
        ),
        (
            "quote bucket",
            c.get("x' OR '1'='1".into(), "k".into()).unwrap_err(),
            INVALID,
        ),
        (
            "unknown bucket",
            c.put("directory".into(), "k".into(), vec![1]).unwrap_err(),
            NO_BUCKET,
        ),
        (
            "empty key",
            c.put(b(), String::new(), vec![1]).unwrap_err(),
            INVALID,
        ),
        (
            "long key",
            c.put(b(), "k".repeat(300), vec![1]).unwrap_err(),
            INVALID,
        ),
        (
            "big value",
            c.put(b(), "k".into(), vec![0; (1 << 20) + 1]).unwrap_err(),
            INVALID,
        ),
        (
            "bad seed",
            c.scan(b(), "m1:99999:zz".into(), 5).unwrap_err(),
            INVALID,
        ),
        (
            "count",
            c.scan(b(), String::new(), -5).unwrap_err(),
            INVALID,
        ),
    ] {
        assert_eq!(error_code(err), want, "{name}");
    }
    // An append past MYSQL_MAX_VALUES_SIZE is refused atomically and leaves the value alone.
    c.put(b(), "grow".into(), vec![7; 1 << 20]).unwrap();
    assert_eq!(
        error_code(c.append(b(), "grow".into(), vec![8]).unwrap_err()),
        INVALID
    );
    assert_eq!(c.get(b(), "grow".into()).unwrap(), vec![7; 1 << 20]);
    c.append(b(), "small".into(), b"ab".to_vec()).unwrap();
    c.append(b(), "small".into(), b"cd".to_vec()).unwrap();
    assert_eq!(c.get(b(), "small".into()).unwrap(), b"abcd");
    // Nothing else was stored anywhere, and the directory is intact.
    assert_eq!(walk(&mut c, "badin", 50).len(), 2);
    let hosts = cluster.hosts[0].sql("SELECT COUNT(*) FROM thrudoc.host");
    assert_eq!(hosts, vec![vec!["4".to_string()]]);
}

#[test]
fn directory_changes_are_noticed_without_a_restart() {
    let cluster = cluster();
    create(cluster, "early", 1);
    let server = thrudoc_in(cluster, "thrudoc", "");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    assert!(!c.get_buckets().unwrap().contains(&"late".to_string()));
    create(cluster, "late", 1);
    let start = std::time::Instant::now();
    common::wait_until(
        Duration::from_secs(5),
        "the new bucket to be served",
        || c.get_buckets().unwrap().contains(&"late".to_string()),
    );
    eprintln!(
        "new bucket served {:?} after create-tablename returned",
        start.elapsed()
    );
    c.put("late".into(), "k".into(), b"v".to_vec()).unwrap();
    let reply = c.admin("load_partitions".into(), String::new()).unwrap();
    assert!(reply.contains("directory version"), "{reply}");
}

/// `ADMIN_OPS` without `load_partitions`: a client cannot make the server reload its
/// directory, and is told why; the reading ops still answer.
#[test]
fn admin_ops_left_out_are_refused() {
    let cluster = cluster();
    create(cluster, "opsb", 1);
    let server = thrudoc_in(cluster, "thrudoc", "ADMIN_OPS = stats, status");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let err = c
        .admin("load_partitions".into(), String::new())
        .unwrap_err();
    let ex = common::thrudoc_exception(err);
    assert_eq!(common::code_of(&ex), 3, "INVALID_ARGUMENT");
    let what = ex.what.unwrap_or_default();
    assert!(
        what.contains(
            "admin op `load_partitions` is switched off on this server (ADMIN_OPS = stats, status)"
        ),
        "{what}"
    );
    assert!(c.admin("echo".into(), "x".into()).is_err());
    assert!(c
        .admin("stats".into(), String::new())
        .unwrap()
        .contains("directory.version="));
    assert!(c
        .admin("status".into(), String::new())
        .unwrap()
        .contains("backend=mysql"));
    let open = thrudoc_in(cluster, "thrudoc", "");
    let mut c = open.client(Transport::Framed, Protocol::Binary);
    assert!(c
        .admin("load_partitions".into(), String::new())
        .unwrap()
        .contains("directory version"));
}

/// The store itself, not through the server: the same conformance suite the embedded store
/// passes, against real MariaDB.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_store_passes_the_store_contract() {
    let cluster = tokio::task::spawn_blocking(|| {
        let c = cluster();
        create(c, "contract", 2);
        c
    })
    .await
    .unwrap();
    let text = format!(
        "BACKEND = mysql\nMYSQL_MASTER_HOST = 127.0.0.1\nMYSQL_MASTER_PORT = {}\n\
         MYSQL_DIRECTORY_DB = thrudoc\nMYSQL_USERNAME = thrudoc\nMYSQL_PASSWORD = pass\n",
        cluster.hosts[0].port()
    );
    let config = thrudoc::config::Config::from_sources(&text, std::iter::empty()).unwrap();
    let thrudoc::config::Backend::Mysql(mysql) = config.backend else {
        panic!()
    };
    let store = thrudoc::store::mysql::MysqlStore::open(&mysql)
        .await
        .unwrap();
    thrudoc::store::contract::check_store(&store, "contract").await;
}

/// A partition listed in `partition_frozen` (what switchover does while it moves one) takes no
/// writes, on any server, until it is unfrozen; reads go on.
#[test]
fn frozen_partitions_refuse_writes_and_keep_serving_reads() {
    let cluster = cluster();
    let h = &cluster.hosts;
    create(cluster, "frozen", 1);
    let parts = partitions(&h[0], "thrudoc", "frozen", &addrs(cluster));
    let server = thrudoc_in(cluster, "thrudoc", "");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let keys: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    for k in &keys {
        c.put("frozen".into(), k.clone(), b"before".to_vec())
            .unwrap();
    }
    let frozen = &parts[0];
    h[0].sql(&format!(
        "INSERT INTO thrudoc.partition_frozen VALUES ({}, 'switchover in progress', NOW());
         INSERT INTO thrudoc.directory_version (id, version) VALUES (1, 1)
             ON DUPLICATE KEY UPDATE version = version + 1",
        frozen.id
    ));
    c.admin("load_partitions".into(), String::new()).unwrap();
    let (inside, outside): (Vec<&String>, Vec<&String>) = keys
        .iter()
        .partition(|k| part_of(&parts, k).id == frozen.id);
    assert!(!inside.is_empty() && !outside.is_empty());
    for k in &inside {
        let err = c
            .put("frozen".into(), (*k).clone(), b"during".to_vec())
            .unwrap_err();
        assert_eq!(
            error_code(err),
            thrudoc::gen::thrudoc::ErrorCode::READ_ONLY.0
        );
        assert_eq!(c.get("frozen".into(), (*k).clone()).unwrap(), b"before");
    }
    for k in &outside {
        c.put("frozen".into(), (*k).clone(), b"during".to_vec())
            .unwrap();
    }
    h[0].sql(&format!(
        "DELETE FROM thrudoc.partition_frozen WHERE directory_id = {};
         UPDATE thrudoc.directory_version SET version = version + 1",
        frozen.id
    ));
    common::wait_until(
        Duration::from_secs(5),
        "the partition to take writes again",
        || {
            c.put("frozen".into(), inside[0].clone(), b"after".to_vec())
                .is_ok()
        },
    );
}

/// SIGTERM: once requests are done the server closes its pools, its directory connections and
/// its probes, each with a goodbye, so MariaDB counts no aborted client. (Its own pair: the
/// other tests' servers are killed and would count.)
#[test]
fn shutdown_closes_every_connection_politely() {
    require_mariadb();
    let cluster = Cluster::start_pairs(1);
    let addrs: Vec<String> = cluster.hosts.iter().map(|h| h.addr()).collect();
    create_bucket(&cluster.hosts[0], "thrudoc", &addrs, "bye", 2);
    let aborted = |h: &MariaDb| -> u64 {
        h.status_var("Aborted_clients")
            .expect("Aborted_clients")
            .parse()
            .unwrap()
    };
    let before: Vec<u64> = cluster.hosts.iter().map(aborted).collect();
    let mut server = thrudoc_on(&cluster.hosts[0], Some(&cluster.hosts[1]), "thrudoc", "");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    for i in 0..50 {
        let key = format!("k{i}");
        c.put("bye".into(), key.clone(), b"v".to_vec()).unwrap();
        assert_eq!(c.get("bye".into(), key).unwrap(), b"v");
    }
    // Let the probes run: the status then says what they found, not "not probed yet".
    std::thread::sleep(Duration::from_millis(600));
    let status = c.admin("status".into(), String::new()).unwrap();
    assert_eq!(status.matches("state=UP").count(), 2, "{status}");
    assert_eq!(status.matches("(probes answer)").count(), 2, "{status}");
    drop(c);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let after: Vec<u64> = cluster.hosts.iter().map(aborted).collect();
    assert_eq!(
        after, before,
        "aborted clients on each host, before and after"
    );
}

/// Every acknowledged write's GTID reaches the server in its OK packet (the vendored
/// `mysql_async` announces session tracking, vendor/mysql_async/THRUDOC.md): after puts
/// through the server, `admin status` shows each master's acknowledged position at the GTID of
/// the last one, which its binary log holds.
#[test]
fn every_write_reports_its_gtid() {
    let cluster = cluster();
    let h = &cluster.hosts;
    create(cluster, "gtid", 2);
    let server = thrudoc_in(cluster, "thrudoc", "");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    for i in 0..50 {
        c.put("gtid".into(), format!("g{i}"), b"v".to_vec())
            .unwrap();
    }
    let status = c.admin("status".into(), String::new()).unwrap();
    for (i, host) in h.iter().enumerate() {
        let line = status
            .lines()
            .find(|l| l.contains(&format!(" {} ", host.addr())))
            .unwrap_or_else(|| panic!("status lacks host {}:\n{status}", host.addr()));
        let acknowledged = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("acknowledged="))
            .unwrap_or_else(|| panic!("no acknowledged position: {line}"));
        let id = host.server_id();
        let gtid = acknowledged
            .split(',')
            .find(|g| g.starts_with(&format!("{id}-{id}-")))
            .unwrap_or_else(|| panic!("host {i}: no GTID of server {id} acknowledged: {line}"));
        // Written by this server's puts, so in the master's binary log.
        let binlog = &host.sql("SELECT @@gtid_binlog_pos")[0][0];
        let seq: u64 = gtid.rsplit('-').next().unwrap().parse().unwrap();
        let logged: u64 = binlog
            .split(',')
            .find(|g| g.starts_with(&format!("{id}-{id}-")))
            .and_then(|g| g.rsplit('-').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            seq > 0 && seq <= logged,
            "host {i}: acknowledged {gtid}, binary log at {binlog}"
        );
    }
}
