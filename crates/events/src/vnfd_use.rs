//! A VNF's use of its VNFD: the step that finishes a VNF's create, recorded on the VNFD's
//! subject by whoever gets there first (the gateway right after the create, a conductor before
//! it deploys) under one command id derived from the create's ([`crate::vnfd::use_cause`]).
//!
//! One writer may stall past the VNF's whole life (created by the other, deleted, its VNFD
//! given back): a use it records only then would keep the VNFD in use for ever, so a use that
//! changed the VNFD is checked against the VNF and given back at once if the VNF is gone. I/O
//! over the store only; every decision is the aggregates'.

use crate::envelope::Cause;
use crate::store::{CommandError, EventLog};
use crate::vnf::Vnf;
use crate::vnfd::{Vnfd, VnfdCommand, VnfdError};

/// What taking a VNFD into use came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    /// The use is recorded now.
    Recorded,
    /// It was already (by the other writer, or a redelivery).
    AlreadyRecorded,
    /// It was recorded after the VNF had been deleted, and given back.
    GivenBack,
}

/// Records that VNF `vnf_id` uses VNFD `vnfd_id`, under `cause` (a [`crate::vnfd::use_cause`]).
/// A refusal (the VNFD is gone) is the VNFD aggregate's error.
pub async fn take_into_use(
    log: &EventLog,
    vnfd_id: &str,
    vnf_id: &str,
    cause: &Cause,
) -> Result<Used, CommandError<VnfdError>> {
    let command = VnfdCommand::Use {
        vnf_id: vnf_id.to_owned(),
    };
    let executed = log.execute::<Vnfd>(vnfd_id, command, &(), cause).await?;
    if executed.events.is_empty() {
        return Ok(Used::AlreadyRecorded);
    }
    let vnf = log
        .load::<Vnf>(vnf_id)
        .await
        .map_err(CommandError::Store)?
        .aggregate;
    if !vnf.deleted {
        return Ok(Used::Recorded);
    }
    let give_back = Cause::follow_up(
        cause.actor.clone(),
        &cause.correlation_id,
        &cause.command_id,
        "give-back",
    );
    let release = VnfdCommand::Release {
        vnf_id: vnf_id.to_owned(),
    };
    match log.execute::<Vnfd>(vnfd_id, release, &(), &give_back).await {
        // Refused: the VNFD went away meanwhile, and with it any use.
        Ok(_) | Err(CommandError::Rejected(_)) => Ok(Used::GivenBack),
        Err(CommandError::Store(e)) => Err(CommandError::Store(e)),
    }
}
