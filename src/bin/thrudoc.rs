//! `thrudoc -f FILE`: the Thrudoc server. `thrudoc --check -f FILE` validates a config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc malloc: under getList/putList load glibc's malloc and free took a fifth
/// of the server's CPU, and batched reads ran 1.5x faster with mimalloc (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Thrudoc: a partitioned key-document store speaking Apache Thrift.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Configuration file (`KEY = VALUE` lines; THRUDOC_<KEY> variables override).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "conf/thrudoc.conf"
    )]
    file: PathBuf,
    /// Validate the configuration, print it (passwords redacted) and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match thrudoc::app::main(&args.file, args.check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("thrudoc: {e}");
            ExitCode::FAILURE
        }
    }
}
