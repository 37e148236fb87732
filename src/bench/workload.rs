//! What the clients send: keys `bench-{i}` drawn uniformly from `0..keys`, values of `size`
//! random bytes, and the mix of reads and writes. The same workload (same seed, same draws)
//! drives the Thrudoc run and the direct run.

/// Which operations a run issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Only `get` (`getList` with --batch).
    Read,
    /// Only `put` (`putList` with --batch).
    Write,
    /// Half and half, drawn at random per call.
    Both,
}

impl Mix {
    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Read => "read",
            Mix::Write => "write",
            Mix::Both => "both",
        }
    }

    /// Whether the key space must be filled before the timed run.
    pub fn reads(self) -> bool {
        self != Mix::Write
    }
}

/// One call of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
}

/// The key of index `i`.
pub fn key(i: u64) -> String {
    format!("bench-{i}")
}

/// SplitMix64: tiny, fast and good enough to pick keys and make values; a benchmark needs no
/// cryptographic randomness, and this keeps the crate free of a `rand` dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of client `client` of a run seeded with `seed`.
    pub fn for_client(seed: u64, client: usize) -> Rng {
        Rng(seed ^ (client as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift (bias below 2^-32 for any n the
    /// bench uses).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// The next call of `mix`.
    pub fn op(&mut self, mix: Mix) -> Op {
        match mix {
            Mix::Read => Op::Get,
            Mix::Write => Op::Put,
            Mix::Both => {
                if self.next_u64() & 1 == 0 {
                    Op::Get
                } else {
                    Op::Put
                }
            }
        }
    }

    /// `n` key indexes, uniformly over `0..keys`.
    pub fn key_indexes(&mut self, keys: u64, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.below(keys)).collect()
    }
}

/// The part of `0..keys` client `client` of `clients` fills, so that together they fill it
/// once.
pub fn fill_range(keys: u64, clients: usize, client: usize) -> std::ops::Range<u64> {
    let clients = clients.max(1) as u64;
    let c = client as u64;
    (keys * c / clients)..(keys * (c + 1) / clients)
}

/// Elements per `putList` while filling: at most 100, and at most about 1 MiB of values. With
/// [`FILL_CLIENTS`] connections that is a few MiB in flight: fast, yet gentle enough that a
/// loaded 2-core box running MariaDB too does not hit the server's query timeout.
pub fn fill_batch(size: usize) -> usize {
    ((1 << 20) / size.max(1)).clamp(1, 100)
}

/// Most connections filling at once.
pub const FILL_CLIENTS: usize = 4;

/// Attempts at each `putList` of the fill: an upsert is safe to repeat, and one timeout under
/// load should not end the run before it starts.
pub const FILL_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_ranges_cover_the_key_space_once() {
        for (keys, clients) in [(20_000, 20), (7, 3), (2, 5), (0, 4)] {
            let mut next = 0;
            for c in 0..clients {
                let r = fill_range(keys, clients, c);
                assert_eq!(r.start, next);
                next = r.end;
            }
            assert_eq!(next, keys);
        }
    }

    #[test]
    fn draws_are_uniform_enough_and_reproducible() {
        let mut rng = Rng::for_client(1, 0);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        let gets = (0..10_000).filter(|_| rng.op(Mix::Both) == Op::Get).count();
        assert!((4_700..5_300).contains(&gets), "{gets}");
        assert_eq!(
            Rng::for_client(7, 3).key_indexes(1000, 5),
            Rng::for_client(7, 3).key_indexes(1000, 5)
        );
        assert_ne!(
            Rng::for_client(7, 3).next_u64(),
            Rng::for_client(7, 4).next_u64()
        );
        assert_eq!(rng.bytes(1025).len(), 1025);
        assert_eq!(fill_batch(1024), 100);
        assert_eq!(fill_batch(64 << 10), 16);
        assert_eq!(fill_batch(64 << 20), 1);
    }
}
