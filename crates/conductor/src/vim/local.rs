//! The `local` VIM: every VDU instance is a Linux network namespace on this host.
//!
//! An instance `I` is the namespace `{prefix}-I`, joined to the host by a veth pair
//! `{prefix}h{k}` (host side, 198.18.0.0 + 2k/31) and `{prefix}n{k}` (inside, 198.18.0.0 +
//! 2k+1/31, the management IP, default route via the host side). Slot `k` is chosen under
//! an exclusive `flock` on the lock file, from what the kernel says is taken, so several
//! conductors and test processes on one host never hand out the same address. Where the
//! request names an HTTP port, a responder process answers on it inside the namespace (see
//! `responder`).
//!
//! A VDU is independent of the conductor that deployed it, as a VM would be: the responder
//! is a detached process (`vnfm vdu-http`) that outlives the conductor, so killing a
//! conductor takes no VDU down, and dropping a `LocalVim` stops nothing. The kernel is the
//! only record: a deploy finds an existing responder among the processes inside the
//! namespace (`ip netns pids`, see `process`) instead of starting a second one, whichever
//! conductor started the first; a delete or a cleanup kills every process inside before it
//! removes the namespace.
//!
//! The VIM also routes the whole range to `unreachable` on the host (only more specific
//! routes of live VDUs override it): a probe of a deleted VDU fails at once instead of
//! leaving the host through its default route. The route is left in place on shutdown; it is
//! shared by every local VIM on the host and harmless.
//!
//! A VNF's config (`tacker vnf-update`) is the instance's state beside its namespace: the file
//! [`config_path`], written whole (a temporary file renamed over it), so giving the same config
//! again leaves the same file, and removed with the namespace.
//!
//! It never touches a namespace, interface or config file whose name does not carry its
//! prefix, and never sends traffic itself.

mod ip;
mod plan;
mod process;
mod responder;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plan::{Side, Slot};

use crate::vim::{ConfigRequest, DeployRequest, Deployed, Vim, VimError};

/// Checks a prefix without starting a VIM, for configuration checked before anything starts.
pub use plan::validate_prefix;
pub use plan::{PREFIX_LEN_MAX, SLOT_COUNT};
/// The responder process's body: what the hidden `vnfm vdu-http` runs.
pub use responder::run as run_responder;

/// Where `ip netns add` bind-mounts named namespaces (iproute2's `NETNS_RUN_DIR`).
const NETNS_RUN_DIR: &str = "/run/netns";
/// The prefix of a production VIM's names.
pub const DEFAULT_PREFIX: &str = "vnfm";
/// One lock file per host: every local VIM on it, whatever its prefix, allocates from the
/// same range. On tmpfs, so a reboot (which also clears every namespace) clears it too.
pub const DEFAULT_LOCK_PATH: &str = "/run/vnfm-local-vim.lock";
/// Where each instance's config (`tacker vnf-update`) and metrics file are kept, one of each
/// per namespace (`{namespace}.config.json`, `{namespace}.metrics.prom`): on tmpfs, like the
/// namespaces they belong to, and removed with their namespace.
pub const CONFIG_DIR: &str = "/run/vnfm-local-vim";
/// How often a waiter retries the host-wide lock held by another process; a deploy holds
/// it for a few `ip` calls (about 20 ms), so 5 ms keeps the wait short without spinning.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(5);
/// A holder that keeps the lock this long is stuck (every `ip` call it makes times out
/// after 10 s); failing the deploy beats queueing every conductor behind it.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(60);

/// How a local VIM names and coordinates what it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVimConfig {
    /// Starts every namespace (`{prefix}-{instance id}`) and veth (`{prefix}h{k}`,
    /// `{prefix}n{k}`) this VIM makes: 1 to 5 characters of `[a-z0-9]`. Tests pass a unique
    /// one so that they clean up only their own.
    pub prefix: String,
    /// The file whose `flock` serialises slot allocation across processes on this host.
    pub lock_path: PathBuf,
    /// The `vnfm` binary, run as `vnfm vdu-http` for each HTTP responder. No default: a
    /// test process is not `vnfm`, and a wrong guess would fail only at the first
    /// `http_ping` deploy.
    pub responder_program: PathBuf,
}

impl LocalVimConfig {
    /// `prefix` and `responder_program`, with the host-wide lock file.
    pub fn new(prefix: impl Into<String>, responder_program: impl Into<PathBuf>) -> Self {
        LocalVimConfig {
            prefix: prefix.into(),
            lock_path: PathBuf::from(DEFAULT_LOCK_PATH),
            responder_program: responder_program.into(),
        }
    }
}

/// A VIM whose VDUs are network namespaces on this host. Needs root and iproute2.
#[derive(Debug)]
pub struct LocalVim {
    config: LocalVimConfig,
    /// Serialises this process's deploys and deletes, so that at most one of them at a time
    /// polls the host-wide `flock`. Held for one whole deploy or delete; dropping the guard
    /// lets the next one in.
    local_lock: tokio::sync::Mutex<()>,
}

/// Holds the host-wide allocation lock (and this process's) until dropped.
struct HostLock<'a> {
    /// Locked with `flock`; closing it on drop releases the lock. Its content is the last
    /// slot handed out, so allocation goes round the whole range before reusing an address.
    file: File,
    _local: tokio::sync::MutexGuard<'a, ()>,
}

impl HostLock<'_> {
    // Plain blocking I/O on a few bytes of a tmpfs file: nothing here can stall the runtime.
    fn cursor(&mut self) -> Option<Slot> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0)).ok()?;
        self.file.read_to_string(&mut text).ok()?;
        plan::parse_cursor(&text)
    }

    fn set_cursor(&mut self, slot: Slot) -> Result<(), VimError> {
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", slot.index())
        };
        write(&mut self.file)
            .map_err(|e| VimError::Failed(format!("cannot record the allocation cursor: {e}")))
    }
}

/// What is left on the host under one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remnants {
    /// Named namespaces `{prefix}-*`.
    pub namespaces: Vec<String>,
    /// Interfaces of the host namespace named `{prefix}h{k}` or `{prefix}n{k}`.
    pub links: Vec<String>,
}

impl Remnants {
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.links.is_empty()
    }
}

fn failed(message: impl Into<String>) -> VimError {
    VimError::Failed(message.into())
}

fn netns_path(namespace: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(namespace)
}

/// Runs `work` (`/proc` scans, waits for killed processes) on a blocking thread, off the
/// runtime's workers.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T, VimError> + Send + 'static,
) -> Result<T, VimError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| failed(format!("{what} task failed: {e}")))?
}

/// Named namespaces on this host, from `NETNS_RUN_DIR` (absent until the first one).
fn named_namespaces() -> Result<Vec<String>, VimError> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(format!("cannot list {NETNS_RUN_DIR}: {e}"))),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| failed(format!("cannot list {NETNS_RUN_DIR}: {e}")))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Makes the whole range unreachable from the host unless something already routes it, so
/// that nothing sent to a VDU that is gone leaves the host.
fn ensure_range_unreachable() -> Result<(), VimError> {
    let range = format!("{}/{}", plan::RANGE_BASE, plan::RANGE_PREFIX_LEN);
    match ip::run_blocking(&["route", "add", "unreachable", &range]) {
        Ok(_) => {
            tracing::info!(range = %range, "Routed the local VIM's range to unreachable.");
            Ok(())
        }
        Err(failure) if failure.stderr.contains("File exists") => Ok(()),
        Err(failure) => Err(failure.into()),
    }
}

/// The file holding the config of the instance `instance_id` of a VIM with `prefix`.
pub fn config_path(prefix: &str, instance_id: &str) -> PathBuf {
    Path::new(CONFIG_DIR).join(format!(
        "{}.config.json",
        plan::namespace_name(prefix, instance_id)
    ))
}

/// The metrics file of the instance `instance_id` of a VIM with `prefix`: what its `/metrics`
/// answers, read afresh for each scrape (Prometheus' text format, e.g. `cpu_util 91`). Whoever
/// plays the VDU's workload (a test, an operator trying an alarm) writes it; the VIM only
/// removes it with the instance.
pub fn metrics_path(prefix: &str, instance_id: &str) -> PathBuf {
    Path::new(CONFIG_DIR).join(format!(
        "{}.metrics.prom",
        plan::namespace_name(prefix, instance_id)
    ))
}

/// Removes the instance's files beside its namespace (config, metrics).
fn remove_instance_files(prefix: &str, instance_id: &str) -> Result<(), VimError> {
    remove_file(&config_path(prefix, instance_id))?;
    remove_file(&metrics_path(prefix, instance_id))
}

/// Writes `config` as the instance's config file, whole or not at all.
fn write_config(path: &Path, config: &serde_json::Value) -> Result<(), VimError> {
    let cannot = |e: std::io::Error| failed(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(CONFIG_DIR).map_err(cannot)?;
    let text = serde_json::to_vec_pretty(config)
        .map_err(|e| failed(format!("cannot encode a config: {e}")))?;
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, text).map_err(cannot)?;
    std::fs::rename(&temporary, path).map_err(cannot)
}

/// Removes a file; succeeds when there is none.
fn remove_file(path: &Path) -> Result<(), VimError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(format!("cannot remove {}: {e}", path.display()))),
    }
}

/// Everything on this host named with `prefix`, for tests asserting nothing was left behind.
pub fn remnants(prefix: &str) -> Result<Remnants, VimError> {
    plan::validate_prefix(prefix).map_err(failed)?;
    let namespaces = named_namespaces()?
        .into_iter()
        .filter(|ns| plan::instance_of_namespace(prefix, ns).is_some())
        .collect();
    let host = plan::parse_links(&ip::run_blocking(&["-j", "link", "show"])?).map_err(failed)?;
    let links = host
        .into_iter()
        .map(|link| link.ifname)
        .filter(|name| plan::parse_link_name(prefix, name).is_some())
        .collect();
    Ok(Remnants { namespaces, links })
}

/// Removes every namespace and veth named with `prefix`, and first kills every process
/// inside those namespaces (the responders: a live socket would keep a namespace alive),
/// trying all of them before reporting the first failure. For `Drop` guards and callers
/// without a runtime.
pub fn cleanup_prefix_blocking(prefix: &str) -> Result<(), VimError> {
    let found = remnants(prefix)?;
    let mut first_failure = None;
    for namespace in &found.namespaces {
        if let Err(e) = process::kill_and_wait(&netns_path(namespace), |_| true) {
            tracing::warn!(prefix = %prefix, namespace = %namespace, error = %e, "Cleanup could not stop the processes of a namespace.");
            first_failure.get_or_insert(e);
        }
    }
    let links = found.links.iter().map(|l| vec!["link", "del", l.as_str()]);
    let namespaces = found
        .namespaces
        .iter()
        .map(|ns| vec!["netns", "del", ns.as_str()]);
    for namespace in &found.namespaces {
        if let Some(instance_id) = plan::instance_of_namespace(prefix, namespace)
            && let Err(e) = remove_instance_files(prefix, instance_id)
        {
            first_failure.get_or_insert(e);
        }
    }
    for args in links.chain(namespaces) {
        if let Err(failure) = ip::run_blocking_unless_gone(&args) {
            tracing::warn!(prefix = %prefix, command = %failure.command, error = %failure.detail, "Cleanup step failed.");
            first_failure.get_or_insert(failure.into());
        }
    }
    match first_failure {
        None => {
            tracing::info!(prefix = %prefix, namespaces = found.namespaces.len(), links = found.links.len(), "Cleaned up the local VIM's prefix.");
            Ok(())
        }
        Some(failure) => Err(failure),
    }
}

/// Removes every namespace and veth named with `prefix` (tests, and `vnfm` at shutdown
/// when asked to leave nothing behind).
pub async fn cleanup_prefix(prefix: &str) -> Result<(), VimError> {
    let prefix = prefix.to_owned();
    blocking("cleanup", move || cleanup_prefix_blocking(&prefix)).await
}

impl LocalVim {
    /// Checks that this process can build VDUs here (root, iproute2, a valid prefix) and
    /// routes the range to `unreachable`. Blocks for two short `ip` calls.
    pub fn new(config: LocalVimConfig) -> Result<Self, VimError> {
        plan::validate_prefix(&config.prefix).map_err(failed)?;
        let euid = rustix::process::geteuid();
        if !euid.is_root() {
            return Err(failed(format!(
                "the local VIM needs root to create network namespaces; running as uid {euid}"
            )));
        }
        ip::run_blocking(&["-V"]).map_err(|f| {
            failed(format!(
                "the local VIM needs iproute2's `ip` on PATH: {}",
                f.detail
            ))
        })?;
        // Checked now: a wrong path would otherwise fail only the first `http_ping` deploy.
        if !config.responder_program.is_file() {
            return Err(failed(format!(
                "the local VIM's responder program {} is not a file",
                config.responder_program.display()
            )));
        }
        ensure_range_unreachable()?;
        Ok(LocalVim {
            config,
            local_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &LocalVimConfig {
        &self.config
    }

    /// The instance ids whose namespaces exist under this VIM's prefix, sorted.
    pub fn list_instances(&self) -> Result<Vec<String>, VimError> {
        Ok(named_namespaces()?
            .iter()
            .filter_map(|ns| plan::instance_of_namespace(&self.config.prefix, ns))
            .map(str::to_owned)
            .collect())
    }

    fn namespace(&self, instance_id: &str) -> String {
        plan::namespace_name(&self.config.prefix, instance_id)
    }

    async fn lock_host(&self) -> Result<HostLock<'_>, VimError> {
        let local = self.local_lock.lock().await;
        let path = &self.config.lock_path;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| failed(format!("cannot open lock file {}: {e}", path.display())))?;
        let deadline = Instant::now() + LOCK_WAIT_MAX;
        // Polling `try_lock` rather than blocking in `lock`: no thread is parked on the
        // kernel lock, and a cancelled deploy stops waiting at once.
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(LOCK_RETRY_INTERVAL).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(failed(format!(
                        "lock file {} held by another process for over {LOCK_WAIT_MAX:?}",
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(failed(format!("cannot lock {}: {e}", path.display())));
                }
            }
        }
        Ok(HostLock {
            file,
            _local: local,
        })
    }

    /// The interfaces of a namespace; empty when it is gone.
    async fn namespace_links(&self, namespace: &str) -> Result<Vec<plan::IpLink>, VimError> {
        match ip::run(&["-n", namespace, "-j", "addr", "show"]).await {
            Ok(json) => plan::parse_links(&json).map_err(failed),
            Err(failure) if failure.is_gone() => Ok(Vec::new()),
            Err(failure) => Err(failure.into()),
        }
    }

    /// Brings the namespace to its deployed state from wherever it is (absent, half-built
    /// by a crash, complete) and answers its slot.
    async fn build(&self, namespace: &str, lock: &mut HostLock<'_>) -> Result<Slot, VimError> {
        let prefix = self.config.prefix.as_str();
        if !netns_path(namespace).exists() {
            ip::run(&["netns", "add", namespace]).await?;
        }
        let existing = plan::vdu_slot(&self.namespace_links(namespace).await?, prefix);
        let slot = if let Some(slot) = existing {
            slot
        } else {
            let host = plan::parse_links(&ip::run(&["-j", "-d", "addr", "show"]).await?)
                .map_err(failed)?;
            let used = plan::used_slots(&host, prefix);
            let slot = plan::next_free_slot(&used, lock.cursor()).ok_or_else(|| {
                VimError::Exhausted(format!(
                    "all {SLOT_COUNT} address pairs of {}/{} are in use",
                    plan::RANGE_BASE,
                    plan::RANGE_PREFIX_LEN
                ))
            })?;
            let host_link = plan::link_name(prefix, Side::Host, slot);
            let vdu_link = plan::link_name(prefix, Side::Vdu, slot);
            ip::run(&[
                "link", "add", &host_link, "type", "veth", "peer", "name", &vdu_link, "netns",
                namespace,
            ])
            .await?;
            lock.set_cursor(slot)?;
            slot
        };
        let host_link = plan::link_name(prefix, Side::Host, slot);
        let vdu_link = plan::link_name(prefix, Side::Vdu, slot);
        let host_cidr = format!("{}/{}", slot.host_addr(), plan::PAIR_PREFIX_LEN);
        let vdu_cidr = format!("{}/{}", slot.vdu_addr(), plan::PAIR_PREFIX_LEN);
        let gateway = slot.host_addr().to_string();
        // Every step is idempotent, so the same list completes a half-built namespace.
        let steps: [&[&str]; 6] = [
            &["addr", "replace", &host_cidr, "dev", &host_link],
            &["link", "set", &host_link, "up"],
            &["-n", namespace, "link", "set", "lo", "up"],
            &[
                "-n", namespace, "addr", "replace", &vdu_cidr, "dev", &vdu_link,
            ],
            &["-n", namespace, "link", "set", &vdu_link, "up"],
            &[
                "-n", namespace, "route", "replace", "default", "via", &gateway,
            ],
        ];
        for step in steps {
            ip::run(step).await?;
        }
        if existing.is_some() {
            // Probes of a half-built VDU leave failed ARP entries on the host side, which
            // would hold back the first packets to the repaired one by up to a second.
            ip::run(&["neigh", "flush", "dev", &host_link]).await?;
        }
        Ok(slot)
    }

    /// Makes sure a responder process serves `ports` in the instance's namespace, whoever
    /// started it: a redeploy (a redelivered request, a restarted conductor) finds the one
    /// already there. A namespace this deploy created has nothing inside to look for.
    async fn ensure_responder(
        &self,
        instance_id: &str,
        namespace: &str,
        ports: &[u16],
        namespace_is_new: bool,
    ) -> Result<(), VimError> {
        let path = netns_path(namespace);
        if !namespace_is_new {
            let inside = {
                let path = path.clone();
                blocking("responder lookup", move || process::processes_in(&path)).await?
            };
            if inside
                .iter()
                .any(|p| responder::is_responder(&p.args, Some(ports)))
            {
                tracing::debug!(instance_id = %instance_id, namespace = %namespace, ports = ?ports, "HTTP responder already running.");
                return Ok(());
            }
            if inside
                .iter()
                .any(|p| responder::is_responder(&p.args, None))
            {
                // One serving other ports: the instance was deployed with another VNFD.
                let path = path.clone();
                blocking("responder stop", move || {
                    process::kill_and_wait(&path, |p| responder::is_responder(&p.args, None))
                })
                .await?;
            }
        }
        let metrics_file = metrics_path(&self.config.prefix, instance_id);
        responder::start(
            &self.config.responder_program,
            &path,
            ports,
            instance_id,
            &metrics_file,
        )
        .await?;
        tracing::info!(instance_id = %instance_id, namespace = %namespace, ports = ?ports, "HTTP responder started.");
        Ok(())
    }
}

#[async_trait::async_trait]
impl Vim for LocalVim {
    async fn deploy_vdu(&self, request: &DeployRequest) -> Result<Deployed, VimError> {
        plan::validate_instance_id(&request.instance_id).map_err(failed)?;
        if request.http_port == Some(0) || request.metrics_port == Some(0) {
            return Err(failed("port 0 names no port"));
        }
        let namespace = self.namespace(&request.instance_id);
        let mut lock = self.lock_host().await?;
        let namespace_is_new = !netns_path(&namespace).exists();
        let built = self.build(&namespace, &mut lock).await;
        let slot = built.inspect_err(|e| {
            tracing::warn!(operation_id = %request.operation_id, vnf_id = %request.vnf_id, vdu = %request.vdu, instance_id = %request.instance_id, error = %e, "VDU deploy failed; the next deploy or a delete finishes the job.");
        })?;
        let ports = request.http_ports();
        if !ports.is_empty() {
            self.ensure_responder(&request.instance_id, &namespace, &ports, namespace_is_new)
                .await?;
        }
        drop(lock);
        let mgmt_ip = slot.vdu_addr();
        tracing::info!(
            operation_id = %request.operation_id,
            vnf_id = %request.vnf_id,
            vdu = %request.vdu,
            instance_id = %request.instance_id,
            namespace = %namespace,
            mgmt_ip = %mgmt_ip,
            slot = slot.index(),
            "VDU deployed."
        );
        Ok(Deployed {
            instance_id: request.instance_id.clone(),
            mgmt_ip,
        })
    }

    async fn delete_vdu(&self, instance_id: &str) -> Result<(), VimError> {
        // No namespace can carry an id that is not a valid file name: already gone.
        if plan::validate_instance_id(instance_id).is_err() {
            return Ok(());
        }
        let namespace = self.namespace(instance_id);
        let _lock = self.lock_host().await?;
        // First: a socket of the responder would keep the namespace alive after deletion.
        let path = netns_path(&namespace);
        let killed = blocking("VDU process stop", move || {
            process::kill_and_wait(&path, |_| true)
        })
        .await?;
        if killed > 0 {
            tracing::info!(instance_id = %instance_id, namespace = %namespace, processes = killed, "Killed the VDU's processes.");
        }
        remove_instance_files(&self.config.prefix, instance_id)?;
        if !netns_path(&namespace).exists() {
            tracing::debug!(instance_id = %instance_id, "VDU already gone.");
            return Ok(());
        }
        let prefix = self.config.prefix.as_str();
        // The host side explicitly: namespace teardown is asynchronous in the kernel, and a
        // lingering host veth would keep its name and address for a while.
        for link in self.namespace_links(&namespace).await? {
            if let Some((Side::Vdu, slot)) = plan::parse_link_name(prefix, &link.ifname) {
                let host_link = plan::link_name(prefix, Side::Host, slot);
                ip::run_unless_gone(&["link", "del", &host_link]).await?;
            }
        }
        ip::run_unless_gone(&["netns", "del", &namespace]).await?;
        tracing::info!(instance_id = %instance_id, namespace = %namespace, "VDU deleted.");
        Ok(())
    }

    async fn apply_config(&self, request: &ConfigRequest) -> Result<(), VimError> {
        for instance_id in &request.instance_ids {
            plan::validate_instance_id(instance_id).map_err(failed)?;
            if !netns_path(&self.namespace(instance_id)).exists() {
                return Err(failed(format!(
                    "instance {instance_id} of VNF {} does not exist",
                    request.vnf_id
                )));
            }
            let path = config_path(&self.config.prefix, instance_id);
            let config = request.config.clone();
            blocking("config write", move || write_config(&path, &config)).await?;
        }
        tracing::info!(operation_id = %request.operation_id, vnf_id = %request.vnf_id, instances = request.instance_ids.len(), "VNF config applied.");
        Ok(())
    }

    async fn mgmt_ip(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        if plan::validate_instance_id(instance_id).is_err() {
            return Ok(None);
        }
        let namespace = self.namespace(instance_id);
        if !netns_path(&namespace).exists() {
            return Ok(None);
        }
        let links = self.namespace_links(&namespace).await?;
        Ok(plan::vdu_mgmt_ip(&links, &self.config.prefix))
    }
}
