//! The `thrudoc-admin` command line: clap definitions, turning flags into the options of each
//! command, and exit codes (0: done; 1: failed; 2: refused, nothing changed: a bad flag, an
//! existing bucket, a conflicting pairing, a login without the rights needed). `verify` has its
//! own: 0 all equal, 1 a partition differs, 2 a host could not be reached.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::create::{self, CreateOptions};
use super::failover::{self, FailoverOptions};
use super::list::{self, ListOptions};
use super::sql::Login;
use super::status::{self, StatusOptions};
use super::switchover::{self, SwitchoverOptions};
use super::verify::{self, VerifyOptions};
use crate::config::{seconds_flag, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::HostAddr;

mod layout;

pub use layout::{
    AddHostsArgs, DrainArgs, GcArgs, MergeArgs, MoveArgs, RebalanceArgs, RemoveHostsArgs,
    ReshapeArgs, SplitArgs,
};

/// Administers the MySQL backend of Thrudoc: buckets, their partitions, and the hosts that hold them.
#[derive(Parser, Debug)]
#[command(name = "thrudoc-admin", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a bucket: schema, directory tables, service account, partitions and datatables.
    ///
    /// Partitions (--parts-per on each host) cover the hash range [0, 1] in equal ranges, handed
    /// to the hosts round robin. With --with-circular-slaves the hosts are paired in the order
    /// given (1<->2, 3<->4, ...) and each datatable is also created on the host's sibling.
    /// Replication itself is not set up here; its state is checked and reported. An existing
    /// bucket is refused.
    CreateTablename(CreateArgs),
    /// List the buckets of the directory, or one bucket's partitions with --tablename.
    List(ListArgs),
    /// Show every host: reachable or not, how it replicates, how many partitions it holds.
    ///
    /// Exits 0 even when hosts are down (that is what it reports); fails only when the
    /// directory itself cannot be read.
    Status(StatusArgs),
    /// Make a master's sibling the master of all its partitions (unplanned failover).
    ///
    /// When the host answers, it is fenced first (SET GLOBAL read_only = ON: the service account
    /// can write nothing more there) and the sibling must apply everything it committed; when it
    /// does not answer, the sibling must apply everything it received from it (writes the host
    /// acknowledged but never sent are lost unless semi-synchronous replication was on). A
    /// sibling that does not catch up within --catch-up-timeout is refused unless --force. Then
    /// one directory transaction moves the partitions and records their home in
    /// partition_moved. The host must stay read_only until `switchover` returns them.
    Failover(FailoverArgs),
    /// Return the partitions a failover moved off a host to it (planned).
    ///
    /// The host must answer and replicate from its sibling. The partitions are frozen (servers
    /// refuse their writes); after --lease-ms + --query-timeout-ms + --margin-ms every server
    /// has stopped writing them; once the host has applied everything the sibling committed it
    /// is made writable (read_only = OFF) and one directory transaction moves the partitions
    /// back. If the host does not catch up in time, the partitions are unfrozen and stay where
    /// they are. Writes to them are refused for the duration.
    Switchover(SwitchoverArgs),
    /// Compare each partition of a bucket on its master and its sibling (rows and CHECKSUM TABLE).
    ///
    /// Waits for the sibling to apply what the master committed first. Exits 0 when every
    /// partition is equal, 1 when any differs (listed), 2 when a host cannot be reached.
    Verify(VerifyArgs),
    /// Register data hosts in the directory, to grow the backend onto them.
    ///
    /// Each host gets the schema and the service account (as create-tablename does); with
    /// --with-circular-slaves they are paired in the order given. Replication between the
    /// siblings is checked and reported, not set up. Safe to run again.
    AddHosts(AddHostsArgs),
    /// Take data hosts out of the directory; refused while any partition is on them.
    RemoveHosts(RemoveHostsArgs),
    /// Move a partition to another host while servers read and write it.
    ///
    /// Its rows are copied to a new table on --to (whose sibling holds the copy), every write
    /// meanwhile is captured and applied, the copy is compared with the source, and a cutover
    /// of well under a second (writes wait, reads go on) makes the new table the partition's.
    /// Run again after an interruption, it resumes; with --abort, it undoes the move.
    Move(MoveArgs),
    /// Split a partition in two while servers read and write it (as `move` does).
    ///
    /// The hash range is cut at --at (default: where half the rows fall); the lower part stays
    /// on the partition's host, the upper part goes to --to (default: the same host).
    Split(SplitArgs),
    /// Merge two neighbouring partitions into one while servers read and write them.
    Merge(MergeArgs),
    /// Plan (and with --execute, carry out) the splits and moves that give every host an even
    /// share of a bucket's rows.
    ///
    /// Prints the plan (partition, rows, from, to, step). With --execute, takes the steps one at
    /// a time, planning again after each; killed, it resumes where it was when run again.
    Rebalance(RebalanceArgs),
    /// Move every partition off a host and its sibling, onto the other hosts (to shrink the
    /// backend or retire a machine); then `remove-hosts` takes the pair out.
    Drain(DrainArgs),
    /// Drop the tables of partitions retired by moves, splits and merges longer ago than
    /// --older-than, and forget reshapes finished that long ago.
    Gc(GcArgs),
}

/// How to reach the directory master as root; shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Host of the directory master.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub master_hostname: String,
    /// Port of the directory master.
    #[arg(long, value_name = "PORT", default_value_t = 3306)]
    pub master_port: u16,
    /// Schema of the directory tables (and of the datatables on every host).
    #[arg(long, value_name = "DB", default_value = "thrudoc")]
    pub database: String,
    /// Administrative account used on every host.
    #[arg(long, value_name = "USER", default_value = "root")]
    pub root_user: String,
    /// Password of --root-user (default: empty). Visible to other local users in the process
    /// list: prefer --root-pass-file.
    #[arg(long, value_name = "PASSWORD", value_parser = secret, conflicts_with = "root_pass_file")]
    pub root_pass: Option<Secret>,
    /// File whose first line is the password of --root-user.
    #[arg(long, value_name = "FILE")]
    pub root_pass_file: Option<PathBuf>,
    /// Seconds to wait for a connection (TCP and login) to any host.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds_flag)]
    pub connect_timeout: Duration,
    /// Seconds to wait for any one statement.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds_flag)]
    pub query_timeout: Duration,
}

/// Flags of `create-tablename`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The bucket to create (1 to 64 letters, digits, `_` and `-`).
    #[arg(long, value_name = "BUCKET")]
    pub tablename: String,
    /// Data hosts, comma-separated `HOST[:PORT]` (port 3306 by default). Default: the master.
    #[arg(long, value_name = "H1:P1,H2:P2,...")]
    pub hosts: Option<String>,
    /// Partitions on each host (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub parts_per: u32,
    /// Pair the hosts in the order given (1<->2, 3<->4, ...) as each other's sibling; needs an
    /// even number of hosts.
    #[arg(long, alias = "with-circular-replication")]
    pub with_circular_slaves: bool,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The service account of `create-tablename` and `add-hosts`.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Service account the Thrudoc servers log in with; created on every host and granted
    /// SELECT, INSERT, UPDATE, DELETE on the schema.
    #[arg(long, value_name = "USER", default_value = "thrudoc")]
    pub user: String,
    /// Password of the service account (default: empty). Prefer --pass-file.
    #[arg(long, value_name = "PASSWORD", value_parser = secret, conflicts_with = "pass_file")]
    pub pass: Option<Secret>,
    /// File whose first line is the password of the service account.
    #[arg(long, value_name = "FILE")]
    pub pass_file: Option<PathBuf>,
}

impl ServiceArgs {
    fn password(&self) -> Result<Secret> {
        password("pass", &self.pass, &self.pass_file)
    }
}

/// Where `list` and `status` may read the directory when its master does not answer: its
/// sibling, as a server's MYSQL_SLAVE_HOST/MYSQL_SLAVE_PORT.
#[derive(Args, Debug, Clone)]
pub struct SiblingArgs {
    /// Host of the directory master's sibling, read when the master cannot be reached.
    #[arg(long, value_name = "HOST")]
    pub slave_hostname: Option<String>,
    /// Port of the directory master's sibling.
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 3306,
        requires = "slave_hostname"
    )]
    pub slave_port: u16,
}

impl SiblingArgs {
    fn sibling(&self) -> Result<Option<HostAddr>> {
        self.slave_hostname
            .as_deref()
            .map(|host| {
                HostAddr::new(host, self.slave_port)
                    .map_err(|e| e.context("--slave-hostname/--slave-port"))
            })
            .transpose()
    }
}

/// Flags of `list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub sibling: SiblingArgs,
    /// Also show this bucket's partitions.
    #[arg(long, value_name = "BUCKET")]
    pub tablename: Option<String>,
}

/// Flags of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub sibling: SiblingArgs,
    /// Seconds one host's probe (connect, SELECT 1, SHOW ALL SLAVES STATUS) may take before the host
    /// counts as unreachable.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds_flag)]
    pub probe_timeout: Duration,
}

/// Flags of `failover`.
#[derive(Args, Debug)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The master whose partitions move to its sibling, as the directory records it.
    #[arg(long, value_name = "HOST:PORT")]
    pub host: String,
    /// Promote the sibling even when it has not applied everything of the host within
    /// --catch-up-timeout, or the host answers but cannot be fenced.
    #[arg(long)]
    pub force: bool,
    /// Seconds the sibling may take to apply what the host committed (or, when the host is
    /// down, what it received from it).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds_flag)]
    pub catch_up_timeout: Duration,
    /// Seconds the host gets to answer before it counts as unreachable (and is not fenced).
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds_flag)]
    pub probe_timeout: Duration,
}

/// Flags of `switchover`.
#[derive(Args, Debug)]
pub struct SwitchoverArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The home host that takes back the partitions a failover moved off it.
    #[arg(long, value_name = "HOST:PORT")]
    pub host: String,
    /// The servers' MYSQL_DIRECTORY_LEASE_MS: a server that cannot read the directory for this
    /// long stops writing.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub lease_ms: u64,
    /// The servers' MYSQL_QUERY_TIMEOUT_MS: how long a write already sent may still run (not
    /// this tool's --query-timeout).
    #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub query_timeout_ms: u64,
    /// Added to the wait after the freeze: the servers' MYSQL_CONNECT_TIMEOUT_MS and slack.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub margin_ms: u64,
    /// Seconds the host may take to apply everything its sibling committed; past it the
    /// partitions are unfrozen and stay on the sibling.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds_flag)]
    pub catch_up_timeout: Duration,
}

/// Flags of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The bucket whose partitions are compared.
    #[arg(long, value_name = "BUCKET")]
    pub tablename: String,
    /// Only this partition (its directory id, as `list --tablename` shows).
    #[arg(long, value_name = "ID")]
    pub partition: Option<u64>,
    /// Seconds a sibling may take to apply what its master committed, per partition.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds_flag)]
    pub catch_up_timeout: Duration,
    /// Times a difference is compared again (after the sibling catches up once more) before it
    /// is reported: writes in flight make copies differ for a moment.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
}

fn secret(value: &str) -> std::result::Result<Secret, String> {
    Ok(Secret::new(value))
}

/// The password from `inline` or the first line of `file` (not both; clap already refuses
/// that), empty when neither is given.
fn password(flag: &str, inline: &Option<Secret>, file: &Option<PathBuf>) -> Result<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "give --{flag} or --{flag}-file, not both"
        ))),
        (Some(p), None) => Ok(p.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!("--{flag}-file: cannot read {}", path.display()))
                    .with_source(e)
            })?;
            Ok(Secret::new(text.lines().next().unwrap_or_default()))
        }
        (None, None) => Ok(Secret::default()),
    }
}

impl ConnectionArgs {
    fn master(&self) -> Result<HostAddr> {
        HostAddr::new(&self.master_hostname, self.master_port)
            .map_err(|e| e.context("--master-hostname/--master-port"))
    }

    fn login(&self) -> Result<Login> {
        Ok(Login {
            user: self.root_user.clone(),
            password: password("root-pass", &self.root_pass, &self.root_pass_file)?,
            connect_timeout: self.connect_timeout,
            query_timeout: self.query_timeout,
        })
    }
}

impl CreateArgs {
    /// The options of [`create::run`]; only flag syntax is checked here, the rest in
    /// [`CreateOptions::validate`].
    pub fn options(&self) -> Result<CreateOptions> {
        let master = self.connection.master()?;
        let hosts = match &self.hosts {
            Some(list) => HostAddr::parse_list(list)?,
            None => vec![master.clone()],
        };
        Ok(CreateOptions {
            master,
            database: self.connection.database.clone(),
            root: self.connection.login()?,
            tablename: self.tablename.clone(),
            hosts,
            parts_per: self.parts_per,
            circular: self.with_circular_slaves,
            service_user: self.service.user.clone(),
            service_password: self.service.password()?,
        })
    }
}

impl Cli {
    /// Runs the command, writing its report to `out`; the exit status when it did not fail.
    pub async fn run(&self, out: &mut dyn Write) -> Result<u8> {
        let tty = std::io::stdout().is_terminal();
        match &self.command {
            Command::CreateTablename(args) => {
                create::run(&args.options()?, out).await?;
            }
            Command::List(args) => {
                let opts = ListOptions {
                    master: args.connection.master()?,
                    sibling: args.sibling.sibling()?,
                    database: args.connection.database.clone(),
                    root: args.connection.login()?,
                    tablename: args.tablename.clone(),
                };
                list::run(&opts, out).await?;
            }
            Command::Status(args) => {
                let opts = StatusOptions {
                    master: args.connection.master()?,
                    sibling: args.sibling.sibling()?,
                    database: args.connection.database.clone(),
                    root: args.connection.login()?,
                    probe_timeout: args.probe_timeout,
                };
                status::run(&opts, out).await?;
            }
            Command::Failover(args) => {
                let opts = FailoverOptions {
                    master: args.connection.master()?,
                    database: args.connection.database.clone(),
                    root: args.connection.login()?,
                    host: HostAddr::parse(&args.host).map_err(|e| e.context("--host"))?,
                    force: args.force,
                    catch_up_timeout: args.catch_up_timeout,
                    probe_timeout: args.probe_timeout,
                    tty,
                };
                failover::failover(&opts, out).await?;
            }
            Command::Switchover(args) => {
                let opts = SwitchoverOptions {
                    master: args.connection.master()?,
                    database: args.connection.database.clone(),
                    root: args.connection.login()?,
                    host: HostAddr::parse(&args.host).map_err(|e| e.context("--host"))?,
                    lease: Duration::from_millis(args.lease_ms),
                    server_query_timeout: Duration::from_millis(args.query_timeout_ms),
                    margin: Duration::from_millis(args.margin_ms),
                    catch_up_timeout: args.catch_up_timeout,
                    tty,
                };
                switchover::switchover(&opts, out).await?;
            }
            Command::AddHosts(args) => args.run(out).await?,
            Command::RemoveHosts(args) => args.run(out).await?,
            Command::Move(args) => args.run(tty, out).await?,
            Command::Split(args) => args.run(tty, out).await?,
            Command::Merge(args) => args.run(tty, out).await?,
            Command::Rebalance(args) => args.run(tty, out).await?,
            Command::Drain(args) => args.run(tty, out).await?,
            Command::Gc(args) => args.run(out).await?,
            Command::Verify(args) => {
                let opts = VerifyOptions {
                    master: args.connection.master()?,
                    database: args.connection.database.clone(),
                    root: args.connection.login()?,
                    tablename: args.tablename.clone(),
                    partition: args.partition,
                    catch_up_timeout: args.catch_up_timeout,
                    retries: args.retries,
                    tty,
                };
                return Ok(verify::run(&opts, out).await?.exit_code());
            }
        }
        Ok(0)
    }

    /// The exit status for an error of this command: [`exit_code`], except that for `verify`
    /// a host that cannot be reached (the directory's included) is 2.
    pub fn exit_code(&self, e: &Error) -> u8 {
        match (&self.command, e.kind()) {
            (Command::Verify(_), ErrorKind::Unavailable) => 2,
            _ => exit_code(e),
        }
    }
}

/// The exit code for an error: 2 when nothing was done because the request was refused, 1
/// otherwise.
pub fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::InvalidArgument | ErrorKind::NoSuchBucket | ErrorKind::Config => 2,
        _ => 1,
    }
}

/// The whole program: parses the command line, runs the command, reports an error on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("thrudoc-admin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match runtime.block_on(cli.run(&mut out)) {
        Ok(code) => {
            let _ = out.flush();
            ExitCode::from(code)
        }
        Err(e) => {
            let _ = out.flush();
            let broken_pipe = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                // The reader (`| head`) went away: nothing left to tell anyone.
                return ExitCode::FAILURE;
            }
            eprintln!("thrudoc-admin: {} ({})", e, e.kind());
            ExitCode::from(cli.exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::layout::partition_pair;
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create_flags_have_the_seeds_defaults() {
        let cli =
            Cli::try_parse_from(["thrudoc-admin", "create-tablename", "--tablename=data"]).unwrap();
        let Command::CreateTablename(args) = cli.command else {
            panic!("parsed another command")
        };
        let opts = args.options().unwrap();
        assert_eq!(opts.master.to_string(), "127.0.0.1:3306");
        assert_eq!(opts.hosts, vec![opts.master.clone()]);
        assert_eq!(opts.database, "thrudoc");
        assert_eq!(opts.root.user, "root");
        assert_eq!(opts.root.password.expose(), "");
        assert_eq!(opts.parts_per, 2);
        assert!(!opts.circular);
        assert_eq!(opts.service_user, "thrudoc");
        assert_eq!(opts.root.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn passwords_come_inline_or_from_a_file_but_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\nsecond line\n").unwrap();
        let file = file.to_str().unwrap();
        let cli = Cli::try_parse_from([
            "thrudoc-admin",
            "create-tablename",
            "--tablename=data",
            "--root-pass=",
            &format!("--pass-file={file}"),
            "--with-circular-replication",
            "--hosts=a:1,b",
        ])
        .unwrap();
        let Command::CreateTablename(args) = &cli.command else {
            panic!("parsed another command")
        };
        let opts = args.options().unwrap();
        assert_eq!(opts.service_password.expose(), "from-file");
        assert!(opts.circular);
        assert_eq!(opts.hosts[1].port, 3306);
        assert!(!format!("{cli:?}").contains("from-file"));
        for both in [
            ["--root-pass=x", "--root-pass-file=/dev/null"],
            ["--pass=x", "--pass-file=/dev/null"],
        ] {
            let mut argv = vec!["thrudoc-admin", "create-tablename", "--tablename=data"];
            argv.extend(both);
            assert!(Cli::try_parse_from(argv).is_err(), "{both:?}");
        }
    }

    #[test]
    fn failover_switchover_and_verify_have_their_defaults() {
        let cli = Cli::try_parse_from(["thrudoc-admin", "failover", "--host=db1:3307"]).unwrap();
        let Command::Failover(args) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(args.catch_up_timeout, Duration::from_secs(30));
        assert_eq!(args.probe_timeout, Duration::from_secs(2));
        assert!(!args.force);
        let cli = Cli::try_parse_from(["thrudoc-admin", "switchover", "--host=db1"]).unwrap();
        let Command::Switchover(args) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(
            (args.lease_ms, args.query_timeout_ms, args.margin_ms),
            (5000, 3000, 1000)
        );
        assert_eq!(args.catch_up_timeout, Duration::from_secs(60));
        let cli = Cli::try_parse_from(["thrudoc-admin", "verify", "--tablename=t"]).unwrap();
        let Command::Verify(args) = &cli.command else {
            panic!("parsed another command")
        };
        assert_eq!((args.partition, args.retries), (None, 2));
        assert_eq!(
            cli.exit_code(&Error::new(ErrorKind::Unavailable, "down")),
            2
        );
        for bad in [
            &["thrudoc-admin", "failover"][..],
            &["thrudoc-admin", "switchover", "--host=h", "--lease-ms=0"],
            &[
                "thrudoc-admin",
                "verify",
                "--tablename=t",
                "--catch-up-timeout=0",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_directory_manager_commands_have_their_defaults() {
        let cli = Cli::try_parse_from([
            "thrudoc-admin",
            "move",
            "--tablename=t",
            "--partition=7",
            "--to=db3:3306",
        ])
        .unwrap();
        let Command::Move(args) = &cli.command else {
            panic!("parsed another command")
        };
        let opts = args.reshape.options(&args.connection, false).unwrap();
        assert_eq!(opts.max_lag, Duration::from_secs(1));
        assert_eq!(opts.chunk_rows, 1000);
        assert_eq!(opts.retry_for, Duration::from_secs(300));
        assert!(!opts.abort && opts.hold_at.is_none() && opts.max_rate == 0);
        // --abort needs no --to; a move without either is refused.
        assert!(Cli::try_parse_from([
            "thrudoc-admin",
            "move",
            "--tablename=t",
            "--partition=7",
            "--abort"
        ])
        .is_ok());
        assert!(
            Cli::try_parse_from(["thrudoc-admin", "move", "--tablename=t", "--partition=7"])
                .is_err()
        );
        assert_eq!(partition_pair("3, 5").unwrap(), [3, 5]);
        for bad in ["3", "3,3", "3,x", "1,2,3"] {
            assert!(partition_pair(bad).is_err(), "{bad}");
        }
        for bad in [
            &[
                "thrudoc-admin",
                "split",
                "--tablename=t",
                "--partition=1",
                "--hold-at=nowhere:1",
            ][..],
            &["thrudoc-admin", "gc", "--older-than=5y"],
            &[
                "thrudoc-admin",
                "rebalance",
                "--tablename=t",
                "--max-rows-per-partition=0",
            ],
            &[
                "thrudoc-admin",
                "move",
                "--tablename=t",
                "--partition=1",
                "--to=h",
                "--max-lag=0",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from(["thrudoc-admin", "gc", "--older-than=7d"]).unwrap();
        let Command::Gc(args) = &cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(args.older_than, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cli = Cli::try_parse_from([
            "thrudoc-admin",
            "status",
            "--root-pass=hunter2",
            "--probe-timeout=0.5",
        ])
        .unwrap();
        let text = format!("{cli:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(Cli::try_parse_from(["thrudoc-admin", "status", "--probe-timeout=0"]).is_err());
    }
}
