//! Runs an nftables script (`nft -f -`), in the root network namespace or in a named one
//! (`ip netns exec`). Needs root and `nft` (`scripts/setup --test` installs nftables).

use std::io::Write;
use std::process::{Command, Stdio};

/// Feeds `script` to `nft -f -`, inside namespace `ns` when given; `Err` says what failed,
/// with nft's own words and the script.
pub fn run(ns: Option<&str>, script: &str) -> Result<(), String> {
    let mut command = match ns {
        None => Command::new("nft"),
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
    };
    let mut child = command
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
            "nft{} failed (root is needed): {}\n{script}",
            ns.map_or(String::new(), |ns| format!(" in {ns}")),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
