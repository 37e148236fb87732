//! `thrudoc-bench`: whole-system throughput and latency of a running Thrudoc server, and
//! (side-by-side mode) of the same workload sent straight to MariaDB, measured in the same
//! invocation on the same box (docs/DESIGN.md, "Performance measurement").
//!
//! A run goes: check the server serves the bucket; open the idle connections, if any, and
//! read the server's memory around that; fill the key space with `putList` (for reads); run
//! the clients for `--duration`, with a progress line every second on stderr; then, with
//! `--direct-mysql-conf`, run the same clients straight against the partition tables (before
//! the Thrudoc run with `--direct-first`); print the table and the last lines ([`report`]),
//! each run's CPU time per operation among them ([`cpu`]).
//!
//! - [`workload`]: keys, values, the read/write mix, the random draws.
//! - [`histogram`]: the log-linear latency histogram.
//! - [`run`](mod@run): what both runs share (tallies, live counters, the progress line).
//! - [`clients`]: the Thrudoc run, one blocking Thrift client per thread; idle connections.
//! - [`direct`]: the direct run, with `mysql_async` and the store's own placement and SQL.
//! - [`report`]: the table and the last lines.
//! - [`system`]: the open-files limit and a server's memory, from `/proc`.
//! - [`cpu`]: the CPU time each run cost the server, the databases, the bench and the box.

pub mod clients;
pub mod cpu;
pub mod direct;
pub mod histogram;
pub mod report;
pub mod run;
pub mod system;
pub mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use self::clients::Target;
use self::report::Memory;
use self::run::{RunStats, Workload};
use self::workload::Mix;
use crate::codec::{Protocol, Transport};
use crate::config::seconds_flag;
use crate::error::{Error, ErrorKind, Result};

/// Exit status of a run that completed but had failed operations (or idle connections).
pub const EXIT_ERRORS: u8 = 3;

/// Measures a running Thrudoc server: N clients, one connection each, for a fixed time.
///
/// Prints a progress line every second on stderr, then a table on stdout whose last line is
/// `ops_per_sec=<n> p50_ms=<n> p99_ms=<n> errors=<n>` (the Thrudoc run). With
/// --direct-mysql-conf the line before it is `direct_ops_per_sec=<n> ratio=<x.xx>`.
///
/// Exit status: 0 when every operation succeeded, 3 when the run completed with errors, 1 when
/// it could not run, 2 for bad flags.
#[derive(Parser, Debug, Clone)]
#[command(name = "thrudoc-bench", version, about)]
pub struct Options {
    /// Host of the Thrudoc server.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the Thrudoc server.
    #[arg(long, default_value_t = 9091)]
    pub port: u16,
    /// Bucket to read and write (keys `bench-0` to `bench-<keys-1>`).
    #[arg(long, default_value = "data")]
    pub bucket: String,
    /// Concurrent clients, each one connection with one call in flight.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// Bytes of each value written.
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=(64 << 20)))]
    pub size: u32,
    /// Number of distinct keys, drawn uniformly.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// read: get only; write: put only; both: 50% get, 50% put.
    #[arg(long = "type", value_enum, default_value_t = Mix::Both)]
    pub mix: Mix,
    /// Seconds the timed run lasts (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds_flag)]
    pub duration: Duration,
    /// Send getList/putList of N elements per call instead of get/put; rates count elements.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: Option<u32>,
    /// Connections opened before the run (each makes one call) and held idle until the end.
    #[arg(long, value_name = "M", default_value_t = 0)]
    pub idle_connections: usize,
    /// Thrift transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Framed)]
    pub transport: TransportArg,
    /// Thrift protocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Binary)]
    pub protocol: ProtocolArg,
    /// After the Thrudoc run, run the same workload straight against the MariaDB partitions
    /// of this thrudoc.conf (BACKEND = mysql; the server's own conf) and print the ratio.
    #[arg(long, value_name = "FILE")]
    pub direct_mysql_conf: Option<PathBuf>,
    /// With --direct-mysql-conf: write where each bench key lives, one `key<TAB>host<TAB>port
    /// <TAB>db.table` line per key, for an independent load generator (scripts/bench runs
    /// sysbench with it).
    #[arg(long, value_name = "FILE", requires = "direct_mysql_conf")]
    pub dump_placement: Option<PathBuf>,
    /// Seed of the random keys, values and operation mix.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Pid of the server, to report its resident memory (VmRSS) before and after opening the
    /// idle connections and at the end, and its CPU time per operation.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Pid of a database server (give it once per mariadbd), to report the databases' CPU
    /// time per operation in each run.
    #[arg(long = "db-pid", value_name = "PID")]
    pub db_pids: Vec<u32>,
    /// Seconds any one call or connection attempt may take before it counts as failed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds_flag)]
    pub timeout: Duration,
    /// With --direct-mysql-conf: run the direct side first, then the Thrudoc run (a script
    /// alternating the order shares out what one run leaves the databases to do in the next).
    #[arg(long, requires = "direct_mysql_conf")]
    pub direct_first: bool,
    /// Do not write every key before a run with reads (an earlier run filled them).
    #[arg(long)]
    pub no_fill: bool,
    /// End the timed run early once this file exists (a script measuring a load around other
    /// work, such as a move, creates it when that work is done).
    #[arg(long, value_name = "FILE")]
    pub stop_file: Option<PathBuf>,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Framed,
    Unframed,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    Binary,
    Compact,
}

impl Options {
    fn target(&self) -> Result<Target> {
        let addr: SocketAddr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::invalid(format!("--host {}: cannot resolve", self.host)))?;
        Ok(Target {
            addr,
            transport: match self.transport {
                TransportArg::Framed => Transport::Framed,
                TransportArg::Unframed => Transport::Unframed,
            },
            protocol: match self.protocol {
                ProtocolArg::Binary => Protocol::Binary,
                ProtocolArg::Compact => Protocol::Compact,
            },
        })
    }

    fn workload(&self) -> Workload {
        Workload {
            bucket: self.bucket.clone(),
            mix: self.mix,
            clients: self.clients as usize,
            size: self.size as usize,
            keys: self.keys,
            batch: self.batch.map(|b| b as usize),
            duration: self.duration,
            seed: self.seed,
            timeout: self.timeout,
            stop_file: self.stop_file.clone(),
        }
    }
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    pub thrudoc: RunStats,
    pub direct: Option<RunStats>,
    pub memory: Memory,
    pub idle_opened: usize,
    pub idle_failed: u64,
    pub idle_first_error: Option<String>,
    /// Idle connections that still answered a call after the run.
    pub idle_alive: u64,
    pub direct_description: Option<String>,
}

impl Outcome {
    /// The report: the table, notes, and the last lines.
    pub fn report(&self, idle_asked: usize) -> String {
        let mut runs = vec![&self.thrudoc];
        runs.extend(self.direct.as_ref());
        let mut out = report::table(&runs);
        if let Some(d) = &self.direct_description {
            out.push_str(&format!("direct: {d}\n"));
        }
        for r in &runs {
            if let Some(e) = &r.tally.first_error {
                out.push_str(&format!("{} first error: {e}\n", r.target));
            }
        }
        if idle_asked > 0 {
            out.push_str(&format!(
                "idle connections: {} of {idle_asked} opened, {} still answering after the run\n",
                self.idle_opened, self.idle_alive
            ));
            if let Some(e) = &self.idle_first_error {
                out.push_str(&format!(
                    "idle connections: {} failed; first: {e}\n",
                    self.idle_failed
                ));
            }
        }
        if let Some(line) = report::memory(&self.memory, self.idle_opened) {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&report::cpu_table(&runs));
        for r in &runs {
            if let Some(line) = report::cpu_line(r) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        if let Some(d) = &self.direct {
            out.push_str(&report::direct_line(&self.thrudoc, d));
            out.push('\n');
        }
        out.push_str(&report::last_line(&self.thrudoc));
        out.push('\n');
        out
    }

    /// Whether anything failed.
    pub fn has_errors(&self, idle_asked: usize) -> bool {
        self.thrudoc.tally.errors > 0
            || self.direct.as_ref().is_some_and(|d| d.tally.errors > 0)
            || self.idle_failed > 0
            || (self.idle_alive as usize) < idle_asked
    }
}

/// Runs the whole bench (see the module docs).
pub fn run(opts: &Options) -> Result<Outcome> {
    let target = opts.target()?;
    let w = opts.workload();
    // Every client and idle connection is a descriptor, plus the direct run's pools (up to
    // twice the clients per host) and some slack.
    let needed = (opts.idle_connections + 3 * w.clients + 64) as u64;
    system::ensure_open_files(needed).map_err(Error::invalid)?;

    eprintln!(
        "thrudoc-bench: {} at {} ({} {}), bucket `{}`, {} clients, {}, {}-byte values, {} keys, {:.1} s{}",
        env!("CARGO_PKG_VERSION"),
        target.addr,
        target.transport,
        target.protocol,
        w.bucket,
        w.clients,
        w.mix.as_str(),
        w.size,
        w.keys,
        w.duration.as_secs_f64(),
        w.batch
            .map_or(String::new(), |b| format!(", batches of {b}"))
    );
    clients::check(&target, &w.bucket, w.timeout)?;
    // Open the direct side's directory now, so a bad conf fails before the long part.
    let direct = match &opts.direct_mysql_conf {
        Some(conf) => Some(direct::Direct::open(conf, &w.bucket, w.clients)?),
        None => None,
    };
    if let (Some(path), Some(d)) = (&opts.dump_placement, &direct) {
        d.dump_placement(path, w.keys)?;
        eprintln!("placement of {} keys written to {}", w.keys, path.display());
    }

    let rss = || opts.server_pid.and_then(system::rss_kib);
    let mut memory = Memory {
        before_idle: rss(),
        ..Memory::default()
    };
    let idle = clients::open_idle(&target, opts.idle_connections, w.timeout);
    if opts.idle_connections > 0 {
        memory.with_idle = rss();
        eprintln!(
            "idle connections: {} open, {} failed",
            idle.len(),
            idle.failed
        );
    }

    if w.mix.reads() && !opts.no_fill {
        clients::fill(&target, &w)?;
    }
    let watched = cpu::Watched {
        server: opts.server_pid,
        databases: opts.db_pids.clone(),
    };
    let run_direct = |d: direct::Direct| {
        let description = d.describe();
        let stats = d.run(&w, &watched);
        d.close();
        (stats, description)
    };
    // What a run leaves the databases to do afterwards (flushing, the sibling applying its
    // writes) lands in the next run: --direct-first lets a script alternate who bears it.
    let (before, after) = if opts.direct_first {
        (direct, None)
    } else {
        (None, direct)
    };
    let before = before.map(run_direct);
    let thrudoc = clients::run(&target, &w, &watched);
    memory.at_end = rss();
    let idle_alive = clients::check_idle(&target, &idle);
    let (direct, direct_description) = before.or_else(|| after.map(run_direct)).unzip();
    Ok(Outcome {
        thrudoc,
        direct,
        memory,
        idle_opened: idle.len(),
        idle_failed: idle.failed,
        idle_first_error: idle.first_error.clone(),
        idle_alive,
        direct_description,
    })
}

/// The `thrudoc-bench` command.
pub fn main() -> ExitCode {
    let opts = Options::parse();
    match run(&opts) {
        Ok(outcome) => {
            print!("{}", outcome.report(opts.idle_connections));
            if outcome.has_errors(opts.idle_connections) {
                ExitCode::from(EXIT_ERRORS)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("thrudoc-bench: {e}");
            if e.kind() == ErrorKind::InvalidArgument {
                eprintln!("thrudoc-bench: see --help");
            }
            ExitCode::FAILURE
        }
    }
}
