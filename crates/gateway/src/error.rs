//! The gateway's one error type, and how it reaches the client: Tacker's status codes and its
//! body `{"TackerError": {"type", "message", "detail"}}`.

use std::fmt::Display;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::keyring::KeyringError;
use events::nats_error::{NatsError, NatsErrorKind};
use events::store::StoreError;

/// Why a request failed. Client mistakes say what was wrong and where; internal errors are
/// logged once, where they are made, and answer an opaque message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    /// Tacker's exception name, e.g. `VNFNotFound`.
    kind: &'static str,
    message: String,
}

/// Tacker's answer (its API base's `_populate_tenant_id`): 400, with its words.
impl From<crate::auth::ForeignTenant> for ApiError {
    fn from(error: crate::auth::ForeignTenant) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", error.to_string())
    }
}

impl ApiError {
    /// The request body is not a JSON object we can read (empty, not JSON, too long).
    pub(crate) fn malformed_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedRequestBody", message)
    }

    /// A field of the request is missing or has the wrong type or value; `message` names it.
    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    /// The VNFD at `location` (a dotted path in the request body) was refused by the parser.
    /// The message carries the full path to the offending field.
    pub(crate) fn invalid_vnfd(location: &str, error: &vnfd::VnfdError) -> Self {
        let message = match error {
            vnfd::VnfdError::Invalid { field, message } if !error.field().is_empty() => {
                format!("{location}.{field}: {message}")
            }
            other => format!("{location}: {other}"),
        };
        Self::new(StatusCode::BAD_REQUEST, "InvalidVNFD", message)
    }

    pub(crate) fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }

    pub(crate) fn vnf_not_found(vnf_id: &str) -> Self {
        Self::not_found("VNFNotFound", format!("VNF {vnf_id} could not be found"))
    }

    pub(crate) fn vnfd_not_found(vnfd_id: &str) -> Self {
        Self::not_found("VNFDNotFound", format!("VNFD {vnfd_id} could not be found"))
    }

    /// Tacker's `VimNotFoundException`.
    pub(crate) fn vim_not_found(vim_id: &str) -> Self {
        Self::not_found(
            "VimNotFoundException",
            format!("VIM {vim_id} could not be found"),
        )
    }

    pub(crate) fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }

    /// No token accepted (401), or no back end to ask (503).
    pub(crate) fn unauthenticated(error: &crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match error {
            AuthError::Missing | AuthError::Invalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "HTTPUnauthorized",
                format!(
                    "Authentication required: {error}; send a valid X-Auth-Token header or Authorization: Bearer"
                ),
            ),
            AuthError::Unavailable(_) => {
                tracing::warn!(error = %error, "Request refused: cannot authenticate.");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "HTTPServiceUnavailable",
                    "Service Unavailable: the authentication service did not answer; retry the request later.",
                )
            }
        }
    }

    /// An alarm for `vnf_id` came without the VNF's alarm key, or with another.
    pub(crate) fn wrong_alarm_key(vnf_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "HTTPUnauthorized",
            format!(
                "the alarm key of VNF {vnf_id} is missing or wrong: post to the alarm URL its show \
                 gives, or send that key as trigger.params.credential"
            ),
        )
    }

    /// The caller is known and may not do this (Tacker's policy check).
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "HTTPForbidden", message)
    }

    pub(crate) fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTPMethodNotAllowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// A request body that is not declared `application/json`; `received` is the declared
    /// type, or `none`.
    pub(crate) fn unsupported_media_type(received: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "HTTPUnsupportedMediaType",
            format!("Content-Type {received} is not supported; send the body as application/json"),
        )
    }

    /// The `Host` header names neither the address the gateway listens on nor a configured
    /// public host (a page that rebound its DNS name to this host); `host` is what was sent.
    pub(crate) fn misdirected(host: &str) -> Self {
        Self::new(
            StatusCode::MISDIRECTED_REQUEST,
            "HTTPMisdirectedRequest",
            format!(
                "Host {host} is not served here; use the address the API listens on or one of its --public-host names"
            ),
        )
    }

    /// The gateway is at one of its limits; `message` says which. Sent with `Retry-After`.
    pub(crate) fn busy(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "HTTPServiceUnavailable",
            message,
        )
    }

    /// The client did not send its request body in time.
    pub(crate) fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "HTTPRequestTimeout", message)
    }

    /// Something on our side failed: logged here, once, and answered without details.
    pub(crate) fn internal(context: &str, error: &dyn Display) -> Self {
        tracing::error!(context, error = %error, "Request failed.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "HTTPInternalServerError",
            "Request Failed: internal server error while processing your request.",
        )
    }

    /// NATS did not answer in time, or nobody served the request: ours, and passing (a
    /// restart, a leader election), so the client may retry later. Logged here, once.
    pub(crate) fn unavailable(context: &str, error: &dyn Display) -> Self {
        tracing::warn!(context, error = %error, "Request failed: the event store is unavailable.");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "HTTPServiceUnavailable",
            "Service Unavailable: the event store did not answer in time; retry the request later.",
        )
    }

    /// A store failure: a lost optimistic-concurrency race that survived the store's retries
    /// is the client's to retry (409); a NATS failure as [`ApiError::nats`] says; anything
    /// else is ours (500).
    pub(crate) fn store(context: &str, error: &StoreError) -> Self {
        match error {
            StoreError::Conflict => Self::lost_race(),
            StoreError::Nats(e) => Self::nats(context, e),
            StoreError::Encode(_)
            | StoreError::NotProvisioned(_)
            | StoreError::Misconfigured(_) => Self::internal(context, error),
        }
    }

    /// A data key that could not be read or made: NATS as [`ApiError::nats`] says; a key that
    /// does not open with this gateway's master key is ours (500, naming the aggregate in the
    /// log).
    pub(crate) fn keyring(context: &str, error: &KeyringError) -> Self {
        match error {
            KeyringError::Nats(e) => Self::nats(context, e),
            KeyringError::Secret(_) => Self::internal(context, error),
        }
    }

    /// A NATS failure, by its kind: a lost compare-and-set is the client's to retry (409); a
    /// timeout or an absent server answers 503; anything else is ours (500).
    pub(crate) fn nats(context: &str, error: &NatsError) -> Self {
        match error.kind() {
            NatsErrorKind::Conflict => Self::lost_race(),
            NatsErrorKind::TimedOut | NatsErrorKind::Unavailable => {
                Self::unavailable(context, error)
            }
            NatsErrorKind::NotFound | NatsErrorKind::TooLarge | NatsErrorKind::Other => {
                Self::internal(context, error)
            }
        }
    }

    fn lost_race() -> Self {
        Self::conflict(
            "Conflict",
            "the resource kept changing while the request was decided; retry it",
        )
    }

    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "TackerError": {
                "type": self.kind,
                "message": self.message,
                "detail": "",
            }
        });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};

    use super::*;

    #[test]
    fn invalid_vnfd_names_the_whole_path() {
        let error = vnfd::VnfdError::Invalid {
            field: "topology_template.node_templates.VDU1".into(),
            message: "must be a map".into(),
        };
        let api = ApiError::invalid_vnfd("vnfd.attributes.vnfd", &error);
        assert_eq!(api.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            api.message(),
            "vnfd.attributes.vnfd.topology_template.node_templates.VDU1: must be a map"
        );
        let whole = vnfd::VnfdError::Malformed {
            message: "not YAML".into(),
        };
        let api = ApiError::invalid_vnfd("vnf.vnfd_template", &whole);
        assert_eq!(
            api.message(),
            "vnf.vnfd_template: the VNFD is not usable YAML: not YAML"
        );
    }

    #[test]
    fn a_refused_token_is_401_and_an_unavailable_back_end_503() {
        use crate::auth::AuthError;
        for (error, status, says) in [
            (
                AuthError::Missing,
                StatusCode::UNAUTHORIZED,
                "no X-Auth-Token given",
            ),
            (AuthError::Invalid, StatusCode::UNAUTHORIZED, "is not valid"),
            (
                AuthError::Unavailable("keystone: connection refused".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "retry the request later",
            ),
        ] {
            let api = ApiError::unauthenticated(&error);
            assert_eq!(api.status(), status, "{error}");
            assert!(api.message().contains(says), "{}", api.message());
            assert!(
                !api.message().contains("connection refused"),
                "{}",
                api.message()
            );
        }
    }

    #[test]
    fn a_store_conflict_is_the_clients_to_retry() {
        let api = ApiError::store("test", &StoreError::Conflict);
        assert_eq!(api.status(), StatusCode::CONFLICT);
    }

    fn store_failed(kind: PublishErrorKind) -> StoreError {
        NatsError::new("appending", PublishError::new(kind)).into()
    }

    #[tokio::test]
    async fn nats_errors_answer_by_their_kind() {
        let cases = [
            (PublishErrorKind::WrongLastSequence, 409, "Conflict"),
            (PublishErrorKind::TimedOut, 503, "HTTPServiceUnavailable"),
            (
                PublishErrorKind::StreamNotFound,
                503,
                "HTTPServiceUnavailable",
            ),
            (
                PublishErrorKind::MaxPayloadExceeded,
                500,
                "HTTPInternalServerError",
            ),
            (PublishErrorKind::Other, 500, "HTTPInternalServerError"),
        ];
        for (kind, status, tacker_type) in cases {
            let api = ApiError::store("appending a VNF command", &store_failed(kind));
            assert_eq!(
                (api.status().as_u16(), api.kind()),
                (status, tacker_type),
                "{kind:?}"
            );
        }
        let response =
            ApiError::store("test", &store_failed(PublishErrorKind::TimedOut)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let error = &body["TackerError"];
        assert_eq!(error["type"], "HTTPServiceUnavailable");
        assert!(
            error["message"].as_str().unwrap().contains("retry"),
            "{body}"
        );
    }
}
