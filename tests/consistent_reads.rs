//! Reads during an outage never go back in time (`FAILOVER_READS`), against a real MariaDB
//! pair: the GTID of every acknowledged write is remembered per master, and the sibling serves
//! a read only once it has applied it.
//!
//! - A sibling whose SQL thread is stopped holds the master's last writes in its relay log but
//!   has not applied them: a consistent read is refused with BEHIND within
//!   `FAILOVER_READ_WAIT_MS`, and returns the acknowledged value as soon as the SQL thread
//!   runs; a `stale` server returns the old value and counts it.
//! - A sibling that has lacked the master's writes for longer than `FAILOVER_MAX_LAG_MS` is
//!   refused at once, and the error says how long.
//! - With semi-synchronous replication, rounds of writes through two servers, each followed at
//!   once by kill -9 of the master while the sibling has received but not yet applied them:
//!   every read, through the writing server or the other one, waits and returns the
//!   acknowledged value (what the sibling received covers every acknowledged write).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::drivers::{Bindings, Lang, Source};
use common::mariadb::{enable_semisync, require_mariadb, wait_replicated, wait_semisync, Cluster};
use common::mysql::{create_bucket, part_of, partitions, thrudoc_on};
use common::ThrudocServer;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{ErrorCode, TThrudocSyncClient};

const BEHIND: i32 = ErrorCode::BEHIND.0;

/// One pair, a bucket `f` of 4 partitions per host, and the keys of host 0's partitions.
struct Pair {
    cluster: Cluster,
    /// Keys whose partition's master is host 0 (the one the tests kill).
    keys: Vec<String>,
}

impl Pair {
    fn new() -> Pair {
        require_mariadb();
        let cluster = Cluster::start_pairs(1);
        let addrs: Vec<String> = cluster.hosts.iter().map(|h| h.addr()).collect();
        create_bucket(&cluster.hosts[0], "thrudoc", &addrs, "f", 4);
        let parts = partitions(&cluster.hosts[0], "thrudoc", "f", &addrs);
        let keys = (0..400)
            .map(|i| format!("key-{i}"))
            .filter(|k| part_of(&parts, k).host == 0)
            .take(60)
            .collect();
        Pair { cluster, keys }
    }

    fn server(&self, extra: &str) -> ThrudocServer {
        let h = &self.cluster.hosts;
        thrudoc_on(&h[0], Some(&h[1]), "thrudoc", extra)
    }

    fn master(&self) -> &common::mariadb::MariaDb {
        &self.cluster.hosts[0]
    }

    fn sibling(&self) -> &common::mariadb::MariaDb {
        &self.cluster.hosts[1]
    }

    /// Puts `value` to every key through `server`.
    fn put_all(&self, server: &ThrudocServer, value: &str) {
        let mut c = server.client(Transport::Framed, Protocol::Binary);
        for k in &self.keys {
            c.put("f".into(), k.clone(), value.as_bytes().to_vec())
                .unwrap_or_else(|e| panic!("put {k}: {}", common::error_what(e)));
        }
    }

    /// Waits until `server` has marked host 0 DOWN (its reads go to the sibling).
    fn wait_master_down(&self, server: &ThrudocServer) {
        let mut c = server.client(Transport::Framed, Protocol::Binary);
        let down = format!("host.{}.up=0", self.master().addr());
        common::wait_until(Duration::from_secs(10), "the master DOWN", || {
            c.admin("stats".into(), String::new())
                .unwrap()
                .contains(&down)
        });
    }

    /// Restarts host 0 and waits until `servers` all write to it again.
    fn bring_back(&self, servers: &[&ThrudocServer]) {
        self.master().restart();
        for s in servers {
            let mut c = s.client(Transport::Framed, Protocol::Binary);
            common::wait_until(Duration::from_secs(20), "writes to host 0 again", || {
                c.put("f".into(), self.keys[0].clone(), b"back".to_vec())
                    .is_ok()
            });
        }
        wait_replicated(self.master(), self.sibling(), Duration::from_secs(30));
        wait_replicated(self.sibling(), self.master(), Duration::from_secs(30));
    }
}

fn stat(server: &ThrudocServer, name: &str) -> u64 {
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let stats = c.admin("stats".into(), String::new()).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("stats lack {name}:\n{stats}"))
        .parse()
        .unwrap()
}

#[test]
fn a_sibling_that_has_not_applied_the_last_writes_serves_no_consistent_read() {
    let pair = Pair::new();
    let consistent = pair.server("FAILOVER_READ_WAIT_MS = 700");
    let stale = pair.server("FAILOVER_READS = stale");
    pair.put_all(&consistent, "old");
    wait_replicated(pair.master(), pair.sibling(), Duration::from_secs(30));

    // The sibling receives the next writes into its relay log but does not apply them.
    pair.sibling().sql("STOP SLAVE SQL_THREAD");
    pair.put_all(&consistent, "new");
    pair.put_all(&stale, "new");
    // Let the IO thread receive everything, then kill the master.
    std::thread::sleep(Duration::from_millis(300));
    pair.master().kill9();
    let key = pair.keys[0].clone();

    let mut c = consistent.client(Transport::Framed, Protocol::Binary);
    let asked = Instant::now();
    let e = c.get("f".into(), key.clone()).unwrap_err();
    let took = asked.elapsed();
    let ex = common::thrudoc_exception(e);
    let what = ex.what.clone().unwrap_or_default();
    assert_eq!(common::code_of(&ex), BEHIND, "{what}");
    assert!(
        what.contains(&pair.sibling().addr()) && what.contains("FAILOVER_READ_WAIT_MS = 700"),
        "the error names the sibling and the bound: {what}"
    );
    assert!(
        what.contains("get on partition"),
        "and the operation: {what}"
    );
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "refused after waiting about FAILOVER_READ_WAIT_MS, took {took:?}"
    );
    eprintln!("CONSISTENT refused after {took:?}: {what}");
    assert!(stat(&consistent, "failover.refused") >= 1);

    // The stale server answers with what the sibling has, and counts it.
    pair.wait_master_down(&stale);
    let mut s = stale.client(Transport::Framed, Protocol::Binary);
    assert_eq!(s.get("f".into(), key.clone()).unwrap(), b"old");
    assert!(stat(&stale, "failover.stale_reads") >= 1);

    // Once the sibling applies its relay log, the consistent read returns the new value:
    // every key, through the server that wrote it. Until it has applied them all a read may
    // still be BEHIND (retry-safe), never the old value.
    pair.sibling().sql("START SLAVE SQL_THREAD");
    for k in &pair.keys {
        common::wait_until(Duration::from_secs(20), "the new value", || {
            match c.get("f".into(), k.clone()) {
                Ok(v) => {
                    assert_eq!(v, b"new", "{k}");
                    true
                }
                Err(e) => {
                    let ex = common::thrudoc_exception(e);
                    assert_eq!(common::code_of(&ex), BEHIND, "{k}: {:?}", ex.what);
                    false
                }
            }
        });
    }
    assert!(stat(&consistent, "failover.waits") >= 1);
    pair.bring_back(&[&consistent, &stale]);
}

#[test]
fn a_sibling_lagging_longer_than_the_bound_is_refused_at_once() {
    let pair = Pair::new();
    let server = pair.server("FAILOVER_MAX_LAG_MS = 1000\nFAILOVER_READ_WAIT_MS = 5000");
    pair.put_all(&server, "old");
    wait_replicated(pair.master(), pair.sibling(), Duration::from_secs(30));
    pair.sibling().sql("STOP SLAVE SQL_THREAD");
    pair.put_all(&server, "new");
    // The sibling lacks the writes for longer than the bound, as the probes see it.
    std::thread::sleep(Duration::from_millis(1800));
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    let status = c.admin("status".into(), String::new()).unwrap();
    assert!(
        status.contains("sibling_lag=1.") || status.contains("sibling_lag=2."),
        "status shows the sibling's lag:\n{status}"
    );
    pair.master().kill9();
    pair.wait_master_down(&server);
    let asked = Instant::now();
    let e = c.get("f".into(), pair.keys[0].clone()).unwrap_err();
    let took = asked.elapsed();
    let ex = common::thrudoc_exception(e);
    let what = ex.what.clone().unwrap_or_default();
    assert_eq!(common::code_of(&ex), BEHIND, "{what}");
    assert!(
        what.contains("has lacked writes of the master for")
            && what.contains("FAILOVER_MAX_LAG_MS = 1000"),
        "{what}"
    );
    assert!(
        took < Duration::from_secs(1),
        "refused without waiting FAILOVER_READ_WAIT_MS: {took:?}"
    );
    eprintln!("CONSISTENT lagging sibling refused in {took:?}: {what}");
    pair.sibling().sql("START SLAVE SQL_THREAD");
    common::wait_until(Duration::from_secs(10), "the read once caught up", || {
        c.get("f".into(), pair.keys[0].clone())
            .is_ok_and(|v| v == b"new")
    });
    pair.bring_back(&[&server]);
}

#[test]
fn with_semisync_no_read_goes_back_in_time_across_kill_9() {
    const ROUNDS: usize = 4;
    /// `rpl_semi_sync_master_timeout`. In a master-master pair the survivor also waits for its
    /// dead sibling's acknowledgement of each transaction it applies from it, this long for
    /// the first one, then replicates asynchronously; a consistent read waits out that much.
    const SEMISYNC_TIMEOUT: Duration = Duration::from_millis(500);
    let pair = Pair::new();
    enable_semisync(pair.master(), pair.sibling(), SEMISYNC_TIMEOUT);
    let servers = [0, 1].map(|_| pair.server("FAILOVER_READ_WAIT_MS = 2000"));
    let (mut reads, mut stale, mut refused) = (0, 0, 0);
    let mut first_reads = Vec::new();
    for round in 0..ROUNDS {
        // The sibling acknowledges each write on receipt (semi-sync) but applies none of this
        // round's until its SQL thread starts, a moment after the kill: a read that did not
        // wait would find the previous round's values.
        pair.sibling().sql("STOP SLAVE SQL_THREAD");
        let mut acked: HashMap<&str, (usize, String)> = HashMap::new();
        for (i, k) in pair.keys.iter().enumerate() {
            let s = i % 2;
            let v = format!("r{round}-s{s}-{i}");
            let mut c = servers[s].client(Transport::Framed, Protocol::Binary);
            c.put("f".into(), k.clone(), v.clone().into_bytes())
                .unwrap_or_else(|e| panic!("round {round}: put {k}: {}", common::error_what(e)));
            acked.insert(k, (s, v));
        }
        pair.master().kill9();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                pair.sibling().sql("START SLAVE SQL_THREAD");
            });
            let mut clients = servers
                .each_ref()
                .map(|s| s.client(Transport::Framed, Protocol::Binary));
            for (n, (k, (s, v))) in acked.iter().enumerate() {
                // Through the server that wrote it, then through the other one.
                for through in [*s, 1 - *s] {
                    let asked = Instant::now();
                    // BEHIND (retry-safe) while the sibling still applies, never an old value.
                    let got = loop {
                        match clients[through].get("f".into(), k.to_string()) {
                            Ok(v) => break v,
                            Err(e) => {
                                let ex = common::thrudoc_exception(e);
                                assert_eq!(
                                    common::code_of(&ex),
                                    BEHIND,
                                    "round {round}: get {k}: {:?}",
                                    ex.what
                                );
                                refused += 1;
                                assert!(asked.elapsed() < Duration::from_secs(20), "{k}");
                            }
                        }
                    };
                    if n == 0 && through == *s {
                        first_reads.push(asked.elapsed());
                    }
                    reads += 1;
                    if got != v.as_bytes() {
                        stale += 1;
                        eprintln!(
                            "round {round}: {k} written through server {s}, read through \
                             {through}: {:?}, acknowledged {v:?}",
                            String::from_utf8_lossy(&got)
                        );
                    }
                }
            }
        });
        pair.bring_back(&[&servers[0], &servers[1]]);
        // A restarted master, and its sibling, replicate asynchronously until both reconnect.
        wait_semisync(pair.master());
        wait_semisync(pair.sibling());
    }
    let waits: u64 = servers.iter().map(|s| stat(s, "failover.waits")).sum();
    eprintln!(
        "CONSISTENT semisync: {ROUNDS} kill -9 rounds, {reads} reads through either server, \
         {stale} stale, {refused} refused BEHIND and retried, {waits} waits; first read of each \
         round {first_reads:?}"
    );
    assert_eq!(stale, 0, "reads went back in time");
    assert_eq!(reads, 2 * ROUNDS * pair.keys.len());
    assert!(waits >= ROUNDS as u64, "each round's first reads waited");
}

/// A token from a write through one server makes a read through another reflect that write,
/// even on a server that would serve stale reads: the read waits for the sibling to apply it,
/// and fails with BEHIND when it cannot.
#[test]
fn a_write_token_carries_read_your_writes_to_another_server() {
    let pair = Pair::new();
    let writer = pair.server("");
    // A server that, without a token, reads the sibling as it is.
    let reader = pair.server("FAILOVER_READS = stale\nFAILOVER_READ_WAIT_MS = 700");
    pair.put_all(&writer, "old");
    wait_replicated(pair.master(), pair.sibling(), Duration::from_secs(30));
    pair.sibling().sql("STOP SLAVE SQL_THREAD");
    let key = pair.keys[0].clone();
    let mut w = writer.client(Transport::Framed, Protocol::Binary);
    w.put("f".into(), key.clone(), b"new".to_vec()).unwrap();
    let token = w.write_token().unwrap();
    assert!(
        token.starts_with(&format!("{}-{}-", 1, 1)),
        "the token names the master's GTID: {token}"
    );
    std::thread::sleep(Duration::from_millis(300));
    pair.master().kill9();
    pair.wait_master_down(&reader);

    let mut r = reader.client(Transport::Framed, Protocol::Binary);
    assert_eq!(
        r.get("f".into(), key.clone()).unwrap(),
        b"old",
        "no token: stale"
    );
    let asked = Instant::now();
    let ex = common::thrudoc_exception(
        r.get_after("f".into(), key.clone(), token.clone())
            .unwrap_err(),
    );
    let what = ex.what.clone().unwrap_or_default();
    assert_eq!(common::code_of(&ex), BEHIND, "{what}");
    assert!(
        what.contains(&token) && what.contains("getAfter on partition"),
        "the error names the operation and the position: {what}"
    );
    eprintln!("TOKEN refused after {:?}: {what}", asked.elapsed());

    // With the SQL thread started while it waits, the read returns the written value.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            pair.sibling().sql("START SLAVE SQL_THREAD");
        });
        let asked = Instant::now();
        assert_eq!(
            r.get_after("f".into(), key.clone(), token.clone()).unwrap(),
            b"new"
        );
        eprintln!("TOKEN read after {:?}", asked.elapsed());
    });

    // An empty token is a plain get; a token that is not one changes nothing.
    assert_eq!(
        r.get_after("f".into(), key.clone(), String::new()).unwrap(),
        b"new"
    );
    let e = r
        .get_after("f".into(), key.clone(), "1-1".into())
        .unwrap_err();
    let ex = common::thrudoc_exception(e);
    assert_eq!(common::code_of(&ex), ErrorCode::INVALID_ARGUMENT.0);
    assert!(
        ex.what
            .unwrap_or_default()
            .contains("token `1-1` is not a write token"),
        "bad token named"
    );
    pair.bring_back(&[&writer, &reader]);
}

/// The README's Python example: a client of `idl/thrudoc.thrift` writes through one server,
/// takes the token, and reads its write through another.
#[test]
fn the_python_example_reads_its_write_through_another_server() {
    let pair = Pair::new();
    let (a, b) = (pair.server(""), pair.server(""));
    let bindings = Bindings::generate(Lang::Python, Source::New);
    let arg = |s: &ThrudocServer| [s.addr.ip().to_string(), s.addr.port().to_string()];
    let mut args: Vec<String> = arg(&a).into_iter().chain(arg(&b)).collect();
    args.extend(["f".to_string(), pair.keys[1].clone()]);
    let out = bindings.run_python("tests/interop/python/read_your_writes.py", &args);
    assert_eq!(out.trim(), "written through A 0", "{out}");
    let mut c = b.client(Transport::Framed, Protocol::Binary);
    assert_eq!(
        c.get("f".into(), pair.keys[1].clone()).unwrap(),
        b"written through A"
    );
}
