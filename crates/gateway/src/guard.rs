//! What stands between the network and the API: a page in a browser cannot drive it (JSON
//! bodies only, `Host` checked against the names the API is served under, no CORS headers)
//! and no client can starve it (header, body and request timeouts, caps on connections and on
//! requests in flight, answered with 503 and `Retry-After`).
//!
//! The decisions are plain functions and a plain [`SlotTable`]; [`serve`] is the accept loop
//! around them. It never reads a request body itself and never sends a CORS header.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::ApiError;

/// How long a client has to send a request's whole header, from its connection (or the end
/// of its previous request) on: a client on a slow link sends a header of a few hundred bytes
/// in well under a second, and a connection idle longer than this is one a slow-loris holds.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request's body once its header is in: the largest body
/// ([`crate::REQUEST_BODY_BYTES_MAX`], 1 MiB) takes 20 s at 50 kB/s, a poor mobile link.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(20);

/// The default `--request-timeout-s`: a whole request, body included, from its header on. A
/// VNF create makes a handful of appends, each bounded by the store's own NATS timeouts (a few
/// seconds); a minute covers a leader election in the middle of one.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Open files a gateway process needs besides its API connections: its NATS connections,
/// its log, the runtime's own descriptors, with ample room (it uses under 30).
pub const OPEN_FILES_RESERVE: usize = 256;

/// The default `--connections-max`: open connections served at once. A service gets 1,024
/// open files by default; this leaves [`OPEN_FILES_RESERVE`] of them, so that `accept` never
/// fails for want of a descriptor.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024 - OPEN_FILES_RESERVE;

/// The most connections a process allowed `open_files_max` descriptors can serve without
/// `accept` failing: `configured`, or less when the limit leaves less beside
/// [`OPEN_FILES_RESERVE`] (at least one).
pub fn connections_max_within(configured: usize, open_files_max: u64) -> usize {
    let available = usize::try_from(open_files_max)
        .unwrap_or(usize::MAX)
        .saturating_sub(OPEN_FILES_RESERVE)
        .max(1);
    configured.min(available)
}

/// The default `--requests-in-flight-max`: requests handled at once. A request holds the
/// gateway for milliseconds (one or two NATS round trips); 256 at once is ten times what
/// python-tackerclient users and the conductor's callers make, and bounds the memory requests
/// hold (bodies of up to 1 MiB each).
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 256;

/// The `Retry-After` of a 503 sent at a cap: requests last milliseconds, so a second later a
/// slot is most likely free.
const RETRY_AFTER_S: u64 = 1;

/// How long the accept loop pauses after `accept` failed (out of descriptors, out of memory):
/// long enough not to spin on an error that persists, short enough that service resumes at
/// once when connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How often a refusal at a cap is logged at most: a flood of refusals would otherwise fill
/// the log with one line each; one line every ten seconds, with the count since the last,
/// tells the operator as much.
const REFUSALS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts refusals and says when one is to be logged: the first, then at most one every
/// [`REFUSALS_LOG_INTERVAL`], with how many were refused since the last line.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    logged_at: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl Refusals {
    /// Notes one refusal at `now`; answers how many refusals the log line to write now
    /// stands for, or `None` when no line is due.
    pub(crate) fn note(&mut self, now: tokio::time::Instant) -> Option<u64> {
        self.unlogged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= REFUSALS_LOG_INTERVAL);
        if !due {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// How the gateway defends itself; see the module's documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// Names other than the listen address that clients may reach the API under (in `Host`).
    pub public_hosts: Vec<PublicHost>,
    /// Open connections served at once; the oldest idle one is closed to make room for a new
    /// one, and a new one is refused (503) when every one is busy.
    pub connections_max: usize,
    /// Requests handled at once; one more answers 503.
    pub requests_in_flight_max: usize,
    /// The longest a request may take, body included; a longer one answers 503.
    pub request_timeout: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            public_hosts: Vec::new(),
            connections_max: CONNECTIONS_MAX_DEFAULT,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
        }
    }
}

/// A `--public-host HOST[:PORT]`: a name the API is reached under, through a proxy or DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicHost {
    /// Lowercase, IPv6 addresses in brackets.
    host: String,
    /// `None`: the name alone (a proxy on the scheme's default port) or with the listen port.
    port: Option<u16>,
}

/// Why a `--public-host` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not HOST or HOST:PORT (a DNS name or an IP address, no scheme or path)")]
pub struct PublicHostError {
    value: String,
}

impl FromStr for PublicHost {
    type Err = PublicHostError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let refused = || PublicHostError {
            value: value.to_owned(),
        };
        let authority: axum::http::uri::Authority = value.parse().map_err(|_| refused())?;
        let host = authority.host();
        if host.is_empty() || authority.as_str().contains('@') || authority.as_str() != value {
            return Err(refused());
        }
        let port = match authority.port() {
            Some(port) if port.as_u16() == 0 => return Err(refused()),
            Some(port) => Some(port.as_u16()),
            // A port that is not a u16 is no port to `Authority`.
            None if host != value => return Err(refused()),
            None => None,
        };
        Ok(PublicHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The `Host` values a gateway listening on one address answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedHosts {
    /// `host:port`, lowercase.
    exact: Vec<String>,
    /// Names allowed without a port.
    bare: Vec<String>,
}

impl AllowedHosts {
    /// The listen address itself; `localhost` and the loopback address when it listens on
    /// loopback (or on every address); and each public host, bare or with the listen port
    /// when it has no port of its own.
    pub(crate) fn new(listen: SocketAddr, public_hosts: &[PublicHost]) -> AllowedHosts {
        let port = listen.port();
        let ip = listen.ip();
        let mut exact = vec![SocketAddr::new(ip, port).to_string()];
        if ip.is_loopback() || ip.is_unspecified() {
            exact.push(format!("localhost:{port}"));
            let loopback = if ip.is_ipv4() {
                SocketAddr::from(([127, 0, 0, 1], port))
            } else {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
            };
            exact.push(loopback.to_string());
        }
        let mut bare = Vec::new();
        for public in public_hosts {
            exact.push(format!("{}:{}", public.host, public.port.unwrap_or(port)));
            if public.port.is_none() {
                bare.push(public.host.clone());
            }
        }
        exact.dedup();
        AllowedHosts { exact, bare }
    }

    /// Whether a request with this `Host` header may be served.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.exact.contains(&host) || self.bare.contains(&host)
    }
}

/// Refuses a request that has a body not declared `application/json` (parameters such as
/// `charset` allowed). A page in a browser may post `text/plain` anywhere without asking; it
/// needs the server's consent (CORS, never given) to post JSON.
pub(crate) fn check_content_type(headers: &HeaderMap, has_body: bool) -> Result<(), ApiError> {
    if !has_body {
        return Ok(());
    }
    let Some(declared) = headers.get(CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type("none"));
    };
    let declared = String::from_utf8_lossy(declared.as_bytes());
    let media_type = declared.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(&declared))
    }
}

/// Whether the request carries a body: a `Content-Length` other than 0, any
/// `Transfer-Encoding` (chunked), or a body that is not empty from the start.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
        || !hyper::body::Body::is_end_stream(request.body())
}

/// Refuses a request whose `Host` (or, without one, its URI's authority) the gateway does not
/// answer to: a page that rebound its own name to this host sends its own name.
fn check_host(request: &Request, allowed: &AllowedHosts) -> Result<(), ApiError> {
    let host = request
        .headers()
        .get(HOST)
        .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(ToString::to_string));
    match host {
        Some(host) if allowed.allows(&host) => Ok(()),
        Some(host) => Err(ApiError::misdirected(&host)),
        None => Err(ApiError::misdirected("(none)")),
    }
}

/// The router layer that refuses bodies other than JSON (see [`check_content_type`]).
pub(crate) async fn json_only(request: Request, next: Next) -> Response {
    match check_content_type(request.headers(), has_body(&request)) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// `error` with `Retry-After`.
fn retry_later(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    response
}

/// What [`admit`] checks every request against.
#[derive(Clone)]
struct Admission {
    /// `None` for an endpoint that takes any `Host` ([`Hosts::Any`]).
    hosts: Option<Arc<AllowedHosts>>,
    /// One permit per request in flight: taken by [`admit`] before the request runs, given
    /// back when its response is made. None left answers 503.
    in_flight: Arc<Semaphore>,
    requests_in_flight_max: usize,
    request_timeout: Duration,
    /// Requests refused at the in-flight cap, for the log.
    refusals: Arc<Mutex<Refusals>>,
}

/// The outermost layer: `Host`, the cap on requests in flight, and the body and request
/// timeouts.
async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    if let Some(hosts) = &admission.hosts
        && let Err(refused) = check_host(&request, hosts)
    {
        return refused.into_response();
    }
    let Ok(_permit) = admission.in_flight.clone().try_acquire_owned() else {
        let refused = admission
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(tokio::time::Instant::now());
        if let Some(refused) = refused {
            tracing::warn!(
                requests_in_flight_max = admission.requests_in_flight_max,
                refused,
                "Requests refused: too many requests in flight."
            );
        }
        return retry_later(ApiError::busy(
            "Service Unavailable: too many requests in flight; retry the request later.",
        ));
    };
    let body_timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(GuardedBody {
            inner: body,
            deadline: Some((
                Box::pin(tokio::time::sleep(REQUEST_BODY_TIMEOUT)),
                body_timed_out.clone(),
            )),
            _busy: None,
        })
    });
    let timeout = admission.request_timeout;
    let response = tokio::time::timeout(timeout, next.run(request)).await;
    if body_timed_out.load(Ordering::Relaxed) {
        return ApiError::request_timeout(format!(
            "the request body did not arrive within {} s",
            REQUEST_BODY_TIMEOUT.as_secs()
        ))
        .into_response();
    }
    response.unwrap_or_else(|_| {
        tracing::warn!(
            request_timeout_s = timeout.as_secs(),
            "Request abandoned: it took longer than the request timeout."
        );
        retry_later(ApiError::busy(format!(
            "Service Unavailable: the request did not complete within {} s and may or may not have taken effect; check, then retry it.",
            timeout.as_secs()
        )))
    })
}

/// `router` behind [`admit`].
fn guarded(router: Router, listen: SocketAddr, config: &GuardConfig, hosts: Hosts) -> Router {
    let admission = Admission {
        hosts: match hosts {
            Hosts::Named => Some(Arc::new(AllowedHosts::new(listen, &config.public_hosts))),
            Hosts::Any => None,
        },
        in_flight: Arc::new(Semaphore::new(config.requests_in_flight_max)),
        requests_in_flight_max: config.requests_in_flight_max,
        refusals: Arc::default(),
        request_timeout: config.request_timeout,
    };
    router.layer(middleware::from_fn_with_state(admission, admit))
}

/// The open connections, oldest first, each busy (a request is being served) or idle (its
/// header is awaited: a new connection, a kept-alive one, or a slow-loris). `H` is what closes
/// a connection when it is dropped.
#[derive(Debug)]
pub(crate) struct SlotTable<H> {
    open: BTreeMap<u64, Slot<H>>,
    next_id: u64,
}

#[derive(Debug)]
struct Slot<H> {
    busy: bool,
    handle: H,
}

impl<H> Default for SlotTable<H> {
    fn default() -> Self {
        SlotTable {
            open: BTreeMap::new(),
            next_id: 0,
        }
    }
}

impl<H> SlotTable<H> {
    /// Admits a new connection when fewer than `max` are open, or else in place of the oldest
    /// idle one, whose handle is returned to be dropped; refuses it (handing its handle back)
    /// when all `max` are busy.
    pub(crate) fn admit(&mut self, max: usize, handle: H) -> Result<(u64, Option<H>), H> {
        let mut evicted = None;
        if self.open.len() >= max {
            let Some(oldest_idle) = self
                .open
                .iter()
                .find_map(|(id, slot)| (!slot.busy).then_some(*id))
            else {
                return Err(handle);
            };
            evicted = self.open.remove(&oldest_idle).map(|slot| slot.handle);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            Slot {
                busy: false,
                handle,
            },
        );
        Ok((id, evicted))
    }

    /// Marks connection `id` busy or idle (nothing when it was closed meanwhile).
    pub(crate) fn set_busy(&mut self, id: u64, busy: bool) {
        if let Some(slot) = self.open.get_mut(&id) {
            slot.busy = busy;
        }
    }

    /// Whether connection `id` is serving a request.
    pub(crate) fn is_busy(&self, id: u64) -> bool {
        self.open.get(&id).is_some_and(|slot| slot.busy)
    }

    /// Forgets connection `id`, which has ended.
    pub(crate) fn close(&mut self, id: u64) {
        self.open.remove(&id);
    }
}

/// The table of one accept loop. Each connection's handle is the sender of a channel its task
/// watches: dropping it (eviction) closes the connection.
type Slots = Arc<Mutex<SlotTable<oneshot::Sender<Infallible>>>>;

fn lock(slots: &Slots) -> std::sync::MutexGuard<'_, SlotTable<oneshot::Sender<Infallible>>> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks a connection busy while it lives: from a request's header to the end of its response
/// body, so that a connection is never closed in the middle of an answer.
struct Busy {
    slots: Slots,
    id: u64,
}

impl Busy {
    fn new(slots: Slots, id: u64) -> Busy {
        lock(&slots).set_busy(id, true);
        Busy { slots, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.slots).set_busy(self.id, false);
    }
}

/// A request or response body passed through, with what the guard attaches to it.
struct GuardedBody {
    inner: Body,
    /// A request body's: the body fails once it passes, and says so in the flag ([`admit`]
    /// then answers 408 whatever the handler made of the failed body).
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Arc<AtomicBool>)>,
    /// A response body's: its connection stays busy until the body is sent (or dropped).
    _busy: Option<Busy>,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if let Some((deadline, timed_out)) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("request body timed out"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection over the cap gets before it is closed: written without waiting (the
/// socket's send buffer is empty on a fresh connection), never read from.
fn over_capacity_response() -> Vec<u8> {
    let body = serde_json::json!({
        "TackerError": {
            "type": "HTTPServiceUnavailable",
            "message": "Service Unavailable: too many open connections; retry the request later.",
            "detail": "",
        }
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {RETRY_AFTER_S}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Which `Host` headers an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    /// The listen address and `--public-host`s only: the API, which a page in a browser must
    /// not reach through a rebound name.
    Named,
    /// Any: a read-only endpoint without secrets (`/metrics`), which scrapers name as they
    /// please.
    Any,
}

/// Serves `router` on `listener` behind the guard until `shutdown` resolves, then lets the
/// requests in flight finish (idle connections are closed at once).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &GuardConfig,
    hosts: Hosts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    let router = guarded(router, listen, config, hosts);
    let over_capacity = over_capacity_response();
    let slots: Slots = Arc::default();
    let mut refusals = Refusals::default();
    let mut accept_failures = Refusals::default();
    // Sent once, on shutdown; every connection's task watches it.
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // One permit per socket the loop holds, taken before an accept and given back when the
    // connection's task has dropped its socket: an evicted connection counts until it is
    // really closed, so a burst of newcomers cannot push the open sockets past the cap (and
    // the process past its open-file limit) before the evicted ones close. The one permit
    // beyond the cap is the newcomer's, which takes an idle one's place or is refused.
    let sockets = Arc::new(tokio::sync::Semaphore::new(config.connections_max + 1));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            permit = sockets.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                if let Some(failed) = accept_failures.note(tokio::time::Instant::now()) {
                    tracing::warn!(error = %e, failed, "Cannot accept connections; pausing.");
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let (handle, closed_to_make_room) = oneshot::channel::<Infallible>();
        let admitted = lock(&slots).admit(config.connections_max, handle);
        let Ok((id, evicted)) = admitted else {
            if let Some(refused) = refusals.note(tokio::time::Instant::now()) {
                tracing::warn!(
                    connections_max = config.connections_max,
                    refused,
                    "Connections refused: every connection is busy."
                );
            }
            let _ = stream.try_write(&over_capacity);
            continue;
        };
        if evicted.is_some() {
            // Dropping its handle closes it.
            tracing::debug!("Closed the oldest idle connection to make room.");
        }
        drop(evicted);
        let service = {
            let slots = slots.clone();
            let router = router.clone();
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let busy = Busy::new(slots.clone(), id);
                let router = router.clone();
                async move {
                    let response = router.oneshot(request.map(Body::new)).await?;
                    Ok::<_, Infallible>(response.map(|inner| {
                        Body::new(GuardedBody {
                            inner,
                            deadline: None,
                            _busy: Some(busy),
                        })
                    }))
                }
            })
        };
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop.clone();
        let slots = slots.clone();
        connections.spawn(async move {
            // Declared before the connection, so dropped after its socket.
            let _socket = socket;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closed_to_make_room => {}
                _ = stop.changed() => {
                    // An idle connection is closed at once (hyper would wait for a partial
                    // header); a busy one finishes its request first.
                    let busy = lock(&slots).is_busy(id);
                    if busy {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            }
            lock(&slots).close(id);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn only_json_bodies_pass() {
        let passes =
            |pairs: &[(&'static str, &'static str)]| check_content_type(&headers(pairs), true);
        assert!(passes(&[("content-type", "application/json")]).is_ok());
        assert!(passes(&[("content-type", "Application/JSON; charset=utf-8")]).is_ok());
        assert!(
            check_content_type(&headers(&[]), false).is_ok(),
            "no body, no type needed"
        );
        let refused = passes(&[("content-type", "text/plain")]).expect_err("text/plain");
        assert_eq!(refused.status().as_u16(), 415);
        assert!(refused.message().contains("text/plain"), "{refused}");
        let refused = passes(&[]).expect_err("a body without a type");
        assert!(refused.message().contains("none"), "{refused}");
        assert!(passes(&[("content-type", "application/jsonx")]).is_err());
    }

    #[test]
    fn a_body_is_declared_or_present() {
        let request = |pairs: &[(&'static str, &'static str)], body: Body| {
            let mut request = Request::new(body);
            *request.headers_mut() = headers(pairs);
            has_body(&request)
        };
        assert!(!request(&[], Body::empty()));
        assert!(!request(&[("content-length", "0")], Body::empty()));
        assert!(request(&[("content-length", "2")], Body::empty()));
        assert!(request(&[("transfer-encoding", "chunked")], Body::empty()));
        assert!(request(&[], Body::from("{}")));
    }

    #[test]
    fn hosts_are_the_listen_address_loopback_names_and_public_hosts() {
        let public: Vec<PublicHost> = ["vnfm.example.org", "API.example.org:443"]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        let loopback = AllowedHosts::new("127.0.0.1:9890".parse().unwrap(), &public);
        for host in [
            "127.0.0.1:9890",
            "localhost:9890",
            "LOCALHOST:9890",
            "vnfm.example.org",
            "vnfm.example.org:9890",
            "api.example.org:443",
        ] {
            assert!(loopback.allows(host), "{host}");
        }
        for host in [
            "rebind.evil.example",
            "rebind.evil.example:9890",
            "127.0.0.1:9891",
            "localhost",
            "vnfm.example.org:80",
            "api.example.org",
        ] {
            assert!(!loopback.allows(host), "{host}");
        }
        let routable = AllowedHosts::new("192.0.2.7:9890".parse().unwrap(), &[]);
        assert!(routable.allows("192.0.2.7:9890"));
        assert!(
            !routable.allows("localhost:9890"),
            "not listening on loopback"
        );
        let v6 = AllowedHosts::new("[::1]:9890".parse().unwrap(), &[]);
        assert!(v6.allows("[::1]:9890") && v6.allows("localhost:9890"));
    }

    #[test]
    fn a_public_host_is_a_name_and_maybe_a_port() {
        let parsed: PublicHost = "Vnfm.Example.org:8443".parse().unwrap();
        assert_eq!(
            parsed,
            PublicHost {
                host: "vnfm.example.org".into(),
                port: Some(8443)
            }
        );
        assert_eq!("[::1]".parse::<PublicHost>().unwrap().host, "[::1]");
        for bad in [
            "",
            "http://vnfm.example.org",
            "vnfm.example.org/v1.0",
            "user@vnfm.example.org",
            "vnfm.example.org:0",
            "vnfm.example.org:99999",
            "a b",
        ] {
            assert!(bad.parse::<PublicHost>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_are_logged_first_then_once_an_interval_with_their_count() {
        let start = tokio::time::Instant::now();
        let mut refusals = Refusals::default();
        assert_eq!(refusals.note(start), Some(1));
        assert_eq!(refusals.note(start + Duration::from_secs(1)), None);
        assert_eq!(refusals.note(start + Duration::from_secs(9)), None);
        assert_eq!(refusals.note(start + REFUSALS_LOG_INTERVAL), Some(3));
        assert_eq!(refusals.note(start + REFUSALS_LOG_INTERVAL * 3), Some(1));
    }

    #[test]
    fn connections_stay_within_the_open_file_limit() {
        assert_eq!(connections_max_within(CONNECTIONS_MAX_DEFAULT, 1024), 768);
        assert_eq!(connections_max_within(5000, 1024), 768);
        assert_eq!(connections_max_within(5000, 1 << 20), 5000);
        assert_eq!(connections_max_within(5000, 100), 1, "one at least");
        assert_eq!(connections_max_within(10, u64::MAX), 10);
    }

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let mut table = SlotTable::default();
        let (first, none) = table.admit(2, "first").unwrap();
        assert_eq!(none, None);
        let (second, _) = table.admit(2, "second").unwrap();
        table.set_busy(first, true);
        let (third, evicted) = table.admit(2, "third").unwrap();
        assert_eq!(
            evicted,
            Some("second"),
            "the oldest idle one, not the busy first"
        );
        table.set_busy(third, true);
        assert_eq!(table.admit(2, "fourth"), Err("fourth"), "every one busy");
        table.close(first);
        table.set_busy(second, true); // closed meanwhile: nothing happens
        assert!(table.admit(2, "fifth").is_ok());
    }

    /// `entered` is notified when `/slow` is called, which answers when `release` is.
    #[derive(Default)]
    struct Gate {
        entered: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    /// A router whose `/slow` waits at `gate`.
    fn test_router(gate: Arc<Gate>) -> Router {
        Router::new()
            .route("/fast", axum::routing::get(|| async { "fast" }))
            .route(
                "/slow",
                axum::routing::get(move || async move {
                    gate.entered.notify_one();
                    gate.release.notified().await;
                    "slow"
                }),
            )
            .route(
                "/echo",
                axum::routing::post(|body: Bytes| async move { body }),
            )
    }

    async fn send(router: &Router, request: axum::http::Request<Body>) -> Response {
        router.clone().oneshot(request).await.unwrap()
    }

    fn get(uri: &str, host: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(uri)
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    }

    const LISTEN: &str = "127.0.0.1:9890";

    #[tokio::test]
    async fn a_foreign_host_is_misdirected() {
        let router = guarded(
            test_router(Arc::default()),
            LISTEN.parse().unwrap(),
            &GuardConfig::default(),
            Hosts::Named,
        );
        let response = send(&router, get("/fast", "rebind.evil.example")).await;
        assert_eq!(response.status().as_u16(), 421);
        let response = send(&router, get("/fast", LISTEN)).await;
        assert_eq!(response.status().as_u16(), 200);

        // A side endpoint (`/metrics`) is scraped under whatever name the scraper uses.
        let side = guarded(
            test_router(Arc::default()),
            LISTEN.parse().unwrap(),
            &GuardConfig::default(),
            Hosts::Any,
        );
        let response = send(&side, get("/fast", "vnfm-host.example:9891")).await;
        assert_eq!(response.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn a_request_over_the_in_flight_cap_is_told_to_retry() {
        let gate = Arc::new(Gate::default());
        let config = GuardConfig {
            requests_in_flight_max: 1,
            ..GuardConfig::default()
        };
        let router = guarded(
            test_router(gate.clone()),
            LISTEN.parse().unwrap(),
            &config,
            Hosts::Named,
        );
        let slow = tokio::spawn({
            let router = router.clone();
            async move { send(&router, get("/slow", LISTEN)).await }
        });
        gate.entered.notified().await;
        let refused = send(&router, get("/fast", LISTEN)).await;
        assert_eq!(refused.status().as_u16(), 503);
        assert_eq!(refused.headers()[RETRY_AFTER], "1");
        gate.release.notify_one();
        assert_eq!(slow.await.unwrap().status().as_u16(), 200);
        assert_eq!(
            send(&router, get("/fast", LISTEN)).await.status().as_u16(),
            200
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_takes_too_long_is_abandoned() {
        let router = guarded(
            test_router(Arc::default()),
            LISTEN.parse().unwrap(),
            &GuardConfig::default(),
            Hosts::Named,
        );
        let started = tokio::time::Instant::now();
        let response = send(&router, get("/slow", LISTEN)).await;
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(started.elapsed(), REQUEST_TIMEOUT_DEFAULT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_refused() {
        let router = guarded(
            test_router(Arc::default()),
            LISTEN.parse().unwrap(),
            &GuardConfig::default(),
            Hosts::Named,
        );
        // A body whose first byte comes and whose rest never does.
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Bytes, Infallible>>();
        sender.unbounded_send(Ok(Bytes::from_static(b"{"))).unwrap();
        let request = axum::http::Request::post("/echo")
            .header("host", LISTEN)
            .header("content-type", "application/json")
            .body(Body::from_stream(receiver))
            .unwrap();
        let started = tokio::time::Instant::now();
        let response = send(&router, request).await;
        assert_eq!(response.status().as_u16(), 408);
        assert_eq!(started.elapsed(), REQUEST_BODY_TIMEOUT);
        drop(sender);
    }

    /// `router` served by [`serve`] on a free loopback port with `config`; answers the address
    /// and a sender that shuts the server down, and the server's task.
    async fn serve_on_loopback(
        router: Router,
        config: GuardConfig,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(listener, router, &config, Hosts::Named, async move {
                let _ = stopped.await;
            })
            .await
        });
        (address, stop, server)
    }

    /// What the server sends on `stream` until it closes it.
    async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection");
        String::from_utf8_lossy(&answer).into_owned()
    }

    async fn request(address: SocketAddr, path: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        stream
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_takes_the_oldest_idle_ones_place_or_is_refused() {
        use tokio::io::AsyncWriteExt;
        let gate = Arc::new(Gate::default());
        let config = GuardConfig {
            connections_max: 2,
            ..GuardConfig::default()
        };
        let (address, _stop, _server) = serve_on_loopback(test_router(gate.clone()), config).await;
        // A slow-loris: one header line, then nothing.
        let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /fast HTTP/1.1\r\n").await.unwrap();
        let mut busy = request(address, "/slow").await;
        gate.entered.notified().await;
        let mut fast = request(address, "/fast").await;
        assert!(read_to_close(&mut fast).await.starts_with("HTTP/1.1 200"));
        assert_eq!(
            read_to_close(&mut idle).await,
            "",
            "the idle one was closed"
        );
        // Now both slots are busy or taken: /slow, and one more /slow.
        let mut second_busy = request(address, "/slow").await;
        gate.entered.notified().await;
        let mut refused = request(address, "/fast").await;
        let answer = read_to_close(&mut refused).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
        assert!(answer.contains("too many open connections"), "{answer}");
        gate.release.notify_one();
        gate.release.notify_one();
        for stream in [&mut busy, &mut second_busy] {
            assert!(read_to_close(stream).await.starts_with("HTTP/1.1 200"));
        }
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_flight_finish_and_closes_idle_connections() {
        use tokio::io::AsyncWriteExt;
        let gate = Arc::new(Gate::default());
        let (address, stop, server) =
            serve_on_loopback(test_router(gate.clone()), GuardConfig::default()).await;
        let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /fast HTTP/1.1\r\n").await.unwrap();
        let mut busy = request(address, "/slow").await;
        gate.entered.notified().await;
        stop.send(()).unwrap();
        assert_eq!(read_to_close(&mut idle).await, "");
        assert!(!server.is_finished(), "a request is in flight");
        gate.release.notify_one();
        assert!(read_to_close(&mut busy).await.starts_with("HTTP/1.1 200"));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops once the request is answered")
            .unwrap()
            .unwrap();
    }
}
