//! The `vnfm` binary: parses flags once, connects to NATS, and runs one role (`gateway`,
//! `projector`, `conductor`), all of them over an embedded nats-server (`up`), or an operator
//! tool (`audit`, `tail`, `rebuild`). It holds no logic of its own beyond wiring and start-up checks.

mod config;
mod exporter;
mod nats_server;
mod roles;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use events::vnf::RespawnLimit;

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "vnfm",
    version,
    about = "A VNF manager whose monitor policies scale out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process; starts a local nats-server unless --nats-url is given.
    Up(UpArgs),
    /// Serve the Tacker v1.0 REST API.
    Gateway(GatewayArgs),
    /// Keep the VNF and VNFD tables from the log.
    Projector(ProjectorArgs),
    /// Carry out VNF operations and policy actions through the VIM.
    Conductor(ConductorArgs),
    /// Probe every monitored VDU and report results and failures.
    Monitor(MonitorArgs),
    /// Create or update the streams and buckets every role binds to (as the admin identity);
    /// `vnfm up` does it at start.
    Setup(SetupArgs),
    /// Print the nats-server `authorization` block that lets in vnfm's identities, making the
    /// seed of each that has none yet in --credentials-dir.
    NatsConfig(NatsConfigArgs),
    /// Manage the API tokens of `--auth token`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Tell a VNF's whole history from the log, one line per event in words: when (and how
    /// long after the first line), who, and what happened. As the reader identity.
    Audit(AuditArgs),
    /// Follow the log live from now on, telling every VNF's events (or one's) in the words of
    /// `audit` as they happen, until interrupted. As the reader identity.
    Tail(TailArgs),
    /// Look at the registered VIMs (as the conductor identity, with --master-key).
    #[command(subcommand)]
    Vim(VimCommand),
    /// Check the monitors' lifecycle snapshot against the log (as the reader identity): the
    /// log folded up to the snapshot's sequence must equal it, and the snapshot with the rest
    /// of the log folded on top must equal the whole log folded. Prints "matches" with the
    /// counts, or the first VNF that differs and exits 1.
    VerifySnapshot {
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Rebuild the VNF and VNFD tables from the log.
    Rebuild {
        /// Compare the rebuild with the live tables instead of writing it; exit 1 on any difference.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Serve HTTP inside a VDU's network namespace until killed: the local VIM's responder
    /// for `http_ping` VDUs, started by a conductor and outliving it. Not for operators.
    #[command(hide = true)]
    VduHttp(VduHttpArgs),
}

#[derive(Debug, Clone, Args)]
struct AuditArgs {
    /// The VNF whose history to tell.
    vnf_id: String,
    /// Print every stored message as it is instead of the story: each lifecycle message with
    /// its cause and its events as JSON, each monitor-stream message's payload.
    #[arg(long)]
    json: bool,
    /// Only what happened at or after WHEN: an RFC 3339 time (2026-12-01T10:00:00Z) or a
    /// duration ago (90s, 30m, 1h, 2d).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    since: Option<String>,
    /// Only what happened at or before WHEN: an RFC 3339 time or a duration ago, as --since.
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    until: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
}

#[derive(Debug, Clone, Args)]
struct TailArgs {
    /// Follow only this VNF. Without it, every VNF, each line naming its VNF's short id.
    #[arg(long, value_name = "VNF_ID")]
    vnf: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
}

#[derive(Debug, Subcommand)]
enum VimCommand {
    /// List, per registered VIM, the servers and ports tagged by vnfm that no live VNF's
    /// instance owns (by instance id): VIM, kind, OpenStack id, instance id, VNF id. Reports,
    /// never deletes. Exits 1 when a VIM could not be listed.
    Orphans(VimOrphansArgs),
    /// The loopback VIM's blocklist on this host: make instances' addresses unreachable and
    /// reachable again (tests and benchmarks; root).
    #[command(subcommand, hide = true)]
    Loopback(LoopbackCommand),
}

#[derive(Debug, Subcommand)]
enum LoopbackCommand {
    /// Make these addresses unreachable: every packet to them on `lo` is dropped.
    Block(LoopbackArgs),
    /// Make these addresses reachable again.
    Unblock(LoopbackArgs),
}

#[derive(Debug, Clone, Args)]
struct LoopbackArgs {
    /// The conductors' --vim-prefix: the blocklist is `<prefix>-lo-blocked`.
    #[arg(long, env = "VNFM_VIM_PREFIX", default_value = conductor::vim::local::DEFAULT_PREFIX)]
    vim_prefix: String,
    /// The addresses, each in 127.128.0.0/9; none reads them from standard input, one a line.
    addresses: Vec<String>,
}

#[derive(Debug, Clone, Args)]
struct VimOrphansArgs {
    /// The master key file (the gateways' and conductors' own), which opens the registered
    /// VIMs' credentials.
    #[arg(long, env = "VNFM_MASTER_KEY")]
    master_key: PathBuf,
    /// One JSON document on stdout, for machines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    nats: NatsArgs,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new random token for a user in a project with some roles, append its hash to
    /// the token file (created readable by its owner only), and print the token, alone, once.
    Create(TokenCreateArgs),
}

#[derive(Debug, Clone, Args)]
struct TokenCreateArgs {
    /// The token file the gateway reads (`--auth token --token-file FILE`).
    #[arg(long, env = "VNFM_TOKEN_FILE")]
    token_file: PathBuf,
    /// The user the token authenticates, as recorded in the log for every command it sends.
    #[arg(long)]
    user: String,
    /// The project (tenant) the user acts for.
    #[arg(long)]
    project: String,
    /// A role: admin (every project), member (its project, read and write) or reader (its
    /// project, read only). Repeat the flag, or separate with commas, for several.
    #[arg(long = "role", required = true, value_delimiter = ',')]
    roles: Vec<String>,
}

/// The local VIM builds this command line (`conductor::vim::local`'s responder): keep the
/// subcommand and flag names as they are.
#[derive(Debug, Clone, Args)]
struct VduHttpArgs {
    /// The named namespace to enter, e.g. /run/netns/vnfm-ID.
    #[arg(long)]
    netns: PathBuf,
    /// A TCP port to answer on, on every address of the namespace (repeated for several).
    #[arg(long = "port", required = true)]
    ports: Vec<u16>,
    /// The VDU instance id, named in every answer.
    #[arg(long)]
    instance: String,
    /// The file whose text `GET /metrics` answers (read for each scrape; none is no metric).
    #[arg(long)]
    metrics_file: PathBuf,
}

// Numeric flags take `allow_negative_numbers` so that `--flag -1` is refused by name (by clap
// for an unsigned flag, by `config::validate` for a signed one), not as an unknown argument.
#[derive(Debug, Clone, Args)]
struct NatsArgs {
    /// The NATS server (or cluster member) to use.
    #[arg(long, env = "VNFM_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The seed file of this role's NATS identity (`vnfm up` writes one per identity into
    /// <data-dir>/credentials/; `vnfm nats-config` makes them for a server of your own).
    #[arg(long, env = "VNFM_NATS_NKEY")]
    nats_nkey: Option<PathBuf>,
    /// Connect over TLS only, trusting the CA certificate in FILE (`vnfm up --tls` makes one
    /// in <data-dir>/tls/ca.pem).
    #[arg(long, env = "VNFM_NATS_TLS_CA")]
    nats_tls_ca: Option<PathBuf>,
    /// This instance's name: its NATS connection name and the actor of the events it causes.
    /// Give each monitor a stable name unique among live monitors, and a restarted monitor
    /// takes its partitions back at once instead of after their leases expire.
    /// Default: the role and the process id.
    #[arg(long, env = "VNFM_NAME")]
    name: Option<String>,
}

/// Where a role serves its Prometheus metrics.
#[derive(Debug, Clone, Args)]
struct MetricsArgs {
    /// Serve `GET /metrics` (Prometheus text) on ADDR (HOST:PORT); off when absent. Without
    /// authentication: the metrics name no VNF, instance or user.
    #[arg(long, env = "VNFM_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
}

#[derive(Debug, Clone, Args)]
struct ProjectorArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(Debug, Clone, Args)]
struct SetupArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Replicas of the streams and buckets (3 on a three-node cluster); an existing stream is
    /// brought to this many.
    #[arg(
        long,
        env = "VNFM_REPLICAS",
        allow_negative_numbers = true,
        default_value_t = events::setup::LogConfig::default().replicas
    )]
    replicas: usize,
    /// The telemetry stream's (probe rounds') size bound in bytes; past it the oldest rounds
    /// are evicted. Failure reports live in another stream, which telemetry never evicts.
    #[arg(
        long,
        env = "VNFM_TELEMETRY_BYTES_MAX",
        allow_negative_numbers = true,
        default_value_t = events::setup::LogConfig::default().telemetry_bytes_max
    )]
    telemetry_bytes_max: i64,
}

#[derive(Debug, Clone, Args)]
struct NatsConfigArgs {
    /// Where the identities' seed files are (`<identity>.nk`); missing ones are made.
    #[arg(long, env = "VNFM_CREDENTIALS_DIR", default_value = "data/credentials")]
    credentials_dir: PathBuf,
    /// Also serve TLS with the CA and server certificate in DIR, made when missing.
    #[arg(long, env = "VNFM_TLS_DIR")]
    tls_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct ApiArgs {
    /// Where the REST API listens.
    #[arg(long, env = "VNFM_LISTEN", default_value = "127.0.0.1:9890")]
    listen: SocketAddr,
    /// `none` (the default, allowed only on loopback), `token` (needs --token-file) or
    /// `keystone` (needs --keystone-url and --keystone-credentials).
    #[arg(long, value_enum, env = "VNFM_AUTH")]
    auth: Option<AuthMode>,
    /// The Keystone v3 endpoint of --auth keystone, e.g. http://keystone:5000/v3.
    #[arg(long, env = "VNFM_KEYSTONE_URL")]
    keystone_url: Option<String>,
    /// The service's own Keystone credentials (JSON: user_name, password, project_name, and
    /// optionally user_domain_id, project_domain_id), readable by its owner only.
    #[arg(long, env = "VNFM_KEYSTONE_CREDENTIALS")]
    keystone_credentials: Option<PathBuf>,
    /// The token file of --auth token: one line per token, `sha256-hex user project roles`,
    /// readable by its owner only; `vnfm token create` adds one. Re-read when it changes.
    #[arg(long, env = "VNFM_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The master key's file (64 hex digits, readable by its owner only), which wraps the data
    /// keys that seal every VNFD's and VNF's secrets; every gateway of a deployment needs the
    /// same one. `vnfm up` makes <data-dir>/credentials/master.key when this is not given.
    #[arg(long, env = "VNFM_MASTER_KEY")]
    master_key: Option<PathBuf>,
    /// Fault injection for tests: a VNF create that reaches this point hangs there, so that
    /// the gateway can be killed there (after-inline-vnfd, before-create, after-create).
    #[arg(long, hide = true)]
    stop_at: Option<gateway::CreateStopPoint>,
    #[command(flatten)]
    guard: GuardArgs,
    #[command(flatten)]
    quotas: QuotaArgs,
}

/// What each project may hold; 0 is unlimited.
#[derive(Debug, Clone, Args)]
#[expect(
    clippy::struct_field_names,
    reason = "clap names the flags --quota-* after the fields"
)]
struct QuotaArgs {
    /// VNFDs a project may have.
    #[arg(long, env = "VNFM_QUOTA_VNFDS", default_value_t = gateway::quota::Quotas::default().vnfds)]
    quota_vnfds: u32,
    /// VNFs a project may have.
    #[arg(long, env = "VNFM_QUOTA_VNFS", default_value_t = gateway::quota::Quotas::default().vnfs)]
    quota_vnfs: u32,
    /// VDU instances a project may have over all its VNFs.
    #[arg(
        long,
        env = "VNFM_QUOTA_INSTANCES",
        default_value_t = gateway::quota::Quotas::default().instances
    )]
    quota_instances: u32,
    /// VDUs one VNFD may have.
    #[arg(
        long,
        env = "VNFM_QUOTA_VDUS_PER_VNFD",
        default_value_t = gateway::quota::Quotas::default().vdus_per_vnfd
    )]
    quota_vdus_per_vnfd: u32,
    /// Instances one scale step of a policy may add (its increment times its targets).
    #[arg(
        long,
        env = "VNFM_QUOTA_INSTANCES_PER_SCALE_STEP",
        default_value_t = gateway::quota::Quotas::default().instances_per_scale_step
    )]
    quota_instances_per_scale_step: u32,
}

impl QuotaArgs {
    fn quotas(&self) -> gateway::quota::Quotas {
        gateway::quota::Quotas {
            vnfds: self.quota_vnfds,
            vnfs: self.quota_vnfs,
            instances: self.quota_instances,
            vdus_per_vnfd: self.quota_vdus_per_vnfd,
            instances_per_scale_step: self.quota_instances_per_scale_step,
        }
    }
}

/// What keeps browsers and floods away from the API.
#[derive(Debug, Clone, Args)]
struct GuardArgs {
    /// A name (HOST or HOST:PORT) clients reach the API under besides the listen address,
    /// e.g. a proxy's; requests whose Host header names anything else answer 421. Repeatable
    /// or comma-separated.
    #[arg(long, env = "VNFM_PUBLIC_HOST", value_delimiter = ',')]
    public_host: Vec<String>,
    /// Open connections served at once; keep it under the open-file limit less 256.
    #[arg(
        long,
        env = "VNFM_CONNECTIONS_MAX",
        allow_negative_numbers = true,
        default_value_t = gateway::CONNECTIONS_MAX_DEFAULT
    )]
    connections_max: usize,
    /// Requests handled at once; one more answers 503 with Retry-After.
    #[arg(
        long,
        env = "VNFM_REQUESTS_IN_FLIGHT_MAX",
        allow_negative_numbers = true,
        default_value_t = gateway::REQUESTS_IN_FLIGHT_MAX_DEFAULT
    )]
    requests_in_flight_max: usize,
    /// Seconds a request may take, body included, before it answers 503.
    #[arg(
        long,
        env = "VNFM_REQUEST_TIMEOUT_S",
        allow_negative_numbers = true,
        default_value_t = gateway::REQUEST_TIMEOUT_DEFAULT.as_secs()
    )]
    request_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthMode {
    None,
    Token,
    Keystone,
}

#[derive(Debug, Clone, Args)]
struct GatewayArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// The heal limit of alarms' respawns (give the conductors' values).
    #[command(flatten)]
    heal: HealArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(Debug, Clone, Args)]
struct VimArgs {
    /// What serves the built-in VIM `local`: `local`, a network namespace per VDU, or
    /// `loopback`, an address in 127.128.0.0/9 per VDU with nothing deployed (fleet-scale tests
    /// and capacity planning on one machine; ping-monitored VDUs only).
    #[arg(long = "vim", env = "VNFM_VIM", value_enum, default_value_t = config::VimKind::Local)]
    vim_kind: config::VimKind,
    /// Name prefix of the namespaces and links the local VIM creates (at most 5 of [a-z0-9]).
    #[arg(long, env = "VNFM_VIM_PREFIX", default_value = conductor::vim::local::DEFAULT_PREFIX)]
    vim_prefix: String,
}

#[derive(Debug, Clone, Args)]
struct ConductorArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    vim: VimArgs,
    #[command(flatten)]
    heal: HealArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Seconds a request or failure report waits for a conductor that took it and went silent
    /// (crashed or stalled) before another conductor gets it.
    #[arg(
        long,
        env = "VNFM_ACK_WAIT_S",
        allow_negative_numbers = true,
        default_value_t = conductor::ACK_WAIT_DEFAULT.as_secs()
    )]
    ack_wait_s: u64,
    /// Fault injection for tests: stop this process (SIGSTOP) the first time a heal reaches
    /// this point (before-claim, after-claim, during-vim, before-ack).
    #[arg(long, hide = true)]
    stop_at: Option<conductor::StopPoint>,
    /// The file of the master key (the gateways' own): with it the conductor opens the
    /// credentials of registered VIMs (`/v1.0/vims`) and drives them; without it, it drives the
    /// built-in local VIM only and fails operations on any other.
    #[arg(long, env = "VNFM_MASTER_KEY")]
    master_key: Option<PathBuf>,
    /// Seconds between checks of the registered VIMs (REACHABLE or UNREACHABLE, with the reason).
    #[arg(
        long,
        env = "VNFM_VIM_CHECK_INTERVAL_S",
        allow_negative_numbers = true,
        default_value_t = conductor::VIM_CHECK_INTERVAL_DEFAULT.as_secs()
    )]
    vim_check_interval_s: u64,
    /// Seconds between reconciliations of what the registered VIMs report with the log
    /// (drift): a server of an ACTIVE VNF gone, in ERROR or SHUTOFF is a failure of its VDU.
    #[arg(
        long,
        env = "VNFM_VIM_DRIFT_INTERVAL_S",
        allow_negative_numbers = true,
        default_value_t = conductor::DRIFT_INTERVAL_DEFAULT.as_secs()
    )]
    vim_drift_interval_s: u64,
}

#[derive(Debug, Clone, Args)]
struct HealArgs {
    /// Heals (respawn, vdu_autoheal) a VNF may have within --heal-window-s before it is left in ERROR.
    #[arg(
        long,
        env = "VNFM_HEALS_MAX",
        allow_negative_numbers = true,
        default_value_t = RespawnLimit::default().heals_max
    )]
    heals_max: u32,
    /// The window, in seconds, in which --heals-max heals are counted.
    #[arg(
        long,
        env = "VNFM_HEAL_WINDOW_S",
        allow_negative_numbers = true,
        default_value_t = RespawnLimit::default().window.whole_seconds()
    )]
    heal_window_s: i64,
}

#[derive(Debug, Clone, Args)]
struct MonitorArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    probe: ProbeArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(Debug, Clone, Args)]
struct ProbeArgs {
    /// The fewest failures in one round that can make a monitor suspect itself (when they are
    /// also more than half of its targets) and fire no actions.
    #[arg(
        long,
        env = "VNFM_SUSPECT_FAILURES_MIN",
        allow_negative_numbers = true,
        default_value_t = monitor::MonitorConfig::default().suspect_failures_min
    )]
    suspect_failures_min: usize,
    /// The address ranges a monitor may probe, comma-separated IPv4 CIDRs (every VIM's
    /// range). A VDU whose management IP lies outside them is reported, never probed.
    /// Default: the local VIM's 198.18.0.0/15, or with `up --vim loopback` the loopback VIM's
    /// 127.128.0.0/9.
    #[arg(long, env = "VNFM_PROBE_CIDRS")]
    probe_cidrs: Option<String>,
    /// How often the monitor holding partition 0 snapshots its lifecycle fold to the
    /// snapshot bucket, so that a monitor's start replays only the log after it (1..=86400).
    #[arg(
        long,
        env = "VNFM_SNAPSHOT_INTERVAL_S",
        default_value_t = monitor::snapshot::INTERVAL_DEFAULT.as_secs()
    )]
    snapshot_interval_s: u64,
    /// The fewest lifecycle messages folded since the last snapshot that make the next one
    /// worth writing (1..=10000000).
    #[arg(
        long,
        env = "VNFM_SNAPSHOT_MESSAGES_MIN",
        default_value_t = monitor::snapshot::MESSAGES_MIN_DEFAULT
    )]
    snapshot_messages_min: u64,
}

#[derive(Debug, Clone, Args)]
struct UpArgs {
    /// Where the embedded nats-server keeps its store (ignored with --nats-url).
    #[arg(long, env = "VNFM_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "VNFM_NATS_URL")]
    nats_url: Option<String>,
    /// The nats-server binary to start (default: ops/bin/nats-server, then PATH).
    #[arg(long, env = "VNFM_NATS_SERVER_BIN")]
    nats_server_bin: Option<PathBuf>,
    /// Serve NATS over TLS only, with a CA and server certificate made in <data-dir>/tls/ on
    /// first start (with --nats-url: connect over TLS trusting <data-dir>/tls/ca.pem).
    #[arg(long, env = "VNFM_TLS")]
    tls: bool,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    vim: VimArgs,
    #[command(flatten)]
    heal: HealArgs,
    #[command(flatten)]
    probe: ProbeArgs,
    /// Every role's metrics, on one endpoint.
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// Worker threads of a `vnfm monitor`. One: probing 10,000 targets a second takes about a
/// quarter of a core, and a monitor on a host it shares with a gateway or nats-server must not
/// take every core in its once-a-second burst (measured with `ops/bench`). More targets than
/// one core can probe call for more monitors, which share the targets.
const MONITOR_WORKER_THREADS: usize = 1;

/// How much a `vnfm monitor` lowers its CPU priority: probing is background work, and on a
/// host whose cores are contended the API and nats-server go first. On an idle host it
/// changes nothing, and probe timeouts (a second or more) dwarf the delay it can add.
///
/// Nice weighs a process only against those of its own scheduling group: with autogroups
/// (`kernel.sched_autogroup_enabled`, on in many distributions' kernels), against the
/// processes of its session; under a service manager that gives each service a cgroup of
/// its own, against its service's. Roles started as separate processes from one shell, as
/// `ops/bench` does, share the monitor's group and nice applies; run as separate services,
/// the cgroups' CPU weights (systemd's `CPUWeight=`) are the setting that does. (`vnfm up`
/// runs every role in its one process, which is not lowered.)
const MONITOR_NICE_INCREMENT: i32 = 5;

/// The exit code of a refused flag value: the one clap exits with on a flag it cannot parse, so
/// that a supervisor sees the two alike.
const USAGE_EXIT_CODE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match config::validate(cli.command, &config::Disk) {
        Ok(config) => config,
        Err(problems) => {
            for problem in problems {
                eprintln!("vnfm: {problem}");
            }
            return ExitCode::from(USAGE_EXIT_CODE);
        }
    };
    if let Config::TokenCreate(create) = &config {
        return match create.run() {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vnfm token create: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Config::VduHttp(args) = &config {
        // Before any runtime: it enters the namespace on this, the only thread.
        return match conductor::vim::local::run_responder(
            &args.netns,
            &args.ports,
            &args.instance,
            &args.metrics_file,
        ) {
            Ok(never) => match never {},
            Err(e) => {
                eprintln!("vnfm vdu-http: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Before the runtime's threads exist, so that they all allocate from the one arena.
    gateway::glibc_heap::one_arena();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Config::Monitor(_) = &config {
        runtime.worker_threads(MONITOR_WORKER_THREADS);
        // Before any other thread exists: threads inherit it.
        if let Err(e) = rustix::process::nice(MONITOR_NICE_INCREMENT) {
            tracing::warn!(error = %e, "Cannot lower the monitor's CPU priority.");
        }
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vnfm: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(roles::run(config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vnfm: {e:#}");
            ExitCode::FAILURE
        }
    };
    // The roles have ended or been aborted within their drain deadline: wait for nothing
    // else (a blocking VIM call still running would otherwise hold the exit).
    runtime.shutdown_background();
    code
}
