//! A black hole made by the kernel: every TCP packet to or from one port of this machine is
//! dropped (nftables, in the root network namespace), so a connection already open stays open,
//! nothing is refused, and the sender's TCP retransmits with backoff until the rule goes. The
//! proxy's black hole (`proxy.rs`) holds bytes in user space instead, which a closed or reset
//! connection cannot take back; where that difference matters, this is the faithful one.
//!
//! Needs root and `nft` ([`super::nft`] runs it). The table carries this process's id and the
//! port, and is removed on drop.

use super::nft;

/// Drops every packet of one local TCP port while it lives.
pub struct PortBlackhole {
    table: String,
}

impl PortBlackhole {
    /// Starts dropping packets to and from `port`, both ways, on every interface.
    pub fn start(port: u16) -> PortBlackhole {
        let table = format!("tdc_bh_{}_{port}", std::process::id());
        nft::run(
            None,
            &format!(
                "table inet {table} {{\n  chain out {{\n    type filter hook output priority 0; \
             policy accept;\n    tcp dport {port} drop\n    tcp sport {port} drop\n  }}\n}}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        PortBlackhole { table }
    }
}

impl Drop for PortBlackhole {
    fn drop(&mut self) {
        let _ = nft::run(None, &format!("delete table inet {}\n", self.table));
    }
}
