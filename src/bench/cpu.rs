//! The CPU time a timed run cost, from `/proc` (Linux): the Thrudoc server's, the database
//! servers', the bench's own and the whole box's. Divided by the run's operations it is what
//! an operation costs each of them, the figure that sets the rate when every process shares a
//! few cores, and one that moves far less with the box's noise than the rate does.
//!
//! Process times are `utime + stime` of `/proc/<pid>/stat` (all threads, including those that
//! ended), in clock ticks; the box's is the busy time of `/proc/stat`'s `cpu` line (user, nice,
//! system, irq, softirq: not idle, iowait or steal).

/// The processes whose CPU time a run reports.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// The Thrudoc server (`--server-pid`).
    pub server: Option<u32>,
    /// The database servers (`--db-pid`, once per process).
    pub databases: Vec<u32>,
}

/// Clock ticks used so far, each `None` when it could not be read.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    server: Option<u64>,
    databases: Option<u64>,
    bench: Option<u64>,
    busy: Option<u64>,
}

/// CPU seconds spent between two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    pub server: Option<f64>,
    pub databases: Option<f64>,
    pub bench: Option<f64>,
    /// Every process of the box, these included.
    pub busy: Option<f64>,
}

impl Watched {
    /// What has been used so far.
    pub fn read(&self) -> Reading {
        let databases = if self.databases.is_empty() {
            None
        } else {
            self.databases
                .iter()
                .map(|&pid| process_ticks(&pid.to_string()))
                .sum::<Option<u64>>()
        };
        Reading {
            server: self.server.and_then(|pid| process_ticks(&pid.to_string())),
            databases,
            bench: process_ticks("self"),
            busy: busy_ticks(),
        }
    }

    /// What has been used since `before`.
    pub fn since(&self, before: Reading) -> CpuUse {
        let now = self.read();
        let per_sec = ticks_per_second();
        let spent = |a: Option<u64>, b: Option<u64>| Some(b?.checked_sub(a?)? as f64 / per_sec);
        CpuUse {
            server: spent(before.server, now.server),
            databases: spent(before.databases, now.databases),
            bench: spent(before.bench, now.bench),
            busy: spent(before.busy, now.busy),
        }
    }
}

impl CpuUse {
    /// Microseconds per operation of each part, for `ops` operations.
    pub fn per_op_us(&self, ops: u64) -> CpuUse {
        let each = |s: Option<f64>| s.filter(|_| ops > 0).map(|s| s * 1e6 / ops as f64);
        CpuUse {
            server: each(self.server),
            databases: each(self.databases),
            bench: each(self.bench),
            busy: each(self.busy),
        }
    }
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// `utime + stime` of `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> Option<u64> {
    parse_process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields 14 and 15 of a `stat` line. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself, so the fields are counted from the last `)`.
fn parse_process_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The busy ticks of all CPUs, from `/proc/stat`.
fn busy_ticks() -> Option<u64> {
    parse_busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// user + nice + system + irq + softirq of the `cpu` line.
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let field = |i: usize| v.get(i).copied();
    Some(field(0)? + field(1)? + field(2)? + field(5)? + field(6)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_count_fields_from_the_last_parenthesis() {
        // A command name with a space and a parenthesis; utime 1500, stime 250.
        let stat =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 1500 250 0 0 20 0 9 0";
        assert_eq!(parse_process_ticks(stat), Some(1750));
        assert_eq!(parse_process_ticks("4242 (short) S 1 2"), None);
        assert_eq!(parse_process_ticks("no parenthesis"), None);
    }

    #[test]
    fn busy_ticks_leave_out_idle_iowait_and_steal() {
        let stat = "cpu  100 20 30 9000 500 6 7 800 0 0\ncpu0 50 10 15 4500 250 3 3 400 0 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(100 + 20 + 30 + 6 + 7));
        assert_eq!(parse_busy_ticks("cpu0 1 2 3\n"), None);
    }

    #[test]
    fn this_process_and_the_box_are_read_and_spending_shows() {
        let watched = Watched {
            server: Some(std::process::id()),
            databases: vec![std::process::id()],
        };
        let before = watched.read();
        // Burn about 100 ms of CPU: comfortably more than the 10 ms tick.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = watched.since(before);
        for (name, s) in [
            ("server", used.server),
            ("databases", used.databases),
            ("bench", used.bench),
            ("busy", used.busy),
        ] {
            let s = s.unwrap_or_else(|| panic!("{name} not read"));
            assert!(s > 0.0 && s < 5.0, "{name}: {s} s");
        }
        let per_op = used.per_op_us(1000);
        assert_eq!(per_op.bench, used.bench.map(|s| s * 1000.0));
        assert_eq!(used.per_op_us(0).bench, None);
        let none = Watched::default().since(Watched::default().read());
        assert_eq!((none.server, none.databases), (None, None));
    }
}
