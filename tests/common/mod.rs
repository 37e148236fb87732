//! Test harness shared by the integration tests: starts the real `thrudoc` binary on a free
//! port with its own config and data directory, and ends it when the test ends.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use thrudoc::client::{self, Client};
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{ErrorCode, ExceptionType, ThrudocException};

/// How long a server gets to start listening before the test fails.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// Per-call timeout of test clients: no test may hang on a dead server.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `thrudoc` process.
pub struct ThrudocServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The operator's port (`METRICS_PORT`), when the server has one.
    pub metrics: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    stderr: Mutex<mpsc::Receiver<String>>,
    seen: Mutex<Vec<String>>,
}

impl ThrudocServer {
    /// Starts `thrudoc -f <dir>/thrudoc.conf` where the file holds `conf` plus a data directory
    /// inside the test's temporary directory, on a port the system picks.
    pub fn start(conf: &str) -> ThrudocServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("thrudoc.conf");
        let text = format!(
            "SERVER_PORT = 0\nDISK_DOC_ROOT = {}\n{conf}\n",
            dir.path().join("docs").display()
        );
        std::fs::write(&file, text).expect("write config");
        Self::start_with(dir, &file, &[])
    }

    /// Starts `thrudoc -f file` with extra environment variables; `dir` is kept alive with the
    /// server.
    pub fn start_with(dir: tempfile::TempDir, file: &Path, env: &[(&str, &str)]) -> ThrudocServer {
        Self::start_in(dir, file, env, None)
    }

    /// [`ThrudocServer::start_with`] inside network namespace `ns` (`ip netns exec`, which
    /// execs the server: the child is the server itself).
    pub fn start_in(
        dir: tempfile::TempDir,
        file: &Path,
        env: &[(&str, &str)],
        ns: Option<&str>,
    ) -> ThrudocServer {
        let mut command = match ns {
            None => Command::new(env!("CARGO_BIN_EXE_thrudoc")),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_thrudoc")]);
                c
            }
        };
        command
            .arg("-f")
            .arg(file)
            .env("RUST_LOG", "thrudoc=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn thrudoc");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The operator's port is said first, when there is one.
            let mut metrics = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.strip_prefix("thrudoc metrics and status page on http://") {
                    metrics = Some(at.trim().trim_end_matches('/').to_string());
                }
                if let Some(addr) = line.strip_prefix("thrudoc listening on ") {
                    let _ = addr_tx.send((addr.trim().to_string(), metrics.take()));
                }
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = ThrudocServer {
            child: Some(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            metrics: None,
            dir,
            stderr: Mutex::new(err_rx),
            seen: Mutex::new(Vec::new()),
        };
        match addr_rx.recv_timeout(START_DEADLINE) {
            Ok((addr, metrics)) => {
                server.addr = addr.parse().expect("listening address");
                server.metrics = metrics.map(|m| m.parse().expect("metrics address"));
            }
            Err(_) => {
                let status = server
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "thrudoc did not report a listening address within {START_DEADLINE:?} \
                     (exit status {status:?}); its stderr:\n{}",
                    server.stderr_text()
                );
            }
        }
        server
    }

    /// A client speaking `transport` and `protocol`.
    pub fn client(&self, transport: Transport, protocol: Protocol) -> Client {
        client::connect(self.addr, transport, protocol, CALL_TIMEOUT).expect("connect to thrudoc")
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        let mut seen = self.seen.lock().unwrap();
        seen.extend(self.stderr.lock().unwrap().try_iter());
        seen.join("\n")
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {signal} {pid} failed");
    }

    /// Waits for the server to exit, failing the test after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "thrudoc did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, when the server has exited (by itself or after a signal).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// The data directory of the embedded store.
    pub fn doc_root(&self) -> PathBuf {
        self.dir.path().join("docs")
    }
}

impl Drop for ThrudocServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` until it returns true, failing with `what` after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Thrudoc exception of a failed call, or a panic naming what else came back.
pub fn thrudoc_exception(result: thrift::Error) -> ThrudocException {
    match result {
        thrift::Error::User(e) => match e.downcast::<ThrudocException>() {
            Ok(ex) => *ex,
            Err(other) => panic!("unexpected user error {other:?}"),
        },
        other => panic!("expected a ThrudocException, got {other:?}"),
    }
}

/// The `ErrorCode` of a Thrudoc exception, or a panic naming what else came back.
pub fn error_code(result: thrift::Error) -> i32 {
    code_of(&thrudoc_exception(result))
}

/// The `what` of a Thrudoc exception, or a panic naming what else came back.
pub fn error_what(result: thrift::Error) -> String {
    thrudoc_exception(result).what.unwrap_or_default()
}

/// The `ErrorCode` of `ex`, after checking the rule old clients rely on: `type` is NO_SUCH_KEY
/// for a missing key and UNKNOWN for everything else, never a value the original IDL lacks.
pub fn code_of(ex: &ThrudocException) -> i32 {
    let code = ex
        .code
        .unwrap_or_else(|| panic!("an exception without a code: {ex:?}"));
    let type_ = ex.type_.map_or(ExceptionType::UNKNOWN.0, |t| t.0);
    let want = if code == ErrorCode::NO_SUCH_KEY.0 {
        ExceptionType::NO_SUCH_KEY.0
    } else {
        ExceptionType::UNKNOWN.0
    };
    assert_eq!(type_, want, "type of {ex:?}");
    code
}
pub mod blackhole;
pub mod checks;
pub mod conformance;
pub mod drivers;
pub mod history;
pub mod mariadb;
pub mod mysql;
pub mod nft;
pub mod process;
pub mod proxy;
pub mod tls;
