//! On each source master: the change log that makes a copy taken while servers write come out
//! exact, and the fence that ends those writes for the cutover.
//!
//! **The change log.** Before the first row is copied, three triggers on the source table
//! (`AFTER INSERT`, `UPDATE`, `DELETE`) write the key of every row changed into `l_<id>`, in
//! the same transaction as the change. Applying the log ([`apply_log`]) reads each logged
//! key's row from the source *as it is now* and writes it to its target (or deletes it there),
//! then deletes the log rows it read, by their sequence numbers (never by a range: a
//! transaction that took a lower number may commit later). So for every key, at any moment
//! after its rows were first copied, the target holds the source's row, or the key has a log
//! row not yet applied; once writes stop and the log is empty, target and source are equal.
//!
//! **The fence.** For the cutover, three `BEFORE` triggers refuse every write to the source
//! table with `SIGNAL SQLSTATE '45000'` and a message starting with
//! [`FENCE_TAG`](crate::mysql::FENCE_TAG); servers wait and write at the new home once the
//! directory names it. Creating a trigger waits for the writes in flight on the table to end,
//! so once the fence is in place every write that will ever reach the table is in the log.
//! Triggers are DDL: they replicate to the sibling, where (row-based replication) they do not
//! fire for replicated rows.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use mysql_async::Value;

use super::copy::{delete_keys, write_rows, DataRow};
use super::record::{Part, Reshape};
use super::sessions::Sessions;
use crate::admin::sql::{column, Query, Session};
use crate::error::Result;
use crate::mysql::FENCE_TAG;

/// Log rows applied per round.
const LOG_BATCH: usize = 1000;
/// Log rows of each source applied between two looks at how far a catch-up has come.
const CATCH_UP_ROUND: u64 = 10_000;
/// A catch-up ends when this many rounds in a row left no more log rows than it applies in
/// [`STEADY_SECS`].
const STEADY_ROUNDS: u32 = 5;
/// Seconds of applying that the backlog of a steady catch-up may hold: the cutover applies
/// what is left while writes wait.
const STEADY_SECS: f64 = 0.5;
/// A catch-up whose backlog is larger than it was this long ago says the writes outpace it.
const GROWING_AFTER: Duration = Duration::from_secs(30);

/// The names of a source's triggers: change log (after insert, update, delete), then fence
/// (before insert, update, delete).
fn trigger_names(src: &Part) -> ([String; 3], [String; 3]) {
    let l = src.log_name();
    let f = format!("f_{:012}", src.id);
    (
        [format!("{l}_ai"), format!("{l}_au"), format!("{l}_ad")],
        [format!("{f}_bi"), format!("{f}_bu"), format!("{f}_bd")],
    )
}

/// The triggers on `table` (its current name) in the source's schema.
async fn triggers_on(s: &mut Session, src: &Part, table: &str) -> Result<BTreeSet<String>> {
    let rows = s
        .rows(
            "reading the triggers",
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS
             WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
            (src.db.as_str(), table),
        )
        .await?;
    rows.iter()
        .map(|r| column(r, 0, "reading the triggers"))
        .collect()
}

/// Which name the source table has now on its master: its live name, or its retired name
/// after the cutover's rename; `None` when neither exists.
pub async fn current_name(s: &mut Session, src: &Part) -> Result<Option<String>> {
    let rows = s
        .rows(
            "looking for the source table",
            "SELECT TABLE_NAME FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)",
            (
                src.db.as_str(),
                src.datatable.as_str(),
                src.retired_name().as_str(),
            ),
        )
        .await?;
    let names: Vec<String> = rows
        .iter()
        .map(|r| column(r, 0, "looking for the source table"))
        .collect::<Result<_>>()?;
    if names.contains(&src.datatable) {
        Ok(Some(src.datatable.clone()))
    } else {
        Ok(names.into_iter().next())
    }
}

/// Creates the change log and its triggers on the source's master, those that are missing.
/// True when a trigger had to be created: changes made before it were not logged, so the copy
/// must start from the beginning.
pub async fn install(s: &mut Session, src: &Part) -> Result<bool> {
    let log = src.qualified(&src.log_name());
    s.run(
        "creating the change log",
        &format!(
            "CREATE TABLE IF NOT EXISTS {log} (
                seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                k VARBINARY(255) NOT NULL
             ) ENGINE=InnoDB"
        ),
    )
    .await?;
    let present = triggers_on(s, src, &src.datatable).await?;
    let (names, _) = trigger_names(src);
    let table = src.table();
    let bodies = [
        (
            "AFTER INSERT",
            format!("INSERT INTO {log} (k) VALUES (NEW.k)"),
        ),
        (
            "AFTER UPDATE",
            format!(
                "BEGIN INSERT INTO {log} (k) VALUES (NEW.k); \
                 IF OLD.k <> NEW.k THEN INSERT INTO {log} (k) VALUES (OLD.k); END IF; END"
            ),
        ),
        (
            "AFTER DELETE",
            format!("INSERT INTO {log} (k) VALUES (OLD.k)"),
        ),
    ];
    let mut created = false;
    for (name, (when, body)) in names.iter().zip(bodies) {
        if present.contains(name) {
            continue;
        }
        s.run(
            "creating a change-log trigger",
            &format!(
                "CREATE TRIGGER IF NOT EXISTS {} {when} ON {table} FOR EACH ROW {body}",
                src.qualified(name)
            ),
        )
        .await?;
        created = true;
    }
    Ok(created)
}

/// Drops the change log and its triggers (the table may have its retired name by now).
pub async fn remove(s: &mut Session, src: &Part) -> Result<()> {
    let (names, _) = trigger_names(src);
    for name in &names {
        s.run(
            "dropping a change-log trigger",
            &format!("DROP TRIGGER IF EXISTS {}", src.qualified(name)),
        )
        .await?;
    }
    s.run(
        "dropping the change log",
        &format!("DROP TABLE IF EXISTS {}", src.qualified(&src.log_name())),
    )
    .await
}

/// Puts up the fence on the source table (under `table`, its current name).
pub async fn fence(s: &mut Session, src: &Part, table: &str, reshape: u64) -> Result<()> {
    let (_, names) = trigger_names(src);
    let message = format!(
        "{FENCE_TAG} partition {} is being moved (reshape {reshape}): write at its new home",
        src.id
    );
    for (name, when) in names.iter().zip(["INSERT", "UPDATE", "DELETE"]) {
        s.run(
            "fencing the source (a BEFORE trigger that refuses writes)",
            &format!(
                "CREATE TRIGGER IF NOT EXISTS {} BEFORE {when} ON {} FOR EACH ROW \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'",
                src.qualified(name),
                src.qualified(table),
            ),
        )
        .await?;
    }
    Ok(())
}

/// Takes the fence down.
pub async fn unfence(s: &mut Session, src: &Part) -> Result<()> {
    let (_, names) = trigger_names(src);
    for name in &names {
        s.run(
            "taking the fence down",
            &format!("DROP TRIGGER IF EXISTS {}", src.qualified(name)),
        )
        .await?;
    }
    Ok(())
}

/// Rows waiting in the source's change log.
async fn backlog(s: &mut Session, src: &Part) -> Result<u64> {
    let n: Option<u64> = s
        .first(
            "counting the change log",
            &format!("SELECT COUNT(*) FROM {}", src.qualified(&src.log_name())),
            (),
        )
        .await?;
    Ok(n.unwrap_or(0))
}

/// How much of a change log to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upto {
    /// At least this many log rows, or all there are (while servers write, the log may never
    /// be empty).
    Rows(u64),
    /// Every log row committed when this is called (its sequence numbers up to the largest
    /// then): with a range of keys locked, every change to them is among those.
    Now,
    /// Until the log is empty (once the fence stops the writes).
    Empty,
}

/// The largest sequence number in the source's change log (0 when empty).
async fn last_seq(s: &mut Session, src: &Part) -> Result<u64> {
    let n: Option<Option<u64>> = s
        .first(
            "reading the change log",
            &format!("SELECT MAX(seq) FROM {}", src.qualified(&src.log_name())),
            (),
        )
        .await?;
    Ok(n.flatten().unwrap_or(0))
}

/// What applying the log did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Keys whose logged changes were applied (a key logged twice in one round counts once).
    pub changes: u64,
    /// Log rows of keys the copy had not reached, dropped.
    pub skipped: u64,
    /// The distinct keys among them, in the order first seen (kept when asked for).
    pub keys: Vec<Vec<u8>>,
    /// The log rows applied but not deleted yet (with [`Delete::Later`]).
    pub seqs: Vec<u64>,
}

/// When the log rows applied are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delete {
    /// As each batch is applied.
    AsApplied,
    /// By the caller, with [`delete_applied`], once it holds no row locks on the source: a
    /// delete by a list of sequence numbers may scan, and so wait for, log rows that servers'
    /// writes inserted and have not committed, while those writes wait for the caller's locks.
    Later,
}

/// How to apply a change log.
#[derive(Debug, Clone)]
pub struct Apply {
    pub upto: Upto,
    /// Keep the keys applied, for comparing them afterwards.
    pub keep_keys: bool,
    pub delete: Delete,
    /// The copy has gone this far in the source's keys (`None`: all the way): log rows of keys
    /// after it are dropped, not applied, since the copy reads those rows later, as they are
    /// then.
    pub copied_to: Option<Vec<u8>>,
}

impl Apply {
    /// As much as `upto` says, deleting as it goes, every key, no keys kept.
    pub fn upto(upto: Upto) -> Apply {
        Apply {
            upto,
            keep_keys: false,
            delete: Delete::AsApplied,
            copied_to: None,
        }
    }
}

/// Applies the change log of `src` (whose table is `table` now) to the reshape's targets, as
/// `how` says.
pub async fn apply_log(
    sessions: &mut Sessions,
    r: &Reshape,
    src: &Part,
    table: &str,
    how: &Apply,
) -> Result<Applied> {
    let Apply {
        upto,
        keep_keys,
        delete,
        ref copied_to,
    } = *how;
    let mut applied = Applied::default();
    let log = src.qualified(&src.log_name());
    let table = src.qualified(table);
    let addr = src.addr();
    let bound = match upto {
        Upto::Now => Some(last_seq(sessions.get(&addr).await?, src).await?),
        _ => None,
    };
    // Log rows are read in sequence order after this one: rows applied and not deleted yet
    // are not read twice.
    let mut after = 0u64;
    loop {
        if let Upto::Rows(n) = upto {
            if applied.changes + applied.skipped >= n {
                break;
            }
        }
        let s = sessions.get(&addr).await?;
        let rows = s
            .rows(
                "reading the change log",
                &format!(
                    "SELECT seq, k FROM {log} WHERE seq > ? AND seq <= ? ORDER BY seq \
                     LIMIT {LOG_BATCH}"
                ),
                (after, bound.unwrap_or(u64::MAX)),
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut seen = BTreeSet::new();
        for row in &rows {
            seqs.push(column::<u64>(row, 0, "reading the change log")?);
            let k: Vec<u8> = column(row, 1, "reading the change log")?;
            if copied_to.as_ref().is_some_and(|c| k > *c) {
                applied.skipped += 1;
                continue;
            }
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
        after = seqs.iter().copied().max().unwrap_or(after);
        if keys.is_empty() {
            match delete {
                Delete::AsApplied => delete_applied(sessions, src, &seqs).await?,
                Delete::Later => applied.seqs.extend(&seqs),
            }
            continue;
        }
        // Each key's row as the source has it now.
        let marks = vec!["?"; keys.len()].join(",");
        let params: Vec<Value> = keys.iter().map(|k| Value::Bytes(k.clone())).collect();
        let found = s
            .rows(
                "reading changed rows from the source",
                &format!("SELECT k, v, modified_at, created_at FROM {table} WHERE k IN ({marks})"),
                params,
            )
            .await?;
        let mut present = BTreeSet::new();
        let mut data = Vec::with_capacity(found.len());
        for row in found {
            let d = DataRow::from_row(row)?;
            present.insert(d.k.clone());
            data.push(d);
        }
        let gone: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        write_rows(sessions, r, data).await?;
        delete_keys(sessions, r, gone).await?;
        applied.changes += keys.len() as u64;
        match delete {
            Delete::AsApplied => delete_applied(sessions, src, &seqs).await?,
            Delete::Later => applied.seqs.extend(&seqs),
        }
        if keep_keys {
            applied.keys.extend(keys);
        }
    }
    Ok(applied)
}

/// Deletes log rows `seqs` of `src` (applied already).
pub async fn delete_applied(sessions: &mut Sessions, src: &Part, seqs: &[u64]) -> Result<()> {
    let log = src.qualified(&src.log_name());
    for chunk in seqs.chunks(LOG_BATCH) {
        let list = chunk
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        sessions
            .get(&src.addr())
            .await?
            .run(
                "deleting applied log rows",
                &format!("DELETE FROM {log} WHERE seq IN ({list})"),
            )
            .await?;
    }
    Ok(())
}

/// Whether a catch-up keeps up with steady writes: rounds in a row that left no more log rows
/// than it applies in [`STEADY_SECS`].
#[derive(Debug, Default)]
struct Steady {
    rounds: u32,
}

impl Steady {
    /// Counts a round that left `waiting` rows, applying `rate` a second; true once
    /// [`STEADY_ROUNDS`] rounds in a row kept up.
    fn settled(&mut self, waiting: u64, rate: f64) -> bool {
        self.rounds = if (waiting as f64) <= rate * STEADY_SECS {
            self.rounds + 1
        } else {
            0
        };
        self.rounds >= STEADY_ROUNDS
    }
}

/// How a catch-up is going, after each round that did not end it.
#[derive(Debug, Clone, Copy)]
pub struct CatchUp {
    /// Changes applied so far, and per second.
    pub applied: u64,
    pub rate: f64,
    /// Log rows waiting to be applied, over every source.
    pub waiting: u64,
    /// More are waiting than half a minute or more ago: the writes outpace the catch-up.
    pub growing: bool,
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} changes applied ({:.0}/s), {} waiting",
            self.applied, self.rate, self.waiting
        )?;
        if self.growing {
            write!(
                f,
                " and growing: the writes to these partitions outpace the catch-up (it goes \
                 on; fewer writes let it finish, `--abort` undoes the reshape)"
            )?;
        }
        Ok(())
    }
}

/// Log rows waiting in every source's change log.
pub async fn waiting(sessions: &mut Sessions, r: &Reshape) -> Result<u64> {
    let mut waiting = 0;
    for src in &r.sources {
        waiting += backlog(sessions.get(&src.part.addr()).await?, &src.part).await?;
    }
    Ok(waiting)
}

/// Applies every source's change log in rounds until a round finds fewer than `calm` rows
/// (then what is left is small), or until for [`STEADY_ROUNDS`] rounds the backlog has been
/// no more than it applies in [`STEADY_SECS`] (under steady writes a round always finds the
/// writes made while the previous one ran, but it keeps up). Calls `tick` after each round
/// that did not end it. Under writes faster than it can apply, it goes on, and says so
/// through `tick`: nothing is gained by cutting over behind the writes. The changes applied.
pub async fn catch_up(
    sessions: &mut Sessions,
    r: &Reshape,
    calm: u64,
    tick: &mut dyn FnMut(&CatchUp) -> Result<()>,
) -> Result<u64> {
    let started = Instant::now();
    let mut total = 0;
    // The backlog as it was at least GROWING_AFTER ago, and as it is.
    let mut then: Option<(Instant, u64)> = None;
    let mut growing = false;
    let mut steady = Steady::default();
    loop {
        let mut round = 0;
        for src in &r.sources {
            let how = Apply::upto(Upto::Rows(CATCH_UP_ROUND));
            let applied = apply_log(sessions, r, &src.part, &src.part.datatable, &how).await?;
            round += applied.changes + applied.skipped;
            total += applied.changes;
        }
        if round < calm {
            return Ok(total);
        }
        let waiting = waiting(sessions, r).await?;
        let rate = total as f64 / started.elapsed().as_secs_f64().max(1e-3);
        if steady.settled(waiting, rate) {
            return Ok(total);
        }
        let now = Instant::now();
        match then {
            Some((at, _)) if now.duration_since(at) < GROWING_AFTER => {}
            Some((_, before)) => {
                growing = waiting > before;
                then = Some((now, waiting));
            }
            None => then = Some((now, waiting)),
        }
        tick(&CatchUp {
            applied: total,
            rate,
            waiting,
            growing,
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_up_under_steady_writes_ends_once_it_keeps_up() {
        let mut s = Steady::default();
        // 1,250 changes a second applied: up to 625 waiting keeps up.
        for _ in 0..STEADY_ROUNDS - 1 {
            assert!(!s.settled(570, 1_250.0));
        }
        // A round that fell behind starts the count again.
        assert!(!s.settled(700, 1_250.0));
        for _ in 0..STEADY_ROUNDS - 1 {
            assert!(!s.settled(300, 1_250.0));
        }
        assert!(s.settled(400, 1_250.0));
        // A growing backlog never settles.
        let mut g = Steady::default();
        assert!((0..100).all(|i| !g.settled(1_000 + i * 100, 1_250.0)));
    }

    #[test]
    fn a_catch_up_says_when_the_writes_outpace_it() {
        let mut c = CatchUp {
            applied: 20_000,
            rate: 1_250.4,
            waiting: 3_000,
            growing: false,
        };
        assert_eq!(
            c.to_string(),
            "20000 changes applied (1250/s), 3000 waiting"
        );
        c.growing = true;
        let text = c.to_string();
        assert!(
            text.starts_with("20000 changes applied (1250/s), 3000 waiting and growing: ")
                && text.contains("outpace")
                && text.contains("--abort"),
            "{text}"
        );
    }
}
