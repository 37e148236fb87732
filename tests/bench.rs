//! `thrudoc-bench` run for real, briefly, against the real `thrudoc` binary: the embedded
//! store for single calls, batches and idle connections, and one MariaDB server for the
//! side-by-side mode. These check that the tool works and reports what it says; they measure
//! nothing (docs/DESIGN.md: no timed tests).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::mariadb::{require_mariadb, MariaDb};
use common::{mysql, ThrudocServer};
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

/// Longest a bench run of these tests may take (they ask for 2 s).
const BENCH_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `thrudoc-bench` against `server` with `args`, killing it after [`BENCH_DEADLINE`].
fn bench(server: &ThrudocServer, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thrudoc-bench"));
    command
        .arg("--host")
        .arg(server.addr.ip().to_string())
        .arg("--port")
        .arg(server.addr.port().to_string())
        .args(args);
    run_bounded(command)
}

fn run_bounded(command: Command) -> Output {
    let ran = common::process::run(command, BENCH_DEADLINE);
    Output {
        status: ran.status,
        stdout: ran.stdout.into_bytes(),
        stderr: ran.stderr.into_bytes(),
    }
}

/// The `key=value` pairs of a line.
fn fields(line: &str) -> Vec<(String, f64)> {
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("`{kv}` in `{line}` is not key=value"));
            let v = v
                .parse()
                .unwrap_or_else(|_| panic!("`{v}` in `{line}` is not a number"));
            (k.to_string(), v)
        })
        .collect()
}

/// What a successful run printed: its stdout, and the numbers of its last line.
struct Report {
    stdout: String,
    ops_per_sec: f64,
}

impl Report {
    /// The table row of `target` (`thrudoc` or `direct`), split on whitespace.
    fn row(&self, target: &str) -> Vec<String> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{target} ")))
            .unwrap_or_else(|| panic!("no `{target}` row in:\n{}", self.stdout));
        line.split_whitespace().map(str::to_string).collect()
    }
}

/// Checks the exit status and the last line (`ops_per_sec=<n> p50_ms=<n> p99_ms=<n>
/// errors=0`, with ops_per_sec > 0).
fn clean_report(out: &Output) -> Report {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "thrudoc-bench exited with {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    let last = stdout.lines().last().expect("a last line");
    let f = fields(last);
    let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["ops_per_sec", "p50_ms", "p99_ms", "errors"],
        "{last}"
    );
    assert!(f[0].1 > 0.0, "{last}");
    assert!(f[1].1 > 0.0 && f[2].1 >= f[1].1, "{last}");
    assert_eq!(f[3].1, 0.0, "{last}\n{stdout}");
    // Progress lines went to stderr while it ran.
    assert!(stderr.contains("ops/s now"), "no progress lines:\n{stderr}");
    Report {
        stdout,
        ops_per_sec: f[0].1,
    }
}

/// Every key `bench-0` to `bench-{keys-1}` holds a value of `size` bytes.
fn assert_keys_readable(server: &ThrudocServer, bucket: &str, keys: u64, size: usize) {
    let mut client = server.client(Transport::Framed, Protocol::Binary);
    for i in 0..keys {
        let value = client
            .get(bucket.into(), format!("bench-{i}"))
            .unwrap_or_else(|e| panic!("bench-{i} not readable after the bench: {e}"));
        assert_eq!(value.len(), size, "bench-{i}");
    }
}

#[test]
fn single_calls_both_ways_then_every_key_is_readable() {
    let server = ThrudocServer::start("");
    let out = bench(
        &server,
        &[
            "--clients=4",
            "--type=both",
            "--duration=2",
            "--keys=300",
            "--size=100",
        ],
    );
    let report = clean_report(&out);
    let row = report.row("thrudoc");
    // target type clients batch calls ops ...
    assert_eq!(&row[1..4], ["both", "4", "-"], "{row:?}");
    assert_eq!(row[4], row[5], "one element per call: {row:?}");
    assert_keys_readable(&server, "data", 300, 100);
}

#[test]
fn batches_count_elements_and_compact_unframed_works() {
    let server = ThrudocServer::start("");
    let out = bench(
        &server,
        &[
            "--clients=4",
            "--type=both",
            "--duration=2",
            "--keys=200",
            "--size=64",
            "--batch=10",
            "--transport=unframed",
            "--protocol=compact",
        ],
    );
    let report = clean_report(&out);
    let row = report.row("thrudoc");
    assert_eq!(&row[1..4], ["both", "4", "10"], "{row:?}");
    let calls: u64 = row[4].parse().unwrap();
    let ops: u64 = row[5].parse().unwrap();
    assert!(calls > 0 && ops == calls * 10, "{row:?}");
    let calls_per_sec: f64 = row[7].parse().unwrap();
    assert!(
        (report.ops_per_sec / calls_per_sec - 10.0).abs() < 0.1,
        "ops/s is elements/s: {row:?}"
    );
    assert_keys_readable(&server, "data", 200, 64);
}

/// The pid of the `thrudoc` process started with `server`'s config file.
fn server_pid(server: &ThrudocServer) -> u32 {
    let conf = server.dir.path().join("thrudoc.conf");
    let conf = conf.to_string_lossy();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == conf.as_bytes()))
        })
        .expect("the thrudoc process")
}

#[test]
fn idle_connections_are_held_through_the_run_and_memory_is_reported() {
    let server = ThrudocServer::start("");
    let pid = server_pid(&server).to_string();
    let out = bench(
        &server,
        &[
            "--clients=4",
            "--type=write",
            "--duration=2",
            "--keys=100",
            "--idle-connections=50",
            "--server-pid",
            &pid,
        ],
    );
    let report = clean_report(&out);
    assert!(
        report
            .stdout
            .contains("idle connections: 50 of 50 opened, 50 still answering after the run"),
        "{}",
        report.stdout
    );
    let rss = report
        .stdout
        .lines()
        .find(|l| l.starts_with("server RSS: "))
        .unwrap_or_else(|| panic!("no server RSS line:\n{}", report.stdout));
    assert!(
        rss.contains("before idle connections")
            && rss.contains("with 50 idle")
            && rss.contains("at the end"),
        "{rss}"
    );
}

#[test]
fn a_bucket_the_server_does_not_serve_fails_at_once() {
    let server = ThrudocServer::start("");
    let out = bench(&server, &["--bucket=nope", "--duration=1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not serve bucket `nope`") && stderr.contains("data"),
        "{stderr}"
    );
}

/// The numbers of the `cpu_us_per_op` line of `target`'s run.
fn cpu_per_op(report: &Report, target: &str) -> Vec<(String, f64)> {
    let prefix = format!("cpu_us_per_op {target}_");
    let line = report
        .stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{}", report.stdout));
    fields(&line["cpu_us_per_op ".len()..])
}

/// Side by side on one MariaDB server: the Thrudoc run and the direct run of the same
/// workload, the ratio line before the last line, and no errors on either side (the direct
/// run reads the keys written through Thrudoc, so placement agrees). Each run's CPU per
/// operation names its parts, and puts the server's work in the Thrudoc run only.
#[test]
fn side_by_side_with_mariadb_prints_both_rates_and_the_ratio() {
    require_mariadb();
    let db = MariaDb::start(1);
    let admin = Command::new(env!("CARGO_BIN_EXE_thrudoc-admin"))
        .args([
            "create-tablename",
            "--master-hostname=127.0.0.1",
            &format!("--master-port={}", db.port()),
            "--database=thrudoc",
            "--root-user=root",
            "--root-pass=",
            "--user=thrudoc",
            "--pass=pass",
            "--tablename=bench",
            "--parts-per=4",
        ])
        .output()
        .expect("run thrudoc-admin");
    assert!(
        admin.status.success(),
        "create-tablename: {}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let server = mysql::thrudoc_on(&db, None, "thrudoc", "");
    let conf = server.dir.path().join("thrudoc.conf");
    assert!(Path::new(&conf).is_file());
    let server_pid = server_pid(&server).to_string();
    let db_pid = db.pid().expect("mariadbd's pid").to_string();
    // Batched writes too: both sides write each partition's rows in key order, so concurrent
    // multi-row upserts of random keys do not deadlock (errors=0 is asserted below).
    for extra in [
        &["--type=both"][..],
        &["--type=both", "--batch=10"],
        &["--type=both", "--direct-first"],
    ] {
        let mut args = vec![
            "--bucket=bench",
            "--clients=4",
            "--duration=2",
            "--keys=200",
            "--size=256",
            "--direct-mysql-conf",
            conf.to_str().unwrap(),
            "--server-pid",
            &server_pid,
            "--db-pid",
            &db_pid,
        ];
        args.extend(extra);
        let out = bench(&server, &args);
        let report = clean_report(&out);
        // The progress lines show which side ran first.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = |target: &str| {
            stderr
                .find(&format!("{target} both:"))
                .unwrap_or_else(|| panic!("no {target} progress line:\n{stderr}"))
        };
        let direct_first = extra.contains(&"--direct-first");
        assert_eq!(first("direct") < first("thrudoc"), direct_first, "{stderr}");
        let direct = report.row("direct");
        assert_eq!(direct[11], "0", "direct errors: {}", report.stdout);
        let lines: Vec<&str> = report.stdout.lines().collect();
        let before_last = fields(lines[lines.len() - 2]);
        assert_eq!(before_last[0].0, "direct_ops_per_sec", "{}", report.stdout);
        assert_eq!(before_last[1].0, "ratio", "{}", report.stdout);
        assert!(before_last[0].1 > 0.0);
        let ratio = report.ops_per_sec / before_last[0].1;
        assert!(
            (ratio - before_last[1].1).abs() < 0.01,
            "ratio {} vs {ratio}",
            before_last[1].1
        );
        let thrudoc = cpu_per_op(&report, "thrudoc");
        let direct = cpu_per_op(&report, "direct");
        for (cpu, target) in [(&thrudoc, "thrudoc"), (&direct, "direct")] {
            let names: Vec<&str> = cpu.iter().map(|(k, _)| k.as_str()).collect();
            let want = ["server", "databases", "bench", "box"].map(|p| format!("{target}_{p}"));
            assert_eq!(names, want, "{}", report.stdout);
        }
        // The server served every call of the Thrudoc run and none of the direct one; MariaDB
        // and the box worked in both.
        assert!(thrudoc[0].1 > direct[0].1, "{}", report.stdout);
        for cpu in [&thrudoc, &direct] {
            assert!(cpu[1].1 > 0.0 && cpu[3].1 > 0.0, "{}", report.stdout);
        }
    }
    assert_keys_readable(&server, "bench", 200, 256);
}
