//! `vnfm <role>` as a child process, for tests that kill, pause and restart roles the way an
//! operator's machines would: [`RoleProcess`].

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

use crate::read_log;
use crate::wait::eventually_every;

/// How often the waits below look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a role logs once it serves `/metrics` (`--metrics-listen`), followed by the address.
const METRICS_SERVING: &str = "Metrics on http://";

/// How much of a role's log a failing test prints.
const LOG_TAIL_BYTES_MAX: u64 = 8 * 1024;

/// The `vnfm` binary: `$VNFM_BIN` if set, else the one this workspace builds, brought up to
/// date once per test process with `cargo build -p vnfm --bin vnfm`, so that a test never runs
/// a stale binary.
///
/// # Panics
///
/// When the build fails or the binary is missing.
pub fn vnfm_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("VNFM_BIN").filter(|bin| !bin.is_empty()) {
            let bin = PathBuf::from(bin);
            assert!(bin.is_file(), "VNFM_BIN={} is not a file", bin.display());
            return bin;
        }
        let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "vnfm", "--bin", "vnfm"])
            .current_dir(&workspace_root)
            .status()
            .expect("run cargo build -p vnfm");
        assert!(status.success(), "cargo build -p vnfm failed: {status}");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root.join("target"), PathBuf::from);
        let bin = target.join("debug/vnfm");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// A running `vnfm` process (one role), with its log in a temporary directory.
///
/// Killed (SIGKILL) and reaped on drop; if the test is failing, the end of its log is printed
/// first so that the failure explains itself.
#[derive(Debug)]
pub struct RoleProcess {
    label: String,
    args: Vec<String>,
    /// `None` once killed.
    child: Option<Child>,
    /// Holds `role.log`, which every life of the process appends to.
    dir: TempDir,
    /// Where the current life's output starts in the log.
    life_start: u64,
}

impl RoleProcess {
    /// Starts `vnfm <args>`; `label` names it in messages (for example `monitor-2`).
    ///
    /// # Panics
    ///
    /// When the process cannot be spawned.
    pub fn spawn(label: &str, args: &[&str]) -> RoleProcess {
        let dir = tempfile::Builder::new()
            .prefix("testkit-role-")
            .tempdir()
            .expect("create a temporary directory for a role's log");
        let mut process = RoleProcess {
            label: label.to_owned(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
            dir,
            life_start: 0,
        };
        process.start();
        process
    }

    /// Kills the process if it runs (kill -9) and starts it again with the same arguments, as
    /// a supervisor would after a crash.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    fn start(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the role's log");
        self.life_start = log.metadata().map_or(0, |meta| meta.len());
        let bin = vnfm_bin();
        let child = Command::new(&bin)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,async_nats=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {:?}: {e}", bin.display(), self.args));
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("role.log")
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The process id.
    ///
    /// # Panics
    ///
    /// After [`kill`](Self::kill).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process is running").id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path(), 0)
    }

    /// Waits until the current life's log contains `needle`, as a role announces it runs.
    ///
    /// # Panics
    ///
    /// After `timeout`, or when the process exits first; the message quotes the log.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let what = format!("log {needle:?}");
        self.wait_until(&what, timeout, |process| {
            read_log(&process.log_path(), process.life_start).contains(needle)
        })
        .await;
    }

    /// Waits until a gateway (`vnfm gateway --listen 127.0.0.1:0`, or `vnfm up`) says where it
    /// listens, and answers that address (`127.0.0.1:PORT`). A gateway that binds port 0 takes
    /// a port nobody holds, where a port picked beforehand may be taken in between.
    ///
    /// # Panics
    ///
    /// As [`wait_for_log`](Self::wait_for_log), or when the line names no address.
    pub async fn wait_for_listen_address(&mut self, timeout: Duration) -> String {
        const LISTENING: &str = "Gateway listening on http://";
        self.wait_for_log(LISTENING, timeout).await;
        let log = read_log(&self.log_path(), self.life_start);
        log.split(LISTENING)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|address| address.trim_end_matches('.').to_owned())
            .filter(|address| address.contains(':'))
            .unwrap_or_else(|| panic!("{}: no address after {LISTENING:?}:\n{log}", self.label))
    }

    /// Where the process serves `/metrics` in its current life, as its log says: a role that
    /// binds port 0 says which port it got. An error naming the process until it has said so.
    pub fn metrics_url(&self) -> anyhow::Result<String> {
        let log = read_log(&self.log_path(), self.life_start);
        log.split(METRICS_SERVING)
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next())
            .map(|address| format!("http://{address}/metrics"))
            .with_context(|| format!("{}: no {METRICS_SERVING:?} in its log", self.label))
    }

    /// Waits until the process says where it serves `/metrics`, and answers that URL
    /// ([`metrics_url`](Self::metrics_url)).
    ///
    /// # Panics
    ///
    /// As [`wait_for_log`](Self::wait_for_log).
    pub async fn wait_for_metrics_url(&mut self, timeout: Duration) -> String {
        self.wait_for_log(METRICS_SERVING, timeout).await;
        self.metrics_url()
            .expect("the line waited for names the address")
    }

    /// Waits for the process to end by itself (a command such as `rebuild --verify`).
    ///
    /// # Panics
    ///
    /// After `timeout`; the message quotes the log.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut ended = None;
        self.wait_until("end", timeout, |process| {
            ended = process.exit_status();
            ended.is_some()
        })
        .await;
        ended.expect("the process ended")
    }

    /// Polls `done` until it is true, failing after `timeout` or when the process exits before
    /// (unless `done` saw the exit); `what` names the awaited event in the failure.
    async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) {
        let awaited = format!("{} does {what}", self.label);
        eventually_every(awaited, timeout, POLL_INTERVAL, || {
            let answer = if done(self) {
                Ok(())
            } else if let Some(status) = self.exit_status() {
                panic!(
                    "{} exited ({status}) before it did {what}:\n{}",
                    self.label,
                    self.log()
                );
            } else {
                Err(LogSoFar(self.log_path()))
            };
            std::future::ready(answer)
        })
        .await;
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Kills the process with SIGKILL (kill -9) and reaps it. Does nothing when already killed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM), as a supervisor stopping it would.
    pub fn terminate(&self) {
        self.signal(Signal::TERM);
    }

    /// Stops the process (SIGSTOP), as a stalled machine or a debugger would.
    pub fn pause(&self) {
        self.signal(Signal::STOP);
    }

    /// Lets a stopped process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::CONT);
    }

    /// True while the process is stopped by a signal (state `T` in `/proc/<pid>/stat`).
    pub fn is_stopped(&self) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return false;
        };
        // The state follows the command name, which is in parentheses and may contain spaces.
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state == 'T')
    }

    /// Waits until the process is stopped (for example by a stop point it was started with).
    ///
    /// # Panics
    ///
    /// After `timeout`, or when it exits instead; the message quotes the log.
    pub async fn wait_stopped(&mut self, timeout: Duration) {
        self.wait_until("stop", timeout, |process| process.is_stopped())
            .await;
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.pid())
            .ok()
            .and_then(Pid::from_raw)
            .expect("a child's pid is a positive i32");
        kill_process(pid, signal).unwrap_or_else(|e| panic!("{signal:?} to {}: {e}", self.label));
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log_path = self.log_path();
            let len = fs::metadata(&log_path).map_or(0, |meta| meta.len());
            eprintln!(
                "--- end of {}'s log ---\n{}",
                self.label,
                read_log(&log_path, len.saturating_sub(LOG_TAIL_BYTES_MAX))
            );
        }
        self.kill();
    }
}

/// A process's whole log, read only when shown: what a wait that gives up quotes.
struct LogSoFar(PathBuf);

impl std::fmt::Display for LogSoFar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "its log:\n{}", read_log(&self.0, 0))
    }
}
