//! `/v1.0/vnfs`: creating, listing, showing, updating (a new config), scaling and deleting
//! VNFs, and listing their resources. Every change is a request recorded on the VNF's subject; conductors carry it out.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use events::envelope::Cause;
use events::names::AggregateKind;
use events::secrets;
use events::spec::VnfdSpec;
use events::store::CommandError;
use events::vnf::{
    ATTRIBUTES_PATH, PLACEMENT_ATTR_PATH, ScaleDirection, USER_DATA_PATH, Vnf, VnfCommand,
    VnfDetails, VnfError, VnfStatus,
};
use events::vnfd::{self, TemplateSource, VnfdDescriptor};
use events::vnfd_use::take_into_use;
use projector::table::VnfRow;
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::input::{self, ListQuery};
use crate::{
    Caller, Gateway, ListParams, Owned, PathId, alarms, foreign, render, unique, vims, visible,
    vnfds,
};

/// Characters of the VNF id in the name of a VNFD given inline (`tmpl-<prefix>`).
const INLINE_VNFD_NAME_ID_CHARS: usize = 8;

/// The points of a VNF create between the gateway's appends, in order, at which a test kills
/// the gateway (`GatewayConfig::stop_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateStopPoint {
    /// The inline VNFD (`vnfd_template`) is onboarded; nothing else is recorded.
    AfterInlineVnfd,
    /// The VNFD is checked; nothing is recorded on the VNF's subject.
    BeforeCreate,
    /// The VNF's create is recorded; the VNFD's use by it is not, and nothing is answered.
    AfterCreate,
}

impl CreateStopPoint {
    pub const ALL: [CreateStopPoint; 3] = [
        CreateStopPoint::AfterInlineVnfd,
        CreateStopPoint::BeforeCreate,
        CreateStopPoint::AfterCreate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CreateStopPoint::AfterInlineVnfd => "after-inline-vnfd",
            CreateStopPoint::BeforeCreate => "before-create",
            CreateStopPoint::AfterCreate => "after-create",
        }
    }

    /// Hangs this request for good if `self` is the configured stop point: the gateway's
    /// process is to be killed there, as a crash between two appends would leave it.
    async fn reached(self, gateway: &Gateway) {
        if gateway.config().stop_at == Some(self) {
            tracing::warn!(
                point = self.as_str(),
                "Stop point reached; this create goes no further."
            );
            std::future::pending::<()>().await;
        }
    }
}

impl std::str::FromStr for CreateStopPoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let known = CreateStopPoint::ALL.map(CreateStopPoint::as_str);
        CreateStopPoint::ALL
            .into_iter()
            .find(|point| point.as_str() == text)
            .ok_or_else(|| format!("unknown stop point {text:?}; one of {}", known.join(", ")))
    }
}

/// `POST /v1.0/vnfs`: records the create request; 201 with the VNF in `PENDING_CREATE`.
///
/// The create is one decision, one append on the VNF's subject (with the VNFD's spec); the
/// VNFD's use by the VNF is finished from it, idempotently, by a conductor (the gateway only
/// records it early, see [`use_vnfd`]). A gateway killed between its appends leaves at worst
/// an unused inline VNFD, never a VNFD used by a VNF that does not exist. The VNF's name is
/// claimed (`unique`) just before the append, after every check that could refuse the create.
pub(crate) async fn create(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = input::json_object(&headers, body).await?;
    let vnf = input::root_object(&body, "vnf")?;
    let name = input::required_string(vnf, "name", "vnf")?;
    let description = input::optional_string(vnf, "description", "vnf")?;
    let vim_id = input::optional_string(vnf, "vim_id", "vnf")?;
    let vim_name = input::optional_string(vnf, "vim_name", "vnf")?;
    let tenant_id = caller.tenant_for(input::optional_string(vnf, "tenant_id", "vnf")?)?;
    // The named VIM, else the project's default (`local` when it has none).
    let vim_id = vims::for_new_vnf(&gateway, &caller, &tenant_id, vim_id, vim_name).await?;
    let mut attributes = input::object_or_empty(vnf, "attributes", "vnf")?;
    let placement_attr = input::object_or_empty(vnf, "placement_attr", "vnf")?;
    let vnfd_id = input::optional_string(vnf, "vnfd_id", "vnf")?;
    let template = vnf.get("vnfd_template").filter(|t| !t.is_null());

    let vnf_id = uuid::Uuid::new_v4().to_string();
    unique::not_in_use(&gateway, AggregateKind::Vnf, &tenant_id, &name, &vnf_id)?;
    let request = Gateway::user_request(&caller);
    let step = |name: &str| {
        Cause::follow_up(
            request.actor.clone(),
            &request.correlation_id,
            &request.command_id,
            name,
        )
    };
    // Resolved against the VNFD's inputs below; sealed with the other attributes.
    let param_values = attributes.get("param_values").cloned();
    // Each VDU's user_data (VDU name -> text), from the VNFD's template; sealed below.
    let user_data: BTreeMap<String, String>;
    let descriptor = match (vnfd_id, template) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_input(
                "vnf.vnfd_id, vnf.vnfd_template: give one, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid_input(
                "vnf.vnfd_id: required (or vnf.vnfd_template)",
            ));
        }
        (Some(vnfd_id), None) => {
            let mut descriptor = live_vnfd(&gateway, &caller, &vnfd_id).await?;
            // Opened for every create, not only one with parameters: the template alone
            // holds the VDUs' user_data (the spec leaves it out).
            let text = vnfds::template_text(&gateway, &descriptor).await?;
            if with_parameters(&descriptor.spec) {
                let resolved = resolved_vnf(&text, param_values.as_ref())?;
                descriptor.spec = resolved.spec;
                user_data = resolved.user_data;
            } else {
                user_data = resolved_vnf(&text, None)?.user_data;
            }
            gateway.within_quota(&tenant_id, |quotas, usage| {
                quotas.create(&tenant_id, &descriptor.spec, usage)
            })?;
            descriptor
        }
        (None, Some(template)) => {
            let parsed = input::parse_template(template, "vnf.vnfd_template")?;
            let spec = if with_parameters(&parsed.spec) {
                let resolved = resolved_vnf(&parsed.template_yaml, param_values.as_ref())?;
                user_data = resolved.user_data;
                resolved.spec
            } else {
                user_data = parsed.user_data.clone();
                parsed.spec.clone()
            };
            gateway.within_quota(&tenant_id, |quotas, usage| {
                quotas.onboard(&tenant_id, &parsed.spec, usage)?;
                quotas.create(&tenant_id, &spec, usage)
            })?;
            let id_prefix: String = vnf_id.chars().take(INLINE_VNFD_NAME_ID_CHARS).collect();
            let vnfd_id = uuid::Uuid::new_v4().to_string();
            let (template_yaml, key) =
                vnfds::seal_template(&gateway, &vnfd_id, parsed.template_yaml).await?;
            let descriptor = VnfdDescriptor {
                vnfd_id,
                name: format!("tmpl-{id_prefix}"),
                description: parsed.spec.description.clone().unwrap_or_default(),
                tenant_id: tenant_id.clone(),
                template_source: TemplateSource::Inline,
                template_yaml,
                spec: parsed.spec,
            };
            let onboard = step("onboard-inline-vnfd");
            vnfds::onboard(&gateway, descriptor.clone(), &key, &onboard).await?;
            CreateStopPoint::AfterInlineVnfd.reached(&gateway).await;
            VnfdDescriptor { spec, ..descriptor }
        }
    };
    let vnfd_id = descriptor.vnfd_id.clone();
    unique::claim(&gateway, AggregateKind::Vnf, &tenant_id, &name, &vnf_id).await?;

    CreateStopPoint::BeforeCreate.reached(&gateway).await;
    // Sealed below with the other secrets (its name holds "key"); the show makes the alarm
    // URLs of it.
    if !descriptor.spec.alarm_triggers.is_empty()
        && let Some(attributes) = attributes.as_object_mut()
    {
        attributes.insert(
            alarms::ALARM_KEY_FIELD.to_owned(),
            Value::String(alarms::new_alarm_key()?),
        );
    }
    let key = if secrets::holds_secrets(&attributes)
        || secrets::holds_secrets(&placement_attr)
        || !user_data.is_empty()
    {
        Some(gateway.data_key(AggregateKind::Vnf, &vnf_id).await?)
    } else {
        None
    };
    let seal = |document: Value, path: &str| match &key {
        Some(key) => secrets::seal_secrets(&document, key, path)
            .map_err(|e| ApiError::internal("sealing a VNF's secrets", &e)),
        None => Ok(document),
    };
    let attributes = seal(attributes, ATTRIBUTES_PATH)?;
    let placement_attr = seal(placement_attr, PLACEMENT_ATTR_PATH)?;
    // Sealed whole: the conductor that deploys a VDU opens it; the API never shows it.
    let user_data = match &key {
        Some(key) if !user_data.is_empty() => Some(Box::new(
            secrets::seal(&json!(user_data), key, USER_DATA_PATH)
                .map_err(|e| ApiError::internal("sealing a VNF's user_data", &e))?,
        )),
        _ => None,
    };
    let details = VnfDetails {
        vnf_id: vnf_id.clone(),
        name,
        description: description.unwrap_or(descriptor.description),
        tenant_id,
        vnfd_id: vnfd_id.clone(),
        vim_id,
        attributes,
        placement_attr,
        user_data,
    };
    let command = VnfCommand::Create {
        details: Box::new(details),
        vnfd: descriptor.spec,
        operation_id: uuid::Uuid::new_v4().to_string(),
    };
    let create = step("create-vnf");
    gateway
        .log()
        .execute::<Vnf>(&vnf_id, command, &(), &create)
        .await
        .map_err(|e| command_error(&vnf_id, e))?;
    CreateStopPoint::AfterCreate.reached(&gateway).await;
    use_vnfd(&gateway, &vnfd_id, &vnf_id, &create).await;
    tracing::info!(vnf_id = %vnf_id, vnfd_id = %vnfd_id, actor = %create.actor, "VNF create requested.");
    let vnf = gateway
        .refresh_vnf(&vnf_id)
        .await?
        .as_ref()
        .and_then(|row| {
            let mut vnf = render::vnf_json(row, key.as_ref())?;
            alarms::show_alarm_urls(&mut vnf, row, &public_base(&headers));
            Some(vnf)
        })
        .ok_or_else(|| {
            ApiError::internal(
                "reading back a created VNF",
                &format!("VNF {vnf_id} is not on the log after its append"),
            )
        })?;
    Ok((StatusCode::CREATED, Json(json!({ "vnf": vnf }))))
}

/// True when a VNF made from `spec` needs its template resolved: the VNFD has inputs. A
/// VNFD without them ignores `param_values`, as Tacker did (they stay, sealed, in the VNF's
/// attributes).
fn with_parameters(spec: &VnfdSpec) -> bool {
    !spec.inputs.is_empty()
}

/// The spec and VDUs' user_data of a VNF made from the template `template_yaml` with
/// `param_values`, or 400 naming the parameter (or the template's field) at fault.
fn resolved_vnf(
    template_yaml: &str,
    param_values: Option<&Value>,
) -> Result<::vnfd::ResolvedVnf, ApiError> {
    const LOCATION: &str = "vnf.attributes.param_values";
    ::vnfd::resolve_vnf(template_yaml, param_values).map_err(|e| match e {
        ::vnfd::VnfdError::Parameter { name, message } if name.is_empty() => {
            ApiError::invalid_input(format!("{LOCATION}: {message}"))
        }
        ::vnfd::VnfdError::Parameter { name, message } => {
            ApiError::invalid_input(format!("{LOCATION}.{name}: {message}"))
        }
        other => ApiError::invalid_vnfd(&format!("{LOCATION}, in the VNFD"), &other),
    })
}

/// The descriptor of a VNFD a VNF can be created from (onboarded, not deleted, of a project
/// the caller sees), or 404. From
/// the gateway's row (mirror, table, else the log, so a VNFD onboarded a moment ago is found):
/// a VNFD deleted a moment ago may still look live here, and then the conductor fails the
/// create when it cannot take the VNFD into use.
async fn live_vnfd(
    gateway: &Gateway,
    caller: &Principal,
    vnfd_id: &str,
) -> Result<VnfdDescriptor, ApiError> {
    if !input::is_resource_id(vnfd_id) {
        return Err(ApiError::vnfd_not_found(vnfd_id));
    }
    gateway
        .vnfd_row(vnfd_id)
        .await?
        .filter(|row| visible(caller, row))
        .and_then(|row| row.state.live().cloned())
        .ok_or_else(|| ApiError::vnfd_not_found(vnfd_id))
}

/// Records at once that a VNF whose create is recorded under `create` uses its VNFD, so that
/// the VNFD refuses deletion from the moment the create is answered.
///
/// Only an early copy of the conductor's step: the conductor records the same use (same
/// command id, see [`events::vnfd::use_cause`]) before it deploys anything, and fails the
/// create if the VNFD is gone. So a crash before this, or a refusal here, leaves nothing to
/// repair, and the create stands.
async fn use_vnfd(gateway: &Gateway, vnfd_id: &str, vnf_id: &str, create: &Cause) {
    let cause = vnfd::use_cause(
        create.actor.clone(),
        &create.correlation_id,
        &create.command_id,
    );
    if let Err(e) = take_into_use(gateway.log(), vnfd_id, vnf_id, &cause).await {
        tracing::warn!(vnfd_id, vnf_id, error = %e, "VNFD use not recorded here; the conductor records it before deploying, or fails the create.");
    }
}

/// `GET /v1.0/vnfs`: every VNF, or those matching the filters (`name`, `status`, `vnfd_id`,
/// `id`, or any other field), sorted and paged as asked ([`ListQuery::answer`]). `fields` cuts
/// each to those keys.
pub(crate) async fn list(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    ListParams(query): ListParams,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(answer(&gateway, &caller, &query).await?))
}

/// The answer to a list of VNFs (see [`crate::list_answer`]).
async fn answer(
    gateway: &Gateway,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Value, ApiError> {
    crate::list_answer(
        caller,
        query,
        "vnfs",
        gateway.vnf_mirror(),
        |row| row.state.exists(),
        |id| async move { gateway.vnf_row(&id).await },
        |row| row.state.details.as_ref().map(|d| d.vnf_id.clone()),
        // A list shows no secret: only a show opens them.
        |row| render::vnf_json(row, None),
    )
    .await
}

/// `GET /v1.0/vnfs/{id}`. Never 404 for a VNF whose create was acknowledged: the row is
/// folded from the log when the tables lag.
pub(crate) async fn show(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnf_id): PathId,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let row = existing(&gateway, &caller, &vnf_id).await?;
    Ok(Json(
        json!({ "vnf": shown(&gateway, &caller, row, &headers).await? }),
    ))
}

/// The base of the URLs a response names: `http://` and the `Host` the request came in
/// under (which the guard checked is one the gateway answers to).
fn public_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    format!("http://{host}")
}

/// A VNF's row as a show answers it to `caller`: its secrets opened only for who may see them
/// (its alarm key as one alarm URL per trigger), and its monitor states.
async fn shown(
    gateway: &Gateway,
    caller: &Principal,
    row: VnfRow,
    headers: &HeaderMap,
) -> Result<Value, ApiError> {
    let vnf_id = row
        .state
        .details
        .as_ref()
        .map(|details| details.vnf_id.clone())
        .unwrap_or_default();
    let key = match &row.state.details {
        Some(details) => {
            let sealed = secrets::holds_sealed(&details.attributes)
                || secrets::holds_sealed(&details.placement_attr);
            gateway
                .secrets_key(
                    caller,
                    &details.tenant_id,
                    AggregateKind::Vnf,
                    &vnf_id,
                    sealed,
                )
                .await?
        }
        None => None,
    };
    let mut vnf =
        render::vnf_json(&row, key.as_ref()).ok_or_else(|| ApiError::vnf_not_found(&vnf_id))?;
    alarms::show_alarm_urls(&mut vnf, &row, &public_base(headers));
    vnf["monitor"] = render::monitor_json(&row, &gateway.monitor_states(&vnf_id));
    Ok(vnf)
}

/// `PUT /v1.0/vnfs/{id}` with `{"vnf": {"attributes": {"config": CONFIG}}}` (`tacker vnf-update
/// --config-file`/`--config`): records the new config, sealed as the VNF's other secrets; 200
/// with the VNF in `PENDING_UPDATE`. A conductor hands the config to the VIM, and the VNF is
/// `ACTIVE` again. Only an `ACTIVE` VNF takes an update (409 otherwise).
pub(crate) async fn update(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnf_id): PathId,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    not_foreign(&gateway, &caller, &vnf_id).await?;
    let body = input::json_object(&headers, body).await?;
    let vnf = input::root_object(&body, "vnf")?;
    if let Some(other) = vnf.keys().find(|key| *key != "attributes") {
        return Err(ApiError::invalid_input(format!(
            "vnf.{other}: an update changes only vnf.attributes.config"
        )));
    }
    let attributes = input::required_object(vnf, "attributes", "vnf")?;
    if let Some(other) = attributes.keys().find(|key| *key != "config") {
        return Err(ApiError::invalid_input(format!(
            "vnf.attributes.{other}: an update changes only vnf.attributes.config"
        )));
    }
    let config = match attributes.get("config") {
        Some(config @ (Value::Object(_) | Value::String(_))) if config != &json!({}) => {
            config.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid_input(
                "vnf.attributes.config: must be a non-empty JSON object or YAML text",
            ));
        }
        None => {
            return Err(ApiError::invalid_input(
                "vnf.attributes.config: required, the VNF's new config",
            ));
        }
    };
    let key = gateway.data_key(AggregateKind::Vnf, &vnf_id).await?;
    let sealed = secrets::seal_secrets(&json!({ "config": config }), &key, ATTRIBUTES_PATH)
        .map_err(|e| ApiError::internal("sealing a VNF's config", &e))?;
    let command = VnfCommand::Update {
        operation_id: uuid::Uuid::new_v4().to_string(),
        config: sealed["config"].clone(),
    };
    gateway
        .log()
        .execute::<Vnf>(&vnf_id, command, &(), &Gateway::user_request(&caller))
        .await
        .map_err(|e| command_error(&vnf_id, e))?;
    tracing::info!(vnf_id = %vnf_id, user = %caller.user_id, project = %caller.project_id, "VNF update requested.");
    let row = gateway
        .refresh_vnf(&vnf_id)
        .await?
        .ok_or_else(|| ApiError::vnf_not_found(&vnf_id))?;
    Ok(Json(
        json!({ "vnf": shown(&gateway, &caller, row, &headers).await? }),
    ))
}

/// The row of a VNF that exists in a project the caller sees, or 404.
async fn existing(gateway: &Gateway, caller: &Principal, vnf_id: &str) -> Result<VnfRow, ApiError> {
    if !input::is_resource_id(vnf_id) {
        return Err(ApiError::vnf_not_found(vnf_id));
    }
    gateway
        .vnf_row(vnf_id)
        .await?
        .filter(|row| row.state.exists() && visible(caller, row))
        .ok_or_else(|| ApiError::vnf_not_found(vnf_id))
}

/// `DELETE /v1.0/vnfs/{id}`: records the delete request; 204. The VNF shows `PENDING_DELETE`
/// until a conductor has removed it. A body (`--force`) is accepted and ignored.
pub(crate) async fn delete(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnf_id): PathId,
) -> Result<StatusCode, ApiError> {
    not_foreign(&gateway, &caller, &vnf_id).await?;
    let command = VnfCommand::Delete {
        operation_id: uuid::Uuid::new_v4().to_string(),
    };
    gateway
        .log()
        .execute::<Vnf>(&vnf_id, command, &(), &Gateway::user_request(&caller))
        .await
        .map_err(|e| command_error(&vnf_id, e))?;
    tracing::info!(vnf_id = %vnf_id, user = %caller.user_id, project = %caller.project_id, "VNF delete requested.");
    gateway.refresh_vnf(&vnf_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0/vnfs/{id}/actions` with `{"scale": {"type": "out" | "in", "policy": NAME}}`:
/// records the scale request; 201 with `{}`. python-tackerclient ignores the answer's body
/// but parses it as JSON, so it must be JSON.
pub(crate) async fn action(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnf_id): PathId,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    not_foreign(&gateway, &caller, &vnf_id).await?;
    let body = input::json_object(&headers, body).await?;
    let Some(scale) = body.get("scale") else {
        let given: Vec<&String> = body
            .as_object()
            .map(Map::keys)
            .into_iter()
            .flatten()
            .collect();
        return Err(ApiError::invalid_input(format!(
            "scale: required; the only action is scale (given: {given:?})"
        )));
    };
    let scale = scale
        .as_object()
        .ok_or_else(|| ApiError::invalid_input("scale: must be a JSON object"))?;
    let direction = match input::required_string(scale, "type", "scale")?.as_str() {
        "out" => ScaleDirection::Out,
        "in" => ScaleDirection::In,
        other => {
            return Err(ApiError::invalid_input(format!(
                "scale.type: must be \"out\" or \"in\", not {other:?}"
            )));
        }
    };
    let policy = input::required_string(scale, "policy", "scale")?;
    if direction == ScaleDirection::Out {
        let row = existing(&gateway, &caller, &vnf_id).await?;
        let vnf = &row.state;
        if let (Some(project), Some(scaling)) = (
            vnf.tenant_id(),
            vnf.vnfd
                .as_ref()
                .and_then(|spec| spec.scaling_policy(&policy)),
        ) {
            gateway.within_quota(project, |quotas, usage| {
                quotas.scale_out(project, scaling, usage)
            })?;
        }
    }
    let command = VnfCommand::Scale {
        operation_id: uuid::Uuid::new_v4().to_string(),
        policy: policy.clone(),
        direction,
        at: time::OffsetDateTime::now_utc(),
    };
    gateway
        .log()
        .execute::<Vnf>(&vnf_id, command, &(), &Gateway::user_request(&caller))
        .await
        .map_err(|e| command_error(&vnf_id, e))?;
    tracing::info!(vnf_id = %vnf_id, policy = %policy, direction = direction.as_str(), user = %caller.user_id, project = %caller.project_id, "VNF scale requested.");
    gateway.refresh_vnf(&vnf_id).await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

/// `GET /v1.0/vnfs/{id}/resources`: one `OS::Nova::Server` per VDU instance, only while the
/// VNF is `ACTIVE` (Tacker refused otherwise).
pub(crate) async fn resources(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnf_id): PathId,
) -> Result<Json<Value>, ApiError> {
    let row = existing(&gateway, &caller, &vnf_id).await?;
    let status = row.state.status.unwrap_or(VnfStatus::Error);
    if status != VnfStatus::Active {
        return Err(ApiError::conflict(
            "VNFInactive",
            format!(
                "VNF {vnf_id} is {}: its resources are listed only while it is ACTIVE",
                status.as_str()
            ),
        ));
    }
    let resources: Vec<Value> = row
        .state
        .instances
        .iter()
        .map(|instance| {
            json!({
                "name": instance.vdu,
                "type": render::VDU_RESOURCE_TYPE,
                "id": instance.instance_id,
            })
        })
        .collect();
    Ok(Json(json!({ "resources": resources })))
}

/// 404 for a malformed id or a VNF of another project than the caller's, before anything is
/// recorded; whether the VNF exists at all is then the command's to say.
async fn not_foreign(gateway: &Gateway, caller: &Principal, vnf_id: &str) -> Result<(), ApiError> {
    if !input::is_resource_id(vnf_id) || foreign(caller, gateway.vnf_row(vnf_id).await?.as_ref()) {
        return Err(ApiError::vnf_not_found(vnf_id));
    }
    Ok(())
}

/// A refused or failed VNF command, as the client sees it.
fn command_error(vnf_id: &str, error: CommandError<VnfError>) -> ApiError {
    match error {
        CommandError::Rejected(VnfError::NotFound) => ApiError::vnf_not_found(vnf_id),
        CommandError::Rejected(e @ VnfError::InvalidState { .. }) => {
            ApiError::conflict("VNFInvalidState", e.to_string())
        }
        CommandError::Rejected(e @ VnfError::ScaleLimit { .. }) => {
            ApiError::conflict("VNFScaleLimit", e.to_string())
        }
        CommandError::Rejected(e @ VnfError::Cooldown { .. }) => {
            ApiError::conflict("VNFScaleCooldown", e.to_string())
        }
        CommandError::Rejected(e @ VnfError::UnknownScalingPolicy { .. }) => {
            ApiError::not_found("VNFPolicyNotFound", e.to_string())
        }
        CommandError::Rejected(
            e @ (VnfError::AlreadyExists
            | VnfError::StaleOperation { .. }
            | VnfError::PlanMismatch { .. }
            | VnfError::StaleFailure { .. }
            | VnfError::NotThePolicy { .. }
            | VnfError::DriftHasPolicy { .. }
            | VnfError::Busy { .. }
            | VnfError::NotHealable { .. }
            | VnfError::UnknownTrigger { .. }
            | VnfError::NotTheTriggersAction { .. }
            | VnfError::StaleAlarm { .. }),
        ) => ApiError::internal("a user command on a VNF", &e),
        CommandError::Store(e) => ApiError::store("appending a VNF command", &e),
    }
}
