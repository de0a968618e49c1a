//! `/v1.0/vnfds`: onboarding, listing, showing and deleting VNFDs. A VNFD's name is unique among
//! its project's live VNFDs (`unique`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use events::envelope::Cause;
use events::names::AggregateKind;
use events::secrets::{self, DataKey};
use events::store::CommandError;
use events::vnfd::{TEMPLATE_PATH, TemplateSource, Vnfd, VnfdCommand, VnfdDescriptor, VnfdError};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::input::{self, ListQuery};
use crate::{Caller, Gateway, ListParams, PathId, foreign, render, unique, visible};

/// `template_source` filter value that Tacker read as "no filter".
const TEMPLATE_SOURCE_ALL: &str = "all";

/// `POST /v1.0/vnfds`.
pub(crate) async fn create(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = input::json_object(&headers, body).await?;
    let vnfd = input::root_object(&body, "vnfd")?;
    let name = input::optional_string(vnfd, "name", "vnfd")?;
    let description = input::optional_string(vnfd, "description", "vnfd")?;
    let tenant_id = caller.tenant_for(input::optional_string(vnfd, "tenant_id", "vnfd")?)?;
    let attributes = input::required_object(vnfd, "attributes", "vnfd")?;
    let template = attributes.get("vnfd").ok_or_else(|| {
        ApiError::invalid_input("vnfd.attributes.vnfd: required, the TOSCA document")
    })?;
    let parsed = input::parse_template(template, "vnfd.attributes.vnfd")?;
    let name = name
        .or_else(|| parsed.spec.template_name.clone())
        .ok_or_else(|| {
            ApiError::invalid_input(
                "vnfd.name: required when the template has no metadata.template_name",
            )
        })?;
    gateway.within_quota(&tenant_id, |quotas, usage| {
        quotas.onboard(&tenant_id, &parsed.spec, usage)
    })?;
    let vnfd_id = uuid::Uuid::new_v4().to_string();
    unique::claim(&gateway, AggregateKind::Vnfd, &tenant_id, &name, &vnfd_id).await?;
    let (template_yaml, key) = seal_template(&gateway, &vnfd_id, parsed.template_yaml).await?;
    let descriptor = VnfdDescriptor {
        vnfd_id: vnfd_id.clone(),
        name,
        description: description
            .or_else(|| parsed.spec.description.clone())
            .unwrap_or_default(),
        tenant_id,
        template_source: TemplateSource::Onboarded,
        template_yaml,
        spec: parsed.spec,
    };
    let row = onboard(&gateway, descriptor, &key, &Gateway::user_request(&caller)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "vnfd": row }))))
}

/// The template of the VNFD `vnfd_id` sealed as a whole (it holds the VDUs' `user_data` and
/// `config`) with the VNFD's data key, made here, and the key.
pub(crate) async fn seal_template(
    gateway: &Gateway,
    vnfd_id: &str,
    template_yaml: String,
) -> Result<(Value, DataKey), ApiError> {
    let key = gateway.data_key(AggregateKind::Vnfd, vnfd_id).await?;
    let sealed = secrets::seal(&Value::String(template_yaml), &key, TEMPLATE_PATH)
        .map_err(|e| ApiError::internal("sealing a VNFD's template", &e))?;
    Ok((sealed, key))
}

/// The template of a live VNFD as YAML text, opened with its data key: a VNF create with
/// parameters resolves it again (`vnfd::resolve`). The gateway holds the keyring, so the
/// template stays sealed on the log and in every other role.
pub(crate) async fn template_text(
    gateway: &Gateway,
    descriptor: &VnfdDescriptor,
) -> Result<String, ApiError> {
    let vnfd_id = &descriptor.vnfd_id;
    let opened = if secrets::holds_sealed(&descriptor.template_yaml) {
        let key = gateway
            .shared
            .keyring
            .get(AggregateKind::Vnfd, vnfd_id)
            .await
            .map_err(|e| ApiError::keyring("reading a VNFD's data key", &e))?
            // Deleting the VNFD destroys its key: it is then gone for a create too.
            .ok_or_else(|| ApiError::vnfd_not_found(vnfd_id))?;
        secrets::open_secrets(&descriptor.template_yaml, &key, TEMPLATE_PATH)
            .map_err(|e| ApiError::internal("opening a VNFD's template", &e))?
    } else {
        descriptor.template_yaml.clone()
    };
    match opened {
        Value::String(text) => Ok(text),
        other => Err(ApiError::internal(
            "opening a VNFD's template",
            &format!("VNFD {vnfd_id}'s template is {other}, not YAML text"),
        )),
    }
}

/// Onboards `descriptor` and answers the VNFD as stored, its template opened with `key`.
pub(crate) async fn onboard(
    gateway: &Gateway,
    descriptor: VnfdDescriptor,
    key: &DataKey,
    cause: &Cause,
) -> Result<Value, ApiError> {
    let vnfd_id = descriptor.vnfd_id.clone();
    gateway
        .log()
        .execute::<Vnfd>(
            &vnfd_id,
            VnfdCommand::Onboard(Box::new(descriptor)),
            &(),
            cause,
        )
        .await
        .map_err(|e| command_error(&vnfd_id, e))?;
    tracing::info!(vnfd_id = %vnfd_id, actor = %cause.actor, "VNFD onboarded.");
    gateway
        .refresh_vnfd(&vnfd_id)
        .await?
        .as_ref()
        .and_then(|row| render::vnfd_json(row, Some(key)))
        .ok_or_else(|| {
            ApiError::internal(
                "reading back an onboarded VNFD",
                &format!("VNFD {vnfd_id} is not on the log after its append"),
            )
        })
}

/// `GET /v1.0/vnfds`: every VNFD, or the ones matching the filters (`name`, `id`,
/// `template_source` (`all` for any), or any other field), sorted and paged as asked
/// ([`ListQuery::answer`]). `fields` cuts each to those keys.
pub(crate) async fn list(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    ListParams(query): ListParams,
) -> Result<Json<Value>, ApiError> {
    let query = if query
        .values("template_source")
        .contains(&TEMPLATE_SOURCE_ALL)
    {
        query.without("template_source")
    } else {
        query
    };
    Ok(Json(answer(&gateway, &caller, &query).await?))
}

/// The answer to a list of VNFDs (see [`crate::list_answer`]).
async fn answer(
    gateway: &Gateway,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Value, ApiError> {
    crate::list_answer(
        caller,
        query,
        "vnfds",
        gateway.vnfd_mirror(),
        |row| row.state.live().is_some(),
        |id| async move { gateway.vnfd_row(&id).await },
        |row| row.state.descriptor.as_ref().map(|d| d.vnfd_id.clone()),
        // A list shows no secret: only a show opens them.
        |row| render::vnfd_json(row, None),
    )
    .await
}

/// `GET /v1.0/vnfds/{id}`.
pub(crate) async fn show(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnfd_id): PathId,
) -> Result<Json<Value>, ApiError> {
    let (_, vnfd) = shown(&gateway, &caller, &vnfd_id).await?;
    Ok(Json(json!({ "vnfd": vnfd })))
}

/// A live VNFD of a project the caller sees, as its row and as the API shows it to the caller
/// (the template opened only for who may see its secrets); else 404.
pub(crate) async fn shown(
    gateway: &Gateway,
    caller: &Principal,
    vnfd_id: &str,
) -> Result<(projector::table::VnfdRow, Value), ApiError> {
    let not_found = || ApiError::vnfd_not_found(vnfd_id);
    if !input::is_resource_id(vnfd_id) {
        return Err(not_found());
    }
    let row = gateway
        .vnfd_row(vnfd_id)
        .await?
        .filter(|row| visible(caller, row))
        .ok_or_else(not_found)?;
    let descriptor = row.state.live().ok_or_else(not_found)?;
    let key = gateway
        .secrets_key(
            caller,
            &descriptor.tenant_id,
            AggregateKind::Vnfd,
            vnfd_id,
            secrets::holds_sealed(&descriptor.template_yaml),
        )
        .await?;
    let shown = render::vnfd_json(&row, key.as_ref()).ok_or_else(not_found)?;
    Ok((row, shown))
}

/// `DELETE /v1.0/vnfds/{id}`: 204, or 409 naming the VNFs that still use it.
pub(crate) async fn delete(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnfd_id): PathId,
) -> Result<StatusCode, ApiError> {
    if !input::is_resource_id(&vnfd_id)
        || foreign(&caller, gateway.vnfd_row(&vnfd_id).await?.as_ref())
    {
        return Err(ApiError::vnfd_not_found(&vnfd_id));
    }
    let cause = Gateway::user_request(&caller);
    gateway
        .log()
        .execute::<Vnfd>(&vnfd_id, VnfdCommand::Delete, &(), &cause)
        .await
        .map_err(|e| command_error(&vnfd_id, e))?;
    tracing::info!(vnfd_id = %vnfd_id, actor = %cause.actor, "VNFD deleted.");
    gateway.refresh_vnfd(&vnfd_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A refused or failed VNFD command, as the client sees it.
pub(crate) fn command_error(vnfd_id: &str, error: CommandError<VnfdError>) -> ApiError {
    match error {
        CommandError::Rejected(VnfdError::NotFound) => ApiError::vnfd_not_found(vnfd_id),
        CommandError::Rejected(e @ VnfdError::InUse { .. }) => {
            ApiError::conflict("VNFDInUse", e.to_string())
        }
        CommandError::Rejected(e @ VnfdError::AlreadyExists) => {
            ApiError::internal("onboarding a VNFD under a fresh id", &e)
        }
        CommandError::Store(e) => ApiError::store("appending a VNFD command", &e),
    }
}
