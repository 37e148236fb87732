//! Checks a chaos [`History`]: were acknowledged writes kept, did reads and scans see what
//! they had to see, and were refusals confined to the partitions a fault touched?
//!
//! # Model
//!
//! Every operation names one key. A key is an *append key* if some `Append` names it, a
//! *register key* otherwise (a workload never mixes the two on one key). Every `Put` value and
//! every `Append` suffix is unique in the whole history, so a value read names the write that
//! wrote it. Every key starts absent.
//!
//! An operation's outcome decides what it may have done:
//! * `Ok`: it happened, at some instant within `[invoke, complete]`;
//! * `Refused`: it did not happen;
//! * `Unknown`: it may have happened, at any instant after `invoke`, *even after `complete`*
//!   (a statement held up in a stopped server or a cut link can land after the client gave
//!   up). So an unknown write is never known to be over: no later write is known to come
//!   after it.
//!
//! A write `W2` *supersedes* a write `W` if `W2` was acknowledged and invoked after `W` was
//! known to be over (`W2.invoke > W.complete`, with `W` acknowledged). The initial absent
//! state is superseded by every acknowledged write.
//!
//! # Touched partitions
//!
//! Each key lives in a partition (`History::places`). A fault touches the partitions of its
//! pairs (of every pair if `all`), from its `start` until the partition is *untouched again*:
//! the `complete` of the earliest acknowledged write (by any server) to a key of the partition
//! invoked at or after the fault's `end` (plus `History::hold` for a `view_only` fault, whose
//! servers may act on their old views that long; plus `History::directory_tail` for a fault
//! that changes the directory, which a server sees only at its next directory read). Once
//! some server has written to the partition again, its master is back for everyone. With no
//! such write the partition stays touched to the end of the history (the latest of
//! `History::end` and every `complete`).
//!
//! An operation or walk *overlaps* an interval if `[invoke, complete]` intersects it. An
//! operation is *healthy* if no touched interval of its key's partition overlaps it (a key
//! without a place could live anywhere: it is healthy only if no interval of any partition
//! overlaps it). A walk is healthy if no touched interval of any partition overlaps it.
//!
//! # Violations
//!
//! * **Phantom**: a value that no write could have produced. For a register key, a value read
//!   (or final) that no `Put` on that key wrote, that a refused `Put` wrote, or that a read
//!   returned before its `Put` was even invoked. For an append key, the value is split into
//!   `;`-terminated tokens: a token that is no suffix of an `Append` on that key, the suffix of
//!   a refused `Append`, a suffix read before its `Append` was invoked, a token present twice,
//!   or text after the last `;`. A scan returning a key that no write could have created by
//!   the end of the walk is phantom too.
//! * **Stale read**: a `Get` `R` whose answer had been superseded before `R` began. For a
//!   register key the *candidates* for what `R` found are the `Put` of the value found, or,
//!   for "absent", the initial state and every non-refused `Remove` invoked by the time `R`
//!   completed. `R` is stale if every candidate is superseded by a write that completed before
//!   `R.invoke`. As superseding is monotonic in the candidate's `complete`, it is enough to
//!   look at the latest candidate. `behind` is how long that candidate had been superseded
//!   when `R` began: `R.invoke` minus the `complete` of the first write superseding it (a
//!   lower bound on how far behind the master the answering copy was). For an append key, `R`
//!   is stale if it lacks the suffix of an `Append` acknowledged before `R.invoke`; `behind`
//!   counts from the earliest such acknowledgement. A healthy stale read is a violation
//!   (`stale_healthy`); one that overlaps a touched interval is an allowed read from the
//!   sibling (`stale_outage`), reported with its `behind`.
//! * **Lost write**: the final value of a register key has every candidate (as for a read
//!   invoked at infinity: all non-refused removes count) superseded by some acknowledged
//!   write; an acknowledged `Append` whose suffix is missing from its key's final value; or a
//!   key with acknowledged writes and no final value recorded. A write with an unknown outcome
//!   may or may not be the final value.
//! * **Append order**: in a final value, the suffix of an `Append` `A1` known to be over
//!   before another `A2` was invoked (`A1` acknowledged, `A1.complete < A2.invoke`) must come
//!   before `A2`'s suffix. (`A2` may be acknowledged or unknown.)
//! * **Refused on an untouched partition**: a write refused with `READ_ONLY` or `UNAVAILABLE`
//!   that is healthy, where for refusals a fault's touch lasts at least `History::hold` past
//!   its end: every server lets writes back on its own probes, one after another, so a server
//!   may still refuse a moment after another has written (a stale read then would be a
//!   violation, a refusal is not). A refusal is also explained when its server may have
//!   reached neither directory host (`History::directory_hosts`), so that its write lease ran
//!   out: faults that together put both out of that server's reach (say a cut from the
//!   directory master and then a black hole at its sibling), each counted until
//!   `History::directory_tail` past its end. And it is explained while its master's host took
//!   no new connection (`History::stalls`, measured by the run itself), and `History::hold`
//!   after: a server with no connection to the host cannot write to it. Other refusals
//!   (`INVALID_ARGUMENT`, ...) are the workload's business.
//! * **Scans**: a walk returning a key twice (`scan_twice`, finished or not). A finished walk
//!   must return every key that surely existed throughout it: a register key with an
//!   acknowledged `Put` `P` completed before the walk began, such that every non-refused
//!   `Remove` invoked before the walk completed was acknowledged before `P` was invoked; an
//!   append key with an `Append` acknowledged before the walk began. A key missing from a
//!   healthy walk is `scan_missed`; one missing from a walk a fault touched is only counted
//!   (`scan_missed_outage`).
//!
//! Every reported line names the key, the values or tokens, and the client, server and
//! `[invoke..complete]` times of the operations involved.
//!
//! # Cost
//!
//! Operations are grouped by key and sorted by time once; every question is then a binary
//! search over running maxima, so a check is `O(n log n)` in the operations, plus
//! `O(walks × keys)` for scans.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use super::history::{Action, History, Micros, Op, Outcome, Place, Walk};

/// `ErrorCode::READ_ONLY`: the key's master is down, its sibling serves reads only.
pub const READ_ONLY: i32 = 5;
/// `ErrorCode::UNAVAILABLE`: neither host of the key's pair can serve it.
pub const UNAVAILABLE: i32 = 6;

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Number of operations in the history.
    pub ops: usize,
    /// `Put`, `Append` and `Remove` operations acknowledged (`Outcome::Ok`).
    pub acked_writes: usize,
    /// Acknowledged writes missing from the final values.
    pub lost: Vec<String>,
    /// Values (or scanned keys) no write could have produced.
    pub phantom: Vec<String>,
    /// Stale reads no fault excuses.
    pub stale_healthy: Vec<String>,
    /// Stale reads overlapping a touched interval of their partition (allowed).
    pub stale_outage: Vec<Stale>,
    /// `READ_ONLY`/`UNAVAILABLE` refusals of writes no fault excuses.
    pub refused_untouched: Vec<String>,
    /// Final values holding appends out of their real-time order.
    pub append_order: Vec<String>,
    /// Keys a walk returned more than once.
    pub scan_twice: Vec<String>,
    /// Keys missed by finished walks no fault touched.
    pub scan_missed: Vec<String>,
    /// Keys missed by finished walks some fault touched (allowed).
    pub scan_missed_outage: usize,
}

impl Findings {
    /// No violation: everything found is allowed under faults.
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.phantom.is_empty()
            && self.stale_healthy.is_empty()
            && self.refused_untouched.is_empty()
            && self.append_order.is_empty()
            && self.scan_twice.is_empty()
            && self.scan_missed.is_empty()
    }
}

/// A stale read during an outage of its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub key: String,
    /// How long the value read had been superseded when the read began.
    pub behind: Micros,
    pub line: String,
}

/// Checks a history against the rules of the module documentation.
pub fn check(h: &History) -> Findings {
    let keys = group_by_key(h);
    let touched = Touched::new(h, &keys);
    let mut f = Findings {
        ops: h.ops.len(),
        acked_writes: h
            .ops
            .iter()
            .filter(|o| is_write(o) && o.outcome == Outcome::Ok)
            .count(),
        ..Findings::default()
    };
    for key in &keys.all {
        match key.kind {
            Kind::Register => {
                check_register_reads(key, &touched, &mut f);
                check_register_final(key, h.finals.get(key.name), &mut f);
            }
            Kind::Append => {
                check_append_reads(key, &touched, &mut f);
                check_append_final(key, h.finals.get(key.name), &mut f);
            }
        }
    }
    check_refusals(h, &keys, &touched, &mut f);
    for walk in &h.walks {
        check_walk(walk, &keys, &touched, &mut f);
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Per-key index

/// When a write is known to be over, for ordering it before others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Done {
    /// The initial absent state: over before anything began.
    Initial,
    /// Acknowledged at this time.
    At(Micros),
    /// Outcome unknown: it may land at any time, never known to be over.
    Open,
}

/// When a non-refused write is known to be over.
fn done(op: &Op) -> Done {
    match op.outcome {
        Outcome::Ok => Done::At(op.complete),
        _ => Done::Open,
    }
}

fn is_write(op: &Op) -> bool {
    !matches!(op.action, Action::Get { .. })
}

fn refused(op: &Op) -> bool {
    matches!(op.outcome, Outcome::Refused { .. })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    Append,
}

/// Acknowledged writes in order of `complete`, with the running maximum of their `invoke`.
struct Acked<'h> {
    ops: Vec<&'h Op>,
    max_invoke: Vec<Micros>,
}

impl<'h> Acked<'h> {
    fn new(mut ops: Vec<&'h Op>) -> Self {
        ops.sort_by_key(|o| (o.complete, o.invoke));
        let max_invoke = ops
            .iter()
            .scan(0, |m, o| {
                *m = o.invoke.max(*m);
                Some(*m)
            })
            .collect();
        Acked { ops, max_invoke }
    }

    /// How many were acknowledged strictly before `t`.
    fn before(&self, t: Micros) -> usize {
        self.ops.partition_point(|o| o.complete < t)
    }

    /// The first acknowledged of those superseding a write over at `d`.
    fn first_after(&self, d: Done) -> Option<&'h Op> {
        let i = match d {
            Done::Initial => 0,
            Done::At(t) => self.max_invoke.partition_point(|&m| m <= t),
            Done::Open => return None,
        };
        self.ops.get(i).copied()
    }

    /// The latest `invoke` of those acknowledged strictly before `t`.
    fn latest_invoke_before(&self, t: Micros) -> Option<Micros> {
        self.before(t).checked_sub(1).map(|i| self.max_invoke[i])
    }
}

/// Non-refused removes in order of `invoke`, with the one latest over among each prefix.
struct Removes<'h> {
    ops: Vec<&'h Op>,
    /// `latest[i]`: the one of `ops[..=i]` with the greatest [`Done`].
    latest: Vec<&'h Op>,
}

impl<'h> Removes<'h> {
    fn new(mut ops: Vec<&'h Op>) -> Self {
        ops.sort_by_key(|o| o.invoke);
        let mut latest: Vec<&Op> = Vec::with_capacity(ops.len());
        for &o in &ops {
            let best = match latest.last() {
                Some(&b) if done(b) >= done(o) => b,
                _ => o,
            };
            latest.push(best);
        }
        Removes { ops, latest }
    }

    /// The one latest over among those invoked at or before `t`.
    fn latest_invoked_by(&self, t: Micros) -> Option<&'h Op> {
        let n = self.ops.partition_point(|o| o.invoke <= t);
        n.checked_sub(1).map(|i| self.latest[i])
    }
}

/// Everything about one key.
struct Key<'h> {
    name: &'h str,
    kind: Kind,
    place: Option<Place>,
    /// Every operation on the key.
    ops: Vec<&'h Op>,
    /// `Put` value or `Append` suffix → the write (the first one, were one written twice).
    written: HashMap<&'h str, &'h Op>,
    /// Acknowledged writes that count for this kind: `Put`s and `Remove`s, or `Append`s.
    acked: Acked<'h>,
    /// Acknowledged `Put`s (register keys).
    acked_puts: Acked<'h>,
    /// Non-refused `Remove`s (register keys).
    removes: Removes<'h>,
    /// The earliest `invoke` of a non-refused write that can create the key.
    first_create: Option<Micros>,
}

impl<'h> Key<'h> {
    fn new(name: &'h str, ops: Vec<&'h Op>, place: Option<Place>) -> Self {
        let appends = |o: &&Op| matches!(o.action, Action::Append { .. });
        let kind = if ops.iter().any(appends) {
            Kind::Append
        } else {
            Kind::Register
        };
        let mut written = HashMap::new();
        let (mut acked, mut acked_puts, mut removes) = (Vec::new(), Vec::new(), Vec::new());
        let mut first_create: Option<Micros> = None;
        for &o in &ops {
            let ok = o.outcome == Outcome::Ok;
            match (&o.action, kind) {
                (Action::Put { value: w }, Kind::Register)
                | (Action::Append { suffix: w }, Kind::Append) => {
                    written.entry(w.as_str()).or_insert(o);
                    if !refused(o) {
                        first_create = Some(first_create.map_or(o.invoke, |c| c.min(o.invoke)));
                    }
                    if ok {
                        acked.push(o);
                        if kind == Kind::Register {
                            acked_puts.push(o);
                        }
                    }
                }
                (Action::Remove, Kind::Register) => {
                    if !refused(o) {
                        removes.push(o);
                    }
                    if ok {
                        acked.push(o);
                    }
                }
                // Reads, and writes of the other kind (which a workload never does).
                _ => {}
            }
        }
        Key {
            name,
            kind,
            place,
            ops,
            written,
            acked: Acked::new(acked),
            acked_puts: Acked::new(acked_puts),
            removes: Removes::new(removes),
            first_create,
        }
    }

    /// The key surely existed throughout `[invoke, complete]`.
    fn existed_throughout(&self, invoke: Micros, complete: Micros) -> bool {
        match self.kind {
            Kind::Append => self.acked.before(invoke) > 0,
            Kind::Register => {
                let Some(put_invoke) = self.acked_puts.latest_invoke_before(invoke) else {
                    return false;
                };
                // A remove invoked at `complete` may have landed within the walk.
                match self.removes.latest_invoked_by(complete) {
                    None => true,
                    Some(r) => done(r) < Done::At(put_invoke),
                }
            }
        }
    }

    /// The key could have been created by time `t`.
    fn could_exist_by(&self, t: Micros) -> bool {
        self.first_create.is_some_and(|c| c <= t)
    }
}

/// Every key of the places, the operations and the finals, in order of name.
struct Keys<'h> {
    all: Vec<Key<'h>>,
    /// Name → position in `all`.
    index: HashMap<&'h str, usize>,
}

impl<'h> Keys<'h> {
    fn get(&self, name: &str) -> Option<&Key<'h>> {
        self.index.get(name).map(|&i| &self.all[i])
    }
}

fn group_by_key(h: &History) -> Keys<'_> {
    /// The operations of `name` so far, in `groups` at `index[name]`.
    fn group<'h, 'g>(
        index: &mut HashMap<&'h str, usize>,
        groups: &'g mut Vec<(&'h str, Vec<&'h Op>)>,
        name: &'h str,
    ) -> &'g mut Vec<&'h Op> {
        let i = *index.entry(name).or_insert(groups.len());
        if i == groups.len() {
            groups.push((name, Vec::new()));
        }
        &mut groups[i].1
    }
    let mut index = HashMap::new();
    let mut groups = Vec::new();
    for name in h.places.keys().chain(h.finals.keys()) {
        group(&mut index, &mut groups, name);
    }
    for op in &h.ops {
        group(&mut index, &mut groups, &op.key).push(op);
    }
    groups.sort_unstable_by_key(|&(name, _)| name);
    let all: Vec<Key> = groups
        .into_iter()
        .map(|(name, ops)| Key::new(name, ops, h.places.get(name).copied()))
        .collect();
    let index = all.iter().enumerate().map(|(i, k)| (k.name, i)).collect();
    Keys { all, index }
}

// ---------------------------------------------------------------------------------------------
// Touched partitions

/// Sorted, disjoint, closed intervals.
#[derive(Debug, Default)]
struct Intervals(Vec<(Micros, Micros)>);

impl Intervals {
    fn merged(mut v: Vec<(Micros, Micros)>) -> Self {
        v.sort_unstable();
        let mut out: Vec<(Micros, Micros)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        Intervals(out)
    }

    /// Some interval intersects `[a, b]`.
    fn overlaps(&self, a: Micros, b: Micros) -> bool {
        let n = self.0.partition_point(|&(s, _)| s <= b);
        n > 0 && self.0[n - 1].1 >= a
    }
}

/// When each partition was touched by a fault.
struct Touched {
    by_partition: HashMap<u64, Intervals>,
    /// The union over all partitions.
    anywhere: Intervals,
    /// The intervals within which a refused write is the fault's doing: as `by_partition`,
    /// but lasting at least `History::hold` past the fault's end.
    refusals: HashMap<u64, Intervals>,
    /// Per Thrudoc server, the intervals within which it may have reached neither directory
    /// host (its write lease may run out: it refuses every write).
    directory_lost: HashMap<u32, Intervals>,
}

impl Touched {
    fn new(h: &History, keys: &Keys) -> Self {
        let history_end = h
            .ops
            .iter()
            .map(|o| o.complete)
            .chain(h.walks.iter().map(|w| w.complete))
            .fold(h.end, Micros::max);

        let mut of_pair: HashMap<usize, BTreeSet<u64>> = HashMap::new();
        for p in h.places.values() {
            of_pair.entry(p.pair).or_default().insert(p.partition);
        }
        let every: BTreeSet<u64> = h.places.values().map(|p| p.partition).collect();

        // Acknowledged writes per partition, by invoke, with the suffix minimum of complete.
        let mut writes: HashMap<u64, Vec<(Micros, Micros)>> = HashMap::new();
        for key in &keys.all {
            let Some(place) = key.place else { continue };
            let w = writes.entry(place.partition).or_default();
            w.extend(
                key.ops
                    .iter()
                    .filter(|o| is_write(o) && o.outcome == Outcome::Ok)
                    .map(|o| (o.invoke, o.complete)),
            );
        }
        let mut earliest_from: HashMap<u64, (Vec<Micros>, Vec<Micros>)> = HashMap::new();
        for (partition, mut w) in writes {
            w.sort_unstable();
            let invokes: Vec<Micros> = w.iter().map(|&(i, _)| i).collect();
            let mut min_complete: Vec<Micros> = w.iter().map(|&(_, c)| c).collect();
            for i in (0..min_complete.len().saturating_sub(1)).rev() {
                min_complete[i] = min_complete[i].min(min_complete[i + 1]);
            }
            earliest_from.insert(partition, (invokes, min_complete));
        }
        let untouched_at = |partition: u64, from: Micros| -> Micros {
            earliest_from
                .get(&partition)
                .and_then(|(invokes, min_complete)| {
                    min_complete
                        .get(invokes.partition_point(|&i| i < from))
                        .copied()
                })
                .unwrap_or(history_end)
        };

        let mut raw: HashMap<u64, Vec<(Micros, Micros)>> = HashMap::new();
        let mut raw_refusals: HashMap<u64, Vec<(Micros, Micros)>> = HashMap::new();
        for fault in &h.faults {
            // A directory change reaches a server at its next directory read.
            let tail = if fault.directory { h.directory_tail } else { 0 };
            let from = fault
                .end
                .saturating_add(if fault.view_only { h.hold } else { 0 })
                .max(fault.end.saturating_add(tail));
            let partitions: Vec<u64> = if fault.all {
                every.iter().copied().collect()
            } else {
                fault
                    .pairs
                    .iter()
                    .filter_map(|pair| of_pair.get(pair))
                    .flatten()
                    .copied()
                    .collect()
            };
            for p in partitions {
                let until = untouched_at(p, from).max(fault.start);
                raw.entry(p).or_default().push((fault.start, until));
                let readmitted = until.max(fault.end.saturating_add(h.hold.max(tail)));
                raw_refusals
                    .entry(p)
                    .or_default()
                    .push((fault.start, readmitted));
            }
        }
        // A host that takes no new connection cannot be written to by a server that has none
        // to it: its pair's refusals are explained for as long, and for a hold after (the
        // servers find out at their next answered probes).
        for stall in &h.stalls {
            for p in of_pair.get(&(stall.host / 2)).into_iter().flatten() {
                raw_refusals
                    .entry(*p)
                    .or_default()
                    .push((stall.start, stall.end.saturating_add(h.hold)));
            }
        }
        let anywhere = Intervals::merged(raw.values().flatten().copied().collect());
        let by_partition = raw
            .into_iter()
            .map(|(p, v)| (p, Intervals::merged(v)))
            .collect();
        let refusals = raw_refusals
            .into_iter()
            .map(|(p, v)| (p, Intervals::merged(v)))
            .collect();
        Touched {
            by_partition,
            anywhere,
            refusals,
            directory_lost: directory_lost(h),
        }
    }

    /// No refusal interval of the partition of `key` overlaps `op`, nor an interval in which
    /// its server may have lost the directory.
    fn refusal_unexplained(&self, key: &Key, op: &Op) -> bool {
        let (a, b) = (op.invoke, op.complete);
        if self
            .directory_lost
            .get(&op.server)
            .is_some_and(|iv| iv.overlaps(a, b))
        {
            return false;
        }
        match key.place {
            Some(p) => self
                .refusals
                .get(&p.partition)
                .is_none_or(|iv| !iv.overlaps(a, b)),
            None => !self.anywhere.overlaps(a, b),
        }
    }

    /// No touched interval of the partition of `key` overlaps `op`.
    fn op_healthy(&self, key: &Key, op: &Op) -> bool {
        let (a, b) = (op.invoke, op.complete);
        match key.place {
            Some(p) => self
                .by_partition
                .get(&p.partition)
                .is_none_or(|iv| !iv.overlaps(a, b)),
            None => !self.anywhere.overlaps(a, b),
        }
    }

    /// No touched interval of any partition overlaps `w`.
    fn walk_healthy(&self, w: &Walk) -> bool {
        !self.anywhere.overlaps(w.invoke, w.complete)
    }
}

/// Per server, when it may have reached neither directory host: each host counts as out of
/// its reach from a fault's start until `History::directory_tail` past its end (a poll in
/// flight at the end may still fail), and where the two hosts' intervals meet, the server may
/// renew its lease nowhere until a tail past the later end.
fn directory_lost(h: &History) -> HashMap<u32, Intervals> {
    let [first, second] = h.directory_hosts[..] else {
        return HashMap::new();
    };
    let servers: BTreeSet<u32> = h.ops.iter().map(|o| o.server).collect();
    let mut lost = HashMap::new();
    for server in servers {
        let out_of_reach = |host: usize| {
            Intervals::merged(
                h.faults
                    .iter()
                    .filter(|f| f.hosts.contains(&host))
                    .filter(|f| f.server.is_none_or(|s| s as u32 == server))
                    .map(|f| (f.start, f.end.saturating_add(h.directory_tail)))
                    .collect(),
            )
        };
        let (a, b) = (out_of_reach(first), out_of_reach(second));
        let both: Vec<(Micros, Micros)> =
            a.0.iter()
                .flat_map(|&(s1, e1)| {
                    b.0.iter().filter_map(move |&(s2, e2)| {
                        let (s, e) = (s1.max(s2), e1.min(e2));
                        (s < e).then_some((s, e.saturating_add(h.directory_tail)))
                    })
                })
                .collect();
        if !both.is_empty() {
            lost.insert(server, Intervals::merged(both));
        }
    }
    lost
}

// ---------------------------------------------------------------------------------------------
// Describing operations

/// `client C server S [invoke..complete]`, with the outcome unless it is `Ok`.
fn at(op: &Op) -> String {
    let mut s = format!(
        "client {} server {} [{}..{}]",
        op.client, op.server, op.invoke, op.complete
    );
    if op.batch {
        s.push_str(" batch");
    }
    match &op.outcome {
        Outcome::Ok => {}
        Outcome::Refused { code } => {
            let _ = write!(s, " refused({code})");
        }
        Outcome::Unknown { why } => {
            let _ = write!(s, " unknown({why})");
        }
    }
    s
}

fn walk_at(w: &Walk) -> String {
    format!(
        "walk by client {} server {} [{}..{}]",
        w.client, w.server, w.invoke, w.complete
    )
}

/// A write, for a line: `put "v" by ...`, `append "s;" by ...`, `remove by ...`.
fn write_at(op: &Op) -> String {
    match &op.action {
        Action::Put { value } => format!("put {} by {}", short(value), at(op)),
        Action::Append { suffix } => format!("append {} by {}", short(suffix), at(op)),
        Action::Remove => format!("remove by {}", at(op)),
        Action::Get { .. } => format!("get by {}", at(op)),
    }
}

/// A value, quoted, cut short if long.
fn short(v: &str) -> String {
    const MAX: usize = 60;
    if v.len() <= MAX {
        return format!("{v:?}");
    }
    let mut end = MAX;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...({} bytes)", &v[..end], v.len())
}

fn found_str(found: &Option<String>) -> String {
    found.as_deref().map_or_else(|| "absent".to_string(), short)
}

/// At most a few suffixes, for a line.
fn list(suffixes: &[&str]) -> String {
    const MAX: usize = 5;
    let mut s = suffixes
        .iter()
        .take(MAX)
        .map(|x| format!("{x:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if suffixes.len() > MAX {
        let _ = write!(s, " and {} more", suffixes.len() - MAX);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Register keys

/// The successful `Get`s of a key with what they found.
fn reads<'k, 'h>(key: &'k Key<'h>) -> impl Iterator<Item = (&'h Op, &'h Option<String>)> + 'k {
    key.ops.iter().filter_map(|&o| match &o.action {
        Action::Get { found } if o.outcome == Outcome::Ok => Some((o, found)),
        _ => None,
    })
}

/// The `Put` that wrote `v`, a value of a register key seen by an op completing at `by`; or
/// why no write can have produced it.
fn put_of<'h>(key: &Key<'h>, v: &str, by: Micros) -> Result<&'h Op, String> {
    match key.written.get(v) {
        None => Err(", which no put on the key wrote".to_string()),
        Some(&w) if refused(w) => Err(format!(", which only a refused {} wrote", write_at(w))),
        Some(&w) if w.invoke > by => Err(format!(" before its {} was invoked", write_at(w))),
        Some(&w) => Ok(w),
    }
}

/// The candidate for "absent" latest over, among those invoked by `by`.
fn latest_absent<'h>(key: &Key<'h>, by: Micros) -> (Done, Option<&'h Op>) {
    match key.removes.latest_invoked_by(by) {
        Some(r) => (done(r), Some(r)),
        None => (Done::Initial, None),
    }
}

fn describe_candidate(c: Option<&Op>) -> String {
    c.map_or_else(|| "the initial absent state".to_string(), write_at)
}

fn check_register_reads(key: &Key, touched: &Touched, f: &mut Findings) {
    for (r, found) in reads(key) {
        let (latest, candidate) = match found {
            Some(v) => match put_of(key, v, r.complete) {
                Ok(w) => (done(w), Some(w)),
                Err(why) => {
                    f.phantom.push(format!(
                        "key {}: get by {} found {}{why}",
                        key.name,
                        at(r),
                        short(v)
                    ));
                    continue;
                }
            },
            None => latest_absent(key, r.complete),
        };
        let Some(w2) = key.acked.first_after(latest) else {
            continue;
        };
        if w2.complete >= r.invoke {
            continue;
        }
        let behind = r.invoke - w2.complete;
        let line = format!(
            "key {}: get by {} found {} (latest possible source: {}) though {} superseded it {behind}us before",
            key.name,
            at(r),
            found_str(found),
            describe_candidate(candidate),
            write_at(w2),
        );
        classify_stale(key, r, behind, line, touched, f);
    }
}

fn classify_stale(key: &Key, r: &Op, behind: Micros, line: String, t: &Touched, f: &mut Findings) {
    if t.op_healthy(key, r) {
        f.stale_healthy.push(line);
    } else {
        f.stale_outage.push(Stale {
            key: key.name.to_string(),
            behind,
            line,
        });
    }
}

fn check_register_final(key: &Key, fin: Option<&Option<String>>, f: &mut Findings) {
    let Some(fin) = fin else {
        if !key.acked.ops.is_empty() {
            f.lost.push(format!(
                "key {}: no final value recorded, though {} acknowledged writes",
                key.name,
                key.acked.ops.len()
            ));
        }
        return;
    };
    let (latest, candidate) = match fin {
        Some(v) => match put_of(key, v, Micros::MAX) {
            Ok(w) => (done(w), Some(w)),
            Err(why) => {
                f.phantom
                    .push(format!("key {}: final value {}{why}", key.name, short(v)));
                return;
            }
        },
        None => latest_absent(key, Micros::MAX),
    };
    if let Some(w2) = key.acked.first_after(latest) {
        f.lost.push(format!(
            "key {}: final value {} (latest possible source: {}) though acknowledged {} came after it",
            key.name,
            found_str(fin),
            describe_candidate(candidate),
            write_at(w2),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Append keys

/// The `;`-terminated tokens of `v`, and whatever follows the last `;`.
fn tokens(v: &str) -> (Vec<&str>, &str) {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(i) = rest.find(';') {
        out.push(&rest[..=i]);
        rest = &rest[i + 1..];
    }
    (out, rest)
}

/// Checks the tokens of an append key's value seen by `what` (a read completing at `by`,
/// or the final value with `by = MAX`), reporting phantoms; returns the appends it holds, in
/// order, each once.
fn appends_in<'h>(key: &Key<'h>, v: &str, by: Micros, what: &str, f: &mut Findings) -> Vec<&'h Op> {
    let (toks, rest) = tokens(v);
    let mut seen = HashSet::new();
    let mut held = Vec::with_capacity(toks.len());
    let mut phantom = |why: String| f.phantom.push(format!("key {}: {what} {why}", key.name));
    for t in toks {
        if !seen.insert(t) {
            phantom(format!("holds {t:?} twice"));
            continue;
        }
        match key.written.get(t) {
            None => phantom(format!("holds {t:?}, which no append on the key wrote")),
            Some(&a) if refused(a) => phantom(format!("holds {t:?} of a refused {}", write_at(a))),
            Some(&a) if a.invoke > by => phantom(format!("holds {t:?} before its {}", write_at(a))),
            Some(&a) => held.push(a),
        }
    }
    if !rest.is_empty() {
        phantom(format!("ends in {}, not a ;-terminated token", short(rest)));
    }
    held
}

fn suffix(op: &Op) -> &str {
    match &op.action {
        Action::Append { suffix } => suffix,
        _ => "",
    }
}

fn check_append_reads(key: &Key, touched: &Touched, f: &mut Findings) {
    for (r, found) in reads(key) {
        let what = format!("get by {}", at(r));
        let held = appends_in(key, found.as_deref().unwrap_or(""), r.complete, &what, f);
        let due = key.acked.before(r.invoke);
        let held_due = held
            .iter()
            .filter(|a| a.outcome == Outcome::Ok && a.complete < r.invoke)
            .count();
        if held_due == due {
            continue;
        }
        let held: HashSet<&str> = held.iter().map(|a| suffix(a)).collect();
        let missing: Vec<&Op> = key.acked.ops[..due]
            .iter()
            .copied()
            .filter(|a| !held.contains(suffix(a)))
            .collect();
        let first = missing[0];
        let behind = r.invoke - first.complete;
        let names: Vec<&str> = missing.iter().map(|a| suffix(a)).collect();
        let line = format!(
            "key {}: {what} lacks {} acknowledged before it began (the first by {}, {behind}us before)",
            key.name,
            list(&names),
            at(first),
        );
        classify_stale(key, r, behind, line, touched, f);
    }
}

fn check_append_final(key: &Key, fin: Option<&Option<String>>, f: &mut Findings) {
    let Some(fin) = fin else {
        if !key.acked.ops.is_empty() {
            f.lost.push(format!(
                "key {}: no final value recorded, though {} acknowledged appends",
                key.name,
                key.acked.ops.len()
            ));
        }
        return;
    };
    let held = appends_in(
        key,
        fin.as_deref().unwrap_or(""),
        Micros::MAX,
        "final value",
        f,
    );
    let present: HashSet<&str> = held.iter().map(|a| suffix(a)).collect();
    for a in &key.acked.ops {
        if !present.contains(suffix(a)) {
            f.lost.push(format!(
                "key {}: final value lacks acknowledged {}",
                key.name,
                write_at(a)
            ));
        }
    }
    // Scanning in final order, `latest` is the held append invoked last so far: an append
    // over before it was invoked must not come after it.
    let mut latest: Option<&Op> = None;
    for &a in &held {
        if let Some(b) = latest {
            if Done::At(b.invoke) > done(a) {
                f.append_order.push(format!(
                    "key {}: final value holds {} after {}, though the first was acknowledged before the second was invoked",
                    key.name,
                    write_at(a),
                    write_at(b),
                ));
            }
        }
        if latest.is_none_or(|b| a.invoke > b.invoke) {
            latest = Some(a);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals and scans

fn check_refusals(h: &History, keys: &Keys, t: &Touched, f: &mut Findings) {
    for op in &h.ops {
        let Outcome::Refused { code } = op.outcome else {
            continue;
        };
        if !is_write(op) || !(code == READ_ONLY || code == UNAVAILABLE) {
            continue;
        }
        if keys
            .get(&op.key)
            .is_some_and(|key| t.refusal_unexplained(key, op))
        {
            f.refused_untouched.push(format!(
                "key {}: {} on an untouched partition",
                op.key,
                write_at(op)
            ));
        }
    }
}

fn check_walk(w: &Walk, keys: &Keys, t: &Touched, f: &mut Findings) {
    // Times each known key was returned, and the keys of no operation, place or final.
    let mut count = vec![0usize; keys.all.len()];
    let mut strangers: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &w.keys {
        match keys.index.get(k.as_str()) {
            Some(&i) => count[i] += 1,
            None => *strangers.entry(k).or_default() += 1,
        }
    }
    let returned = || keys.all.iter().zip(&count).filter(|&(_, &n)| n > 0);
    let mut twice: Vec<(&str, usize)> = returned()
        .filter(|&(_, &n)| n > 1)
        .map(|(key, &n)| (key.name, n))
        .chain(
            strangers
                .iter()
                .filter(|&(_, &n)| n > 1)
                .map(|(&k, &n)| (k, n)),
        )
        .collect();
    twice.sort_unstable();
    for (k, n) in twice {
        f.scan_twice
            .push(format!("key {k}: returned {n} times by the {}", walk_at(w)));
    }
    let mut phantom: Vec<&str> = returned()
        .filter(|(key, _)| !key.could_exist_by(w.complete))
        .map(|(key, _)| key.name)
        .chain(strangers.keys().copied())
        .collect();
    phantom.sort_unstable();
    for k in phantom {
        f.phantom.push(format!(
            "key {k}: returned by the {}, though no write could have created it by then",
            walk_at(w)
        ));
    }
    if !w.finished {
        return;
    }
    let healthy = t.walk_healthy(w);
    for (key, &n) in keys.all.iter().zip(&count) {
        if n > 0 || !key.existed_throughout(w.invoke, w.complete) {
            continue;
        }
        if healthy {
            f.scan_missed.push(format!(
                "key {}: missed by the {}, though it existed throughout",
                key.name,
                walk_at(w)
            ));
        } else {
            f.scan_missed_outage += 1;
        }
    }
}
