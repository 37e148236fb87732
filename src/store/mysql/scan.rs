//! Scan walks over a bucket whose partitions may be split, merged or moved while they walk.
//!
//! A walk goes through the hash range in stretches: a stretch `(lo, hi]` is one live
//! partition's range when the walk reaches it, and the walk returns its keys in byte order.
//! The seed says which stretch the walk is in and the last key it returned there:
//! `m2:<lo>:<hi>:<hex of the key>` (`lo` and `hi` as the 16 hex digits of their `f64` bits).
//!
//! Because the seed names hash points, not a partition, it stays valid when the partitions
//! change under it: a stretch that is no longer one partition's range is read from every live
//! partition that overlaps it, each keeping only the keys whose hash point lies in the stretch,
//! merged in byte order. Every key that exists for the whole walk is returned exactly once:
//! a key's hash point puts it in exactly one stretch, and inside a stretch the walk goes on
//! strictly after the last key it returned.
//!
//! Seeds of the first form, `m1:<partition id>:<hex key>`, are still read while that
//! partition is live.

use bytes::Bytes;
use mysql_async::{Params, Value};

use super::directory::{Bucket, Partition};
use super::routing::Routing;
use super::Inner;
use crate::error::{Error, Result};
use crate::rules::seed;

/// Prefix of the seeds this store makes.
const SEED_PREFIX: &str = "m2:";
/// Prefix of the partition-id seeds of earlier versions.
const OLD_SEED_PREFIX: &str = "m1:";

/// Where a walk is: the stretch `(lo, hi]` of hash points (`[0, hi]` when `lo` is 0), and the
/// last key it returned there (empty: none yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub lo: f64,
    pub hi: f64,
    pub after: Vec<u8>,
}

impl Position {
    /// True when hash point `point` lies in the stretch.
    fn holds(&self, point: f64) -> bool {
        (point > self.lo || (self.lo == 0.0 && point == 0.0)) && point <= self.hi
    }

    /// The seed that continues after `key` in this stretch.
    fn seed_after(&self, key: &[u8]) -> Bytes {
        let prefix = format!(
            "{SEED_PREFIX}{:016x}:{:016x}:",
            self.lo.to_bits(),
            self.hi.to_bits()
        );
        seed::encode(&prefix, key)
    }
}

/// The walk's position for `seed` in `bucket` (`""`: the start).
pub fn parse_seed(bucket: &Bucket, seed_bytes: &[u8]) -> Result<Position> {
    let bad = || Error::invalid("scan seed is not one this server made for this bucket");
    if seed_bytes.is_empty() {
        let first = bucket.partitions.first().ok_or_else(bad)?;
        return Ok(Position {
            lo: 0.0,
            hi: first.end,
            after: Vec::new(),
        });
    }
    let text = std::str::from_utf8(seed_bytes).map_err(|_| bad())?;
    if let Some(rest) = text.strip_prefix(SEED_PREFIX) {
        let mut fields = rest.splitn(3, ':');
        let mut point = || {
            let hex = fields.next().filter(|h| h.len() == 16).ok_or_else(bad)?;
            let bits = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
            let p = f64::from_bits(bits);
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(bad())
            }
        };
        let (lo, hi) = (point()?, point()?);
        let after = fields.next().and_then(seed::decode_key).ok_or_else(bad)?;
        if lo >= hi {
            return Err(bad());
        }
        return Ok(Position { lo, hi, after });
    }
    let rest = text.strip_prefix(OLD_SEED_PREFIX).ok_or_else(bad)?;
    let (id, hex) = rest.split_once(':').ok_or_else(bad)?;
    let id: u64 = id.parse().map_err(|_| bad())?;
    let after = seed::decode_key(hex).ok_or_else(bad)?;
    let part = bucket
        .partitions
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| {
            Error::invalid(format!(
                "scan seed names partition {id}, which bucket `{}` no longer has (the directory \
             changed since an older server made the seed); start the scan again",
                bucket.name
            ))
        })?;
    Ok(Position {
        lo: part.start,
        hi: part.end,
        after,
    })
}

/// The live partitions whose ranges overlap the stretch of `at`, in order.
fn overlapping<'a>(bucket: &'a Bucket, at: &Position) -> Vec<&'a Partition> {
    bucket
        .partitions
        .iter()
        .filter(|p| p.start < at.hi && p.end > at.lo)
        .collect()
}

/// The stretch after `at`: from its end to the end of the live partition that holds the next
/// hash points; `None` at the end of the bucket.
fn next_stretch(bucket: &Bucket, at: &Position) -> Option<Position> {
    let next = bucket.partitions.iter().find(|p| p.end > at.hi)?;
    Some(Position {
        lo: at.hi,
        hi: next.end,
        after: Vec::new(),
    })
}

impl Inner {
    /// One page of a walk: up to `count` entries from `seed` on, and the seed that continues.
    pub(super) async fn scan_page(
        &self,
        routing: &Routing,
        bucket: &str,
        seed_bytes: Bytes,
        count: usize,
    ) -> Result<(Vec<(Bytes, Bytes)>, Bytes)> {
        let b = routing.directory.bucket(bucket)?;
        let mut at = parse_seed(b, &seed_bytes)?;
        let mut entries = Vec::with_capacity(count.min(1024));
        let mut next_seed = seed_bytes;
        while entries.len() < count {
            let need = count - entries.len();
            let rows = self.read_stretch(routing, b, &at, need).await?;
            let full = rows.len() == need;
            if let Some((k, _)) = rows.last() {
                next_seed = at.seed_after(k);
                at.after.clone_from(k);
            }
            entries.extend(
                rows.into_iter()
                    .map(|(k, v)| (Bytes::from(k), Bytes::from(v))),
            );
            if full {
                break;
            }
            match next_stretch(b, &at) {
                Some(next) => at = next,
                None => break,
            }
        }
        Ok((entries, next_seed))
    }

    /// Up to `need` keys of the stretch `at`, after `at.after`, in byte order.
    async fn read_stretch(
        &self,
        routing: &Routing,
        bucket: &Bucket,
        at: &Position,
        need: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let parts = overlapping(bucket, at);
        if let [only] = parts[..] {
            if only.start == at.lo && only.end == at.hi {
                // The stretch is one partition: every row of its table belongs.
                return self.read_after(routing, only, &at.after, need).await;
            }
        }
        // The partitions changed since the walk reached this stretch: take from each the first
        // `need` keys that hash into it, then the first `need` of them all.
        let mut all = Vec::new();
        for part in parts {
            let mut kept = Vec::new();
            let mut after = at.after.clone();
            loop {
                let batch = need.max(64);
                let rows = self.read_after(routing, part, &after, batch).await?;
                let exhausted = rows.len() < batch;
                if let Some((k, _)) = rows.last() {
                    after.clone_from(k);
                }
                kept.extend(
                    rows.into_iter()
                        .filter(|(k, _)| at.holds(bucket.hash.point(k))),
                );
                if exhausted || kept.len() >= need {
                    break;
                }
            }
            kept.truncate(need);
            all.extend(kept);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.truncate(need);
        Ok(all)
    }

    /// Up to `n` rows of `part` with keys after `after`, in key order.
    async fn read_after(
        &self,
        routing: &Routing,
        part: &Partition,
        after: &[u8],
        n: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let params = Params::Positional(vec![Value::Bytes(after.to_vec()), Value::UInt(n as u64)]);
        self.read(routing, part, &part.sql.scan, params, "scan")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mysql::directory::{Directory, Host, PartitionRow};
    use crate::store::mysql::placement::HashKind;
    use std::collections::HashMap;

    fn bucket(ranges: &[(u64, f64, f64)]) -> Bucket {
        let rows = ranges
            .iter()
            .map(|&(id, start, end)| PartitionRow {
                id,
                frozen: None,
                bucket: "b".into(),
                start,
                end,
                host_id: 1,
                db: "thrudoc".into(),
                datatable: format!("d_{id:012}"),
            })
            .collect();
        let host = Host {
            id: 1,
            hostname: "127.0.0.1".into(),
            port: 3306,
            slave_id: None,
        };
        let hashes = HashMap::from([("b".to_string(), HashKind::XxHash64)]);
        let dir = Directory::build(1, vec![host], rows, &hashes);
        dir.bucket("b").unwrap().clone()
    }

    #[test]
    fn seeds_name_a_stretch_and_survive_a_split() {
        let before = bucket(&[(1, 0.0, 0.5), (2, 0.5, 1.0)]);
        let start = parse_seed(&before, b"").unwrap();
        assert_eq!((start.lo, start.hi), (0.0, 0.5));
        let seed = Position {
            lo: 0.5,
            hi: 1.0,
            after: Vec::new(),
        }
        .seed_after(b"k1");
        // Partition 2 split into 3 and 4: the seed still reads, as the same stretch.
        let after = bucket(&[(1, 0.0, 0.5), (3, 0.5, 0.75), (4, 0.75, 1.0)]);
        let at = parse_seed(&after, &seed).unwrap();
        assert_eq!((at.lo, at.hi, &at.after[..]), (0.5, 1.0, &b"k1"[..]));
        let ids: Vec<u64> = overlapping(&after, &at).iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![3, 4]);
        assert!(next_stretch(&after, &at).is_none());
    }

    #[test]
    fn after_a_merge_the_walk_finishes_the_old_stretch_then_the_rest_of_the_new_partition() {
        let merged = bucket(&[(5, 0.0, 1.0)]);
        let at = Position {
            lo: 0.0,
            hi: 0.5,
            after: b"k".to_vec(),
        };
        assert_eq!(overlapping(&merged, &at).len(), 1);
        let next = next_stretch(&merged, &at).unwrap();
        assert_eq!((next.lo, next.hi), (0.5, 1.0));
        assert!(next.holds(0.75) && !next.holds(0.5) && !next.holds(0.25));
        assert!(at.holds(0.0) && at.holds(0.5) && !at.holds(0.5000001));
    }

    #[test]
    fn old_seeds_are_read_while_their_partition_lives() {
        let b = bucket(&[(1, 0.0, 0.5), (2, 0.5, 1.0)]);
        let at = parse_seed(&b, &seed::encode("m1:2:", b"z")).unwrap();
        assert_eq!((at.lo, at.hi, &at.after[..]), (0.5, 1.0, &b"z"[..]));
        let gone = parse_seed(&b, &seed::encode("m1:9:", b"z")).unwrap_err();
        assert!(gone.to_string().contains("start the scan again"), "{gone}");
    }

    #[test]
    fn malformed_seeds_are_refused() {
        let b = bucket(&[(1, 0.0, 1.0)]);
        for bad in [
            &b"m2:zz"[..],
            b"m2:0000000000000000:0000000000000000:",
            b"m2:3ff0000000000000:0000000000000000:",
            b"m2:0000000000000000:4000000000000000:",
            b"m2:0000000000000000:3ff0000000000000:abc",
            b"m3:1:00",
            b"\xff",
        ] {
            assert!(
                parse_seed(&b, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_seed(&b, b"m2:0000000000000000:3ff0000000000000:6162").is_ok());
    }
}
