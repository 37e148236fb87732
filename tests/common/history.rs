//! A recorded workload and the checks run over its history after a fault.
//!
//! Clients put and get keys of one bucket concurrently and record every operation with its
//! start, end and outcome. Each key is written by one client only, so its writes are ordered
//! and "the last acknowledged value" is well defined. After recovery, [`History::check`]
//! proves that nothing acknowledged was lost, and [`History::measure`] reports how long
//! affected partitions were unreadable or unwritable.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thrudoc::client;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{ErrorCode, TThrudocSyncClient, ThrudocException};

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// put acknowledged, or get answered (with the value, `None` for NO_SUCH_KEY).
    Ok(Option<Vec<u8>>),
    /// A ThrudocException with this `ErrorCode`.
    Refused(i32, String),
    /// The connection failed or timed out: for a put, the outcome is unknown.
    Transport(String),
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Op {
    pub key: String,
    /// `Some(value)` for a put, `None` for a get.
    pub put: Option<Vec<u8>>,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

/// Running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Op>>>,
}

/// Per-call client timeout: longer than any server-side timeout, so a hang would show.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

impl Workload {
    /// Starts `clients` clients on `bucket` over `keys`: each puts its own keys and gets any.
    pub fn start(addr: SocketAddr, bucket: &str, keys: &[String], clients: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let keys = Arc::new(keys.to_vec());
        let threads = (0..clients)
            .map(|c| {
                let (stop, keys, bucket) = (stop.clone(), keys.clone(), bucket.to_string());
                std::thread::spawn(move || run_client(addr, &bucket, &keys, c, clients, &stop))
            })
            .collect();
        Workload { stop, threads }
    }

    /// Stops the clients and returns the history.
    pub fn stop(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        let ops = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("workload client panicked"))
            .collect();
        History { ops }
    }
}

fn run_client(
    addr: SocketAddr,
    bucket: &str,
    keys: &[String],
    me: usize,
    clients: usize,
    stop: &AtomicBool,
) -> Vec<Op> {
    let mine: Vec<&String> = keys.iter().skip(me).step_by(clients).collect();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (me as u64 + 1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut ops = Vec::new();
    let mut conn = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let c = match &mut conn {
            Some(c) => c,
            None => {
                match client::connect(addr, Transport::Framed, Protocol::Binary, CLIENT_TIMEOUT) {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
        };
        let write = next() % 2 == 0;
        let (key, put) = if write {
            seq += 1;
            let key = mine[(next() % mine.len() as u64) as usize].clone();
            (key, Some(format!("{me}:{seq}").into_bytes()))
        } else {
            (keys[(next() % keys.len() as u64) as usize].clone(), None)
        };
        let start = Instant::now();
        let result = match &put {
            Some(v) => c.put(bucket.into(), key.clone(), v.clone()).map(|()| None),
            None => c.get(bucket.into(), key.clone()).map(Some),
        };
        let outcome = match result {
            Ok(v) => Outcome::Ok(v),
            Err(thrift::Error::User(e)) => match e.downcast::<ThrudocException>() {
                Ok(ex) => {
                    let code = super::code_of(&ex);
                    if code == ErrorCode::NO_SUCH_KEY.0 {
                        Outcome::Ok(None)
                    } else {
                        Outcome::Refused(code, ex.what.unwrap_or_default())
                    }
                }
                Err(other) => Outcome::Transport(other.to_string()),
            },
            Err(e) => {
                conn = None;
                Outcome::Transport(e.to_string())
            }
        };
        ops.push(Op {
            key,
            put,
            start,
            end: Instant::now(),
            outcome,
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    ops
}

/// Recovery figures for the keys a fault affected.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// From the fault to the end of the last failed read of an affected key (0: none failed).
    pub read_outage: Duration,
    /// The slowest read of an affected key that started after the fault.
    pub slowest_read: Duration,
    /// Affected reads after the fault: answered, failed (refused `BEHIND` aside).
    pub reads: (usize, usize),
    /// Affected reads refused `BEHIND`: the sibling lacked acknowledged writes, and
    /// `FAILOVER_READS = consistent` refused rather than return an old value (allowed, and
    /// not part of `read_outage`).
    pub reads_behind: usize,
    /// The slowest refusal of a write to an affected key that started after the fault.
    pub slowest_refusal: Duration,
    /// From the fault to the first refusal that took less than 100 ms (refused at once).
    pub refused_at_once_after: Option<Duration>,
    /// From `recovered` to the end of the first acknowledged write of an affected key.
    pub writes_back_after: Option<Duration>,
    /// Failures of operations on keys the fault did not affect.
    pub unaffected_failures: usize,
}

/// A finished workload's operations.
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    /// Every acknowledged write is present in `final_values` (key → value read after
    /// recovery) with its last acknowledged value, or with the value of a later write whose
    /// outcome was not acknowledged. Every value read was one that was written (by the
    /// workload, or `initial`, which every key held before it started).
    pub fn check(&self, final_values: &HashMap<String, Option<Vec<u8>>>, initial: &[u8]) {
        let mut acknowledged = 0;
        for (key, ops) in &self.by_key() {
            let puts = puts_in_order(ops);
            let written: HashSet<&[u8]> = puts.iter().filter_map(|o| o.put.as_deref()).collect();
            let last_ack = puts
                .iter()
                .rposition(|o| matches!(o.outcome, Outcome::Ok(_)));
            let final_value = final_values
                .get(*key)
                .unwrap_or_else(|| panic!("no final read of {key}"));
            if let Some(i) = last_ack {
                acknowledged += 1;
                let mut allowed: Vec<&[u8]> = vec![puts[i].put.as_deref().unwrap()];
                allowed.extend(puts[i + 1..].iter().map(|o| o.put.as_deref().unwrap()));
                let ok = final_value.as_deref().is_some_and(|v| allowed.contains(&v));
                assert!(
                    ok,
                    "acknowledged write lost: key {key} last acknowledged {:?}, now {:?}",
                    String::from_utf8_lossy(puts[i].put.as_deref().unwrap()),
                    final_value.as_deref().map(String::from_utf8_lossy)
                );
            }
            for op in ops.iter().filter(|o| o.put.is_none()) {
                if let Outcome::Ok(Some(v)) = &op.outcome {
                    let known = v == initial || written.contains(&v[..]);
                    assert!(known, "read of {key} returned a value never written: {v:?}");
                }
            }
        }
        assert!(
            acknowledged > 0,
            "the workload acknowledged no write at all"
        );
    }

    /// Reads that went back in time: a get that returned a key's value (or the initial one)
    /// when a later write of that key had been acknowledged before the get began. Each key has
    /// one writer, so its writes are ordered. One line per such read.
    pub fn stale_reads(&self, initial: &[u8]) -> Vec<String> {
        let mut stale = Vec::new();
        for (key, ops) in &self.by_key() {
            let puts = puts_in_order(ops);
            // The position of the put that wrote `v`; the initial value comes before them all.
            let rank = |v: &[u8]| -> Option<usize> {
                if v == initial {
                    return Some(0);
                }
                puts.iter()
                    .position(|o| o.put.as_deref() == Some(v))
                    .map(|i| i + 1)
            };
            for get in ops.iter().filter(|o| o.put.is_none()) {
                let Outcome::Ok(Some(v)) = &get.outcome else {
                    continue;
                };
                let Some(found) = rank(v) else { continue };
                let newest_acked = puts
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| matches!(p.outcome, Outcome::Ok(_)) && p.end < get.start)
                    .map(|(i, _)| i + 1)
                    .max();
                if let Some(newest) = newest_acked.filter(|&n| n > found) {
                    stale.push(format!(
                        "get {key} returned {:?}, {} write(s) behind one acknowledged before it began",
                        String::from_utf8_lossy(v),
                        newest - found
                    ));
                }
            }
        }
        stale
    }

    /// Each key's operations.
    fn by_key(&self) -> HashMap<&str, Vec<&Op>> {
        let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
        for op in &self.ops {
            by_key.entry(&op.key).or_default().push(op);
        }
        by_key
    }

    /// Recovery figures after a fault at `fault` that ended at `recovered` (the host accepts
    /// connections again), for keys where `affected(key)`.
    pub fn measure(
        &self,
        fault: Instant,
        recovered: Instant,
        affected: impl Fn(&str) -> bool,
    ) -> Figures {
        let mut f = Figures::default();
        let mut first_ack_after_recovery: Option<Instant> = None;
        let mut first_quick_refusal: Option<Instant> = None;
        for op in &self.ops {
            let failed = !matches!(op.outcome, Outcome::Ok(_));
            if !affected(&op.key) {
                f.unaffected_failures += usize::from(failed);
                continue;
            }
            if op.start < fault {
                continue;
            }
            let took = op.end - op.start;
            if op.put.is_none() {
                if matches!(op.outcome, Outcome::Refused(code, _) if code == ErrorCode::BEHIND.0) {
                    f.reads_behind += 1;
                    continue;
                }
                if failed {
                    f.reads.1 += 1;
                    f.read_outage = f.read_outage.max(op.end - fault);
                } else {
                    f.reads.0 += 1;
                }
                f.slowest_read = f.slowest_read.max(took);
            } else if failed {
                if op.start < recovered {
                    f.slowest_refusal = f.slowest_refusal.max(took);
                    if took < Duration::from_millis(100)
                        && first_quick_refusal.is_none_or(|t| op.end < t)
                    {
                        first_quick_refusal = Some(op.end);
                    }
                }
            } else if op.start >= recovered && first_ack_after_recovery.is_none_or(|t| op.end < t) {
                first_ack_after_recovery = Some(op.end);
            }
        }
        f.refused_at_once_after = first_quick_refusal.map(|t| t - fault);
        f.writes_back_after = first_ack_after_recovery.map(|t| t - recovered);
        f
    }
}

/// The puts among one key's `ops`, in the order its one writer made them.
fn puts_in_order<'h>(ops: &[&'h Op]) -> Vec<&'h Op> {
    let mut puts: Vec<&Op> = ops.iter().copied().filter(|o| o.put.is_some()).collect();
    puts.sort_by_key(|o| o.start);
    puts
}
