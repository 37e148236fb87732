//! What `failover` and `switchover` share: the partitions they move, the pair of hosts they
//! move them between, and the checks of the directory's own copy.

use std::time::Duration;

use super::progress::Progress;
use super::replica;
use super::sql::{column, Login, Query, Session};
use super::table::write_table;
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::store::mysql::directory::{Directory, Host, DIRECTORY_DDL, DIRECTORY_TABLES};

/// A partition moved by either command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedPartition {
    pub id: u64,
    pub bucket: String,
    pub db: String,
    pub datatable: String,
}

/// `host` and its sibling, as the directory records them.
pub fn find_pair(dir: &Directory, host: &HostAddr) -> Result<(Host, Host)> {
    let Some(h) = dir.hosts.values().find(|h| h.address() == *host) else {
        let known: Vec<String> = dir
            .hosts
            .values()
            .map(|h| h.address().to_string())
            .collect();
        return Err(Error::invalid(format!(
            "the directory has no host {host} (its hosts: {}); give the address as the directory \
             records it (`thrudoc-admin status` lists them)",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let Some(sid) = h.slave_id else {
        return Err(Error::invalid(format!(
            "host {} ({host}) has no sibling in the directory (host.slave_id is NULL): no other \
             host holds a copy of its partitions; nothing was changed",
            h.id
        )));
    };
    match dir.hosts.get(&sid) {
        Some(s) if s.id != h.id => Ok((h.clone(), s.clone())),
        _ => Err(Error::invalid(format!(
            "host {} ({host}) names sibling host {sid}, which is not another host of the \
             directory; nothing was changed",
            h.id
        ))),
    }
}

/// The directory master's sibling, when the directory master is a data host of the directory
/// (servers configured with it as `MYSQL_SLAVE_HOST` read the directory there when the master
/// does not answer). `None` when the directory does not know it.
pub fn directory_sibling(dir: &Directory, master: &HostAddr) -> Option<HostAddr> {
    let h = dir.hosts.values().find(|h| h.address() == *master)?;
    Some(dir.hosts.get(&h.slave_id?)?.address())
}

/// Creates the directory tables a directory made before them lacks (`partition_frozen`,
/// `partition_moved`, `reshape`, ...); all `IF NOT EXISTS`, and run only when one is missing.
pub async fn ensure_tables(dir: &mut Session, db: &str) -> Result<()> {
    let names = DIRECTORY_TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let present: Option<u64> = dir
        .first(
            "looking for the directory tables",
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
                 AND TABLE_NAME IN ({names})"
            ),
            (db,),
        )
        .await?;
    if present.unwrap_or(0) < DIRECTORY_TABLES.len() as u64 {
        for ddl in DIRECTORY_DDL {
            dir.run("creating the missing directory tables", ddl)
                .await?;
        }
    }
    Ok(())
}

/// `1,2,3`: directory ids (integers read from the directory) for an `IN (...)` list.
pub fn id_list(parts: &[MovedPartition]) -> String {
    parts
        .iter()
        .map(|p| p.id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Rows of `id, bucket, db, datatable` as partitions.
pub fn partition_rows(rows: &[mysql_async::Row], what: &str) -> Result<Vec<MovedPartition>> {
    rows.iter()
        .map(|row| {
            Ok(MovedPartition {
                id: column(row, 0, what)?,
                bucket: column(row, 1, what)?,
                db: column(row, 2, what)?,
                datatable: column(row, 3, what)?,
            })
        })
        .collect()
}

/// The partitions as a table: id, bucket, table, from, to.
pub fn print_partitions(
    progress: &mut Progress<'_>,
    parts: &[MovedPartition],
    from: &HostAddr,
    to: &HostAddr,
) -> Result<()> {
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.bucket.clone(),
                format!("{}.{}", p.db, p.datatable),
                from.to_string(),
                to.to_string(),
            ]
        })
        .collect();
    write_table(
        progress.out()?,
        2,
        &["id", "bucket", "table", "from", "to"],
        &rows,
    )
}

/// `1.5 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// How the session's server replicates from `master`, for messages.
pub async fn describe_replication(s: &mut Session, master: &HostAddr) -> String {
    match replica::slave_of(s, master).await {
        Ok(Some((st, _))) => format!("its replication from {master}: {}", st.describe()),
        Ok(None) => format!("it does not replicate from {master}"),
        Err(e) => format!("its replication state cannot be read: {e}"),
    }
}

/// Waits until `copy` (the directory's sibling) has applied everything the directory master
/// (`dirs`) has committed, for at most `limit`. `None`, with a note, when `copy` does not
/// answer: servers cannot read the directory there either.
pub async fn directory_copy_caught_up(
    root: &Login,
    dirs: &mut Session,
    copy: &HostAddr,
    limit: Duration,
    progress: &mut Progress<'_>,
) -> Result<Option<bool>> {
    let mut cs = match root.connect(copy, None).await {
        Ok(s) => s,
        Err(e) => {
            progress.say(format_args!(
                "  note: the directory's sibling {copy} does not answer ({e}); servers cannot read \
                 the directory there"
            ))?;
            return Ok(None);
        }
    };
    let copy_id = replica::server_id(&mut cs).await?;
    let committed = replica::binlog_pos(dirs).await?.without_server(copy_id);
    let caught = replica::wait_applied(&mut cs, &committed, limit, &mut |elapsed, applied| {
        progress.tick(format_args!(
            "  ... {} of {}: the directory's sibling {copy} has applied {applied}",
            secs(elapsed),
            secs(limit)
        ))
    })
    .await?;
    cs.close().await;
    if caught {
        progress.say(format_args!(
            "  the directory's sibling {copy} has the change too"
        ))?;
    }
    Ok(Some(caught))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn host(id: u32, port: u16, slave_id: Option<u32>) -> Host {
        Host {
            id,
            hostname: "127.0.0.1".into(),
            port,
            slave_id,
        }
    }

    #[test]
    fn pairs_are_found_by_address() {
        let dir = Directory::build(
            3,
            vec![
                host(1, 3301, Some(2)),
                host(2, 3302, Some(1)),
                host(3, 3303, None),
                host(4, 3304, Some(4)),
            ],
            Vec::new(),
            &Default::default(),
        );
        let addr = |port| HostAddr::new("127.0.0.1", port).unwrap();
        let (h, s) = find_pair(&dir, &addr(3301)).unwrap();
        assert_eq!((h.id, s.id), (1, 2));
        let e = find_pair(&dir, &addr(3309)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("127.0.0.1:3302"), "{e}");
        assert!(find_pair(&dir, &addr(3303))
            .unwrap_err()
            .message()
            .contains("no sibling"));
        assert!(find_pair(&dir, &addr(3304)).is_err());
    }

    #[test]
    fn id_lists_are_plain_integers() {
        let p = |id| MovedPartition {
            id,
            bucket: "b".into(),
            db: "thrudoc".into(),
            datatable: crate::store::mysql::directory::datatable_name(id),
        };
        assert_eq!(id_list(&[p(3), p(17)]), "3,17");
    }
}
