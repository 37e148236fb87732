//! Unit tests of the chaos checker (`tests/chaos/checker.rs`) on hand-made histories: each
//! kind of violation is caught, and what faults (or unknown outcomes) allow is not flagged.

#[path = "chaos/history.rs"]
mod history;

#[path = "chaos/checker.rs"]
mod checker;

use checker::{check, Findings, READ_ONLY, UNAVAILABLE};
use history::{Action, Fault, History, Micros, Op, Outcome, Place, Stall, Walk};

const INVALID_ARGUMENT: i32 = 3;

// ---------------------------------------------------------------------------------------------
// Building histories

/// An acknowledged operation by client 1 through server 1.
fn op(key: &str, action: Action, invoke: Micros, complete: Micros) -> Op {
    Op {
        client: 1,
        server: 1,
        key: key.to_string(),
        action,
        invoke,
        complete,
        outcome: Outcome::Ok,
        batch: false,
    }
}

fn put(key: &str, value: &str, invoke: Micros, complete: Micros) -> Op {
    let value = value.to_string();
    op(key, Action::Put { value }, invoke, complete)
}

fn append(key: &str, suffix: &str, invoke: Micros, complete: Micros) -> Op {
    let suffix = suffix.to_string();
    op(key, Action::Append { suffix }, invoke, complete)
}

fn remove(key: &str, invoke: Micros, complete: Micros) -> Op {
    op(key, Action::Remove, invoke, complete)
}

fn get(key: &str, found: Option<&str>, invoke: Micros, complete: Micros) -> Op {
    let found = found.map(str::to_string);
    op(key, Action::Get { found }, invoke, complete)
}

fn unknown(op: Op) -> Op {
    let why = "timeout".to_string();
    Op {
        outcome: Outcome::Unknown { why },
        ..op
    }
}

fn refused(op: Op, code: i32) -> Op {
    Op {
        outcome: Outcome::Refused { code },
        ..op
    }
}

/// Where a key lives: its last character is the pair; its first character names one of the
/// pair's partitions (so `a0` and `b0` share pair 0 but not a partition).
fn place_of(key: &str) -> Place {
    let pair = key.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) as usize;
    let partition = pair as u64 * 1000 + u64::from(key.as_bytes()[0]);
    Place { partition, pair }
}

/// A history of `ops`, with the given final values (`None` for every other key), every key
/// placed by [`place_of`], a hold of 100 and an end at 1000.
fn history(ops: Vec<Op>, finals: &[(&str, Option<&str>)]) -> History {
    let mut h = History {
        hold: 100,
        end: 1000,
        ..History::default()
    };
    for o in &ops {
        h.places.insert(o.key.clone(), place_of(&o.key));
        h.finals.insert(o.key.clone(), None);
    }
    for (k, v) in finals {
        h.places.insert(k.to_string(), place_of(k));
        h.finals.insert(k.to_string(), v.map(str::to_string));
    }
    h.ops = ops;
    h
}

/// A fault on `pairs`.
fn fault(start: Micros, end: Micros, pairs: &[usize]) -> Fault {
    Fault {
        kind: "kill9".to_string(),
        detail: "master of the pair".to_string(),
        start,
        end,
        pairs: pairs.to_vec(),
        all: false,
        view_only: false,
        hosts: pairs.iter().map(|p| 2 * p).collect(),
        server: None,
        directory: false,
    }
}

/// Host `host` took no new connection from `start` to `end`.
fn stall(host: usize, start: Micros, end: Micros) -> Stall {
    Stall { host, start, end }
}

fn walk(invoke: Micros, complete: Micros, keys: &[&str], finished: bool) -> Walk {
    Walk {
        client: 9,
        server: 2,
        invoke,
        complete,
        keys: keys.iter().map(|k| k.to_string()).collect(),
        finished,
        error: None,
    }
}

/// The findings with only their counts, for a readable `assert_eq!`.
fn counts(f: &Findings) -> [usize; 9] {
    [
        f.lost.len(),
        f.phantom.len(),
        f.stale_healthy.len(),
        f.stale_outage.len(),
        f.refused_untouched.len(),
        f.append_order.len(),
        f.scan_twice.len(),
        f.scan_missed.len(),
        f.scan_missed_outage,
    ]
}

/// Checks `h`, printing the findings (seen when an assertion fails).
fn run(h: &History) -> Findings {
    let f = check(h);
    println!("{f:#?}");
    f
}

// ---------------------------------------------------------------------------------------------
// A clean run

#[test]
fn clean_history_is_ok() {
    let ops = vec![
        // Concurrent puts: either may be read, either may be final.
        put("a0", "a.1", 10, 20),
        Op {
            client: 2,
            server: 2,
            ..put("a0", "a.2", 15, 25)
        },
        get("a0", Some("a.1"), 30, 31),
        get("a0", Some("a.2"), 32, 33),
        // Pair 1 loses its master at 100: a read from the sibling misses the put acked at 60.
        put("b1", "b.1", 10, 20),
        put("b1", "b.2", 50, 60),
        get("b1", Some("b.1"), 150, 160),
        refused(put("b1", "b.refused", 120, 121), READ_ONLY),
        refused(append("d1", "d.refused;", 130, 131), UNAVAILABLE),
        // After the fault, a write untouches the partition; reads are current again.
        put("b1", "b.3", 300, 310),
        get("b1", Some("b.3"), 320, 330),
        // Unknown outcomes: one landed, one did not.
        put("c0", "c.1", 10, 20),
        unknown(put("c0", "c.2", 30, 40)),
        put("e0", "e.1", 10, 20),
        unknown(put("e0", "e.2", 30, 40)),
        // Appends, concurrent then sequential, and an unknown one that did not land.
        append("d1", "d.1;", 10, 30),
        append("d1", "d.2;", 20, 40),
        append("d1", "d.3;", 50, 60),
        unknown(append("d1", "d.4;", 70, 80)),
        get("d1", Some("d.2;d.1;d.3;"), 65, 66),
        // A removed key.
        put("f0", "f.1", 10, 20),
        remove("f0", 30, 40),
        get("f0", None, 50, 51),
    ];
    let mut h = history(
        ops,
        &[
            ("a0", Some("a.1")),
            ("b1", Some("b.3")),
            ("c0", Some("c.2")),
            ("e0", Some("e.1")),
            ("d1", Some("d.2;d.1;d.3;")),
        ],
    );
    h.faults.push(fault(100, 200, &[1]));
    h.walks
        .push(walk(500, 600, &["a0", "b1", "c0", "d1", "e0"], true));
    let f = run(&h);
    assert!(f.ok());
    assert_eq!(counts(&f), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(f.stale_outage[0].key, "b1");
    assert_eq!(f.stale_outage[0].behind, 150 - 60);
    assert_eq!(f.ops, 23);
    assert_eq!(f.acked_writes, 12);
}

// ---------------------------------------------------------------------------------------------
// Lost writes

#[test]
fn final_value_of_an_older_write_is_lost() {
    let h = history(
        vec![put("a0", "v1", 10, 20), put("a0", "v2", 30, 40)],
        &[("a0", Some("v1"))],
    );
    let f = run(&h);
    assert!(!f.ok());
    assert_eq!(counts(&f), [1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(f.lost[0].contains("a0") && f.lost[0].contains("\"v1\""));
    assert!(f.lost[0].contains("\"v2\"") && f.lost[0].contains("[30..40]"));
}

#[test]
fn absent_final_after_an_acked_put_is_lost() {
    let h = history(vec![put("a0", "v1", 10, 20)], &[("a0", None)]);
    assert_eq!(counts(&run(&h)), [1, 0, 0, 0, 0, 0, 0, 0, 0]);

    // A put after the remove was acknowledged: its value is lost too.
    let ops = vec![
        put("a0", "v1", 10, 20),
        remove("a0", 30, 40),
        put("a0", "v2", 50, 60),
    ];
    let h = history(ops.clone(), &[("a0", None)]);
    assert_eq!(counts(&run(&h)), [1, 0, 0, 0, 0, 0, 0, 0, 0]);
    let h = history(ops, &[("a0", Some("v1"))]);
    assert_eq!(counts(&run(&h)), [1, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn concurrent_writes_may_end_either_way() {
    let ops = vec![put("a0", "v1", 10, 30), remove("a0", 20, 40)];
    for fin in [Some("v1"), None] {
        let h = history(ops.clone(), &[("a0", fin)]);
        assert!(run(&h).ok(), "final {fin:?}");
    }
}

#[test]
fn unknown_write_may_or_may_not_be_final() {
    let ops = vec![put("a0", "v1", 10, 20), unknown(put("a0", "v2", 30, 40))];
    for fin in ["v1", "v2"] {
        let h = history(ops.clone(), &[("a0", Some(fin))]);
        assert!(run(&h).ok(), "final {fin}");
    }
    // An unknown remove, too.
    let ops = vec![put("a0", "v1", 10, 20), unknown(remove("a0", 30, 40))];
    for fin in [Some("v1"), None] {
        let h = history(ops.clone(), &[("a0", fin)]);
        assert!(run(&h).ok(), "final {fin:?}");
    }
    // An unknown write may land after its client gave up, even after a later acked write.
    let ops = vec![unknown(put("a0", "v0", 0, 5)), put("a0", "v1", 10, 20)];
    let h = history(ops, &[("a0", Some("v0"))]);
    assert!(run(&h).ok());
}

#[test]
fn refused_write_that_took_effect_is_phantom() {
    let ops = vec![
        put("a0", "v1", 10, 20),
        refused(put("a0", "v2", 30, 40), READ_ONLY),
        get("a0", Some("v2"), 50, 60),
    ];
    let h = history(ops, &[("a0", Some("v2"))]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 2, 0, 0, 1, 0, 0, 0, 0]);
    assert!(f.phantom.iter().all(|l| l.contains("refused")));
}

#[test]
fn missing_final_with_acked_writes_is_lost() {
    let mut h = history(vec![put("a0", "v1", 10, 20)], &[]);
    h.finals.clear();
    assert_eq!(counts(&run(&h)), [1, 0, 0, 0, 0, 0, 0, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Phantoms

#[test]
fn never_written_value_is_phantom() {
    let ops = vec![
        put("a0", "v1", 10, 20),
        get("a0", Some("v9"), 30, 40),
        // A value of another key.
        put("b0", "w1", 10, 20),
        get("a0", Some("w1"), 30, 40),
        // A value read before its put was invoked.
        get("a0", Some("v2"), 50, 55),
        put("a0", "v2", 60, 70),
    ];
    let h = history(
        ops,
        &[("a0", Some("v2")), ("b0", Some("w1")), ("c0", Some("x"))],
    );
    let f = run(&h);
    assert_eq!(counts(&f), [0, 4, 0, 0, 0, 0, 0, 0, 0]);
    assert!(f.phantom[0].contains("\"v9\"") && f.phantom[0].contains("[30..40]"));
    assert!(f.phantom.iter().any(|l| l.contains("final value \"x\"")));
}

#[test]
fn bad_append_tokens_are_phantom() {
    let ops = vec![
        append("a0", "x;", 10, 20),
        append("a0", "y;", 30, 40),
        refused(append("a0", "z;", 30, 40), INVALID_ARGUMENT),
        get("a0", Some("x;garbage;"), 50, 60),
        get("a0", Some("x;x;y;"), 50, 60),
        get("a0", Some("x;y;tail"), 50, 60),
        get("a0", Some("x;y;z;"), 50, 60),
        get("a0", Some("x;"), 5, 8),
    ];
    let h = history(ops, &[("a0", Some("x;y;y;"))]);
    let f = run(&h);
    assert_eq!(f.phantom.len(), 6, "{:#?}", f.phantom);
    for (line, what) in f.phantom.iter().zip([
        "\"garbage;\"",
        "\"x;\" twice",
        "\"tail\"",
        "refused",
        "before its append",
        "\"y;\" twice",
    ]) {
        assert!(line.contains(what), "{line} lacks {what}");
    }
    // The read of "x;garbage;" also lacks y (acked at 40), and so is stale.
    assert_eq!(f.stale_healthy.len(), 1);
    assert!(f.lost.is_empty() && f.append_order.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Stale reads

/// v1 acked at 20, v2 acked at 40; then `reads`.
fn two_puts_then(reads: Vec<Op>) -> History {
    let mut ops = vec![put("a0", "v1", 10, 20), put("a0", "v2", 30, 40)];
    ops.extend(reads);
    history(ops, &[("a0", Some("v2"))])
}

#[test]
fn stale_read_on_an_untouched_partition() {
    let h = two_puts_then(vec![get("a0", Some("v1"), 50, 55)]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(f.stale_healthy[0].contains("\"v1\"") && f.stale_healthy[0].contains("[50..55]"));

    // Concurrent with the superseding write: not stale.
    let h = two_puts_then(vec![get("a0", Some("v1"), 35, 45)]);
    assert!(run(&h).ok());
    // A fault on another pair does not excuse it.
    let mut h = two_puts_then(vec![get("a0", Some("v1"), 50, 55)]);
    h.faults.push(fault(0, 100, &[1]));
    assert_eq!(run(&h).stale_healthy.len(), 1);
}

#[test]
fn stale_read_during_a_fault_is_an_outage_read() {
    let mut h = two_puts_then(vec![get("a0", Some("v1"), 50, 55)]);
    h.faults.push(fault(45, 100, &[0]));
    let f = run(&h);
    assert!(f.ok());
    assert_eq!(counts(&f), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(f.stale_outage[0].key, "a0");
    assert_eq!(f.stale_outage[0].behind, 50 - 40);

    // `behind` counts from the first write superseding the value read.
    let mut ops = vec![
        put("a0", "v1", 10, 20),
        put("a0", "v2", 30, 40),
        put("a0", "v3", 60, 70),
    ];
    ops.push(get("a0", Some("v1"), 80, 85));
    let mut h = history(ops, &[("a0", Some("v3"))]);
    h.faults.push(fault(75, 100, &[0]));
    assert_eq!(run(&h).stale_outage[0].behind, 80 - 40);
}

#[test]
fn partition_is_untouched_again_after_a_write() {
    // The fault ends at 45; v3 (invoked 60, acked 70) untouches the partition at 70.
    let ops = vec![
        put("a0", "v1", 10, 20),
        put("a0", "v2", 30, 40),
        put("a0", "v3", 60, 70),
        get("a0", Some("v1"), 65, 68),
        get("a0", Some("v2"), 80, 85),
    ];
    let mut h = history(ops, &[("a0", Some("v3"))]);
    h.faults.push(fault(0, 45, &[0]));
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 1, 1, 0, 0, 0, 0, 0]);
    assert!(f.stale_outage[0].line.contains("[65..68]"));
    assert!(f.stale_healthy[0].contains("[80..85]"));

    // A write to another partition of the same pair does not untouch this one.
    let ops = vec![
        put("a0", "v1", 10, 20),
        put("a0", "v2", 30, 40),
        put("b0", "w1", 60, 70),
        get("a0", Some("v1"), 80, 85),
    ];
    let mut h = history(ops, &[("a0", Some("v2")), ("b0", Some("w1"))]);
    h.faults.push(fault(0, 45, &[0]));
    assert_eq!(counts(&run(&h)), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn view_only_fault_is_extended_by_hold() {
    // Ends at 45 plus a hold of 100: v3 (invoked 60) does not untouch; v4 (invoked 150,
    // acked 160) does.
    let ops = vec![
        put("a0", "v1", 10, 20),
        put("a0", "v2", 30, 40),
        put("a0", "v3", 60, 70),
        get("a0", Some("v2"), 80, 85),
        put("a0", "v4", 150, 160),
        get("a0", Some("v3"), 170, 175),
    ];
    let mut h = history(ops, &[("a0", Some("v4"))]);
    h.faults.push(Fault {
        view_only: true,
        kind: "cut_server_host".to_string(),
        ..fault(0, 45, &[0])
    });
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 1, 1, 0, 0, 0, 0, 0]);
    assert!(f.stale_outage[0].line.contains("[80..85]"));
    assert_eq!(f.stale_outage[0].behind, 80 - 70);
    assert!(f.stale_healthy[0].contains("[170..175]"));

    // Without view_only, v3 untouches at 70 and the read at 80 is healthy.
    h.faults[0].view_only = false;
    assert_eq!(counts(&run(&h)), [0, 0, 2, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn untouched_at_end_of_history_without_a_later_write() {
    let mut h = two_puts_then(vec![get("a0", Some("v1"), 900, 905)]);
    h.faults.push(fault(45, 50, &[0]));
    assert_eq!(counts(&run(&h)), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn all_fault_touches_every_pair() {
    let ops = vec![
        put("a1", "v1", 10, 20),
        put("a1", "v2", 30, 40),
        get("a1", Some("v1"), 50, 55),
        put("a2", "w1", 10, 20),
        put("a2", "w2", 30, 40),
        get("a2", Some("w1"), 50, 55),
    ];
    let mut h = history(ops, &[("a1", Some("v2")), ("a2", Some("w2"))]);
    h.faults.push(Fault {
        all: true,
        kind: "cut_directory".to_string(),
        ..fault(45, 100, &[])
    });
    let f = run(&h);
    assert!(f.ok());
    assert_eq!(counts(&f), [0, 0, 0, 2, 0, 0, 0, 0, 0]);

    // The same fault on pair 1 only: the read of pair 2 is not excused.
    h.faults[0].all = false;
    h.faults[0].pairs = vec![1];
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 1, 1, 0, 0, 0, 0, 0]);
    assert!(f.stale_healthy[0].contains("a2"));
}

#[test]
fn key_without_a_place_is_touched_by_any_fault() {
    let mut h = two_puts_then(vec![get("a0", Some("v1"), 50, 55)]);
    h.places.clear();
    h.faults.push(fault(45, 100, &[7]));
    h.places.insert("z7".to_string(), place_of("z7"));
    assert_eq!(counts(&run(&h)), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn removed_keys() {
    let base = || vec![put("a0", "v1", 10, 20), remove("a0", 30, 40)];
    let with = |reads: Vec<Op>| {
        let mut ops = base();
        ops.extend(reads);
        history(ops, &[])
    };
    // Absent after the remove was acknowledged, or during it; the old value during it.
    let h = with(vec![
        get("a0", None, 50, 51),
        get("a0", None, 35, 36),
        get("a0", Some("v1"), 35, 36),
        get("b0", None, 5, 6),
        get("b0", None, 50, 51),
    ]);
    assert!(run(&h).ok());
    // The old value after the remove was acknowledged.
    let h = with(vec![get("a0", Some("v1"), 50, 51)]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(f.stale_healthy[0].contains("remove by") && f.stale_healthy[0].contains("[30..40]"));
    // Absent after the put was acknowledged and before the remove began.
    let h = with(vec![get("a0", None, 25, 26)]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(f.stale_healthy[0].contains("initial absent state"));
    // A refused remove does not count as a source of "absent".
    let ops = vec![
        put("a0", "v1", 10, 20),
        refused(remove("a0", 30, 40), INVALID_ARGUMENT),
        get("a0", None, 50, 51),
    ];
    let h = history(ops, &[("a0", Some("v1"))]);
    assert_eq!(counts(&run(&h)), [0, 0, 1, 0, 0, 0, 0, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Appends

#[test]
fn acked_append_missing_from_final_is_lost() {
    let ops = vec![
        append("a0", "x;", 10, 20),
        append("a0", "y;", 30, 40),
        unknown(append("a0", "u;", 30, 40)),
    ];
    let h = history(ops.clone(), &[("a0", Some("x;"))]);
    let f = run(&h);
    assert_eq!(counts(&f), [1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(f.lost[0].contains("\"y;\"") && f.lost[0].contains("[30..40]"));
    // With the unknown one or without it, all is well.
    for fin in ["x;y;", "x;y;u;", "x;u;y;"] {
        let h = history(ops.clone(), &[("a0", Some(fin))]);
        assert!(run(&h).ok(), "final {fin}");
    }
    // An absent final loses both.
    let h = history(ops, &[("a0", None)]);
    assert_eq!(run(&h).lost.len(), 2);
}

#[test]
fn append_order_is_checked() {
    let ops = vec![
        append("a0", "x;", 10, 20),
        append("a0", "y;", 30, 40),
        append("a0", "c;", 15, 35),
        unknown(append("a0", "u;", 50, 60)),
    ];
    // Concurrent appends in either order; the unknown one after those acknowledged before it.
    for fin in ["x;c;y;u;", "c;x;y;", "x;y;c;u;"] {
        let h = history(ops.clone(), &[("a0", Some(fin))]);
        assert!(run(&h).ok(), "final {fin}");
    }
    for (fin, bad) in [
        ("y;x;c;", 1),
        ("y;c;x;", 1),
        ("u;x;c;y;", 3),
        ("x;u;y;c;", 2),
    ] {
        let h = history(ops.clone(), &[("a0", Some(fin))]);
        let f = run(&h);
        assert_eq!(counts(&f), [0, 0, 0, 0, 0, bad, 0, 0, 0], "final {fin}");
    }
    let h = history(ops, &[("a0", Some("y;c;x;"))]);
    let line = &run(&h).append_order[0];
    assert!(line.contains("\"x;\"") && line.contains("\"y;\"") && line.contains("[10..20]"));
}

#[test]
fn stale_append_read() {
    let ops = vec![
        append("a0", "x;", 10, 20),
        append("a0", "y;", 30, 40),
        get("a0", Some("x;"), 50, 55),
        get("a0", None, 50, 55),
        // Concurrent with y: fine.
        get("a0", Some("x;"), 35, 45),
        get("a0", None, 5, 15),
    ];
    let h = history(ops.clone(), &[("a0", Some("x;y;"))]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 2, 0, 0, 0, 0, 0, 0]);
    assert!(f.stale_healthy[0].contains("\"y;\""));
    assert!(f.stale_healthy[1].contains("\"x;\", \"y;\""));

    let mut h = history(ops, &[("a0", Some("x;y;"))]);
    h.faults.push(fault(48, 60, &[0]));
    let f = run(&h);
    assert!(f.ok());
    let behind: Vec<Micros> = f.stale_outage.iter().map(|s| s.behind).collect();
    assert_eq!(behind, [50 - 40, 50 - 20]);
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[test]
fn refused_writes() {
    let ops = vec![
        refused(put("a0", "v1", 10, 20), READ_ONLY),
        refused(remove("a0", 10, 20), UNAVAILABLE),
        refused(append("b0", "x;", 10, 20), READ_ONLY),
        // During the fault on pair 1: excused.
        refused(put("a1", "w1", 110, 120), READ_ONLY),
        refused(append("b1", "y;", 150, 160), UNAVAILABLE),
        // Not a failover refusal; not a write.
        refused(put("a0", "v2", 30, 40), INVALID_ARGUMENT),
        refused(get("a0", None, 30, 40), UNAVAILABLE),
    ];
    let mut h = history(ops, &[]);
    h.faults.push(fault(100, 200, &[1]));
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 0, 0, 3, 0, 0, 0, 0]);
    assert!(f.refused_untouched[0].contains("a0") && f.refused_untouched[0].contains("\"v1\""));
    assert!(f.refused_untouched[0].contains("refused(5)"));
}

/// One server lets writes back later than another: its refusals within `hold` of the fault's
/// end are the fault's, even after another server has written (which ends the fault for
/// stale reads); past `hold`, they are not.
#[test]
fn refusals_have_the_hold_to_stop() {
    let ops = vec![
        // The fault on pair 1 ends at 200; server 0 writes right after it.
        put("a1", "w1", 205, 210),
        // Server 1 still refuses at 250 (within the hold of 100): excused.
        refused(put("a1", "w2", 250, 255), READ_ONLY),
        // And at 320, past the hold: a violation.
        refused(put("a1", "w3", 320, 325), READ_ONLY),
    ];
    let mut h = history(ops, &[]);
    h.faults.push(fault(100, 200, &[1]));
    let f = run(&h);
    assert_eq!(f.refused_untouched.len(), 1, "{:?}", f.refused_untouched);
    assert!(
        f.refused_untouched[0].contains("\"w3\""),
        "{:?}",
        f.refused_untouched
    );
}

/// A host that took no new connection (measured by the run) explains refusals on its pair
/// while it lasts and for a hold after, with no fault anywhere; not on another pair, and not
/// past the hold.
#[test]
fn a_host_that_took_no_new_connection_explains_its_pairs_refusals() {
    let ops = vec![
        // Pair 0's host 1 stalls new connections from 100 to 200, the hold is 100.
        refused(put("a0", "w1", 150, 155), READ_ONLY),
        refused(append("b0", "x;", 280, 290), UNAVAILABLE),
        // Past the hold: a violation.
        refused(put("a0", "w2", 320, 325), READ_ONLY),
        // Another pair: a violation.
        refused(put("a1", "w3", 150, 155), READ_ONLY),
    ];
    let mut h = history(ops, &[]);
    h.stalls.push(stall(1, 100, 200));
    let f = run(&h);
    assert_eq!(f.refused_untouched.len(), 2, "{:?}", f.refused_untouched);
    assert!(f.refused_untouched[0].contains("\"w2\""));
    assert!(f.refused_untouched[1].contains("\"w3\""));
}

/// A stall is about new connections only: a stale read of its pair during it is still one.
#[test]
fn a_host_that_took_no_new_connection_explains_no_stale_read() {
    let mut h = two_puts_then(vec![get("a0", Some("v1"), 150, 160)]);
    h.stalls.push(stall(0, 100, 200));
    let f = run(&h);
    assert_eq!(f.stale_healthy.len(), 1, "{:?}", f.stale_healthy);
}

/// Server 1 reaches neither directory host for a while (cut from the directory master, then
/// its sibling black-holed): its lease may run out, so its refusals of writes to any pair are
/// excused until a directory tail past the later fault's end; server 0's are not, and neither
/// fault alone excuses anything off pair 0.
#[test]
fn a_server_that_lost_both_directory_hosts_may_refuse_any_write() {
    let by = |server: u32, op: Op| Op { server, ..op };
    let ops = vec![
        // Pair 2, untouched by the faults: server 1 refuses at 330 (lease lost), and at 430
        // (the cut counts until 350, a tail past its end; the lease comes back within a tail
        // more).
        by(1, refused(put("a2", "w1", 330, 335), READ_ONLY)),
        by(1, refused(put("a2", "w2", 430, 435), READ_ONLY)),
        // Past the tail: a violation.
        by(1, refused(put("a2", "w3", 620, 625), READ_ONLY)),
        // Server 0 could reach the master all along: a violation.
        by(0, refused(put("a2", "w4", 340, 345), READ_ONLY)),
    ];
    let mut h = history(ops, &[]);
    h.directory_hosts = vec![0, 1];
    h.directory_tail = 100;
    h.faults.push(Fault {
        kind: "cut_server_host".to_string(),
        view_only: true,
        hosts: vec![0],
        server: Some(1),
        ..fault(100, 250, &[0])
    });
    h.faults.push(Fault {
        kind: "blackhole".to_string(),
        hosts: vec![1],
        ..fault(300, 400, &[0])
    });
    let f = run(&h);
    let flagged: Vec<bool> = ["\"w1\"", "\"w2\"", "\"w3\"", "\"w4\""]
        .iter()
        .map(|w| f.refused_untouched.iter().any(|l| l.contains(w)))
        .collect();
    assert_eq!(
        flagged,
        [false, false, true, true],
        "{:?}",
        f.refused_untouched
    );

    // The cut alone (no black hole at the sibling): server 1 kept the directory.
    h.faults.pop();
    let f = run(&h);
    assert_eq!(f.refused_untouched.len(), 4, "{:?}", f.refused_untouched);
}

/// A failover cycle changes the directory; a server sees the switchover's end only at its
/// next directory read, so its refusals (and reads from the sibling) within the directory tail
/// past the end are the fault's, even after another server has written.
#[test]
fn a_directory_change_reaches_each_server_within_the_directory_tail() {
    let ops = vec![
        put("a1", "w1", 205, 210),
        refused(put("a1", "w2", 350, 355), READ_ONLY),
        get("a1", None, 360, 365),
        // Past the tail, a write ends the fault for good.
        put("a1", "w4", 460, 470),
        refused(put("a1", "w3", 520, 525), READ_ONLY),
    ];
    let mut h = history(ops, &[("a1", Some("w4"))]);
    h.directory_tail = 250;
    h.faults.push(Fault {
        kind: "failover_cycle".to_string(),
        directory: true,
        hosts: Vec::new(),
        ..fault(100, 200, &[1])
    });
    let f = run(&h);
    assert_eq!(f.refused_untouched.len(), 1, "{:?}", f.refused_untouched);
    assert!(f.refused_untouched[0].contains("\"w3\""));
    assert!(f.stale_healthy.is_empty(), "{:?}", f.stale_healthy);
    assert_eq!(f.stale_outage.len(), 1, "{f:?}");

    // Not a directory change: the write at 205 ends the fault, and the read at 360 is stale.
    h.faults[0].directory = false;
    let f = run(&h);
    assert_eq!(f.stale_healthy.len(), 1, "{:?}", f.stale_healthy);
}

// ---------------------------------------------------------------------------------------------
// Scans

/// a0 put at 10..20, b1 appended at 10..20.
fn scanned(walks: Vec<Walk>) -> History {
    let ops = vec![put("a0", "v1", 10, 20), append("b1", "x;", 10, 20)];
    let mut h = history(ops, &[("a0", Some("v1")), ("b1", Some("x;"))]);
    h.walks = walks;
    h
}

#[test]
fn key_returned_twice() {
    let h = scanned(vec![
        walk(50, 60, &["a0", "b1", "a0"], true),
        walk(70, 80, &["b1", "b1"], false),
    ]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 0, 2, 0, 0]);
    assert!(f.scan_twice[0].contains("a0") && f.scan_twice[0].contains("2 times"));
    assert!(f.scan_twice[1].contains("[70..80]"));
}

#[test]
fn scan_missed_on_a_healthy_walk() {
    let h = scanned(vec![
        walk(50, 60, &["b1"], true),
        walk(50, 60, &["a0"], true),
    ]);
    let f = run(&h);
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 0, 0, 2, 0]);
    assert!(f.scan_missed[0].contains("a0") && f.scan_missed[0].contains("[50..60]"));
    assert!(f.scan_missed[1].contains("b1"));
    // Unfinished walks need not return anything.
    let h = scanned(vec![walk(50, 60, &[], false)]);
    assert!(run(&h).ok());
    // Keys written during the walk need not appear.
    let h = scanned(vec![walk(15, 60, &[], true)]);
    assert!(run(&h).ok());
}

#[test]
fn scan_missed_during_a_fault_is_counted_not_flagged() {
    // A fault on any pair touches the walk, which spans all of them.
    let mut h = scanned(vec![walk(50, 60, &[], true)]);
    h.faults.push(fault(55, 58, &[3]));
    h.places.insert("c3".to_string(), place_of("c3"));
    let f = run(&h);
    assert!(f.ok());
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 0, 0, 0, 2]);
}

#[test]
fn key_removed_around_a_walk() {
    let remove_then_walk = |rm: Op| {
        let ops = vec![put("a0", "v1", 10, 20), rm];
        let mut h = history(ops, &[]);
        h.walks.push(walk(50, 60, &[], true));
        h
    };
    // Removed during the walk, or with an unknown outcome before it: not required.
    assert!(run(&remove_then_walk(remove("a0", 55, 65))).ok());
    let h = remove_then_walk(unknown(remove("a0", 21, 22)));
    assert!(run(&h).ok());
    // A refused remove, or one after the walk, does not excuse a miss.
    let rm = refused(remove("a0", 21, 22), READ_ONLY);
    let mut h = remove_then_walk(rm);
    h.finals.insert("a0".to_string(), Some("v1".to_string()));
    assert_eq!(counts(&run(&h)), [0, 0, 0, 0, 1, 0, 0, 1, 0]);
    let h = remove_then_walk(remove("a0", 70, 80));
    assert_eq!(counts(&run(&h)), [0, 0, 0, 0, 0, 0, 0, 1, 0]);
    // Removed, then put again before the walk: required.
    let ops = vec![
        put("a0", "v1", 10, 20),
        remove("a0", 21, 22),
        put("a0", "v2", 30, 40),
    ];
    let mut h = history(ops, &[("a0", Some("v2"))]);
    h.walks.push(walk(50, 60, &[], true));
    assert_eq!(counts(&run(&h)), [0, 0, 0, 0, 0, 0, 0, 1, 0]);
}

#[test]
fn scan_returning_a_key_never_written_is_phantom() {
    let h = scanned(vec![walk(50, 60, &["a0", "b1", "ghost", "c0"], true)]);
    let mut h = h;
    h.ops.push(put("c0", "late", 70, 80));
    h.finals.insert("c0".to_string(), Some("late".to_string()));
    let f = run(&h);
    assert_eq!(counts(&f), [0, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert!(f.phantom[0].contains("c0") && f.phantom[1].contains("ghost"));
}

// ---------------------------------------------------------------------------------------------
// Serialization

#[test]
fn history_round_trips_through_json() {
    let mut h = two_puts_then(vec![
        get("a0", Some("v2"), 50, 55),
        unknown(append("b1", "x;", 60, 70)),
        refused(remove("a0", 80, 90), READ_ONLY),
        Op {
            batch: true,
            ..get("b1", None, 95, 99)
        },
    ]);
    h.faults.push(Fault {
        view_only: true,
        all: true,
        ..fault(45, 100, &[0, 1])
    });
    h.walks.push(walk(50, 60, &["a0"], false));
    let json = serde_json::to_string(&h).unwrap();
    let back: History = serde_json::from_str(&json).unwrap();
    assert_eq!(back, h);
    assert_eq!(check(&back), check(&h));
}

// ---------------------------------------------------------------------------------------------
// Scale

/// A long history of a consistent store (one writer at a time, every read of the latest
/// value; register and append keys; walks and faults) is found clean: the checker flags no
/// violation where there is none, at scale. (Its speed at the size of a long chaos run is a
/// matter for the run itself, which prints how long the check took.)
#[test]
fn a_long_consistent_history_is_clean() {
    const KEYS: usize = 20_000;
    const OPS: usize = 200_000;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    let name = |k: usize| format!("{}{k}.{}", if k % 2 == 0 { 'r' } else { 'l' }, k % 3);
    let mut state: Vec<Option<String>> = vec![None; KEYS];
    let mut ops = Vec::with_capacity(OPS);
    for i in 0..OPS {
        let k = rand(KEYS);
        let t = 10 * i as Micros;
        let key = name(k);
        let o = match (k % 2, rand(3)) {
            (0, 0) => {
                let v = format!("v{i}");
                state[k] = Some(v.clone());
                put(&key, &v, t, t + 5)
            }
            (0, 1) => {
                state[k] = None;
                remove(&key, t, t + 5)
            }
            (1, 0 | 1) => {
                let s = format!("s{i};");
                state[k] = Some(state[k].take().unwrap_or_default() + &s);
                append(&key, &s, t, t + 5)
            }
            _ => get(&key, state[k].as_deref(), t, t + 5),
        };
        ops.push(Op {
            client: rand(64) as u32,
            ..o
        });
    }
    let end = 10 * OPS as Micros;
    let mut h = History {
        hold: 1000,
        end,
        ..History::default()
    };
    for (k, v) in state.iter().enumerate() {
        h.finals.insert(name(k), v.clone());
        let pair = k % 3;
        let partition = (pair * 100 + k % 97) as u64;
        h.places.insert(name(k), Place { partition, pair });
    }
    h.ops = ops;
    for w in 0..50 {
        let invoke = end + 100 * w as Micros;
        let keys: Vec<&str> = h
            .finals
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|_| k.as_str()))
            .collect();
        let finished = w % 2 == 0;
        h.walks.push(walk(invoke, invoke + 50, &keys, finished));
    }
    for i in 0..100 {
        let start = end / 100 * i as Micros;
        h.faults.push(fault(start, start + 1000, &[i % 3]));
    }
    let started = std::time::Instant::now();
    let f = check(&h);
    let took = started.elapsed();
    println!("checked {} ops in {took:?}", f.ops);
    assert!(f.ok(), "{:?}", counts(&f));
    // About 7 s in release on a shared two-core machine; unoptimized code is not held to it.
    if !cfg!(debug_assertions) {
        assert!(took.as_secs() < 60, "took {took:?}");
    }
}
