//! Requests that meet a partition at its old home while `thrudoc-admin` moves it.
//!
//! A move's cutover first fences the old table (its triggers refuse every write), then renames
//! it, then commits the directory that names the new home. A request routed by the directory
//! before that commit meets the fence or the missing table: the statement did nothing, and the
//! error is marked [`Error::moved`]. The store then waits a little, reloads the directory (one
//! reload serves every request waiting at that moment) and routes the request again, for at
//! most `MYSQL_MOVE_WAIT_MS`; so a cutover is a pause of a fraction of a second for the clients
//! of that partition, not an error.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::routing::Routing;
use super::{Inner, MysqlStore};
use crate::error::{Error, Result};

/// The first wait before the directory is read again; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// One request's waiting for a move's cutover.
struct Waiting {
    started: Instant,
    pause: Duration,
}

impl Waiting {
    fn new() -> Waiting {
        Waiting {
            started: Instant::now(),
            pause: FIRST_PAUSE,
        }
    }
}

impl Inner {
    /// Waits a little and has the directory read again (once for every request that met a
    /// moved partition before the read starts). False when the request has waited
    /// `MYSQL_MOVE_WAIT_MS` already.
    async fn await_move(&self, waiting: &mut Waiting) -> bool {
        let failed_at = Instant::now();
        let left = self
            .config
            .move_wait
            .saturating_sub(waiting.started.elapsed());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(waiting.pause.min(left)).await;
        waiting.pause = (waiting.pause * 2).min(LONGEST_PAUSE);
        self.refresh(failed_at).await;
        true
    }

    /// Reads the directory's version, and loads it when it moved, unless a read that started
    /// after `since` has already done so.
    async fn refresh(&self, since: Instant) {
        let _one_at_a_time = self.refreshing.lock().await;
        let last = *self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t >= since) {
            return;
        }
        let started = Instant::now();
        let outcome = match self.poll().await {
            Ok(true) => self.reload().await.map(|_| ()),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => *self.refreshed.lock().unwrap_or_else(|p| p.into_inner()) = Some(started),
            Err(e) => tracing::debug!(error = %e, "reading the directory for a moved partition"),
        }
    }
}

/// What a request that waited out `MYSQL_MOVE_WAIT_MS` is told.
fn gave_up(e: Error, wait: Duration) -> Error {
    e.note(format!(
        "the partition is being moved and the directory named no new home for it within {} ms; \
         nothing was done, retry",
        wait.as_millis()
    ))
}

impl MysqlStore {
    /// Runs `op` with the current routing, and again with a fresh one while it fails at a
    /// partition's old home, for at most `MYSQL_MOVE_WAIT_MS`.
    pub(super) async fn relocating<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Arc<Routing>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut waiting = Waiting::new();
        loop {
            match op(self.routing()).await {
                Err(e) if e.is_moved() => {
                    if !self.inner.await_move(&mut waiting).await {
                        return Err(gave_up(e, self.inner.config.move_wait));
                    }
                }
                other => return other,
            }
        }
    }

    /// [`MysqlStore::relocating`] for a batch: `op` gives one result per item, and only the
    /// items that failed at a partition's old home are run again (in their order, so two writes
    /// of one key, which always share a partition, keep theirs).
    pub(super) async fn relocating_each<E, T, F, Fut>(&self, items: Vec<E>, op: F) -> Vec<Result<T>>
    where
        E: Clone,
        F: Fn(Arc<Routing>, Vec<E>) -> Fut,
        Fut: Future<Output = Vec<Result<T>>>,
    {
        let mut waiting = Waiting::new();
        let mut results = op(self.routing(), items.clone()).await;
        loop {
            let moved: Vec<usize> = (0..results.len())
                .filter(|&i| matches!(&results[i], Err(e) if e.is_moved()))
                .collect();
            if moved.is_empty() {
                return results;
            }
            if !self.inner.await_move(&mut waiting).await {
                let wait = self.inner.config.move_wait;
                for i in moved {
                    if let Err(e) = &results[i] {
                        results[i] = Err(gave_up(e.clone(), wait));
                    }
                }
                return results;
            }
            let again: Vec<E> = moved.iter().map(|&i| items[i].clone()).collect();
            let outcomes = op(self.routing(), again).await;
            for (i, outcome) in moved.into_iter().zip(outcomes) {
                results[i] = outcome;
            }
        }
    }
}
