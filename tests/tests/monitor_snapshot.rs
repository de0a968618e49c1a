//! Issue 13's cold start independent of history, end to end with every role a separate `vnfm`
//! process: a monitor snapshots its lifecycle fold, a monitor killed and restarted after more
//! lifecycle (a heal, a create, a delete) resumes from the snapshot and the log after it and
//! probes every target it should, `vnfm verify-snapshot` finds the snapshot plus the tail equal
//! to a full replay, and a corrupted snapshot costs a full replay, not a target.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use events::names;
use monitor::snapshot_store;
use time::OffsetDateTime;
use vnfm_tests::{PATIENCE, System, monitored_vnfd};

/// How long a monitor may take to start (connect, read the snapshot, bind).
const MONITOR_START: Duration = Duration::from_secs(30);
/// Rounds a deleted VNF's address is watched for probes after the restart, each shown by
/// every live target probed again.
const DELETED_WATCH_ROUNDS: usize = 3;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Every management IP of the VNFs, as the log has them now.
async fn ips_of(system: &System, vnf_ids: &[&str]) -> BTreeSet<Ipv4Addr> {
    let mut ips = BTreeSet::new();
    for vnf_id in vnf_ids {
        ips.extend(system.vnf(vnf_id).await.instances.iter().map(|i| i.mgmt_ip));
    }
    ips
}

/// Waits until each of `ips` is probed up after `since`.
async fn all_probed(system: &System, ips: &BTreeSet<Ipv4Addr>, since: OffsetDateTime) {
    for ip in ips {
        system.wait_probed(*ip, since, true).await;
    }
}

/// Runs `vnfm verify-snapshot`; answers whether it succeeded and what it printed.
async fn verify_snapshot(system: &System) -> (bool, String) {
    let mut verify = system.spawn_role("verify-snapshot", &["verify-snapshot"]);
    let status = verify.wait_exit(PATIENCE).await;
    (status.success(), verify.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_restarted_on_a_snapshot_and_its_tail_probes_what_a_full_replay_would() {
    let system = System::start_separate().await;
    let _conductor = system.spawn_conductor("conductor-1", &[]).await;
    let writer_flags = ["--snapshot-interval-s", "1", "--snapshot-messages-min", "1"];
    let mut writer = system.spawn_monitor_with("monitor-1", &writer_flags).await;
    let template = monitored_vnfd("ping", "respawn", false);
    let vnf_ids = system.active_vnfs(&template, 3).await;
    let (healed, deleted, kept) = (&vnf_ids[0], &vnf_ids[1], &vnf_ids[2]);

    // A snapshot holding the three VNFs ACTIVE, written by the only monitor (partition 0's).
    let snapshots = events::store::open_monitor_snapshots(system.log.jetstream())
        .await
        .unwrap();
    let snapshot = testkit::eventually("a snapshot of the three ACTIVE VNFs", PATIENCE, || async {
        match snapshot_store::read(&snapshots, system.log.stream()).await {
            Ok(Some(fold))
                if vnf_ids
                    .iter()
                    .all(|id| fold.vnfs.get(id).is_some_and(|v| !v.instances.is_empty())) =>
            {
                Ok(fold)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    writer.kill();

    // More lifecycle after it. A heal first, found by a monitor that writes no snapshot within
    // the test (the default interval) and that itself resumes from the snapshot.
    let mut monitor = system.spawn_monitor("monitor-2").await;
    monitor
        .wait_for_log("Resuming from the lifecycle snapshot", MONITOR_START)
        .await;
    let old = system.probed_instance(healed, 0).await;
    system.kill_vdu(&old.instance_id).await;
    system.wait_respawned(healed, &old).await;
    monitor.kill();
    // Then, with no monitor running, a create and a delete.
    let created = system.active_vnf(&template).await;
    let deleted_ips = ips_of(&system, &[deleted]).await;
    let (code, body) = system.delete(&format!("/vnfs/{deleted}")).await;
    assert_eq!(code, 204, "{body}");
    system
        .wait_vnf(deleted, "deleted (404)", |code, _| code == 404)
        .await;
    let live = ips_of(&system, &[healed, kept, &created]).await;
    assert_eq!(live.len(), 3, "{live:?}");

    // Restarted, the monitor resumes from the snapshot and probes every live target.
    let restarted = now();
    monitor.restart();
    monitor
        .wait_for_log("Resuming from the lifecycle snapshot", MONITOR_START)
        .await;
    all_probed(&system, &live, restarted).await;
    for _ in 0..DELETED_WATCH_ROUNDS {
        all_probed(&system, &live, now()).await;
    }
    let probed = system.probed_by(restarted).await;
    for ip in &deleted_ips {
        assert!(
            !probed.contains_key(ip),
            "the deleted VNF's {ip} is probed: {probed:?}"
        );
    }
    let (verified, printed) = verify_snapshot(&system).await;
    assert!(verified, "vnfm verify-snapshot:\n{printed}");
    assert!(
        printed.contains(&format!(
            "matches: snapshot at sequence {}, 3 VNFs",
            snapshot.sequence
        )),
        "{printed}"
    );

    // A corrupted snapshot is refused: a full replay, every live target still probed.
    let store = async_nats::jetstream::new(system.nats.client().await)
        .get_object_store(names::MONITOR_SNAPSHOT_BUCKET)
        .await
        .unwrap();
    let garbage = format!(
        "vnfm-monitor-snapshot {} 3\n{{\"vnfds\": ",
        monitor::snapshot::SCHEMA_VERSION
    );
    store
        .put(names::MONITOR_SNAPSHOT_OBJECT, &mut garbage.as_bytes())
        .await
        .unwrap();
    let restarted = now();
    monitor.restart();
    monitor
        .wait_for_log(
            "Lifecycle snapshot refused; replaying the whole log.",
            MONITOR_START,
        )
        .await;
    all_probed(&system, &live, restarted).await;
    let (verified, printed) = verify_snapshot(&system).await;
    assert!(!verified, "a corrupted snapshot verified:\n{printed}");
    assert!(printed.contains("does not decode"), "{printed}");
}
