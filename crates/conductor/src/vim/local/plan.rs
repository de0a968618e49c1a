//! The local VIM's address plan and naming, as plain functions over plain data.
//!
//! Nothing here runs a command or touches the kernel: the runtime in `local.rs` feeds it the
//! JSON that `ip -j` printed and acts on the answers.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde::Deserialize;

use events::monitor::cidr::LOCAL_VIM_RANGE;

/// The first address of the range every VDU address comes from, `events`'
/// `LOCAL_VIM_RANGE` (198.18.0.0/15, reserved for network test beds by RFC 2544, so it never
/// collides with a real network); monitors probe it by default.
pub const RANGE_BASE: Ipv4Addr = LOCAL_VIM_RANGE.base();
/// The range's prefix length; `RANGE_BASE` and this name the route the VIM makes unreachable.
pub const RANGE_PREFIX_LEN: u8 = LOCAL_VIM_RANGE.prefix_len();
/// Each VDU takes a point-to-point /31 pair (RFC 3021): no network or broadcast address is
/// wasted, so a /15 holds 2^16 VDUs.
pub const PAIR_PREFIX_LEN: u8 = 31;
/// How many /31 pairs the range holds: 2^(32 - 15) addresses, two per slot.
pub const SLOT_COUNT: u32 = 1 << (32 - RANGE_PREFIX_LEN - 1);
/// Interface names are at most 15 bytes (IFNAMSIZ minus the NUL); a 5-byte prefix, the side
/// letter and up to five slot digits (65535) make 11, leaving room to spare.
pub const PREFIX_LEN_MAX: usize = 5;
/// The namespace is a file `/run/netns/{prefix}-{instance id}`, and a file name is at most
/// 255 bytes; 200 keeps well clear of that whatever the prefix (UUIDs are 36).
pub const INSTANCE_ID_LEN_MAX: usize = 200;
/// The letter between prefix and slot in the host-side veth's name.
const HOST_SIDE: char = 'h';
/// The letter between prefix and slot in the VDU-side veth's name (inside the namespace).
const VDU_SIDE: char = 'n';

/// One /31 pair of the range: the host keeps the even address, the VDU gets the odd one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(u32);

impl Slot {
    pub fn new(index: u32) -> Option<Slot> {
        (index < SLOT_COUNT).then_some(Slot(index))
    }

    pub fn index(self) -> u32 {
        self.0
    }

    /// The slot an address of the range belongs to, either side of the pair.
    pub fn of_addr(addr: Ipv4Addr) -> Option<Slot> {
        let offset = u32::from(addr).checked_sub(u32::from(RANGE_BASE))?;
        Slot::new(offset / 2)
    }

    /// The host side's address, the VDU's default gateway.
    pub fn host_addr(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(RANGE_BASE) + 2 * self.0)
    }

    /// The VDU side's address: the management IP.
    pub fn vdu_addr(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(RANGE_BASE) + 2 * self.0 + 1)
    }
}

/// Which end of a VDU's veth pair an interface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Vdu,
}

/// A prefix names every namespace and interface one VIM (or one test) owns, so that it can
/// clean up only its own: 1 to 5 bytes of `[a-z0-9]`.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > PREFIX_LEN_MAX {
        return Err(format!(
            "prefix {prefix:?} must be 1 to {PREFIX_LEN_MAX} characters long"
        ));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!("prefix {prefix:?} may hold only [a-z0-9]"));
    }
    Ok(())
}

/// Instance ids become file names under /run/netns: letters, digits, `.`, `_` and `-` only,
/// not starting with `.`, at most `INSTANCE_ID_LEN_MAX` bytes.
pub fn validate_instance_id(instance_id: &str) -> Result<(), String> {
    if instance_id.is_empty() || instance_id.len() > INSTANCE_ID_LEN_MAX {
        return Err(format!(
            "instance id {instance_id:?} must be 1 to {INSTANCE_ID_LEN_MAX} characters long"
        ));
    }
    if instance_id.starts_with('.')
        || !instance_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "instance id {instance_id:?} may hold only [A-Za-z0-9._-] and must not start with '.'"
        ));
    }
    Ok(())
}

pub fn namespace_name(prefix: &str, instance_id: &str) -> String {
    format!("{prefix}-{instance_id}")
}

/// The instance id a namespace of this prefix belongs to; `None` for anybody else's.
/// Unambiguous because prefixes hold no `-`.
pub fn instance_of_namespace<'a>(prefix: &str, namespace: &'a str) -> Option<&'a str> {
    namespace
        .strip_prefix(prefix)?
        .strip_prefix('-')
        .filter(|id| !id.is_empty())
}

pub fn link_name(prefix: &str, side: Side, slot: Slot) -> String {
    let letter = match side {
        Side::Host => HOST_SIDE,
        Side::Vdu => VDU_SIDE,
    };
    format!("{prefix}{letter}{}", slot.0)
}

/// Which side and slot an interface named by `link_name` with this prefix is; `None` for
/// anybody else's. Unambiguous across prefixes: a name is prefix, one side letter, digits.
pub fn parse_link_name(prefix: &str, name: &str) -> Option<(Side, Slot)> {
    let rest = name.strip_prefix(prefix)?;
    let mut chars = rest.chars();
    let side = match chars.next()? {
        HOST_SIDE => Side::Host,
        VDU_SIDE => Side::Vdu,
        _ => return None,
    };
    let digits = chars.as_str();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "07" is never produced, so it is nobody's; rejecting it keeps the parse one-to-one.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    Slot::new(digits.parse().ok()?).map(|slot| (side, slot))
}

/// The slot of a host-side veth of any local VIM's prefix, by name alone.
fn any_prefix_host_slot(name: &str) -> Option<Slot> {
    let split = name.rfind(HOST_SIDE)?;
    let prefix = &name[..split];
    validate_prefix(prefix).ok()?;
    match parse_link_name(prefix, name)? {
        (Side::Host, slot) => Some(slot),
        (Side::Vdu, _) => None,
    }
}

/// One interface as `ip -j [-d] addr show` prints it; only the fields the VIM reads.
#[derive(Debug, Clone, Deserialize)]
pub struct IpLink {
    pub ifname: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub addr_info: Vec<IpAddrInfo>,
    /// Present with `-d`.
    #[serde(default)]
    pub linkinfo: Option<IpLinkInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpAddrInfo {
    pub family: String,
    pub local: Option<String>,
    pub prefixlen: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpLinkInfo {
    pub info_kind: Option<String>,
}

impl IpLink {
    fn ipv4_addrs(&self) -> impl Iterator<Item = (Ipv4Addr, Option<u8>)> + '_ {
        self.addr_info
            .iter()
            .filter(|a| a.family == "inet")
            .filter_map(|a| Some((a.local.as_deref()?.parse().ok()?, a.prefixlen)))
    }

    fn is_veth(&self) -> bool {
        self.linkinfo
            .as_ref()
            .and_then(|info| info.info_kind.as_deref())
            == Some("veth")
    }
}

/// Parses the output of `ip -j addr show`; empty output (no interfaces) is an empty list.
pub fn parse_links(json: &str) -> Result<Vec<IpLink>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| format!("unreadable `ip -j` output: {e}"))
}

/// Slots taken on this host, from `ip -j -d addr show` of the host namespace: every address
/// of the range on any interface, every veth named like a local VIM's host side (a crash
/// between creating the pair and addressing it leaves one without an address), and every
/// interface of any kind carrying this prefix's name for a slot (its name is taken).
pub fn used_slots(host_links: &[IpLink], prefix: &str) -> HashSet<Slot> {
    let mut used = HashSet::new();
    for link in host_links {
        used.extend(
            link.ipv4_addrs()
                .filter_map(|(addr, _)| Slot::of_addr(addr)),
        );
        if link.is_veth() {
            used.extend(any_prefix_host_slot(&link.ifname));
        }
        if let Some((_, slot)) = parse_link_name(prefix, &link.ifname) {
            used.insert(slot);
        }
    }
    used
}

/// The first free slot after `after`, wrapping around: allocation walks the whole range
/// before reusing an address, so a respawned VDU gets a new management IP and a stale probe
/// of a deleted VDU's address does not reach its successor.
pub fn next_free_slot(used: &HashSet<Slot>, after: Option<Slot>) -> Option<Slot> {
    let start = after.map_or(0, |s| (s.0 + 1) % SLOT_COUNT);
    (0..SLOT_COUNT)
        .map(|step| Slot((start + step) % SLOT_COUNT))
        .find(|slot| !used.contains(slot))
}

/// The slot of this prefix's VDU-side veth among a namespace's interfaces, if it has one.
pub fn vdu_slot(namespace_links: &[IpLink], prefix: &str) -> Option<Slot> {
    namespace_links
        .iter()
        .find_map(|link| match parse_link_name(prefix, &link.ifname)? {
            (Side::Vdu, slot) => Some(slot),
            (Side::Host, _) => None,
        })
}

/// The management IP a namespace answers on: its VDU-side veth carries the slot's odd
/// address as a /31 and is up. `None` while half-built.
pub fn vdu_mgmt_ip(namespace_links: &[IpLink], prefix: &str) -> Option<Ipv4Addr> {
    let slot = vdu_slot(namespace_links, prefix)?;
    let name = link_name(prefix, Side::Vdu, slot);
    let link = namespace_links.iter().find(|l| l.ifname == name)?;
    let addressed = link
        .ipv4_addrs()
        .any(|(addr, len)| addr == slot.vdu_addr() && len == Some(PAIR_PREFIX_LEN));
    let up = link.flags.iter().any(|f| f == "UP");
    (addressed && up).then(|| slot.vdu_addr())
}

/// Parses the allocation cursor kept in the lock file; anything unreadable starts afresh.
pub fn parse_cursor(text: &str) -> Option<Slot> {
    Slot::new(text.trim().parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(k: u32) -> Slot {
        Slot::new(k).unwrap()
    }

    #[test]
    fn slots_split_the_range_into_pairs() {
        assert_eq!(SLOT_COUNT, 65_536);
        assert_eq!(slot(0).host_addr(), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(slot(0).vdu_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(slot(200).vdu_addr(), Ipv4Addr::new(198, 18, 1, 145));
        let last = slot(SLOT_COUNT - 1);
        assert_eq!(last.host_addr(), Ipv4Addr::new(198, 19, 255, 254));
        assert_eq!(last.vdu_addr(), Ipv4Addr::new(198, 19, 255, 255));
        assert_eq!(Slot::new(SLOT_COUNT), None);
        for k in [0, 1, 200, SLOT_COUNT - 1] {
            assert_eq!(Slot::of_addr(slot(k).host_addr()), Some(slot(k)));
            assert_eq!(Slot::of_addr(slot(k).vdu_addr()), Some(slot(k)));
        }
        assert_eq!(Slot::of_addr(Ipv4Addr::new(198, 17, 255, 255)), None);
        assert_eq!(Slot::of_addr(Ipv4Addr::new(198, 20, 0, 0)), None);
    }

    #[test]
    fn prefixes_are_short_and_plain() {
        assert!(validate_prefix("vnfm").is_ok());
        assert!(validate_prefix("t0a9z").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("toolong").is_err());
        assert!(validate_prefix("a-b").is_err());
        assert!(validate_prefix("Ab").is_err());
    }

    #[test]
    fn instance_ids_are_safe_file_names() {
        assert!(validate_instance_id("5f0c6d1e-3a1b-4c55-9d2e-0a1b2c3d4e5f").is_ok());
        assert!(validate_instance_id("vdu1.0_a").is_ok());
        assert!(validate_instance_id("").is_err());
        assert!(validate_instance_id("..").is_err());
        assert!(validate_instance_id("a/b").is_err());
        assert!(validate_instance_id("a b").is_err());
        assert!(validate_instance_id(&"x".repeat(INSTANCE_ID_LEN_MAX + 1)).is_err());
    }

    #[test]
    fn names_round_trip_and_stay_within_ifnamsiz() {
        let longest = link_name("abcde", Side::Host, slot(SLOT_COUNT - 1));
        assert!(longest.len() <= 15, "{longest}");
        assert_eq!(
            parse_link_name("abcde", &longest),
            Some((Side::Host, slot(SLOT_COUNT - 1)))
        );
        assert_eq!(link_name("vnfm", Side::Vdu, slot(7)), "vnfmn7");
        assert_eq!(
            parse_link_name("vnfm", "vnfmn7"),
            Some((Side::Vdu, slot(7)))
        );
        assert_eq!(namespace_name("vnfm", "abc"), "vnfm-abc");
        assert_eq!(instance_of_namespace("vnfm", "vnfm-abc"), Some("abc"));
        assert_eq!(instance_of_namespace("vnf", "vnfm-abc"), None);
        assert_eq!(instance_of_namespace("vnfm", "vnfm-"), None);
    }

    #[test]
    fn link_names_of_other_prefixes_are_not_ours() {
        // "ab" must not claim "abh1h3" (prefix "abh1") nor "eth0"-like names.
        assert_eq!(parse_link_name("ab", "abh1h3"), None);
        assert_eq!(parse_link_name("ab", "abhh3"), None);
        assert_eq!(parse_link_name("ab", "abh"), None);
        assert_eq!(parse_link_name("ab", "abh07"), None);
        assert_eq!(parse_link_name("ab", "abh65536"), None);
        assert_eq!(parse_link_name("ab", "abx1"), None);
        assert_eq!(
            parse_link_name("abh1", "abh1h3"),
            Some((Side::Host, slot(3)))
        );
    }

    const HOST_JSON: &str = r#"[
      {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
      {"ifindex":2,"ifname":"eth0","flags":["UP"],"linkinfo":null,"addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24}]},
      {"ifindex":7,"ifname":"zzth7","flags":["UP"],"linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"198.18.0.14","prefixlen":31},{"family":"inet6","local":"fe80::1","prefixlen":64}]},
      {"ifindex":8,"ifname":"otherh9","flags":[],"linkinfo":{"info_kind":"veth"},"addr_info":[]},
      {"ifindex":9,"ifname":"dummy0","flags":[],"linkinfo":{"info_kind":"dummy"},"addr_info":[{"family":"inet","local":"198.18.0.40","prefixlen":32}]},
      {"ifindex":10,"ifname":"mineh30","flags":[],"linkinfo":{"info_kind":"dummy"},"addr_info":[]},
      {"ifindex":11,"ifname":"veth3","flags":[],"linkinfo":{"info_kind":"bridge"},"addr_info":[]}
    ]"#;

    #[test]
    fn used_slots_come_from_addresses_and_names() {
        let links = parse_links(HOST_JSON).unwrap();
        let used = used_slots(&links, "mine");
        let mut used: Vec<u32> = used.into_iter().map(Slot::index).collect();
        used.sort_unstable();
        // 7: address and veth name; 9: an unaddressed veth of another prefix; 20: an address
        // of the range on a non-veth; 30: our name on a non-veth.
        assert_eq!(used, vec![7, 9, 20, 30]);
        assert!(parse_links("").unwrap().is_empty());
        assert!(parse_links("not json").is_err());
    }

    #[test]
    fn allocation_walks_the_range_before_reusing() {
        let used: HashSet<Slot> = [0, 1, 3].into_iter().map(slot).collect();
        assert_eq!(next_free_slot(&used, None), Some(slot(2)));
        assert_eq!(next_free_slot(&used, Some(slot(2))), Some(slot(4)));
        assert_eq!(
            next_free_slot(&used, Some(slot(SLOT_COUNT - 1))),
            Some(slot(2))
        );
        let all: HashSet<Slot> = (0..SLOT_COUNT).map(slot).collect();
        assert_eq!(next_free_slot(&all, Some(slot(5))), None);
        let mut almost = all.clone();
        almost.remove(&slot(4));
        assert_eq!(next_free_slot(&almost, Some(slot(5))), Some(slot(4)));
    }

    #[test]
    fn mgmt_ip_needs_the_address_and_the_link_up() {
        let ready = r#"[{"ifname":"lo","flags":["UP"],"addr_info":[]},
          {"ifname":"tn3","flags":["BROADCAST","UP","LOWER_UP"],"addr_info":[{"family":"inet","local":"198.18.0.7","prefixlen":31}]}]"#;
        let links = parse_links(ready).unwrap();
        assert_eq!(vdu_slot(&links, "t"), Some(slot(3)));
        assert_eq!(vdu_mgmt_ip(&links, "t"), Some(Ipv4Addr::new(198, 18, 0, 7)));
        assert_eq!(vdu_mgmt_ip(&links, "u"), None);

        let down = ready.replace(r#""BROADCAST","UP","LOWER_UP""#, r#""BROADCAST""#);
        assert_eq!(vdu_mgmt_ip(&parse_links(&down).unwrap(), "t"), None);
        let unaddressed = r#"[{"ifname":"tn3","flags":["UP"],"addr_info":[]}]"#;
        let links = parse_links(unaddressed).unwrap();
        assert_eq!(vdu_slot(&links, "t"), Some(slot(3)));
        assert_eq!(vdu_mgmt_ip(&links, "t"), None);
        let wrong = ready.replace("198.18.0.7", "198.18.0.9");
        assert_eq!(vdu_mgmt_ip(&parse_links(&wrong).unwrap(), "t"), None);
    }

    #[test]
    fn cursor_parses_or_starts_afresh() {
        assert_eq!(parse_cursor("42\n"), Some(slot(42)));
        assert_eq!(parse_cursor(""), None);
        assert_eq!(parse_cursor("65536"), None);
        assert_eq!(parse_cursor("junk"), None);
    }
}
