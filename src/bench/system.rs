//! What the bench reads from and asks of the operating system (Linux): the open-file limit it
//! needs for many connections, and a server's resident memory.
//!
//! The limit is raised with the `prlimit` command (util-linux) on the bench's own process
//! rather than with `setrlimit` through the `libc` crate: no `unsafe`, no dependency, and the
//! script that runs the bench raises `ulimit -n` anyway (the server needs it too).

use std::process::Command;

/// The soft and hard `RLIMIT_NOFILE` of process `pid` ("self" for this one), from
/// `/proc/<pid>/limits`.
pub fn open_files_limit(pid: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |f: Option<&str>| match f? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(fields.next())?, parse(fields.next())?))
}

/// Makes sure this process may open `needed` files, raising its soft limit up to the hard
/// limit if it must. Returns the soft limit in force, or why it is too low.
pub fn ensure_open_files(needed: u64) -> Result<u64, String> {
    let Some((soft, hard)) = open_files_limit("self") else {
        // Not Linux, or no /proc: try and see.
        return Ok(needed);
    };
    if soft >= needed {
        return Ok(soft);
    }
    if hard < needed {
        return Err(format!(
            "{needed} open files needed but the hard limit is {hard}: raise it (`ulimit -Hn` as root, or limits.conf)"
        ));
    }
    let pid = std::process::id().to_string();
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:")])
        .status();
    match (status, open_files_limit("self")) {
        (Ok(s), Some((now, _))) if s.success() && now >= needed => Ok(now),
        (status, _) => Err(format!(
            "{needed} open files needed but the soft limit is {soft} and `prlimit` could not raise it ({}): run `ulimit -n {hard}` first",
            match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            }
        )),
    }
}

/// The resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_limits_and_memory() {
        let (soft, hard) = open_files_limit("self").expect("/proc/self/limits");
        assert!(soft > 0 && soft <= hard);
        assert_eq!(ensure_open_files(10), Ok(soft));
        let rss = rss_kib(std::process::id()).expect("VmRSS");
        assert!(rss > 0);
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
