//! Which addresses learnt from strangers (a reference peer's `pex_response`, a mesh peer's
//! identify) this node dials and tells others about. A stranger could otherwise point every
//! node it meets at the machines behind their routers (a printer's web port, a database on
//! 127.0.0.1) or use them to scan a LAN. Addresses the operator configured are dialled as given;
//! learnt ones on loopback, private or link-local networks only when the operator allows it
//! (`allow_local_peers`: a LAN deployment, or tests on 127.0.0.1); the rest of the special
//! ranges (unspecified, multicast, broadcast, documentation, reserved) never.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// What kind of network an address is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Reachable on the internet.
    Public,
    /// This machine (127.0.0.0/8, ::1).
    Loopback,
    /// A private network: 10/8, 172.16/12, 192.168/16, the shared 100.64/10, fc00::/7.
    Private,
    /// Link-local: 169.254/16, fe80::/10.
    LinkLocal,
    /// Never a peer: unspecified, multicast, broadcast, documentation, benchmarking, reserved.
    Special,
}

/// The scope of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn scope(ip: IpAddr) -> Scope {
    match ip {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => scope_v4(v4),
            None => scope_v6(v6),
        },
    }
}

fn scope_v4(ip: Ipv4Addr) -> Scope {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Scope::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Scope::Private
    } else if ip.is_link_local() {
        Scope::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
    {
        Scope::Special
    } else {
        Scope::Public
    }
}

fn scope_v6(ip: Ipv6Addr) -> Scope {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Scope::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        Scope::Private
    } else if first & 0xffc0 == 0xfe80 {
        Scope::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && ip.segments()[1] == 0xdb8
    {
        Scope::Special
    } else if first & 0xe000 == 0x2000 {
        // global unicast
        Scope::Public
    } else {
        Scope::Special
    }
}

/// Whether an address learnt from a peer may be dialled or told to others.
pub fn may_use_learnt(ip: IpAddr, allow_local: bool) -> bool {
    match scope(ip) {
        Scope::Public => true,
        Scope::Loopback | Scope::Private | Scope::LinkLocal => allow_local,
        Scope::Special => false,
    }
}

/// [`may_use_learnt`] for a mesh address: a TCP address on an IP this rule allows. Names
/// (`/dns…`) are refused: this node's transport does not resolve them, and a name can point
/// anywhere.
pub fn may_use_learnt_multiaddr(addr: &Multiaddr, allow_local: bool) -> bool {
    let Some(ip) = ip_of(addr) else {
        return false;
    };
    matches!(addr.iter().nth(1), Some(Protocol::Tcp(port)) if port > 0)
        && may_use_learnt(ip, allow_local)
}

/// The address a peer counts as for per-address caps and bans: its IPv4 address (an IPv4 peer
/// of a dual-stack listener arrives as ::ffff:a.b.c.d), or its IPv6 /64 (one subscriber's usual
/// allocation). Plain TCP proves nothing finer, and a port is free to change.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// The IP a mesh address starts with (`/ip4/…` or `/ip6/…`), if any.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_are_told_apart_by_scope() {
        for (text, expected) in [
            ("8.8.8.8", Scope::Public),
            ("1.1.1.1", Scope::Public),
            ("2606:4700::1111", Scope::Public),
            ("127.0.0.1", Scope::Loopback),
            ("127.8.9.10", Scope::Loopback),
            ("::1", Scope::Loopback),
            ("::ffff:127.0.0.1", Scope::Loopback),
            ("10.1.2.3", Scope::Private),
            ("172.16.0.1", Scope::Private),
            ("172.31.255.254", Scope::Private),
            ("192.168.1.1", Scope::Private),
            ("100.64.0.1", Scope::Private),
            ("fd12:3456::1", Scope::Private),
            ("::ffff:192.168.0.1", Scope::Private),
            ("169.254.169.254", Scope::LinkLocal),
            ("fe80::1", Scope::LinkLocal),
            ("0.0.0.0", Scope::Special),
            ("0.1.2.3", Scope::Special),
            ("::", Scope::Special),
            ("224.0.0.1", Scope::Special),
            ("255.255.255.255", Scope::Special),
            ("240.0.0.1", Scope::Special),
            ("192.0.2.1", Scope::Special),
            ("198.18.0.1", Scope::Special),
            ("2001:db8::1", Scope::Special),
            ("ff02::1", Scope::Special),
        ] {
            assert_eq!(scope(ip(text)), expected, "{text}");
        }
        // just outside the private ranges
        assert_eq!(scope(ip("172.32.0.1")), Scope::Public);
        assert_eq!(scope(ip("100.128.0.1")), Scope::Public);
        assert_eq!(scope(ip("11.0.0.1")), Scope::Public);
    }

    #[test]
    fn learnt_addresses_are_used_only_when_public_or_allowed() {
        assert!(may_use_learnt(ip("8.8.8.8"), false));
        for local in ["127.0.0.1", "10.0.0.1", "169.254.169.254", "fe80::1", "::1"] {
            assert!(!may_use_learnt(ip(local), false), "{local}");
            assert!(may_use_learnt(ip(local), true), "{local}");
        }
        for never in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::"] {
            assert!(!may_use_learnt(ip(never), true), "{never}");
        }
        let m = |s: &str| s.parse::<Multiaddr>().unwrap();
        assert!(may_use_learnt_multiaddr(&m("/ip4/8.8.8.8/tcp/7471"), false));
        assert!(!may_use_learnt_multiaddr(
            &m("/ip4/127.0.0.1/tcp/7471"),
            false
        ));
        assert!(may_use_learnt_multiaddr(
            &m("/ip4/127.0.0.1/tcp/7471"),
            true
        ));
        assert!(!may_use_learnt_multiaddr(&m("/ip4/8.8.8.8/tcp/0"), false));
        assert!(!may_use_learnt_multiaddr(
            &m("/ip4/8.8.8.8/udp/7471"),
            false
        ));
        assert!(!may_use_learnt_multiaddr(
            &m("/dns4/example.org/tcp/7471"),
            true
        ));
        assert!(!may_use_learnt_multiaddr(
            &m("/ip6/fe80::1/tcp/7471"),
            false
        ));
    }
}
