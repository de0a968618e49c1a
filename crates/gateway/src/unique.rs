//! Unique VNF, VNFD and VIM names per project: a create takes its name in the names' bucket before
//! it appends (see [`events::name_claim`] for the rule, and why a claim is a lock beside the
//! log, never a fact of it). A clash answers 409 naming the resource that has the name.
//!
//! Never writes the log, and never frees a name: a claim counts only while its holder lives.

use async_nats::jetstream::kv;
use events::name_claim::{self, Decision, Holder, NameClaim};
use events::names::{self, AggregateKind};
use events::nats_error::NatsError;
use time::OffsetDateTime;

use crate::Gateway;
use crate::error::ApiError;

/// Reads and writes of a claim before a create gives up with a lost race (409 the client may
/// retry): each failed write means another gateway just changed the claim, so a third in a
/// row is a storm, not a race.
const NAME_CLAIM_ATTEMPTS_MAX: usize = 3;

/// 409 if a live VNF or VNFD of `project` (other than `claimant`) already has `name`, as the
/// gateway's copy of the tables shows it: the cheap check, made before anything is recorded
/// (an inline VNFD's onboarding included). [`claim`] is the one that holds under races.
pub(crate) fn not_in_use(
    gateway: &Gateway,
    kind: AggregateKind,
    project: &str,
    name: &str,
    claimant: &str,
) -> Result<(), ApiError> {
    let holder = match kind {
        AggregateKind::Vnf => gateway.vnf_mirror().holder(project, name, claimant),
        AggregateKind::Vnfd => gateway.vnfd_mirror().holder(project, name, claimant),
        AggregateKind::Vim => gateway.vim_mirror().holder(project, name, claimant),
    };
    match holder {
        Some(holder_id) => Err(clash(kind, project, name, &holder_id)),
        None => Ok(()),
    }
}

/// Takes `name` among `project`'s VNFs or VNFDs for `claimant`, whose create is about to be
/// appended; 409 naming the holder if a live resource, or a create still on the way, has it.
pub(crate) async fn claim(
    gateway: &Gateway,
    kind: AggregateKind,
    project: &str,
    name: &str,
    claimant: &str,
) -> Result<(), ApiError> {
    not_in_use(gateway, kind, project, name, claimant)?;
    let bucket = gateway.name_claims();
    let key = names::name_claim_key(kind, project, name);
    for _ in 0..NAME_CLAIM_ATTEMPTS_MAX {
        let entry = bucket
            .entry(key.clone())
            .await
            .map_err(|e| nats(&NatsError::new("reading a name's claim", e)))?
            .filter(|entry| entry.operation == kv::Operation::Put);
        let found = entry.as_ref().and_then(|entry| {
            serde_json::from_slice::<NameClaim>(&entry.value)
                .inspect_err(|e| tracing::warn!(key = %key, error = %e, "A name's claim does not decode; it is replaced."))
                .ok()
        });
        let holder = match &found {
            Some(claim) => holder(gateway, kind, &claim.holder_id).await?,
            None => Holder::NotRecorded,
        };
        let now = OffsetDateTime::now_utc();
        let mine = NameClaim {
            holder_id: claimant.to_owned(),
            name: name.to_owned(),
            claimed_at: now,
        };
        let value = serde_json::to_vec(&mine)
            .map_err(|e| ApiError::internal("encoding a name's claim", &e))?;
        let written = match (
            name_claim::decide(found.as_ref(), holder, claimant, now),
            entry,
        ) {
            (Decision::Held, _) => return Ok(()),
            (Decision::Clash { holder_id }, _) => {
                return Err(clash(kind, project, name, &holder_id));
            }
            (Decision::TakeOver, Some(entry)) => {
                match bucket.update(&key, value.into(), entry.revision).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(nats(&NatsError::new("taking over a name's claim", e))),
                }
            }
            (Decision::Create | Decision::TakeOver, _) => {
                match bucket.create(&key, value.into()).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(nats(&NatsError::new("claiming a name", e))),
                }
            }
        };
        if written {
            tracing::debug!(key = %key, claimant, "Name claimed.");
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        "Conflict",
        format!("the name {name:?} kept being claimed by other requests; retry"),
    ))
}

/// A failed read or write of the names' bucket, as the client sees it.
fn nats(error: &NatsError) -> ApiError {
    ApiError::nats("a name's claim", error)
}

/// What the log says of a claim's holder.
async fn holder(
    gateway: &Gateway,
    kind: AggregateKind,
    holder_id: &str,
) -> Result<Holder, ApiError> {
    Ok(match kind {
        AggregateKind::Vnf => match gateway.vnf_row(holder_id).await? {
            Some(row) if row.state.exists() => Holder::Live,
            Some(row) if row.state.deleted => Holder::Gone,
            _ => Holder::NotRecorded,
        },
        AggregateKind::Vnfd => match gateway.vnfd_row(holder_id).await? {
            Some(row) if row.state.live().is_some() => Holder::Live,
            Some(row) if row.state.deleted => Holder::Gone,
            _ => Holder::NotRecorded,
        },
        AggregateKind::Vim => match gateway.vim_row(holder_id).await? {
            Some(row) if row.state.live().is_some() => Holder::Live,
            Some(row) if row.state.deleted => Holder::Gone,
            _ => Holder::NotRecorded,
        },
    })
}

/// Tacker's answer to a duplicate (`DuplicateEntity`, 409), naming the holder.
fn clash(kind: AggregateKind, project: &str, name: &str, holder_id: &str) -> ApiError {
    let what = match kind {
        AggregateKind::Vnf => "VNF",
        AggregateKind::Vnfd => "VNFD",
        AggregateKind::Vim => "VIM",
    };
    ApiError::conflict(
        "DuplicateEntity",
        format!(
            "{what} name {name:?} is already used in project {project} by {what} {holder_id}; choose another name or delete that {what}"
        ),
    )
}
