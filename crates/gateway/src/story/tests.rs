use std::net::Ipv4Addr;

use events::envelope::{Cause, Envelope, SCHEMA_VERSION};
use events::fixtures;
use events::monitor::Failure;
use events::names::AggregateKind;
use events::spec::PolicyAction;
use events::vnf::{FailedInstance, PlannedInstance, ScaleDirection};
use serde_json::json;
use time::macros::datetime;

use super::*;

const VNF_ID: &str = "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11";
const T0: OffsetDateTime = datetime!(2026-12-01 10:00:00.000 UTC);

fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

fn alice() -> Actor {
    Actor::new(ActorKind::User, "alice").in_project("p1")
}

fn conductor(name: &str) -> Actor {
    Actor::new(ActorKind::Conductor, name)
}

fn monitor(name: &str) -> Actor {
    Actor::new(ActorKind::Monitor, name)
}

fn lifecycle(sequence: u64, at: OffsetDateTime, actor: Actor, events: Vec<VnfEvent>) -> Told {
    Told::Lifecycle(Ok(Recorded {
        sequence,
        envelope: Envelope {
            schema_version: SCHEMA_VERSION,
            aggregate: AggregateKind::Vnf,
            aggregate_id: VNF_ID.into(),
            cause: Cause::user_request(actor),
            recorded_at: at,
            events,
        },
    }))
}

fn on_monitor(at: OffsetDateTime, event: MonitorEvent) -> Told {
    Told::Monitor {
        stored_at: at,
        message: Ok(event),
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 3, last)
}

fn instance(id: &str, last: u8, booted_at: OffsetDateTime) -> Instance {
    Instance {
        instance_id: id.into(),
        vdu: "WEB".into(),
        mgmt_ip: ip(last),
        booted_at,
    }
}

fn planned(id: &str) -> PlannedInstance {
    PlannedInstance {
        vdu: "WEB".into(),
        instance_id: id.into(),
    }
}

fn target(id: &str, last: u8) -> TargetRef {
    TargetRef {
        vnf_id: VNF_ID.into(),
        vdu: "WEB".into(),
        instance_id: id.into(),
        mgmt_ip: ip(last),
        action_id: "action-1".into(),
    }
}

/// The respawn of `failure`'s instance i-1 by i-2, started at `at`.
fn heal_started(failure: Failure, at: OffsetDateTime) -> VnfEvent {
    VnfEvent::HealStarted {
        operation_id: "op-heal".into(),
        failure: failure.into(),
        add: vec![planned("i-2")],
        remove: vec!["i-1".into()],
        at,
    }
}

/// The end of [`heal_started`]'s respawn: i-2 runs at `last`.
fn heal_completed(last: u8, booted_at: OffsetDateTime) -> VnfEvent {
    VnfEvent::HealCompleted {
        operation_id: "op-heal".into(),
        added: vec![instance("i-2", last, booted_at)],
        removed: vec!["i-1".into()],
    }
}

/// A scale of policy SP1 asked at `at`, adding `add` and removing `remove`.
fn scale_requested(
    direction: ScaleDirection,
    add: Vec<PlannedInstance>,
    remove: Vec<String>,
    at: OffsetDateTime,
) -> VnfEvent {
    VnfEvent::ScaleRequested {
        operation_id: format!("op-{}", direction.as_str()),
        policy: "SP1".into(),
        direction,
        add,
        remove,
        at: Some(at),
    }
}

/// The end of [`scale_requested`]'s scale.
fn scale_completed(
    direction: ScaleDirection,
    added: Vec<Instance>,
    removed: Vec<String>,
) -> VnfEvent {
    VnfEvent::ScaleCompleted {
        operation_id: format!("op-{}", direction.as_str()),
        added,
        removed,
    }
}

/// A monitored VNF with one WEB instance (i-1, .219), created by alice and ACTIVE at T0+2s;
/// its attributes hold a value that must never be told.
fn created() -> Vec<Told> {
    let web = fixtures::vdu("WEB", Some(fixtures::ping(PolicyAction::Respawn)));
    let mut details = fixtures::details(VNF_ID, "vnfd-1");
    details.attributes = json!({"password": "hunter2-sealed"});
    vec![
        lifecycle(
            1,
            T0,
            alice(),
            vec![
                VnfEvent::CreateRequested {
                    details,
                    vnfd: fixtures::spec(vec![web]),
                    operation_id: "op-create".into(),
                    add: vec![planned("i-1")],
                },
                VnfEvent::MonitorAttached {
                    action_id: "action-1".into(),
                },
            ],
        ),
        lifecycle(
            2,
            T0 + ms(2000),
            conductor("conductor-1"),
            vec![VnfEvent::CreateCompleted {
                operation_id: "op-create".into(),
                instances: vec![instance("i-1", 219, T0 + ms(1900))],
            }],
        ),
    ]
}

/// monitor-1's report that i-1 (.219) failed `attempts` pings, for a respawn.
fn respawn_failure(attempts: u32, detected_at: OffsetDateTime) -> Failure {
    Failure {
        failure_id: "f-1".into(),
        monitor: monitor("monitor-1"),
        target: target("i-1", 219),
        action: PolicyAction::Respawn,
        attempts,
        reason: "no reply".into(),
        detected_at,
    }
}

fn texts(lines: &[StoryLine]) -> Vec<&str> {
    lines.iter().map(|line| line.text.as_str()).collect()
}

#[test]
fn a_respawn_is_told_with_its_latency_from_the_failure() {
    let detected_at = T0 + ms(3120);
    let failure = respawn_failure(2, detected_at);
    let mut messages = created();
    // Out of time order, as audit reads them: the lifecycle, then the monitor stream.
    messages.extend([
        lifecycle(
            3,
            detected_at + ms(10),
            conductor("conductor-2"),
            vec![heal_started(failure.clone(), detected_at + ms(10))],
        ),
        lifecycle(
            4,
            detected_at + ms(57),
            conductor("conductor-2"),
            vec![heal_completed(223, detected_at + ms(50))],
        ),
        on_monitor(
            detected_at + ms(1),
            MonitorEvent::VduDown {
                monitor: monitor("monitor-1"),
                target: target("i-1", 219),
                reason: "no reply".into(),
                since: detected_at,
            },
        ),
        on_monitor(detected_at + ms(2), MonitorEvent::Failure(failure)),
        on_monitor(
            detected_at + ms(900),
            MonitorEvent::VduUp {
                monitor: monitor("monitor-1"),
                target: target("i-2", 223),
                since: detected_at + ms(900),
            },
        ),
    ]);

    let lines = story(VNF_ID, messages);
    assert_eq!(
        texts(&lines),
        vec![
            "create requested by alice (p1) from VNFD vnfd-1: 1 instance planned",
            "monitored under action action-1",
            "ACTIVE with WEB 198.18.3.219",
            "monitor state of VDU WEB 198.18.3.219: down (no reply)",
            "VDU WEB 198.18.3.219 down (monitor-1, 2 failed pings: no reply)",
            "respawn claimed by conductor-2 for VDU WEB 198.18.3.219: 1 instance to rebuild",
            "ACTIVE with WEB 198.18.3.223, 57 ms after the failure",
            "monitor state of VDU WEB 198.18.3.223: up",
        ]
    );
    let who: Vec<&str> = lines.iter().map(|line| line.who.as_str()).collect();
    assert_eq!(
        who,
        vec![
            "alice (p1)",
            "alice (p1)",
            "conductor-1",
            "monitor-1",
            "monitor-1",
            "conductor-2",
            "conductor-2",
            "monitor-1",
        ]
    );
    assert_eq!(lines[4].since_first, ms(3122));
    assert_eq!(
        lines[4].to_string(),
        "2026-12-01T10:00:03.122Z     +3.122s  monitor-1        \
         VDU WEB 198.18.3.219 down (monitor-1, 2 failed pings: no reply)"
    );
    assert_eq!(
        lines[4].with_vnf().to_string(),
        "2026-12-01T10:00:03.122Z  5b3c0a40     +3.122s  monitor-1        \
         VDU WEB 198.18.3.219 down (monitor-1, 2 failed pings: no reply)"
    );
    assert!(
        lines
            .iter()
            .all(|line| !line.to_string().contains("hunter2")),
        "an attribute was told: {lines:#?}"
    );
}

#[test]
fn a_scale_out_and_a_delete_are_told_with_who_asked() {
    let mut messages = created();
    messages.extend([
        lifecycle(
            3,
            T0 + ms(65_000),
            alice(),
            vec![scale_requested(
                ScaleDirection::Out,
                vec![planned("i-3")],
                vec![],
                T0 + ms(65_000),
            )],
        ),
        lifecycle(
            4,
            T0 + ms(66_000),
            conductor("conductor-1"),
            vec![scale_completed(
                ScaleDirection::Out,
                vec![instance("i-3", 230, T0 + ms(65_900))],
                vec![],
            )],
        ),
        lifecycle(
            5,
            T0 + ms(70_000),
            alice(),
            vec![scale_requested(
                ScaleDirection::In,
                vec![],
                vec!["i-3".into()],
                T0 + ms(70_000),
            )],
        ),
        lifecycle(
            6,
            T0 + ms(71_000),
            conductor("conductor-1"),
            vec![scale_completed(
                ScaleDirection::In,
                vec![],
                vec!["i-3".into()],
            )],
        ),
        lifecycle(
            7,
            T0 + ms(3_723_000),
            alice(),
            vec![
                VnfEvent::DeleteRequested {
                    operation_id: "op-delete".into(),
                },
                VnfEvent::MonitorDetached {
                    action_id: "action-1".into(),
                },
            ],
        ),
        lifecycle(
            8,
            T0 + ms(3_724_000),
            conductor("conductor-1"),
            vec![VnfEvent::Deleted {
                operation_id: "op-delete".into(),
            }],
        ),
    ]);

    let lines = story(VNF_ID, messages);
    assert_eq!(
        texts(&lines[3..]),
        vec![
            "scale out by policy SP1 requested by alice (p1): 1 instance to add",
            "scaled out: WEB 198.18.3.230 added",
            "scale in by policy SP1 requested by alice (p1): 1 instance to remove",
            "scaled in: WEB 198.18.3.230 removed",
            "delete requested by alice (p1)",
            "monitoring under action action-1 detached",
            "deleted",
        ]
    );
    let relative: Vec<String> = lines
        .iter()
        .map(|line| Relative(line.since_first).to_string())
        .collect();
    assert_eq!(relative[3], "+1m05.000s");
    assert_eq!(relative[9], "+1h02m04s");
}

#[test]
fn a_message_that_does_not_decode_is_told_as_skipped_and_the_story_goes_on() {
    let mut messages = created();
    messages.push(Told::Lifecycle(Err(Skipped {
        sequence: 3,
        reason: "unknown variant `Exploded`".into(),
        stored_at: T0 + ms(5000),
    })));
    messages.push(Told::monitor(&Stored {
        sequence: 9,
        subject: events::names::failure_subject(VNF_ID),
        headers: async_nats::HeaderMap::new(),
        payload: "not JSON".into(),
        time: T0 + ms(6000),
    }));
    messages.push(lifecycle(
        4,
        T0 + ms(7000),
        conductor("conductor-1"),
        vec![VnfEvent::OperationFailed {
            operation_id: "op-x".into(),
            reason: "VIM down".into(),
        }],
    ));

    let lines = story(VNF_ID, messages);
    let told: Vec<(&str, &str)> = lines[3..]
        .iter()
        .map(|line| (line.who.as_str(), line.text.as_str()))
        .collect();
    assert_eq!(
        told,
        vec![
            (
                "?",
                "lifecycle message #3 skipped: it does not decode (unknown variant `Exploded`)"
            ),
            (
                "?",
                "monitor message #9 skipped: it does not decode (expected ident at line 1 column 2)"
            ),
            ("conductor-1", "operation failed: VIM down"),
        ]
    );
}

#[test]
fn a_stale_failure_report_refused_by_a_conductor_is_told() {
    let mut messages = created();
    messages.push(on_monitor(
        T0 + ms(4000),
        MonitorEvent::BadAction {
            failure_id: "f-9".into(),
            conductor: conductor("conductor-2"),
            target: target("i-0", 218),
            reason: "instance i-0 is no longer running".into(),
        },
    ));
    let lines = story(VNF_ID, messages);
    let last = lines.last().unwrap();
    assert_eq!(last.who, "conductor-2");
    assert_eq!(
        last.text,
        "failure report of VDU WEB 198.18.3.218 refused as stale by conductor-2: \
         instance i-0 is no longer running"
    );
}

#[test]
fn a_tail_that_began_mid_life_tells_a_heal_from_what_it_absorbed() {
    let mut story = VnfStory::new(VNF_ID);
    for told in created() {
        let Told::Lifecycle(Ok(recorded)) = told else {
            unreachable!()
        };
        story.absorb(recorded);
    }
    let detected_at = T0 + ms(10_000);
    let failure = respawn_failure(1, detected_at);
    let down = story.tell(on_monitor(
        detected_at,
        MonitorEvent::Failure(failure.clone()),
    ));
    assert_eq!(
        texts(&down),
        vec!["VDU WEB 198.18.3.219 down (monitor-1, 1 failed ping: no reply)"]
    );
    assert_eq!(
        down[0].since_first,
        Duration::ZERO,
        "the tail's story begins here"
    );
    // A heal whose start the tail did not see: no latency to tell.
    let mut blind = VnfStory::new(VNF_ID);
    let healed = blind.tell(lifecycle(
        5,
        detected_at + ms(2500),
        conductor("conductor-2"),
        vec![heal_completed(223, detected_at)],
    ));
    assert_eq!(texts(&healed), vec!["ACTIVE with WEB 198.18.3.223 again"]);
    let started = story.tell(lifecycle(
        3,
        detected_at + ms(100),
        conductor("conductor-2"),
        vec![heal_started(failure, detected_at + ms(100))],
    ));
    assert_eq!(started.len(), 1);
    let healed = story.tell(lifecycle(
        4,
        detected_at + ms(2500),
        conductor("conductor-2"),
        vec![heal_completed(223, detected_at)],
    ));
    assert_eq!(
        texts(&healed),
        vec!["ACTIVE with WEB 198.18.3.223, 2.5 s after the failure"]
    );
    assert!(!story.is_over());
    story.tell(lifecycle(
        5,
        detected_at + ms(9000),
        conductor("conductor-1"),
        vec![VnfEvent::Deleted {
            operation_id: "op-delete".into(),
        }],
    ));
    assert!(story.is_over(), "a deleted VNF's story is over");
}

#[test]
fn a_failure_logged_or_a_respawn_limit_names_the_instance() {
    let record = FailureRecord {
        failure_id: "f-1".into(),
        monitor: monitor("monitor-1"),
        target: FailedInstance {
            vnf_id: VNF_ID.into(),
            vdu: "WEB".into(),
            instance_id: "i-1".into(),
            mgmt_ip: ip(219),
            action_id: "action-1".into(),
        },
        action: PolicyAction::Log,
        attempts: 1,
        reason: "no reply".into(),
        detected_at: T0,
    };
    let mut story = VnfStory::new(VNF_ID);
    let lines = story.tell(lifecycle(
        1,
        T0,
        conductor("conductor-1"),
        vec![
            VnfEvent::FailureLogged {
                failure: record.clone(),
            },
            VnfEvent::RespawnLimitReached {
                failure: Some(record),
                alarm: None,
                reason: "3 heals within 600 s".into(),
            },
        ],
    ));
    assert_eq!(
        texts(&lines),
        vec![
            "failure of VDU WEB 198.18.3.219 logged by conductor-1 (log)",
            "no automatic action for VDU WEB 198.18.3.219, decided by conductor-1: 3 heals within 600 s",
        ]
    );
}

#[test]
fn alarms_are_told_with_their_trigger_action_and_source() {
    use events::spec::AlarmAction;
    use events::vnf::{AlarmRecord, AlarmSource};

    let by_url = Actor::new(ActorKind::Alarm, "cpu_high").in_project("p1");
    let scale_out = AlarmRecord {
        occurrence_id: "tacker:a1".into(),
        trigger: "cpu_high".into(),
        action: AlarmAction::Scale {
            policy: "SP1".into(),
            direction: ScaleDirection::Out,
        },
        source: AlarmSource::Tacker,
        received_by: by_url.clone(),
        instance_id: None,
    };
    let respawn = AlarmRecord {
        occurrence_id: "am:fp:t".into(),
        trigger: "mem_high".into(),
        action: AlarmAction::Respawn,
        source: AlarmSource::Alertmanager,
        received_by: alice(),
        instance_id: Some("i-3".into()),
    };
    let mut story = VnfStory::new(VNF_ID);
    let mut lines = Vec::new();
    for told in created() {
        story.tell(told);
    }
    for told in [
        lifecycle(
            3,
            T0 + ms(65_000),
            by_url,
            vec![
                VnfEvent::AlarmClaimed {
                    alarm: scale_out,
                    at: T0 + ms(65_000),
                },
                scale_requested(
                    ScaleDirection::Out,
                    vec![planned("i-3")],
                    vec![],
                    T0 + ms(65_000),
                ),
            ],
        ),
        lifecycle(
            4,
            T0 + ms(66_000),
            conductor("conductor-1"),
            vec![scale_completed(
                ScaleDirection::Out,
                vec![instance("i-3", 230, T0 + ms(65_900))],
                vec![],
            )],
        ),
        lifecycle(
            5,
            T0 + ms(70_000),
            alice(),
            vec![
                VnfEvent::AlarmClaimed {
                    alarm: respawn.clone(),
                    at: T0 + ms(70_000),
                },
                VnfEvent::AlarmRespawnStarted {
                    operation_id: "op-heal".into(),
                    occurrence_id: "am:fp:t".into(),
                    add: vec![planned("i-4")],
                    remove: vec!["i-3".into()],
                    at: T0 + ms(70_000),
                },
            ],
        ),
        lifecycle(
            6,
            T0 + ms(90_000),
            alice(),
            vec![VnfEvent::RespawnLimitReached {
                failure: None,
                alarm: Some(respawn),
                reason: "3 heals within 600 s".into(),
            }],
        ),
    ] {
        lines.extend(story.tell(told));
    }
    assert_eq!(
        texts(&lines),
        vec![
            "alarm cpu_high (SP1-out) claimed by alarm cpu_high, from Tacker's alarm receiver",
            "scale out by policy SP1 requested by alarm cpu_high: 1 instance to add",
            "scaled out: WEB 198.18.3.230 added",
            "alarm mem_high (respawn) claimed by alice (p1), from Alertmanager about instance i-3",
            "respawn on the alarm: 1 instance to rebuild",
            "no automatic action for alarm mem_high, decided by alice (p1): 3 heals within 600 s",
        ]
    );
}

#[test]
fn a_vim_drift_is_told_as_the_vims_not_a_probes() {
    let detected_at = T0 + ms(20_000);
    let drift = Failure {
        failure_id: events::vnf::drift_id("i-1", "gone"),
        monitor: conductor("conductor-3"),
        reason: "the VIM reports the server of instance i-1 gone".into(),
        attempts: 1,
        ..respawn_failure(1, detected_at)
    };
    let mut messages = created();
    messages.push(on_monitor(detected_at, MonitorEvent::Failure(drift)));
    let lines = story(VNF_ID, messages);
    assert_eq!(
        texts(&lines).last().copied(),
        Some(
            "VDU WEB 198.18.3.219 down (VIM drift found by conductor-3: \
             the VIM reports the server of instance i-1 gone)"
        )
    );

    let mut messages = created();
    messages.push(lifecycle(
        3,
        detected_at,
        conductor("conductor-3"),
        vec![VnfEvent::VimDriftFound {
            drift: events::vnf::VimDrift {
                drift_id: events::vnf::drift_id("i-1", "SHUTOFF"),
                vdu: "WEB".into(),
                instance_id: "i-1".into(),
                vim_state: "SHUTOFF".into(),
                reason: "the VIM reports server s-1 SHUTOFF (VDU WEB has no monitoring policy)"
                    .into(),
                found_by: conductor("conductor-3"),
                found_at: detected_at,
            },
        }],
    ));
    let lines = story(VNF_ID, messages);
    assert_eq!(
        texts(&lines).last().copied(),
        Some(
            "VIM drift of WEB instance i-1, found by conductor-3: the VIM reports server s-1 \
             SHUTOFF (VDU WEB has no monitoring policy); the VNF is ERROR"
        )
    );
}
