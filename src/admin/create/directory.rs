//! The directory transaction of `create-tablename`.

use std::collections::BTreeMap;

use super::hosts::register_hosts;
use super::{plan_partitions, CreatedPartition, Plan, RegisteredHost};
use crate::admin::dirtx::Tx;
use crate::admin::progress::Progress;
use crate::admin::sql::{Query, Session};
use crate::error::{Error, Result};
use crate::mysql::{code, server_code, HostAddr};
use crate::store::mysql::directory::{datatable_ddl, datatable_name};
use crate::store::mysql::placement::HashKind;

/// Refuses a bucket the directory has (live partitions, or a `bucket` row).
pub(super) async fn refuse_existing_bucket(q: &mut impl Query, bucket: &str) -> Result<()> {
    let live: Option<u64> = q
        .first(
            "looking for the bucket",
            "SELECT COUNT(*) FROM directory WHERE bucket = ? AND retired_at IS NULL",
            (bucket,),
        )
        .await?;
    let named: Option<u64> = q
        .first(
            "looking for the bucket",
            "SELECT COUNT(*) FROM bucket WHERE name = ?",
            (bucket,),
        )
        .await?;
    let live = live.unwrap_or(0);
    if live > 0 || named.unwrap_or(0) > 0 {
        return Err(Error::invalid(format!(
            "bucket `{bucket}` already exists ({live} live partitions in the directory); \
             nothing was changed"
        )));
    }
    Ok(())
}

/// The directory transaction of `create-tablename`: hosts registered (and paired), the
/// bucket and its partitions, each partition's datatable created on its host and sibling
/// (over `hosts`) before the transaction that names them commits.
pub(super) async fn write_directory(
    tx: &mut Tx<'_>,
    plan: &Plan<'_>,
    hosts: &mut BTreeMap<HostAddr, Session>,
    p: &mut Progress<'_>,
) -> Result<(Vec<RegisteredHost>, Vec<CreatedPartition>)> {
    let Plan {
        opts,
        known,
        siblings,
    } = *plan;
    let bucket = opts.tablename.as_str();
    let db = opts.database.as_str();
    refuse_existing_bucket(tx, bucket).await?;
    let inserted = tx
        .exec(
            "inserting the bucket row",
            "INSERT INTO bucket (name, hash, created_at) VALUES (?, ?, NOW())",
            (bucket, HashKind::XxHash64.as_str()),
        )
        .await;
    if let Err(e) = inserted {
        if server_code(&e) == Some(code::ER_DUP_ENTRY) {
            return Err(Error::invalid(format!("bucket `{bucket}` already exists")));
        }
        return Err(e);
    }

    let ids = register_hosts(tx, &opts.setup(), known, siblings).await?;
    let id_of = |addr: &HostAddr| -> Result<u32> {
        ids.get(addr)
            .copied()
            .ok_or_else(|| Error::internal(format!("host {addr} was not registered")))
    };
    let mut registered = Vec::new();
    for addr in &opts.hosts {
        registered.push(RegisteredHost {
            id: id_of(addr)?,
            addr: addr.clone(),
            sibling: siblings.get(addr).cloned(),
        });
    }

    let plan = plan_partitions(opts.hosts.len(), opts.parts_per);
    let mut partitions = Vec::with_capacity(plan.len());
    for planned in &plan {
        let host = &opts.hosts[planned.host];
        tx.exec(
            "inserting a partition",
            "INSERT INTO directory (bucket, `start`, `end`, host_id, db, datatable, created_at)
             VALUES (?, ?, ?, ?, ?, '', NOW())",
            (bucket, planned.start, planned.end, id_of(host)?, db),
        )
        .await?;
        let id = tx
            .last_insert_id()
            .ok_or_else(|| Error::internal("the partition insert returned no id"))?;
        let datatable = datatable_name(id);
        tx.exec(
            "naming a partition's datatable",
            "UPDATE directory SET datatable = ? WHERE id = ?",
            (datatable.as_str(), id),
        )
        .await?;
        partitions.push(CreatedPartition {
            id,
            start: planned.start,
            end: planned.end,
            host: host.clone(),
            sibling: siblings.get(host).cloned(),
            datatable,
        });
    }

    // The datatables, before the directory names them: over the hosts' own connections.
    p.say(format_args!(
        "creating {} datatables on their hosts and siblings ...",
        partitions.len()
    ))?;
    let mut created_tables: Vec<String> = Vec::new();
    for part in &partitions {
        let ddl = datatable_ddl(db, &part.datatable);
        for target in std::iter::once(&part.host).chain(part.sibling.iter()) {
            let session = hosts
                .get_mut(target)
                .ok_or_else(|| Error::internal(format!("no connection to {target}")))?;
            if let Err(e) = session.run("creating a datatable", &ddl).await {
                let leftover = if created_tables.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (empty datatables left behind, unused by any directory row: {})",
                        created_tables.join(", ")
                    )
                };
                return Err(e
                    .context(format!("datatable `{db}`.`{}`", part.datatable))
                    .note(leftover));
            }
            created_tables.push(format!("{}@{target}", part.datatable));
        }
        let copies = match &part.sibling {
            Some(s) => format!("{} and {s}", part.host),
            None => part.host.to_string(),
        };
        p.say(format_args!(
            "  {} [{:.6}, {:.6}] on {copies}",
            part.datatable, part.start, part.end
        ))?;
    }
    Ok((registered, partitions))
}
