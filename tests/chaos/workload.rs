//! The recorded workload: several clients per Thrudoc server, each on its own connection,
//! doing puts of values never written before, appends, gets, putList/getList/removeList and
//! scan walks, every operation recorded with its invoke and completion times and outcome.
//!
//! Keys: `r…` registers (put, get, batches), `x…` scratch registers that removeList also
//! removes, `a…` append keys (append and get only, so the final value holds every append).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thrudoc::client::{self, Client};
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{Element, TThrudocSyncClient, ThrudocException};

use super::history::{Action, Micros, Op, Outcome, Walk};

pub const BUCKET: &str = "chaos";
const NO_SUCH_KEY: i32 = 2;
const OUTCOME_UNKNOWN: i32 = 7;
/// A call that takes longer than this is abandoned (its outcome is unknown).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const SCAN_PAGE: i32 = 64;

/// The keys of a run.
#[derive(Debug, Clone)]
pub struct Keys {
    pub registers: Vec<String>,
    pub scratch: Vec<String>,
    pub appends: Vec<String>,
}

impl Keys {
    pub fn new(registers: usize, scratch: usize, appends: usize) -> Keys {
        Keys {
            registers: (0..registers).map(|i| format!("r{i:04}")).collect(),
            scratch: (0..scratch).map(|i| format!("x{i:03}")).collect(),
            appends: (0..appends).map(|i| format!("a{i:03}")).collect(),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.registers
            .iter()
            .chain(&self.scratch)
            .chain(&self.appends)
    }
}

/// A small seeded generator (xorshift64*): a run replays with its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Where every client's records go.
#[derive(Default)]
pub struct Recorder {
    pub ops: Mutex<Vec<Op>>,
    pub walks: Mutex<Vec<Walk>>,
}

/// The clock of a run: microseconds since it started.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now(&self) -> Micros {
        self.0.elapsed().as_micros() as Micros
    }
}

/// What one call ended as, before it is split into per-key records.
enum Called<T> {
    Ok(T),
    Thrudoc(ThrudocException),
    Broken(String),
}

fn call<T>(result: thrift::Result<T>) -> Called<T> {
    match result {
        Ok(v) => Called::Ok(v),
        Err(thrift::Error::User(e)) => match e.downcast::<ThrudocException>() {
            Ok(ex) => Called::Thrudoc(*ex),
            Err(other) => Called::Broken(other.to_string()),
        },
        Err(e) => Called::Broken(e.to_string()),
    }
}

/// The outcome of an exception: refused (it did not happen) or unknown.
fn outcome_of(ex: &ThrudocException) -> Outcome {
    match ex.code {
        Some(OUTCOME_UNKNOWN) | None | Some(1) => Outcome::Unknown {
            why: ex.what.clone().unwrap_or_default(),
        },
        Some(code) => Outcome::Refused { code },
    }
}

/// What every client of a run shares.
#[derive(Clone)]
pub struct Shared {
    pub keys: Arc<Keys>,
    pub clock: Clock,
    pub recorder: Arc<Recorder>,
    pub stop: Arc<AtomicBool>,
}

/// One client: a connection to one server, a generator, and the records it adds to.
pub struct Worker {
    pub id: u32,
    pub server: u32,
    pub addr: SocketAddr,
    pub keys: Arc<Keys>,
    pub rng: Rng,
    pub clock: Clock,
    pub recorder: Arc<Recorder>,
    pub stop: Arc<AtomicBool>,
    conn: Option<Client>,
    seq: u64,
}

impl Worker {
    /// Client `id` of server `server` (at `addr`), its choices drawn from `seed`.
    pub fn new(id: u32, server: u32, addr: SocketAddr, seed: u64, shared: &Shared) -> Worker {
        Worker {
            id,
            server,
            addr,
            keys: shared.keys.clone(),
            rng: Rng::new(seed),
            clock: shared.clock,
            recorder: shared.recorder.clone(),
            stop: shared.stop.clone(),
            conn: None,
            seq: 0,
        }
    }

    /// Calls until told to stop.
    pub fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            if self.conn.is_none() {
                let kinds = [
                    (Transport::Framed, Protocol::Binary),
                    (Transport::Framed, Protocol::Compact),
                    (Transport::Unframed, Protocol::Binary),
                    (Transport::Unframed, Protocol::Compact),
                ];
                let (t, p) = kinds[self.id as usize % kinds.len()];
                match client::connect(self.addr, t, p, CALL_TIMEOUT) {
                    Ok(c) => self.conn = Some(c),
                    Err(_) => {
                        // The server is down (a fault): try again shortly.
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            let roll = self.rng.below(100);
            match roll {
                0..=34 => self.put(),
                35..=59 => self.get(),
                60..=69 => self.append(),
                70..=79 => self.put_list(),
                80..=89 => self.get_list(),
                90..=96 => self.remove_list(),
                _ => self.walk(),
            }
        }
    }

    fn value(&mut self) -> String {
        self.seq += 1;
        format!("c{}.{}", self.id, self.seq)
    }

    fn record(&self, key: &str, action: Action, invoke: Micros, outcome: Outcome, batch: bool) {
        let op = Op {
            client: self.id,
            server: self.server,
            key: key.to_string(),
            action,
            invoke,
            complete: self.clock.now(),
            outcome,
            batch,
        };
        self.recorder.ops.lock().unwrap().push(op);
    }

    /// The connection, and the end of it when the call broke it.
    fn conn(&mut self) -> &mut Client {
        self.conn.as_mut().expect("connected")
    }

    fn broken(&mut self) {
        self.conn = None;
    }

    fn put(&mut self) {
        let key = self.rng.pick(&self.keys.registers).clone();
        let value = self.value();
        let invoke = self.clock.now();
        let outcome = match call(self.conn().put(
            BUCKET.into(),
            key.clone(),
            value.clone().into_bytes(),
        )) {
            Called::Ok(()) => Outcome::Ok,
            Called::Thrudoc(ex) => outcome_of(&ex),
            Called::Broken(why) => {
                self.broken();
                Outcome::Unknown { why }
            }
        };
        self.record(&key, Action::Put { value }, invoke, outcome, false);
    }

    fn append(&mut self) {
        let key = self.rng.pick(&self.keys.appends).clone();
        let suffix = format!("{};", self.value());
        let invoke = self.clock.now();
        let outcome = match call(self.conn().append(
            BUCKET.into(),
            key.clone(),
            suffix.clone().into_bytes(),
        )) {
            Called::Ok(()) => Outcome::Ok,
            Called::Thrudoc(ex) => outcome_of(&ex),
            Called::Broken(why) => {
                self.broken();
                Outcome::Unknown { why }
            }
        };
        self.record(&key, Action::Append { suffix }, invoke, outcome, false);
    }

    fn any_key(&mut self) -> String {
        match self.rng.below(10) {
            0..=5 => self.rng.pick(&self.keys.registers).clone(),
            6..=7 => self.rng.pick(&self.keys.scratch).clone(),
            _ => self.rng.pick(&self.keys.appends).clone(),
        }
    }

    fn get(&mut self) {
        let key = self.any_key();
        let invoke = self.clock.now();
        let (found, outcome) = match call(self.conn().get(BUCKET.into(), key.clone())) {
            Called::Ok(v) => (Some(String::from_utf8_lossy(&v).into_owned()), Outcome::Ok),
            Called::Thrudoc(ex) if ex.code == Some(NO_SUCH_KEY) => (None, Outcome::Ok),
            Called::Thrudoc(ex) => (None, outcome_of(&ex)),
            Called::Broken(why) => {
                self.broken();
                (None, Outcome::Unknown { why })
            }
        };
        self.record(&key, Action::Get { found }, invoke, outcome, false);
    }

    /// Distinct keys for one batch.
    fn distinct(&mut self, from: &[String], n: usize) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        while keys.len() < n.min(from.len()) {
            let k = self.rng.pick(from).clone();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }

    fn put_list(&mut self) {
        let n = 2 + self.rng.below(4);
        let registers = self.keys.registers.clone();
        let scratch = self.keys.scratch.clone();
        let from = if self.rng.below(4) == 0 {
            &scratch
        } else {
            &registers
        };
        let keys = self.distinct(from, n);
        let values: Vec<String> = keys.iter().map(|_| self.value()).collect();
        let elements = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| Element::new(BUCKET.to_string(), k.clone(), v.clone().into_bytes()))
            .collect();
        let invoke = self.clock.now();
        let called = call(self.conn().put_list(elements));
        let outcomes = self.list_outcomes(called, keys.len());
        for ((key, value), outcome) in keys.iter().zip(values).zip(outcomes) {
            self.record(key, Action::Put { value }, invoke, outcome, true);
        }
    }

    /// Each element's outcome of a putList/removeList.
    fn list_outcomes(&mut self, called: Called<Vec<ThrudocException>>, n: usize) -> Vec<Outcome> {
        match called {
            Called::Ok(list) if list.len() == n => list
                .iter()
                .map(|ex| match ex.what.as_deref() {
                    Some("") => Outcome::Ok,
                    _ => outcome_of(ex),
                })
                .collect(),
            Called::Ok(list) => vec![
                Outcome::Unknown {
                    why: format!("{} results for {n} elements", list.len())
                };
                n
            ],
            Called::Thrudoc(ex) => vec![outcome_of(&ex); n],
            Called::Broken(why) => {
                self.broken();
                vec![Outcome::Unknown { why }; n]
            }
        }
    }

    fn remove_list(&mut self) {
        let n = 1 + self.rng.below(3);
        let scratch = self.keys.scratch.clone();
        let keys = self.distinct(&scratch, n);
        let elements = keys
            .iter()
            .map(|k| Element::new(BUCKET.to_string(), k.clone(), Vec::new()))
            .collect();
        let invoke = self.clock.now();
        let called = call(self.conn().remove_list(elements));
        let outcomes = self.list_outcomes(called, keys.len());
        for (key, outcome) in keys.iter().zip(outcomes) {
            self.record(key, Action::Remove, invoke, outcome, true);
        }
    }

    fn get_list(&mut self) {
        let n = 3 + self.rng.below(6);
        let mut keys: Vec<String> = Vec::new();
        while keys.len() < n {
            let k = self.any_key();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let elements = keys
            .iter()
            .map(|k| Element::new(BUCKET.to_string(), k.clone(), Vec::new()))
            .collect();
        let invoke = self.clock.now();
        let results: Vec<(Option<String>, Outcome)> = match call(self.conn().get_list(elements)) {
            Called::Ok(list) if list.len() == keys.len() => list
                .into_iter()
                .map(|r| {
                    let ex = r.ex.unwrap_or_default();
                    match (ex.what.as_deref(), ex.code) {
                        (Some(""), _) => {
                            let v = r.element.and_then(|e| e.value).unwrap_or_default();
                            (Some(String::from_utf8_lossy(&v).into_owned()), Outcome::Ok)
                        }
                        (_, Some(NO_SUCH_KEY)) => (None, Outcome::Ok),
                        _ => (None, outcome_of(&ex)),
                    }
                })
                .collect(),
            Called::Ok(list) => {
                let why = format!("{} results for {} elements", list.len(), keys.len());
                vec![(None, Outcome::Unknown { why }); keys.len()]
            }
            Called::Thrudoc(ex) => vec![(None, outcome_of(&ex)); keys.len()],
            Called::Broken(why) => {
                self.broken();
                vec![(None, Outcome::Unknown { why }); keys.len()]
            }
        };
        for (key, (found, outcome)) in keys.iter().zip(results) {
            self.record(key, Action::Get { found }, invoke, outcome, true);
        }
    }

    fn walk(&mut self) {
        let invoke = self.clock.now();
        let mut keys = Vec::new();
        let mut seed = String::new();
        let mut error = None;
        let finished = loop {
            match call(self.conn().scan(BUCKET.into(), seed.clone(), SCAN_PAGE)) {
                Called::Ok(page) => {
                    let elements = page.elements.unwrap_or_default();
                    let n = elements.len();
                    keys.extend(elements.into_iter().filter_map(|e| e.key));
                    if n < SCAN_PAGE as usize {
                        break true;
                    }
                    seed = page.seed.unwrap_or_default();
                }
                Called::Thrudoc(ex) => {
                    error = Some(ex.what.unwrap_or_default());
                    break false;
                }
                Called::Broken(why) => {
                    self.broken();
                    error = Some(why);
                    break false;
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                break false;
            }
        };
        let walk = Walk {
            client: self.id,
            server: self.server,
            invoke,
            complete: self.clock.now(),
            keys,
            finished,
            error,
        };
        self.recorder.walks.lock().unwrap().push(walk);
    }
}
