//! The rebalance planner: from each partition's range, host and rows, the splits and moves
//! that even a bucket out over hosts ([`super::rebalance`] carries them out).
//!
//! **The plan.** Every host of the plan should hold `rows / hosts` of the bucket, within
//! `--tolerance`; a host outside the plan (a pair being drained) should hold nothing. While
//! that is not so, the most loaded host gives the least loaded one what the first has too
//! much and the second too little: its largest partition that is not much more than that, or,
//! when every partition is bigger, the upper part of its smallest one, split off straight to
//! the other host (`split --at ... --to ...`). Rows fall evenly over a partition's hash range
//! (keys are hashed), so a range's share of the rows is its share of the range. Before that,
//! partitions over `--max-rows-per-partition` are split in halves where they are.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Most steps one plan may have: a plan that needs more is refused (something is off).
pub const MAX_STEPS: usize = 200;

/// A partition as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Its label in the plan: the directory id, or `12/lo`, `12/hi` for planned halves.
    pub label: String,
    /// The directory id of a live partition; `None` for one the plan makes.
    pub id: Option<u64>,
    pub start: f64,
    pub end: f64,
    pub host: u32,
    pub rows: u64,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Split `label` at `at`; the upper part goes to `to` (`None`: stays).
    Split {
        label: String,
        id: Option<u64>,
        at: f64,
        from: u32,
        to: Option<u32>,
        rows: u64,
        upper_rows: u64,
    },
    /// Move `label` to `to`.
    Move {
        label: String,
        id: Option<u64>,
        from: u32,
        to: u32,
        rows: u64,
    },
}

impl Step {
    /// The live partition the step starts from, when it is one.
    pub fn partition(&self) -> Option<u64> {
        match self {
            Step::Split { id, .. } | Step::Move { id, .. } => *id,
        }
    }
}

/// What to plan for.
#[derive(Debug, Clone)]
pub struct Goal {
    /// The hosts that should share the rows.
    pub hosts: Vec<u32>,
    /// Split partitions over this many rows.
    pub max_rows: Option<u64>,
    /// How far from an even share a host may be, as a fraction of it.
    pub tolerance: f64,
}

/// The steps that take `parts` to `goal`.
pub fn plan(mut parts: Vec<Load>, goal: &Goal) -> Result<Vec<Step>> {
    if goal.hosts.is_empty() {
        return Err(Error::invalid("no host to spread the bucket over"));
    }
    let mut steps = Vec::new();
    // 1. Partitions too big are halved where they are.
    if let Some(max) = goal.max_rows {
        while let Some(i) = parts.iter().position(|p| p.rows > max.max(1)) {
            let p = parts.remove(i);
            let at = p.start + (p.end - p.start) / 2.0;
            let (lo, hi) = halves(&p, at, p.host);
            steps.push(Step::Split {
                label: p.label.clone(),
                id: p.id,
                at,
                from: p.host,
                to: None,
                rows: p.rows,
                upper_rows: hi.rows,
            });
            parts.insert(i, hi);
            parts.insert(i, lo);
            if steps.len() > MAX_STEPS {
                return Err(too_many());
            }
        }
    }
    // 2. Even shares.
    let total: u64 = parts.iter().map(|p| p.rows).sum();
    let share = total as f64 / goal.hosts.len() as f64;
    let slack = (share * goal.tolerance).max(1.0);
    loop {
        if steps.len() > MAX_STEPS {
            return Err(too_many());
        }
        let loads = loads(&parts, &goal.hosts);
        // A host outside the plan gives everything to the least loaded host of the plan.
        let Some((&to, &to_load)) = loads
            .iter()
            .filter(|(h, _)| goal.hosts.contains(h))
            .min_by_key(|(h, l)| (**l, **h))
        else {
            break;
        };
        if let Some(i) = parts.iter().position(|p| !goal.hosts.contains(&p.host)) {
            let p = &mut parts[i];
            steps.push(Step::Move {
                label: p.label.clone(),
                id: p.id,
                from: p.host,
                to,
                rows: p.rows,
            });
            p.host = to;
            continue;
        }
        let Some((&from, &from_load)) = loads
            .iter()
            .filter(|(h, _)| goal.hosts.contains(h))
            .max_by_key(|(h, l)| (**l, std::cmp::Reverse(**h)))
        else {
            break;
        };
        let (over, under) = (from_load as f64 - share, share - to_load as f64);
        if from == to || (over <= slack && under <= slack) {
            break;
        }
        let amount = over.min(under);
        // The largest partition of `from` that is not much more than `amount`.
        let fits = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.host == from && p.rows > 0 && p.rows as f64 <= amount + slack)
            .max_by_key(|(_, p)| p.rows)
            .map(|(i, _)| i);
        if let Some(i) = fits {
            let p = &mut parts[i];
            steps.push(Step::Move {
                label: p.label.clone(),
                id: p.id,
                from,
                to,
                rows: p.rows,
            });
            p.host = to;
            continue;
        }
        // Else the upper part of its smallest partition, split off to `to`.
        let Some(i) = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.host == from && p.rows > 0)
            .min_by_key(|(_, p)| p.rows)
            .map(|(i, _)| i)
        else {
            break;
        };
        let p = parts.remove(i);
        let fraction = (amount / p.rows as f64).clamp(0.0, 1.0);
        let at = p.end - (p.end - p.start) * fraction;
        if !(at > p.start && at < p.end) {
            parts.insert(i, p);
            break;
        }
        let (lo, hi) = halves(&p, at, to);
        steps.push(Step::Split {
            label: p.label.clone(),
            id: p.id,
            at,
            from,
            to: Some(to),
            rows: p.rows,
            upper_rows: hi.rows,
        });
        parts.insert(i, hi);
        parts.insert(i, lo);
    }
    Ok(steps)
}

pub fn too_many() -> Error {
    Error::invalid(format!(
        "the plan would take more than {MAX_STEPS} steps: raise --max-rows-per-partition or \
         --tolerance"
    ))
}

/// `p` cut at `at`, the upper part on `upper_host`; rows shared by the ranges' lengths.
fn halves(p: &Load, at: f64, upper_host: u32) -> (Load, Load) {
    let width = (p.end - p.start).max(f64::MIN_POSITIVE);
    let lower_rows = ((at - p.start) / width * p.rows as f64).round() as u64;
    (
        Load {
            label: format!("{}/lo", p.label),
            id: None,
            start: p.start,
            end: at,
            host: p.host,
            rows: lower_rows.min(p.rows),
        },
        Load {
            label: format!("{}/hi", p.label),
            id: None,
            start: at,
            end: p.end,
            host: upper_host,
            rows: p.rows - lower_rows.min(p.rows),
        },
    )
}

/// Rows per host: every host of `hosts` (0 when it holds nothing) and every host holding one
/// of `parts`.
pub fn loads(parts: &[Load], hosts: &[u32]) -> BTreeMap<u32, u64> {
    let mut loads: BTreeMap<u32, u64> = hosts.iter().map(|&h| (h, 0)).collect();
    for p in parts {
        *loads.entry(p.host).or_default() += p.rows;
    }
    loads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(id: u64, start: f64, end: f64, host: u32, rows: u64) -> Load {
        Load {
            label: id.to_string(),
            id: Some(id),
            start,
            end,
            host,
            rows,
        }
    }

    /// Applies `steps` to `parts` as the planner models them, and gives the rows per host.
    fn after(parts: &[Load], steps: &[Step], hosts: &[u32]) -> BTreeMap<u32, u64> {
        let mut parts = parts.to_vec();
        for s in steps {
            match s {
                Step::Move { label, to, .. } => {
                    let p = parts.iter_mut().find(|p| p.label == *label).unwrap();
                    p.host = *to;
                }
                Step::Split { label, at, to, .. } => {
                    let i = parts.iter().position(|p| p.label == *label).unwrap();
                    let p = parts.remove(i);
                    let (lo, hi) = halves(&p, *at, to.unwrap_or(p.host));
                    parts.push(lo);
                    parts.push(hi);
                }
            }
        }
        loads(&parts, hosts)
    }

    fn goal(hosts: &[u32]) -> Goal {
        Goal {
            hosts: hosts.to_vec(),
            max_rows: None,
            tolerance: 0.1,
        }
    }

    /// 8 equal partitions on 4 hosts (two pairs), grown onto a third pair.
    fn two_pairs() -> Vec<Load> {
        (0..8)
            .map(|i| {
                load(
                    i + 1,
                    i as f64 / 8.0,
                    (i + 1) as f64 / 8.0,
                    (i % 4) as u32 + 1,
                    1000,
                )
            })
            .collect()
    }

    #[test]
    fn a_balanced_bucket_needs_nothing() {
        assert!(plan(two_pairs(), &goal(&[1, 2, 3, 4])).unwrap().is_empty());
    }

    #[test]
    fn growing_onto_a_new_pair_evens_every_host_out() {
        let hosts = [1, 2, 3, 4, 5, 6];
        let steps = plan(two_pairs(), &goal(&hosts)).unwrap();
        assert!(!steps.is_empty());
        let share = 8000.0 / 6.0;
        for (h, l) in after(&two_pairs(), &steps, &hosts) {
            assert!(
                (l as f64 - share).abs() <= share * 0.1 + 1.0,
                "host {h} has {l} rows, not about {share}: {steps:?}"
            );
        }
        // Only what the new hosts need moves: a third of the rows, not much more.
        let moved: u64 = steps
            .iter()
            .map(|s| match s {
                Step::Move { rows, .. } => *rows,
                Step::Split {
                    to: Some(_),
                    upper_rows,
                    ..
                } => *upper_rows,
                Step::Split { .. } => 0,
            })
            .sum();
        assert!(moved <= 8000 / 3 + 400, "moved {moved}: {steps:?}");
        // The first step starts from a live partition.
        assert!(steps[0].partition().is_some());
    }

    #[test]
    fn draining_a_pair_empties_it_onto_the_others() {
        let parts = two_pairs();
        let steps = plan(parts.clone(), &goal(&[1, 2])).unwrap();
        let loads = after(&parts, &steps, &[1, 2]);
        assert_eq!(loads.get(&3).copied().unwrap_or(0), 0);
        assert_eq!(loads.get(&4).copied().unwrap_or(0), 0);
        assert_eq!(loads[&1] + loads[&2], 8000);
        assert!(loads[&1].abs_diff(loads[&2]) <= 1000);
    }

    #[test]
    fn big_partitions_are_halved_in_place() {
        let parts = vec![load(1, 0.0, 0.5, 1, 4000), load(2, 0.5, 1.0, 2, 1000)];
        let g = Goal {
            max_rows: Some(1500),
            ..goal(&[1, 2])
        };
        let steps = plan(parts.clone(), &g).unwrap();
        let splits = steps
            .iter()
            .filter(|s| matches!(s, Step::Split { to: None, .. }))
            .count();
        assert_eq!(splits, 3, "{steps:?}");
        let loads = after(&parts, &steps, &[1, 2]);
        assert!(loads[&1].abs_diff(loads[&2]) <= 600, "{loads:?} {steps:?}");
    }

    #[test]
    fn no_host_is_refused() {
        assert!(plan(two_pairs(), &goal(&[])).is_err());
    }
}
