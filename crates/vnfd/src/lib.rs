//! Onboarding's parser: turns a Tacker TOSCA VNFD, as YAML text or as the JSON object that
//! python-tackerclient sends, into the normalised [`events::spec::VnfdSpec`], and says which
//! field is wrong when it cannot.
//!
//! This crate is a pure function of its input: it never does I/O, never touches NATS, and
//! never reads the environment. It is the only place in vnfm that reads TOSCA; every other
//! component reads the `VnfdSpec` from the log.

mod error;
mod grammar;
mod params;
mod tosca;
mod tree;
mod yaml;

use std::collections::BTreeMap;

use events::spec::VnfdSpec;

pub use error::VnfdError;

/// Largest VNFD accepted, as YAML text. The VNFD travels inside one event on NATS, whose
/// default `max_payload` is 1 MiB; 256 KiB leaves room for JSON escaping and the envelope,
/// and is some 50 times the size of Tacker's largest sample.
pub const VNFD_BYTES_MAX: usize = 256 * 1024;

/// A VNFD that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedVnfd {
    pub spec: VnfdSpec,
    /// The template as YAML text, to store and to show back as `attributes.vnfd`: the
    /// user's own text for YAML input, a rendering of the object for JSON input.
    pub template_yaml: String,
    /// Each VDU's `user_data`, by VDU name (VDUs without one are absent): a secret, so never
    /// in `spec`; the caller seals it.
    pub user_data: BTreeMap<String, String>,
}

/// What a VNF is made of: the VNFD resolved with the VNF's parameters ([`resolve_vnf`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedVnf {
    pub spec: VnfdSpec,
    /// Each VDU's `user_data`, by VDU name, its inputs resolved: a secret, never in `spec`.
    pub user_data: BTreeMap<String, String>,
}

/// Parses a VNFD given as YAML text, for onboarding: each `get_input` takes its input's
/// default, and the fields fed by an input without one are checked at VNF create
/// ([`resolve`]).
pub fn parse_yaml(text: &str) -> Result<ParsedVnfd, VnfdError> {
    check_size(text)?;
    let root = tree::from_yaml(text)?;
    let (spec, user_data) = spec_with(root, &params::Values::Defaults)?;
    Ok(ParsedVnfd {
        spec,
        template_yaml: text.to_owned(),
        user_data,
    })
}

/// Parses a VNFD given as JSON, as Tacker's `attributes.vnfd` carries it: an object (what
/// python-tackerclient sends), or a string holding YAML text (what Tacker also accepted).
pub fn parse_json(value: &serde_json::Value) -> Result<ParsedVnfd, VnfdError> {
    if let serde_json::Value::String(text) = value {
        return parse_yaml(text);
    }
    // Converting first also bounds the depth, which the YAML rendering below relies on.
    let root = tree::from_json(value)?;
    let (spec, user_data) = spec_with(root, &params::Values::Defaults)?;
    let template_yaml = yaml::render(value)?;
    check_size(&template_yaml)?;
    Ok(ParsedVnfd {
        spec,
        template_yaml,
        user_data,
    })
}

/// The spec of a VNF made from the VNFD `template_yaml` (as [`ParsedVnfd::template_yaml`]
/// holds it) with a VNF create's `attributes.param_values`: an object, or YAML or JSON text
/// holding one, as python-tackerclient's `vnf-create --param-file` sends it. Every input
/// must then have a value (given, or its default); [`VnfdError::Parameter`] names the one
/// that does not fit. Values for names the VNFD does not take are ignored, as Tacker did.
pub fn resolve(
    template_yaml: &str,
    param_values: Option<&serde_json::Value>,
) -> Result<VnfdSpec, VnfdError> {
    resolve_vnf(template_yaml, param_values).map(|resolved| resolved.spec)
}

/// As [`resolve`], with each VDU's `user_data` (resolved with the same parameters) beside
/// the spec.
pub fn resolve_vnf(
    template_yaml: &str,
    param_values: Option<&serde_json::Value>,
) -> Result<ResolvedVnf, VnfdError> {
    check_size(template_yaml)?;
    let root = tree::from_yaml(template_yaml)?;
    let given = match param_values {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => None,
        Some(serde_json::Value::String(text)) => {
            check_size(text)?;
            Some(tree::from_yaml(text).map_err(|e| param_values_error(&e.to_string()))?)
        }
        Some(value) => Some(tree::from_json(value)?),
    };
    let given = match &given {
        None | Some(tree::Node::Null) => None,
        Some(tree::Node::Map(map)) => Some(map),
        Some(other) => {
            return Err(param_values_error(&format!(
                "must map input names to values, not {}",
                other.describe()
            )));
        }
    };
    let (spec, user_data) = spec_with(root, &params::Values::Given(given))?;
    Ok(ResolvedVnf { spec, user_data })
}

fn param_values_error(message: &str) -> VnfdError {
    VnfdError::Parameter {
        name: String::new(),
        message: message.to_owned(),
    }
}

fn spec_with(
    mut root: tree::Node,
    values: &params::Values,
) -> Result<(VnfdSpec, BTreeMap<String, String>), VnfdError> {
    let inputs = params::input_names(&root);
    params::resolve(&mut root, values)?;
    let mut spec = tosca::vnfd_spec(&root)?;
    spec.inputs = inputs;
    Ok((spec, tosca::user_data(&root)))
}

/// YAML text (a VNFD, or any document) as the JSON value python-tackerclient would send for
/// it, read by the same bounded parser as [`parse_yaml`].
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, VnfdError> {
    check_size(text)?;
    Ok(yaml::json(&tree::from_yaml(text)?))
}

fn check_size(text: &str) -> Result<(), VnfdError> {
    if text.len() > VNFD_BYTES_MAX {
        return Err(VnfdError::TooLarge {
            len_bytes: text.len(),
        });
    }
    Ok(())
}
