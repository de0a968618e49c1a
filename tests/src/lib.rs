//! End-to-end test support: a whole vnfm (projector, conductor with the local VIM, gateway on a
//! real port) over a real nats-server, in one test process, torn down on drop with every
//! namespace it created.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use conductor::vim::local::{self, LocalVim, LocalVimConfig};
use conductor::{Conductor, ConductorConfig};
use events::store::{EventLog, LogConfig};
use gateway::{Auth, Gateway, GatewayConfig};
use projector::Tables;
use serde_json::Value;
use testkit::NatsServer;
use tokio::sync::watch;

/// How long a test waits for an asynchronous outcome (a VNF becoming ACTIVE, a row appearing).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running vnfm.
pub struct System {
    pub nats: NatsServer,
    pub log: EventLog,
    pub tables: Tables,
    pub api: String,
    pub http: reqwest::Client,
    pub vim_prefix: String,
    stop: watch::Sender<bool>,
}

static SYSTEMS: AtomicU32 = AtomicU32::new(0);

impl System {
    /// Starts every role with a local VIM whose names start with a prefix unique to this test.
    pub async fn start() -> System {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,async_nats=warn")
            .with_test_writer()
            .try_init();
        let nats = NatsServer::start().await;
        let log = EventLog::open(nats.client().await, &LogConfig::default())
            .await
            .expect("open the log");
        let tables = Tables::open(log.jetstream(), 1)
            .await
            .expect("open the tables");
        let vim_prefix = format!(
            "t{:x}{}",
            std::process::id() % 0xfff,
            SYSTEMS.fetch_add(1, Ordering::Relaxed)
        );
        let (stop, _) = watch::channel(false);
        let shutdown = || {
            let mut stop = stop.subscribe();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        tokio::spawn(projector::run(log.clone(), tables.clone(), shutdown()));
        let vim = LocalVim::new(LocalVimConfig {
            prefix: vim_prefix.clone(),
            ..LocalVimConfig::default()
        })
        .expect("the local VIM (tests run as root)");
        let conductor = Conductor::new(
            log.clone(),
            Arc::new(vim),
            ConductorConfig {
                instance: format!("conductor-{vim_prefix}"),
                ..ConductorConfig::default()
            },
        );
        tokio::spawn(conductor.run(shutdown()));
        let gateway = Gateway::new(
            log.clone(),
            tables.clone(),
            GatewayConfig {
                auth: Auth::None,
                tenant_id: "admin".into(),
                instance: format!("gateway-{vim_prefix}"),
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
        System {
            nats,
            log,
            tables,
            api,
            http: reqwest::Client::new(),
            vim_prefix,
            stop,
        }
    }

    /// Sends a request; answers the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("X-Auth-Token", "");
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
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get(&format!("/vnfs/{vnf_id}")).await;
            if done(status, &body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "VNF {vnf_id} never became {what}; last answer {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Namespaces and links of this test's VIM still present in the kernel.
    pub fn remnants(&self) -> local::Remnants {
        local::remnants(&self.vim_prefix).expect("list namespaces")
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Err(e) = local::cleanup_prefix_blocking(&self.vim_prefix) {
            eprintln!("cleanup of {} failed: {e}", self.vim_prefix);
        }
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
            surge_ping::PingIdentifier(std::process::id() as u16),
        )
        .await;
    pinger.timeout(Duration::from_secs(1));
    pinger
        .ping(surge_ping::PingSequence(0), &[0; 8])
        .await
        .is_ok()
}
