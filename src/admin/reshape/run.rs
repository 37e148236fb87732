//! A reshape from wherever the directory says it is to done (or, with `--abort`, undone),
//! with its report.
//!
//! Each step can be repeated: tables and triggers are created only when missing, the copy
//! starts from its recorded checkpoint, the log is applied by key. So when a host stops
//! answering the whole run starts again from the directory, after a pause, for up to
//! `--retry-for`; past that the tool stops with the reshape left resumable.

use std::io::Write;
use std::time::{Duration, Instant};

use super::capture;
use super::check::{check_all, Checked};
use super::copy::{copy_all, Copied};
use super::cutover::{self, drop_targets, unfence_all, CutOver};
use super::lag::Lag;
use super::record::{self, Reshape, State};
use super::sessions::Sessions;
use super::transitions;
use super::ReshapeOptions;
use crate::admin::progress::Progress;
use crate::admin::sql::{column, Query, Session};
use crate::error::{Error, ErrorKind, Result};

/// The change log is applied until a round brings fewer changes than this, before the
/// comparison and the cutover: the pause then only has to apply a few.
pub const CALM: u64 = 200;

/// What the steps of a reshape share.
pub struct Ctx<'o> {
    pub opts: &'o ReshapeOptions,
    /// The directory master, with the directory's schema as default.
    pub dirs: Session,
    pub sessions: Sessions,
}

/// What a finished reshape did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub id: u64,
    pub description: String,
    pub copied: Copied,
    pub checked: Checked,
    pub cutover: CutOver,
    /// The longest lag of a target's sibling seen during the copy.
    pub worst_lag: Duration,
    pub elapsed: Duration,
    pub warnings: Vec<String>,
}

/// Connects to the directory master and locks reshape `id` for this run (a named lock, so
/// that two runs never drive one reshape).
async fn open(opts: &ReshapeOptions, id: u64) -> Result<Session> {
    let mut dirs = opts
        .root
        .connect(&opts.master, Some(&opts.database))
        .await?;
    let got: Option<i64> = dirs
        .first(
            "locking the reshape",
            "SELECT GET_LOCK(CONCAT('thrudoc-reshape-', ?), 0)",
            (id,),
        )
        .await?;
    if got != Some(1) {
        return Err(Error::invalid(format!(
            "reshape {id} is being driven by another run of thrudoc-admin; nothing was changed"
        )));
    }
    Ok(dirs)
}

/// Carries reshape `id` through to done (or undoes it with `opts.abort`), trying again from
/// the directory's record when a host fails, for up to `opts.retry_for`.
pub async fn drive(opts: &ReshapeOptions, id: u64, out: &mut dyn Write) -> Result<Report> {
    let started = Instant::now();
    let mut progress = Progress::new(out, opts.tty);
    let p = &mut progress;
    let mut pause = Duration::from_millis(500);
    // What every attempt did adds up here.
    let mut report = Report {
        id,
        ..Report::default()
    };
    loop {
        let attempt = async {
            let dirs = open(opts, id).await?;
            let mut ctx = Ctx {
                opts,
                dirs,
                sessions: Sessions::new(&opts.root),
            };
            let result = if opts.abort {
                abort(&mut ctx, id, &mut report, p).await
            } else {
                advance(&mut ctx, id, &mut report, p).await
            };
            ctx.sessions.close().await;
            ctx.dirs.close().await;
            result
        }
        .await;
        match attempt {
            Ok(()) => {
                report.elapsed = started.elapsed();
                report.warnings = progress.take_warnings();
                return Ok(report);
            }
            Err(e)
                if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::OutcomeUnknown)
                    && started.elapsed() + pause < opts.retry_for =>
            {
                p.warn(format!(
                    "{e}; trying again in {:.1} s (--retry-for {} s)",
                    pause.as_secs_f64(),
                    opts.retry_for.as_secs()
                ))?;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                let how = if opts.abort {
                    "run the same command with --abort again to finish undoing it"
                } else {
                    "run the same command again to resume it, or with --abort to undo it"
                };
                return Err(e.note(format!(
                    "reshape {id} is left as the directory records it: {how}"
                )));
            }
        }
    }
}

/// From the recorded state to done, adding what it did to `report`.
async fn advance(
    ctx: &mut Ctx<'_>,
    id: u64,
    report: &mut Report,
    p: &mut Progress<'_>,
) -> Result<()> {
    let mut r = record::load(&mut ctx.dirs, id).await?;
    report.description = r.describe();
    match r.state {
        State::Done => {
            p.say(format_args!("{} is done", r.describe()))?;
            return cleanup(ctx, &r, p).await;
        }
        State::Aborted => {
            return Err(Error::invalid(format!(
                "{} was aborted; start a new one",
                r.describe()
            )))
        }
        State::Copying | State::Cutover => {}
    }
    for s in &r.sources {
        s.check_host(r.id)?;
    }
    p.say(format_args!("{} ({})", r.describe(), r.state))?;
    if r.state == State::Cutover {
        // Killed during a cutover, before its commit: the sources may be fenced with the
        // change logs grown since. Undo it (writes flow again at once), catch up, cut over anew.
        p.say("an interrupted cutover: undoing it first, then starting it again")?;
        cutover::undo(ctx, &mut r).await?;
    }

    // The targets' tables, on their masters and siblings, made like the first source's (an
    // original Thrudoc table keeps its column types, and so its checksums).
    let model = {
        let src = &r.sources[0].part;
        let s = ctx.sessions.get(&src.addr()).await?;
        show_create(s, &src.db, &src.datatable).await?
    };
    for t in &r.targets {
        let ddl = renamed_ddl(&model, &t.table())?;
        ctx.sessions
            .get(&t.addr())
            .await?
            .run("creating a target table", &ddl)
            .await
            .map_err(|e| e.context(t.describe()))?;
        if let Some(sib) = &t.sibling {
            if let Ok(s) = ctx.sessions.get(&sib.address()).await {
                // Replication brings it anyway; made here so that it is there at once.
                let _ = s.run("creating a target table on its sibling", &ddl).await;
            }
        }
    }
    let mut lag = Lag::new(&mut ctx.sessions, &r, ctx.opts.max_lag, p).await?;

    if r.state == State::Copying {
        // Changes captured before the first row is copied.
        for i in 0..r.sources.len() {
            let src = r.sources[i].part.clone();
            let s = ctx.sessions.get(&src.addr()).await?;
            if capture::install(s, &src).await? && r.sources[i].copied_to.is_some() {
                p.warn(format!(
                    "the change-log triggers of {} were missing: its copy starts again",
                    src.describe()
                ))?;
                r.sources[i].copied_to = None;
                r.sources[i].copy_done = false;
                transitions::checkpoint(&mut ctx.dirs, r.id, &r.sources[i]).await?;
            }
        }
        let copied = copy_all(ctx, &mut r, &mut lag, p).await?;
        report.copied.add(&copied);
        if copied.rows > 0 {
            p.say(format_args!(
            "copied {} rows ({:.1} MB) in {:.1} s: {:.0} rows/s, {:.1} MB/s ({:.1} s throttled \
             by the siblings' lag); {} changes applied meanwhile",
            copied.rows,
            copied.bytes as f64 / 1e6,
            copied.elapsed.as_secs_f64(),
            copied.rows_per_sec(),
            copied.mb_per_sec(),
            copied.throttled.as_secs_f64(),
            copied.changes
        ))?;
        }
    }

    cutover::hold(ctx, "copied").await;
    // Compared and caught up, then the cutover. One that fails is undone and the whole run
    // starts again from the directory's record (with fresh connections), in `drive`.
    catch_up(ctx, &r, p).await?;
    report.checked = check_all(ctx, &r, p).await?;
    p.say(format_args!(
        "equal: {} rows in {} ranges ({:.1} s)",
        report.checked.rows,
        report.checked.ranges,
        report.checked.elapsed.as_secs_f64(),
    ))?;
    if report.checked.repaired > 0 {
        p.warn(format!(
            "{} key ranges differed before the cutover and were copied again",
            report.checked.repaired
        ))?;
    }
    catch_up(ctx, &r, p).await?;
    report.cutover = cutover::cutover(ctx, &mut r, &mut lag, p).await?;
    report.worst_lag = report.worst_lag.max(lag.worst);
    cleanup(ctx, &r, p).await
}

/// `SHOW CREATE TABLE` of `db`.`table`.
async fn show_create(s: &mut Session, db: &str, table: &str) -> Result<String> {
    let rows = s
        .rows(
            "reading the source table's definition",
            &format!("SHOW CREATE TABLE `{db}`.`{table}`"),
            (),
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::internal(format!("SHOW CREATE TABLE {db}.{table}: no row")))?;
    column(row, 1, "reading the source table's definition")
}

/// `CREATE TABLE IF NOT EXISTS <qualified>` with the columns, keys and options of `ddl` (a
/// `SHOW CREATE TABLE` text).
fn renamed_ddl(ddl: &str, qualified: &str) -> Result<String> {
    let rest = ddl
        .strip_prefix("CREATE TABLE `")
        .and_then(|r| r.split_once("` "))
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error::internal(format!("an unexpected table definition: {ddl:.80}")))?;
    Ok(format!("CREATE TABLE IF NOT EXISTS {qualified} {rest}"))
}

/// Applies the change logs until they are caught up ([`capture::catch_up`]).
async fn catch_up(ctx: &mut Ctx<'_>, r: &Reshape, p: &mut Progress<'_>) -> Result<()> {
    let total = capture::catch_up(&mut ctx.sessions, r, CALM, &mut |c| {
        p.tick(format_args!("  catching up: {c}"))
    })
    .await?;
    if total > 0 {
        p.say(format_args!("caught up: {total} changes applied"))?;
    }
    Ok(())
}

/// After the commit: the change logs and their triggers are dropped (the fences stay on the
/// retired tables, which `gc` drops later). A host that does not answer is left for later.
async fn cleanup(ctx: &mut Ctx<'_>, r: &Reshape, p: &mut Progress<'_>) -> Result<()> {
    for src in &r.sources {
        let addr = src.part.addr();
        let removed = match ctx.sessions.get(&addr).await {
            Ok(s) => capture::remove(s, &src.part).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            p.warn(format!(
                "could not drop the change log of {} ({e}): `thrudoc-admin gc` drops it later",
                src.part.describe()
            ))?;
        }
    }
    Ok(())
}

/// Undoes reshape `id`: fences down and tables renamed back, change logs and targets dropped,
/// target rows deleted.
async fn abort(
    ctx: &mut Ctx<'_>,
    id: u64,
    report: &mut Report,
    p: &mut Progress<'_>,
) -> Result<()> {
    let r = record::load(&mut ctx.dirs, id).await?;
    report.description = r.describe();
    if !r.state.unfinished() {
        return Err(Error::invalid(format!(
            "{} is {}: there is nothing to undo",
            r.describe(),
            r.state
        )));
    }
    p.say(format_args!("undoing {} ({}) ...", r.describe(), r.state))?;
    unfence_all(ctx, &r).await?;
    p.say("  the sources take writes again")?;
    for src in &r.sources {
        let s = ctx.sessions.get(&src.part.addr()).await?;
        capture::remove(s, &src.part).await?;
    }
    drop_targets(ctx, &r).await?;
    let version = transitions::abort(&mut ctx.dirs, &r).await?;
    p.say(format_args!(
        "undone: change logs and target tables dropped, target rows deleted (directory version \
         {version})"
    ))
}

/// The summary of a finished reshape.
pub fn print_report(r: &Report, out: &mut dyn Write) -> Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{}: done in {:.1} s",
        r.description,
        r.elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "  copy:      {} rows, {:.1} MB, {:.0} rows/s, {:.1} MB/s; meanwhile {} changes applied, \
         {} to rows not copied yet left to the copy",
        r.copied.rows,
        r.copied.bytes as f64 / 1e6,
        r.copied.rows_per_sec(),
        r.copied.mb_per_sec(),
        r.copied.changes,
        r.copied.skipped
    )?;
    writeln!(
        out,
        "  lag:       siblings at most {:.1} s behind; copy throttled {:.1} s",
        r.worst_lag.as_secs_f64(),
        r.copied.throttled.as_secs_f64()
    )?;
    writeln!(
        out,
        "  check:     {} rows equal in {} ranges{}",
        r.checked.rows,
        r.checked.ranges,
        if r.checked.repaired > 0 {
            format!(" ({} copied again)", r.checked.repaired)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "  cutover:   writes waited {:.0} ms; {} changes applied while fenced; directory \
         version {}",
        r.cutover.pause.as_secs_f64() * 1e3,
        r.cutover.last_changes,
        r.cutover.version
    )?;
    if !r.warnings.is_empty() {
        writeln!(out, "  {} warnings (see above)", r.warnings.len())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_made_like_their_source() {
        let ddl = "CREATE TABLE `d_000000000001` (\n  `k` varbinary(255) NOT NULL,\n  PRIMARY KEY (`k`)\n) ENGINE=InnoDB";
        assert_eq!(
            renamed_ddl(ddl, "`thrudoc`.`d_000000000009`").unwrap(),
            "CREATE TABLE IF NOT EXISTS `thrudoc`.`d_000000000009` (\n  `k` varbinary(255) NOT NULL,\n  PRIMARY KEY (`k`)\n) ENGINE=InnoDB"
        );
        assert!(renamed_ddl("CREATE VIEW x", "`a`.`b`").is_err());
    }
}
