//! Replication facts the failover commands and `verify` act on: GTID positions, waiting for a
//! server to apply one (`MASTER_GTID_WAIT`), every replication connection of a server
//! (`SHOW ALL SLAVES STATUS`), `read_only` (the fence), and statements still running.
//!
//! Every statement runs on a [`Session`], so under a deadline; a wait is cut into slices of at
//! most a second, each under its own deadline, so a host that hangs mid-wait gives an error
//! naming it instead of a hang.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Row;

use super::sql::{self, Query, Session};
use crate::error::{Error, Result};
use crate::mysql::{GtidPos, HostAddr};

/// `@@server_id` of the session's server.
pub async fn server_id(s: &mut Session) -> Result<u32> {
    let id: Option<u32> = s
        .first("reading @@server_id", "SELECT @@server_id", ())
        .await?;
    id.ok_or_else(|| Error::internal(format!("{}: no @@server_id", s.addr)))
}

/// A GTID position variable (`gtid_binlog_pos`, `gtid_slave_pos`) of the session's server.
pub async fn gtid_var(s: &mut Session, name: &str) -> Result<GtidPos> {
    let what = format!("reading @@{name}");
    let sql = format!("SELECT @@GLOBAL.{name}");
    let text: Option<Option<String>> = s.first(&what, &sql, ()).await?;
    GtidPos::parse(&text.flatten().unwrap_or_default()).map_err(|e| e.context(&what))
}

/// `@@gtid_binlog_pos`: everything the server has committed (and, with `log_slave_updates`,
/// applied from its sibling).
pub async fn binlog_pos(s: &mut Session) -> Result<GtidPos> {
    gtid_var(s, "gtid_binlog_pos").await
}

/// `@@gtid_slave_pos`: what the server has applied as a slave.
pub async fn slave_pos(s: &mut Session) -> Result<GtidPos> {
    gtid_var(s, "gtid_slave_pos").await
}

/// Waits until the session's server has applied `target` (`MASTER_GTID_WAIT`), for at most
/// `limit`. Calls `progress(elapsed, applied so far)` about once a second while it waits.
/// `Ok(false)` when `limit` passed first.
pub async fn wait_applied(
    s: &mut Session,
    target: &GtidPos,
    limit: Duration,
    progress: &mut dyn FnMut(Duration, &GtidPos) -> Result<()>,
) -> Result<bool> {
    if target.is_empty() {
        return Ok(true);
    }
    let text = target.to_string();
    let start = Instant::now();
    loop {
        let slice = limit
            .saturating_sub(start.elapsed())
            .min(Duration::from_secs(1));
        const WAIT: &str = "waiting for replication (MASTER_GTID_WAIT)";
        // The statement itself waits up to `slice`: its deadline is that plus the usual.
        let row: Option<Row> = sql::deadline(
            &s.addr,
            WAIT,
            slice + s.timeout,
            s.conn.exec_first(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                (text.as_str(), slice.as_secs_f64()),
            ),
        )
        .await?;
        let answer: Option<Option<i64>> = row.map(|r| sql::column(&r, 0, WAIT)).transpose()?;
        if answer == Some(Some(0)) {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
        let applied = slave_pos(s).await?;
        progress(start.elapsed(), &applied)?;
    }
}

/// One replication connection of a server (a row of `SHOW ALL SLAVES STATUS`).
#[derive(Debug, Clone, Default)]
pub struct SlaveStatus {
    /// `Connection_name` (empty for the default connection).
    pub connection: String,
    pub master: Option<HostAddr>,
    /// `Slave_IO_Running`: `Yes`, `No` or `Connecting`.
    pub io_running: String,
    /// `Slave_SQL_Running`: `Yes` or `No`.
    pub sql_running: String,
    /// The master's binary log the IO thread reads, and how far it has read.
    pub master_log_file: String,
    pub read_master_log_pos: u64,
    /// The master's binary log position the SQL thread has executed up to.
    pub relay_master_log_file: String,
    pub exec_master_log_pos: u64,
    /// `Using_Gtid`: `No`, `Slave_Pos` or `Current_Pos`.
    pub using_gtid: String,
    /// `Gtid_IO_Pos`: the GTIDs the IO thread has received.
    pub gtid_io_pos: String,
    pub seconds_behind: Option<u64>,
    /// The last IO and SQL thread errors, joined by `; `.
    pub last_error: String,
}

impl SlaveStatus {
    /// Both threads run.
    pub fn running(&self) -> bool {
        self.io_running == "Yes" && self.sql_running == "Yes"
    }

    /// The SQL thread has executed everything the IO thread received, by binary log position.
    pub fn applied_all_received(&self) -> bool {
        self.relay_master_log_file == self.master_log_file
            && self.exec_master_log_pos >= self.read_master_log_pos
    }

    /// A one-line description for messages.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "IO thread {}, SQL thread {}, received {}:{}, executed {}:{}",
            self.io_running,
            self.sql_running,
            self.master_log_file,
            self.read_master_log_pos,
            self.relay_master_log_file,
            self.exec_master_log_pos
        );
        if !self.gtid_io_pos.is_empty() {
            text.push_str(&format!(", GTIDs received {}", self.gtid_io_pos));
        }
        if let Some(s) = self.seconds_behind {
            text.push_str(&format!(", {s} s behind"));
        }
        if !self.last_error.is_empty() {
            text.push_str(&format!(", last error: {}", self.last_error));
        }
        text
    }
}

/// Every replication connection of the session's server.
pub async fn slaves(s: &mut Session) -> Result<Vec<SlaveStatus>> {
    let rows: Vec<Row> = sql::deadline(
        &s.addr,
        "reading replication state (SHOW ALL SLAVES STATUS)",
        s.timeout,
        s.conn.query::<Row, _>("SHOW ALL SLAVES STATUS"),
    )
    .await?;
    Ok(rows.iter().map(slave_status).collect())
}

/// The server's default replication connection (the one `SHOW SLAVE STATUS` shows), `None`
/// when it has none.
pub async fn default_slave(s: &mut Session) -> Result<Option<SlaveStatus>> {
    Ok(slaves(s)
        .await?
        .into_iter()
        .find(|st| st.connection.is_empty()))
}

fn slave_status(row: &Row) -> SlaveStatus {
    let text = |name: &str| -> String {
        match row.get_opt::<Option<String>, _>(name) {
            Some(Ok(Some(v))) => v,
            _ => String::new(),
        }
    };
    let number = |name: &str| text(name).parse::<u64>().unwrap_or(0);
    let host = text("Master_Host");
    let master = match text("Master_Port").parse::<u16>() {
        Ok(port) if !host.is_empty() => Some(HostAddr { host, port }),
        _ => None,
    };
    let errors: Vec<String> = ["Last_IO_Error", "Last_SQL_Error"]
        .into_iter()
        .map(text)
        .filter(|e| !e.is_empty())
        .collect();
    SlaveStatus {
        connection: text("Connection_name"),
        master,
        io_running: text("Slave_IO_Running"),
        sql_running: text("Slave_SQL_Running"),
        master_log_file: text("Master_Log_File"),
        read_master_log_pos: number("Read_Master_Log_Pos"),
        relay_master_log_file: text("Relay_Master_Log_File"),
        exec_master_log_pos: number("Exec_Master_Log_Pos"),
        using_gtid: text("Using_Gtid"),
        gtid_io_pos: text("Gtid_IO_Pos"),
        seconds_behind: text("Seconds_Behind_Master").parse().ok(),
        last_error: errors.join("; "),
    }
}

/// The replication connection of the session's server from `master`: the one whose master is
/// `master` by name, or else the only one there is (a server may name its master otherwise
/// than the directory does), with a note saying so. `None` when it replicates from nobody.
pub async fn slave_of(
    s: &mut Session,
    master: &HostAddr,
) -> Result<Option<(SlaveStatus, Option<String>)>> {
    let mut all = slaves(s).await?;
    if let Some(i) = all.iter().position(|st| st.master.as_ref() == Some(master)) {
        return Ok(Some((all.swap_remove(i), None)));
    }
    if all.len() == 1 {
        let st = all.swap_remove(0);
        let named = st
            .master
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| "?".into());
        let note = format!(
            "{} replicates from {named}, which the directory calls {master}; taken to be the same \
             server",
            s.addr
        );
        return Ok(Some((st, Some(note))));
    }
    Ok(None)
}

/// `@@GLOBAL.read_only` of the session's server.
pub async fn read_only(s: &mut Session) -> Result<bool> {
    let v: Option<i64> = s
        .first("reading @@read_only", "SELECT @@GLOBAL.read_only", ())
        .await?;
    Ok(v.unwrap_or(0) != 0)
}

/// Sets `read_only` and reads it back. Turning it on waits for commits in progress, so once it
/// returns, accounts without SUPER / READ_ONLY ADMIN (the service account) commit nothing more.
pub async fn set_read_only(s: &mut Session, on: bool) -> Result<()> {
    let sql = if on {
        "SET GLOBAL read_only = ON"
    } else {
        "SET GLOBAL read_only = OFF"
    };
    s.run(sql, sql).await?;
    if read_only(s).await? != on {
        return Err(Error::new(
            crate::error::ErrorKind::Unavailable,
            format!("{}: `{sql}` did not take effect", s.addr),
        ));
    }
    Ok(())
}

/// A client statement running on a server.
#[derive(Debug, Clone)]
pub struct Running {
    pub id: u64,
    pub user: String,
    pub secs: u64,
    pub info: String,
}

/// Client statements running on the session's server whose text names one of `tables`
/// (replication threads and this session excepted).
pub async fn running_on(s: &mut Session, tables: &[String]) -> Result<Vec<Running>> {
    let rows = s
        .rows(
            "listing running statements",
            "SELECT ID, USER, TIME, LEFT(INFO, 300) FROM information_schema.PROCESSLIST
             WHERE COMMAND IN ('Query', 'Execute') AND ID <> CONNECTION_ID() AND INFO IS NOT NULL",
            (),
        )
        .await?;
    let mut found = Vec::new();
    for row in &rows {
        let info: String = sql::column(row, 3, "listing running statements")?;
        if tables.iter().any(|t| info.contains(t.as_str())) {
            found.push(Running {
                id: sql::column(row, 0, "listing running statements")?,
                user: sql::column(row, 1, "listing running statements")?,
                secs: sql::column::<Option<u64>>(row, 2, "listing running statements")?
                    .unwrap_or(0),
                info: info.replace(['\n', '\r', '\t'], " "),
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_parse_filter_and_compare() {
        let pos = GtidPos::parse(" 2-2-57,1-1-1234\n,").unwrap();
        assert_eq!(pos.to_string(), "1-1-1234,2-2-57");
        assert_eq!(pos.without_server(2).to_string(), "1-1-1234");
        assert_eq!(pos.seq(1), Some(1234));
        assert_eq!(pos.seq(3), None);
        assert!(GtidPos::parse("").unwrap().is_empty());
        assert_eq!(GtidPos::parse("").unwrap().to_string(), "(empty)");
        let applied = GtidPos::parse("1-1-1300,2-2-50").unwrap();
        assert!(applied.covers(&pos.without_server(2)));
        assert!(!applied.covers(&pos));
        for bad in ["1-1", "1-1-x", "a-1-1", "1-1-1-1"] {
            assert!(GtidPos::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn received_versus_executed() {
        let mut st = SlaveStatus {
            master_log_file: "b.000002".into(),
            read_master_log_pos: 900,
            relay_master_log_file: "b.000001".into(),
            exec_master_log_pos: 1200,
            ..SlaveStatus::default()
        };
        assert!(!st.applied_all_received());
        st.relay_master_log_file = "b.000002".into();
        st.exec_master_log_pos = 800;
        assert!(!st.applied_all_received());
        st.exec_master_log_pos = 900;
        assert!(st.applied_all_received());
    }
}
