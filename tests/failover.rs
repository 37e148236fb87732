//! Failover under injected faults, with the real `thrudoc` binary and real MariaDB servers.
//!
//! Each test gets its own master-master pair (a fault must not disturb the other tests), a
//! bucket spread over both hosts, and a recorded workload. After the fault and the recovery,
//! the history is checked: every acknowledged write is there with its last acknowledged value,
//! the other host's partitions were served throughout, and the binary logs show that no host
//! ever took a write for a partition it was not the master of. The recovery figures are
//! printed; the assertions on them are loose bounds (correctness, not speed: the targets are
//! measured by `scripts/failover-report`, not by tests).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::conformance::{self, Idl};
use common::drivers::{Bindings, Lang, Source};
use common::history::{History, Workload};
use common::mariadb::{require_mariadb, Cluster};
use common::mysql::{create_bucket, part_of, partitions, thrudoc_on, Part};
use common::proxy::Proxy;
use common::ThrudocServer;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{ErrorCode, TThrudocSyncClient};

const READ_ONLY: i32 = ErrorCode::READ_ONLY.0;
const UNAVAILABLE: i32 = ErrorCode::UNAVAILABLE.0;

/// A pair, a bucket `f` over both hosts (4 partitions each), and a server.
struct Setup {
    cluster: Cluster,
    addrs: Vec<String>,
    parts: Vec<Part>,
    keys: Vec<String>,
}

impl Setup {
    /// `addrs`: how Thrudoc reaches the hosts (their own addresses, or proxies).
    fn new(pairs: usize, proxied: impl Fn(&Cluster) -> Vec<String>) -> Setup {
        require_mariadb();
        let cluster = Cluster::start_pairs(pairs);
        let addrs = proxied(&cluster);
        create_bucket(&cluster.hosts[0], "thrudoc", &addrs, "f", 4);
        let parts = partitions(&cluster.hosts[0], "thrudoc", "f", &addrs);
        let keys = (0..240).map(|i| format!("key-{i}")).collect();
        Setup {
            cluster,
            addrs,
            parts,
            keys,
        }
    }

    fn direct(pairs: usize) -> Setup {
        Setup::new(pairs, |c| c.hosts.iter().map(|h| h.addr()).collect())
    }

    fn server(&self) -> ThrudocServer {
        thrudoc_on(
            &self.cluster.hosts[0],
            Some(&self.cluster.hosts[1]),
            "thrudoc",
            "",
        )
    }

    /// The host index that holds `key`.
    fn host_of(&self, key: &str) -> usize {
        part_of(&self.parts, key).host
    }

    /// The first key whose partition's master is host `i`.
    fn key_on(&self, i: usize) -> &String {
        self.keys
            .iter()
            .find(|k| self.host_of(k) == i)
            .expect("a key on every host")
    }

    /// Writes every key once, so reads have something to find.
    fn fill(&self, server: &ThrudocServer) {
        let mut c = server.client(Transport::Framed, Protocol::Compact);
        for key in &self.keys {
            c.put("f".into(), key.clone(), b"initial".to_vec()).unwrap();
        }
    }

    /// Every key's value, read through a fresh server connection once all hosts are up.
    fn final_values(&self, server: &ThrudocServer) -> HashMap<String, Option<Vec<u8>>> {
        let mut c = server.client(Transport::Framed, Protocol::Binary);
        self.keys
            .iter()
            .map(|k| {
                let v = match c.get("f".into(), k.clone()) {
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

    /// Waits until writes to every partition are accepted again (switchback done).
    fn wait_all_writable(&self, server: &ThrudocServer, deadline: Duration) -> Duration {
        let start = Instant::now();
        let mut c = server.client(Transport::Framed, Protocol::Binary);
        common::wait_until(
            deadline,
            "writes to every partition to be accepted again",
            || {
                self.keys.iter().step_by(7).all(|k| {
                    c.put("f".into(), format!("probe-{k}"), b"p".to_vec())
                        .is_ok()
                })
            },
        );
        start.elapsed()
    }

    /// No host took a write for a partition whose master it is not: every row event on a
    /// partition table, in every binary log, comes from that partition's master.
    fn assert_single_writer(&self) {
        let hosts = &self.cluster.hosts;
        let owner: HashMap<String, u32> = self
            .parts
            .iter()
            .map(|p| (p.table.clone(), hosts[p.host].server_id()))
            .collect();
        let mut events = 0;
        for host in hosts {
            for log in host.sql("SHOW BINARY LOGS") {
                for ev in host.sql(&format!("SHOW BINLOG EVENTS IN '{}'", log[0])) {
                    // Log_name, Pos, Event_type, Server_id, End_log_pos, Info
                    if ev[2] != "Table_map" {
                        continue;
                    }
                    let Some(table) = ev[5].split('(').nth(1).map(|t| t.trim_end_matches(')'))
                    else {
                        continue;
                    };
                    if let Some(master) = owner.get(table) {
                        events += 1;
                        let writer: u32 = ev[3].parse().unwrap();
                        assert_eq!(
                            writer, *master,
                            "{table} was written on server {writer}, but its master is server {master} \
                             (seen in the binary log of server {})",
                            host.server_id()
                        );
                    }
                }
            }
        }
        assert!(events > 0, "the binary logs hold the workload's writes");
    }
}

fn print_figures(name: &str, f: &common::history::Figures) {
    eprintln!(
        "FAILOVER {name}: read_outage={:?} slowest_read={:?} reads_ok/failed={:?} reads_behind={} \
         refused_at_once_after={:?} slowest_refusal={:?} writes_back_after={:?} unaffected_failures={}",
        f.read_outage,
        f.slowest_read,
        f.reads,
        f.reads_behind,
        f.refused_at_once_after,
        f.slowest_refusal,
        f.writes_back_after,
        f.unaffected_failures
    );
}

/// Runs the workload around `fault` (returns when the fault is on) and `recover` (returns
/// when the host accepts connections again), then checks the history.
fn run_fault(
    setup: &Setup,
    server: &ThrudocServer,
    victim: usize,
    name: &str,
    fault: impl FnOnce(),
    recover: impl FnOnce(),
) {
    setup.fill(server);
    let workload = Workload::start(server.addr, "f", &setup.keys, 6);
    std::thread::sleep(Duration::from_millis(1500));
    let fault_at = Instant::now();
    fault();
    std::thread::sleep(Duration::from_secs(5));
    // The state change is visible to operators.
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let stats = c.admin("stats".into(), String::new()).unwrap();
    let down = format!("host.{}.up=0", setup.addrs[victim]);
    assert!(
        stats.contains(&down),
        "{name}: stats lacks {down}:\n{stats}"
    );
    recover();
    let recovered_at = Instant::now();
    let back = setup.wait_all_writable(server, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let history: History = workload.stop();
    let figures = history.measure(fault_at, recovered_at, |k| setup.host_of(k) == victim);
    print_figures(name, &figures);
    eprintln!("FAILOVER {name}: all partitions writable {back:?} after recovery");

    // Nothing acknowledged is lost; nothing read was invented.
    for (i, host) in setup.cluster.hosts.iter().enumerate() {
        common::mariadb::wait_replicated(
            host,
            &setup.cluster.hosts[i ^ 1],
            Duration::from_secs(30),
        );
    }
    history.check(&setup.final_values(server), b"initial");
    // Nor did a read go back in time (FAILOVER_READS = consistent, the default).
    let stale = history.stale_reads(b"initial");
    eprintln!("FAILOVER {name}: lost=0 stale_reads={}", stale.len());
    assert!(stale.is_empty(), "{name}: stale reads: {stale:#?}");
    // The other host's partitions were served throughout.
    assert_eq!(
        figures.unaffected_failures, 0,
        "{name}: operations on unaffected keys failed"
    );
    // Reads of the victim's partitions kept being answered (from the sibling).
    assert!(
        figures.reads.0 > 20,
        "{name}: too few affected reads answered: {:?}",
        figures.reads
    );
    assert!(
        figures.read_outage < Duration::from_secs(5),
        "{name}: reads failed for {:?}",
        figures.read_outage
    );
    // Writes were refused, not hung: never past the query timeout (3 s) by more than slack.
    assert!(
        figures.refused_at_once_after.is_some(),
        "{name}: writes to the victim were never refused at once"
    );
    assert!(
        figures.slowest_refusal < Duration::from_secs(5),
        "{name}: a refusal took {:?}",
        figures.slowest_refusal
    );
    assert!(
        back < Duration::from_secs(10),
        "{name}: switchback took {back:?}"
    );
    setup.assert_single_writer();
    let log = server.stderr_text();
    assert!(
        log.contains("host DOWN"),
        "{name}: the state change is logged"
    );
    assert!(
        log.contains("host UP again"),
        "{name}: switchback is logged"
    );
}

#[test]
fn kill_9_of_a_master_under_load() {
    let setup = Setup::direct(1);
    let server = setup.server();
    let victim = &setup.cluster.hosts[0];
    run_fault(
        &setup,
        &server,
        0,
        "kill -9",
        || victim.kill9(),
        || victim.restart(),
    );
}

#[test]
fn sigstop_of_a_master_under_load() {
    let setup = Setup::direct(1);
    let server = setup.server();
    let victim = &setup.cluster.hosts[1];
    run_fault(
        &setup,
        &server,
        1,
        "SIGSTOP",
        || victim.stop(),
        || victim.cont(),
    );
}

#[test]
fn network_black_hole_to_a_master() {
    let proxies: std::sync::Mutex<Vec<Proxy>> = std::sync::Mutex::new(Vec::new());
    let setup = Setup::new(1, |c| {
        let mut p = proxies.lock().unwrap();
        p.extend(c.hosts.iter().map(|h| Proxy::start(&h.addr())));
        p.iter().map(|p| p.addr()).collect()
    });
    assert!(setup.addrs[0].ends_with(&proxies.lock().unwrap()[0].port().to_string()));
    let server = setup.server();
    let proxies = proxies.into_inner().unwrap();
    run_fault(
        &setup,
        &server,
        0,
        "black hole",
        || proxies[0].set_blackhole(true),
        || proxies[0].set_blackhole(false),
    );
}

/// Calls that must come back within `bound`, with the expected exception type.
fn assert_refused_within(
    bound: Duration,
    want: i32,
    what: &str,
    call: impl FnOnce() -> thrift::Result<()>,
) {
    let start = Instant::now();
    let err = call().expect_err(what);
    let took = start.elapsed();
    assert_eq!(common::error_code(err), want, "{what}");
    assert!(took < bound, "{what} took {took:?}");
}

#[test]
fn directory_master_down_at_start_up_and_while_running() {
    let setup = Setup::direct(1);
    let (h1, h2) = (&setup.cluster.hosts[0], &setup.cluster.hosts[1]);
    {
        let server = setup.server();
        setup.fill(&server);
    }
    // Host 1 is the directory master and a data master. With it dead, a new server starts
    // from the directory's sibling and serves every key (in stale mode: in consistent mode a
    // server that never reached host 1 refuses its partitions, see
    // thrudoc_restart_during_an_outage).
    h1.kill9();
    let server = thrudoc_on(h1, Some(h2), "thrudoc", "FAILOVER_READS = stale");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    for key in &setup.keys {
        assert_eq!(c.get("f".into(), key.clone()).unwrap(), b"initial", "{key}");
    }
    let on_1 = setup.key_on(0);
    let on_2 = setup.key_on(1);
    assert_refused_within(Duration::from_secs(2), READ_ONLY, "write to host 1", || {
        c.put("f".into(), on_1.clone(), b"x".to_vec())
    });
    // Past the directory lease: the sibling keeps confirming the directory, so writes to the
    // live host's partitions go on.
    std::thread::sleep(Duration::from_secs(6));
    c.put("f".into(), on_2.clone(), b"still".to_vec()).unwrap();
    let status = c.admin("status".into(), String::new()).unwrap();
    assert!(status.contains("DOWN"), "{status}");

    // The directory master comes back, then dies again while the server runs.
    h1.restart();
    setup.wait_all_writable(&server, Duration::from_secs(20));
    h1.kill9();
    std::thread::sleep(Duration::from_secs(6));
    c.put("f".into(), on_2.clone(), b"again".to_vec()).unwrap();
    assert_eq!(c.get("f".into(), on_1.clone()).unwrap(), b"initial");
    h1.restart();
    setup.wait_all_writable(&server, Duration::from_secs(20));
    assert_eq!(c.get("f".into(), on_2.clone()).unwrap(), b"again");
    common::mariadb::wait_replicated(h2, h1, Duration::from_secs(30));
    setup.assert_single_writer();
}

#[test]
fn both_hosts_of_a_pair_down_give_clear_errors_without_hanging() {
    let setup = Setup::direct(2);
    let server = setup.server();
    setup.fill(&server);
    let h = &setup.cluster.hosts;
    h[2].kill9();
    h[3].kill9();
    let mut c = server.client(Transport::Unframed, Protocol::Compact);
    let dead = setup.key_on(2);
    let live = setup.key_on(0);
    // Detection plus one query timeout is the most any call may take.
    let bound = Duration::from_secs(5);
    assert_refused_within(bound, UNAVAILABLE, "read with both hosts down", || {
        c.get("f".into(), dead.clone()).map(|_| ())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_refused_within(
        Duration::from_millis(500),
        UNAVAILABLE,
        "read once both are known down",
        || c.get("f".into(), dead.clone()).map(|_| ()),
    );
    assert_refused_within(
        Duration::from_millis(500),
        READ_ONLY,
        "write with both hosts down",
        || c.put("f".into(), dead.clone(), b"x".to_vec()),
    );
    let what = common::error_what(c.get("f".into(), dead.clone()).unwrap_err());
    assert!(
        what.contains("partition") && what.contains("sibling"),
        "the error says why: {what}"
    );
    // A write's refusal says each thing once: the kind, what was refused, the master and why
    // it is down, without the driver's nested I/O error texts.
    let what = common::error_what(c.put("f".into(), dead.clone(), b"x".to_vec()).unwrap_err());
    assert!(
        what.starts_with("read-only: put refused: partition"),
        "{what}"
    );
    assert_eq!(what.matches("read-only").count(), 1, "{what}");
    assert!(!what.contains("Input/output error"), "{what}");
    assert!(what.len() < 300, "{} characters: {what}", what.len());
    // The other pair is unaffected.
    c.put("f".into(), live.clone(), b"fine".to_vec()).unwrap();
    assert_eq!(c.get("f".into(), live.clone()).unwrap(), b"fine");
    h[2].restart();
    h[3].restart();
    setup.wait_all_writable(&server, Duration::from_secs(30));
    assert_eq!(c.get("f".into(), dead.clone()).unwrap(), b"initial");
}

#[test]
fn thrudoc_restart_during_an_outage() {
    let setup = Setup::direct(2);
    let h = &setup.cluster.hosts;
    {
        let server = setup.server();
        setup.fill(&server);
    }
    h[2].kill9();
    // A server started now has never heard from the dead master: in the default consistent
    // mode it cannot tell what the sibling lacks, so it refuses those reads (BEHIND) and
    // serves every other key; in stale mode it serves them all from the sibling.
    let stale = thrudoc_on(&h[0], Some(&h[1]), "thrudoc", "FAILOVER_READS = stale");
    let server = setup.server();
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let mut s = stale.client(Transport::Framed, Protocol::Binary);
    for key in &setup.keys {
        assert_eq!(s.get("f".into(), key.clone()).unwrap(), b"initial", "{key}");
        match c.get("f".into(), key.clone()) {
            Ok(v) => {
                assert_ne!(setup.host_of(key), 2, "{key}");
                assert_eq!(v, b"initial", "{key}");
            }
            Err(e) => {
                assert_eq!(setup.host_of(key), 2, "{key}");
                let ex = common::thrudoc_exception(e);
                let what = ex.what.clone().unwrap_or_default();
                assert_eq!(common::code_of(&ex), ErrorCode::BEHIND.0, "{what}");
                assert!(
                    what.contains("no answer from the master since it started"),
                    "{what}"
                );
            }
        }
    }
    let dead = setup.key_on(2);
    assert_refused_within(
        Duration::from_secs(1),
        READ_ONLY,
        "write to the dead master",
        || c.put("f".into(), dead.clone(), b"x".to_vec()),
    );
    h[2].restart();
    let back = setup.wait_all_writable(&server, Duration::from_secs(20));
    eprintln!("FAILOVER restart-during-outage: writes back {back:?} after the master returned");
    c.put("f".into(), dead.clone(), b"written".to_vec())
        .unwrap();
    common::mariadb::wait_replicated(&h[2], &h[3], Duration::from_secs(30));
    let table = &part_of(&setup.parts, dead).table;
    let rows = h[3].sql(&format!(
        "SELECT v FROM {table} WHERE k = {}",
        common::mysql::sql_hex(dead.as_bytes())
    ));
    assert_eq!(
        rows,
        vec![vec!["written".to_string()]],
        "the write reached the sibling"
    );
}

/// The codes only the MySQL backend gives reach a client of the new IDL, generated by the
/// Thrift compiler in another language: OUTCOME_UNKNOWN for a write sent to a hung master,
/// READ_ONLY for a write to a master known to be down, UNAVAILABLE for a read when its sibling
/// is down too; each with `type` UNKNOWN and a `what` naming the kind. The Python driver runs
/// a script of its own while each fault is in place (tests/interop/README.md).
#[test]
fn python_client_of_the_new_idl_reads_the_failover_codes() {
    let setup = Setup::direct(2);
    // No probes to speak of: the hung master is only found out by the write's own timeout.
    let server = thrudoc_on(
        &setup.cluster.hosts[0],
        Some(&setup.cluster.hosts[1]),
        "thrudoc",
        "HEALTH_PROBE_INTERVAL_MS = 600000\nMYSQL_QUERY_TIMEOUT_MS = 1500",
    );
    setup.fill(&server);
    let bindings = Bindings::generate(Lang::Python, Source::New);
    let h = &setup.cluster.hosts;
    let dead = setup.key_on(2);
    let run = |name: &str, steps: Vec<serde_json::Value>| {
        let script = conformance::single_run(
            "f",
            Idl::New,
            "framed",
            "compact",
            vec![conformance::check(name, steps)],
        );
        bindings
            .run(server.addr, &script)
            .assert_passed(1, &server.stderr_text());
    };
    // Every write is of the value the key has: whether the write whose outcome is unknown
    // took effect once the master resumed, the value read later is the same.
    let put = |code| {
        conformance::call(
            "put",
            vec![
                "f".into(),
                dead.as_str().into(),
                conformance::text("initial"),
            ],
            conformance::error(code),
        )
    };
    let get = |expect| conformance::call("get", vec!["f".into(), dead.as_str().into()], expect);

    h[2].stop();
    run(
        "outcome_unknown",
        vec![put((ErrorCode::OUTCOME_UNKNOWN.0, "outcome unknown"))],
    );
    h[2].cont();

    h[2].kill9();
    // A read finds the master gone (its connection fails), marks it DOWN and is served by the
    // sibling.
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    assert_eq!(c.get("f".into(), dead.clone()).unwrap(), b"initial");
    run(
        "read_only",
        vec![
            put((READ_ONLY, "read-only")),
            get(serde_json::json!({ "value": conformance::text("initial") })),
        ],
    );

    h[3].kill9();
    run(
        "unavailable",
        vec![
            get(conformance::error((UNAVAILABLE, "unavailable"))),
            put((READ_ONLY, "read-only")),
        ],
    );
}

/// The state of `host` (UP, RETURNING, DOWN) as `server` sees it, from `admin("stats")`.
fn host_state(server: &ThrudocServer, host: &str) -> String {
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let stats = c.admin("stats".into(), String::new()).unwrap();
    let key = format!("host.{host}.state=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
        .to_string()
}

/// Switchback with several servers: no server reads a partition from the sibling once any
/// server has written to the returned master. Server A needs 20 answered probes before it
/// writes, server B one: so B writes long before A counts to RISE. The sibling's replication
/// is stopped, so a read served there misses B's write for certain. A must read from the
/// master from its first answered probe, before B's first write (which waits a whole probe
/// cycle after B's first answer).
#[test]
fn reads_return_to_a_master_before_any_server_writes_to_it() {
    let setup = Setup::direct(1);
    let (h1, h2) = (&setup.cluster.hosts[0], &setup.cluster.hosts[1]);
    let server = |rise: u32| {
        thrudoc_on(
            h1,
            Some(h2),
            "thrudoc",
            &format!("HEALTH_RISE_THRESHOLD = {rise}"),
        )
    };
    let (a, b) = (server(20), server(1));
    setup.fill(&b);
    common::mariadb::wait_replicated(h1, h2, Duration::from_secs(30));
    let key = setup.key_on(0).clone();
    h2.sql("STOP SLAVE");
    h1.kill9();
    for s in [&a, &b] {
        let mut c = s.client(Transport::Framed, Protocol::Binary);
        // A read finds the master gone; from then on it is DOWN.
        assert_eq!(c.get("f".into(), key.clone()).unwrap(), b"initial");
        common::wait_until(Duration::from_secs(10), "the master DOWN", || {
            host_state(s, &h1.addr()) == "DOWN"
        });
    }
    h1.restart();
    let mut cb = b.client(Transport::Framed, Protocol::Binary);
    let mut ca = a.client(Transport::Framed, Protocol::Binary);
    let restarted = Instant::now();
    common::wait_until(Duration::from_secs(20), "a write through B", || {
        cb.put("f".into(), key.clone(), b"after".to_vec()).is_ok()
    });
    let written = restarted.elapsed();
    // Right after B's write is acknowledged, A reads it.
    assert_eq!(
        String::from_utf8(ca.get("f".into(), key.clone()).unwrap()).unwrap(),
        "after",
        "A read the sibling after B wrote to the returned master ({written:?} after the restart)"
    );
    assert_eq!(
        host_state(&a, &h1.addr()),
        "RETURNING",
        "A does not write yet"
    );
    eprintln!("FAILOVER switchback-two-servers: B wrote {written:?} after the restart; A read it");
    h2.sql("START SLAVE");
    common::mariadb::wait_replicated(h1, h2, Duration::from_secs(30));
    setup.assert_single_writer();
}

/// A hung directory master (SIGSTOP for longer than the lease) stops no write to the pairs it
/// is not part of: every server reads the directory at its sibling and keeps its lease.
#[test]
fn a_hung_directory_master_stops_no_write_elsewhere() {
    let setup = Setup::direct(2);
    let server = setup.server();
    setup.fill(&server);
    let h = &setup.cluster.hosts;
    let elsewhere: Vec<&String> = setup
        .keys
        .iter()
        .filter(|k| setup.host_of(k) >= 2)
        .collect();
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    h[0].stop();
    let stopped = Instant::now();
    let mut writes = 0;
    // Twice the 5 s lease.
    while stopped.elapsed() < Duration::from_secs(10) {
        let key = elsewhere[writes % elsewhere.len()];
        if let Err(e) = c.put("f".into(), key.clone(), format!("w{writes}").into_bytes()) {
            h[0].cont();
            panic!(
                "a write to the other pair was refused {:?} after the directory master hung: {}",
                stopped.elapsed(),
                common::error_what(e)
            );
        }
        writes += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    h[0].cont();
    eprintln!("FAILOVER hung-directory-master: {writes} writes elsewhere in 10 s, none refused");
    setup.wait_all_writable(&server, Duration::from_secs(20));
}

/// A server started while neither directory host answers comes up, answers UNAVAILABLE saying
/// it waits, and serves as soon as the directory answers.
#[test]
fn a_server_started_without_its_directory_waits_and_then_serves() {
    let setup = Setup::direct(1);
    let (h1, h2) = (&setup.cluster.hosts[0], &setup.cluster.hosts[1]);
    setup.fill(&setup.server());
    common::mariadb::wait_replicated(h1, h2, Duration::from_secs(30));
    h1.kill9();
    h2.kill9();
    // Stale mode: a server that never reached host 1 reads its partitions from the sibling
    // only so (see thrudoc_restart_during_an_outage).
    let server = thrudoc_on(h1, Some(h2), "thrudoc", "FAILOVER_READS = stale");
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let err = c.get("f".into(), "k".into()).unwrap_err();
    let what = common::error_what(err);
    assert!(
        what.starts_with("unavailable: ") && what.contains("waiting"),
        "{what}"
    );
    assert_eq!(
        common::error_code(c.get_buckets().unwrap_err()),
        UNAVAILABLE
    );
    assert!(server.stderr_text().contains("waiting for the directory"));
    h2.restart();
    let back = Instant::now();
    common::wait_until(Duration::from_secs(20), "the bucket served", || {
        c.get_buckets().is_ok_and(|b| b == vec!["f".to_string()])
    });
    eprintln!(
        "FAILOVER start-without-directory: serving {:?} after the sibling came back",
        back.elapsed()
    );
    // Host 1 is still dead: its partitions are read at its sibling.
    let on_1 = setup.key_on(0);
    assert_eq!(c.get("f".into(), on_1.clone()).unwrap(), b"initial");
    h1.restart();
    setup.wait_all_writable(&server, Duration::from_secs(30));
}

/// Thousands of refused writes during an outage make a few log lines, not thousands: one per
/// kind and partition per window, and a count.
#[test]
fn refused_writes_are_logged_in_proportion() {
    let setup = Setup::direct(1);
    let server = setup.server();
    let h1 = &setup.cluster.hosts[0];
    let dead: Vec<&String> = setup
        .keys
        .iter()
        .filter(|k| setup.host_of(k) == 0)
        .collect();
    h1.kill9();
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let _ = c.get("f".into(), dead[0].clone());
    let mut refused = 0;
    for i in 0..2000 {
        if c.put("f".into(), dead[i % dead.len()].clone(), b"x".to_vec())
            .is_err()
        {
            refused += 1;
        }
    }
    assert!(refused >= 1990, "{refused} of 2000 refused");
    let log = server.stderr_text();
    let lines = log.lines().filter(|l| l.contains("call failed")).count();
    // At most one per partition of host 1 (4), with room for a first write that found the
    // connection gone.
    assert!(
        lines <= 8,
        "{lines} log lines for {refused} refused writes:\n{log}"
    );
    h1.restart();
}

/// One slow answer at start-up does not mark a live master DOWN (a chaos run found a server
/// that did, and refused writes to a partition no fault touched): the start-up probe of a
/// hung host counts as one failed probe, as it would later; only a refused connection marks
/// a host DOWN at once.
#[test]
fn one_slow_start_up_probe_does_not_mark_a_live_master_down() {
    let setup = Setup::direct(2);
    let h = &setup.cluster.hosts;
    let key = setup.key_on(2).clone();
    h[2].stop();
    let server = thrudoc_on(
        &h[0],
        Some(&h[1]),
        "thrudoc",
        "HEALTH_PROBE_TIMEOUT_MS = 300\nHEALTH_FALL_THRESHOLD = 2",
    );
    h[2].cont();
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    c.put("f".into(), key.clone(), b"at start".to_vec())
        .unwrap_or_else(|e| {
            panic!(
                "a write to a master that was slow at start-up: {}",
                common::error_what(e)
            )
        });
    assert!(
        !server.stderr_text().contains("start-up probe failed"),
        "{}",
        server.stderr_text()
    );
    // A master that refuses connections is still DOWN at once.
    h[2].kill9();
    let late = setup.server();
    let mut c = late.client(Transport::Framed, Protocol::Binary);
    assert_refused_within(
        Duration::from_secs(1),
        READ_ONLY,
        "write to a master dead at start-up",
        || c.put("f".into(), key.clone(), b"x".to_vec()),
    );
    assert!(late.stderr_text().contains("start-up probe failed"));
    h[2].restart();
}

/// A write that timed out on a network that drops packets never lands later. The statement may
/// still sit in Thrudoc's send queue when the client is told it may or may not have happened;
/// kept, TCP would deliver it once the network heals (its retransmission backs off: 0.2, 0.6,
/// 1.4, 3.0, 6.2 s after the send), after a write acknowledged since, and the old value would
/// win. The server resets the connection of a write that timed out, so it cannot.
#[test]
fn a_write_that_timed_out_never_lands_after_a_later_one() {
    let setup = Setup::direct(1);
    let h = &setup.cluster.hosts;
    let server = thrudoc_on(
        &h[0],
        Some(&h[1]),
        "thrudoc",
        "MYSQL_QUERY_TIMEOUT_MS = 400\nHEALTH_PROBE_INTERVAL_MS = 100\n\
         HEALTH_PROBE_TIMEOUT_MS = 200\nHEALTH_RISE_THRESHOLD = 2",
    );
    let key = setup.key_on(0).clone();
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    // Warm connections in the pool: the next write goes out on one at once.
    for i in 0..20 {
        c.put("f".into(), key.clone(), format!("before-{i}").into_bytes())
            .unwrap();
    }
    let hole = common::blackhole::PortBlackhole::start(h[0].port());
    let sent = Instant::now();
    let err = c
        .put("f".into(), key.clone(), b"timed out".to_vec())
        .expect_err("a write into a black hole");
    assert_eq!(
        common::error_code(err),
        ErrorCode::OUTCOME_UNKNOWN.0,
        "the write's outcome is unknown"
    );
    // Heal between the fourth and the fifth retransmission.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(sent.elapsed()));
    drop(hole);
    common::wait_until(Duration::from_secs(10), "a write after the heal", || {
        c.put("f".into(), key.clone(), b"after".to_vec()).is_ok()
    });
    let acked = sent.elapsed();
    assert!(
        acked < Duration::from_millis(6000),
        "the later write must be acknowledged before the fifth retransmission would land \
         ({acked:?} after the first was sent)"
    );
    // Past the fifth retransmission.
    std::thread::sleep(Duration::from_millis(8000).saturating_sub(sent.elapsed()));
    let value = c.get("f".into(), key.clone()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&value),
        "after",
        "the write that timed out landed after the one acknowledged {acked:?} after it was sent"
    );
    eprintln!("FAILOVER late-write: later write acknowledged {acked:?} after the timed-out one");
    common::mariadb::wait_replicated(&h[0], &h[1], Duration::from_secs(30));
    setup.assert_single_writer();
}
