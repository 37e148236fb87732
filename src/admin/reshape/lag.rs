//! Keeping the targets' siblings within `--max-lag` of their masters while the copy writes.
//!
//! After each chunk the copy notes each target master's GTID position and when it wrote it. A
//! position noted more than `--max-lag` ago must be applied on the sibling by now; when it is
//! not, the copy waits until it is. So the copy never runs more than `--max-lag` ahead of a
//! sibling, whatever else the master is writing. A sibling that cannot be reached is not
//! waited for (said once): there is no lag to keep while it is down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::super::replica;
use super::record::Reshape;
use super::sessions::Sessions;
use crate::admin::progress::Progress;
use crate::error::Result;
use crate::mysql::GtidPos;
use crate::mysql::HostAddr;

/// One target master and its sibling.
struct Watched {
    master: HostAddr,
    sibling: HostAddr,
    /// The sibling's `server_id`: its own transactions, which it never applies as a slave,
    /// are left out of the master's positions.
    sibling_server: u32,
    /// Positions written, oldest first, not yet known applied on the sibling.
    pending: VecDeque<(Instant, GtidPos)>,
}

/// The lag watch of one reshape.
pub struct Lag {
    max: Duration,
    watched: Vec<Watched>,
    /// The longest lag seen at a check.
    pub worst: Duration,
    /// The lag at the last check.
    now: Duration,
    last_check: Instant,
}

impl Lag {
    /// Watches every target host that has a sibling.
    pub async fn new(
        sessions: &mut Sessions,
        r: &Reshape,
        max: Duration,
        p: &mut Progress<'_>,
    ) -> Result<Lag> {
        let mut watched: Vec<Watched> = Vec::new();
        for t in &r.targets {
            let Some(sibling) = &t.sibling else {
                p.warn(format!(
                    "{} has no sibling: nothing holds a copy of {}",
                    t.addr(),
                    t.describe()
                ))?;
                continue;
            };
            if watched.iter().any(|w| w.master == t.addr()) {
                continue;
            }
            let sibling = sibling.address();
            let sibling_server = match sessions.get(&sibling).await {
                Ok(s) => replica::server_id(s).await?,
                Err(e) => {
                    p.warn(format!(
                        "the target's sibling {sibling} does not answer ({e}): its lag is not \
                         watched"
                    ))?;
                    continue;
                }
            };
            watched.push(Watched {
                master: t.addr(),
                sibling,
                sibling_server,
                pending: VecDeque::new(),
            });
        }
        Ok(Lag {
            max,
            watched,
            worst: Duration::ZERO,
            now: Duration::ZERO,
            last_check: Instant::now(),
        })
    }

    /// After a write to the targets: notes their positions, and waits while a sibling is more
    /// than the allowed lag behind. The time spent waiting.
    pub async fn after_write(
        &mut self,
        sessions: &mut Sessions,
        p: &mut Progress<'_>,
    ) -> Result<Duration> {
        let mut waited = Duration::ZERO;
        let check_all = self.last_check.elapsed() >= Duration::from_secs(1);
        let max = self.max;
        let mut lost: Vec<usize> = Vec::new();
        let mut seen = Duration::ZERO;
        for (i, w) in self.watched.iter_mut().enumerate() {
            let pos = replica::binlog_pos(sessions.get(&w.master).await?)
                .await?
                .without_server(w.sibling_server);
            w.pending.push_back((Instant::now(), pos));
            let due = w.pending.front().is_some_and(|(at, _)| at.elapsed() >= max);
            if !due && !check_all {
                continue;
            }
            match settle(w, sessions, max, p).await {
                Ok((w_waited, lag)) => {
                    waited += w_waited;
                    self.worst = self.worst.max(lag);
                    seen = seen.max(lag);
                }
                Err(e) => {
                    p.warn(format!(
                        "lost the target's sibling {} ({e}): its lag is no longer watched",
                        w.sibling
                    ))?;
                    sessions.drop_session(&w.sibling).await;
                    lost.push(i);
                }
            }
        }
        for i in lost.into_iter().rev() {
            self.watched.remove(i);
        }
        if check_all {
            self.last_check = Instant::now();
            self.now = seen;
        }
        Ok(waited)
    }

    /// Waits until every watched sibling has applied everything its master has now, for at most
    /// `limit`. False when one has not by then.
    pub async fn caught_up(&mut self, sessions: &mut Sessions, limit: Duration) -> Result<bool> {
        let started = Instant::now();
        for w in &self.watched {
            let pos = replica::binlog_pos(sessions.get(&w.master).await?)
                .await?
                .without_server(w.sibling_server);
            let left = limit.saturating_sub(started.elapsed());
            let s = sessions.get(&w.sibling).await?;
            if !replica::wait_applied(s, &pos, left, &mut |_, _| Ok(())).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `siblings' lag 0.3 s` (as last checked, at most a second ago) or `no sibling watched`,
    /// for progress lines.
    pub fn describe(&self) -> String {
        if self.watched.is_empty() {
            return "no sibling watched".into();
        }
        format!("siblings' lag {:.1} s", self.now.as_secs_f64())
    }
}

/// Drops the positions `w`'s sibling has applied; while the oldest left is older than `max`,
/// waits for it. The time waited, and the lag found first (the age of the oldest position the
/// sibling had not applied).
async fn settle(
    w: &mut Watched,
    sessions: &mut Sessions,
    max: Duration,
    p: &mut Progress<'_>,
) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let mut said = false;
    let mut lag: Option<Duration> = None;
    loop {
        let applied = replica::slave_pos(sessions.get(&w.sibling).await?).await?;
        while w
            .pending
            .front()
            .is_some_and(|(_, pos)| applied.covers(pos))
        {
            w.pending.pop_front();
        }
        let Some((at, pos)) = w.pending.front().cloned() else {
            break;
        };
        lag.get_or_insert(at.elapsed());
        if at.elapsed() < max {
            break;
        }
        if !said {
            p.tick(format_args!(
                "  throttled: {} is {:.1} s behind {} (--max-lag {:.1} s)",
                w.sibling,
                at.elapsed().as_secs_f64(),
                w.master,
                max.as_secs_f64()
            ))?;
            said = true;
        }
        let s = sessions.get(&w.sibling).await?;
        replica::wait_applied(s, &pos, Duration::from_secs(1), &mut |_, _| Ok(())).await?;
    }
    let waited = if said {
        started.elapsed()
    } else {
        Duration::ZERO
    };
    Ok((waited, lag.unwrap_or(Duration::ZERO)))
}
