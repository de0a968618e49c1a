//! Wiring: each sub-command connects, opens what it needs and runs until a signal, then
//! drains within a deadline. It decides nothing about flags: they arrive checked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use async_nats::jetstream;
use conductor::vim::Vim;
use conductor::vim::local::{LocalVim, LocalVimConfig};
use conductor::vim::loopback::{Blocklist, BlocklistOp, LoopbackVim};
use conductor::{Conductor, ConductorConfig};
use events::access::{self, Identity};
use events::keyring::Keyring;
use events::secrets::DataKey;
use events::setup::{self, LogConfig};
use events::store::{self, EventLog};
use events::vnf::VnfEvent;
use events::{credentials, names};
use futures::StreamExt;
use gateway::story::{self, Told};
use gateway::{Gateway, GatewayConfig};
use monitor::probe::Prober;
use monitor::{Monitor, MonitorConfig, snapshot_store};
use projector::Tables;

use crate::config::{self, Api, Config, Nats, VimKind};
use crate::nats_server;

/// How long `rebuild --verify` waits for the projector to reach the end of the log.
const VERIFY_CATCH_UP: Duration = Duration::from_secs(30);

/// How long the roles of a process have, after the stop signal, to finish their in-flight work
/// before they are aborted. Ten seconds: longer than a JetStream request's timeout (3 s, see
/// `nats_server`), so that an append in flight to a live cluster ends on its own, and well
/// under a supervisor's kill timeout (30 s in Kubernetes, 90 s in systemd), so that vnfm says
/// itself what it could not finish instead of being killed silently.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    match config {
        Config::Up(up_config) => up(up_config).await,
        Config::Gateway {
            nats,
            api,
            metrics_listen,
        } => {
            let name = nats.instance("gateway");
            let log = open(&nats, &name, Identity::Gateway).await?;
            let tables = Tables::open(log.jetstream()).await?;
            let master_key = api
                .master_key
                .clone()
                .context("--master-key: required (checked with the flags)")?;
            let mut roles = Roles::new();
            roles.metrics(metrics_listen).await?;
            roles.gateway(log, tables, &api, master_key, name).await?;
            Ok(roles.wait().await)
        }
        Config::Projector {
            nats,
            metrics_listen,
        } => {
            let log = open(&nats, &nats.instance("projector"), Identity::Projector).await?;
            let tables = Tables::open(log.jetstream()).await?;
            let mut roles = Roles::new();
            roles.metrics(metrics_listen).await?;
            roles.projector(log, tables);
            Ok(roles.wait().await)
        }
        Config::Conductor(conductor) => {
            let vim = BuiltinVim::start(conductor.vim_kind, &conductor.vim_prefix).await?;
            let nats = &conductor.nats;
            let config = ConductorConfig {
                instance: nats.instance("conductor"),
                ack_wait: conductor.ack_wait,
                respawn_limit: conductor.respawn_limit,
                stop_at: conductor.stop_at,
                vim_check_interval: conductor.vim_check_interval,
                drift_interval: conductor.drift_interval,
            };
            let log = open(nats, &config.instance, Identity::Conductor).await?;
            let mut roles = Roles::new();
            roles.metrics(conductor.metrics_listen).await?;
            roles
                .conductor(log, vim, conductor.master_key, config)
                .await?;
            Ok(roles.wait().await)
        }
        Config::Monitor(monitor) => {
            let prober = prober()?;
            let config = MonitorConfig {
                instance: monitor.nats.instance("monitor"),
                suspect_failures_min: monitor.suspect_failures_min,
                probe_cidrs: monitor.probe_cidrs,
                snapshots: monitor.snapshots,
            };
            let log = open(&monitor.nats, &config.instance, Identity::Monitor).await?;
            let mut roles = Roles::new();
            roles.metrics(monitor.metrics_listen).await?;
            roles.monitor(log, prober, config);
            Ok(roles.wait().await)
        }
        Config::Setup { nats, log } => {
            let client = connect(&nats, "vnfm-setup", Identity::Admin).await?;
            setup::provision(&jetstream::new(client), &log).await?;
            println!(
                "streams and buckets ready, with {} replicas each",
                log.replicas
            );
            Ok(ExitCode::SUCCESS)
        }
        Config::NatsAuthorization {
            credentials_dir,
            tls_dir,
        } => {
            let seeds = credentials::ensure(&credentials_dir)?;
            print!(
                "{}",
                access::authorization(
                    seeds
                        .iter()
                        .map(|(identity, seed)| (*identity, seed.public_key()))
                )
            );
            if let Some(dir) = tls_dir {
                print!("{}", events::tls::ensure(&dir)?.server_block(false));
            }
            Ok(ExitCode::SUCCESS)
        }
        Config::Audit {
            vnf_id,
            json,
            window,
            nats,
        } => audit(&nats, &vnf_id, json, window).await,
        Config::Tail { vnf_id, nats } => tail(&nats, vnf_id.as_deref()).await,
        Config::Rebuild { verify, nats } => rebuild(&nats, verify).await,
        Config::VerifySnapshot { nats } => verify_snapshot(&nats).await,
        Config::VimOrphans {
            nats,
            master_key,
            json,
        } => vim_orphans(&nats, master_key, json).await,
        Config::VimLoopback {
            vim_prefix,
            op,
            addresses,
        } => vim_loopback(&vim_prefix, op, addresses).await,
        // Its namespace must be entered before any runtime thread exists: `main` runs it.
        Config::VduHttp(_) => anyhow::bail!("vdu-http runs before the async runtime starts"),
        Config::TokenCreate(_) => {
            anyhow::bail!("token create runs before the async runtime starts")
        }
    }
}

/// A connection as `identity`, with the seed `nats` names.
async fn connect(
    nats: &Nats,
    name: &str,
    identity: Identity,
) -> anyhow::Result<async_nats::Client> {
    nats_server::connect(nats, name, identity).await
}

/// The lifecycle log, over a connection as `identity`.
async fn open(nats: &Nats, name: &str, identity: Identity) -> anyhow::Result<EventLog> {
    Ok(EventLog::open(connect(nats, name, identity).await?).await?)
}

/// The local VIM, started before anything connects so that a host that cannot run it (no
/// root, no iproute2) is refused at once.
fn local_vim(prefix: &str) -> anyhow::Result<LocalVim> {
    // The VIM runs this very binary as `vnfm vdu-http` for each HTTP responder.
    let program = std::env::current_exe().context("locating the vnfm binary")?;
    LocalVim::new(LocalVimConfig::new(prefix, program)).context("starting the local VIM")
}

/// What serves the built-in VIM `local`, as `--vim` chose it, before it binds to the bus.
enum BuiltinVim {
    Local(LocalVim),
    /// The loopback VIM's blocklist, made; the VIM binds to its bucket once connected.
    Loopback(Blocklist),
}

impl BuiltinVim {
    /// Started before anything connects, so that a host that cannot run it (no root, no
    /// iproute2, no ipset or iptables) is refused at once.
    async fn start(kind: VimKind, prefix: &str) -> anyhow::Result<Self> {
        match kind {
            VimKind::Local => Ok(BuiltinVim::Local(local_vim(prefix)?)),
            VimKind::Loopback => {
                let blocklist = Blocklist::new(prefix)?;
                blocklist
                    .ensure()
                    .await
                    .context("making the loopback VIM's blocklist")?;
                Ok(BuiltinVim::Loopback(blocklist))
            }
        }
    }

    /// The driver, bound to the bus of `log` where it keeps its state.
    async fn open(self, log: &EventLog) -> anyhow::Result<Arc<dyn Vim>> {
        match self {
            BuiltinVim::Local(vim) => Ok(Arc::new(vim)),
            BuiltinVim::Loopback(blocklist) => {
                let allocations =
                    store::open_bucket(log.jetstream(), names::LOOPBACK_VIM_BUCKET).await?;
                tracing::info!(
                    blocklist = blocklist.set(),
                    "The built-in VIM is the loopback VIM."
                );
                Ok(Arc::new(LoopbackVim::new(allocations, blocklist).await?))
            }
        }
    }
}

/// The monitor's ICMP socket, opened before anything connects.
fn prober() -> anyhow::Result<Prober> {
    let prober =
        Prober::new().context("opening the ICMP socket (the monitor needs root or CAP_NET_RAW)")?;
    tracing::info!(
        receive_buffer_bytes = prober.receive_buffer_bytes(),
        "ICMP socket open."
    );
    Ok(prober)
}

async fn up(config: config::Up) -> anyhow::Result<ExitCode> {
    let vim = BuiltinVim::start(config.vim_kind, &config.vim_prefix).await?;
    let prober = prober()?;
    let credentials_dir = config.data_dir.join("credentials");
    let seeds = credentials::ensure(&credentials_dir)?;
    let tls = if config.tls {
        Some(events::tls::ensure(&config.data_dir.join("tls"))?)
    } else {
        None
    };
    // Kept alive for the whole run: dropping it stops the embedded server.
    let _server;
    let nats_url = if let Some(url) = &config.nats_url {
        url.clone()
    } else {
        let server = nats_server::start(
            &config.data_dir,
            config.nats_server_bin.clone(),
            &seeds,
            tls.as_ref(),
        )
        .await?;
        let url = server.url.clone();
        _server = server;
        url
    };
    tracing::info!(
        nats_url = %nats_url,
        credentials = %credentials_dir.display(),
        "vnfm up: using NATS at {nats_url}; each identity's seed is in {}/<identity>.nk.",
        credentials_dir.display()
    );
    let name = format!("up-{}", std::process::id());
    // Where and as whom each identity connects.
    let nats_as = |identity: Identity| Nats {
        url: nats_url.clone(),
        name: None,
        nkey: seeds
            .iter()
            .find(|(i, _)| *i == identity)
            .map(|(_, seed)| seed.clone()),
        tls_ca: tls.as_ref().map(|tls| tls.ca.clone()),
    };
    // Each role connects as its own identity, as it would in a process of its own.
    let as_identity = |identity: Identity| {
        let nats = nats_as(identity);
        let instance = format!("{}-{name}", identity.name());
        async move {
            let client = connect(&nats, &instance, identity).await?;
            anyhow::Ok((client, instance))
        }
    };
    let admin = connect(
        &nats_as(Identity::Admin),
        &format!("admin-{name}"),
        Identity::Admin,
    )
    .await?;
    setup::provision(&jetstream::new(admin), &LogConfig::default()).await?;
    let mut roles = Roles::new();
    // One endpoint for every role: they share the process's recorder.
    roles.metrics(config.metrics_listen).await?;
    let (client, _) = as_identity(Identity::Projector).await?;
    let log = EventLog::open(client).await?;
    let tables = Tables::open(log.jetstream()).await?;
    roles.projector(log, tables);
    let master_key = match &config.api.master_key {
        Some(key) => key.clone(),
        None => Arc::new(credentials::ensure_master_key(
            &credentials::master_key_path(&credentials_dir),
        )?),
    };
    let (client, instance) = as_identity(Identity::Conductor).await?;
    let conductor = ConductorConfig {
        instance,
        respawn_limit: config.respawn_limit,
        ..ConductorConfig::default()
    };
    roles
        .conductor(
            EventLog::open(client).await?,
            vim,
            Some(master_key.clone()),
            conductor,
        )
        .await?;
    let (client, instance) = as_identity(Identity::Monitor).await?;
    let monitor = MonitorConfig {
        instance,
        suspect_failures_min: config.suspect_failures_min,
        probe_cidrs: config.probe_cidrs,
        snapshots: config.snapshots,
    };
    roles.monitor(EventLog::open(client).await?, prober, monitor);
    let (client, instance) = as_identity(Identity::Gateway).await?;
    let log = EventLog::open(client).await?;
    let tables = Tables::open(log.jetstream()).await?;
    roles
        .gateway(log, tables, &config.api, master_key, instance)
        .await?;
    Ok(roles.wait().await)
}

/// The roles running in this process and the signal that stops them.
struct Roles {
    /// Set to true once, on SIGINT/SIGTERM or when any role ends; every role watches it.
    stop: watch::Sender<bool>,
    running: JoinSet<anyhow::Result<()>>,
    /// The role each running task is, to name those that fail or do not drain in time.
    names: HashMap<tokio::task::Id, &'static str>,
    /// The roles' connections, flushed once they have stopped.
    clients: Vec<async_nats::Client>,
}

impl Roles {
    fn new() -> Self {
        let (stop, _) = watch::channel(false);
        let on_signal = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("Stopping.");
            on_signal.send_replace(true);
        });
        tokio::spawn(gateway::glibc_heap::trim_every(
            gateway::glibc_heap::HEAP_TRIM_INTERVAL,
        ));
        Roles {
            stop,
            running: JoinSet::new(),
            names: HashMap::new(),
            clients: Vec::new(),
        }
    }

    fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    fn spawn<E: Into<anyhow::Error>>(
        &mut self,
        role: &'static str,
        run: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let task = self
            .running
            .spawn(async move { run.await.map_err(Into::into) });
        self.names.insert(task.id(), role);
    }

    /// Serves the process's metrics on `listen`, when given, until the stop signal.
    async fn metrics(&mut self, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
        let Some(listen) = listen else {
            return Ok(());
        };
        let (bound, serve) = crate::exporter::bind(listen, self.shutdown()).await?;
        tracing::info!(metrics_listen = %bound, "Metrics on http://{bound}/metrics.");
        self.spawn("metrics", serve);
        Ok(())
    }

    fn projector(&mut self, log: EventLog, tables: Tables) {
        self.clients.push(log.jetstream().client());
        let shutdown = self.shutdown();
        self.spawn("projector", projector::run(log, tables, shutdown));
    }

    /// A conductor on the built-in VIM and, with the master key, on every registered VIM.
    async fn conductor(
        &mut self,
        log: EventLog,
        vim: BuiltinVim,
        master_key: Option<Arc<DataKey>>,
        config: ConductorConfig,
    ) -> anyhow::Result<()> {
        self.clients.push(log.jetstream().client());
        let vim = vim.open(&log).await?;
        let mut conductor = Conductor::new(log.clone(), vim, config);
        if let Some(master_key) = master_key {
            let keyring = Keyring::open(log.jetstream(), master_key).await?;
            conductor = conductor.with_registered_vims(keyring);
        }
        let shutdown = self.shutdown();
        self.spawn("conductor", async move { conductor.run(shutdown).await });
        Ok(())
    }

    fn monitor(&mut self, log: EventLog, prober: Prober, config: MonitorConfig) {
        self.clients.push(log.jetstream().client());
        let monitor = Monitor::new(log, Arc::new(prober), config);
        let shutdown = self.shutdown();
        self.spawn("monitor", async move { monitor.run(shutdown).await });
    }

    async fn gateway(
        &mut self,
        log: EventLog,
        tables: Tables,
        api: &Api,
        master_key: Arc<DataKey>,
        instance: String,
    ) -> anyhow::Result<()> {
        self.clients.push(log.jetstream().client());
        let mut guard = api.guard.clone();
        if let Some(open_files_max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .as_deref()
            .and_then(open_files_soft_limit)
        {
            guard.connections_max =
                gateway::connections_max_within(guard.connections_max, open_files_max);
            if guard.connections_max < api.guard.connections_max {
                tracing::warn!(
                    open_files_max,
                    connections_max = guard.connections_max,
                    "--connections-max {} does not fit the open-file limit less {} for the rest; serving at most {} connections (raise LimitNOFILE to serve more).",
                    api.guard.connections_max,
                    gateway::OPEN_FILES_RESERVE,
                    guard.connections_max,
                );
            }
        }
        let config = GatewayConfig {
            auth: api.auth.authenticator(),
            instance,
            stop_at: api.stop_at,
            guard,
            quotas: api.quotas,
            master_key,
            respawn_limit: api.respawn_limit,
        };
        let gateway = Gateway::new(log, tables, config).await?;
        let listener = tokio::net::TcpListener::bind(api.listen)
            .await
            .with_context(|| format!("listening on {}", api.listen))?;
        // The bound address, so that `--listen 127.0.0.1:0` names the port it got.
        let listen = listener.local_addr().unwrap_or(api.listen);
        tracing::info!(listen = %listen, "Gateway listening on http://{listen}.");
        let shutdown = self.shutdown();
        self.spawn("gateway", gateway::serve(listener, gateway, shutdown));
        Ok(())
    }

    /// Waits for every role (see [`drain`](Self::drain)), then flushes what the roles left in
    /// the client's buffer within the same deadline. Fails when a role failed, panicked or had
    /// to be aborted.
    async fn wait(mut self) -> ExitCode {
        let (failed, deadline) = self.drain().await;
        for client in &self.clients {
            flush(client, deadline).await;
        }
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    /// Waits for every role; the first to end, or a signal, stops the others, which then have
    /// [`DRAIN_DEADLINE`] to end before they are aborted. Answers whether any role failed,
    /// panicked or was aborted, and the deadline.
    async fn drain(&mut self) -> (bool, tokio::time::Instant) {
        let mut failed = false;
        let mut stopped = self.stop.subscribe();
        tokio::select! {
            _ = stopped.wait_for(|stopped| *stopped) => {}
            Some(joined) = self.running.join_next_with_id() => failed |= self.ended(joined),
        }
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.running.join_next_with_id()).await {
                Ok(Some(joined)) => failed |= self.ended(joined),
                Ok(None) => break,
                Err(_) => {
                    let mut late: Vec<&str> = self.names.values().copied().collect();
                    late.sort_unstable();
                    tracing::error!(
                        roles = ?late,
                        drain_deadline_s = DRAIN_DEADLINE.as_secs(),
                        "Roles did not stop within the drain deadline; aborting them and what they had in flight."
                    );
                    self.running.abort_all();
                    failed = true;
                    break;
                }
            }
        }
        (failed, deadline)
    }

    /// Logs how a role ended; true when it failed.
    fn ended(
        &mut self,
        joined: Result<(tokio::task::Id, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> bool {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result.map_err(|e| format!("{e:#}"))),
            Err(e) => (e.id(), Err(format!("panicked: {e}"))),
        };
        let role = self.names.remove(&id).unwrap_or("unknown");
        match result {
            Ok(()) => {
                tracing::info!(role, "Role stopped.");
                false
            }
            Err(error) => {
                tracing::error!(role, error, "Role failed.");
                true
            }
        }
    }
}

/// Sends what is still in `client`'s buffer, if NATS is there to take it before `deadline`;
/// says so when it cannot (the roles' own ends decide the exit code).
async fn flush(client: &async_nats::Client, deadline: tokio::time::Instant) {
    let state = client.connection_state();
    let flushed = state == async_nats::connection::State::Connected
        && matches!(
            tokio::time::timeout_at(deadline, client.flush()).await,
            Ok(Ok(()))
        );
    if !flushed {
        tracing::warn!(
            connection = %state,
            "Could not flush to NATS before the drain deadline; messages not yet sent are lost."
        );
    }
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn audit(
    nats: &Nats,
    vnf_id: &str,
    json: bool,
    window: config::Window,
) -> anyhow::Result<ExitCode> {
    let log = open(nats, "vnfm-audit", Identity::Reader).await?;
    let (history, monitor_messages) = story::read(&log, vnf_id).await?;
    if history.last_sequence == 0 {
        eprintln!("vnfm: no VNF {vnf_id} in the log");
        return Ok(ExitCode::FAILURE);
    }
    if json {
        return print_raw(history, monitor_messages, window);
    }
    for line in story::tell(vnf_id, history, &monitor_messages) {
        if window.contains(line.at) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vnfm audit --json`: the lifecycle log and the monitor stream's messages as stored, merged
/// in time order.
fn print_raw(
    history: store::History<VnfEvent>,
    monitor_messages: Vec<events::read::Stored>,
    window: config::Window,
) -> anyhow::Result<ExitCode> {
    let mut lines: Vec<(time::OffsetDateTime, String)> = Vec::new();
    let (recorded, skipped) = history.split();
    for recorded in recorded {
        let envelope = &recorded.envelope;
        let mut text = format!(
            "lifecycle #{} by {} (command {}, correlation {}, caused by {})",
            recorded.sequence,
            envelope.cause.actor,
            envelope.cause.command_id,
            envelope.cause.correlation_id,
            envelope.cause.causation_id,
        );
        for event in &envelope.events {
            write!(text, "\n    {}", serde_json::to_string(event)?)?;
        }
        lines.push((envelope.recorded_at, text));
    }
    for skipped in skipped {
        lines.push((skipped.stored_at, format!("lifecycle {skipped}")));
    }
    for message in monitor_messages {
        let text = String::from_utf8_lossy(&message.payload);
        lines.push((
            message.time,
            format!(
                "monitor #{} {}\n    {text}",
                message.sequence, message.subject
            ),
        ));
    }
    lines.sort_by_key(|(at, _)| *at);
    for (at, text) in lines {
        if window.contains(at) {
            let at = at.format(&time::format_description::well_known::Rfc3339)?;
            println!("{at} {text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vnfm tail`: tells every VNF's events (or only `vnf_id`'s) as they are stored, from now
/// until a signal.
///
/// The lifecycle is followed from the message after the last one present at the start, so
/// that a VNF's story can take in its earlier history exactly up to there (read once, when
/// the VNF first shows up) without telling or missing any message; the monitor stream only
/// from new messages, since nothing of it is needed to tell later ones.
async fn tail(nats: &Nats, vnf_id: Option<&str>) -> anyhow::Result<ExitCode> {
    let log = open(nats, "vnfm-tail", Identity::Reader).await?;
    let (lifecycle_filters, monitor_filters): (Vec<String>, Vec<String>) = match vnf_id {
        Some(id) => (
            vec![names::vnf_subject(id)],
            names::monitor_subjects_of(id).into(),
        ),
        None => (
            vec![names::VNF_SUBJECTS.to_owned()],
            names::MONITOR_SUBJECTS_OF_VNFS.map(str::to_owned).into(),
        ),
    };
    let mut lifecycle_stream = log.stream().clone();
    let through = lifecycle_stream.info().await?.state.last_sequence;
    let mut lifecycle = follow(
        &lifecycle_stream,
        lifecycle_filters,
        jetstream::consumer::DeliverPolicy::ByStartSequence {
            start_sequence: through + 1,
        },
    )
    .await?;
    let monitor_stream = log.jetstream().get_stream(names::MONITOR_STREAM).await?;
    let mut monitor = follow(
        &monitor_stream,
        monitor_filters,
        jetstream::consumer::DeliverPolicy::New,
    )
    .await?;
    tracing::info!(
        vnf_id = vnf_id.unwrap_or("every VNF"),
        through,
        "Tailing the log."
    );

    let mut stories: HashMap<String, story::VnfStory> = HashMap::new();
    let signal = wait_for_signal();
    tokio::pin!(signal);
    loop {
        let (told, id) = tokio::select! {
            () = &mut signal => return Ok(ExitCode::SUCCESS),
            message = lifecycle.next() => {
                let stored = delivered(message, "lifecycle")?;
                let id = names::parse_lifecycle_subject(&stored.subject)
                    .map(|(_, id)| id.to_owned());
                (Told::Lifecycle(store::decode_or_skip(&stored)), id)
            }
            message = monitor.next() => {
                let stored = delivered(message, "monitor")?;
                let id = names::parse_monitor_vnf_subject(&stored.subject).map(str::to_owned);
                (Told::monitor(&stored), id)
            }
        };
        let Some(id) = id else { continue };
        let story = match stories.entry(id.clone()) {
            std::collections::hash_map::Entry::Occupied(held) => held.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let mut story = story::VnfStory::new(slot.key());
                let earlier: store::History<VnfEvent> =
                    log.history(&names::vnf_subject(slot.key())).await?;
                for recorded in earlier.messages.into_iter().flatten() {
                    if recorded.sequence <= through {
                        story.absorb(recorded);
                    }
                }
                slot.insert(story)
            }
        };
        for line in story.tell(told) {
            if vnf_id.is_some() {
                println!("{line}");
            } else {
                println!("{}", line.with_vnf());
            }
        }
        // A deleted VNF's story is dropped, so that the map holds the live fleet at most.
        if story.is_over() {
            stories.remove(&id);
        }
    }
}

/// An ordered consumer of `stream` under `filters` from `deliver_policy` on.
async fn follow(
    stream: &jetstream::stream::Stream,
    filters: Vec<String>,
    deliver_policy: jetstream::consumer::DeliverPolicy,
) -> anyhow::Result<jetstream::consumer::pull::Ordered> {
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subjects: filters,
            deliver_policy,
            ..Default::default()
        })
        .await
        .with_context(|| format!("following {}", stream.cached_info().config.name))?;
    Ok(consumer.messages().await?)
}

/// The message an ordered consumer of the `what` stream delivered.
fn delivered<E: std::error::Error + Send + Sync + 'static>(
    message: Option<Result<jetstream::Message, E>>,
    what: &str,
) -> anyhow::Result<events::read::Stored> {
    let message = message
        .with_context(|| format!("the {what} stream's consumer ended"))?
        .with_context(|| format!("following the {what} stream"))?;
    Ok(events::read::Stored::delivered(message)?)
}

/// `vnfm vim loopback block|unblock`: `addresses`, or those on standard input, one a line.
async fn vim_loopback(
    vim_prefix: &str,
    op: BlocklistOp,
    addresses: Option<Vec<std::net::Ipv4Addr>>,
) -> anyhow::Result<ExitCode> {
    let addresses = if let Some(addresses) = addresses {
        addresses
    } else {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text)
            .await
            .context("reading addresses from standard input")?;
        conductor::vim::loopback::parse_addresses(text.lines())
            .map_err(|reason| anyhow::anyhow!("standard input: {reason}"))?
    };
    let blocklist = Blocklist::new(vim_prefix)?;
    blocklist.apply(op, &addresses).await.with_context(|| {
        format!(
            "changing {} (made by a conductor with --vim loopback --vim-prefix {vim_prefix} on this host)",
            blocklist.set()
        )
    })?;
    let done = match op {
        BlocklistOp::Block => "blocked",
        BlocklistOp::Unblock => "unblocked",
    };
    println!(
        "{done} {} addresses in {}",
        addresses.len(),
        blocklist.set()
    );
    Ok(ExitCode::SUCCESS)
}

/// `vnfm vim orphans`: as the conductor identity, since it must open the VIMs' credentials
/// (their data keys, with the master key) and read the VNF table, which the conductor's drift
/// reads too; it writes nothing.
async fn vim_orphans(
    nats: &Nats,
    master_key: Option<Arc<DataKey>>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let master_key = master_key.context("--master-key names no readable key")?;
    let log = open(nats, "vnfm-vim-orphans", Identity::Conductor).await?;
    let keyring = Keyring::open(log.jetstream(), master_key).await?;
    let vims = conductor::vims::Vims::registered_only(log.clone(), keyring);
    let listed = conductor::reconcile::orphans(&log, &vims).await?;
    let failed = listed.iter().filter(|vim| vim.error.is_some()).count();
    if json {
        println!("{}", serde_json::json!({ "vims": listed }));
    } else {
        println!("VIM\tKIND\tOPENSTACK_ID\tINSTANCE_ID\tVNF_ID");
        for orphan in listed.iter().flat_map(|vim| &vim.orphans) {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                orphan.vim_id,
                orphan.kind,
                orphan.openstack_id,
                orphan.instance_id,
                orphan.vnf_id.as_deref().unwrap_or("-")
            );
        }
        for vim in &listed {
            if let Some(error) = &vim.error {
                eprintln!("vnfm vim orphans: VIM {} not listed: {error}", vim.vim_id);
            }
        }
        let count: usize = listed.iter().map(|vim| vim.orphans.len()).sum();
        eprintln!("{count} orphans on {} registered VIMs", listed.len());
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `vnfm verify-snapshot`: the monitors' lifecycle snapshot against the log, as the reader.
async fn verify_snapshot(nats: &Nats) -> anyhow::Result<ExitCode> {
    let log = open(nats, "vnfm-verify-snapshot", Identity::Reader).await?;
    let snapshots = store::open_monitor_snapshots(log.jetstream()).await?;
    let Some(verification) = snapshot_store::verify(&snapshots, log.stream()).await? else {
        println!("no snapshot to verify: monitors replay the whole log at their start");
        return Ok(ExitCode::SUCCESS);
    };
    let snapshot_store::Verification {
        sequence,
        at_snapshot,
        at_end,
        end,
        skipped,
    } = &verification;
    for (what, comparison) in [
        (
            format!("the snapshot at sequence {sequence} against the log folded to it"),
            at_snapshot,
        ),
        (
            format!("the snapshot plus the log after it against the whole log, to sequence {end}"),
            at_end,
        ),
    ] {
        match &comparison.difference {
            None => println!("{what}: matches ({} VNFs)", comparison.vnfs),
            Some(difference) => println!("{what}: differs: {difference}"),
        }
    }
    if verification.matches() {
        println!(
            "matches: snapshot at sequence {sequence}, {} VNFs; log to sequence {end}, {} VNFs; {skipped} undecodable messages skipped",
            at_snapshot.vnfs, at_end.vnfs
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

async fn rebuild(nats: &Nats, verify: bool) -> anyhow::Result<ExitCode> {
    // Verifying reads; rewriting rows is the projector's job, and takes its identity.
    let identity = if verify {
        Identity::Reader
    } else {
        Identity::Projector
    };
    let log = open(nats, "vnfm-rebuild", identity).await?;
    let tables = Tables::open(log.jetstream()).await?;
    if verify {
        let verification = projector::verify(&log, &tables, VERIFY_CATCH_UP).await?;
        for difference in &verification.differences {
            println!("{difference}");
        }
        for skipped in &verification.undecodable {
            println!("lifecycle {skipped}");
        }
        println!(
            "compared {} rows ({} changed after the snapshot, skipped): {}",
            verification.compared,
            verification.skipped,
            if verification.differences.is_empty() {
                "the live tables equal the log".to_owned()
            } else {
                format!("{} differences", verification.differences.len())
            }
        );
        return Ok(if verification.differences.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let written = projector::write_rebuild(&log, &tables).await?;
    println!("rewrote {written} rows from the log");
    Ok(ExitCode::SUCCESS)
}

/// The soft limit on open files in the text of `/proc/self/limits` (`None` when unlimited or
/// not found).
fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             unlimited            unlimited            processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(super::open_files_soft_limit(limits), Some(1024));
        let unlimited = limits.replace("1024 ", "unlimited");
        assert_eq!(super::open_files_soft_limit(&unlimited), None);
        assert_eq!(super::open_files_soft_limit(""), None);
    }

    use super::*;

    /// A role that ends when told to stop.
    fn obedient(roles: &Roles) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let shutdown = roles.shutdown();
        async move {
            shutdown.await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn roles_that_drain_end_at_once_and_succeed() {
        let mut roles = Roles::new();
        roles.spawn("projector", obedient(&roles));
        roles.spawn("gateway", obedient(&roles));
        roles.stop.send_replace(true);
        let started = tokio::time::Instant::now();
        let (failed, _) = roles.drain().await;
        assert!(!failed);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(roles.names.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_role_that_does_not_drain_is_aborted_at_the_deadline() {
        let mut roles = Roles::new();
        roles.spawn("projector", obedient(&roles));
        roles.spawn("monitor", std::future::pending::<anyhow::Result<()>>());
        roles.stop.send_replace(true);
        let started = tokio::time::Instant::now();
        let (failed, deadline) = roles.drain().await;
        assert!(failed, "an aborted role fails the run");
        assert_eq!(started.elapsed(), DRAIN_DEADLINE);
        assert_eq!(deadline, started + DRAIN_DEADLINE);
        assert_eq!(roles.names.values().collect::<Vec<_>>(), [&"monitor"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_role_to_fail_stops_the_others() {
        let mut roles = Roles::new();
        roles.spawn("gateway", obedient(&roles));
        roles.spawn("conductor", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            anyhow::bail!("heal consumer gone")
        });
        let started = tokio::time::Instant::now();
        let (failed, _) = roles.drain().await;
        assert!(failed);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(roles.names.is_empty());
    }
}
