//! JSON and YAML the other way round from parsing: a VNFD given as a JSON object is shown back
//! (`attributes.vnfd`) and stored as YAML text, and YAML text is read into JSON the way this
//! crate's parser reads it. Pure: text and values in, text and values out.

use saphyr::{Mapping, Scalar, Yaml, YamlEmitter};
use serde_json::Value;

use crate::VnfdError;
use crate::tree::Node;

/// `value` as a YAML document, strings with line breaks as literal blocks (as VNFD authors
/// write `user_data` scripts). The caller bounds its depth first (`tree::from_json`).
pub(crate) fn render(value: &Value) -> Result<String, VnfdError> {
    let mut text = String::new();
    let mut emitter = YamlEmitter::new(&mut text);
    emitter.multiline(true);
    emitter
        .dump(&yaml(value))
        .map_err(|e| VnfdError::Malformed {
            message: format!("cannot render it as YAML: {e}"),
        })?;
    // The emitter starts with a document marker and ends without a line break.
    let body = text.strip_prefix("---\n").unwrap_or(&text);
    Ok(format!("{body}\n"))
}

fn yaml(value: &Value) -> Yaml<'_> {
    Yaml::Value(match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Integer(i),
            // Beyond i64 (or fractional): YAML's float, as serde_json keeps it.
            None => Scalar::FloatingPoint(n.as_f64().unwrap_or(f64::NAN).into()),
        },
        Value::String(s) => Scalar::String(s.as_str().into()),
        Value::Array(items) => return Yaml::Sequence(items.iter().map(yaml).collect()),
        Value::Object(object) => {
            return Yaml::Mapping(
                object
                    .iter()
                    .map(|(k, v)| (Yaml::Value(Scalar::String(k.as_str().into())), yaml(v)))
                    .collect::<Mapping>(),
            );
        }
    })
}

/// The largest integer an f64 holds exactly (2^53): whole numbers up to it read back as
/// JSON integers.
const EXACT_INTEGER_MAX: f64 = 9_007_199_254_740_992.0;

/// A node as the JSON value python-tackerclient would send for it: whole numbers as integers.
pub(crate) fn json(node: &Node) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(n) if n.fract() == 0.0 && n.abs() <= EXACT_INTEGER_MAX => {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "whole and within ±2^53: exact in i64"
            )]
            let whole = *n as i64;
            Value::from(whole)
        }
        Node::Number(n) => Value::from(*n),
        Node::String(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(json).collect()),
        Node::Map(map) => Value::Object(map.iter().map(|(k, v)| (k.to_owned(), json(v))).collect()),
        Node::Input(name) => serde_json::json!({ "get_input": name }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tree;

    #[test]
    fn json_renders_as_yaml_that_reads_back_the_same() {
        let value = json!({
            "tosca_definitions_version": "tosca_simple_profile_for_nfv_1_0_0",
            "count": 3,
            "ratio": 0.5,
            "on": true,
            "nothing": null,
            "looks_like_a_number": "10",
            "looks_like_a_bool": "yes",
            "script": "#!/bin/sh\necho hello\n",
            "list": [1, "two", {"three": 3}],
            "empty": {},
        });
        let text = render(&value).unwrap();
        assert!(text.contains("script: |"), "{text}");
        let read = json(&tree::from_yaml(&text).unwrap());
        assert_eq!(read, value, "{text}");
    }
}
