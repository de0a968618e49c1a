//! The checked configuration of a `vnfm` run: every flag validated once, every problem reported
//! together with the flag's name and what it allows, before anything connects. It never
//! connects, listens or starts anything; its only I/O is reading the token and seed files
//! through the [`Files`] it is given.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use conductor::StopPoint;
use conductor::vim::loopback::BlocklistOp;
use events::credentials::{self, CredentialsError, Seed};
use events::monitor::cidr::{LOCAL_VIM_RANGE, LOOPBACK_VIM_RANGE, ProbeCidrs};
use events::secrets::DataKey;
use events::setup::{self, LogConfig};
use events::vnf::{HEALS_REMEMBERED_MAX, RespawnLimit};
use gateway::Authenticator;
use gateway::auth::{NoAuth, TokenFile, TokenFileError};
use monitor::snapshot::Schedule;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{
    ApiArgs, AuditArgs, AuthMode, Command, ConductorArgs, GuardArgs, HealArgs, LoopbackArgs,
    LoopbackCommand, MetricsArgs, MonitorArgs, NatsArgs, NatsConfigArgs, ProbeArgs, ProjectorArgs,
    SetupArgs, TailArgs, TokenCommand, TokenCreateArgs, UpArgs, VduHttpArgs, VimArgs, VimCommand,
    VimOrphansArgs, nats_server,
};

/// The longest `--vim-check-interval-s`: an hour. A VIM that stopped answering shows
/// `REACHABLE` until its next check; longer would hide an outage from operators for too long.
const VIM_CHECK_INTERVAL_MAX_S: u64 = 3_600;
/// The longest `--vim-drift-interval-s`: an hour. A server deleted behind vnfm's back is
/// healed (or its VNF set to ERROR) within a period; longer leaves a VDU without a policy
/// silently gone for too long.
const VIM_DRIFT_INTERVAL_MAX_S: u64 = 3_600;
/// The longest `--ack-wait-s`: an hour. A conductor that took a request and went silent holds
/// it this long before another conductor gets it; a longer stall of heals helps nobody.
const ACK_WAIT_MAX_S: u64 = 3600;
/// The longest `--heal-window-s`: a week. The limit is there for a VDU that fails again and
/// again now; a longer window keeps refusing heals for faults fixed long ago.
const HEAL_WINDOW_MAX_S: i64 = 7 * 24 * 3600;
/// The most `--replicas`: JetStream's own limit on a stream's replicas.
const REPLICAS_MAX: usize = 5;
/// The most `--connections-max`: Linux's default `fs.nr_open`, the most descriptors any
/// process may hold.
const CONNECTIONS_MAX_MAX: usize = 1 << 20;
/// The most `--requests-in-flight-max`: each may hold a body of up to 1 MiB, so this many
/// may hold 64 GiB, more than a gateway's host has to give.
const REQUESTS_IN_FLIGHT_MAX_MAX: usize = 1 << 16;
/// The longest `--request-timeout-s`: an hour. No request of this API legitimately takes
/// minutes; a longer timeout only lets a stalled request hold its slot.
const REQUEST_TIMEOUT_MAX_S: u64 = 3600;

/// The furthest back a duration of `--since`/`--until` may reach: ten years, longer than any
/// log is kept, and far from the limits of a time's arithmetic.
const WHEN_AGO_MAX_DAYS: i64 = 3650;

/// The span of time `vnfm audit` tells: what happened at or after `since` and at or before
/// `until` (unbounded where absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl Window {
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at <= until)
    }
}

/// The time `text` names: an RFC 3339 time, or a duration (a whole number and one of s, m,
/// h, d) before `now`.
fn parse_when(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    const ALLOWED: &str =
        "an RFC 3339 time such as 2026-12-01T10:00:00Z, or a duration ago such as 90s, 30m, 1h, 2d";
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split), text.get(split..));
    let seconds_per_unit = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        _ => return Err(format!("{text:?} is not {ALLOWED}")),
    };
    let Some(amount) = number.and_then(|n| n.parse::<u32>().ok()) else {
        return Err(format!("{text:?} is not {ALLOWED}"));
    };
    let ago_s = i64::from(amount) * seconds_per_unit;
    if ago_s > WHEN_AGO_MAX_DAYS * 86_400 {
        return Err(format!(
            "{text:?} reaches back more than {WHEN_AGO_MAX_DAYS} days"
        ));
    }
    Ok(now - time::Duration::seconds(ago_s))
}

/// What serves the built-in VIM id `local` (`--vim`): the gateway and VNFDs see no difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VimKind {
    /// `conductor::vim::local`: a network namespace per VDU.
    #[default]
    Local,
    /// `conductor::vim::loopback`: an address in 127.128.0.0/9 per VDU, nothing deployed.
    Loopback,
}

impl VimKind {
    /// The range its management IPs come from: what monitors must be let probe.
    pub fn range(self) -> events::monitor::cidr::Ipv4Cidr {
        match self {
            VimKind::Local => LOCAL_VIM_RANGE,
            VimKind::Loopback => LOOPBACK_VIM_RANGE,
        }
    }
}

/// One flag whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The flag as typed on the command line, e.g. `--ack-wait-s`.
    pub flag: &'static str,
    /// What is wrong, with what the flag allows.
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.reason)
    }
}

/// What a `vnfm` run is to do, with every value checked.
#[derive(Debug)]
pub enum Config {
    Up(Up),
    Gateway {
        nats: Nats,
        api: Api,
        metrics_listen: Option<SocketAddr>,
    },
    Projector {
        nats: Nats,
        metrics_listen: Option<SocketAddr>,
    },
    Conductor(Conductor),
    Monitor(Monitor),
    Setup {
        nats: Nats,
        log: LogConfig,
    },
    /// Print the server's authorization for the seeds in this directory, and its TLS block
    /// for the certificates in `tls_dir`.
    NatsAuthorization {
        credentials_dir: PathBuf,
        tls_dir: Option<PathBuf>,
    },
    /// Tell (or, with `json`, print as stored) a VNF's history within `window`.
    Audit {
        vnf_id: String,
        json: bool,
        window: Window,
        nats: Nats,
    },
    /// Follow the log live: every VNF's story, or only `vnf_id`'s.
    Tail {
        vnf_id: Option<String>,
        nats: Nats,
    },
    Rebuild {
        verify: bool,
        nats: Nats,
    },
    /// `vnfm verify-snapshot`, as the reader.
    VerifySnapshot {
        nats: Nats,
    },
    /// `vnfm vim orphans`: list the registered VIMs' orphans, as the conductor identity.
    VimOrphans {
        nats: Nats,
        /// Always read when the configuration is valid (an unreadable file is a problem).
        master_key: Option<Arc<DataKey>>,
        json: bool,
    },
    /// `vnfm vim loopback block|unblock`: change the loopback VIM's blocklist on this host.
    VimLoopback {
        /// The conductors' `--vim-prefix`, checked.
        vim_prefix: String,
        op: BlocklistOp,
        /// Each in the loopback VIM's range; `None` reads them from standard input.
        addresses: Option<Vec<Ipv4Addr>>,
    },
    /// Passed on as given: the local VIM builds its command line.
    VduHttp(VduHttpArgs),
    TokenCreate(TokenCreate),
}

/// `vnfm token create`, its user, project and roles checked.
#[derive(Debug)]
pub struct TokenCreate {
    pub token_file: PathBuf,
    pub user: String,
    pub project: String,
    pub roles: Vec<String>,
}

impl TokenCreate {
    /// Makes the token, appends its hash line to the file, and answers the token.
    pub fn run(&self) -> Result<String, TokenFileError> {
        let token = gateway::auth::new_token()?;
        let line = gateway::auth::entry_line(&token, &self.user, &self.project, &self.roles)?;
        gateway::auth::append_line(&self.token_file, &line)?;
        Ok(token)
    }
}

/// Whom the REST API lets in.
#[derive(Clone)]
pub enum ApiAuth {
    /// `--auth none`: everyone is the anonymous admin (loopback only).
    None,
    /// `--auth token`: the token file, read and checked.
    Token(Arc<TokenFile>),
    /// `--auth keystone`: tokens validated by Keystone with the service's credentials.
    Keystone(Arc<gateway::keystone::Keystone>),
}

impl fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiAuth::None => f.write_str("None"),
            ApiAuth::Token(file) => write!(f, "Token({})", file.path().display()),
            ApiAuth::Keystone(keystone) => write!(f, "{keystone:?}"),
        }
    }
}

impl ApiAuth {
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        match self {
            ApiAuth::None => Arc::new(NoAuth),
            ApiAuth::Token(file) => file.clone(),
            ApiAuth::Keystone(keystone) => keystone.clone(),
        }
    }
}

/// Where and how to reach NATS.
#[derive(Debug, Clone)]
pub struct Nats {
    /// One or more comma-separated server URLs, each a valid NATS URL.
    pub url: String,
    /// `--name`, when given.
    pub name: Option<String>,
    /// The identity's seed (`--nats-nkey`), when given; without it the client connects
    /// anonymously, which a server holding vnfm's authorization refuses.
    pub nkey: Option<Seed>,
    /// The CA to trust over TLS (`--nats-tls-ca`); TLS is required when given.
    pub tls_ca: Option<PathBuf>,
}

impl Nats {
    /// The instance's name: `--name`, else the role and the process id.
    pub fn instance(&self, role: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{role}-{}", std::process::id()))
    }
}

/// Where the REST API listens, and whom it lets in.
#[derive(Debug, Clone)]
pub struct Api {
    pub listen: SocketAddr,
    pub auth: ApiAuth,
    /// Fault injection for tests (hidden `--stop-at`): park a VNF create at this point.
    pub stop_at: Option<gateway::CreateStopPoint>,
    pub guard: gateway::GuardConfig,
    pub quotas: gateway::quota::Quotas,
    /// The master key read from `--master-key`; `vnfm up` without one uses (and makes) its data
    /// directory's.
    pub master_key: Option<Arc<DataKey>>,
    /// The heal limit an alarm's respawn counts toward (the conductors' `--heals-max` and
    /// `--heal-window-s`).
    pub respawn_limit: RespawnLimit,
}

#[derive(Debug)]
pub struct Conductor {
    pub nats: Nats,
    pub vim_kind: VimKind,
    pub vim_prefix: String,
    pub ack_wait: Duration,
    pub respawn_limit: RespawnLimit,
    pub stop_at: Option<StopPoint>,
    /// Where `/metrics` is served (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The master key read from `--master-key`: registered VIMs are driven only with it.
    pub master_key: Option<Arc<DataKey>>,
    pub vim_check_interval: Duration,
    pub drift_interval: Duration,
}

#[derive(Debug)]
pub struct Monitor {
    pub nats: Nats,
    pub suspect_failures_min: usize,
    pub snapshots: Schedule,
    pub probe_cidrs: ProbeCidrs,
    /// Where `/metrics` is served (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug)]
pub struct Up {
    pub data_dir: PathBuf,
    /// The NATS to use; `None` starts an embedded nats-server.
    pub nats_url: Option<String>,
    pub nats_server_bin: Option<PathBuf>,
    /// Serve (or reach) NATS over TLS with the certificates in `<data_dir>/tls`.
    pub tls: bool,
    pub api: Api,
    pub vim_kind: VimKind,
    pub vim_prefix: String,
    pub respawn_limit: RespawnLimit,
    pub suspect_failures_min: usize,
    pub snapshots: Schedule,
    pub probe_cidrs: ProbeCidrs,
    /// Where every role's `/metrics` is served (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// The files a configuration names: the token file, the seed file, Keystone's credentials and
/// the master key.
pub trait Files {
    fn text(&self, path: &Path) -> std::io::Result<String>;
    fn seed(&self, path: &Path) -> Result<Seed, CredentialsError>;
    fn token_file(&self, path: &Path) -> Result<TokenFile, TokenFileError>;
    fn keystone_credentials(
        &self,
        path: &Path,
    ) -> Result<gateway::keystone::ServiceCredentials, String> {
        gateway::keystone::ServiceCredentials::read(path)
    }
    fn master_key(&self, path: &Path) -> Result<DataKey, CredentialsError> {
        credentials::read_master_key(path)
    }
}

/// The files on this host.
pub struct Disk;

impl Files for Disk {
    fn text(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn seed(&self, path: &Path) -> Result<Seed, CredentialsError> {
        Seed::read(path)
    }

    fn token_file(&self, path: &Path) -> Result<TokenFile, TokenFileError> {
        TokenFile::open(path)
    }
}

/// Checks every flag of `command`, reading the token and seed files (if any) from `files`;
/// answers every problem found, not just the first.
pub fn validate(command: Command, files: &dyn Files) -> Result<Config, Vec<ConfigProblem>> {
    let mut check = Check {
        problems: Vec::new(),
        files,
    };
    let config = match command {
        Command::Up(args) => Config::Up(check.up(args)),
        Command::Gateway(args) => {
            let api = Api {
                respawn_limit: check.respawn_limit(&args.heal),
                ..check.api(&args.api)
            };
            if args.api.master_key.is_none() {
                check.problem(
                    "--master-key",
                    "required: the file of the key that wraps the secrets' data keys (`vnfm up` makes <data-dir>/credentials/master.key)",
                );
            }
            let metrics_listen = check.metrics_listen(&args.metrics, Some(api.listen));
            Config::Gateway {
                nats: check.nats(args.nats),
                api,
                metrics_listen,
            }
        }
        Command::Projector(ProjectorArgs { nats, metrics }) => Config::Projector {
            nats: check.nats(nats),
            metrics_listen: check.metrics_listen(&metrics, None),
        },
        Command::Conductor(args) => Config::Conductor(check.conductor(args)),
        Command::Monitor(MonitorArgs {
            nats,
            probe,
            metrics,
        }) => Config::Monitor(Monitor {
            nats: check.nats(nats),
            suspect_failures_min: check.suspect_failures_min(&probe),
            snapshots: check.snapshots(&probe),
            probe_cidrs: check.probe_cidrs(&probe, VimKind::Local),
            metrics_listen: check.metrics_listen(&metrics, None),
        }),
        Command::Audit(AuditArgs {
            vnf_id,
            json,
            since,
            until,
            nats,
        }) => Config::Audit {
            vnf_id,
            json,
            window: check.window(
                since.as_deref(),
                until.as_deref(),
                OffsetDateTime::now_utc(),
            ),
            nats: check.nats(nats),
        },
        Command::Tail(TailArgs { vnf, nats }) => Config::Tail {
            vnf_id: vnf.map(|id| check.vnf_id("--vnf", id)),
            nats: check.nats(nats),
        },
        Command::Vim(VimCommand::Orphans(VimOrphansArgs {
            master_key,
            json,
            nats,
        })) => Config::VimOrphans {
            nats: check.nats(nats),
            master_key: check.master_key(Some(&master_key)),
            json,
        },
        Command::Vim(VimCommand::Loopback(command)) => {
            let (
                op,
                LoopbackArgs {
                    vim_prefix,
                    addresses,
                },
            ) = match command {
                LoopbackCommand::Block(args) => (BlocklistOp::Block, args),
                LoopbackCommand::Unblock(args) => (BlocklistOp::Unblock, args),
            };
            if let Err(reason) = conductor::vim::local::validate_prefix(&vim_prefix) {
                check.problem("--vim-prefix", reason);
            }
            let addresses = if addresses.is_empty() {
                None
            } else {
                match conductor::vim::loopback::parse_addresses(
                    addresses.iter().map(String::as_str),
                ) {
                    Ok(addresses) => Some(addresses),
                    Err(reason) => {
                        check.problem("ADDRESS", reason);
                        None
                    }
                }
            };
            Config::VimLoopback {
                vim_prefix,
                op,
                addresses,
            }
        }
        Command::VerifySnapshot { nats } => Config::VerifySnapshot {
            nats: check.nats(nats),
        },
        Command::Rebuild { verify, nats } => Config::Rebuild {
            verify,
            nats: check.nats(nats),
        },
        Command::Setup(SetupArgs {
            nats,
            replicas,
            telemetry_bytes_max,
        }) => Config::Setup {
            nats: check.nats(nats),
            log: LogConfig {
                replicas: check.in_range("--replicas", replicas, (1, REPLICAS_MAX), ""),
                telemetry_bytes_max: check.in_range(
                    "--telemetry-bytes-max",
                    telemetry_bytes_max,
                    (
                        setup::TELEMETRY_STREAM_BYTES_MIN,
                        setup::TELEMETRY_STREAM_BYTES_MAX,
                    ),
                    " bytes",
                ),
            },
        },
        Command::NatsConfig(NatsConfigArgs {
            credentials_dir,
            tls_dir,
        }) => Config::NatsAuthorization {
            credentials_dir,
            tls_dir,
        },
        Command::VduHttp(args) => Config::VduHttp(args),
        Command::Token(TokenCommand::Create(args)) => Config::TokenCreate(check.token_create(args)),
    };
    if check.problems.is_empty() {
        Ok(config)
    } else {
        Err(check.problems)
    }
}

/// Collects problems; each check answers a usable stand-in when the value is refused, so that
/// checking goes on and the caller sees every problem.
struct Check<'a> {
    problems: Vec<ConfigProblem>,
    files: &'a dyn Files,
}

impl Check<'_> {
    fn problem(&mut self, flag: &'static str, reason: impl Into<String>) {
        self.problems.push(ConfigProblem {
            flag,
            reason: reason.into(),
        });
    }

    /// `value` if it lies in `min..=max`, else a problem naming the range and `min`.
    fn in_range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        flag: &'static str,
        value: T,
        (min, max): (T, T),
        unit: &str,
    ) -> T {
        if value < min || value > max {
            self.problem(flag, format!("must be {min}..={max}{unit}, got {value}"));
            return min;
        }
        value
    }

    /// The times `--since` and `--until` name, each an RFC 3339 time or a duration before
    /// `now`; `--since` must not come after `--until`.
    fn window(&mut self, since: Option<&str>, until: Option<&str>, now: OffsetDateTime) -> Window {
        let mut when = |flag: &'static str, text: Option<&str>| {
            text.and_then(|text| {
                parse_when(text, now)
                    .map_err(|reason| self.problem(flag, reason))
                    .ok()
            })
        };
        let window = Window {
            since: when("--since", since),
            until: when("--until", until),
        };
        if let (Some(since), Some(until)) = (window.since, window.until)
            && since > until
        {
            let rfc3339 =
                |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_else(|_| at.to_string());
            self.problem(
                "--until",
                format!(
                    "{} is before --since {}; give a later time",
                    rfc3339(until),
                    rfc3339(since)
                ),
            );
        }
        window
    }

    /// `id` if it can name a VNF in a subject: no dots, wildcards or spaces.
    fn vnf_id(&mut self, flag: &'static str, id: String) -> String {
        if id.is_empty() || id.contains(['.', '*', '>']) || id.contains(char::is_whitespace) {
            self.problem(
                flag,
                format!("{id:?} is not a VNF id (no '.', '*', '>' or spaces, not empty)"),
            );
        }
        id
    }

    fn nats(&mut self, args: NatsArgs) -> Nats {
        self.nats_url(&args.nats_url);
        if args
            .name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            self.problem("--name", "must not be empty");
        }
        let nkey = args
            .nats_nkey
            .and_then(|path| match self.files.seed(&path) {
                Ok(seed) => Some(seed),
                Err(e) => {
                    self.problem("--nats-nkey", e.to_string());
                    None
                }
            });
        if let Some(path) = &args.nats_tls_ca {
            self.certificate(path);
        }
        Nats {
            url: args.nats_url,
            name: args.name,
            nkey,
            tls_ca: args.nats_tls_ca,
        }
    }

    /// `path` must hold a PEM certificate.
    fn certificate(&mut self, path: &Path) {
        match self.files.text(path) {
            Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => self.problem(
                "--nats-tls-ca",
                format!("{} holds no PEM certificate", path.display()),
            ),
            Err(e) => self.problem(
                "--nats-tls-ca",
                format!("cannot read {}: {e}", path.display()),
            ),
        }
    }

    fn nats_url(&mut self, url: &str) {
        if let Err(reason) = nats_server::check_urls(url) {
            self.problem("--nats-url", reason);
        }
    }

    fn api(&mut self, args: &ApiArgs) -> Api {
        let auth = match (args.auth, &args.token_file) {
            (Some(AuthMode::Token), Some(path)) => self.token(path),
            (Some(AuthMode::Token), None) => {
                self.problem("--token-file", "required with --auth token");
                ApiAuth::None
            }
            (Some(AuthMode::Keystone), _) => self.keystone(args),
            (Some(AuthMode::None) | None, _) => {
                if !args.listen.ip().is_loopback() {
                    self.problem(
                        "--auth",
                        format!(
                            "refusing to serve {} without authentication; use --auth token --token-file FILE (none is allowed only on loopback)",
                            args.listen
                        ),
                    );
                }
                ApiAuth::None
            }
        };
        let master_key = self.master_key(args.master_key.as_deref());
        Api {
            listen: args.listen,
            auth,
            stop_at: args.stop_at,
            guard: self.guard(&args.guard),
            quotas: args.quotas.quotas(),
            master_key,
            respawn_limit: RespawnLimit::default(),
        }
    }

    fn guard(&mut self, args: &GuardArgs) -> gateway::GuardConfig {
        let mut public_hosts = Vec::new();
        for value in &args.public_host {
            match value.trim().parse::<gateway::PublicHost>() {
                Ok(host) => public_hosts.push(host),
                Err(e) => self.problem("--public-host", e.to_string()),
            }
        }
        gateway::GuardConfig {
            public_hosts,
            connections_max: self.in_range(
                "--connections-max",
                args.connections_max,
                (1, CONNECTIONS_MAX_MAX),
                " connections",
            ),
            requests_in_flight_max: self.in_range(
                "--requests-in-flight-max",
                args.requests_in_flight_max,
                (1, REQUESTS_IN_FLIGHT_MAX_MAX),
                " requests",
            ),
            request_timeout: Duration::from_secs(self.in_range(
                "--request-timeout-s",
                args.request_timeout_s,
                (1, REQUEST_TIMEOUT_MAX_S),
                " seconds",
            )),
        }
    }

    /// Keystone's URL and the service's credentials (its owner's only).
    fn keystone(&mut self, args: &ApiArgs) -> ApiAuth {
        let url = match args.keystone_url.as_deref().map(str::trim) {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
            Some(url) => {
                self.problem(
                    "--keystone-url",
                    format!("must be an http:// or https:// URL, got {url:?}"),
                );
                return ApiAuth::None;
            }
            None => {
                self.problem("--keystone-url", "required with --auth keystone");
                return ApiAuth::None;
            }
        };
        let Some(path) = &args.keystone_credentials else {
            self.problem("--keystone-credentials", "required with --auth keystone");
            return ApiAuth::None;
        };
        let credentials = match self.files.keystone_credentials(path) {
            Ok(credentials) => credentials,
            Err(reason) => {
                self.problem("--keystone-credentials", reason);
                return ApiAuth::None;
            }
        };
        match gateway::keystone::Keystone::new(url, credentials) {
            Ok(keystone) => ApiAuth::Keystone(Arc::new(keystone)),
            Err(e) => {
                self.problem("--keystone-url", e.to_string());
                ApiAuth::None
            }
        }
    }

    /// The token file: its owner's only, every line well-formed, at least one token.
    fn token(&mut self, path: &Path) -> ApiAuth {
        match self.files.token_file(path) {
            Ok(file) => ApiAuth::Token(Arc::new(file)),
            Err(e) => {
                self.problem("--token-file", e.to_string());
                ApiAuth::None
            }
        }
    }

    fn token_create(&mut self, args: TokenCreateArgs) -> TokenCreate {
        for (flag, what, value) in [
            ("--user", "user", &args.user),
            ("--project", "project", &args.project),
        ] {
            if let Err(reason) = gateway::auth::check_word(what, value) {
                self.problem(flag, reason);
            }
        }
        if let Err(reason) = gateway::auth::parse_roles(args.roles.iter().map(String::as_str)) {
            self.problem("--role", reason);
        }
        TokenCreate {
            token_file: args.token_file,
            user: args.user,
            project: args.project,
            roles: args.roles,
        }
    }

    /// `--master-key`: the key in the file, if one is named.
    fn master_key(&mut self, path: Option<&Path>) -> Option<Arc<DataKey>> {
        let key = self
            .files
            .master_key(path?)
            .map_err(|e| self.problem("--master-key", e.to_string()))
            .ok()?;
        Some(Arc::new(key))
    }

    fn vim_prefix(&mut self, args: VimArgs) -> String {
        if let Err(reason) = conductor::vim::local::validate_prefix(&args.vim_prefix) {
            self.problem("--vim-prefix", reason);
        }
        args.vim_prefix
    }

    fn respawn_limit(&mut self, args: &HealArgs) -> RespawnLimit {
        // More than the VNF remembers would never be reached: the limit would be off.
        let heals_remembered_max = u32::try_from(HEALS_REMEMBERED_MAX).unwrap_or(u32::MAX);
        RespawnLimit {
            heals_max: self.in_range(
                "--heals-max",
                args.heals_max,
                (1, heals_remembered_max),
                " heals",
            ),
            window: time::Duration::seconds(self.in_range(
                "--heal-window-s",
                args.heal_window_s,
                (1, HEAL_WINDOW_MAX_S),
                " seconds",
            )),
        }
    }

    fn suspect_failures_min(&mut self, args: &ProbeArgs) -> usize {
        // Zero would make one failing target out of one a reason for its monitor to suspect
        // itself, so that a lone VNF would never be healed.
        if args.suspect_failures_min == 0 {
            self.problem("--suspect-failures-min", "must be at least 1, got 0");
            return 1;
        }
        args.suspect_failures_min
    }

    /// `--snapshot-interval-s` and `--snapshot-messages-min`.
    fn snapshots(&mut self, args: &ProbeArgs) -> Schedule {
        use monitor::snapshot::{INTERVAL_MAX, INTERVAL_MIN, MESSAGES_MIN_MAX, MESSAGES_MIN_MIN};
        Schedule {
            interval: Duration::from_secs(self.in_range(
                "--snapshot-interval-s",
                args.snapshot_interval_s,
                (INTERVAL_MIN.as_secs(), INTERVAL_MAX.as_secs()),
                " seconds",
            )),
            messages_min: self.in_range(
                "--snapshot-messages-min",
                args.snapshot_messages_min,
                (MESSAGES_MIN_MIN, MESSAGES_MIN_MAX),
                " messages",
            ),
        }
    }

    /// `--probe-cidrs`, by default the range of the VIM that `vim` names.
    fn probe_cidrs(&mut self, args: &ProbeArgs, vim: VimKind) -> ProbeCidrs {
        let Some(text) = &args.probe_cidrs else {
            return ProbeCidrs::from(vim.range());
        };
        text.parse().unwrap_or_else(|e| {
            self.problem("--probe-cidrs", format!("{e}"));
            ProbeCidrs::from(vim.range())
        })
    }

    fn conductor(&mut self, args: ConductorArgs) -> Conductor {
        Conductor {
            nats: self.nats(args.nats),
            vim_kind: args.vim.vim_kind,
            vim_prefix: self.vim_prefix(args.vim),
            // At least a second: progress acks go at a third of it, and zero has no meaning.
            ack_wait: Duration::from_secs(self.in_range(
                "--ack-wait-s",
                args.ack_wait_s,
                (1, ACK_WAIT_MAX_S),
                " seconds",
            )),
            respawn_limit: self.respawn_limit(&args.heal),
            stop_at: args.stop_at,
            metrics_listen: self.metrics_listen(&args.metrics, None),
            master_key: self.master_key(args.master_key.as_deref()),
            vim_check_interval: Duration::from_secs(self.in_range(
                "--vim-check-interval-s",
                args.vim_check_interval_s,
                (1, VIM_CHECK_INTERVAL_MAX_S),
                " seconds",
            )),
            drift_interval: Duration::from_secs(self.in_range(
                "--vim-drift-interval-s",
                args.vim_drift_interval_s,
                (1, VIM_DRIFT_INTERVAL_MAX_S),
                " seconds",
            )),
        }
    }

    /// `--metrics-listen`: a socket address (HOST:PORT, port 0 for any free one), not the
    /// API's own.
    fn metrics_listen(
        &mut self,
        args: &MetricsArgs,
        api: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let value = args.metrics_listen.as_deref()?;
        match value.trim().parse::<SocketAddr>() {
            Ok(addr) if api == Some(addr) && addr.port() != 0 => {
                self.problem(
                    "--metrics-listen",
                    format!("{addr} is the API's own address (--listen); give another port"),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(e) => {
                self.problem(
                    "--metrics-listen",
                    format!("{value:?} is not an address HOST:PORT such as 127.0.0.1:9891 ({e})"),
                );
                None
            }
        }
    }

    fn up(&mut self, args: UpArgs) -> Up {
        if let Some(url) = &args.nats_url {
            self.nats_url(url);
        }
        let respawn_limit = self.respawn_limit(&args.heal);
        let metrics_listen = self.metrics_listen(&args.metrics, Some(args.api.listen));
        Up {
            metrics_listen,
            api: Api {
                respawn_limit,
                ..self.api(&args.api)
            },
            vim_kind: args.vim.vim_kind,
            probe_cidrs: self.probe_cidrs(&args.probe, args.vim.vim_kind),
            vim_prefix: self.vim_prefix(args.vim),
            respawn_limit,
            suspect_failures_min: self.suspect_failures_min(&args.probe),
            snapshots: self.snapshots(&args.probe),
            data_dir: args.data_dir,
            nats_url: args.nats_url,
            nats_server_bin: args.nats_server_bin,
            tls: args.tls,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Cli;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("vnfm").chain(args.iter().copied()))
            .expect("the flags parse")
            .command
    }

    /// A host with no files but, when given, one text file's content at every path.
    struct Host(Option<&'static str>);

    impl Files for Host {
        fn text(&self, path: &Path) -> std::io::Result<String> {
            self.0.map(str::to_owned).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {}", path.display()),
                )
            })
        }

        fn seed(&self, path: &Path) -> Result<Seed, CredentialsError> {
            Seed::read(path)
        }

        fn token_file(&self, path: &Path) -> Result<TokenFile, TokenFileError> {
            TokenFile::open(path)
        }
    }

    const NO_FILES: &Host = &Host(None);

    fn problems(args: &[&str]) -> Vec<String> {
        match validate(parse(args), NO_FILES) {
            Ok(config) => panic!("{args:?} was accepted: {config:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn metrics_listen_is_an_address_on_every_role_and_never_the_apis() {
        for role in ["up", "projector", "conductor", "monitor"] {
            let found = problems(&[role, "--metrics-listen", "localhost"]);
            assert_eq!(found.len(), 1, "{role}: {found:?}");
            assert!(
                found[0].starts_with("--metrics-listen: \"localhost\" is not an address"),
                "{role}: {found:?}"
            );
        }
        let found = problems(&["up", "--metrics-listen", "127.0.0.1:9890"]);
        assert!(
            found[0].starts_with("--metrics-listen: 127.0.0.1:9890 is the API's own address"),
            "{found:?}"
        );
        let Ok(Config::Monitor(monitor)) = validate(
            parse(&["monitor", "--metrics-listen", "127.0.0.1:0"]),
            NO_FILES,
        ) else {
            panic!("a monitor with its metrics");
        };
        assert_eq!(monitor.metrics_listen, Some("127.0.0.1:0".parse().unwrap()));
        let Ok(Config::Conductor(conductor)) = validate(parse(&["conductor"]), NO_FILES) else {
            panic!("a conductor");
        };
        assert_eq!(conductor.metrics_listen, None, "off when absent");
    }

    #[test]
    fn the_defaults_are_valid_for_every_role() {
        for role in ["up", "projector", "conductor", "monitor"] {
            assert!(validate(parse(&[role]), NO_FILES).is_ok(), "{role}");
        }
        // A gateway has no data directory to keep a master key in: it is given one.
        assert_eq!(
            problems(&["gateway"]),
            [
                "--master-key: required: the file of the key that wraps the secrets' data keys (`vnfm up` makes <data-dir>/credentials/master.key)"
            ]
        );
        let Ok(Config::Conductor(conductor)) = validate(parse(&["conductor"]), NO_FILES) else {
            panic!("a conductor");
        };
        assert_eq!(conductor.ack_wait, conductor::ACK_WAIT_DEFAULT);
        assert_eq!(conductor.respawn_limit, RespawnLimit::default());
        assert!(conductor.nats.nkey.is_none());
    }

    #[test]
    fn each_bad_value_is_refused_with_its_flag_and_range() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["conductor", "--ack-wait-s", "0"],
                "--ack-wait-s: must be 1..=3600 seconds, got 0",
            ),
            (
                &["conductor", "--vim-drift-interval-s", "0"],
                "--vim-drift-interval-s: must be 1..=3600 seconds, got 0",
            ),
            (
                &["conductor", "--heals-max", "33"],
                "--heals-max: must be 1..=32 heals, got 33",
            ),
            (
                &["up", "--heal-window-s", "-1"],
                "--heal-window-s: must be 1..=604800 seconds, got -1",
            ),
            (
                &["monitor", "--suspect-failures-min", "0"],
                "--suspect-failures-min: must be at least 1, got 0",
            ),
            (&["monitor", "--name", " "], "--name: must not be empty"),
            (
                &["monitor", "--probe-cidrs", "x"],
                r#"--probe-cidrs: "x" is not an IPv4 CIDR (a.b.c.d/n)"#,
            ),
            (
                &["up", "--probe-cidrs", "198.18.0.0/15,10.0.0.0"],
                r#"--probe-cidrs: "10.0.0.0" is not an IPv4 CIDR (a.b.c.d/n)"#,
            ),
            (
                &["monitor", "--probe-cidrs", " "],
                "--probe-cidrs: no range given; name at least one IPv4 CIDR (a.b.c.d/n)",
            ),
            (
                &["up", "--auth", "token"],
                "--token-file: required with --auth token",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(problems(args), [*expected], "{args:?}");
        }
    }

    #[test]
    fn the_probe_ranges_default_to_the_local_vims_and_take_a_list() {
        let Ok(Config::Monitor(monitor)) = validate(parse(&["monitor"]), NO_FILES) else {
            panic!("a monitor");
        };
        assert_eq!(monitor.probe_cidrs, ProbeCidrs::from(LOCAL_VIM_RANGE));
        let Ok(Config::Up(up)) = validate(
            parse(&["up", "--probe-cidrs", "198.18.0.0/15, 10.20.0.0/16"]),
            NO_FILES,
        ) else {
            panic!("a list is accepted");
        };
        assert!(
            up.probe_cidrs
                .contains(std::net::Ipv4Addr::new(10, 20, 3, 4))
        );
        assert!(
            up.probe_cidrs
                .contains(std::net::Ipv4Addr::new(198, 19, 0, 1))
        );
        assert!(
            !up.probe_cidrs
                .contains(std::net::Ipv4Addr::new(169, 254, 169, 254))
        );
    }

    #[test]
    fn the_loopback_vim_is_chosen_with_its_probe_range_unless_ranges_are_given() {
        let Ok(Config::Up(up)) = validate(parse(&["up", "--vim", "loopback"]), NO_FILES) else {
            panic!("up on the loopback VIM");
        };
        assert_eq!(up.vim_kind, VimKind::Loopback);
        assert_eq!(up.probe_cidrs, ProbeCidrs::from(LOOPBACK_VIM_RANGE));
        let Ok(Config::Up(up)) = validate(
            parse(&["up", "--vim", "loopback", "--probe-cidrs", "10.0.0.0/8"]),
            NO_FILES,
        ) else {
            panic!("up with its own ranges");
        };
        assert!(
            !up.probe_cidrs
                .contains(std::net::Ipv4Addr::new(127, 128, 0, 1))
        );
        let Ok(Config::Up(up)) = validate(parse(&["up"]), NO_FILES) else {
            panic!("up");
        };
        assert_eq!(up.vim_kind, VimKind::Local);
        assert_eq!(up.probe_cidrs, ProbeCidrs::from(LOCAL_VIM_RANGE));
        let Ok(Config::Conductor(conductor)) =
            validate(parse(&["conductor", "--vim", "loopback"]), NO_FILES)
        else {
            panic!("a conductor on the loopback VIM");
        };
        assert_eq!(conductor.vim_kind, VimKind::Loopback);
        assert!(Cli::try_parse_from(["vnfm", "conductor", "--vim", "kvm"]).is_err());
    }

    #[test]
    fn a_block_takes_loopback_addresses_only() {
        let Ok(Config::VimLoopback {
            vim_prefix,
            op,
            addresses,
        }) = validate(
            parse(&[
                "vim",
                "loopback",
                "block",
                "--vim-prefix",
                "t1",
                "127.128.0.9",
            ]),
            NO_FILES,
        )
        else {
            panic!("a block");
        };
        assert_eq!(vim_prefix, "t1");
        assert_eq!(op, BlocklistOp::Block);
        assert_eq!(addresses, Some(vec![Ipv4Addr::new(127, 128, 0, 9)]));
        let Ok(Config::VimLoopback { op, addresses, .. }) =
            validate(parse(&["vim", "loopback", "unblock"]), NO_FILES)
        else {
            panic!("an unblock from standard input");
        };
        assert_eq!((op, addresses), (BlocklistOp::Unblock, None));
        assert_eq!(
            problems(&["vim", "loopback", "block", "127.0.0.1"]),
            ["ADDRESS: 127.0.0.1 is not in the loopback VIM's range 127.128.0.0/9"]
        );
    }

    #[test]
    fn as_many_heals_as_the_vnf_remembers_are_accepted() {
        let Ok(Config::Conductor(conductor)) =
            validate(parse(&["conductor", "--heals-max", "32"]), NO_FILES)
        else {
            panic!("32 heals are accepted");
        };
        assert_eq!(conductor.respawn_limit.heals_max, 32);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems(&[
            "conductor",
            "--ack-wait-s",
            "0",
            "--heals-max",
            "0",
            "--heal-window-s",
            "0",
            "--vim-prefix",
            "TOOLONG",
            "--nats-url",
            " , ",
        ]);
        let flags: Vec<&str> = found
            .iter()
            .map(|problem| problem.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            flags,
            [
                "--nats-url",
                "--vim-prefix",
                "--ack-wait-s",
                "--heals-max",
                "--heal-window-s"
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn vim_orphans_needs_a_master_key_it_can_read() {
        let found = problems(&["vim", "orphans", "--master-key", "/no/such/key"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("--master-key: "), "{found:?}");
    }

    #[test]
    fn the_token_file_is_read_and_checked() {
        let missing = problems(&["up", "--auth", "token", "--token-file", "/no/such"]);
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0].starts_with("--token-file: cannot read /no/such"),
            "{missing:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let path_arg = path.to_str().unwrap();
        let line = gateway::auth::entry_line("s3cret", "alice", "p1", &["member".into()]).unwrap();
        gateway::auth::append_line(&path, &line).unwrap();
        let Ok(Config::Up(Up { api, .. })) = validate(
            parse(&["up", "--auth", "token", "--token-file", path_arg]),
            NO_FILES,
        ) else {
            panic!("an up");
        };
        assert!(matches!(api.auth, ApiAuth::Token(_)), "{:?}", api.auth);

        let open_to_others =
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
        std::fs::set_permissions(&path, open_to_others).unwrap();
        let open = problems(&["up", "--auth", "token", "--token-file", path_arg]);
        assert_eq!(open.len(), 1);
        assert!(
            open[0].starts_with("--token-file: ") && open[0].contains("open to group or others"),
            "{open:?}"
        );
    }

    #[test]
    fn token_create_checks_its_user_project_and_roles() {
        let found = problems(&[
            "token",
            "create",
            "--token-file",
            "/t",
            "--user",
            "a b",
            "--project",
            "",
            "--role",
            "member,membr",
        ]);
        let flags: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(flags, ["--user", "--project", "--role"], "{found:?}");
        let Ok(Config::TokenCreate(create)) = validate(
            parse(&[
                "token",
                "create",
                "--token-file",
                "/t",
                "--user",
                "alice",
                "--project",
                "p1",
                "--role",
                "member",
                "--role",
                "reader",
            ]),
            NO_FILES,
        ) else {
            panic!("a token create");
        };
        assert_eq!(create.roles, ["member", "reader"]);
    }

    #[test]
    fn no_authentication_is_refused_off_loopback() {
        let found = problems(&["up", "--listen", "0.0.0.0:9890"]);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("--auth: refusing to serve 0.0.0.0:9890"));
    }

    #[test]
    fn replicas_are_the_setup_s_and_bounded() {
        assert_eq!(
            problems(&["setup", "--replicas", "6"]),
            ["--replicas: must be 1..=5, got 6"]
        );
        let Ok(Config::Setup { log, .. }) =
            validate(parse(&["setup", "--replicas", "3"]), NO_FILES)
        else {
            panic!("a setup");
        };
        assert_eq!(log.replicas, 3);
    }

    #[test]
    fn the_telemetry_bound_is_the_setup_s_and_bounded() {
        assert_eq!(
            problems(&["setup", "--telemetry-bytes-max", "1024"]),
            [format!(
                "--telemetry-bytes-max: must be {}..={} bytes, got 1024",
                setup::TELEMETRY_STREAM_BYTES_MIN,
                setup::TELEMETRY_STREAM_BYTES_MAX
            )]
        );
        let Ok(Config::Setup { log, .. }) = validate(
            parse(&["setup", "--telemetry-bytes-max", "8388608"]),
            NO_FILES,
        ) else {
            panic!("a setup");
        };
        assert_eq!(log.telemetry_bytes_max, 8 * 1024 * 1024);
    }

    #[test]
    fn a_seed_file_that_cannot_be_used_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gateway.nk");
        let found = problems(&["projector", "--nats-nkey", missing.to_str().unwrap()]);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(&format!("--nats-nkey: {}", missing.display())),
            "{found:?}"
        );
        let seeds = events::credentials::ensure(dir.path()).unwrap();
        let Ok(Config::Projector { nats, .. }) = validate(
            parse(&["projector", "--nats-nkey", missing.to_str().unwrap()]),
            NO_FILES,
        ) else {
            panic!("a projector with its seed");
        };
        let gateway = &seeds.iter().find(|(i, _)| i.name() == "gateway").unwrap().1;
        assert_eq!(
            nats.nkey.map(|seed| seed.public_key().to_owned()),
            Some(gateway.public_key().to_owned())
        );
    }

    #[test]
    fn a_bad_nats_url_is_refused() {
        let found = problems(&["projector", "--nats-url", "http://127.0.0.1:4222"]);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("--nats-url: "), "{found:?}");
        assert!(validate(parse(&["audit", "x", "--nats-url", "a:1,b:2"]), NO_FILES).is_ok());
    }

    #[test]
    fn the_guard_flags_are_checked_by_name() {
        let found = problems(&[
            "up",
            "--connections-max",
            "0",
            "--requests-in-flight-max",
            "0",
            "--request-timeout-s",
            "0",
            "--public-host",
            "http://vnfm.example.org",
        ]);
        assert_eq!(
            found,
            [
                "--public-host: \"http://vnfm.example.org\" is not HOST or HOST:PORT (a DNS name or an IP address, no scheme or path)",
                "--connections-max: must be 1..=1048576 connections, got 0",
                "--requests-in-flight-max: must be 1..=65536 requests, got 0",
                "--request-timeout-s: must be 1..=3600 seconds, got 0",
            ]
        );
        let Ok(Config::Up(up)) = validate(
            parse(&[
                "up",
                "--public-host",
                "vnfm.example.org,api.example.org:443",
                "--public-host",
                "[::1]:9890",
                "--request-timeout-s",
                "5",
            ]),
            NO_FILES,
        ) else {
            panic!("an up");
        };
        assert_eq!(up.api.guard.public_hosts.len(), 3);
        assert_eq!(up.api.guard.request_timeout, Duration::from_secs(5));
        assert_eq!(
            up.api.guard.connections_max,
            gateway::CONNECTIONS_MAX_DEFAULT
        );
    }

    #[test]
    fn since_and_until_take_a_time_or_a_duration_ago() {
        use time::macros::datetime;
        let now = datetime!(2026-12-01 10:00:00 UTC);
        let cases = [
            (
                "2026-11-30T09:00:00+01:00",
                datetime!(2026-11-30 08:00:00 UTC),
            ),
            ("90s", datetime!(2026-12-01 09:58:30 UTC)),
            ("30m", datetime!(2026-12-01 09:30:00 UTC)),
            ("1h", datetime!(2026-12-01 09:00:00 UTC)),
            ("2d", datetime!(2026-11-29 10:00:00 UTC)),
        ];
        for (text, at) in cases {
            assert_eq!(parse_when(text, now), Ok(at), "{text}");
        }
        let mut check = Check {
            problems: Vec::new(),
            files: NO_FILES,
        };
        let window = check.window(Some("1h"), Some("2026-12-01T09:30:00Z"), now);
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        assert!(!window.contains(datetime!(2026-12-01 08:59:59 UTC)));
        assert!(window.contains(datetime!(2026-12-01 09:00:00 UTC)));
        assert!(window.contains(datetime!(2026-12-01 09:30:00 UTC)));
        assert!(!window.contains(datetime!(2026-12-01 09:30:01 UTC)));
        assert!(Window::default().contains(now));

        check.window(Some("30m"), Some("1h"), now);
        assert_eq!(
            check
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "--until: 2026-12-01T09:00:00Z is before --since 2026-12-01T09:30:00Z; give a later time"
            ]
        );
    }

    #[test]
    fn a_bad_since_until_or_vnf_is_refused_by_name() {
        let allowed = "an RFC 3339 time such as 2026-12-01T10:00:00Z, or a duration ago such as 90s, 30m, 1h, 2d";
        assert_eq!(
            problems(&["audit", "v-1", "--since", "yesterday", "--until", "5x"]),
            [
                format!(r#"--since: "yesterday" is not {allowed}"#),
                format!(r#"--until: "5x" is not {allowed}"#),
            ]
        );
        assert_eq!(
            problems(&["audit", "v-1", "--since", "-1h"]),
            [format!(r#"--since: "-1h" is not {allowed}"#)]
        );
        assert_eq!(
            problems(&["audit", "v-1", "--since", "3651d"]),
            [r#"--since: "3651d" reaches back more than 3650 days"#]
        );
        assert_eq!(
            problems(&["tail", "--vnf", "a.*"]),
            [r#"--vnf: "a.*" is not a VNF id (no '.', '*', '>' or spaces, not empty)"#]
        );
        let Ok(Config::Audit { json, window, .. }) = validate(
            parse(&["audit", "v-1", "--json", "--since", "1h"]),
            NO_FILES,
        ) else {
            panic!("an audit");
        };
        assert!(json);
        assert!(window.since.is_some() && window.until.is_none());
        let Ok(Config::Tail { vnf_id, .. }) = validate(parse(&["tail"]), NO_FILES) else {
            panic!("a tail");
        };
        assert_eq!(vnf_id, None);
    }
}
