//! The conductor against a real nats-server, with an in-memory VIM that records its calls:
//! operations complete from the log, a conductor killed mid-operation is finished for by
//! another, and failures end in ERROR with nothing left deployed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conductor::vim::{DeployRequest, Deployed, Vim, VimError};
use conductor::{Conductor, ConductorConfig};
use events::envelope::{Actor, ActorKind, Cause};
use events::spec::{ScalingPolicy, VduSpec, VnfdSpec};
use events::store::{EventLog, LogConfig};
use events::vnf::{ScaleDirection, Vnf, VnfCommand, VnfDetails, VnfStatus};
use testkit::NatsServer;
use tokio::sync::Semaphore;

/// Instances by id; `gate` holds deploys until permits are added; `fail` makes deploys fail.
#[derive(Default)]
struct MemoryVim {
    instances: Mutex<BTreeMap<String, Ipv4Addr>>,
    deploy_calls: Mutex<u32>,
    gate: Option<Arc<Semaphore>>,
    fail: bool,
}

#[async_trait::async_trait]
impl Vim for MemoryVim {
    async fn deploy_vdu(&self, request: &DeployRequest) -> Result<Deployed, VimError> {
        *self.deploy_calls.lock().unwrap() += 1;
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        if self.fail {
            return Err(VimError::Failed("no capacity".into()));
        }
        let mut instances = self.instances.lock().unwrap();
        let next = Ipv4Addr::new(198, 18, 0, 1 + instances.len() as u8);
        let ip = *instances.entry(request.instance_id.clone()).or_insert(next);
        Ok(Deployed {
            instance_id: request.instance_id.clone(),
            mgmt_ip: ip,
        })
    }

    async fn delete_vdu(&self, instance_id: &str) -> Result<(), VimError> {
        self.instances.lock().unwrap().remove(instance_id);
        Ok(())
    }

    async fn mgmt_ip(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        Ok(self.instances.lock().unwrap().get(instance_id).copied())
    }
}

fn vnfd() -> VnfdSpec {
    VnfdSpec {
        template_name: None,
        description: None,
        vdus: vec![VduSpec {
            name: "VDU1".into(),
            image: None,
            flavor: None,
            mgmt_cp: "CP1".into(),
            monitoring_policy: None,
        }],
        scaling_policies: vec![ScalingPolicy {
            name: "SP1".into(),
            targets: vec!["VDU1".into()],
            increment: 1,
            min_instances: 1,
            max_instances: 3,
            default_instances: 2,
            cooldown_s: 0,
        }],
    }
}

fn create(vnf_id: &str) -> VnfCommand {
    VnfCommand::Create {
        details: VnfDetails {
            vnf_id: vnf_id.into(),
            name: vnf_id.into(),
            description: String::new(),
            tenant_id: "admin".into(),
            vnfd_id: "vnfd-1".into(),
            vim_id: "local".into(),
            attributes: serde_json::json!({}),
            placement_attr: serde_json::json!({}),
        },
        vnfd: vnfd(),
        operation_id: format!("op-{vnf_id}"),
    }
}

fn user() -> Cause {
    Cause::user_request(Actor::new(ActorKind::User, "admin"))
}

async fn start(
    server: &NatsServer,
    vim: Arc<MemoryVim>,
    ack_wait: Duration,
) -> (EventLog, tokio::task::JoinHandle<()>) {
    let log = EventLog::open(server.client().await, &LogConfig::default())
        .await
        .unwrap();
    let conductor = Conductor::new(
        log.clone(),
        vim,
        ConductorConfig {
            instance: "c-test".into(),
            ack_wait,
        },
    );
    let task = tokio::spawn(async move {
        conductor.run(futures::future::pending()).await.unwrap();
    });
    (log, task)
}

async fn wait_status(log: &EventLog, vnf_id: &str, wanted: VnfStatus) -> Vnf {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let vnf = log.load::<Vnf>(vnf_id).await.unwrap().aggregate;
        if vnf.status == Some(wanted) && vnf.pending.is_none() {
            return vnf;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "VNF {vnf_id} stuck at {:?}",
            vnf.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn create_scale_and_delete_complete_from_the_log() {
    let server = NatsServer::start().await;
    let vim = Arc::new(MemoryVim::default());
    let (log, _conductor) = start(&server, vim.clone(), Duration::from_secs(30)).await;
    log.execute::<Vnf>("v1", create("v1"), &(), &user())
        .await
        .unwrap();
    let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
    assert_eq!(vnf.instances.len(), 2);
    let scale = VnfCommand::Scale {
        operation_id: "op-out".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::Out,
    };
    log.execute::<Vnf>("v1", scale, &(), &user()).await.unwrap();
    let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
    assert_eq!(vnf.instances.len(), 3);
    assert_eq!(vim.instances.lock().unwrap().len(), 3);
    let delete = VnfCommand::Delete {
        operation_id: "op-del".into(),
    };
    log.execute::<Vnf>("v1", delete, &(), &user())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !log.load::<Vnf>("v1").await.unwrap().aggregate.deleted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delete never completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(vim.instances.lock().unwrap().is_empty());
    // The completion is recorded by the conductor, caused by the user's request.
    let history = log
        .read_subject::<events::vnf::VnfEvent>(&events::names::vnf_subject("v1"))
        .await
        .unwrap();
    let completion = &history[1].envelope.cause;
    assert_eq!(completion.actor, Actor::new(ActorKind::Conductor, "c-test"));
    assert_eq!(
        completion.correlation_id,
        history[0].envelope.cause.correlation_id
    );
}

#[tokio::test]
async fn a_conductor_killed_mid_operation_is_finished_by_another() {
    let server = NatsServer::start().await;
    // The first conductor's VIM never returns from its first deploy: it dies "during the VIM call".
    let stuck = Arc::new(MemoryVim {
        gate: Some(Arc::new(Semaphore::new(0))),
        ..MemoryVim::default()
    });
    let ack_wait = Duration::from_secs(1);
    let (log, first) = start(&server, stuck.clone(), ack_wait).await;
    log.execute::<Vnf>("v1", create("v1"), &(), &user())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while *stuck.deploy_calls.lock().unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first conductor never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.abort();
    let healthy = Arc::new(MemoryVim::default());
    let (_, _second) = start(&server, healthy.clone(), ack_wait).await;
    let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
    assert_eq!(vnf.instances.len(), 2);
    assert_eq!(healthy.instances.lock().unwrap().len(), 2);
    // Exactly one completion in the log.
    let history = log
        .read_subject::<events::vnf::VnfEvent>(&events::names::vnf_subject("v1"))
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:#?}");
}

#[tokio::test]
async fn a_failed_create_ends_in_error_and_undoes_its_deploys() {
    let server = NatsServer::start().await;
    let vim = Arc::new(MemoryVim {
        fail: true,
        ..MemoryVim::default()
    });
    let (log, _conductor) = start(&server, vim.clone(), Duration::from_secs(30)).await;
    log.execute::<Vnf>("v1", create("v1"), &(), &user())
        .await
        .unwrap();
    let vnf = wait_status(&log, "v1", VnfStatus::Error).await;
    assert!(vnf.error_reason.unwrap().contains("no capacity"));
    assert!(vim.instances.lock().unwrap().is_empty());
}
