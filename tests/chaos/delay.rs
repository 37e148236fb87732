//! Delay without `sch_netem`: the packets of a namespace go to an NFQUEUE (an `iptables` rule,
//! see `net.rs`), and a process of its own in that namespace (this program again, as
//! `--hold-packets MS`) lets each one through when it has waited the delay. Packets keep their
//! order (one queue, one delay), and the kernel holds them meanwhile, so TCP sees what a slow
//! link does: late segments, grown round trips, retransmissions when the delay passes its
//! timers.
//!
//! A process rather than a thread: the queue's netlink socket is opened without close-on-exec,
//! so a thread's would leak into every MariaDB or Thrudoc server the run starts afterwards,
//! keep the queue bound after the delay ended, and make the next delay on that host fail.
//!
//! The holder copies only each packet's metadata (copy range 0), and a full queue lets packets
//! through undelayed rather than dropping them (fail-open): a delay fault delays, it does not
//! lose.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};

/// The queue number used in every namespace (queues are per namespace).
pub const QUEUE: u16 = 0;

/// Packets the kernel may hold for one holder before it lets more through undelayed.
const MAX_HELD: u32 = 65_536;

/// The word a holder says on its standard output once its queue is bound.
const BOUND: &str = "bound";

/// One namespace's holding process.
pub struct Delayer {
    child: Child,
}

impl Delayer {
    /// Starts a holder of [`QUEUE`] in namespace `ns` that holds every packet for `delay`.
    /// Returns once the queue is bound, so that a rule sending packets to it may go in.
    pub fn start(ns: &str, delay: Duration) -> Result<Delayer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(["--hold-packets", &delay.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting a packet holder in {ns}: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() == BOUND {
            return Ok(Delayer { child });
        }
        let _ = child.kill();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let _ = child.wait();
        Err(format!(
            "the packet holder in {ns} did not start: {}",
            stderr.trim()
        ))
    }
}

impl Drop for Delayer {
    /// Closes the holder's standard input: it lets the packets it holds through and exits.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The holder's program (`--hold-packets MS`, run in the namespace): binds the queue, says
/// [`BOUND`], and holds packets until its standard input closes.
pub fn hold_main(ms: &str) -> ExitCode {
    let Ok(ms) = ms.parse::<u64>() else {
        eprintln!("--hold-packets takes milliseconds, not {ms:?}");
        return ExitCode::from(2);
    };
    let queue = match open() {
        Ok(queue) => queue,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!("{BOUND}");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        flag.store(true, Ordering::Release);
    });
    hold(queue, Duration::from_millis(ms), &stop);
    ExitCode::SUCCESS
}

/// Binds the queue of this process's namespace.
fn open() -> Result<Queue, String> {
    let nfq = |e: std::io::Error| format!("NFQUEUE: {e}");
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
                    eprintln!("chaos: the packet holder stops on an NFQUEUE error: {e}");
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
