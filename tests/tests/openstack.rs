//! Needs the VIM config file at the path in `VNFM_OPENSTACK_VIM_CONFIG` (`ops/test` brings the
//! all-in-one up and sets it); fails, saying so, without it.

use std::net::Ipv4Addr;

use serde_json::Value;
use testkit::openstack::{Cloud, IMAGE, NETWORK, VimConfig, in_test_network};
use testkit::wait::eventually;
use vnfm_tests::System;
use vnfm_tests::openstack::{
    CLOUD_PATIENCE, MONITORING_DELAY_S, assert_not_on_the_log, guest_vnfd, on_the_log, probed_up,
    register, start, wait_vim,
};
use vnfm_tests::tacker::{id_in, run, run_refused};

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

/// `tacker vnfd-create` of the guest VNFD in `file`, named `os-guest`.
fn onboard_guest(file: &std::path::Path) -> [&str; 4] {
    [
        "vnfd-create",
        "--vnfd-file",
        file.to_str().expect("a UTF-8 path"),
        "os-guest",
    ]
}

/// `tacker vnf-create` of `os-vnf` from `os-guest` on the VIM named `vim`.
fn create_guest_on(vim: &str) -> [&str; 6] {
    [
        "vnf-create",
        "--vnfd-name",
        "os-guest",
        "--vim-name",
        vim,
        "os-vnf",
    ]
}

/// The VNF's servers in Nova, by vnfm's tag.
async fn servers_of(cloud: &Cloud, vnf_id: &str) -> Vec<Value> {
    cloud.servers_tagged(&format!("vnfm-vnf-{vnf_id}")).await
}

/// Waits until no server and no port of the VNF is left.
async fn nothing_left(cloud: &Cloud, vnf_id: &str) {
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
    let system = start().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let vnfd_file = dir.path().join("vnfd.yaml");
    std::fs::write(&vnfd_file, guest_vnfd()).unwrap();
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
    tacker(&root, &onboard_guest(&vnfd_file)).await;
    let created = tacker(&root, &create_guest_on("aio")).await;
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
    on_the_log(&system, &vnf_id, "deleted", |v| v.deleted).await;
    nothing_left(&cloud, &vnf_id).await;

    // The VIM's password is nowhere on the log.
    assert_not_on_the_log(&system, &config.get("password"), "the VIM's password").await;
}

#[tokio::test]
async fn a_vim_with_a_wrong_password_is_unreachable_with_the_reason_and_refuses_vnfs() {
    let config = VimConfig::read();
    let system = start().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-vnfm-password-7Qx";
    let config_file = dir.path().join("wrong.yaml");
    std::fs::write(&config_file, config.with("password", wrong)).unwrap();
    let vnfd_file = dir.path().join("vnfd.yaml");
    std::fs::write(&vnfd_file, guest_vnfd()).unwrap();

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
    tacker(&root, &onboard_guest(&vnfd_file)).await;
    let refused = tacker_refused(&root, &create_guest_on("wrong")).await;
    assert!(
        refused.contains(&reason),
        "the create quotes the reason: {refused}"
    );
    assert_not_on_the_log(&system, wrong, "the VIM's password").await;
}

/// A conductor killed (SIGKILL) while Nova builds the server it asked for: another conductor
/// takes the create over, finds that server by its instance tag and waits for it, so the VNF
/// ends ACTIVE on exactly one server.
#[tokio::test]
async fn a_conductor_killed_during_the_nova_create_leaves_exactly_one_server() {
    let config = VimConfig::read();
    let cloud = Cloud::login(&config).await;
    let system = System::start_separate().await;
    // Quick to hand a silent colleague's work over, and quick to find the VIM reachable.
    let flags = ["--ack-wait-s", "3", "--vim-check-interval-s", "2"];
    let mut first = system.spawn_conductor("conductor-1", &flags).await;
    register(&system, &config, "aio").await;
    let vnfd_id = system.onboard(&guest_vnfd()).await;
    let (code, created) = system
        .post(
            "/vnfs",
            serde_json::json!({"vnf": {"name": "os-killed", "vnfd_id": vnfd_id}}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let vnf_id = created["vnf"]["id"].as_str().expect("an id").to_owned();
    eventually("Nova builds the VNF's server", CLOUD_PATIENCE, || async {
        let servers = servers_of(&cloud, &vnf_id).await;
        match servers.as_slice() {
            [server] if server["status"] == "BUILD" => Ok(()),
            _ => Err(format!("{servers:?}")),
        }
    })
    .await;
    first.kill();
    let _second = system.spawn_conductor("conductor-2", &flags).await;

    let vnf = on_the_log(&system, &vnf_id, "ACTIVE after the takeover", |v| {
        v.status == Some(events::vnf::VnfStatus::Active)
    })
    .await;
    let servers = servers_of(&cloud, &vnf_id).await;
    assert_eq!(servers.len(), 1, "exactly one server: {servers:?}");
    assert_eq!(addresses(&servers[0]), vec![vnf.instances[0].mgmt_ip]);

    let (code, answer) = system.delete(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 204, "{answer}");
    nothing_left(&cloud, &vnf_id).await;
}

/// Two VDUs, the first watched by ping with `vdu_autoheal`, the second not watched.
fn two_guests_vnfd() -> String {
    let vdu = |name: &str, cp: &str, vl: &str, policy: &str| {
        format!(
            "    {name}:\n      type: tosca.nodes.nfv.VDU.Tacker\n      capabilities:\n        nfv_compute:\n          properties: {{num_cpus: 1, mem_size: 256 MB, disk_size: 1 GB}}\n      properties:\n        image: {IMAGE}\n{policy}    {cp}:\n      type: tosca.nodes.nfv.CP.Tacker\n      properties: {{management: true}}\n      requirements:\n        - virtualLink: {{node: {vl}}}\n        - virtualBinding: {{node: {name}}}\n    {vl}:\n      type: tosca.nodes.nfv.VL\n      properties: {{network_name: {NETWORK}, vendor: Tacker}}\n"
        )
    };
    let watched = format!(
        "        monitoring_policy:\n          name: ping\n          parameters: {{monitoring_delay: {MONITORING_DELAY_S}, count: 1, interval: 1, timeout: 1, retry: 2}}\n          actions: {{failure: vdu_autoheal}}\n"
    );
    format!(
        "tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0\nmetadata: {{template_name: two-guests}}\ntopology_template:\n  node_templates:\n{}{}",
        vdu("VDU1", "CP1", "VL1", &watched),
        vdu("VDU2", "CP2", "VL2", "")
    )
}

/// `vdu_autoheal` replaces the failed VDU's server and no other.
#[tokio::test]
async fn vdu_autoheal_replaces_the_failed_vdus_server_alone() {
    let config = VimConfig::read();
    let cloud = Cloud::login(&config).await;
    let system = start().await;
    register(&system, &config, "aio").await;
    let vnfd_id = system.onboard(&two_guests_vnfd()).await;
    let (code, created) = system
        .post(
            "/vnfs",
            serde_json::json!({"vnf": {"name": "os-autoheal", "vnfd_id": vnfd_id}}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let vnf_id = created["vnf"]["id"].as_str().expect("an id").to_owned();
    let vnf = on_the_log(&system, &vnf_id, "ACTIVE", |v| {
        v.status == Some(events::vnf::VnfStatus::Active)
    })
    .await;
    let of = |vnf: &events::vnf::Vnf, vdu: &str| {
        vnf.instances
            .iter()
            .find(|i| i.vdu == vdu)
            .cloned()
            .unwrap_or_else(|| panic!("an instance of {vdu}: {:?}", vnf.instances))
    };
    let (watched, other) = (of(&vnf, "VDU1"), of(&vnf, "VDU2"));
    probed_up(&system, &watched).await;
    let port = cloud
        .ports_tagged(&format!("vnfm-instance-{}", watched.instance_id))
        .await;
    cloud
        .set_port_up(port[0]["id"].as_str().expect("a port id"), false)
        .await;

    let healed = on_the_log(&system, &vnf_id, "VDU1 healed", |v| {
        v.status == Some(events::vnf::VnfStatus::Active)
            && v.instances.len() == 2
            && v.instances
                .iter()
                .all(|i| i.instance_id != watched.instance_id)
    })
    .await;
    assert_eq!(of(&healed, "VDU2"), other, "VDU2's server is untouched");
    let replaced = of(&healed, "VDU1");
    let servers = servers_of(&cloud, &vnf_id).await;
    let mut ips: Vec<Ipv4Addr> = servers.iter().flat_map(addresses).collect();
    ips.sort_unstable();
    let mut expected = vec![replaced.mgmt_ip, other.mgmt_ip];
    expected.sort_unstable();
    assert_eq!(ips, expected, "the new VDU1 server and the old VDU2 server");

    let (code, answer) = system.delete(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 204, "{answer}");
    nothing_left(&cloud, &vnf_id).await;
}
