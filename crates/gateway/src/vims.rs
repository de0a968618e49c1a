//! `/v1.0/vims`: Tacker's VIM registry (`vim-register`, `vim-list`, `vim-show`, `vim-update`,
//! `vim-delete`), and which VIM a new VNF is made on ([`for_new_vnf`]).
//!
//! A registered VIM is an OpenStack project reached through Keystone; its credentials are
//! sealed with its own data key before they are appended (`password` and
//! `application_credential_secret` are secret fields), and no answer ever shows them. The
//! built-in `local` VIM is listed beside the registered ones, in every project, and can be
//! neither changed nor deleted. A VIM's name is unique among its project's live VIMs
//! (`unique`).
//!
//! Which VIM is a project's default is derived from the rows (the VIM marked default last,
//! else `local`), so that making one VIM default never writes another.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use events::names::AggregateKind;
use events::secrets;
use events::store::CommandError;
use events::vim::{
    self, AUTH_PATH, LOCAL_VIM_ID, LOCAL_VIM_TYPE, OPENSTACK_VIM_TYPE, Vim, VimChanges, VimCommand,
    VimCredentials, VimDetails, VimError, VimStatus,
};
use projector::table::VimRow;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{Caller, Gateway, ListParams, PathId, foreign, input, render, unique, visible};

/// VNF ids named in the refusal to delete a VIM that VNFs still use (the count is given in
/// full): enough to find them, short enough for one line.
const VIM_USERS_NAMED_MAX: usize = 2;
/// The fields a `vim-update` may carry. `type` is read-only (python-tackerclient removes it)
/// and `tenant_id` cannot move a VIM to another project; both are accepted only unchanged.
const UPDATABLE_FIELDS: [&str; 6] = [
    "name",
    "description",
    "is_default",
    "auth_url",
    "auth_cred",
    "vim_project",
];

/// `POST /v1.0/vims` (`tacker vim-register --config-file F [--is-default] NAME`): 201 with the
/// VIM, `PENDING` until a conductor's first check.
pub(crate) async fn create(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = input::json_object(&headers, body).await?;
    let vim = input::root_object(&body, "vim")?;
    let name = input::required_string(vim, "name", "vim")?;
    let description = input::optional_string(vim, "description", "vim")?;
    let tenant_id = caller.tenant_for(input::optional_string(vim, "tenant_id", "vim")?)?;
    check_type(vim)?;
    let auth_url = input::required_string(vim, "auth_url", "vim")?;
    vim::check_auth_url(&auth_url).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    let is_default = optional_bool(vim, "is_default")?.unwrap_or(false);
    let placement_attr = input::object_or_empty(vim, "placement_attr", "vim")?;
    let credentials = credentials(vim, VimCredentials::default())?;
    credentials
        .check()
        .map_err(|e| ApiError::invalid_input(e.to_string()))?;

    let vim_id = uuid::Uuid::new_v4().to_string();
    unique::claim(&gateway, AggregateKind::Vim, &tenant_id, &name, &vim_id).await?;
    let auth = seal(&gateway, &vim_id, &credentials).await?;
    let details = VimDetails {
        vim_id: vim_id.clone(),
        name,
        description: description.unwrap_or_default(),
        tenant_id,
        vim_type: OPENSTACK_VIM_TYPE.to_owned(),
        auth_url,
        auth,
        is_default,
        placement_attr,
        registered_at: OffsetDateTime::now_utc(),
    };
    let cause = Gateway::user_request(&caller);
    gateway
        .log()
        .execute::<Vim>(
            &vim_id,
            VimCommand::Register(Box::new(details)),
            &(),
            &cause,
        )
        .await
        .map_err(|e| command_error(&vim_id, e))?;
    tracing::info!(vim_id = %vim_id, actor = %cause.actor, "VIM registered.");
    let row = gateway
        .refresh_vim(&vim_id)
        .await?
        .ok_or_else(|| read_back_failed(&vim_id))?;
    let shown = shown(&gateway, &row).ok_or_else(|| read_back_failed(&vim_id))?;
    Ok((StatusCode::CREATED, Json(json!({ "vim": shown }))))
}

fn read_back_failed(vim_id: &str) -> ApiError {
    ApiError::internal(
        "reading back a VIM",
        &format!("VIM {vim_id} is not on the log after its append"),
    )
}

/// 400 unless the body's `type` (absent: `openstack`) is one a VIM can be registered with.
fn check_type(vim: &Map<String, Value>) -> Result<(), ApiError> {
    match input::optional_string(vim, "type", "vim")?.as_deref() {
        None | Some(OPENSTACK_VIM_TYPE) => Ok(()),
        Some(other) => Err(ApiError::invalid_input(format!(
            "vim.type: only {OPENSTACK_VIM_TYPE:?} VIMs can be registered (the built-in VIM is {LOCAL_VIM_TYPE:?}), not {other:?}"
        ))),
    }
}

/// An optional boolean field; python-tackerclient sends a JSON boolean, a hand-written body
/// may say `"true"`/`"false"`.
fn optional_bool(parent: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_input(format!(
            "vim.{key}: must be true or false"
        ))),
    }
}

/// `base` with what the body's `auth_cred` and `vim_project` say (Tacker's shape, as
/// python-tackerclient builds it from a config file): a field given replaces `base`'s, an
/// empty or absent one keeps it (so that a `vim-update` may leave the password out).
/// Switching between a password and an application credential drops the other kind.
fn credentials(vim: &Map<String, Value>, base: VimCredentials) -> Result<VimCredentials, ApiError> {
    let mut credentials = base;
    let empty = Map::new();
    let auth_cred = match vim.get("auth_cred") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiError::invalid_input(
                "vim.auth_cred: must be a JSON object",
            ));
        }
    };
    let project = match vim.get("vim_project") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiError::invalid_input(
                "vim.vim_project: must be a JSON object",
            ));
        }
    };
    let text = |parent, key: &str, path: &str| input::optional_string(parent, key, path);
    let password = text(auth_cred, "password", "vim.auth_cred")?;
    let application_id = text(auth_cred, "application_credential_id", "vim.auth_cred")?;
    let application_secret = text(auth_cred, "application_credential_secret", "vim.auth_cred")?;
    if password.is_some() {
        credentials.application_credential_id = None;
        credentials.application_credential_secret = None;
        credentials.password = password;
    }
    if application_id.is_some() || application_secret.is_some() {
        credentials.password = None;
        credentials.username = None;
        credentials.application_credential_id =
            application_id.or(credentials.application_credential_id);
        credentials.application_credential_secret =
            application_secret.or(credentials.application_credential_secret);
    }
    if let Some(username) = text(auth_cred, "username", "vim.auth_cred")? {
        credentials.username = Some(username);
    }
    if let Some(domain) = text(auth_cred, "user_domain_name", "vim.auth_cred")? {
        credentials.user_domain_name = Some(domain);
    }
    // Tacker's own `auth_cred` carried the project too; `vim_project` wins.
    for (parent, key, path) in [
        (auth_cred, "project_name", "vim.auth_cred"),
        (project, "name", "vim.vim_project"),
    ] {
        if let Some(name) = text(parent, key, path)? {
            credentials.project_name = name;
        }
    }
    for (parent, path) in [(auth_cred, "vim.auth_cred"), (project, "vim.vim_project")] {
        if let Some(domain) = text(parent, "project_domain_name", path)? {
            credentials.project_domain_name = domain;
        }
    }
    match auth_cred.get("cert_verify") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(flag)) => credentials.cert_verify = *flag,
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => {
            credentials.cert_verify = true;
        }
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => {
            credentials.cert_verify = false;
        }
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "vim.auth_cred.cert_verify: must be True or False, not {other}"
            )));
        }
    }
    Ok(credentials)
}

/// `credentials` as stored: JSON with its secret fields sealed with the VIM's data key (made
/// here when the VIM has none yet).
async fn seal(
    gateway: &Gateway,
    vim_id: &str,
    credentials: &VimCredentials,
) -> Result<Value, ApiError> {
    let key = gateway.data_key(AggregateKind::Vim, vim_id).await?;
    let plain = serde_json::to_value(credentials)
        .map_err(|e| ApiError::internal("encoding a VIM's credentials", &e))?;
    secrets::seal_secrets(&plain, &key, AUTH_PATH)
        .map_err(|e| ApiError::internal("sealing a VIM's credentials", &e))
}

/// A VIM's stored credentials opened with its data key, for an update to change part of them.
async fn opened(gateway: &Gateway, details: &VimDetails) -> Result<VimCredentials, ApiError> {
    let vim_id = &details.vim_id;
    let key = gateway
        .existing_data_key(AggregateKind::Vim, vim_id)
        .await?
        // Deleting the VIM destroys its key: then it is gone for an update too.
        .ok_or_else(|| ApiError::vim_not_found(vim_id))?;
    details
        .credentials(&key)
        .map_err(|e| ApiError::internal("opening a VIM's credentials", &e))
}

/// `GET /v1.0/vims`: the built-in `local` VIM, then every registered VIM the caller sees
/// (oldest first), filtered, sorted and paged as asked ([`input::ListQuery::answer`]).
/// python-tackerclient resolves `--vim-name` and a `vim-show NAME` through this list, with
/// `id=` and then `name=` filters.
pub(crate) async fn list(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    ListParams(query): ListParams,
) -> Result<Json<Value>, ApiError> {
    let gateway = &gateway;
    let defaults = gateway.default_vims();
    let mut vims = vec![local_json(gateway, &caller, &defaults)];
    vims.extend(
        crate::matching(
            &caller,
            &query,
            gateway.vim_mirror(),
            |row| row.state.live().is_some(),
            |id| async move { gateway.vim_row(&id).await },
            |row| row.state.details.as_ref().map(|d| d.vim_id.clone()),
            |row| render::vim_json(row, &defaults),
        )
        .await?,
    );
    Ok(Json(query.answer(vims, "vims")?))
}

/// `GET /v1.0/vims/{id}`.
pub(crate) async fn show(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vim_id): PathId,
) -> Result<Json<Value>, ApiError> {
    if vim_id == LOCAL_VIM_ID {
        let defaults = gateway.default_vims();
        return Ok(Json(
            json!({ "vim": local_json(&gateway, &caller, &defaults) }),
        ));
    }
    let row = live(&gateway, &caller, &vim_id).await?;
    let shown = shown(&gateway, &row).ok_or_else(|| ApiError::vim_not_found(&vim_id))?;
    Ok(Json(json!({ "vim": shown })))
}

/// A registered VIM as the API shows it, its default derived from the rows.
fn shown(gateway: &Gateway, row: &VimRow) -> Option<Value> {
    render::vim_json(row, &gateway.default_vims())
}

/// The row of a live registered VIM of a project the caller sees, or 404.
async fn live(gateway: &Gateway, caller: &Principal, vim_id: &str) -> Result<VimRow, ApiError> {
    if !input::is_resource_id(vim_id) {
        return Err(ApiError::vim_not_found(vim_id));
    }
    gateway
        .vim_row(vim_id)
        .await?
        .filter(|row| row.state.live().is_some() && visible(caller, row))
        .ok_or_else(|| ApiError::vim_not_found(vim_id))
}

/// The built-in VIM as every project sees it: its default unless the caller's project has a
/// registered default VIM.
fn local_json(gateway: &Gateway, caller: &Principal, defaults: &HashMap<String, String>) -> Value {
    let since = render::timestamp(gateway.log().stream().cached_info().created);
    render::local_vim_json(!defaults.contains_key(&caller.project_id), &since)
}

/// 409: the built-in VIM is not the caller's to change.
fn built_in(what: &str) -> ApiError {
    ApiError::conflict(
        "VimIsBuiltIn",
        format!(
            "the built-in VIM {LOCAL_VIM_ID:?} cannot be {what}; register an OpenStack VIM to manage one"
        ),
    )
}

/// `PUT /v1.0/vims/{id}` (`tacker vim-update [--config-file F] [--name N] [--description D]
/// [--is-default True|False]`): 200 with the VIM. New credentials (a password left out keeps
/// the old one) or a new `auth_url` make it `PENDING` until its next check.
pub(crate) async fn update(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vim_id): PathId,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if vim_id == LOCAL_VIM_ID {
        return Err(built_in("updated"));
    }
    let row = live(&gateway, &caller, &vim_id).await?;
    let details = row
        .state
        .live()
        .ok_or_else(|| ApiError::vim_not_found(&vim_id))?;
    let body = input::json_object(&headers, body).await?;
    let vim = input::root_object(&body, "vim")?;
    for key in vim.keys() {
        let unchanged = match key.as_str() {
            "type" => check_type(vim).is_ok(),
            "tenant_id" => {
                input::optional_string(vim, "tenant_id", "vim")?.as_deref()
                    == Some(details.tenant_id.as_str())
            }
            field => UPDATABLE_FIELDS.contains(&field),
        };
        if !unchanged {
            return Err(ApiError::invalid_input(format!(
                "vim.{key}: cannot be updated; a VIM update changes {}",
                UPDATABLE_FIELDS.join(", ")
            )));
        }
    }
    let name = input::optional_string(vim, "name", "vim")?;
    let auth_url = input::optional_string(vim, "auth_url", "vim")?;
    if let Some(url) = &auth_url {
        vim::check_auth_url(url).map_err(|e| ApiError::invalid_input(e.to_string()))?;
    }
    let auth = if vim.contains_key("auth_cred") || vim.contains_key("vim_project") {
        let credentials = credentials(vim, opened(&gateway, details).await?)?;
        credentials
            .check()
            .map_err(|e| ApiError::invalid_input(e.to_string()))?;
        Some(seal(&gateway, &vim_id, &credentials).await?)
    } else {
        None
    };
    if let Some(name) = &name {
        unique::claim(
            &gateway,
            AggregateKind::Vim,
            &details.tenant_id,
            name,
            &vim_id,
        )
        .await?;
    }
    let changes = VimChanges {
        name,
        // An empty description clears it, as Tacker's did.
        description: match vim.get("description") {
            Some(Value::String(text)) => Some(text.clone()),
            _ => None,
        },
        is_default: optional_bool(vim, "is_default")?,
        auth_url,
        auth,
    };
    let cause = Gateway::user_request(&caller);
    let command = VimCommand::Update {
        changes: Box::new(changes),
        at: OffsetDateTime::now_utc(),
    };
    gateway
        .log()
        .execute::<Vim>(&vim_id, command, &(), &cause)
        .await
        .map_err(|e| command_error(&vim_id, e))?;
    tracing::info!(vim_id = %vim_id, actor = %cause.actor, "VIM updated.");
    let row = gateway
        .refresh_vim(&vim_id)
        .await?
        .ok_or_else(|| ApiError::vim_not_found(&vim_id))?;
    let shown = shown(&gateway, &row).ok_or_else(|| ApiError::vim_not_found(&vim_id))?;
    Ok(Json(json!({ "vim": shown })))
}

/// `DELETE /v1.0/vims/{id}`: 204, or 409 while a VNF that is not deleted names the VIM.
///
/// The check reads the gateway's copy of the VNF table, so a VNF created on this VIM in the
/// same moment (by another gateway, or not yet mirrored) can slip past it: the VNF then names
/// a deleted VIM, and its VIM calls fail (ARCHITECTURE.md, left alone).
pub(crate) async fn delete(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vim_id): PathId,
) -> Result<StatusCode, ApiError> {
    if vim_id == LOCAL_VIM_ID {
        return Err(built_in("deleted"));
    }
    if !input::is_resource_id(&vim_id) || foreign(&caller, gateway.vim_row(&vim_id).await?.as_ref())
    {
        return Err(ApiError::vim_not_found(&vim_id));
    }
    let mut users = gateway.vnf_mirror().collect(|row| {
        let details = row.state.details.as_ref()?;
        (!row.state.deleted && details.vim_id == vim_id).then(|| details.vnf_id.clone())
    });
    if !users.is_empty() {
        users.sort();
        let named: Vec<&str> = users
            .iter()
            .take(VIM_USERS_NAMED_MAX)
            .map(String::as_str)
            .collect();
        let more = if users.len() > named.len() {
            ", …"
        } else {
            ""
        };
        return Err(ApiError::conflict(
            "VimInUseException",
            format!(
                "VIM {vim_id} is still used by {} VNF(s) ({}{more}); delete them first",
                users.len(),
                named.join(", ")
            ),
        ));
    }
    let cause = Gateway::user_request(&caller);
    gateway
        .log()
        .execute::<Vim>(&vim_id, VimCommand::Delete, &(), &cause)
        .await
        .map_err(|e| command_error(&vim_id, e))?;
    tracing::info!(vim_id = %vim_id, actor = %cause.actor, "VIM deleted.");
    gateway.refresh_vim(&vim_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The VIM a VNF of `tenant_id` is made on: the one named by `vim_id` or `vim_name` (`local`
/// or a live registered VIM the caller sees, else 404 naming it), else the project's default
/// ([`Gateway::default_vims`]), else `local`. A VIM whose last check found it `UNREACHABLE`
/// refuses the VNF (409 quoting the check's reason).
pub(crate) async fn for_new_vnf(
    gateway: &Gateway,
    caller: &Principal,
    tenant_id: &str,
    vim_id: Option<String>,
    vim_name: Option<String>,
) -> Result<String, ApiError> {
    let row = match (vim_id, vim_name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_input(
                "vnf.vim_id, vnf.vim_name: give one, not both",
            ));
        }
        (Some(id), None) if id == LOCAL_VIM_ID => return Ok(id),
        (None, Some(name)) if name == LOCAL_VIM_ID => return Ok(LOCAL_VIM_ID.to_owned()),
        (Some(id), None) => live(gateway, caller, &id).await?,
        (None, Some(name)) => {
            let mut named = gateway.vim_mirror().collect(|row| {
                let details = row.state.live()?;
                (details.name == name && visible(caller, row)).then(|| row.clone())
            });
            // The VNF's own project's first, as a name is unique only within a project.
            named.sort_by_key(|row| {
                row.state
                    .details
                    .as_ref()
                    .is_none_or(|d| d.tenant_id != tenant_id)
            });
            named.into_iter().next().ok_or_else(|| {
                ApiError::not_found(
                    "VimNotFoundException",
                    format!("VIM named {name:?} could not be found"),
                )
            })?
        }
        (None, None) => match gateway.default_vims().get(tenant_id) {
            Some(id) => live(gateway, caller, id).await?,
            None => return Ok(LOCAL_VIM_ID.to_owned()),
        },
    };
    let details = row
        .state
        .live()
        .ok_or_else(|| ApiError::internal("choosing a VIM", &"a live VIM without details"))?;
    if row.state.status == VimStatus::Unreachable {
        return Err(ApiError::conflict(
            "VimUnreachableException",
            format!(
                "VIM {} ({}) is UNREACHABLE: {}",
                details.name,
                details.vim_id,
                row.state.reason.as_deref().unwrap_or("no reason recorded")
            ),
        ));
    }
    Ok(details.vim_id.clone())
}

/// A refused or failed VIM command, as the client sees it.
fn command_error(vim_id: &str, error: CommandError<VimError>) -> ApiError {
    match error {
        CommandError::Rejected(VimError::NotFound) => ApiError::vim_not_found(vim_id),
        CommandError::Rejected(e @ (VimError::AlreadyExists | VimError::PendingIsNoResult)) => {
            ApiError::internal("a user command on a VIM", &e)
        }
        CommandError::Store(e) => ApiError::store("appending a VIM command", &e),
    }
}
