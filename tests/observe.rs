//! The operator's port against the real things: a real Prometheus server scrapes a running
//! Thrudoc over a real MariaDB pair and is asked, through its HTTP API, for the series the
//! server should export (a host going DOWN after a kill -9 among them); `promtool` checks the
//! exposition; headless Chromium loads the status page and sees a killed master DOWN, then UP
//! again after its restart. With `LOG_FORMAT = json`, every log line is a JSON object and each
//! state change one of them.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::drivers::require;
use common::mariadb::{require_mariadb, Cluster};
use common::mysql::{create_bucket, part_of, partitions, thrudoc_on, Part};
use common::ThrudocServer;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

/// `GET path` over HTTP/1.0: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server scraping one target every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        require(
            "prometheus",
            &["--version"],
            "apt-get install -y prometheus",
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: thrudoc\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        common::wait_until(Duration::from_secs(30), "Prometheus ready", || {
            TcpStream::connect(addr).is_ok() && http_get(addr, "/-/ready").0 == 200
        });
        p
    }

    /// The value of each series `query` returns, by its labels.
    fn query(&self, query: &str) -> Vec<(HashMap<String, String>, f64)> {
        let (status, body) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", url_encode(query)),
        );
        assert_eq!(status, 200, "{query}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        json["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// The one value of `query` (`None`: no series yet).
    fn value(&self, query: &str) -> Option<f64> {
        let result = self.query(query);
        assert!(result.len() <= 1, "{query} gave several series: {result:?}");
        result.first().map(|(_, v)| *v)
    }

    /// Waits until `query` gives `want`.
    fn wait_for(&self, query: &str, want: f64, deadline: Duration) -> Duration {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < deadline {
            last = self.value(query);
            if last == Some(want) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus: {query} is {last:?}, not {want}, after {deadline:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One pair, a bucket `f` of 2 partitions per host, and a server with the operator's port.
struct Setup {
    cluster: Cluster,
    parts: Vec<Part>,
    server: ThrudocServer,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        require_mariadb();
        let cluster = Cluster::start_pairs(1);
        let addrs: Vec<String> = cluster.hosts.iter().map(|h| h.addr()).collect();
        create_bucket(&cluster.hosts[0], "thrudoc", &addrs, "f", 2);
        let parts = partitions(&cluster.hosts[0], "thrudoc", "f", &addrs);
        let server = thrudoc_on(
            &cluster.hosts[0],
            Some(&cluster.hosts[1]),
            "thrudoc",
            &format!("METRICS_PORT = 0\nHEALTH_PROBE_INTERVAL_MS = 100\nHEALTH_PROBE_TIMEOUT_MS = 300\n{extra}"),
        );
        assert!(server.metrics.is_some(), "the server said its metrics port");
        Setup {
            cluster,
            parts,
            server,
        }
    }

    fn metrics(&self) -> SocketAddr {
        self.server.metrics.expect("metrics port")
    }

    /// A key whose partition's master is host `i`.
    fn key_on(&self, i: usize) -> String {
        (0..)
            .map(|n| format!("k{n}"))
            .find(|k| part_of(&self.parts, k).host == i)
            .unwrap()
    }
}

#[test]
fn prometheus_scrapes_requests_hosts_and_a_master_going_down() {
    let setup = Setup::new("");
    let master = setup.cluster.hosts[0].addr();
    let mut c = setup.server.client(Transport::Framed, Protocol::Binary);
    for i in 0..50 {
        c.put("f".into(), format!("key-{i}"), b"v".to_vec())
            .unwrap();
    }
    for i in 0..20 {
        c.get("f".into(), format!("key-{i}")).unwrap();
    }
    assert_eq!(
        common::error_code(c.get("f".into(), "missing".into()).unwrap_err()),
        2
    );
    let prometheus = Prometheus::start(setup.metrics());
    let q = |s: &str| s.replace("MASTER", &master);
    prometheus.wait_for(
        r#"thrudoc_requests_total{method="put",outcome="ok"}"#,
        50.0,
        Duration::from_secs(30),
    );
    for (query, want) in [
        (r#"thrudoc_requests_total{method="get",outcome="ok"}"#, 20.0),
        (
            r#"thrudoc_requests_total{method="get",outcome="no_such_key"}"#,
            1.0,
        ),
        (
            r#"thrudoc_request_duration_seconds_count{method="put"}"#,
            50.0,
        ),
        (r#"thrudoc_connections_open"#, 1.0),
        (r#"thrudoc_host_state{host="MASTER",state="UP"}"#, 1.0),
        (r#"thrudoc_host_state{host="MASTER",state="DOWN"}"#, 0.0),
        (r#"thrudoc_host_partitions{host="MASTER"}"#, 2.0),
        (r#"thrudoc_directory_lease_lost"#, 0.0),
    ] {
        assert_eq!(prometheus.value(&q(query)), Some(want), "{query}");
    }
    assert!(prometheus.value("thrudoc_received_bytes_total").unwrap() > 0.0);
    assert!(prometheus.value("thrudoc_directory_version").unwrap() >= 1.0);
    let puts = prometheus
        .value(r#"sum(thrudoc_coalesced_statement_keys_count{op="put"})"#)
        .unwrap();
    assert!(puts >= 1.0, "coalesced put statements: {puts}");

    setup.cluster.hosts[0].kill9();
    let killed = Instant::now();
    let seen = prometheus.wait_for(
        &q(r#"thrudoc_host_state{host="MASTER",state="DOWN"}"#),
        1.0,
        Duration::from_secs(20),
    );
    eprintln!("OBSERVE Prometheus saw the master DOWN {seen:?} after the kill");
    let key = setup.key_on(0);
    assert_eq!(
        common::error_code(c.put("f".into(), key, b"x".to_vec()).unwrap_err()),
        5,
        "a write to the dead master's partition is READ_ONLY"
    );
    let (status, text) = http_get(setup.metrics(), "/metrics");
    assert_eq!(status, 200);
    for line in [
        format!("thrudoc_host_writes_refused_total{{host=\"{master}\"}} 1"),
        format!("thrudoc_host_transitions_total{{host=\"{master}\"}} 1"),
        format!("thrudoc_host_down_detection_seconds_count{{host=\"{master}\"}} 1"),
        r#"thrudoc_requests_total{method="put",outcome="read_only"} 1"#.to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // promtool, Prometheus's own checker, accepts the exposition.
    require("promtool", &["--version"], "apt-get install -y prometheus");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    setup.cluster.hosts[0].restart();
    prometheus.wait_for(
        &q(r#"thrudoc_host_state{host="MASTER",state="UP"}"#),
        1.0,
        Duration::from_secs(30),
    );
    eprintln!(
        "OBSERVE master UP again in Prometheus {:?} after the kill",
        killed.elapsed()
    );
}

/// Chromium's rendering of the page once loaded (`--dump-dom`).
fn chromium(args: &[&str], url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn shows(dom: &str, host: &str, state: &str) -> bool {
    dom.contains(&format!(
        "class=\"host\" data-host=\"{host}\" data-state=\"{state}\""
    ))
}

/// Loads the page until it shows `host` in `state`: the page, and how long it took.
fn page_until(url: &str, host: &str, state: &str, deadline: Duration) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let dom = chromium(&["--dump-dom"], url);
        if shows(&dom, host, state) {
            return (dom, start.elapsed());
        }
        assert!(
            start.elapsed() < deadline,
            "{host} not {state} after {deadline:?}:\n{dom}"
        );
    }
}

#[test]
fn chromium_shows_a_killed_master_down_and_then_up() {
    require("chromium", &["--version"], "apt-get install -y chromium");
    let setup = Setup::new("");
    let url = format!("http://{}/", setup.metrics());
    let hosts: Vec<String> = setup.cluster.hosts.iter().map(|h| h.addr()).collect();
    let dom = chromium(&["--dump-dom"], &url);
    for h in &hosts {
        assert!(shows(&dom, h, "UP"), "{h} UP in:\n{dom}");
    }
    assert!(dom.contains("<svg id=\"buckets\""), "{dom}");
    assert!(dom.contains("f (xxhash64)"), "{dom}");

    setup.cluster.hosts[0].kill9();
    let (dom, took) = page_until(&url, &hosts[0], "DOWN", Duration::from_secs(20));
    assert!(shows(&dom, &hosts[1], "UP"));
    eprintln!("OBSERVE the page showed the master DOWN {took:?} after the kill");
    // The screenshot of the README: a master down.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("status.png");
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,960",
            "--hide-scrollbars",
        ],
        &url,
    );
    let image = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > 10_000);
    if let Ok(keep) = std::env::var("THRUDOC_SCREENSHOT") {
        std::fs::write(Path::new(&keep), &image).unwrap();
    }

    setup.cluster.hosts[0].restart();
    let (dom, _) = page_until(&url, &hosts[0], "UP", Duration::from_secs(30));
    assert!(dom.contains("id=\"changes\""));
    for state in ["DOWN", "RETURNING", "UP"] {
        assert!(
            dom.contains(&format!(">{state}</span></td><td>")),
            "the last changes list {state}: {dom}"
        );
    }
}

#[test]
fn json_logs_give_each_state_change_one_structured_line() {
    let setup = Setup::new("LOG_FORMAT = json");
    let master = setup.cluster.hosts[0].addr();
    setup.cluster.hosts[0].kill9();
    common::wait_until(Duration::from_secs(10), "the master DOWN", || {
        setup
            .server
            .stderr_text()
            .contains("\"event\":\"host_down\"")
    });
    setup.cluster.hosts[0].restart();
    let mut c = setup.server.client(Transport::Framed, Protocol::Binary);
    let key = setup.key_on(0);
    common::wait_until(
        Duration::from_secs(30),
        "writes to the master again",
        || c.put("f".into(), key.clone(), b"v".to_vec()).is_ok(),
    );
    let text = setup.server.stderr_text();
    let mut events = Vec::new();
    for line in text.lines() {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            json["timestamp"].is_string() && json["level"].is_string(),
            "{line}"
        );
        let fields = &json["fields"];
        assert!(fields["message"].is_string(), "{line}");
        if let Some(event) = fields["event"].as_str() {
            events.push((event.to_string(), fields.clone()));
        }
    }
    // A DOWN host whose probes fail for a new reason says so too (host_still_down).
    let of_master: Vec<&str> = events
        .iter()
        .filter(|(e, f)| f["host"].as_str() == Some(master.as_str()) && e != "host_still_down")
        .map(|(e, _)| e.as_str())
        .collect();
    assert_eq!(
        of_master,
        vec!["host_down", "host_returning", "host_up"],
        "the master's state changes, each once: {events:?}"
    );
    let down = &events.iter().find(|(e, _)| e == "host_down").unwrap().1;
    assert!(
        down["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{down}"
    );
    assert!(
        events.iter().any(|(e, _)| e == "directory_version"),
        "{events:?}"
    );
}
