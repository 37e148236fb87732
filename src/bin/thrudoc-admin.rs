//! `thrudoc-admin`: creates buckets of the MySQL backend and reports on its hosts. See
//! [`thrudoc::admin`].

fn main() -> std::process::ExitCode {
    thrudoc::admin::cli::main()
}
