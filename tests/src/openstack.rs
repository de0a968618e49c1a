//! vnfm on the real OpenStack all-in-one of `ops/openstack-aio` (its VIM config at the path in
//! `VNFM_OPENSTACK_VIM_CONFIG`): a system that may probe `net_mgmt`, the VIM registered, a
//! guest's VNFD, and waits as long as the cloud may take. Shared by the tests and
//! `ops/bench-heal --vim openstack`.

use std::time::Duration;

use events::monitor::cidr::{Ipv4Cidr, LOCAL_VIM_RANGE, ProbeCidrs};
use serde_json::{Value, json};
use testkit::openstack::{IMAGE, NETWORK, NETWORK_PREFIX, VimConfig};
use testkit::wait::eventually;

use crate::{Options, System};

/// A TCG guest boots in 6–12 s once Nova made it (up to 40 s for the first one after `up`);
/// the conductor waits for ACTIVE, and the monitor starts probing this long after that.
pub const MONITORING_DELAY_S: u64 = 30;
/// Create → ACTIVE takes 5–13 s on the all-in-one at rest, and past a minute on a 2-core
/// machine busy compiling; a respawn deletes a server and makes one.
pub const CLOUD_PATIENCE: Duration = Duration::from_secs(180);
/// The conductor's VIM checks in these tests.
pub const VIM_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// One monitored VDU (ping → respawn) on `net_mgmt`, sized with `nfv_compute`, and a scaling
/// policy of one to two instances.
pub fn guest_vnfd() -> String {
    format!(
        r"tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
description: one guest of the all-in-one, pinged, respawned, scaled
metadata:
  template_name: openstack-guest
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      capabilities:
        nfv_compute:
          properties:
            num_cpus: 1
            mem_size: 256 MB
            disk_size: 1 GB
      properties:
        image: {IMAGE}
        monitoring_policy:
          name: ping
          parameters:
            monitoring_delay: {MONITORING_DELAY_S}
            count: 1
            interval: 1
            timeout: 1
            retry: 2
          actions:
            failure: respawn
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties:
        management: true
        order: 0
      requirements:
        - virtualLink:
            node: VL1
        - virtualBinding:
            node: VDU1
    VL1:
      type: tosca.nodes.nfv.VL
      properties:
        network_name: {NETWORK}
        vendor: Tacker
  policies:
    - SP1:
        type: tosca.policies.tacker.Scaling
        properties:
          targets: [VDU1]
          increment: 1
          cooldown: 0
          min_instances: 1
          max_instances: 2
          default_instances: 1
"
    )
}

/// A system whose monitor may probe `net_mgmt` and whose conductor checks VIMs often.
pub async fn start() -> System {
    let (network, len) = NETWORK_PREFIX;
    let net_mgmt: Ipv4Cidr = format!("{network}/{len}").parse().expect("a CIDR");
    System::start_with(Options {
        probe_cidrs: Some(ProbeCidrs::new(vec![LOCAL_VIM_RANGE, net_mgmt]).expect("ranges")),
        vim_check_interval: Some(VIM_CHECK_INTERVAL),
        ..Options::default()
    })
    .await
}

/// Waits until the VIM's show has `status`; answers the show.
pub async fn wait_vim(system: &System, vim_id: &str, status: &str) -> Value {
    eventually(
        format!("VIM {vim_id} is {status}"),
        CLOUD_PATIENCE,
        || async {
            let (code, vim) = system.get(&format!("/vims/{vim_id}")).await;
            if code == 200 && vim["vim"]["status"] == status {
                Ok(vim)
            } else {
                Err(format!("{code} {vim}"))
            }
        },
    )
    .await
}

/// Waits, as long as the cloud may take, until the VNF's log satisfies `done`.
pub async fn on_the_log(
    system: &System,
    vnf_id: &str,
    what: &str,
    done: impl Fn(&events::vnf::Vnf) -> bool,
) -> events::vnf::Vnf {
    eventually(format!("VNF {vnf_id} {what}"), CLOUD_PATIENCE, || async {
        let vnf = system.vnf(vnf_id).await;
        if done(&vnf) {
            Ok(vnf)
        } else {
            Err(format!("{:?} {:?}", vnf.status, vnf.instances))
        }
    })
    .await
}

/// Waits until the monitor has probed the instance up (it starts `MONITORING_DELAY_S` after
/// the instance was booted).
pub async fn probed_up(system: &System, instance: &events::vnf::Instance) {
    let ip = instance.mgmt_ip;
    eventually(format!("{ip} is probed up"), CLOUD_PATIENCE, || async {
        system
            .probe_results()
            .await
            .into_iter()
            .find(|r| r.target.mgmt_ip == ip && r.at > instance.booted_at && r.outcome.is_up())
            .ok_or("no such result in the monitor stream")
    })
    .await;
}

/// Registers the all-in-one the config names as `name` through the API (Tacker's `vim`
/// body), its project's default VIM; answers its id once a check found it REACHABLE.
pub async fn register(system: &System, config: &VimConfig, name: &str) -> String {
    let (code, registered) = system
        .post(
            "/vims",
            json!({"vim": {
                "name": name,
                "type": "openstack",
                "auth_url": config.get("auth_url"),
                "auth_cred": {
                    "username": config.get("username"),
                    "password": config.get("password"),
                    "user_domain_name": config.get("user_domain_name"),
                    "cert_verify": config.get("cert_verify"),
                },
                "vim_project": {
                    "name": config.get("project_name"),
                    "project_domain_name": config.get("project_domain_name"),
                },
                "is_default": true,
            }}),
        )
        .await;
    assert_eq!(code, 201, "{registered}");
    let vim_id = registered["vim"]["id"].as_str().expect("an id").to_owned();
    wait_vim(system, &vim_id, "REACHABLE").await;
    vim_id
}

/// Reads the whole lifecycle stream as the reader identity: `secret` (`what`, for the
/// message) occurs in no message, in clear.
pub async fn assert_not_on_the_log(system: &System, secret: &str, what: &str) {
    let reader = async_nats::jetstream::new(system.nats.client_as(testkit::Identity::Reader).await);
    let stream = reader
        .get_stream(events::names::LIFECYCLE_STREAM)
        .await
        .expect("the reader reads the lifecycle stream");
    let mut read = events::read::StreamRead::open(&stream, events::names::LIFECYCLE_SUBJECTS, 1)
        .await
        .expect("a replay");
    let mut messages = 0;
    while let Some(message) = read.next().await.expect("the replay goes on") {
        messages += 1;
        assert!(
            !String::from_utf8_lossy(&message.payload).contains(secret),
            "{what} is in clear on {}",
            message.subject
        );
    }
    assert!(messages > 0, "the log was read");
}
