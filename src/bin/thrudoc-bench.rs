//! `thrudoc-bench`: throughput and latency of a running Thrudoc server, optionally side by
//! side with the same workload sent straight to MariaDB. See [`thrudoc::bench`].

fn main() -> std::process::ExitCode {
    thrudoc::bench::main()
}
