//! IP/CIDR blocks for `ipBlocks`, `remoteIpBlocks`, `source.ip`, `remote.ip` and
//! `destination.ip` (SEMANTICS AUTHZ-14, AUTHZ-19).
//!
//! A bare address is a /32 (IPv4) or /128 (IPv6) block. Host bits beyond the prefix are
//! ignored, as Envoy does. An IPv4-mapped IPv6 request address (`::ffff:10.0.0.1`) is compared
//! as IPv4.

use std::net::IpAddr;

/// One parsed CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `10.0.0.1`, `2001:db8::/32` or `::1`; `None` if invalid.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_contains() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.5")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(
            !Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
        assert!(Cidr::parse("10.0.0.1/8").unwrap().contains(ip("10.9.9.9")));
    }

    #[test]
    fn rejects_bad_blocks() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "abc",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "::/129",
            "1.2.3.4/+8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
