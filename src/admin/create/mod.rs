//! `thrudoc-admin create-tablename`: creates a bucket of the MySQL backend.
//!
//! It makes the schema and the directory tables on the directory master, the schema and the
//! service account on every data host, registers (and with `--with-circular-slaves` pairs) the
//! hosts, and writes the bucket's partitions into the directory. The directory rows go in one
//! transaction that commits only after every partition's datatable exists on its host and on
//! its host's sibling, so a server never loads a partition whose table is missing; a failure
//! before the commit leaves the directory as it was.
//!
//! Order matters for "nothing changed on refusal": flags are checked first, then every host is
//! connected to, then the bucket and the pairing are checked against the directory, and only
//! then is anything written. Everything written to the data hosts is `IF NOT EXISTS` (or a
//! `GRANT`, which repeats harmlessly), because it replicates to the host's sibling, where this
//! tool also runs it, and because running the tool again must be safe.

mod directory;
pub(crate) mod hosts;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use self::directory::{refuse_existing_bucket, write_directory};
use self::hosts::{check_replication, known_host, plan_siblings, prepare_host};
use super::dirtx::{self, IfLost, Tx};
use super::progress::Progress;
use super::sql::{quote_ident, Login, Query, Session};
use super::table::{write_hosts, write_partitions, PartitionLine};
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::rules::{check_bucket_name, check_sql_name};
use crate::store::mysql::directory::DIRECTORY_DDL;
use crate::store::mysql::placement::HashKind;

/// Most partitions per host.
pub const MAX_PARTS_PER: u32 = 1000;

/// The privileges of the service account on the schema: data only, never DDL.
pub const SERVICE_GRANTS: &str = "SELECT, INSERT, UPDATE, DELETE";

/// The service account's one global right: `SHOW SLAVE STATUS`, which says what a sibling has
/// received from its master, for reads during an outage (`FAILOVER_READS = consistent`).
pub const MONITOR_GRANT: &str = "SLAVE MONITOR";

/// What `create-tablename` is asked to do.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The directory master.
    pub master: HostAddr,
    /// The schema of the directory tables and of the datatables on every host.
    pub database: String,
    /// The root login used on every host.
    pub root: Login,
    /// The bucket to create.
    pub tablename: String,
    /// The data hosts, in the order given (pairs are 1↔2, 3↔4, ...).
    pub hosts: Vec<HostAddr>,
    /// Partitions per host.
    pub parts_per: u32,
    /// Pair the hosts in the order given.
    pub circular: bool,
    /// The service account created and granted on every host.
    pub service_user: String,
    pub service_password: Secret,
}

impl CreateOptions {
    /// Checks every flag; nothing has been touched when this fails.
    pub fn validate(&self) -> Result<()> {
        check_bucket_name(&self.tablename)
            .map_err(|why| Error::invalid(format!("--tablename: {why}")))?;
        check_sql_name("--database", &self.database)?;
        if self.hosts.is_empty() {
            return Err(Error::invalid("--hosts names no host"));
        }
        let distinct: BTreeSet<&HostAddr> = self.hosts.iter().collect();
        if distinct.len() != self.hosts.len() {
            return Err(Error::invalid("--hosts names a host twice"));
        }
        if !(1..=MAX_PARTS_PER).contains(&self.parts_per) {
            return Err(Error::invalid(format!(
                "--parts-per must be from 1 to {MAX_PARTS_PER}, not {}",
                self.parts_per
            )));
        }
        if self.circular && self.hosts.len() % 2 != 0 {
            return Err(Error::invalid(format!(
                "--with-circular-slaves pairs the hosts in the order given (1<->2, 3<->4, ...), so \
                 it needs an even number of hosts; --hosts names {}",
                self.hosts.len()
            )));
        }
        check_user_name(&self.service_user)?;
        if self.service_user == self.root.user || self.service_user == "root" {
            return Err(Error::invalid(
                "--user names the service account, which must not be the root account",
            ));
        }
        Ok(())
    }
}

/// Account names: 1 to 80 letters, digits, `_`, `.` and `-` (they are quoted into `CREATE USER`).
pub(crate) fn check_user_name(user: &str) -> Result<()> {
    if !user.is_empty()
        && user.len() <= 80
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "--user `{}` must be 1 to 80 letters, digits, `_`, `.` and `-`",
            user.escape_debug()
        )))
    }
}

/// One partition to create: the range `[start, end]` on `hosts[host]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedPartition {
    pub start: f64,
    pub end: f64,
    /// Index into the host list.
    pub host: usize,
}

/// `hosts × parts_per` partitions covering `[0, 1]`: partition `i` covers `[i/N, (i+1)/N]` (the
/// last ends at exactly 1, and each start is bit-for-bit the previous end) on host `i % hosts`,
/// so neighbouring ranges land on different hosts.
pub fn plan_partitions(hosts: usize, parts_per: u32) -> Vec<PlannedPartition> {
    let n = hosts * parts_per as usize;
    let point = |i: usize| if i == n { 1.0 } else { i as f64 / n as f64 };
    (0..n)
        .map(|i| PlannedPartition {
            start: point(i),
            end: point(i + 1),
            host: i % hosts,
        })
        .collect()
}

/// What preparing and registering data hosts needs: `create-tablename` and `add-hosts` share it.
#[derive(Debug, Clone, Copy)]
pub struct HostSetup<'a> {
    pub database: &'a str,
    pub hosts: &'a [HostAddr],
    /// Pair the hosts in the order given.
    pub circular: bool,
    pub service_user: &'a str,
    pub service_password: &'a Secret,
}

impl CreateOptions {
    /// The part of the options that is about the hosts.
    pub fn setup(&self) -> HostSetup<'_> {
        HostSetup {
            database: &self.database,
            hosts: &self.hosts,
            circular: self.circular,
            service_user: &self.service_user,
            service_password: &self.service_password,
        }
    }
}

/// A host as registered in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredHost {
    pub id: u32,
    pub addr: HostAddr,
    pub sibling: Option<HostAddr>,
}

/// A partition as written to the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedPartition {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    pub host: HostAddr,
    pub sibling: Option<HostAddr>,
    pub datatable: String,
}

/// What `create-tablename` did.
#[derive(Debug, Clone)]
pub struct Created {
    pub database: String,
    pub bucket: String,
    pub hosts: Vec<RegisteredHost>,
    pub partitions: Vec<CreatedPartition>,
    pub version: u64,
    /// Things the operator should look at (replication not running, a login that fails, ...).
    pub warnings: Vec<String>,
}

/// What the directory already says about a listed host before anything is written.
#[derive(Debug, Clone)]
pub(crate) struct KnownHost {
    pub(crate) id: u32,
    pub(crate) slave_id: Option<u32>,
}

/// What the directory transaction writes: the options, and what the directory said of the
/// hosts before.
#[derive(Clone, Copy)]
struct Plan<'a> {
    opts: &'a CreateOptions,
    known: &'a BTreeMap<HostAddr, KnownHost>,
    /// Each listed host's sibling after this run.
    siblings: &'a BTreeMap<HostAddr, HostAddr>,
}

/// Creates the bucket, printing each step to `out` as it goes and a summary at the end.
pub async fn run(opts: &CreateOptions, out: &mut dyn Write) -> Result<Created> {
    opts.validate()?;
    let db = opts.database.as_str();
    let bucket = opts.tablename.as_str();
    let mut progress = Progress::new(out, false);
    let p = &mut progress;

    // 1. Reach every host before changing anything.
    p.say(format_args!(
        "connecting as {} to the directory master {} ...",
        opts.root.user, opts.master
    ))?;
    let mut dir = opts.root.connect(&opts.master, None).await?;
    let mut hosts: BTreeMap<HostAddr, Session> = BTreeMap::new();
    for addr in &opts.hosts {
        p.say(format_args!("connecting to data host {addr} ..."))?;
        let session = opts.root.connect(addr, None).await?;
        hosts.insert(addr.clone(), session);
    }

    // 2. Schema and directory tables (all IF NOT EXISTS).
    p.say(format_args!(
        "creating schema `{db}` and the directory tables on {} ...",
        opts.master
    ))?;
    dir.run(
        "creating the schema",
        &format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(db)),
    )
    .await?;
    dir.run("selecting the schema", &format!("USE {}", quote_ident(db)))
        .await?;
    for ddl in DIRECTORY_DDL {
        dir.run("creating the directory tables", ddl).await?;
    }

    // 3. Refuse an existing bucket and a pairing that contradicts the directory.
    refuse_existing_bucket(&mut dir, bucket).await?;
    let mut known: BTreeMap<HostAddr, KnownHost> = BTreeMap::new();
    for addr in &opts.hosts {
        if let Some(host) = known_host(&mut dir, addr).await? {
            known.insert(addr.clone(), host);
        }
    }
    let siblings = plan_siblings(&opts.setup(), &mut dir, &known).await?;
    for addr in &opts.hosts {
        match siblings.get(addr) {
            Some(s) => p.say(format_args!("  {addr}: sibling {s}"))?,
            None => p.warn(format!(
                "{addr} has no sibling: its partitions have no read-only failover \
                 (pair hosts with --with-circular-slaves)"
            ))?,
        }
    }
    // A sibling from an earlier pairing that is not listed holds copies too.
    for sibling in siblings.values() {
        if !hosts.contains_key(sibling) {
            p.say(format_args!("connecting to sibling {sibling} ..."))?;
            let session = opts.root.connect(sibling, None).await?;
            hosts.insert(sibling.clone(), session);
        }
    }

    // 4. Schema and service account on every data host and on the directory master.
    p.say(format_args!(
        "creating schema `{db}` and service account '{}'@'%' ({SERVICE_GRANTS} on `{db}`.*, \
         {MONITOR_GRANT}) ...",
        opts.service_user
    ))?;
    if !hosts.contains_key(&opts.master) {
        prepare_host(&mut dir, &opts.setup()).await?;
        p.say(format_args!("  {}: ready", opts.master))?;
    }
    for (addr, session) in hosts.iter_mut() {
        prepare_host(session, &opts.setup()).await?;
        p.say(format_args!("  {addr}: ready"))?;
    }

    // 5. Hosts, bucket and partitions in one transaction that commits only once every
    // datatable exists.
    p.say(format_args!(
        "writing the directory (one transaction on {}) ...",
        opts.master
    ))?;
    let look = format!("look with `thrudoc-admin list --tablename {bucket}`");
    let lost = IfLost {
        may_be: "the bucket may or may not exist",
        look: &look,
    };
    let plan = Plan {
        opts,
        known: &known,
        siblings: &siblings,
    };
    let written = dirtx::change(&mut dir, lost, async |tx: &mut Tx<'_>| {
        write_directory(tx, &plan, &mut hosts, p).await.map(Some)
    })
    .await?;
    let Some(((registered, partitions), version)) = written else {
        return Err(Error::internal("the directory transaction wrote nothing"));
    };
    p.say(format_args!("committed: directory version {version}"))?;

    // 6. Replication of each pair (set up by the operator or scripts/dev-cluster, not here).
    p.say(format_args!("checking replication ..."))?;
    for line in check_replication(&registered, &mut hosts).await {
        match line {
            Ok(fine) => p.say(format_args!("  {fine}"))?,
            Err(w) => p.warn(w)?,
        }
    }
    // The service account must be able to log in where the servers will use it; an account
    // that existed before keeps its old password, which may not be the one given now.
    let service = Login {
        user: opts.service_user.clone(),
        password: opts.service_password.clone(),
        ..opts.root.clone()
    };
    let mut login_targets: Vec<&HostAddr> = vec![&opts.master];
    login_targets.extend(hosts.keys().filter(|a| **a != opts.master));
    for addr in login_targets {
        match service.connect(addr, Some(db)).await {
            Ok(s) => s.close().await,
            Err(e) => p.warn(format!(
                "the service account '{}' cannot log in to {addr} with the password given \
                 (an existing account keeps its password): {e}",
                opts.service_user
            ))?,
        }
    }

    dir.close().await;
    for (_, session) in hosts {
        session.close().await;
    }

    let created = Created {
        database: db.to_string(),
        bucket: bucket.to_string(),
        hosts: registered,
        partitions,
        version,
        warnings: progress.take_warnings(),
    };
    // 7. What was done.
    print_summary(&created, &opts.master, progress.out()?)?;
    Ok(created)
}

fn print_summary(c: &Created, master: &HostAddr, out: &mut dyn Write) -> Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "created bucket `{}` (hash {}) in schema `{}`; directory on {master}",
        c.bucket,
        HashKind::XxHash64,
        c.database
    )?;
    writeln!(out, "hosts:")?;
    write_hosts(out, &c.hosts)?;
    writeln!(out, "{} partitions:", c.partitions.len())?;
    write_partitions(
        out,
        c.partitions.iter().map(|p| PartitionLine {
            id: p.id,
            start: p.start,
            end: p.end,
            host: p.host.to_string(),
            sibling: p.sibling.as_ref().map(|s| s.to_string()),
            table: p.datatable.clone(),
        }),
    )?;
    writeln!(out, "directory version: {}", c.version)?;
    if !c.warnings.is_empty() {
        writeln!(out, "{} warnings (see above)", c.warnings.len())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::time::Duration;

    fn options() -> CreateOptions {
        CreateOptions {
            master: HostAddr::parse("127.0.0.1:3306").unwrap(),
            database: "thrudoc".into(),
            root: Login {
                user: "root".into(),
                password: Secret::default(),
                connect_timeout: Duration::from_secs(5),
                query_timeout: Duration::from_secs(30),
            },
            tablename: "data".into(),
            hosts: HostAddr::parse_list("a:1,b:2,c:3,d:4").unwrap(),
            parts_per: 3,
            circular: true,
            service_user: "thrudoc".into(),
            service_password: Secret::new("pw"),
        }
    }

    #[test]
    fn partitions_cover_the_unit_interval_round_robin() {
        let plan = plan_partitions(4, 3);
        assert_eq!(plan.len(), 12);
        assert_eq!(plan[0].start, 0.0);
        assert_eq!(plan[11].end, 1.0);
        for (i, w) in plan.windows(2).enumerate() {
            assert_eq!(w[0].end.to_bits(), w[1].start.to_bits(), "gap after {i}");
            assert_ne!(w[0].host, w[1].host, "neighbours {i} share a host");
        }
        for host in 0..4 {
            assert_eq!(plan.iter().filter(|p| p.host == host).count(), 3);
        }
        assert_eq!(
            plan_partitions(1, 1),
            vec![PlannedPartition {
                start: 0.0,
                end: 1.0,
                host: 0
            }]
        );
        let big = plan_partitions(3, 1000);
        assert_eq!(big.last().map(|p| p.end), Some(1.0));
    }

    #[test]
    fn validation_refuses_bad_flags() {
        assert!(options().validate().is_ok());
        let cases: Vec<(CreateOptions, &str)> = vec![
            (
                CreateOptions {
                    tablename: "x;drop".into(),
                    ..options()
                },
                "--tablename",
            ),
            (
                CreateOptions {
                    database: "a-b".into(),
                    ..options()
                },
                "--database",
            ),
            (
                CreateOptions {
                    parts_per: 0,
                    ..options()
                },
                "--parts-per",
            ),
            (
                CreateOptions {
                    parts_per: 1001,
                    ..options()
                },
                "--parts-per",
            ),
            (
                CreateOptions {
                    hosts: HostAddr::parse_list("a,b,c").unwrap(),
                    ..options()
                },
                "even number",
            ),
            (
                CreateOptions {
                    service_user: "a'b".into(),
                    ..options()
                },
                "--user",
            ),
            (
                CreateOptions {
                    service_user: "root".into(),
                    ..options()
                },
                "root",
            ),
            (
                CreateOptions {
                    hosts: vec![],
                    ..options()
                },
                "no host",
            ),
        ];
        for (opts, needle) in cases {
            let e = opts.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains(needle), "{needle}: {e}");
        }
        let odd_without_pairs = CreateOptions {
            hosts: HostAddr::parse_list("a,b,c").unwrap(),
            circular: false,
            ..options()
        };
        assert!(odd_without_pairs.validate().is_ok());
    }

    #[test]
    fn options_never_show_passwords() {
        let opts = CreateOptions {
            service_password: Secret::new("hunter2-service"),
            root: Login {
                password: Secret::new("hunter2-root"),
                ..options().root
            },
            ..options()
        };
        let text = format!("{opts:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
