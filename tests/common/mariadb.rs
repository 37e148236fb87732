//! Real MariaDB servers for the integration tests of the MySQL backend (docs/DESIGN.md, "Tests and real components").
//!
//! Each [`MariaDb`] is one `mariadbd` process with its own temporary data directory on a free
//! port of 127.0.0.1, with the binary log and GTIDs on, so that [`pair`] can join two of them into
//! a master-master pair the way production runs them. Tests inject faults with
//! [`MariaDb::kill9`], [`MariaDb::stop`]/[`MariaDb::cont`], [`MariaDb::shutdown`] and
//! [`MariaDb::restart`].
//!
//! SQL goes through the `mariadb` command-line client, so the harness needs no driver crate and
//! tests exercise the server exactly as an operator would. Every client call runs under a process
//! deadline: a stopped server makes a call fail, never hang.
//!
//! No server outlives the test process: `Drop` kills it, and because servers shared through a
//! `static` are never dropped, a small watchdog shell process per server kills it (and removes its
//! directory) once the test process is gone, however it ended.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use thrudoc::mysql::GtidPos;

/// How long a server gets to accept `SELECT 1` after it is spawned before the test fails.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Process deadline of one `mariadb` client call made by [`MariaDb::sql`]/[`MariaDb::try_sql`].
pub const SQL_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`pair`] waits for both replication threads of both servers to run.
pub const PAIR_DEADLINE: Duration = Duration::from_secs(30);

const MARIADBD: &str = "mariadbd";
const INSTALL_DB: &str = "mariadb-install-db";
const CLIENT: &str = "mariadb";

/// Innodb sizes shared by `mariadb-install-db` and `mariadbd`: the redo log created by the
/// former must have the size the latter expects, or every start would resize it.
const INNODB_SIZES: [&str; 2] = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
];

/// Panics, naming the command that installs them, unless `mariadbd`, `mariadb-install-db` and
/// the `mariadb` client are installed. Tests that need MariaDB call it first: they never skip
/// silently.
pub fn require_mariadb() {
    let missing: Vec<&str> = [MARIADBD, INSTALL_DB, CLIENT]
        .into_iter()
        .filter(|tool| find_tool(tool).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "these MariaDB tests need {missing:?}, which are not installed (looked in PATH, \
         /usr/sbin and /usr/bin). Install them with `apt-get install -y mariadb-server` \
         (as root) or `scripts/setup --test`."
    );
}

/// The path of `tool`: PATH first, then /usr/sbin and /usr/bin, which a non-root PATH often
/// lacks although Debian installs `mariadbd` in /usr/sbin.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// `--user=root` when running as root, which `mariadbd` needs to agree to run as root; other
/// users run it as themselves, where the option would only draw warnings or a failed `chown`.
fn user_arg() -> Option<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    root.then_some("--user=root")
}

fn tool(tool: &str) -> PathBuf {
    find_tool(tool).unwrap_or_else(|| {
        require_mariadb();
        unreachable!("require_mariadb passed but {tool} is missing")
    })
}

/// The data directory that `mariadb-install-db` created once for this test process; servers
/// start from a copy of it, which takes a few milliseconds instead of most of a second. It
/// already holds the replication user, created during bootstrap so that creating it is not in
/// any binary log (a replicated `CREATE USER` would fail on the peer, which has it too).
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        require_mariadb();
        let started = Instant::now();
        let root = tempfile::Builder::new()
            .prefix("thrudoc-mariadb-template-")
            .tempdir()
            .expect("temporary directory for the MariaDB template")
            .keep();
        // Nothing drops a static: the watchdog removes the template when the process ends. It
        // outlives this process by design, so it is never waited for.
        #[allow(clippy::zombie_processes)]
        let _watchdog = spawn_watchdog(None, &root);
        let extra = root.join("init.sql");
        std::fs::write(
            &extra,
            // Bootstrap runs without grant tables until FLUSH PRIVILEGES loads them.
            "FLUSH PRIVILEGES;\n\
             CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';\n\
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';\n\
             CREATE USER 'root'@'%';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n",
        )
        .expect("write init.sql");
        let datadir = root.join("data");
        let output = Command::new(tool(INSTALL_DB))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(user_arg())
            .arg("--skip-name-resolve")
            .arg(format!("--extra-file={}", extra.display()))
            .args(INNODB_SIZES)
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "mariadb harness: template data directory made in {:?}",
            started.elapsed()
        );
        datadir
    })
}

/// Spawns `sh` that waits until this test process has exited, then SIGCONTs and SIGKILLs `pid`
/// (if given) and removes `dir`, and exits. Whoever ends the server while this process lives
/// kills its watchdog too, so a watchdog acts only for servers this process left behind. It
/// runs in its own process group so that a Ctrl-C aimed at `cargo test` does not kill it before
/// it has done its job. Paths are passed as arguments, never spliced into the script.
fn spawn_watchdog(pid: Option<u32>, dir: &Path) -> Child {
    const SCRIPT: &str = r#"
        t=$1; p=$2; d=$3
        while kill -0 "$t" 2>/dev/null; do sleep 0.5; done
        if [ "$p" != 0 ]; then
            kill -CONT "$p" 2>/dev/null
            kill -KILL "$p" 2>/dev/null
            # let the kernel release the files before removing them
            i=0
            while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        fi
        rm -rf "$d"
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("thrudoc-mariadb-watchdog")
        .arg(std::process::id().to_string())
        .arg(pid.unwrap_or(0).to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the watchdog shell")
}

/// A port on 127.0.0.1 that was free a moment ago. Another process may take it before
/// `mariadbd` binds it; [`MariaDb::start`] then retries with another.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The running process and what must be cleaned up with it.
struct Proc {
    child: Child,
    watchdog: Child,
}

#[derive(Default)]
struct State {
    /// `None` while the server is down (after [`MariaDb::kill9`] or [`MariaDb::shutdown`]).
    proc: Option<Proc>,
    stopped: bool,
    /// `--option=value` settings added after start (e.g. by [`enable_semisync`]) so that a
    /// restart keeps them, as an option file would.
    extra_args: Vec<String>,
}

/// Why one attempt to bring `mariadbd` up failed.
enum SpawnError {
    /// The port was taken: worth retrying.
    Bind,
    /// Anything else: the message holds the tail of error.log.
    Other(String),
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A free port of 127.0.0.1.
    Loopback,
    /// Port 3306 of `ip` in network namespace `ns` (made by the caller), so that faults can
    /// cut its network paths one by one. SQL of the harness goes through the server's unix
    /// socket, which no network fault reaches.
    Namespace { ns: String, ip: String },
}

/// One `mariadbd` process with its own temporary data directory, listening on a free port of
/// 127.0.0.1 (or in a network namespace), with binary logging and GTIDs on (GTID domain id =
/// server id). Root has an empty password; the user `repl`@`%` with password `repl` may
/// replicate. Dropping it kills the server and removes the directory.
pub struct MariaDb {
    server_id: u32,
    place: Place,
    port: u16,
    /// Holds `data/` (the datadir), `sock`, `pid` and `error.log`.
    dir: tempfile::TempDir,
    state: Mutex<State>,
}

impl MariaDb {
    /// Starts a server with `server_id` (also its GTID domain id; odd ids get
    /// `auto_increment_offset` 1, even ids 2, with increment 2, so the two masters of a pair
    /// never hand out the same auto-increment value) and waits until it answers `SELECT 1`.
    /// Panics with the tail of its error log if it is not ready within [`READY_DEADLINE`].
    pub fn start(server_id: u32) -> MariaDb {
        Self::start_in(server_id, Place::Loopback)
    }

    /// [`MariaDb::start`] at `place`.
    pub fn start_in(server_id: u32, place: Place) -> MariaDb {
        assert!(server_id > 0, "server id 0 disables replication");
        let started = Instant::now();
        let template = template();
        let dir = tempfile::Builder::new()
            .prefix(&format!("thrudoc-mariadb-{server_id}-"))
            .tempdir()
            .expect("temporary directory for mariadbd");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(dir.path().join("data"))
            .status()
            .expect("run cp");
        assert!(
            status.success(),
            "cp -a of the template data directory failed"
        );
        let mut db = MariaDb {
            server_id,
            place,
            port: 0,
            dir,
            state: Mutex::new(State::default()),
        };
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            db.port = match db.place {
                Place::Loopback => free_port(),
                // Alone in its namespace: the port is its own.
                Place::Namespace { .. } => 3306,
            };
            match db.spawn_and_wait() {
                Ok(()) => {
                    eprintln!(
                        "mariadb harness: server {server_id} ready on {} in {:?}",
                        db.addr(),
                        started.elapsed()
                    );
                    return db;
                }
                Err(SpawnError::Bind) if attempt < ATTEMPTS => continue,
                Err(SpawnError::Bind) => {
                    panic!("mariadbd {server_id} could not bind a port in {ATTEMPTS} attempts")
                }
                Err(SpawnError::Other(message)) => panic!("{message}"),
            }
        }
        unreachable!()
    }

    /// The TCP port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `127.0.0.1`, or its namespace's.
    pub fn host(&self) -> &str {
        match &self.place {
            Place::Loopback => "127.0.0.1",
            Place::Namespace { ip, .. } => ip,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host(), self.port)
    }

    /// The server id given to [`MariaDb::start`].
    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// The temporary directory holding everything of this server: `data/` (the datadir),
    /// `sock`, `pid` and `error.log`. Removed when the server is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory of the server.
    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's error log (kept across restarts).
    pub fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// The last `lines` lines of the error log, for failure messages.
    pub fn error_log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.error_log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// True when the server process should run (it was not killed or shut down by the
    /// harness) but has exited: it crashed.
    pub fn crashed(&self) -> bool {
        let mut state = self.lock();
        match state.proc.as_mut() {
            Some(proc) => proc.child.try_wait().ok().flatten().is_some(),
            None => false,
        }
    }

    /// Whether the server's process exits (or has exited) within `limit`.
    fn exits_within(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.crashed() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The process id of the running server, `None` while it is down.
    pub fn pid(&self) -> Option<u32> {
        self.lock().proc.as_ref().map(|p| p.child.id())
    }

    /// Runs `q` (one or more statements) and returns the rows of the last result, each a vector
    /// of its fields as `mariadb --batch` prints them (NULL as `NULL`; tab, newline and backslash
    /// escaped as `\t`, `\n`, `\\`). Panics with the client's error text on failure.
    pub fn sql(&self, q: &str) -> Vec<Vec<String>> {
        self.try_sql(q).unwrap_or_else(|e| {
            panic!(
                "SQL on server {} ({}) failed: {e}\nstatement: {q}",
                self.server_id,
                self.addr()
            )
        })
    }

    /// Like [`MariaDb::sql`] but returns the client's error text (or a timeout) instead of
    /// panicking.
    pub fn try_sql(&self, q: &str) -> Result<Vec<Vec<String>>, String> {
        self.try_sql_timeout(q, SQL_TIMEOUT)
    }

    /// Like [`MariaDb::try_sql`] with a process deadline of `timeout`: the client is killed and
    /// an error returned once it passes, so even a SIGSTOPped server cannot hang a test.
    pub fn try_sql_timeout(&self, q: &str, timeout: Duration) -> Result<Vec<Vec<String>>, String> {
        let out = self.client(q, timeout, &["--skip-column-names"])?;
        Ok(out.lines().map(split_fields).collect())
    }

    /// Runs `q` and returns each row of the last result as a map from column name to field.
    pub fn sql_named(&self, q: &str) -> Vec<HashMap<String, String>> {
        let out = self.client(q, SQL_TIMEOUT, &[]).unwrap_or_else(|e| {
            panic!(
                "SQL on server {} failed: {e}\nstatement: {q}",
                self.server_id
            )
        });
        let mut lines = out.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let names = split_fields(header);
        lines
            .map(|line| names.iter().cloned().zip(split_fields(line)).collect())
            .collect()
    }

    /// The value of global status variable `name` (e.g. `Rpl_semi_sync_master_status`).
    pub fn status_var(&self, name: &str) -> Option<String> {
        let rows = self.sql(&format!("SHOW GLOBAL STATUS LIKE '{name}'"));
        rows.into_iter()
            .next()
            .and_then(|row| row.into_iter().nth(1))
    }

    fn client(&self, q: &str, timeout: Duration, extra: &[&str]) -> Result<String, String> {
        // The connect timeout is in whole seconds and at least 1.
        let connect = timeout.as_secs().clamp(1, 5);
        let mut child = Command::new(tool(CLIENT))
            // Never read ~/.my.cnf or /etc/mysql: a password or socket there is not ours.
            .arg("--no-defaults")
            .args(match &self.place {
                Place::Loopback => vec![
                    "--protocol=TCP".to_string(),
                    format!("-h{}", self.host()),
                    format!("-P{}", self.port),
                ],
                Place::Namespace { .. } => vec![
                    "--protocol=SOCKET".to_string(),
                    format!("--socket={}", self.dir.path().join("sock").display()),
                ],
            })
            .arg("-uroot")
            .arg("--batch")
            .arg(format!("--connect-timeout={connect}"))
            .args(extra)
            .arg("-e")
            .arg(q)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn mariadb client: {e}"))?;
        // Read both pipes on threads: a result larger than a pipe buffer would otherwise block
        // the client while we wait for it.
        let stdout = read_on_thread(child.stdout.take().expect("stdout"));
        let stderr = read_on_thread(child.stderr.take().expect("stderr"));
        let start = Instant::now();
        let status = loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => break Some(status),
                None if start.elapsed() >= timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        match status {
            None => Err(format!("mariadb client timed out after {timeout:?}")),
            Some(status) if status.success() => Ok(stdout),
            Some(status) => Err(format!("{} ({status})", stderr.trim())),
        }
    }

    /// Kills the server with SIGKILL, as a crash would; it stays down until
    /// [`MariaDb::restart`]. The data directory is kept.
    pub fn kill9(&self) {
        let mut state = self.lock();
        let proc = state.proc.take().expect("kill9: server is not running");
        state.stopped = false;
        end(proc, None);
    }

    /// Freezes the server with SIGSTOP: its port still accepts connections but nothing answers.
    pub fn stop(&self) {
        let mut state = self.lock();
        let pid = state
            .proc
            .as_ref()
            .expect("stop: server is not running")
            .child
            .id();
        signal(pid, "STOP");
        state.stopped = true;
    }

    /// Resumes a server frozen by [`MariaDb::stop`] with SIGCONT.
    pub fn cont(&self) {
        let mut state = self.lock();
        let pid = state
            .proc
            .as_ref()
            .expect("cont: server is not running")
            .child
            .id();
        signal(pid, "CONT");
        state.stopped = false;
    }

    /// Shuts the server down cleanly (SIGTERM) and waits for it to exit; it stays down until
    /// [`MariaDb::restart`].
    pub fn shutdown(&self) {
        let mut state = self.lock();
        let proc = state.proc.take().expect("shutdown: server is not running");
        state.stopped = false;
        end(proc, Some(Duration::from_secs(60)));
    }

    /// Gives the server a TLS certificate and key (PEM, `--ssl-cert`, `--ssl-key`) and the CAs
    /// of its clients (`--ssl-ca`), and restarts it to take them; later restarts keep them.
    pub fn enable_tls(&self, cert: &Path, key: &Path, ca: &Path) {
        {
            let mut state = self.lock();
            state.extra_args.retain(|arg| !arg.starts_with("--ssl"));
            state.extra_args.extend([
                format!("--ssl-cert={}", cert.display()),
                format!("--ssl-key={}", key.display()),
                format!("--ssl-ca={}", ca.display()),
            ]);
        }
        self.kill9();
        self.restart();
    }

    /// Starts the server again after [`MariaDb::kill9`] or [`MariaDb::shutdown`], on the same
    /// port and data directory, and waits until it is ready. Replication it had resumes (see
    /// [`MariaDb::resume_replication`]): the settings are on the command line and the
    /// replication state is in the data directory.
    pub fn restart(&self) {
        assert!(
            self.lock().proc.is_none(),
            "restart: server {} is running",
            self.server_id
        );
        let started = Instant::now();
        for attempt in 1.. {
            // The port may be held for a moment (e.g. by an outgoing connection that got it as
            // its ephemeral port); the port cannot change, so wait for it.
            loop {
                match self.spawn_and_wait() {
                    Ok(()) => break,
                    Err(SpawnError::Bind) if started.elapsed() < READY_DEADLINE => {
                        std::thread::sleep(Duration::from_millis(500))
                    }
                    Err(SpawnError::Bind) => panic!(
                        "server {}: port {} stayed taken for {READY_DEADLINE:?}",
                        self.server_id, self.port
                    ),
                    Err(SpawnError::Other(message)) => panic!("{message}"),
                }
            }
            match self.resume_replication() {
                Ok(()) => break,
                // A fresh-clone CI run saw mariadbd go away under START SLAVE right after a
                // restart, both hosts of the pair restarting at once. That is MariaDB's, not
                // the code under test's: said loudly, with its log, and started again (at most
                // twice).
                Err(e) if attempt < 3 && self.exits_within(Duration::from_secs(3)) => {
                    eprintln!(
                        "mariadb harness: server {} died resuming replication ({e}); its log:\n{}\n\
                         mariadb harness: starting it again",
                        self.server_id,
                        self.error_log_tail(30)
                    );
                    let proc = self.lock().proc.take();
                    if let Some(proc) = proc {
                        end(proc, None);
                    }
                }
                Err(e) => panic!(
                    "server {}: resuming replication after a restart failed: {e}\nits log:\n{}",
                    self.server_id,
                    self.error_log_tail(30)
                ),
            }
        }
        eprintln!(
            "mariadb harness: server {} restarted in {:?}",
            self.server_id,
            started.elapsed()
        );
    }

    /// Starts replication again after a restart, if the server had a master, from what its
    /// binary log holds. A kill -9 between binlogging a replicated DDL statement (a trigger, a
    /// rename: not transactional) and recording it in `mysql.gtid_slave_pos` leaves the applied
    /// position behind the binary log; the applier would then run that statement again and
    /// stop on GTID strict mode's out-of-order check (seen in CI: "An attempt was made to binlog
    /// GTID 2-2-1408 which would create an out-of-order sequence number"). So every other
    /// server's domain starts at the later of the two. The server's own domain is left as it
    /// is: its master may not have all of it yet.
    fn resume_replication(&self) -> Result<(), String> {
        if self.try_sql("SHOW SLAVE STATUS")?.is_empty() {
            return Ok(());
        }
        let rows = self.try_sql("SELECT @@gtid_binlog_pos, @@gtid_slave_pos")?;
        let row = rows.first().expect("one row");
        let own = self.server_id;
        let parse =
            |text: &str| GtidPos::parse(text).unwrap_or_else(|e| panic!("server {own}: {e}"));
        let mut pos = parse(&row[1]);
        // The binary log's own domain is what this server wrote, not what it applied.
        for g in parse(&row[0]).0.into_iter().filter(|g| g.domain != own) {
            pos.raise(g);
        }
        // Strict mode refuses a position that leaves out a domain of the binary log (the
        // server's own): off for the one statement.
        self.try_sql(&format!(
            "SET @strict = @@GLOBAL.gtid_strict_mode; SET GLOBAL gtid_strict_mode = 0; \
             SET GLOBAL gtid_slave_pos = '{}'; SET GLOBAL gtid_strict_mode = @strict; \
             START SLAVE;",
            if pos.is_empty() {
                String::new()
            } else {
                pos.to_string()
            }
        ))
        .map(|_| ())
    }

    /// Spawns `mariadbd` on `self.port` and polls until it is ready.
    fn spawn_and_wait(&self) -> Result<(), SpawnError> {
        let dir = self.dir.path();
        let datadir = self.datadir();
        let log = self.error_log();
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(|e| SpawnError::Other(format!("create {}: {e}", tmp.display())))?;
        // Only what this attempt writes to the (appended) log tells why it failed.
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let extra_args = self.lock().extra_args.clone();
        let id = self.server_id;
        let mut command = match &self.place {
            Place::Loopback => Command::new(tool(MARIADBD)),
            Place::Namespace { ns, .. } => {
                // `ip netns exec` execs the server: the child's pid is the server's.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(tool(MARIADBD));
                c
            }
        };
        let child = command
            .arg("--no-defaults")
            .args(user_arg())
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--bind-address={}", self.host()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            // Temporary tables in a directory of its own, not the shared /tmp (CI saw a
            // server's internal temporary table vanish from /tmp under a query).
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--server-id={id}"))
            .arg(format!("--gtid-domain-id={id}"))
            // Explicit names: the defaults derive from the host name.
            .arg("--log-bin=mariadb-bin")
            .arg("--relay-log=relay-bin")
            .arg("--log-slave-updates")
            // After a crash, throw the relay log away and fetch again from the master's
            // binary log at the GTID position applied: a relay log that the crash left
            // behind its index otherwise keeps replication from starting at all
            // ("Failed to open the relay log", seen in the chaos run).
            .arg("--relay-log-recovery=ON")
            // Replication starts only once `restart` has mended the applied position.
            .arg("--skip-slave-start")
            .arg("--binlog-format=ROW")
            .arg("--gtid-strict-mode=1")
            // A dead master is noticed after this many seconds, and a restarted one reconnected
            // to within MASTER_CONNECT_RETRY; on the command line so that it survives restarts.
            .arg("--slave-net-timeout=5")
            .arg("--skip-name-resolve")
            .args(INNODB_SIZES)
            .arg("--skip-performance-schema")
            .arg("--innodb-temp-data-file-path=ibtmp1:1M:autoextend")
            // Durability stays on: the failover tests depend on what kill -9 keeps.
            .arg("--innodb-flush-log-at-trx-commit=1")
            .arg("--auto-increment-increment=2")
            .arg(format!(
                "--auto-increment-offset={}",
                if id % 2 == 1 { 1 } else { 2 }
            ))
            .args(&extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C for cargo test reaches neither it nor its
            // watchdog, which then cleans up as it does after any other end of the test.
            .process_group(0)
            .spawn()
            .map_err(|e| SpawnError::Other(format!("spawn mariadbd: {e}")))?;
        let watchdog = spawn_watchdog(Some(child.id()), dir);
        self.lock().proc = Some(Proc { child, watchdog });

        let want_datadir = std::fs::canonicalize(&datadir).unwrap_or(datadir);
        let start = Instant::now();
        loop {
            let exited = {
                let mut state = self.lock();
                let proc = state.proc.as_mut().expect("spawned");
                proc.child.try_wait().ok().flatten()
            };
            if let Some(status) = exited {
                // Already reaped: only the watchdog is left to end.
                let mut proc = self.lock().proc.take().expect("spawned");
                let _ = proc.watchdog.kill();
                let _ = proc.watchdog.wait();
                let text = std::fs::read(&log).unwrap_or_default();
                let new = String::from_utf8_lossy(&text[(log_start as usize).min(text.len())..])
                    .into_owned();
                if new.contains("Bind on TCP/IP port") || new.contains("Address already in use") {
                    return Err(SpawnError::Bind);
                }
                return Err(SpawnError::Other(format!(
                    "mariadbd {id} exited during start ({status}); end of {}:\n{}",
                    log.display(),
                    self.error_log_tail(40)
                )));
            }
            // Ask for the datadir: a server answering on our port is not necessarily ours (the
            // port may have been taken by another server between picking and binding it).
            let last_error = match self.try_sql_timeout("SELECT @@datadir", Duration::from_secs(5))
            {
                Ok(rows) => {
                    let got = rows
                        .first()
                        .and_then(|r| r.first())
                        .cloned()
                        .unwrap_or_default();
                    let got = PathBuf::from(got.trim_end_matches('/'));
                    let got = std::fs::canonicalize(&got).unwrap_or(got);
                    if got == want_datadir {
                        return Ok(());
                    }
                    // Someone else's server: ours will fail to bind and exit.
                    format!("port answered by a server with datadir {got:?}")
                }
                Err(e) => e,
            };
            if start.elapsed() > READY_DEADLINE {
                let proc = self.lock().proc.take().expect("spawned");
                end(proc, None);
                return Err(SpawnError::Other(format!(
                    "mariadbd {id} on port {} was not ready within {READY_DEADLINE:?} (last \
                     error: {last_error}); end of {}:\n{}",
                    self.port,
                    log.display(),
                    self.error_log_tail(40)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not stop Drop from killing the server.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(proc) = self.lock().proc.take() {
            end(proc, None);
        }
        // The TempDir field then removes the directory.
    }
}

/// Ends a server process: with `graceful`, SIGTERM and wait up to that long (then SIGKILL);
/// without, SIGKILL at once. SIGCONT first, in case it was stopped. The watchdog is killed while
/// the server is still a zombie, so it can neither miss a server that is still running nor kill
/// a process that reused the pid.
fn end(mut proc: Proc, graceful: Option<Duration>) {
    let pid = proc.child.id();
    signal_quiet(pid, "CONT");
    match graceful {
        Some(deadline) => {
            signal_quiet(pid, "TERM");
            // The server exits by itself now; the watchdog is no longer needed.
            let _ = proc.watchdog.kill();
            let _ = proc.watchdog.wait();
            let start = Instant::now();
            loop {
                if let Ok(Some(_)) = proc.child.try_wait() {
                    return;
                }
                if start.elapsed() > deadline {
                    let _ = proc.child.kill();
                    let _ = proc.child.wait();
                    panic!("mariadbd {pid} did not shut down within {deadline:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None => {
            let _ = proc.child.kill();
            let _ = proc.watchdog.kill();
            let _ = proc.watchdog.wait();
            let _ = proc.child.wait();
        }
    }
}

/// Sends `kill -<sig> pid`, panicking if it fails.
fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Sends `kill -<sig> pid`, ignoring failure (the process may already be gone).
fn signal_quiet(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn read_on_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn split_fields(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

/// Joins `a` and `b` into a master-master pair: each replicates from the other with GTIDs
/// (`MASTER_USE_GTID=slave_pos`, retrying the connection every second). Waits until both
/// servers' IO and SQL threads run, panicking after [`PAIR_DEADLINE`].
pub fn pair(a: &MariaDb, b: &MariaDb) {
    for (slave, master) in [(a, b), (b, a)] {
        slave.sql(&format!(
            "SET GLOBAL slave_net_timeout = 5; \
             CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='repl', \
             MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; \
             START SLAVE;",
            master.host(),
            master.port()
        ));
    }
    wait_slave_running(a, PAIR_DEADLINE);
    wait_slave_running(b, PAIR_DEADLINE);
}

/// Waits until `db`'s replication IO and SQL threads both run, panicking with the replication
/// status after `deadline`.
pub fn wait_slave_running(db: &MariaDb, deadline: Duration) {
    let start = Instant::now();
    loop {
        let status = replication_status(db);
        if status.0 && status.1 {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "replication on server {} did not run within {deadline:?}: (io, sql, behind, error) \
             = {status:?}",
            db.server_id()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `to` has applied every transaction in `from`'s binary log (those that came from
/// `to` itself excepted), panicking after `deadline`.
pub fn wait_replicated(from: &MariaDb, to: &MariaDb, deadline: Duration) {
    let pos = from.sql("SELECT @@gtid_binlog_pos");
    let pos = pos
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default();
    let wanted = GtidPos::parse(&pos)
        .unwrap_or_else(|e| panic!("server {}: {e}", from.server_id()))
        .without_server(to.server_id());
    if wanted.is_empty() {
        return;
    }
    let wanted = wanted.to_string();
    let secs = deadline.as_secs_f64();
    let result = to.try_sql_timeout(
        &format!("SELECT MASTER_GTID_WAIT('{wanted}', {secs})"),
        deadline + Duration::from_secs(10),
    );
    match result
        .as_ref()
        .ok()
        .and_then(|rows| rows.first()?.first().cloned())
    {
        Some(value) if value == "0" => {}
        _ => panic!(
            "server {} did not apply {wanted} of server {} within {deadline:?} ({result:?}); its \
             replication status (io, sql, behind, error): {:?}",
            to.server_id(),
            from.server_id(),
            replication_status(to)
        ),
    }
}

/// The replication state of `db` from `SHOW SLAVE STATUS`: whether the IO thread and the SQL
/// thread run, `Seconds_Behind_Master` (`None` when NULL), and the last IO and SQL errors
/// joined by `"; "` (empty when none). A server that replicates from nobody gives
/// `(false, false, None, "")`.
pub fn replication_status(db: &MariaDb) -> (bool, bool, Option<u64>, String) {
    let rows = db.sql_named("SHOW SLAVE STATUS");
    let Some(row) = rows.into_iter().next() else {
        return (false, false, None, String::new());
    };
    let field = |name: &str| row.get(name).map(String::as_str).unwrap_or("");
    let errors: Vec<&str> = ["Last_IO_Error", "Last_SQL_Error"]
        .into_iter()
        .map(field)
        .filter(|e| !e.is_empty())
        .collect();
    (
        field("Slave_IO_Running") == "Yes",
        field("Slave_SQL_Running") == "Yes",
        field("Seconds_Behind_Master").parse().ok(),
        errors.join("; "),
    )
}

/// Turns on semi-synchronous replication both ways between the paired `a` and `b`: a commit
/// waits for the peer's acknowledgement up to `master_timeout`, then falls back to asynchronous
/// replication. Restarts the IO threads so that they register as semi-sync slaves, and keeps the
/// settings for [`MariaDb::restart`]. Waits until each master counts one semi-sync client.
pub fn enable_semisync(a: &MariaDb, b: &MariaDb, master_timeout: Duration) {
    let millis = master_timeout.as_millis();
    for db in [a, b] {
        db.sql(&format!(
            "SET GLOBAL rpl_semi_sync_master_enabled = ON; \
             SET GLOBAL rpl_semi_sync_slave_enabled = ON; \
             SET GLOBAL rpl_semi_sync_master_timeout = {millis}; \
             STOP SLAVE IO_THREAD; START SLAVE IO_THREAD;"
        ));
        let mut state = db.lock();
        state
            .extra_args
            .retain(|arg| !arg.starts_with("--rpl-semi-sync-"));
        state.extra_args.extend([
            "--rpl-semi-sync-master-enabled=ON".to_string(),
            "--rpl-semi-sync-slave-enabled=ON".to_string(),
            format!("--rpl-semi-sync-master-timeout={millis}"),
        ]);
    }
    for db in [a, b] {
        wait_semisync(db);
    }
}

/// Waits until `db` counts one semi-sync slave and waits for its acknowledgements (after a
/// restart, a master falls back to asynchronous replication until its sibling reconnects).
pub fn wait_semisync(db: &MariaDb) {
    let start = Instant::now();
    while db.status_var("Rpl_semi_sync_master_clients").as_deref() != Some("1")
        || db.status_var("Rpl_semi_sync_master_status").as_deref() != Some("ON")
    {
        assert!(
            start.elapsed() < PAIR_DEADLINE,
            "server {}: no semi-sync slave registered within {PAIR_DEADLINE:?}",
            db.server_id()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Several master-master pairs: `hosts[0]`↔`hosts[1]`, `hosts[2]`↔`hosts[3]`, ... with server ids
/// 1, 2, 3, ... in that order.
pub struct Cluster {
    /// The servers; `hosts[i]` has server id `i + 1`.
    pub hosts: Vec<MariaDb>,
}

impl Cluster {
    /// Starts `2 * n_pairs` servers in parallel and pairs them 1↔2, 3↔4, ...
    pub fn start_pairs(n_pairs: usize) -> Cluster {
        Self::start_pairs_in(vec![Place::Loopback; 2 * n_pairs])
    }

    /// Starts one server at each of `places` (an even number) in parallel, server ids 1, 2,
    /// ... in that order, and pairs them 1↔2, 3↔4, ...
    pub fn start_pairs_in(places: Vec<Place>) -> Cluster {
        assert!(places.len() % 2 == 0, "servers come in pairs");
        let hosts: Vec<MariaDb> = std::thread::scope(|scope| {
            let handles: Vec<_> = places
                .into_iter()
                .enumerate()
                .map(|(i, place)| {
                    let id = u32::try_from(i + 1).expect("server id");
                    scope.spawn(move || MariaDb::start_in(id, place))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for pair_hosts in hosts.chunks(2) {
            pair(&pair_hosts[0], &pair_hosts[1]);
        }
        Cluster { hosts }
    }

    /// The two servers of pair `i` (0-based).
    pub fn pair(&self, i: usize) -> (&MariaDb, &MariaDb) {
        (&self.hosts[2 * i], &self.hosts[2 * i + 1])
    }
}
