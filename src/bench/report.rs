//! The report: a table a person reads, then machine-readable last lines.
//!
//! ```text
//! target   type  clients  batch   calls     ops     ops/s  calls/s  p50_ms  p99_ms  max_ms  errors
//! thrudoc  both       20      -   80123   80123    8012.3   8012.3   2.310   8.120  45.100       0
//! direct   both       20      -   99001   99001    9900.1   9900.1   1.900   6.800  30.200       0
//! CPU us/op     server databases     bench       box
//! thrudoc         44.1      61.0      38.2     150.3
//! direct           0.1     112.5      30.9     148.0
//! cpu_us_per_op thrudoc_server=44.1 thrudoc_databases=61.0 thrudoc_bench=38.2 thrudoc_box=150.3
//! cpu_us_per_op direct_server=0.1 direct_databases=112.5 direct_bench=30.9 direct_box=148.0
//! direct_ops_per_sec=9900.1 ratio=0.81
//! ops_per_sec=8012.3 p50_ms=2.310 p99_ms=8.120 errors=0
//! ```
//!
//! `ops` are elements (a `getList` of 100 is 100 ops), counted when they succeeded; `errors`
//! are failed elements (and failed connection attempts). Latencies are per call. The last
//! line is always the Thrudoc run's; in side-by-side mode the line before it gives the direct
//! run's rate and the ratio Thrudoc/direct.
//!
//! CPU per operation is each run's CPU time ([`cpu`](super::cpu)) over its successful
//! elements: the server's (`--server-pid`; in the direct run it shows the server idle), the
//! databases' (`--db-pid`), the bench's own and the whole box's. A part that was not asked for
//! or could not be read is `-` in the table and missing from the `cpu_us_per_op` line.

use std::fmt::Write as _;

use super::cpu::CpuUse;
use super::run::RunStats;

/// Server memory at three points of the run, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub before_idle: Option<u64>,
    pub with_idle: Option<u64>,
    pub at_end: Option<u64>,
}

/// The header and one row per run.
pub fn table(runs: &[&RunStats]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<5} {:>7} {:>6} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "target",
        "type",
        "clients",
        "batch",
        "calls",
        "ops",
        "ops/s",
        "calls/s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "errors"
    );
    for r in runs {
        let w = &r.workload;
        let _ = writeln!(
            out,
            "{:<8} {:<5} {:>7} {:>6} {:>10} {:>10} {:>10.1} {:>9.1} {:>8.3} {:>8.3} {:>8.3} {:>7}",
            r.target,
            w.mix.as_str(),
            w.clients,
            w.batch.map_or("-".to_string(), |b| b.to_string()),
            r.tally.calls,
            r.tally.ops,
            r.ops_per_sec(),
            r.calls_per_sec(),
            r.latency_ms(0.5),
            r.latency_ms(0.99),
            r.max_ms(),
            r.tally.errors
        );
    }
    out
}

/// The parts of a [`CpuUse`] in the order the report shows them.
fn cpu_parts(c: &CpuUse) -> [(&'static str, Option<f64>); 4] {
    [
        ("server", c.server),
        ("databases", c.databases),
        ("bench", c.bench),
        ("box", c.busy),
    ]
}

/// CPU microseconds per operation, a row per run.
pub fn cpu_table(runs: &[&RunStats]) -> String {
    let mut out = format!("{:<10}", "CPU us/op");
    for (name, _) in cpu_parts(&CpuUse::default()) {
        let _ = write!(out, " {name:>9}");
    }
    out.push('\n');
    for r in runs {
        let _ = write!(out, "{:<10}", r.target);
        for (_, v) in cpu_parts(&r.cpu_per_op_us()) {
            match v {
                Some(v) => write!(out, " {v:>9.1}"),
                None => write!(out, " {:>9}", "-"),
            }
            .expect("writing to a String");
        }
        out.push('\n');
    }
    out
}

/// `cpu_us_per_op <target>_server=<n> <target>_databases=<n> ...`, the parts that were read.
pub fn cpu_line(r: &RunStats) -> Option<String> {
    let parts: Vec<String> = cpu_parts(&r.cpu_per_op_us())
        .into_iter()
        .filter_map(|(name, v)| Some(format!("{}_{name}={:.1}", r.target, v?)))
        .collect();
    (!parts.is_empty()).then(|| format!("cpu_us_per_op {}", parts.join(" ")))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `server RSS: ...`, or nothing when no memory was read.
pub fn memory(m: &Memory, idle: usize) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(b) = m.before_idle {
        let when = if idle > 0 {
            "before idle connections"
        } else {
            "at the start"
        };
        parts.push(format!("{} {when}", mib(b)));
    }
    if let Some(w) = m.with_idle {
        let each = match m.before_idle {
            Some(b) if idle > 0 => format!(
                " ({:.1} KiB each)",
                w.saturating_sub(b) as f64 / idle as f64
            ),
            _ => String::new(),
        };
        parts.push(format!("{} with {idle} idle{each}", mib(w)));
    }
    if let Some(e) = m.at_end {
        // The exact figure too, for scripts comparing two runs' ends (scripts/bench, b3).
        parts.push(format!("{} at the end (server_rss_end_kib={e})", mib(e)));
    }
    (!parts.is_empty()).then(|| format!("server RSS: {}", parts.join(", ")))
}

/// `direct_ops_per_sec=<n> ratio=<x.xx>`: the direct run's rate and Thrudoc's as a fraction
/// of it.
pub fn direct_line(thrudoc: &RunStats, direct: &RunStats) -> String {
    let ratio = thrudoc.ops_per_sec() / direct.ops_per_sec().max(1e-9);
    format!(
        "direct_ops_per_sec={:.1} ratio={ratio:.2}",
        direct.ops_per_sec()
    )
}

/// `ops_per_sec=<n> p50_ms=<n> p99_ms=<n> errors=<n>`.
pub fn last_line(r: &RunStats) -> String {
    format!(
        "ops_per_sec={:.1} p50_ms={:.3} p99_ms={:.3} errors={}",
        r.ops_per_sec(),
        r.latency_ms(0.5),
        r.latency_ms(0.99),
        r.tally.errors
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::run::{Tally, Workload};
    use crate::bench::workload::Mix;

    fn stats(target: &'static str, ops: u64, secs: u64) -> RunStats {
        let mut tally = Tally::default();
        for _ in 0..ops {
            tally.latency.record(2_000_000);
        }
        tally.ops = ops;
        tally.calls = ops;
        RunStats {
            target,
            workload: Workload {
                bucket: "data".into(),
                mix: Mix::Both,
                clients: 20,
                size: 1024,
                keys: 20_000,
                batch: None,
                duration: Duration::from_secs(secs),
                seed: 1,
                timeout: Duration::from_secs(10),
                stop_file: None,
            },
            elapsed: Duration::from_secs(secs),
            tally,
            cpu: CpuUse::default(),
        }
    }

    #[test]
    fn lines_parse_as_documented() {
        let t = stats("thrudoc", 8000, 2);
        let d = stats("direct", 10000, 2);
        assert_eq!(direct_line(&t, &d), "direct_ops_per_sec=5000.0 ratio=0.80");
        let last = last_line(&t);
        assert!(last.starts_with("ops_per_sec=4000.0 p50_ms=2.0"), "{last}");
        assert!(last.ends_with(" errors=0"), "{last}");
        let table = table(&[&t, &d]);
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(1).unwrap().starts_with("thrudoc  both"));
    }

    #[test]
    fn cpu_per_op_divides_each_part_by_the_successful_elements() {
        let mut t = stats("thrudoc", 8000, 2);
        t.cpu = CpuUse {
            server: Some(0.4),
            databases: Some(0.2),
            bench: Some(0.3),
            busy: Some(1.0),
        };
        let mut d = stats("direct", 10000, 2);
        d.cpu = CpuUse {
            bench: Some(0.25),
            busy: Some(1.0),
            ..CpuUse::default()
        };
        assert_eq!(
            cpu_line(&t).unwrap(),
            "cpu_us_per_op thrudoc_server=50.0 thrudoc_databases=25.0 thrudoc_bench=37.5 thrudoc_box=125.0"
        );
        assert_eq!(
            cpu_line(&d).unwrap(),
            "cpu_us_per_op direct_bench=25.0 direct_box=100.0"
        );
        assert_eq!(cpu_line(&stats("direct", 10, 1)), None);
        let table = cpu_table(&[&t, &d]);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(
            rows,
            [
                "CPU us/op     server databases     bench       box",
                "thrudoc         50.0      25.0      37.5     125.0",
                "direct             -         -      25.0     100.0",
            ]
        );
    }

    #[test]
    fn memory_line_shows_the_cost_of_each_idle_connection() {
        let m = Memory {
            before_idle: Some(10 * 1024),
            with_idle: Some(10 * 1024 + 5000),
            at_end: Some(20 * 1024),
        };
        assert_eq!(
            memory(&m, 1000).unwrap(),
            "server RSS: 10.0 MiB before idle connections, 14.9 MiB with 1000 idle (5.0 KiB each), 20.0 MiB at the end (server_rss_end_kib=20480)"
        );
        assert_eq!(memory(&Memory::default(), 0), None);
        let m = Memory {
            with_idle: None,
            ..m
        };
        assert_eq!(
            memory(&m, 0).unwrap(),
            "server RSS: 10.0 MiB at the start, 20.0 MiB at the end (server_rss_end_kib=20480)"
        );
    }
}
