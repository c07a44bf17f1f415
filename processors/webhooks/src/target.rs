//! Which hosts a webhook may point at.
//!
//! Whoever registers a subscriber chooses its webhook URL, and the delivery worker posts from
//! inside the platform's network. Unchecked, a registration could aim the worker at what only the
//! platform reaches: the broker, a metrics port on 127.0.0.1, a cloud metadata service on
//! 169.254.169.254, a database on 10.x; and the DeliveryFailed reasons would tell it what
//! answered. So the worker resolves the host itself and refuses it if any address it resolves to
//! is not public unicast, unless the operator allows such hosts (`--webhook-allow-private`, for a
//! receiver on the same host or network). It then connects only to the addresses it checked: a
//! name that resolves to a public address when checked and to 127.0.0.1 a moment later (DNS
//! rebinding) is never resolved a second time.
//!
//! A refusal is final for that credential: the same registration would be refused again, so it
//! is not retried.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The kind of a non-public address: why a webhook pointing at it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `0.0.0.0/8` or `::`: Linux connects "this host" there.
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), unique local `fc00::/7`, site-local
    /// `fec0::/10`, and local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// Carrier-grade NAT, `100.64.0.0/10` (RFC 6598): inside a provider's network.
    Shared,
    /// `169.254.0.0/16` (where cloud metadata services answer) or `fe80::/10`.
    LinkLocal,
    /// Reserved for examples: `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, for benchmarking networks (RFC 2544).
    Benchmarking,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Anything else that is not public unicast: `240/4`, IETF protocol assignments
    /// (`192.0.0/24`, `2001::/23`), the deprecated 6to4 relay `192.88.99/24` and IPv4-compatible
    /// `::/96`, the discard prefix `100::/64`, and IPv6 outside `2000::/3`.
    Reserved,
}

impl fmt::Display for Special {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Special::Unspecified => "an unspecified address",
            Special::Loopback => "a loopback address",
            Special::Private => "a private address",
            Special::Shared => "a shared (carrier-grade NAT) address",
            Special::LinkLocal => "a link-local address",
            Special::Documentation => "a documentation address",
            Special::Benchmarking => "a benchmarking address",
            Special::Multicast => "a multicast address",
            Special::Broadcast => "the broadcast address",
            Special::Reserved => "a reserved address",
        })
    }
}

/// IPv4 ranges that are not public unicast, most specific first.
const V4: &[([u8; 4], u32, Special)] = &[
    ([255, 255, 255, 255], 32, Special::Broadcast),
    ([0, 0, 0, 0], 8, Special::Unspecified),
    ([10, 0, 0, 0], 8, Special::Private),
    ([100, 64, 0, 0], 10, Special::Shared),
    ([127, 0, 0, 0], 8, Special::Loopback),
    ([169, 254, 0, 0], 16, Special::LinkLocal),
    ([172, 16, 0, 0], 12, Special::Private),
    ([192, 0, 0, 0], 24, Special::Reserved),
    ([192, 0, 2, 0], 24, Special::Documentation),
    ([192, 88, 99, 0], 24, Special::Reserved),
    ([192, 168, 0, 0], 16, Special::Private),
    ([198, 18, 0, 0], 15, Special::Benchmarking),
    ([198, 51, 100, 0], 24, Special::Documentation),
    ([203, 0, 113, 0], 24, Special::Documentation),
    ([224, 0, 0, 0], 4, Special::Multicast),
    ([240, 0, 0, 0], 4, Special::Reserved),
];

/// IPv6 ranges that are not public unicast and embed no IPv4 address, most specific first.
const V6: &[(u128, u32, Special)] = &[
    (0, 128, Special::Unspecified),
    (1, 128, Special::Loopback),
    (0x0064_ff9b_0001 << 80, 48, Special::Private),
    (0x0100 << 112, 64, Special::Reserved),
    (0x2001_0db8 << 96, 32, Special::Documentation),
    (0x2001 << 112, 23, Special::Reserved),
    (0x3fff << 112, 20, Special::Documentation),
    (0xfc00 << 112, 7, Special::Private),
    (0xfe80 << 112, 10, Special::LinkLocal),
    (0xfec0 << 112, 10, Special::Private),
    (0xff00 << 112, 8, Special::Multicast),
];

fn within(bits: u128, network: u128, prefix: u32, width: u32) -> bool {
    let host_bits = width - prefix;
    let mask = if host_bits >= 128 {
        0
    } else {
        (u128::MAX << host_bits) & (u128::MAX >> (128 - width))
    };
    bits & mask == network & mask
}

fn special_v4(ip: Ipv4Addr) -> Option<Special> {
    let bits = u128::from(u32::from(ip));
    V4.iter()
        .find(|(network, prefix, _)| {
            within(bits, u128::from(u32::from_be_bytes(*network)), *prefix, 32)
        })
        .map(|(_, _, special)| *special)
}

fn special_v6(ip: Ipv6Addr) -> Option<Special> {
    let bits = u128::from(ip);
    let embedded = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    // These reach an IPv4 address through the host's stack or a translator, so the IPv4
    // address decides: ::ffff:127.0.0.1 is loopback, 64:ff9b::a00:1 reaches 10.0.0.1.
    if within(bits, 0xffff << 32, 96, 128) || within(bits, 0x0064_ff9b << 96, 96, 128) {
        return special_v4(embedded(0));
    }
    // 6to4 (2002::/16) carries the relay's IPv4 address in its next 32 bits.
    if within(bits, 0x2002 << 112, 16, 128) {
        return special_v4(embedded(80));
    }
    if let Some((_, _, special)) = V6
        .iter()
        .find(|(network, prefix, _)| within(bits, *network, *prefix, 128))
    {
        return Some(*special);
    }
    // IPv4-compatible addresses (deprecated) and everything outside global unicast.
    if within(bits, 0, 96, 128) || !within(bits, 0x2000 << 112, 3, 128) {
        return Some(Special::Reserved);
    }
    None
}

/// What kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn special(ip: IpAddr) -> Option<Special> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

/// Why a webhook's host gave no address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// The host is, or resolves to, an address the worker may not post to. Final.
    Refused(String),
    /// The name did not resolve; it may next time.
    Unresolved(String),
}

/// The addresses of `host` (without brackets) at `port`, each checked; resolved once, so the
/// connection goes to what was checked.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Unreachable> {
    let literal = host.parse::<IpAddr>().ok();
    let addresses: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Unreachable::Unresolved(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Unreachable::Unresolved(format!("{host} has no address")));
    }
    if !allow_private {
        for address in &addresses {
            if let Some(special) = special(address.ip()) {
                let what = match literal {
                    Some(_) => format!("is {special}"),
                    None => format!("resolves to {}, {special}", address.ip()),
                };
                return Err(Unreachable::Refused(format!(
                    "Refused: webhook host {host} {what} (allow with --webhook-allow-private)"
                )));
            }
        }
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<Special> {
        special(text.parse().unwrap())
    }

    #[test]
    fn public_unicast_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_internal_range_is_named() {
        use Special::*;
        for (ip, expected) in [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("fd00::1", Private),
            ("fc00::1", Private),
            ("fec0::1", Private),
            ("64:ff9b:1::1", Private),
            ("100.64.0.1", Shared),
            ("100.127.255.255", Shared),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("192.88.99.1", Reserved),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:1ff::1", Reserved),
            ("::127.0.0.1", Reserved),
            ("::8.8.8.8", Reserved),
            ("4000::1", Reserved),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        assert_eq!(class("::ffff:127.0.0.1"), Some(Special::Loopback));
        assert_eq!(class("::ffff:169.254.169.254"), Some(Special::LinkLocal));
        assert_eq!(class("::ffff:10.1.2.3"), Some(Special::Private));
        assert_eq!(class("64:ff9b::a00:1"), Some(Special::Private));
        assert_eq!(class("64:ff9b::7f00:1"), Some(Special::Loopback));
        assert_eq!(class("2002:7f00:1::"), Some(Special::Loopback));
        assert_eq!(class("2002:c0a8:101::1"), Some(Special::Private));
    }

    #[tokio::test]
    async fn a_refusal_names_the_host_the_address_and_the_way_to_allow_it() {
        assert_eq!(
            resolve("127.0.0.1", 80, false).await,
            Err(Unreachable::Refused(
                "Refused: webhook host 127.0.0.1 is a loopback address \
                 (allow with --webhook-allow-private)"
                    .into()
            ))
        );
        assert!(matches!(
            resolve("::ffff:169.254.169.254", 80, false).await,
            Err(Unreachable::Refused(reason)) if reason.contains("is a link-local address")
        ));
        let Err(Unreachable::Refused(reason)) = resolve("localhost", 8080, false).await else {
            panic!("localhost was not refused");
        };
        assert!(
            reason.starts_with("Refused: webhook host localhost resolves to "),
            "{reason}"
        );
        assert!(reason.ends_with(", a loopback address (allow with --webhook-allow-private)"));
    }

    #[tokio::test]
    async fn allowed_private_hosts_resolve_to_what_was_checked() {
        assert_eq!(
            resolve("127.0.0.1", 8080, true).await,
            Ok(vec!["127.0.0.1:8080".parse().unwrap()])
        );
        assert_eq!(
            resolve("8.8.8.8", 443, false).await,
            Ok(vec!["8.8.8.8:443".parse().unwrap()])
        );
        assert_eq!(
            resolve("::1", 8080, true).await,
            Ok(vec!["[::1]:8080".parse().unwrap()])
        );
    }
}
