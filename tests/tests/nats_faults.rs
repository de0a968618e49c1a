//! NATS faults under load: a single nats-server (file store) killed with SIGKILL and restarted,
//! and the node leading the lifecycle stream of a three-node cluster killed. In both, the same
//! role processes (two of each) carry on by themselves, and the command checker finds no
//! acknowledged command lost and none applied twice.

use std::time::{Duration, Instant};

use testkit::{Access, NatsCluster, NatsServer, RoleProcess};
use vnfm_tests::checker::{self, Load, Target};
use vnfm_tests::{ANY_LOOPBACK_PORT, identity_of};

/// Commands in flight at once.
const WORKERS: usize = 6;
/// Commands that must be acknowledged after a start or a fault before the test goes on: the
/// system demonstrably works (again).
const PROGRESS_COMMANDS: usize = 20;
/// How long the system may take to make that progress; a reconnect takes a few seconds.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Load before the fault, after the first progress.
const LOAD_BEFORE_FAULT: Duration = Duration::from_secs(2);
/// How long a killed single server stays down while the load goes on.
const SERVER_DOWN: Duration = Duration::from_secs(2);
/// How long a killed cluster node stays down while the load goes on.
const NODE_DOWN: Duration = Duration::from_secs(4);
/// Load after the recovery, after the first progress.
const LOAD_AFTER_RECOVERY: Duration = Duration::from_secs(3);
/// How long a role process may take to start: a debug build connecting to NATS.
const ROLE_START_TIMEOUT: Duration = Duration::from_secs(20);
/// The conductor's ack wait: a request whose ack the fault lost comes back after this long,
/// well within the checker's settle time.
const CONDUCTOR_ACK_WAIT_S: &str = "5";

/// Removes the test's namespaces when dropped. Declared before the role processes, so that
/// they are killed (dropped) first and no conductor deploys again after the cleanup.
struct Namespaces(String);

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Err(e) = conductor::vim::local::cleanup_prefix_blocking(&self.0) {
            eprintln!("cleanup of the namespaces {}-* failed: {e}", self.0);
        }
    }
}

/// Two of every role (gateway, projector, conductor, monitor), each a `vnfm` process over
/// `nats_urls`: the load goes to both gateways, and the others share their work.
struct Roles {
    processes: Vec<RoleProcess>,
    target: Target,
}

/// Instances of each role.
const EACH_ROLE: usize = 2;

impl Roles {
    /// Starts the roles and returns once each announces it runs.
    async fn start(nats_urls: &str, replicas: usize, vim_prefix: &str, access: &Access) -> Roles {
        let role = |label: &str, args: &[&str]| {
            let credentials = access.role_args(identity_of(args), args[0]);
            let mut args = args.to_vec();
            args.extend(["--nats-url", nats_urls, "--name", label]);
            args.extend(credentials.iter().map(String::as_str));
            RoleProcess::spawn(label, &args)
        };
        let replicas = replicas.to_string();
        let mut setup = role("setup", &["setup", "--replicas", &replicas]);
        let status = setup.wait_exit(ROLE_START_TIMEOUT).await;
        assert!(status.success(), "vnfm setup: {status}\n{}", setup.log());
        let mut processes = Vec::new();
        let mut apis = Vec::new();
        for n in 1..=EACH_ROLE {
            let mut gateway = role(
                &format!("gateway-{n}"),
                &["gateway", "--listen", ANY_LOOPBACK_PORT],
            );
            let listen = gateway.wait_for_listen_address(ROLE_START_TIMEOUT).await;
            apis.push(format!("http://{listen}/v1.0"));
            processes.push(gateway);
        }
        let mut starting = Vec::new();
        for n in 1..=EACH_ROLE {
            starting.push((
                role(&format!("projector-{n}"), &["projector"]),
                "Projector running.",
            ));
            starting.push((
                role(
                    &format!("conductor-{n}"),
                    &[
                        "conductor",
                        "--vim-prefix",
                        vim_prefix,
                        "--ack-wait-s",
                        CONDUCTOR_ACK_WAIT_S,
                    ],
                ),
                "Conductor consuming.",
            ));
            starting.push((
                role(&format!("monitor-{n}"), &["monitor"]),
                "Monitor running.",
            ));
        }
        for (mut process, running) in starting {
            process.wait_for_log(running, ROLE_START_TIMEOUT).await;
            processes.push(process);
        }
        Roles {
            processes,
            target: Target {
                apis,
                nats_urls: nats_urls.to_owned(),
                credentials: access.dir(),
                vim_prefix: vim_prefix.to_owned(),
            },
        }
    }

    /// Every role process still runs: none exited on the fault, none was restarted.
    fn assert_running(&mut self) {
        for process in &mut self.processes {
            if let Some(status) = process.exit_status() {
                panic!(
                    "{} exited ({status}) after the fault:\n{}",
                    process.label(),
                    process.log()
                );
            }
        }
    }
}

/// Stops the load, checks that every role still runs, runs the checker, and fails on any lost
/// or duplicated command or mismatched effect.
async fn stop_and_check(load: Load, roles: &mut Roles, started: Instant) {
    let issued = load.stop().await;
    println!(
        "load stopped after {:.1} s: {} commands",
        started.elapsed().as_secs_f64(),
        issued.len()
    );
    roles.assert_running();
    let verdict = checker::check(&roles.target, &issued).await;
    roles.assert_running();
    println!("checked after {:.1} s", started.elapsed().as_secs_f64());
    verdict.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_killed_and_restarted_under_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let vim_prefix = vnfm_tests::unique_vim_prefix('f');
    let _namespaces = Namespaces(vim_prefix.clone());
    let mut nats = NatsServer::start().await;
    let mut roles = Roles::start(&nats.url(), 1, &vim_prefix, nats.access()).await;
    println!("roles ready after {:.1} s", started.elapsed().as_secs_f64());

    let load = Load::start(&roles.target, WORKERS);
    load.wait_acknowledged_since(started, PROGRESS_COMMANDS, PROGRESS_TIMEOUT)
        .await;
    tokio::time::sleep(LOAD_BEFORE_FAULT).await;

    nats.kill();
    println!(
        "nats-server killed after {:.1} s, {} commands issued",
        started.elapsed().as_secs_f64(),
        load.issued()
    );
    tokio::time::sleep(SERVER_DOWN).await;
    nats.restart().await;
    let restarted = Instant::now();
    println!(
        "nats-server restarted after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    load.wait_acknowledged_since(restarted, PROGRESS_COMMANDS, PROGRESS_TIMEOUT)
        .await;
    println!(
        "progress again {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    tokio::time::sleep(LOAD_AFTER_RECOVERY).await;

    stop_and_check(load, &mut roles, started).await;
    assert_refused_nothing(&nats);
}

/// Every role ran as its own identity through the fault and its recovery (consumers opened
/// again, watches started again): the server refused none of them anything.
fn assert_refused_nothing(server: &NatsServer) {
    let violations = server.permission_violations();
    assert!(
        violations.is_empty(),
        "the server refused a role an operation:\n{}",
        violations.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_its_stream_leader_under_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let vim_prefix = vnfm_tests::unique_vim_prefix('f');
    let _namespaces = Namespaces(vim_prefix.clone());
    let mut cluster = NatsCluster::start().await;
    println!(
        "cluster ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut roles = Roles::start(&cluster.urls(), 3, &vim_prefix, cluster.access()).await;
    println!("roles ready after {:.1} s", started.elapsed().as_secs_f64());

    let load = Load::start(&roles.target, WORKERS);
    load.wait_acknowledged_since(started, PROGRESS_COMMANDS, PROGRESS_TIMEOUT)
        .await;
    tokio::time::sleep(LOAD_BEFORE_FAULT).await;

    let leader = cluster.stream_leader(events::names::LIFECYCLE_STREAM).await;
    cluster.kill(leader);
    let killed = Instant::now();
    println!(
        "node {leader} ({}), leader of {}, killed after {:.1} s, {} commands issued",
        cluster.node(leader).server_name(),
        events::names::LIFECYCLE_STREAM,
        started.elapsed().as_secs_f64(),
        load.issued()
    );
    load.wait_acknowledged_since(killed, PROGRESS_COMMANDS, PROGRESS_TIMEOUT)
        .await;
    let new_leader = cluster.stream_leader(events::names::LIFECYCLE_STREAM).await;
    println!(
        "progress again {:.1} s after the kill; node {new_leader} leads now",
        killed.elapsed().as_secs_f64()
    );
    tokio::time::sleep(NODE_DOWN.saturating_sub(killed.elapsed())).await;

    cluster.restart(leader).await;
    let restarted = Instant::now();
    println!(
        "node {leader} restarted after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    load.wait_acknowledged_since(restarted, PROGRESS_COMMANDS, PROGRESS_TIMEOUT)
        .await;
    tokio::time::sleep(LOAD_AFTER_RECOVERY).await;

    stop_and_check(load, &mut roles, started).await;
    for node in 0..3 {
        assert_refused_nothing(cluster.node(node));
    }
}
