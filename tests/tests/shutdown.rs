//! Every role, as a `vnfm` process whose NATS server has gone away, stops within its drain
//! deadline after SIGTERM, the monitor with probe results still to publish.

use std::time::{Duration, Instant};

use testkit::RoleProcess;
use vnfm_tests::{System, monitored_vnfd};

/// `vnfm`'s drain deadline (`DRAIN_DEADLINE` in crates/vnfm/src/roles.rs).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// What a debug build may add to the deadline: aborting the roles, flushing nothing, exiting.
const EXIT_MARGIN: Duration = Duration::from_secs(2);
/// How long the roles run on without NATS before the signal, so that the monitor's round
/// publishes are failing and being retried when it comes (it probes once a second).
const WITHOUT_NATS: Duration = Duration::from_secs(3);

/// Sends SIGTERM, as a supervisor stopping the process would.
fn terminate(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
}

/// Waits for `process` to end and asserts it did within the deadline of the signal.
async fn assert_drained(process: &mut RoleProcess, signalled: Instant) {
    process.wait_exit(DRAIN_DEADLINE + EXIT_MARGIN).await;
    let took = signalled.elapsed();
    assert!(
        took <= DRAIN_DEADLINE + EXIT_MARGIN,
        "{} took {took:?}:\n{}",
        process.label(),
        process.log()
    );
    assert!(process.log().contains("Stopping."), "{}", process.log());
    println!("{} stopped {took:.1?} after SIGTERM", process.label());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_stops_within_its_drain_deadline_when_nats_is_gone() {
    let mut system = System::start_separate().await;
    let mut conductor = system.spawn_conductor("conductor-1", &[]).await;
    let mut monitor = system.spawn_monitor("monitor-1").await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "log", false))
        .await;
    let instance = system.vnf(&vnf_id).await.instances[0].clone();
    system
        .wait_probed(instance.mgmt_ip, instance.booted_at, true)
        .await;

    system.nats.kill();
    tokio::time::sleep(WITHOUT_NATS).await;
    let pids = [
        system.process("gateway").pid(),
        system.process("projector").pid(),
        conductor.pid(),
        monitor.pid(),
    ];
    let signalled = Instant::now();
    pids.into_iter().for_each(terminate);
    assert_drained(system.process("gateway"), signalled).await;
    assert_drained(system.process("projector"), signalled).await;
    assert_drained(&mut conductor, signalled).await;
    assert_drained(&mut monitor, signalled).await;
}

/// A gateway whose status board is watching (a live feed that never ends by itself) stops at
/// once on SIGTERM, and successfully: the feed ends with the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_a_board_watching_stops_at_once() {
    let mut system = System::start_separate().await;
    let mut feed = system
        .http
        .get(format!("{}/board/live", system.api))
        .send()
        .await
        .expect("the live feed");
    assert_eq!(feed.status().as_u16(), 200);
    let signalled = Instant::now();
    terminate(system.process("gateway").pid());
    let status = system
        .process("gateway")
        .wait_exit(DRAIN_DEADLINE + EXIT_MARGIN)
        .await;
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "{status}:\n{}",
        system.process("gateway").log()
    );
    assert!(
        took < DRAIN_DEADLINE,
        "took {took:?}, as if the feed held the drain:\n{}",
        system.process("gateway").log()
    );
    // The feed ended with the gateway.
    while let Ok(Some(_)) = feed.chunk().await {}
}

/// `vnfm up` over a NATS server that has gone away stops within the same deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnfm_up_stops_within_its_drain_deadline_when_nats_is_gone() {
    let mut nats = testkit::NatsServer::start().await;
    let url = nats.url();
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let prefix = vnfm_tests::unique_vim_prefix('u');
    let data_dir = nats.access().data_dir();
    let mut up = RoleProcess::spawn(
        "up",
        &[
            "up",
            "--data-dir",
            data_dir.to_str().expect("a UTF-8 temporary path"),
            "--nats-url",
            &url,
            "--listen",
            &listen,
            "--vim-prefix",
            &prefix,
        ],
    );
    // Every role up (the monitor's start-up talks to NATS last), so that only the outage
    // is measured, not a role failing to start.
    up.wait_for_log("Gateway listening", vnfm_tests::PATIENCE)
        .await;
    up.wait_for_log("Monitor running.", vnfm_tests::PATIENCE)
        .await;

    nats.kill();
    tokio::time::sleep(WITHOUT_NATS).await;
    let signalled = Instant::now();
    terminate(up.pid());
    assert_drained(&mut up, signalled).await;
}
