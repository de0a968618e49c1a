//! Drift on a real OpenStack (the all-in-one of `ops/openstack-aio`): a VNF's server deleted
//! through Nova behind vnfm's back is found by the conductor's reconciliation and respawned
//! once by its VDU's policy, and `vnfm vim orphans` reports a tagged server no VNF owns. And
//! a VDU's `user_data` (+ `config_drive`) reaches its server, never in clear on the log.
//!
//! Needs the VIM config file at the path in `VNFM_OPENSTACK_VIM_CONFIG` (fails, saying so,
//! without it), the image `vnfm-guest` and the network `net_mgmt`. At most two servers of its
//! own at once (three for the moment a respawn overlaps), removed by a `Drop` guard, pass or
//! fail. The monitor keeps its default `--probe-cidrs` (the local VIM's range), so it never
//! probes `net_mgmt`: whatever heals the VNF here is the drift.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use conductor::vim::openstack::{
    Credentials, OpenStackAccess, OpenStackVim, instance_tag, vnf_tag,
};
use conductor::vim::{DeployRequest, Vim};
use events::spec::{ComputeSpec, ConnectionPoint, VduSpec};
use events::vnf::{VnfEvent, VnfStatus, drift_id};
use serde_json::{Value, json};
use testkit::Identity;
use testkit::openstack::{Cloud, IMAGE, NETWORK, VimConfig, in_test_network};
use testkit::wait::eventually;
use vnfm_tests::openstack::assert_not_on_the_log;
use vnfm_tests::{Options, System};

/// The conductor's drift period here: short, so that the test waits on the VIM, not on it.
const DRIFT_INTERVAL: Duration = Duration::from_secs(2);
/// A create to ACTIVE: Keystone, a flavor, a port and a TCG guest's BUILD (2.4–9.8 s on the
/// all-in-one), with the integrator's tests booting guests beside this one.
const DEPLOY_PATIENCE: Duration = Duration::from_secs(180);
/// A server deleted to the VNF ACTIVE again: Nova drops it from its lists in 2.3–2.5 s, a
/// drift period, the claim, and a respawn's deploy as above.
const HEAL_PATIENCE: Duration = Duration::from_secs(180);
/// A VNF delete to nothing of it in Nova and Neutron: the servers' deletes are waited for.
const GONE_PATIENCE: Duration = Duration::from_secs(90);

/// One VDU on `vnfm-guest` and `net_mgmt` (port security off, so the host reaches it whatever
/// the default security group says), 1 CPU / 256 MB / 1 GB, pinged, respawned on failure.
const VNFD: &str = "
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
metadata: {template_name: drift}
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      capabilities:
        nfv_compute:
          properties: {num_cpus: 1, mem_size: 256 MB, disk_size: 1 GB}
      properties:
        image: vnfm-guest
        monitoring_policy:
          name: ping
          parameters: {monitoring_delay: 1, count: 2, interval: 0.5, timeout: 1, retry: 2}
          actions: {failure: respawn}
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties: {management: true, anti_spoofing_protection: false}
      requirements:
        - virtualLink: {node: VL1}
        - virtualBinding: {node: VDU1}
    VL1:
      type: tosca.nodes.nfv.VL
      properties: {network_name: net_mgmt, vendor: Tacker}
";

/// The driver's access to the all-in-one the config names.
fn access(config: &VimConfig) -> OpenStackAccess {
    OpenStackAccess {
        auth_url: config.get("auth_url"),
        credentials: Credentials::Password {
            username: config.get("username"),
            password: config.get("password"),
        },
        project_name: config.get("project_name"),
        project_domain_name: config.get("project_domain_name"),
        user_domain_name: config.get("user_domain_name"),
        region_name: None,
        cert_verify: !config.get("cert_verify").eq_ignore_ascii_case("false"),
    }
}

/// `tacker vim-register --config-file` for the all-in-one, as the body tackerclient sends.
fn register_body(config: &VimConfig, name: &str) -> Value {
    json!({"vim": {
        "name": name,
        "type": "openstack",
        "auth_url": config.get("auth_url"),
        "is_default": false,
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
    }})
}

/// A server deployed with the driver under a made-up instance id, as a leak would leave one.
fn stray_request(vnf_id: &str, instance_id: &str) -> DeployRequest {
    let vdu = VduSpec {
        name: "VDU1".into(),
        image: Some(IMAGE.into()),
        mgmt_cp: Some("CP1".into()),
        nfv_compute: Some(ComputeSpec {
            num_cpus: 1,
            mem_size_mb: 256,
            disk_size_gb: Some(1),
        }),
        metadata: BTreeMap::new(),
        connection_points: vec![ConnectionPoint {
            name: "CP1".into(),
            network_name: Some(NETWORK.into()),
            management: true,
            anti_spoofing_protection: false,
            security_groups: vec![],
            ip_address: None,
            mac_address: None,
            order: Some(0),
        }],
        ..VduSpec::default()
    };
    DeployRequest {
        operation_id: format!("op-{instance_id}"),
        vnf_id: vnf_id.to_owned(),
        vdu: vdu.name.clone(),
        instance_id: instance_id.to_owned(),
        http_port: None,
        metrics_port: None,
        vdu_spec: Some(vdu),
        placement: vec![],
        user_data: None,
    }
}

/// Removes, when dropped, every server and port tagged with one of `vnf_ids` (the VNF's,
/// whatever instances it had by then, and the stray's), pass or fail.
struct Cleanup {
    vim: Arc<OpenStackVim>,
    vnf_ids: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let vim = Arc::clone(&self.vim);
        let vnf_ids = std::mem::take(&mut self.vnf_ids);
        testkit::block_on_own_thread(|| async move {
            let inventory = match vim.tagged_inventory().await {
                Ok(inventory) => inventory,
                Err(e) => return eprintln!("cleanup: cannot list the VIM: {e}"),
            };
            let mut instances: Vec<String> = inventory
                .servers
                .iter()
                .filter(|s| s.vnf_id.as_ref().is_some_and(|v| vnf_ids.contains(v)))
                .map(|s| s.instance_id.clone())
                .chain(
                    inventory
                        .ports
                        .iter()
                        .filter(|p| p.vnf_id.as_ref().is_some_and(|v| vnf_ids.contains(v)))
                        .map(|p| p.instance_id.clone()),
                )
                .collect();
            instances.sort_unstable();
            instances.dedup();
            for id in instances {
                if let Err(e) = vim.delete_vdu(&id).await {
                    eprintln!("cleanup of instance {id} failed: {e}");
                }
            }
        });
    }
}

/// `vnfm vim orphans --json` against the system's NATS, as the conductor identity with the
/// master key; answers its JSON.
fn vim_orphans(system: &System) -> Value {
    let access = system.nats.access();
    let output = std::process::Command::new(testkit::vnfm_bin())
        .args(["vim", "orphans", "--json", "--nats-url", &system.nats.url()])
        .args(access.role_args(Identity::Conductor, "conductor"))
        .output()
        .expect("run vnfm vim orphans");
    assert!(
        output.status.success(),
        "vnfm vim orphans: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("vnfm vim orphans --json prints JSON")
}

/// The orphans `listed` names on `vim_id`: (kind, instance id, VNF id).
fn orphans_on(listed: &Value, vim_id: &str) -> Vec<(String, String, String)> {
    let vim = listed["vims"]
        .as_array()
        .expect("a list of VIMs")
        .iter()
        .find(|vim| vim["vim_id"] == vim_id)
        .unwrap_or_else(|| panic!("VIM {vim_id} is listed: {listed}"));
    assert!(vim["error"].is_null(), "VIM {vim_id} listed: {vim}");
    vim["orphans"]
        .as_array()
        .expect("orphans")
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_owned(),
                o["instance_id"].as_str().unwrap_or_default().to_owned(),
                o["vnf_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_deleted_behind_vnfms_back_is_respawned_once_and_a_stray_is_an_orphan() {
    let suffix = short_id();
    let stray_vnf_id = format!("stray-{suffix}");
    let Scene {
        cloud,
        driver,
        system,
        vim_id,
        vnf_id,
        instance: old,
        _cleanup,
    } = Scene::start(VNFD, drift_options, &suffix, &[&stray_vnf_id]).await;
    assert!(in_test_network(old.mgmt_ip), "{}", old.mgmt_ip);
    let old_server_id = server_of(&cloud, &old.instance_id).await;

    // Behind vnfm's back.
    cloud.delete_server(&old_server_id).await;

    let healed = eventually(
        format!("VNF {vnf_id} is respawned after its server went"),
        HEAL_PATIENCE,
        || async {
            let vnf = system.vnf(&vnf_id).await;
            let replaced = vnf.status == Some(VnfStatus::Active)
                && !vnf.instances.is_empty()
                && vnf
                    .instances
                    .iter()
                    .all(|i| i.instance_id != old.instance_id);
            assert_ne!(
                vnf.status,
                Some(VnfStatus::Error),
                "the VNF went ERROR: {:?}",
                vnf.error_reason
            );
            if replaced {
                Ok(vnf)
            } else {
                Err(format!("{:?} {:?}", vnf.status, vnf.instances))
            }
        },
    )
    .await;
    let [new] = &healed.instances[..] else {
        panic!("one instance: {:?}", healed.instances)
    };
    assert_ne!(new.mgmt_ip, old.mgmt_ip, "a new management IP");
    assert!(in_test_network(new.mgmt_ip), "{}", new.mgmt_ip);
    let new_servers = cloud.servers_tagged(&instance_tag(&new.instance_id)).await;
    let [new_server] = &new_servers[..] else {
        panic!(
            "one server of instance {}: {new_servers:?}",
            new.instance_id
        )
    };
    assert_ne!(new_server["id"], old_server_id.as_str(), "a new server");
    assert_eq!(new_server["status"], "ACTIVE", "{new_server}");

    // A stray server, as a leak would leave it: no VNF's instance owns it. Booting it takes
    // several drift periods, in which no second heal may start.
    let stray_instance = uuid::Uuid::new_v4().to_string();
    driver
        .deploy_vdu(&stray_request(&stray_vnf_id, &stray_instance))
        .await
        .expect("the stray server deploys");

    let heals: Vec<_> = system
        .history(&vnf_id)
        .await
        .into_iter()
        .flat_map(|recorded| recorded.envelope.events)
        .filter_map(|event| match event {
            VnfEvent::HealStarted { failure, .. } => Some(failure),
            _ => None,
        })
        .collect();
    let [heal] = &heals[..] else {
        panic!("exactly one heal on the log: {heals:?}")
    };
    assert_eq!(heal.failure_id, drift_id(&old.instance_id, "gone"));
    assert_eq!(
        heal.reason,
        format!(
            "the VIM reports the server of instance {} gone",
            old.instance_id
        )
    );
    assert_eq!(heal.target.instance_id, old.instance_id);

    let listed = vim_orphans(&system);
    let orphans = orphans_on(&listed, &vim_id);
    for kind in ["server", "port"] {
        assert!(
            orphans.contains(&(
                kind.to_owned(),
                stray_instance.clone(),
                stray_vnf_id.clone()
            )),
            "the stray {kind} is an orphan: {orphans:?}"
        );
    }
    assert!(
        orphans
            .iter()
            .all(|(_, instance, vnf)| *instance != new.instance_id && *vnf != vnf_id),
        "nothing of the VNF is an orphan: {orphans:?}"
    );
    driver
        .delete_vdu(&stray_instance)
        .await
        .expect("the stray goes");

    delete_and_wait_gone(&system, &cloud, &vnf_id).await;
}

/// One VDU as [`VNFD`]'s, without a monitoring policy.
fn unmonitored_vnfd() -> String {
    let start = VNFD.find("        monitoring_policy:").expect("a policy");
    let end = VNFD.find("    CP1:").expect("a CP");
    format!("{}{}", &VNFD[..start], &VNFD[end..]).replace(
        "{template_name: drift}",
        "{template_name: drift-unmonitored}",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_behind_vnfms_back_without_a_policy_makes_its_vnf_error_once() {
    let Scene {
        cloud,
        system,
        vnf_id,
        instance,
        _cleanup,
        ..
    } = Scene::start(&unmonitored_vnfd(), drift_options, &short_id(), &[]).await;
    let server_id = server_of(&cloud, &instance.instance_id).await;

    // Behind vnfm's back.
    cloud.stop_server(&server_id).await;

    let failed = eventually(
        format!("VNF {vnf_id} is ERROR after its server stopped"),
        HEAL_PATIENCE,
        || async {
            let vnf = system.vnf(&vnf_id).await;
            if vnf.status == Some(VnfStatus::Error) {
                Ok(vnf)
            } else {
                Err(format!("{:?} {:?}", vnf.status, vnf.instances))
            }
        },
    )
    .await;
    let reason =
        format!("the VIM reports server {server_id} SHUTOFF (VDU VDU1 has no monitoring policy)");
    assert_eq!(failed.error_reason.as_deref(), Some(reason.as_str()));

    // An ERROR VNF may be deleted; the delete's waits span several drift periods, after
    // which the drift is still recorded once and nothing was healed.
    delete_and_wait_gone(&system, &cloud, &vnf_id).await;
    let events: Vec<VnfEvent> = system
        .history(&vnf_id)
        .await
        .into_iter()
        .flat_map(|recorded| recorded.envelope.events)
        .collect();
    let drifts: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            VnfEvent::VimDriftFound { drift } => Some(drift),
            _ => None,
        })
        .collect();
    let [drift] = &drifts[..] else {
        panic!("exactly one drift on the log: {drifts:?}")
    };
    assert_eq!(drift.drift_id, drift_id(&instance.instance_id, "SHUTOFF"));
    assert_eq!(drift.vim_state, "SHUTOFF");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, VnfEvent::HealStarted { .. })),
        "no heal: {events:?}"
    );
}

/// Eight hex digits for this test's names.
/// One VDU as [`VNFD`] but unmonitored, with a `user_data` script holding [`USER_DATA_MARKER`]
/// and a config drive.
fn user_data_vnfd() -> String {
    format!(
        "
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
metadata: {{template_name: user-data}}
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      capabilities:
        nfv_compute:
          properties: {{num_cpus: 1, mem_size: 256 MB, disk_size: 1 GB}}
      properties:
        image: vnfm-guest
        config_drive: true
        user_data_format: RAW
        user_data: |
{USER_DATA_SCRIPT}
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties: {{management: true, anti_spoofing_protection: false}}
      requirements:
        - virtualLink: {{node: VL1}}
        - virtualBinding: {{node: VDU1}}
    VL1:
      type: tosca.nodes.nfv.VL
      properties: {{network_name: net_mgmt, vendor: Tacker}}
"
    )
}

/// A line that occurs nowhere but in the VDU's `user_data`.
const USER_DATA_MARKER: &str = "vnfm-user-data-marker-4b7e";
/// The VDU's `user_data` as the VNFD holds it, indented under its key.
const USER_DATA_SCRIPT: &str =
    "          #!/bin/sh\n          echo vnfm-user-data-marker-4b7e > /run/marker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vdus_user_data_and_config_drive_reach_its_server_and_never_the_log_in_clear() {
    use base64::Engine;

    let Scene {
        cloud,
        system,
        vnf_id,
        instance,
        _cleanup,
        ..
    } = Scene::start(&user_data_vnfd(), Options::default, &short_id(), &[]).await;
    let server = cloud
        .server(&server_of(&cloud, &instance.instance_id).await)
        .await;
    let user_data = format!("#!/bin/sh\necho {USER_DATA_MARKER} > /run/marker\n");
    assert_eq!(
        server["OS-EXT-SRV-ATTR:user_data"],
        base64::engine::general_purpose::STANDARD.encode(&user_data),
        "{server}"
    );
    // Nova answers "True" for a config drive asked for; "" without one.
    let config_drive = server["config_drive"].as_str().unwrap_or_default();
    assert!(
        config_drive.eq_ignore_ascii_case("true"),
        "config_drive: {server}"
    );
    assert_not_on_the_log(&system, USER_DATA_MARKER, "the VDU's user_data").await;
    delete_and_wait_gone(&system, &cloud, &vnf_id).await;
}

/// The system's options in the drift tests: drift checked every [`DRIFT_INTERVAL`].
fn drift_options() -> Options {
    Options {
        drift_interval: Some(DRIFT_INTERVAL),
        ..Options::default()
    }
}

/// Where each test starts: a system (with `options()`) that has the all-in-one registered as a
/// VIM and one VNF of `vnfd` ACTIVE on it with one instance; the VNF's servers and ports, and
/// those of `more_vnf_ids`, removed when it drops.
struct Scene {
    cloud: Cloud,
    driver: Arc<OpenStackVim>,
    system: System,
    vim_id: String,
    vnf_id: String,
    instance: events::vnf::Instance,
    _cleanup: Cleanup,
}

impl Scene {
    async fn start(
        vnfd: &str,
        options: fn() -> Options,
        suffix: &str,
        more_vnf_ids: &[&str],
    ) -> Scene {
        let config = VimConfig::read();
        let cloud = Cloud::login(&config).await;
        let driver = Arc::new(OpenStackVim::new(access(&config)).expect("the driver builds"));
        let system = System::start_with(options()).await;
        let vim_id = register(&system, &config, suffix).await;
        let vnf_id = create(&system, vnfd, &vim_id, suffix).await;
        let cleanup = Cleanup {
            vim: Arc::clone(&driver),
            vnf_ids: std::iter::once(vnf_id.clone())
                .chain(more_vnf_ids.iter().map(|id| (*id).to_owned()))
                .collect(),
        };
        let active = wait_active(&system, &vnf_id).await;
        let [instance] = &active.instances[..] else {
            panic!("one instance: {:?}", active.instances)
        };
        Scene {
            instance: instance.clone(),
            cloud,
            driver,
            system,
            vim_id,
            vnf_id,
            _cleanup: cleanup,
        }
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Registers the all-in-one through the API; answers the VIM's id.
async fn register(system: &System, config: &VimConfig, suffix: &str) -> String {
    let (code, vim) = system
        .post(
            "/vims",
            register_body(config, &format!("aio-drift-{suffix}")),
        )
        .await;
    assert_eq!(code, 201, "{vim}");
    vim["vim"]["id"].as_str().expect("a VIM id").to_owned()
}

/// Onboards `template` and creates a VNF of it on `vim_id`; answers the VNF's id.
async fn create(system: &System, template: &str, vim_id: &str, suffix: &str) -> String {
    let vnfd_id = system.onboard(template).await;
    let (code, created) = system
        .post(
            "/vnfs",
            json!({"vnf": {"name": format!("drift-{suffix}"), "vnfd_id": vnfd_id,
                           "vim_id": vim_id, "attributes": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    created["vnf"]["id"].as_str().expect("a VNF id").to_owned()
}

/// Waits until the VNF is ACTIVE on the log; a create that fails fails the test at once.
async fn wait_active(system: &System, vnf_id: &str) -> events::vnf::Vnf {
    eventually(
        format!("VNF {vnf_id} is ACTIVE on the all-in-one"),
        DEPLOY_PATIENCE,
        || async {
            let vnf = system.vnf(vnf_id).await;
            assert_ne!(
                vnf.status,
                Some(VnfStatus::Error),
                "the create failed: {:?}",
                vnf.error_reason
            );
            if vnf.status == Some(VnfStatus::Active) {
                Ok(vnf)
            } else {
                Err(format!("{:?}", vnf.status))
            }
        },
    )
    .await
}

/// The Nova id of the instance's one server.
async fn server_of(cloud: &Cloud, instance_id: &str) -> String {
    let servers = cloud.servers_tagged(&instance_tag(instance_id)).await;
    let [server] = &servers[..] else {
        panic!("one server of instance {instance_id}: {servers:?}")
    };
    server["id"].as_str().expect("a server id").to_owned()
}

/// Deletes the VNF through the API and waits until nothing of it is left in Nova or Neutron.
async fn delete_and_wait_gone(system: &System, cloud: &Cloud, vnf_id: &str) {
    let (code, body) = system.delete(&format!("/vnfs/{vnf_id}")).await;
    assert!(code == 202 || code == 204, "{code} {body}");
    vnfm_tests::openstack::on_the_log(system, vnf_id, "deleted", |vnf| vnf.deleted).await;
    eventually(
        format!("nothing of VNF {vnf_id} is left in Nova or Neutron"),
        GONE_PATIENCE,
        || async {
            let servers = cloud.servers_tagged(&vnf_tag(vnf_id)).await;
            let ports = cloud.ports_tagged(&vnf_tag(vnf_id)).await;
            if servers.is_empty() && ports.is_empty() {
                Ok(())
            } else {
                Err(format!("servers {servers:?}, ports {ports:?}"))
            }
        },
    )
    .await;
}
