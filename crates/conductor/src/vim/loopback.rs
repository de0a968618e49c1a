//! The `loopback` VIM: every VDU instance is an address in 127.128.0.0/9, and nothing else.
//!
//! For fleet-scale tests and capacity planning on one machine: nothing is deployed (no
//! namespace, no process per instance), and the kernel answers ICMP echo on every 127/8 address
//! by itself, so a deployed instance is reachable unless [`Blocklist`] blocks its address. The
//! monitor's prober and the conductor's heal then run for real against millions of instances.
//!
//! An instance's address is derived from its instance id ([`candidate`], a pure function: a
//! SHA-256 of the id and an attempt number into the range), and claimed in the
//! `VNFM_LOOPBACK_VIM` bucket with create-if-absent (`address.<a>-<b>-<c>-<d>` → instance id),
//! so two instances never share an address: a taken candidate moves on to the next attempt, up
//! to [`ADDRESS_ATTEMPTS_MAX`]. The instance's own key (`instance.<id>` → address) is written
//! last: a deploy that finds it answers it (idempotent), and a deploy cut short before it finds
//! its own claim again at the same attempt. Two conductors deploying one instance at once walk
//! the same candidates and meet on the same claim.
//!
//! It serves no HTTP (`http_ping` monitoring, alarm metrics) and keeps no config: a deploy that
//! needs a port, or a `tacker vnf-update`, fails naming why. A delete frees the address and
//! takes it off the blocklist, so that the next instance to draw it starts reachable.
//!
//! It never touches an address outside its range, and never sends traffic itself.

mod blocklist;

use std::net::Ipv4Addr;

use async_nats::jetstream::kv;
use events::monitor::cidr::LOOPBACK_VIM_RANGE;
use sha2::{Digest, Sha256};

use crate::vim::{ConfigRequest, DeployRequest, Deployed, Vim, VimError};

pub use blocklist::{
    BLOCK_BATCH_ADDRESSES_MAX, BLOCKED_ADDRESSES_MAX, Blocklist, BlocklistOp, restore_script,
};

/// How many candidate addresses a deploy tries before it gives up. At a fleet of 1,000,000
/// instances the range is 12 % full, so a candidate is taken with probability 0.12 and 16 in a
/// row with about 10⁻¹⁵; at half full, 1.5 × 10⁻⁵. Each attempt is one bucket request.
pub const ADDRESS_ATTEMPTS_MAX: u32 = 16;

/// Addresses the VIM hands out: the range less its first and last (127.128.0.0 and
/// 127.255.255.255, the latter `lo`'s broadcast address): 8,388,606.
pub const ADDRESSES_COUNT: u32 = (1 << (32 - LOOPBACK_VIM_RANGE.prefix_len())) - 2;

/// The `attempt`-th candidate address of `instance_id`: inside [`LOOPBACK_VIM_RANGE`], never its
/// first or last address, the same for the same arguments on every host and version.
pub fn candidate(instance_id: &str, attempt: u32) -> Ipv4Addr {
    let mut hash = Sha256::new();
    hash.update(instance_id.as_bytes());
    hash.update([0u8]);
    hash.update(attempt.to_be_bytes());
    let digest = hash.finalize();
    let drawn = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let offset = 1 + drawn % ADDRESSES_COUNT;
    Ipv4Addr::from(u32::from(LOOPBACK_VIM_RANGE.base()) + offset)
}

/// Addresses to block or unblock, each inside [`LOOPBACK_VIM_RANGE`] (blank lines skipped):
/// the first that is not names itself.
pub fn parse_addresses<'a>(
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Ipv4Addr>, String> {
    let mut addresses = Vec::new();
    for text in texts.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
        let address: Ipv4Addr = text
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 address"))?;
        if !LOOPBACK_VIM_RANGE.contains(address) {
            return Err(format!(
                "{address} is not in the loopback VIM's range {LOOPBACK_VIM_RANGE}"
            ));
        }
        addresses.push(address);
    }
    Ok(addresses)
}

/// The bucket key of `instance_id`'s address.
pub fn instance_key(instance_id: &str) -> String {
    format!("instance.{instance_id}")
}

/// The bucket key naming who holds `address`.
pub fn address_key(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("address.{a}-{b}-{c}-{d}")
}

/// Whether `instance_id` can be part of a bucket key: letters, digits, `-`, `_` and `=`, as the
/// VNF aggregate's UUIDs are. Anything else is refused before the bucket is asked.
pub fn check_instance_id(instance_id: &str) -> Result<(), VimError> {
    let valid = !instance_id.is_empty()
        && instance_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='));
    if valid {
        Ok(())
    } else {
        Err(VimError::Failed(format!(
            "instance id {instance_id:?}: the loopback VIM takes letters, digits, '-', '_' and '=' only"
        )))
    }
}

/// Refuses a deploy the loopback VIM cannot honestly serve: it runs no server per instance.
pub fn check_servable(request: &DeployRequest) -> Result<(), VimError> {
    let ports = request.http_ports();
    if ports.is_empty() {
        return Ok(());
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    Err(VimError::Failed(format!(
        "VDU {} asks for HTTP on port {} (http_ping monitoring or alarm metrics), and the loopback VIM runs no server per instance; monitor it by ping, or use the local VIM",
        request.vdu,
        ports.join(", ")
    )))
}

fn nats_failed(what: &str, error: impl std::fmt::Display) -> VimError {
    VimError::Failed(format!("{what}: {error}"))
}

/// A VIM whose instances are loopback addresses, allocated in the `VNFM_LOOPBACK_VIM` bucket
/// (`events::names::LOOPBACK_VIM_BUCKET`).
/// Needs root (for its blocklist's `ipset` and `iptables`) and a conductor's bus identity.
#[derive(Debug)]
pub struct LoopbackVim {
    /// The address allocations, shared by every conductor on the bus.
    allocations: kv::Store,
    blocklist: Blocklist,
}

impl LoopbackVim {
    /// Binds to the bucket and makes the blocklist (its set and its rule) unless it exists.
    pub async fn new(allocations: kv::Store, blocklist: Blocklist) -> Result<Self, VimError> {
        blocklist.ensure().await?;
        Ok(LoopbackVim {
            allocations,
            blocklist,
        })
    }

    async fn address_of(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        let Some(value) = self
            .allocations
            .get(instance_key(instance_id))
            .await
            .map_err(|e| nats_failed("reading an instance's address", e))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        text.parse().map(Some).map_err(|_| {
            VimError::Failed(format!(
                "instance {instance_id}: the bucket holds {text:?}, not an address"
            ))
        })
    }

    async fn holder_of(&self, address: Ipv4Addr) -> Result<Option<String>, VimError> {
        Ok(self
            .allocations
            .get(address_key(address))
            .await
            .map_err(|e| nats_failed("reading an address's holder", e))?
            .map(|value| String::from_utf8_lossy(&value).into_owned()))
    }

    /// Claims the first free candidate of `instance_id`, or the one it already holds.
    async fn claim(&self, instance_id: &str) -> Result<Ipv4Addr, VimError> {
        for attempt in 0..ADDRESS_ATTEMPTS_MAX {
            let address = candidate(instance_id, attempt);
            match self
                .allocations
                .create(address_key(address), instance_id.to_owned().into())
                .await
            {
                Ok(_) => return Ok(address),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if self.holder_of(address).await?.as_deref() == Some(instance_id) {
                        return Ok(address);
                    }
                }
                Err(e) => return Err(nats_failed("claiming an address", e)),
            }
        }
        Err(VimError::Exhausted(format!(
            "instance {instance_id}: its {ADDRESS_ATTEMPTS_MAX} candidate addresses are all taken ({ADDRESSES_COUNT} in {LOOPBACK_VIM_RANGE})"
        )))
    }
}

#[async_trait::async_trait]
impl Vim for LoopbackVim {
    async fn deploy_vdu(&self, request: &DeployRequest) -> Result<Deployed, VimError> {
        check_servable(request)?;
        check_instance_id(&request.instance_id)?;
        if let Some(mgmt_ip) = self.address_of(&request.instance_id).await? {
            return Ok(Deployed {
                instance_id: request.instance_id.clone(),
                mgmt_ip,
            });
        }
        let mgmt_ip = self.claim(&request.instance_id).await?;
        self.allocations
            .put(
                instance_key(&request.instance_id),
                mgmt_ip.to_string().into(),
            )
            .await
            .map_err(|e| nats_failed("recording an instance's address", e))?;
        tracing::debug!(
            instance_id = %request.instance_id,
            mgmt_ip = %mgmt_ip,
            "Loopback instance deployed."
        );
        Ok(Deployed {
            instance_id: request.instance_id.clone(),
            mgmt_ip,
        })
    }

    async fn delete_vdu(&self, instance_id: &str) -> Result<(), VimError> {
        check_instance_id(instance_id)?;
        let Some(address) = self.address_of(instance_id).await? else {
            return Ok(());
        };
        // Reachable again before it is free, so that no new holder starts blocked.
        self.blocklist.unblock(&[address]).await?;
        if self.holder_of(address).await?.as_deref() == Some(instance_id) {
            self.allocations
                .delete(address_key(address))
                .await
                .map_err(|e| nats_failed("freeing an address", e))?;
        }
        // Last: a delete cut short finds the instance again and finishes.
        self.allocations
            .delete(instance_key(instance_id))
            .await
            .map_err(|e| nats_failed("removing an instance", e))?;
        Ok(())
    }

    async fn apply_config(&self, request: &ConfigRequest) -> Result<(), VimError> {
        Err(VimError::Failed(format!(
            "VNF {}: the loopback VIM runs nothing in its instances, so it has nowhere to put a config",
            request.vnf_id
        )))
    }

    async fn mgmt_ip(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        check_instance_id(instance_id)?;
        self.address_of(instance_id).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn request(http_port: Option<u16>, metrics_port: Option<u16>) -> DeployRequest {
        DeployRequest {
            operation_id: "op".into(),
            vnf_id: "vnf".into(),
            vdu: "VDU1".into(),
            instance_id: "i".into(),
            http_port,
            metrics_port,
            vdu_spec: None,
            placement: vec![],
            user_data: None,
        }
    }

    #[test]
    fn candidates_lie_inside_the_range_and_never_on_its_ends() {
        let first = Ipv4Addr::new(127, 128, 0, 0);
        let last = Ipv4Addr::new(127, 255, 255, 255);
        for n in 0..20_000 {
            let address = candidate(&format!("instance-{n}"), n % 4);
            assert!(LOOPBACK_VIM_RANGE.contains(address), "{address}");
            assert_ne!(address, first);
            assert_ne!(address, last);
            assert!(!matches!(address.octets(), [127, 0, _, _]), "{address}");
        }
    }

    #[test]
    fn a_candidate_is_stable_and_each_attempt_differs() {
        let id = "0d3b9832-1c6e-5a2f-9b1e-2f0c6b7a8e11";
        // Pinned (computed apart, with Python's hashlib): an upgrade that changed the
        // derivation would strand the claims of live instances.
        assert_eq!(candidate(id, 0), Ipv4Addr::new(127, 198, 210, 224));
        assert_eq!(candidate(id, 1), Ipv4Addr::new(127, 162, 23, 161));
        let attempts: HashSet<Ipv4Addr> = (0..ADDRESS_ATTEMPTS_MAX)
            .map(|attempt| candidate(id, attempt))
            .collect();
        assert_eq!(attempts.len(), ADDRESS_ATTEMPTS_MAX as usize);
    }

    #[test]
    fn distinct_ids_rarely_share_a_first_candidate_and_never_all_candidates() {
        // 100,000 ids in 8,388,606 addresses: about 600 first-candidate collisions expected
        // (n² / 2N), which the bucket's claims resolve; more would mean a skewed hash.
        let ids = 100_000u32;
        let mut seen = HashSet::new();
        let mut collisions = 0;
        for n in 0..ids {
            if !seen.insert(candidate(
                &uuid::Uuid::from_u128(u128::from(n)).to_string(),
                0,
            )) {
                collisions += 1;
            }
        }
        assert!(
            (300..=900).contains(&collisions),
            "{collisions} collisions among {ids} first candidates"
        );
    }

    #[test]
    fn addresses_to_block_lie_in_the_range() {
        assert_eq!(
            parse_addresses(["127.128.0.9", " ", "127.255.0.1\n"]),
            Ok(vec![
                Ipv4Addr::new(127, 128, 0, 9),
                Ipv4Addr::new(127, 255, 0, 1)
            ])
        );
        assert_eq!(
            parse_addresses(["127.0.0.1"]),
            Err("127.0.0.1 is not in the loopback VIM's range 127.128.0.0/9".to_owned())
        );
        assert_eq!(
            parse_addresses(["x"]),
            Err(r#""x" is not an IPv4 address"#.to_owned())
        );
    }

    #[test]
    fn keys_are_plain_bucket_tokens() {
        assert_eq!(
            address_key(Ipv4Addr::new(127, 200, 3, 4)),
            "address.127-200-3-4"
        );
        assert_eq!(instance_key("a-b"), "instance.a-b");
        check_instance_id("5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11").unwrap();
        for bad in ["", "a.b", "a*", "a>", "a b"] {
            let error = check_instance_id(bad).unwrap_err().to_string();
            assert!(error.contains("letters, digits"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_vdu_that_needs_http_is_refused_naming_the_ports() {
        check_servable(&request(None, None)).unwrap();
        let error = check_servable(&request(Some(8080), Some(9100)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("VDU1"), "{error}");
        assert!(error.contains("8080, 9100"), "{error}");
        assert!(error.contains("loopback VIM runs no server"), "{error}");
    }
}
