//! A nats-server killed and restarted under a running vnfm: every role carries on by itself.

use std::time::Duration;

use vnfm_tests::{System, monitored_vnfd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_carries_on_after_a_nats_server_restart() {
    let mut system = System::start().await;
    let template = monitored_vnfd("ping", "respawn", false);
    let before = system.active_vnf(&template).await;
    system.nats.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    system.nats.restart().await;
    // Gateway, projector and conductor: a new VNF is created and becomes ACTIVE.
    let after = system.active_vnf(&template).await;
    // Monitor: both VNFs' VDUs are probed again after the restart.
    let restarted = time::OffsetDateTime::now_utc();
    for vnf_id in [&before, &after] {
        let instance = system.vnf(vnf_id).await.instances[0].clone();
        system.wait_probed(instance.mgmt_ip, restarted, true).await;
    }
    // Conductor's heal consumer: a failure after the restart is still healed.
    let instance = system.vnf(&after).await.instances[0].clone();
    system.kill_vdu(&instance.instance_id).await;
    system
        .wait_log(&after, "respawned after the restart", |v| {
            v.failure_count == 1 && v.status == Some(events::vnf::VnfStatus::Active)
        })
        .await;
}
