//! The VNFD aggregate: an onboarded descriptor and the VNFs that use it; and the listing of it
//! that the VNFD table holds, its users counted rather than named.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::envelope::{Actor, Cause, SCHEMA_VERSION};
use crate::spec::VnfdSpec;

/// The cause of the use of a VNFD by the VNF whose create is the command `create_command_id`.
///
/// The VNF's create is the decision; taking its VNFD into use finishes it, and is recorded
/// under a command id derived from the create's alone, whoever records it: the gateway right
/// after the create, or a conductor before it deploys. A crash between the create and the use
/// leaves the conductor to record it, and a second use changes nothing.
pub fn use_cause(actor: Actor, correlation_id: &str, create_command_id: &str) -> Cause {
    Cause::follow_up(actor, correlation_id, create_command_id, "use-vnfd")
}

/// Where a VNFD came from, as Tacker's `template_source` said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateSource {
    /// Onboarded through `POST /v1.0/vnfds`.
    Onboarded,
    /// Given inline with a VNF (`vnfd_template`).
    Inline,
}

impl TemplateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateSource::Onboarded => "onboarded",
            TemplateSource::Inline => "inline",
        }
    }
}

/// Where the template's sealed value is bound (its field in a descriptor).
pub const TEMPLATE_PATH: &str = "/template_yaml";

/// What an onboarded VNFD is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VnfdDescriptor {
    pub vnfd_id: String,
    pub name: String,
    pub description: String,
    pub tenant_id: String,
    pub template_source: TemplateSource,
    /// The TOSCA text as the user gave it (YAML), shown back as `attributes.vnfd`: sealed as a
    /// whole ([`secrets::seal`](crate::secrets::seal) at [`TEMPLATE_PATH`]), since it holds the
    /// VDUs' `user_data` and `config`; a plain string in VNFDs onboarded before secrets were
    /// sealed. Nothing reads it but to show it: every role works from `spec`.
    pub template_yaml: serde_json::Value,
    pub spec: VnfdSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VnfdCommand {
    Onboard(Box<VnfdDescriptor>),
    /// A VNF whose create is recorded takes this VNFD into use: the gateway records it right
    /// after the create, a conductor before it deploys (see [`use_cause`]); a second use by
    /// the same VNF changes nothing.
    Use {
        vnf_id: String,
    },
    /// A VNF created from this VNFD is gone. An inline VNFD (`vnfd_template`) goes with the
    /// last VNF that used it: its release records its deletion too.
    Release {
        vnf_id: String,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VnfdEvent {
    Onboarded(Box<VnfdDescriptor>),
    UsedBy { vnf_id: String },
    ReleasedBy { vnf_id: String },
    Deleted,
}

impl DomainEvent for VnfdEvent {
    fn event_type(&self) -> String {
        match self {
            VnfdEvent::Onboarded(_) => "Onboarded",
            VnfdEvent::UsedBy { .. } => "UsedBy",
            VnfdEvent::ReleasedBy { .. } => "ReleasedBy",
            VnfdEvent::Deleted => "Deleted",
        }
        .into()
    }

    fn event_version(&self) -> String {
        SCHEMA_VERSION.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VnfdError {
    #[error("VNFD not found")]
    NotFound,
    #[error("VNFD already exists")]
    AlreadyExists,
    #[error("VNFD is in use by {users} VNF(s): {}{}", .named.join(", "), more(*.users, .named.len()))]
    InUse {
        users: usize,
        /// The first [`IN_USE_NAMED_MAX`] of them, in id order.
        named: Vec<String>,
    },
}

/// The most VNF ids a refusal to delete a VNFD in use names: the rest are counted, so that the
/// refusal of a VNFD used by a fleet stays a line.
pub const IN_USE_NAMED_MAX: usize = 10;

fn more(users: usize, named: usize) -> String {
    match users - named {
        0 => String::new(),
        rest => format!(" and {rest} more"),
    }
}

/// The VNFD as its events left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vnfd {
    pub descriptor: Option<VnfdDescriptor>,
    pub deleted: bool,
    /// VNFs created from this VNFD and not yet deleted. Persistent: a copy of the VNFD shares
    /// it, and a use or release copies only the path to the id it changes.
    pub users: imbl::OrdSet<String>,
}

impl Vnfd {
    /// The descriptor of a VNFD that exists (onboarded and not deleted).
    pub fn live(&self) -> Option<&VnfdDescriptor> {
        self.descriptor.as_ref().filter(|_| !self.deleted)
    }

    /// True for a live inline VNFD that no VNF uses any more: it was made for its VNF and is
    /// deleted with it (Tacker deleted a `vnfd_template` VNFD with its VNF).
    pub fn goes_with_its_vnfs(&self) -> bool {
        self.live()
            .is_some_and(|d| d.template_source == TemplateSource::Inline)
            && self.users.is_empty()
    }
}

/// What the VNFD table holds of a VNFD: the VNFD as its events left it, with its users counted
/// instead of named. A VNFD's users grow with its fleet (100,000 VNFs name 4 MB of ids), and its
/// row is rewritten, and read again by every gateway, at each VNF's create and delete; only the
/// aggregate decides on the set ([`Vnfd`]). The count is exact: the aggregate records a use
/// only for a VNF that does not use the VNFD yet, and a release only for one that does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VnfdListing {
    pub descriptor: Option<VnfdDescriptor>,
    pub deleted: bool,
    /// How many VNFs use it (created from it and not yet deleted). A row written before the
    /// users were counted holds their ids, and is read as their number.
    #[serde(deserialize_with = "count_or_ids")]
    pub users: u64,
}

impl VnfdListing {
    /// The descriptor of a VNFD that exists (onboarded and not deleted).
    pub fn live(&self) -> Option<&VnfdDescriptor> {
        self.descriptor.as_ref().filter(|_| !self.deleted)
    }

    /// [`Vnfd::apply`], the users counted.
    pub fn apply(&mut self, event: VnfdEvent) {
        match event {
            VnfdEvent::Onboarded(descriptor) => self.descriptor = Some(*descriptor),
            VnfdEvent::UsedBy { .. } => self.users += 1,
            VnfdEvent::ReleasedBy { .. } => self.users = self.users.saturating_sub(1),
            VnfdEvent::Deleted => self.deleted = true,
        }
    }
}

/// A count of users, or (in a row written before they were counted) the list of their ids.
fn count_or_ids<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct CountOrIds;
    impl<'de> serde::de::Visitor<'de> for CountOrIds {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a count of users or a list of their ids")
        }
        fn visit_u64<E>(self, count: u64) -> Result<u64, E> {
            Ok(count)
        }
        fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut ids: S) -> Result<u64, S::Error> {
            let mut count = 0;
            while ids.next_element::<serde::de::IgnoredAny>()?.is_some() {
                count += 1;
            }
            Ok(count)
        }
    }
    deserializer.deserialize_any(CountOrIds)
}

impl Aggregate for Vnfd {
    const TYPE: &'static str = "vnfd";
    type Command = VnfdCommand;
    type Event = VnfdEvent;
    type Error = VnfdError;
    type Services = ();

    async fn handle(
        &mut self,
        command: VnfdCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), VnfdError> {
        match command {
            VnfdCommand::Onboard(descriptor) => {
                if self.descriptor.is_some() {
                    return Err(VnfdError::AlreadyExists);
                }
                sink.write(VnfdEvent::Onboarded(descriptor), self).await;
            }
            VnfdCommand::Use { vnf_id } => {
                self.live().ok_or(VnfdError::NotFound)?;
                if !self.users.contains(&vnf_id) {
                    sink.write(VnfdEvent::UsedBy { vnf_id }, self).await;
                }
            }
            VnfdCommand::Release { vnf_id } => {
                if self.users.contains(&vnf_id) {
                    sink.write(VnfdEvent::ReleasedBy { vnf_id }, self).await;
                    if self.goes_with_its_vnfs() {
                        sink.write(VnfdEvent::Deleted, self).await;
                    }
                }
            }
            VnfdCommand::Delete => {
                self.live().ok_or(VnfdError::NotFound)?;
                if !self.users.is_empty() {
                    return Err(VnfdError::InUse {
                        users: self.users.len(),
                        named: self.users.iter().take(IN_USE_NAMED_MAX).cloned().collect(),
                    });
                }
                sink.write(VnfdEvent::Deleted, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: VnfdEvent) {
        match event {
            VnfdEvent::Onboarded(descriptor) => self.descriptor = Some(*descriptor),
            VnfdEvent::UsedBy { vnf_id } => {
                self.users.insert(vnf_id);
            }
            VnfdEvent::ReleasedBy { vnf_id } => {
                self.users.remove(&vnf_id);
            }
            VnfdEvent::Deleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::envelope::ActorKind;
    use crate::fixtures::{onboard, onboarded};

    type Given = TestFramework<Vnfd>;

    #[test]
    fn onboard_records_the_descriptor() {
        Given::with(())
            .given_no_previous_events()
            .when(onboard("d1"))
            .then_expect_events(vec![onboarded("d1")]);
    }

    fn inline(vnfd_id: &str) -> VnfdEvent {
        let mut descriptor = crate::fixtures::descriptor(vnfd_id, crate::fixtures::spec(vec![]));
        descriptor.template_source = TemplateSource::Inline;
        VnfdEvent::Onboarded(Box::new(descriptor))
    }

    #[test]
    fn an_inline_vnfd_is_deleted_with_its_last_vnf_once() {
        let used = |vnf: &str| VnfdEvent::UsedBy { vnf_id: vnf.into() };
        let release = |vnf: &str| VnfdCommand::Release { vnf_id: vnf.into() };
        let released = |vnf: &str| VnfdEvent::ReleasedBy { vnf_id: vnf.into() };
        Given::with(())
            .given(vec![inline("d1"), used("v1")])
            .when(release("v1"))
            .then_expect_events(vec![released("v1"), VnfdEvent::Deleted]);
        // Redelivered: nothing more.
        Given::with(())
            .given(vec![
                inline("d1"),
                used("v1"),
                released("v1"),
                VnfdEvent::Deleted,
            ])
            .when(release("v1"))
            .then_expect_events(vec![]);
        // Another VNF still uses it: it stays.
        Given::with(())
            .given(vec![inline("d1"), used("v1"), used("v2")])
            .when(release("v1"))
            .then_expect_events(vec![released("v1")]);
        // An onboarded VNFD stays when its last VNF goes.
        Given::with(())
            .given(vec![onboarded("d1"), used("v1")])
            .when(release("v1"))
            .then_expect_events(vec![released("v1")]);
    }

    #[test]
    fn onboard_twice_is_refused() {
        Given::with(())
            .given(vec![onboarded("d1")])
            .when(onboard("d1"))
            .then_expect_error(VnfdError::AlreadyExists);
    }

    #[test]
    fn use_records_the_vnf_once() {
        let used = VnfdEvent::UsedBy {
            vnf_id: "v1".into(),
        };
        Given::with(())
            .given(vec![onboarded("d1")])
            .when(VnfdCommand::Use {
                vnf_id: "v1".into(),
            })
            .then_expect_events(vec![used.clone()]);
        Given::with(())
            .given(vec![onboarded("d1"), used])
            .when(VnfdCommand::Use {
                vnf_id: "v1".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn use_of_a_missing_or_deleted_vnfd_is_refused() {
        let cmd = || VnfdCommand::Use {
            vnf_id: "v1".into(),
        };
        Given::with(())
            .given_no_previous_events()
            .when(cmd())
            .then_expect_error(VnfdError::NotFound);
        Given::with(())
            .given(vec![onboarded("d1"), VnfdEvent::Deleted])
            .when(cmd())
            .then_expect_error(VnfdError::NotFound);
    }

    #[test]
    fn release_forgets_the_vnf_and_ignores_strangers() {
        let used = VnfdEvent::UsedBy {
            vnf_id: "v1".into(),
        };
        let released = VnfdEvent::ReleasedBy {
            vnf_id: "v1".into(),
        };
        Given::with(())
            .given(vec![onboarded("d1"), used])
            .when(VnfdCommand::Release {
                vnf_id: "v1".into(),
            })
            .then_expect_events(vec![released]);
        Given::with(())
            .given(vec![onboarded("d1")])
            .when(VnfdCommand::Release {
                vnf_id: "v2".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_released_vnf_is_released_once_even_from_a_deleted_vnfd() {
        let used = VnfdEvent::UsedBy {
            vnf_id: "v1".into(),
        };
        let released = VnfdEvent::ReleasedBy {
            vnf_id: "v1".into(),
        };
        let release = || VnfdCommand::Release {
            vnf_id: "v1".into(),
        };
        Given::with(())
            .given(vec![onboarded("d1"), used, released])
            .when(release())
            .then_expect_events(vec![]);
        // A VNF whose create failed because its VNFD was deleted first never used it.
        Given::with(())
            .given(vec![onboarded("d1"), VnfdEvent::Deleted])
            .when(release())
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_use_by_a_vnf_has_one_command_id_whoever_records_it() {
        let gateway = use_cause(Actor::new(ActorKind::User, "admin"), "corr", "create-1");
        let conductor = use_cause(Actor::new(ActorKind::Conductor, "c-1"), "corr", "create-1");
        assert_eq!(gateway.command_id, conductor.command_id);
        assert_eq!(gateway.causation_id, "create-1");
        let other = use_cause(Actor::new(ActorKind::Conductor, "c-1"), "corr", "create-2");
        assert_ne!(other.command_id, conductor.command_id);
    }

    #[test]
    fn delete_is_refused_while_in_use() {
        Given::with(())
            .given(vec![
                onboarded("d1"),
                VnfdEvent::UsedBy {
                    vnf_id: "v1".into(),
                },
            ])
            .when(VnfdCommand::Delete)
            .then_expect_error(VnfdError::InUse {
                users: 1,
                named: vec!["v1".into()],
            });
    }

    #[test]
    fn a_refusal_names_the_first_users_and_counts_the_rest() {
        let used = (0..IN_USE_NAMED_MAX + 5).map(|n| VnfdEvent::UsedBy {
            vnf_id: format!("v{n:02}"),
        });
        let refused = VnfdError::InUse {
            users: IN_USE_NAMED_MAX + 5,
            named: (0..IN_USE_NAMED_MAX).map(|n| format!("v{n:02}")).collect(),
        };
        Given::with(())
            .given(std::iter::once(onboarded("d1")).chain(used).collect())
            .when(VnfdCommand::Delete)
            .then_expect_error(refused.clone());
        assert_eq!(
            refused.to_string(),
            "VNFD is in use by 15 VNF(s): v00, v01, v02, v03, v04, v05, v06, v07, v08, v09 and 5 \
             more"
        );
    }

    #[test]
    fn delete_of_unused_vnfd_succeeds_once() {
        Given::with(())
            .given(vec![onboarded("d1")])
            .when(VnfdCommand::Delete)
            .then_expect_events(vec![VnfdEvent::Deleted]);
        Given::with(())
            .given(vec![onboarded("d1"), VnfdEvent::Deleted])
            .when(VnfdCommand::Delete)
            .then_expect_error(VnfdError::NotFound);
        Given::with(())
            .given_no_previous_events()
            .when(VnfdCommand::Delete)
            .then_expect_error(VnfdError::NotFound);
    }

    #[test]
    fn the_listing_counts_the_users_the_aggregate_names() {
        let used = |vnf: &str| VnfdEvent::UsedBy { vnf_id: vnf.into() };
        let released = |vnf: &str| VnfdEvent::ReleasedBy { vnf_id: vnf.into() };
        let events = vec![
            onboarded("d1"),
            used("v1"),
            used("v2"),
            released("v1"),
            used("v3"),
        ];
        let mut vnfd = Vnfd::default();
        let mut listing = VnfdListing::default();
        for event in events {
            vnfd.apply(event.clone());
            listing.apply(event);
        }
        assert_eq!(listing.users, 2);
        assert_eq!(listing.users, vnfd.users.len() as u64);
        assert_eq!(listing.live(), vnfd.live());
        listing.apply(released("v2"));
        listing.apply(released("v3"));
        listing.apply(VnfdEvent::Deleted);
        assert_eq!((listing.users, listing.live()), (0, None));
    }

    #[test]
    fn a_listing_is_stored_with_a_count_and_read_from_a_count_or_ids() {
        let listing = VnfdListing {
            descriptor: None,
            deleted: false,
            users: 3,
        };
        let stored = serde_json::to_value(&listing).unwrap();
        assert_eq!(stored["users"], 3);
        assert_eq!(
            serde_json::from_value::<VnfdListing>(stored).unwrap(),
            listing
        );
        let before_counting = serde_json::json!({
            "descriptor": null, "deleted": false, "users": ["v1", "v2", "v3"]
        });
        assert_eq!(
            serde_json::from_value::<VnfdListing>(before_counting).unwrap(),
            listing
        );
        let neither = serde_json::json!({"descriptor": null, "deleted": false, "users": "v1"});
        let refused = serde_json::from_value::<VnfdListing>(neither).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("a count of users or a list of their ids")
        );
    }
}
