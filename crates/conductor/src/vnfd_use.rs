//! Taking a VNF's VNFD into use before its create is carried out: the step that finishes the
//! create the gateway recorded (the create is the decision; this follows from it). It never
//! deploys, and never records on a VNFD anything but its use by the VNF being created.

use std::collections::BTreeMap;

use events::envelope::Cause;
use events::store::CommandError;
use events::vnf::{Instance, OperationKind, PendingOperation, Vnf};
use events::vnfd::{self, VnfdError};
use events::vnfd_use::{Used, take_into_use};

use crate::vim::{Vim, VimError};
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
    /// The VNF was created by another conductor and deleted while this one, holding the
    /// create's request, was about to take the VNFD into use.
    #[error("VNF {vnf_id} was deleted while its create was being carried out")]
    Deleted { vnf_id: String },
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
        vim: Result<&dyn Vim, &String>,
        user_data: &BTreeMap<String, String>,
        cause: &Cause,
    ) -> Result<Result<Vec<Instance>, PlanError>, ConductorError> {
        if let Some(vnfd_id) = vnfd_to_use(vnf, pending) {
            let used = vnfd::use_cause(self.actor(), &cause.correlation_id, &cause.causation_id);
            match take_into_use(&self.log, vnfd_id, vnf_id, &used).await {
                // Another conductor created the VNF and a user deleted it since `vnf` was
                // loaded: the use came too late and is given back.
                Ok(Used::GivenBack) => {
                    let vnf_id = vnf_id.to_owned();
                    return Ok(Err(PlanError::Deleted { vnf_id }));
                }
                Ok(Used::Recorded | Used::AlreadyRecorded) => {}
                Err(CommandError::Rejected(source)) => {
                    let vnfd_id = vnfd_id.to_owned();
                    return Ok(Err(PlanError::Vnfd { vnfd_id, source }));
                }
                Err(CommandError::Store(e)) => return Err(e.into()),
            }
        }
        let vim = match vim {
            Ok(vim) => vim,
            Err(reason) => return Ok(Err(PlanError::Vim(VimError::Failed(reason.clone())))),
        };
        Ok(self
            .execute_plan(vim, vnf, vnf_id, pending, user_data)
            .await
            .map_err(PlanError::from))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use events::fixtures::{self, user};
    use events::vnf::VnfCommand;
    use events::vnfd::{Vnfd, VnfdCommand};

    use super::*;
    use crate::ConductorConfig;
    use crate::vim::{ConfigRequest, DeployRequest, Deployed, Vim};

    fn vnf() -> Vnf {
        Vnf {
            details: Some(Box::new(fixtures::details("v1", "d1"))),
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

    /// A VIM that must not be asked to deploy; deleting succeeds (nothing is there).
    struct NoDeploys;

    #[async_trait::async_trait]
    impl Vim for NoDeploys {
        async fn deploy_vdu(&self, request: &DeployRequest) -> Result<Deployed, VimError> {
            panic!("deployed {request:?} for a deleted VNF")
        }

        async fn delete_vdu(&self, _instance_id: &str) -> Result<(), VimError> {
            Ok(())
        }

        async fn apply_config(&self, request: &ConfigRequest) -> Result<(), VimError> {
            panic!("configured {request:?} for a deleted VNF")
        }

        async fn mgmt_ip(&self, _instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
            Ok(None)
        }
    }

    /// A conductor loads a VNF with its create pending; meanwhile another creates it, a user
    /// deletes it and its VNFD is released; only then does the first take the VNFD into use. It
    /// finds the VNF deleted, releases the VNFD again and deploys nothing.
    #[tokio::test]
    async fn a_use_recorded_after_the_vnf_was_deleted_is_released() {
        let server = testkit::NatsServer::start().await;
        let log = fixtures::log(server.client().await).await;
        log.execute::<Vnfd>("d1", fixtures::onboard("d1"), &(), &user())
            .await
            .unwrap();
        let create = fixtures::create("v1", "d1", fixtures::spec(vec![]), "op-create");
        let stale = log
            .execute::<Vnf>("v1", create, &(), &user())
            .await
            .unwrap();
        let pending = stale.aggregate.pending.clone().unwrap();
        // Another conductor's whole work, and the user's delete.
        let use_first = VnfdCommand::Use {
            vnf_id: "v1".into(),
        };
        log.execute::<Vnfd>("d1", use_first, &(), &user())
            .await
            .unwrap();
        let steps = [
            VnfCommand::CompleteCreate {
                operation_id: "op-create".into(),
                instances: vec![],
            },
            VnfCommand::Delete {
                operation_id: "op-delete".into(),
            },
            VnfCommand::CompleteDelete {
                operation_id: "op-delete".into(),
            },
        ];
        for step in steps {
            log.execute::<Vnf>("v1", step, &(), &user()).await.unwrap();
        }
        let release = VnfdCommand::Release {
            vnf_id: "v1".into(),
        };
        log.execute::<Vnfd>("d1", release, &(), &user())
            .await
            .unwrap();

        let conductor =
            Conductor::new(log.clone(), Arc::new(NoDeploys), ConductorConfig::default());
        let planned = conductor
            .carry_out_plan(
                &stale.aggregate,
                "v1",
                &pending,
                Ok(&NoDeploys),
                &BTreeMap::default(),
                &user(),
            )
            .await
            .unwrap();
        assert!(
            matches!(planned, Err(PlanError::Deleted { .. })),
            "{planned:?}"
        );
        let vnfd = log.load::<Vnfd>("d1").await.unwrap().aggregate;
        assert!(vnfd.users.is_empty(), "still used by {:?}", vnfd.users);
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
