//! vnfm on a real OpenStack (the all-in-one of `ops/openstack-aio`), driven by
//! python-tackerclient 1.14.0 as Tacker's users drove Tacker: the VIM registered with
//! `vim-register`, a VNF created on it, its VDU watched by ping and respawned when it stops
//! answering, scaled out and in, and deleted without leaving a server or a port.
//!
//! Needs the VIM config file at the path in `VNFM_OPENSTACK_VIM_CONFIG` (`ops/test` brings the
//! all-in-one up and sets it); fails, saying so, without it.

use std::net::Ipv4Addr;
use std::time::Duration;

use events::monitor::cidr::{Ipv4Cidr, LOCAL_VIM_RANGE, ProbeCidrs};
use serde_json::Value;
use testkit::openstack::{Cloud, IMAGE, NETWORK, NETWORK_PREFIX, VimConfig, in_test_network};
use testkit::wait::eventually;
use vnfm_tests::tacker::{id_in, run, run_refused};
use vnfm_tests::{Options, System};

/// A TCG guest boots in 6–12 s once Nova made it (up to 40 s for the first one after `up`);
/// the conductor waits for ACTIVE, and the monitor starts probing this long after that.
const MONITORING_DELAY_S: u64 = 30;
/// Create → ACTIVE takes 5–13 s on the all-in-one; a respawn deletes a server and makes one.
const CLOUD_PATIENCE: Duration = Duration::from_secs(120);
/// The conductor's VIM checks in these tests.
const VIM_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// One monitored VDU (ping → respawn) on `net_mgmt`, sized with `nfv_compute`, and a scaling
/// policy of one to two instances.
fn vnfd() -> String {
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
async fn system() -> System {
    let (network, len) = NETWORK_PREFIX;
    let net_mgmt: Ipv4Cidr = format!("{network}/{len}").parse().expect("a CIDR");
    System::start_with(Options {
        probe_cidrs: Some(ProbeCidrs::new(vec![LOCAL_VIM_RANGE, net_mgmt]).expect("ranges")),
        vim_check_interval: Some(VIM_CHECK_INTERVAL),
        ..Options::default()
    })
    .await
}

/// Runs `tacker ARGS` on a blocking thread (the CLI takes a second or two to start).
async fn tacker(root: &str, args: &[&str]) -> String {
    let root = root.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&root, &args)
    })
    .await
    .expect("tacker ran")
}

async fn tacker_refused(root: &str, args: &[&str]) -> String {
    let root = root.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_refused(&root, &args)
    })
    .await
    .expect("tacker ran")
}

/// Waits until the VIM's show has `status`; answers the show.
async fn wait_vim(system: &System, vim_id: &str, status: &str) -> Value {
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
async fn on_the_log(
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
async fn probed_up(system: &System, instance: &events::vnf::Instance) {
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

/// The VNF's servers in Nova, by vnfm's tag.
async fn servers_of(cloud: &Cloud, vnf_id: &str) -> Vec<Value> {
    cloud.servers_tagged(&format!("vnfm-vnf-{vnf_id}")).await
}

/// The server's addresses on `net_mgmt`.
fn addresses(server: &Value) -> Vec<Ipv4Addr> {
    server["addresses"][NETWORK]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["addr"].as_str()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn tackers_client_runs_a_vnf_on_openstack_heals_scales_and_deletes_it_leaving_nothing() {
    let config = VimConfig::read();
    let cloud = Cloud::login(&config).await;
    let system = system().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let vnfd_file = dir.path().join("vnfd.yaml");
    std::fs::write(&vnfd_file, vnfd()).unwrap();
    let config_file = config.path.to_str().unwrap();

    let registered = tacker(
        &root,
        &[
            "vim-register",
            "--config-file",
            config_file,
            "--is-default",
            "aio",
        ],
    )
    .await;
    let vim_id = id_in(&registered);
    wait_vim(&system, &vim_id, "REACHABLE").await;
    tacker(
        &root,
        &[
            "vnfd-create",
            "--vnfd-file",
            vnfd_file.to_str().unwrap(),
            "os-guest",
        ],
    )
    .await;
    let created = tacker(
        &root,
        &[
            "vnf-create",
            "--vnfd-name",
            "os-guest",
            "--vim-name",
            "aio",
            "os-vnf",
        ],
    )
    .await;
    let vnf_id = id_in(&created);
    assert!(created.contains(&vim_id), "{created}");

    // ACTIVE with the server's Neutron address, and probed by the monitor.
    let vnf = on_the_log(&system, &vnf_id, "ACTIVE on the all-in-one", |v| {
        v.status == Some(events::vnf::VnfStatus::Active)
    })
    .await;
    assert_eq!(vnf.instances.len(), 1, "{:?}", vnf.instances);
    let first = vnf.instances[0].clone();
    assert!(in_test_network(first.mgmt_ip), "{}", first.mgmt_ip);
    let servers = servers_of(&cloud, &vnf_id).await;
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(addresses(&servers[0]), vec![first.mgmt_ip]);
    let shown = tacker(&root, &["vnf-show", "os-vnf"]).await;
    assert!(shown.contains(&first.mgmt_ip.to_string()), "{shown}");
    probed_up(&system, &first).await;

    // The guest cut off (its port's admin state down): detected by ping, respawned once.
    let ports = cloud.ports_tagged(&format!("vnfm-vnf-{vnf_id}")).await;
    assert_eq!(ports.len(), 1, "{ports:?}");
    cloud
        .set_port_up(ports[0]["id"].as_str().expect("a port id"), false)
        .await;
    let healed = eventually("the VDU respawned", CLOUD_PATIENCE, || async {
        let vnf = system.vnf(&vnf_id).await;
        let replaced = vnf.status == Some(events::vnf::VnfStatus::Active)
            && vnf.instances.len() == 1
            && vnf.instances[0].instance_id != first.instance_id;
        if replaced {
            Ok(vnf)
        } else {
            Err(format!("{:?} {:?}", vnf.status, vnf.instances))
        }
    })
    .await;
    assert_eq!(healed.heals_at.len(), 1, "one heal: {:?}", healed.heals_at);
    let second = healed.instances[0].clone();
    assert_ne!(second.mgmt_ip, first.mgmt_ip, "a new server, a new address");
    eventually("only the new server is left", CLOUD_PATIENCE, || async {
        let servers = servers_of(&cloud, &vnf_id).await;
        let ips: Vec<Vec<Ipv4Addr>> = servers.iter().map(addresses).collect();
        if ips == vec![vec![second.mgmt_ip]] {
            Ok(())
        } else {
            Err(format!("{ips:?}"))
        }
    })
    .await;
    probed_up(&system, &second).await;
    assert_eq!(
        system.vnf(&vnf_id).await.heals_at.len(),
        1,
        "still one heal"
    );

    // Scale out and in.
    let scale = |kind: &'static str| {
        let root = root.clone();
        async move {
            tacker(
                &root,
                &[
                    "vnf-scale",
                    "--vnf-name",
                    "os-vnf",
                    "--scaling-policy-name",
                    "SP1",
                    "--scaling-type",
                    kind,
                ],
            )
            .await
        }
    };
    scale("out").await;
    let out = on_the_log(&system, &vnf_id, "scaled out", |v| {
        v.status == Some(events::vnf::VnfStatus::Active) && v.instances.len() == 2
    })
    .await;
    assert_eq!(servers_of(&cloud, &vnf_id).await.len(), 2);
    assert!(out.instances.iter().all(|i| in_test_network(i.mgmt_ip)));
    scale("in").await;
    on_the_log(&system, &vnf_id, "scaled in", |v| {
        v.status == Some(events::vnf::VnfStatus::Active) && v.instances.len() == 1
    })
    .await;
    eventually("one server after the scale in", CLOUD_PATIENCE, || async {
        let count = servers_of(&cloud, &vnf_id).await.len();
        if count == 1 {
            Ok(())
        } else {
            Err(format!("{count} servers"))
        }
    })
    .await;

    // Deleted: no server and no port of the VNF is left.
    tacker(&root, &["vnf-delete", "os-vnf"]).await;
    system
        .wait_vnf(&vnf_id, "deleted", |code, _| code == 404)
        .await;
    let tag = format!("vnfm-vnf-{vnf_id}");
    eventually("nothing of the VNF is left", CLOUD_PATIENCE, || async {
        let (servers, ports) = (
            cloud.servers_tagged(&tag).await,
            cloud.ports_tagged(&tag).await,
        );
        if servers.is_empty() && ports.is_empty() {
            Ok(())
        } else {
            Err(format!("{} servers, {} ports", servers.len(), ports.len()))
        }
    })
    .await;

    // The VIM's password is nowhere on the log.
    assert_no_password_on_the_log(&system, &config.get("password")).await;
}

#[tokio::test]
async fn a_vim_with_a_wrong_password_is_unreachable_with_the_reason_and_refuses_vnfs() {
    let config = VimConfig::read();
    let system = system().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-vnfm-password-7Qx";
    let config_file = dir.path().join("wrong.yaml");
    std::fs::write(&config_file, config.with("password", wrong)).unwrap();
    let vnfd_file = dir.path().join("vnfd.yaml");
    std::fs::write(&vnfd_file, vnfd()).unwrap();

    let registered = tacker(
        &root,
        &[
            "vim-register",
            "--config-file",
            config_file.to_str().unwrap(),
            "wrong",
        ],
    )
    .await;
    let vim_id = id_in(&registered);
    let shown = wait_vim(&system, &vim_id, "UNREACHABLE").await;
    let reason = shown["vim"]["status_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("401"),
        "the reason names Keystone's refusal: {shown}"
    );
    assert!(!reason.contains(wrong), "{reason}");
    tacker(
        &root,
        &[
            "vnfd-create",
            "--vnfd-file",
            vnfd_file.to_str().unwrap(),
            "os-guest",
        ],
    )
    .await;
    let refused = tacker_refused(
        &root,
        &[
            "vnf-create",
            "--vnfd-name",
            "os-guest",
            "--vim-name",
            "wrong",
            "os-vnf",
        ],
    )
    .await;
    assert!(
        refused.contains(&reason),
        "the create quotes the reason: {refused}"
    );
    assert_no_password_on_the_log(&system, wrong).await;
}

/// Reads the whole lifecycle stream as the reader identity: `password` occurs in no message.
async fn assert_no_password_on_the_log(system: &System, password: &str) {
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
            !String::from_utf8_lossy(&message.payload).contains(password),
            "the VIM's password is in clear on {}",
            message.subject
        );
    }
    assert!(messages > 0, "the log was read");
}
