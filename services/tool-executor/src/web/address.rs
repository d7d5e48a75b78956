//! Which IP addresses `web_fetch` may connect to: public unicast addresses
//! only, unless private ones are explicitly allowed — and cloud metadata
//! endpoints never. Addresses that embed an IPv4 address (IPv4-mapped,
//! NAT64, 6to4) are judged by the address they embed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What `web_fetch` may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Public unicast addresses only.
    PublicOnly,
    /// Also loopback, private, link-local and other non-public ranges
    /// (`tools.web_fetch_allow_private`), but still no metadata endpoint.
    AllowPrivate,
}

impl AddressPolicy {
    /// Why `ip` is refused, or `None` when it may be reached.
    pub fn refusal(self, ip: IpAddr) -> Option<&'static str> {
        match (classify(ip), self) {
            (Class::Public, _) | (Class::NonPublic(_), Self::AllowPrivate) => None,
            (Class::NonPublic(what), Self::PublicOnly) => Some(what),
            (Class::Metadata, _) => Some("cloud metadata"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    /// A cloud instance metadata endpoint: credentials live there.
    Metadata,
    /// Not publicly routable; the text says which kind.
    NonPublic(&'static str),
}

/// Instance metadata services (AWS/GCP/Azure/OpenStack, AWS ECS, Alibaba,
/// Azure's wire server).
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];
/// AWS's IPv6 metadata endpoint, `fd00:ec2::254`.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Non-public IPv4 ranges: network, prefix length, kind.
const RANGES_V4: [(u32, u32, &str); 15] = [
    (0x0000_0000, 8, "unspecified"),
    (0x0a00_0000, 8, "private"),
    (0x6440_0000, 10, "shared (CGNAT)"),
    (0x7f00_0000, 8, "loopback"),
    (0xa9fe_0000, 16, "link-local"),
    (0xac10_0000, 12, "private"),
    (0xc000_0000, 24, "IETF protocol"),
    (0xc000_0200, 24, "documentation"),
    (0xc058_6300, 24, "6to4 relay"),
    (0xc0a8_0000, 16, "private"),
    (0xc612_0000, 15, "benchmarking"),
    (0xc633_6400, 24, "documentation"),
    (0xcb00_7100, 24, "documentation"),
    (0xe000_0000, 4, "multicast"),
    (0xf000_0000, 4, "reserved or broadcast"),
];

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    if METADATA_V4.contains(&ip) {
        return Class::Metadata;
    }
    let bits = u32::from(ip);
    RANGES_V4
        .iter()
        .find(|(net, len, _)| bits >> (32 - len) == net >> (32 - len))
        .map_or(Class::Public, |(_, _, what)| Class::NonPublic(what))
}

fn in_v6(bits: u128, net: u128, len: u32) -> bool {
    bits >> (128 - len) == net >> (128 - len)
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip == METADATA_V6 {
        return Class::Metadata;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let bits = u128::from(ip);
    // The low 32 bits carry the IPv4 address (NAT64 well-known prefix).
    if in_v6(bits, 0x0064_ff9b << 96, 96) {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if in_v6(bits, 0x2002 << 112, 16) {
        return classify_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    let what = if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if in_v6(bits, 0xfc00 << 112, 7) {
        "unique local"
    } else if in_v6(bits, 0xfe80 << 112, 10) {
        "link-local"
    } else if in_v6(bits, 0xff00 << 112, 8) {
        "multicast"
    } else if in_v6(bits, 0x2001_0db8 << 96, 32) || in_v6(bits, 0x3fff << 112, 20) {
        "documentation"
    } else if in_v6(bits, 0x2001 << 112, 23) {
        "IETF protocol"
    } else if !in_v6(bits, 0x2000 << 112, 3) {
        "non-global"
    } else {
        return Class::Public;
    };
    Class::NonPublic(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> Option<&'static str> {
        AddressPolicy::PublicOnly.refusal(ip.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }

    #[test]
    fn non_public_addresses_are_refused_with_their_kind() {
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved or broadcast"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "IETF protocol"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"),
            ("::127.0.0.1", "non-global"),
            ("fec0::1", "non-global"),
        ];
        for (ip, what) in cases {
            assert_eq!(refused(ip), Some(what), "{ip}");
        }
    }

    #[test]
    fn metadata_endpoints_are_refused_even_when_private_is_allowed() {
        let allow = AddressPolicy::AllowPrivate;
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert_eq!(
                allow.refusal(ip.parse().unwrap()),
                Some("cloud metadata"),
                "{ip}"
            );
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "169.254.1.1"] {
            assert_eq!(allow.refusal(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
