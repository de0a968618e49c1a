//! The vocabulary of vnfm: every subject, stream, bucket and consumer name ([`names`]), every
//! event schema ([`envelope`], [`vnf`], [`vnfd`], [`vim`], [`spec`]), the aggregates that decide which
//! events a command yields, the JetStream event store that persists them ([`store`]), the one
//! reader of a subject or a stream as it stands ([`read`]), the durable consumer the roles read
//! the log with ([`consume`]), the NATS error type every role reports ([`nats_error`]), who may
//! do what on the bus ([`access`]), the identities' keys ([`credentials`]) and the rule of unique
//! names ([`name_claim`]), and every metric's name ([`telemetry`]).
//!
//! This crate never spells a subject outside [`names`], never edits or deletes a stored event,
//! and holds no decision that reads the clock or the network: the aggregates are pure.

pub mod access;
pub mod consume;
pub mod credentials;
pub mod envelope;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod keyring;
pub mod monitor;
pub mod name_claim;
pub mod names;
pub mod nats_error;
pub mod read;
pub mod secrets;
pub mod setup;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod vim;
pub mod vnf;
pub mod vnfd;
pub mod vnfd_use;
