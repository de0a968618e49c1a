//! End-to-end test support: a whole vnfm (projector, conductor with the local VIM, gateway on a
//! real port) over a real nats-server, torn down on drop with every namespace it created. Its
//! roles run in the test process ([`System::start`]) or as separate `vnfm` processes that a
//! test can kill, pause and restart ([`System::start_separate`]).

pub mod attacker;
pub mod browser;
pub mod checker;
pub mod keystone;
pub mod openstack;
pub mod prometheus;
pub mod tacker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use conductor::vim::Vim;
use conductor::vim::local::{self, LocalVim, LocalVimConfig};
use conductor::vim::loopback::{Blocklist, LoopbackVim};
use conductor::{Conductor, ConductorConfig};
use events::keyring::Keyring;
use events::monitor::cidr::ProbeCidrs;
use events::store::EventLog;
use events::vnf::RespawnLimit;
use gateway::auth::TokenFile;
use gateway::{Gateway, GatewayConfig};
use monitor::probe::Prober;
use monitor::{Monitor, MonitorConfig};
use projector::Tables;
use serde_json::Value;
use testkit::{Identity, NatsServer, RoleProcess, eventually, eventually_every};
use tokio::sync::watch;

/// How long a test waits for an asynchronous outcome (a VNF becoming ACTIVE, a row appearing).
pub const PATIENCE: Duration = Duration::from_secs(30);
/// What a gateway process of a test listens on: a loopback port of the kernel's choosing, read
/// back from its log (`RoleProcess::wait_for_listen_address`); a port picked beforehand may be
/// taken by another test's client in between.
pub const ANY_LOOPBACK_PORT: &str = "127.0.0.1:0";

/// Pause between two reads of the whole telemetry stream while waiting on it: a read replays
/// every round stored, so polling it as often as a row would load the 2-core machine that
/// runs the monitors being measured.
pub const TELEMETRY_STREAM_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Tunables of a test system.
#[derive(Clone, Default)]
pub struct Options {
    /// Who the API lets in; `None` is `--auth none` (everyone the anonymous admin).
    pub auth: Option<Arc<dyn gateway::auth::Authenticator>>,
    pub respawn_limit: RespawnLimit,
    /// Run on a bus without identities (`testkit::Access::open`): only for a benchmark's
    /// reference run, which measures what the permissions cost.
    pub open_bus: bool,
    /// The monitor's `--probe-cidrs`; `None` is its default (the local VIM's range).
    pub probe_cidrs: Option<ProbeCidrs>,
    /// The conductor's `--vim-check-interval-s`; `None` is its default.
    pub vim_check_interval: Option<Duration>,
    /// The conductor's `--vim-drift-interval-s`; `None` is its default.
    pub drift_interval: Option<Duration>,
    /// The conductor's `--vim loopback`: the built-in VIM is the loopback VIM (with this
    /// system's prefix), and the monitor probes its range unless `probe_cidrs` says otherwise.
    pub loopback_vim: bool,
}

/// A running vnfm.
pub struct System {
    pub nats: NatsServer,
    pub log: EventLog,
    pub tables: Tables,
    pub api: String,
    pub http: reqwest::Client,
    pub vim_prefix: String,
    /// The loopback VIM's blocklist, with `Options::loopback_vim`; removed on drop.
    pub blocklist: Option<Blocklist>,
    stop: watch::Sender<bool>,
    /// Role processes of a [`System::start_separate`], killed before the namespaces go.
    processes: Vec<RoleProcess>,
    /// Set by a test that tries what an identity may not: the server's refusals are then the
    /// point, not a defect.
    pub violations_expected: bool,
}

/// How long a role process may take to start: a debug build connecting to a local server.
const ROLE_START_TIMEOUT: Duration = Duration::from_secs(20);

/// `vnfm up` with `flags` on a fresh data dir, an API port and a VIM prefix of its own, once its
/// gateway listens; answers the data dir and the API's address too.
pub async fn start_up(flags: &[&str]) -> (tempfile::TempDir, String, testkit::RoleProcess) {
    start_up_with_prefix(&unique_vim_prefix('x'), flags).await
}

/// [`start_up`] under the VIM prefix `prefix` (a test that cleans up what the VIM makes).
pub async fn start_up_with_prefix(
    prefix: &str,
    flags: &[&str],
) -> (tempfile::TempDir, String, testkit::RoleProcess) {
    let data_dir = tempfile::Builder::new()
        .prefix("vnfm-up-")
        .tempdir()
        .expect("a temporary data dir");
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let nats_server_bin = testkit::nats_server_bin();
    let mut args = vec![
        "up",
        "--data-dir",
        data_dir.path().to_str().expect("a UTF-8 temporary path"),
        "--listen",
        &listen,
        "--vim-prefix",
        prefix,
        "--nats-server-bin",
        nats_server_bin.to_str().expect("a UTF-8 binary path"),
    ];
    args.extend(flags);
    let mut up = testkit::RoleProcess::spawn(&format!("up {}", flags.join(" ")), &args);
    up.wait_for_log("Gateway listening", PATIENCE).await;
    (data_dir, listen, up)
}

/// A local VIM prefix unique among the tests running now: `letter`, two hex digits of the
/// process id, two of a counter; five characters, the most the local VIM allows.
pub fn unique_vim_prefix(letter: char) -> String {
    static PREFIXES: AtomicU32 = AtomicU32::new(0);
    format!(
        "{letter}{:02x}{:02x}",
        std::process::id() % 0x100,
        PREFIXES.fetch_add(1, Ordering::Relaxed) % 0x100
    )
}

impl System {
    /// Starts every role with a local VIM whose names start with a prefix unique to this test.
    pub async fn start() -> System {
        System::start_with(Options::default()).await
    }

    /// Like [`System::start`], with the given tunables.
    pub async fn start_with(options: Options) -> System {
        let mut system = System::bare(options.open_bus).await;
        let vim_prefix = system.vim_prefix.clone();
        let shutdown = || {
            let mut stop = system.stop.subscribe();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        // Each role connects as its own identity, with exactly its permissions.
        let projector_log = system.log_as(Identity::Projector).await;
        let projector_tables = Tables::open(projector_log.jetstream())
            .await
            .expect("open the tables as the projector");
        tokio::spawn(projector::run(projector_log, projector_tables, shutdown()));
        let conductor_log = system.log_as(Identity::Conductor).await;
        let vim: Arc<dyn Vim> = if options.loopback_vim {
            let blocklist = Blocklist::new(&vim_prefix).expect("a valid prefix");
            system.blocklist = Some(blocklist.clone());
            let allocations = events::store::open_bucket(
                conductor_log.jetstream(),
                events::names::LOOPBACK_VIM_BUCKET,
            )
            .await
            .expect("open the loopback VIM's bucket as the conductor");
            Arc::new(
                LoopbackVim::new(allocations, blocklist)
                    .await
                    .expect("the loopback VIM (tests run as root, with ipset and iptables)"),
            )
        } else {
            Arc::new(
                LocalVim::new(LocalVimConfig::new(vim_prefix.clone(), testkit::vnfm_bin()))
                    .expect("the local VIM (tests run as root)"),
            )
        };
        let keyring = Keyring::open(conductor_log.jetstream(), system.nats.access().master_key())
            .await
            .expect("open the data keys as the conductor");
        let conductor = Conductor::new(
            conductor_log,
            vim,
            ConductorConfig {
                instance: format!("conductor-{vim_prefix}"),
                respawn_limit: options.respawn_limit,
                vim_check_interval: options
                    .vim_check_interval
                    .unwrap_or(conductor::VIM_CHECK_INTERVAL_DEFAULT),
                drift_interval: options
                    .drift_interval
                    .unwrap_or(conductor::DRIFT_INTERVAL_DEFAULT),
                ..ConductorConfig::default()
            },
        )
        .with_registered_vims(keyring);
        tokio::spawn(conductor.run(shutdown()));
        let monitor = Monitor::new(
            system.log_as(Identity::Monitor).await,
            Arc::new(Prober::new().expect("the ICMP socket (tests run as root)")),
            MonitorConfig {
                instance: format!("monitor-{vim_prefix}"),
                probe_cidrs: options.probe_cidrs.clone().unwrap_or_else(|| {
                    if options.loopback_vim {
                        ProbeCidrs::from(events::monitor::cidr::LOOPBACK_VIM_RANGE)
                    } else {
                        MonitorConfig::default().probe_cidrs
                    }
                }),
                ..MonitorConfig::default()
            },
        );
        tokio::spawn(monitor.run(shutdown()));
        let gateway_log = system.log_as(Identity::Gateway).await;
        let gateway_tables = Tables::open(gateway_log.jetstream())
            .await
            .expect("open the tables as the gateway");
        let gateway = Gateway::new(
            gateway_log,
            gateway_tables,
            GatewayConfig {
                instance: format!("gateway-{vim_prefix}"),
                auth: options
                    .auth
                    .clone()
                    .unwrap_or_else(|| GatewayConfig::default().auth),
                master_key: system.nats.access().master_key(),
                ..GatewayConfig::default()
            },
        )
        .await
        .expect("start the gateway");
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
                .await
                .unwrap();
        let api = format!("http://{}/v1.0", listener.local_addr().unwrap());
        tokio::spawn(gateway::serve(listener, gateway, shutdown()));
        system.api = api;
        system
    }

    /// A nats-server, the log and a VIM prefix, with no role running.
    async fn bare(open_bus: bool) -> System {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,async_nats=warn")
            .with_test_writer()
            .try_init();
        let access = if open_bus {
            testkit::Access::open()
        } else {
            testkit::Access::new()
        };
        let nats = NatsServer::start_with_access(testkit::Durability::SyncAlways, access).await;
        let log = events::fixtures::log(nats.client().await).await;
        let tables = Tables::open(log.jetstream())
            .await
            .expect("open the tables");
        let vim_prefix = unique_vim_prefix('t');
        System {
            nats,
            log,
            tables,
            api: String::new(),
            http: reqwest::Client::new(),
            vim_prefix,
            blocklist: None,
            stop: watch::channel(false).0,
            processes: Vec::new(),
            violations_expected: false,
        }
    }

    /// A gateway and a projector, each a `vnfm` process of its own; the test starts the
    /// conductors ([`spawn_conductor`](Self::spawn_conductor)) and monitors
    /// ([`spawn_monitor`](Self::spawn_monitor)) it needs, and owns them.
    pub async fn start_separate() -> System {
        System::start_separate_with(&[]).await
    }

    /// [`start_separate`](Self::start_separate), with `flags` added to both the gateway's and
    /// the projector's (such as `--metrics-listen 127.0.0.1:0`).
    pub async fn start_separate_with(flags: &[&str]) -> System {
        let mut system = System::bare(false).await;
        let mut gateway_args = vec!["gateway", "--listen", ANY_LOOPBACK_PORT];
        gateway_args.extend(flags);
        let mut gateway = system.spawn_role("gateway", &gateway_args);
        let mut projector_args = vec!["projector"];
        projector_args.extend(flags);
        let mut projector = system.spawn_role("projector", &projector_args);
        let listen = gateway.wait_for_listen_address(ROLE_START_TIMEOUT).await;
        projector
            .wait_for_log("Projector running.", ROLE_START_TIMEOUT)
            .await;
        system.api = format!("http://{listen}/v1.0");
        system.processes.extend([gateway, projector]);
        system
    }

    /// The role process `label` (`gateway` or `projector`) of a [`System::start_separate`].
    ///
    /// # Panics
    ///
    /// When there is none.
    pub fn process(&mut self, label: &str) -> &mut RoleProcess {
        self.processes
            .iter_mut()
            .find(|process| process.label() == label)
            .unwrap_or_else(|| panic!("no {label} process"))
    }

    /// Runs `vnfm rebuild --verify` and asserts that the live tables equal the log.
    pub async fn verify_tables(&self) {
        let mut verify = self.spawn_role("rebuild --verify", &["rebuild", "--verify"]);
        let status = verify.wait_exit(PATIENCE).await;
        assert!(
            status.success(),
            "rebuild --verify: {status}\n{}",
            verify.log()
        );
    }

    /// The lifecycle log over a connection as `identity`.
    pub async fn log_as(&self, identity: Identity) -> EventLog {
        EventLog::open(self.nats.client_as(identity).await)
            .await
            .unwrap_or_else(|e| panic!("open the log as {identity:?}: {e}"))
    }

    /// `vnfm <args> --nats-url <this system's server> --nats-nkey <the seed of the identity
    /// the command runs as>`, labelled `label` in failure messages.
    pub fn spawn_role(&self, label: &str, args: &[&str]) -> RoleProcess {
        self.nats.spawn_as(label, identity_of(args), args)
    }

    /// A conductor process named `name` on this system's VIM prefix, with `flags` added (such
    /// as `--ack-wait-s 2` or `--stop-at after-claim`); returns once it consumes.
    pub async fn spawn_conductor(&self, name: &str, flags: &[&str]) -> RoleProcess {
        let mut args = vec![
            "conductor",
            "--name",
            name,
            "--vim-prefix",
            &self.vim_prefix,
        ];
        args.extend(flags);
        let mut conductor = self.spawn_role(name, &args);
        conductor
            .wait_for_log("Conductor consuming.", ROLE_START_TIMEOUT)
            .await;
        conductor
    }

    /// A monitor process named `name`; returns once it runs.
    pub async fn spawn_monitor(&self, name: &str) -> RoleProcess {
        self.spawn_monitor_with(name, &[]).await
    }

    /// A monitor process named `name` with `flags` added; returns once it runs.
    pub async fn spawn_monitor_with(&self, name: &str, flags: &[&str]) -> RoleProcess {
        let mut args = vec!["monitor", "--name", name];
        args.extend(flags);
        let mut monitor = self.spawn_role(name, &args);
        monitor
            .wait_for_log("Monitor running.", ROLE_START_TIMEOUT)
            .await;
        monitor
    }

    /// Sends a request; answers the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(&self.http, &self.api, method, path, body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Polls the VNF until `done` holds for it; panics after [`PATIENCE`].
    pub async fn wait_vnf(
        &self,
        vnf_id: &str,
        what: &str,
        done: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let path = format!("/vnfs/{vnf_id}");
        eventually(format!("VNF {vnf_id} is {what}"), PATIENCE, || async {
            let (status, body) = self.get(&path).await;
            if done(status, &body) {
                Ok(body)
            } else {
                Err(format!("answer {status}: {body}"))
            }
        })
        .await
    }

    /// Namespaces and links of this test's VIM still present in the kernel.
    pub fn remnants(&self) -> local::Remnants {
        local::remnants(&self.vim_prefix).expect("list namespaces")
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        // Processes first: a conductor left running could deploy again after the cleanup.
        self.processes.clear();
        if let Err(e) = local::cleanup_prefix_blocking(&self.vim_prefix) {
            eprintln!("cleanup of {} failed: {e}", self.vim_prefix);
        }
        if let Some(blocklist) = &self.blocklist
            && let Err(e) = blocklist.remove_blocking()
        {
            eprintln!("removing {} failed: {e}", blocklist.set());
        }
        // Every role ran as its own identity: none may have been refused anything it does.
        if !self.violations_expected && !std::thread::panicking() {
            let violations = self.nats.permission_violations();
            assert!(
                violations.is_empty(),
                "the server refused a role an operation (a permission missing from \
                 events::access?):\n{}",
                violations.join("\n")
            );
        }
    }
}

/// Sends a request to the API at `api` (`http://host:port/v1.0`); answers the status and the
/// JSON body (Null when empty).
///
/// # Panics
///
/// When the gateway does not answer.
pub async fn call(
    http: &reqwest::Client,
    api: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, format!("{api}{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// The token file of the token-auth tests, in a temporary directory, and the directory: one
/// line per user of `users` (token, user, project, role), as `vnfm token create` writes them.
///
/// # Panics
///
/// When the file cannot be written or read back.
pub fn token_file(users: &[(&str, &str, &str, &str)]) -> (Arc<TokenFile>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tokens");
    for (token, user, project, role) in users {
        let line = gateway::auth::entry_line(token, user, project, &[(*role).to_owned()])
            .expect("a valid token line");
        gateway::auth::append_line(&path, &line).expect("write the token file");
    }
    let file = TokenFile::open(&path).expect("the token file is accepted");
    (Arc::new(file), dir)
}

/// A client that sends `token` as `X-Auth-Token` on every request.
///
/// # Panics
///
/// When `token` is not ASCII.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("X-Auth-Token", token.parse().expect("an ASCII token"));
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// Onboards `template` through the API at `api`, under a fresh name; answers the VNFD id.
///
/// # Panics
///
/// When the API does not create it.
pub async fn onboard(http: &reqwest::Client, api: &str, template: &str) -> String {
    // A name of its own: VNFD names are unique per project, and tests onboard one template
    // many times.
    let name = format!("vnfd-{}", uuid::Uuid::new_v4());
    let body = serde_json::json!({"vnfd": {"name": name, "attributes": {"vnfd": template}}});
    let (code, vnfd) = call(http, api, reqwest::Method::POST, "/vnfds", Some(body)).await;
    assert_eq!(code, 201, "{vnfd}");
    vnfd["vnfd"]["id"].as_str().unwrap().to_owned()
}

/// The identity a `vnfm` command line runs as: its role's, the reader's for `audit`, `tail`,
/// `verify-snapshot` and `rebuild --verify`, the projector's for `rebuild`, the admin's for `setup`.
///
/// # Panics
///
/// When `args` names no such command.
pub fn identity_of(args: &[&str]) -> Identity {
    match args.first().copied() {
        Some("rebuild") if args.contains(&"--verify") => Identity::Reader,
        Some("rebuild") => Identity::Projector,
        Some("audit" | "tail" | "verify-snapshot") => Identity::Reader,
        Some("setup") => Identity::Admin,
        Some(role) => Identity::from_name(role)
            .unwrap_or_else(|| panic!("{role} is not a vnfm role with an identity")),
        None => panic!("an empty command line"),
    }
}

/// A sample VNFD shipped with the vnfd crate's tests.
pub fn sample(name: &str) -> String {
    let path = format!(
        "{}/../crates/vnfd/tests/samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The management IPs of a VNF as the API shows them (`mgmt_ip_address` is a JSON string).
pub fn mgmt_ips(vnf: &Value) -> Vec<Ipv4Addr> {
    let Some(text) = vnf["vnf"]["mgmt_ip_address"].as_str() else {
        return Vec::new();
    };
    let map: serde_json::Map<String, Value> =
        serde_json::from_str(text).expect("mgmt_ip_address is JSON");
    let mut ips = Vec::new();
    for value in map.values() {
        match value {
            Value::String(ip) => ips.push(ip.parse().expect("an IPv4 address")),
            Value::Array(list) => ips.extend(
                list.iter()
                    .map(|ip| ip.as_str().unwrap().parse::<Ipv4Addr>().unwrap()),
            ),
            other => panic!("unexpected mgmt_ip_address entry {other}"),
        }
    }
    ips
}

/// True when `ip` answers an ICMP echo within a second.
pub async fn answers_ping(ip: Ipv4Addr) -> bool {
    let client =
        surge_ping::Client::new(&surge_ping::Config::default()).expect("raw ICMP socket (root)");
    let mut pinger = client
        .pinger(
            IpAddr::V4(ip),
            surge_ping::PingIdentifier(
                u16::try_from(std::process::id() & 0xffff).expect("masked to 16 bits"),
            ),
        )
        .await;
    pinger.timeout(Duration::from_secs(1));
    pinger
        .ping(surge_ping::PingSequence(0), &[0; 8])
        .await
        .is_ok()
}

/// A VNFD whose VDUs (`VDU1`, and `VDU2` when `two_vdus`) are monitored by `driver` (`ping`
/// or `http_ping`, port 8000) with short timings, acting by `action` on failure; `SP1` scales
/// VDU1 between 1 and 3 instances.
pub fn monitored_vnfd(driver: &str, action: &str, two_vdus: bool) -> String {
    let parameters = match driver {
        "http_ping" => "{monitoring_delay: 1, retry: 2, timeout: 1, port: 8000, interval: 0.5}",
        _ => "{monitoring_delay: 1, count: 2, interval: 0.5, timeout: 1, retry: 2}",
    };
    let vdu = |name: &str, cp: &str| {
        format!(
            "    {name}:\n      type: tosca.nodes.nfv.VDU.Tacker\n      properties:\n        image: cirros\n        monitoring_policy:\n          name: {driver}\n          parameters: {parameters}\n          actions: {{failure: {action}}}\n    {cp}:\n      type: tosca.nodes.nfv.CP.Tacker\n      properties: {{management: true}}\n      requirements:\n        - virtualBinding: {{node: {name}}}\n"
        )
    };
    let mut nodes = vdu("VDU1", "CP1");
    if two_vdus {
        nodes.push_str(&vdu("VDU2", "CP2"));
    }
    format!(
        "tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0\nmetadata: {{template_name: monitored}}\ntopology_template:\n  node_templates:\n{nodes}  policies:\n    - SP1:\n        type: tosca.policies.tacker.Scaling\n        properties: {{targets: [VDU1], increment: 1, min_instances: 1, max_instances: 3, default_instances: 1, cooldown: 0}}\n"
    )
}

impl System {
    /// Onboards `template`; answers the VNFD id.
    pub async fn onboard(&self, template: &str) -> String {
        onboard(&self.http, &self.api, template).await
    }

    /// Deletes the VNFD at `path` (under the API root) once nothing uses it: a VNF's release of
    /// it is recorded by the conductor shortly after the VNF's delete, so a 409 is waited out.
    ///
    /// # Panics
    ///
    /// On any other answer, or when the VNFD is still in use after [`PATIENCE`].
    pub async fn delete_released_vnfd(&self, path: &str) {
        eventually(format!("{path} can be deleted"), PATIENCE, || async {
            let (code, body) = self.delete(path).await;
            match code {
                204 => Ok(()),
                409 => Err(body),
                _ => panic!("DELETE {path}: {code} {body}"),
            }
        })
        .await;
    }

    /// Onboards `template` and creates a VNF from it; answers the VNF id once it is ACTIVE.
    pub async fn active_vnf(&self, template: &str) -> String {
        self.active_vnfs(template, 1).await.remove(0)
    }

    /// Onboards `template` once and creates `count` VNFs from it at once; answers their ids
    /// once all are ACTIVE.
    pub async fn active_vnfs(&self, template: &str, count: usize) -> Vec<String> {
        let vnfd_id = self.onboard(template).await;
        // Names of their own: VNF names are unique per project.
        let creates = (0..count).map(|n| {
            let name = format!("vnf-{n}-{}", uuid::Uuid::new_v4());
            self.post(
                "/vnfs",
                serde_json::json!({"vnf": {"name": name, "vnfd_id": vnfd_id}}),
            )
        });
        let mut ids = Vec::with_capacity(count);
        for (code, vnf) in futures::future::join_all(creates).await {
            assert_eq!(code, 201, "{vnf}");
            ids.push(vnf["vnf"]["id"].as_str().unwrap().to_owned());
        }
        for vnf_id in &ids {
            self.wait_vnf(vnf_id, "ACTIVE", |_, v| v["vnf"]["status"] == "ACTIVE")
                .await;
        }
        ids
    }

    /// The VNF as its log leaves it.
    pub async fn vnf(&self, vnf_id: &str) -> events::vnf::Vnf {
        self.log
            .load::<events::vnf::Vnf>(vnf_id)
            .await
            .expect("load the VNF")
            .aggregate
    }

    /// Every message on the VNF's subject, oldest first.
    pub async fn history(
        &self,
        vnf_id: &str,
    ) -> Vec<events::store::Recorded<events::vnf::VnfEvent>> {
        self.log
            .read_subject(&events::names::vnf_subject(vnf_id))
            .await
            .expect("read the VNF's history")
    }

    /// The local VIM's namespace of a VDU instance.
    fn namespace(&self, instance_id: &str) -> String {
        format!("{}-{instance_id}", self.vim_prefix)
    }

    /// Makes a VDU instance unreachable: deletes its veth pair (the namespace stays).
    pub async fn kill_vdu(&self, instance_id: &str) {
        let namespace = self.namespace(instance_id);
        let output = tokio::process::Command::new("ip")
            .args(["-n", &namespace, "-j", "link", "show"])
            .output()
            .await
            .expect("ip");
        let links: Value = serde_json::from_slice(&output.stdout).expect("ip -j output");
        for link in links.as_array().into_iter().flatten() {
            let name = link["ifname"].as_str().unwrap_or("lo");
            if name != "lo" {
                let status = tokio::process::Command::new("ip")
                    .args(["-n", &namespace, "link", "del", name])
                    .status()
                    .await
                    .expect("ip");
                assert!(status.success(), "deleting {name} in {namespace}");
            }
        }
    }

    /// Makes a VDU instance stop answering pings without a word, as a hung host does: no
    /// ICMP error comes back, so every attempt runs to its timeout.
    pub async fn silence_vdu(&self, instance_id: &str) {
        let namespace = self.namespace(instance_id);
        let status = tokio::process::Command::new("ip")
            .args(["netns", "exec", &namespace, "sysctl", "-qw"])
            .arg("net.ipv4.icmp_echo_ignore_all=1")
            .status()
            .await
            .expect("ip netns exec sysctl");
        assert!(status.success(), "silencing {namespace}");
    }

    /// Every probe result now in the telemetry stream, oldest first.
    pub async fn probe_results(&self) -> Vec<events::monitor::ProbeResult> {
        self.probe_results_by_monitor()
            .await
            .into_iter()
            .map(|(_, result)| result)
            .collect()
    }

    /// Every probe result now in the telemetry stream with the monitor that probed, oldest
    /// first.
    /// Read through the one round reader: a message on a round subject that does not read (a
    /// poison test's) is no round.
    pub async fn probe_results_by_monitor(&self) -> Vec<(String, events::monitor::ProbeResult)> {
        let stream = self
            .log
            .jetstream()
            .get_stream(events::names::TELEMETRY_STREAM)
            .await
            .expect("the telemetry stream");
        let mut read = events::read::rounds::RoundRead::open(&stream, 1)
            .await
            .expect("a replay of the telemetry stream");
        let mut results = Vec::new();
        while let Some(round) = read.next().await.expect("a probe round") {
            let monitor = round.monitor.id;
            results.extend(round.results.into_iter().map(|r| (monitor.clone(), r)));
        }
        results
    }

    /// Which monitors probed each IP after `since`, from the telemetry stream.
    pub async fn probed_by(
        &self,
        since: time::OffsetDateTime,
    ) -> BTreeMap<Ipv4Addr, BTreeSet<String>> {
        let mut by_ip: BTreeMap<Ipv4Addr, BTreeSet<String>> = BTreeMap::new();
        for (monitor, result) in self.probe_results_by_monitor().await {
            if result.at > since {
                by_ip
                    .entry(result.target.mgmt_ip)
                    .or_default()
                    .insert(monitor);
            }
        }
        by_ip
    }

    /// Waits until the telemetry stream shows `ip` probed with the outcome `up` after `after`.
    pub async fn wait_probed(
        &self,
        ip: Ipv4Addr,
        after: time::OffsetDateTime,
        up: bool,
    ) -> events::monitor::ProbeResult {
        let what = format!("{ip} is probed (up: {up}) after {after}");
        eventually_every(what, PATIENCE, TELEMETRY_STREAM_POLL_INTERVAL, || async {
            self.probe_results()
                .await
                .into_iter()
                .find(|r| r.target.mgmt_ip == ip && r.at > after && r.outcome.is_up() == up)
                .ok_or("no such result in the telemetry stream")
        })
        .await
    }

    /// The VNF's `index`th instance, once the telemetry stream shows it probed and up.
    pub async fn probed_instance(&self, vnf_id: &str, index: usize) -> events::vnf::Instance {
        let instance = self.vnf(vnf_id).await.instances[index].clone();
        self.wait_probed(instance.mgmt_ip, instance.booted_at, true)
            .await;
        instance
    }

    /// Waits until the VNF's log shows `old` replaced and the VNF ACTIVE again (a respawn),
    /// then until the telemetry stream shows every instance it now has probed up; answers the
    /// VNF as its log then stands.
    pub async fn wait_respawned(
        &self,
        vnf_id: &str,
        old: &events::vnf::Instance,
    ) -> events::vnf::Vnf {
        let healed = self
            .wait_log(vnf_id, "respawned", |v| {
                v.status == Some(events::vnf::VnfStatus::Active)
                    && v.instances.iter().all(|i| i.instance_id != old.instance_id)
            })
            .await;
        for new in &healed.instances {
            self.wait_probed(new.mgmt_ip, new.booted_at, true).await;
        }
        healed
    }

    /// Waits until the VNF's log satisfies `done`.
    pub async fn wait_log(
        &self,
        vnf_id: &str,
        what: &str,
        done: impl Fn(&events::vnf::Vnf) -> bool,
    ) -> events::vnf::Vnf {
        eventually(format!("VNF {vnf_id} {what}"), PATIENCE, || async {
            let vnf = self.vnf(vnf_id).await;
            if done(&vnf) {
                Ok(vnf)
            } else {
                Err(format!("{vnf:?}"))
            }
        })
        .await
    }
}
