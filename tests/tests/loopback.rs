//! The loopback VIM end to end: VDU instances are addresses in 127.128.0.0/9 with nothing
//! deployed, probed by real ICMP; an address blocked with `vnfm vim loopback block` is declared
//! failed and its VDU respawned at a new address, and `vnfm up --vim loopback` starts a system
//! whose monitor probes that range.

use std::net::Ipv4Addr;
use std::time::Duration;

use conductor::vim::loopback::{self, Blocklist};
use events::monitor::cidr::LOOPBACK_VIM_RANGE;
use events::vnf::{VnfEvent, VnfStatus};
use testkit::eventually;
use vnfm_tests::{Options, PATIENCE, System, monitored_vnfd};

/// How long `vnfm up` may take to exit after SIGTERM (as in `up.rs`).
const STOP_TIMEOUT: Duration = Duration::from_secs(12);

/// Runs `vnfm vim loopback ARGS` with `stdin` (if any) and answers what it printed.
async fn vim_loopback(args: &[&str], stdin: Option<&str>) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(testkit::vnfm_bin())
        .args(["vim", "loopback"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vnfm");
    let mut input = child.stdin.take().expect("its stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .unwrap();
    drop(input);
    let output = child.wait_with_output().await.expect("vnfm exits");
    assert!(
        output.status.success(),
        "vnfm vim loopback {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_address_is_respawned_at_a_new_one_and_the_others_are_untouched() {
    let system = System::start_with(Options {
        loopback_vim: true,
        ..Options::default()
    })
    .await;
    let blocklist = system
        .blocklist
        .clone()
        .expect("the loopback VIM's blocklist");
    let ids = system
        .active_vnfs(&monitored_vnfd("ping", "respawn", false), 3)
        .await;
    let mut instances = Vec::new();
    for vnf_id in &ids {
        let instance = system.probed_instance(vnf_id, 0).await;
        assert!(
            LOOPBACK_VIM_RANGE.contains(instance.mgmt_ip),
            "{}",
            instance.mgmt_ip
        );
        instances.push(instance);
    }
    let mut addresses: Vec<Ipv4Addr> = instances.iter().map(|i| i.mgmt_ip).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "each instance its own address");
    assert!(system.remnants().is_empty(), "nothing is deployed");
    assert_eq!(blocklist.members().await.unwrap(), Vec::<Ipv4Addr>::new());

    let victim = instances[0].clone();
    let blocked_at = time::OffsetDateTime::now_utc();
    let printed = vim_loopback(
        &[
            "block",
            "--vim-prefix",
            &system.vim_prefix,
            &victim.mgmt_ip.to_string(),
        ],
        None,
    )
    .await;
    assert_eq!(
        printed.trim(),
        format!("blocked 1 addresses in {}", blocklist.set())
    );
    let healed = system.wait_respawned(&ids[0], &victim).await;
    let new = &healed.instances[0];
    assert_ne!(new.mgmt_ip, victim.mgmt_ip, "a respawn gives a new address");
    assert!(LOOPBACK_VIM_RANGE.contains(new.mgmt_ip), "{}", new.mgmt_ip);
    assert_eq!(healed.failure_count, 1);
    assert_eq!(healed.dead_instances, vec![victim.instance_id.clone()]);

    // The dead instance's delete freed its address and took it off the blocklist.
    assert_eq!(blocklist.members().await.unwrap(), Vec::<Ipv4Addr>::new());
    let allocations = system
        .log
        .jetstream()
        .get_key_value(events::names::LOOPBACK_VIM_BUCKET)
        .await
        .unwrap();
    for key in [
        loopback::address_key(victim.mgmt_ip),
        loopback::instance_key(&victim.instance_id),
    ] {
        assert_eq!(allocations.get(&key).await.unwrap(), None, "{key}");
    }
    let held = allocations
        .get(loopback::address_key(new.mgmt_ip))
        .await
        .unwrap()
        .expect("the new address is claimed");
    assert_eq!(held, new.instance_id.as_bytes());

    // The others kept their instance, had no failure and are still probed up.
    for (vnf_id, old) in ids.iter().zip(&instances).skip(1) {
        let vnf = system.vnf(vnf_id).await;
        assert_eq!(vnf.instances[0].instance_id, old.instance_id);
        assert_eq!(vnf.failure_count, 0, "VNF {vnf_id}");
        system.wait_probed(old.mgmt_ip, blocked_at, true).await;
    }
    // Unblocking what is already reachable changes nothing (addresses on standard input).
    let printed = vim_loopback(
        &["unblock", "--vim-prefix", &system.vim_prefix],
        Some(&format!("{}\n{}\n", victim.mgmt_ip, new.mgmt_ip)),
    )
    .await;
    assert_eq!(
        printed.trim(),
        format!("unblocked 2 addresses in {}", blocklist.set())
    );
    assert_eq!(blocklist.members().await.unwrap(), Vec::<Ipv4Addr>::new());

    // One failure, one respawn.
    let heals = system
        .history(&ids[0])
        .await
        .iter()
        .filter(|r| {
            r.envelope
                .events
                .iter()
                .any(|e| matches!(e, VnfEvent::HealStarted { .. }))
        })
        .count();
    assert_eq!(heals, 1, "exactly one respawn");

    // A VDU monitored over HTTP has no server to answer it here: its create fails, saying why.
    let vnfd_id = system
        .onboard(&monitored_vnfd("http_ping", "respawn", false))
        .await;
    let (code, created) = system
        .post(
            "/vnfs",
            serde_json::json!({"vnf": {"name": "over-http", "vnfd_id": vnfd_id}}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let vnf_id = created["vnf"]["id"].as_str().unwrap();
    let failed = system
        .wait_vnf(vnf_id, "ERROR", |_, v| v["vnf"]["status"] == "ERROR")
        .await;
    let reason = failed["vnf"]["error_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("loopback VIM runs no server per instance"),
        "{failed}"
    );
    assert_eq!(
        system.vnf(vnf_id).await.status,
        Some(VnfStatus::Error),
        "the log agrees"
    );
}

/// Removes a blocklist made by a `vnfm up` of this test, even when the test fails.
struct RemoveOnDrop(Blocklist);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_blocking() {
            eprintln!("removing {} failed: {e}", self.0.set());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_on_the_loopback_vim_and_probes_its_range() {
    let prefix = vnfm_tests::unique_vim_prefix('l');
    let _cleanup = RemoveOnDrop(Blocklist::new(&prefix).unwrap());
    let (_data_dir, listen, mut up) =
        vnfm_tests::start_up_with_prefix(&prefix, &["--vim", "loopback"]).await;
    assert!(
        up.log().contains("The built-in VIM is the loopback VIM."),
        "{}",
        up.log()
    );
    let api = format!("http://{listen}/v1.0");
    let http = reqwest::Client::new();
    let vnfd_id = vnfm_tests::onboard(&http, &api, &monitored_vnfd("ping", "respawn", false)).await;
    let (code, created) = vnfm_tests::call(
        &http,
        &api,
        reqwest::Method::POST,
        "/vnfs",
        Some(serde_json::json!({"vnf": {"name": "on-loopback", "vnfd_id": vnfd_id}})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let vnf_id = created["vnf"]["id"].as_str().unwrap().to_owned();
    let shown = eventually(
        format!("VNF {vnf_id} ACTIVE and probed up"),
        PATIENCE,
        || async {
            let (_, shown) = vnfm_tests::call(
                &http,
                &api,
                reqwest::Method::GET,
                &format!("/vnfs/{vnf_id}"),
                None,
            )
            .await;
            if shown["vnf"]["status"] == "ACTIVE"
                && shown["vnf"]["monitor"]["VDU1"][0]["state"] == "up"
            {
                Ok(shown)
            } else {
                Err(shown)
            }
        },
    )
    .await;
    let ips = vnfm_tests::mgmt_ips(&shown);
    assert_eq!(ips.len(), 1, "{shown}");
    assert!(LOOPBACK_VIM_RANGE.contains(ips[0]), "{shown}");
    up.terminate();
    let status = up.wait_exit(STOP_TIMEOUT).await;
    assert!(status.success(), "vnfm up: {status}\n{}", up.log());
}
