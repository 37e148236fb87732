//! The report: a table a person reads, then machine-readable last lines.
//!
//! ```text
//! target   type  clients  batch   calls     ops     ops/s  calls/s  p50_ms  p99_ms  max_ms  errors
//! thrudoc  both       20      -   80123   80123    8012.3   8012.3   2.310   8.120  45.100       0
//! direct   both       20      -   99001   99001    9900.1   9900.1   1.900   6.800  30.200       0
//! direct_ops_per_sec=9900.1 ratio=0.81
//! ops_per_sec=8012.3 p50_ms=2.310 p99_ms=8.120 errors=0
//! ```
//!
//! `ops` are elements (a `getList` of 100 is 100 ops), counted when they succeeded; `errors`
//! are failed elements (and failed connection attempts). Latencies are per call. The last
//! line is always the Thrudoc run's; in side-by-side mode the line before it gives the direct
//! run's rate and the ratio Thrudoc/direct.

use std::fmt::Write as _;

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
