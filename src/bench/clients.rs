//! The Thrudoc run: each client is one connection made by [`crate::client::connect`] and
//! driven by its own OS thread.
//!
//! Why threads and not tokio tasks: the generated Thrift client is blocking, a client holds at
//! most one call in flight (the original bench's model), and 20 to a few hundred threads cost
//! nothing next to the server under test. A thread per client also keeps the client side's
//! latency free of any runtime's scheduling. Idle connections are only sockets, with no thread.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
};
use thrift::transport::{
    TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport,
};

use super::cpu::Watched;
use super::run::{Live, Progress, RunStats, Tally, Workload};
use super::workload::{fill_batch, fill_range, key, Op, Rng, FILL_ATTEMPTS, FILL_CLIENTS};
use crate::client::{connect, Client};
use crate::codec::{Protocol, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::gen::thrudoc::{Element, TThrudocSyncClient, ThrudocSyncClient};

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub protocol: Protocol,
}

impl Target {
    fn connect(&self, timeout: Duration) -> thrift::Result<Client> {
        connect(self.addr, self.transport, self.protocol, timeout)
    }
}

/// Checks that the server answers and serves `bucket`, so a mistyped flag fails at once
/// instead of as a run full of errors.
pub fn check(target: &Target, bucket: &str, timeout: Duration) -> Result<()> {
    let unreachable = |e: thrift::Error| {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "Thrudoc at {} ({} {}): {e}",
                target.addr, target.transport, target.protocol
            ),
        )
    };
    let mut client = target.connect(timeout).map_err(unreachable)?;
    let buckets = client.get_buckets().map_err(unreachable)?;
    if buckets.iter().any(|b| b == bucket) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::NoSuchBucket,
            format!(
                "Thrudoc at {} does not serve bucket `{bucket}` (it serves: {})",
                target.addr,
                buckets.join(", ")
            ),
        ))
    }
}

/// How a failed call leaves its connection.
fn failure(e: &thrift::Error) -> (String, bool) {
    let broken = !matches!(e, thrift::Error::User(_) | thrift::Error::Application(_));
    (e.to_string(), broken)
}

/// Text of a failed list element, if it failed (`what` empty means success).
fn element_failure(ex: Option<&crate::gen::thrudoc::ThrudocException>) -> Option<String> {
    ex.and_then(|ex| ex.what.as_deref())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
}

/// What one call did.
struct Outcome {
    ok: u64,
    failed: u64,
    why: Option<String>,
    /// The connection cannot be used again (transport or protocol failure).
    broken: bool,
}

impl Outcome {
    fn from_list<T>(
        n: usize,
        result: thrift::Result<Vec<T>>,
        check: impl Fn(&T) -> Option<String>,
    ) -> Outcome {
        match result {
            Ok(items) => {
                let mut out = Outcome {
                    ok: 0,
                    failed: 0,
                    why: None,
                    broken: false,
                };
                for item in &items {
                    match check(item) {
                        None => out.ok += 1,
                        Some(why) => {
                            out.failed += 1;
                            out.why.get_or_insert(why);
                        }
                    }
                }
                if items.len() < n {
                    out.failed += (n - items.len()) as u64;
                    out.why
                        .get_or_insert_with(|| format!("{} results for {n} elements", items.len()));
                }
                out
            }
            Err(e) => {
                let (why, broken) = failure(&e);
                Outcome {
                    ok: 0,
                    failed: n as u64,
                    why: Some(why),
                    broken,
                }
            }
        }
    }
}

/// One call of the workload on `client`.
fn call(client: &mut Client, w: &Workload, rng: &mut Rng) -> Outcome {
    let op = rng.op(w.mix);
    match w.batch {
        None => {
            let k = key(rng.below(w.keys));
            let result = match op {
                Op::Get => client.get(w.bucket.clone(), k).map(|_| ()),
                Op::Put => client.put(w.bucket.clone(), k, rng.bytes(w.size)),
            };
            match result {
                Ok(()) => Outcome {
                    ok: 1,
                    failed: 0,
                    why: None,
                    broken: false,
                },
                Err(e) => {
                    let (why, broken) = failure(&e);
                    Outcome {
                        ok: 0,
                        failed: 1,
                        why: Some(why),
                        broken,
                    }
                }
            }
        }
        Some(n) => {
            let indexes = rng.key_indexes(w.keys, n);
            match op {
                Op::Get => {
                    let elements = indexes
                        .into_iter()
                        .map(|i| Element::new(w.bucket.clone(), key(i), None::<Vec<u8>>))
                        .collect();
                    Outcome::from_list(n, client.get_list(elements), |r| {
                        element_failure(r.ex.as_ref())
                    })
                }
                Op::Put => {
                    let elements = indexes
                        .into_iter()
                        .map(|i| Element::new(w.bucket.clone(), key(i), rng.bytes(w.size)))
                        .collect();
                    Outcome::from_list(n, client.put_list(elements), |ex| element_failure(Some(ex)))
                }
            }
        }
    }
}

/// One client of the timed run: connect, wait for the others, call until the deadline.
fn client_loop(target: &Target, w: &Workload, index: usize, live: &Live, start: &Barrier) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng::for_client(w.seed, index);
    let mut client = match target.connect(w.timeout) {
        Ok(c) => Some(c),
        Err(e) => {
            tally.fail(1, || format!("connecting: {e}"));
            None
        }
    };
    start.wait();
    let deadline = Instant::now() + w.duration;
    let mut last_look = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline || w.told_to_stop(&mut last_look) {
            break;
        }
        let Some(c) = client.as_mut() else {
            // Reconnect at most ten times a second, never past the deadline.
            std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
            match target.connect(w.timeout) {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tally.fail(1, || format!("reconnecting: {e}"));
                    live.add(0, 1);
                }
            }
            continue;
        };
        let began = Instant::now();
        let outcome = call(c, w, &mut rng);
        let broken = outcome.broken;
        tally.call(
            live,
            began.elapsed(),
            outcome.ok,
            outcome.failed,
            outcome.why,
        );
        if broken {
            client = None;
        }
    }
    tally
}

/// The timed run of `w` against `target`, with the CPU time it cost `watched`.
pub fn run(target: &Target, w: &Workload, watched: &Watched) -> RunStats {
    let live = Arc::new(Live::default());
    let start = Arc::new(Barrier::new(w.clients + 1));
    let handles: Vec<_> = (0..w.clients)
        .map(|i| {
            let (target, w, live, start) = (target.clone(), w.clone(), live.clone(), start.clone());
            std::thread::spawn(move || client_loop(&target, &w, i, &live, &start))
        })
        .collect();
    start.wait();
    let cpu_before = watched.read();
    let began = Instant::now();
    let progress = Progress::start(
        format!("thrudoc {}", w.mix.as_str()),
        live,
        None,
        w.duration + w.timeout + Duration::from_secs(5),
    );
    let mut tally = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => tally.fail(1, || "a client thread panicked".into()),
        }
    }
    let elapsed = began.elapsed();
    drop(progress);
    RunStats {
        target: "thrudoc",
        workload: w.clone(),
        elapsed,
        tally,
        cpu: watched.since(cpu_before),
    }
}

/// Writes every key once with `putList`, the key space split between at most
/// [`FILL_CLIENTS`] connections.
pub fn fill(target: &Target, w: &Workload) -> Result<()> {
    let live = Arc::new(Live::default());
    let progress = Progress::start(
        "fill through thrudoc".into(),
        live.clone(),
        Some(w.keys),
        Duration::from_secs(24 * 3600),
    );
    let fillers = w.clients.min(FILL_CLIENTS);
    let handles: Vec<_> = (0..fillers)
        .map(|i| {
            let (target, w, live) = (target.clone(), w.clone(), live.clone());
            std::thread::spawn(move || fill_client(&target, &w, fillers, i, &live))
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => tally.fail(1, || "a fill thread panicked".into()),
        }
    }
    drop(progress);
    if tally.errors > 0 {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "filling {} keys through Thrudoc: {} failed after {FILL_ATTEMPTS} attempts; first: {}",
                w.keys,
                tally.errors,
                tally.first_error.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn fill_client(target: &Target, w: &Workload, fillers: usize, index: usize, live: &Live) -> Tally {
    let mut tally = Tally::default();
    let keys: Vec<u64> = fill_range(w.keys, fillers, index).collect();
    let mut rng = Rng::for_client(w.seed ^ 0xF111, index);
    let mut client: Option<Client> = None;
    for chunk in keys.chunks(fill_batch(w.size)) {
        let mut last = None;
        for attempt in 1..=FILL_ATTEMPTS {
            if attempt > 1 {
                std::thread::sleep(Duration::from_millis(500));
            }
            let c = match client.as_mut() {
                Some(c) => c,
                None => match target.connect(w.timeout) {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        last = Some(format!("connecting: {e}"));
                        continue;
                    }
                },
            };
            let elements = chunk
                .iter()
                .map(|&i| Element::new(w.bucket.clone(), key(i), rng.bytes(w.size)))
                .collect();
            let outcome = Outcome::from_list(chunk.len(), c.put_list(elements), |ex| {
                element_failure(Some(ex))
            });
            if outcome.broken {
                client = None;
            }
            if outcome.failed == 0 {
                last = None;
                break;
            }
            last = Some(outcome.why.unwrap_or_else(|| "putList failed".into()));
        }
        match last {
            None => {
                tally.ops += chunk.len() as u64;
                live.add(chunk.len() as u64, 0);
            }
            Some(why) => {
                tally.fail(chunk.len() as u64, || why);
                live.add(0, chunk.len() as u64);
            }
        }
    }
    tally
}

/// Connections opened before the run and held, idle, until the end.
#[derive(Debug, Default)]
pub struct IdleConnections {
    streams: Vec<TcpStream>,
    pub failed: u64,
    pub first_error: Option<String>,
}

impl IdleConnections {
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// One `getBuckets` over `stream`, with a client that borrows it for that one call: the stream
/// stays open afterwards with nothing but the socket left on this side.
fn get_buckets_over(
    stream: &TcpStream,
    transport: Transport,
    protocol: Protocol,
) -> thrift::Result<()> {
    match (transport, protocol) {
        (Transport::Framed, Protocol::Binary) => ThrudocSyncClient::new(
            TBinaryInputProtocol::new(TFramedReadTransport::new(stream), true),
            TBinaryOutputProtocol::new(TFramedWriteTransport::new(stream), true),
        )
        .get_buckets(),
        (Transport::Framed, Protocol::Compact) => ThrudocSyncClient::new(
            TCompactInputProtocol::new(TFramedReadTransport::new(stream)),
            TCompactOutputProtocol::new(TFramedWriteTransport::new(stream)),
        )
        .get_buckets(),
        (Transport::Unframed, Protocol::Binary) => ThrudocSyncClient::new(
            TBinaryInputProtocol::new(TBufferedReadTransport::new(stream), true),
            TBinaryOutputProtocol::new(TBufferedWriteTransport::new(stream), true),
        )
        .get_buckets(),
        (Transport::Unframed, Protocol::Compact) => ThrudocSyncClient::new(
            TCompactInputProtocol::new(TBufferedReadTransport::new(stream)),
            TCompactOutputProtocol::new(TBufferedWriteTransport::new(stream)),
        )
        .get_buckets(),
    }
    .map(|_| ())
}

fn open_one(target: &Target, timeout: Duration) -> thrift::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&target.addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    get_buckets_over(&stream, target.transport, target.protocol)?;
    Ok(stream)
}

/// Opens `n` connections, each making one `getBuckets` call (so the server holds a connection
/// that has been used, as a real idle client's is) and then staying silent.
pub fn open_idle(target: &Target, n: usize, timeout: Duration) -> IdleConnections {
    let mut idle = IdleConnections::default();
    if n == 0 {
        return idle;
    }
    let live = Arc::new(Live::default());
    let _progress = Progress::start(
        "idle connections".into(),
        live.clone(),
        Some(n as u64),
        Duration::from_secs(24 * 3600),
    );
    idle.streams.reserve(n);
    for _ in 0..n {
        match open_one(target, timeout) {
            Ok(s) => {
                idle.streams.push(s);
                live.add(1, 0);
            }
            Err(e) => {
                idle.failed += 1;
                idle.first_error.get_or_insert_with(|| e.to_string());
                live.add(0, 1);
            }
        }
    }
    idle
}

/// Makes one more call on every idle connection: how many the server still holds.
pub fn check_idle(target: &Target, idle: &IdleConnections) -> u64 {
    idle.streams
        .iter()
        .filter(|s| get_buckets_over(s, target.transport, target.protocol).is_ok())
        .count() as u64
}
