//! Taking a VNF's VNFD into use before its create is carried out: the step that finishes the
//! create the gateway recorded (the create is the decision; this follows from it). It never
//! deploys, and never records on a VNFD anything but its use by the VNF being created.

use events::envelope::Cause;
use events::store::CommandError;
use events::vnf::{Instance, OperationKind, PendingOperation, Vnf};
use events::vnfd::{self, Vnfd, VnfdCommand, VnfdError};

use crate::vim::VimError;
use crate::{Conductor, ConductorError};

/// Why an operation's plan was not carried out; recorded as the reason of `OperationFailed`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    /// The VNFD of a VNF being created cannot be used (it was deleted after the gateway
    /// checked it): the create fails and nothing refers to the VNFD.
    #[error("VNFD {vnfd_id} cannot be used: {source}")]
    Vnfd {
        vnfd_id: String,
        #[source]
        source: VnfdError,
    },
    #[error(transparent)]
    Vim(#[from] VimError),
}

/// The VNFD a pending operation must take into use before it deploys: a create's, only.
pub(crate) fn vnfd_to_use<'a>(vnf: &'a Vnf, pending: &PendingOperation) -> Option<&'a str> {
    let details = vnf.details.as_ref()?;
    (pending.kind == OperationKind::Create).then_some(details.vnfd_id.as_str())
}

impl Conductor {
    /// Carries out a pending operation's plan, a create's after taking its VNFD into use.
    ///
    /// `cause` is the completion's, whose causation is the request's command, so the use is
    /// recorded under the id the gateway gives it too ([`vnfd::use_cause`]): a redelivered
    /// create, or one whose use the gateway already recorded, changes nothing on the VNFD.
    /// Errs only when the log cannot be reached (the request is then offered again).
    pub(crate) async fn carry_out_plan(
        &self,
        vnf: &Vnf,
        vnf_id: &str,
        pending: &PendingOperation,
        cause: &Cause,
    ) -> Result<Result<Vec<Instance>, PlanError>, ConductorError> {
        if let Some(vnfd_id) = vnfd_to_use(vnf, pending) {
            let used = vnfd::use_cause(self.actor(), &cause.correlation_id, &cause.causation_id);
            let command = VnfdCommand::Use {
                vnf_id: vnf_id.to_owned(),
            };
            match self.log.execute::<Vnfd>(vnfd_id, command, &(), &used).await {
                Ok(_) => {}
                Err(CommandError::Rejected(source)) => {
                    let vnfd_id = vnfd_id.to_owned();
                    return Ok(Err(PlanError::Vnfd { vnfd_id, source }));
                }
                Err(CommandError::Store(e)) => return Err(e.into()),
            }
        }
        Ok(self
            .execute_plan(vnf, vnf_id, pending)
            .await
            .map_err(PlanError::from))
    }
}

#[cfg(test)]
mod tests {
    use events::vnf::VnfDetails;

    use super::*;

    fn vnf() -> Vnf {
        Vnf {
            details: Some(VnfDetails {
                vnf_id: "v1".into(),
                name: "vnf1".into(),
                description: String::new(),
                tenant_id: "admin".into(),
                vnfd_id: "d1".into(),
                vim_id: "local".into(),
                attributes: serde_json::Value::Null,
                placement_attr: serde_json::Value::Null,
            }),
            ..Vnf::default()
        }
    }

    fn pending(kind: OperationKind) -> PendingOperation {
        PendingOperation {
            operation_id: "op-1".into(),
            kind,
            add: vec![],
            remove: vec![],
        }
    }

    #[test]
    fn only_a_create_takes_its_vnfd_into_use() {
        let vnf = vnf();
        assert_eq!(
            vnfd_to_use(&vnf, &pending(OperationKind::Create)),
            Some("d1")
        );
        for kind in OperationKind::ALL {
            if kind != OperationKind::Create {
                assert_eq!(vnfd_to_use(&vnf, &pending(kind)), None, "{kind:?}");
            }
        }
    }

    #[test]
    fn a_create_fails_naming_the_vnfd_it_cannot_use() {
        let refused = PlanError::Vnfd {
            vnfd_id: "d1".into(),
            source: VnfdError::NotFound,
        };
        assert_eq!(
            refused.to_string(),
            "VNFD d1 cannot be used: VNFD not found"
        );
    }
}
