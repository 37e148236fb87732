//! The log of failed calls, in proportion: during an outage every write to a down master's
//! partitions is refused, thousands a second, and one line each would bury the state changes
//! that matter. So the first failure of a kind, on a method and a partition, is logged in full;
//! the ones like it within the next [`WINDOW`] are counted, and a line says how many there were
//! when the window ends ([`FailureLog::flush`], run by the server every few seconds).
//!
//! The level follows which side failed: a store's failure is a warning, this server's an
//! error, a client's bad input a debug line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::codec::Method;
use crate::error::{Error, ErrorKind, Side};

/// How long failures like a logged one are only counted.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    kind: ErrorKind,
    method: Method,
    partition: Option<u64>,
}

struct Counted {
    since: Instant,
    more: u64,
}

/// Failures logged once per kind, method and partition per window, the rest counted.
#[derive(Default)]
pub struct FailureLog {
    open: Mutex<HashMap<Key, Counted>>,
}

impl FailureLog {
    /// Logs `e`, the failure of a call of `method`, or counts it when one like it was logged
    /// less than [`WINDOW`] ago. True when it was logged.
    pub fn record(&self, method: Method, e: &Error) -> bool {
        let key = Key {
            kind: e.kind(),
            method,
            partition: e.partition(),
        };
        let now = Instant::now();
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match open.get_mut(&key) {
                Some(c) if now.duration_since(c.since) < WINDOW => {
                    c.more += 1;
                    return false;
                }
                Some(c) => {
                    let ended = std::mem::replace(
                        c,
                        Counted {
                            since: now,
                            more: 0,
                        },
                    );
                    summary(&key, &ended, now);
                }
                None => {
                    open.insert(
                        key,
                        Counted {
                            since: now,
                            more: 0,
                        },
                    );
                }
            }
        }
        let retry_safe = e.kind().retry_safe();
        let partition = e.partition();
        let method = method.name();
        match e.kind().side() {
            Side::Server => tracing::error!(error = %e, method, partition, "call failed"),
            Side::Store => {
                tracing::warn!(error = %e, method, partition, retry_safe, "call failed")
            }
            Side::Client => tracing::debug!(error = %e, method, "call refused"),
        }
        true
    }

    /// Logs how many failures were only counted in each window that has ended, and forgets
    /// those windows.
    pub fn flush(&self) {
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|key, counted| {
            let ended = now.duration_since(counted.since) >= WINDOW;
            if ended {
                summary(key, counted, now);
            }
            !ended
        });
    }
}

/// One line for the failures counted in a window, when there were any.
fn summary(key: &Key, counted: &Counted, now: Instant) {
    if counted.more == 0 {
        return;
    }
    let secs = now.duration_since(counted.since).as_secs_f64();
    let (more, method, partition) = (counted.more, key.method.name(), key.partition);
    let kind = key.kind.as_str();
    match key.kind.side() {
        Side::Server => {
            tracing::error!(
                more,
                method,
                partition,
                kind,
                secs,
                "more calls failed alike"
            )
        }
        Side::Store => {
            tracing::warn!(
                more,
                method,
                partition,
                kind,
                secs,
                "more calls failed alike"
            )
        }
        Side::Client => {
            tracing::debug!(
                more,
                method,
                partition,
                kind,
                secs,
                "more calls refused alike"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_method_and_partition_per_window() {
        let log = FailureLog::default();
        let refused = |p| Error::new(ErrorKind::ReadOnly, "refused").with_partition(p);
        assert!(log.record(Method::Put, &refused(1)));
        for _ in 0..1000 {
            assert!(!log.record(Method::Put, &refused(1)), "counted, not logged");
        }
        assert!(log.record(Method::Put, &refused(2)), "another partition");
        assert!(log.record(Method::Append, &refused(1)), "another method");
        let lost = Error::new(ErrorKind::OutcomeUnknown, "lost").with_partition(1);
        assert!(log.record(Method::Put, &lost), "another kind");
        let open = log.open.lock().unwrap();
        let key = Key {
            kind: ErrorKind::ReadOnly,
            method: Method::Put,
            partition: Some(1),
        };
        assert_eq!(open[&key].more, 1000);
        assert_eq!(open.len(), 4);
    }

    #[test]
    fn a_window_ends_with_its_count_and_opens_again() {
        let log = FailureLog::default();
        let e = Error::new(ErrorKind::Unavailable, "down").with_partition(7);
        log.record(Method::Get, &e);
        log.record(Method::Get, &e);
        let key = Key {
            kind: ErrorKind::Unavailable,
            method: Method::Get,
            partition: Some(7),
        };
        // As if the window had begun long ago.
        let mut open = log.open.lock().unwrap();
        let counted = open.get_mut(&key).unwrap();
        counted.since = counted.since.checked_sub(WINDOW).unwrap();
        drop(open);
        log.flush();
        assert!(
            log.open.lock().unwrap().is_empty(),
            "an ended window is forgotten"
        );
        assert!(log.record(Method::Get, &e), "the next one is logged again");
    }
}
