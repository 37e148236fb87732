//! Watching the directory, and the write lease.
//!
//! The directory is read from `MYSQL_MASTER_*`, or from `MYSQL_SLAVE_*` when the master cannot
//! answer (down or hung: the whole read is retried there), at start-up, every
//! `MYSQL_DIRECTORY_POLL_MS` (a cheap version check; a full load only when the version moved)
//! and on `admin("load_partitions")`. Versions only go forward.
//!
//! The lease: a server that cannot confirm the directory for `MYSQL_DIRECTORY_LEASE_MS` stops
//! writing, because it cannot know whether a manual failover moved a partition elsewhere.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use mysql_async::Pool;

use super::directory::Directory;
use super::routing::{HostRoute, Routing};
use super::Inner;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{deadline, master_else_sibling, Access, Answered, Failure, HostAddr};

/// The directory's two hosts, as the service account reaches them.
pub struct DirectoryHosts {
    pub master: (HostAddr, Pool),
    pub sibling: Option<(HostAddr, Pool)>,
}

impl DirectoryHosts {
    fn pool(&self, addr: &HostAddr) -> &Pool {
        match &self.sibling {
            Some((sibling, pool)) if sibling == addr => pool,
            _ => &self.master.1,
        }
    }
}

impl Inner {
    /// Runs `read` over a connection to the directory master, or to its sibling when the master
    /// cannot answer; `what` names it in errors.
    async fn read_directory<T, F>(&self, what: &str, read: F) -> Result<(T, Answered)>
    where
        F: AsyncFn(&mut mysql_async::Conn) -> Result<T>,
    {
        let hosts = &self.directory;
        let got = master_else_sibling(
            what,
            &hosts.master.0,
            hosts.sibling.as_ref().map(|(a, _)| a),
            |addr| {
                let read = &read;
                async move {
                    let mut conn = self.settings.connect(hosts.pool(&addr), &addr).await?;
                    let run = async { Ok(read(&mut conn).await) };
                    let as_service = |e, what| Failure::for_service(e, Access::Read, what);
                    let what = format!("{what} from {addr}");
                    deadline(
                        self.directory_deadline(),
                        Access::Read,
                        what,
                        as_service,
                        run,
                    )
                    .await?
                }
            },
        )
        .await?;
        if let Some(e) = &got.master_failure {
            tracing::debug!(error = %e, "{what}: the directory master did not answer; its sibling did");
        }
        Ok((got.value, got.answered))
    }

    /// How long one directory read may take before its sibling is asked: short enough that a
    /// hung directory master leaves time to renew the lease at the sibling.
    fn directory_deadline(&self) -> Duration {
        self.config
            .query_timeout
            .min(self.config.directory_lease / 4)
    }

    pub(super) fn confirm(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if self.lease_lost.swap(false, Ordering::AcqRel) {
            tracing::info!(
                event = "lease_regained",
                "directory lease regained: writes are taken again"
            );
        }
    }

    /// The first directory read: probe every host once (a host that is dead at start-up starts
    /// DOWN instead of failing the first requests), and say what is served.
    pub(super) async fn serving(&self, routing: &Routing) {
        let probes = routing.hosts.values().map(|route| {
            let opts = self.settings.opts(&route.address);
            let host = route.health.clone();
            async move { self.health.probe_now(&host, opts).await }
        });
        futures_util::future::join_all(probes).await;
        let directory = &routing.directory;
        tracing::info!(%directory, "mysql store open: serving");
        for (bucket, why) in &directory.invalid {
            tracing::error!(%bucket, %why, "bucket not served: invalid directory rows");
        }
    }

    /// How long ago the directory was last read or its version confirmed.
    pub(super) fn directory_age(&self) -> Duration {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Writes are allowed only while the directory is confirmed: a server cut off from both
    /// directory hosts for longer than the lease cannot know whether a failover moved a
    /// partition elsewhere, and must not become its second writer.
    pub(super) fn check_lease(&self) -> Result<()> {
        let age = self.directory_age();
        if age > self.config.directory_lease {
            if !self.lease_lost.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    event = "lease_lost",
                    age_secs = age.as_secs_f64(),
                    "directory lease lost: writes are refused until the directory answers"
                );
            }
            return Err(Error::new(
                ErrorKind::ReadOnly,
                format!(
                    "writes refused: the directory was last confirmed {:.1} s ago (lease {} ms); \
                     neither the directory master nor its sibling answers",
                    age.as_secs_f64(),
                    self.config.directory_lease.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Loads the directory and swaps it in when it supersedes the current one.
    pub(super) async fn reload(&self) -> Result<Arc<Routing>> {
        let _guard = self.reload.lock().await;
        let (directory, from) = self
            .read_directory("loading the directory", async |conn| {
                Directory::load(conn).await
            })
            .await?;
        let from = from.as_str();
        let current = self.routing.load_full();
        if current.directory == directory {
            self.confirm();
            return Ok(current);
        }
        if !supersedes(directory.version, current.directory.version)
            && !current.directory.hosts.is_empty()
        {
            tracing::warn!(
                from,
                loaded = directory.version,
                current = current.directory.version,
                "ignoring an older directory (its host has not caught up with a change yet)"
            );
            return Ok(current);
        }
        let hosts: BTreeMap<u32, HostRoute> = directory
            .hosts
            .values()
            .map(|h| {
                let address = h.address();
                let route = HostRoute {
                    pool: self.pools.get(&self.settings, &address),
                    health: self.health.host(&address, self.settings.opts(&address)),
                    sibling: h.slave_id,
                    address,
                };
                (h.id, route)
            })
            .collect();
        tracing::info!(
            event = "directory_version",
            from,
            old_version = current.directory.version,
            new_version = directory.version,
            "directory loaded"
        );
        let routing = Arc::new(Routing::new(directory, hosts, Some(&current)));
        self.routing.store(routing.clone());
        self.confirm();
        Ok(routing)
    }

    /// Reads the directory's version: true when it moved past the one routed by. The lease is
    /// renewed only when what this server routes by is still current; a moved version renews
    /// it through the reload, once that has succeeded.
    pub(super) async fn poll(&self) -> Result<bool> {
        let (version, _) = self
            .read_directory("reading the directory version", async |conn| {
                Directory::poll_version(conn).await
            })
            .await?;
        let moved = supersedes(version, self.routing.load().directory.version);
        if !moved {
            self.confirm();
        }
        Ok(moved)
    }
}

/// True when a directory at version `new` should replace one at `current`. Versions only go
/// forward: a directory master that comes back without the changes its sibling took while it
/// was away must not roll servers back. (An original directory has no counter; its
/// fingerprints, marked by the top bit, are only compared for change.)
fn supersedes(new: u64, current: u64) -> bool {
    const FINGERPRINT: u64 = 1 << 63;
    if new & FINGERPRINT != 0 || current & FINGERPRINT != 0 {
        new != current
    } else {
        new > current
    }
}

/// Retries of the first directory read start this far apart and double up to
/// [`WAIT_MAX`].
const WAIT_FIRST: Duration = Duration::from_millis(100);
const WAIT_MAX: Duration = Duration::from_secs(5);

/// Checks the directory version every poll interval and reloads when it moved; until a
/// directory has been read at all, retries with backoff. Ends when the store is dropped.
pub(super) async fn watch_directory(inner: Weak<Inner>) {
    let mut healthy = true;
    let mut wait = WAIT_FIRST;
    loop {
        let Some((poll, loaded)) = inner
            .upgrade()
            .map(|i| (i.config.directory_poll, i.routing.load().directory.loaded))
        else {
            return;
        };
        if loaded {
            tokio::time::sleep(poll).await;
        } else {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(WAIT_MAX);
        }
        let Some(inner) = inner.upgrade() else { return };
        let result = if loaded {
            match inner.poll().await {
                Ok(true) => inner.reload().await.map(|_| ()),
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            match inner.reload().await {
                Ok(routing) => {
                    inner.serving(&routing).await;
                    Ok(())
                }
                Err(e) => {
                    tracing::debug!(error = %e, next_try = ?wait, "still waiting for the directory");
                    continue;
                }
            }
        };
        match (result, healthy) {
            (Ok(()), false) => {
                tracing::info!(event = "directory_reachable", "directory reachable again");
                healthy = true;
            }
            (Err(e), true) => {
                tracing::warn!(event = "directory_unreachable", error = %e, "cannot check the directory; serving the last one loaded");
                healthy = false;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_versions_only_go_forward() {
        assert!(supersedes(8, 7));
        assert!(
            !supersedes(7, 8),
            "an older directory never replaces a newer one"
        );
        assert!(!supersedes(7, 7));
        let (a, b) = ((1 << 63) | 5, (1 << 63) | 9);
        assert!(
            supersedes(a, b) && supersedes(b, a),
            "fingerprints compare for change"
        );
        assert!(!supersedes(a, a));
    }
}
