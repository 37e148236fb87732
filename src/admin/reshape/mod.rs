//! Moving, splitting and merging partitions while servers read and write them: the Directory
//! Manager of `thrudoc-admin move`, `split`, `merge`, and of `rebalance` and `drain`, which
//! are made of those steps.
//!
//! Every one is a *reshape*: source partitions (one, or two neighbours for a merge) become
//! target partitions (one, or two halves for a split) that cover the same hash range, each in a
//! new table on its host (whose sibling holds the copy by replication). Its state lives in the
//! directory (`reshape`, `reshape_partition`; the targets are directory rows that stay retired,
//! so no server loads them, until the cutover), so a tool killed at any step resumes when the
//! same command runs again, or undoes it with `--abort`.
//!
//! ```text
//!   plan ──▶ COPYING ───────────────────────────────▶ CUTOVER ─────────────▶ DONE
//!            capture: triggers log every changed key    fence: triggers refuse writes
//!            copy: rows in key order, throttled         drain: the last changes
//!            catch up: changed keys read again          check: those keys, one by one
//!            check: key ranges compared under           rename: old table → r_<id>
//!                   shared locks                        commit: targets live, sources
//!                                                               retired, version bumped
//!      --abort from COPYING or CUTOVER (before the commit) ──▶ ABORTED: fences and triggers
//!      dropped, the old table renamed back, the targets dropped
//! ```
//!
//! - [`record`]: the reshape as the directory holds it, and reading it back;
//!   [`transitions`]: every change to it (planning, state, progress, commit, abort).
//! - [`capture`]: on each source master, the change log and its triggers, the fence, and
//!   applying logged changes to the targets.
//! - [`copy`]: the bulk copy, throttled by the targets' replication lag ([`lag`]).
//! - [`check`]: the comparison of sources and targets before the cutover.
//! - [`cutover`]: the write pause, from the fence to the directory commit.
//! - [`run`]: the steps in order, resumed after a failure, and the summary.
//! - [`commands`]: `move`, `split` and `merge`: which partitions, where to.
//! - [`plan`]: the splits and moves that even out a bucket; [`rebalance`]: `rebalance` and
//!   `drain`, which print such a plan and carry it out.
//!
//! What servers do meanwhile: reads go to the old table until it is renamed, then wait for
//! the directory that names the new home; writes wait from the fence to the commit (see
//! `crate::store::mysql::relocate`). No write can land in the old table after the fence, however
//! old the directory of the server that sends it.

pub mod capture;
pub mod check;
pub mod commands;
pub mod copy;
pub mod cutover;
pub mod lag;
pub mod plan;
pub mod rebalance;
pub mod record;
pub mod run;
pub mod sessions;
pub mod transitions;

use std::time::Duration;

use super::sql::Login;
use crate::mysql::HostAddr;

/// What every reshape command is given.
#[derive(Debug, Clone)]
pub struct ReshapeOptions {
    /// The directory master.
    pub master: HostAddr,
    pub database: String,
    pub root: Login,
    /// Copy no faster than the targets' siblings apply: their replication lag stays under this.
    pub max_lag: Duration,
    /// Rows per copy statement.
    pub chunk_rows: usize,
    /// Undo the reshape in progress instead of carrying it on.
    pub abort: bool,
    /// How long to keep trying when a host does not answer before giving up (resumably).
    pub retry_for: Duration,
    /// Most rows copied per second (0: no limit besides the lag).
    pub max_rate: u64,
    pub tty: bool,
    /// Test hook: stop for this long when the reshape reaches this step (`last-chunk`: the last
    /// rows of a source read and written; `copied`, `fenced`, `renamed`), so that a test can
    /// kill the tool there or change a table behind its back.
    pub hold_at: Option<(String, Duration)>,
}
