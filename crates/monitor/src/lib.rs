//! The monitor role: probes every monitored VDU instance and reports what it sees.
//!
//! A monitor keeps no target list of its own: it replays the lifecycle log (an ordered consumer
//! of every VNF subject) through the VNF aggregate and [`events::monitor::targets`], and follows
//! it live, so a scale or respawn changes the probed IPs and a delete stops them. Each round's
//! results, each VDU going down or coming back, and each failure (after `retry` failed
//! attempts) are events on the monitor stream; conductors act on the failures. Probing never
//! waits on an action.
//!
//! The decisions are pure ([`tracker`], [`targets`], [`judge`]); [`engine`] runs them on a
//! clock with a [`probe::Probe`] and no NATS; [`runtime`] connects it to NATS and
//! [`publisher`] stores what it reports.
//!
//! A monitor never appends to the lifecycle log and never calls a VIM.

pub mod clock;
pub mod engine;
pub mod judge;
pub mod probe;
pub mod publisher;
pub mod runtime;
pub mod share;
pub mod snapshot;
pub mod snapshot_store;
pub mod targets;
pub mod tracker;

#[cfg(test)]
mod testing;

/// The unit tests count what the structures they build allocate.
#[cfg(test)]
#[global_allocator]
static COUNTING: testkit::heap::Counting = testkit::heap::Counting;

use events::monitor::cidr::{LOCAL_VIM_RANGE, ProbeCidrs};
use events::nats_error::NatsError;
use events::store::StoreError;

pub use runtime::{DRAIN_DEADLINE, Monitor, Skips};

/// The maps and sets of ids (instances, VNFs) the engine looks up on every attempt, hashed
/// with foldhash rather than the standard library's SipHash: SipHash took 2.5 % of a
/// monitor's CPU at 10,000 targets a second (`perf` during `ops/bench monitor-cpu`). Its keys
/// come from the lifecycle log, which only the gateway and conductors write, and foldhash is
/// still seeded at random per process.
pub type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Tunables of a monitor.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// This instance's name, recorded in every result and failure it reports.
    pub instance: String,
    /// The fewest failures in one round that can make the monitor suspect itself.
    pub suspect_failures_min: usize,
    /// The ranges the monitor may probe (`--probe-cidrs`); a target outside them is reported
    /// once and never probed, so a forged management IP cannot aim monitors at another host.
    pub probe_cidrs: ProbeCidrs,
    /// When the holder of the writer partition snapshots its lifecycle fold
    /// (`--snapshot-interval-s`, `--snapshot-messages-min`).
    pub snapshots: snapshot::Schedule,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            instance: format!("monitor-{}", std::process::id()),
            // Ten: a small deployment (fewer targets) still heals when all of them fail.
            suspect_failures_min: 10,
            // The local VIM's: where every VDU it deploys gets its address.
            probe_cidrs: ProbeCidrs::from(LOCAL_VIM_RANGE),
            snapshots: snapshot::Schedule::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Probe(#[from] probe::ProbeError),
    /// A message or a VNF's states did not encode as JSON; nothing was stored.
    #[error("cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
}
