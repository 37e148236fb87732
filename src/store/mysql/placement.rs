//! Placement: which partition of a bucket holds a key.
//!
//! A key hashes to a point in `[0, 1]`; the partition is the first live one, in order of
//! `end`, whose `end` is at or above the point. New buckets hash with xxHash64; buckets of an
//! existing Thrudoc directory keep the original's modified 32-bit FNV, so their keys stay where
//! they are. Each bucket records which one it uses ([`HashKind`]).

use std::fmt;
use std::str::FromStr;

use twox_hash::XxHash64;

/// The hash a bucket places its keys with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// xxHash64 with seed 0; the point is `h / 2^64`. New buckets use it.
    XxHash64,
    /// The original Thrudoc's modified 32-bit FNV; the point is `h / (2^32 - 1)`.
    Fnv32,
}

impl HashKind {
    /// The name stored in the directory's `bucket.hash` column.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::XxHash64 => "xxhash64",
            HashKind::Fnv32 => "fnv32",
        }
    }

    /// The key's point in `[0, 1]`.
    pub fn point(self, key: &[u8]) -> f64 {
        match self {
            // 2^64 is exactly representable, so the point stays below 1.
            HashKind::XxHash64 => XxHash64::oneshot(0, key) as f64 / 18_446_744_073_709_551_616.0,
            HashKind::Fnv32 => f64::from(fnv32_thrudoc(key)) / 4_294_967_295.0,
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "xxhash64" => Ok(HashKind::XxHash64),
            "fnv32" => Ok(HashKind::Fnv32),
            other => Err(format!("unknown hash `{other}` (known: xxhash64, fnv32)")),
        }
    }
}

/// The original Thrudoc's FNV variant: for each byte `h ^= b; h *= 16777619; h ^= b`, from
/// 2166136261, in 32-bit arithmetic. (It is not FNV-1 nor FNV-1a: the byte is xored in both
/// before and after the multiply.)
pub fn fnv32_thrudoc(key: &[u8]) -> u32 {
    key.iter().fold(2_166_136_261u32, |mut h, &b| {
        h ^= u32::from(b);
        h = h.wrapping_mul(16_777_619);
        h ^ u32::from(b)
    })
}

/// The index of the partition holding `point`, given partition `ends` sorted ascending:
/// the first end at or above the point. Points above the last end (a directory that does not
/// reach 1) go to the last partition; the directory loader refuses such directories anyway.
pub fn partition_index(ends: &[f64], point: f64) -> usize {
    ends.partition_point(|&end| end < point)
        .min(ends.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand from the definition, byte by byte, in 32-bit arithmetic.
    #[test]
    fn fnv_matches_hand_computed_values() {
        // Empty key: the offset basis itself.
        assert_eq!(fnv32_thrudoc(b""), 2_166_136_261);
        // "a" (0x61): 2166136261 ^ 0x61 = 2166136292 (0x811C9DE4);
        // * 16777619 mod 2^32 = 0xE40C292C (3826002220); ^ 0x61 = 0xE40C294D = 3826002253.
        assert_eq!(fnv32_thrudoc(b"a"), 3_826_002_253);
        // "ab": from 0xE40C294D: ^ 0x62 = 0xE40C292F; * 16777619 mod 2^32 = 0x2E24D4FD;
        // ^ 0x62 = 0x2E24D49F = 774165663.
        assert_eq!(fnv32_thrudoc(b"ab"), 774_165_663);
    }

    #[test]
    fn fnv_matches_a_straightforward_u64_implementation() {
        fn reference(key: &[u8]) -> u32 {
            let mut h: u64 = 2_166_136_261;
            for &b in key {
                h ^= u64::from(b);
                h = (h * 16_777_619) % (1 << 32);
                h ^= u64::from(b);
            }
            h as u32
        }
        for key in [
            &b"thrudoc"[..],
            b"key-000123",
            &[0, 255, 128, 7],
            "ключ".as_bytes(),
        ] {
            assert_eq!(fnv32_thrudoc(key), reference(key));
        }
    }

    #[test]
    fn points_are_in_the_unit_interval() {
        for i in 0..10_000u32 {
            let key = i.to_le_bytes();
            for kind in [HashKind::XxHash64, HashKind::Fnv32] {
                let p = kind.point(&key);
                assert!((0.0..=1.0).contains(&p), "{kind} {i} {p}");
            }
        }
        assert!(HashKind::XxHash64.point(b"") < 1.0);
        assert_eq!(
            HashKind::Fnv32.point(b""),
            2_166_136_261.0 / 4_294_967_295.0
        );
    }

    #[test]
    fn xxhash_spreads_keys_evenly_over_twelve_partitions() {
        let ends: Vec<f64> = (1..=12).map(|i| f64::from(i) / 12.0).collect();
        let mut counts = [0u32; 12];
        for i in 0..120_000u32 {
            let key = format!("key-{i}");
            counts[partition_index(&ends, HashKind::XxHash64.point(key.as_bytes()))] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn partition_is_the_first_end_at_or_above_the_point() {
        let ends = [0.25, 0.5, 0.75, 1.0];
        assert_eq!(partition_index(&ends, 0.0), 0);
        assert_eq!(partition_index(&ends, 0.25), 0);
        assert_eq!(partition_index(&ends, 0.250001), 1);
        assert_eq!(partition_index(&ends, 0.5), 1);
        assert_eq!(partition_index(&ends, 0.99), 3);
        assert_eq!(partition_index(&ends, 1.0), 3);
        assert_eq!(
            partition_index(&[0.5], 0.9),
            0,
            "clamped to the last partition"
        );
    }

    #[test]
    fn hash_names_round_trip() {
        for kind in [HashKind::XxHash64, HashKind::Fnv32] {
            assert_eq!(kind.as_str().parse::<HashKind>().unwrap(), kind);
        }
        assert!("md5".parse::<HashKind>().is_err());
    }
}
