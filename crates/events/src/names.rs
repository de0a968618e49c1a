//! Every subject, stream, bucket and consumer name of vnfm. No other crate spells one.

/// The lifecycle log: every VNFD and VNF change. File-backed, never deleted or purged.
pub const LIFECYCLE_STREAM: &str = "VNFM_LIFECYCLE";
/// All subjects of the lifecycle stream.
pub const LIFECYCLE_SUBJECTS: &str = "vnfm.lifecycle.>";
/// All VNF subjects (one per VNF).
pub const VNF_SUBJECTS: &str = "vnfm.lifecycle.vnf.*";
/// All VNFD subjects (one per VNFD).
pub const VNFD_SUBJECTS: &str = "vnfm.lifecycle.vnfd.*";

const VNF_SUBJECT_PREFIX: &str = "vnfm.lifecycle.vnf.";
const VNFD_SUBJECT_PREFIX: &str = "vnfm.lifecycle.vnfd.";

/// The subject that holds one VNF's events.
pub fn vnf_subject(vnf_id: &str) -> String {
    format!("{VNF_SUBJECT_PREFIX}{vnf_id}")
}

/// The subject that holds one VNFD's events.
pub fn vnfd_subject(vnfd_id: &str) -> String {
    format!("{VNFD_SUBJECT_PREFIX}{vnfd_id}")
}

/// The aggregate a lifecycle subject belongs to, if it is one.
pub fn parse_lifecycle_subject(subject: &str) -> Option<(AggregateKind, &str)> {
    if let Some(id) = subject.strip_prefix(VNF_SUBJECT_PREFIX) {
        Some((AggregateKind::Vnf, id))
    } else {
        subject
            .strip_prefix(VNFD_SUBJECT_PREFIX)
            .map(|id| (AggregateKind::Vnfd, id))
    }
}

/// The two aggregates of the lifecycle log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateKind {
    Vnf,
    Vnfd,
}

/// The queryable VNF table kept by the projector (key: VNF id).
pub const VNF_TABLE_BUCKET: &str = "VNFM_VNFS";
/// The queryable VNFD table kept by the projector (key: VNFD id).
pub const VNFD_TABLE_BUCKET: &str = "VNFM_VNFDS";

/// Durable consumer of the lifecycle stream shared by every projector.
pub const PROJECTOR_CONSUMER: &str = "projector";
/// Durable consumer of VNF subjects shared by every conductor (lifecycle operations).
pub const CONDUCTOR_CONSUMER: &str = "conductor";

/// JetStream headers vnfm relies on.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let id = "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11";
        assert_eq!(
            parse_lifecycle_subject(&vnf_subject(id)),
            Some((AggregateKind::Vnf, id))
        );
        assert_eq!(
            parse_lifecycle_subject(&vnfd_subject(id)),
            Some((AggregateKind::Vnfd, id))
        );
        assert_eq!(parse_lifecycle_subject("vnfm.monitor.x"), None);
    }
}
