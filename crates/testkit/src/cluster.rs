//! Three `nats-server` nodes clustered on loopback, as `ops/nats/cluster-*.conf` runs them in
//! production, for tests that kill a node (the leader of a stream) under load: [`NatsCluster`].

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use events::tls::TlsFiles;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::{
    Access, Durability, Failure, Identity, NatsServer, START_ATTEMPTS_MAX, config_string, free_port,
};

/// Nodes in the cluster: the smallest one that keeps a quorum with a node down, as `ops/` runs.
const NODES: usize = 3;

/// How long the cluster (or one restarted node) may take to answer JetStream requests: the
/// nodes must find each other and elect a meta leader, which takes a few seconds, more on a CI
/// machine busy compiling.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`NatsCluster::stream_leader`] waits for a stream to have a leader (an election after
/// a leader was killed takes a few seconds).
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause between the readiness and leader checks of the whole cluster.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Bound on one JetStream request of those checks, so that a request to a node being killed
/// cannot use up a whole timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The stream created (and deleted) once at start to prove that the cluster places three
/// replicas: a meta leader that does not know every peer yet refuses it.
const READY_PROBE_STREAM: &str = "TESTKIT_CLUSTER_READY";

/// A node's place in its cluster: the rest of its config.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    cluster_name: String,
    route_port: u16,
    /// The route ports of every node, this one's included (a node ignores the route to itself,
    /// so all nodes share one list, as in `ops/`).
    route_ports: Vec<u16>,
    /// The certificate every node presents to the others and the CA it verifies theirs with:
    /// the routes are authenticated and encrypted, as in `ops/`.
    route_tls: TlsFiles,
}

impl Membership {
    /// The `cluster { … }` block of the node's config.
    pub(crate) fn config(&self) -> String {
        let mut routes = String::new();
        for port in &self.route_ports {
            let _ = writeln!(
                routes,
                "    {}",
                config_string(&format!("nats-route://127.0.0.1:{port}"))
            );
        }
        let tls = self.route_tls.server_block(true).replace('\n', "\n  ");
        format!(
            "cluster {{\n  name: {name}\n  listen: \"127.0.0.1:{port}\"\n  routes: [\n{routes}  ]\n  {tls}\n}}\n",
            name = config_string(&self.cluster_name),
            port = self.route_port,
        )
    }
}

/// Three `nats-server -js` nodes on loopback (free client and route ports, each with its own
/// temporary store and `sync_interval: always`), routed to each other under one cluster name.
///
/// Streams created on it should have 3 replicas (`vnfm --replicas 3`). Each node is killed and
/// reaped on drop, like [`NatsServer`]; nodes are numbered `0..3`.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes and returns once each answers JetStream requests and the cluster can
    /// place a stream with three replicas.
    ///
    /// # Panics
    ///
    /// When no binary is found or the cluster is not ready within 30 s; the message quotes
    /// every node's log.
    pub async fn start() -> NatsCluster {
        let access = Arc::new(Access::new());
        let route_tls = events::tls::ensure(&access.data_dir().join("tls"))
            .expect("make the routes' certificates");
        let mut cluster = NatsCluster {
            nodes: (0..NODES)
                .map(|_| {
                    NatsServer::unstarted(
                        Durability::SyncAlways,
                        CLUSTER_READY_TIMEOUT,
                        access.clone(),
                    )
                })
                .collect(),
        };
        // Unique like the server names, so that nodes of two clusters never join each other.
        let cluster_name = format!("{}-cluster", cluster.nodes[0].server_name());
        let mut port_races = Vec::new();
        for _ in 0..START_ATTEMPTS_MAX {
            let mut ports = distinct_free_ports(2 * NODES);
            let route_ports = ports.split_off(NODES);
            for (node, (port, route_port)) in
                cluster.nodes.iter_mut().zip(ports.iter().zip(&route_ports))
            {
                node.port = *port;
                node.membership = Some(Membership {
                    cluster_name: cluster_name.clone(),
                    route_port: *route_port,
                    route_ports: route_ports.clone(),
                    route_tls: route_tls.clone(),
                });
                if let Err(error) = node.spawn() {
                    panic!("{}", cluster.report(&error));
                }
            }
            let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
            match cluster.wait_ready(deadline).await {
                Ok(()) => return cluster,
                Err(Failure::PortTaken(why)) => {
                    cluster.nodes.iter_mut().for_each(NatsServer::kill);
                    port_races.push(why);
                }
                Err(Failure::Fatal(error)) => panic!("{}", cluster.report(&error)),
            }
        }
        let error = anyhow!(
            "{START_ATTEMPTS_MAX} sets of free ports in a row were taken before the nodes could \
             bind them: {port_races:?}"
        );
        panic!("{}", cluster.report(&error))
    }

    /// The client URLs of every node, comma-separated, as `vnfm --nats-url` takes them.
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// The client URL of each node, in node order.
    pub fn url_list(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Node `node` (for its name, port, or store).
    ///
    /// # Panics
    ///
    /// When `node` is not below 3.
    pub fn node(&self, node: usize) -> &NatsServer {
        &self.nodes[node]
    }

    /// A new client as testkit's superuser that may use any node and fails over between them.
    ///
    /// # Panics
    ///
    /// When no node accepts the connection.
    pub async fn client(&self) -> async_nats::Client {
        crate::connect(self.access().superuser_options(), &self.urls()).await
    }

    /// A new client as `identity` that may use any node and fails over between them.
    ///
    /// # Panics
    ///
    /// When no node accepts the connection.
    pub async fn client_as(&self, identity: Identity) -> async_nats::Client {
        crate::connect(self.access().options(identity), &self.urls()).await
    }

    /// Who the nodes let in (every node the same).
    pub fn access(&self) -> &Access {
        self.nodes[0].access()
    }

    /// The port node `node` takes routes from the other nodes on.
    pub fn route_port(&self, node: usize) -> u16 {
        self.nodes[node]
            .membership
            .as_ref()
            .map_or(0, |membership| membership.route_port)
    }

    /// Kills node `node` with SIGKILL, as a crash or power loss would, and reaps it.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].kill();
    }

    /// Kills node `node` if it runs, then starts it again with the same ports and store, and
    /// returns once it answers JetStream requests (it has rejoined the cluster).
    ///
    /// # Panics
    ///
    /// When it is not ready within 30 s; the message quotes its log.
    pub async fn restart(&mut self, node: usize) {
        self.nodes[node].restart().await;
    }

    /// The node that leads `stream` now, from the stream's info as a running node answers it;
    /// waits while the stream has no leader (during an election).
    ///
    /// # Panics
    ///
    /// When no running node names a leader within 20 s, or names a server that is not one of
    /// the nodes.
    pub async fn stream_leader(&mut self, stream: &str) -> usize {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        let mut last_error = String::from("no node is running");
        while Instant::now() < deadline {
            for node in 0..NODES {
                if !self.nodes[node].is_running() {
                    continue;
                }
                match self.leader_seen_by(node, stream).await {
                    Ok(Some(leader)) => {
                        return self
                            .nodes
                            .iter()
                            .position(|server| server.server_name() == leader)
                            .unwrap_or_else(|| {
                                panic!("{stream} is led by {leader:?}, which is not a node")
                            });
                    }
                    Ok(None) => last_error = format!("{stream} has no leader"),
                    Err(error) => last_error = format!("{error:#}"),
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let error = anyhow!("no leader of {stream} within {LEADER_TIMEOUT:?}: {last_error}");
        panic!("{}", self.report(&error))
    }

    /// The leader of `stream` as node `node` reports it.
    async fn leader_seen_by(&self, node: usize, stream: &str) -> anyhow::Result<Option<String>> {
        let info = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let client = self.nodes[node]
                .access
                .superuser_options()
                .connect(self.nodes[node].url())
                .await?;
            let jetstream = async_nats::jetstream::new(client);
            let mut stream = jetstream.get_stream(stream).await?;
            anyhow::Ok(stream.info().await?.clone())
        })
        .await
        .map_err(|_| anyhow!("node {node} did not answer within {REQUEST_TIMEOUT:?}"))??;
        Ok(info
            .cluster
            .and_then(|cluster| cluster.leader)
            .filter(|leader| !leader.is_empty()))
    }

    /// Waits until every node answers JetStream requests and the cluster places (and removes)
    /// a stream with three replicas.
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), Failure> {
        for node in &mut self.nodes {
            node.wait_ready(deadline).await?;
        }
        let patience = deadline.saturating_duration_since(Instant::now());
        crate::poll(patience, POLL_INTERVAL, || async {
            self.place_probe_stream()
                .await
                .map_err(|error| format!("{error:#}"))
        })
        .await
        .map_err(|last_error| {
            Failure::Fatal(anyhow!(
                "the cluster could not place a stream with {NODES} replicas within \
                 {CLUSTER_READY_TIMEOUT:?}: {last_error}"
            ))
        })
    }

    /// Creates and deletes [`READY_PROBE_STREAM`] with three replicas.
    async fn place_probe_stream(&self) -> anyhow::Result<()> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let client = self.nodes[0]
                .access
                .superuser_options()
                .connect(self.url_list())
                .await?;
            let jetstream = async_nats::jetstream::new(client);
            jetstream
                .create_stream(async_nats::jetstream::stream::Config {
                    name: READY_PROBE_STREAM.into(),
                    subjects: vec!["testkit.cluster.ready".into()],
                    num_replicas: NODES,
                    ..Default::default()
                })
                .await?;
            jetstream.delete_stream(READY_PROBE_STREAM).await?;
            anyhow::Ok(())
        })
        .await
        .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
    }

    /// A failure message quoting every node's log.
    fn report(&self, error: &anyhow::Error) -> String {
        let mut report = format!("testkit: cluster {}: {error:#}", self.urls());
        for (n, node) in self.nodes.iter().enumerate() {
            let _ = write!(report, "\n--- node {n} ---\n{}", node.report(error));
        }
        report
    }
}

/// `count` loopback ports that were free a moment ago, no two the same.
fn distinct_free_ports(count: usize) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    let mut ordered = Vec::with_capacity(count);
    while ordered.len() < count {
        let port = free_port();
        if ports.insert(port) {
            ordered.push(port);
        }
    }
    ordered
}
