//! Unique names per project: a VNFD's or a VNF's name is taken by a claim in the bucket
//! [`crate::names::NAME_CLAIM_BUCKET`] (key: [`crate::names::name_claim_key`]), made with create-if-absent and
//! taken over only with the revision read, so that of two gateways racing to create the same
//! name exactly one wins. The claim is a lock, not a fact: the log stays the truth of which
//! resource has which name and whether it still lives, and a claim counts only while the
//! log says its holder lives ([`decide`]). So a delete frees the name with no write of its
//! own, and the tables' rebuild never reads the bucket.
//!
//! Pure: [`decide`] is the whole rule; the gateway reads and writes the bucket.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How long a claim whose holder is not on the log yet keeps its name: its create may still be
/// on the way. Twice the gateway's default request timeout (60 s), after which a request, and
/// so its create, has been dropped. A create that runs past it (under a longer
/// `--request-timeout-s`) may share its name with a later one; nothing else is lost.
pub const NAME_CLAIM_GRACE_S: i64 = 120;

/// A name's claim as the bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameClaim {
    /// The VNF or VNFD that holds the name.
    pub holder_id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
}

/// What the log says of a claim's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Created and not deleted: it has the name.
    Live,
    /// Deleted (or its create failed for good): the name is free.
    Gone,
    /// Nothing on its subject: its create is on the way, or never came.
    NotRecorded,
}

/// What a create that wants a name may do about the claim it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No claim: create one.
    Create,
    /// The claim is this resource's own (a retried request): go on.
    Held,
    /// A claim that no longer counts: replace it, at the revision read.
    TakeOver,
    /// The name is another resource's: refuse, naming it.
    Clash { holder_id: String },
}

/// The rule of a name: `found` is the claim in the bucket (if any), `holder` what the log says
/// of its holder, `claimant` the resource that wants the name.
pub fn decide(
    found: Option<&NameClaim>,
    holder: Holder,
    claimant: &str,
    now: OffsetDateTime,
) -> Decision {
    let Some(claim) = found else {
        return Decision::Create;
    };
    if claim.holder_id == claimant {
        return Decision::Held;
    }
    let in_grace = now - claim.claimed_at < time::Duration::seconds(NAME_CLAIM_GRACE_S);
    match holder {
        Holder::Live => Decision::Clash {
            holder_id: claim.holder_id.clone(),
        },
        Holder::NotRecorded if in_grace => Decision::Clash {
            holder_id: claim.holder_id.clone(),
        },
        Holder::Gone | Holder::NotRecorded => Decision::TakeOver,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::names;

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    fn claim_by(holder_id: &str, seconds_ago: i64) -> NameClaim {
        NameClaim {
            holder_id: holder_id.to_owned(),
            name: "web".to_owned(),
            claimed_at: NOW - time::Duration::seconds(seconds_ago),
        }
    }

    #[test]
    fn a_free_name_is_claimed_and_a_live_holder_keeps_it() {
        assert_eq!(
            decide(None, Holder::NotRecorded, "b", NOW),
            Decision::Create
        );
        let claim = claim_by("a", 10_000);
        assert_eq!(
            decide(Some(&claim), Holder::Live, "b", NOW),
            Decision::Clash {
                holder_id: "a".to_owned()
            }
        );
        assert_eq!(decide(Some(&claim), Holder::Live, "a", NOW), Decision::Held);
    }

    #[test]
    fn a_deleted_holder_frees_its_name_at_once() {
        let claim = claim_by("a", 1);
        assert_eq!(
            decide(Some(&claim), Holder::Gone, "b", NOW),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_holder_not_on_the_log_keeps_its_name_for_the_grace_only() {
        let fresh = claim_by("a", NAME_CLAIM_GRACE_S - 1);
        assert_eq!(
            decide(Some(&fresh), Holder::NotRecorded, "b", NOW),
            Decision::Clash {
                holder_id: "a".to_owned()
            }
        );
        let stale = claim_by("a", NAME_CLAIM_GRACE_S);
        assert_eq!(
            decide(Some(&stale), Holder::NotRecorded, "b", NOW),
            Decision::TakeOver
        );
    }

    #[test]
    fn keys_keep_user_text_out_and_tell_kinds_and_projects_apart() {
        use names::AggregateKind::{Vnf, Vnfd};
        let key = names::name_claim_key;
        let k = key(Vnf, "p1", "web.*>");
        assert!(k.starts_with("vnf."), "{k}");
        assert!(
            !k.contains('*') && !k.contains('>') && k.matches('.').count() == 1,
            "{k}"
        );
        assert_eq!(k, key(Vnf, "p1", "web.*>"));
        assert_ne!(k, key(Vnfd, "p1", "web.*>"));
        assert_ne!(k, key(Vnf, "p2", "web.*>"));
        assert_ne!(k, key(Vnf, "p1", "web"));
        // The project and the name are not run together.
        assert_ne!(key(Vnf, "ab", "c"), key(Vnf, "a", "bc"));
    }
}
