//! IPv4 address ranges in CIDR notation (`198.18.0.0/15`), the list of them a monitor may
//! probe (`--probe-cidrs`), and the local and loopback VIMs' ranges, spelled here once.
//!
//! Plain data and parsing only: it never resolves a name or touches the network.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The range every address of the local VIM comes from: 198.18.0.0/15 is reserved for network
/// test beds (RFC 2544), so it never collides with a real network. The default of
/// `--probe-cidrs`.
pub const LOCAL_VIM_RANGE: Ipv4Cidr = Ipv4Cidr {
    base: Ipv4Addr::new(198, 18, 0, 0),
    prefix_len: 15,
};

/// The range every address of the loopback VIM comes from: the upper half of 127.0.0.0/8
/// (8,388,608 addresses, which the kernel answers on `lo` by itself), so that 127.0.0.1 and the
/// rest of 127.0.0.0/16 are never an instance. `vnfm up --vim loopback`'s default of
/// `--probe-cidrs`.
pub const LOOPBACK_VIM_RANGE: Ipv4Cidr = Ipv4Cidr {
    base: Ipv4Addr::new(127, 128, 0, 0),
    prefix_len: 9,
};

/// The longest prefix length of an IPv4 range: one address.
const PREFIX_LEN_MAX: u8 = 32;

/// A CIDR that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IPv4 CIDR (a.b.c.d/n)")]
    Malformed(String),
    /// The address has bits set past the prefix: the range it names is ambiguous.
    #[error("{given:?} has address bits set past its prefix length; the range is {range}")]
    HostBits { given: String, range: Ipv4Cidr },
    #[error("no range given; name at least one IPv4 CIDR (a.b.c.d/n)")]
    Empty,
}

/// One IPv4 range: its first address and its prefix length (0..=32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    base: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    pub const fn base(&self) -> Ipv4Addr {
        self.base
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(prefix_len: u8) -> u32 {
        u32::MAX
            .checked_shl(u32::from(PREFIX_LEN_MAX - prefix_len))
            .unwrap_or(0)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix_len) == u32::from(self.base)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let malformed = || CidrError::Malformed(text.to_owned());
        let (base, prefix_len) = text.split_once('/').ok_or_else(malformed)?;
        let base: Ipv4Addr = base.parse().map_err(|_| malformed())?;
        let prefix_len: u8 = prefix_len.parse().map_err(|_| malformed())?;
        if prefix_len > PREFIX_LEN_MAX {
            return Err(malformed());
        }
        let network = Ipv4Addr::from(u32::from(base) & Self::mask(prefix_len));
        let range = Ipv4Cidr {
            base: network,
            prefix_len,
        };
        if network != base {
            return Err(CidrError::HostBits {
                given: text.to_owned(),
                range,
            });
        }
        Ok(range)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix_len)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, CidrError> {
        text.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(range: Ipv4Cidr) -> String {
        range.to_string()
    }
}

/// The ranges a monitor may probe: never empty. Written comma-separated
/// (`198.18.0.0/15,10.0.0.0/8`), stored as a list of CIDR strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Ipv4Cidr>")]
pub struct ProbeCidrs(Vec<Ipv4Cidr>);

impl ProbeCidrs {
    pub fn new(ranges: Vec<Ipv4Cidr>) -> Result<Self, CidrError> {
        if ranges.is_empty() {
            return Err(CidrError::Empty);
        }
        Ok(ProbeCidrs(ranges))
    }

    /// Whether `ip` lies inside one of the ranges.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }
}

impl From<Ipv4Cidr> for ProbeCidrs {
    fn from(range: Ipv4Cidr) -> Self {
        ProbeCidrs(vec![range])
    }
}

impl TryFrom<Vec<Ipv4Cidr>> for ProbeCidrs {
    type Error = CidrError;

    fn try_from(ranges: Vec<Ipv4Cidr>) -> Result<Self, CidrError> {
        ProbeCidrs::new(ranges)
    }
}

impl FromStr for ProbeCidrs {
    type Err = CidrError;

    /// Comma-separated CIDRs; blanks around each are ignored.
    fn from_str(text: &str) -> Result<Self, CidrError> {
        if text.trim().is_empty() {
            return Err(CidrError::Empty);
        }
        let ranges = text
            .split(',')
            .map(|range| range.trim().parse())
            .collect::<Result<_, _>>()?;
        ProbeCidrs::new(ranges)
    }
}

impl fmt::Display for ProbeCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, range) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn a_range_contains_exactly_its_addresses() {
        let range = cidr("198.18.0.0/15");
        assert_eq!(range, LOCAL_VIM_RANGE);
        assert!(range.contains(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(range.contains(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!range.contains(Ipv4Addr::new(198, 20, 0, 0)));
        assert!(!range.contains(Ipv4Addr::new(198, 17, 255, 255)));
        assert!(!range.contains(Ipv4Addr::new(169, 254, 169, 254)));
        assert!(cidr("0.0.0.0/0").contains(Ipv4Addr::new(169, 254, 169, 254)));
        let one = cidr("10.1.2.3/32");
        assert!(one.contains(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!one.contains(Ipv4Addr::new(10, 1, 2, 4)));
    }

    #[test]
    fn malformed_ranges_are_refused_naming_the_text() {
        for text in [
            "x",
            "198.18.0.0",
            "198.18.0.0/33",
            "198.18.0/15",
            "198.18.0.0/-1",
            "",
        ] {
            assert_eq!(
                text.parse::<Ipv4Cidr>(),
                Err(CidrError::Malformed(text.into())),
                "{text}"
            );
        }
        assert_eq!(
            CidrError::Malformed("x".into()).to_string(),
            r#""x" is not an IPv4 CIDR (a.b.c.d/n)"#
        );
        assert_eq!(
            "198.18.0.1/15".parse::<Ipv4Cidr>().unwrap_err().to_string(),
            r#""198.18.0.1/15" has address bits set past its prefix length; the range is 198.18.0.0/15"#
        );
    }

    #[test]
    fn a_list_is_comma_separated_and_never_empty() {
        let list: ProbeCidrs = "198.18.0.0/15, 127.0.0.0/8".parse().unwrap();
        assert!(list.contains(Ipv4Addr::LOCALHOST));
        assert!(list.contains(Ipv4Addr::new(198, 18, 0, 3)));
        assert!(!list.contains(Ipv4Addr::new(169, 254, 169, 254)));
        assert_eq!(list.to_string(), "198.18.0.0/15,127.0.0.0/8");
        assert_eq!(" ".parse::<ProbeCidrs>(), Err(CidrError::Empty));
        assert_eq!(
            "127.0.0.0/8,,".parse::<ProbeCidrs>(),
            Err(CidrError::Malformed(String::new()))
        );
        assert_eq!(ProbeCidrs::new(Vec::new()), Err(CidrError::Empty));
    }

    #[test]
    fn a_list_round_trips_as_json_strings() {
        let list: ProbeCidrs = "198.18.0.0/15,127.0.0.0/8".parse().unwrap();
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["198.18.0.0/15","127.0.0.0/8"]"#);
        assert_eq!(serde_json::from_str::<ProbeCidrs>(&json).unwrap(), list);
        assert!(serde_json::from_str::<ProbeCidrs>("[]").is_err());
        assert!(serde_json::from_str::<ProbeCidrs>(r#"["10.0.0.1/8"]"#).is_err());
    }
}
