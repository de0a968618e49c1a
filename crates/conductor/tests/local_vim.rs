//! The local VIM against the real kernel: namespaces, veths, ICMP and HTTP from the host.
//!
//! Needs root (CI runs as root). Every test works under a prefix of its own and removes all
//! it made through a `Drop` guard, even when it fails. HTTP responders are `vnfm vdu-http`
//! processes, so these tests build the `vnfm` binary first (`testkit::vnfm_bin`).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use conductor::vim::local::{
    LocalVim, LocalVimConfig, cleanup_prefix, cleanup_prefix_blocking, config_path, remnants,
};
use conductor::vim::{ConfigRequest, DeployRequest, Vim, VimError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply on a veth between namespaces takes well under a millisecond; a second means none.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How many deploys race in the concurrency test.
const CONCURRENT_DEPLOYS: usize = 8;
const HTTP_PORT: u16 = 8080;
/// A SIGKILLed responder is reaped by its VIM's task within milliseconds.
const REAP_WAIT_MAX: Duration = Duration::from_secs(2);

/// Removes everything named with its prefix when dropped, pass or fail.
struct PrefixGuard {
    prefix: String,
}

impl PrefixGuard {
    /// A prefix no other test (in this or another process) is using: "t" and four base-36
    /// characters of a random UUID.
    fn new() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut random = uuid::Uuid::new_v4().as_u128();
        let mut prefix = String::from("t");
        for _ in 0..4 {
            prefix.push(ALPHABET[(random % 36) as usize] as char);
            random /= 36;
        }
        PrefixGuard { prefix }
    }

    fn vim(&self) -> LocalVim {
        LocalVim::new(LocalVimConfig::new(&self.prefix, testkit::vnfm_bin()))
            .expect("local VIM (these tests need root and iproute2)")
    }

    fn namespace(&self, instance_id: &str) -> String {
        format!("{}-{instance_id}", self.prefix)
    }

    /// Cleans up and asserts that nothing with the prefix is left.
    fn assert_nothing_left_after_cleanup(&self) {
        cleanup_prefix_blocking(&self.prefix).expect("cleanup");
        let left = remnants(&self.prefix).expect("remnants");
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        if let Err(e) = cleanup_prefix_blocking(&self.prefix) {
            eprintln!("cleanup of prefix {} failed: {e}", self.prefix);
        }
    }
}

fn request(instance_id: &str, http_port: Option<u16>) -> DeployRequest {
    DeployRequest {
        operation_id: format!("op-{instance_id}"),
        vnf_id: "vnf-1".to_owned(),
        vdu: "VDU1".to_owned(),
        instance_id: instance_id.to_owned(),
        http_port,
        metrics_port: None,
        vdu_spec: None,
        placement: vec![],
        user_data: None,
    }
}

fn new_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The processes inside a namespace, as an operator would list them; none when it is gone.
fn pids_in(namespace: &str) -> Vec<u32> {
    let output = std::process::Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
        .expect("run ip netns pids");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().parse().expect("a pid per line"))
        .collect()
}

/// The one process inside the namespace, which must be a `vnfm vdu-http` on `port`.
fn the_responder(namespace: &str, port: u16) -> u32 {
    let pids = pids_in(namespace);
    assert_eq!(pids.len(), 1, "processes in {namespace}: {pids:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    assert_eq!(
        args.get(1).map(String::as_str),
        Some("vdu-http"),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|pair| pair[0] == "--port" && pair[1] == port.to_string()),
        "{args:?}"
    );
    pids[0]
}

/// Waits until the process has exited and been reaped (no zombie left either).
async fn assert_reaped(pid: u32) {
    let proc_dir = format!("/proc/{pid}");
    let what = format!("process {pid} is reaped");
    testkit::eventually(what, REAP_WAIT_MAX, || async {
        if Path::new(&proc_dir).exists() {
            Err("it still exists (alive or a zombie)")
        } else {
            Ok(())
        }
    })
    .await;
}

fn in_range(ip: Ipv4Addr) -> bool {
    let [a, b, _, d] = ip.octets();
    a == 198 && (b == 18 || b == 19) && d % 2 == 1
}

/// One ICMP echo from the host over a raw socket.
async fn icmp_echo(ip: Ipv4Addr) -> Result<Duration, String> {
    let client = surge_ping::Client::new(&surge_ping::Config::default())
        .map_err(|e| format!("raw ICMP socket: {e}"))?;
    let identifier = surge_ping::PingIdentifier(uuid::Uuid::new_v4().as_fields().1);
    let mut pinger = client.pinger(IpAddr::V4(ip), identifier).await;
    pinger.timeout(PROBE_TIMEOUT);
    pinger
        .ping(surge_ping::PingSequence(0), &[0u8; 16])
        .await
        .map(|(_packet, rtt)| rtt)
        .map_err(|e| e.to_string())
}

/// A raw `GET path` over TCP; answers the whole response.
async fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect((ip, port)).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

#[tokio::test]
async fn deployed_vdu_answers_icmp_echo_from_the_host() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let id = new_instance_id();

    let deployed = vim.deploy_vdu(&request(&id, None)).await.unwrap();

    assert_eq!(deployed.instance_id, id);
    assert!(in_range(deployed.mgmt_ip), "{}", deployed.mgmt_ip);
    assert_eq!(vim.mgmt_ip(&id).await.unwrap(), Some(deployed.mgmt_ip));
    let rtt = icmp_echo(deployed.mgmt_ip).await;
    assert!(
        rtt.is_ok(),
        "no echo reply from {}: {rtt:?}",
        deployed.mgmt_ip
    );
    // The VDU's default route points at the host side of its pair.
    let namespace = guard.namespace(&id);
    let routes = std::process::Command::new("ip")
        .args(["-n", &namespace, "route", "show", "default"])
        .output()
        .unwrap();
    let gateway = Ipv4Addr::from(u32::from(deployed.mgmt_ip) - 1);
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains(&format!("default via {gateway} ")),
        "{routes}"
    );

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn deploying_twice_answers_the_same_vdu() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let id = new_instance_id();

    let first = vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();
    let second = vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();

    assert_eq!(first, second);
    assert_eq!(vim.list_instances().unwrap(), vec![id.clone()]);
    let made = remnants(&guard.prefix).unwrap();
    assert_eq!(made.namespaces.len(), 1, "{made:?}");
    assert_eq!(
        made.links.len(),
        1,
        "only the host side is in the host: {made:?}"
    );
    let response = http_get(second.mgmt_ip, HTTP_PORT, "/").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn instances_get_distinct_ips_even_when_deployed_concurrently() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let first = vim.deploy_vdu(&request("a", None)).await.unwrap();
    let second = vim.deploy_vdu(&request("b", None)).await.unwrap();
    assert_ne!(first.mgmt_ip, second.mgmt_ip);

    let ids: Vec<String> = (0..CONCURRENT_DEPLOYS).map(|i| format!("c{i}")).collect();
    let deploys = ids.iter().map(|id| {
        let vim = &vim;
        async move { vim.deploy_vdu(&request(id, None)).await }
    });
    let results = futures::future::join_all(deploys).await;

    let mut ips = HashSet::from([first.mgmt_ip, second.mgmt_ip]);
    for result in results {
        let deployed = result.unwrap();
        assert!(
            ips.insert(deployed.mgmt_ip),
            "duplicate {}",
            deployed.mgmt_ip
        );
    }
    assert_eq!(ips.len(), CONCURRENT_DEPLOYS + 2);
    let echoes = futures::future::join_all(ips.iter().map(|ip| icmp_echo(*ip))).await;
    assert!(echoes.iter().all(Result::is_ok), "{echoes:?}");
    assert_eq!(vim.list_instances().unwrap().len(), CONCURRENT_DEPLOYS + 2);

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

/// Two VIMs in one process do not share the in-process lock: only the host-wide `flock`
/// keeps their allocations apart, as it does for two conductors.
#[tokio::test]
async fn vims_with_different_prefixes_share_the_range_without_collisions() {
    let (guard_a, guard_b) = (PrefixGuard::new(), PrefixGuard::new());
    let (vim_a, vim_b) = (guard_a.vim(), guard_b.vim());
    let deploys_a = (0..4).map(|i| {
        let vim = &vim_a;
        async move { vim.deploy_vdu(&request(&format!("x{i}"), None)).await }
    });
    let deploys_b = (0..4).map(|i| {
        let vim = &vim_b;
        async move { vim.deploy_vdu(&request(&format!("x{i}"), None)).await }
    });

    let (a, b) = tokio::join!(
        futures::future::join_all(deploys_a),
        futures::future::join_all(deploys_b)
    );

    let ips: HashSet<Ipv4Addr> = a.into_iter().chain(b).map(|r| r.unwrap().mgmt_ip).collect();
    assert_eq!(ips.len(), 8, "{ips:?}");

    drop((vim_a, vim_b));
    guard_a.assert_nothing_left_after_cleanup();
    guard_b.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn http_responder_answers_any_get_on_the_mgmt_ip() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let id = new_instance_id();

    let deployed = vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();

    for path in ["/", "/health/check?x=1"] {
        let response = http_get(deployed.mgmt_ip, HTTP_PORT, path).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains(&id),
            "the body names the instance: {response}"
        );
    }
    // Only the port asked for is open.
    assert!(
        http_get(deployed.mgmt_ip, HTTP_PORT + 1, "/")
            .await
            .is_err()
    );

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

/// A VDU whose metrics an alarm watches serves them on the metrics port, beside its
/// `http_ping` port, from the file the VIM names for it; a scrape sees each change of the
/// file, and the delete removes the file with the namespace.
#[tokio::test]
async fn a_vdu_serves_its_metrics_file_on_the_metrics_port() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let id = new_instance_id();
    let mut asked = request(&id, Some(HTTP_PORT));
    asked.metrics_port = Some(events::spec::VDU_METRICS_PORT);
    let deployed = vim.deploy_vdu(&asked).await.unwrap();
    let metrics = conductor::vim::local::metrics_path(&guard.prefix, &id);

    let scrape = || http_get(deployed.mgmt_ip, events::spec::VDU_METRICS_PORT, "/metrics");
    let response = scrape().await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\n"),
        "no file yet, no metric: {response}"
    );
    std::fs::write(&metrics, "cpu_util 91\n").unwrap();
    assert!(scrape().await.unwrap().ends_with("\r\n\r\ncpu_util 91\n"));
    std::fs::write(&metrics, "cpu_util 12\n").unwrap();
    assert!(scrape().await.unwrap().ends_with("\r\n\r\ncpu_util 12\n"));
    // The http_ping port answers too, and serves the same metrics.
    let probed = http_get(deployed.mgmt_ip, HTTP_PORT, "/").await.unwrap();
    assert!(probed.contains(&id), "{probed}");
    // One responder serves both ports; a redeploy keeps it.
    let responder = the_responder(&guard.namespace(&id), HTTP_PORT);
    vim.deploy_vdu(&asked).await.unwrap();
    assert_eq!(
        the_responder(&guard.namespace(&id), events::spec::VDU_METRICS_PORT),
        responder
    );

    vim.delete_vdu(&id).await.unwrap();
    assert_reaped(responder).await;
    assert!(!metrics.exists(), "the delete removes the metrics file");
    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn deleted_vdu_is_gone_and_unreachable() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let id = new_instance_id();
    let deployed = vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();
    assert!(http_get(deployed.mgmt_ip, HTTP_PORT, "/").await.is_ok());
    let responder = the_responder(&guard.namespace(&id), HTTP_PORT);

    vim.delete_vdu(&id).await.unwrap();

    assert_reaped(responder).await;
    let left = remnants(&guard.prefix).unwrap();
    assert!(left.is_empty(), "delete left behind: {left:?}");
    assert!(vim.list_instances().unwrap().is_empty());
    assert_eq!(vim.mgmt_ip(&id).await.unwrap(), None);
    let started = std::time::Instant::now();
    let connect = tokio::time::timeout(
        PROBE_TIMEOUT,
        TcpStream::connect((deployed.mgmt_ip, HTTP_PORT)),
    )
    .await;
    assert!(!matches!(connect, Ok(Ok(_))), "still accepting connections");
    assert!(started.elapsed() <= PROBE_TIMEOUT + Duration::from_millis(200));
    assert!(
        icmp_echo(deployed.mgmt_ip).await.is_err(),
        "still answers ping"
    );
    vim.delete_vdu(&id).await.unwrap();

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn a_respawned_vdu_gets_a_new_ip() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let old = vim.deploy_vdu(&request("old", None)).await.unwrap();
    vim.delete_vdu("old").await.unwrap();

    let new = vim.deploy_vdu(&request("new", None)).await.unwrap();

    assert_ne!(old.mgmt_ip, new.mgmt_ip);
    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn half_built_vdus_are_finished_by_the_next_deploy() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let run = |args: &[&str]| {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}");
    };

    // A crash right after creating the namespace.
    let bare = format!("{}-bare", guard.prefix);
    run(&["netns", "add", &bare]);
    assert_eq!(vim.mgmt_ip("bare").await.unwrap(), None);
    let deployed = vim.deploy_vdu(&request("bare", None)).await.unwrap();
    assert_eq!(vim.mgmt_ip("bare").await.unwrap(), Some(deployed.mgmt_ip));
    assert!(icmp_echo(deployed.mgmt_ip).await.is_ok());

    // A crash after creating the veth pair, before any address or route.
    let broken = vim.deploy_vdu(&request("broken", None)).await.unwrap();
    let namespace = guard.namespace("broken");
    run(&[
        "-n",
        &namespace,
        "addr",
        "flush",
        "dev",
        &vdu_link(&guard.prefix, broken.mgmt_ip),
    ]);
    run(&["-n", &namespace, "link", "set", "lo", "down"]);
    assert_eq!(vim.mgmt_ip("broken").await.unwrap(), None);
    assert!(icmp_echo(broken.mgmt_ip).await.is_err());
    let repaired = vim.deploy_vdu(&request("broken", None)).await.unwrap();
    assert_eq!(repaired, broken, "repair keeps the slot");
    assert!(icmp_echo(repaired.mgmt_ip).await.is_ok());
    assert_eq!(remnants(&guard.prefix).unwrap().namespaces.len(), 2);

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

fn vdu_link(prefix: &str, mgmt_ip: Ipv4Addr) -> String {
    let slot = (u32::from(mgmt_ip) - u32::from(Ipv4Addr::new(198, 18, 0, 0))) / 2;
    format!("{prefix}n{slot}")
}

/// A VDU is independent of the conductor that deployed it: its responder outlives the VIM
/// (a killed conductor), and a new VIM (a restarted conductor) finds it rather than start a
/// second one.
#[tokio::test]
async fn a_responder_outlives_its_vim_and_a_new_vim_keeps_it() {
    let guard = PrefixGuard::new();
    let id = new_instance_id();
    let namespace = guard.namespace(&id);
    let first_vim = guard.vim();
    let deployed = first_vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();
    let responder = the_responder(&namespace, HTTP_PORT);

    drop(first_vim);

    let response = http_get(deployed.mgmt_ip, HTTP_PORT, "/").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let second_vim = guard.vim();
    assert_eq!(
        second_vim.mgmt_ip(&id).await.unwrap(),
        Some(deployed.mgmt_ip)
    );
    let redeployed = second_vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();
    assert_eq!(redeployed, deployed);
    assert_eq!(
        the_responder(&namespace, HTTP_PORT),
        responder,
        "the redeploy started another responder"
    );
    let response = http_get(deployed.mgmt_ip, HTTP_PORT, "/").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");

    second_vim.delete_vdu(&id).await.unwrap();
    assert_reaped(responder).await;
    drop(second_vim);
    guard.assert_nothing_left_after_cleanup();
}

/// A redeploy with another port retires the old responder; a responder that cannot start is
/// a failed deploy that leaves no process behind, and the next deploy succeeds.
#[tokio::test]
async fn responders_follow_the_port_and_report_failure_to_start() {
    let guard = PrefixGuard::new();
    let id = new_instance_id();
    let namespace = guard.namespace(&id);
    let vim = guard.vim();
    let deployed = vim
        .deploy_vdu(&request(&id, Some(HTTP_PORT)))
        .await
        .unwrap();
    let old = the_responder(&namespace, HTTP_PORT);

    vim.deploy_vdu(&request(&id, Some(HTTP_PORT + 1)))
        .await
        .unwrap();

    assert_reaped(old).await;
    the_responder(&namespace, HTTP_PORT + 1);
    assert!(http_get(deployed.mgmt_ip, HTTP_PORT + 1, "/").await.is_ok());

    let mut broken = LocalVimConfig::new(&guard.prefix, "/bin/false");
    broken.lock_path = vim.config().lock_path.clone();
    let broken = LocalVim::new(broken).unwrap();
    let other = new_instance_id();
    let failure = broken.deploy_vdu(&request(&other, Some(HTTP_PORT))).await;
    match failure {
        Err(VimError::Failed(message)) => assert!(
            message.contains("did not start") && message.contains(&other),
            "{message}"
        ),
        other => panic!("expected a failed deploy, got {other:?}"),
    }
    assert!(pids_in(&guard.namespace(&other)).is_empty());
    vim.deploy_vdu(&request(&other, Some(HTTP_PORT)))
        .await
        .unwrap();
    the_responder(&guard.namespace(&other), HTTP_PORT);

    drop((vim, broken));
    guard.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn cleanup_prefix_removes_every_namespace_and_veth_of_the_prefix() {
    let guard = PrefixGuard::new();
    let bystander = PrefixGuard::new();
    let vim = guard.vim();
    let other = bystander.vim();
    let mut responders = Vec::new();
    for id in ["p", "q", "r"] {
        vim.deploy_vdu(&request(id, Some(HTTP_PORT))).await.unwrap();
        responders.push(the_responder(&guard.namespace(id), HTTP_PORT));
    }
    let kept = other
        .deploy_vdu(&request("p", Some(HTTP_PORT)))
        .await
        .unwrap();
    let kept_responder = the_responder(&bystander.namespace("p"), HTTP_PORT);
    drop(vim);

    cleanup_prefix(&guard.prefix).await.unwrap();

    for responder in responders {
        assert_reaped(responder).await;
    }
    let left = remnants(&guard.prefix).unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        the_responder(&bystander.namespace("p"), HTTP_PORT),
        kept_responder,
        "another prefix's responder was hit"
    );
    assert_eq!(other.mgmt_ip("p").await.unwrap(), Some(kept.mgmt_ip));
    assert!(
        icmp_echo(kept.mgmt_ip).await.is_ok(),
        "another prefix's VDU was hit"
    );
    drop(other);
    bystander.assert_nothing_left_after_cleanup();
}

#[tokio::test]
async fn unknown_instances_are_absent_and_deleting_them_succeeds() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();

    assert_eq!(vim.mgmt_ip("never-deployed").await.unwrap(), None);
    vim.delete_vdu("never-deployed").await.unwrap();
    vim.delete_vdu("../not/a/name").await.unwrap();
    assert!(matches!(
        vim.deploy_vdu(&request("../escape", None)).await,
        Err(VimError::Failed(_))
    ));

    drop(vim);
    guard.assert_nothing_left_after_cleanup();
}

#[test]
fn bad_prefixes_are_refused() {
    for prefix in ["", "sixsix", "a-b", "Up", "a/b"] {
        let config = LocalVimConfig::new(prefix, testkit::vnfm_bin());
        assert!(
            matches!(LocalVim::new(config), Err(VimError::Failed(_))),
            "{prefix:?}"
        );
    }
}

/// `tacker vnf-update`: the local VIM writes the VNF's config beside each instance's
/// namespace, the same file when given the same config again, and removes it with the instance
/// (and with a cleanup of the prefix). An instance that does not exist fails the update.
#[tokio::test]
async fn a_config_is_written_beside_each_instance_and_removed_with_it() {
    let guard = PrefixGuard::new();
    let vim = guard.vim();
    let (kept, deleted) = (new_instance_id(), new_instance_id());
    for id in [&kept, &deleted] {
        vim.deploy_vdu(&request(id, None)).await.unwrap();
    }
    let config = serde_json::json!({"vdus": {"VDU1": {"config": {"mode": "fast"}}}});
    let update = ConfigRequest {
        operation_id: "op-update".into(),
        vnf_id: "vnf-1".into(),
        instance_ids: vec![kept.clone(), deleted.clone()],
        config: config.clone(),
    };
    for _ in 0..2 {
        vim.apply_config(&update).await.unwrap();
        for id in [&kept, &deleted] {
            let written = std::fs::read(config_path(&guard.prefix, id)).unwrap();
            let written: serde_json::Value = serde_json::from_slice(&written).unwrap();
            assert_eq!(written, config);
        }
    }
    vim.delete_vdu(&deleted).await.unwrap();
    assert!(!config_path(&guard.prefix, &deleted).exists());
    let failed = vim.apply_config(&update).await.unwrap_err();
    assert!(failed.to_string().contains(&deleted), "{failed}");
    guard.assert_nothing_left_after_cleanup();
    assert!(!config_path(&guard.prefix, &kept).exists());
}
