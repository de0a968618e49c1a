//! Running iproute2's `ip`: the local VIM's only way of changing the kernel's network state.

use std::process::{Output, Stdio};
use std::time::Duration;

use crate::vim::VimError;

/// The iproute2 binary, looked up on `PATH`.
const IP: &str = "ip";
/// One `ip` call takes a few milliseconds; ten seconds means the kernel or the binary is
/// stuck, and the caller (who may hold the host-wide allocation lock) must not wait forever.
const IP_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What `ip` says when the thing to remove or read is already gone.
const GONE: &[&str] = &["Cannot find device", "No such file or directory"];

/// A failed `ip` call, with what it said.
#[derive(Debug)]
pub struct IpFailure {
    pub command: String,
    /// Why it failed: the exit status and stderr, or why `ip` could not run at all.
    pub detail: String,
    /// What `ip` printed on stderr; empty when it did not run.
    pub stderr: String,
}

impl IpFailure {
    /// Whether the failure only says the object is already gone.
    pub fn is_gone(&self) -> bool {
        GONE.iter().any(|needle| self.stderr.contains(needle))
    }
}

impl From<IpFailure> for VimError {
    fn from(failure: IpFailure) -> Self {
        VimError::Failed(format!("`{}` failed: {}", failure.command, failure.detail))
    }
}

fn command_line(args: &[&str]) -> String {
    std::iter::once(IP)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

fn interpret(args: &[&str], output: std::io::Result<Output>) -> Result<String, IpFailure> {
    let command = command_line(args);
    let output = output.map_err(|e| IpFailure {
        command: command.clone(),
        detail: format!("could not run {IP}: {e}"),
        stderr: String::new(),
    })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(IpFailure {
        command,
        detail: format!("{}: {stderr}", output.status),
        stderr,
    })
}

/// Runs `ip ARGS`, answering its standard output, or the command and its stderr on failure.
pub async fn run(args: &[&str]) -> Result<String, IpFailure> {
    tracing::trace!(command = %command_line(args), "Running ip.");
    let child = tokio::process::Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(IP_COMMAND_TIMEOUT, child).await {
        Ok(output) => interpret(args, output),
        Err(_) => Err(IpFailure {
            command: command_line(args),
            detail: format!("no answer within {IP_COMMAND_TIMEOUT:?}"),
            stderr: String::new(),
        }),
    }
}

/// Runs `ip ARGS`; a failure saying the object is already gone counts as success.
pub async fn run_unless_gone(args: &[&str]) -> Result<(), IpFailure> {
    match run(args).await {
        Ok(_) => Ok(()),
        Err(failure) if failure.is_gone() => Ok(()),
        Err(failure) => Err(failure),
    }
}

/// `run` for callers without a runtime (Drop guards, startup checks). No timeout: these
/// callers run outside the allocation lock.
pub fn run_blocking(args: &[&str]) -> Result<String, IpFailure> {
    let output = std::process::Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .output();
    interpret(args, output)
}

/// `run_unless_gone` for callers without a runtime.
pub fn run_blocking_unless_gone(args: &[&str]) -> Result<(), IpFailure> {
    match run_blocking(args) {
        Ok(_) => Ok(()),
        Err(failure) if failure.is_gone() => Ok(()),
        Err(failure) => Err(failure),
    }
}
