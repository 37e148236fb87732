//! A reshape as the directory records it: what it does, its state, its sources and targets,
//! and reading them back. ([`super::transitions`] writes them.)

use std::fmt;

use super::super::sql::{column, Query};
use crate::error::{Error, Result};
use crate::mysql::HostAddr;
use crate::store::mysql::directory::Host;
use crate::store::mysql::placement::HashKind;

/// What a reshape does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One partition to another host.
    Move,
    /// One partition into two halves.
    Split,
    /// Two neighbouring partitions into one.
    Merge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Move => "move",
            Kind::Split => "split",
            Kind::Merge => "merge",
        }
    }

    fn parse(text: &str) -> Result<Kind> {
        match text {
            "move" => Ok(Kind::Move),
            "split" => Ok(Kind::Split),
            "merge" => Ok(Kind::Merge),
            other => Err(Error::internal(format!("reshape kind `{other}`"))),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a reshape is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Changes are captured, rows copied, caught up and compared.
    Copying,
    /// The sources are (or are being) fenced; the commit has not happened.
    Cutover,
    /// The targets are live, the sources retired.
    Done,
    /// Undone: the sources never stopped serving.
    Aborted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Copying => "copying",
            State::Cutover => "cutover",
            State::Done => "done",
            State::Aborted => "aborted",
        }
    }

    fn parse(text: &str) -> Result<State> {
        match text {
            "copying" => Ok(State::Copying),
            "cutover" => Ok(State::Cutover),
            "done" => Ok(State::Done),
            "aborted" => Ok(State::Aborted),
            other => Err(Error::internal(format!("reshape state `{other}`"))),
        }
    }

    /// Still to be carried on or undone.
    pub fn unfinished(self) -> bool {
        matches!(self, State::Copying | State::Cutover)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One partition of a reshape, as its directory row has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    /// Its host (for a source: the master its changes are captured on).
    pub host: Host,
    /// The host's sibling, which holds a copy by replication.
    pub sibling: Option<Host>,
    pub db: String,
    /// The table's live name, `d_<id>`.
    pub datatable: String,
}

impl Part {
    pub fn addr(&self) -> HostAddr {
        self.host.address()
    }

    /// `` `db`.`name` `` of one of this partition's tables.
    pub fn qualified(&self, name: &str) -> String {
        format!("`{}`.`{name}`", self.db)
    }

    /// The live table.
    pub fn table(&self) -> String {
        self.qualified(&self.datatable)
    }

    /// The name the table takes when it retires: `r_<id>`.
    pub fn retired_name(&self) -> String {
        format!("r_{:012}", self.id)
    }

    /// The change log of a source: `l_<id>`.
    pub fn log_name(&self) -> String {
        format!("l_{:012}", self.id)
    }

    /// Whether hash point `point` belongs to this partition's range `(start, end]` (the first
    /// partition of a bucket, starting at 0, holds 0 too).
    pub fn holds(&self, point: f64) -> bool {
        (point > self.start || (self.start == 0.0 && point == 0.0)) && point <= self.end
    }

    /// `partition 12 (d_000000000012 on 10.0.0.1:3306)`.
    pub fn describe(&self) -> String {
        format!(
            "partition {} ({} on {})",
            self.id,
            self.datatable,
            self.addr()
        )
    }
}

/// A source partition and how far its copy has come.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub part: Part,
    /// The last key copied (in key order); `None`: nothing yet.
    pub copied_to: Option<Vec<u8>>,
    pub copy_done: bool,
    /// The host id its changes are captured on (its host when the reshape began).
    pub captured_on: u32,
}

impl Source {
    /// Refuses a source that a failover moved to another host since the reshape began: its
    /// changes are captured on the old one.
    pub fn check_host(&self, reshape: u64) -> Result<()> {
        if self.part.host.id == self.captured_on {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "partition {} is on host {} now, not on host {} where reshape {reshape} began (a \
             failover moved it): undo the reshape with --abort, then start again",
            self.part.id, self.part.host.id, self.captured_on
        )))
    }
}

/// A reshape as the directory records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    pub id: u64,
    pub bucket: String,
    pub hash: HashKind,
    pub kind: Kind,
    pub state: State,
    /// In hash order.
    pub sources: Vec<Source>,
    /// In hash order.
    pub targets: Vec<Part>,
}

impl Reshape {
    /// The target that holds hash point `point`.
    pub fn target_of(&self, point: f64) -> Option<usize> {
        self.targets.iter().position(|t| t.holds(point))
    }

    /// `split of partition 12 into 31, 32` and the like.
    pub fn describe(&self) -> String {
        let ids = |parts: &mut dyn Iterator<Item = &Part>| {
            parts
                .map(|p| p.id.to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let from = ids(&mut self.sources.iter().map(|s| &s.part));
        let to = ids(&mut self.targets.iter());
        format!(
            "reshape {} of bucket `{}`: {} of partition{} {from} into {to}",
            self.id,
            self.bucket,
            self.kind,
            if self.sources.len() > 1 { "s" } else { "" }
        )
    }
}

/// Reads the directory rows `ids` (live or retired) as parts, with their hosts.
async fn parts(q: &mut impl Query, ids: &[u64]) -> Result<Vec<(Part, bool)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    const WHAT: &str = "reading directory rows";
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let rows = q
        .rows(
            WHAT,
            &format!(
                "SELECT d.id, CAST(d.`start` AS DOUBLE), CAST(d.`end` AS DOUBLE), d.db, d.datatable,
                        d.retired_at IS NULL, h.id, h.hostname, h.port, h.slave_id,
                        s.id, s.hostname, s.port, s.slave_id
                 FROM directory d JOIN host h ON h.id = d.host_id
                 LEFT JOIN host s ON s.id = h.slave_id
                 WHERE d.id IN ({list}) ORDER BY d.`end`, d.id"
            ),
            (),
        )
        .await?;
    let mut out = Vec::new();
    for row in &rows {
        let host = Host {
            id: column(row, 6, WHAT)?,
            hostname: column(row, 7, WHAT)?,
            port: column(row, 8, WHAT)?,
            slave_id: column(row, 9, WHAT)?,
        };
        let sibling_id: Option<u32> = column(row, 10, WHAT)?;
        let sibling = match sibling_id {
            Some(id) => Some(Host {
                id,
                hostname: column(row, 11, WHAT)?,
                port: column(row, 12, WHAT)?,
                slave_id: column(row, 13, WHAT)?,
            }),
            None => None,
        };
        let live: i64 = column(row, 5, WHAT)?;
        out.push((
            Part {
                id: column(row, 0, WHAT)?,
                start: column(row, 1, WHAT)?,
                end: column(row, 2, WHAT)?,
                host,
                sibling,
                db: column(row, 3, WHAT)?,
                datatable: column(row, 4, WHAT)?,
            },
            live == 1,
        ));
    }
    if out.len() != ids.len() {
        return Err(Error::invalid(format!(
            "the directory has no partition {} (or its host is not in the host table)",
            ids.iter()
                .find(|id| !out.iter().any(|(p, _)| p.id == **id))
                .map(u64::to_string)
                .unwrap_or_default()
        )));
    }
    Ok(out)
}

/// The unfinished reshape (copying or in cutover) any of `ids` takes part in.
pub async fn unfinished_of(q: &mut impl Query, ids: &[u64]) -> Result<Option<u64>> {
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    q.first(
        "looking for a reshape in progress",
        &format!(
            "SELECT r.id FROM reshape r JOIN reshape_partition rp ON rp.reshape_id = r.id
             WHERE rp.directory_id IN ({list}) AND r.state IN ('copying', 'cutover')
             ORDER BY r.id LIMIT 1"
        ),
        (),
    )
    .await
}

/// Every unfinished reshape, oldest first.
pub async fn unfinished(q: &mut impl Query) -> Result<Vec<u64>> {
    let rows = q
        .rows(
            "listing reshapes in progress",
            "SELECT id FROM reshape WHERE state IN ('copying', 'cutover') ORDER BY id",
            (),
        )
        .await?;
    rows.iter()
        .map(|r| column(r, 0, "listing reshapes in progress"))
        .collect()
}

/// Loads reshape `id`.
pub async fn load(q: &mut impl Query, id: u64) -> Result<Reshape> {
    const WHAT: &str = "reading the reshape";
    let rows = q
        .rows(
            WHAT,
            "SELECT r.bucket, r.kind, r.state, COALESCE(b.hash, 'fnv32')
             FROM reshape r LEFT JOIN bucket b ON b.name = r.bucket WHERE r.id = ?",
            (id,),
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::invalid(format!("the directory has no reshape {id}")))?;
    let bucket: String = column(row, 0, WHAT)?;
    let kind = Kind::parse(&column::<String>(row, 1, WHAT)?)?;
    let state = State::parse(&column::<String>(row, 2, WHAT)?)?;
    let hash: HashKind = column::<String>(row, 3, WHAT)?
        .parse()
        .map_err(|why| Error::internal(format!("bucket `{bucket}`: {why}")))?;
    let members = q
        .rows(
            WHAT,
            "SELECT directory_id, role, copied_to, copy_done, host_id FROM reshape_partition
             WHERE reshape_id = ?",
            (id,),
        )
        .await?;
    let mut source_ids = Vec::new();
    let mut target_ids = Vec::new();
    let mut progress = Vec::new();
    for m in &members {
        let directory_id: u64 = column(m, 0, WHAT)?;
        let role: String = column(m, 1, WHAT)?;
        if role == "source" {
            source_ids.push(directory_id);
            let copied_to: Option<Vec<u8>> = column(m, 2, WHAT)?;
            let done: i64 = column(m, 3, WHAT)?;
            let host_id: u32 = column(m, 4, WHAT)?;
            progress.push((directory_id, copied_to, done == 1, host_id));
        } else {
            target_ids.push(directory_id);
        }
    }
    let mut sources = Vec::new();
    for (part, _) in parts(q, &source_ids).await? {
        let (_, copied_to, copy_done, captured_on) = progress
            .iter()
            .find(|(id, ..)| *id == part.id)
            .cloned()
            .unwrap_or((part.id, None, false, part.host.id));
        sources.push(Source {
            part,
            copied_to,
            copy_done,
            captured_on,
        });
    }
    // An aborted reshape's targets are gone from the directory.
    let targets = if state == State::Aborted {
        Vec::new()
    } else {
        parts(q, &target_ids)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    Ok(Reshape {
        id,
        bucket,
        hash,
        kind,
        state,
        sources,
        targets,
    })
}

/// The live partitions `ids` of `bucket`, with their hosts, in hash order; an error naming the
/// first that is not one.
pub async fn live_parts(q: &mut impl Query, bucket: &str, ids: &[u64]) -> Result<Vec<Part>> {
    let found = parts(q, ids).await?;
    let mut out = Vec::new();
    for (part, live) in found {
        if !live {
            return Err(Error::invalid(format!(
                "partition {} of bucket `{bucket}` is retired (a move, split or merge replaced \
                 it): `thrudoc-admin list --tablename {bucket}` shows the live ones",
                part.id
            )));
        }
        out.push(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mysql::directory::datatable_name;

    fn part(id: u64, start: f64, end: f64) -> Part {
        Part {
            id,
            start,
            end,
            host: Host {
                id: 1,
                hostname: "10.0.0.1".into(),
                port: 3306,
                slave_id: None,
            },
            sibling: None,
            db: "thrudoc".into(),
            datatable: datatable_name(id),
        }
    }

    #[test]
    fn names_and_ranges() {
        let p = part(12, 0.0, 0.5);
        assert_eq!(p.table(), "`thrudoc`.`d_000000000012`");
        assert_eq!(p.retired_name(), "r_000000000012");
        assert_eq!(p.log_name(), "l_000000000012");
        assert!(p.holds(0.0) && p.holds(0.5) && !p.holds(0.50001));
        let q = part(13, 0.5, 1.0);
        assert!(!q.holds(0.5) && q.holds(0.75) && q.holds(1.0));
        let r = Reshape {
            id: 3,
            bucket: "b".into(),
            hash: HashKind::XxHash64,
            kind: Kind::Split,
            state: State::Copying,
            sources: vec![Source {
                part: part(1, 0.0, 1.0),
                copied_to: None,
                copy_done: false,
                captured_on: 1,
            }],
            targets: vec![p, q],
        };
        assert_eq!(r.target_of(0.25), Some(0));
        assert_eq!(r.target_of(0.5), Some(0));
        assert_eq!(r.target_of(0.9), Some(1));
        assert_eq!(
            r.describe(),
            "reshape 3 of bucket `b`: split of partition 1 into 12 and 13"
        );
    }

    #[test]
    fn kinds_and_states_read_back() {
        for k in [Kind::Move, Kind::Split, Kind::Merge] {
            assert_eq!(Kind::parse(k.as_str()).unwrap(), k);
        }
        for s in [State::Copying, State::Cutover, State::Done, State::Aborted] {
            assert_eq!(State::parse(s.as_str()).unwrap(), s);
        }
        assert!(State::Cutover.unfinished() && !State::Done.unfinished());
        assert!(State::parse("x").is_err());
    }
}
