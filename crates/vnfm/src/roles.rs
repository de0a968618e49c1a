//! Wiring: each sub-command connects, opens what it needs and runs until a signal.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::task::JoinSet;

use conductor::vim::local::{LocalVim, LocalVimConfig};
use conductor::{Conductor, ConductorConfig};
use events::names;
use events::store::{self, EventLog, LogConfig};
use events::vnf::{RespawnLimit, VnfEvent};
use gateway::{Auth, Gateway, GatewayConfig};
use monitor::probe::Prober;
use monitor::{Monitor, MonitorConfig};
use projector::Tables;

use crate::{
    ApiArgs, AuthMode, Command, HealArgs, NatsArgs, ProbeArgs, UpArgs, VimArgs, nats_server,
};

/// How long `rebuild --verify` waits for the projector to reach the end of the log.
const VERIFY_CATCH_UP: Duration = Duration::from_secs(30);

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Gateway(args) => {
            let name = instance(&args.nats, "gateway");
            let (log, tables) = open(&args.nats, &name).await?;
            let mut roles = Roles::new();
            roles.gateway(log, tables, &args.api, name).await?;
            roles.wait().await
        }
        Command::Projector(nats) => {
            let (log, tables) = open(&nats, &instance(&nats, "projector")).await?;
            let mut roles = Roles::new();
            roles.projector(log, tables);
            roles.wait().await
        }
        Command::Conductor(args) => {
            let name = instance(&args.nats, "conductor");
            let (log, _) = open(&args.nats, &name).await?;
            let config = ConductorConfig {
                instance: name,
                ack_wait: Duration::from_secs(args.ack_wait_s),
                stop_at: args.stop_at,
                ..conductor_config(&args.heal, &args.nats)
            };
            let mut roles = Roles::new();
            roles.conductor(log, &args.vim, config)?;
            roles.wait().await
        }
        Command::Monitor(args) => {
            let name = instance(&args.nats, "monitor");
            let (log, _) = open(&args.nats, &name).await?;
            let mut roles = Roles::new();
            roles.monitor(log, &args.probe, &args.nats, name)?;
            roles.wait().await
        }
        Command::Audit { vnf_id, nats } => audit(&nats, &vnf_id).await,
        Command::Rebuild { verify, nats } => rebuild(&nats, verify).await,
        // Its namespace must be entered before any runtime thread exists: `main` runs it.
        Command::VduHttp(_) => bail!("vdu-http runs before the async runtime starts"),
    }
}

/// The instance's name: `--name`, else the role and the process id.
fn instance(nats: &NatsArgs, role: &str) -> String {
    nats.name
        .clone()
        .unwrap_or_else(|| format!("{role}-{}", std::process::id()))
}

fn conductor_config(heal: &HealArgs, nats: &NatsArgs) -> ConductorConfig {
    ConductorConfig {
        respawn_limit: RespawnLimit {
            heals_max: heal.heals_max,
            window: time::Duration::seconds(heal.heal_window_s),
        },
        log: LogConfig {
            replicas: nats.replicas,
        },
        ..ConductorConfig::default()
    }
}

async fn open(nats: &NatsArgs, name: &str) -> anyhow::Result<(EventLog, Tables)> {
    let client = nats_server::connect(&nats.nats_url, name).await?;
    let log = EventLog::open(
        client,
        &LogConfig {
            replicas: nats.replicas,
        },
    )
    .await?;
    let tables = Tables::open(log.jetstream(), nats.replicas).await?;
    Ok((log, tables))
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    // Kept alive for the whole run: dropping it stops the embedded server.
    let _server;
    let nats_url = match &args.nats_url {
        Some(url) => url.clone(),
        None => {
            let server = nats_server::start(&args.data_dir, args.nats_server_bin.clone()).await?;
            let url = server.url.clone();
            _server = server;
            url
        }
    };
    tracing::info!(nats_url = %nats_url, "vnfm up: using NATS at {nats_url}.");
    let nats = NatsArgs {
        nats_url,
        replicas: 1,
        name: None,
    };
    let name = instance(&nats, "up");
    let (log, tables) = open(&nats, &name).await?;
    let mut roles = Roles::new();
    roles.projector(log.clone(), tables.clone());
    roles.conductor(log.clone(), &args.vim, conductor_config(&args.heal, &nats))?;
    roles.monitor(log.clone(), &args.probe, &nats, format!("monitor-{name}"))?;
    roles
        .gateway(log, tables, &args.api, format!("gateway-{name}"))
        .await?;
    roles.wait().await
}

/// The roles running in this process and the signal that stops them.
struct Roles {
    /// Set to true once, on SIGINT/SIGTERM or when any role ends; every role watches it.
    stop: watch::Sender<bool>,
    running: JoinSet<(&'static str, anyhow::Result<()>)>,
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
        Roles {
            stop,
            running: JoinSet::new(),
        }
    }

    fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    fn projector(&mut self, log: EventLog, tables: Tables) {
        let shutdown = self.shutdown();
        self.running.spawn(async move {
            let result = projector::run(log, tables, shutdown).await;
            ("projector", result.map_err(Into::into))
        });
    }

    fn conductor(
        &mut self,
        log: EventLog,
        vim: &VimArgs,
        config: ConductorConfig,
    ) -> anyhow::Result<()> {
        // The VIM runs this very binary as `vnfm vdu-http` for each HTTP responder.
        let program = std::env::current_exe().context("locating the vnfm binary")?;
        let vim = LocalVim::new(LocalVimConfig::new(vim.vim_prefix.clone(), program))
            .context("starting the local VIM")?;
        let conductor = Conductor::new(log, Arc::new(vim), config);
        let shutdown = self.shutdown();
        self.running.spawn(async move {
            let result = conductor.run(shutdown).await;
            ("conductor", result.map_err(Into::into))
        });
        Ok(())
    }

    fn monitor(
        &mut self,
        log: EventLog,
        probe: &ProbeArgs,
        nats: &NatsArgs,
        instance: String,
    ) -> anyhow::Result<()> {
        let prober = Prober::new()
            .context("opening the ICMP socket (the monitor needs root or CAP_NET_RAW)")?;
        tracing::info!(
            receive_buffer_bytes = prober.receive_buffer_bytes(),
            "ICMP socket open."
        );
        let config = MonitorConfig {
            instance,
            suspect_failures_min: probe.suspect_failures_min,
            log: LogConfig {
                replicas: nats.replicas,
            },
        };
        let monitor = Monitor::new(log, Arc::new(prober), config);
        let shutdown = self.shutdown();
        self.running.spawn(async move {
            let result = monitor.run(shutdown).await;
            ("monitor", result.map_err(Into::into))
        });
        Ok(())
    }

    async fn gateway(
        &mut self,
        log: EventLog,
        tables: Tables,
        api: &ApiArgs,
        instance: String,
    ) -> anyhow::Result<()> {
        let auth = auth(api)?;
        let config = GatewayConfig {
            auth,
            instance,
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(log, tables, config).await?;
        let listener = tokio::net::TcpListener::bind(api.listen)
            .await
            .with_context(|| format!("listening on {}", api.listen))?;
        tracing::info!(listen = %api.listen, "Gateway listening on http://{}.", api.listen);
        let shutdown = self.shutdown();
        self.running.spawn(async move {
            let result = gateway::serve(listener, gateway, shutdown).await;
            ("gateway", result.map_err(Into::into))
        });
        Ok(())
    }

    /// Waits for every role; the first to end stops the others.
    async fn wait(mut self) -> anyhow::Result<ExitCode> {
        let mut failed = false;
        while let Some(joined) = self.running.join_next().await {
            self.stop.send_replace(true);
            match joined {
                Ok((role, Ok(()))) => tracing::info!(role, "Role stopped."),
                Ok((role, Err(e))) => {
                    tracing::error!(role, error = %format!("{e:#}"), "Role failed.");
                    failed = true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "Role panicked.");
                    failed = true;
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

fn auth(api: &ApiArgs) -> anyhow::Result<Auth> {
    match (api.auth, &api.token_file) {
        (Some(AuthMode::Token), Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?;
            let token = text.lines().next().unwrap_or("").trim().to_owned();
            if token.is_empty() {
                bail!("the token file {} is empty", path.display());
            }
            Ok(Auth::Token(token))
        }
        (Some(AuthMode::Token), None) => bail!("--auth token needs --token-file FILE"),
        (Some(AuthMode::None), _) | (None, _) if api.listen.ip().is_loopback() => Ok(Auth::None),
        (Some(AuthMode::None), _) | (None, _) => bail!(
            "refusing to serve {} without authentication; use --auth token --token-file FILE (noauth is allowed only on loopback)",
            api.listen
        ),
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

async fn audit(nats: &NatsArgs, vnf_id: &str) -> anyhow::Result<ExitCode> {
    let (log, _) = open(nats, "vnfm-audit").await?;
    let history: store::History<VnfEvent> = log.history(&names::vnf_subject(vnf_id)).await?;
    if history.last_sequence == 0 {
        eprintln!("vnfm: no VNF {vnf_id} in the log");
        return Ok(ExitCode::FAILURE);
    }
    // The lifecycle log and what monitors and conductors said about the VNF on the monitor
    // stream (while its retention keeps it), merged in time order.
    let mut lines: Vec<(time::OffsetDateTime, String)> = Vec::new();
    for recorded in history.recorded {
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
            text.push_str(&format!("\n    {}", serde_json::to_string(event)?));
        }
        lines.push((envelope.recorded_at, text));
    }
    for skipped in history.skipped {
        lines.push((skipped.stored_at, format!("lifecycle {skipped}")));
    }
    if let Ok(monitor_stream) = log.jetstream().get_stream(names::MONITOR_STREAM).await {
        for subject in names::monitor_subjects_of(vnf_id) {
            for message in events::read::subject(&monitor_stream, &subject).await? {
                let text = String::from_utf8_lossy(&message.payload);
                lines.push((
                    message.time,
                    format!("monitor #{} {subject}\n    {text}", message.sequence),
                ));
            }
        }
    }
    lines.sort_by_key(|(at, _)| *at);
    for (at, text) in lines {
        let at = at.format(&time::format_description::well_known::Rfc3339)?;
        println!("{at} {text}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(nats: &NatsArgs, verify: bool) -> anyhow::Result<ExitCode> {
    let (log, tables) = open(nats, "vnfm-rebuild").await?;
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
