//! The chaos run (`scripts/chaos`): three MariaDB master-master pairs and several Thrudoc
//! servers on one directory, each in a network namespace of its own; clients doing a recorded
//! workload through every server; faults chosen at random, overlapping on different pairs;
//! then every fault healed, and the history checked (`checker`), the binary logs read for a
//! second writer, and every partition compared on master and sibling.
//!
//! It prints a table of the faults, what the checker found, and a last line
//! `faults=N ops=N acked_writes=N lost=N phantom=N stale_healthy=N stale_outage=N
//! double_writer=N crashes=N ok=0|1`; it exits 0 only with `ok=1`.
//!
//! A cargo test target without the test harness (`harness = false`, `test = false`): it shares
//! the integration tests' MariaDB harness (`tests/common`), and `cargo test` does not run it
//! unless asked (`scripts/chaos` does).

#[path = "../common/mod.rs"]
mod common;

mod checker;
mod delay;
mod faults;
mod history;
mod net;
mod run;
mod watch;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The command line of a chaos run.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "chaos",
    about = "Thrudoc under overlapping faults, with a history checker"
)]
pub struct Args {
    /// Faults to inject.
    #[arg(long, default_value_t = 100)]
    pub faults: usize,
    /// Most seconds of faults; the run stops injecting when they pass.
    #[arg(long, default_value_t = 1200.0)]
    pub duration: f64,
    /// Thrudoc servers on the directory.
    #[arg(long, default_value_t = 2)]
    pub servers: usize,
    /// Clients per server.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Faults at once, each on a pair (or server) of its own.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Seed of every random choice, so that a run can be replayed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Semi-synchronous replication in every pair.
    #[arg(long)]
    pub semisync: bool,
    /// The servers' `FAILOVER_READS`: `consistent` (refuse a read the sibling cannot vouch
    /// for) or `stale` (serve it, counted).
    #[arg(long, default_value = "consistent", value_parser = ["consistent", "stale"])]
    pub failover_reads: String,
    /// Keep the history (JSON lines), the servers' logs and a summary in this directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// The short form CI runs: 30 faults of about a second each.
    #[arg(long)]
    pub quick: bool,
    /// Only these kinds of fault, by name (`kill9,loss,server_kill`, ...): to replay a finding
    /// with the faults that matter. Every kind when not given.
    #[arg(long, value_delimiter = ',', value_parser = faults::KINDS)]
    pub kinds: Vec<String>,
    /// Do not use network namespaces even where they can be made (loopback, with proxies for
    /// black holes; the other network faults are left out).
    #[arg(long)]
    pub loopback: bool,
}

fn main() -> ExitCode {
    // The packet holder of a delay fault is this program again, in the delayed namespace.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("--hold-packets") {
        return delay::hold_main(raw.get(2).map_or("", String::as_str));
    }
    // `cargo test` passes harness flags such as `--nocapture`; a chaos run takes none of
    // them, so they are dropped rather than refused.
    let args = std::env::args().filter(|a| a != "--nocapture" && a != "--color=never");
    let mut args = Args::parse_from(args);
    if args.quick {
        args.faults = args.faults.min(30);
    }
    match run::run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("chaos: {e}");
            ExitCode::from(2)
        }
    }
}
