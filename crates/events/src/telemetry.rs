//! Every Prometheus metric vnfm exports: its name, unit and help, spelled only here.
//!
//! The roles record with the `metrics` macros under these names, which do nothing in a process
//! without a recorder (tests that run roles in-process, or a role without `--metrics-listen`);
//! the `vnfm` binary installs the one recorder and calls [`describe`]. Labels are few and of
//! low cardinality: a driver, an outcome, a consumer, a route template, a status class; never a
//! VNF, instance or failure id.

/// Probe attempts started, by `driver` (`ping`, `http_ping`) and `outcome` (`up`, `down`).
pub const PROBE_ATTEMPTS: &str = "vnfm_probe_attempts_total";
/// Seconds between an attempt's interval boundary and its probe's start.
pub const PROBE_LATENESS: &str = "vnfm_probe_lateness_seconds";
/// Targets in the partitions a monitor holds.
pub const MONITOR_TARGETS: &str = "vnfm_monitor_targets";
/// Partitions (of `monitor::share`'s 64) a monitor holds.
pub const MONITOR_PARTITIONS: &str = "vnfm_monitor_partitions";
/// Lifecycle messages a monitor has not read yet (its consumer of the log's pending count, set
/// as each message comes): 0 once it has caught up with the log.
pub const MONITOR_LIFECYCLE_PENDING: &str = "vnfm_monitor_lifecycle_pending_messages";
/// Seconds a monitor's lease renewal took: its membership written, its leases renewed, the
/// others read and free ones taken. One past the leases' time to live (4 s) loses them.
pub const MONITOR_LEASE_RENEWAL: &str = "vnfm_monitor_lease_renewal_seconds";
/// Partition leases a monitor lost: found taken or expired when it renewed them.
pub const MONITOR_LEASES_LOST: &str = "vnfm_monitor_leases_lost_total";
/// A monitor's lifecycle snapshots, by `outcome`: `restored` (its start resumed from one),
/// `refused` (one was there and did not decode, or was of another schema or beyond the log:
/// a full replay instead), `written` (stored as the holder of partition 0), `failed` (not
/// stored).
pub const MONITOR_SNAPSHOTS: &str = "vnfm_monitor_snapshots_total";
/// Failure reports a monitor stored on the monitor stream.
pub const FAILURES_REPORTED: &str = "vnfm_failures_reported_total";
/// Drifts a conductor's reconciliation acted on, by `action` (`failure_reported` for a
/// monitored VDU, `vnf_error` for one without a policy).
pub const VIM_DRIFTS: &str = "vnfm_vim_drifts_total";
/// Heals a conductor claimed (its `HandleFailure` recorded the heal).
pub const HEALS_CLAIMED: &str = "vnfm_heals_claimed_total";
/// Heals a conductor recorded as completed.
pub const HEALS_COMPLETED: &str = "vnfm_heals_completed_total";
/// Heals a conductor recorded as failed (`OperationFailed`).
pub const HEALS_FAILED: &str = "vnfm_heals_failed_total";
/// Seconds from a failure's detection by a monitor to its heal's completion being recorded.
pub const HEAL_LATENCY: &str = "vnfm_heal_seconds";
/// Messages of a durable consumer not yet delivered, by `consumer`.
pub const CONSUMER_PENDING: &str = "vnfm_consumer_pending_messages";
/// Messages of a durable consumer delivered and not yet acked, by `consumer`.
pub const CONSUMER_ACK_PENDING: &str = "vnfm_consumer_ack_pending_messages";
/// Seconds an append to the lifecycle log took, by `outcome` (`stored`, `conflict`, `error`).
pub const APPEND_LATENCY: &str = "vnfm_append_seconds";
/// Seconds an API request took, by `route` (the route template, `unmatched` for none),
/// `method` and `status` class (`2xx` to `5xx`).
pub const HTTP_REQUEST_LATENCY: &str = "vnfm_http_request_seconds";
/// Bytes of the process's heap in live allocations, as of the scrape.
pub const HEAP_IN_USE: &str = "vnfm_heap_in_use_bytes";
/// Bytes of the process's heap freed and not reused yet, as of the scrape; pages of it given
/// back to the system stay counted.
pub const HEAP_FREE: &str = "vnfm_heap_free_bytes";

/// Every histogram and the bucket bounds it is exported with, in seconds.
pub const HISTOGRAMS: [(&str, &[f64]); 5] = [
    // A probe starts within the engine's tick (0.1 s) when the monitor keeps up; lateness
    // past a second means attempts miss their rounds.
    (
        PROBE_LATENESS,
        &[0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0],
    ),
    // A renewal is a few KV writes and reads, milliseconds on loopback; it is renewed every
    // second and its leases live 4 s.
    (
        MONITOR_LEASE_RENEWAL,
        &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
    ),
    // A heal is claimed within milliseconds of its report (ops/bench-heal); a local VIM's
    // respawn completed 43 ms after detection in tests/tests/metrics.rs, a real VIM's VIM
    // calls take seconds to minutes.
    (
        HEAL_LATENCY,
        &[
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ],
    ),
    // An append is one JetStream publish with its ack: about a millisecond on loopback.
    (
        APPEND_LATENCY,
        &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 3.0,
        ],
    ),
    // A show is served from memory in well under a millisecond; a create appends.
    (
        HTTP_REQUEST_LATENCY,
        &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
        ],
    ),
];

/// Registers every metric's help text with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        PROBE_ATTEMPTS,
        "Probe attempts started, by driver and outcome."
    );
    describe_histogram!(
        PROBE_LATENESS,
        Unit::Seconds,
        "Time from an attempt's interval boundary to its probe's start."
    );
    describe_gauge!(
        MONITOR_TARGETS,
        "Targets in the partitions this monitor holds."
    );
    describe_gauge!(MONITOR_PARTITIONS, "Partitions this monitor holds.");
    describe_gauge!(
        MONITOR_LIFECYCLE_PENDING,
        "Lifecycle messages this monitor has not read yet."
    );
    describe_histogram!(
        MONITOR_LEASE_RENEWAL,
        Unit::Seconds,
        "Time this monitor's lease renewal took."
    );
    describe_counter!(
        MONITOR_LEASES_LOST,
        "Partition leases this monitor found taken or expired when it renewed them."
    );
    describe_counter!(
        MONITOR_SNAPSHOTS,
        "Lifecycle snapshots this monitor restored, refused, wrote or failed to write."
    );
    describe_counter!(
        FAILURES_REPORTED,
        "Failure reports stored on the monitor stream."
    );
    describe_counter!(
        VIM_DRIFTS,
        "VIM drifts this conductor acted on, by action (failure_reported, vnf_error)."
    );
    describe_counter!(HEALS_CLAIMED, "Heals this conductor claimed.");
    describe_counter!(
        HEALS_COMPLETED,
        "Heals this conductor recorded as completed."
    );
    describe_counter!(HEALS_FAILED, "Heals this conductor recorded as failed.");
    describe_histogram!(
        HEAL_LATENCY,
        Unit::Seconds,
        "Time from a failure's detection to its heal's recorded completion."
    );
    describe_gauge!(
        CONSUMER_PENDING,
        "Messages of a durable consumer not yet delivered."
    );
    describe_gauge!(
        CONSUMER_ACK_PENDING,
        "Messages of a durable consumer delivered and not yet acked."
    );
    describe_histogram!(
        APPEND_LATENCY,
        Unit::Seconds,
        "Time an append to the lifecycle log took, by outcome."
    );
    describe_histogram!(
        HTTP_REQUEST_LATENCY,
        Unit::Seconds,
        "Time an API request took, by route template, method and status class."
    );
    describe_gauge!(
        HEAP_IN_USE,
        Unit::Bytes,
        "Bytes of the process's heap in live allocations (glibc's mallinfo2)."
    );
    describe_gauge!(
        HEAP_FREE,
        Unit::Bytes,
        "Bytes of the process's heap freed and not reused yet, pages given back included (glibc's mallinfo2)."
    );
}

/// The status class of an HTTP status code, the label of [`HTTP_REQUEST_LATENCY`].
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
