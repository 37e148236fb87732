//! The chaos run's network: every MariaDB server and every Thrudoc server in a network
//! namespace of its own, with its own address on one bridge, so that a fault can cut one path
//! and leave the others: Thrudoc server A from host H while B still reaches H, a master from
//! its sibling, everything to one host (a black hole: packets dropped, no reset), or a share of
//! the packets lost.
//!
//! Faults are nftables rules in the namespaces (`nft`): each node's rules are rebuilt from its
//! state on every change, so healing is removing an entry and rebuilding. The kernel of the
//! project's machines has no `sch_netem`, so a delay is an NFQUEUE rule and a thread of this
//! process that holds the queued packets ([`super::delay`]). The rule is an `iptables` one: this
//! kernel has the NFQUEUE target but not the nftables `queue` expression.
//!
//! Everything is made and removed by this module, as root. Names carry this process's id, and
//! leftovers of a run whose process is gone are removed at the start of the next.

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::nft;
use super::delay::{Delayer, QUEUE};

/// One namespace with its address.
#[derive(Debug, Clone)]
pub struct Node {
    pub ns: String,
    pub ip: String,
    /// The host end of its veth pair, on the bridge.
    veth: String,
}

/// What is done to one node's traffic.
#[derive(Debug, Clone, Default)]
struct Rules {
    /// Addresses it can neither send to nor receive from.
    cut: BTreeSet<String>,
    blackhole: bool,
    /// Per cent of packets dropped, each way.
    loss: u8,
}

/// The bridge and the namespaces of one run.
pub struct Net {
    bridge: String,
    nodes: Vec<(Node, Rules)>,
    /// The delaying threads, by node.
    delayers: HashMap<usize, Delayer>,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Adds (`-A`) or deletes (`-D`) the rules that send every packet of namespace `ns` but its
/// loopback's to the delaying queue (accepted undelayed while no thread holds the queue).
fn queue_rules(ns: &str, action: &str) -> Result<(), String> {
    let queue = QUEUE.to_string();
    for (chain, dev) in [("OUTPUT", "-o"), ("INPUT", "-i")] {
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "iptables",
            "-w",
            action,
            chain,
            "!",
            dev,
            "lo",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &queue,
            "--queue-bypass",
        ])?;
    }
    Ok(())
}

/// Removes namespaces and bridges of earlier runs whose process is gone.
fn remove_leftovers() {
    let list = Command::new("ip").args(["netns", "list"]).output();
    let Ok(list) = list else { return };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = name
            .strip_prefix("tdc")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        {
            if !alive(pid) {
                let _ = run(&["ip", "netns", "del", name]);
                let _ = run(&["ip", "link", "del", &format!("tdc{pid}")]);
            }
        }
    }
}

impl Net {
    /// A bridge and one namespace per name in `names`, addresses 10.88.N.10, .11, ... in
    /// order. `Err` says why namespaces cannot be made here (not root, no `ip`, no `nft`).
    pub fn create(names: &[String]) -> Result<Net, String> {
        for probe in [
            ["ip", "-V"],
            ["nft", "--version"],
            ["iptables", "--version"],
        ] {
            run(&probe).map_err(|e| {
                format!("{e} (install it with `apt-get install -y iproute2 nftables iptables`)")
            })?;
        }
        remove_leftovers();
        let pid = std::process::id();
        let prefix = format!("tdc{pid}");
        let subnet = format!("10.88.{}", pid % 200 + 20);
        let bridge = prefix.clone();
        let mut net = Net {
            bridge: bridge.clone(),
            nodes: Vec::new(),
            delayers: HashMap::new(),
        };
        run(&["ip", "link", "add", &bridge, "type", "bridge"])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{subnet}.1/24"),
            "dev",
            &bridge,
        ])?;
        run(&["ip", "link", "set", &bridge, "up"])?;
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{prefix}-{name}");
            let ip = format!("{subnet}.{}", 10 + i);
            let veth = format!("tdc{pid}v{i}");
            run(&["ip", "netns", "add", &ns])?;
            net.nodes.push((
                Node {
                    ns: ns.clone(),
                    ip: ip.clone(),
                    veth: veth.clone(),
                },
                Rules::default(),
            ));
            run(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "link", "set", &veth, "master", &bridge])?;
            run(&["ip", "link", "set", &veth, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", ns.as_str()];
                all.extend_from_slice(args);
                run(&all)
            };
            inside(&["ip", "link", "set", "lo", "up"])?;
            inside(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            inside(&["ip", "link", "set", "eth0", "up"])?;
        }
        for i in 0..net.nodes.len() {
            net.apply(i)?;
        }
        Ok(net)
    }

    /// The node made for `names[i]`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i].0
    }

    /// Cuts (or, with `on` false, heals) every packet between nodes `a` and `b`, both ways.
    pub fn cut(&mut self, a: usize, b: usize, on: bool) -> Result<(), String> {
        let (ip_a, ip_b) = (self.nodes[a].0.ip.clone(), self.nodes[b].0.ip.clone());
        for (me, other) in [(a, ip_b), (b, ip_a)] {
            let cut = &mut self.nodes[me].1.cut;
            if on {
                cut.insert(other);
            } else {
                cut.remove(&other);
            }
            self.apply(me)?;
        }
        Ok(())
    }

    /// Drops (or stops dropping) every packet to and from node `i`, loopback aside.
    pub fn blackhole(&mut self, i: usize, on: bool) -> Result<(), String> {
        self.nodes[i].1.blackhole = on;
        self.apply(i)
    }

    /// Drops `percent` of node `i`'s packets each way (0 heals).
    pub fn loss(&mut self, i: usize, percent: u8) -> Result<(), String> {
        self.nodes[i].1.loss = percent.min(100);
        self.apply(i)
    }

    /// Holds every packet to and from node `i` for `delay`, each way (zero heals).
    pub fn delay(&mut self, i: usize, delay: Duration) -> Result<(), String> {
        // The queue is bound before the rules send packets to it, and unbound after they stop.
        let ns = self.nodes[i].0.ns.clone();
        if self.delayers.contains_key(&i) {
            queue_rules(&ns, "-D")?;
            self.delayers.remove(&i);
        }
        if !delay.is_zero() {
            self.delayers.insert(i, Delayer::start(&ns, delay)?);
            queue_rules(&ns, "-A")?;
        }
        Ok(())
    }

    /// Rebuilds node `i`'s rules from its state.
    fn apply(&self, i: usize) -> Result<(), String> {
        let (node, rules) = &self.nodes[i];
        let mut out = String::from("table inet chaos {\n");
        for (chain, hook, dir, lo) in [
            ("out", "output", "daddr", "oifname"),
            ("in", "input", "saddr", "iifname"),
        ] {
            out.push_str(&format!(
                "  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n    {lo} \"lo\" accept\n"
            ));
            if rules.blackhole {
                out.push_str("    drop\n");
            }
            for ip in &rules.cut {
                out.push_str(&format!("    ip {dir} {ip} drop\n"));
            }
            if rules.loss > 0 {
                out.push_str(&format!(
                    "    numgen random mod 100 < {} drop\n",
                    rules.loss
                ));
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
        let script = format!("table inet chaos\ndelete table inet chaos\n{out}");
        nft::run(Some(&node.ns), &script)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.delayers.clear();
        for (node, _) in &self.nodes {
            let _ = run(&["ip", "netns", "del", &node.ns]);
            let _ = run(&["ip", "link", "del", &node.veth]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
    }
}
