//! The HTTP responder a VDU runs when its VNFD asks for an HTTP port: any request gets
//! `200 OK`, so `http_ping` monitoring has something real to probe.
//!
//! The socket is bound inside the VDU's network namespace by a short-lived thread that
//! enters the namespace and exits; the socket stays in that namespace, and a tokio task of
//! this process serves it. A restarted conductor therefore has no responders until the next
//! (idempotent) deploy of each instance re-creates them.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sched::CloneFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::vim::VimError;

/// Connections served at once per VDU; a probe opens one at a time, so 64 leaves room for
/// several monitors and a curious operator while bounding what a flood can hold open.
const CONNECTIONS_MAX: usize = 64;
/// A request head larger than this is not a probe; the connection is closed unanswered.
const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;
/// A client that has not finished its request head by then is stalled or hostile.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of file descriptors, say) before trying again, so the
/// loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// A running responder. Dropping it does not stop it; `stop` does.
#[derive(Debug)]
pub struct Responder {
    pub port: u16,
    /// The inode of the namespace the socket lives in: a namespace deleted and re-created
    /// under the same name has a new one, and the responder must follow it.
    pub namespace_inode: u64,
    task: JoinHandle<()>,
}

impl Responder {
    /// Whether it still serves `port` in the namespace now mounted at `namespace_path`.
    pub fn serves(&self, port: u16, namespace_path: &Path) -> bool {
        !self.task.is_finished()
            && self.port == port
            && namespace_inode(namespace_path).ok() == Some(self.namespace_inode)
    }

    /// Aborts the task without waiting (for `Drop`).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Aborts the task and waits until it and every connection it held are dropped: a live
    /// socket keeps a namespace alive after `ip netns del`.
    pub async fn stop(self) {
        self.task.abort();
        // The task never panics on its own; the only error is the cancellation asked for.
        let _ = self.task.await;
    }
}

fn namespace_inode(namespace_path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(namespace_path)?.ino())
}

/// Binds `0.0.0.0:port` inside the namespace mounted at `namespace_path` and serves it.
pub async fn start(
    namespace_path: PathBuf,
    port: u16,
    instance_id: &str,
) -> Result<Responder, VimError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let path = namespace_path.clone();
    // A thread of its own, never a pooled one: `setns` moves the calling thread, and a
    // pooled thread would carry the namespace into unrelated work. The thread exits at once.
    std::thread::Builder::new()
        .name("vnfm-netns-bind".to_owned())
        .spawn(move || {
            // The receiver only disappears if the deploy was cancelled; nothing to tell then.
            let _ = sender.send(bind_in_namespace(&path, port));
        })
        .map_err(|e| VimError::Failed(format!("cannot spawn the bind thread: {e}")))?;
    let bound = receiver
        .await
        .map_err(|_| VimError::Failed("the bind thread vanished".to_owned()))?;
    let (listener, namespace_inode) = bound.map_err(|e| {
        VimError::Failed(format!(
            "cannot bind the HTTP responder on port {port} in {}: {e}",
            namespace_path.display()
        ))
    })?;
    let listener = TcpListener::from_std(listener)
        .map_err(|e| VimError::Failed(format!("cannot register the HTTP responder: {e}")))?;
    let body: Arc<str> = format!("vnfm local VIM: VDU instance {instance_id} is up\n").into();
    let task = tokio::spawn(serve(listener, body, instance_id.to_owned()));
    Ok(Responder {
        port,
        namespace_inode,
        task,
    })
}

fn bind_in_namespace(namespace_path: &Path, port: u16) -> io::Result<(StdTcpListener, u64)> {
    let namespace = File::open(namespace_path)?;
    let inode = namespace.metadata()?.ino();
    nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let listener = StdTcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    listener.set_nonblocking(true)?;
    Ok((listener, inode))
}

async fn serve(listener: TcpListener, body: Arc<str>, instance_id: String) {
    // Dropping this set (when the task is aborted) aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        if connections.len() >= CONNECTIONS_MAX {
            connections.join_next().await;
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(answer(stream, Arc::clone(&body)));
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

/// Reads one request head and answers `200 OK`, whatever the method and path.
async fn answer(mut stream: TcpStream, body: Arc<str>) {
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
    let response = response_for(&head, &body);
    // A client that went away is no error of ours.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
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
}
