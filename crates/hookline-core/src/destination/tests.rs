//! The blocked ranges, the allow-list and range parsing.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// Every inward-pointing address is refused by default, each with its kind.
#[test]
fn inward_addresses_are_blocked() {
    let none = AllowList::default();
    for (addr, kind) in [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        // IPv4 behind IPv6 forms goes where the IPv4 address goes.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("64:ff9b::10.0.0.1", "private"),
        ("::10.0.0.1", "private"),
    ] {
        assert_eq!(none.check(ip(addr)), Err(Blocked { ip: ip(addr), kind }), "{addr}");
    }
}

/// Public addresses pass.
#[test]
fn public_addresses_pass() {
    let none = AllowList::default();
    for addr in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
        assert_eq!(none.check(ip(addr)), Ok(()), "{addr}");
    }
}

/// The allow-list opens exactly its ranges, and nothing else.
#[test]
fn allow_list_opens_chosen_ranges() {
    let allow = AllowList::parse("127.0.0.0/8, 10.1.0.0/16,fd00::1").expect("valid");
    assert_eq!(allow.check(ip("127.0.0.1")), Ok(()));
    assert_eq!(allow.check(ip("::ffff:127.0.0.1")), Ok(()));
    assert_eq!(allow.check(ip("10.1.200.3")), Ok(()));
    assert!(allow.check(ip("10.2.0.1")).is_err());
    assert_eq!(allow.check(ip("fd00::1")), Ok(()));
    assert!(allow.check(ip("fd00::2")).is_err());
    assert!(allow.check(ip("169.254.169.254")).is_err());
    assert_eq!(AllowList::loopback().check(ip("::1")), Ok(()));
    assert_eq!(allow.to_string(), "127.0.0.0/8,10.1.0.0/16,fd00::1/128");
}

/// Bad ranges are refused with the text that was given.
#[test]
fn bad_ranges_are_refused() {
    for text in ["10.0.0.0/33", "::/129", "10.0.0/8", "localhost", "10.0.0.0/x", "/8"] {
        assert_eq!(IpRange::parse(text), Err(InvalidIpRange(text.to_owned())), "{text}");
    }
    assert_eq!(AllowList::parse(" , ").expect("empty is fine"), AllowList::default());
}

proptest! {
    /// A /0 range holds every address of its family; a full-length range
    /// holds exactly its own address.
    #[test]
    fn prefix_edges(a: u32, b: u32) {
        let any = IpRange::parse("0.0.0.0/0").expect("valid");
        prop_assert!(any.contains(IpAddr::V4(a.into())));
        let one = IpRange::parse(&std::net::Ipv4Addr::from(a).to_string()).expect("valid");
        prop_assert_eq!(one.contains(IpAddr::V4(b.into())), a == b);
    }
}
