//! The root sessions of a reshape: one per data host, opened when first needed and set up for
//! moving rows (UTC, so `TIMESTAMP` columns copy as they are; short lock waits, so a DDL
//! stuck behind a long transaction gives up and is tried again rather than stalling reads).

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::sql::{Login, Query, Session};
use crate::error::Result;
use crate::mysql::HostAddr;

/// How long a DDL of the tool (a trigger, a rename) waits for a table's metadata lock, and a
/// locking read for row locks, before it fails and is tried again.
pub const LOCK_WAIT_SECS: u32 = 3;

/// Open sessions by host.
pub struct Sessions {
    login: Login,
    open: BTreeMap<HostAddr, Session>,
}

impl Sessions {
    pub fn new(login: &Login) -> Sessions {
        Sessions {
            login: login.clone(),
            open: BTreeMap::new(),
        }
    }

    /// The session to `addr`, connecting (and setting it up) when there is none.
    pub async fn get(&mut self, addr: &HostAddr) -> Result<&mut Session> {
        if !self.open.contains_key(addr) {
            let s = self.extra(addr).await?;
            self.open.insert(addr.clone(), s);
        }
        Ok(self.open.get_mut(addr).expect("just opened"))
    }

    /// A second, separate session to `addr` (for a transaction that holds locks while another
    /// session works on the same host).
    pub async fn extra(&self, addr: &HostAddr) -> Result<Session> {
        let mut s = self.login.connect(addr, None).await?;
        s.run(
            "setting up the session",
            &format!(
                "SET SESSION time_zone = '+00:00', SESSION lock_wait_timeout = {LOCK_WAIT_SECS}, \
                 SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECS}"
            ),
        )
        .await?;
        Ok(s)
    }

    /// Forgets the session to `addr` (after it failed: the next use reconnects).
    pub async fn drop_session(&mut self, addr: &HostAddr) {
        if let Some(s) = self.open.remove(addr) {
            let _ = tokio::time::timeout(Duration::from_millis(200), s.conn.disconnect()).await;
        }
    }

    /// Closes every session.
    pub async fn close(self) {
        for (_, s) in self.open {
            s.close().await;
        }
    }
}
