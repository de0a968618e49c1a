//! Onboarding's parser: turns a Tacker TOSCA VNFD, as YAML text or as the JSON object that
//! python-tackerclient sends, into the normalised [`events::spec::VnfdSpec`], and says which
//! field is wrong when it cannot.
//!
//! This crate is a pure function of its input: it never does I/O, never touches NATS, and
//! never reads the environment. It is the only place in vnfm that reads TOSCA; every other
//! component reads the `VnfdSpec` from the log.

mod error;
mod tosca;
mod tree;
mod yaml;

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
}

/// Parses a VNFD given as YAML text.
pub fn parse_yaml(text: &str) -> Result<ParsedVnfd, VnfdError> {
    check_size(text)?;
    let root = tree::from_yaml(text)?;
    let spec = tosca::vnfd_spec(&root)?;
    Ok(ParsedVnfd {
        spec,
        template_yaml: text.to_owned(),
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
    let spec = tosca::vnfd_spec(&root)?;
    let template_yaml = yaml::render(value)?;
    check_size(&template_yaml)?;
    Ok(ParsedVnfd {
        spec,
        template_yaml,
    })
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
