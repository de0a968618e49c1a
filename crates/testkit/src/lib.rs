//! Test support: a real `nats-server` with JetStream for integration tests ([`NatsServer`]), on
//! a free loopback port with a temporary store, killed and reaped when dropped, and restartable
//! on the same port and store for fault tests.
//!
//! This crate is test and benchmark support only: no role of vnfm depends on it (the `bench`
//! binary does, to measure against a fresh server), and it never mocks NATS. Every test talks to the server binary production runs (nats-server 2.12 or newer,
//! installed by `ops/install-nats-server.sh`), configured like `ops/nats/single.conf`.
//!
//! [`NatsCluster`] runs three such servers as a cluster on loopback, configured like
//! `ops/nats/cluster-*.conf`, for tests that kill a stream leader.
//!
//! [`RoleProcess`] runs a `vnfm` role as a child process, for tests that kill and pause roles.
//! [`heap::Counting`] is an allocator that unit tests install to measure what their structures
//! cost.
//! [`eventually`] (and [`eventually_every`], at a pause of the caller's choosing) is the one
//! polling loop tests wait with.

pub mod access;
pub mod cluster;
pub mod heap;
pub mod openstack;
pub mod process;
pub mod wait;

pub use access::Access;
pub use cluster::NatsCluster;
pub use events::access::Identity;
pub use process::{RoleProcess, vnfm_bin};
pub use wait::{block_on_own_thread, eventually, eventually_every, poll};

use cluster::Membership;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use tempfile::TempDir;

/// How long a server may take from spawn to answering JetStream requests. A start takes a few
/// milliseconds; 10 s absorbs a CI machine busy compiling and still fails a broken run quickly.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between readiness probes: short next to a start, long enough not to spin.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Bound on one client connection attempt, and on its JetStream request, while probing, so
/// that a half-started server (or a cluster still electing) cannot use up the whole
/// [`READY_TIMEOUT`] in one try.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Fresh ports [`NatsServer::start`] tries when another process takes the free port between
/// our probe and the server's bind; more than a few such races in a row means something else
/// is wrong.
pub(crate) const START_ATTEMPTS_MAX: u32 = 5;

/// The oldest server vnfm supports (DESIGN.md "NATS").
const SERVER_VERSION_MIN: (u64, u64) = (2, 12);

/// The largest message the server accepts, as in `ops/nats/single.conf`.
const MAX_PAYLOAD: &str = "8MB";

/// How much of the end of the server log a failure message quotes.
const LOG_TAIL_BYTES_MAX: u64 = 16 * 1024;

/// A `nats-server -js` child process on `127.0.0.1:<free port>` with its store in a temporary
/// directory and `sync_interval: always`, as vnfm runs it in production.
///
/// The server is killed (SIGKILL) and reaped on drop, then its directory is removed. A test
/// process killed by a signal cannot run drops and leaves the server behind.
///
/// The binary is `$NATS_SERVER_BIN` if set, else `ops/bin/nats-server` in this workspace, else
/// `nats-server` on `PATH`.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    /// Holds `nats-server.conf`, `nats-server.log` (appended to across restarts) and
    /// [`store_dir`](Self::store_dir).
    dir: TempDir,
    /// `store/` in `dir`.
    store_dir: PathBuf,
    /// Unique per server, so that the readiness probe can tell this server from another
    /// process that took the port.
    server_name: String,
    port: u16,
    /// `None` once killed.
    child: Option<Child>,
    /// Length of the log when the current child was spawned: where its own output starts.
    log_start_bytes: u64,
    durability: Durability,
    /// How long a (re)start may take to answer JetStream requests.
    ready_timeout: Duration,
    /// The routes to the other nodes when this server is a node of a [`NatsCluster`].
    membership: Option<Membership>,
    /// Who it lets in (shared by the nodes of a cluster).
    access: Arc<Access>,
}

/// When the server flushes its store to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `sync_interval: always`: every write is fsynced before it is acknowledged, as vnfm's
    /// `ops/` configs run it. What every test uses.
    SyncAlways,
    /// The server's default (fsync every two minutes): for benchmarks that compare with
    /// figures measured that way.
    ServerDefault,
}

/// Why a spawned server did not become ready.
pub(crate) enum Failure {
    /// Another process holds the port; a different port (or a later try) may work.
    PortTaken(String),
    /// Anything else: retrying will not help.
    Fatal(anyhow::Error),
}

/// What one readiness probe found on the port.
enum Probe {
    Ready,
    NotYet,
    Foreign { server_name: String },
}

impl NatsServer {
    /// Starts a server on a free port with an empty store, and returns once it answers
    /// JetStream requests.
    ///
    /// # Panics
    ///
    /// When no binary is found, the binary is older than 2.12, or the server does not become
    /// ready within 10 s; the message quotes the server's log.
    pub async fn start() -> NatsServer {
        NatsServer::start_with(Durability::SyncAlways).await
    }

    /// Like [`NatsServer::start`], with the given durability.
    pub async fn start_with(durability: Durability) -> NatsServer {
        NatsServer::start_with_access(durability, Access::new()).await
    }

    /// Like [`NatsServer::start_with`], letting in who `access` says: [`Access::open`] for a
    /// benchmark's reference run on a bus without identities.
    pub async fn start_with_access(durability: Durability, access: Access) -> NatsServer {
        let mut server = NatsServer::unstarted(durability, READY_TIMEOUT, Arc::new(access));
        let mut port_races = Vec::new();
        for _ in 0..START_ATTEMPTS_MAX {
            server.port = free_port();
            match server
                .spawn_until_ready(Instant::now() + server.ready_timeout)
                .await
            {
                Ok(()) => return server,
                Err(Failure::PortTaken(why)) => {
                    server.kill();
                    port_races.push(why);
                }
                Err(Failure::Fatal(error)) => panic!("{}", server.report(&error)),
            }
        }
        let error = anyhow!(
            "{START_ATTEMPTS_MAX} free ports in a row were taken before nats-server could bind \
             them: {port_races:?}"
        );
        panic!("{}", server.report(&error))
    }

    /// A server with a unique name and an empty store, not yet given a port nor spawned.
    pub(crate) fn unstarted(
        durability: Durability,
        ready_timeout: Duration,
        access: Arc<Access>,
    ) -> NatsServer {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);

        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .expect("create a temporary directory for nats-server");
        let store_dir = dir.path().join("store");
        fs::create_dir(&store_dir).expect("create the nats-server store directory");
        NatsServer {
            bin: nats_server_bin(),
            dir,
            store_dir,
            server_name: format!(
                "testkit-{}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            ),
            port: 0,
            child: None,
            log_start_bytes: 0,
            durability,
            ready_timeout,
            membership: None,
            access,
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port; the same across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `server_name` it runs under, as JetStream names stream leaders and peers.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// True while the server process runs (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The JetStream `store_dir` (the server keeps its files in `jetstream/` below it); the same
    /// across [`restart`](Self::restart).
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// A new client connected to this server as testkit's superuser, allowed everything (see
    /// [`Access`]): for setting a scene, never for running a role.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection (for example after [`kill`](Self::kill)).
    pub async fn client(&self) -> async_nats::Client {
        connect(self.access.superuser_options(), &self.url()).await
    }

    /// A new client connected as `identity`, with exactly its permissions.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection.
    pub async fn client_as(&self, identity: Identity) -> async_nats::Client {
        connect(self.access.options(identity), &self.url()).await
    }

    /// `vnfm <args> --nats-url URL --nats-nkey SEED` as a process labelled `label`: a role (or
    /// tool) reaching this server as `identity` (a gateway or a conductor with `--master-key` too).
    pub fn spawn_as(&self, label: &str, identity: Identity, args: &[&str]) -> RoleProcess {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(["--nats-url".to_owned(), self.url()]);
        let command = args.first().cloned().unwrap_or_default();
        args.extend(self.access.role_args(identity, &command));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        RoleProcess::spawn(label, &args)
    }

    /// Every line of the server's log (across restarts) where it refused a client an operation
    /// its permissions do not allow (nats-server logs each as a "Publish Violation" or a
    /// "Subscription Violation").
    pub fn permission_violations(&self) -> Vec<String> {
        read_log(&self.log_path(), 0)
            .lines()
            .filter(|line| {
                line.contains("Publish Violation") || line.contains("Subscription Violation")
            })
            .map(str::to_owned)
            .collect()
    }

    /// Who this server lets in: the identities' seed files, for `vnfm --nats-nkey`.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Kills the server with SIGKILL, as a crash or power loss would, and reaps it. Does nothing
    /// when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only when the child has already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it is running, then starts it again on the same port with the same
    /// store, and returns once it answers JetStream requests.
    ///
    /// # Panics
    ///
    /// When the server does not become ready within 10 s (30 s for a cluster node, which waits
    /// for its peers), for example because another process took the port meanwhile; the message
    /// quotes the server's log.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            match self.spawn_until_ready(deadline).await {
                Ok(()) => return,
                Err(Failure::PortTaken(_)) if Instant::now() < deadline => {
                    self.kill();
                    tokio::time::sleep(READY_POLL_INTERVAL).await;
                }
                Err(Failure::PortTaken(why)) => {
                    let error = anyhow!(
                        "port {} stayed taken for {:?}: {why}",
                        self.port,
                        self.ready_timeout
                    );
                    panic!("{}", self.report(&error))
                }
                Err(Failure::Fatal(error)) => panic!("{}", self.report(&error)),
            }
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Writes the config for the current port, spawns the server and waits until it answers
    /// JetStream requests or `deadline` passes.
    async fn spawn_until_ready(&mut self, deadline: Instant) -> Result<(), Failure> {
        self.spawn().map_err(Failure::Fatal)?;
        self.wait_ready(deadline).await
    }

    /// Waits until the spawned server answers JetStream requests or `deadline` passes. A cluster
    /// node answers only once its cluster has elected a meta leader.
    pub(crate) async fn wait_ready(&mut self, deadline: Instant) -> Result<(), Failure> {
        loop {
            let child = self.child.as_mut().expect("spawn leaves a child");
            if let Some(status) = child
                .try_wait()
                .context("check whether nats-server is still running")
                .map_err(Failure::Fatal)?
            {
                let own_log = self.own_log();
                let error = anyhow!("nats-server exited with {status} before it was ready");
                return Err(if own_log.contains("address already in use") {
                    Failure::PortTaken(format!("port {}: address already in use", self.port))
                } else {
                    Failure::Fatal(error)
                });
            }
            if Instant::now() >= deadline {
                return Err(Failure::Fatal(anyhow!(
                    "nats-server did not answer JetStream requests on port {} within {:?}",
                    self.port,
                    self.ready_timeout
                )));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                match self.probe().await.map_err(Failure::Fatal)? {
                    Probe::Ready => return Ok(()),
                    Probe::NotYet => {}
                    Probe::Foreign { server_name } => {
                        return Err(Failure::PortTaken(format!(
                            "port {}: another server ({server_name:?}) answered",
                            self.port
                        )));
                    }
                }
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    /// Writes the config for the current port (and routes, for a cluster node) and spawns the
    /// server without waiting for it.
    pub(crate) fn spawn(&mut self) -> anyhow::Result<()> {
        let store_dir = self
            .store_dir()
            .to_str()
            .context("the temporary store path is not UTF-8")?;
        let sync = match self.durability {
            Durability::SyncAlways => "\n  sync_interval: always",
            Durability::ServerDefault => "",
        };
        let mut config = format!(
            "server_name: {name}\n\
             listen: \"127.0.0.1:{port}\"\n\
             max_payload: {MAX_PAYLOAD}\n\
             jetstream {{\n  store_dir: {store}{sync}\n}}\n",
            name = self.server_name,
            port = self.port,
            store = config_string(store_dir),
        );
        if let Some(membership) = &self.membership {
            config.push_str(&membership.config());
        }
        config.push_str(&self.access.authorization());
        let config_path = self.config_path();
        fs::write(&config_path, config)
            .with_context(|| format!("write {}", config_path.display()))?;

        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        self.log_start_bytes = log.metadata()?.len();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Connects once and asks JetStream for the account; any failure to get there means the
    /// server is not ready yet. An error is returned only for a server that can never do.
    async fn probe(&self) -> anyhow::Result<Probe> {
        let connect = self.access.superuser_options().connect(self.url());
        let Ok(Ok(client)) = tokio::time::timeout(PROBE_CONNECT_TIMEOUT, connect).await else {
            return Ok(Probe::NotYet);
        };
        let info = client.server_info();
        if info.server_name != self.server_name {
            return Ok(Probe::Foreign {
                server_name: info.server_name,
            });
        }
        check_version(&info.version).with_context(|| {
            format!(
                "{} is too old; run ops/install-nats-server.sh",
                self.bin.display()
            )
        })?;
        let jetstream = async_nats::jetstream::new(client);
        let query = jetstream.query_account();
        Ok(
            match tokio::time::timeout(PROBE_CONNECT_TIMEOUT, query).await {
                Ok(Ok(_)) => Probe::Ready,
                _ => Probe::NotYet,
            },
        )
    }

    /// The log written by the current child.
    fn own_log(&self) -> String {
        read_log(&self.log_path(), self.log_start_bytes)
    }

    /// A failure message with everything needed to debug it without rerunning.
    pub(crate) fn report(&self, error: &anyhow::Error) -> String {
        let log_path = self.log_path();
        let len = fs::metadata(&log_path).map_or(0, |meta| meta.len());
        let tail = read_log(&log_path, len.saturating_sub(LOG_TAIL_BYTES_MAX));
        format!(
            "testkit: {error:#}\n  binary: {}\n  url: {}\n  config: {}\n  log {}:\n{tail}",
            self.bin.display(),
            self.url(),
            self.config_path().display(),
            log_path.display(),
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nats-server binary tests run: `$NATS_SERVER_BIN`, else `ops/bin/nats-server` in this
/// workspace, else `nats-server` on `PATH`.
///
/// # Panics
///
/// When there is none.
pub fn nats_server_bin() -> PathBuf {
    const INSTALL_HINT: &str = "run ops/install-nats-server.sh (ops/test does) to install the \
                                pinned nats-server, or set NATS_SERVER_BIN";
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN").filter(|bin| !bin.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "NATS_SERVER_BIN={} is not a file; {INSTALL_HINT}",
            bin.display()
        );
        return bin;
    }
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let installed = workspace_root.join("ops/bin/nats-server");
    if installed.is_file() {
        return installed;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no nats-server: NATS_SERVER_BIN is unset, {} does not exist and none is on \
                 PATH; {INSTALL_HINT}",
                installed.display()
            )
        })
}

/// A client connected with `options` to `url` (one or more comma-separated URLs).
///
/// # Panics
///
/// When the server does not accept the connection.
pub(crate) async fn connect(options: async_nats::ConnectOptions, url: &str) -> async_nats::Client {
    let urls: Vec<&str> = url.split(',').collect();
    options
        .connect(urls)
        .await
        .unwrap_or_else(|error| panic!("connect to nats-server at {url}: {error}"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Fails when `version` (as in the server's INFO, e.g. `2.12.8` or `2.12.0-RC.1`) is older than
/// [`SERVER_VERSION_MIN`].
fn check_version(version: &str) -> anyhow::Result<()> {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(str::parse::<u64>);
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(anyhow!("cannot parse nats-server version {version:?}"));
    };
    let (major_min, minor_min) = SERVER_VERSION_MIN;
    if (major, minor) < SERVER_VERSION_MIN {
        return Err(anyhow!(
            "nats-server {version} is older than {major_min}.{minor_min}"
        ));
    }
    Ok(())
}

/// `value` as a double-quoted string of the NATS config format.
pub(crate) fn config_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The log from byte `start` on, lossily decoded; a note instead when it cannot be read.
fn read_log(path: &Path, start: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_2_12_on_are_accepted() {
        for version in [
            "2.12.0",
            "2.12.8",
            "v2.12.1",
            "2.12.0-RC.1",
            "2.13.0",
            "3.0.0",
        ] {
            assert!(check_version(version).is_ok(), "{version}");
        }
        for version in ["2.11.9", "2.9.25", "1.99.0", "", "two.twelve"] {
            assert!(check_version(version).is_err(), "{version}");
        }
    }

    #[test]
    fn config_strings_are_quoted_and_escaped() {
        assert_eq!(config_string("/tmp/a b"), r#""/tmp/a b""#);
        assert_eq!(config_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
