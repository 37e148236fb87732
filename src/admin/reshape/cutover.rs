//! The cutover: the only time writes to the reshaped partitions wait.
//!
//! 1. The reshape is recorded as in cutover (so a tool killed from here on resumes here).
//! 2. The fence goes up on every source: from now on no write reaches them.
//! 3. The change log is applied until empty: the targets now hold every write ever
//!    acknowledged on the sources. The keys it held are compared one by one.
//! 4. The targets' siblings must have everything (a failover right after the cutover reads
//!    there).
//! 5. Each source table is renamed `r_<id>`: a server that still routes there fails at once
//!    (no such table), reads included, and asks the directory again; nothing can be read from
//!    the old table any more, so no key is readable in two places. The sources' siblings get
//!    a moment to apply the rename too (they serve reads when a master is down).
//! 6. One directory transaction retires the sources and makes the targets live.
//!
//! Steps 2 to 5 are undone (rename back, fence down, back to copying) when one fails before
//! the commit; after the commit there is nothing to undo. The write pause is from 2 to 6.

use std::time::{Duration, Instant};

use super::capture::{self, apply_log, Apply, Upto};
use super::check::same_rows;
use super::lag::Lag;
use super::record::{Reshape, State};
use super::run::Ctx;
use super::transitions;
use crate::admin::progress::Progress;
use crate::admin::replica;
use crate::admin::sql::{quote_ident, Query};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::HostAddr;

/// How long the targets' siblings may take to apply the last changes during the pause.
const SIBLING_WAIT: Duration = Duration::from_secs(2);

/// What the cutover did.
#[derive(Debug, Clone, Default)]
pub struct CutOver {
    /// From the fence to the commit: writes to the partitions waited this long at most.
    pub pause: Duration,
    /// Changes applied while fenced.
    pub last_changes: u64,
    pub version: u64,
}

/// Runs the cutover of `r` (in state copying or cutover), and records it done.
pub async fn cutover(
    ctx: &mut Ctx<'_>,
    r: &mut Reshape,
    lag: &mut Lag,
    p: &mut Progress<'_>,
) -> Result<CutOver> {
    if r.state == State::Copying {
        transitions::set_state(&mut ctx.dirs, r.id, State::Copying, State::Cutover).await?;
        r.state = State::Cutover;
    }
    let started = Instant::now();
    match fenced(ctx, r, lag, p, started).await {
        Ok(done) => Ok(done),
        Err(e) if e.kind() == ErrorKind::OutcomeUnknown => Err(e),
        Err(e) => {
            // Not committed: undo the fence and the rename, and go back to copying.
            let undone = undo(ctx, r).await;
            let note = match undone {
                Ok(()) => "the cutover was undone: the sources serve reads and writes as before"
                    .to_string(),
                Err(u) => format!(
                    "undoing the cutover failed too ({u}): the sources stay fenced until the \
                     same command runs again (or runs with --abort)"
                ),
            };
            Err(e.note(note))
        }
    }
}

async fn fenced(
    ctx: &mut Ctx<'_>,
    r: &mut Reshape,
    lag: &mut Lag,
    p: &mut Progress<'_>,
    started: Instant,
) -> Result<CutOver> {
    // The sources' tables under their names now (a resumed cutover may have renamed them).
    let mut names = Vec::new();
    for src in &r.sources {
        let s = ctx.sessions.get(&src.part.addr()).await?;
        let name = capture::current_name(s, &src.part).await?.ok_or_else(|| {
            Error::internal(format!(
                "{}: neither `{}` nor `{}` exists on its host",
                src.part.describe(),
                src.part.datatable,
                src.part.retired_name()
            ))
        })?;
        names.push(name);
    }
    // The directory master must answer for the commit: a pause that cannot end is not started.
    ctx.dirs
        .run("checking that the directory master answers", "SELECT 1")
        .await?;
    // Sessions to the sources' siblings, opened before the pause rather than in it (one that
    // does not answer is only warned about, after the rename).
    let mut siblings = Vec::new();
    for src in &r.sources {
        if let Some(sibling) = &src.part.sibling {
            match ctx.sessions.get(&sibling.address()).await {
                Ok(_) => siblings.push(sibling.address()),
                Err(e) => p.warn(format!(
                    "the source's sibling {} does not answer ({e}): the cutover goes on without it",
                    sibling.address()
                ))?,
            }
        }
    }
    p.say("cutover: fencing the sources (writes to them wait from now on) ...")?;
    let fence_at = Instant::now();
    for (src, name) in r.sources.iter().zip(&names) {
        let s = ctx.sessions.get(&src.part.addr()).await?;
        capture::fence(s, &src.part, name, r.id).await?;
    }
    hold(ctx, "fenced").await;
    let mut last = 0;
    let mut keys = Vec::new();
    for (src, name) in r.sources.iter().zip(&names) {
        let how = Apply {
            keep_keys: true,
            ..Apply::upto(Upto::Empty)
        };
        let applied = apply_log(&mut ctx.sessions, r, &src.part, name, &how).await?;
        last += applied.changes;
        keys.extend(applied.keys);
    }
    if let Some(key) = same_rows(ctx, r, &names, &keys).await? {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "key {key:?} differs between the sources and the targets after the last changes"
            ),
        ));
    }
    if !lag.caught_up(&mut ctx.sessions, SIBLING_WAIT).await? {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "a target's sibling did not apply the copy within {} s",
                SIBLING_WAIT.as_secs()
            ),
        ));
    }
    for (src, name) in r.sources.iter().zip(names.iter_mut()) {
        if *name == src.part.retired_name() {
            continue;
        }
        let s = ctx.sessions.get(&src.part.addr()).await?;
        s.run(
            "renaming the source table (reads of it fail from now on)",
            &format!(
                "RENAME TABLE {} TO {}",
                src.part.table(),
                src.part.qualified(&src.part.retired_name())
            ),
        )
        .await?;
        *name = src.part.retired_name();
    }
    hold(ctx, "renamed").await;
    rename_reached_siblings(ctx, r, &siblings, p).await?;
    let version = transitions::commit(&mut ctx.dirs, r).await?;
    r.state = State::Done;
    let pause = fence_at.elapsed();
    p.say(format_args!(
        "cutover committed: directory version {version}; writes waited {:.0} ms ({} last \
         changes applied while fenced; {:.0} ms from the start of the cutover)",
        pause.as_secs_f64() * 1e3,
        last,
        started.elapsed().as_secs_f64() * 1e3
    ))?;
    Ok(CutOver {
        pause,
        last_changes: last,
        version,
    })
}

/// Waits (briefly) for each source's sibling to apply the rename: a server that still routes
/// to the old table and finds its master down reads the sibling, and must fail there too
/// rather than read a table that no longer takes writes. A sibling that does not answer, or
/// lags more than [`SIBLING_WAIT`], is said and not waited for: it is no worse than the lag a
/// failover always reads at.
async fn rename_reached_siblings(
    ctx: &mut Ctx<'_>,
    r: &Reshape,
    reachable: &[HostAddr],
    p: &mut Progress<'_>,
) -> Result<()> {
    for src in &r.sources {
        let Some(sibling) = src.part.sibling.as_ref().map(|s| s.address()) else {
            continue;
        };
        if !reachable.contains(&sibling) {
            continue;
        }
        let master = src.part.addr();
        let reached = tokio::time::timeout(SIBLING_WAIT + Duration::from_secs(1), async {
            let sibling_server = replica::server_id(ctx.sessions.get(&sibling).await?).await?;
            let pos = replica::binlog_pos(ctx.sessions.get(&master).await?)
                .await?
                .without_server(sibling_server);
            let s = ctx.sessions.get(&sibling).await?;
            replica::wait_applied(s, &pos, SIBLING_WAIT, &mut |_, _| Ok(())).await
        })
        .await
        .unwrap_or(Ok(false));
        match reached {
            Ok(true) => {}
            Ok(false) => p.warn(format!(
                "{sibling} has not applied the rename of {} within {} s: until it does, a server \
                 reading there while {master} is down may read the old table",
                src.part.datatable,
                SIBLING_WAIT.as_secs()
            ))?,
            Err(e) => p.warn(format!(
                "cannot see whether {sibling} applied the rename of {} ({e})",
                src.part.datatable
            ))?,
        }
    }
    Ok(())
}

/// The test hook of [`super::ReshapeOptions::hold_at`]: stops at step `step` for a while.
pub async fn hold(ctx: &Ctx<'_>, step: &str) {
    if let Some((at, wait)) = &ctx.opts.hold_at {
        if at == step {
            eprintln!("thrudoc-admin: holding at `{step}` for {wait:?} (--hold-at)");
            tokio::time::sleep(*wait).await;
        }
    }
}

/// Undoes an uncommitted cutover: the sources' tables get their names back, the fences come
/// down, the reshape goes back to copying.
pub async fn undo(ctx: &mut Ctx<'_>, r: &mut Reshape) -> Result<()> {
    unfence_all(ctx, r).await?;
    if r.state == State::Cutover {
        transitions::set_state(&mut ctx.dirs, r.id, State::Cutover, State::Copying).await?;
        r.state = State::Copying;
    }
    Ok(())
}

/// Renames every source table back to its live name and takes its fence down.
pub async fn unfence_all(ctx: &mut Ctx<'_>, r: &Reshape) -> Result<()> {
    for src in &r.sources {
        let s = ctx.sessions.get(&src.part.addr()).await?;
        if capture::current_name(s, &src.part).await?.as_deref()
            == Some(src.part.retired_name().as_str())
        {
            s.run(
                "renaming the source table back",
                &format!(
                    "RENAME TABLE {} TO {}",
                    src.part.qualified(&src.part.retired_name()),
                    src.part.table()
                ),
            )
            .await?;
        }
        capture::unfence(s, &src.part).await?;
    }
    Ok(())
}

/// `DROP TABLE IF EXISTS` of the targets, on their masters (it replicates to the siblings).
pub async fn drop_targets(ctx: &mut Ctx<'_>, r: &Reshape) -> Result<()> {
    for t in &r.targets {
        let s = ctx.sessions.get(&t.addr()).await?;
        s.run(
            "dropping a target table",
            &format!(
                "DROP TABLE IF EXISTS {}.{}",
                quote_ident(&t.db),
                quote_ident(&t.datatable)
            ),
        )
        .await?;
    }
    Ok(())
}
