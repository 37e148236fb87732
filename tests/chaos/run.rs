//! One chaos run, from the cluster's start to the last line of the report.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

use super::checker::{self, Findings};
use super::common::mariadb::{
    enable_semisync, require_mariadb, wait_replicated, Cluster, MariaDb, Place,
};
use super::common::mysql::{create_bucket, mysql_conf, part_of, partitions, Part};
use super::common::proxy::Proxy;
use super::common::ThrudocServer;
use super::faults::{Kind, Menu, NEEDS_NAMESPACES};
use super::history::{Fault, History, Micros, Place as KeyPlace};
use super::net::Net;
use super::watch::Watch;
use super::workload::{Clock, Keys, Recorder, Rng, Shared, Worker, BUCKET};
use super::Args;

const DB: &str = "thrudoc";
/// `ErrorCode::BEHIND`: a read refused because the copy could not vouch for it.
const BEHIND: i32 = thrudoc::gen::thrudoc::ErrorCode::BEHIND.0;
const PAIRS: usize = 3;
const HOSTS: usize = 2 * PAIRS;

/// The servers' settings that the run and `thrudoc-admin switchover` must agree on. The lease
/// and timeouts are shorter than the defaults so that a failover cycle fits in a run.
const LEASE_MS: u64 = 3000;
const QUERY_TIMEOUT_MS: u64 = 1500;
const PROBE_INTERVAL_MS: u64 = 250;
const PROBE_TIMEOUT_MS: u64 = 500;
/// How often each server reads the directory's version, and how long a connect may take.
const DIRECTORY_POLL_MS: u64 = 1000;
const CONNECT_TIMEOUT_MS: u64 = 1000;

/// One Thrudoc server of the run, which a fault may kill and start again.
struct Server {
    index: usize,
    ns: Option<String>,
    addr: SocketAddr,
    conf: PathBuf,
    proc: Option<ThrudocServer>,
    /// The logs of its earlier lives.
    logs: String,
    /// Exits nobody asked for.
    crashes: usize,
}

impl Server {
    fn start(&mut self) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let env = [("RUST_LOG", "thrudoc=info")];
        self.proc = Some(ThrudocServer::start_in(
            dir,
            &self.conf,
            &env,
            self.ns.as_deref(),
        ));
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            let _ = p.wait_exit(Duration::from_secs(10));
            self.logs.push_str(&p.stderr_text());
            self.logs.push_str("\n--- killed ---\n");
        }
    }

    /// Counts an exit nobody asked for, and starts it again.
    fn check_alive(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            if let Some(status) = p.exited() {
                println!(
                    "chaos: Thrudoc server {} exited by itself ({status})",
                    self.index
                );
                self.crashes += 1;
                let p = self.proc.take().expect("there");
                self.logs.push_str(&p.stderr_text());
                self.start();
            }
        }
    }

    fn log_text(&self) -> String {
        let mut text = self.logs.clone();
        if let Some(p) = &self.proc {
            text.push_str(&p.stderr_text());
        }
        text
    }
}

/// A fault in progress.
struct Active {
    kind: Kind,
    start: Micros,
    heal_at: Instant,
    /// A failover cycle runs on a thread of its own.
    cycle: Option<JoinHandle<Result<(), String>>>,
}

/// Everything a fault acts on.
struct World<'a> {
    cluster: &'a Cluster,
    /// Each host's address as the directory records it.
    addrs: Vec<String>,
    net: Option<Net>,
    proxies: Vec<Proxy>,
    servers: Vec<Server>,
}

impl World<'_> {
    fn host(&self, i: usize) -> &MariaDb {
        &self.cluster.hosts[i]
    }

    fn inject(&mut self, kind: &Kind) -> Result<Option<JoinHandle<Result<(), String>>>, String> {
        match *kind {
            Kind::Kill9 { host } => self.host(host).kill9(),
            Kind::Stop { host } => self.host(host).stop(),
            Kind::BothDown { pair } => {
                self.host(2 * pair).kill9();
                self.host(2 * pair + 1).kill9();
            }
            Kind::Blackhole { host } => match &mut self.net {
                Some(net) => net.blackhole(host, true)?,
                None => self.proxies[host].set_blackhole(true),
            },
            Kind::CutServerHost { server, host } => self.net()?.cut(HOSTS + server, host, true)?,
            Kind::CutPair { pair } => self.net()?.cut(2 * pair, 2 * pair + 1, true)?,
            Kind::Loss { host, percent } => self.net()?.loss(host, percent)?,
            Kind::Delay { host, ms } => self
                .net()?
                .delay(host, Duration::from_millis(u64::from(ms)))?,
            Kind::ServerKill { server } => self.servers[server].kill(),
            Kind::FailoverCycle { pair } => {
                let common = admin_args(self.host(0));
                let home = self.addrs[2 * pair].clone();
                return Ok(Some(std::thread::spawn(move || {
                    failover_cycle(&common, &home)
                })));
            }
        }
        Ok(None)
    }

    fn heal(&mut self, active: Active) -> Result<(), String> {
        match active.kind {
            Kind::Kill9 { host } => self.host(host).restart(),
            Kind::Stop { host } => self.host(host).cont(),
            Kind::BothDown { pair } => {
                let (a, b) = (self.host(2 * pair), self.host(2 * pair + 1));
                std::thread::scope(|s| {
                    s.spawn(|| a.restart());
                    s.spawn(|| b.restart());
                });
            }
            Kind::Blackhole { host } => match &mut self.net {
                Some(net) => net.blackhole(host, false)?,
                None => self.proxies[host].set_blackhole(false),
            },
            Kind::CutServerHost { server, host } => self.net()?.cut(HOSTS + server, host, false)?,
            Kind::CutPair { pair } => self.net()?.cut(2 * pair, 2 * pair + 1, false)?,
            Kind::Loss { host, .. } => self.net()?.loss(host, 0)?,
            Kind::Delay { host, .. } => self.net()?.delay(host, Duration::ZERO)?,
            Kind::ServerKill { server } => self.servers[server].start(),
            Kind::FailoverCycle { pair } => {
                let outcome = active
                    .cycle
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("the cycle panicked".into()))
                    })
                    .unwrap_or(Ok(()));
                if let Err(e) = outcome {
                    // The partitions must be home again for the final checks.
                    println!(
                        "chaos: failover cycle of pair {pair} failed ({e}); switching over again"
                    );
                    let common = admin_args(self.host(0));
                    let home = self.addrs[2 * pair].clone();
                    retry(Duration::from_secs(120), || switchover(&common, &home))?;
                }
            }
        }
        Ok(())
    }

    fn net(&mut self) -> Result<&mut Net, String> {
        self.net
            .as_mut()
            .ok_or_else(|| "a network fault without network namespaces".to_string())
    }
}

fn admin_args(dir: &MariaDb) -> Vec<String> {
    vec![
        format!("--master-hostname={}", dir.host()),
        format!("--master-port={}", dir.port()),
        format!("--database={DB}"),
        "--root-user=root".to_string(),
        "--root-pass=".to_string(),
    ]
}

fn admin(sub: &str, common: &[String], rest: &[String]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_thrudoc-admin"))
        .arg(sub)
        .args(common)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run thrudoc-admin: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "thrudoc-admin {sub} failed ({}): {}",
            out.status,
            text.trim()
        ))
    }
}

fn switchover(common: &[String], home: &str) -> Result<(), String> {
    let rest = [
        format!("--host={home}"),
        format!("--lease-ms={LEASE_MS}"),
        format!("--query-timeout-ms={QUERY_TIMEOUT_MS}"),
        "--margin-ms=1000".to_string(),
    ];
    admin("switchover", common, &rest).map(|_| ())
}

/// `failover` of `home`, a moment on its sibling, then `switchover` back.
fn failover_cycle(common: &[String], home: &str) -> Result<(), String> {
    admin("failover", common, &[format!("--host={home}")])?;
    std::thread::sleep(Duration::from_secs(1));
    switchover(common, home)
}

fn retry(deadline: Duration, mut f: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn seed_of(args: &Args) -> u64 {
    args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            % 1_000_000
    })
}

/// Runs the whole thing; `Ok(true)` when nothing was found.
pub fn run(args: &Args) -> Result<bool, String> {
    require_mariadb();
    let seed = seed_of(args);
    let mut rng = Rng::new(seed);
    let names: Vec<String> = (0..HOSTS)
        .map(|i| format!("h{i}"))
        .chain((0..args.servers).map(|j| format!("s{j}")))
        .collect();
    let net = if args.loopback {
        None
    } else {
        match Net::create(&names) {
            Ok(net) => Some(net),
            Err(e) => {
                println!(
                    "chaos: network namespaces cannot be made here ({e}); falling back to \
                     loopback with a TCP proxy per host: of the network faults only black holes"
                );
                None
            }
        }
    };
    if net.is_none() {
        if let Some(kind) = args
            .kinds
            .iter()
            .find(|k| NEEDS_NAMESPACES.contains(&k.as_str()))
        {
            return Err(format!(
                "--kinds asks for {kind}, which needs network namespaces, and this run has none"
            ));
        }
    }
    println!(
        "chaos: seed {seed}; {} faults at most over {:.0} s, {} at once; {} Thrudoc servers, {} \
         clients each; {}",
        args.faults,
        args.duration,
        args.concurrency,
        args.servers,
        args.clients,
        if net.is_some() {
            "network namespaces"
        } else {
            "loopback"
        }
    );
    let places: Vec<Place> = (0..HOSTS)
        .map(|i| match &net {
            Some(n) => Place::Namespace {
                ns: n.node(i).ns.clone(),
                ip: n.node(i).ip.clone(),
            },
            None => Place::Loopback,
        })
        .collect();
    let started = Instant::now();
    let cluster = Cluster::start_pairs_in(places);
    if args.semisync {
        for p in 0..PAIRS {
            enable_semisync(
                &cluster.hosts[2 * p],
                &cluster.hosts[2 * p + 1],
                Duration::from_secs(2),
            );
        }
    }
    let proxies: Vec<Proxy> = match net {
        Some(_) => Vec::new(),
        None => cluster
            .hosts
            .iter()
            .map(|h| Proxy::start(&h.addr()))
            .collect(),
    };
    let addrs: Vec<String> = if proxies.is_empty() {
        cluster.hosts.iter().map(|h| h.addr()).collect()
    } else {
        proxies.iter().map(|p| p.addr()).collect()
    };
    create_bucket(&cluster.hosts[0], DB, &addrs, BUCKET, 2);
    let parts = partitions(&cluster.hosts[0], DB, BUCKET, &addrs);
    let keys = Arc::new(Keys::new(300, 60, 40));
    let places: BTreeMap<String, KeyPlace> = keys
        .all()
        .map(|k| {
            let p = part_of(&parts, k);
            (
                k.clone(),
                KeyPlace {
                    partition: p.id,
                    pair: p.host / 2,
                },
            )
        })
        .collect();

    let run_dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let extra = format!(
        "MYSQL_DIRECTORY_LEASE_MS = {LEASE_MS}\nMYSQL_QUERY_TIMEOUT_MS = {QUERY_TIMEOUT_MS}\n\
         MYSQL_DIRECTORY_POLL_MS = {DIRECTORY_POLL_MS}\nMYSQL_CONNECT_TIMEOUT_MS = {CONNECT_TIMEOUT_MS}\n\
         HEALTH_PROBE_INTERVAL_MS = {PROBE_INTERVAL_MS}\nHEALTH_PROBE_TIMEOUT_MS = {PROBE_TIMEOUT_MS}\n\
         LOG_LEVEL = info\nFAILOVER_READS = {}\n",
        args.failover_reads
    );
    let mut servers: Vec<Server> = Vec::new();
    for j in 0..args.servers {
        let (ns, ip, port) = match &net {
            Some(n) => (
                Some(n.node(HOSTS + j).ns.clone()),
                n.node(HOSTS + j).ip.clone(),
                9091,
            ),
            None => (None, "127.0.0.1".to_string(), free_port()),
        };
        let conf = run_dir.path().join(format!("thrudoc-{j}.conf"));
        let text = format!(
            "SERVER_BIND = {ip}\nSERVER_PORT = {port}\n{}{extra}",
            mysql_conf(&cluster.hosts[0], Some(&cluster.hosts[1]), DB, "")
        );
        std::fs::write(&conf, text).map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let addr: SocketAddr = format!("{ip}:{port}").parse().map_err(|e| format!("{e}"))?;
        let mut server = Server {
            index: j,
            ns,
            addr,
            conf,
            proc: None,
            logs: String::new(),
            crashes: 0,
        };
        server.start();
        servers.push(server);
    }
    println!(
        "chaos: cluster and servers up in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The workload.
    let shared = Shared {
        keys: keys.clone(),
        clock: Clock(Instant::now()),
        recorder: Arc::new(Recorder::default()),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let (clock, recorder, stop) = (shared.clock, shared.recorder.clone(), shared.stop.clone());
    let mut workers = Vec::new();
    for (j, server) in servers.iter().enumerate() {
        for c in 0..args.clients {
            let id = (j * args.clients + c) as u32;
            let worker = Worker::new(id, j as u32, server.addr, rng.next(), &shared);
            workers.push(std::thread::spawn(move || worker.run()));
        }
    }

    let watch = Watch::start(
        cluster.hosts.iter().map(|h| h.addr()).collect(),
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        clock,
    )?;

    // The faults.
    let mut world = World {
        cluster: &cluster,
        addrs: addrs.clone(),
        net,
        proxies,
        servers,
    };
    let menu = Menu {
        pairs: PAIRS,
        servers: args.servers,
        network: world.net.is_some(),
        only: args.kinds.clone(),
    };
    let (short, long) = if args.quick {
        (800, 2500)
    } else {
        (1000, 6000)
    };
    let limit = Duration::from_secs_f64(args.duration);
    let planned = plan(&mut rng, &menu, args, (short, long), limit);
    let fault_clock = Instant::now();
    let mut active: Vec<Active> = Vec::new();
    let mut faults: Vec<Fault> = Vec::new();
    let mut cycles: HashMap<usize, usize> = HashMap::new();
    let mut next = planned.into_iter().peekable();
    // Some workload before the first fault.
    std::thread::sleep(Duration::from_secs(2));
    while next.peek().is_some() || !active.is_empty() {
        let now = Instant::now();
        let (due, rest): (Vec<Active>, Vec<Active>) = active
            .into_iter()
            .partition(|a| a.heal_at <= now && a.cycle.as_ref().is_none_or(|h| h.is_finished()));
        active = rest;
        for a in due {
            let (kind, start) = (a.kind.clone(), a.start);
            world.heal(a)?;
            faults.push(record(&kind, start, clock.now()));
        }
        for s in &mut world.servers {
            s.check_alive();
        }
        if let Some(p) = next.peek() {
            // In the planned order, at its planned time or later: a failover cycle may take
            // longer than planned, and what conflicts with it waits.
            let kinds: Vec<&Kind> = active.iter().map(|a| &a.kind).collect();
            if fault_clock.elapsed() >= p.at && !conflicts(&p.kind, &kinds) {
                let p = next.next().expect("peeked");
                let start = clock.now();
                let cycle = world.inject(&p.kind)?;
                if let Kind::FailoverCycle { pair } = p.kind {
                    *cycles.entry(pair).or_default() += 1;
                }
                println!("chaos: {:>6.1} s  {}", start as f64 / 1e6, p.kind.detail());
                let heal_at = Instant::now() + p.length;
                active.push(Active {
                    kind: p.kind,
                    start,
                    heal_at,
                    cycle,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The workload goes on a little once everything has healed, so that every partition is
    // written to after its last fault.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let end = clock.now();
    for w in workers {
        let _ = w.join();
    }
    let stalls = watch.finish();
    for s in &mut world.servers {
        s.check_alive();
    }

    // Every partition writable again through every server, and every copy caught up.
    let probes = probe_keys(&parts);
    for s in &world.servers {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut c = connect(s.addr)?;
        for key in &probes {
            while c
                .put(BUCKET.into(), key.clone(), b"probe".to_vec())
                .is_err()
            {
                if Instant::now() > deadline {
                    return Err(format!(
                        "server {} cannot write {key} after every fault healed",
                        s.index
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
                c = connect(s.addr)?;
            }
        }
    }
    for p in 0..PAIRS {
        let (a, b) = (&cluster.hosts[2 * p], &cluster.hosts[2 * p + 1]);
        for (from, to) in [(a, b), (b, a)] {
            let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wait_replicated(from, to, Duration::from_secs(120))
            }));
            if waited.is_err() {
                let status = to.sql_named("SHOW ALL SLAVES STATUS");
                let log = to.error_log_tail(40);
                if let Some(dir) = &args.keep {
                    let _ = std::fs::create_dir_all(dir);
                    let _ = std::fs::copy(
                        to.error_log(),
                        dir.join(format!("mariadb-{}.err", to.server_id())),
                    );
                }
                return Err(format!(
                    "server {} does not catch up with server {} after every fault healed; its \
                     replication: {status:?}\nend of its error log:\n{log}",
                    to.server_id(),
                    from.server_id()
                ));
            }
        }
    }

    // Final values, read at the masters through server 0.
    let mut finals = BTreeMap::new();
    let mut c = connect(world.servers[0].addr)?;
    for key in keys.all() {
        let value = match c.get(BUCKET.into(), key.clone()) {
            Ok(v) => Some(String::from_utf8_lossy(&v).into_owned()),
            Err(e) => match super::common::thrudoc_exception(e).code {
                Some(2) => None,
                code => return Err(format!("final read of {key} failed (code {code:?})")),
            },
        };
        finals.insert(key.clone(), value);
    }

    let history = History {
        ops: std::mem::take(&mut *recorder.ops.lock().unwrap()),
        walks: std::mem::take(&mut *recorder.walks.lock().unwrap()),
        faults,
        stalls,
        places,
        finals,
        hold: 2 * (PROBE_INTERVAL_MS + PROBE_TIMEOUT_MS) * 1000,
        directory_hosts: vec![0, 1],
        directory_tail: (DIRECTORY_POLL_MS + 2 * (CONNECT_TIMEOUT_MS + QUERY_TIMEOUT_MS)) * 1000,
        end,
    };
    let checking = Instant::now();
    let findings = checker::check(&history);
    println!(
        "chaos: history of {} operations checked in {:.1} s",
        history.ops.len(),
        checking.elapsed().as_secs_f64()
    );
    let double = double_writers(&cluster, &parts, &cycles)?;
    let unequal = unequal_tables(&cluster, &parts);
    let crashes: usize = world.servers.iter().map(|s| s.crashes).sum::<usize>()
        + cluster.hosts.iter().filter(|h| h.crashed()).count();
    let ok = findings.ok() && double.is_empty() && unequal.is_empty() && crashes == 0;
    report(&history, &findings, &double, &unequal, crashes, ok);
    if let Some(dir) = &args.keep {
        keep(dir, &history, &world.servers, &cluster.hosts, clock)?;
    }
    drop(world);
    Ok(ok)
}

/// A fault of the plan: what, when (since the faults began) and for how long.
struct Planned {
    at: Duration,
    length: Duration,
    kind: Kind,
}

/// The pairs and servers a fault keeps to itself while it lasts.
fn claims(kind: &Kind) -> (Vec<usize>, Option<usize>) {
    let mut pairs = kind.pairs();
    // A failover cycle needs the directory's pair as it is; a fault that touches everything
    // wants nothing else on the data at the same time.
    if matches!(kind, Kind::FailoverCycle { .. }) || kind.touches_all() {
        pairs.extend(0..PAIRS);
    }
    (pairs, kind.server())
}

/// True when `kind` may not start while `active` last.
fn conflicts(kind: &Kind, active: &[&Kind]) -> bool {
    let (pairs, server) = claims(kind);
    let all = matches!(kind, Kind::FailoverCycle { .. }) || kind.touches_all();
    active.iter().any(|a| {
        let (their_pairs, their_server) = claims(a);
        (all && !a.pairs().is_empty())
            || pairs.iter().any(|p| their_pairs.contains(p))
            || (server.is_some() && server == their_server)
    })
}

/// The whole plan, drawn from the seed before the first fault, so that a seed replays the
/// same faults in the same order (their exact times depend on the machine).
fn plan(
    rng: &mut Rng,
    menu: &Menu,
    args: &Args,
    (short, long): (u64, u64),
    limit: Duration,
) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Vec::new();
    let mut at = Duration::ZERO;
    let mut first = menu.every_kind(rng);
    first.truncate(args.faults);
    while planned.len() < args.faults && at < limit {
        let live: Vec<&Planned> = planned.iter().filter(|p| p.at + p.length > at).collect();
        if live.len() < args.concurrency {
            let busy_pairs: Vec<usize> = live.iter().flat_map(|p| claims(&p.kind).0).collect();
            let busy_servers: Vec<usize> = live.iter().filter_map(|p| p.kind.server()).collect();
            let kinds: Vec<&Kind> = live.iter().map(|p| &p.kind).collect();
            // Every kind once first, each as soon as nothing in flight conflicts with it.
            let chosen = match first.iter().position(|k| !conflicts(k, &kinds)) {
                Some(i) => Some(first.remove(i)),
                None if first.is_empty() => menu.pick(rng, &busy_pairs, &busy_servers),
                None => None,
            };
            if let Some(kind) = chosen {
                let cycle_of_the_directory = matches!(kind, Kind::FailoverCycle { pair: 0 });
                if !cycle_of_the_directory && !conflicts(&kind, &kinds) {
                    let mut length = rng.millis(short, long);
                    if matches!(kind, Kind::FailoverCycle { .. }) {
                        // failover, then switchover's freeze and waits.
                        length = length.max(Duration::from_secs(8));
                    }
                    planned.push(Planned { at, length, kind });
                }
            }
        }
        at += rng.millis(50, 400);
    }
    planned
}

fn record(kind: &Kind, start: Micros, end: Micros) -> Fault {
    Fault {
        kind: kind.name().to_string(),
        detail: kind.detail(),
        start,
        end,
        pairs: kind.pairs(),
        all: kind.touches_all(),
        view_only: kind.view_only(),
        hosts: kind.hosts(),
        server: match kind {
            Kind::CutServerHost { server, .. } => Some(*server),
            _ => None,
        },
        directory: kind.changes_directory(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19091)
}

fn connect(addr: SocketAddr) -> Result<thrudoc::client::Client, String> {
    retry_value(Duration::from_secs(30), || {
        thrudoc::client::connect(
            addr,
            Transport::Framed,
            Protocol::Binary,
            Duration::from_secs(10),
        )
        .map_err(|e| format!("connecting to {addr}: {e}"))
    })
}

fn retry_value<T>(
    deadline: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// One key in each partition, outside the workload's keys.
fn probe_keys(parts: &[Part]) -> Vec<String> {
    let mut found: BTreeMap<u64, String> = BTreeMap::new();
    let mut i = 0;
    while found.len() < parts.len() && i < 100_000 {
        let key = format!("probe-{i}");
        found.entry(part_of(parts, &key).id).or_insert(key);
        i += 1;
    }
    found.into_values().collect()
}

/// Tables whose row changes, in some host's binary log, switch origin (server id) more often
/// than the failover cycles of their pair explain: a second writer. Read from the binary log
/// files with `mariadb-binlog`, so a long run's logs stream rather than load.
fn double_writers(
    cluster: &Cluster,
    parts: &[Part],
    cycles: &HashMap<usize, usize>,
) -> Result<Vec<String>, String> {
    let tables: HashMap<String, usize> = parts
        .iter()
        .map(|p| (format!("`{}`", p.table.replace('.', "`.`")), p.host / 2))
        .collect();
    let mut found = Vec::new();
    for host in &cluster.hosts {
        let mut last: HashMap<&str, u32> = HashMap::new();
        let mut switches: HashMap<&str, usize> = HashMap::new();
        let mut logs: Vec<PathBuf> = std::fs::read_dir(host.datadir())
            .map_err(|e| format!("reading {}: {e}", host.datadir().display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("mariadb-bin.")
                        && !n.ends_with(".index")
                        && !n.ends_with(".state")
                })
            })
            .collect();
        logs.sort();
        for log in logs {
            let mut child = Command::new("mariadb-binlog")
                .arg("--base64-output=never")
                .arg(&log)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run mariadb-binlog: {e}"))?;
            let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
            for line in out.lines().map_while(Result::ok) {
                // #261202  0:12:01 server id 3  end_log_pos 1234 CRC32 0x... Table_map: `thrudoc`.`d_…` mapped to number 42
                let Some(at) = line.find("Table_map: ") else {
                    continue;
                };
                let Some(sid) = line
                    .split("server id ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let table = line[at + 11..].split(' ').next().unwrap_or_default();
                let Some((name, _)) = tables.get_key_value(table) else {
                    continue;
                };
                if let Some(prev) = last.insert(name.as_str(), sid) {
                    if prev != sid {
                        *switches.entry(name.as_str()).or_default() += 1;
                    }
                }
            }
            let _ = child.wait();
        }
        for (table, n) in switches {
            let allowed = 2 * cycles.get(&tables[table]).copied().unwrap_or(0);
            if n > allowed {
                found.push(format!(
                    "{table} in the binary log of server {}: its writer changed {n} times, {allowed} failover steps explain",
                    host.server_id()
                ));
            }
        }
    }
    Ok(found)
}

/// Partitions whose table differs between master and sibling (rows or checksum).
fn unequal_tables(cluster: &Cluster, parts: &[Part]) -> Vec<String> {
    let mut found = Vec::new();
    for p in parts {
        let pair = p.host / 2;
        let (a, b) = (&cluster.hosts[2 * pair], &cluster.hosts[2 * pair + 1]);
        let sum = |h: &MariaDb| h.try_sql(&format!("CHECKSUM TABLE {}", p.table)).ok();
        let (sa, sb) = (sum(a), sum(b));
        if sa.is_none() || sa != sb {
            found.push(format!(
                "{}: checksum {sa:?} on server {}, {sb:?} on server {}",
                p.table,
                a.server_id(),
                b.server_id()
            ));
        }
    }
    found
}

fn report(
    h: &History,
    f: &Findings,
    double: &[String],
    unequal: &[String],
    crashes: usize,
    ok: bool,
) {
    let mut kinds: BTreeMap<&str, (usize, Micros)> = BTreeMap::new();
    for fault in &h.faults {
        let e = kinds.entry(fault.kind.as_str()).or_default();
        e.0 += 1;
        e.1 += fault.end.saturating_sub(fault.start);
    }
    println!("\nfault              count   mean s");
    for (kind, (n, total)) in &kinds {
        println!(
            "{kind:<18} {n:>5}   {:>6.2}",
            *total as f64 / *n as f64 / 1e6
        );
    }
    let show = |name: &str, items: &[String]| {
        if !items.is_empty() {
            println!("\n{name}: {}", items.len());
            for line in items.iter().take(10) {
                println!("  {line}");
            }
        }
    };
    show("lost", &f.lost);
    show("phantom", &f.phantom);
    show("stale_healthy", &f.stale_healthy);
    show("refused_untouched", &f.refused_untouched);
    show("append_order", &f.append_order);
    show("scan_twice", &f.scan_twice);
    show("scan_missed", &f.scan_missed);
    show("double_writer", double);
    show("unequal", unequal);
    if !f.stale_outage.is_empty() {
        let mut behind: Vec<Micros> = f.stale_outage.iter().map(|s| s.behind).collect();
        behind.sort_unstable();
        println!(
            "\nstale reads during outages: {} (behind by median {:.3} s, max {:.3} s)",
            behind.len(),
            behind[behind.len() / 2] as f64 / 1e6,
            behind[behind.len() - 1] as f64 / 1e6
        );
    }
    // Stalls of new connections that no fault on the host's pair explains: MariaDB's own.
    let outside: Vec<Micros> = h
        .stalls
        .iter()
        .filter(|s| {
            !h.faults.iter().any(|f| {
                (f.all || f.pairs.contains(&(s.host / 2))) && f.start <= s.end && s.start <= f.end
            })
        })
        .map(|s| s.end - s.start)
        .collect();
    println!(
        "\nhosts that took no new connection: {} times, {} of them outside every fault on their pair (longest {:.1} s)",
        h.stalls.len(),
        outside.len(),
        outside.iter().max().copied().unwrap_or(0) as f64 / 1e6
    );
    let refused = h
        .ops
        .iter()
        .filter(|o| matches!(o.outcome, super::history::Outcome::Refused { .. }))
        .count();
    let behind = h
        .ops
        .iter()
        .filter(|o| o.outcome == super::history::Outcome::Refused { code: BEHIND })
        .count();
    println!(
        "\nops {}, writes acknowledged {}, refused {} (during faults; reads refused BEHIND {behind}), walks {}, scans missed during outages {}",
        f.ops,
        f.acked_writes,
        refused,
        h.walks.len(),
        f.scan_missed_outage
    );
    println!(
        "faults={} ops={} acked_writes={} lost={} phantom={} stale_healthy={} stale_outage={} double_writer={} crashes={} ok={}",
        h.faults.len(),
        f.ops,
        f.acked_writes,
        f.lost.len(),
        f.phantom.len(),
        f.stale_healthy.len(),
        f.stale_outage.len(),
        double.len() + unequal.len(),
        crashes,
        u8::from(ok)
    );
}

/// Writes the history, each Thrudoc server's log and each mariadbd's error log into `dir`.
/// The history's last line says when the run's clock started (`clock_zero_unix_micros`), so
/// that its times can be matched with the logs' wall-clock times.
fn keep(
    dir: &Path,
    h: &History,
    servers: &[Server],
    hosts: &[MariaDb],
    clock: Clock,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(dir.join("history.jsonl")).map_err(|e| format!("{e}"))?,
    );
    let write = |out: &mut std::io::BufWriter<std::fs::File>, v: serde_json::Value| {
        writeln!(out, "{v}").map_err(|e| format!("{e}"))
    };
    for op in &h.ops {
        write(&mut out, serde_json::json!({ "op": op }))?;
    }
    for w in &h.walks {
        write(&mut out, serde_json::json!({ "walk": w }))?;
    }
    for f in &h.faults {
        write(&mut out, serde_json::json!({ "fault": f }))?;
    }
    for s in &h.stalls {
        write(&mut out, serde_json::json!({ "stall": s }))?;
    }
    write(
        &mut out,
        serde_json::json!({
            "places": h.places,
            "finals": h.finals,
            "hold": h.hold,
            "directory_hosts": h.directory_hosts,
            "directory_tail": h.directory_tail,
            "end": h.end,
            "clock_zero_unix_micros": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64)
                .saturating_sub(clock.now()),
        }),
    )?;
    for s in servers {
        std::fs::write(dir.join(format!("thrudoc-{}.log", s.index)), s.log_text())
            .map_err(|e| format!("{e}"))?;
    }
    for (i, host) in hosts.iter().enumerate() {
        let _ = std::fs::copy(host.error_log(), dir.join(format!("mariadb-{i}.log")));
    }
    println!("chaos: history and logs kept in {}", dir.display());
    Ok(())
}
