//! MariaDB global transaction ids and positions: what a server has written (`gtid_binlog_pos`),
//! applied as a slave (`gtid_slave_pos`), or reported for one transaction (`last_gtid`).
//!
//! A master-master pair gives each server its own GTID domain, so "has the sibling applied
//! the master's writes" is a comparison of sequence numbers within the master's domain.

use std::fmt;

use crate::error::{Error, Result};

/// One global transaction id: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

/// A GTID position (`@@gtid_binlog_pos`, `@@gtid_slave_pos`, `Gtid_IO_Pos`): the last GTID of
/// each replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos(pub Vec<Gtid>);

impl GtidPos {
    /// Parses `0-1-10,1-1-5` (whitespace and empty entries ignored).
    pub fn parse(text: &str) -> Result<GtidPos> {
        let mut gtids = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || Error::internal(format!("`{}` is not a GTID", item.escape_debug()));
            let mut parts = item.split('-');
            let (Some(d), Some(s), Some(n), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            gtids.push(Gtid {
                domain: d.parse().map_err(|_| bad())?,
                server: s.parse().map_err(|_| bad())?,
                seq: n.parse().map_err(|_| bad())?,
            });
        }
        gtids.sort();
        Ok(GtidPos(gtids))
    }

    /// The position without the GTIDs that `server_id` originated. A server logs what it
    /// replicated from its sibling too (`log_slave_updates`), but the sibling never applies its
    /// own transactions as a slave, so its `gtid_slave_pos` would never reach them.
    pub fn without_server(&self, server_id: u32) -> GtidPos {
        GtidPos(
            self.0
                .iter()
                .copied()
                .filter(|g| g.server != server_id)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sequence number reached in `domain`, if any.
    pub fn seq(&self, domain: u32) -> Option<u64> {
        self.0.iter().find(|g| g.domain == domain).map(|g| g.seq)
    }

    /// Whether `self` has reached every domain of `target`.
    pub fn covers(&self, target: &GtidPos) -> bool {
        target
            .0
            .iter()
            .all(|t| self.seq(t.domain).is_some_and(|s| s >= t.seq))
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(empty)");
        }
        let mut first = true;
        for g in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}-{}-{}", g.domain, g.server, g.seq)?;
        }
        Ok(())
    }
}

impl GtidPos {
    /// Raises `self` to `g` in `g`'s domain: the later of the two sequence numbers stays.
    pub fn raise(&mut self, g: Gtid) {
        match self.0.binary_search_by_key(&g.domain, |x| x.domain) {
            Ok(i) if self.0[i].seq < g.seq => self.0[i] = g,
            Ok(_) => {}
            Err(i) => self.0.insert(i, g),
        }
    }

    /// Raises `self` to every domain of `other`.
    pub fn raise_to(&mut self, other: &GtidPos) {
        for g in &other.0 {
            self.raise(*g);
        }
    }

    /// Only the GTIDs that `server_id` originated: what a sibling applies of that server's
    /// writes.
    pub fn of_server(&self, server_id: u32) -> GtidPos {
        GtidPos(
            self.0
                .iter()
                .copied()
                .filter(|g| g.server == server_id)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(s: &str) -> GtidPos {
        GtidPos::parse(s).unwrap()
    }

    #[test]
    fn parses_sorts_and_prints_positions() {
        let p = pos(" 2-2-7, 1-1-10 ,");
        assert_eq!(p.to_string(), "1-1-10,2-2-7");
        assert_eq!(p.seq(2), Some(7));
        assert_eq!(p.seq(3), None);
        assert_eq!(GtidPos::default().to_string(), "(empty)");
        for bad in ["1-1", "1-1-x", "1-1-1-1", "a-1-1"] {
            let e = GtidPos::parse(bad).unwrap_err();
            assert!(e.to_string().contains("is not a GTID"), "{bad}: {e}");
        }
    }

    #[test]
    fn raise_keeps_the_later_sequence_number_per_domain() {
        let mut p = pos("1-1-10");
        p.raise(Gtid {
            domain: 1,
            server: 1,
            seq: 9,
        });
        assert_eq!(p, pos("1-1-10"), "an earlier GTID changes nothing");
        p.raise(Gtid {
            domain: 1,
            server: 1,
            seq: 12,
        });
        p.raise(Gtid {
            domain: 0,
            server: 3,
            seq: 4,
        });
        assert_eq!(p, pos("0-3-4,1-1-12"), "domains stay sorted");
        p.raise_to(&pos("0-3-2,2-2-1"));
        assert_eq!(p, pos("0-3-4,1-1-12,2-2-1"));
    }

    #[test]
    fn covers_compares_within_each_domain_of_the_target() {
        let applied = pos("1-1-10,2-2-5");
        assert!(applied.covers(&pos("1-1-10")));
        assert!(applied.covers(&pos("1-1-3,2-2-5")));
        assert!(!applied.covers(&pos("1-1-11")));
        assert!(
            !applied.covers(&pos("3-3-1")),
            "a domain never seen is not reached"
        );
        assert!(applied.covers(&GtidPos::default()));
    }

    #[test]
    fn of_server_and_without_server_split_by_origin() {
        let p = pos("1-1-10,2-2-5,3-1-2");
        assert_eq!(p.of_server(1), pos("1-1-10,3-1-2"));
        assert_eq!(p.without_server(1), pos("2-2-5"));
    }
}
