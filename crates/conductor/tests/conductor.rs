//! The conductor against a real nats-server, with an in-memory VIM that records its calls:
//! operations complete from the log, a conductor killed mid-operation is finished for by
//! another, and failures end in ERROR with nothing left deployed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use conductor::vim::{ConfigRequest, DeployRequest, Deployed, Vim, VimError};
use conductor::{Conductor, ConductorConfig};
use events::envelope::{Actor, ActorKind};
use events::fixtures::{self, user};
use events::names;
use events::spec::{MonitoringPolicy, VnfdSpec};
use events::store::{CommandError, EventLog};
use events::vnf::{ScaleDirection, Vnf, VnfCommand, VnfStatus};
use events::vnfd::{Vnfd, VnfdCommand, VnfdError, VnfdEvent};
use testkit::{NatsServer, eventually};
use tokio::sync::Semaphore;

/// Instances by id; `gate` holds deploys until permits are added; `fail` makes deploys fail.
#[derive(Default)]
struct MemoryVim {
    instances: Mutex<BTreeMap<String, Ipv4Addr>>,
    deploy_calls: Mutex<u32>,
    /// The config each instance was last given.
    configs: Mutex<BTreeMap<String, serde_json::Value>>,
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
        let count = u8::try_from(instances.len()).expect("fewer than 255 instances");
        let next = Ipv4Addr::new(198, 18, 0, 1 + count);
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

    async fn apply_config(&self, request: &ConfigRequest) -> Result<(), VimError> {
        let mut configs = self.configs.lock().unwrap();
        for instance_id in &request.instance_ids {
            configs.insert(instance_id.clone(), request.config.clone());
        }
        Ok(())
    }

    async fn mgmt_ip(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        Ok(self.instances.lock().unwrap().get(instance_id).copied())
    }
}

/// What the tests wait for (a conductor finishing an operation, a heal, a consumer draining)
/// takes well under a second; 20 s absorbs a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// The VNFD every create names.
const VNFD: &str = "vnfd-1";

/// VDU1, monitored by `policy`, scaled by SP1 (1..=3, starting at 2).
fn vnfd(policy: Option<MonitoringPolicy>) -> VnfdSpec {
    VnfdSpec {
        scaling_policies: vec![fixtures::scaling("SP1", "VDU1", 1, 3, 2)],
        ..fixtures::spec(vec![fixtures::vdu("VDU1", policy)])
    }
}

fn create(vnf_id: &str) -> VnfCommand {
    fixtures::create(vnf_id, VNFD, vnfd(None), &format!("op-{vnf_id}"))
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,async_nats=warn")
        .with_test_writer()
        .try_init();
}

/// Onboards `vnfd-1`, which every create names: a conductor takes it into use before it
/// deploys. A second onboarding (a second conductor on the server) changes nothing.
async fn onboard_vnfd(log: &EventLog) {
    let onboard = VnfdCommand::Onboard(Box::new(fixtures::descriptor(VNFD, vnfd(None))));
    match log.execute::<Vnfd>(VNFD, onboard, &(), &user()).await {
        Ok(_) | Err(CommandError::Rejected(VnfdError::AlreadyExists)) => {}
        Err(e) => panic!("onboard vnfd-1: {e}"),
    }
}

async fn start(
    server: &NatsServer,
    vim: Arc<MemoryVim>,
    ack_wait: Duration,
) -> (EventLog, tokio::task::JoinHandle<()>) {
    init_logs();
    let log = fixtures::log(server.client().await).await;
    onboard_vnfd(&log).await;
    let task = run_conductor(&log, vim, "c-test", ack_wait, futures::future::pending());
    (log, task)
}

/// Runs the conductor `instance` on `log` until `shutdown` resolves and it has drained.
fn run_conductor(
    log: &EventLog,
    vim: Arc<MemoryVim>,
    instance: &str,
    ack_wait: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let conductor = Conductor::new(
        log.clone(),
        vim,
        ConductorConfig {
            instance: instance.into(),
            ack_wait,
            ..ConductorConfig::default()
        },
    );
    tokio::spawn(async move {
        conductor.run(shutdown).await.unwrap();
    })
}

/// Waits until the VNF is `wanted` with no operation pending, and returns it.
async fn wait_status(log: &EventLog, vnf_id: &str, wanted: VnfStatus) -> Vnf {
    let what = format!("VNF {vnf_id} is {wanted:?} with nothing pending");
    eventually(what, PATIENCE, || async {
        let vnf = log.load::<Vnf>(vnf_id).await.unwrap().aggregate;
        if vnf.status == Some(wanted) && vnf.pending.is_none() {
            Ok(vnf)
        } else {
            Err(format!("{:?}, pending {:?}", vnf.status, vnf.pending))
        }
    })
    .await
}

/// Requests the VNF's delete and waits until a conductor has carried it out.
async fn delete(log: &EventLog, vnf_id: &str) {
    let delete = VnfCommand::Delete {
        operation_id: format!("op-delete-{vnf_id}"),
    };
    log.execute::<Vnf>(vnf_id, delete, &(), &user())
        .await
        .unwrap();
    eventually(format!("VNF {vnf_id} is deleted"), PATIENCE, || async {
        let vnf = log.load::<Vnf>(vnf_id).await.unwrap().aggregate;
        if vnf.deleted {
            Ok(())
        } else {
            Err(format!("{:?}, pending {:?}", vnf.status, vnf.pending))
        }
    })
    .await;
}

/// Waits until the durable consumer `name` of `stream` has nothing left to deliver or to be
/// acked.
async fn drained(log: &EventLog, stream: &str, name: &str) {
    let what = format!("consumer {name} is drained");
    eventually(what, PATIENCE, || async {
        let mut consumer: PullConsumer = log
            .jetstream()
            .get_stream(stream)
            .await
            .unwrap()
            .get_consumer(name)
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            Ok(())
        } else {
            Err(format!("{info:?}"))
        }
    })
    .await;
}

/// Every event on `vnfd-1`'s subject, in order.
async fn vnfd_events(log: &EventLog) -> Vec<VnfdEvent> {
    log.read_subject::<VnfdEvent>(&names::vnfd_subject(VNFD))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|recorded| recorded.envelope.events)
        .collect()
}

/// The VNFs that `vnfd-1` is in use by.
async fn vnfd_users(log: &EventLog) -> Vec<String> {
    let vnfd = log.load::<Vnfd>(VNFD).await.unwrap().aggregate;
    vnfd.users.into_iter().collect()
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
    assert_eq!(vnfd_users(&log).await, ["v1"], "taken into use");
    let scale = VnfCommand::Scale {
        operation_id: "op-out".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::Out,
        at: time::OffsetDateTime::now_utc(),
    };
    log.execute::<Vnf>("v1", scale, &(), &user()).await.unwrap();
    let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
    assert_eq!(vnf.instances.len(), 3);
    assert_eq!(vim.instances.lock().unwrap().len(), 3);
    delete(&log, "v1").await;
    assert!(vim.instances.lock().unwrap().is_empty());
    assert_eq!(vnfd_users(&log).await, Vec::<String>::new(), "released");
    // The completion is recorded by the conductor, caused by the user's request.
    let history = log
        .read_subject::<events::vnf::VnfEvent>(&names::vnf_subject("v1"))
        .await
        .unwrap();
    let completion = &history[1].envelope.cause;
    assert_eq!(completion.actor, Actor::new(ActorKind::Conductor, "c-test"));
    assert_eq!(
        completion.correlation_id,
        history[0].envelope.cause.correlation_id
    );
}

/// `tacker vnf-update`: the VNF goes PENDING_UPDATE, a conductor hands the new config to the
/// VIM for every instance, and the VNF is ACTIVE again with the config as its own.
#[tokio::test]
async fn an_update_hands_the_config_to_the_vim_and_the_vnf_is_active_again() {
    let server = NatsServer::start().await;
    let vim = Arc::new(MemoryVim::default());
    let (log, _conductor) = start(&server, vim.clone(), Duration::from_secs(30)).await;
    log.execute::<Vnf>("v1", create("v1"), &(), &user())
        .await
        .unwrap();
    let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
    let config = serde_json::json!({"vdus": {"VDU1": {"config": {"mode": "fast"}}}});
    let update = VnfCommand::Update {
        operation_id: "op-update".into(),
        config: config.clone(),
    };
    let executed = log
        .execute::<Vnf>("v1", update, &(), &user())
        .await
        .unwrap();
    assert_eq!(executed.aggregate.status, Some(VnfStatus::PendingUpdate));
    let updated = wait_status(&log, "v1", VnfStatus::Active).await;
    assert_eq!(updated.details.unwrap().attributes["config"], config);
    let configs = vim.configs.lock().unwrap().clone();
    let instances: Vec<String> = vnf
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    assert_eq!(configs.keys().cloned().collect::<Vec<_>>(), {
        let mut sorted = instances.clone();
        sorted.sort();
        sorted
    });
    assert!(configs.values().all(|given| *given == config));
}

/// A VNF created with an inline VNFD (`vnfd_template`) takes it with it: the delete's release
/// records the VNFD's deletion, once, whoever carries the delete out.
#[tokio::test]
async fn an_inline_vnfd_is_deleted_with_its_vnf() {
    let server = NatsServer::start().await;
    let vim = Arc::new(MemoryVim::default());
    let (log, _conductor) = start(&server, vim.clone(), Duration::from_secs(30)).await;
    let mut descriptor = fixtures::descriptor("vnfd-inline", vnfd(None));
    descriptor.template_source = events::vnfd::TemplateSource::Inline;
    log.execute::<Vnfd>(
        "vnfd-inline",
        VnfdCommand::Onboard(Box::new(descriptor)),
        &(),
        &user(),
    )
    .await
    .unwrap();
    let from_inline = fixtures::create("v1", "vnfd-inline", vnfd(None), "op-v1");
    log.execute::<Vnf>("v1", from_inline, &(), &user())
        .await
        .unwrap();
    wait_status(&log, "v1", VnfStatus::Active).await;
    let inline = log.load::<Vnfd>("vnfd-inline").await.unwrap().aggregate;
    assert!(inline.live().is_some() && inline.users.contains("v1"));
    delete(&log, "v1").await;
    let inline = log.load::<Vnfd>("vnfd-inline").await.unwrap().aggregate;
    assert!(inline.deleted, "{inline:?}");
    assert!(inline.users.is_empty());
    // The onboarded VNFD of another VNF stays when that VNF goes.
    log.execute::<Vnf>("v2", create("v2"), &(), &user())
        .await
        .unwrap();
    wait_status(&log, "v2", VnfStatus::Active).await;
    delete(&log, "v2").await;
    let onboarded = log.load::<Vnfd>(VNFD).await.unwrap().aggregate;
    assert!(onboarded.live().is_some());
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
    eventually("the first conductor calls its VIM", PATIENCE, || async {
        match *stuck.deploy_calls.lock().unwrap() {
            0 => Err("no deploy"),
            _ => Ok(()),
        }
    })
    .await;
    first.abort();
    let healthy = Arc::new(MemoryVim::default());
    let (_, _second) = start(&server, healthy.clone(), ack_wait).await;
    let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
    assert_eq!(vnf.instances.len(), 2);
    assert_eq!(healthy.instances.lock().unwrap().len(), 2);
    // Exactly one completion in the log.
    let history = log
        .read_subject::<events::vnf::VnfEvent>(&names::vnf_subject("v1"))
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:#?}");
    // And one use of the VNFD, though both conductors took it into use.
    let used = VnfdEvent::UsedBy {
        vnf_id: "v1".into(),
    };
    assert_eq!(vnfd_events(&log).await[1..], [used], "onboarded, used once");
}

/// The VNFD is deleted after the gateway checked it and before a conductor takes it into use:
/// the create fails naming the VNFD, with nothing deployed; nothing refers to the VNFD; the VNF
/// can be deleted.
#[tokio::test]
async fn a_create_whose_vnfd_is_gone_fails_naming_it_and_deploys_nothing() {
    let server = NatsServer::start().await;
    let vim = Arc::new(MemoryVim::default());
    let (log, _conductor) = start(&server, vim.clone(), Duration::from_secs(30)).await;
    log.execute::<Vnfd>(VNFD, VnfdCommand::Delete, &(), &user())
        .await
        .unwrap();
    log.execute::<Vnf>("v1", create("v1"), &(), &user())
        .await
        .unwrap();
    let failed = wait_status(&log, "v1", VnfStatus::Error).await;
    assert_eq!(
        failed.error_reason.as_deref(),
        Some("VNFD vnfd-1 cannot be used: VNFD not found")
    );
    assert_eq!(*vim.deploy_calls.lock().unwrap(), 0);
    assert_eq!(vnfd_users(&log).await, Vec::<String>::new());
    delete(&log, "v1").await;
    assert_eq!(
        vnfd_events(&log).await[1..],
        [VnfdEvent::Deleted],
        "onboarded, deleted, never used"
    );
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

mod heal {
    use events::monitor::{Failure, MonitorEvent, MonitorMessage, TargetRef};
    use events::spec::PolicyAction;
    use events::vnf::VnfEvent;

    use super::*;

    fn monitored(action: PolicyAction) -> VnfCommand {
        let vnfd = vnfd(Some(fixtures::ping(action)));
        fixtures::create("v1", VNFD, vnfd, "op-v1")
    }

    fn failure_of(vnf: &Vnf, failure_id: &str, action: PolicyAction) -> Failure {
        failure_of_vnf("v1", vnf, failure_id, action)
    }

    /// A failure of VNF `vnf_id`'s first instance.
    fn failure_of_vnf(vnf_id: &str, vnf: &Vnf, failure_id: &str, action: PolicyAction) -> Failure {
        let instance = &vnf.instances[0];
        Failure {
            failure_id: failure_id.into(),
            monitor: Actor::new(ActorKind::Monitor, "m-test"),
            target: TargetRef {
                vnf_id: vnf_id.into(),
                vdu: instance.vdu.clone(),
                instance_id: instance.instance_id.clone(),
                mgmt_ip: instance.mgmt_ip,
                action_id: vnf.action_id.clone().unwrap(),
            },
            action,
            attempts: 1,
            reason: "no reply".into(),
            detected_at: time::OffsetDateTime::now_utc(),
        }
    }

    async fn report(log: &EventLog, failure: Failure) {
        let subject = names::failure_subject(&failure.target.vnf_id);
        let payload =
            serde_json::to_vec(&MonitorMessage::new(MonitorEvent::Failure(failure))).unwrap();
        log.jetstream()
            .publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// A server, one conductor, and VNF "v1" active with `action` as its VDU's policy.
    async fn monitored_active(action: PolicyAction) -> (NatsServer, Arc<MemoryVim>, EventLog, Vnf) {
        let server = NatsServer::start().await;
        let vim = Arc::new(MemoryVim::default());
        let (log, _conductor) = start(&server, vim.clone(), Duration::from_secs(30)).await;
        log.execute::<Vnf>("v1", monitored(action), &(), &user())
            .await
            .unwrap();
        let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
        (server, vim, log, vnf)
    }

    /// The next `bad_action` answer on `rejections`: its failure id and reason.
    async fn next_bad_action(rejections: &mut async_nats::Subscriber) -> (String, String) {
        let event = fixtures::next_monitor_event(rejections, Duration::from_secs(10)).await;
        let MonitorEvent::BadAction {
            failure_id, reason, ..
        } = event
        else {
            panic!("not a bad_action: {event:?}")
        };
        (failure_id, reason)
    }

    async fn history(log: &EventLog) -> Vec<VnfEvent> {
        log.read_subject::<VnfEvent>(&names::vnf_subject("v1"))
            .await
            .unwrap()
            .into_iter()
            .flat_map(|r| r.envelope.events)
            .collect()
    }

    #[tokio::test]
    async fn the_same_failure_reported_five_times_to_three_conductors_heals_once() {
        let server = NatsServer::start().await;
        let vim = Arc::new(MemoryVim::default());
        let (log, _a) = start(&server, vim.clone(), Duration::from_secs(30)).await;
        let (_, _b) = start(&server, vim.clone(), Duration::from_secs(30)).await;
        let (_, _c) = start(&server, vim.clone(), Duration::from_secs(30)).await;
        log.execute::<Vnf>("v1", monitored(PolicyAction::Respawn), &(), &user())
            .await
            .unwrap();
        let vnf = wait_status(&log, "v1", VnfStatus::Active).await;
        let deploys_before = *vim.deploy_calls.lock().unwrap();
        // One failure, reported five times at once (as by five monitors, each its own id).
        let reports = (0..5).map(|n| {
            report(
                &log,
                failure_of(&vnf, &format!("f{n}"), PolicyAction::Respawn),
            )
        });
        futures::future::join_all(reports).await;
        // Every report handled (acked by one conductor or another), then count.
        drained(&log, names::FAILURE_STREAM, names::HEAL_CONSUMER).await;
        let events = history(&log).await;
        let started = events
            .iter()
            .filter(|e| matches!(e, VnfEvent::HealStarted { .. }))
            .count();
        let completed = events
            .iter()
            .filter(|e| matches!(e, VnfEvent::HealCompleted { .. }))
            .count();
        assert_eq!((started, completed), (1, 1), "{events:#?}");
        let vnf_after = wait_status(&log, "v1", VnfStatus::Active).await;
        assert_eq!(vnf_after.failure_count, 1);
        assert_eq!(
            vnf_after.instances.len(),
            2,
            "respawn replaced both instances"
        );
        assert!(vnf_after.instances.iter().all(|i| {
            vnf.instances
                .iter()
                .all(|old| old.instance_id != i.instance_id)
        }));
        assert_eq!(
            *vim.deploy_calls.lock().unwrap() - deploys_before,
            2,
            "one deploy per new instance"
        );
        assert_eq!(vim.instances.lock().unwrap().len(), 2);
    }

    /// A storm's claims do not wait for the VIM: with every operation taken by a heal whose
    /// deploys the VIM holds, the next failure is still claimed at once; its VIM work waits for
    /// an operation. Stopped then, the conductor finishes the heals it began and puts back the
    /// one still waiting, which another conductor carries out: every VNF is healed once.
    #[tokio::test]
    async fn failures_are_claimed_while_every_operation_waits_on_the_vim() {
        const VNFS: usize = conductor::OPERATIONS_IN_FLIGHT_MAX + 1;
        const ACK_WAIT: Duration = Duration::from_secs(30);
        let server = NatsServer::start().await;
        let gate = Arc::new(Semaphore::new(0));
        let vim = Arc::new(MemoryVim {
            gate: Some(gate.clone()),
            ..MemoryVim::default()
        });
        init_logs();
        let log = fixtures::log(server.client().await).await;
        onboard_vnfd(&log).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let first = run_conductor(&log, vim.clone(), "c-first", ACK_WAIT, async {
            let _ = stopped.await;
        });
        let spec = vnfd(Some(fixtures::ping(PolicyAction::Respawn)));
        let vnf_ids: Vec<String> = (0..VNFS).map(|n| format!("v{n}")).collect();
        // The creates' deploys pass: two instances each.
        gate.add_permits(2 * VNFS);
        let mut vnfs = Vec::new();
        for vnf_id in &vnf_ids {
            let create = fixtures::create(vnf_id, VNFD, spec.clone(), &format!("op-{vnf_id}"));
            log.execute::<Vnf>(vnf_id, create, &(), &user())
                .await
                .unwrap();
            vnfs.push(wait_status(&log, vnf_id, VnfStatus::Active).await);
        }
        let deploys_before = *vim.deploy_calls.lock().unwrap();
        for (vnf_id, vnf) in vnf_ids.iter().zip(&vnfs) {
            let failure =
                failure_of_vnf(vnf_id, vnf, &format!("f-{vnf_id}"), PolicyAction::Respawn);
            report(&log, failure).await;
        }
        eventually("every failure claimed", PATIENCE, || async {
            let mut unclaimed = Vec::new();
            for vnf_id in &vnf_ids {
                let vnf = log.load::<Vnf>(vnf_id).await.unwrap().aggregate;
                if vnf.pending.is_none() {
                    unclaimed.push(vnf_id.clone());
                }
            }
            if unclaimed.is_empty() {
                Ok(())
            } else {
                Err(format!("not claimed: {unclaimed:?}"))
            }
        })
        .await;
        let deploys_held = *vim.deploy_calls.lock().unwrap() - deploys_before;
        assert!(
            deploys_held <= u32::try_from(2 * conductor::OPERATIONS_IN_FLIGHT_MAX).unwrap(),
            "{deploys_held} deploys entered: no more operations than the bound"
        );
        stop.send(()).unwrap();
        gate.add_permits(2 * VNFS);
        tokio::time::timeout(PATIENCE, first)
            .await
            .expect("the first conductor drains")
            .unwrap();
        let mut pending = Vec::new();
        for vnf_id in &vnf_ids {
            if log
                .load::<Vnf>(vnf_id)
                .await
                .unwrap()
                .aggregate
                .pending
                .is_some()
            {
                pending.push(vnf_id.clone());
            }
        }
        assert_eq!(
            pending.len(),
            VNFS - conductor::OPERATIONS_IN_FLIGHT_MAX,
            "the heals that waited for an operation are left to another conductor: {pending:?}"
        );
        let _second = run_conductor(&log, vim, "c-second", ACK_WAIT, futures::future::pending());
        for vnf_id in &vnf_ids {
            let vnf = wait_status(&log, vnf_id, VnfStatus::Active).await;
            assert_eq!(vnf.failure_count, 1, "{vnf_id} healed once");
        }
    }

    #[tokio::test]
    async fn a_failure_report_of_a_newer_schema_is_parked_not_acted_on() {
        let (_server, vim, log, vnf) = monitored_active(PolicyAction::Respawn).await;
        let deploys_before = *vim.deploy_calls.lock().unwrap();
        let message = MonitorMessage::new(MonitorEvent::Failure(failure_of(
            &vnf,
            "f-future",
            PolicyAction::Respawn,
        )));
        let mut future = serde_json::to_value(&message).unwrap();
        future["schema_version"] = (events::envelope::SCHEMA_VERSION + 1).into();
        log.jetstream()
            .publish(
                names::failure_subject("v1"),
                serde_json::to_vec(&future).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        // Then a report of today's schema, handled after it: the first one was passed over.
        report(&log, failure_of(&vnf, "f-today", PolicyAction::Respawn)).await;
        let started = eventually("a heal starts", PATIENCE, || async {
            let started: Vec<String> = history(&log)
                .await
                .into_iter()
                .filter_map(|e| match e {
                    VnfEvent::HealStarted { failure, .. } => Some(failure.failure_id),
                    _ => None,
                })
                .collect();
            if started.is_empty() {
                Err("no HealStarted")
            } else {
                Ok(started)
            }
        })
        .await;
        assert_eq!(started, vec!["f-today".to_owned()]);
        wait_status(&log, "v1", VnfStatus::Active).await;
        assert_eq!(*vim.deploy_calls.lock().unwrap() - deploys_before, 2);
    }

    #[tokio::test]
    async fn a_stale_action_id_is_answered_with_bad_action_and_no_vim_call() {
        let (server, vim, log, vnf) = monitored_active(PolicyAction::Respawn).await;
        let deploys_before = *vim.deploy_calls.lock().unwrap();
        let client = server.client().await;
        let mut rejections = client
            .subscribe(names::bad_action_subject("v1"))
            .await
            .unwrap();
        let mut stale = failure_of(&vnf, "f-stale", PolicyAction::Respawn);
        stale.target.action_id = "not-the-current-one".into();
        report(&log, stale).await;
        let (failure_id, reason) = next_bad_action(&mut rejections).await;
        assert_eq!(failure_id, "f-stale");
        assert!(reason.contains("action id"), "{reason}");
        assert_eq!(
            *vim.deploy_calls.lock().unwrap(),
            deploys_before,
            "no VIM call"
        );
        assert_eq!(history(&log).await.len(), 3, "nothing appended to the VNF");
    }

    #[tokio::test]
    async fn a_report_naming_log_and_kill_for_a_log_vdu_deletes_nothing_and_yields_bad_action() {
        let (server, vim, log, vnf) = monitored_active(PolicyAction::Log).await;
        let client = server.client().await;
        let mut rejections = client
            .subscribe(names::bad_action_subject("v1"))
            .await
            .unwrap();
        report(&log, failure_of(&vnf, "f-kill", PolicyAction::LogAndKill)).await;
        let (failure_id, reason) = next_bad_action(&mut rejections).await;
        assert_eq!(failure_id, "f-kill");
        assert!(reason.contains("log_and_kill"), "{reason}");
        assert_eq!(history(&log).await.len(), 3, "nothing appended to the VNF");
        assert_eq!(vim.instances.lock().unwrap().len(), 2, "nothing deleted");
        let vnf = log.load::<Vnf>("v1").await.unwrap().aggregate;
        assert_eq!(vnf.status, Some(VnfStatus::Active));
    }
}

mod poison {
    use super::*;

    async fn publish(log: &EventLog, subject: String, payload: &'static [u8]) {
        log.jetstream()
            .publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn poison_messages_are_parked_and_the_next_request_is_carried_out() {
        let server = NatsServer::start().await;
        let vim = Arc::new(MemoryVim::default());
        // A short ack wait: a message left unacked would be redelivered within the test.
        let (log, conductor) = start(&server, vim.clone(), Duration::from_secs(1)).await;
        let garbage: &[&'static [u8]] = &[
            b"not json",
            br#"{"schema_version":2,"type":"Teleported","vnf_id":"v-bad"}"#,
            br#"{"schema_version":99,"type":"Failure"}"#,
        ];
        // A first request carried out: both consumers are open.
        log.execute::<Vnf>("v1", create("v1"), &(), &user())
            .await
            .unwrap();
        wait_status(&log, "v1", VnfStatus::Active).await;
        for payload in garbage {
            publish(&log, names::vnf_subject("v-bad"), payload).await;
            publish(&log, names::failure_subject("v-bad"), payload).await;
        }
        log.execute::<Vnf>("v2", create("v2"), &(), &user())
            .await
            .unwrap();
        let vnf = wait_status(&log, "v2", VnfStatus::Active).await;
        assert_eq!(vnf.instances.len(), 2);
        drained(&log, names::LIFECYCLE_STREAM, names::CONDUCTOR_CONSUMER).await;
        drained(&log, names::FAILURE_STREAM, names::HEAL_CONSUMER).await;
        // Parked, not redelivered: after several ack waits nothing is outstanding still.
        tokio::time::sleep(Duration::from_secs(3)).await;
        drained(&log, names::LIFECYCLE_STREAM, names::CONDUCTOR_CONSUMER).await;
        drained(&log, names::FAILURE_STREAM, names::HEAL_CONSUMER).await;
        assert!(!conductor.is_finished(), "the conductor runs on");
    }
}

/// Drift's one-pass read of the VNF table finds what a get of each key would: every row as
/// last written, deleted keys gone, an undecodable row skipped; an empty table is empty.
#[tokio::test]
async fn the_vnf_table_is_read_in_one_pass_as_each_key_reads() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    assert!(
        conductor::reconcile::table_vnfs(&log)
            .await
            .unwrap()
            .is_empty()
    );
    let table = events::store::open_bucket(log.jetstream(), names::VNF_TABLE_BUCKET)
        .await
        .unwrap();
    let row = |vnf_id: &str, name: &str| {
        let mut details = fixtures::details(vnf_id, VNFD);
        details.name = name.into();
        let vnf = Vnf {
            details: Some(Box::new(details)),
            ..Vnf::default()
        };
        serde_json::to_vec(&serde_json::json!({ "state": vnf }))
            .unwrap()
            .into()
    };
    for n in 0..300 {
        table
            .put(format!("v{n}"), row(&format!("v{n}"), "first"))
            .await
            .unwrap();
    }
    for n in (0..300).step_by(7) {
        table
            .put(format!("v{n}"), row(&format!("v{n}"), "second"))
            .await
            .unwrap();
    }
    for n in (0..300).step_by(30) {
        table.delete(format!("v{n}")).await.unwrap();
    }
    table.put("v1", "not a row".into()).await.unwrap();

    let read = conductor::reconcile::table_vnfs(&log).await.unwrap();
    let mut expected = BTreeMap::new();
    for n in (0..300).filter(|n| n % 30 != 0 && *n != 1) {
        let name = if n % 7 == 0 { "second" } else { "first" };
        expected.insert(format!("v{n}"), name.to_owned());
    }
    let names: BTreeMap<String, String> = read
        .into_iter()
        .map(|(id, vnf)| (id, vnf.details.unwrap().name))
        .collect();
    assert_eq!(names, expected);
}
