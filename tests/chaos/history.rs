//! The record of a chaos run: every operation a client invoked (when, through which server,
//! with what outcome), every scan walk, every fault (when, on what), where each key lives, and
//! each key's final value once every fault has healed. The run writes it as JSON lines
//! (`--keep`); [`super::checker`] reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Microseconds since the run started.
pub type Micros = u64;

/// What became of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged: a write happened, a read answered (its value is in the action).
    Ok,
    /// Refused with this `ErrorCode` (READ_ONLY, UNAVAILABLE, ...): it did not happen.
    Refused { code: i32 },
    /// It may or may not have happened: `OUTCOME_UNKNOWN`, a lost connection, a timeout.
    Unknown { why: String },
}

/// What an operation did to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `put` or one element of `putList`: a value never written before.
    Put { value: String },
    /// `append` of `suffix`, a token never written before ending in `;`.
    Append { suffix: String },
    /// `remove` or one element of `removeList`.
    Remove,
    /// `get` or one element of `getList`; with [`Outcome::Ok`], what it found (`None`: no
    /// such key).
    Get { found: Option<String> },
}

/// One operation on one key (a batch is one per element, sharing its times and server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client: u32,
    /// The Thrudoc server it went through.
    pub server: u32,
    pub key: String,
    pub action: Action,
    pub invoke: Micros,
    pub complete: Micros,
    pub outcome: Outcome,
    /// One element of a batch call.
    pub batch: bool,
}

/// One scan walk of the bucket, in pages, from seed "" to a short page (or a failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Walk {
    pub client: u32,
    pub server: u32,
    pub invoke: Micros,
    pub complete: Micros,
    /// Every key returned, in order, repeats included.
    pub keys: Vec<String>,
    /// The walk reached its end (a short page); a failed one is `false`.
    pub finished: bool,
    /// Why a page failed, when one did (a walk the run's end stopped has none).
    #[serde(default)]
    pub error: Option<String>,
}

/// One fault, from injection to healing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// `kill9`, `sigstop`, `cut_server_host`, `cut_pair`, `blackhole`, `loss`, ...
    pub kind: String,
    /// What exactly (hosts, servers), for the report.
    pub detail: String,
    pub start: Micros,
    pub end: Micros,
    /// The pairs whose partitions it touches.
    pub pairs: Vec<usize>,
    /// It touches every partition (both directory hosts down, so no server can confirm the
    /// directory).
    pub all: bool,
    /// It changes what each server sees, not the host itself (a cut between one server and a
    /// host, packet loss that drops one server's probes and not another's): a server finds out
    /// it healed only at its next answered probe.
    pub view_only: bool,
    /// The hosts it makes unreachable, to `server` only when that is given.
    #[serde(default)]
    pub hosts: Vec<usize>,
    /// The one Thrudoc server whose view of `hosts` it changes.
    #[serde(default)]
    pub server: Option<usize>,
    /// It changes the directory (a failover cycle): a server sees its end only once it has
    /// read the directory again.
    #[serde(default)]
    pub directory: bool,
}

/// A time in which a MariaDB host took no new connection, as the run's own watch saw it (a
/// fresh connection and login every quarter second, from outside every Thrudoc server): from
/// the start of the first attempt that failed to the start of the next that succeeded.
/// MariaDB can stall new connections for seconds after a fault has healed while the ones it
/// has keep answering; a Thrudoc server with no connection to the host then cannot write to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    pub host: usize,
    pub start: Micros,
    pub end: Micros,
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The directory id of its partition.
    pub partition: u64,
    /// The pair (0-based) whose master holds it.
    pub pair: usize,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    pub walks: Vec<Walk>,
    pub faults: Vec<Fault>,
    /// When each host took no new connection.
    #[serde(default)]
    pub stalls: Vec<Stall>,
    /// Every key the workload uses.
    pub places: BTreeMap<String, Place>,
    /// Each key's value read from its master after every fault healed (`None`: no such key).
    pub finals: BTreeMap<String, Option<String>>,
    /// How long after a view-only fault heals its server may still act on the old view: a
    /// probe in flight may wait out its timeout before the next one answers, then the server
    /// holds writes for one probe cycle (HOLD) and lets them back at the next answer. Twice
    /// (probe interval + probe timeout).
    pub hold: Micros,
    /// The hosts of the directory (its master and its sibling).
    #[serde(default)]
    pub directory_hosts: Vec<usize>,
    /// How long after a fault ends a server may still not have read the directory again: a
    /// poll interval, and a poll that waits out its connect and read deadlines at each
    /// directory host.
    #[serde(default)]
    pub directory_tail: Micros,
    /// When the workload stopped.
    pub end: Micros,
}
