//! Which addresses deliveries may go to (server-side request forgery).
//!
//! Users type webhook URLs; a URL that points inward (loopback, a private
//! network, the cloud metadata service at 169.254.169.254) would make
//! Hookline a proxy into its own network. Such addresses are refused unless
//! an operator opens a range with an allow-list ([`AllowList`]). The check is
//! made on the *resolved* address at connect time (the worker) and on what
//! a URL resolves to at creation (the producer); this module holds only the
//! rule, with no resolving of its own.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

#[cfg(test)]
mod tests;

/// An address range, `192.168.0.0/16` or `fd00::/8`; a bare address is a
/// range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// Why a range does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address range (like 127.0.0.0/8, 10.1.2.3 or fd00::/8)")]
pub struct InvalidIpRange(String);

impl IpRange {
    /// Parses `address/prefix` or a bare address.
    pub fn parse(text: &str) -> Result<Self, InvalidIpRange> {
        let bad = || InvalidIpRange(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let network = IpAddr::from_str(addr).map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { network, prefix })
    }

    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self { network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self { network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), prefix }
    }

    /// Whether `ip` lies in the range (an IPv4 address never lies in an
    /// IPv6 range, nor the other way round).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The ranges refused by default: each is a way into the network Hookline
/// runs in, or no real destination at all.
const BLOCKED: [(IpRange, &str); 19] = [
    (IpRange::v4(0, 0, 0, 0, 8), "unspecified"),
    (IpRange::v4(10, 0, 0, 0, 8), "private"),
    (IpRange::v4(100, 64, 0, 0, 10), "shared (carrier-grade NAT)"),
    (IpRange::v4(127, 0, 0, 0, 8), "loopback"),
    (IpRange::v4(169, 254, 0, 0, 16), "link-local (cloud metadata)"),
    (IpRange::v4(172, 16, 0, 0, 12), "private"),
    (IpRange::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (IpRange::v4(192, 168, 0, 0, 16), "private"),
    (IpRange::v4(198, 18, 0, 0, 15), "benchmarking"),
    (IpRange::v4(224, 0, 0, 0, 4), "multicast"),
    (IpRange::v4(240, 0, 0, 0, 4), "reserved"),
    (IpRange::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (IpRange::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (IpRange::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique-local"),
    (IpRange::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (IpRange::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (IpRange::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
    (IpRange::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (IpRange::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
];

/// The IPv4 address an IPv6 address carries (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`), which is where a
/// connection to it really goes.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    let compatible = s[..6] == [0; 6] && u32::from(tail) > 1;
    (nat64 || compatible).then_some(tail)
}

/// A refused destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {kind} address; deliveries to it are refused (see HOOKLINE_ALLOWED_NETWORKS)")]
pub struct Blocked {
    /// The address.
    pub ip: IpAddr,
    /// What kind of range it lies in.
    pub kind: &'static str,
}

/// Ranges an operator opened on purpose (`HOOKLINE_ALLOWED_NETWORKS`); every
/// other blocked range stays blocked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpRange>);

impl AllowList {
    /// Parses a comma-separated list of ranges; empty allows nothing extra.
    pub fn parse(text: &str) -> Result<Self, InvalidIpRange> {
        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(IpRange::parse).collect::<Result<_, _>>().map(Self)
    }

    /// An allow-list of the given ranges.
    pub fn new(ranges: Vec<IpRange>) -> Self {
        Self(ranges)
    }

    /// Loopback only (`127.0.0.0/8` and `::1`): for tests and local use.
    pub fn loopback() -> Self {
        Self(vec![IpRange::v4(127, 0, 0, 0, 8), IpRange::v6([0, 0, 0, 0, 0, 0, 0, 1], 128)])
    }

    /// The ranges.
    pub fn ranges(&self) -> &[IpRange] {
        &self.0
    }

    /// `Err` when a delivery must not connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        let effective = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if self.0.iter().any(|r| r.contains(ip) || r.contains(effective)) {
            return Ok(());
        }
        match BLOCKED.iter().find(|(range, _)| range.contains(effective)) {
            Some((_, kind)) => Err(Blocked { ip, kind }),
            None => Ok(()),
        }
    }
}

impl AllowList {
    /// Reads `HOOKLINE_ALLOWED_NETWORKS` (both services read it).
    pub fn from_vars(vars: &crate::config::Vars) -> Result<Self, crate::config::ConfigError> {
        vars.get("HOOKLINE_ALLOWED_NETWORKS")
            .map_or(Ok(Self::default()), Self::parse)
            .map_err(|e| crate::config::ConfigError::new("HOOKLINE_ALLOWED_NETWORKS", e))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join(","))
    }
}
