//! Parameters: a template's `topology_template.inputs` (type, default, constraints), the
//! `{get_input: name}` that may stand for any value under `node_templates` and `policies`,
//! and a VNF's `param_values` checked against the inputs. Pure: a tree in, the tree with
//! every `get_input` replaced out.

use std::collections::HashMap;

use crate::error::{VnfdError, invalid};
use crate::grammar;
use crate::tree::{Map, Node, quote};

const INPUTS: &str = "topology_template.inputs";
/// The sections of `topology_template` where a value may be `{get_input: name}`.
const WITH_INPUTS: [&str; 2] = ["node_templates", "policies"];
const GET_INPUT: &str = "get_input";

/// The keys of an input definition (TOSCA's parameter definition).
const INPUT_KEYS: &[&str] = &[
    "type",
    "description",
    "default",
    "constraints",
    "required",
    "entry_schema",
    "status",
];

/// TOSCA's value types an input may declare.
const INPUT_TYPES: &[&str] = &[
    "string",
    "integer",
    "float",
    "boolean",
    "list",
    "map",
    "version",
    "timestamp",
    "range",
    "scalar-unit.size",
    "scalar-unit.time",
    "scalar-unit.frequency",
];

/// TOSCA's constraint operators. `pattern` is read but not enforced: vnfm has no regular
/// expression engine, and Tacker's VNFDs do not use it.
const CONSTRAINTS: &[&str] = &[
    "equal",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "in_range",
    "valid_values",
    "length",
    "min_length",
    "max_length",
    "pattern",
];

/// Where the values of the inputs come from.
pub(crate) enum Values<'a> {
    /// Onboarding: each input's default; one without a default stays pending
    /// ([`Node::Input`]) and the fields it feeds are checked at VNF create.
    Defaults,
    /// A VNF create: its `param_values` (absent: none), else each input's default; an input
    /// with neither is refused.
    Given(Option<&'a Map>),
}

/// One input as declared.
struct Input<'a> {
    name: &'a str,
    type_name: &'a str,
    constraints: Vec<(&'a str, &'a Node, String)>,
    field: String,
}

/// Replaces every `get_input` under `topology_template` with its value. Also checks the
/// inputs' definitions and defaults, and every given parameter.
pub(crate) fn resolve(root: &mut Node, values: &Values) -> Result<(), VnfdError> {
    let Node::Map(root) = root else {
        return Ok(());
    };
    let Some(Node::Map(topology)) = root.raw_mut("topology_template") else {
        return Ok(());
    };
    let mut referenced = Vec::new();
    for (key, section) in topology.iter() {
        if WITH_INPUTS.contains(&key) {
            references(section, &mut referenced);
        }
    }
    let resolved = input_values(topology.raw("inputs"), &referenced, values)?;
    for (key, section) in topology.entries_mut() {
        if WITH_INPUTS.contains(&key) {
            substitute(section, &format!("topology_template.{key}"), &resolved)?;
        }
    }
    Ok(())
}

/// The names of a template's inputs, in template order.
/// The names of a template's inputs, in template order, then those only a `get_input`
/// names. Read before [`resolve`] replaces the `get_input`s.
pub(crate) fn input_names(root: &Node) -> Vec<String> {
    let Node::Map(root) = root else {
        return Vec::new();
    };
    let Some(Node::Map(topology)) = root.raw("topology_template") else {
        return Vec::new();
    };
    let mut names: Vec<String> = match topology.raw("inputs") {
        Some(Node::Map(inputs)) => inputs.iter().map(|(name, _)| name.to_owned()).collect(),
        _ => Vec::new(),
    };
    let mut referenced = Vec::new();
    for (key, section) in topology.iter() {
        if WITH_INPUTS.contains(&key) {
            references(section, &mut referenced);
        }
    }
    for name in referenced {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Each input's value: given, else its default, else (onboarding only) pending. An input a
/// `get_input` names (in `referenced`) without declaring it is taken as given, of any type:
/// Tacker's reservation sample does so and its functional test passes the value.
fn input_values(
    inputs: Option<&Node>,
    referenced: &[String],
    values: &Values,
) -> Result<HashMap<String, Node>, VnfdError> {
    let inputs = match inputs {
        None | Some(Node::Null) => None,
        Some(Node::Map(inputs)) => Some(inputs),
        Some(other) => {
            return Err(invalid(
                INPUTS,
                format!(
                    "must be a mapping of input names to definitions, not {}",
                    other.describe()
                ),
            ));
        }
    };
    let given = match values {
        Values::Defaults => None,
        Values::Given(given) => *given,
    };
    // A name the VNFD does not take is ignored, as Tacker (tosca-parser) ignored it: one
    // param file often serves several VNFDs.
    let mut resolved = HashMap::new();
    for (name, definition) in inputs.iter().flat_map(|inputs| inputs.iter()) {
        let input = input(name, definition)?;
        let default = match definition_map(definition).and_then(|d| d.raw("default")) {
            None | Some(Node::Null) => None,
            Some(default) => Some(
                check_value(&input, default)
                    .map_err(|message| invalid(format!("{}.default", input.field), message))?,
            ),
        };
        let value = match (given.and_then(|given| given.raw(name)), values) {
            (Some(value), _) if !matches!(value, Node::Null) => check_value(&input, value)
                .map_err(|message| VnfdError::Parameter {
                    name: name.to_owned(),
                    message,
                })?,
            _ => match (default, values) {
                (Some(default), _) => default,
                (None, Values::Defaults) => Node::Input(name.to_owned()),
                (None, Values::Given(_)) => {
                    return Err(VnfdError::Parameter {
                        name: name.to_owned(),
                        message: format!(
                            "the VNFD's input {} has no default: param_values must give it",
                            quote(name)
                        ),
                    });
                }
            },
        };
        resolved.insert(name.to_owned(), value);
    }
    for name in referenced {
        if resolved.contains_key(name) {
            continue;
        }
        let value = match (given.and_then(|given| given.raw(name)), values) {
            (Some(value), _) if !matches!(value, Node::Null) => value.clone(),
            (_, Values::Defaults) => Node::Input(name.clone()),
            (_, Values::Given(_)) => {
                return Err(VnfdError::Parameter {
                    name: name.clone(),
                    message: format!(
                        "the VNFD takes {} (get_input) and declares no default: param_values \
                         must give it",
                        quote(name)
                    ),
                });
            }
        };
        resolved.insert(name.clone(), value);
    }
    Ok(resolved)
}

/// The input names that `get_input`s under `node` refer to, once each.
fn references(node: &Node, found: &mut Vec<String>) {
    if let Some(Node::String(name)) = get_input(node) {
        if !found.contains(name) {
            found.push(name.clone());
        }
        return;
    }
    match node {
        Node::Seq(items) => items.iter().for_each(|item| references(item, found)),
        Node::Map(map) => map.iter().for_each(|(_, value)| references(value, found)),
        _ => {}
    }
}

fn definition_map(definition: &Node) -> Option<&Map> {
    match definition {
        Node::Map(map) => Some(map),
        _ => None,
    }
}

fn input<'a>(name: &'a str, definition: &'a Node) -> Result<Input<'a>, VnfdError> {
    let field = format!("{INPUTS}.{name}");
    let Some(definition) = definition_map(definition) else {
        return Err(invalid(
            field,
            format!(
                "must be a mapping with the input's type, not {}",
                definition.describe()
            ),
        ));
    };
    if let Some((key, _)) = definition.iter().find(|(key, _)| !INPUT_KEYS.contains(key)) {
        return Err(invalid(
            format!("{field}.{key}"),
            format!(
                "unknown input key {}; expected one of {}",
                quote(key),
                INPUT_KEYS.join(", ")
            ),
        ));
    }
    let type_field = format!("{field}.type");
    let type_name = match definition.raw("type") {
        Some(Node::String(t)) if INPUT_TYPES.contains(&t.as_str()) => t.as_str(),
        // Tacker's samples declare inputs without a type; TOSCA reads them as strings.
        None | Some(Node::Null) => "string",
        Some(other) => {
            return Err(invalid(
                type_field,
                format!(
                    "unknown input type {}; expected one of {}",
                    other.describe(),
                    INPUT_TYPES.join(", ")
                ),
            ));
        }
    };
    let constraints_field = format!("{field}.constraints");
    let constraints = match definition.raw("constraints") {
        None | Some(Node::Null) => Vec::new(),
        Some(Node::Seq(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| constraint(item, &format!("{constraints_field}[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                constraints_field,
                format!("must be a list of constraints, not {}", other.describe()),
            ));
        }
    };
    Ok(Input {
        name,
        type_name,
        constraints,
        field,
    })
}

fn constraint<'a>(item: &'a Node, field: &str) -> Result<(&'a str, &'a Node, String), VnfdError> {
    let entry = match item {
        Node::Map(map) if map.len() == 1 => map.iter().next(),
        _ => None,
    };
    let Some((operator, operand)) = entry else {
        return Err(invalid(
            field,
            format!(
                "a constraint is a mapping of one operator to its operand, not {}",
                item.describe()
            ),
        ));
    };
    if !CONSTRAINTS.contains(&operator) {
        return Err(invalid(
            format!("{field}.{operator}"),
            format!(
                "unknown constraint {}; expected one of {}",
                quote(operator),
                CONSTRAINTS.join(", ")
            ),
        ));
    }
    Ok((operator, operand, format!("{field}.{operator}")))
}

/// `value` as the input's type wants it, checked against its constraints; else why not.
fn check_value(input: &Input, value: &Node) -> Result<Node, String> {
    let value = typed(input.type_name, value).ok_or_else(|| {
        format!(
            "input {} is of type {}; {} is not one",
            quote(input.name),
            input.type_name,
            value.describe()
        )
    })?;
    for (operator, operand, _) in &input.constraints {
        if let Some(broken) = violates(operator, operand, &value) {
            return Err(format!("input {}: {broken}", quote(input.name)));
        }
    }
    Ok(value)
}

/// A value of TOSCA type `type_name`, read as tosca-parser did (a number or a boolean may be
/// written as a string); `None` when it is not one.
fn typed(type_name: &str, value: &Node) -> Option<Node> {
    let as_written = matches!(
        (type_name, value),
        ("string", Node::String(_)) | ("list", Node::Seq(_)) | ("map", Node::Map(_))
    ) || matches!(
        (type_name, value),
        (
            "version"
                | "timestamp"
                | "range"
                | "scalar-unit.size"
                | "scalar-unit.time"
                | "scalar-unit.frequency",
            Node::String(_) | Node::Number(_) | Node::Seq(_),
        )
    );
    if as_written {
        return Some(value.clone());
    }
    match type_name {
        "integer" => grammar::integer(value).map(|n| Node::Number(n as f64)),
        "float" => grammar::number(value).map(Node::Number),
        "boolean" => grammar::boolean(value).map(Node::Bool),
        _ => None,
    }
}

/// What is wrong when `value` breaks the constraint `operator: operand`.
fn violates(operator: &str, operand: &Node, value: &Node) -> Option<String> {
    let number = |node: &Node| match node {
        Node::Number(n) => Some(*n),
        _ => None,
    };
    let length = || match value {
        Node::String(s) => i64::try_from(s.chars().count()).ok(),
        Node::Seq(items) => i64::try_from(items.len()).ok(),
        Node::Map(map) => i64::try_from(map.len()).ok(),
        _ => None,
    };
    let compare = |holds: fn(f64, f64) -> bool, words: &str| match (number(value), number(operand))
    {
        (Some(v), Some(o)) if holds(v, o) => None,
        _ => Some(format!(
            "{} must be {words} {}",
            value.describe(),
            operand.describe()
        )),
    };
    match operator {
        "equal" if value == operand => None,
        "equal" => Some(format!(
            "{} must equal {}",
            value.describe(),
            operand.describe()
        )),
        "greater_than" => compare(|v, o| v > o, "greater than"),
        "greater_or_equal" => compare(|v, o| v >= o, "at least"),
        "less_than" => compare(|v, o| v < o, "less than"),
        "less_or_equal" => compare(|v, o| v <= o, "at most"),
        "in_range" => {
            let bounds = match operand {
                Node::Seq(b) if b.len() == 2 => number(&b[0]).zip(number(&b[1])),
                _ => None,
            };
            match (number(value), bounds) {
                (Some(v), Some((low, high))) if low <= v && v <= high => None,
                (_, Some((low, high))) => {
                    Some(format!("{} must lie in [{low}, {high}]", value.describe()))
                }
                (_, None) => Some("in_range takes a list of two numbers".to_owned()),
            }
        }
        "valid_values" => match operand {
            Node::Seq(valid) if valid.contains(value) => None,
            Node::Seq(valid) => Some(format!(
                "{} is not one of {}",
                value.describe(),
                valid
                    .iter()
                    .map(Node::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Some("valid_values takes a list".to_owned()),
        },
        "length" | "min_length" | "max_length" => {
            let holds = match (length(), grammar::integer(operand)) {
                (Some(len), Some(bound)) => match operator {
                    "length" => len == bound,
                    "min_length" => len >= bound,
                    _ => len <= bound,
                },
                _ => false,
            };
            (!holds).then(|| {
                format!(
                    "{} breaks {operator}: {}",
                    value.describe(),
                    operand.describe()
                )
            })
        }
        // `pattern`: see CONSTRAINTS.
        _ => None,
    }
}

/// Replaces each `{get_input: name}` under `node` (at `field`) with the input's value.
fn substitute(
    node: &mut Node,
    field: &str,
    resolved: &HashMap<String, Node>,
) -> Result<(), VnfdError> {
    if let Some(reference) = get_input(node) {
        let name = match reference {
            Node::String(name) => name.clone(),
            other => {
                return Err(invalid(
                    format!("{field}.{GET_INPUT}"),
                    format!("must name an input, not {}", other.describe()),
                ));
            }
        };
        let value = resolved.get(&name).ok_or_else(|| {
            invalid(
                format!("{field}.{GET_INPUT}"),
                format!("{} is not one of {INPUTS}", quote(&name)),
            )
        })?;
        *node = value.clone();
        return Ok(());
    }
    match node {
        Node::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{field}[{i}]"), resolved)?;
            }
        }
        Node::Map(map) => {
            for (key, value) in map.entries_mut() {
                substitute(value, &format!("{field}.{key}"), resolved)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The operand of `node` when it is `{get_input: ...}`.
fn get_input(node: &Node) -> Option<&Node> {
    match node {
        Node::Map(map) if map.len() == 1 => map.raw(GET_INPUT),
        _ => None,
    }
}
