//! The operator's status board, served by the gateway: the page (`/board/`, every asset
//! compiled into the binary, no network access beyond the gateway), the JSON it reads
//! (`/v1.0/board/...`, behind the API's authentication and project rules) and its live feed
//! (`/v1.0/board/live`, server-sent events naming what changed, so the page refetches only
//! that). The board changes nothing by itself: scale and delete are the API's own requests,
//! with the same authorization, and a CSRF token when the session cookie signs them
//! ([`session`]). `fleet` holds the pure folds behind the overview.

mod fleet;
pub(crate) mod session;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use events::envelope;
use events::monitor::{MonitorEvent, MonitorMessage, ProbeResult};
use events::names::{self, AggregateKind};
use events::read::StreamRead;
use events::read::rounds::RoundRead;
use events::vnf::VnfEvent;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::mirror::Change;
use crate::{Caller, Gateway, PathId, input, render, story, visible, vnfds};

/// The window of the overview's heals and failures.
const HEALS_WINDOW: Duration = Duration::from_secs(3600);
/// The most lifecycle messages the overview folds for that window: bounds one request's work
/// whatever the fleet's churn (the heals of a busier hour are those of its last messages).
const HEALS_WINDOW_MESSAGES_MAX: usize = 20_000;
/// How far back a monitor's suspect or starved report still shows on the overview.
const SUSPECT_WINDOW: Duration = Duration::from_secs(300);
/// How far back a VNF's page charts its round-trip times.
const RTT_WINDOW: Duration = Duration::from_secs(120);
/// The most probe round messages a VNF's page reads for its chart (every monitor's rounds are
/// read and the VNF's results picked out).
const RTT_ROUNDS_READ_MAX: usize = 600;
/// Round-trip times charted per instance, newest kept.
const RTT_POINTS_MAX: usize = 60;
/// VNFs on one page of the board's list unless asked otherwise, and at most.
const PAGE_SIZE_DEFAULT: usize = 50;
const PAGE_SIZE_MAX: usize = 500;
/// Keep-alive comments on the live feed, so that proxies and the browser keep it open.
const LIVE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The page, its script and its style.
const INDEX_HTML: &str = include_str!("board/assets/index.html");
const BOARD_JS: &str = include_str!("board/assets/board.js");
const BOARD_CSS: &str = include_str!("board/assets/board.css");
/// Only the gateway's own scripts, styles and requests; never framed (no clickjacking).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /` from a browser: the board.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

pub(crate) fn to_board() -> Response {
    Redirect::to("/board/").into_response()
}

/// `GET /board/` and its assets.
pub(crate) async fn asset(uri: axum::http::Uri) -> Response {
    let (body, content_type) = match uri.path() {
        "/board" | "/board/" | "/board/index.html" => (INDEX_HTML, "text/html; charset=utf-8"),
        "/board/board.js" => (BOARD_JS, "text/javascript; charset=utf-8"),
        "/board/board.css" => (BOARD_CSS, "text/css; charset=utf-8"),
        other => {
            return ApiError::not_found("HTTPNotFound", format!("No board page {other}"))
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct Login {
    token: String,
}

/// `POST /board/login` with `{"token": …}`: checks the token as the API would, then keeps it
/// in the session cookie; answers who signed in.
pub(crate) async fn login(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = input::json_object(&headers, body).await?;
    let login: Login = serde_json::from_value(body)
        .map_err(|_| ApiError::invalid_input("token: required, the token to sign in with"))?;
    if !session::cookie_safe(&login.token) {
        return Err(ApiError::invalid_input(format!(
            "token: not a token (at most {} characters of letters, digits and -_.~+/=)",
            session::TOKEN_CHARS_MAX
        )));
    }
    let principal = gateway
        .config()
        .auth
        .authenticate(&login.token)
        .await
        .map_err(|e| ApiError::unauthenticated(&e))?;
    let csrf = uuid::Uuid::new_v4().simple().to_string();
    let mut response = Json(me(&principal)).into_response();
    for cookie in session::open(&login.token, &csrf) {
        append_cookie(&mut response, &cookie)?;
    }
    tracing::info!(user = %principal.user_id, project = %principal.project_id, "Signed in to the board.");
    Ok(response)
}

/// `POST /board/logout`: ends the session.
pub(crate) async fn logout() -> Result<Response, ApiError> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in session::close() {
        append_cookie(&mut response, &cookie)?;
    }
    Ok(response)
}

fn append_cookie(response: &mut Response, cookie: &str) -> Result<(), ApiError> {
    let value =
        HeaderValue::from_str(cookie).map_err(|e| ApiError::internal("setting a cookie", &e))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

/// Who the caller is, and whether the board shows them buttons that write.
fn me(principal: &Principal) -> Value {
    json!({
        "user": principal.user_id,
        "project": principal.project_id,
        "roles": principal.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "may_write": principal.may(Access::Write),
    })
}

/// `GET /v1.0/board/me`.
pub(crate) async fn whoami(Caller(caller): Caller) -> Json<Value> {
    Json(me(&caller))
}

/// `GET /v1.0/board/overview`: the caller's VNFs by status, their instances by monitor state,
/// the last hour's failures and heals (with their latency from the failure to ACTIVE), and
/// the live monitors with their partitions.
pub(crate) async fn overview(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let rows = gateway
        .vnf_mirror()
        .collect(|row| (row.state.exists() && visible(&caller, row)).then(|| row.state.clone()));
    let (by_status, instances) =
        fleet::census(rows.iter(), |vnf_id| gateway.monitor_states(vnf_id));
    let now = OffsetDateTime::now_utc();
    let heals = recent_heals(&gateway, &caller, now - HEALS_WINDOW).await?;
    let failures = heals.failures;
    let heals = heals.newest_first();
    let (shares, unheld) = monitor_shares(&gateway, now - SUSPECT_WINDOW).await?;
    Ok(Json(json!({
        "vnfs_by_status": by_status,
        "vnfs": rows.len(),
        "instances": instances,
        "failures_last_hour": failures,
        "heals_last_hour": heals,
        "heal_latency_ms": fleet::latency_summary(&heals).map(|(p50, max)| json!({"p50": p50, "max": max})),
        "monitors": shares,
        "partitions_unheld": unheld,
    })))
}

/// The failures and heals recorded since `since` on the VNFs the caller sees.
async fn recent_heals(
    gateway: &Gateway,
    caller: &Principal,
    since: OffsetDateTime,
) -> Result<fleet::Heals, ApiError> {
    let failed = |e| ApiError::nats("reading the last hour of the log", &e);
    let mut read = StreamRead::since(gateway.log().stream(), names::VNF_SUBJECTS, since)
        .await
        .map_err(failed)?;
    let mut heals = fleet::Heals::default();
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    for _ in 0..HEALS_WINDOW_MESSAGES_MAX {
        let Some(message) = read.next().await.map_err(failed)? else {
            break;
        };
        let Some((AggregateKind::Vnf, vnf_id)) = names::parse_lifecycle_subject(&message.subject)
        else {
            continue;
        };
        let sees = *seen.entry(vnf_id.to_owned()).or_insert_with(|| {
            gateway
                .vnf_mirror()
                .get(vnf_id)
                .is_some_and(|row| visible(caller, &row))
        });
        // A message that does not decode tells nothing about heals; the audit shows it.
        let Ok(envelope) = envelope::decode::<VnfEvent>(&message.payload) else {
            continue;
        };
        if sees {
            for event in &envelope.events {
                heals.apply(vnf_id, envelope.recorded_at, event);
            }
        }
    }
    Ok(heals)
}

/// The monitors, their partitions and recent suspect reports; and the partitions unheld.
async fn monitor_shares(
    gateway: &Gateway,
    since: OffsetDateTime,
) -> Result<(Vec<fleet::MonitorShare>, Vec<u32>), ApiError> {
    let failed = |e| ApiError::nats("reading the monitors' leases", &e);
    let leases = &gateway.board().leases;
    let mut read = StreamRead::open(
        &leases.stream,
        &format!("$KV.{}.>", names::MONITOR_LEASE_BUCKET),
        1,
    )
    .await
    .map_err(failed)?;
    let prefix = format!("$KV.{}.", names::MONITOR_LEASE_BUCKET);
    let mut entries: BTreeMap<String, String> = BTreeMap::new();
    while let Some(message) = read.next().await.map_err(failed)? {
        let Some(key) = message.subject.strip_prefix(&prefix) else {
            continue;
        };
        // A delete or purge marker (`KV-Operation`) ends the key's lease.
        if message.header("KV-Operation").is_some() {
            entries.remove(key);
        } else {
            entries.insert(
                key.to_owned(),
                String::from_utf8_lossy(&message.payload).into_owned(),
            );
        }
    }
    let reports = monitor_events(
        &gateway.board().monitor_stream,
        names::SUSPECT_SUBJECTS,
        since,
        usize::MAX,
    )
    .await?;
    Ok(fleet::monitors(
        entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &reports,
        PARTITIONS,
    ))
}

/// The monitors' partitions of the VNFs (`monitor::share::PARTITIONS`; the gateway does not
/// depend on the monitor crate).
const PARTITIONS: u32 = 64;

/// The events of `stream` (the monitor or the telemetry stream) on `filter` stored since
/// `since`, at most `max`.
async fn monitor_events(
    stream: &stream::Stream,
    filter: &str,
    since: OffsetDateTime,
    max: usize,
) -> Result<Vec<MonitorEvent>, ApiError> {
    let failed = |e| ApiError::nats("reading the monitor or telemetry stream", &e);
    let mut read = StreamRead::since(stream, filter, since)
        .await
        .map_err(failed)?;
    let mut events = Vec::new();
    while events.len() < max {
        let Some(message) = read.next().await.map_err(failed)? else {
            break;
        };
        if let Ok(message) = serde_json::from_slice::<MonitorMessage>(&message.payload) {
            events.push(message.event);
        }
    }
    Ok(events)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    per_page: Option<usize>,
}

/// `GET /v1.0/board/vnfs?q=&status=&page=&per_page=`: one page of the caller's VNFs, newest
/// first, whose name or id holds `q` (any case) and whose status is `status` (when given).
pub(crate) async fn vnfs(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let per_page = query.per_page.unwrap_or(PAGE_SIZE_DEFAULT);
    if per_page == 0 || per_page > PAGE_SIZE_MAX {
        return Err(ApiError::invalid_input(format!(
            "per_page: must be 1..={PAGE_SIZE_MAX} VNFs, got {per_page}"
        )));
    }
    let page = query.page.unwrap_or(1).max(1);
    let needle = query.q.to_lowercase();
    // The matching VNFs by creation, newest first; only the page's are rendered.
    let mut matching = gateway.vnf_mirror().collect(|row| {
        let vnf = &row.state;
        let details = vnf.details.as_ref()?;
        let status = vnf.status?.as_str();
        let wanted = vnf.exists()
            && visible(&caller, row)
            && (query.status.is_empty() || query.status == status)
            && (needle.is_empty()
                || details.name.to_lowercase().contains(&needle)
                || details.vnf_id.contains(&needle));
        wanted.then(|| (std::cmp::Reverse(row.created_at), details.vnf_id.clone()))
    });
    let total = matching.len();
    matching.sort_unstable();
    let items: Vec<Value> = matching
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .filter_map(|(_, vnf_id)| {
            let row = gateway.vnf_mirror().get(&vnf_id)?;
            let vnf = &row.state;
            let details = vnf.details.as_ref()?;
            let states = gateway.monitor_states(&vnf_id);
            Some(json!({
                "id": details.vnf_id,
                "name": details.name,
                "status": vnf.status?.as_str(),
                "vnfd_id": details.vnfd_id,
                "tenant_id": details.tenant_id,
                "instances": vnf.instances.len(),
                "down": states.values().filter(|s| s.state == "down").count(),
                "action_id": vnf.action_id,
                "created_at": render::timestamp(row.created_at),
            }))
        })
        .collect();
    Ok(Json(json!({
        "total": total,
        "page": page,
        "per_page": per_page,
        "vnfs": items,
    })))
}

/// `GET /v1.0/board/vnfs/{id}`: the VNF as the API shows it (monitor states included), its
/// recent round-trip times per instance, and its story.
pub(crate) async fn vnf(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnf_id): PathId,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::vnf_not_found(&vnf_id);
    if !input::is_resource_id(&vnf_id) {
        return Err(not_found());
    }
    let row = gateway
        .vnf_row(&vnf_id)
        .await?
        .filter(|row| row.state.exists() && visible(&caller, row))
        .ok_or_else(not_found)?;
    let mut shown = render::vnf_json(&row, None).ok_or_else(not_found)?;
    shown["monitor"] = render::monitor_json(&row, &gateway.monitor_states(&vnf_id));
    let results = probe_results_of(
        &gateway.board().telemetry_stream,
        &vnf_id,
        OffsetDateTime::now_utc() - RTT_WINDOW,
        RTT_ROUNDS_READ_MAX,
    )
    .await?;
    let (history, monitor_messages) = story::read(gateway.log(), &vnf_id)
        .await
        .map_err(|e| ApiError::store("reading a VNF's story", &e))?;
    let story: Vec<Value> = story::tell(&vnf_id, history, &monitor_messages)
        .into_iter()
        .map(|line| {
            json!({
                "at": render::timestamp(line.at),
                "since_first_ms": line.since_first.whole_milliseconds(),
                "who": line.who,
                "text": line.text,
            })
        })
        .collect();
    Ok(Json(json!({
        "vnf": shown,
        "policies": row.state.vnfd.as_ref().map(|spec| &spec.scaling_policies),
        "rtts": round_trip_times(&results),
        "story": story,
    })))
}

/// The probe results of `vnf_id` in the telemetry stream's rounds stored since `since`, of at
/// most `max` round messages (every monitor's rounds are read, through the one round reader,
/// and the VNF's results kept).
async fn probe_results_of(
    stream: &stream::Stream,
    vnf_id: &str,
    since: OffsetDateTime,
    max: usize,
) -> Result<Vec<ProbeResult>, ApiError> {
    let failed = |e| ApiError::nats("reading the telemetry stream", &e);
    let mut read = RoundRead::since(stream, since).await.map_err(failed)?;
    let mut results = Vec::new();
    let mut read_rounds = 0;
    while read_rounds < max {
        let Some(round) = read.next().await.map_err(failed)? else {
            break;
        };
        read_rounds += 1;
        results.extend(
            round
                .results
                .into_iter()
                .filter(|r| r.target.vnf_id == vnf_id),
        );
    }
    let skipped = read.skipped();
    if skipped.total() > 0 {
        tracing::debug!(
            ?skipped,
            "Round messages skipped while charting round-trip times."
        );
    }
    Ok(results)
}

/// Each instance's probe results among `results`, oldest first, the newest
/// [`RTT_POINTS_MAX`]: `[unix milliseconds, round-trip microseconds or null when down]`.
fn round_trip_times(results: &[ProbeResult]) -> BTreeMap<String, Vec<Value>> {
    let mut points: BTreeMap<String, Vec<(i128, Option<u64>)>> = BTreeMap::new();
    for result in results {
        let rtt = match &result.outcome {
            events::monitor::ProbeOutcome::Up { rtt_us } => Some(*rtt_us),
            events::monitor::ProbeOutcome::Down { .. } => None,
        };
        points
            .entry(result.target.instance_id.clone())
            .or_default()
            .push((result.at.unix_timestamp_nanos() / 1_000_000, rtt));
    }
    points
        .into_iter()
        .map(|(instance, mut series)| {
            series.sort_by_key(|(at, _)| *at);
            let skip = series.len().saturating_sub(RTT_POINTS_MAX);
            let series = series
                .into_iter()
                .skip(skip)
                .map(|(at, rtt)| json!([at, rtt]))
                .collect();
            (instance, series)
        })
        .collect()
}

/// `GET /v1.0/board/vnfds/{id}`: the VNFD as the API shows it to the caller (its template
/// opened only for who may see its secrets), and what vnfm made of it.
pub(crate) async fn vnfd(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    PathId(vnfd_id): PathId,
) -> Result<Json<Value>, ApiError> {
    let (row, shown) = vnfds::shown(&gateway, &caller, &vnfd_id).await?;
    Ok(Json(json!({
        "vnfd": shown,
        "spec": row.state.live().map(|descriptor| &descriptor.spec),
        "users": row.state.users,
    })))
}

/// `GET /v1.0/board/live`: a server-sent event per change of a VNF (`vnf`), a VNFD (`vnfd`)
/// or a VNF's VDU states (`monitor`) the caller sees, its data the resource's id; `resync`
/// when changes came faster than this feed could send them (refetch everything).
pub(crate) async fn live(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = gateway.board().changes.subscribe();
    let stopping = gateway.board().stopping.subscribe();
    let stream = futures::stream::unfold(
        (changes, stopping, gateway, caller),
        |(mut changes, mut stopping, gateway, caller)| async move {
            loop {
                if *stopping.borrow_and_update() {
                    return None;
                }
                let received = tokio::select! {
                    received = changes.recv() => received,
                    _ = stopping.changed() => return None,
                };
                let event = match received {
                    Ok(change) => {
                        if !gateway.sees_change(&caller, &change) {
                            continue;
                        }
                        Event::default().event(change.kind.as_str()).data(change.id)
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Event::default().event("resync").data("")
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(event), (changes, stopping, gateway, caller)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(LIVE_KEEP_ALIVE))
}

/// What the board reads besides the API's tables: the monitors' leases, the monitor stream
/// (suspect reports), the telemetry stream (probe rounds), and the feed of the tables' changes.
pub(crate) struct Sources {
    pub leases: kv::Store,
    pub monitor_stream: stream::Stream,
    pub telemetry_stream: stream::Stream,
    pub changes: broadcast::Sender<Change>,
    /// Set when the gateway stops: every live feed ends, so that its connection can close
    /// within the drain (a feed never ends by itself).
    pub stopping: watch::Sender<bool>,
}
