//! Every subject, stream, bucket and consumer name of vnfm. No other crate spells one.

/// The lifecycle log: every VNFD, VNF and VIM change. File-backed, never deleted or purged.
pub const LIFECYCLE_STREAM: &str = "VNFM_LIFECYCLE";
/// All subjects of the lifecycle stream.
pub const LIFECYCLE_SUBJECTS: &str = "vnfm.lifecycle.>";
/// All VNF subjects (one per VNF).
pub const VNF_SUBJECTS: &str = "vnfm.lifecycle.vnf.*";
/// All VNFD subjects (one per VNFD).
pub const VNFD_SUBJECTS: &str = "vnfm.lifecycle.vnfd.*";
/// All VIM subjects (one per registered VIM).
pub const VIM_SUBJECTS: &str = "vnfm.lifecycle.vim.*";

const VNF_SUBJECT_PREFIX: &str = "vnfm.lifecycle.vnf.";
const VNFD_SUBJECT_PREFIX: &str = "vnfm.lifecycle.vnfd.";
const VIM_SUBJECT_PREFIX: &str = "vnfm.lifecycle.vim.";

/// The subject that holds one VNF's events.
pub fn vnf_subject(vnf_id: &str) -> String {
    format!("{VNF_SUBJECT_PREFIX}{vnf_id}")
}

/// The subject that holds one VNFD's events.
pub fn vnfd_subject(vnfd_id: &str) -> String {
    format!("{VNFD_SUBJECT_PREFIX}{vnfd_id}")
}

/// The subject that holds one registered VIM's events.
pub fn vim_subject(vim_id: &str) -> String {
    format!("{VIM_SUBJECT_PREFIX}{vim_id}")
}

/// The aggregate a lifecycle subject belongs to, if it is one.
pub fn parse_lifecycle_subject(subject: &str) -> Option<(AggregateKind, &str)> {
    if let Some(id) = subject.strip_prefix(VNF_SUBJECT_PREFIX) {
        Some((AggregateKind::Vnf, id))
    } else if let Some(id) = subject.strip_prefix(VNFD_SUBJECT_PREFIX) {
        Some((AggregateKind::Vnfd, id))
    } else {
        subject
            .strip_prefix(VIM_SUBJECT_PREFIX)
            .map(|id| (AggregateKind::Vim, id))
    }
}

/// The aggregates of the lifecycle log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateKind {
    Vnf,
    Vnfd,
    Vim,
}

impl AggregateKind {
    /// Its word in keys (`vnf`, `vnfd`, `vim`), as it is spelled on the log.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateKind::Vnf => "vnf",
            AggregateKind::Vnfd => "vnfd",
            AggregateKind::Vim => "vim",
        }
    }
}

/// The queryable VNF table kept by the projector (key: VNF id).
pub const VNF_TABLE_BUCKET: &str = "VNFM_VNFS";
/// The queryable VNFD table kept by the projector (key: VNFD id).
pub const VNFD_TABLE_BUCKET: &str = "VNFM_VNFDS";
/// The queryable table of registered VIMs kept by the projector (key: VIM id).
pub const VIM_TABLE_BUCKET: &str = "VNFM_VIMS";

/// Durable consumer of the lifecycle stream shared by every projector.
pub const PROJECTOR_CONSUMER: &str = "projector";
/// Durable consumer of VNF subjects shared by every conductor (lifecycle operations).
pub const CONDUCTOR_CONSUMER: &str = "conductor";

/// What monitors and conductors report that somebody audits: `bad_action` rejections, suspect
/// reports, refused targets and VDU state changes, and a copy of every failure report (sourced
/// from [`FAILURE_STREAM`]). Low rate; never evicted by telemetry (see `setup`), which lives
/// in [`TELEMETRY_STREAM`].
pub const MONITOR_STREAM: &str = "VNFM_MONITOR";
/// Failure reports as work: each stays until `conductor-heal` ([`HEAL_CONSUMER`]) has handled
/// it, and nothing else removes it (interest retention, no age limit, refusing new reports
/// when full; see `setup`).
pub const FAILURE_STREAM: &str = "VNFM_FAILURES";
/// Probe rounds and their rosters: high rate, bounded by age and size, the oldest evicted
/// first. Nothing acts on a round; readers (the board's round-trip times, tests, the bench)
/// only look.
pub const TELEMETRY_STREAM: &str = "VNFM_TELEMETRY";
/// Every monitor subject, both streams' (`vnfm.monitor.>`): what the monitor stream held
/// before telemetry moved out of it, and what a migration recognises it by.
pub const ALL_MONITOR_SUBJECTS: &str = "vnfm.monitor.>";
/// Failure reports of every VNF, which conductors consume: monitors' and the drifts
/// conductors' reconciliation finds.
pub const FAILURE_SUBJECTS: &str = "vnfm.monitor.failure.*";
/// Conductors' rejections of stale failure reports, which monitors follow.
pub const BAD_ACTION_SUBJECTS: &str = "vnfm.monitor.bad_action.*";
/// Suspected faults of every monitor.
pub const SUSPECT_SUBJECTS: &str = "vnfm.monitor.suspect.*";
/// Probe rounds of every monitor.
pub const ROUND_SUBJECTS: &str = "vnfm.monitor.round.*";
/// Rosters of every monitor's probe rounds, one subject per monitor and roster digest.
pub const ROSTER_SUBJECTS: &str = "vnfm.monitor.roster.*.*";
/// Targets of every VNF that monitors refused to probe (outside `--probe-cidrs`).
pub const REFUSED_TARGET_SUBJECTS: &str = "vnfm.monitor.refused.*";
/// VDU state changes of every VNF.
pub const STATE_SUBJECTS: &str = "vnfm.monitor.state.*";
/// The subjects of the monitor stream, listed (streams may not overlap): every monitor
/// subject but the rounds' and the failure reports' (which it holds as copies, sourced from
/// [`FAILURE_STREAM`]).
pub const MONITOR_STREAM_SUBJECTS: [&str; 4] = [
    STATE_SUBJECTS,
    BAD_ACTION_SUBJECTS,
    SUSPECT_SUBJECTS,
    REFUSED_TARGET_SUBJECTS,
];
/// The subjects of the failure stream: failure reports alone.
pub const FAILURE_STREAM_SUBJECTS: [&str; 1] = [FAILURE_SUBJECTS];
/// The subjects of the telemetry stream: probe rounds and their rosters.
pub const TELEMETRY_STREAM_SUBJECTS: [&str; 2] = [ROUND_SUBJECTS, ROSTER_SUBJECTS];
/// Everything monitors publish, and only they, but for failure reports (conductors publish a
/// drift's too).
pub const MONITOR_REPORT_SUBJECTS: [&str; 6] = [
    ROUND_SUBJECTS,
    ROSTER_SUBJECTS,
    STATE_SUBJECTS,
    FAILURE_SUBJECTS,
    SUSPECT_SUBJECTS,
    REFUSED_TARGET_SUBJECTS,
];

/// One probe round's results of one monitor instance.
pub fn round_subject(monitor: &str) -> String {
    format!("vnfm.monitor.round.{}", token(monitor))
}

/// The roster `digest` of monitor `monitor`'s probe rounds (`monitor::rounds`): a reader
/// finds it by one direct get of this subject's last message.
pub fn roster_subject(monitor: &str, digest: &str) -> String {
    format!("vnfm.monitor.roster.{}.{}", token(monitor), token(digest))
}

/// A VDU instance of `vnf_id` went down or came back.
pub fn vdu_state_subject(vnf_id: &str) -> String {
    format!("vnfm.monitor.state.{vnf_id}")
}

/// A failure (after `retry` failed attempts) of a VDU instance of `vnf_id`.
pub fn failure_subject(vnf_id: &str) -> String {
    format!("vnfm.monitor.failure.{vnf_id}")
}

/// A conductor found a failure report of `vnf_id` stale (the specification's `bad_action`).
pub fn bad_action_subject(vnf_id: &str) -> String {
    format!("vnfm.monitor.bad_action.{vnf_id}")
}

/// A monitor suspects itself: most of its targets failed at once.
pub fn suspect_subject(monitor: &str) -> String {
    format!("vnfm.monitor.suspect.{}", token(monitor))
}

/// A target of `vnf_id` lies outside the ranges monitors may probe, and is not probed.
pub fn refused_target_subject(vnf_id: &str) -> String {
    format!("vnfm.monitor.refused.{vnf_id}")
}

/// Every monitor-stream subject that concerns one VNF (for audits).
pub fn monitor_subjects_of(vnf_id: &str) -> [String; 4] {
    [
        vdu_state_subject(vnf_id),
        failure_subject(vnf_id),
        bad_action_subject(vnf_id),
        refused_target_subject(vnf_id),
    ]
}

/// The monitor-stream subjects of every VNF that [`monitor_subjects_of`] names for one (for
/// following them all).
pub const MONITOR_SUBJECTS_OF_VNFS: [&str; 4] = [
    STATE_SUBJECTS,
    FAILURE_SUBJECTS,
    BAD_ACTION_SUBJECTS,
    REFUSED_TARGET_SUBJECTS,
];

/// The VNF id of one of [`monitor_subjects_of`]'s subjects; `None` for any other subject.
pub fn parse_monitor_vnf_subject(subject: &str) -> Option<&str> {
    MONITOR_SUBJECTS_OF_VNFS.iter().find_map(|wildcard| {
        let prefix = wildcard.strip_suffix('*')?;
        subject
            .strip_prefix(prefix)
            .filter(|id| !id.is_empty() && !id.contains('.'))
    })
}

/// A subject or KV key token made of an instance name: dots and wildcards would split or widen
/// it.
pub fn token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The last known monitor state of each VNF's VDU instances (key: VNF id), kept by monitors.
pub const MONITOR_STATE_BUCKET: &str = "VNFM_MONITOR_STATE";

/// Monitor membership and partition leases (entries expire unless renewed).
pub const MONITOR_LEASE_BUCKET: &str = "VNFM_MONITOR_LEASES";
/// The lease bucket's key prefix of a live monitor's membership (`member.<monitor token>`).
pub const LEASE_MEMBER_PREFIX: &str = "member.";
/// The lease bucket's key prefix of a partition's lease (`partition.<n>`, valued its holder).
pub const LEASE_PARTITION_PREFIX: &str = "partition.";

/// The data keys that seal each VNF's, VNFD's and VIM's secrets, each wrapped with the master key
/// (key: [`data_key_name`]); only gateways read them, and a deleted aggregate's key is
/// destroyed (see `events::keyring`).
pub const DATA_KEY_BUCKET: &str = "VNFM_DATA_KEYS";

/// The [`DATA_KEY_BUCKET`] key of one aggregate's data key, to which its wrapping is bound.
pub fn data_key_name(kind: AggregateKind, id: &str) -> String {
    format!("{}.{id}", kind.as_str())
}

/// Bucket of the names' claims (see [`crate::name_claim`]): one entry per VNF, VNFD or VIM name in
/// use in a project, written by gateways only.
pub const NAME_CLAIM_BUCKET: &str = "VNFM_NAMES";

/// Key of the claim of `name` among a project's VNFs, VNFDs or VIMs: the kind, then a UUIDv5 of the
/// project and the name, so that no user text (dots, wildcards) reaches a key.
pub fn name_claim_key(kind: AggregateKind, project: &str, name: &str) -> String {
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        serde_json::json!([project, name]).to_string().as_bytes(),
    );
    format!("{}.{id}", kind.as_str())
}

/// Bucket of the loopback VIM's addresses (`conductor::vim::loopback`): `instance.<id>` holds an
/// instance's address, `address.<a>-<b>-<c>-<d>` the instance that holds an address, so that no
/// two instances share one. Written by conductors only.
pub const LOOPBACK_VIM_BUCKET: &str = "VNFM_LOOPBACK_VIM";

/// Every KV bucket of vnfm.
pub const BUCKETS: [&str; 8] = [
    VNF_TABLE_BUCKET,
    VNFD_TABLE_BUCKET,
    VIM_TABLE_BUCKET,
    MONITOR_STATE_BUCKET,
    MONITOR_LEASE_BUCKET,
    DATA_KEY_BUCKET,
    NAME_CLAIM_BUCKET,
    LOOPBACK_VIM_BUCKET,
];

/// The object store bucket of the monitors' lifecycle snapshots (`monitor::snapshot`): the
/// fold of every VNF subject up to a stream sequence, written by the monitor that holds
/// partition 0 and read by every monitor at start. A cache of the log, never its truth: it
/// can be lost or refused and a monitor replays the log instead.
pub const MONITOR_SNAPSHOT_BUCKET: &str = "VNFM_MONITOR_SNAPSHOTS";
/// The one object in [`MONITOR_SNAPSHOT_BUCKET`]: the newest snapshot of the lifecycle fold.
pub const MONITOR_SNAPSHOT_OBJECT: &str = "lifecycle";

/// Every object store bucket of vnfm.
pub const OBJECT_BUCKETS: [&str; 1] = [MONITOR_SNAPSHOT_BUCKET];

/// The stream behind an object store bucket (as the object store protocol names it).
pub fn object_store_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// Every subject of an object store bucket (chunks `$O.<bucket>.C.*`, metadata
/// `$O.<bucket>.M.*`), as the object store protocol spells them.
pub fn object_store_subjects(bucket: &str) -> String {
    format!("$O.{bucket}.>")
}

/// The chunk and metadata subjects of an object store bucket's stream.
pub fn object_store_stream_subjects(bucket: &str) -> [String; 2] {
    [format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")]
}

/// Durable consumer of failure reports shared by every conductor.
pub const HEAL_CONSUMER: &str = "conductor-heal";

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
        assert_eq!(
            parse_lifecycle_subject(&vim_subject(id)),
            Some((AggregateKind::Vim, id))
        );
        assert_eq!(data_key_name(AggregateKind::Vim, id), format!("vim.{id}"));
        assert_eq!(parse_lifecycle_subject("vnfm.monitor.x"), None);
        assert_eq!(round_subject("host.a*b"), "vnfm.monitor.round.host_a_b");
        assert_eq!(
            roster_subject("host.a", "0f1e"),
            "vnfm.monitor.roster.host_a.0f1e"
        );
        assert_eq!(
            parse_monitor_vnf_subject(&roster_subject("m-1", "ab")),
            None
        );
        for subject in monitor_subjects_of(id) {
            assert_eq!(parse_monitor_vnf_subject(&subject), Some(id), "{subject}");
        }
        assert_eq!(parse_monitor_vnf_subject(&round_subject("m-1")), None);
        assert_eq!(parse_monitor_vnf_subject(&vnf_subject(id)), None);
        assert_eq!(parse_monitor_vnf_subject("vnfm.monitor.failure.a.b"), None);
    }

    #[test]
    fn the_monitor_failure_and_telemetry_streams_share_no_subject_and_cover_every_monitor_subject()
    {
        let wildcards: Vec<&str> = MONITOR_STREAM_SUBJECTS
            .iter()
            .chain(&FAILURE_STREAM_SUBJECTS)
            .chain(&TELEMETRY_STREAM_SUBJECTS)
            .copied()
            .collect();
        let mut sorted = wildcards.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), wildcards.len(), "{wildcards:?}");
        // Whether `subject` matches the wildcard `pattern`, token by token.
        let matches = |pattern: &str, subject: &str| {
            let (mut pattern, mut subject) = (pattern.split('.'), subject.split('.'));
            loop {
                match (pattern.next(), subject.next()) {
                    (Some(p), Some(s)) if p == "*" || p == s => {}
                    (next, rest) => {
                        return next.is_none() && rest.is_none()
                            || next == Some(">") && rest.is_some();
                    }
                }
            }
        };
        for subject in [
            round_subject("m"),
            roster_subject("m", "0123abcd"),
            suspect_subject("m"),
            vdu_state_subject("v"),
            failure_subject("v"),
            bad_action_subject("v"),
            refused_target_subject("v"),
        ] {
            let holders: Vec<&str> = wildcards
                .iter()
                .copied()
                .filter(|w| matches(w, &subject))
                .collect();
            assert_eq!(holders.len(), 1, "{subject}: {holders:?}");
            assert!(matches(ALL_MONITOR_SUBJECTS, &subject));
        }
        assert!(TELEMETRY_STREAM_SUBJECTS.contains(&ROUND_SUBJECTS));
        assert!(TELEMETRY_STREAM_SUBJECTS.contains(&ROSTER_SUBJECTS));
        assert!(FAILURE_STREAM_SUBJECTS.contains(&FAILURE_SUBJECTS));
    }
}
