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
use std::sync::{Arc, Weak};
use std::time::Instant;

use mysql_async::Pool;

use super::directory::Directory;
use super::routing::{HostRoute, Routing};
use super::Inner;
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::{master_else_sibling, Access, Answered, HostAddr};

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
                    self.settings
                        .statement(Access::Read, format!("{what} from {addr}"), run)
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

    pub(super) fn confirm(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Writes are allowed only while the directory is confirmed: a server cut off from both
    /// directory hosts for longer than the lease cannot know whether a failover moved a
    /// partition elsewhere, and must not become its second writer.
    pub(super) fn check_lease(&self) -> Result<()> {
        let age = self
            .confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if age > self.config.directory_lease {
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
    async fn poll(&self) -> Result<bool> {
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

/// Checks the directory version every poll interval and reloads when it moved. Ends when the
/// store is dropped.
pub(super) async fn watch_directory(inner: Weak<Inner>) {
    let mut healthy = true;
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.config.directory_poll) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let result = match inner.poll().await {
            Ok(true) => inner.reload().await.map(|_| ()),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        match (result, healthy) {
            (Ok(()), false) => {
                tracing::info!("directory reachable again");
                healthy = true;
            }
            (Err(e), true) => {
                tracing::warn!(error = %e, "cannot check the directory; serving the last one loaded");
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
