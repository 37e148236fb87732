//! Flags of the commands that change where a bucket's rows live (`add-hosts`,
//! `remove-hosts`, `move`, `split`, `merge`, `rebalance`, `drain`, `gc`), and running each.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::{ConnectionArgs, ServiceArgs};
use crate::admin::gc::{self, parse_age, GcOptions};
use crate::admin::hosts::{self, AddHostsOptions, RemoveHostsOptions};
use crate::admin::reshape::commands::{self, Request};
use crate::admin::reshape::rebalance::{self, RebalanceOptions};
use crate::admin::reshape::ReshapeOptions;
use crate::config::seconds_flag;
use crate::error::{Error, Result};
use crate::mysql::HostAddr;

/// Flags of every command that moves partitions.
#[derive(Args, Debug, Clone)]
pub struct ReshapeArgs {
    /// Most seconds a target's sibling may fall behind while the copy writes; the copy waits
    /// when it does.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds_flag)]
    pub max_lag: Duration,
    /// Rows per copy statement.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chunk_rows: u64,
    /// Most rows copied per second (0: as fast as the lag allows).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_rate: u64,
    /// Seconds to keep trying when a host does not answer, before stopping (resumably).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = seconds_flag)]
    pub retry_for: Duration,
    /// Undo the move, split or merge in progress on these partitions.
    #[arg(long)]
    pub abort: bool,
    /// Test hook: stop this long at a step (`last-chunk:SECS`, `copied:SECS`, `fenced:SECS`,
    /// `renamed:SECS`).
    #[arg(long, value_name = "STEP:SECS", hide = true, value_parser = hold_flag)]
    pub hold_at: Option<(String, Duration)>,
}

fn hold_flag(value: &str) -> std::result::Result<(String, Duration), String> {
    let (step, secs) = value
        .split_once(':')
        .ok_or_else(|| "give STEP:SECS".to_string())?;
    if !matches!(step, "last-chunk" | "copied" | "fenced" | "renamed") {
        return Err(format!(
            "unknown step `{step}` (last-chunk, copied, fenced, renamed)"
        ));
    }
    Ok((step.to_string(), seconds_flag(secs)?))
}

/// Flags of `add-hosts`.
#[derive(Args, Debug)]
pub struct AddHostsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The hosts, comma-separated `HOST[:PORT]`.
    #[arg(long, value_name = "H1:P1,H2:P2,...")]
    pub hosts: String,
    /// Pair the hosts in the order given (1<->2, 3<->4, ...) as each other's sibling.
    #[arg(long, alias = "with-circular-replication")]
    pub with_circular_slaves: bool,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Flags of `remove-hosts`.
#[derive(Args, Debug)]
pub struct RemoveHostsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The hosts, comma-separated `HOST[:PORT]`.
    #[arg(long, value_name = "H1:P1,H2:P2,...")]
    pub hosts: String,
}

/// Flags of `move`.
#[derive(Args, Debug)]
pub struct MoveArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub reshape: ReshapeArgs,
    /// The bucket.
    #[arg(long, value_name = "BUCKET")]
    pub tablename: String,
    /// The partition (its directory id, as `list --tablename` shows).
    #[arg(long, value_name = "ID")]
    pub partition: u64,
    /// The host it moves to, as the directory records it (its sibling holds the copy).
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "abort")]
    pub to: Option<String>,
}

/// Flags of `split`.
#[derive(Args, Debug)]
pub struct SplitArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub reshape: ReshapeArgs,
    /// The bucket.
    #[arg(long, value_name = "BUCKET")]
    pub tablename: String,
    /// The partition (its directory id).
    #[arg(long, value_name = "ID")]
    pub partition: u64,
    /// The hash point to cut at, inside the partition's range (default: where half its rows
    /// fall).
    #[arg(long, value_name = "POINT")]
    pub at: Option<f64>,
    /// The host of the upper part (default: the partition's host).
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Option<String>,
}

/// Flags of `merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub reshape: ReshapeArgs,
    /// The bucket.
    #[arg(long, value_name = "BUCKET")]
    pub tablename: String,
    /// Two neighbouring partitions, `A,B`.
    #[arg(long, value_name = "A,B")]
    pub partitions: String,
    /// The host of the merged partition (default: the first one's host).
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Option<String>,
}

/// Flags of `rebalance`.
#[derive(Args, Debug)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub reshape: ReshapeArgs,
    /// The bucket.
    #[arg(long, value_name = "BUCKET")]
    pub tablename: String,
    /// The hosts to spread the rows over (default: every host of the directory with a
    /// sibling); partitions on other hosts move onto them.
    #[arg(long, value_name = "H1:P1,H2:P2,...")]
    pub hosts: Option<String>,
    /// Split partitions with more rows than this.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows_per_partition: Option<u64>,
    /// How far from an even share a host may stay, as a fraction of it.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub tolerance: f64,
    /// Carry the plan out (without it, only print it).
    #[arg(long)]
    pub execute: bool,
}

/// Flags of `drain`.
#[derive(Args, Debug)]
pub struct DrainArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub reshape: ReshapeArgs,
    /// The host whose pair is emptied (it and its sibling), as the directory records it.
    #[arg(long, value_name = "HOST:PORT")]
    pub host: String,
    /// Only print the plan.
    #[arg(long)]
    pub dry_run: bool,
}

/// Flags of `gc`.
#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Only what retired or finished longer ago than this: `7d`, `12h`, `30m`, `0`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Duration,
}

impl ReshapeArgs {
    pub(super) fn options(&self, connection: &ConnectionArgs, tty: bool) -> Result<ReshapeOptions> {
        Ok(ReshapeOptions {
            master: connection.master()?,
            database: connection.database.clone(),
            root: connection.login()?,
            max_lag: self.max_lag,
            chunk_rows: self.chunk_rows as usize,
            abort: self.abort,
            retry_for: self.retry_for,
            max_rate: self.max_rate,
            tty,
            hold_at: self.hold_at.clone(),
        })
    }
}

fn host_flag(flag: &str, value: &Option<String>) -> Result<Option<HostAddr>> {
    value
        .as_deref()
        .map(|v| HostAddr::parse(v).map_err(|e| e.context(flag)))
        .transpose()
}

pub(super) fn partition_pair(value: &str) -> Result<[u64; 2]> {
    let ids: Vec<&str> = value.split(',').map(str::trim).collect();
    let bad = || Error::invalid(format!("--partitions `{value}`: give two ids, `A,B`"));
    let [a, b] = ids[..] else { return Err(bad()) };
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a == b {
        return Err(bad());
    }
    Ok([a, b])
}

impl AddHostsArgs {
    pub async fn run(&self, out: &mut dyn Write) -> Result<()> {
        let opts = AddHostsOptions {
            master: self.connection.master()?,
            database: self.connection.database.clone(),
            root: self.connection.login()?,
            hosts: HostAddr::parse_list(&self.hosts)?,
            circular: self.with_circular_slaves,
            service_user: self.service.user.clone(),
            service_password: self.service.password()?,
        };
        hosts::add(&opts, out).await.map(drop)
    }
}

impl RemoveHostsArgs {
    pub async fn run(&self, out: &mut dyn Write) -> Result<()> {
        let opts = RemoveHostsOptions {
            master: self.connection.master()?,
            database: self.connection.database.clone(),
            root: self.connection.login()?,
            hosts: HostAddr::parse_list(&self.hosts)?,
        };
        hosts::remove(&opts, out).await.map(drop)
    }
}

impl MoveArgs {
    pub async fn run(&self, tty: bool, out: &mut dyn Write) -> Result<()> {
        let opts = self.reshape.options(&self.connection, tty)?;
        let to = match host_flag("--to", &self.to)? {
            Some(to) => to,
            // Only --abort goes without --to: any host names the reshape's partition.
            None => opts.master.clone(),
        };
        let req = Request::Move {
            bucket: self.tablename.clone(),
            partition: self.partition,
            to,
        };
        commands::run(&opts, &req, out).await.map(drop)
    }
}

impl SplitArgs {
    pub async fn run(&self, tty: bool, out: &mut dyn Write) -> Result<()> {
        let opts = self.reshape.options(&self.connection, tty)?;
        let req = Request::Split {
            bucket: self.tablename.clone(),
            partition: self.partition,
            at: self.at,
            to: host_flag("--to", &self.to)?,
        };
        commands::run(&opts, &req, out).await.map(drop)
    }
}

impl MergeArgs {
    pub async fn run(&self, tty: bool, out: &mut dyn Write) -> Result<()> {
        let opts = self.reshape.options(&self.connection, tty)?;
        let req = Request::Merge {
            bucket: self.tablename.clone(),
            partitions: partition_pair(&self.partitions)?,
            to: host_flag("--to", &self.to)?,
        };
        commands::run(&opts, &req, out).await.map(drop)
    }
}

impl RebalanceArgs {
    pub async fn run(&self, tty: bool, out: &mut dyn Write) -> Result<()> {
        if !(0.0..=1.0).contains(&self.tolerance) {
            return Err(Error::invalid("--tolerance must be from 0 to 1"));
        }
        let opts = RebalanceOptions {
            reshape: self.reshape.options(&self.connection, tty)?,
            bucket: Some(self.tablename.clone()),
            hosts: self
                .hosts
                .as_deref()
                .map(HostAddr::parse_list)
                .transpose()?,
            drain: None,
            max_rows: self.max_rows_per_partition,
            tolerance: self.tolerance,
            execute: self.execute,
        };
        rebalance::run(&opts, out).await.map(drop)
    }
}

impl DrainArgs {
    pub async fn run(&self, tty: bool, out: &mut dyn Write) -> Result<()> {
        let opts = RebalanceOptions {
            reshape: self.reshape.options(&self.connection, tty)?,
            bucket: None,
            hosts: None,
            drain: Some(HostAddr::parse(&self.host).map_err(|e| e.context("--host"))?),
            max_rows: None,
            tolerance: 0.1,
            execute: !self.dry_run,
        };
        rebalance::run(&opts, out).await.map(drop)
    }
}

impl GcArgs {
    pub async fn run(&self, out: &mut dyn Write) -> Result<()> {
        let opts = GcOptions {
            master: self.connection.master()?,
            database: self.connection.database.clone(),
            root: self.connection.login()?,
            older_than: self.older_than,
        };
        gc::run(&opts, out).await.map(drop)
    }
}
