//! Delay without `sch_netem`: the packets of a namespace go to an NFQUEUE (an nftables `queue`
//! rule, see `net.rs`), and a thread of this process, living in that namespace, lets each one
//! through when it has waited the delay. Packets keep their order (one queue, one delay), and
//! the kernel holds them meanwhile, so TCP sees what a slow link does: late segments, grown
//! round trips, retransmissions when the delay passes its timers.
//!
//! The thread copies only each packet's metadata (copy range 0), and a full queue lets packets
//! through undelayed rather than dropping them (fail-open): a delay fault delays, it does not
//! lose.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};

/// The queue number used in every namespace (queues are per namespace).
pub const QUEUE: u16 = 0;

/// Packets the kernel may hold for one delayer before it lets more through undelayed.
const MAX_HELD: u32 = 65_536;

/// One namespace's delaying thread.
pub struct Delayer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Binds [`QUEUE`] in namespace `ns` and holds every packet queued there for `delay`.
    /// Returns once the queue is bound, so that a rule sending packets to it may go in.
    pub fn start(ns: &str, delay: Duration) -> Result<Delayer, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, bound) = mpsc::channel();
        let path = format!("/var/run/netns/{ns}");
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("delay-{ns}"))
            .spawn(move || match open(&path) {
                Ok(queue) => {
                    let _ = ready.send(Ok(()));
                    hold(queue, delay, &flag);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| format!("cannot start a delaying thread: {e}"))?;
        bound
            .recv()
            .map_err(|_| "the delaying thread ended before binding its queue".to_string())??;
        Ok(Delayer {
            stop,
            thread: Some(thread),
        })
    }
}

/// Enters the namespace at `path` (this thread only) and binds its queue.
fn open(path: &str) -> Result<Queue, String> {
    let ns = File::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    // SAFETY: setns on a file descriptor this thread holds open; it changes this thread's
    // network namespace only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "entering {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let nfq = |e: std::io::Error| format!("NFQUEUE in {path}: {e}");
    let mut queue = Queue::open().map_err(nfq)?;
    queue.bind(QUEUE).map_err(nfq)?;
    queue.set_copy_range(QUEUE, 0).map_err(nfq)?;
    queue.set_queue_max_len(QUEUE, MAX_HELD).map_err(nfq)?;
    queue.set_fail_open(QUEUE, true).map_err(nfq)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Lets each packet through `delay` after it arrived, until `stop`; then lets the rest
/// through at once (the rule that queued them is gone by then).
fn hold(mut queue: Queue, delay: Duration, stop: &AtomicBool) {
    let mut held = VecDeque::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    msg.set_verdict(Verdict::Accept);
                    held.push_back((Instant::now() + delay, msg));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("chaos: the delaying thread stops on an NFQUEUE error: {e}");
                    return;
                }
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| stopping || *due <= now) {
            let (_, msg) = held.pop_front().expect("front checked");
            let _ = queue.verdict(msg);
        }
        if stopping {
            return;
        }
        let next = held.front().map_or(Duration::from_millis(1), |(due, _)| {
            due.saturating_duration_since(now)
        });
        std::thread::sleep(next.min(Duration::from_millis(1)));
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
