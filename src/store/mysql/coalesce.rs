//! Coalescing: concurrent `get`s (and `put`s) of one partition become one multi-row statement.
//!
//! The way group commit beats single commits: a request joins its partition's queue; if no
//! statement of its kind is running for that partition, the request's own task becomes the
//! drainer: it sends what is queued (its own request with it) as one statement, and hands
//! whatever queued up meanwhile to a drainer task, which sends it as the next statement, and
//! so on until the queue is empty. Under light load every batch holds one request, nothing
//! waits and no other task is woken; under heavy load MariaDB parses, executes and commits
//! once for many requests.
//!
//! No guarantee weakens: a client waits for each reply before it sends its next request, so
//! its own operations are never in one batch together and stay in order; requests batched
//! together were concurrent, and any order of them is one the client could have seen. A put is
//! acknowledged only when the statement holding it has committed, and a failed statement
//! fails every request in it with the statement's error (`OUTCOME_UNKNOWN` included).

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::sql::BATCH_BYTES;
use crate::error::Result;

/// Most requests in one coalesced statement.
pub const MAX_BATCH: usize = 32;

/// Drainers that may run at once per partition, for each kind: one statement at a time, so
/// what arrives meanwhile batches up (and writes take row locks in one order). Two get
/// drainers per partition made smaller batches: with 20 clients on 6 partitions, gets ran 12%
/// slower at 11% more CPU each than with one (`scripts/ab-bench`, README "Performance").
const GET_DRAINERS: usize = 1;
const PUT_DRAINERS: usize = 1;

/// Which of a partition's queues a drainer serves.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Gets,
    Puts,
}

/// A queued get: the key, and where its value (`None`: no such key) goes.
pub struct PendingGet {
    pub key: Bytes,
    pub reply: oneshot::Sender<Result<Option<Bytes>>>,
}

/// A queued put: key, value, and where its acknowledgement goes.
pub struct PendingPut {
    pub key: Bytes,
    pub value: Bytes,
    pub reply: oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct State {
    gets: Vec<PendingGet>,
    puts: Vec<PendingPut>,
    get_drainers: usize,
    put_drainers: usize,
}

/// One partition's queues.
#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a pair of vectors and counters, consistent after every statement.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a get; true when the caller must start a drainer for gets.
    pub fn push_get(&self, get: PendingGet) -> bool {
        let mut st = self.lock();
        st.gets.push(get);
        let start = st.get_drainers < GET_DRAINERS;
        st.get_drainers += usize::from(start);
        start
    }

    /// Queues a put; true when the caller must start a drainer for puts.
    pub fn push_put(&self, put: PendingPut) -> bool {
        let mut st = self.lock();
        st.puts.push(put);
        let start = st.put_drainers < PUT_DRAINERS;
        st.put_drainers += usize::from(start);
        start
    }

    /// The next batch of gets, oldest first; empty (and the drainer counted out) when none
    /// are left, so a drainer never stops while a request waits.
    pub fn take_gets(&self) -> Vec<PendingGet> {
        let mut st = self.lock();
        if st.gets.is_empty() {
            st.get_drainers -= 1;
            return Vec::new();
        }
        let n = st.gets.len().min(MAX_BATCH);
        st.gets.drain(..n).collect()
    }

    /// After a batch of `kind`: true when requests of that kind are left, and the caller's
    /// drainer must go on (or hand them to a task that does); false when none are, and it is
    /// counted out.
    pub fn left(&self, kind: Kind) -> bool {
        let mut st = self.lock();
        let st = &mut *st;
        let (empty, drainers) = match kind {
            Kind::Gets => (st.gets.is_empty(), &mut st.get_drainers),
            Kind::Puts => (st.puts.is_empty(), &mut st.put_drainers),
        };
        *drainers -= usize::from(empty);
        !empty
    }

    /// The next batch of puts, as [`Queue::take_gets`], also stopping before its values pass
    /// [`BATCH_BYTES`] (one put is always taken, however large).
    pub fn take_puts(&self) -> Vec<PendingPut> {
        let mut st = self.lock();
        if st.puts.is_empty() {
            st.put_drainers -= 1;
            return Vec::new();
        }
        let mut bytes = 0;
        let n = st
            .puts
            .iter()
            .take(MAX_BATCH)
            .take_while(|p| {
                bytes += p.value.len();
                bytes <= BATCH_BYTES
            })
            .count()
            .max(1);
        st.puts.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &'static str) -> (PendingGet, oneshot::Receiver<Result<Option<Bytes>>>) {
        let (reply, rx) = oneshot::channel();
        (
            PendingGet {
                key: Bytes::from_static(key.as_bytes()),
                reply,
            },
            rx,
        )
    }

    #[test]
    fn drainers_start_up_to_the_limit_and_stop_only_when_empty() {
        let q = Queue::default();
        let mut receivers = Vec::new();
        for i in 0..GET_DRAINERS {
            let (g, r) = get("a");
            receivers.push(r);
            assert!(q.push_get(g), "get {i} starts drainer {i}");
        }
        let (g, _r) = get("b");
        assert!(!q.push_get(g), "no more than GET_DRAINERS");
        for drainer in 0..GET_DRAINERS {
            let batch = q.take_gets();
            if drainer == 0 {
                assert_eq!(
                    batch.len(),
                    GET_DRAINERS + 1,
                    "one drainer takes all queued"
                );
            } else {
                assert!(batch.is_empty(), "the others find nothing and stop");
            }
        }
        let (g, _r) = get("c");
        assert!(
            !q.push_get(g),
            "the one that took the batch is still counted"
        );
        assert_eq!(q.take_gets().len(), 1, "it takes the new one");
        assert!(q.take_gets().is_empty(), "and stops");
        let (g, _r) = get("d");
        assert!(q.push_get(g), "with none running, a new get starts one");
    }

    #[test]
    fn a_drainer_that_finds_requests_left_stays_counted() {
        let q = Queue::default();
        let mut receivers = Vec::new();
        for _ in 0..=GET_DRAINERS {
            let (g, r) = get("a");
            receivers.push(r);
            q.push_get(g);
        }
        assert_eq!(q.take_gets().len(), GET_DRAINERS + 1);
        assert!(!q.left(Kind::Gets), "none left: the drainer is counted out");
        let (g, _r) = get("b");
        assert!(q.push_get(g), "so a new get may start one");
        let (g, _r) = get("c");
        assert!(!q.push_get(g), "the limit is reached again");
        assert!(
            q.left(Kind::Gets),
            "gets are left: the drainer stays counted"
        );
        let (g, _r) = get("d");
        assert!(!q.push_get(g), "and none may start");

        let put = |key: &'static str| {
            let (reply, rx) = oneshot::channel();
            let p = PendingPut {
                key: Bytes::from_static(key.as_bytes()),
                value: Bytes::new(),
                reply,
            };
            (p, rx)
        };
        let (p, _r1) = put("k");
        assert!(q.push_put(p), "the first put starts the put drainer");
        assert_eq!(q.take_puts().len(), 1);
        let (p, _r2) = put("l");
        assert!(!q.push_put(p), "one put drainer at a time");
        assert!(q.left(Kind::Puts), "a put is left: it stays counted");
        assert_eq!(q.take_puts().len(), 1);
        assert!(!q.left(Kind::Puts), "none now: counted out");
        let (p, _r3) = put("m");
        assert!(
            q.push_put(p),
            "with no put drainer counted, a put starts one"
        );
    }

    #[test]
    fn batches_hold_at_most_max_batch_in_arrival_order() {
        let q = Queue::default();
        let mut receivers = Vec::new();
        for i in 0..(MAX_BATCH + 5) {
            let (reply, rx) = oneshot::channel();
            receivers.push(rx);
            q.push_put(PendingPut {
                key: Bytes::from(i.to_string()),
                value: Bytes::new(),
                reply,
            });
        }
        let first = q.take_puts();
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].key, Bytes::from("0"));
        assert_eq!(q.take_puts().len(), 5);
        assert!(q.take_puts().is_empty());
    }

    #[test]
    fn put_batches_stay_within_the_byte_budget() {
        let q = Queue::default();
        let mut receivers = Vec::new();
        for (i, size) in [3 * BATCH_BYTES / 8; 5]
            .into_iter()
            .chain([BATCH_BYTES * 2, 1])
            .enumerate()
        {
            let (reply, rx) = oneshot::channel();
            receivers.push(rx);
            q.push_put(PendingPut {
                key: Bytes::from(i.to_string()),
                value: Bytes::from(vec![0u8; size]),
                reply,
            });
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| Some(q.take_puts().len()))
            .take_while(|&n| n > 0)
            .collect();
        // 2 x 3/8 fit in the budget, a third does not; a value over it goes alone.
        assert_eq!(sizes, vec![2, 2, 1, 1, 1]);
    }
}
