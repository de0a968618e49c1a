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
    "page_size",
    "sort_dir",
    "sort_key",
];

/// Items on a page when the request names no `limit`: Tacker's lists were unpaged, so this is
/// large enough that a list of a project's usual VNFs stays one page, and small enough that
/// one answer stays well under a megabyte (a listed VNF renders to about 600 bytes).
pub(crate) const LIST_PAGE_DEFAULT_ITEMS: usize = 1_000;
/// The most items on one page (a larger `limit` is refused naming this, and `limit=0`,
/// Neutron's "no limit", means this): the same bound as the default, so that no request
/// renders more than the default page.
pub(crate) const LIST_PAGE_MAX_ITEMS: usize = 1_000;
/// The most `sort_key`s one list takes: more keys than any item has fields only cost work.
const SORT_KEYS_MAX: usize = 8;

/// A list request's query: Tacker's filters (`key=value`, repeated keys meaning any of the
/// values), its sort (`sort_key`/`sort_dir`), its page (`limit`, `marker`, `page_reverse`;
/// python-tackerclient's `--page-size` arrives as `page_size`) and `fields` (which keys to
/// return).
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

    /// The answer to a list of `collection` (e.g. `vnfs`, served at `/v1.0/{collection}`):
    /// the items that pass every filter, in the requested order (else as given), the page the
    /// request asks for, each cut to the requested `fields`; with Tacker's
    /// `<collection>_links` (rel `next`, and `previous` after the first page) when more
    /// follow or precede. Each item must have an `id`: the marker names one.
    ///
    /// A filter on a key an item does not have is ignored, as Tacker ignored filters on
    /// unknown attributes.
    pub(crate) fn answer(&self, items: Vec<Value>, collection: &str) -> Result<Value, ApiError> {
        let items = self.sorted(self.filtered(items))?;
        let ids: Vec<Value> = items
            .iter()
            .map(|item| item.get("id").cloned().unwrap_or(Value::Null))
            .collect();
        self.page_answer(&ids, items, collection, Some)
    }

    /// Whether the query only pages (and cuts fields): no filter, no `sort_key`. Its page
    /// then depends on nothing but the items' order and ids, so a list can cut the page before
    /// it renders any item ([`ListQuery::answer_rendering_page`]).
    pub(crate) fn only_pages(&self) -> bool {
        self.pairs
            .iter()
            .all(|(key, _)| NON_FILTER_PARAMETERS.contains(&key.as_str()) && key != "sort_key")
    }

    /// [`ListQuery::answer`] for a query that [`only_pages`](ListQuery::only_pages), of items
    /// given in order as `(id, entry)`: the page is cut by the ids, and only its entries are
    /// rendered (`render`; an entry it makes nothing of is left out of the page).
    pub(crate) fn answer_rendering_page<T>(
        &self,
        entries: Vec<(String, T)>,
        collection: &str,
        mut render: impl FnMut(T) -> Option<Value>,
    ) -> Result<Value, ApiError> {
        let ids: Vec<Value> = entries
            .iter()
            .map(|(id, _)| Value::String(id.clone()))
            .collect();
        self.page_answer(&ids, entries, collection, |(_, entry)| render(entry))
    }

    /// The page of `entries` (whose ids are `ids`, in order) the request asks for, each
    /// rendered (`render`; an entry it makes nothing of is left out), as [`respond`] answers
    /// it.
    ///
    /// [`respond`]: ListQuery::respond
    fn page_answer<T>(
        &self,
        ids: &[Value],
        entries: Vec<T>,
        collection: &str,
        render: impl FnMut(T) -> Option<Value>,
    ) -> Result<Value, ApiError> {
        let (window, links) = self.window(ids)?;
        let items = entries
            .into_iter()
            .skip(window.start)
            .take(window.len())
            .filter_map(render)
            .collect();
        Ok(self.respond(items, links, collection))
    }

    /// A list's answer: a page's items, each cut to the requested `fields`, and the links
    /// beside it.
    fn respond(&self, items: Vec<Value>, links: Links, collection: &str) -> Value {
        let fields = self.values("fields");
        let mut answer = serde_json::Map::new();
        answer.insert(
            collection.to_owned(),
            items
                .into_iter()
                .map(|item| select(item, &fields))
                .collect(),
        );
        if !links.is_empty() {
            let links = links
                .into_iter()
                .map(|(rel, query)| {
                    serde_json::json!({"rel": rel, "href": format!("/v1.0/{collection}?{query}")})
                })
                .collect();
            answer.insert(format!("{collection}_links"), Value::Array(links));
        }
        Value::Object(answer)
    }

    /// The answer to a list whose page was cut where its items were read (the events, read
    /// page by page from the log): the items that pass every filter, in the order given, each
    /// cut to the requested `fields`, with `<collection>_links` to the page before
    /// `previous_before` and after `next_after` (markers) where there is one.
    pub(crate) fn answer_cut(
        &self,
        items: Vec<Value>,
        collection: &str,
        limit: usize,
        previous_before: Option<String>,
        next_after: Option<String>,
    ) -> Value {
        let links = [
            next_after.map(|marker| ("next", self.link_query(limit, &marker, false))),
            previous_before.map(|marker| ("previous", self.link_query(limit, &marker, true))),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.respond(self.filtered(items), links, collection)
    }

    /// A cut page's size, marker and direction: `limit` (else `page_size`, else
    /// `default_items`; `0` means `max_items`), refused over `max_items`; the `marker` as an
    /// unsigned number; `page_reverse`.
    pub(crate) fn cut_page(
        &self,
        default_items: usize,
        max_items: usize,
        unit: &str,
    ) -> Result<(usize, Option<u64>, bool), ApiError> {
        let limit = self.page_limit(default_items, max_items, unit)?;
        let marker = match self.last("marker") {
            None => None,
            Some(marker) => Some(marker.parse::<u64>().map_err(|_| {
                ApiError::invalid_input(format!(
                    "marker: must be the id of one of the {unit} (a whole number), not {marker:?}"
                ))
            })?),
        };
        Ok((limit, marker, self.reverse()?))
    }

    /// `page_reverse`: true or false (any case), false when absent.
    fn reverse(&self) -> Result<bool, ApiError> {
        match self.last("page_reverse") {
            None => Ok(false),
            Some(flag) if flag.eq_ignore_ascii_case("true") => Ok(true),
            Some(flag) if flag.eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(ApiError::invalid_input(format!(
                "page_reverse: must be true or false, not {other:?}"
            ))),
        }
    }

    /// The items that pass every filter.
    fn filtered(&self, items: Vec<Value>) -> Vec<Value> {
        let mut filters: Vec<(&str, Vec<&str>)> = Vec::new();
        for (key, _) in &self.pairs {
            let key = key.as_str();
            if NON_FILTER_PARAMETERS.contains(&key) || filters.iter().any(|(k, _)| *k == key) {
                continue;
            }
            filters.push((key, self.values(key)));
        }
        items
            .into_iter()
            .filter(|item| {
                filters.iter().all(|(key, wanted)| match item.get(*key) {
                    None => true,
                    Some(value) => wanted.iter().any(|w| matches(value, w)),
                })
            })
            .collect()
    }

    /// `items` ordered by the `sort_key`s, each ascending unless its `sort_dir` (the one at
    /// the same position; `asc` where none is) says `desc`; as given without `sort_key`.
    fn sorted(&self, mut items: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        let keys = self.values("sort_key");
        let dirs = self.values("sort_dir");
        if keys.len() > SORT_KEYS_MAX {
            return Err(ApiError::invalid_input(format!(
                "sort_key: at most {SORT_KEYS_MAX} keys, not {}",
                keys.len()
            )));
        }
        if dirs.len() > keys.len() {
            return Err(ApiError::invalid_input(format!(
                "sort_dir: {} given for {} sort_key(s); give one per sort_key",
                dirs.len(),
                keys.len()
            )));
        }
        let mut order = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let descending = match dirs.get(i).copied().unwrap_or("asc") {
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(ApiError::invalid_input(format!(
                        "sort_dir: must be \"asc\" or \"desc\", not {other:?}"
                    )));
                }
            };
            order.push((*key, descending));
        }
        if !order.is_empty() {
            items.sort_by(|a, b| {
                order
                    .iter()
                    .map(|(key, descending)| {
                        let ordering = compare(a.get(*key), b.get(*key));
                        if *descending {
                            ordering.reverse()
                        } else {
                            ordering
                        }
                    })
                    .find(|ordering| ordering.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        Ok(items)
    }

    /// Where the page the request asks for lies among items whose ids are `ids` (in order):
    /// at most `limit` items after the `marker` (before it with `page_reverse`), and the links
    /// to the pages beside it.
    fn window(&self, ids: &[Value]) -> Result<(std::ops::Range<usize>, Links), ApiError> {
        let limit = self.limit()?;
        let reverse = self.reverse()?;
        let marker = self.last("marker");
        let at = match marker {
            None => None,
            Some(marker) => Some(
                ids.iter()
                    .position(|id| !id.is_null() && matches(id, marker))
                    .ok_or_else(
                || {
                    ApiError::invalid_input(format!(
                        "marker: no item {marker} in this list (deleted since the last page?); list again without a marker"
                    ))
                },
            )?),
        };
        // The window [start, end) of the items on this page.
        let (start, end) = match (at, reverse) {
            (None, false) => (0, limit.min(ids.len())),
            (None, true) => (ids.len().saturating_sub(limit), ids.len()),
            (Some(at), false) => (at + 1, (at + 1 + limit).min(ids.len())),
            (Some(at), true) => (at.saturating_sub(limit), at),
        };
        let mut links = Vec::new();
        let id_at = |i: usize| ids.get(i).filter(|id| !id.is_null()).map(text);
        if end < ids.len()
            && end > start
            && let Some(last) = id_at(end - 1)
        {
            links.push(("next", self.link_query(limit, &last, false)));
        }
        if start > 0
            && end > start
            && let Some(first) = id_at(start)
        {
            links.push(("previous", self.link_query(limit, &first, true)));
        }
        Ok((start..end, links))
    }

    /// The page size asked for (`limit`, else `page_size`), within [`LIST_PAGE_MAX_ITEMS`].
    fn limit(&self) -> Result<usize, ApiError> {
        self.page_limit(LIST_PAGE_DEFAULT_ITEMS, LIST_PAGE_MAX_ITEMS, "items")
    }

    /// The page size asked for (`limit`, else `page_size`): `default_items` when neither is
    /// given, `max_items` for 0 (Neutron's "no limit"), refused above `max_items`.
    fn page_limit(
        &self,
        default_items: usize,
        max_items: usize,
        unit: &str,
    ) -> Result<usize, ApiError> {
        let (name, given) = match (self.last("limit"), self.last("page_size")) {
            (Some(limit), _) => ("limit", limit),
            (None, Some(size)) => ("page_size", size),
            (None, None) => return Ok(default_items),
        };
        let limit: usize = given.parse().map_err(|_| {
            ApiError::invalid_input(format!(
                "{name}: must be a whole number of {unit} (0..={max_items}), not {given:?}"
            ))
        })?;
        match limit {
            0 => Ok(max_items),
            limit if limit > max_items => Err(ApiError::invalid_input(format!(
                "{name}: at most {max_items} {unit} a page, not {limit}"
            ))),
            limit => Ok(limit),
        }
    }

    /// The last value given for `key`.
    fn last(&self, key: &str) -> Option<&str> {
        self.values(key).pop()
    }

    /// The query of a link to the page beside this one: this query's filters, sort and fields,
    /// with `limit` and the `marker` (and `page_reverse` for the previous page).
    fn link_query(&self, limit: usize, marker: &str, reverse: bool) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &self.pairs {
            if !matches!(
                key.as_str(),
                "limit" | "page_size" | "marker" | "page_reverse"
            ) {
                query.append_pair(key, value);
            }
        }
        query.append_pair("limit", &limit.to_string());
        query.append_pair("marker", marker);
        if reverse {
            query.append_pair("page_reverse", "True");
        }
        query.finish()
    }
}

/// The queries of the pages beside a page, by their `rel` (`next`, `previous`).
type Links = Vec<(&'static str, String)>;

/// A value as a query string carries it.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The order of two fields' values: absent or null first, then booleans, numbers, strings,
/// and anything else by its JSON text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    fn rank(value: Option<&Value>) -> u8 {
        match value {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(Value::Array(_) | Value::Object(_)) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&b.as_f64().unwrap_or(f64::NAN)),
        (Some(Value::String(a)), Some(Value::String(b))) => a.cmp(b),
        (
            Some(a @ (Value::Array(_) | Value::Object(_))),
            Some(b @ (Value::Array(_) | Value::Object(_))),
        ) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
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

    #[test]
    fn a_cut_page_refuses_a_limit_over_its_maximum_and_a_marker_that_is_no_number() {
        let cut = |pairs: &[(&str, &str)]| query(pairs).cut_page(100, 1000, "events");
        assert_eq!(cut(&[]).unwrap(), (100, None, false));
        assert_eq!(
            cut(&[("limit", "0"), ("marker", "7001"), ("page_reverse", "True")]).unwrap(),
            (1000, Some(7001), true)
        );
        assert_eq!(cut(&[("page_size", "5")]).unwrap(), (5, None, false));
        for (pairs, said) in [
            (
                &[("limit", "1001")][..],
                "limit: at most 1000 events a page, not 1001",
            ),
            (
                &[("page_size", "-1")][..],
                "page_size: must be a whole number of events (0..=1000), not \"-1\"",
            ),
            (
                &[("marker", "abc")][..],
                "marker: must be the id of one of the events (a whole number), not \"abc\"",
            ),
        ] {
            assert_eq!(cut(pairs).unwrap_err().message(), said);
        }
    }

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The ids of `query`'s answer over `items`, and its links by rel.
    fn listed(
        query_pairs: &[(&str, &str)],
        items: &[Value],
    ) -> (Vec<Value>, Vec<(String, String)>) {
        let answer = query(query_pairs).answer(items.to_vec(), "vnfs").unwrap();
        let ids = answer["vnfs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        let links = answer
            .get("vnfs_links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|link| {
                (
                    link["rel"].as_str().unwrap().to_owned(),
                    link["href"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (ids, links)
    }

    fn three() -> Vec<Value> {
        vec![
            json!({"id": "a", "name": "one", "status": "ACTIVE", "n": 1}),
            json!({"id": "b", "name": "two", "status": "ERROR", "n": 2}),
            json!({"id": "c", "name": "three", "status": "ACTIVE", "n": 3}),
        ]
    }

    #[test]
    fn filters_select_and_cut() {
        let items = three();
        let ids = |q: &[(&str, &str)]| listed(q, &items).0;
        assert_eq!(ids(&[("name", "two")]), vec![json!("b")]);
        assert_eq!(
            ids(&[("status", "ACTIVE"), ("fields", "id")]),
            vec![json!("a"), json!("c")]
        );
        assert_eq!(
            ids(&[("name", "one"), ("name", "three")]),
            vec![json!("a"), json!("c")]
        );
        assert_eq!(ids(&[("n", "3")]), vec![json!("c")]);
        assert_eq!(ids(&[("colour", "red")]).len(), 3);
        let cut = query(&[("fields", "id"), ("fields", "name")])
            .answer(items.clone(), "vnfs")
            .unwrap();
        assert_eq!(cut["vnfs"][0], json!({"id": "a", "name": "one"}));
        assert!(cut.get("vnfs_links").is_none(), "{cut}");
    }

    /// A query that only pages answers the same whether every item is rendered first or only
    /// those of its page; one that filters or sorts is not such a query.
    #[test]
    fn a_page_cut_before_rendering_is_the_page_cut_after() {
        let items: Vec<Value> = (0..7)
            .map(|n| json!({"id": format!("id-{n}"), "name": format!("vnf-{n}"), "n": n}))
            .collect();
        let entries: Vec<(String, usize)> = (0..7).map(|n| (format!("id-{n}"), n)).collect();
        for pairs in [
            &[][..],
            &[("limit", "3")][..],
            &[("limit", "3"), ("marker", "id-2")][..],
            &[("limit", "3"), ("marker", "id-5"), ("page_reverse", "true")][..],
            &[("page_reverse", "true"), ("limit", "2")][..],
            &[("limit", "0"), ("fields", "name")][..],
            &[("page_size", "4"), ("marker", "id-6")][..],
        ] {
            let query = query(pairs);
            assert!(query.only_pages(), "{pairs:?}");
            let mut rendered = Vec::new();
            let lazy = query
                .answer_rendering_page(entries.clone(), "vnfs", |n| {
                    rendered.push(n);
                    Some(items[n].clone())
                })
                .unwrap();
            assert_eq!(
                lazy,
                query.answer(items.clone(), "vnfs").unwrap(),
                "{pairs:?}"
            );
            assert_eq!(
                rendered.len(),
                lazy["vnfs"].as_array().unwrap().len(),
                "{pairs:?}"
            );
        }
        let unknown = query(&[("marker", "id-9")]);
        assert_eq!(
            unknown
                .answer_rendering_page(entries, "vnfs", |n| Some(items[n].clone()))
                .unwrap_err()
                .message(),
            unknown.answer(items.clone(), "vnfs").unwrap_err().message()
        );
        for pairs in [
            &[("name", "vnf-1")][..],
            &[("sort_key", "n")][..],
            &[("id", "id-1")][..],
        ] {
            assert!(!query(pairs).only_pages(), "{pairs:?}");
        }
    }

    #[test]
    fn pages_follow_the_marker_and_link_the_pages_beside() {
        let items = three();
        let (ids, links) = listed(
            &[("limit", "2"), ("status", "ACTIVE"), ("fields", "id")],
            &items,
        );
        assert_eq!(ids, vec![json!("a"), json!("c")]);
        assert!(links.is_empty(), "the filter leaves one page: {links:?}");

        let (ids, links) = listed(&[("limit", "2")], &items);
        assert_eq!(ids, vec![json!("a"), json!("b")]);
        assert_eq!(
            links,
            vec![("next".to_owned(), "/v1.0/vnfs?limit=2&marker=b".to_owned())]
        );
        let (ids, links) = listed(&[("limit", "2"), ("marker", "b")], &items);
        assert_eq!(ids, vec![json!("c")]);
        assert_eq!(
            links,
            vec![(
                "previous".to_owned(),
                "/v1.0/vnfs?limit=2&marker=c&page_reverse=True".to_owned()
            )]
        );
        let (ids, _) = listed(
            &[("limit", "2"), ("marker", "c"), ("page_reverse", "True")],
            &items,
        );
        assert_eq!(ids, vec![json!("a"), json!("b")]);
        // python-tackerclient's `vnf-list --page-size 2` sends `page_size`; the links carry
        // the other parameters on.
        let (ids, links) = listed(
            &[("page_size", "1"), ("sort_key", "n"), ("sort_dir", "desc")],
            &items,
        );
        assert_eq!(ids, vec![json!("c")]);
        assert_eq!(
            links,
            vec![(
                "next".to_owned(),
                "/v1.0/vnfs?sort_key=n&sort_dir=desc&limit=1&marker=c".to_owned()
            )]
        );
    }

    #[test]
    fn sort_keys_order_the_list_before_it_is_paged() {
        let items = three();
        let ids = |q: &[(&str, &str)]| listed(q, &items).0;
        assert_eq!(
            ids(&[("sort_key", "name")]),
            vec![json!("a"), json!("c"), json!("b")]
        );
        assert_eq!(
            ids(&[
                ("sort_key", "status"),
                ("sort_dir", "desc"),
                ("sort_key", "n"),
                ("sort_dir", "desc")
            ]),
            vec![json!("b"), json!("c"), json!("a")]
        );
        assert_eq!(
            ids(&[("sort_key", "name"), ("limit", "1"), ("marker", "c")]),
            vec![json!("b")]
        );
    }

    #[test]
    fn a_default_page_and_a_maximum_bound_every_list() {
        let many: Vec<Value> = (0..LIST_PAGE_MAX_ITEMS + 5)
            .map(|i| json!({"id": i.to_string()}))
            .collect();
        let (ids, links) = listed(&[], &many);
        assert_eq!(ids.len(), LIST_PAGE_DEFAULT_ITEMS);
        assert_eq!(links.len(), 1);
        assert_eq!(
            listed(&[("limit", &LIST_PAGE_MAX_ITEMS.to_string())], &many)
                .0
                .len(),
            LIST_PAGE_MAX_ITEMS
        );
        assert_eq!(
            listed(&[("limit", "0")], &many).0.len(),
            LIST_PAGE_MAX_ITEMS
        );
    }

    #[test]
    fn bad_page_parameters_are_named() {
        let refused = |q: &[(&str, &str)]| {
            query(q)
                .answer(three(), "vnfs")
                .unwrap_err()
                .message()
                .to_owned()
        };
        assert!(refused(&[("limit", "-1")]).starts_with("limit: must be a whole number"));
        assert!(refused(&[("page_size", "x")]).starts_with("page_size: must be a whole number"));
        assert_eq!(
            refused(&[("limit", &(LIST_PAGE_MAX_ITEMS + 1).to_string())]),
            format!(
                "limit: at most {LIST_PAGE_MAX_ITEMS} items a page, not {}",
                LIST_PAGE_MAX_ITEMS + 1
            )
        );
        assert!(refused(&[("marker", "zz")]).starts_with("marker: no item zz in this list"));
        assert!(refused(&[("sort_key", "n"), ("sort_dir", "up")]).starts_with("sort_dir: must be"));
        assert!(refused(&[("sort_dir", "asc")]).starts_with("sort_dir: 1 given for 0 sort_key"));
        assert!(refused(&[("page_reverse", "maybe")]).starts_with("page_reverse: must be"));
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
