//! The client's address behind reverse proxies (`PALREG_TRUSTED_PROXIES`).
//!
//! Behind a load balancer every request comes from the balancer's address, so the audit log
//! would name the balancer for every sign-in and every read, and the per-address sign-in limit
//! would throttle all clients together. A proxy the operator lists here is believed about who
//! sent it the request (`X-Forwarded-For`); nobody else is. The header is read from the right:
//! each hop a trusted proxy appended is followed leftwards while the hop that wrote it is
//! trusted, and the first address not listed is the client. What a client writes into the
//! header itself stays on the left and is never reached past an untrusted hop.

use std::net::{IpAddr, SocketAddr};

/// Addresses and CIDR ranges of the reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, ::1`); an
    /// empty list trusts no proxy.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((addr, bits)) => (addr, Some(bits)),
                None => (item, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("`{item}` is not an IP address or CIDR range"))?;
            let ip = ip.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("`{item}`: the prefix length is 0 to {max}"))?,
                None => max,
            };
            out.push((ip, bits));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                bits,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(net.to_bits(), ip.to_bits(), 128, bits),
            _ => false,
        })
    }

    /// The client of a request that came from `peer` with the `X-Forwarded-For` header values
    /// `forwarded` (in the order received). A hop that is not an address stops the walk: the
    /// trusted proxy that passed it on is then the client as far as anyone can tell.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let mut current = peer.to_canonical();
        if self.is_empty() {
            return current;
        }
        let hops: Vec<&str> = forwarded.into_iter().flat_map(|v| v.split(',')).collect();
        for hop in hops.iter().rev() {
            if !self.contains(current) {
                break;
            }
            match parse_hop(hop.trim()) {
                Some(ip) => current = ip,
                None => break,
            }
        }
        current
    }
}

fn prefix_eq(a: u128, b: u128, width: u32, bits: u8) -> bool {
    let bits = u32::from(bits);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5678`, `[::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_parse_and_match() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.5 ,fd00::/8").unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("::ffff:10.1.1.1")), "an IPv4-mapped peer");
        assert!(t.contains(ip("192.168.1.5")));
        assert!(!t.contains(ip("192.168.1.6")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0.1/x", "::1/129"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        // One balancer.
        assert_eq!(t.client(peer, ["203.0.113.7"]), ip("203.0.113.7"));
        // Two proxies; what the client wrote itself (on the left) is not believed.
        assert_eq!(
            t.client(peer, ["198.51.100.1, 203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            t.client(peer, ["198.51.100.1", "203.0.113.7:5501"]),
            ip("203.0.113.7")
        );
        // Only proxies: the farthest one.
        assert_eq!(t.client(peer, ["10.0.0.9"]), ip("10.0.0.9"));
        // No header, or garbage: the proxy that sent it.
        assert_eq!(t.client(peer, []), peer);
        assert_eq!(t.client(peer, ["<script>"]), peer);
        // An untrusted peer's header is ignored.
        assert_eq!(t.client(ip("203.0.113.9"), ["10.0.0.5"]), ip("203.0.113.9"));
        // Nothing trusted: the peer, whatever the header says.
        assert_eq!(
            TrustedProxies::default().client(peer, ["203.0.113.7"]),
            peer
        );
    }
}
