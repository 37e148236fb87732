//! The faults of a chaos run: what each does, to which pair, and how it heals.

use super::workload::Rng;

/// One fault, with its targets. Hosts are indexes into the cluster (pair `p` is hosts `2p`
/// and `2p + 1`, the first its master); servers are Thrudoc servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// kill -9, then a restart.
    Kill9 { host: usize },
    /// SIGSTOP, then SIGCONT.
    Stop { host: usize },
    /// Both hosts of a pair killed, then restarted.
    BothDown { pair: usize },
    /// Every packet to and from a host dropped, no reset.
    Blackhole { host: usize },
    /// One Thrudoc server cut from one host; the others still reach it.
    CutServerHost { server: usize, host: usize },
    /// A master cut from its sibling: replication stops, both stay up.
    CutPair { pair: usize },
    /// A share of a host's packets dropped.
    Loss { host: usize, percent: u8 },
    /// Every packet to and from a host held for a while, each way.
    Delay { host: usize, ms: u32 },
    /// A Thrudoc server killed, then started again.
    ServerKill { server: usize },
    /// `thrudoc-admin failover` of a pair's master, then `switchover` back.
    FailoverCycle { pair: usize },
}

/// Every kind's name, as [`Kind::name`] gives it.
pub const KINDS: [&str; 10] = [
    "kill9",
    "sigstop",
    "both_down",
    "blackhole",
    "cut_server_host",
    "cut_pair",
    "loss",
    "delay",
    "server_kill",
    "failover_cycle",
];

/// The kinds that only network namespaces can make (a loopback run makes black holes with its
/// proxies, and none of these).
pub const NEEDS_NAMESPACES: [&str; 4] = ["cut_server_host", "cut_pair", "loss", "delay"];

impl Kind {
    /// The name in the history and the report.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Kill9 { .. } => "kill9",
            Kind::Stop { .. } => "sigstop",
            Kind::BothDown { .. } => "both_down",
            Kind::Blackhole { .. } => "blackhole",
            Kind::CutServerHost { .. } => "cut_server_host",
            Kind::CutPair { .. } => "cut_pair",
            Kind::Loss { .. } => "loss",
            Kind::Delay { .. } => "delay",
            Kind::ServerKill { .. } => "server_kill",
            Kind::FailoverCycle { .. } => "failover_cycle",
        }
    }

    /// The pairs whose partitions it touches (a killed Thrudoc server touches none: its clients
    /// fail, the data is untouched).
    pub fn pairs(&self) -> Vec<usize> {
        match *self {
            Kind::Kill9 { host }
            | Kind::Stop { host }
            | Kind::Blackhole { host }
            | Kind::CutServerHost { host, .. }
            | Kind::Loss { host, .. }
            | Kind::Delay { host, .. } => vec![host / 2],
            Kind::BothDown { pair } | Kind::CutPair { pair } | Kind::FailoverCycle { pair } => {
                vec![pair]
            }
            Kind::ServerKill { .. } => Vec::new(),
        }
    }

    /// Hosts 0 and 1 hold the directory: with both down, no server can confirm it, and every
    /// partition is touched.
    pub fn touches_all(&self) -> bool {
        matches!(self, Kind::BothDown { pair: 0 })
    }

    /// It changes each server's view differently: a cut of one server from a host, packet
    /// loss, which may drop one server's probes and let another's through, or a delay, which
    /// may make one server's probes time out and not another's.
    pub fn view_only(&self) -> bool {
        matches!(
            self,
            Kind::CutServerHost { .. } | Kind::Loss { .. } | Kind::Delay { .. }
        )
    }

    /// The hosts it may make unreachable (to [`Kind::server`] only, for a cut).
    pub fn hosts(&self) -> Vec<usize> {
        match *self {
            Kind::Kill9 { host }
            | Kind::Stop { host }
            | Kind::Blackhole { host }
            | Kind::CutServerHost { host, .. }
            | Kind::Loss { host, .. }
            | Kind::Delay { host, .. } => vec![host],
            Kind::BothDown { pair } => vec![2 * pair, 2 * pair + 1],
            Kind::CutPair { .. } | Kind::ServerKill { .. } | Kind::FailoverCycle { .. } => {
                Vec::new()
            }
        }
    }

    /// It changes the directory, which servers read only every poll.
    pub fn changes_directory(&self) -> bool {
        matches!(self, Kind::FailoverCycle { .. })
    }

    /// The server it takes away, if any.
    pub fn server(&self) -> Option<usize> {
        match *self {
            Kind::CutServerHost { server, .. } | Kind::ServerKill { server } => Some(server),
            _ => None,
        }
    }

    /// A readable description.
    pub fn detail(&self) -> String {
        match self {
            Kind::Kill9 { host } => format!("kill -9 host {host}"),
            Kind::Stop { host } => format!("SIGSTOP host {host}"),
            Kind::BothDown { pair } => format!("kill -9 hosts {} and {}", 2 * pair, 2 * pair + 1),
            Kind::Blackhole { host } => format!("black hole to host {host}"),
            Kind::CutServerHost { server, host } => {
                format!("Thrudoc server {server} cut from host {host}")
            }
            Kind::CutPair { pair } => {
                format!("host {} cut from its sibling {}", 2 * pair, 2 * pair + 1)
            }
            Kind::Loss { host, percent } => format!("{percent}% packet loss at host {host}"),
            Kind::Delay { host, ms } => format!("{ms} ms delay each way at host {host}"),
            Kind::ServerKill { server } => format!("kill -9 Thrudoc server {server}"),
            Kind::FailoverCycle { pair } => {
                format!("failover of host {}, then switchover", 2 * pair)
            }
        }
    }
}

/// The kinds a run may choose from.
#[derive(Debug, Clone)]
pub struct Menu {
    pub pairs: usize,
    pub servers: usize,
    /// Network namespaces are there: the network faults can be made.
    pub network: bool,
    /// The kinds allowed, by name; empty: every kind.
    pub only: Vec<String>,
}

impl Menu {
    /// One fault of every kind, in a random order, for the start of a run: so that even a short
    /// run makes each kind at least once, a hung and a killed directory master among them.
    pub fn every_kind(&self, rng: &mut Rng) -> Vec<Kind> {
        let pair = |rng: &mut Rng| 1 + rng.below(self.pairs - 1);
        let host = |rng: &mut Rng| rng.below(2 * self.pairs);
        let server = |rng: &mut Rng| rng.below(self.servers);
        let mut kinds = vec![
            Kind::Kill9 { host: 0 },
            Kind::Stop { host: 0 },
            Kind::Kill9 { host: host(rng) },
            Kind::Stop { host: host(rng) },
            Kind::BothDown { pair: pair(rng) },
            Kind::ServerKill {
                server: server(rng),
            },
            Kind::FailoverCycle { pair: pair(rng) },
        ];
        if self.network {
            kinds.extend([
                Kind::Blackhole { host: host(rng) },
                Kind::CutServerHost {
                    server: server(rng),
                    host: host(rng),
                },
                Kind::CutPair {
                    pair: rng.below(self.pairs),
                },
                Kind::Loss {
                    host: host(rng),
                    percent: 30,
                },
                Kind::Delay {
                    host: host(rng),
                    ms: 150,
                },
            ]);
        }
        kinds.retain(|k| self.allows(k));
        // Fisher-Yates.
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.below(i + 1));
        }
        kinds
    }

    fn allows(&self, kind: &Kind) -> bool {
        self.only.is_empty() || self.only.iter().any(|name| name == kind.name())
    }

    /// A fault chosen at random that touches none of `busy_pairs` and none of `busy_servers`,
    /// or `None` when nothing is free.
    pub fn pick(
        &self,
        rng: &mut Rng,
        busy_pairs: &[usize],
        busy_servers: &[usize],
    ) -> Option<Kind> {
        let free_pairs: Vec<usize> = (0..self.pairs)
            .filter(|p| !busy_pairs.contains(p))
            .collect();
        let free_servers: Vec<usize> = (0..self.servers)
            .filter(|s| !busy_servers.contains(s))
            .collect();
        // A run limited to a few kinds rolls more often to find one.
        let tries = if self.only.is_empty() { 20 } else { 200 };
        for _ in 0..tries {
            let kinds = if self.network { 14 } else { 6 };
            let roll = rng.below(kinds);
            if roll == 4 {
                if free_servers.is_empty() || !self.allows(&Kind::ServerKill { server: 0 }) {
                    continue;
                }
                return Some(Kind::ServerKill {
                    server: *rng.pick(&free_servers),
                });
            }
            if free_pairs.is_empty() {
                continue;
            }
            let pair = *rng.pick(&free_pairs);
            let host = 2 * pair + rng.below(2);
            let kind = match roll {
                0 | 1 => Kind::Kill9 { host },
                2 => Kind::Stop { host },
                3 => Kind::BothDown { pair },
                // A failover cycle is long (it waits out the lease twice): a rare one.
                5 if rng.below(3) == 0 => Kind::FailoverCycle { pair },
                6 | 7 => Kind::Blackhole { host },
                8 | 9 if !free_servers.is_empty() => Kind::CutServerHost {
                    server: *rng.pick(&free_servers),
                    host,
                },
                10 => Kind::CutPair { pair },
                11 => Kind::Loss {
                    host,
                    percent: 20 + (rng.below(4) * 10) as u8,
                },
                // From a slow link (50 ms each way) to one slower than the probe timeout.
                12 | 13 => Kind::Delay {
                    host,
                    ms: 50 * (1 + rng.below(6)) as u32,
                },
                _ => continue,
            };
            if !self.allows(&kind) {
                continue;
            }
            return Some(kind);
        }
        None
    }
}
