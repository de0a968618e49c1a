//! The HTTP responder a VDU runs when its VNFD asks for an HTTP port or watches its metrics:
//! `GET /metrics` answers the VDU's metrics file (Prometheus' text format, which a test or an
//! operator writes: see `LocalVim::metrics_path`), any other request gets `200 OK`, so
//! `http_ping` monitoring and a Prometheus scrape have something real to reach.
//!
//! Each responder is a process of its own, `vnfm vdu-http --netns PATH --port N [--port M]
//! --instance ID --metrics-file PATH`, living inside the VDU's namespace the way a VM's web server would live inside the
//! VM: it outlives the conductor that started it (a conductor killed with `kill -9` takes no
//! VDU with it), and only the VIM's delete or cleanup ends it (see `process`).
//!
//! Both halves are here. [`run`] is the process: it enters the namespace on its main thread
//! before any other thread exists, so the runtime it then builds is wholly inside, binds,
//! says [`READY_LINE`] on stdout, and serves. [`start`] is the VIM's side: it spawns the
//! process detached, waits for that line, and reaps the child whenever it dies.

use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::vim::VimError;

/// The hidden `vnfm` subcommand that runs a responder; `vnfm`'s command line must match.
pub const SUBCOMMAND: &str = "vdu-http";
/// What a responder prints on stdout, alone on the first line, once it is bound and serving;
/// any other first line is the reason it could not start.
pub const READY_LINE: &str = "ready";
/// A responder binds and answers within milliseconds; one silent this long is stuck, and the
/// deploy (which holds the host-wide allocation lock) must not wait on it any longer.
const READY_WAIT_MAX: Duration = Duration::from_secs(5);
/// Connections served at once per VDU; a probe opens one at a time, so 64 leaves room for
/// several monitors and a curious operator while bounding what a flood can hold open.
const CONNECTIONS_MAX: usize = 64;
/// A request head larger than this is not a probe; the connection is closed unanswered.
const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;
/// A client that has not finished its request head by then is stalled or hostile.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A metrics file larger than this is not a VDU's handful of gauges: the scrape gets a 500
/// naming the limit rather than the responder reading an unbounded file per request.
const METRICS_FILE_MAX_BYTES: u64 = 64 * 1024;
/// Pause after a failed accept (out of file descriptors, say) before trying again, so the
/// loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Whether `args` (a command line from `/proc`) is a responder serving exactly `ports` (in
/// any order). Any ports when `ports` is `None`.
pub fn is_responder(args: &[String], ports: Option<&[u16]>) -> bool {
    let is_ours = args.get(1).is_some_and(|arg| arg == SUBCOMMAND);
    let ports_match = match ports {
        None => true,
        Some(ports) => {
            let mut serving: Vec<&str> = args
                .windows(2)
                .filter(|pair| pair[0] == "--port")
                .map(|pair| pair[1].as_str())
                .collect();
            let mut wanted: Vec<String> = ports.iter().map(u16::to_string).collect();
            serving.sort_unstable();
            serving.dedup();
            wanted.sort_unstable();
            wanted.dedup();
            serving == wanted
        }
    };
    is_ours && ports_match
}

/// Spawns `program vdu-http ...` for the namespace mounted at `namespace_path` and waits until
/// it serves every one of `ports` (not empty), with `/metrics` read from `metrics_file`.
///
/// The child gets a process group of its own (a Ctrl-C or a signal to the conductor's group
/// does not reach it), `/` as its directory, and no stdin or stderr; its stdout is read for
/// the ready line and then closed. It is not killed when the conductor dies: that is the
/// point. A task of the caller's runtime waits for it, so a responder killed by a delete does
/// not linger as a zombie of a long-running conductor.
pub async fn start(
    program: &Path,
    namespace_path: &Path,
    ports: &[u16],
    instance_id: &str,
    metrics_file: &Path,
) -> Result<(), VimError> {
    let mut command = tokio::process::Command::new(program);
    command.arg(SUBCOMMAND).arg("--netns").arg(namespace_path);
    for port in ports {
        command.args(["--port", &port.to_string()]);
    }
    let mut child = command
        .args(["--instance", instance_id])
        .arg("--metrics-file")
        .arg(metrics_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn()
        .map_err(|e| {
            VimError::Failed(format!(
                "cannot run the HTTP responder {}: {e}",
                program.display()
            ))
        })?;
    let outcome = match child.stdout.take() {
        Some(stdout) => wait_ready(stdout).await,
        None => Err("its stdout was not piped".to_owned()),
    };
    if outcome.is_err() {
        // Stuck or failed: nothing may be left bound in the namespace by a half-started one.
        // An error here means it has exited already.
        let _ = child.start_kill();
    }
    tokio::spawn(async move {
        // The only error is a failed `waitpid`, which leaves nothing to do.
        let _ = child.wait().await;
    });
    outcome.map_err(|reason| {
        VimError::Failed(format!(
            "the HTTP responder for instance {instance_id} on ports {ports:?} in {} did not start: {reason}",
            namespace_path.display()
        ))
    })
}

/// Reads the responder's first line: `Ok` for the ready line, else why it is not ready.
async fn wait_ready(stdout: tokio::process::ChildStdout) -> Result<(), String> {
    let mut line = String::new();
    let read =
        tokio::time::timeout(READY_WAIT_MAX, BufReader::new(stdout).read_line(&mut line)).await;
    match read {
        Err(_) => Err(format!("no ready line within {READY_WAIT_MAX:?}")),
        Ok(Err(e)) => Err(format!("cannot read its stdout: {e}")),
        Ok(Ok(0)) => Err("it exited without a word".to_owned()),
        Ok(Ok(_)) if line.trim_end() == READY_LINE => Ok(()),
        Ok(Ok(_)) => Err(line.trim_end().to_owned()),
    }
}

/// The responder process (`vnfm vdu-http`): enters the namespace mounted at `namespace_path`,
/// binds `0.0.0.0:port` for each of `ports`, prints [`READY_LINE`] (or, on failure, the
/// reason) on stdout and serves until killed, `/metrics` from `metrics_file`.
///
/// Call it from the main thread before any other thread exists: `setns` moves only the
/// calling thread, and the threads of the runtime it builds afterwards inherit the namespace.
pub fn run(
    namespace_path: &Path,
    ports: &[u16],
    instance_id: &str,
    metrics_file: &Path,
) -> Result<Infallible, String> {
    let started = bind_in_namespace(namespace_path, ports).and_then(|bound| {
        // One thread is plenty for a handful of probes a second, and the fewer threads,
        // the less a host with thousands of VDUs pays for them.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let listeners = {
            let _entered = runtime.enter();
            bound
                .into_iter()
                .map(|listener| {
                    TcpListener::from_std(listener)
                        .map_err(|e| format!("cannot register the listener: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok((runtime, listeners))
    });
    let first_line = match &started {
        Ok(_) => READY_LINE.to_owned(),
        Err(reason) => reason.clone(),
    };
    // The VIM reads this one line and closes the pipe; stdout is never written again.
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{first_line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot signal readiness on stdout: {e}"))?;
    drop(stdout);
    let (runtime, listeners) = started?;
    let answers = Arc::new(Answers {
        body: format!("vnfm local VIM: VDU instance {instance_id} is up\n"),
        metrics_file: metrics_file.to_owned(),
    });
    runtime.block_on(async {
        let mut serving = JoinSet::new();
        for listener in listeners {
            serving.spawn(serve(
                listener,
                Arc::clone(&answers),
                instance_id.to_owned(),
            ));
        }
        serving.join_next().await;
    });
    Err("the serving loop ended".to_owned())
}

/// What a responder answers with.
struct Answers {
    /// The body of any request but `/metrics`.
    body: String,
    /// Read afresh for each `/metrics`, so that whoever writes it changes the next scrape.
    metrics_file: PathBuf,
}

fn bind_in_namespace(namespace_path: &Path, ports: &[u16]) -> Result<Vec<StdTcpListener>, String> {
    let namespace = namespace_path.display();
    File::open(namespace_path)
        .and_then(|file| {
            move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(io::Error::from)
        })
        .map_err(|e| format!("cannot enter namespace {namespace}: {e}"))?;
    if ports.is_empty() {
        return Err("no port to serve".to_owned());
    }
    ports
        .iter()
        .map(|&port| {
            StdTcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|e| format!("cannot bind port {port} in namespace {namespace}: {e}"))
        })
        .collect()
}

/// Serves until the process is killed; never returns.
async fn serve(listener: TcpListener, answers: Arc<Answers>, instance_id: String) {
    let mut connections = JoinSet::new();
    loop {
        if connections.len() >= CONNECTIONS_MAX {
            connections.join_next().await;
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(answer(stream, Arc::clone(&answers)));
                }
                Err(e) => {
                    tracing::warn!(instance_id = %instance_id, error = %e, "HTTP responder accept failed.");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one request head and answers it: the metrics file for `GET /metrics`, else `200 OK`
/// whatever the method and path.
async fn answer(mut stream: TcpStream, answers: Arc<Answers>) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
            if head.len() > REQUEST_HEAD_MAX_BYTES {
                return false;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let response = if is_metrics(&head) {
        let file = answers.metrics_file.clone();
        let read = tokio::task::spawn_blocking(move || read_metrics(&file)).await;
        metrics_response(&read.unwrap_or_else(|e| Err(format!("the read panicked: {e}"))))
    } else {
        response_for(&head, &answers.body)
    };
    // A client that went away is no error of ours.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Whether the request is a scrape: `GET /metrics`, with or without a query.
fn is_metrics(head: &[u8]) -> bool {
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, target) = (words.next(), words.next());
    method == Some(b"GET")
        && target.is_some_and(|t| t == b"/metrics" || t.starts_with(b"/metrics?"))
}

/// The metrics file's text; none yet is no metric (an empty scrape), not an error.
fn read_metrics(file: &Path) -> Result<String, String> {
    match std::fs::metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        Ok(meta) if meta.len() > METRICS_FILE_MAX_BYTES => {
            return Err(format!(
                "{} holds {} bytes, over the limit of {METRICS_FILE_MAX_BYTES} bytes",
                file.display(),
                meta.len()
            ));
        }
        Ok(_) => {}
    }
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// The answer to a scrape: the metrics (Prometheus' text format 0.0.4), or a 500 saying why.
fn metrics_response(read: &Result<String, String>) -> String {
    let (status, content_type, body) = match read {
        Ok(text) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            text.as_str(),
        ),
        Err(why) => (
            "500 Internal Server Error",
            "text/plain; charset=utf-8",
            why.as_str(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn response_for(head: &[u8], body: &str) -> String {
    let is_head = head.starts_with(b"HEAD ");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if is_head { "" } else { body },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_request_gets_200_and_head_gets_no_body() {
        let get = response_for(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "up\n");
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(get.contains("Content-Length: 3\r\n"));
        assert!(get.ends_with("\r\n\r\nup\n"));
        let head = response_for(b"HEAD / HTTP/1.1\r\n\r\n", "up\n");
        assert!(head.contains("Content-Length: 3\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_scrape_gets_the_metrics_file_or_a_500_naming_the_limit() {
        assert!(is_metrics(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(is_metrics(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"));
        assert!(!is_metrics(b"GET /metricsx HTTP/1.1\r\n\r\n"));
        assert!(!is_metrics(b"HEAD /metrics HTTP/1.1\r\n\r\n"));
        assert!(!is_metrics(b"GET / HTTP/1.1\r\n\r\n"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.prom");
        assert_eq!(read_metrics(&file), Ok(String::new()), "no file: no metric");
        std::fs::write(&file, "cpu_util 91\n").unwrap();
        let scraped = metrics_response(&read_metrics(&file));
        assert!(scraped.starts_with("HTTP/1.1 200 OK\r\n"), "{scraped}");
        assert!(scraped.contains("version=0.0.4"), "{scraped}");
        assert!(scraped.ends_with("\r\n\r\ncpu_util 91\n"), "{scraped}");
        let too_big = usize::try_from(METRICS_FILE_MAX_BYTES).unwrap() + 1;
        std::fs::write(&file, "#".repeat(too_big)).unwrap();
        let refused = metrics_response(&read_metrics(&file));
        assert!(refused.starts_with("HTTP/1.1 500 "), "{refused}");
        assert!(
            refused.contains("over the limit of 65536 bytes"),
            "{refused}"
        );
    }

    #[test]
    fn responders_are_told_by_subcommand_and_port() {
        let args = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let responder =
            args("/usr/bin/vnfm vdu-http --netns /run/netns/v-a --port 8080 --instance a");
        assert!(is_responder(&responder, Some(&[8080])));
        assert!(is_responder(&responder, None));
        assert!(!is_responder(&responder, Some(&[80])));
        assert!(!is_responder(&responder, Some(&[8080, 9100])));
        let both = args(
            "/usr/bin/vnfm vdu-http --netns /run/netns/v-a --port 9100 --port 8080 --instance a",
        );
        assert!(is_responder(&both, Some(&[8080, 9100])));
        assert!(!is_responder(&both, Some(&[8080])));
        assert!(!is_responder(
            &args("/usr/bin/vnfm conductor --port 8080"),
            None
        ));
        assert!(!is_responder(&args("sleep vdu-http"), Some(&[8080])));
        assert!(!is_responder(&[], None));
    }
}
