//! The embedded nats-server of `vnfm up`, and the version check every role makes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use events::access::{self, Identity};
use events::credentials::{self, Seed};
use events::tls::TlsFiles;

use crate::config::Nats;
use tokio::process::{Child, Command};

/// The oldest nats-server vnfm runs against: 2.12 brought the behaviour the store relies on
/// (expected-sequence checks together with message ids), and older servers carry published
/// security advisories.
pub const SERVER_VERSION_MIN: (u64, u64) = (2, 12);
/// How long a started nats-server may take to accept clients (it recovers its store first).
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two looks for a started server's ports file: a start takes tens of
/// milliseconds.
const SERVER_START_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a request to the server (a JetStream API call, a direct get) waits for its answer.
/// The client's default of 10 s is what a request sent to a cluster node that just died waits
/// before it is retried or reported; a leader election takes 2 to 4 s, and every request vnfm
/// makes is answered in milliseconds when the cluster is healthy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a role tries to reach NATS before it says it cannot: a restarting nats-server
/// recovers its store and accepts clients within seconds (see [`SERVER_START_TIMEOUT`] for a
/// large store), and a role started beside its server should outwait that, not hang forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two attempts to reach NATS within [`CONNECT_TIMEOUT`]: a refused
/// connection on loopback fails in microseconds, and forty tries in ten seconds cost nothing.
const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// The client port `vnfm up` prefers; a free one is taken when it is busy.
const PREFERRED_PORT: u16 = 4222;
/// How long a nats-server left running by an earlier `vnfm up` (killed with SIGKILL, which
/// cannot stop its child) may take to stop on SIGTERM before it is killed: it flushes its
/// store first, in well under a second on loopback.
const LEFTOVER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses "2.12.8" (or "v2.12.8", or "nats-server: v2.12.8") into (major, minor).
pub fn parse_version(text: &str) -> Option<(u64, u64)> {
    let version = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = version.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn check_version(what: &str, version: &str) -> anyhow::Result<()> {
    match parse_version(version) {
        Some(found) if found >= SERVER_VERSION_MIN => Ok(()),
        _ => bail!(
            "{what} is nats-server {version}; vnfm needs {}.{} or newer (run ops/install-nats-server.sh)",
            SERVER_VERSION_MIN.0,
            SERVER_VERSION_MIN.1
        ),
    }
}

/// The members of a comma-separated list of URLs (`nats://a:4222,nats://b:4222`), so that a
/// client can fail over between the nodes of a cluster.
fn server_urls(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// Checks a `--nats-url`: one or more comma-separated NATS URLs, each of which the client
/// accepts (`nats://`, `tls://`, `ws://`, `wss://`, or a bare `host:port`).
pub fn check_urls(urls: &str) -> Result<(), String> {
    let members = server_urls(urls);
    if members.is_empty() {
        return Err(format!("names no server, got {urls:?}"));
    }
    for member in members {
        member
            .parse::<async_nats::ServerAddr>()
            .map_err(|e| format!("{member:?} is not a NATS URL: {e}"))?;
    }
    Ok(())
}

/// Connects to NATS (any of `nats`'s comma-separated URLs) as `identity`, signing with its seed
/// (or anonymously without one) and over TLS when it names a CA, trying again for at most
/// [`CONNECT_TIMEOUT`], and refuses a server older than [`SERVER_VERSION_MIN`]. Whatever the
/// server refuses this identity later (a subject outside its permissions) is logged as an
/// error naming it.
pub async fn connect(
    nats: &Nats,
    name: &str,
    identity: Identity,
) -> anyhow::Result<async_nats::Client> {
    let (url, seed) = (nats.url.as_str(), nats.nkey.as_ref());
    let options = || {
        let mut options = match seed {
            Some(seed) => credentials::connect_options(identity, seed),
            None => async_nats::ConnectOptions::new().custom_inbox_prefix(identity.inbox_prefix()),
        };
        if let Some(ca) = &nats.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        options.event_callback(move |event| async move {
            if let async_nats::Event::ServerError(error) = event {
                tracing::error!(identity = identity.name(), %error, "NATS refused this identity an operation.");
            }
        })
    };
    let mut last_error = None;
    let attempts = async {
        loop {
            match options()
                .name(name)
                .request_timeout(Some(REQUEST_TIMEOUT))
                .connect(server_urls(url))
                .await
            {
                Ok(client) => return Ok(client),
                // A refusal of who we are does not heal by trying again.
                Err(e) if is_refusal(&e) => return Err(e),
                Err(e) => {
                    tracing::debug!(nats_url = %url, error = %e, "NATS not reached; trying again.");
                    last_error = Some(e);
                }
            }
            tokio::time::sleep(CONNECT_RETRY_INTERVAL).await;
        }
    };
    let client = match tokio::time::timeout(CONNECT_TIMEOUT, attempts).await {
        Ok(Ok(client)) => client,
        Ok(Err(refused)) => bail!(
            "NATS at {url} refused this client ({refused}): {}",
            match seed {
                None => format!(
                    "give the {} identity's seed with --nats-nkey FILE (vnfm up writes them into <data-dir>/credentials/)",
                    identity.name()
                ),
                Some(seed) => format!(
                    "the server does not know the key {} as the {} identity (vnfm nats-config prints the users it needs)",
                    seed.public_key(),
                    identity.name()
                ),
            }
        ),
        Err(_) => {
            let reason = last_error.map_or_else(|| "no answer".to_owned(), |e| e.to_string());
            bail!("cannot reach NATS at {url} within {CONNECT_TIMEOUT:?}: {reason}");
        }
    };
    // Without a retried initial connect, the server's INFO is in hand once connected.
    check_version(
        &format!("the server at {url}"),
        &client.server_info().version,
    )?;
    Ok(client)
}

/// True when the server answered and refused the client's identity.
fn is_refusal(error: &async_nats::ConnectError) -> bool {
    matches!(
        error.kind(),
        async_nats::ConnectErrorKind::Authentication
            | async_nats::ConnectErrorKind::AuthorizationViolation
    )
}

/// A nats-server child process, killed when dropped.
#[derive(Debug)]
pub struct EmbeddedServer {
    _child: Child,
    pub url: String,
}

/// Starts nats-server with JetStream, its store under `data_dir/nats`, on loopback, letting in
/// the identities of `seeds` (their public keys) with their permissions, and nobody else; over
/// TLS only when given `tls`. It answers once the server listens (a bare TCP probe would show
/// as a failed TLS handshake in the server's log, so the server's ports file says it).
pub async fn start(
    data_dir: &Path,
    binary: Option<PathBuf>,
    seeds: &[(Identity, Seed)],
    tls: Option<&TlsFiles>,
) -> anyhow::Result<EmbeddedServer> {
    let binary = binary.unwrap_or_else(find_binary);
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| {
            format!(
                "running {} (install it with ops/install-nats-server.sh)",
                binary.display()
            )
        })?;
    check_version(
        &binary.display().to_string(),
        &String::from_utf8_lossy(&output.stdout),
    )?;
    let store_dir = data_dir.join("nats");
    std::fs::create_dir_all(&store_dir)
        .with_context(|| format!("creating {}", store_dir.display()))?;
    let store_dir = store_dir.canonicalize()?;
    let config = data_dir.join("nats-server.conf");
    let pid_file = data_dir.join("nats-server.pid");
    stop_leftover(&pid_file, &config).await?;
    let authorization = access::authorization(
        seeds
            .iter()
            .map(|(identity, seed)| (*identity, seed.public_key())),
    );
    // Another process may take the preferred port between the check and the server's bind
    // (two `vnfm up`s starting together): the server then exits, and a free port is tried.
    let mut ports = vec![free_port()?];
    if port_is_free(PREFERRED_PORT) {
        ports.insert(0, PREFERRED_PORT);
    }
    for port in ports {
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nmax_payload: 8MB\npid_file: {:?}\nports_file_dir: {:?}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n{authorization}{}",
                pid_file.display().to_string(),
                data_dir.display().to_string(),
                store_dir.display().to_string(),
                tls.map(|tls| tls.server_block(false)).unwrap_or_default(),
            ),
        )?;
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        stops_with_this_process(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        if let Some(status) = listening(&mut child, data_dir).await? {
            tracing::warn!(port, %status, "nats-server could not listen; trying another port.");
            continue;
        }
        let scheme = if tls.is_some() { "tls" } else { "nats" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        tracing::info!(nats_url = %url, store_dir = %store_dir.display(), "Started nats-server.");
        return Ok(EmbeddedServer { _child: child, url });
    }
    bail!("nats-server could not listen on port {PREFERRED_PORT} nor on a free port")
}

/// Makes the server started by `command` stop (SIGTERM, which it answers by closing its store)
/// when this process ends, however it ends: dropping the child kills the server only when this
/// process lives to drop it, and a `vnfm up` killed with SIGKILL left its server serving the
/// store until the next start on the data dir stopped it ([`stop_leftover`]). The signal is
/// Linux's parent-death signal; a parent already gone by the time the child sets it is caught
/// by comparing the child's parent with this process, and the start fails. Linux sends it when
/// the starting *thread* ends: `vnfm up` starts the server from its main thread (the runtime's
/// `block_on`), which ends with the process.
#[allow(unsafe_code)]
fn stops_with_this_process(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before it executes the server, and only
    // makes two system calls (`prctl`, `getppid`); it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                .map_err(std::io::Error::from)?;
            if rustix::process::getppid() == Some(parent) {
                Ok(())
            } else {
                Err(rustix::io::Errno::SRCH.into())
            }
        });
    }
}

/// Waits until the started server listens, which it says by writing its ports file into
/// `dir` (`ports_file_dir`), touching no port itself; answers the server's exit status if it
/// ended first (its log on stderr says why).
async fn listening(
    child: &mut Child,
    dir: &Path,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let pid = child.id().context("the started nats-server has a pid")?;
    let suffix = format!("_{pid}.ports");
    let deadline = tokio::time::Instant::now() + SERVER_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let written = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().ends_with(&suffix));
        if written {
            return Ok(None);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nats-server did not listen within {SERVER_START_TIMEOUT:?}");
        }
        tokio::time::sleep(SERVER_START_POLL_INTERVAL).await;
    }
}

/// Stops the nats-server an earlier `vnfm up` on this data dir left running (it was killed
/// with SIGKILL, and its server with it only when dropped): two servers on one store would
/// corrupt it. The server is recognised by its pid file and its command line naming `config`;
/// any other process with that pid is left alone.
async fn stop_leftover(pid_file: &Path, config: &Path) -> anyhow::Result<()> {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Ok(());
    };
    let ours =
        std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())).is_ok_and(|cmdline| {
            String::from_utf8_lossy(&cmdline).contains(&*config.to_string_lossy())
        });
    if !ours {
        return Ok(());
    }
    tracing::warn!(
        pid = pid.as_raw_nonzero(),
        "A nats-server left by an earlier vnfm up still serves this data dir; stopping it before starting another on the same store."
    );
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::KILL] {
        let _ = rustix::process::kill_process(pid, signal);
        let deadline = tokio::time::Instant::now() + LEFTOVER_STOP_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if rustix::process::test_kill_process(pid).is_err() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    bail!(
        "the nats-server (pid {}) left by an earlier vnfm up on this data dir does not stop",
        pid.as_raw_nonzero()
    )
}

fn find_binary() -> PathBuf {
    let local = Path::new("ops/bin/nats-server");
    if local.exists() {
        local.to_path_buf()
    } else {
        PathBuf::from("nats-server")
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cluster_urls() {
        assert_eq!(
            server_urls("nats://127.0.0.1:4222, nats://127.0.0.1:4223,"),
            ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        );
        assert_eq!(server_urls("nats://h:1"), ["nats://h:1"]);
    }

    #[test]
    fn checks_nats_urls() {
        assert!(check_urls("nats://127.0.0.1:4222,127.0.0.1:4223").is_ok());
        assert!(check_urls(" , ").is_err());
        assert!(check_urls("http://127.0.0.1:4222").is_err());
    }

    #[test]
    fn parses_server_versions() {
        assert_eq!(parse_version("nats-server: v2.12.8\n"), Some((2, 12)));
        assert_eq!(parse_version("2.10.4"), Some((2, 10)));
        assert_eq!(parse_version("2.14.0-beta.1"), Some((2, 14)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn refuses_servers_older_than_2_12() {
        assert!(check_version("x", "2.11.9").is_err());
        assert!(check_version("x", "2.9.25").is_err());
        assert!(check_version("x", "2.12.0").is_ok());
        assert!(check_version("x", "3.0.1").is_ok());
    }
}
