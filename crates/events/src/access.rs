//! Who may do what on the bus: vnfm's NATS identities and the subjects each may publish and
//! subscribe to, written once beside [`names`](crate::names), and the nats-server
//! `authorization` block rendered from them ([`authorization`]). Pure: it never connects, and
//! holds no key; the credentials are [`credentials`](crate::credentials)'.
//!
//! The rules, as the server enforces them:
//! - Only monitors publish monitor results
//!   (`vnfm.monitor.{round,roster,state,failure,suspect,refused}`)
//!   and write the monitor state and lease buckets, but for failure reports, which conductors
//!   publish too (a server that drifted on its VIM, found by their reconciliation); only
//!   conductors publish `bad_action`.
//! - Only gateways and conductors append to the lifecycle log; only projectors write the tables
//!   (which gateways, conductors, for drift, and the reader read).
//! - Only gateways read the data keys (each wrapped with the master key, which no identity
//!   holds on the bus) and make them, but for conductors, which read a registered VIM's key
//!   (and no other) to open its credentials; projectors may only destroy them (a write); the
//!   reader does not see that bucket at all.
//! - A durable consumer is created, read and acked by its owner alone (`projector`, `conductor`,
//!   `conductor-heal`); anybody else who may read a stream reads it through ephemeral consumers
//!   and direct gets, never through a durable.
//! - No role creates, updates, deletes or purges a stream or a bucket: `admin` creates and
//!   updates them (and consumers), and nothing deletes one, nor deletes another's consumer
//!   (that takes the server's own operator). The purges: `admin`'s, of the monitor stream
//!   alone, for the migration that moved probe rounds out of it (`setup`), where `admin` could
//!   empty that stream by an update (a bound of one message) anyway, so the right adds no
//!   power; and `monitor`'s, of its snapshot bucket alone, which an object store put makes to
//!   drop the version it replaced (a stolen monitor seed can empty the bucket, which costs
//!   monitors a full replay at their next start, or write a false snapshot, which `vnfm
//!   verify-snapshot` finds; it could already publish false failure reports).
//! - Only monitors write the snapshot bucket (their lifecycle fold, `monitor::snapshot`), whose
//!   put purges the version it replaces; monitors and the reader read it.
//! - Probe rounds and their rosters live in the telemetry stream, which the monitor publishes
//!   to and binds to (its info) and gateways (the board's round-trip times) and the reader
//!   read (a roster by a direct get of its subject's last message).
//! - `reader` reads every vnfm stream and subject and publishes nothing but read requests.
//! - Every identity receives replies on an inbox prefix of its own, which no other can
//!   subscribe to.

use std::fmt::Write as _;

use crate::names;

/// The JetStream API's subject prefix.
pub(crate) const API: &str = "$JS.API";

/// One identity on the bus: a role, the operator's setup tool, or a read-only observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identity {
    /// Creates and updates the streams, buckets and consumers (`vnfm setup`, `vnfm up`).
    Admin,
    Gateway,
    Projector,
    Conductor,
    Monitor,
    /// Reads everything, publishes nothing (`nats sub`, `vnfm audit`, `rebuild --verify`).
    Reader,
}

impl Identity {
    pub const ALL: [Identity; 6] = [
        Identity::Admin,
        Identity::Gateway,
        Identity::Projector,
        Identity::Conductor,
        Identity::Monitor,
        Identity::Reader,
    ];

    /// Its name: the credentials file's stem and the inbox prefix's suffix.
    pub fn name(self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::Gateway => "gateway",
            Identity::Projector => "projector",
            Identity::Conductor => "conductor",
            Identity::Monitor => "monitor",
            Identity::Reader => "reader",
        }
    }

    /// The identity named `name`, if any.
    pub fn from_name(name: &str) -> Option<Identity> {
        Identity::ALL.into_iter().find(|i| i.name() == name)
    }

    /// The inbox prefix its clients use, so that replies to one identity's requests reach no
    /// other. The reader keeps the clients' default (`_INBOX`), so that a stock `nats` CLI works
    /// with its key; no role uses that prefix.
    pub fn inbox_prefix(self) -> String {
        match self {
            Identity::Reader => "_INBOX".to_owned(),
            other => format!("_INBOX_{}", other.name()),
        }
    }

    /// What it may publish and subscribe to.
    pub fn permissions(self) -> Permissions {
        let mut p = Permissions::default();
        p.subscribe_allow.push(format!("{}.>", self.inbox_prefix()));
        match self {
            Identity::Admin => {
                for stream in streams() {
                    p.publish_allow.extend([
                        format!("{API}.STREAM.CREATE.{stream}"),
                        format!("{API}.STREAM.UPDATE.{stream}"),
                        format!("{API}.STREAM.INFO.{stream}"),
                        format!("{API}.CONSUMER.CREATE.{stream}.>"),
                        format!("{API}.CONSUMER.DURABLE.CREATE.{stream}.*"),
                        format!("{API}.CONSUMER.INFO.{stream}.*"),
                        format!("{API}.CONSUMER.NAMES.{stream}"),
                        format!("{API}.CONSUMER.LIST.{stream}"),
                    ]);
                }
                p.publish_allow.extend([
                    format!("{API}.INFO"),
                    format!("{API}.STREAM.NAMES"),
                    format!("{API}.STREAM.LIST"),
                    // Removing the probe rounds an older build left there (`setup`).
                    format!("{API}.STREAM.PURGE.{}", names::MONITOR_STREAM),
                    // Removing the heal consumer an older build made there, once it has
                    // nothing left to handle (`setup`).
                    format!(
                        "{API}.CONSUMER.DELETE.{}.{}",
                        names::MONITOR_STREAM,
                        names::HEAL_CONSUMER
                    ),
                ]);
            }
            Identity::Gateway => {
                p.publish_allow.push(names::LIFECYCLE_SUBJECTS.to_owned());
                p.read(names::LIFECYCLE_STREAM);
                // The monitor and telemetry streams and leases for the status board (probe
                // results, suspect monitors, who holds which partition) and the audit.
                p.read(names::MONITOR_STREAM);
                p.read(names::TELEMETRY_STREAM);
                for bucket in [
                    names::VNF_TABLE_BUCKET,
                    names::VNFD_TABLE_BUCKET,
                    names::VIM_TABLE_BUCKET,
                    names::MONITOR_STATE_BUCKET,
                    names::MONITOR_LEASE_BUCKET,
                    names::DATA_KEY_BUCKET,
                    names::NAME_CLAIM_BUCKET,
                ] {
                    p.read(&kv_stream(bucket));
                }
                p.publish_allow.push(kv_writes(names::DATA_KEY_BUCKET));
                // Claiming a VNF's or VNFD's name (`name_claim`): gateways alone.
                p.publish_allow.push(kv_writes(names::NAME_CLAIM_BUCKET));
            }
            Identity::Projector => {
                p.read(names::LIFECYCLE_STREAM);
                for bucket in [
                    names::VNF_TABLE_BUCKET,
                    names::VNFD_TABLE_BUCKET,
                    names::VIM_TABLE_BUCKET,
                ] {
                    p.read(&kv_stream(bucket));
                    p.publish_allow.push(kv_writes(bucket));
                }
                // Destroying a deleted aggregate's data key, and deleting a deleted VNF's VDU
                // states: binding to each bucket and writing tombstones, never reading a key.
                // (A subject cannot tell a delete from a put: the projector could write a
                // state, as it writes every table row.)
                for bucket in [names::DATA_KEY_BUCKET, names::MONITOR_STATE_BUCKET] {
                    p.publish_allow.extend([
                        format!("{API}.STREAM.INFO.{}", kv_stream(bucket)),
                        kv_writes(bucket),
                    ]);
                }
            }
            Identity::Conductor => {
                p.publish_allow.extend([
                    names::LIFECYCLE_SUBJECTS.to_owned(),
                    names::BAD_ACTION_SUBJECTS.to_owned(),
                    // A drift's failure report (`conductor::reconcile`), for the heal path.
                    names::FAILURE_SUBJECTS.to_owned(),
                ]);
                p.read(names::LIFECYCLE_STREAM);
                p.read(names::MONITOR_STREAM);
                p.read(names::FAILURE_STREAM);
                // Drift finds the VNFs of each VIM in the VNF table: read, never written.
                p.read(&kv_stream(names::VNF_TABLE_BUCKET));
                // The loopback VIM's address allocations (`conductor::vim::loopback`): conductors
                // alone read and write them.
                p.read(&kv_stream(names::LOOPBACK_VIM_BUCKET));
                p.publish_allow.push(kv_writes(names::LOOPBACK_VIM_BUCKET));
                // A registered VIM's data key, to open its credentials and reach it, and a
                // VNF's, to open its VDUs' user_data for the servers it deploys: binding to
                // the bucket and the last value of a `vim.` or `vnf.` key, never a VNFD's key
                // (no get by sequence, no consumer).
                let data_keys = kv_stream(names::DATA_KEY_BUCKET);
                p.publish_allow
                    .push(format!("{API}.STREAM.INFO.{data_keys}"));
                for kind in [names::AggregateKind::Vim, names::AggregateKind::Vnf] {
                    p.publish_allow.push(format!(
                        "{API}.DIRECT.GET.{data_keys}.$KV.{}.{}",
                        names::DATA_KEY_BUCKET,
                        names::data_key_name(kind, ">")
                    ));
                }
            }
            Identity::Monitor => {
                p.publish_allow
                    .extend(names::MONITOR_REPORT_SUBJECTS.map(str::to_owned));
                p.subscribe_allow
                    .push(names::BAD_ACTION_SUBJECTS.to_owned());
                p.read(names::LIFECYCLE_STREAM);
                p.read(names::MONITOR_STREAM);
                // Binding to the telemetry stream it publishes rounds to; it reads none.
                p.publish_allow
                    .push(format!("{API}.STREAM.INFO.{}", names::TELEMETRY_STREAM));
                for bucket in [names::MONITOR_STATE_BUCKET, names::MONITOR_LEASE_BUCKET] {
                    p.read(&kv_stream(bucket));
                    p.publish_allow.push(kv_writes(bucket));
                }
                // Its lifecycle snapshots (`monitor::snapshot`): read at start, put by the
                // holder of partition 0. An object store put purges the replaced version's
                // chunks, a purge of the snapshot bucket's stream alone.
                let snapshots = names::object_store_stream(names::MONITOR_SNAPSHOT_BUCKET);
                p.read(&snapshots);
                p.publish_allow.extend([
                    names::object_store_subjects(names::MONITOR_SNAPSHOT_BUCKET),
                    format!("{API}.STREAM.PURGE.{snapshots}"),
                ]);
            }
            Identity::Reader => {
                let data_keys = kv_stream(names::DATA_KEY_BUCKET);
                for stream in streams().into_iter().filter(|s| *s != data_keys) {
                    p.read(&stream);
                }
                // Events live, and nothing else: no table writes. A push consumer delivers where
                // it is told, whatever its creator's permissions (nats-server#8274), but only to
                // a subject somebody listens to; nobody may listen to the tables' subjects, so
                // no consumer can deliver into a table.
                p.subscribe_allow.push("vnfm.>".to_owned());
            }
        }
        for durable in DURABLES {
            if durable.owner == self {
                p.publish_allow.extend(durable.owner_subjects());
            } else if self != Identity::Admin {
                p.publish_deny.extend(durable.owner_subjects());
            }
        }
        p
    }
}

/// The subjects one identity may publish and subscribe to (NATS wildcards allowed). A subject
/// is allowed when it matches an `allow` entry and no `deny` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
}

impl Permissions {
    /// Reading `stream` as it stands and following it: its info, direct and leader gets, and
    /// ephemeral consumers (ordered pull, and push with flow control, as KV watches are).
    fn read(&mut self, stream: &str) {
        self.publish_allow.extend([
            format!("{API}.STREAM.INFO.{stream}"),
            format!("{API}.STREAM.MSG.GET.{stream}"),
            format!("{API}.DIRECT.GET.{stream}"),
            format!("{API}.DIRECT.GET.{stream}.>"),
            // Ephemeral consumers: unnamed, or named by the client when an ordered consumer
            // starts again after a gap (`<name>_<n>`, the old one deleted first). Every
            // durable's own subjects are denied to all but its owner (see `DURABLES`).
            format!("{API}.CONSUMER.CREATE.{stream}"),
            format!("{API}.CONSUMER.CREATE.{stream}.>"),
            format!("{API}.CONSUMER.DELETE.{stream}.*"),
            format!("{API}.CONSUMER.INFO.{stream}.*"),
            format!("{API}.CONSUMER.MSG.NEXT.{stream}.*"),
            format!("$JS.FC.{stream}.>"),
        ]);
    }
}

/// A durable consumer and the one identity that owns it.
struct Durable {
    stream: &'static str,
    name: &'static str,
    owner: Identity,
}

/// Every durable consumer of vnfm.
const DURABLES: [Durable; 3] = [
    Durable {
        stream: names::LIFECYCLE_STREAM,
        name: names::PROJECTOR_CONSUMER,
        owner: Identity::Projector,
    },
    Durable {
        stream: names::LIFECYCLE_STREAM,
        name: names::CONDUCTOR_CONSUMER,
        owner: Identity::Conductor,
    },
    Durable {
        stream: names::FAILURE_STREAM,
        name: names::HEAL_CONSUMER,
        owner: Identity::Conductor,
    },
];

impl Durable {
    /// Creating, reading and acking the consumer: its owner's, denied to every other role.
    fn owner_subjects(&self) -> [String; 6] {
        let Durable { stream, name, .. } = self;
        [
            format!("{API}.CONSUMER.CREATE.{stream}.{name}"),
            format!("{API}.CONSUMER.CREATE.{stream}.{name}.>"),
            format!("{API}.CONSUMER.DURABLE.CREATE.{stream}.{name}"),
            format!("{API}.CONSUMER.MSG.NEXT.{stream}.{name}"),
            format!("{API}.CONSUMER.DELETE.{stream}.{name}"),
            format!("$JS.ACK.{stream}.{name}.>"),
        ]
    }
}

/// The stream behind a KV bucket.
fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// The subjects a write (put, create, update, delete) to a KV bucket is published to.
fn kv_writes(bucket: &str) -> String {
    format!("$KV.{bucket}.>")
}

/// Every stream vnfm keeps: the lifecycle log, the monitor, failure and telemetry streams and the
/// buckets' streams (KV and object store).
fn streams() -> Vec<String> {
    [
        names::LIFECYCLE_STREAM,
        names::MONITOR_STREAM,
        names::FAILURE_STREAM,
        names::TELEMETRY_STREAM,
    ]
    .map(str::to_owned)
    .into_iter()
    .chain(names::BUCKETS.map(kv_stream))
    .chain(names::OBJECT_BUCKETS.map(names::object_store_stream))
    .collect()
}

/// The nats-server `authorization` block that lets in exactly `users` (each identity with its
/// nkey's public key) with their permissions, and nobody else: no anonymous connection, no
/// password.
pub fn authorization<'a>(users: impl IntoIterator<Item = (Identity, &'a str)>) -> String {
    authorization_of(
        users.into_iter().map(|(identity, public_key)| {
            user(identity.name(), public_key, &identity.permissions())
        }),
    )
}

/// The `authorization` block of the given [`user`] entries.
pub fn authorization_of(users: impl IntoIterator<Item = String>) -> String {
    let mut out = String::from(
        "# Generated by `vnfm nats-config` from events::access: one nkey per vnfm identity.\n\
         # Without a user whose key it proves, a client is refused.\n\
         authorization {\n  users: [\n",
    );
    for user in users {
        out.push_str(&user);
    }
    out.push_str("  ]\n}\n");
    out
}

/// One user entry of an `authorization` block: the nkey `public_key`, allowed `permissions`.
pub fn user(name: &str, public_key: &str, permissions: &Permissions) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "    # {name}\n    {{\n      nkey: {public_key}\n      permissions: {{\n        \
         publish: {{\n          allow: {}\n          deny: {}\n        }}\n        \
         subscribe: {{\n          allow: {}\n        }}\n      }}\n    }}",
        list(&permissions.publish_allow),
        list(&permissions.publish_deny),
        list(&permissions.subscribe_allow),
    );
    out
}

/// A list of quoted subjects in the server's configuration syntax (quoted so that `$JS` is not
/// read as a variable).
fn list(subjects: &[String]) -> String {
    let quoted: Vec<String> = subjects.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publishes(identity: Identity, subject: &str) -> bool {
        let p = identity.permissions();
        p.publish_allow.iter().any(|a| matches(a, subject))
            && !p.publish_deny.iter().any(|d| matches(d, subject))
    }

    /// NATS subject matching: `*` one token, `>` one or more tokens at the end.
    fn matches(pattern: &str, subject: &str) -> bool {
        let mut subject = subject.split('.');
        for token in pattern.split('.') {
            match (token, subject.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (token, Some(s)) if token == s => {}
                _ => return false,
            }
        }
        subject.next().is_none()
    }

    #[test]
    fn matching_follows_nats_wildcards() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.*", "a.b.c"));
    }

    #[test]
    fn only_the_writer_of_each_subject_may_publish_it() {
        let cases = [
            (
                names::vnf_subject("v"),
                [Identity::Gateway, Identity::Conductor].as_slice(),
            ),
            // A VIM: registered by a gateway, its status recorded by a conductor's check.
            (
                names::vim_subject("v"),
                &[Identity::Gateway, Identity::Conductor],
            ),
            // A probe's failure, or a drift a conductor found.
            (
                names::failure_subject("v"),
                &[Identity::Monitor, Identity::Conductor],
            ),
            (names::vdu_state_subject("v"), &[Identity::Monitor]),
            (names::round_subject("m"), &[Identity::Monitor]),
            (names::roster_subject("m", "0123abcd"), &[Identity::Monitor]),
            (names::suspect_subject("m"), &[Identity::Monitor]),
            (names::refused_target_subject("v"), &[Identity::Monitor]),
            (names::bad_action_subject("v"), &[Identity::Conductor]),
            (
                format!("$KV.{}.v", names::VNF_TABLE_BUCKET),
                &[Identity::Projector],
            ),
            (
                format!("$KV.{}.v", names::VIM_TABLE_BUCKET),
                &[Identity::Projector],
            ),
            (
                format!("$KV.{}.0", names::MONITOR_LEASE_BUCKET),
                &[Identity::Monitor],
            ),
            (
                format!("$KV.{}.v", names::MONITOR_STATE_BUCKET),
                &[Identity::Monitor, Identity::Projector],
            ),
            (
                format!("$KV.{}.vnf.v", names::DATA_KEY_BUCKET),
                &[Identity::Gateway, Identity::Projector],
            ),
            (
                format!(
                    "$KV.{}.{}",
                    names::NAME_CLAIM_BUCKET,
                    names::name_claim_key(names::AggregateKind::Vnf, "p", "web")
                ),
                &[Identity::Gateway],
            ),
            (
                format!("$KV.{}.address.127-128-0-1", names::LOOPBACK_VIM_BUCKET),
                &[Identity::Conductor],
            ),
            // A snapshot's chunks and its metadata.
            (
                format!("$O.{}.C.x", names::MONITOR_SNAPSHOT_BUCKET),
                &[Identity::Monitor],
            ),
            (
                format!("$O.{}.M.x", names::MONITOR_SNAPSHOT_BUCKET),
                &[Identity::Monitor],
            ),
        ];
        for (subject, writers) in cases {
            for identity in Identity::ALL {
                assert_eq!(
                    publishes(identity, &subject),
                    writers.contains(&identity),
                    "{identity:?} on {subject}"
                );
            }
        }
    }

    #[test]
    fn a_conductor_reads_a_vims_and_a_vnfs_data_key_and_no_other() {
        let data_keys = kv_stream(names::DATA_KEY_BUCKET);
        let last_of = |kind| {
            format!(
                "{API}.DIRECT.GET.{data_keys}.$KV.{}.{}",
                names::DATA_KEY_BUCKET,
                names::data_key_name(kind, "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11")
            )
        };
        let vim_key = last_of(names::AggregateKind::Vim);
        let vnf_key = last_of(names::AggregateKind::Vnf);
        for key in [&vim_key, &vnf_key] {
            assert!(publishes(Identity::Conductor, key), "{key}");
            assert!(publishes(Identity::Gateway, key), "{key}");
        }
        for other in [
            last_of(names::AggregateKind::Vnfd),
            format!("{API}.DIRECT.GET.{data_keys}"),
            format!("{API}.STREAM.MSG.GET.{data_keys}"),
            format!("{API}.CONSUMER.CREATE.{data_keys}"),
        ] {
            assert!(!publishes(Identity::Conductor, &other), "{other}");
        }
        for identity in [Identity::Monitor, Identity::Reader, Identity::Projector] {
            assert!(!publishes(identity, &vim_key), "{identity:?}");
            assert!(!publishes(identity, &vnf_key), "{identity:?}");
        }
    }

    #[test]
    fn no_identity_deletes_or_purges_a_stream_and_only_admin_changes_one() {
        for identity in Identity::ALL {
            for stream in streams() {
                for verb in ["DELETE", "MSG.DELETE"] {
                    let subject = format!("{API}.STREAM.{verb}.{stream}");
                    assert!(!publishes(identity, &subject), "{identity:?} {subject}");
                }
                // The migration's purge of old rounds: the admin's, of the monitor stream; and
                // a snapshot put's purge of the version it replaces: the monitor's, of the
                // snapshot bucket.
                let purge = format!("{API}.STREAM.PURGE.{stream}");
                let snapshots = names::object_store_stream(names::MONITOR_SNAPSHOT_BUCKET);
                assert_eq!(
                    publishes(identity, &purge),
                    (identity == Identity::Admin && stream == names::MONITOR_STREAM)
                        || (identity == Identity::Monitor && stream == snapshots),
                    "{identity:?} {purge}"
                );
                for verb in ["CREATE", "UPDATE"] {
                    let subject = format!("{API}.STREAM.{verb}.{stream}");
                    assert_eq!(
                        publishes(identity, &subject),
                        identity == Identity::Admin,
                        "{identity:?} {subject}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_durable_consumer_is_its_owners_alone() {
        let heal_next = format!(
            "{API}.CONSUMER.MSG.NEXT.{}.{}",
            names::FAILURE_STREAM,
            names::HEAL_CONSUMER
        );
        let projector_update = format!(
            "{API}.CONSUMER.CREATE.{}.{}.{}",
            names::LIFECYCLE_STREAM,
            names::PROJECTOR_CONSUMER,
            names::LIFECYCLE_SUBJECTS
        );
        let heal_delete = format!(
            "{API}.CONSUMER.DELETE.{}.{}",
            names::FAILURE_STREAM,
            names::HEAL_CONSUMER
        );
        // The one an older build made on the monitor stream: the admin removes it (`setup`).
        let old_heal_delete = format!(
            "{API}.CONSUMER.DELETE.{}.{}",
            names::MONITOR_STREAM,
            names::HEAL_CONSUMER
        );
        assert!(publishes(Identity::Admin, &old_heal_delete));
        for identity in Identity::ALL {
            for subject in [&heal_next, &heal_delete] {
                assert_eq!(
                    publishes(identity, subject),
                    identity == Identity::Conductor,
                    "{identity:?} {subject}"
                );
            }
            assert_eq!(
                publishes(identity, &projector_update),
                matches!(identity, Identity::Projector | Identity::Admin),
                "{identity:?}"
            );
        }
        // Anybody who reads a stream may follow it with an ephemeral consumer, and start one
        // again under a name of its client's choosing.
        let ephemeral = format!("{API}.CONSUMER.CREATE.{}", names::LIFECYCLE_STREAM);
        let again = format!(
            "{API}.CONSUMER.CREATE.{}.x1_1.{}",
            names::LIFECYCLE_STREAM,
            names::VNF_SUBJECTS
        );
        for subject in [ephemeral, again] {
            assert!(publishes(Identity::Monitor, &subject));
            assert!(publishes(Identity::Reader, &subject));
        }
    }

    #[test]
    fn rounds_are_read_from_the_telemetry_stream_by_the_gateway_and_the_reader_alone() {
        let get = format!("{API}.DIRECT.GET.{}", names::TELEMETRY_STREAM);
        let follow = format!("{API}.CONSUMER.CREATE.{}", names::TELEMETRY_STREAM);
        let info = format!("{API}.STREAM.INFO.{}", names::TELEMETRY_STREAM);
        // A roster, found by its subject's last message.
        let roster = format!(
            "{API}.DIRECT.GET.{}.{}",
            names::TELEMETRY_STREAM,
            names::roster_subject("m", "0123abcd")
        );
        for identity in Identity::ALL {
            let reads = matches!(identity, Identity::Gateway | Identity::Reader);
            assert_eq!(publishes(identity, &get), reads, "{identity:?}");
            assert_eq!(publishes(identity, &roster), reads, "{identity:?}");
            assert_eq!(publishes(identity, &follow), reads, "{identity:?}");
            assert_eq!(
                publishes(identity, &info),
                reads || matches!(identity, Identity::Monitor | Identity::Admin),
                "{identity:?}"
            );
        }
    }

    #[test]
    fn a_conductor_reads_the_vnf_table_for_drift_and_no_other_table() {
        let read = |bucket| format!("{API}.DIRECT.GET.{}.$KV.{bucket}.v", kv_stream(bucket));
        assert!(publishes(
            Identity::Conductor,
            &read(names::VNF_TABLE_BUCKET)
        ));
        for other in [names::VNFD_TABLE_BUCKET, names::MONITOR_STATE_BUCKET] {
            assert!(!publishes(Identity::Conductor, &read(other)), "{other}");
        }
        assert!(!publishes(
            Identity::Conductor,
            &format!("$KV.{}.v", names::VNF_TABLE_BUCKET)
        ));
    }

    #[test]
    fn only_gateways_read_the_data_keys() {
        let stream = kv_stream(names::DATA_KEY_BUCKET);
        for identity in Identity::ALL {
            for read in [
                format!(
                    "{API}.DIRECT.GET.{stream}.$KV.{}.vnfd.v",
                    names::DATA_KEY_BUCKET
                ),
                format!("{API}.STREAM.MSG.GET.{stream}"),
                format!("{API}.CONSUMER.CREATE.{stream}"),
            ] {
                assert_eq!(
                    publishes(identity, &read),
                    identity == Identity::Gateway,
                    "{identity:?} {read}"
                );
            }
        }
    }

    #[test]
    fn the_reader_publishes_nothing_but_read_requests() {
        for allowed in Identity::Reader.permissions().publish_allow {
            assert!(
                allowed.starts_with(&format!("{API}.STREAM.INFO."))
                    || allowed.starts_with(&format!("{API}.STREAM.MSG.GET."))
                    || allowed.starts_with(&format!("{API}.DIRECT.GET."))
                    || allowed.starts_with(&format!("{API}.CONSUMER."))
                    || allowed.starts_with("$JS.FC."),
                "{allowed}"
            );
        }
    }

    #[test]
    fn inboxes_are_private() {
        for identity in Identity::ALL {
            let inbox = format!("{}.x", identity.inbox_prefix());
            for other in Identity::ALL {
                let subscribes = other
                    .permissions()
                    .subscribe_allow
                    .iter()
                    .any(|a| matches(a, &inbox));
                assert_eq!(subscribes, other == identity, "{other:?} on {inbox}");
            }
        }
    }

    #[test]
    fn the_authorization_names_every_user_and_quotes_every_subject() {
        let config = authorization([
            (Identity::Gateway, "UGATEWAY"),
            (Identity::Reader, "UREADER"),
        ]);
        assert!(config.contains("nkey: UGATEWAY"));
        assert!(config.contains("nkey: UREADER"));
        assert!(config.contains(r#""$JS.API.STREAM.INFO.VNFM_LIFECYCLE""#));
        assert!(
            !config.contains(" $JS"),
            "an unquoted $ is a variable: {config}"
        );
    }
}
