//! A MySQL/MariaDB server's address: one typed value that keys pools, health and routes
//! alike, shown as `host:port` (`[v6]:port` for IPv6 literals) and never formatted to be
//! parsed back.

use std::fmt;

use crate::error::{Error, Result};

/// The MySQL/MariaDB port used when a host is given without one.
pub const DEFAULT_PORT: u16 = 3306;

/// A MySQL/MariaDB server's address: `hostname:port` (`[v6]:port` for IPv6 literals).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAddr {
    pub host: String,
    pub port: u16,
}

impl HostAddr {
    /// An address from its parts; the host is checked as [`HostAddr::parse`] checks it.
    pub fn new(host: &str, port: u16) -> Result<HostAddr> {
        check_hostname(host)?;
        if port == 0 {
            return Err(Error::invalid(format!(
                "host `{host}`: port 0 is not a port"
            )));
        }
        Ok(HostAddr {
            host: host.to_string(),
            port,
        })
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to [`DEFAULT_PORT`].
    pub fn parse(text: &str) -> Result<HostAddr> {
        let text = text.trim();
        let bad = |why: &str| Error::invalid(format!("host `{}`: {why}", text.escape_debug()));
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing `]`"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("expected `:port` after `]`")),
                },
            }
        } else {
            match text.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host, Some(port)),
                Some(_) => return Err(bad("write IPv6 addresses as [address]:port")),
                None => (text, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        HostAddr::new(host, port)
    }

    /// A comma-separated list of [`HostAddr::parse`] addresses; empty entries and duplicates
    /// are refused.
    pub fn parse_list(text: &str) -> Result<Vec<HostAddr>> {
        let mut hosts: Vec<HostAddr> = Vec::new();
        for item in text.split(',') {
            if item.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "--hosts `{}` has an empty entry",
                    text.escape_debug()
                )));
            }
            let host = HostAddr::parse(item)?;
            if hosts.contains(&host) {
                return Err(Error::invalid(format!("--hosts names {host} twice")));
            }
            hosts.push(host);
        }
        Ok(hosts)
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Host names end up in the directory and in replication settings: letters, digits, `.`, `-`
/// and `_`, or an IPv6 literal; at most 255 bytes (the `host.hostname` column).
fn check_hostname(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "host name `{}` must be 1 to 255 letters, digits, `.`, `-`, `_` (or an IPv6 address)",
            host.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn host_addresses_parse_with_default_port() {
        assert_eq!(
            HostAddr::parse("db1").unwrap(),
            HostAddr {
                host: "db1".into(),
                port: 3306
            }
        );
        assert_eq!(HostAddr::parse("127.0.0.1:33061").unwrap().port, 33061);
        let v6 = HostAddr::parse("[::1]:3307").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 3307));
        assert_eq!(v6.to_string(), "[::1]:3307");
        assert_eq!(HostAddr::parse("[::1]").unwrap().port, 3306);
        for bad in [
            "", ":3306", "h:0", "h:99999", "h:x", "::1", "[::1", "h;drop:1", "a b",
        ] {
            assert_eq!(
                HostAddr::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn host_lists_refuse_duplicates_and_empty_entries() {
        let hosts = HostAddr::parse_list("a:1,b,c:3").unwrap();
        assert_eq!(
            hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["a:1", "b:3306", "c:3"]
        );
        assert!(HostAddr::parse_list("a:1,a:1")
            .unwrap_err()
            .message()
            .contains("twice"));
        assert!(HostAddr::parse_list("a,b:3306,b").is_err());
        assert!(HostAddr::parse_list("a,,b").is_err());
        assert!(HostAddr::parse_list("").is_err());
    }
}
