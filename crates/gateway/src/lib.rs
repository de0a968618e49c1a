//! The gateway: Tacker's legacy v1.0 REST API (the one python-tackerclient 1.14.0 speaks) over
//! vnfm's event log. A write is a command executed against an aggregate on the lifecycle log;
//! a read comes from the projector's tables (through an in-memory mirror for lists), from the
//! log itself when the tables have not caught up, and from the log for the audit events.
//!
//! Every request but version discovery and Tacker's two alarm routes comes from a
//! [`Principal`] (user, project, roles) that an [`Authenticator`] made of its `X-Auth-Token`
//! (or `Authorization: Bearer`); a caller sees and changes only its own project's resources
//! (an admin every project's), and the log records it as the actor. The alarm routes take the
//! VNF's alarm key instead (`alarms`), and only run its triggers' actions.
//!
//! The gateway never calls a VIM and never writes the tables: every change it makes is an
//! append to the log, which the projector, the conductor and the monitors take from there.

mod alarms;
pub mod audit;
pub mod auth;
mod board;
mod error;
pub mod glibc_heap;
mod guard;
/// The unit tests count what the structures they build allocate.
#[cfg(test)]
#[global_allocator]
static COUNTING: testkit::heap::Counting = testkit::heap::Counting;
mod input;
pub mod keystone;
mod mirror;
mod prometheus;
pub mod quota;
mod render;
pub mod story;
mod unique;
mod vims;
mod vnfds;
mod vnfs;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use events::envelope::Cause;
use events::keyring::Keyring;
use events::monitor::InstanceMonitorState;
use events::names::{self, AggregateKind};
use events::nats_error::NatsError;
use events::secrets::DataKey;
use events::store::{self, EventLog, Logged, StoreError};
use events::telemetry;
use events::vim::Vim;
use events::vnf::{RespawnLimit, Vnf};
use events::vnfd::{Vnfd, VnfdListing};
use projector::Tables;
use projector::table::{self, Projection, Row, VimRow, VnfRow, VnfdRow};
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

pub use auth::{Authenticator, Principal};
pub use error::ApiError;
pub use guard::{
    CONNECTIONS_MAX_DEFAULT, GuardConfig, HEADER_READ_TIMEOUT, OPEN_FILES_RESERVE, PublicHost,
    PublicHostError, REQUEST_BODY_TIMEOUT, REQUEST_TIMEOUT_DEFAULT, REQUESTS_IN_FLIGHT_MAX_DEFAULT,
    connections_max_within,
};
pub use input::REQUEST_BODY_BYTES_MAX;
pub use vnfs::CreateStopPoint;

use auth::Access;
use input::ListQuery;
use mirror::{Change, ChangeKind, Mirror, MonitorStates};

/// How long [`Gateway::new`] waits for its mirrors of the tables to load before serving
/// anyway (lists may then miss rows for a moment). Loading takes milliseconds per thousand
/// rows; ten seconds covers a large table on a slow link.
const MIRROR_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The header python-tackerclient sends its token in (present and empty in noauth mode).
const AUTH_TOKEN_HEADER: &str = "x-auth-token";
/// Changes of the tables a status board's live feed may fall behind by before it is told to
/// refetch everything.
const LIVE_CHANGES_BUFFER: usize = 1024;

/// What the gateway needs to know about its deployment.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Who each request comes from: [`auth::NoAuth`] (`--auth none`, everyone is the
    /// anonymous admin) or a back end that checks `X-Auth-Token`.
    pub auth: Arc<dyn Authenticator>,
    /// This gateway instance's name, for its log lines.
    pub instance: String,
    /// Fault injection for tests: a VNF create that reaches this point hangs there for good,
    /// so that a test can kill the gateway between two of its appends.
    pub stop_at: Option<CreateStopPoint>,
    /// The timeouts, caps and names that keep browsers and floods out (see [`serve`]).
    pub guard: GuardConfig,
    /// What each project may hold.
    pub quotas: quota::Quotas,
    /// The key that wraps the data keys of the secrets the gateway seals; every gateway of a
    /// deployment has the same one (`vnfm up` makes it, `--master-key` names its file).
    pub master_key: Arc<DataKey>,
    /// The heal limit an alarm's respawn counts toward: the conductors' (a failure's respawn
    /// is decided there, an alarm's here).
    pub respawn_limit: RespawnLimit,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("instance", &self.instance)
            .field("stop_at", &self.stop_at)
            .finish_non_exhaustive()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            auth: Arc::new(auth::NoAuth),
            instance: format!("gateway-{}", std::process::id()),
            stop_at: None,
            guard: GuardConfig::default(),
            quotas: quota::Quotas::default(),
            // A key of this gateway's own: what it seals, no other gateway can show. The
            // binary always gives the deployment's key from its file.
            master_key: Arc::new(DataKey::generate().expect("the system's random source")),
            respawn_limit: RespawnLimit::default(),
        }
    }
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The API's state: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("instance", &self.shared.config.instance)
            .finish_non_exhaustive()
    }
}

struct Shared {
    log: EventLog,
    tables: Tables,
    config: GatewayConfig,
    /// Written by the VNF table's watch task and by requests reading back their own commands;
    /// read by lists.
    vnfs: Arc<Mirror<Vnf>>,
    /// The same for the VNFD table.
    vnfds: Arc<Mirror<VnfdListing>>,
    /// The same for the VIM table.
    vims: Arc<Mirror<Vim>>,
    /// The monitors' last known VDU states, shown with a VNF; kept by a watch task.
    monitor_states: Arc<MonitorStates>,
    /// The data keys of the secrets the gateway seals and shows.
    keyring: Keyring,
    /// The names' claims (`unique`).
    name_claims: kv::Store,
    /// What the status board reads besides the tables.
    board: board::Sources,
    /// The watch tasks; dropping the last handle on the gateway stops them.
    _followers: Followers,
}

struct Followers(Vec<JoinHandle<()>>);

impl Drop for Followers {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

impl Gateway {
    /// Starts mirroring the VNF and VNFD tables and waits (a bounded time) until the mirrors
    /// hold what the tables held, so that the first list is complete.
    pub async fn new(
        log: EventLog,
        tables: Tables,
        config: GatewayConfig,
    ) -> Result<Gateway, GatewayError> {
        for bucket in [&tables.vnfs, &tables.vnfds, &tables.vims] {
            bucket
                .stream
                .clone()
                .info()
                .await
                .map_err(|e| NatsError::new("reading a table's state", e))?;
        }
        let monitor_bucket = store::open_monitor_states(log.jetstream()).await?;
        let keyring = Keyring::open(log.jetstream(), config.master_key.clone()).await?;
        let name_claims = store::open_bucket(log.jetstream(), names::NAME_CLAIM_BUCKET).await?;
        let board = board::Sources {
            leases: store::open_bucket(log.jetstream(), names::MONITOR_LEASE_BUCKET).await?,
            monitor_stream: store::open_monitor_stream(log.jetstream()).await?,
            telemetry_stream: store::open_telemetry_stream(log.jetstream()).await?,
            changes: broadcast::channel(LIVE_CHANGES_BUFFER).0,
            stopping: tokio::sync::watch::channel(false).0,
        };
        let vnfs = Arc::new(Mirror::default());
        let vnfds = Arc::new(Mirror::default());
        let vims = Arc::new(Mirror::default());
        let monitor_states = Arc::new(MonitorStates::default());
        let announced = |copy: Arc<dyn mirror::BucketCopy>, kind| -> Arc<dyn mirror::BucketCopy> {
            Arc::new(mirror::Announcing {
                copy,
                kind,
                changes: board.changes.clone(),
            })
        };
        // The board shows no VIM, so VIM changes are not announced to it.
        let copies: [(kv::Store, Arc<dyn mirror::BucketCopy>); 4] = [
            (tables.vims.clone(), vims.clone()),
            (
                tables.vnfs.clone(),
                announced(vnfs.clone(), ChangeKind::Vnf),
            ),
            (
                tables.vnfds.clone(),
                announced(vnfds.clone(), ChangeKind::Vnfd),
            ),
            (
                monitor_bucket,
                announced(monitor_states.clone(), ChangeKind::Monitor),
            ),
        ];
        let mut followers = Followers(Vec::new());
        let mut synced = Vec::new();
        for (bucket, copy) in copies {
            let (done, ready) = oneshot::channel();
            followers
                .0
                .push(tokio::spawn(mirror::follow(bucket, copy, done)));
            synced.push(ready);
        }
        if tokio::time::timeout(MIRROR_SYNC_TIMEOUT, futures::future::join_all(synced))
            .await
            .is_err()
        {
            tracing::warn!(
                instance = %config.instance,
                "The tables did not load within {MIRROR_SYNC_TIMEOUT:?}; lists may miss rows until they do."
            );
        }
        let loaded = glibc_heap::usage();
        let trimming = std::time::Instant::now();
        glibc_heap::trim();
        tracing::info!(
            instance = %config.instance,
            trim_ms = trimming.elapsed().as_millis(),
            heap_in_use_bytes = loaded.map(|heap| heap.in_use),
            heap_free_bytes = loaded.map(|heap| heap.free),
            "Tables loaded; the heap's free pages given back."
        );
        Ok(Gateway {
            shared: Arc::new(Shared {
                log,
                tables,
                config,
                vnfs,
                vnfds,
                vims,
                monitor_states,
                keyring,
                name_claims,
                board,
                _followers: followers,
            }),
        })
    }

    /// The whole API, `.json` suffixes included, and the status board.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/", get(root))
            .route("/board", get(board::asset))
            .route("/board/", get(board::asset))
            .route("/board/{asset}", get(board::asset))
            .route("/board/login", post(board::login))
            .route("/board/logout", post(board::logout))
            .route("/v1.0/board/me", get(board::whoami))
            .route("/v1.0/board/overview", get(board::overview))
            .route("/v1.0/board/vnfs", get(board::vnfs))
            .route("/v1.0/board/vnfs/{id}", get(board::vnf))
            .route("/v1.0/board/vnfds/{id}", get(board::vnfd))
            .route("/v1.0/board/live", get(board::live))
            .route("/v1.0", get(api_index))
            .route("/v1.0/vnfds", get(vnfds::list).post(vnfds::create))
            .route("/v1.0/vnfds/{id}", get(vnfds::show).delete(vnfds::delete))
            .route("/v1.0/vims", get(vims::list).post(vims::create))
            .route(
                "/v1.0/vims/{id}",
                get(vims::show).put(vims::update).delete(vims::delete),
            )
            .route("/v1.0/vnfs", get(vnfs::list).post(vnfs::create))
            .route(
                "/v1.0/vnfs/{id}",
                get(vnfs::show).put(vnfs::update).delete(vnfs::delete),
            )
            .route("/v1.0/vnfs/{id}/actions", post(vnfs::action))
            .route("/v1.0/vnfs/{id}/resources", get(vnfs::resources))
            .route("/v1.0/prometheus/targets", get(prometheus::targets))
            .route("/v1.0/vnfs/{id}/triggers", post(alarms::triggers))
            .route(
                "/v1.0/vnfs/{id}/{trigger}/{action}/{key}",
                post(alarms::alarm_url),
            )
            .route("/v1.0/alertmanager", post(alarms::alertmanager))
            .route("/v1.0/prometheus/rules", get(prometheus::rules))
            .route("/v1.0/events", get(list_events))
            .route("/v1.0/events/{id}", get(show_event))
            .fallback(unknown_path)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .layer(middleware::from_fn(guard::json_only))
            .layer(middleware::from_fn(observe))
            .with_state(self.clone());
        // Routing happens before any layer of `api` runs, so the suffix is cut in a service
        // that wraps it.
        let api = tower::ServiceExt::map_request(api, |mut request: Request| {
            if let Some(uri) = canonical_uri(request.uri()) {
                *request.uri_mut() = uri;
            }
            request
        });
        Router::new().fallback_service(api)
    }

    fn log(&self) -> &EventLog {
        &self.shared.log
    }

    /// The monitors' last known states of a VNF's instances (empty when none is known).
    fn monitor_states(&self, vnf_id: &str) -> BTreeMap<String, InstanceMonitorState> {
        self.shared.monitor_states.get(vnf_id)
    }

    fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    fn name_claims(&self) -> &kv::Store {
        &self.shared.name_claims
    }

    fn board(&self) -> &board::Sources {
        &self.shared.board
    }

    /// Whether `caller` sees the resource a table change is about (a change of a VNF's VDU
    /// states is about the VNF).
    fn sees_change(&self, caller: &Principal, change: &Change) -> bool {
        match change.kind {
            ChangeKind::Vnf | ChangeKind::Monitor => self
                .shared
                .vnfs
                .get(&change.id)
                .is_some_and(|row| visible(caller, &row)),
            ChangeKind::Vnfd => self
                .shared
                .vnfds
                .get(&change.id)
                .is_some_and(|row| visible(caller, &row)),
        }
    }

    /// A fresh user request, recorded as coming from the caller (user and project).
    fn user_request(caller: &Principal) -> Cause {
        Cause::user_request(caller.actor())
    }

    /// The data key of the aggregate, made first when it has none, to seal its secrets with.
    async fn data_key(&self, kind: AggregateKind, id: &str) -> Result<DataKey, ApiError> {
        self.shared
            .keyring
            .key_for(kind, id)
            .await
            .map_err(|e| ApiError::keyring("making a data key", &e))
    }

    /// The aggregate's data key if it has one (none made here).
    async fn existing_data_key(
        &self,
        kind: AggregateKind,
        id: &str,
    ) -> Result<Option<DataKey>, ApiError> {
        self.shared
            .keyring
            .get(kind, id)
            .await
            .map_err(|e| ApiError::keyring("reading a data key", &e))
    }

    /// The key to show an aggregate's secrets with, when it has `sealed` ones: only for a
    /// caller who may see the secrets of its project `tenant_id` (an admin, a member of the
    /// project, never a reader), and only while the aggregate's key exists (deleting the
    /// aggregate destroys it). `None` shows each secret as hidden.
    async fn secrets_key(
        &self,
        caller: &Principal,
        tenant_id: &str,
        kind: AggregateKind,
        id: &str,
        sealed: bool,
    ) -> Result<Option<DataKey>, ApiError> {
        if !sealed || !caller.sees_secrets_of(tenant_id) {
            return Ok(None);
        }
        self.shared
            .keyring
            .get(kind, id)
            .await
            .map_err(|e| ApiError::keyring("reading a data key", &e))
    }

    /// The newest VNF row this gateway can see: its mirror's (which the table's watch and the
    /// gateway's own commands keep current), else the table's, else the row folded from the
    /// log itself (the projector may not have reached a VNF created a moment ago).
    async fn vnf_row(&self, vnf_id: &str) -> Result<Option<VnfRow>, ApiError> {
        self.row(&self.shared.vnfs, self.shared.tables.vnf(vnf_id), vnf_id)
            .await
    }

    /// [`Gateway::vnf_row`] for VNFDs.
    async fn vnfd_row(&self, vnfd_id: &str) -> Result<Option<VnfdRow>, ApiError> {
        self.row(
            &self.shared.vnfds,
            self.shared.tables.vnfd(vnfd_id),
            vnfd_id,
        )
        .await
    }

    /// [`Gateway::vnf_row`] for registered VIMs.
    async fn vim_row(&self, vim_id: &str) -> Result<Option<VimRow>, ApiError> {
        self.row(&self.shared.vims, self.shared.tables.vim(vim_id), vim_id)
            .await
    }

    /// `table` is read only when the mirror does not have the row.
    async fn row<A>(
        &self,
        mirror: &Mirror<A>,
        table: impl Future<Output = Result<Option<Row<A>>, projector::ProjectorError>>,
        id: &str,
    ) -> Result<Option<Row<A>>, ApiError>
    where
        A: Projection + mirror::Share + mirror::Census,
    {
        if let Some(row) = mirror.get(id) {
            return Ok(Some(row));
        }
        let table = table.await.unwrap_or_else(|e| {
            tracing::warn!(id, error = %e, "Cannot read the table; reading the log instead.");
            None
        });
        if let Some(row) = table {
            mirror.offer(id, row);
            return Ok(mirror.get(id));
        }
        self.refresh_row(mirror, id).await
    }

    /// Folds a row from the log, as the projector would, and hands it to the mirror: after
    /// its own command, a gateway shows the command's effect at once.
    async fn refresh_row<A>(&self, mirror: &Mirror<A>, id: &str) -> Result<Option<Row<A>>, ApiError>
    where
        A: Projection + mirror::Share + mirror::Census,
    {
        let row = row_from_log::<A>(self.log(), id)
            .await
            .map_err(|e| ApiError::store("reading a resource from the log", &e))?;
        if let Some(row) = &row {
            mirror.offer(id, row.clone());
        }
        Ok(row)
    }

    async fn refresh_vnf(&self, vnf_id: &str) -> Result<Option<VnfRow>, ApiError> {
        self.refresh_row(&self.shared.vnfs, vnf_id).await
    }

    async fn refresh_vnfd(&self, vnfd_id: &str) -> Result<Option<VnfdRow>, ApiError> {
        self.refresh_row(&self.shared.vnfds, vnfd_id).await
    }

    async fn refresh_vim(&self, vim_id: &str) -> Result<Option<VimRow>, ApiError> {
        self.refresh_row(&self.shared.vims, vim_id).await
    }

    fn vim_mirror(&self) -> &Mirror<Vim> {
        &self.shared.vims
    }

    /// Each project's default VIM (project → VIM id), from the gateway's copy of the VIM
    /// table: of a project's live VIMs marked default, the one marked last (ties broken by
    /// id). A project without one makes its VNFs on the built-in `local` VIM.
    fn default_vims(&self) -> HashMap<String, String> {
        let marked = self.shared.vims.collect(|row| {
            let details = row.state.live()?;
            let since = row.state.default_since?;
            Some((details.tenant_id.clone(), since, details.vim_id.clone()))
        });
        let mut defaults: HashMap<String, (time::OffsetDateTime, String)> = HashMap::new();
        for (project, since, vim_id) in marked {
            let newer = defaults
                .get(&project)
                .is_none_or(|held| (since, &vim_id) > (held.0, &held.1));
            if newer {
                defaults.insert(project, (since, vim_id));
            }
        }
        defaults
            .into_iter()
            .map(|(project, (_, vim_id))| (project, vim_id))
            .collect()
    }

    /// The events of resources `caller` sees (all for an admin); a resource the gateway cannot
    /// find is not shown to a non-admin.
    async fn visible_events(
        &self,
        caller: &Principal,
        events: Vec<audit::TackerEvent>,
    ) -> Result<Vec<audit::TackerEvent>, ApiError> {
        if caller.is_admin() {
            return Ok(events);
        }
        let mut seen: HashMap<(&'static str, String), bool> = HashMap::new();
        let mut shown = Vec::with_capacity(events.len());
        for event in events {
            let key = (event.resource_type, event.resource_id.clone());
            let sees = if let Some(sees) = seen.get(&key) {
                *sees
            } else {
                let sees = self
                    .resource_visible(caller, event.resource_type, &event.resource_id)
                    .await?;
                seen.insert(key, sees);
                sees
            };
            if sees {
                shown.push(event);
            }
        }
        Ok(shown)
    }

    async fn resource_visible(
        &self,
        caller: &Principal,
        resource_type: &str,
        id: &str,
    ) -> Result<bool, ApiError> {
        Ok(if resource_type == <Vnf as audit::Audited>::RESOURCE_TYPE {
            self.vnf_row(id)
                .await?
                .is_some_and(|row| visible(caller, &row))
        } else if resource_type == <Vnfd as audit::Audited>::RESOURCE_TYPE {
            self.vnfd_row(id)
                .await?
                .is_some_and(|row| visible(caller, &row))
        } else {
            false
        })
    }

    fn vnf_mirror(&self) -> &Mirror<Vnf> {
        &self.shared.vnfs
    }

    /// What `project` holds now (its live VNFDs, VNFs and their instances, planned ones
    /// included), from the census of the gateway's copies of the tables.
    fn usage(&self, project: &str) -> quota::Usage {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let vnfs = self.shared.vnfs.project_use(project);
        quota::Usage {
            vnfds: count(self.shared.vnfds.project_use(project).live),
            vnfs: count(vnfs.live),
            instances: count(vnfs.instances),
        }
    }

    /// Runs `check` against `project`'s quotas and use: a request over a quota answers 409
    /// naming it, before anything is stored.
    fn within_quota(
        &self,
        project: &str,
        check: impl FnOnce(&quota::Quotas, quota::Usage) -> Result<(), quota::QuotaExceeded>,
    ) -> Result<(), ApiError> {
        check(&self.shared.config.quotas, self.usage(project)).map_err(|e| {
            tracing::info!(
                project,
                quota = e.quota,
                limit = e.limit,
                in_use = e.in_use,
                "Request over quota."
            );
            ApiError::conflict("OverQuota", e.to_string())
        })
    }

    fn vnfd_mirror(&self) -> &Mirror<VnfdListing> {
        &self.shared.vnfds
    }
}

/// A resource that belongs to one project (its `tenant_id`).
pub(crate) trait Owned {
    /// `None` before the resource's create is known.
    fn tenant_id(&self) -> Option<&str>;
}

impl Owned for Vnf {
    fn tenant_id(&self) -> Option<&str> {
        self.details.as_ref().map(|d| d.tenant_id.as_str())
    }
}

impl Owned for VnfdListing {
    fn tenant_id(&self) -> Option<&str> {
        self.descriptor.as_ref().map(|d| d.tenant_id.as_str())
    }
}

impl Owned for Vim {
    fn tenant_id(&self) -> Option<&str> {
        self.details.as_ref().map(|d| d.tenant_id.as_str())
    }
}

/// Whether `caller` may know that this resource exists: an admin sees every project's, anyone
/// else only their own project's.
pub(crate) fn visible<A: Owned>(caller: &Principal, row: &Row<A>) -> bool {
    caller.is_admin() || row.state.tenant_id().is_some_and(|t| caller.sees(t))
}

/// Whether the gateway found the resource and it belongs to another project than the
/// caller's: the request then answers 404, as for a resource that does not exist. A resource
/// not found passes, and its command says whether it exists.
pub(crate) fn foreign<A: Owned>(caller: &Principal, row: Option<&Row<A>>) -> bool {
    row.is_some_and(|row| !visible(caller, row))
}

/// The rows a list considers (those of the caller's project, or all for an admin), rendered, oldest first (then by `key`, the resource id). With
/// `id` filters (how python-tackerclient resolves an id), each is read like a show with
/// `read`, so a resource created a moment ago is found even before the mirror has it; without,
/// every mirrored row that is `listed` is rendered in place, without a copy of the row.
async fn matching<A, Read>(
    caller: &Principal,
    query: &ListQuery,
    mirror: &Mirror<A>,
    listed: impl Fn(&Row<A>) -> bool,
    read: impl Fn(String) -> Read,
    key: impl Fn(&Row<A>) -> Option<String>,
    render: impl Fn(&Row<A>) -> Option<Value>,
) -> Result<Vec<Value>, ApiError>
where
    A: Owned + Clone,
    Read: Future<Output = Result<Option<Row<A>>, ApiError>>,
{
    let entry = |row: &Row<A>| {
        if !visible(caller, row) {
            return None;
        }
        Some((row.created_at, key(row), render(row)?))
    };
    let ids = query.values("id");
    let mut rows = if ids.is_empty() {
        mirror.collect(|row| if listed(row) { entry(row) } else { None })
    } else {
        let mut rows = Vec::new();
        for id in ids.into_iter().filter(|id| input::is_resource_id(id)) {
            if let Some(row) = read(id.to_owned()).await? {
                rows.extend(entry(&row));
            }
        }
        rows
    };
    rows.sort_by(|(at_a, id_a, _), (at_b, id_b, _)| (at_a, id_a).cmp(&(at_b, id_b)));
    Ok(rows.into_iter().map(|(_, _, json)| json).collect())
}

/// The answer to a list of `collection` over `mirror`'s rows (see [`matching`]): filtered,
/// sorted and paged as `query` asks ([`input::ListQuery::answer`]). A query that only pages
/// is cut into its page by the rows' order and ids first, and only the page's rows are
/// rendered: rendering every row took about 200 ms a page on 10,000 VNFs.
#[allow(clippy::too_many_arguments)]
async fn list_answer<A, Read>(
    caller: &Principal,
    query: &ListQuery,
    collection: &str,
    mirror: &Mirror<A>,
    listed: impl Fn(&Row<A>) -> bool,
    read: impl Fn(String) -> Read,
    key: impl Fn(&Row<A>) -> Option<String>,
    render: impl Fn(&Row<A>) -> Option<Value>,
) -> Result<Value, ApiError>
where
    A: Owned + Clone,
    Read: Future<Output = Result<Option<Row<A>>, ApiError>>,
{
    if !query.only_pages() {
        let items = matching(caller, query, mirror, &listed, read, key, render).await?;
        return query.answer(items, collection);
    }
    let shown = |row: &Row<A>| listed(row) && visible(caller, row);
    let mut rows = mirror
        .collect_keyed(|held, row| shown(row).then(|| (row.created_at, key(row), held.to_owned())));
    rows.sort_by(|(at_a, id_a, _), (at_b, id_b, _)| (at_a, id_a).cmp(&(at_b, id_b)));
    let entries = rows
        .into_iter()
        .filter_map(|(_, id, held)| Some((id?, held)))
        .collect();
    // A row changed since is rendered as it is now; one gone since is left out.
    query.answer_rendering_page(entries, collection, |held: String| {
        mirror
            .get(&held)
            .filter(|row| shown(row))
            .and_then(|row| render(&row))
    })
}

/// An aggregate's row folded from its subject with the projector's own fold: a message that
/// does not decode moves the row past it, so its `last_sequence` is the projector's.
async fn row_from_log<A: Projection>(
    log: &EventLog,
    id: &str,
) -> Result<Option<Row<A>>, StoreError> {
    let history = log
        .history::<table::EventOf<A>>(&A::Source::subject(id))
        .await?;
    Ok(table::fold_history(history))
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish. Requests pass its [`GuardConfig`]: a `Host` it answers to, a header within
/// [`HEADER_READ_TIMEOUT`], a body within [`REQUEST_BODY_TIMEOUT`], the whole request within
/// the request timeout, and the caps on connections and requests in flight. No CORS header is
/// ever sent.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(instance = %gateway.config().instance, "Gateway serving.");
    let stopping = gateway.board().stopping.clone();
    let shutdown = async move {
        shutdown.await;
        // The board's live feeds end first, so that their connections close in the drain.
        stopping.send_replace(true);
    };
    guard::serve(
        listener,
        gateway.router(),
        &gateway.config().guard,
        guard::Hosts::Named,
        shutdown,
    )
    .await?;
    tracing::info!(instance = %gateway.config().instance, "Gateway stopped.");
    Ok(())
}

/// A role's own small endpoint (`/metrics`): at most this many connections at once. A scraper
/// or two and an operator's curl need a handful; the cap bounds what a flood holds open.
const SIDE_ENDPOINT_CONNECTIONS_MAX: usize = 16;
/// ... and this many requests in flight: a scrape renders in milliseconds.
const SIDE_ENDPOINT_REQUESTS_IN_FLIGHT_MAX: usize = 4;

/// Serves `router`, a role's own read-only endpoint without secrets (`/metrics`), behind the
/// API's guard (header, body and request timeouts, capped connections and requests in flight)
/// but taking any `Host`, until `shutdown` resolves.
///
/// # Errors
///
/// When the listener's address cannot be read.
pub async fn serve_side_endpoint(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = GuardConfig {
        connections_max: SIDE_ENDPOINT_CONNECTIONS_MAX,
        requests_in_flight_max: SIDE_ENDPOINT_REQUESTS_IN_FLIGHT_MAX,
        ..GuardConfig::default()
    };
    guard::serve(listener, router, &config, guard::Hosts::Any, shutdown).await
}

/// The URI with python-tackerclient's `.json` suffix (and a trailing `/`) cut from its path;
/// `None` when there is nothing to cut.
fn canonical_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let trimmed = path.strip_suffix(".json").unwrap_or(path);
    let trimmed = if trimmed.len() > 1 {
        trimmed.strip_suffix('/').unwrap_or(trimmed)
    } else {
        trimmed
    };
    if trimmed.len() == path.len() || trimmed.is_empty() {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Records each request's latency by route template (never the path itself, which holds ids),
/// method and status class. Outermost of the API's layers, so that refusals count too.
async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = observed_method(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        telemetry::HTTP_REQUEST_LATENCY,
        "route" => route,
        "method" => method,
        "status" => telemetry::status_class(response.status().as_u16()),
    )
    .record(started.elapsed());
    response
}

/// The method as a label: the API's own methods, and `other` for anything a client invents.
fn observed_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Finds out who asks ([`Authenticator`]) and refuses what their roles never allow (a write by
/// a reader: 403); the handlers get the [`Principal`] as a [`Caller`] and decide by project.
/// Version discovery (`GET /`) and the board's page and sign-in stay open, as version
/// discovery was in front of Tacker's Keystone middleware.
///
/// The token comes from `X-Auth-Token`, else from the board's session cookie; a write signed
/// by the cookie must echo the board's CSRF token (`board::session`), else 403.
async fn authenticate(
    State(gateway): State<Gateway>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/" || path == "/board" || path.starts_with("/board/") {
        return next.run(request).await;
    }
    // The VNF's alarm key is these routes' credential (Aodh sends no token); their handlers
    // check it.
    if alarms::is_keyed_route(request.method(), path) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let (token, by_cookie) = match headers.get(AUTH_TOKEN_HEADER) {
        Some(value) => (value.to_str().unwrap_or_default(), false),
        None => match auth::bearer_token(headers) {
            Some(token) => (token, false),
            None => match board::session::cookie(headers, board::session::SESSION_COOKIE) {
                Some(token) => (token, true),
                None => ("", false),
            },
        },
    };
    let principal = match gateway.config().auth.authenticate(token).await {
        Ok(principal) => principal,
        Err(e) => return ApiError::unauthenticated(&e).into_response(),
    };
    let access = Access::of_method(request.method());
    if by_cookie && access == Access::Write && !board::session::csrf_echoed(headers) {
        tracing::info!(user = %principal.user_id, method = %request.method(), path = %request.uri().path(), "Request refused: a session write without its CSRF token.");
        return ApiError::forbidden(format!(
            "{} {}: a request signed by the board's session must carry its CSRF token in X-CSRF-Token",
            request.method(),
            request.uri().path()
        ))
        .into_response();
    }
    if !principal.may(access) {
        let roles: Vec<&str> = principal.roles.iter().map(|role| role.as_str()).collect();
        tracing::info!(user = %principal.user_id, project = %principal.project_id, method = %request.method(), path = %request.uri().path(), "Request refused by role.");
        return ApiError::forbidden(format!(
            "{} {} is not allowed to user {} with role(s) [{}]: writes need the member or admin role",
            request.method(),
            request.uri().path(),
            principal.user_id,
            roles.join(", ")
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The authenticated caller of a request (put there by [`authenticate`]).
pub(crate) struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| {
                ApiError::internal(
                    "reading the caller",
                    &"a handler ran without the authentication layer",
                )
            })
    }
}

/// `GET /`: the board for a browser, else the API's versions (Tacker's version discovery).
async fn root(headers: axum::http::HeaderMap) -> Response {
    if board::wants_html(&headers) {
        board::to_board()
    } else {
        versions().into_response()
    }
}

fn versions() -> axum::Json<Value> {
    axum::Json(json!({
        "versions": [{
            "id": "v1.0",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": "/v1.0"}],
        }]
    }))
}

async fn api_index() -> axum::Json<Value> {
    let resource = |name: &str| {
        json!({
            "name": name.trim_end_matches('s'),
            "collection": name,
            "links": [{"rel": "self", "href": format!("/v1.0/{name}")}],
        })
    };
    axum::Json(json!({
        "resources": [resource("vims"), resource("vnfds"), resource("vnfs"), resource("events")]
    }))
}

async fn unknown_path(uri: Uri) -> ApiError {
    ApiError::not_found(
        "HTTPNotFound",
        format!("The resource could not be found: {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

/// The one path parameter of a route, with axum's rejection in Tacker's shape.
struct PathId(String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| PathId(id))
            .map_err(|e| ApiError::invalid_input(format!("path: {}", e.body_text())))
    }
}

/// A list request's query string, with axum's rejection in Tacker's shape.
struct ListParams(ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| ListParams(ListQuery::new(pairs)))
            .map_err(|e| ApiError::invalid_input(format!("query string: {}", e.body_text())))
    }
}

/// `GET /v1.0/events`: with `resource_id`, that resource's whole history, sorted and paged as
/// asked ([`input::ListQuery::answer`]); without, a page read from the log itself
/// ([`audit::page`]), as Tacker paged: [`audit::EVENTS_PAGE_DEFAULT_ITEMS`] events (or
/// `limit`), oldest first, after `marker` (from the oldest without one) with a `next` link
/// while newer ones exist; with `page_reverse`, those before `marker` (the newest without one)
/// with a `previous` link while older ones exist. Filters apply within each page.
async fn list_events(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    ListParams(query): ListParams,
) -> Result<axum::Json<Value>, ApiError> {
    let resource_ids = query.values("resource_id");
    let kinds = query.values("resource_type");
    let wants = |kind: &str| kinds.is_empty() || kinds.contains(&kind);
    if resource_ids.is_empty() {
        let (limit, marker, reverse) = query.cut_page(
            audit::EVENTS_PAGE_DEFAULT_ITEMS,
            audit::EVENTS_PAGE_MAX_ITEMS,
            "events",
        )?;
        let place = match (marker, reverse) {
            (None, false) => audit::PagePlace::After(0),
            (None, true) => audit::PagePlace::Newest,
            (Some(marker), false) => audit::PagePlace::After(marker),
            (Some(marker), true) => audit::PagePlace::Before(marker),
        };
        let page = audit::page(gateway.log(), place, limit)
            .await
            .map_err(|e| match e {
                audit::PageError::Store(e) => ApiError::store("reading a page of events", &e),
                audit::PageError::Nats(e) => ApiError::nats("reading a page of events", &e),
            })?;
        let found = gateway.visible_events(&caller, page.events).await?;
        let events = found.iter().map(audit::TackerEvent::to_json).collect();
        return Ok(axum::Json(query.answer_cut(
            events,
            "events",
            limit,
            page.older_than.map(|id| id.to_string()),
            page.newer_than.map(|id| id.to_string()),
        )));
    }
    let mut found = Vec::new();
    for id in resource_ids.iter().filter(|id| input::is_resource_id(id)) {
        let read = |e: StoreError| ApiError::store("reading a resource's events", &e);
        if wants("vnf") {
            found.extend(
                audit::resource_events::<Vnf>(gateway.log(), id, None)
                    .await
                    .map_err(read)?,
            );
        }
        if wants("vnfd") {
            found.extend(
                audit::resource_events::<Vnfd>(gateway.log(), id, None)
                    .await
                    .map_err(read)?,
            );
        }
    }
    found.sort_by_key(|event| event.id);
    found.dedup_by_key(|event| event.id);
    let found = gateway.visible_events(&caller, found).await?;
    let events = found.iter().map(audit::TackerEvent::to_json).collect();
    Ok(axum::Json(query.answer(events, "events")?))
}

/// `GET /v1.0/events/{id}`.
async fn show_event(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<axum::Json<Value>, ApiError> {
    let not_found =
        || ApiError::not_found("EventNotFound", format!("Event {id} could not be found"));
    let number: u64 = id.parse().map_err(|_| not_found())?;
    let event = audit::event_by_id(gateway.log(), number)
        .await
        .map_err(|e| ApiError::store("reading an event", &e))?
        .ok_or_else(not_found)?;
    let event = gateway
        .visible_events(&caller, vec![event])
        .await?
        .pop()
        .ok_or_else(not_found)?;
    Ok(axum::Json(json!({ "event": event.to_json() })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_suffix_and_trailing_slash_are_cut() {
        let cut = |uri: &str| canonical_uri(&uri.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(cut("/v1.0/vnfs.json"), Some("/v1.0/vnfs".into()));
        assert_eq!(
            cut("/v1.0/vnfds.json?name=a&fields=id"),
            Some("/v1.0/vnfds?name=a&fields=id".into())
        );
        assert_eq!(
            cut("/v1.0/vnfs/5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11/actions.json"),
            Some("/v1.0/vnfs/5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11/actions".into())
        );
        assert_eq!(cut("/v1.0/vnfs/"), Some("/v1.0/vnfs".into()));
        assert_eq!(cut("/v1.0.json"), Some("/v1.0".into()));
        assert_eq!(cut("/v1.0/vnfs"), None);
        assert_eq!(cut("/"), None);
        assert_eq!(cut("/.json"), Some("/".into()));
    }

    /// Posts `body` to `uri` on `router`; answers the created resource's id.
    async fn create(router: &Router, uri: &str, body: &Value, kind: &str) -> String {
        let request = axum::http::Request::post(uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let response = tower::ServiceExt::oneshot(router.clone(), request)
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let created: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, axum::http::StatusCode::CREATED, "{created}");
        created[kind]["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_row_read_from_the_log_moves_past_an_undecodable_message_as_the_projector_does() {
        let server = testkit::NatsServer::start().await;
        let client = server.client().await;
        let log = events::fixtures::log(client.clone()).await;
        let tables = Tables::open(log.jetstream()).await.unwrap();
        let gateway = Gateway::new(log.clone(), tables, GatewayConfig::default())
            .await
            .unwrap();
        let router = gateway.router();
        let template = include_str!("../../vnfd/tests/samples/tosca-vnfd-monitor.yaml");
        let vnfd = json!({"vnfd": {"name": "monitor", "attributes": {"vnfd": template}}});
        let vnfd_id = create(&router, "/v1.0/vnfds", &vnfd, "vnfd").await;
        let vnf = json!({"vnf": {"name": "vnf-1", "vnfd_id": vnfd_id, "attributes": {}}});
        let vnf_id = create(&router, "/v1.0/vnfs", &vnf, "vnf").await;
        // Garbage appended by a plain client, behind the VNF's create.
        let garbage = async_nats::jetstream::new(client)
            .publish(events::names::vnf_subject(&vnf_id), "not json".into())
            .await
            .unwrap()
            .await
            .unwrap();

        let folded = row_from_log::<Vnf>(&log, &vnf_id).await.unwrap().unwrap();
        let mut rebuilt = projector::rebuild(&log).await.unwrap();
        assert_eq!(folded.last_sequence, garbage.sequence);
        assert_eq!(Some(folded), rebuilt.vnfs.remove(&vnf_id));
    }
}
