//! The I/O of drift and orphans (the decisions are `drift`'s): the VNF table read, each
//! registered VIM's inventory listed, and what drift calls for published or recorded.
//!
//! The VNF table is read (never written) to find the VNFs of each VIM without replaying every
//! VNF's subject each period; a finding on a row is acted on only if the VNF loaded from the
//! log finds it too, so the projection's lag never makes a drift, and the aggregate decides.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::Deserialize;

use events::envelope::{Actor, Cause};
use events::monitor::{Failure, MonitorEvent, MonitorMessage};
use events::names;
use events::nats_error::NatsError;
use events::store::{self, CommandError, EventLog, StoreError};
use events::telemetry;
use events::vim::LOCAL_VIM_ID;
use events::vnf::{VimDrift, Vnf, VnfCommand, VnfStatus};

use crate::drift::{self, Finding, Orphan};
use crate::vims::{Vims, VimsError};

/// The longest a pass over the VNF table may take before the period's drift gives up (tried
/// again next period).
pub const TABLE_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A row of the VNF table as far as drift reads it: the projector's `Row<Vnf>`'s state.
#[derive(Deserialize)]
struct Row {
    state: Vnf,
}

/// Every VNF the VNF table holds (deleted ones too), by id, read in one pass (a watch of
/// every key's last entry until it is caught up), not one get per row: drift reads it every
/// period, and at 20,000 VNFs the gets kept each conductor about a sixth of a core busy. A row
/// that does not decode is skipped with a warning: it is the projector's to repair, and one
/// must not stop the rest. The pass is bounded by [`TABLE_READ_TIMEOUT`].
pub async fn table_vnfs(log: &EventLog) -> Result<BTreeMap<String, Vnf>, StoreError> {
    let table = store::open_bucket(log.jetstream(), names::VNF_TABLE_BUCKET).await?;
    let (mut watch, empty) = store::watch_every_key(&table).await?;
    let mut vnfs = BTreeMap::new();
    if empty {
        return Ok(vnfs);
    }
    let read = async {
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(|e| NatsError::other("reading the VNF table", e))?;
            if entry.operation == kv::Operation::Put {
                match serde_json::from_slice::<Row>(&entry.value) {
                    Ok(row) => {
                        vnfs.insert(entry.key, row.state);
                    }
                    Err(e) => {
                        tracing::warn!(vnf_id = %entry.key, error = %e, "VNF row unreadable; skipped.");
                    }
                }
            } else {
                vnfs.remove(&entry.key);
            }
            if entry.delta == 0 {
                return Ok(());
            }
        }
        Err(NatsError::other(
            "reading the VNF table",
            "the watch ended before it caught up",
        ))
    };
    tokio::time::timeout(TABLE_READ_TIMEOUT, read)
        .await
        .map_err(|elapsed| NatsError::timed_out("reading the VNF table", elapsed))??;
    Ok(vnfs)
}

/// What one reconciliation did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Registered VIMs whose inventory was compared.
    pub vims: usize,
    /// Failure reports published (a drift of a monitored VDU).
    pub failures: usize,
    /// Drifts recorded as the VNF's ERROR (a VDU without a monitoring policy).
    pub errors: usize,
}

/// Compares every ACTIVE VNF on a registered VIM with that VIM's inventory, once, and acts on
/// what the log confirms: a failure report published where the monitors publish theirs (the
/// heal consumer claims and heals it), or the VNF's ERROR recorded. A VIM that cannot be listed
/// now is skipped until the next period (its check records it UNREACHABLE).
pub async fn reconcile(
    log: &EventLog,
    vims: &Vims,
    actor: &Actor,
) -> Result<Reconciled, StoreError> {
    let mut done = Reconciled::default();
    // Drift is only on registered VIMs: with none live (every VNF on the built-in VIM), the
    // VNF table is not read at all.
    if vims.live_ids().await?.is_empty() {
        return Ok(done);
    }
    let mut by_vim: BTreeMap<String, Vec<(String, Vnf)>> = BTreeMap::new();
    for (vnf_id, vnf) in table_vnfs(log).await? {
        let vim_id = vnf.details.as_ref().map(|d| d.vim_id.clone());
        if let Some(vim_id) = vim_id
            && vim_id != LOCAL_VIM_ID
            && vnf.exists()
            && vnf.status == Some(VnfStatus::Active)
        {
            by_vim.entry(vim_id).or_default().push((vnf_id, vnf));
        }
    }
    for (vim_id, vnfs) in by_vim {
        // Listed after the rows were read: a server made after this list belongs to an
        // operation the rows do not show yet, and a row's finding must hold in the log too.
        let inventory = match vims.inventory(&vim_id).await {
            Ok(inventory) => inventory,
            Err(VimsError::Store(e)) => return Err(e),
            Err(VimsError::Unusable(reason)) => {
                tracing::debug!(
                    vim_id,
                    reason,
                    "VIM not listed; drift waits for the next period."
                );
                continue;
            }
        };
        done.vims += 1;
        let servers = drift::servers_by_instance(&inventory);
        let at = time::OffsetDateTime::now_utc();
        for (vnf_id, row) in vnfs {
            let on_row: Vec<String> = drift::plan(&vnf_id, &row, &servers, actor, at)
                .iter()
                .map(finding_id)
                .collect();
            if on_row.is_empty() {
                continue;
            }
            let loaded = log.load::<Vnf>(&vnf_id).await?.aggregate;
            for finding in drift::plan(&vnf_id, &loaded, &servers, actor, at) {
                if !on_row.contains(&finding_id(&finding)) {
                    continue;
                }
                match finding {
                    Finding::Failure(failure) => {
                        publish_failure(log, &failure).await?;
                        metrics::counter!(telemetry::VIM_DRIFTS, "action" => "failure_reported")
                            .increment(1);
                        done.failures += 1;
                    }
                    Finding::Error(drift) => {
                        if record_error(log, &vnf_id, drift, actor).await? {
                            metrics::counter!(telemetry::VIM_DRIFTS, "action" => "vnf_error")
                                .increment(1);
                            done.errors += 1;
                            // The VNF is ERROR now: its other drifts change nothing.
                            break;
                        }
                    }
                }
            }
        }
    }
    Ok(done)
}

fn finding_id(finding: &Finding) -> String {
    match finding {
        Finding::Failure(failure) => failure.failure_id.clone(),
        Finding::Error(drift) => drift.drift_id.clone(),
    }
}

/// Publishes a drift's failure report on the VNF's failure subject, with its failure id as
/// the message id: every conductor's report of it within the stream's duplicate window is
/// stored once, and any later one finds the failure handled (or its instance replaced).
async fn publish_failure(log: &EventLog, failure: &Failure) -> Result<(), StoreError> {
    tracing::warn!(
        vnf_id = %failure.target.vnf_id,
        instance_id = %failure.target.instance_id,
        failure_id = %failure.failure_id,
        reason = %failure.reason,
        "VIM drift: reporting a failure."
    );
    let message = MonitorMessage::new(MonitorEvent::Failure(failure.clone()));
    let payload = serde_json::to_vec(&message)?;
    let publish = async_nats::jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(failure.failure_id.clone());
    log.jetstream()
        .send_publish(names::failure_subject(&failure.target.vnf_id), publish)
        .await
        .map_err(|e| NatsError::new("publishing a drift's failure report", e))?
        .await
        .map_err(|e| NatsError::new("storing a drift's failure report", e))?;
    Ok(())
}

/// Records a drift of a VDU without a policy; whether the VNF took it (a refusal, such as a
/// VNF gone ERROR or busy meanwhile, is logged and left to the next period).
async fn record_error(
    log: &EventLog,
    vnf_id: &str,
    drift: VimDrift,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let drift_id = drift.drift_id.clone();
    let cause = Cause {
        actor: actor.clone(),
        command_id: crate::derived_id(&drift_id, "vim-drift"),
        correlation_id: drift_id.clone(),
        causation_id: drift_id.clone(),
    };
    let reason = drift.reason.clone();
    match log
        .execute::<Vnf>(vnf_id, VnfCommand::RecordVimDrift { drift }, &(), &cause)
        .await
    {
        Ok(executed) => {
            let recorded = !executed.events.is_empty();
            if recorded {
                tracing::warn!(vnf_id, drift_id, reason, "VIM drift: the VNF is ERROR.");
            }
            Ok(recorded)
        }
        Err(CommandError::Rejected(e)) => {
            tracing::info!(vnf_id, drift_id, reason = %e, "VIM drift not recorded.");
            Ok(false)
        }
        Err(CommandError::Store(e)) => Err(e),
    }
}

/// One registered VIM's orphans, or why it could not be listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VimOrphans {
    pub vim_id: String,
    pub orphans: Vec<Orphan>,
    /// Why the VIM could not be listed; `None` when it was.
    pub error: Option<String>,
}

/// Every registered VIM's servers and ports tagged by vnfm that no live VNF's instance owns.
/// Each VIM is listed before the VNF table is read, so a server whose VNF was created
/// meanwhile is found owned. Lists, never deletes.
pub async fn orphans(log: &EventLog, vims: &Vims) -> Result<Vec<VimOrphans>, StoreError> {
    let mut inventories = Vec::new();
    for vim_id in vims.live_ids().await? {
        let inventory = match vims.inventory(&vim_id).await {
            Ok(inventory) => Ok(inventory),
            Err(VimsError::Store(e)) => return Err(e),
            Err(VimsError::Unusable(reason)) => Err(reason),
        };
        inventories.push((vim_id, inventory));
    }
    let vnfs = table_vnfs(log).await?;
    let owned = drift::owned_instances(vnfs.values());
    Ok(inventories
        .into_iter()
        .map(|(vim_id, inventory)| match inventory {
            Ok(inventory) => VimOrphans {
                orphans: drift::orphans(&vim_id, &inventory, &owned),
                vim_id,
                error: None,
            },
            Err(reason) => VimOrphans {
                vim_id,
                orphans: Vec::new(),
                error: Some(reason),
            },
        })
        .collect())
}
