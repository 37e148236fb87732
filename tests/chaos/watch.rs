//! The run's own watch on each MariaDB host's new connections: every quarter second, from the
//! chaos process (outside every Thrudoc server), a fresh TCP connection, login and `SELECT 1`
//! within the Thrudoc servers' connect timeout. A host that fails it took no new connection:
//! [`Stall`]s are recorded from the first failed attempt to the next that succeeded.
//!
//! Why: MariaDB can stall new connections for seconds after a fault at a host has healed while
//! the connections it has keep answering (a chaos run saw a master accept connections from both
//! Thrudoc servers and leave them unauthenticated for 7.5 s, until it replaced its binary log
//! dump thread to its sibling). A Thrudoc server that keeps its connections writes on; one that
//! was just restarted, with none, cannot write to the host at all. The checker explains that
//! server's refusals by the stall, and the report counts stalls outside every fault.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::history::{Micros, Stall};
use super::workload::Clock;

const EVERY: Duration = Duration::from_millis(250);

/// The watch, running until [`Watch::finish`].
pub struct Watch {
    stop: Arc<AtomicBool>,
    stalls: Arc<Mutex<Vec<Stall>>>,
    thread: JoinHandle<()>,
}

impl Watch {
    /// Watches `hosts` (`ip:port`, by host index), each attempt within `timeout`.
    pub fn start(hosts: Vec<String>, timeout: Duration, clock: Clock) -> Result<Watch, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the connection watch's runtime: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (stop, stalls) = (stop.clone(), stalls.clone());
            move || {
                runtime.block_on(async {
                    let watches: Vec<_> = hosts
                        .into_iter()
                        .enumerate()
                        .map(|(host, addr)| {
                            tokio::spawn(watch_host(
                                host,
                                addr,
                                timeout,
                                clock,
                                stop.clone(),
                                stalls.clone(),
                            ))
                        })
                        .collect();
                    for w in watches {
                        let _ = w.await;
                    }
                })
            }
        });
        Ok(Watch {
            stop,
            stalls,
            thread,
        })
    }

    /// Stops watching; every stall seen, a stall still going ending now.
    pub fn finish(self) -> Vec<Stall> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let mut stalls = std::mem::take(&mut *self.stalls.lock().unwrap());
        stalls.sort_by_key(|s| (s.start, s.host));
        stalls
    }
}

async fn watch_host(
    host: usize,
    addr: String,
    timeout: Duration,
    clock: Clock,
    stop: Arc<AtomicBool>,
    stalls: Arc<Mutex<Vec<Stall>>>,
) {
    let Some((ip, port)) = addr.rsplit_once(':') else {
        return;
    };
    let opts = OptsBuilder::default()
        .ip_or_hostname(ip.to_string())
        .tcp_port(port.parse().unwrap_or(3306))
        .user(Some("root"))
        // The harness's servers take root over TCP with no password; never the unix socket,
        // which no network fault reaches.
        .prefer_socket(false);
    let mut failing_since: Option<Micros> = None;
    while !stop.load(Ordering::Relaxed) {
        let at = clock.now();
        let attempt = async {
            let mut conn = Conn::new(opts.clone()).await?;
            conn.query_drop("SELECT 1").await?;
            conn.disconnect().await
        };
        let took = matches!(tokio::time::timeout(timeout, attempt).await, Ok(Ok(())));
        match (took, failing_since) {
            (false, None) => failing_since = Some(at),
            (true, Some(start)) => {
                stalls.lock().unwrap().push(Stall {
                    host,
                    start,
                    end: at,
                });
                failing_since = None;
            }
            _ => {}
        }
        tokio::time::sleep(EVERY).await;
    }
    if let Some(start) = failing_since {
        stalls.lock().unwrap().push(Stall {
            host,
            start,
            end: clock.now(),
        });
    }
}
