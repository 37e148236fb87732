//! Changes to the directory: one transaction on the directory master that either commits with
//! the version bumped, or rolls back and leaves the directory as it was. Every command that
//! changes the directory (create-tablename, failover, switchover) goes through [`change`], so
//! each says the same, true thing when the master's answer to the commit is lost.

use std::time::Duration;

use mysql_async::{Transaction, TxOpts};

use super::sql::{self, Query, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{Failure, HostAddr};

/// What a directory error says when the transaction was rolled back.
pub const UNCHANGED: &str = "the directory transaction was rolled back: the directory is unchanged";

/// The open transaction of a directory change, each statement under the session's deadline.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    addr: HostAddr,
    limit: Duration,
}

impl<'a> Query for Tx<'a> {
    type Conn = Transaction<'a>;
    fn target(&mut self) -> (&mut Transaction<'a>, &HostAddr, Duration) {
        (&mut self.tx, &self.addr, self.limit)
    }
}

impl Tx<'_> {
    /// The id the last `INSERT` made.
    pub fn last_insert_id(&self) -> Option<u64> {
        self.tx.last_insert_id()
    }
}

/// What a lost answer to the commit means, for the operator: what `may_be` true, and how to
/// `look`.
pub struct IfLost<'a> {
    pub may_be: &'a str,
    pub look: &'a str,
}

/// Runs `body` in one transaction on the directory master `dirs`. `Ok(Some(t))` from the body
/// commits with the version bumped and gives `(t, version)`; `Ok(None)` (nothing to change)
/// and an error roll back, the error noting that the directory is unchanged. A commit whose
/// answer is lost is [`ErrorKind::OutcomeUnknown`], and says what `lost` says.
pub async fn change<T, F>(dirs: &mut Session, lost: IfLost<'_>, body: F) -> Result<Option<(T, u64)>>
where
    F: AsyncFnOnce(&mut Tx<'_>) -> Result<Option<T>>,
{
    let (addr, limit) = (dirs.addr.clone(), dirs.timeout);
    let tx = sql::deadline(
        &addr,
        "starting the directory transaction",
        limit,
        dirs.conn.start_transaction(TxOpts::default()),
    )
    .await?;
    let mut tx = Tx { tx, addr, limit };
    match body(&mut tx).await {
        Ok(Some(t)) => commit(tx, &lost).await.map(|v| Some((t, v))),
        Ok(None) => {
            rollback(tx).await;
            Ok(None)
        }
        Err(e) => {
            rollback(tx).await;
            Err(e.note(UNCHANGED))
        }
    }
}

async fn rollback(tx: Tx<'_>) {
    // A timed-out rollback, or a dropped connection, is left to the server, which rolls an
    // uncommitted transaction back when the session ends.
    let _ = tokio::time::timeout(tx.limit, tx.tx.rollback()).await;
}

/// Bumps the directory version and commits. Until the commit is sent, a failure rolls back and
/// leaves the directory unchanged; a commit whose answer is lost may have happened.
async fn commit(mut tx: Tx<'_>, lost: &IfLost<'_>) -> Result<u64> {
    let (master, limit) = (tx.addr.clone(), tx.limit);
    let bump = crate::store::mysql::directory::bump_version(&mut tx.tx);
    let version = match tokio::time::timeout(limit, bump).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            rollback(tx).await;
            return Err(e.context(format!("on {master}")).note(UNCHANGED));
        }
        // Dropping the connection rolls the transaction back on the server.
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("bumping the directory version on {master}: no answer within {limit:?}"),
            )
            .note(UNCHANGED))
        }
    };
    let (may_be, look) = (lost.may_be, lost.look);
    match tokio::time::timeout(limit, tx.tx.commit()).await {
        Ok(Ok(())) => Ok(version),
        // The server answered: the commit failed and the transaction is gone.
        Ok(Err(e)) if matches!(e, mysql_async::Error::Server(_)) => {
            let what = format!("committing the directory on {master}");
            Err(Failure::for_operator(e, what).error.note(UNCHANGED))
        }
        Ok(Err(e)) => Err(Failure::for_operator(
            e,
            format!("committing the directory on {master}: the connection failed"),
        )
        .error
        .with_kind(ErrorKind::OutcomeUnknown)
        .note(format!("so {may_be}; {look}"))),
        Err(_) => Err(Error::new(
            ErrorKind::OutcomeUnknown,
            format!("committing the directory on {master}: no answer within {limit:?}"),
        )
        .note(format!("so {may_be}; {look}"))),
    }
}
