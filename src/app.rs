//! Start-up of the `thrudoc` binary: config, logging, store, listener, signals.
//!
//! Kept in the library so the binary stays a few lines and tests can reach every step.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Backend, Config, LogFormat, KEYS};
use crate::error::{Error, Result};
use crate::observe;
use crate::server;
use crate::service::Service;
use crate::store::disk::DiskStore;
use crate::store::mysql::MysqlStore;
use crate::store::Store;
use crate::tls::Tls;

/// How often the counts of repeated failures are logged (see [`crate::failure_log`]).
const FAILURE_LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the server configured by `file` until SIGINT/SIGTERM; with `check`, validates the
/// configuration, prints it and returns.
pub fn main(file: &Path, check: bool) -> Result<()> {
    let config = Config::load(file)?;
    if check {
        // The TLS files are part of the configuration: a check reads them too.
        if let Some(tls) = &config.server.tls {
            Tls::load(tls)?;
        }
        print_check(file, &config);
        return Ok(());
    }
    init_logging(&config.log_level, config.log_format);
    for warning in &config.warnings {
        tracing::warn!("{}: {warning}", file.display());
    }
    raise_open_file_limit(config.server.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("thrudoc")
        .build()
        .map_err(|e| Error::internal("cannot start the async runtime").with_source(e))?;
    runtime.block_on(serve(config))
}

/// Opens the store, binds the port and serves until a shutdown signal.
pub async fn serve(config: Config) -> Result<()> {
    // The certificate is read before anything starts, so a bad file stops start-up at once.
    let tls = config.server.tls.as_ref().map(Tls::load).transpose()?;
    if let Some(tls) = &tls {
        tracing::info!(
            required = tls.required,
            mutual = tls.mutual,
            "TLS on the Thrift port"
        );
    }
    let store = open_store(&config.backend).await?;
    let service = Arc::new(Service::new(store.clone(), config.limits.clone()));
    let addr = (config.server.bind, config.server.port);
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::config(format!(
            "cannot listen on {}:{} (SERVER_BIND/SERVER_PORT)",
            addr.0, addr.1
        ))
        .with_source(e)
    })?;
    let local = listener.local_addr()?;
    let flusher = tokio::spawn({
        let service = Arc::downgrade(&service);
        async move {
            let mut every = tokio::time::interval(FAILURE_LOG_FLUSH);
            loop {
                every.tick().await;
                let Some(service) = service.upgrade() else {
                    return;
                };
                service.flush_failure_log();
            }
        }
    });
    let operator = match config.server.metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                Error::config(format!(
                    "cannot listen on {addr} for metrics (METRICS_BIND/METRICS_PORT)"
                ))
                .with_source(e)
            })?;
            let at = listener.local_addr()?;
            say(&format!("thrudoc metrics and status page on http://{at}/"));
            tracing::info!(%at, "operator's port: /metrics and the status page");
            Some(tokio::spawn(observe::http::serve(
                listener,
                service.clone(),
            )))
        }
        None => None,
    };
    // One plain line on stdout, so scripts and tests learn the port when SERVER_PORT = 0.
    say(&format!("thrudoc listening on {local}"));
    tracing::info!(%local, "listening");
    let served = server::run(listener, service, config.server, tls, shutdown_signal()).await;
    flusher.abort();
    if let Some(operator) = operator {
        operator.abort();
    }
    // Requests are done: the store's connections end politely rather than with the process.
    store.close().await;
    served
}

/// One plain line on stdout (addresses for scripts and tests; the log goes to stderr).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

async fn open_store(backend: &Backend) -> Result<Arc<dyn Store>> {
    match backend {
        Backend::Disk(disk) => {
            let disk = disk.clone();
            let root = disk.doc_root.display().to_string();
            let store = tokio::task::spawn_blocking(move || {
                DiskStore::open(&disk.doc_root, &disk.buckets, disk.max_value_size)
            })
            .await
            .map_err(|e| Error::internal("opening the embedded store panicked").with_source(e))??;
            let buckets = store.buckets().await?;
            tracing::info!(?buckets, %root, "embedded store open");
            Ok(Arc::new(store))
        }
        Backend::Mysql(mysql) => {
            let store = MysqlStore::open(mysql)
                .await
                .map_err(|e| e.context("starting the mysql backend"))?;
            Ok(Arc::new(store))
        }
    }
}

/// Each client connection is a descriptor, as are the pools' connections and the store's files:
/// raise the soft limit towards the hard one so MAX_CONNECTIONS clients fit, and say when they
/// cannot.
fn raise_open_file_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let wanted = max_connections as u64 + 1024;
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= wanted {
        return;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = rustix::process::Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) if target >= wanted => {
            tracing::info!(from = current, to = target, "raised the open-file limit")
        }
        Ok(()) => tracing::warn!(
            limit = target,
            max_connections,
            "the open-file limit (hard limit) is below MAX_CONNECTIONS plus room for the store; \
             raise it (ulimit -Hn) or lower MAX_CONNECTIONS"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// The log on stderr, at `level` (unless `RUST_LOG` says otherwise), as text or JSON lines.
fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("thrudoc={level},warn")));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => log.try_init(),
        LogFormat::Json => log.json().try_init(),
    };
}

fn print_check(file: &Path, config: &Config) {
    use std::io::Write as _;
    let documented: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    let mut text = format!("{}: configuration is valid\n", file.display());
    for warning in &config.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text.push_str(&format!(
        "{config:#?}\nknown keys: {}\n",
        documented.join(" ")
    ));
    // A closed pipe (`thrudoc --check | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
}
