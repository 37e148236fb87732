//! The status page: the cluster as this server sees it, drawn in plain HTML and inline SVG,
//! reloading itself every few seconds (a `refresh` meta tag: no script, no build step).
//!
//! - Each master-master pair as two boxes, coloured by state (UP green, RETURNING amber,
//!   DOWN red), with the partitions each is master of and the lag of each copy.
//! - Each bucket as a bar of its hash range, one segment per partition, coloured by its master.
//! - A table of hosts (state, for how long and why, transitions, lag, pool, counters) and the
//!   last state changes, newest first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::view::{ClusterView, HostView};

/// Seconds between reloads.
const REFRESH_SECS: u32 = 2;

/// Colours given to hosts in the bucket bars, in host order.
const HOST_COLOURS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
    "#bab0ac", "#e15759",
];

/// Text made safe for HTML and SVG.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "UP" => "#2e7d32",
        "RETURNING" => "#ef8f00",
        _ => "#c62828",
    }
}

fn lag_text(lag: Option<f64>) -> String {
    lag.map_or("lag unknown".to_string(), |l| format!("lag {l:.1} s"))
}

/// UTC `HH:MM:SS` of `at`.
fn clock(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The whole page. `cluster` is `None` for the embedded store.
pub fn render(cluster: Option<&ClusterView>, uptime: Duration) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <title>Thrudoc status</title><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;margin:0.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left;font-size:0.9em}}\
         th{{background:#f3f3f3}} .state{{color:#fff;font-weight:bold;padding:0.1em 0.4em}}\
         h2{{margin-top:1.2em}}</style></head><body>\n\
         <h1>Thrudoc status</h1>\n<p>Server up {:.0} s. This page reloads every {REFRESH_SECS} s.</p>\n",
        uptime.as_secs_f64()
    );
    let Some(view) = cluster else {
        out.push_str(
            "<p>Embedded store (<code>BACKEND = disk</code>): no MySQL hosts to show. \
             Request counts are at <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n",
        );
        return out;
    };
    let _ = writeln!(
        out,
        "<p id=\"directory\">Directory version {} (confirmed {:.1} s ago){}.</p>",
        view.directory_version,
        view.directory_age_secs,
        if view.lease_lost {
            " &mdash; <b>lease lost: writes refused until the directory answers</b>"
        } else {
            ""
        }
    );
    out.push_str("<h2>Pairs</h2>\n");
    out.push_str(&pairs_svg(&view.hosts));
    out.push_str("<h2>Buckets</h2>\n");
    out.push_str(&buckets_svg(view));
    out.push_str("<h2>Hosts</h2>\n");
    out.push_str(&hosts_table(&view.hosts));
    out.push_str("<h2>Last state changes</h2>\n");
    if view.changes.is_empty() {
        out.push_str("<p id=\"changes\">None since this server started.</p>\n");
    } else {
        out.push_str(
            "<table id=\"changes\"><tr><th>time (UTC)</th><th>host</th><th>to</th><th>why</th></tr>\n",
        );
        for c in view.changes.iter().rev() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><span class=\"state\" style=\"background:{}\">{}</span></td><td>{}</td></tr>",
                clock(c.at),
                esc(&c.host),
                state_colour(c.to),
                c.to,
                esc(&c.reason)
            );
        }
        out.push_str("</table>\n");
    }
    let _ = writeln!(
        out,
        "<p>Reads during outages: {} served by a sibling, {} waited, {} refused BEHIND, {} stale. \
         Figures for graphs: <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>",
        view.sibling_reads, view.failover_waits, view.failover_refused, view.stale_reads
    );
    out
}

/// The hosts grouped in pairs (a host and its sibling), each pair once, in host order.
fn pairs(hosts: &[HostView]) -> Vec<(&HostView, Option<&HostView>)> {
    let by_addr: BTreeMap<&str, &HostView> =
        hosts.iter().map(|h| (h.address.as_str(), h)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for h in hosts {
        if !seen.insert(h.address.as_str()) {
            continue;
        }
        let sibling = h.sibling.as_deref().and_then(|s| by_addr.get(s).copied());
        if let Some(s) = sibling {
            seen.insert(s.address.as_str());
        }
        out.push((h, sibling));
    }
    out
}

fn host_box(out: &mut String, h: &HostView, x: u32, y: u32) {
    let colour = state_colour(h.state);
    let _ = write!(
        out,
        "<g class=\"host\" data-host=\"{a}\" data-state=\"{s}\">\
         <rect x=\"{x}\" y=\"{y}\" width=\"230\" height=\"70\" rx=\"8\" fill=\"{colour}\"/>\
         <text x=\"{tx}\" y=\"{t1}\" fill=\"#fff\" font-size=\"14\" font-weight=\"bold\">{a}</text>\
         <text x=\"{tx}\" y=\"{t2}\" fill=\"#fff\" font-size=\"13\">{s} for {secs:.0} s</text>\
         <text x=\"{tx}\" y=\"{t3}\" fill=\"#fff\" font-size=\"12\">master of {p} partitions</text></g>",
        a = esc(&h.address),
        s = h.state,
        secs = h.state_secs,
        p = h.partitions,
        tx = x + 10,
        t1 = y + 20,
        t2 = y + 40,
        t3 = y + 60,
    );
}

fn pairs_svg(hosts: &[HostView]) -> String {
    let pairs = pairs(hosts);
    let height = 10 + 85 * pairs.len() as u32;
    let mut out = format!(
        "<svg id=\"pairs\" xmlns=\"http://www.w3.org/2000/svg\" width=\"780\" height=\"{height}\" role=\"img\" aria-label=\"master-master pairs\">"
    );
    for (i, (a, b)) in pairs.iter().enumerate() {
        let y = 5 + 85 * i as u32;
        host_box(&mut out, a, 10, y);
        if let Some(b) = b {
            host_box(&mut out, b, 540, y);
            let mid = y + 35;
            let _ = write!(
                out,
                "<line x1=\"240\" y1=\"{mid}\" x2=\"540\" y2=\"{mid}\" stroke=\"#555\" stroke-width=\"2\"/>\
                 <text x=\"252\" y=\"{t1}\" font-size=\"11\">&#8594; copy of {ba}: {lb}</text>\
                 <text x=\"252\" y=\"{t2}\" font-size=\"11\">&#8592; copy of {aa}: {la}</text>",
                t1 = mid - 6,
                t2 = mid + 16,
                aa = esc(&a.address),
                ba = esc(&b.address),
                // `a`'s lag is how far its sibling `b` is behind it.
                la = lag_text(a.sibling_lag_secs),
                lb = lag_text(b.sibling_lag_secs),
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn buckets_svg(view: &ClusterView) -> String {
    let colours: BTreeMap<&str, &str> = view
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.address.as_str(), HOST_COLOURS[i % HOST_COLOURS.len()]))
        .collect();
    let (width, left) = (600.0, 120.0);
    let height = 30 + 40 * view.buckets.len() as u32;
    let mut out = format!(
        "<svg id=\"buckets\" xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"{height}\" role=\"img\" aria-label=\"hash ranges\">"
    );
    for (i, b) in view.buckets.iter().enumerate() {
        let y = 10 + 40 * i as u32;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{} ({})</text>",
            y + 18,
            esc(&b.name),
            esc(&b.hash)
        );
        for p in &b.partitions {
            let x = left + p.start * width;
            let w = ((p.end - p.start) * width).max(1.0);
            let colour = colours.get(p.host.as_str()).copied().unwrap_or("#999");
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"26\" fill=\"{colour}\" stroke=\"#fff\">\
                 <title>partition {} ({}): ({:.4}, {:.4}] on {}</title></rect>",
                p.id,
                esc(&p.table),
                p.start,
                p.end,
                esc(&p.host)
            );
        }
    }
    // The legend: one swatch per host.
    let y = 10 + 40 * view.buckets.len() as u32;
    for (i, (host, colour)) in colours.iter().enumerate() {
        let x = left + 150.0 * i as f64;
        let _ = write!(
            out,
            "<rect x=\"{x:.0}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{:.0}\" y=\"{}\" font-size=\"11\">{}</text>",
            x + 16.0,
            y + 11,
            esc(host)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn hosts_table(hosts: &[HostView]) -> String {
    let mut out = String::from(
        "<table id=\"hosts\"><tr><th>host</th><th>sibling</th><th>state</th><th>for</th>\
         <th>why</th><th>transitions</th><th>sibling lag</th><th>partitions</th>\
         <th>pool in use</th><th>reads by sibling</th><th>writes refused</th></tr>\n",
    );
    for h in hosts {
        let _ = writeln!(
            out,
            "<tr data-host=\"{a}\"><td>{a}</td><td>{sib}</td><td><span class=\"state\" style=\"background:{c}\">{s}</span></td>\
             <td>{f:.1} s</td><td>{why}</td><td>{t}</td><td>{lag}</td><td>{p}</td><td>{pool}</td><td>{r}</td><td>{w}</td></tr>",
            a = esc(&h.address),
            sib = esc(h.sibling.as_deref().unwrap_or("-")),
            c = state_colour(h.state),
            s = h.state,
            f = h.state_secs,
            why = esc(&h.reason),
            t = h.transitions,
            lag = h
                .sibling_lag_secs
                .map_or("-".to_string(), |l| format!("{l:.1} s")),
            p = h.partitions,
            pool = h.pool_in_use,
            r = h.sibling_reads,
            w = h.writes_refused,
        );
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::view::{BucketView, PartitionView, StateChange};

    fn host(addr: &str, sibling: &str, state: &'static str) -> HostView {
        HostView {
            id: 1,
            address: addr.into(),
            sibling: Some(sibling.into()),
            state,
            state_secs: 3.0,
            reason: "probes <answer>".into(),
            transitions: 2,
            detection: Default::default(),
            sibling_reads: 0,
            writes_refused: 0,
            sibling_lag_secs: Some(0.5),
            pool_in_use: 1,
            partitions: 2,
        }
    }

    #[test]
    fn the_page_shows_each_pair_once_each_bucket_and_escapes_text() {
        let view = ClusterView {
            directory_version: 7,
            hosts: vec![
                host("a:1", "b:2", "UP"),
                host("b:2", "a:1", "DOWN"),
                host("c:3", "d:4", "RETURNING"),
                host("d:4", "c:3", "UP"),
            ],
            buckets: vec![BucketView {
                name: "docs".into(),
                hash: "xxhash64".into(),
                partitions: vec![
                    PartitionView {
                        id: 1,
                        start: 0.0,
                        end: 0.5,
                        host: "a:1".into(),
                        table: "d_1".into(),
                    },
                    PartitionView {
                        id: 2,
                        start: 0.5,
                        end: 1.0,
                        host: "c:3".into(),
                        table: "d_2".into(),
                    },
                ],
            }],
            changes: vec![StateChange {
                at: UNIX_EPOCH + Duration::from_secs(3600 + 120 + 5),
                host: "b:2".into(),
                to: "DOWN",
                reason: "2 probes failed".into(),
            }],
            ..Default::default()
        };
        let page = render(Some(&view), Duration::from_secs(9));
        assert_eq!(pairs(&view.hosts).len(), 2);
        assert_eq!(page.matches("class=\"host\"").count(), 4);
        assert!(page.contains("data-host=\"b:2\" data-state=\"DOWN\""));
        assert!(page.contains("Directory version 7"));
        assert!(page.contains("partition 2 (d_2): (0.5000, 1.0000] on c:3"));
        assert!(page.contains("01:02:05"));
        assert!(page.contains("probes &lt;answer&gt;"));
        assert!(!page.contains("<answer>"));
        assert!(render(None, Duration::ZERO).contains("Embedded store"));
    }
}
