//! Sealing the secret-bearing fields of a VNFD or a VNF before they are appended, so that the
//! log, which keeps everything for ever, never holds them in clear (issue 11). Pure but for
//! the random nonces and keys it draws: it reads and writes no file and no stream.
//!
//! Each aggregate has a data key of its own; [`DataKey::wrap`] seals it with the master key,
//! bound to the aggregate's id, to be kept outside the lifecycle stream, and destroying the
//! wrapped key makes the aggregate's sealed fields unreadable for good (crypto-shredding).
//! [`seal_secrets`] walks a JSON document and replaces every secret-bearing field's value with
//! a [`SEALED_TAG`] object (ChaCha20-Poly1305, a random nonce, the field's path as associated
//! data, so a sealed value cannot be moved to another field); [`open_secrets`] reverses it.
//! [`reveal`] is what a reader of the API is shown: the opened values for a caller who may
//! see them, [`HIDDEN`] for everybody else and for a value whose key is gone.
//!
//! The keys' storage is [`keyring`](crate::keyring)'s; the master key's file,
//! [`credentials`](crate::credentials)'.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

/// The key under which a sealed value's parts are stored; no VNFD or VNF field has this name.
pub const SEALED_TAG: &str = "$sealed";
/// What a caller is shown in place of a secret it may not see, or that can no longer be opened.
pub const HIDDEN: &str = "<secret: hidden>";
/// The sealing scheme of [`SEALED_TAG`] values this build writes.
const SCHEME: &str = "chacha20poly1305-v1";
/// Fields whose whole value is secret, whatever it holds (Tacker's VNFD `user_data`, VDU
/// `config`, and a VNF's `config` and `param_values`).
const SECRET_FIELDS: [&str; 4] = ["user_data", "config", "param_values", "param_values_json"];
/// Words that make any field secret when its name contains them, in any case.
const SECRET_WORDS: [&str; 4] = ["password", "secret", "key", "token"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the system's random source failed")]
    Random,
    #[error("a sealed value at {path} cannot be opened: {reason}")]
    Unopenable { path: String, reason: String },
}

/// A 256-bit key: the master key, or one aggregate's data key.
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<DataKey, SecretError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::Random)?;
        Ok(DataKey(bytes))
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.0).expect("a 32-byte ChaCha20 key"),
        )
    }

    /// The key as 64 hex digits: the master key file's contents.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// The key written by [`to_hex`](Self::to_hex); `None` for anything but 64 hex digits.
    pub fn from_hex(text: &str) -> Option<DataKey> {
        hex_decode(text.trim())?.try_into().ok().map(DataKey)
    }

    /// `self` sealed with `master` for the aggregate `aggregate_id` (hex), to be stored
    /// outside the log.
    pub fn wrap(&self, master: &DataKey, aggregate_id: &str) -> Result<String, SecretError> {
        let sealed = seal_bytes(master, &self.0, aggregate_id)?;
        Ok(hex_encode(&sealed))
    }

    /// The data key `wrapped` holds, sealed with `master` for `aggregate_id`.
    pub fn unwrap(
        wrapped: &str,
        master: &DataKey,
        aggregate_id: &str,
    ) -> Result<DataKey, SecretError> {
        let unopenable = |reason: &str| SecretError::Unopenable {
            path: format!("the data key of {aggregate_id}"),
            reason: reason.to_owned(),
        };
        let bytes = hex_decode(wrapped).ok_or_else(|| unopenable("not hex"))?;
        let key =
            open_bytes(master, &bytes, aggregate_id).ok_or_else(|| unopenable("wrong key"))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| unopenable("not a 256-bit key"))?;
        Ok(DataKey(key))
    }
}

/// Whether a field named `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_FIELDS.contains(&lower.as_str()) || SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Whether `document` has a secret-bearing field anywhere (so that sealing it needs a key).
pub fn holds_secrets(document: &Value) -> bool {
    match document {
        Value::Object(fields) => fields
            .iter()
            .any(|(name, field)| is_secret_name(name) || holds_secrets(field)),
        Value::Array(items) => items.iter().any(holds_secrets),
        _ => false,
    }
}

/// Whether `document` holds a sealed value anywhere (so that showing it needs its key).
pub fn holds_sealed(document: &Value) -> bool {
    match document {
        Value::Object(fields) => {
            fields.contains_key(SEALED_TAG) || fields.values().any(holds_sealed)
        }
        Value::Array(items) => items.iter().any(holds_sealed),
        _ => false,
    }
}

/// `document`, found at `path` (`""` for a whole document), with the value of every
/// secret-bearing field sealed with `key`.
pub fn seal_secrets(document: &Value, key: &DataKey, path: &str) -> Result<Value, SecretError> {
    rebuild(document, path, &mut |path, name, value| {
        is_secret_name(name)
            .then(|| seal(value, key, path))
            .transpose()
    })
}

/// `value`, whole, sealed with `key` for the field at `path` (a JSON pointer): the value a
/// document holds at `path` in place of `value`.
pub fn seal(value: &Value, key: &DataKey, path: &str) -> Result<Value, SecretError> {
    let clear = serde_json::to_vec(value).expect("a JSON value serializes");
    let sealed = seal_bytes(key, &clear, path)?;
    Ok(serde_json::json!({ SEALED_TAG: { "scheme": SCHEME, "data": hex_encode(&sealed) } }))
}

/// `document`, found at `path` (`""` for a whole document), with every sealed value in it
/// opened with `key`.
pub fn open_secrets(document: &Value, key: &DataKey, path: &str) -> Result<Value, SecretError> {
    if let Some(sealed) = document.get(SEALED_TAG) {
        return open(sealed, key, path);
    }
    rebuild(document, path, &mut |path, _, value| {
        value
            .get(SEALED_TAG)
            .map(|sealed| open(sealed, key, path))
            .transpose()
    })
}

/// What `document` (at `path`) shows: its sealed values opened with `key` when there is one
/// and they open, else each replaced by [`HIDDEN`]. Never fails: a caller who may not see a
/// secret, or whose secret was destroyed with its aggregate, sees that it is there and no more.
pub fn reveal(document: &Value, key: Option<&DataKey>, path: &str) -> Value {
    if let Some(opened) = key.and_then(|key| open_secrets(document, key, path).ok()) {
        return opened;
    }
    conceal(document)
}

/// `document` with every sealed value replaced by [`HIDDEN`].
fn conceal(document: &Value) -> Value {
    if document.get(SEALED_TAG).is_some() {
        return Value::String(HIDDEN.to_owned());
    }
    match document {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| (name.clone(), conceal(field)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(conceal).collect()),
        other => other.clone(),
    }
}

/// The value a [`SEALED_TAG`] object at `path` seals.
fn open(sealed: &Value, key: &DataKey, path: &str) -> Result<Value, SecretError> {
    let unopenable = |reason: &str| SecretError::Unopenable {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if sealed.get("scheme").and_then(Value::as_str) != Some(SCHEME) {
        return Err(unopenable("an unknown scheme"));
    }
    let bytes = sealed
        .get("data")
        .and_then(Value::as_str)
        .and_then(hex_decode)
        .ok_or_else(|| unopenable("no hex data"))?;
    let clear = open_bytes(key, &bytes, path).ok_or_else(|| unopenable("wrong key"))?;
    serde_json::from_slice(&clear).map_err(|e| unopenable(&e.to_string()))
}

/// What [`rebuild`] asks of each object field (its path, its name, its value): a new value,
/// or `None` to rebuild the field's own fields.
type FieldRewrite<'a> = dyn FnMut(&str, &str, &Value) -> Result<Option<Value>, SecretError> + 'a;

/// `value` (at `path`) rebuilt with `at(path, name, field)`'s answer in place of each object
/// field it answers for; the fields it does not answer for are rebuilt the same way.
fn rebuild(value: &Value, path: &str, at: &mut FieldRewrite<'_>) -> Result<Value, SecretError> {
    Ok(match value {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (name, field) in fields {
                let field_path = format!("{path}/{name}");
                let new = match at(&field_path, name, field)? {
                    Some(new) => new,
                    None => rebuild(field, &field_path, at)?,
                };
                out.insert(name.clone(), new);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(n, item)| rebuild(item, &format!("{path}/{n}"), at))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// A random nonce, then `clear` sealed with `key`, bound to `context`.
fn seal_bytes(key: &DataKey, clear: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SecretError::Random)?;
    let mut sealed = clear.to_vec();
    key.aead()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| SecretError::Random)?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// What [`seal_bytes`] sealed, or `None` when `key` or `context` is not the one it used.
fn open_bytes(key: &DataKey, sealed: &[u8], context: &str) -> Option<Vec<u8>> {
    let (nonce, rest) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = rest.to_vec();
    let clear = key
        .aead()
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
        .ok()?;
    Some(clear.to_vec())
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_fields_are_sealed_and_opened_and_the_rest_is_left_alone() {
        let key = DataKey::generate().unwrap();
        let document = json!({
            "name": "vnf1",
            "attributes": {
                "config": "vdus: {VDU1: {config: {firewall: 'pw=hunter2'}}}",
                "param_values": {"image": "cirros", "admin_pass": "hunter2"},
            },
            "vdus": [{"user_data": "#!/bin/sh\necho hunter2", "DB_Password": "hunter2", "flavor": "m1.tiny"}],
        });
        let sealed = seal_secrets(&document, &key, "").unwrap();
        let text = sealed.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(sealed["name"], "vnf1");
        assert_eq!(sealed["vdus"][0]["flavor"], "m1.tiny");
        assert!(sealed["attributes"]["config"][SEALED_TAG].is_object());
        assert_eq!(open_secrets(&sealed, &key, "").unwrap(), document);
    }

    #[test]
    fn another_key_or_another_field_cannot_open_a_sealed_value() {
        let (key, other) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
        let sealed = seal_secrets(&json!({"password": "s3cret"}), &key, "").unwrap();
        assert!(matches!(
            open_secrets(&sealed, &other, ""),
            Err(SecretError::Unopenable { .. })
        ));
        // Moved to another secret field, it no longer opens: the path is bound to it.
        let moved = json!({"token": sealed["password"].clone()});
        assert!(open_secrets(&moved, &key, "").is_err());
    }

    #[test]
    fn a_data_key_is_wrapped_for_its_aggregate_and_shredded_with_its_wrapping() {
        let (master, data) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
        let wrapped = data.wrap(&master, "vnf-1").unwrap();
        let unwrapped = DataKey::unwrap(&wrapped, &master, "vnf-1").unwrap();
        assert_eq!(unwrapped.0, data.0);
        assert!(
            DataKey::unwrap(&wrapped, &master, "vnf-2").is_err(),
            "bound to its VNF"
        );
        assert_eq!(format!("{data:?}"), "DataKey(..)", "no key in Debug");
    }

    #[test]
    fn a_caller_without_the_key_sees_that_a_secret_is_there_and_no_more() {
        let key = DataKey::generate().unwrap();
        let document = json!({"param_values": {"pw": "hunter2"}, "name": "a"});
        assert!(holds_secrets(&document) && !holds_sealed(&document));
        let sealed = seal_secrets(&document, &key, "").unwrap();
        assert!(holds_sealed(&sealed));
        assert_eq!(reveal(&sealed, Some(&key), ""), document);
        let hidden = json!({"param_values": HIDDEN, "name": "a"});
        assert_eq!(reveal(&sealed, None, ""), hidden);
        let other = DataKey::generate().unwrap();
        assert_eq!(reveal(&sealed, Some(&other), ""), hidden);
        // A whole value sealed at a path opens only at that path.
        let template = seal(&json!("user_data: pw"), &key, "/template").unwrap();
        assert_eq!(
            open_secrets(&template, &key, "/template").unwrap(),
            json!("user_data: pw")
        );
        assert_eq!(reveal(&template, Some(&key), "/other"), json!(HIDDEN));
    }

    #[test]
    fn a_key_reads_back_from_its_hex() {
        let key = DataKey::generate().unwrap();
        let again = DataKey::from_hex(&format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(again.0, key.0);
        assert!(DataKey::from_hex("abcd").is_none());
        assert!(DataKey::from_hex(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn names_that_say_secret_are_secret() {
        for name in [
            "user_data",
            "config",
            "param_values",
            "Password",
            "api_key",
            "AUTH_TOKEN",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["name", "flavor", "image", "vnfd_id"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
