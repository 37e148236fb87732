//! What `admin("status")` and `admin("stats")` say of the MySQL backend: the directory and
//! this server's view of each host.

use std::fmt::Write as _;

use super::health::State;
use super::routing::Routing;

/// `name=value` lines per host: up (1: takes writes, 0: not), its state (UP, RETURNING, DOWN),
/// seconds in that state, transitions so far.
pub fn stats_text(routing: &Routing) -> String {
    let mut out = format!("directory.version={}\n", routing.directory.version);
    for route in routing.hosts.values() {
        let r = route.health.report();
        let _ = writeln!(
            out,
            "host.{a}.up={}\nhost.{a}.state={}\nhost.{a}.state_secs={:.1}\nhost.{a}.transitions={}",
            u8::from(r.state == State::Up),
            r.state.as_str(),
            r.for_secs,
            r.transitions,
            a = route.address
        );
    }
    out
}

/// The directory, each host with its sibling and state, each bucket, and the buckets not
/// served with why.
pub fn status_text(routing: &Routing) -> String {
    let dir = &routing.directory;
    let mut out = format!("backend=mysql\n{dir}\n");
    for h in dir.hosts.values() {
        let sibling = h
            .slave_id
            .and_then(|s| dir.hosts.get(&s))
            .map_or("-".to_string(), |s| s.address().to_string());
        let state = routing.hosts.get(&h.id).map_or_else(
            || "unknown".to_string(),
            |route| {
                let r = route.health.report();
                let state = r.state.as_str();
                format!(
                    "{state} for {:.1} s ({}), transitions={}",
                    r.for_secs, r.reason, r.transitions
                )
            },
        );
        let _ = writeln!(
            out,
            "host {} {} sibling={sibling} state={state}",
            h.id,
            h.address()
        );
    }
    for b in dir.buckets.values() {
        let _ = writeln!(
            out,
            "bucket {} hash={} partitions={}",
            b.name,
            b.hash,
            b.partitions.len()
        );
    }
    for (name, why) in &dir.invalid {
        let _ = writeln!(out, "bucket {name} INVALID: {why}");
    }
    out
}
