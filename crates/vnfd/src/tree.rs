//! The document as a plain tree, read from YAML text or a JSON value under fixed limits.
//!
//! Why saphyr-parser and not serde_yaml (deprecated, and no longer a dependency):
//! - serde_yaml refuses duplicate keys, and several of Tacker's own samples repeat
//!   `mgmt_driver: noop` in one mapping (Tacker's PyYAML kept the last value);
//! - serde_yaml (libyaml) reads the whole document into events before any limit of ours can
//!   act, and libyaml's scanner is quadratic in flow nesting: 250 KiB of `{a: {a: ...` cost
//!   it over ten seconds of CPU in a release build;
//! - its alias guard (100 alias jumps per event) stops the classic "billion laughs" but not a
//!   few thousand aliases of one wide anchor, which expand 256 KiB into gigabytes.
//!
//! saphyr-parser is a maintained, pure-Rust YAML 1.2 parser that hands out one event at a
//! time and caps flow nesting at 255 itself. We build the tree from its events on an explicit
//! stack (no recursion), keep document order, let the last duplicate key win as PyYAML did,
//! and stop at a nesting depth and at a budget on the tree's size with aliases expanded.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

use crate::VNFD_BYTES_MAX;
use crate::error::VnfdError;

/// Deepest nesting of lists and mappings. Tacker's VNFDs nest about six levels
/// (`topology_template.node_templates.VDU1.properties.monitoring_policy.parameters`); 64
/// leaves room for free-form properties, and keeps the recursive walks over a tree (drop,
/// the YAML rendering of JSON input) far from the end of the stack.
const DEPTH_MAX: usize = 64;

/// What one node is charged against the budget: about its size in memory with its share of
/// its parent's vector. A string is charged its length on top.
const NODE_BYTES: usize = 64;

/// Budget for the expanded tree. An alias-free document of `VNFD_BYTES_MAX` has at most one
/// node per two bytes (`[1,1,1,...]`), i.e. 8 MiB at `NODE_BYTES`; twice that lets ordinary
/// anchors and aliases through and stops only expansion that a VNFD has no use for.
const EXPANDED_BYTES_MAX: usize = (VNFD_BYTES_MAX / 2) * NODE_BYTES * 2;

/// What saphyr-parser reports when flow nesting passes its own cap (255).
const SAPHYR_FLOW_DEPTH_ERROR: &str = "recursion limit exceeded";

/// Longest piece of a string quoted back in an error message.
const QUOTED_CHARS_MAX: usize = 40;

/// A YAML or JSON value. Mapping keys are strings; non-string scalar keys are kept as their
/// text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    /// Every number: the fields vnfm reads are small, and f64 holds them exactly.
    Number(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Map),
    /// A `{get_input: name}` whose input has no value yet: onboarding checks the rest of the
    /// template and leaves this to be resolved at VNF create (see `params`).
    Input(String),
}

/// A mapping in document order, each key once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Map {
    entries: Vec<(String, Node)>,
}

impl Map {
    /// The value of `key`; a value still waiting for its input reads as absent, so that each
    /// field falls back to what it does without one (its default, or no value).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.raw(key).filter(|node| !matches!(node, Node::Input(_)))
    }

    /// The value of `key` as written, a pending input included.
    pub(crate) fn raw(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn raw_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn entries_mut(&mut self) -> impl Iterator<Item = (&str, &mut Node)> {
        self.entries.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Node {
    /// The value as an error message shows it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Null => "nothing (null)".to_owned(),
            Node::Bool(b) => b.to_string(),
            Node::Number(n) => n.to_string(),
            Node::String(s) => quote(s),
            Node::Seq(_) => "a list".to_owned(),
            Node::Map(_) => "a mapping".to_owned(),
            Node::Input(name) => format!("the value of input {}", quote(name)),
        }
    }
}

/// `text` quoted and escaped for an error message, shortened when long.
pub(crate) fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTED_CHARS_MAX).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// Reads one YAML document.
pub(crate) fn from_yaml(text: &str) -> Result<Node, VnfdError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        remaining_bytes: EXPANDED_BYTES_MAX,
        root: None,
        documents: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            if e.info() == SAPHYR_FLOW_DEPTH_ERROR {
                refuse(*e.marker(), too_deep())
            } else {
                malformed(e.to_string())
            }
        })?;
        builder.event(event, span.start)?;
    }
    Ok(builder.root.unwrap_or(Node::Null))
}

/// Reads a JSON value. No budget is needed, as JSON has no aliases and the value is already
/// in memory; the depth limit still applies.
pub(crate) fn from_json(value: &serde_json::Value) -> Result<Node, VnfdError> {
    json_node(value, 0)
}

fn json_node(value: &serde_json::Value, depth: usize) -> Result<Node, VnfdError> {
    use serde_json::Value;

    let nested = || {
        if depth >= DEPTH_MAX {
            Err(malformed(too_deep()))
        } else {
            Ok(depth + 1)
        }
    };
    Ok(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        // Only an arbitrary-precision number has no f64; NaN is then refused where it is used.
        Value::Number(n) => Node::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Node::String(s.clone()),
        Value::Array(items) => {
            let depth = nested()?;
            Node::Seq(
                items
                    .iter()
                    .map(|item| json_node(item, depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Object(object) => {
            let depth = nested()?;
            let entries = object
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_node(v, depth)?)))
                .collect::<Result<_, VnfdError>>()?;
            Node::Map(Map { entries })
        }
    })
}

fn malformed(message: String) -> VnfdError {
    VnfdError::Malformed { message }
}

fn refuse(at: Marker, message: impl std::fmt::Display) -> VnfdError {
    malformed(format!(
        "{message} (line {}, column {})",
        at.line(),
        at.col() + 1
    ))
}

fn too_deep() -> String {
    format!("it nests lists and mappings deeper than {DEPTH_MAX} levels")
}

/// Builds the tree from parser events.
struct Builder {
    /// The lists and mappings opened and not yet closed, innermost last.
    stack: Vec<Open>,
    /// Each complete anchored node by anchor id, with what it was charged.
    anchors: HashMap<usize, (Node, usize)>,
    remaining_bytes: usize,
    root: Option<Node>,
    documents: usize,
}

struct Open {
    anchor_id: usize,
    /// The budget when it opened: what is gone since is the cost of this subtree.
    remaining_at_start: usize,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(String, Node)>,
        /// Finds a repeated key without a quadratic scan of a large mapping.
        index: HashMap<String, usize>,
        /// The key read, waiting for its value.
        key: Option<String>,
    },
}

impl Builder {
    fn event(&mut self, event: Event<'_>, at: Marker) -> Result<(), VnfdError> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(refuse(
                        at,
                        "a VNFD is one YAML document; this is a second".to_owned(),
                    ));
                }
                Ok(())
            }
            Event::Scalar(value, style, anchor_id, tag) => {
                self.scalar(value, style, anchor_id, tag.as_deref(), at)
            }
            Event::SequenceStart(anchor_id, tag) => {
                self.open(Body::Seq(Vec::new()), anchor_id, tag.as_deref(), at)
            }
            Event::MappingStart(anchor_id, tag) => {
                let body = Body::Map {
                    entries: Vec::new(),
                    index: HashMap::new(),
                    key: None,
                };
                self.open(body, anchor_id, tag.as_deref(), at)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.stack.pop() else {
                    return Err(refuse(
                        at,
                        "a list or mapping ends that never began".to_owned(),
                    ));
                };
                let cost = open.remaining_at_start - self.remaining_bytes;
                let node = match open.body {
                    Body::Seq(items) => Node::Seq(items),
                    Body::Map { entries, .. } => Node::Map(Map { entries }),
                };
                self.place(node, open.anchor_id, cost, at)
            }
            Event::Alias(anchor_id) => {
                if self.expects_key() {
                    return Err(refuse(at, "an alias cannot be a mapping key"));
                }
                let Some((node, cost)) = self.anchors.get(&anchor_id) else {
                    return Err(refuse(
                        at,
                        "an alias refers to an anchor that is not complete".to_owned(),
                    ));
                };
                let (node, cost) = (node.clone(), *cost);
                self.charge(cost, at)?;
                self.place(node, 0, cost, at)
            }
        }
    }

    fn scalar(
        &mut self,
        value: Cow<'_, str>,
        style: ScalarStyle,
        anchor_id: usize,
        tag: Option<&Tag>,
        at: Marker,
    ) -> Result<(), VnfdError> {
        let cost = NODE_BYTES.saturating_add(value.len());
        self.charge(cost, at)?;
        let suffix = core_tag(tag, &["str", "int", "float", "bool", "null"], at)?;
        let plain = style == ScalarStyle::Plain && tag.is_none();
        if self.expects_key() {
            if plain && value == "<<" {
                return Err(refuse(
                    at,
                    "merge keys (<<) are not supported; write the entries out".to_owned(),
                ));
            }
            let key = value.into_owned();
            if anchor_id != 0 {
                self.remember(anchor_id, Node::String(key.clone()), cost, at)?;
            }
            if let Some(Open {
                body: Body::Map { key: slot, .. },
                ..
            }) = self.stack.last_mut()
            {
                *slot = Some(key);
            }
            return Ok(());
        }
        let node = match suffix {
            Some("str") => Node::String(value.into_owned()),
            Some(_) => resolve_plain(&value),
            None if plain => resolve_plain(&value),
            None => Node::String(value.into_owned()),
        };
        self.place(node, anchor_id, cost, at)
    }

    fn open(
        &mut self,
        body: Body,
        anchor_id: usize,
        tag: Option<&Tag>,
        at: Marker,
    ) -> Result<(), VnfdError> {
        if self.expects_key() {
            return Err(refuse(
                at,
                "mapping keys must be plain values, not lists or mappings".to_owned(),
            ));
        }
        core_tag(tag, &["seq", "map"], at)?;
        if self.stack.len() >= DEPTH_MAX {
            return Err(refuse(at, too_deep()));
        }
        let remaining_at_start = self.remaining_bytes;
        self.charge(NODE_BYTES, at)?;
        self.stack.push(Open {
            anchor_id,
            remaining_at_start,
            body,
        });
        Ok(())
    }

    /// Puts a complete node where it belongs: the root, the next list item, or the value of
    /// the pending key, which replaces an earlier value of the same key in place, as a
    /// Python dict does.
    fn place(
        &mut self,
        node: Node,
        anchor_id: usize,
        cost: usize,
        at: Marker,
    ) -> Result<(), VnfdError> {
        if anchor_id != 0 {
            self.remember(anchor_id, node.clone(), cost, at)?;
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open {
                body: Body::Seq(items),
                ..
            }) => items.push(node),
            Some(Open {
                body:
                    Body::Map {
                        entries,
                        index,
                        key,
                    },
                ..
            }) => {
                let Some(key) = key.take() else {
                    return Err(refuse(at, "a mapping value has no key"));
                };
                if let Some(&i) = index.get(&key) {
                    entries[i].1 = node;
                } else {
                    index.insert(key.clone(), entries.len());
                    entries.push((key, node));
                }
            }
        }
        Ok(())
    }

    /// Keeps a copy of an anchored node for its aliases; the copy is charged too.
    fn remember(
        &mut self,
        anchor_id: usize,
        node: Node,
        cost: usize,
        at: Marker,
    ) -> Result<(), VnfdError> {
        self.charge(cost, at)?;
        self.anchors.insert(anchor_id, (node, cost));
        Ok(())
    }

    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Open {
                body: Body::Map { key: None, .. },
                ..
            })
        )
    }

    fn charge(&mut self, bytes: usize, at: Marker) -> Result<(), VnfdError> {
        match self.remaining_bytes.checked_sub(bytes) {
            Some(remaining) => {
                self.remaining_bytes = remaining;
                Ok(())
            }
            None => Err(refuse(
                at,
                format!(
                    "it expands to more than {} MiB once its aliases (*name) are resolved",
                    EXPANDED_BYTES_MAX / (1024 * 1024)
                ),
            )),
        }
    }
}

/// The suffix of a core-schema tag (`!!str`) among `allowed`; no tag gives `None`. Other
/// tags are refused: Tacker's TOSCA has no use for them.
fn core_tag<'t>(
    tag: Option<&'t Tag>,
    allowed: &[&str],
    at: Marker,
) -> Result<Option<&'t str>, VnfdError> {
    let Some(tag) = tag else {
        return Ok(None);
    };
    if tag.is_yaml_core_schema() && allowed.contains(&tag.suffix.as_str()) {
        return Ok(Some(tag.suffix.as_str()));
    }
    let shown = if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        tag.to_string()
    };
    Err(refuse(
        at,
        format!("the tag {} is not supported here", quote(&shown)),
    ))
}

/// A plain scalar's value under YAML 1.2's core schema, as serde_yaml read it too.
fn resolve_plain(text: &str) -> Node {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Node::Null,
        "true" | "True" | "TRUE" => Node::Bool(true),
        "false" | "False" | "FALSE" => Node::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Node::Number(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Node::Number(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Node::Number(f64::NAN),
        _ => match core_number(text) {
            Some(n) => Node::Number(n),
            None => Node::String(text.to_owned()),
        },
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`, or
/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn core_number(text: &str) -> Option<f64> {
    let radix = |digits: &str, radix: u32| {
        let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
        // Beyond u128 the value is refused later anyway; infinity says "too large".
        valid.then(|| u128::from_str_radix(digits, radix).map_or(f64::INFINITY, |v| v as f64))
    };
    if let Some(digits) = text.strip_prefix("0o") {
        return radix(digits, 8);
    }
    if let Some(digits) = text.strip_prefix("0x") {
        return radix(digits, 16);
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let mantissa_ok = all_digits(whole)
        && fraction.is_none_or(all_digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    if mantissa_ok && exponent_ok {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &Map {
        match node {
            Node::Map(map) => map,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    #[test]
    fn keeps_document_order() {
        let root = from_yaml("b: 1\na: 2\nc: 3\n").unwrap();
        let keys: Vec<&str> = map(&root).iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn last_duplicate_wins_in_the_first_place() {
        let root = from_yaml("a: 1\nb: 2\na: 3\n").unwrap();
        let entries: Vec<(&str, &Node)> = map(&root).iter().collect();
        assert_eq!(
            entries,
            [("a", &Node::Number(3.0)), ("b", &Node::Number(2.0))]
        );
    }

    #[test]
    fn scalars_keep_their_yaml_types() {
        let root = from_yaml("t: true\nn: ~\nf: 0.5\ns: '3'\nk: [x]\n").unwrap();
        let root = map(&root);
        assert_eq!(root.get("t"), Some(&Node::Bool(true)));
        assert_eq!(root.get("n"), Some(&Node::Null));
        assert_eq!(root.get("f"), Some(&Node::Number(0.5)));
        assert_eq!(root.get("s"), Some(&Node::String("3".to_owned())));
        assert_eq!(
            root.get("k"),
            Some(&Node::Seq(vec![Node::String("x".to_owned())]))
        );
    }

    #[test]
    fn aliases_resolve_within_budget() {
        let root = from_yaml("a: &x {p: 1}\nb: *x\n").unwrap();
        let root = map(&root);
        assert_eq!(root.get("a"), root.get("b"));
    }

    #[test]
    fn refuses_what_a_vnfd_has_no_use_for() {
        for (text, expected) in [
            ("a: !foo 1\n", "the tag \"!foo\" is not supported"),
            (
                "a: !!binary aGk=\n",
                "the tag \"!!binary\" is not supported",
            ),
            ("a: &x {p: 1}\nb:\n  <<: *x\n", "merge keys"),
            ("? [a]\n: 1\n", "mapping keys must be plain values"),
            ("a: 1\n---\nb: 2\n", "one YAML document"),
            ("a: &x [*x]\n", "not complete"),
        ] {
            match from_yaml(text) {
                Err(VnfdError::Malformed { message }) => {
                    assert!(message.contains(expected), "{text:?}: {message}");
                }
                other => panic!("{text:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn core_schema() {
        let root = from_yaml(
            "a: 0x1F\nb: 0o17\nc: -1.5e3\nd: .5\ne: 1_000\nf: !!str 5\ng: !!int '7'\nh: \"<<\"\ni: 1e\n",
        )
        .unwrap();
        let root = map(&root);
        assert_eq!(root.get("a"), Some(&Node::Number(31.0)));
        assert_eq!(root.get("b"), Some(&Node::Number(15.0)));
        assert_eq!(root.get("c"), Some(&Node::Number(-1500.0)));
        assert_eq!(root.get("d"), Some(&Node::Number(0.5)));
        assert_eq!(root.get("e"), Some(&Node::String("1_000".to_owned())));
        assert_eq!(root.get("f"), Some(&Node::String("5".to_owned())));
        assert_eq!(root.get("g"), Some(&Node::Number(7.0)));
        assert_eq!(root.get("h"), Some(&Node::String("<<".to_owned())));
        assert_eq!(root.get("i"), Some(&Node::String("1e".to_owned())));
    }

    #[test]
    fn json_depth_is_limited() {
        let mut value = serde_json::json!(1);
        for _ in 0..=DEPTH_MAX {
            value = serde_json::json!([value]);
        }
        assert!(matches!(
            from_json(&value),
            Err(VnfdError::Malformed { .. })
        ));
    }
}
