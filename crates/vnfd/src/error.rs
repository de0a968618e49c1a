use crate::VNFD_BYTES_MAX;

/// Why a VNFD was refused. Every kind is the client's mistake; its `Display` says what was
/// wrong and [`VnfdError::field`] says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VnfdError {
    /// The text is longer than [`VNFD_BYTES_MAX`].
    #[error("the VNFD is {len_bytes} bytes long; at most {VNFD_BYTES_MAX} are accepted")]
    TooLarge { len_bytes: usize },
    /// Not one well-formed YAML document; or one that nests deeper, or expands its aliases
    /// further, than a VNFD needs; or one that uses YAML a VNFD has no use for (custom tags,
    /// merge keys, lists or mappings as keys).
    #[error("the VNFD is not usable YAML: {message}")]
    Malformed { message: String },
    /// Well-formed, but not a VNFD vnfm can run.
    #[error("{}{message}", field_prefix(field))]
    Invalid { field: String, message: String },
    /// A VNF's `param_values` entry `name` does not fit the VNFD's inputs: unknown, missing
    /// (no default), of the wrong type, or outside its constraints. An empty `name`: the
    /// `param_values` as a whole.
    #[error("{}{message}", field_prefix(name))]
    Parameter { name: String, message: String },
}

impl VnfdError {
    /// Where the problem is: a dotted path from the document root, with `[i]` for a list
    /// item, e.g. `topology_template.node_templates.VDU1.properties.monitoring_policy.parameters.count`.
    /// Empty when the document as a whole is at fault.
    pub fn field(&self) -> &str {
        match self {
            VnfdError::TooLarge { .. }
            | VnfdError::Malformed { .. }
            | VnfdError::Parameter { .. } => "",
            VnfdError::Invalid { field, .. } => field,
        }
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// A [`VnfdError::Invalid`] at `field`.
pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> VnfdError {
    VnfdError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}
