//! Test fixtures of the monitor crate: a VNF's lifecycle events, a clock on tokio's paused
//! time and a scripted probe. Never used outside tests.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use events::fixtures;
use events::monitor::cidr::ProbeCidrs;
use events::monitor::{ProbeOutcome, Target};
use events::spec::{MonitoringPolicy, PolicyAction};
use events::vnf::{Instance, PlannedInstance, VnfEvent};

use crate::clock::Clock;
use crate::probe::Probe;

/// The probing interval of the fixtures' policy.
pub const INTERVAL_MS: u64 = 1_000;
/// The probe timeout of the fixtures' policy (the scripted probe takes its own).
const TIMEOUT_MS: u64 = 500;
/// Failed attempts in a row before the fixtures' VDU counts as failed.
pub const RETRY: u32 = 2;
/// When the fixtures' instances booted.
pub const BOOTED_AT: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

/// A ping policy without a monitoring delay, at the fixtures' interval, timeout and retry.
pub fn policy(action: PolicyAction) -> MonitoringPolicy {
    MonitoringPolicy {
        interval_ms: INTERVAL_MS,
        timeout_ms: TIMEOUT_MS,
        retry: RETRY,
        ..fixtures::ping(action)
    }
}

/// The management IP of instance `n` of VNF number `vnf`.
pub fn ip(vnf: u8, n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, vnf, n)
}

/// An address outside [`probe_cidrs`]: the cloud metadata service a forged management IP
/// would aim monitors at.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The ranges the tests' monitors may probe: loopback, where every [`ip`] answers.
pub fn probe_cidrs() -> ProbeCidrs {
    "127.0.0.0/8".parse().expect("a CIDR")
}

/// The events that create VNF `vnf_id` (number `vnf`) with `instances` monitored instances of
/// VDU1, active under action id `action_id`.
pub fn created(vnf_id: &str, vnf: u8, instances: u8, action_id: &str) -> Vec<VnfEvent> {
    let ips: Vec<Ipv4Addr> = (0..instances).map(|n| ip(vnf, n)).collect();
    created_at(vnf_id, &ips, action_id)
}

/// The events that create VNF `vnf_id` with a monitored instance of VDU1 at each of `ips`
/// (instance `n` at the `n`th), active under action id `action_id`.
pub fn created_at(vnf_id: &str, ips: &[Ipv4Addr], action_id: &str) -> Vec<VnfEvent> {
    let plan: Vec<PlannedInstance> = (0..)
        .zip(ips)
        .map(|(n, _)| PlannedInstance {
            vdu: "VDU1".into(),
            instance_id: instance_id(vnf_id, n),
        })
        .collect();
    let running = plan
        .iter()
        .zip(ips)
        .map(|(p, ip)| Instance {
            instance_id: p.instance_id.clone(),
            vdu: p.vdu.clone(),
            mgmt_ip: *ip,
            booted_at: BOOTED_AT,
        })
        .collect();
    vec![
        VnfEvent::CreateRequested {
            details: fixtures::details(vnf_id, "vnfd-1"),
            vnfd: fixtures::spec(vec![fixtures::vdu(
                "VDU1",
                Some(policy(PolicyAction::Respawn)),
            )]),
            operation_id: format!("{vnf_id}-create"),
            add: plan,
        },
        VnfEvent::MonitorAttached {
            action_id: action_id.into(),
        },
        VnfEvent::CreateCompleted {
            operation_id: format!("{vnf_id}-create"),
            instances: running,
        },
    ]
}

pub fn instance_id(vnf_id: &str, n: u8) -> String {
    format!("{vnf_id}-VDU1-{n}")
}

/// Wall time that follows tokio's clock (paused in tests), starting at `BOOTED_AT`.
#[derive(Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        BOOTED_AT + self.start.elapsed()
    }
}

/// What the scripted probe does for one IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Answers after [`RTT`].
    Up,
    /// No reply: the attempt runs this long (its timeout), then is Down.
    Silent(Duration),
    /// Answers after this long: a slow reply within the timeout.
    UpAfter(Duration),
}

/// A probe that answers by a script per IP (Up by default) and records every attempt.
#[derive(Debug, Default)]
pub struct ScriptedProbe {
    scripts: Mutex<HashMap<Ipv4Addr, Script>>,
    /// Every attempt's IP and start time, in order of start.
    pub attempts: Mutex<Vec<(Ipv4Addr, tokio::time::Instant)>>,
}

/// How long a scripted Up answer takes.
pub const RTT: Duration = Duration::from_millis(1);

impl ScriptedProbe {
    pub fn set(&self, ip: Ipv4Addr, script: Script) {
        self.scripts.lock().unwrap().insert(ip, script);
    }

    /// How many attempts `ip` had.
    pub fn count(&self, ip: Ipv4Addr) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at == ip)
            .count()
    }

    /// When `ip`'s attempts started.
    pub fn starts(&self, ip: Ipv4Addr) -> Vec<tokio::time::Instant> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at == ip)
            .map(|(_, start)| *start)
            .collect()
    }
}

impl Probe for ScriptedProbe {
    async fn probe(&self, target: &Target) -> ProbeOutcome {
        self.attempts
            .lock()
            .unwrap()
            .push((target.mgmt_ip, tokio::time::Instant::now()));
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&target.mgmt_ip)
            .copied()
            .unwrap_or(Script::Up);
        match script {
            Script::Up => {
                tokio::time::sleep(RTT).await;
                ProbeOutcome::Up { rtt_us: 1_000 }
            }
            Script::UpAfter(rtt) => {
                tokio::time::sleep(rtt).await;
                ProbeOutcome::Up {
                    rtt_us: u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
                }
            }
            Script::Silent(timeout) => {
                tokio::time::sleep(timeout).await;
                ProbeOutcome::Down {
                    reason: "no reply".into(),
                }
            }
        }
    }
}
