//! A black hole made by the kernel: every TCP packet to or from one port of this machine is
//! dropped (nftables, in the root network namespace), so a connection already open stays open,
//! nothing is refused, and the sender's TCP retransmits with backoff until the rule goes. The
//! proxy's black hole (`proxy.rs`) holds bytes in user space instead, which a closed or reset
//! connection cannot take back; where that difference matters, this is the faithful one.
//!
//! Needs root and `nft` (`scripts/setup --test` installs nftables). The table carries this
//! process's id and the port, and is removed on drop.

use std::io::Write;
use std::process::{Command, Stdio};

/// Drops every packet of one local TCP port while it lives.
pub struct PortBlackhole {
    table: String,
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run nft ({e}): install it with `apt-get install -y nftables`")
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|e| format!("writing to nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft failed (root is needed): {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl PortBlackhole {
    /// Starts dropping packets to and from `port`, both ways, on every interface.
    pub fn start(port: u16) -> PortBlackhole {
        let table = format!("tdc_bh_{}_{port}", std::process::id());
        nft(&format!(
            "table inet {table} {{\n  chain out {{\n    type filter hook output priority 0; \
             policy accept;\n    tcp dport {port} drop\n    tcp sport {port} drop\n  }}\n}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        PortBlackhole { table }
    }
}

impl Drop for PortBlackhole {
    fn drop(&mut self) {
        let _ = nft(&format!("delete table inet {}\n", self.table));
    }
}
