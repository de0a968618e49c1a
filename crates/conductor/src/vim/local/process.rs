//! The processes inside a VDU's namespace: what `ip netns pids NAME` lists, found the same
//! way (every process whose `/proc/PID/ns/net` is the namespace mounted under the name), and
//! their end.
//!
//! Read from `/proc` directly rather than through `ip`, so that the blocking cleanup (no
//! runtime) and the VIM's async paths share one implementation, and each look costs no
//! process. A look is one `stat` per process on the host: callers skip it where they know
//! the namespace is new.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, kill_process};

use super::failed;
use crate::vim::VimError;

/// Where the kernel lists processes (of this PID namespace).
const PROC_DIR: &str = "/proc";
/// A process dies within milliseconds of SIGKILL unless it is stuck in the kernel; past this
/// it is stuck, and the caller must not wait forever (it may hold the allocation lock).
const EXIT_WAIT_MAX: Duration = Duration::from_secs(5);
/// How often a killer looks again for processes that have not exited yet.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A process inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceProcess {
    pub pid: Pid,
    /// Its command line (`/proc/PID/cmdline`); empty for a kernel thread or one exiting.
    pub args: Vec<String>,
}

/// The live processes inside the namespace mounted at `namespace_path`; none when it is
/// gone. Zombies are not listed: they have left every namespace already.
pub fn processes_in(namespace_path: &Path) -> Result<Vec<NamespaceProcess>, VimError> {
    let namespace = match std::fs::metadata(namespace_path) {
        Ok(meta) => (meta.dev(), meta.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(failed(format!(
                "cannot stat namespace {}: {e}",
                namespace_path.display()
            )));
        }
    };
    let entries =
        std::fs::read_dir(PROC_DIR).map_err(|e| failed(format!("cannot list {PROC_DIR}: {e}")))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| failed(format!("cannot list {PROC_DIR}: {e}")))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        let dir = entry.path();
        // A process that exits meanwhile fails the `stat`: it is no longer inside anything.
        let inside = std::fs::metadata(dir.join("ns/net"))
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == namespace);
        if inside {
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            found.push(NamespaceProcess {
                pid,
                args: parse_cmdline(&cmdline),
            });
        }
    }
    Ok(found)
}

fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// SIGKILLs the processes inside the namespace that `select` picks and waits until none is
/// left: their sockets would otherwise keep the namespace (and its veth) alive after
/// `ip netns del`. Answers how many it killed. Blocks; async callers run it on a blocking
/// thread.
pub fn kill_and_wait(
    namespace_path: &Path,
    select: impl Fn(&NamespaceProcess) -> bool,
) -> Result<usize, VimError> {
    let deadline = Instant::now() + EXIT_WAIT_MAX;
    let mut killed = BTreeSet::new();
    loop {
        let left: Vec<Pid> = processes_in(namespace_path)?
            .into_iter()
            .filter(&select)
            .map(|process| process.pid)
            .collect();
        if left.is_empty() {
            return Ok(killed.len());
        }
        if Instant::now() >= deadline {
            return Err(failed(format!(
                "processes {left:?} in namespace {} still alive {EXIT_WAIT_MAX:?} after SIGKILL",
                namespace_path.display()
            )));
        }
        for pid in left {
            match kill_process(pid, Signal::KILL) {
                // ESRCH: it exited between the look and the kill.
                Ok(()) | Err(Errno::SRCH) => {}
                Err(e) => {
                    return Err(failed(format!(
                        "cannot kill process {pid} in namespace {}: {e}",
                        namespace_path.display()
                    )));
                }
            }
            killed.insert(pid.as_raw_pid());
        }
        std::thread::sleep(EXIT_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(
            parse_cmdline(b"/bin/vnfm\0vdu-http\0--port\08080\0"),
            vec!["/bin/vnfm", "vdu-http", "--port", "8080"]
        );
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn a_missing_namespace_has_no_processes() {
        let path = Path::new("/run/netns/vnfm-test-no-such-namespace");
        assert_eq!(processes_in(path).unwrap(), Vec::new());
        assert_eq!(kill_and_wait(path, |_| true).unwrap(), 0);
    }
}
