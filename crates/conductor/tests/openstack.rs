//! The `openstack` VIM against a real OpenStack (the all-in-one of `ops/openstack-aio`):
//! Keystone, Nova, Neutron and Glance on this machine, guests booted under qemu TCG.
//!
//! Needs the VIM config file (Tacker's `vim-register` format) at the path in
//! `VNFM_OPENSTACK_VIM_CONFIG`, the image `vnfm-guest` (answers ping and HTTP on port 80) and
//! the network `net_mgmt` (198.51.100.0/24, reached from this host). Fails, saying so, when the
//! variable is unset. Every test works under instance and VNF ids of its own and removes what
//! it made through a `Drop` guard, pass or fail.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conductor::vim::openstack::{
    Credentials, OpenStackAccess, OpenStackVim, ServerState, TaggedInventory,
};
use conductor::vim::{DeployRequest, Vim, VimError};
use events::spec::{ComputeSpec, ConnectionPoint, Placement, PlacementPolicy, VduSpec};
use testkit::openstack::{Cloud, IMAGE, NETWORK, VimConfig, in_test_network};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCG guest answers 6–7 s after the create call (13.6 s cold); ACTIVE comes first, so the
/// guest's own boot is what remains after the deploy.
const GUEST_ANSWER_PATIENCE: Duration = Duration::from_secs(60);
/// Nova drops a deleted server from its lists within 2.3–2.5 s.
const GONE_PATIENCE: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// A guest on the host's own bridge answers within milliseconds: a second means no answer.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

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

fn vim() -> Arc<OpenStackVim> {
    Arc::new(OpenStackVim::new(access(&VimConfig::read())).expect("the VIM builds"))
}

/// The VDU every test boots: `vnfm-guest` on `net_mgmt`, 1 CPU, 256 MB, 1 GB. Port security
/// off, so that the host's probes pass whatever the project's default security group says.
fn vdu() -> VduSpec {
    VduSpec {
        name: "VDU1".into(),
        image: Some(IMAGE.into()),
        mgmt_cp: Some("CP1".into()),
        nfv_compute: Some(ComputeSpec {
            num_cpus: 1,
            mem_size_mb: 256,
            disk_size_gb: Some(1),
        }),
        metadata: BTreeMap::from([("purpose".to_owned(), "vnfm-test".to_owned())]),
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
    }
}

fn request(vnf_id: &str, instance_id: &str, vdu: VduSpec) -> DeployRequest {
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

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Deletes its instances when dropped, pass or fail.
struct Cleanup {
    vim: Arc<OpenStackVim>,
    instance_ids: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let vim = Arc::clone(&self.vim);
        let ids = std::mem::take(&mut self.instance_ids);
        testkit::block_on_own_thread(|| async move {
            for id in ids {
                if let Err(e) = vim.delete_vdu(&id).await {
                    eprintln!("cleanup of instance {id} failed: {e}");
                }
            }
        });
    }
}

/// One ICMP echo with a one-second wait, as `ping -c1 -W1` (iputils' ping is not on every
/// machine of this kind; the raw socket is the local VIM tests' own).
async fn ping(ip: Ipv4Addr) -> Result<(), String> {
    assert!(in_test_network(ip), "{ip} is outside net_mgmt: not probed");
    let client = surge_ping::Client::new(&surge_ping::Config::default())
        .map_err(|e| format!("raw ICMP socket: {e}"))?;
    let identifier = surge_ping::PingIdentifier(uuid::Uuid::new_v4().as_fields().1);
    let mut pinger = client.pinger(IpAddr::V4(ip), identifier).await;
    pinger.timeout(PING_TIMEOUT);
    match pinger.ping(surge_ping::PingSequence(0), &[0u8; 16]).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("no echo reply from {ip}: {e}")),
    }
}

async fn http_get(ip: Ipv4Addr, port: u16) -> Result<String, String> {
    assert!(in_test_network(ip), "{ip} is outside net_mgmt: not probed");
    let exchange = async {
        let mut stream = TcpStream::connect((ip, port)).await?;
        stream
            .write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(HTTP_TIMEOUT, exchange).await {
        Ok(Ok(answer)) if answer.starts_with("HTTP/1.") => Ok(answer),
        Ok(Ok(answer)) => Err(format!("not HTTP: {answer:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {HTTP_TIMEOUT:?}")),
    }
}

/// What the inventory holds of one instance: its servers and ports.
fn of_instance(inventory: &TaggedInventory, instance_id: &str) -> (usize, usize) {
    (
        inventory
            .servers
            .iter()
            .filter(|s| s.instance_id == instance_id)
            .count(),
        inventory
            .ports
            .iter()
            .filter(|p| p.instance_id == instance_id)
            .count(),
    )
}

#[tokio::test]
async fn deploy_answers_ping_and_http_redeploy_finds_the_same_server_delete_leaves_nothing() {
    let vim = vim();
    let (vnf_id, instance_id) = (new_id(), new_id());
    let _cleanup = Cleanup {
        vim: Arc::clone(&vim),
        instance_ids: vec![instance_id.clone()],
    };
    let placement = PlacementPolicy {
        name: "together".into(),
        policy: Placement::Affinity,
        strict: true,
        description: None,
        targets: vec!["VDU1".into()],
    };
    let request = DeployRequest {
        placement: vec![placement],
        ..request(&vnf_id, &instance_id, vdu())
    };
    let group_name = format!("vnfm-{vnf_id}-together");
    let nova = Cloud::login(&VimConfig::read()).await;

    let started = Instant::now();
    let deployed = vim.deploy_vdu(&request).await.expect("deploys");
    let active_after = started.elapsed();
    assert!(
        in_test_network(deployed.mgmt_ip),
        "management IP {} outside {NETWORK}",
        deployed.mgmt_ip
    );
    testkit::wait::eventually(
        format_args!("{} answers ping", deployed.mgmt_ip),
        GUEST_ANSWER_PATIENCE,
        || ping(deployed.mgmt_ip),
    )
    .await;
    let pingable_after = started.elapsed();
    let page = testkit::wait::eventually(
        format_args!("{} answers HTTP on port 80", deployed.mgmt_ip),
        GUEST_ANSWER_PATIENCE,
        || http_get(deployed.mgmt_ip, 80),
    )
    .await;
    eprintln!(
        "create → ACTIVE {:.1} s, → pingable {:.1} s, → HTTP {:.1} s ({} bytes)",
        active_after.as_secs_f64(),
        pingable_after.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        page.len()
    );
    assert_eq!(
        vim.server_state(&instance_id).await.expect("state"),
        ServerState::Active
    );
    assert_eq!(
        vim.mgmt_ip(&instance_id).await.expect("mgmt IP"),
        Some(deployed.mgmt_ip)
    );

    // Deploying again (a redelivered create) finds the instance: one server, one port.
    let again = vim.deploy_vdu(&request).await.expect("deploys again");
    assert_eq!(again, deployed);
    let inventory = vim.tagged_inventory().await.expect("inventory");
    assert_eq!(
        of_instance(&inventory, &instance_id),
        (1, 1),
        "{inventory:?}"
    );
    let server = inventory
        .servers
        .iter()
        .find(|s| s.instance_id == instance_id)
        .expect("listed");
    assert_eq!(server.vnf_id.as_deref(), Some(vnf_id.as_str()));
    // The placement policy is a server group holding the server.
    let groups = nova.server_groups_named(&group_name).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["policy"], "affinity");
    assert_eq!(groups[0]["members"], serde_json::json!([server.server_id]));

    let started = Instant::now();
    vim.delete_vdu(&instance_id).await.expect("deletes");
    eprintln!("delete → gone {:.1} s", started.elapsed().as_secs_f64());
    let inventory = vim.tagged_inventory().await.expect("inventory");
    assert_eq!(
        of_instance(&inventory, &instance_id),
        (0, 0),
        "{inventory:?}"
    );
    assert_eq!(
        vim.server_state(&instance_id).await.expect("state"),
        ServerState::Gone
    );
    assert_eq!(vim.mgmt_ip(&instance_id).await.expect("mgmt IP"), None);
    assert!(
        nova.server_groups_named(&group_name).await.is_empty(),
        "the emptied server group is removed"
    );
    vim.delete_vdu(&instance_id)
        .await
        .expect("deleting what is gone succeeds");
}

/// nova-api stopped (SIGSTOP to its process group, as `ops/openstack-aio` recorded it) until
/// dropped: its socket still accepts, nothing answers, as an overloaded or hung API.
struct Stalled(String);

impl Stalled {
    fn nova_api() -> Stalled {
        let config = VimConfig::read();
        let pid_file = config
            .path
            .parent()
            .expect("the VIM config is in the all-in-one's state directory")
            .join("pids/nova-api.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
        let stalled = Stalled(pid.trim().to_owned());
        stalled.signal("STOP");
        stalled
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{}", self.0)])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} -- -{} failed", self.0);
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.signal("CONT");
    }
}

/// Each call of the stalled test's driver gives up after this (the real limit is 30 s): over
/// four times the slowest call measured on the all-in-one at rest (a server create, 2.3 s), so
/// that on a machine busy with the other tests it is the stall that makes calls time out.
const STALLED_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long nova-api stays stopped: the deploy's first two Nova calls time out meanwhile (10 s,
/// 2 s of backoff, 10 s), and two of its four retries are left for the rest.
const STALL: Duration = Duration::from_secs(25);

#[tokio::test]
async fn a_deploy_rides_out_a_stalled_nova_api_and_makes_one_server() {
    let vim = Arc::new(
        OpenStackVim::with_request_timeout(access(&VimConfig::read()), STALLED_CALL_TIMEOUT)
            .expect("the VIM builds"),
    );
    let (vnf_id, instance_id) = (new_id(), new_id());
    let _cleanup = Cleanup {
        vim: self::vim(),
        instance_ids: vec![instance_id.clone()],
    };

    let stalled = Stalled::nova_api();
    let started = Instant::now();
    let resume = tokio::spawn(async move {
        tokio::time::sleep(STALL).await;
        drop(stalled);
    });
    let deployed = vim
        .deploy_vdu(&request(&vnf_id, &instance_id, vdu()))
        .await
        .expect("deploys once nova-api answers again");
    resume.await.expect("nova-api resumed");
    assert!(
        started.elapsed() >= STALL,
        "the deploy cannot have finished while nova-api was stopped"
    );
    assert!(in_test_network(deployed.mgmt_ip), "{}", deployed.mgmt_ip);
    let inventory = self::vim().tagged_inventory().await.expect("inventory");
    assert_eq!(
        of_instance(&inventory, &instance_id),
        (1, 1),
        "{inventory:?}"
    );
}

#[tokio::test]
async fn a_server_deleted_behind_the_drivers_back_is_gone_and_its_ports_are_still_removed() {
    let vim = vim();
    let (vnf_id, instance_id) = (new_id(), new_id());
    let _cleanup = Cleanup {
        vim: Arc::clone(&vim),
        instance_ids: vec![instance_id.clone()],
    };
    vim.deploy_vdu(&request(&vnf_id, &instance_id, vdu()))
        .await
        .expect("deploys");
    let cloud = Cloud::login(&VimConfig::read()).await;
    let servers = cloud
        .servers_tagged(&format!("vnfm-instance-{instance_id}"))
        .await;
    assert_eq!(servers.len(), 1, "{servers:?}");
    cloud
        .delete_server(servers[0]["id"].as_str().expect("an id"))
        .await;
    testkit::wait::eventually("the server is reported Gone", GONE_PATIENCE, || async {
        match vim.server_state(&instance_id).await {
            Ok(ServerState::Gone) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Its port is still there, tagged, until vnfm deletes the instance.
    let inventory = vim.tagged_inventory().await.expect("inventory");
    assert_eq!(
        of_instance(&inventory, &instance_id),
        (0, 1),
        "{inventory:?}"
    );
    vim.delete_vdu(&instance_id).await.expect("deletes");
    let inventory = vim.tagged_inventory().await.expect("inventory");
    assert_eq!(
        of_instance(&inventory, &instance_id),
        (0, 0),
        "{inventory:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_fails_the_check_with_a_reason_that_holds_no_password() {
    let config = VimConfig::read();
    vim().check().await.expect("the right credentials pass");
    let wrong_password = format!("wrong-{}", new_id());
    let access = OpenStackAccess {
        credentials: Credentials::Password {
            username: config.get("username"),
            password: wrong_password.clone(),
        },
        ..access(&config)
    };
    let reason = OpenStackVim::new(access)
        .expect("builds")
        .check()
        .await
        .expect_err("refused");
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains(&wrong_password), "{reason}");
    assert!(!reason.contains(&config.get("password")), "{reason}");
}

#[tokio::test]
async fn failed_deploys_leave_no_server_and_no_port() {
    let vim = vim();
    let vnf_id = new_id();
    let cases: [(&str, VduSpec, &str); 3] = [
        (
            "an image that does not exist",
            VduSpec {
                image: Some(format!("vnfm-no-such-image-{}", new_id())),
                ..vdu()
            },
            "Glance has no image",
        ),
        (
            // Fails at the server create, after its port was made.
            "a key pair that does not exist",
            VduSpec {
                key_name: Some("vnfm-no-such-key".into()),
                ..vdu()
            },
            "Nova POST /servers answered 400",
        ),
        (
            // Fails in the scheduler: the server goes ERROR with Nova's fault. 16 CPUs are
            // within the project's quota (20) and beyond the host's 2 cores × Placement's
            // allocation ratio (4 in Zed).
            "more CPUs than the host has",
            VduSpec {
                nfv_compute: Some(ComputeSpec {
                    num_cpus: 16,
                    mem_size_mb: 256,
                    disk_size_gb: Some(1),
                }),
                ..vdu()
            },
            "No valid host",
        ),
    ];
    let instance_ids: Vec<String> = cases.iter().map(|_| new_id()).collect();
    let _cleanup = Cleanup {
        vim: Arc::clone(&vim),
        instance_ids: instance_ids.clone(),
    };
    for ((what, vdu, expected), instance_id) in cases.into_iter().zip(&instance_ids) {
        let failure = vim
            .deploy_vdu(&request(&vnf_id, instance_id, vdu))
            .await
            .expect_err(what);
        let text = failure.to_string();
        assert!(text.contains(expected), "{what}: {text}");
        if expected == "No valid host" {
            assert!(
                matches!(failure, VimError::Exhausted(_)),
                "{what}: {failure:?}"
            );
        }
        let inventory = vim.tagged_inventory().await.expect("inventory");
        assert_eq!(
            of_instance(&inventory, instance_id),
            (0, 0),
            "{what}: {inventory:?}"
        );
        assert_eq!(
            vim.server_state(instance_id).await.expect("state"),
            ServerState::Gone,
            "{what}"
        );
    }
}
