//! The message that carries one command's events on the lifecycle log, and who caused it.
//!
//! One append is one message: a command's events are committed together or not at all.
//! Stored messages are never edited; a schema change bumps [`SCHEMA_VERSION`] and adds an
//! upcaster in [`upcast`], which lifts older messages when they are read.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::names::AggregateKind;

/// The version of the envelope and event schemas this build writes.
///
/// History: 1 named the actor as one string `"kind:id"`; 2 splits it into `{kind, id}`.
pub const SCHEMA_VERSION: u32 = 2;

/// One command's events, as stored on the aggregate's subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<E> {
    pub schema_version: u32,
    pub aggregate: AggregateKind,
    pub aggregate_id: String,
    #[serde(flatten)]
    pub cause: Cause,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub events: Vec<E>,
}

/// Who or what caused an append, and why: enough for an audit to explain every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub actor: Actor,
    /// The command that produced the events; also the message's `Nats-Msg-Id` stem.
    pub command_id: String,
    /// Shared by every command that one user request or one failure set off.
    pub correlation_id: String,
    /// The command or event that led to this one (the command itself for a user request).
    pub causation_id: String,
}

impl Cause {
    /// A fresh user request: it correlates and causes itself.
    pub fn user_request(actor: Actor) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Cause {
            actor,
            command_id: id.clone(),
            correlation_id: id.clone(),
            causation_id: id,
        }
    }

    /// A command that `actor` issues because of `causation_id`, within `correlation_id`.
    /// The command id is derived from both, so re-deciding after a redelivery yields the same id.
    pub fn follow_up(actor: Actor, correlation_id: &str, causation_id: &str, step: &str) -> Self {
        let command_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{causation_id}/{step}").as_bytes(),
        )
        .to_string();
        Cause {
            actor,
            command_id,
            correlation_id: correlation_id.to_owned(),
            causation_id: causation_id.to_owned(),
        }
    }

    const ACTOR_KIND: &'static str = "actor_kind";
    const ACTOR_ID: &'static str = "actor_id";
    const ACTOR_PROJECT: &'static str = "actor_project";
    const COMMAND_ID: &'static str = "command_id";
    const CORRELATION_ID: &'static str = "correlation_id";
    const CAUSATION_ID: &'static str = "causation_id";

    /// The cause as cqrs-es metadata, which is how it reaches the event store.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::from([
            (Self::ACTOR_KIND.into(), self.actor.kind.as_str().into()),
            (Self::ACTOR_ID.into(), self.actor.id.clone()),
            (Self::COMMAND_ID.into(), self.command_id.clone()),
            (Self::CORRELATION_ID.into(), self.correlation_id.clone()),
            (Self::CAUSATION_ID.into(), self.causation_id.clone()),
        ]);
        if let Some(project) = &self.actor.project {
            metadata.insert(Self::ACTOR_PROJECT.into(), project.clone());
        }
        metadata
    }

    /// The inverse of [`Cause::to_metadata`]; `None` when a key is missing.
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Option<Self> {
        let get = |key: &str| metadata.get(key).cloned();
        Some(Cause {
            actor: Actor {
                kind: ActorKind::parse(&get(Self::ACTOR_KIND)?)?,
                id: get(Self::ACTOR_ID)?,
                project: get(Self::ACTOR_PROJECT),
            },
            command_id: get(Self::COMMAND_ID)?,
            correlation_id: get(Self::CORRELATION_ID)?,
            causation_id: get(Self::CAUSATION_ID)?,
        })
    }
}

/// A user or a component instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user's id for users; the instance name for components.
    pub id: String,
    /// The project a user acted for. Absent for components, and on messages written before
    /// users were authenticated one by one (they read as `None`: an optional field needs no
    /// schema version of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl Actor {
    pub fn new(kind: ActorKind, id: impl Into<String>) -> Self {
        Actor {
            kind,
            id: id.into(),
            project: None,
        }
    }

    /// The same actor, acting for `project`.
    #[must_use]
    pub fn in_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)?;
        match &self.project {
            Some(project) => write!(f, " (project {project})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Gateway,
    Conductor,
    Monitor,
    Operator,
    /// An alarm received without a user's token (Tacker's alarm URL, checked by the VNF's
    /// alarm key): its id is `<trigger>`, its project the VNF's.
    Alarm,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Gateway => "gateway",
            ActorKind::Conductor => "conductor",
            ActorKind::Monitor => "monitor",
            ActorKind::Operator => "operator",
            ActorKind::Alarm => "alarm",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ActorKind::User,
            ActorKind::Gateway,
            ActorKind::Conductor,
            ActorKind::Monitor,
            ActorKind::Operator,
            ActorKind::Alarm,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema version {found} is newer than this build's {SCHEMA_VERSION}")]
    TooNew { found: u64 },
    #[error("schema version {0} has no upcaster")]
    Unknown(String),
}

/// Reads a stored message of any schema version, lifting it to the current one.
///
/// A message of the current version decodes straight from its bytes. Any other (an older
/// version, or one the typed decode refuses) goes through a JSON value and the upcasters:
/// building the value costs more than the decode itself, and nearly every message is current.
pub fn decode<E: DeserializeOwned>(payload: &[u8]) -> Result<Envelope<E>, DecodeError> {
    if let Ok(envelope) = serde_json::from_slice::<Envelope<E>>(payload)
        && envelope.schema_version == SCHEMA_VERSION
    {
        return Ok(envelope);
    }
    let value: serde_json::Value = serde_json::from_slice(payload)?;
    Ok(serde_json::from_value(upcast(value)?)?)
}

/// Lifts a stored envelope to [`SCHEMA_VERSION`], one version at a time.
pub fn upcast(mut value: serde_json::Value) -> Result<serde_json::Value, DecodeError> {
    loop {
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| DecodeError::Unknown(format!("{:?}", value.get("schema_version"))))?;
        match version {
            v if v == u64::from(SCHEMA_VERSION) => return Ok(value),
            1 => value = upcast_v1_to_v2(value)?,
            v if v > u64::from(SCHEMA_VERSION) => return Err(DecodeError::TooNew { found: v }),
            v => return Err(DecodeError::Unknown(v.to_string())),
        }
    }
}

/// Version 1 wrote the actor as `"kind:id"`.
fn upcast_v1_to_v2(mut value: serde_json::Value) -> Result<serde_json::Value, DecodeError> {
    let object = value
        .as_object_mut()
        .ok_or_else(|| DecodeError::Unknown("1 (not an object)".into()))?;
    if let Some(serde_json::Value::String(actor)) = object.get("actor") {
        let (kind, id) = actor.split_once(':').unwrap_or(("user", actor.as_str()));
        let actor = serde_json::json!({ "kind": kind, "id": id });
        object.insert("actor".into(), actor);
    }
    object.insert("schema_version".into(), 2.into());
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upcasts_a_version_1_envelope() {
        let v1 = serde_json::json!({
            "schema_version": 1,
            "aggregate": "vnfd",
            "aggregate_id": "d1",
            "actor": "user:admin",
            "command_id": "c1",
            "correlation_id": "c1",
            "causation_id": "c1",
            "recorded_at": "2026-11-25T10:00:00Z",
            "events": [{"type": "Deleted"}],
        });
        let envelope: Envelope<serde_json::Value> =
            decode(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(envelope.schema_version, SCHEMA_VERSION);
        assert_eq!(envelope.cause.actor, Actor::new(ActorKind::User, "admin"));
        assert_eq!(envelope.events.len(), 1);
    }

    #[test]
    fn refuses_a_newer_version() {
        let v9 = serde_json::json!({"schema_version": 9});
        let err = decode::<serde_json::Value>(&serde_json::to_vec(&v9).unwrap()).unwrap_err();
        assert!(matches!(err, DecodeError::TooNew { found: 9 }), "{err}");
    }

    #[test]
    fn cause_survives_metadata() {
        let cause = crate::fixtures::user();
        assert_eq!(Cause::from_metadata(&cause.to_metadata()), Some(cause));
    }

    #[test]
    fn a_user_s_project_survives_metadata_and_the_log_and_is_shown() {
        let mut cause = crate::fixtures::user();
        cause.actor = Actor::new(ActorKind::User, "alice").in_project("p1");
        assert_eq!(
            Cause::from_metadata(&cause.to_metadata()),
            Some(cause.clone())
        );
        assert_eq!(cause.actor.to_string(), "user:alice (project p1)");
        let stored = serde_json::to_value(&cause.actor).unwrap();
        assert_eq!(stored["project"], "p1");
        let component = Actor::new(ActorKind::Conductor, "c-1");
        let stored = serde_json::to_value(&component).unwrap();
        assert!(stored.get("project").is_none(), "{stored}");
        let read: Actor =
            serde_json::from_value(serde_json::json!({"kind": "user", "id": "admin"})).unwrap();
        assert_eq!(read.project, None);
    }

    #[test]
    fn follow_up_ids_are_stable() {
        let actor = Actor::new(ActorKind::Conductor, "c-1");
        let a = Cause::follow_up(actor.clone(), "corr", "evt-7", "complete");
        let b = Cause::follow_up(actor, "corr", "evt-7", "complete");
        assert_eq!(a.command_id, b.command_id);
    }
}
