//! Reading requests: bodies as JSON objects with named-field errors, query parameters as
//! Tacker's filters, and resource ids.
//!
//! Bodies are read here rather than through axum's extractors so that every refusal, a body
//! over the limit included, answers in Tacker's error shape.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The largest request body read. Well above [`vnfd::VNFD_BYTES_MAX`] (a VNFD sent as a JSON
/// object is larger than its YAML, and may be sent with escaping) so that an over-long VNFD
/// is refused by the parser, which says so precisely; small enough that no request can make
/// the gateway hold much memory.
pub const REQUEST_BODY_BYTES_MAX: usize = 1024 * 1024;

const _: () = assert!(REQUEST_BODY_BYTES_MAX > vnfd::VNFD_BYTES_MAX);

/// Reads a request body that must hold one JSON object.
pub(crate) async fn json_object(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let too_long = || {
        ApiError::malformed_body(format!(
            "the request body is longer than {REQUEST_BODY_BYTES_MAX} bytes"
        ))
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > REQUEST_BODY_BYTES_MAX as u64) {
        return Err(too_long());
    }
    // Fails only when the body outgrows the limit or the client goes away mid-body; the
    // latter gets no answer anyway.
    let bytes = axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX)
        .await
        .map_err(|_| too_long())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_body(
            "the request body is empty; expected a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::malformed_body(format!("the request body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::malformed_body(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// The JSON object at `key` of `parent`, which lives at `path` (for messages).
pub(crate) fn required_object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    match parent.get(key) {
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(ApiError::invalid_input(format!(
            "{}: must be a JSON object",
            join(path, key)
        ))),
        None => Err(ApiError::invalid_input(format!(
            "{}: required",
            join(path, key)
        ))),
    }
}

/// The top-level object of a body, e.g. `{"vnf": {...}}`.
pub(crate) fn root_object<'a>(
    body: &'a Value,
    key: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    let root = body
        .as_object()
        .ok_or_else(|| ApiError::malformed_body("the request body must be a JSON object"))?;
    required_object(root, key, "")
}

/// An optional string field; `null` and `""` count as absent.
pub(crate) fn optional_string(
    parent: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, ApiError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::invalid_input(format!(
            "{}: must be a string",
            join(path, key)
        ))),
    }
}

pub(crate) fn required_string(
    parent: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<String, ApiError> {
    optional_string(parent, key, path)?.ok_or_else(|| {
        ApiError::invalid_input(format!("{}: required, a non-empty string", join(path, key)))
    })
}

/// An optional JSON-object field, `{}` when absent or `null`.
pub(crate) fn object_or_empty(
    parent: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Value, ApiError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(value @ Value::Object(_)) => Ok(value.clone()),
        Some(_) => Err(ApiError::invalid_input(format!(
            "{}: must be a JSON object",
            join(path, key)
        ))),
    }
}

/// A VNFD as Tacker carried it: a TOSCA document as a JSON object, or YAML text.
pub(crate) fn parse_template(value: &Value, path: &str) -> Result<vnfd::ParsedVnfd, ApiError> {
    if !(value.is_object() || value.is_string()) {
        return Err(ApiError::invalid_input(format!(
            "{path}: must be a TOSCA document, as a JSON object or a YAML string"
        )));
    }
    vnfd::parse_json(value).map_err(|e| ApiError::invalid_vnfd(path, &e))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// True for an id vnfm could have issued. Every id vnfm issues is a UUID; checking the shape
/// keeps user input out of subject and key names (where `*`, `>` or `.` would change what is
/// read).
pub(crate) fn is_resource_id(id: &str) -> bool {
    // The hyphenated form only: `try_parse` also takes braced and `urn:uuid:` spellings.
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Query parameters that shape a list rather than filter it.
const NON_FILTER_PARAMETERS: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort_dir",
    "sort_key",
];

/// A list request's query: Tacker's filters (`key=value`, repeated keys meaning any of the
/// values) and `fields` (which keys to return).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pairs: Vec<(String, String)>,
}

impl ListQuery {
    pub(crate) fn new(pairs: Vec<(String, String)>) -> Self {
        ListQuery { pairs }
    }

    /// Every value given for `key`.
    pub(crate) fn values(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Drops every filter on `key`.
    pub(crate) fn without(mut self, key: &str) -> Self {
        self.pairs.retain(|(k, _)| k != key);
        self
    }

    /// Keeps the items that pass every filter, then cuts each to the requested `fields`.
    ///
    /// A filter on a key an item does not have is ignored, as Tacker ignored filters on
    /// unknown attributes.
    pub(crate) fn apply(&self, items: Vec<Value>) -> Vec<Value> {
        let mut filters: Vec<(&str, Vec<&str>)> = Vec::new();
        for (key, _) in &self.pairs {
            let key = key.as_str();
            if NON_FILTER_PARAMETERS.contains(&key) || filters.iter().any(|(k, _)| *k == key) {
                continue;
            }
            filters.push((key, self.values(key)));
        }
        let fields = self.values("fields");
        items
            .into_iter()
            .filter(|item| {
                filters.iter().all(|(key, wanted)| match item.get(*key) {
                    None => true,
                    Some(value) => wanted.iter().any(|w| matches(value, w)),
                })
            })
            .map(|item| select(item, &fields))
            .collect()
    }
}

fn matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(text) => text == wanted,
        Value::Null => wanted.is_empty(),
        Value::Number(number) => number.to_string() == wanted,
        Value::Bool(flag) => flag.to_string() == wanted,
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn select(item: Value, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return item;
    }
    match item {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(key, _)| fields.contains(&key.as_str()))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn filters_select_and_cut() {
        let items = vec![
            json!({"id": "a", "name": "one", "status": "ACTIVE", "n": 1}),
            json!({"id": "b", "name": "two", "status": "ERROR", "n": 2}),
            json!({"id": "c", "name": "three", "status": "ACTIVE", "n": 3}),
        ];
        let ids = |q: ListQuery| -> Vec<Value> {
            q.apply(items.clone())
                .into_iter()
                .map(|i| i["id"].clone())
                .collect()
        };
        assert_eq!(ids(query(&[("name", "two")])), vec![json!("b")]);
        assert_eq!(
            ids(query(&[("status", "ACTIVE"), ("fields", "id")])),
            vec![json!("a"), json!("c")]
        );
        assert_eq!(
            ids(query(&[("name", "one"), ("name", "three")])),
            vec![json!("a"), json!("c")]
        );
        assert_eq!(ids(query(&[("n", "3")])), vec![json!("c")]);
        assert_eq!(ids(query(&[("colour", "red")])).len(), 3);
        let cut = query(&[("fields", "id"), ("fields", "name")]).apply(items.clone());
        assert_eq!(cut[0], json!({"id": "a", "name": "one"}));
    }

    #[test]
    fn resource_ids_are_uuids() {
        assert!(is_resource_id("5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11"));
        for bad in [
            "",
            "*",
            ">",
            "a.b",
            "vnf1",
            "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11.x",
            "{5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11}",
            "5b3c0a408d0c4a7a9d556a7d2c6c0b11",
        ] {
            assert!(!is_resource_id(bad), "{bad}");
        }
    }

    #[test]
    fn field_errors_name_the_path() {
        let body = json!({"vnf": {"name": 3, "attributes": []}});
        let vnf = root_object(&body, "vnf").unwrap();
        let error = required_string(vnf, "name", "vnf").unwrap_err();
        assert_eq!(error.message(), "vnf.name: must be a string");
        let error = object_or_empty(vnf, "attributes", "vnf").unwrap_err();
        assert_eq!(error.message(), "vnf.attributes: must be a JSON object");
        let error = required_string(vnf, "vnfd_id", "vnf").unwrap_err();
        assert_eq!(error.message(), "vnf.vnfd_id: required, a non-empty string");
        let error = root_object(&body, "vnfd").unwrap_err();
        assert_eq!(error.message(), "vnfd: required");
    }
}
