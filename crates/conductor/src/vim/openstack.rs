//! The `openstack` VIM: each VDU instance is a Nova server with one Neutron port per
//! connection point, mapped from the VNFD as Tacker mapped it (`plan`), reached through
//! Keystone v3 (`keystone`) with a token renewed before it expires and once more on a 401.
//!
//! Idempotency keys: an instance's server carries the tags `vnfm`, `vnfm-instance-<id>` and
//! `vnfm-vnf-<vnf>` and the metadata `vnfm_instance_id` (checked on every lookup, since
//! Nova's tag filter lets servers still in its API's build queue through); its ports are
//! named `vnfm-<instance id>-<CP>` and carry the same tags (the management port also
//! `vnfm-mgmt`). A deploy looks the instance's server and ports up first and makes only what
//! is missing; a deploy that fails removes every server and port of the instance before it
//! answers; a delete of what is gone succeeds. A timeout, a refused connection or an HTTP
//! 5xx is transient ([`VimError::Unavailable`]): the operation is tried again whole, after
//! `plan::retry_delay`, which the idempotency keys make safe.
//!
//! It never touches a server or port that does not carry the instance's tag, never prints a
//! password, secret or token, and never deletes a flavor, image, network or security group.

mod keystone;
mod plan;

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OnceCell};

pub use keystone::{Credentials, Endpoints, TOKEN_RENEWAL_MARGIN, needs_renewal, v3_root};
pub use plan::{
    INSTANCE_TAG_PREFIX, META_CONFIG_DIGEST, MGMT_TAG, ServerState, VNFM_TAG, flavor_name,
    instance_tag, port_name, vnf_tag,
};

use crate::vim::{ConfigRequest, DeployRequest, Deployed, Vim, VimError};

/// One HTTP call to an OpenStack API: Nova answers a server create within 0.2–2.3 s on the
/// all-in-one (cold), Keystone a token in well under a second; 30 s means the service is stuck.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting to an API: on a LAN or loopback a connect takes milliseconds.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A server's BUILD: 2.4–3.2 s warm and 9.8 s cold on the all-in-one (qemu TCG, 2 cores);
/// a VM with a real image on a busy cloud takes a minute or two.
pub const SERVER_ACTIVE_TIMEOUT: Duration = Duration::from_secs(180);
/// A deleted server's disappearance: 2.3–2.5 s on the all-in-one.
pub const SERVER_GONE_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two looks at a building or deleting server: a tenth of the shortest BUILD
/// measured, so ACTIVE is seen within about 10 % of when it came, at two calls a second.
pub const SERVER_POLL_PERIOD: Duration = Duration::from_millis(250);
/// Nova's API microversion: 2.52 takes tags in a server create, 2.64 a server group's
/// `policy`; Zed serves up to 2.93.
pub const NOVA_MICROVERSION: &str = "2.64";
/// Servers per page of a list: Nova's default `max_limit`.
pub const LIST_PAGE_SIZE: usize = 1000;
/// Pages of one list at most (a million servers): a list that goes on is a loop.
const LIST_PAGES_MAX: usize = 1000;

/// Where and how to reach an OpenStack cloud: what Tacker's `vim-register` config file holds.
#[derive(Debug, Clone)]
pub struct OpenStackAccess {
    /// Keystone's URL, with or without `/v3`.
    pub auth_url: String,
    pub credentials: Credentials,
    /// The project a password token is scoped to (an application credential has its own).
    pub project_name: String,
    pub project_domain_name: String,
    pub user_domain_name: String,
    /// The region of the endpoints, when the catalog has several.
    pub region_name: Option<String>,
    /// False accepts any TLS certificate (Tacker's `cert_verify: False`).
    pub cert_verify: bool,
}

/// The OpenStack APIs, for errors that name which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Nova,
    Neutron,
    Glance,
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::Nova => "Nova",
            Api::Neutron => "Neutron",
            Api::Glance => "Glance",
        })
    }
}

/// A token and what came with it.
struct Session {
    token: String,
    issued: keystone::Issued,
}

/// An answer of an API, with the call it answers.
struct Answer {
    /// `Nova POST /servers`, for errors.
    call: String,
    status: u16,
    body: Value,
    text: String,
}

impl Answer {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a 2xx answer, else an error naming the call, the status and the API's
    /// message.
    fn ok(self) -> Result<Value, VimError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(self.error())
        }
    }

    fn error(&self) -> VimError {
        let message = plan::error_message(&self.text);
        let text = format!("{} answered {}: {message}", self.call, self.status);
        // Nova's and Neutron's quotas answer 403 (Nova) or 409 (Neutron) "Quota exceeded".
        if message.contains("Quota exceeded") || message.contains("quota exceeded") {
            VimError::Exhausted(text)
        } else if plan::is_transient_status(self.status) {
            VimError::Unavailable(text)
        } else {
            VimError::Failed(text)
        }
    }
}

/// A server vnfm made, as `tagged_inventory` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedServer {
    pub server_id: String,
    pub instance_id: String,
    pub vnf_id: Option<String>,
    pub state: ServerState,
}

/// A port vnfm made, as `tagged_inventory` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedPort {
    pub port_id: String,
    pub instance_id: String,
    pub vnf_id: Option<String>,
    /// The server it is attached to, if any.
    pub server_id: Option<String>,
}

/// Every server and port in the project that carries vnfm's tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedInventory {
    pub servers: Vec<TaggedServer>,
    pub ports: Vec<TaggedPort>,
}

/// The `openstack` VIM. Holds one token at a time, shared by all calls.
pub struct OpenStackVim {
    access: OpenStackAccess,
    keystone_url: String,
    http: reqwest::Client,
    /// The current token; taken by each call for the time it needs to read or renew it.
    session: Mutex<Option<Session>>,
    /// Whether Neutron takes tags in a port create (its `tag-creation` extension); asked once.
    port_tags_on_create: OnceCell<bool>,
}

impl std::fmt::Debug for OpenStackVim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackVim")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl OpenStackVim {
    /// A VIM for `access`. Nothing is called until the first operation (or [`Self::check`]).
    pub fn new(access: OpenStackAccess) -> Result<OpenStackVim, VimError> {
        OpenStackVim::with_request_timeout(access, HTTP_REQUEST_TIMEOUT)
    }

    /// A VIM whose calls give up after `request_timeout` instead of
    /// [`HTTP_REQUEST_TIMEOUT`] (a test that stalls an API need not wait 30 s a call).
    pub fn with_request_timeout(
        access: OpenStackAccess,
        request_timeout: Duration,
    ) -> Result<OpenStackVim, VimError> {
        // No idle connections kept: uwsgi's plain HTTP socket (Keystone, Placement on Debian's
        // packages) resets a reused connection on POST.
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(HTTP_CONNECT_TIMEOUT)
            .pool_max_idle_per_host(0)
            .danger_accept_invalid_certs(!access.cert_verify)
            .build()
            .map_err(|e| VimError::Failed(format!("the HTTP client does not build: {e}")))?;
        Ok(OpenStackVim {
            keystone_url: v3_root(&access.auth_url),
            access,
            http,
            session: Mutex::new(None),
            port_tags_on_create: OnceCell::new(),
        })
    }

    /// Makes one cheap Nova call with the held token (authenticating when there is none, it
    /// is about to expire, or Nova answers 401). The error is a reason for a person ("Keystone
    /// refused the credentials (401)"), never holding a secret.
    ///
    /// The token is reused on purpose: a password authentication costs Keystone a bcrypt hash
    /// and every API a token validation, and a check every few seconds that authenticated
    /// afresh kept the all-in-one's Keystone near a core busy (1–3 s a validation). A password
    /// changed behind vnfm's back shows at the token's renewal; new credentials given through
    /// `vim-update` make a new driver, whose first check authenticates.
    pub async fn check(&self) -> Result<(), String> {
        self.send(Api::Nova, Method::GET, "/flavors", &[("limit", "1")], None)
            .await
            .and_then(Answer::ok)
            .map(|_| ())
            .map_err(|e| reason(&e).to_owned())
    }

    /// The state of the instance's server as Nova reports it; `Gone` when no server carries
    /// the instance's id.
    pub async fn server_state(&self, instance_id: &str) -> Result<ServerState, VimError> {
        Ok(self
            .servers_of(instance_id)
            .await?
            .first()
            .map_or(ServerState::Gone, plan::server_state))
    }

    /// Every server and port of the project tagged by vnfm, with the instance each belongs to.
    pub async fn tagged_inventory(&self) -> Result<TaggedInventory, VimError> {
        let mut inventory = TaggedInventory::default();
        for server in self.list_servers(VNFM_TAG).await? {
            let Some(instance_id) = server["metadata"][plan::META_INSTANCE_ID]
                .as_str()
                .map(str::to_owned)
            else {
                continue;
            };
            inventory.servers.push(TaggedServer {
                server_id: string(&server["id"]),
                instance_id,
                vnf_id: server["metadata"][plan::META_VNF_ID]
                    .as_str()
                    .map(str::to_owned),
                state: plan::server_state(&server),
            });
        }
        for port in self.ports_tagged(VNFM_TAG).await? {
            let Some(instance_id) = plan::instance_of(&port["tags"]) else {
                continue;
            };
            let device = string(&port["device_id"]);
            inventory.ports.push(TaggedPort {
                port_id: string(&port["id"]),
                instance_id,
                vnf_id: plan::vnf_of(&port["tags"]),
                server_id: (!device.is_empty()).then_some(device),
            });
        }
        Ok(inventory)
    }

    /// A new token from Keystone.
    async fn authenticate(&self) -> Result<Session, VimError> {
        let a = &self.access;
        let body = keystone::auth_body(
            &a.credentials,
            &a.project_name,
            &a.project_domain_name,
            &a.user_domain_name,
        );
        let url = format!("{}/auth/tokens", self.keystone_url);
        let answer = self.http.post(&url).json(&body).send().await.map_err(|e| {
            VimError::Unavailable(format!("Keystone at {url} is unreachable: {}", chain(&e)))
        })?;
        let status = answer.status().as_u16();
        let token = answer
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = answer.text().await.map_err(|e| {
            VimError::Unavailable(format!(
                "Keystone POST /v3/auth/tokens: reading the answer: {}",
                chain(&e)
            ))
        })?;
        match status {
            201 => {}
            401 => {
                return Err(VimError::Failed(
                    "Keystone refused the credentials (401)".to_owned(),
                ));
            }
            other => {
                let text = format!(
                    "Keystone POST /v3/auth/tokens answered {other}: {}",
                    plan::error_message(&text)
                );
                return Err(if plan::is_transient_status(other) {
                    VimError::Unavailable(text)
                } else {
                    VimError::Failed(text)
                });
            }
        }
        let token = token.ok_or_else(|| {
            VimError::Failed("Keystone issued a token without X-Subject-Token".to_owned())
        })?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| VimError::Failed(format!("Keystone's token answer is not JSON: {e}")))?;
        let issued = keystone::issued(&body, a.region_name.as_deref()).map_err(VimError::Failed)?;
        Ok(Session { token, issued })
    }

    /// The token, the endpoints and the project id, renewed when `renew` says so or
    /// [`TOKEN_RENEWAL_MARGIN`] is all that is left of it.
    async fn token(&self, renew: bool) -> Result<(String, Endpoints, String), VimError> {
        let mut held = self.session.lock().await;
        let now = OffsetDateTime::now_utc();
        let fresh = held
            .as_ref()
            .is_some_and(|s| !renew && !needs_renewal(now, s.issued.expires_at));
        if !fresh {
            *held = Some(self.authenticate().await?);
        }
        let session = held.as_ref().expect("set above");
        Ok((
            session.token.clone(),
            session.issued.endpoints.clone(),
            session.issued.project_id.clone(),
        ))
    }

    async fn project_id(&self) -> Result<String, VimError> {
        Ok(self.token(false).await?.2)
    }

    /// One call, authenticated; on a 401 once more with a new token.
    async fn send(
        &self,
        api: Api,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, VimError> {
        let call = format!("{api} {method} {path}");
        let mut renew = false;
        loop {
            let (token, endpoints, _) = self.token(renew).await?;
            let base = match api {
                Api::Nova => endpoints.compute,
                Api::Neutron => format!("{}/v2.0", endpoints.network),
                Api::Glance => format!("{}/v2", endpoints.image),
            };
            let mut request = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .header("X-Auth-Token", token)
                .query(query);
            if api == Api::Nova {
                request = request
                    .header(
                        "OpenStack-API-Version",
                        format!("compute {NOVA_MICROVERSION}"),
                    )
                    .header("X-OpenStack-Nova-API-Version", NOVA_MICROVERSION);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = request
                .send()
                .await
                .map_err(|e| VimError::Unavailable(format!("{call}: {}", chain(&e))))?;
            let status = answer.status().as_u16();
            if status == 401 && !renew {
                renew = true;
                continue;
            }
            let text = answer.text().await.map_err(|e| {
                VimError::Unavailable(format!("{call}: reading the answer: {}", chain(&e)))
            })?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(Answer {
                call,
                status,
                body,
                text,
            });
        }
    }

    /// Servers carrying `tag`, every page.
    async fn list_servers(&self, tag: &str) -> Result<Vec<Value>, VimError> {
        let mut servers: Vec<Value> = Vec::new();
        let limit = LIST_PAGE_SIZE.to_string();
        for _ in 0..LIST_PAGES_MAX {
            let marker = servers.last().map(|s| string(&s["id"]));
            let mut query = vec![("tags", tag), ("limit", limit.as_str())];
            if let Some(marker) = &marker {
                query.push(("marker", marker));
            }
            let page = self
                .send(Api::Nova, Method::GET, "/servers/detail", &query, None)
                .await?
                .ok()?;
            let page = page["servers"].as_array().cloned().unwrap_or_default();
            let full = page.len() >= LIST_PAGE_SIZE;
            // Nova lets servers in its build queue through a tag filter: keep the tagged.
            // A server being destroyed is listed as DELETED for a moment: it is gone.
            servers.extend(page.into_iter().filter(|s| {
                s["tags"]
                    .as_array()
                    .is_none_or(|tags| tags.iter().any(|t| t == tag))
                    && plan::server_state(s) != ServerState::Gone
            }));
            if !full {
                return Ok(servers);
            }
        }
        Err(VimError::Failed(format!(
            "Nova GET /servers/detail listed more than {LIST_PAGES_MAX} pages"
        )))
    }

    /// The instance's servers (one, unless something made a second).
    async fn servers_of(&self, instance_id: &str) -> Result<Vec<Value>, VimError> {
        Ok(self
            .list_servers(&instance_tag(instance_id))
            .await?
            .into_iter()
            .filter(|s| plan::is_instance(s, instance_id))
            .collect())
    }

    /// The project's ports carrying `tag`.
    async fn ports_tagged(&self, tag: &str) -> Result<Vec<Value>, VimError> {
        let project_id = self.project_id().await?;
        let answer = self
            .send(
                Api::Neutron,
                Method::GET,
                "/ports",
                &[("tags", tag), ("project_id", &project_id)],
                None,
            )
            .await?
            .ok()?;
        Ok(answer["ports"].as_array().cloned().unwrap_or_default())
    }

    async fn tags_on_create(&self) -> Result<bool, VimError> {
        self.port_tags_on_create
            .get_or_try_init(|| async {
                let answer = self
                    .send(
                        Api::Neutron,
                        Method::GET,
                        "/extensions/tag-creation",
                        &[],
                        None,
                    )
                    .await?;
                match answer.status {
                    404 => Ok(false),
                    _ => answer.ok().map(|_| true),
                }
            })
            .await
            .copied()
    }

    /// The id of the Glance image named or identified by `image`, which must be active.
    async fn image_id(&self, image: &str) -> Result<String, VimError> {
        if plan::looks_like_id(image) {
            let answer = self
                .send(
                    Api::Glance,
                    Method::GET,
                    &format!("/images/{image}"),
                    &[],
                    None,
                )
                .await?;
            if answer.status != 404 {
                let found = answer.ok()?;
                return active_image(&found, image);
            }
        }
        let answer = self
            .send(
                Api::Glance,
                Method::GET,
                "/images",
                &[("name", image)],
                None,
            )
            .await?
            .ok()?;
        let images = answer["images"].as_array().cloned().unwrap_or_default();
        match images.as_slice() {
            [one] => active_image(one, image),
            [] => Err(VimError::Failed(format!(
                "Glance has no image named or with the id {image:?}"
            ))),
            many => Err(VimError::Failed(format!(
                "Glance has {} images named {image:?}: name one by its id",
                many.len()
            ))),
        }
    }

    /// The flavor of the VDU: the one it names (by name or id), else the one for its
    /// `nfv_compute`, made when missing (which needs the admin role).
    async fn flavor_id(&self, vdu: &events::spec::VduSpec) -> Result<String, VimError> {
        if let Some(flavor) = &vdu.flavor {
            return self
                .flavors()
                .await?
                .iter()
                .find(|f| f["id"] == flavor.as_str() || f["name"] == flavor.as_str())
                .map(|f| string(&f["id"]))
                .ok_or_else(|| {
                    VimError::Failed(format!(
                        "Nova has no flavor named or with the id {flavor:?}"
                    ))
                });
        }
        let Some(compute) = &vdu.nfv_compute else {
            return Err(VimError::Failed(format!(
                "VDU {} names no flavor and has no nfv_compute: give one of them",
                vdu.name
            )));
        };
        let name = flavor_name(compute);
        let named = |flavors: &[Value]| {
            flavors
                .iter()
                .find(|f| f["name"] == name.as_str())
                .map(|f| string(&f["id"]))
        };
        if let Some(id) = named(&self.flavors().await?) {
            return Ok(id);
        }
        let answer = self
            .send(
                Api::Nova,
                Method::POST,
                "/flavors",
                &[],
                Some(&plan::flavor_body(compute)),
            )
            .await?;
        if answer.status != 409 {
            return Ok(string(&answer.ok()?["flavor"]["id"]));
        }
        // Made by another deploy meanwhile.
        named(&self.flavors().await?).ok_or_else(|| {
            VimError::Failed(format!(
                "Nova POST /flavors answered 409 for {name:?}, and lists no flavor of that name"
            ))
        })
    }

    /// Every flavor the project may use (all of them for an admin).
    async fn flavors(&self) -> Result<Vec<Value>, VimError> {
        let answer = self
            .send(
                Api::Nova,
                Method::GET,
                "/flavors/detail",
                &[("is_public", "None")],
                None,
            )
            .await?
            .ok()?;
        Ok(answer["flavors"].as_array().cloned().unwrap_or_default())
    }

    /// The network of a connection point, by its VL's `network_name`.
    async fn network_id(&self, cp: &events::spec::ConnectionPoint) -> Result<String, VimError> {
        let Some(name) = &cp.network_name else {
            return Err(VimError::Failed(format!(
                "connection point {} links to no VL with a network_name",
                cp.name
            )));
        };
        let answer = self
            .send(
                Api::Neutron,
                Method::GET,
                "/networks",
                &[("name", name)],
                None,
            )
            .await?
            .ok()?;
        let networks = answer["networks"].as_array().cloned().unwrap_or_default();
        match networks.as_slice() {
            [one] => Ok(string(&one["id"])),
            [] => Err(VimError::Failed(format!(
                "Neutron has no network named {name:?} (connection point {})",
                cp.name
            ))),
            many => Err(VimError::Failed(format!(
                "Neutron has {} networks named {name:?} (connection point {})",
                many.len(),
                cp.name
            ))),
        }
    }

    /// The security groups of a connection point, ids as given and names looked up in the
    /// project.
    async fn security_group_ids(
        &self,
        cp: &events::spec::ConnectionPoint,
    ) -> Result<Vec<String>, VimError> {
        let mut ids = Vec::with_capacity(cp.security_groups.len());
        for group in &cp.security_groups {
            if plan::looks_like_id(group) {
                ids.push(group.clone());
                continue;
            }
            let project_id = self.project_id().await?;
            let answer = self
                .send(
                    Api::Neutron,
                    Method::GET,
                    "/security-groups",
                    &[("name", group), ("project_id", &project_id)],
                    None,
                )
                .await?
                .ok()?;
            let groups = answer["security_groups"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match groups.as_slice() {
                [one] => ids.push(string(&one["id"])),
                found => {
                    return Err(VimError::Failed(format!(
                        "Neutron has {} security groups named {group:?} in the project \
                         (connection point {}); expected one",
                        found.len(),
                        cp.name
                    )));
                }
            }
        }
        Ok(ids)
    }

    /// The server group of a placement policy in a VNF, found by name or made.
    async fn server_group_id(
        &self,
        vnf_id: &str,
        policy: &events::spec::PlacementPolicy,
    ) -> Result<String, VimError> {
        let name = plan::server_group_name(vnf_id, policy);
        let answer = self
            .send(Api::Nova, Method::GET, "/os-server-groups", &[], None)
            .await?
            .ok()?;
        if let Some(group) = answer["server_groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == name.as_str()))
        {
            return Ok(string(&group["id"]));
        }
        let made = self
            .send(
                Api::Nova,
                Method::POST,
                "/os-server-groups",
                &[],
                Some(&plan::server_group_body(vnf_id, policy)),
            )
            .await?
            .ok()?;
        Ok(string(&made["server_group"]["id"]))
    }

    /// The instance's ports, one per connection point, found by name or made.
    async fn ports(
        &self,
        request: &DeployRequest,
        vdu: &events::spec::VduSpec,
        tags: &[String],
    ) -> Result<Vec<String>, VimError> {
        let instance_id = &request.instance_id;
        let existing = self.ports_tagged(&instance_tag(instance_id)).await?;
        let with_tags = self.tags_on_create().await?;
        let mut ids = Vec::with_capacity(vdu.connection_points.len());
        for cp in &vdu.connection_points {
            let name = port_name(instance_id, &cp.name);
            if let Some(port) = existing.iter().find(|p| p["name"] == name.as_str()) {
                ids.push(string(&port["id"]));
                continue;
            }
            // Made by an earlier run whose tags were not put yet.
            let untagged = self
                .send(
                    Api::Neutron,
                    Method::GET,
                    "/ports",
                    &[("name", &name)],
                    None,
                )
                .await?
                .ok()?;
            let port_id = if let Some(port) = untagged["ports"].as_array().and_then(|p| p.first()) {
                string(&port["id"])
            } else {
                let inputs = plan::PortInputs {
                    cp,
                    network_id: self.network_id(cp).await?,
                    security_group_ids: self.security_group_ids(cp).await?,
                };
                let body = plan::port_body(
                    &inputs,
                    &request.vnf_id,
                    &request.vdu,
                    instance_id,
                    tags,
                    with_tags,
                )
                .map_err(VimError::Failed)?;
                let made = self
                    .send(Api::Neutron, Method::POST, "/ports", &[], Some(&body))
                    .await?
                    .ok()?;
                string(&made["port"]["id"])
            };
            if !with_tags {
                self.send(
                    Api::Neutron,
                    Method::PUT,
                    &format!("/ports/{port_id}/tags"),
                    &[],
                    Some(&json!({"tags": plan::port_tags(cp, tags)})),
                )
                .await?
                .ok()?;
            }
            ids.push(port_id);
        }
        Ok(ids)
    }

    /// Makes the instance's ports and server; answers the server's id.
    async fn create(
        &self,
        request: &DeployRequest,
        vdu: &events::spec::VduSpec,
        tags: &[String],
    ) -> Result<String, VimError> {
        let image = vdu
            .image
            .as_deref()
            .ok_or_else(|| VimError::Failed(format!("VDU {} names no image", vdu.name)))?;
        let image_id = self.image_id(image).await?;
        let flavor_id = self.flavor_id(vdu).await?;
        if request.placement.len() > 1 {
            tracing::warn!(
                vnf_id = %request.vnf_id,
                vdu = %request.vdu,
                policy = %request.placement[0].name,
                "Several placement policies target the VDU; Nova takes one server group, the first."
            );
        }
        let server_group_id = match request.placement.first() {
            Some(policy) => Some(self.server_group_id(&request.vnf_id, policy).await?),
            None => None,
        };
        let port_ids = self.ports(request, vdu, tags).await?;
        let body = plan::server_body(&plan::ServerInputs {
            vnf_id: &request.vnf_id,
            vdu: &request.vdu,
            instance_id: &request.instance_id,
            image_id,
            flavor_id,
            port_ids,
            availability_zone: vdu.availability_zone.as_deref(),
            metadata: &vdu.metadata,
            key_name: vdu.key_name.as_deref(),
            user_data: request.user_data.as_deref(),
            config_drive: vdu.config_drive,
            server_group_id,
            tags,
        })
        .map_err(VimError::Failed)?;
        let made = self
            .send(Api::Nova, Method::POST, "/servers", &[], Some(&body))
            .await?
            .ok()?;
        Ok(string(&made["server"]["id"]))
    }

    /// The server as Nova shows it; `None` when Nova knows no such server.
    async fn server(&self, server_id: &str) -> Result<Option<Value>, VimError> {
        let path = format!("/servers/{server_id}");
        let answer = self.send(Api::Nova, Method::GET, &path, &[], None).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        Ok(Some(answer.ok()?["server"].take()))
    }

    /// Waits until the server is ACTIVE; ERROR fails with Nova's fault.
    async fn wait_active(&self, server_id: &str, instance_id: &str) -> Result<(), VimError> {
        let deadline = tokio::time::Instant::now() + SERVER_ACTIVE_TIMEOUT;
        loop {
            let Some(server) = self.server(server_id).await? else {
                return Err(VimError::Failed(format!(
                    "server {server_id} of instance {instance_id} vanished while building"
                )));
            };
            match plan::server_state(&server) {
                ServerState::Active => return Ok(()),
                ServerState::Build => {}
                ServerState::Error { fault } => {
                    let text = format!(
                        "Nova put server {server_id} of instance {instance_id} in ERROR: {fault}"
                    );
                    return Err(if fault.contains("No valid host") {
                        VimError::Exhausted(text)
                    } else {
                        VimError::Failed(text)
                    });
                }
                other => {
                    return Err(VimError::Failed(format!(
                        "server {server_id} of instance {instance_id} went {other:?} while building"
                    )));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(VimError::Failed(format!(
                    "server {server_id} of instance {instance_id} still BUILD after {}s",
                    SERVER_ACTIVE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(SERVER_POLL_PERIOD).await;
        }
    }

    async fn deploy(&self, request: &DeployRequest) -> Result<Deployed, VimError> {
        let vdu = request.vdu_spec.as_ref().ok_or_else(|| {
            VimError::Failed(format!(
                "VNF {} records no VNFD for VDU {}: nothing says what to boot",
                request.vnf_id, request.vdu
            ))
        })?;
        let tags = plan::tags(&request.vnf_id, &request.instance_id).map_err(VimError::Failed)?;
        let server_id = match self.servers_of(&request.instance_id).await?.first() {
            Some(server) => string(&server["id"]),
            None => self.create(request, vdu, &tags).await?,
        };
        self.wait_active(&server_id, &request.instance_id).await?;
        let mgmt_ip = self
            .mgmt_ip_of(&request.instance_id)
            .await?
            .ok_or_else(|| {
                VimError::Failed(format!(
                    "instance {} is ACTIVE but none of its ports has an IPv4 address",
                    request.instance_id
                ))
            })?;
        Ok(Deployed {
            instance_id: request.instance_id.clone(),
            mgmt_ip,
        })
    }

    async fn mgmt_ip_of(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        let ports = self.ports_tagged(&instance_tag(instance_id)).await?;
        Ok(plan::mgmt_ip(&ports))
    }

    /// Deletes the instance's servers, waits until they are gone, then deletes its ports.
    async fn remove(&self, instance_id: &str) -> Result<(), VimError> {
        let servers = self.servers_of(instance_id).await?;
        for server in &servers {
            let id = string(&server["id"]);
            let answer = self
                .send(
                    Api::Nova,
                    Method::DELETE,
                    &format!("/servers/{id}"),
                    &[],
                    None,
                )
                .await?;
            if answer.status != 404 {
                answer.ok()?;
            }
        }
        for server in &servers {
            self.wait_gone(&string(&server["id"]), instance_id).await?;
        }
        let removed: Vec<String> = servers.iter().map(|s| string(&s["id"])).collect();
        for group in servers
            .iter()
            .filter_map(|s| s["metadata"][plan::META_SERVER_GROUP].as_str())
        {
            self.remove_group_if_empty(group, &removed).await?;
        }
        for port in self.ports_tagged(&instance_tag(instance_id)).await? {
            let id = string(&port["id"]);
            let answer = self
                .send(
                    Api::Neutron,
                    Method::DELETE,
                    &format!("/ports/{id}"),
                    &[],
                    None,
                )
                .await?;
            if answer.status != 404 {
                answer.ok()?;
            }
        }
        Ok(())
    }

    /// Deletes the server group vnfm made for a placement policy once no server is in it
    /// (the VNF's last instance of the policy's VDUs is gone; a later deploy makes it again).
    /// `removed`: the servers just deleted, which Nova may list as members a moment longer.
    async fn remove_group_if_empty(
        &self,
        group_id: &str,
        removed: &[String],
    ) -> Result<(), VimError> {
        let path = format!("/os-server-groups/{group_id}");
        let answer = self.send(Api::Nova, Method::GET, &path, &[], None).await?;
        if answer.status == 404 {
            return Ok(());
        }
        let group = answer.ok()?;
        let empty = group["server_group"]["members"]
            .as_array()
            .is_none_or(|members| {
                members
                    .iter()
                    .all(|m| removed.iter().any(|r| m == r.as_str()))
            });
        let ours = group["server_group"]["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("vnfm-"));
        if empty && ours {
            let answer = self
                .send(Api::Nova, Method::DELETE, &path, &[], None)
                .await?;
            if answer.status != 404 {
                answer.ok()?;
            }
        }
        Ok(())
    }

    async fn wait_gone(&self, server_id: &str, instance_id: &str) -> Result<(), VimError> {
        let deadline = tokio::time::Instant::now() + SERVER_GONE_TIMEOUT;
        loop {
            match self.server(server_id).await? {
                None => return Ok(()),
                Some(server) if plan::server_state(&server) == ServerState::Gone => return Ok(()),
                Some(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(VimError::Failed(format!(
                    "server {server_id} of instance {instance_id} still there {}s after its delete",
                    SERVER_GONE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(SERVER_POLL_PERIOD).await;
        }
    }
}

#[async_trait::async_trait]
impl Vim for OpenStackVim {
    async fn deploy_vdu(&self, request: &DeployRequest) -> Result<Deployed, VimError> {
        match retrying(|| self.deploy(request)).await {
            Ok(deployed) => Ok(deployed),
            Err(failure) => match retrying(|| self.remove(&request.instance_id)).await {
                Ok(()) => Err(failure),
                Err(cleanup) => Err(VimError::Failed(format!(
                    "{}; removing the instance's server and ports failed too: {}",
                    reason(&failure),
                    reason(&cleanup)
                ))),
            },
        }
    }

    async fn delete_vdu(&self, instance_id: &str) -> Result<(), VimError> {
        retrying(|| self.remove(instance_id)).await
    }

    /// Tacker's legacy update pushed the config through a management driver into the VM;
    /// vnfm has none for OpenStack, so it records the config's SHA-256 as the server's
    /// metadata `vnfm_config_digest`: what an agent in the guest (or an operator) can compare
    /// with the VNF's config. Giving the same config again writes the same digest.
    async fn apply_config(&self, request: &ConfigRequest) -> Result<(), VimError> {
        retrying(|| self.configure(request)).await
    }

    async fn mgmt_ip(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError> {
        retrying(|| async {
            if self.servers_of(instance_id).await?.is_empty() {
                return Ok(None);
            }
            self.mgmt_ip_of(instance_id).await
        })
        .await
    }
}

impl OpenStackVim {
    /// Records the config's digest on every instance's server.
    async fn configure(&self, request: &ConfigRequest) -> Result<(), VimError> {
        let digest = config_digest(&request.config);
        for instance_id in &request.instance_ids {
            let servers = self.servers_of(instance_id).await?;
            let Some(server) = servers.first() else {
                return Err(VimError::Failed(format!(
                    "instance {instance_id} of VNF {} has no server to take the config",
                    request.vnf_id
                )));
            };
            let id = string(&server["id"]);
            self.send(
                Api::Nova,
                Method::PUT,
                &format!("/servers/{id}/metadata/{META_CONFIG_DIGEST}"),
                &[],
                Some(&json!({"meta": {META_CONFIG_DIGEST: digest}})),
            )
            .await?
            .ok()?;
        }
        Ok(())
    }
}

/// Runs `attempt`, and runs it again after each transient failure
/// ([`VimError::Unavailable`]) once [`plan::retry_delay`] has passed, until the retries are
/// spent; any other answer ends it at once. `attempt` must be safe to repeat (the driver's
/// operations look up what an earlier try made before they make anything).
async fn retrying<T, F, Fut>(attempt: F) -> Result<T, VimError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, VimError>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Err(VimError::Unavailable(why)) => {
                retry += 1;
                let Some(delay) = plan::retry_delay(retry) else {
                    return Err(VimError::Unavailable(format!(
                        "{why} (still so after {} retries)",
                        plan::TRANSIENT_RETRIES
                    )));
                };
                tracing::warn!(
                    retry,
                    delay_s = delay.as_secs(),
                    reason = %why,
                    "The VIM is unavailable for now; trying again."
                );
                tokio::time::sleep(delay).await;
            }
            answer => return answer,
        }
    }
}

/// The SHA-256 of a config as the log holds it, in hex.
pub fn config_digest(config: &Value) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// What went wrong, without the kind's prefix.
fn reason(error: &VimError) -> &str {
    match error {
        VimError::Failed(why) | VimError::Exhausted(why) | VimError::Unavailable(why) => why,
    }
}

/// An error with its causes (reqwest's own text hides why a request failed: refused,
/// timed out...).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn active_image(image: &Value, asked: &str) -> Result<String, VimError> {
    match image["status"].as_str() {
        Some("active") => Ok(string(&image["id"])),
        status => Err(VimError::Failed(format!(
            "Glance image {asked:?} is {}, not active",
            status.unwrap_or("of no status")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password_or_secret() {
        let access = OpenStackAccess {
            auth_url: "http://127.0.0.1:5000/v3".into(),
            credentials: Credentials::Password {
                username: "admin".into(),
                password: "hunter2-password".into(),
            },
            project_name: "admin".into(),
            project_domain_name: "Default".into(),
            user_domain_name: "Default".into(),
            region_name: None,
            cert_verify: true,
        };
        let vim = OpenStackVim::new(access.clone()).expect("builds");
        for shown in [format!("{access:?}"), format!("{vim:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("admin"), "{shown}");
        }
        let application = OpenStackAccess {
            credentials: Credentials::ApplicationCredential {
                id: "app-1".into(),
                secret: "hunter2-secret".into(),
            },
            ..access
        };
        assert!(!format!("{application:?}").contains("hunter2"));
    }

    #[test]
    fn a_config_digest_is_its_sha256_and_stable() {
        let config = json!({"vdus": {"vdu1": {"config": {"firewall": "allow"}}}});
        let digest = config_digest(&config);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, config_digest(&config.clone()));
        assert_ne!(digest, config_digest(&json!({})));
    }

    /// An attempt that answers `Unavailable` `failures` times, then `last`; counts its runs.
    fn flaky(
        failures: usize,
        last: fn() -> Result<u32, VimError>,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        impl Fn() -> std::future::Ready<Result<u32, VimError>>,
    ) {
        use std::sync::atomic::Ordering;
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let attempt = move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if run < failures {
                Err(VimError::Unavailable(format!(
                    "Nova GET /servers: timed out ({run})"
                )))
            } else {
                last()
            })
        };
        (runs, attempt)
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_tried_again_after_the_backoff() {
        let (runs, attempt) = flaky(2, || Ok(7));
        let started = tokio::time::Instant::now();
        assert_eq!(retrying(attempt).await.unwrap(), 7);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_secs(2 + 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_lasts_ends_the_retries_with_its_reason() {
        let (runs, attempt) = flaky(usize::MAX, || Ok(7));
        let started = tokio::time::Instant::now();
        let Err(VimError::Unavailable(why)) = retrying(attempt).await else {
            panic!("expected the failure to come back");
        };
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 5);
        assert_eq!(started.elapsed(), Duration::from_secs(2 + 4 + 8 + 16));
        assert!(
            why.contains("timed out (4)") && why.contains("after 4 retries"),
            "{why}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn any_other_failure_is_not_tried_again() {
        let (runs, attempt) = flaky(0, || Err(VimError::Failed("Nova answered 400".into())));
        assert!(matches!(retrying(attempt).await, Err(VimError::Failed(_))));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
