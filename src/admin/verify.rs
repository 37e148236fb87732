//! `thrudoc-admin verify --tablename T`: compares each live partition of a bucket on its master
//! and on the master's sibling.
//!
//! For each partition: wait until the sibling has applied everything the master has committed
//! (the master's `@@gtid_binlog_pos`, `MASTER_GTID_WAIT` on the sibling), then compare
//! `COUNT(*)` and `CHECKSUM TABLE` on both. Writes that land between the master's reading and
//! the sibling's make a partition look different for a moment, so a difference is checked again
//! (`--retries`) before it is reported; on a quiet bucket the first comparison is final.
//!
//! Exit status (see [`VerifyReport::exit_code`]): 0 when every partition is equal, 1 when any
//! differs, 2 when a host could not be reached (so something could not be compared).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::list::load_directory;
use super::progress::Progress;
use super::replica;
use super::sql::{self, quote_ident, Login, Query, Session};
use crate::error::{Error, Result};
use crate::mysql::{code, server_code, HostAddr};
use crate::rules::check_sql_name;
use crate::store::mysql::directory::{Directory, Partition};

/// What `verify` is asked to compare.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    pub tablename: String,
    /// Only this partition (a directory id).
    pub partition: Option<u64>,
    /// How long a sibling may take to catch up with its master, per partition.
    pub catch_up_timeout: Duration,
    /// How many times a difference is compared again before it is reported.
    pub retries: u32,
    pub tty: bool,
}

/// Rows and checksum of one copy; `None` checksum when the server gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub rows: u64,
    pub checksum: Option<u64>,
}

/// The outcome for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Equal(Measure),
    /// Different copies (`None`: the table is missing there), with a note.
    Different {
        master: Option<Measure>,
        sibling: Option<Measure>,
        note: String,
    },
    /// Not compared: a host did not answer, or there is no sibling.
    NotCompared(String),
}

/// One partition's comparison.
#[derive(Debug, Clone)]
pub struct Checked {
    pub id: u64,
    pub datatable: String,
    pub master: String,
    pub sibling: String,
    pub verdict: Verdict,
}

/// Every comparison.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub checked: Vec<Checked>,
}

impl VerifyReport {
    /// 1 when a partition differs, else 2 when one could not be compared, else 0.
    pub fn exit_code(&self) -> u8 {
        let any = |f: fn(&Verdict) -> bool| self.checked.iter().any(|c| f(&c.verdict));
        if any(|v| matches!(v, Verdict::Different { .. })) {
            1
        } else if any(|v| matches!(v, Verdict::NotCompared(_))) {
            2
        } else {
            0
        }
    }
}

/// A session per host id, opened on first use; a host that failed once is not tried again.
struct Sessions<'a> {
    dir: &'a Directory,
    root: &'a Login,
    open: BTreeMap<u32, std::result::Result<(Session, u32), String>>,
    /// Hosts that did not catch up once: they are compared without waiting again.
    lagging: BTreeSet<u32>,
}

impl Sessions<'_> {
    /// Takes the session of `host_id` (with its server id) out of the cache, connecting first
    /// if needed; [`Sessions::put`] returns it.
    async fn take(&mut self, host_id: u32) -> std::result::Result<(Session, u32), String> {
        if let Some(entry) = self.open.remove(&host_id) {
            if let Err(e) = &entry {
                self.open.insert(host_id, Err(e.clone()));
            }
            return entry;
        }
        let Some(host) = self.dir.hosts.get(&host_id) else {
            return Err(format!("host {host_id} is not in the directory"));
        };
        let attempt = async {
            let addr = HostAddr::new(&host.hostname, host.port)?;
            let mut s = self.root.connect(&addr, None).await?;
            let id = replica::server_id(&mut s).await?;
            Ok::<_, Error>((s, id))
        };
        match attempt.await {
            Ok(s) => Ok(s),
            Err(e) => {
                let e = e.to_string();
                self.open.insert(host_id, Err(e.clone()));
                Err(e)
            }
        }
    }

    fn put(&mut self, host_id: u32, session: (Session, u32)) {
        self.open.insert(host_id, Ok(session));
    }

    /// Forgets a session that failed mid-way, so the host counts as unreachable from now on.
    fn fail(&mut self, host_id: u32, why: &str) {
        self.open.insert(host_id, Err(why.to_string()));
    }

    async fn close(self) {
        for (_, entry) in self.open {
            if let Ok((s, _)) = entry {
                s.close().await;
            }
        }
    }
}

/// Compares the bucket's partitions, printing a line per partition and a summary.
pub async fn run(opts: &VerifyOptions, out: &mut dyn Write) -> Result<VerifyReport> {
    check_sql_name("--database", &opts.database)?;
    let dir = load_directory(&opts.root, &opts.master, &opts.database).await?;
    let bucket = dir.bucket(&opts.tablename)?;
    let parts: Vec<&Partition> = bucket
        .partitions
        .iter()
        .filter(|p| opts.partition.is_none_or(|id| p.id == id))
        .collect();
    let mut progress = Progress::new(out, opts.tty);
    let p = &mut progress;
    if let (Some(id), true) = (opts.partition, parts.is_empty()) {
        return Err(Error::invalid(format!(
            "bucket `{}` has no live partition {id}",
            opts.tablename
        )));
    }
    p.say(format_args!(
        "verifying {} partitions of bucket `{}` (directory version {}): master against sibling, \
         rows and CHECKSUM TABLE",
        parts.len(),
        opts.tablename,
        dir.version
    ))?;
    let address = |id: u32| {
        dir.hosts
            .get(&id)
            .map(|h| h.address().to_string())
            .unwrap_or_else(|| format!("unknown host {id}"))
    };
    let mut sessions = Sessions {
        dir: &dir,
        root: &opts.root,
        open: BTreeMap::new(),
        lagging: BTreeSet::new(),
    };
    let mut report = VerifyReport::default();
    let total = parts.len();
    for (i, part) in parts.iter().enumerate() {
        let sibling_id = dir.hosts.get(&part.host_id).and_then(|h| h.slave_id);
        let master_addr = address(part.host_id);
        let sibling_addr = sibling_id.map(address).unwrap_or_else(|| "-".into());
        let verdict = match sibling_id {
            None => Verdict::NotCompared(format!("{master_addr} has no sibling")),
            Some(sid) => compare(opts, &mut sessions, part, part.host_id, sid, p).await?,
        };
        let text = match &verdict {
            Verdict::Equal(m) => format!("{} rows, checksum equal", m.rows),
            Verdict::Different {
                master,
                sibling,
                note,
            } => format!(
                "DIFFERENT: master {}, sibling {}{}",
                show(master),
                show(sibling),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                }
            ),
            Verdict::NotCompared(why) => format!("NOT COMPARED: {why}"),
        };
        p.say(format_args!(
            "[{}/{total}] partition {} {} on {master_addr} vs {sibling_addr}: {text}",
            i + 1,
            part.id,
            part.datatable
        ))?;
        report.checked.push(Checked {
            id: part.id,
            datatable: part.datatable.clone(),
            master: master_addr,
            sibling: sibling_addr,
            verdict,
        });
    }
    sessions.close().await;
    summary(&report, p)?;
    Ok(report)
}

fn show(m: &Option<Measure>) -> String {
    match m {
        None => "table missing".into(),
        Some(Measure {
            rows,
            checksum: Some(c),
        }) => format!("{rows} rows checksum {c}"),
        Some(Measure {
            rows,
            checksum: None,
        }) => format!("{rows} rows, no checksum"),
    }
}

fn summary(report: &VerifyReport, p: &mut Progress<'_>) -> Result<()> {
    let count = |f: fn(&Verdict) -> bool| report.checked.iter().filter(|c| f(&c.verdict)).count();
    let equal = count(|v| matches!(v, Verdict::Equal(_)));
    let different = count(|v| matches!(v, Verdict::Different { .. }));
    let skipped = count(|v| matches!(v, Verdict::NotCompared(_)));
    p.say(format_args!(
        "{} partitions: {equal} equal, {different} different, {skipped} not compared",
        report.checked.len()
    ))?;
    for c in &report.checked {
        match &c.verdict {
            Verdict::Different { .. } => p.say(format_args!(
                "different: partition {} {} ({} vs {})",
                c.id, c.datatable, c.master, c.sibling
            ))?,
            Verdict::NotCompared(why) => p.say(format_args!(
                "not compared: partition {} {}: {why}",
                c.id, c.datatable
            ))?,
            Verdict::Equal(_) => {}
        }
    }
    Ok(())
}

/// Compares one partition, comparing again after a difference up to `opts.retries` times.
async fn compare(
    opts: &VerifyOptions,
    sessions: &mut Sessions<'_>,
    part: &Partition,
    master_id: u32,
    sibling_id: u32,
    p: &mut Progress<'_>,
) -> Result<Verdict> {
    if master_id == sibling_id {
        return Ok(Verdict::NotCompared(
            "the directory names the master as its own sibling".into(),
        ));
    }
    let (mut ms, master_server) = match sessions.take(master_id).await {
        Ok(s) => s,
        Err(e) => return Ok(Verdict::NotCompared(format!("master unreachable: {e}"))),
    };
    let (mut ss, sibling_server) = match sessions.take(sibling_id).await {
        Ok(s) => s,
        Err(e) => {
            sessions.put(master_id, (ms, master_server));
            return Ok(Verdict::NotCompared(format!("sibling unreachable: {e}")));
        }
    };
    let mut verdict = Verdict::NotCompared(String::new());
    let mut failed: Option<(u32, String)> = None;
    for attempt in 0..=opts.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // A sibling that did not catch up once is not waited for again: it would only make
        // every partition wait the whole timeout.
        let limit = if sessions.lagging.contains(&sibling_id) {
            Duration::ZERO
        } else {
            opts.catch_up_timeout
        };
        let once = compare_once(limit, &mut ms, &mut ss, sibling_server, part, p).await;
        match once {
            Ok((v @ Verdict::Equal(_), _)) => {
                verdict = v;
                break;
            }
            Ok((v, caught)) => {
                verdict = v;
                if !caught {
                    // Behind, not changing under our feet: comparing again shows the same.
                    sessions.lagging.insert(sibling_id);
                    break;
                }
            }
            Err((on_master, e)) => {
                let (id, side) = if on_master {
                    (master_id, "master")
                } else {
                    (sibling_id, "sibling")
                };
                let why = format!("{side} failed: {e}");
                failed = Some((id, why.clone()));
                verdict = Verdict::NotCompared(why);
                break;
            }
        }
    }
    match failed {
        Some((id, why)) if id == master_id => {
            sessions.fail(master_id, &why);
            sessions.put(sibling_id, (ss, sibling_server));
            ms.close().await;
        }
        Some((_, why)) => {
            sessions.fail(sibling_id, &why);
            sessions.put(master_id, (ms, master_server));
            ss.close().await;
        }
        None => {
            sessions.put(master_id, (ms, master_server));
            sessions.put(sibling_id, (ss, sibling_server));
        }
    }
    Ok(verdict)
}

/// One comparison; an error says whether the master (`true`) or the sibling failed.
async fn compare_once(
    limit: Duration,
    ms: &mut Session,
    ss: &mut Session,
    sibling_server: u32,
    part: &Partition,
    p: &mut Progress<'_>,
) -> std::result::Result<(Verdict, bool), (bool, Error)> {
    let committed = replica::binlog_pos(ms)
        .await
        .map_err(|e| (true, e))?
        .without_server(sibling_server);
    let sibling = ss.addr.clone();
    let caught = replica::wait_applied(ss, &committed, limit, &mut |elapsed, applied| {
        p.tick(format_args!(
            "  waiting {:.1} s of {:.1} s for {sibling} to apply {committed} (at {applied})",
            elapsed.as_secs_f64(),
            limit.as_secs_f64()
        ))
    })
    .await
    .map_err(|e| (false, e))?;
    p.done().map_err(|e| (false, e))?;
    let table = format!("{}.{}", quote_ident(&part.db), quote_ident(&part.datatable));
    let m = measure(ms, &table).await.map_err(|e| (true, e))?;
    let s = measure(ss, &table).await.map_err(|e| (false, e))?;
    let verdict = match (m, s) {
        (Some(m), Some(s)) if m == s && m.checksum.is_some() => Verdict::Equal(m),
        (m, s) => Verdict::Different {
            master: m,
            sibling: s,
            note: if caught {
                String::new()
            } else {
                format!("the sibling had not applied everything the master committed ({committed})")
            },
        },
    };
    Ok((verdict, caught))
}

/// Rows and checksum of `table`; `None` when the table does not exist there.
async fn measure(s: &mut Session, table: &str) -> Result<Option<Measure>> {
    let rows: Option<u64> = match s
        .first(
            "counting rows",
            &format!("SELECT COUNT(*) FROM {table}"),
            (),
        )
        .await
    {
        Ok(n) => n,
        Err(e) if server_code(&e) == Some(code::ER_NO_SUCH_TABLE) => return Ok(None),
        Err(e) => return Err(e),
    };
    let checksum: Option<(String, Option<u64>)> = sql::deadline(
        &s.addr,
        "CHECKSUM TABLE",
        s.timeout,
        s.conn.query_first(format!("CHECKSUM TABLE {table}")),
    )
    .await?;
    Ok(Some(Measure {
        rows: rows.unwrap_or(0),
        checksum: checksum.and_then(|(_, c)| c),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(verdict: Verdict) -> Checked {
        Checked {
            id: 1,
            datatable: "d_000000000001".into(),
            master: "a:1".into(),
            sibling: "b:1".into(),
            verdict,
        }
    }

    #[test]
    fn exit_codes_rank_differences_above_unreachable_hosts() {
        let equal = Verdict::Equal(Measure {
            rows: 3,
            checksum: Some(9),
        });
        let different = Verdict::Different {
            master: None,
            sibling: None,
            note: String::new(),
        };
        let skipped = Verdict::NotCompared("down".into());
        let report = |vs: Vec<Verdict>| VerifyReport {
            checked: vs.into_iter().map(checked).collect(),
        };
        assert_eq!(report(vec![equal.clone()]).exit_code(), 0);
        assert_eq!(report(vec![equal.clone(), skipped.clone()]).exit_code(), 2);
        assert_eq!(report(vec![skipped, different, equal]).exit_code(), 1);
        assert_eq!(report(vec![]).exit_code(), 0);
    }
}
