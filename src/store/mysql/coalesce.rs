//! Coalescing: concurrent `get`s (and `put`s) of one partition become one multi-row statement.
//!
//! The way group commit beats single commits: a request joins its partition's queue; if no
//! statement of its kind is running for that partition, a drainer task starts and sends what
//! is queued as one statement, then whatever queued up meanwhile as the next, until the queue
//! is empty. Under light load every batch holds one request and nothing waits; under heavy
//! load MariaDB parses, executes and commits once for many requests.
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

/// Drainers that may run at once per partition: reads can overlap; writes of one partition go
/// one statement at a time, so they batch up (and take row locks in one order).
const GET_DRAINERS: usize = 2;
const PUT_DRAINERS: usize = 1;

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
        let (g1, _r1) = get("a");
        let (g2, _r2) = get("b");
        let (g3, _r3) = get("c");
        assert!(q.push_get(g1), "the first get starts a drainer");
        assert!(q.push_get(g2), "a second may run beside it");
        assert!(!q.push_get(g3), "no more than two");
        let batch = q.take_gets();
        assert_eq!(batch.len(), 3, "drainer A takes everything queued");
        assert!(
            q.take_gets().is_empty(),
            "drainer B finds nothing and stops"
        );
        let (g4, _r4) = get("d");
        assert!(
            q.push_get(g4),
            "with only A counted, a second may start again"
        );
        assert_eq!(q.take_gets().len(), 1, "A takes it");
        assert!(q.take_gets().is_empty(), "A stops");
        assert!(q.take_gets().is_empty(), "the new one stops");
        let (g5, _r5) = get("e");
        assert!(q.push_get(g5), "with none running, a new get starts one");
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
