//! Every change a reshape makes to the directory, each one transaction: planning it, moving
//! its state on, recording the copy's progress, and the cutover's commit or the abort's.
//! ([`super::record`] reads what these write.)

use super::super::dirtx::{self, IfLost, Tx};
use super::super::sql::{column, Query, Session};
use super::record::{unfinished_of, Kind, Reshape, Source, State};
use crate::error::{Error, ErrorKind, Result};
use crate::store::mysql::directory::datatable_name;

/// A target to plan: its range and host.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTarget {
    pub start: f64,
    pub end: f64,
    pub host_id: u32,
}

/// What a lost answer to a reshape's directory commit means.
const IF_LOST: IfLost<'static> = IfLost {
    may_be: "the step may or may not have been recorded",
    look: "run the same command again: it finds out and carries on",
};

/// Plans a reshape in one directory transaction: the sources (live, neighbours, of one
/// bucket, in no other reshape, not frozen or failed over) are locked, the target rows are
/// inserted retired (named `d_<id>` as every datatable), and the reshape recorded as copying.
pub async fn plan(
    dirs: &mut Session,
    bucket: &str,
    kind: Kind,
    source_ids: &[u64],
    targets: &[PlannedTarget],
) -> Result<u64> {
    let planned = dirtx::change(dirs, IF_LOST, async |tx: &mut Tx<'_>| {
        plan_rows(tx, bucket, kind, source_ids, targets)
            .await
            .map(Some)
    })
    .await?;
    planned
        .map(|(id, _)| id)
        .ok_or_else(|| Error::internal("planning the reshape wrote nothing"))
}

async fn plan_rows(
    tx: &mut Tx<'_>,
    bucket: &str,
    kind: Kind,
    source_ids: &[u64],
    targets: &[PlannedTarget],
) -> Result<u64> {
    let list = source_ids
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let locked = tx
        .rows(
            "locking the partitions",
            &format!(
                "SELECT id, bucket, host_id, db FROM directory
                 WHERE id IN ({list}) AND retired_at IS NULL FOR UPDATE"
            ),
            (),
        )
        .await?;
    if locked.len() != source_ids.len() {
        return Err(Error::invalid(format!(
            "partition{} {list} {} not all live partitions of the directory any more; nothing \
             was changed",
            if source_ids.len() > 1 { "s" } else { "" },
            if source_ids.len() > 1 { "are" } else { "is" },
        )));
    }
    let mut db = String::new();
    for row in &locked {
        let b: String = column(row, 1, "locking the partitions")?;
        if b != bucket {
            return Err(Error::invalid(format!(
                "the partitions are of bucket `{b}`, not `{bucket}`; nothing was changed"
            )));
        }
        db = column(row, 3, "locking the partitions")?;
    }
    if let Some(other) = unfinished_of(tx, source_ids).await? {
        return Err(Error::invalid(format!(
            "reshape {other} of these partitions is in progress: run its command again to \
             finish it, or with --abort to undo it; nothing was changed"
        )));
    }
    let held: Option<u64> = tx
        .first(
            "looking for frozen or failed-over partitions",
            &format!(
                "SELECT (SELECT COUNT(*) FROM partition_frozen WHERE directory_id IN ({list}))
                      + (SELECT COUNT(*) FROM partition_moved WHERE directory_id IN ({list}))"
            ),
            (),
        )
        .await?;
    if held.unwrap_or(0) > 0 {
        return Err(Error::invalid(
            "a partition is frozen or failed over to its sibling (a failover or switchover is \
             under way): finish that first (`thrudoc-admin switchover`); nothing was changed",
        ));
    }
    tx.exec(
        "recording the reshape",
        "INSERT INTO reshape (bucket, kind, state, created_at, updated_at)
         VALUES (?, ?, 'copying', NOW(), NOW())",
        (bucket, kind.as_str()),
    )
    .await?;
    let reshape = tx
        .last_insert_id()
        .ok_or_else(|| Error::internal("the reshape insert returned no id"))?;
    for row in &locked {
        let id: u64 = column(row, 0, "locking the partitions")?;
        let host_id: u32 = column(row, 2, "locking the partitions")?;
        tx.exec(
            "recording the sources",
            "INSERT INTO reshape_partition (reshape_id, directory_id, role, host_id)
             VALUES (?, ?, 'source', ?)",
            (reshape, id, host_id),
        )
        .await?;
    }
    for t in targets {
        // Retired from the start: no server loads it until the cutover's commit.
        tx.exec(
            "inserting a target partition",
            "INSERT INTO directory (bucket, `start`, `end`, host_id, db, datatable, created_at,
                                    retired_at)
             VALUES (?, ?, ?, ?, ?, '', NOW(), NOW())",
            (bucket, t.start, t.end, t.host_id, db.as_str()),
        )
        .await?;
        let id = tx
            .last_insert_id()
            .ok_or_else(|| Error::internal("the target insert returned no id"))?;
        tx.exec(
            "naming a target's datatable",
            "UPDATE directory SET datatable = ? WHERE id = ?",
            (datatable_name(id).as_str(), id),
        )
        .await?;
        tx.exec(
            "recording the targets",
            "INSERT INTO reshape_partition (reshape_id, directory_id, role, host_id)
             VALUES (?, ?, 'target', ?)",
            (reshape, id, t.host_id),
        )
        .await?;
    }
    Ok(reshape)
}

/// Moves reshape `id` from `from` to `to` (no version bump: servers do not read reshapes).
/// [`ErrorKind::Unavailable`] when it is not in `from`.
pub async fn set_state(dirs: &mut Session, id: u64, from: State, to: State) -> Result<()> {
    dirs.exec(
        "recording the reshape's state",
        "UPDATE reshape SET state = ?, updated_at = NOW() WHERE id = ? AND state = ?",
        (to.as_str(), id, from.as_str()),
    )
    .await?;
    if dirs.conn.affected_rows() != 1 {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("reshape {id} is no longer {from} (another run of the tool moved it on?)"),
        ));
    }
    Ok(())
}

/// Records how far a source's copy has come.
pub async fn checkpoint(dirs: &mut Session, id: u64, source: &Source) -> Result<()> {
    dirs.exec(
        "recording the copy's progress",
        "UPDATE reshape_partition SET copied_to = ?, copy_done = ?
         WHERE reshape_id = ? AND directory_id = ?",
        (
            source.copied_to.clone(),
            u8::from(source.copy_done),
            id,
            source.part.id,
        ),
    )
    .await
}

/// The state of reshape `id`, its row locked for the rest of the transaction.
async fn locked_state(tx: &mut Tx<'_>, id: u64) -> Result<Option<String>> {
    tx.first(
        "locking the reshape",
        "SELECT state FROM reshape WHERE id = ? FOR UPDATE",
        (id,),
    )
    .await
}

/// The cutover's commit, one directory transaction with the version bumped: the sources
/// retire under their new names, the targets go live, the reshape is done. The new version.
pub async fn commit(dirs: &mut Session, r: &Reshape) -> Result<u64> {
    let sources = r
        .sources
        .iter()
        .map(|s| s.part.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let targets = r
        .targets
        .iter()
        .map(|t| t.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let id = r.id;
    let committed = dirtx::change(dirs, IF_LOST, async |tx: &mut Tx<'_>| {
        let state = locked_state(tx, id).await?;
        if state.as_deref() != Some("cutover") {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "reshape {id} is {} now, not in cutover",
                    state.as_deref().unwrap_or("gone")
                ),
            ));
        }
        let live = tx
            .rows(
                "locking the sources",
                &format!(
                    "SELECT id FROM directory WHERE id IN ({sources}) AND retired_at IS NULL \
                     FOR UPDATE"
                ),
                (),
            )
            .await?;
        if live.len() != r.sources.len() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the sources are no longer all live in the directory",
            ));
        }
        tx.exec(
            "retiring the sources",
            &format!(
                "UPDATE directory SET retired_at = NOW(), datatable = CONCAT('r_', LPAD(id, 12, '0'))
                 WHERE id IN ({sources})"
            ),
            (),
        )
        .await?;
        tx.exec(
            "making the targets live",
            &format!("UPDATE directory SET retired_at = NULL WHERE id IN ({targets})"),
            (),
        )
        .await?;
        tx.exec(
            "recording the reshape as done",
            "UPDATE reshape SET state = 'done', updated_at = NOW(), finished_at = NOW()
             WHERE id = ?",
            (id,),
        )
        .await?;
        Ok(Some(()))
    })
    .await?;
    committed
        .map(|((), v)| v)
        .ok_or_else(|| Error::internal("the cutover's commit changed nothing"))
}

/// The abort's directory transaction: the target rows deleted, the reshape aborted.
pub async fn abort(dirs: &mut Session, r: &Reshape) -> Result<u64> {
    let id = r.id;
    let targets: Vec<u64> = r.targets.iter().map(|t| t.id).collect();
    let done = dirtx::change(dirs, IF_LOST, async |tx: &mut Tx<'_>| {
        let state = locked_state(tx, id).await?;
        if !matches!(state.as_deref(), Some("copying" | "cutover")) {
            return Err(Error::invalid(format!(
                "reshape {id} is {}: there is nothing to undo",
                state.as_deref().unwrap_or("gone")
            )));
        }
        for t in &targets {
            tx.exec(
                "deleting a target row",
                "DELETE FROM directory WHERE id = ? AND retired_at IS NOT NULL",
                (t,),
            )
            .await?;
        }
        tx.exec(
            "recording the reshape as aborted",
            "UPDATE reshape SET state = 'aborted', updated_at = NOW(), finished_at = NOW()
             WHERE id = ?",
            (id,),
        )
        .await?;
        Ok(Some(()))
    })
    .await?;
    done.map(|((), v)| v)
        .ok_or_else(|| Error::internal("the abort changed nothing"))
}
