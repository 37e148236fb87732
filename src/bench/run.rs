//! What both runs share: the workload's parameters, per-client tallies, the live counters the
//! progress line reads, and the progress line itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cpu::CpuUse;
use super::histogram::Histogram;
use super::workload::Mix;

/// The workload of one run, the same for the Thrudoc run and the direct one.
#[derive(Debug, Clone)]
pub struct Workload {
    pub bucket: String,
    pub mix: Mix,
    pub clients: usize,
    /// Value size in bytes.
    pub size: usize,
    /// Keys `bench-0` to `bench-{keys-1}`.
    pub keys: u64,
    /// `None`: single `get`/`put`; `Some(n)`: `getList`/`putList` of n elements.
    pub batch: Option<usize>,
    pub duration: Duration,
    pub seed: u64,
    /// Bound on every call (and connection attempt).
    pub timeout: Duration,
    /// The timed run ends early once this file exists.
    pub stop_file: Option<PathBuf>,
}

impl Workload {
    /// True once the stop file exists (looked at no more than ten times a second per client,
    /// through `last_look`).
    pub fn told_to_stop(&self, last_look: &mut Instant) -> bool {
        let Some(file) = &self.stop_file else {
            return false;
        };
        if last_look.elapsed() < Duration::from_millis(100) {
            return false;
        }
        *last_look = Instant::now();
        file.exists()
    }
}

/// What one client did: successful elements (`ops`), failed ones (`errors`), calls, the latency
/// of every call, and the first failure's text.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub latency: Histogram,
    pub ops: u64,
    pub calls: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Counts `n` failed elements, keeping the first failure's text.
    pub fn fail(&mut self, n: u64, why: impl FnOnce() -> String) {
        self.errors += n;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }

    /// Counts one call that took `took` and had `ok` successful and `failed` failed elements
    /// (the first failure's text from `why`), here and in the progress counters `live`.
    pub fn call(
        &mut self,
        live: &Live,
        took: std::time::Duration,
        ok: u64,
        failed: u64,
        why: Option<String>,
    ) {
        self.latency.record_duration(took);
        self.calls += 1;
        self.ops += ok;
        if failed > 0 {
            self.fail(failed, || why.unwrap_or_default());
        }
        live.add(ok, failed);
    }

    pub fn merge(&mut self, other: &Tally) {
        self.latency.merge(&other.latency);
        self.ops += other.ops;
        self.calls += other.calls;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// Counters every client bumps as it goes, for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
}

impl Live {
    pub fn add(&self, ops: u64, errors: u64) {
        self.ops.fetch_add(ops, Ordering::Relaxed);
        if errors > 0 {
            self.errors.fetch_add(errors, Ordering::Relaxed);
        }
    }
}

/// The result of one timed run.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// `thrudoc` or `direct`.
    pub target: &'static str,
    pub workload: Workload,
    /// From the start signal to the end of the last call.
    pub elapsed: Duration,
    pub tally: Tally,
    /// The CPU time the timed run cost (see [`cpu`](super::cpu)).
    pub cpu: CpuUse,
}

impl RunStats {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Successful elements per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.tally.ops as f64 / self.secs()
    }

    pub fn calls_per_sec(&self) -> f64 {
        self.tally.calls as f64 / self.secs()
    }

    /// Latency of a call at quantile `q`, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.tally.latency.quantile(q) as f64 / 1e6
    }

    pub fn max_ms(&self) -> f64 {
        self.tally.latency.max() as f64 / 1e6
    }

    /// CPU microseconds per successful element, of each part.
    pub fn cpu_per_op_us(&self) -> CpuUse {
        self.cpu.per_op_us(self.tally.ops)
    }
}

/// A line on stderr every second while a phase runs. Ends when dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Reports `live` under `label`; `total` (for filling) shows as `done/total`. The thread
    /// ends when this is dropped, or at the latest after `limit`.
    pub fn start(label: String, live: Arc<Live>, total: Option<u64>, limit: Duration) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = (start, 0u64);
            let mut next = start + Duration::from_secs(1);
            while !flag.load(Ordering::Relaxed) && start.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(50));
                let now = Instant::now();
                if now < next {
                    continue;
                }
                next += Duration::from_secs(1);
                let ops = live.ops.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let rate = (ops - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
                last = (now, ops);
                let done = match total {
                    Some(t) => format!("{ops}/{t}"),
                    None => ops.to_string(),
                };
                eprintln!(
                    "{label}: {:>5.1}s  {done} ops  {rate:.0} ops/s now  {errors} errors",
                    (now - start).as_secs_f64()
                );
            }
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
