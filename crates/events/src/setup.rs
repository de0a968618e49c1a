//! Making vnfm's streams and buckets: the admin identity's one job (`vnfm setup`, and `vnfm up`
//! at start). [`provision`] creates each one missing and brings each existing one to the
//! configuration below; the roles only bind to them ([`store`](crate::store)'s `open*`), and
//! may not create, update or delete one ([`access`](crate::access)). It also makes the heal
//! consumer, which the failure stream needs before any report is stored. Nothing here ever
//! deletes a stream, and the one purge is a migration's: probe rounds left in the monitor
//! stream by a build that kept them there (before [`names::TELEMETRY_STREAM`]), which no
//! reader looks for there any more and which would otherwise stay a month (the monitor
//! stream's age limit); the one consumer deleted is another's: the heal consumer a build
//! before [`names::FAILURE_STREAM`] made on the monitor stream, once it has nothing pending.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use futures::TryStreamExt;

use crate::names;
use crate::nats_error::{HasNatsKind, NatsError, NatsErrorKind};
use crate::store::StoreError;

/// How the streams and buckets are laid out on the servers.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// 1 for a single server, 3 for the production cluster.
    pub replicas: usize,
    /// The telemetry stream's size bound, in bytes: past it, the oldest probe rounds are
    /// evicted. [`TELEMETRY_STREAM_BYTES_MIN`]..=[`TELEMETRY_STREAM_BYTES_MAX`].
    pub telemetry_bytes_max: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            replicas: 1,
            telemetry_bytes_max: TELEMETRY_STREAM_BYTES_DEFAULT,
        }
    }
}

/// The window in which the server recognises a repeated `Nats-Msg-Id`. Longer than any client's
/// retry loop (attempts × publish timeout), short enough to keep the server's id table small.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// The largest lifecycle message: a VNFD with its template is the biggest, and the VNFD parser
/// caps templates well below this.
const LIFECYCLE_MESSAGE_BYTES_MAX: i32 = 4 * 1024 * 1024;
/// How long probe rounds are kept at most: a week of incidents to look back on, when the size
/// bound allows it (at 10,000 targets a second it does not: the bytes bound evicts first).
const TELEMETRY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The telemetry stream's default size bound; the oldest rounds go first.
pub const TELEMETRY_STREAM_BYTES_DEFAULT: i64 = 1024 * 1024 * 1024;
/// The smallest telemetry bound accepted: room for many rounds of the largest monitor message,
/// so that a bound given in the wrong unit (KiB for MiB) is refused rather than obeyed.
pub const TELEMETRY_STREAM_BYTES_MIN: i64 = 1024 * 1024;
/// The largest telemetry bound accepted: 1 TiB, past any store vnfm is planned for (a server
/// refuses a stream whose bound its store cannot reserve anyway).
pub const TELEMETRY_STREAM_BYTES_MAX: i64 = 1024 * 1024 * 1024 * 1024;
/// The monitor stream's size bound. It refuses new messages past this bound rather than
/// evicting old ones (`discard: new`), so that no record is ever lost to a newer one: a
/// monitor's publish then fails with the server's "maximum bytes exceeded", which it logs and
/// retries (state changes are retried until stored), and the failure reports' copies wait in
/// the failure stream's source. Its messages are small and rare (a failure report is about 600
/// bytes), so 1 GiB is well over a million copies and state changes. Not larger: a single nats-server
/// reserves every stream's `max_bytes` against its store's limit (75 % of the free disk by
/// default) and refuses a stream that does not fit.
pub const MONITOR_STREAM_BYTES_MAX: i64 = 1024 * 1024 * 1024;
/// How long the monitor stream keeps a message: a month of state changes, rejections, suspect
/// reports and failure reports' copies to audit. Without it they would pile up until the size
/// bound refused every new one. No failure report waits for handling there: that is the
/// failure stream's, which has no age limit.
pub const MONITOR_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The failure stream's size bound: failure reports not yet handled. Past it a new report is
/// refused (`discard: new`) and the monitor retries it until stored, as with the monitor
/// stream's bound; a handled report leaves the stream. A report is about 600 bytes, so this is
/// over 400,000 reports waiting, forty storms of 10,000 failures with every conductor down.
pub const FAILURE_STREAM_BYTES_MAX: i64 = 256 * 1024 * 1024;
/// How long a monitor's membership and partition leases live after their last write: four
/// renewals (`monitor::share` renews every second), so one late renewal loses nothing.
pub const LEASE_TTL: Duration = Duration::from_secs(4);

/// The largest monitor snapshot a monitor writes or reads (`monitor::snapshot`). A VNF with a
/// history of heals and scales takes about 830 bytes in a snapshot (its VNFD's spec stored
/// once; `vnfm-bench`'s `a_snapshot_of_the_benchs_fleet_fits_the_bound` prints it), so issue
/// 13's 100,000 VNFs take about 83 MB: this leaves room for 2 KiB a VNF (larger attributes,
/// longer failure records) before a snapshot is refused and monitors replay the log.
pub const SNAPSHOT_BYTES_MAX: i64 = 192 * 1024 * 1024;
/// The chunk a snapshot is stored in (the object store's default): the bucket refuses a
/// larger message, so that its count of messages bounds its bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 128 * 1024;
/// The largest message of the snapshot bucket: a chunk, or an object's metadata (a few hundred
/// bytes), with room for headers.
const SNAPSHOT_BUCKET_MESSAGE_BYTES_MAX: i32 = 128 * 1024 + 4 * 1024;
/// The snapshot bucket's bound, in messages: two snapshots of [`SNAPSHOT_BYTES_MAX`] (the one
/// a put replaces stays until the new one is stored) and their metadata. With the message
/// bound it holds at most about 400 MiB. A bound in bytes would do the same, but a
/// nats-server reserves a stream's `max_bytes` against its store when it makes the stream,
/// whether used or not, where the snapshot is usually a fraction of it.
const SNAPSHOT_BUCKET_MESSAGES_MAX: i64 = 2 * (SNAPSHOT_BYTES_MAX / (128 * 1024) + 1) + 2;

/// How often a create or update is asked for again after it went unanswered: a clustered
/// nats-server may leave a request about a replicated stream unanswered during an election
/// (nats-io/nats-server#3677, nats-io/nats.go#949), and asking again is idempotent.
const PROVISION_ATTEMPTS_MAX: u32 = 3;

/// Creates every stream and bucket of vnfm that is missing, and updates the others to the
/// configuration of this build (more replicas, say). Idempotent.
pub async fn provision(
    jetstream: &jetstream::Context,
    config: &LogConfig,
) -> Result<(), StoreError> {
    if !(TELEMETRY_STREAM_BYTES_MIN..=TELEMETRY_STREAM_BYTES_MAX)
        .contains(&config.telemetry_bytes_max)
    {
        return Err(StoreError::Misconfigured(format!(
            "the telemetry stream's size bound must be {TELEMETRY_STREAM_BYTES_MIN}..=\
             {TELEMETRY_STREAM_BYTES_MAX} bytes, got {}",
            config.telemetry_bytes_max
        )));
    }
    refuse_unhandled_failures_of_an_older_build(jetstream).await?;
    // The monitor stream first: an older build's took every monitor subject, rounds and
    // failure reports included, and streams may not overlap, so it gives them up before the
    // failure and telemetry streams take them.
    for stream in [
        lifecycle_stream(config),
        monitor_stream(config),
        failure_stream(config),
        telemetry_stream(config),
    ] {
        retried("creating or updating a stream", || {
            jetstream.create_or_update_stream(stream.clone())
        })
        .await?;
    }
    purge_old_rounds(jetstream).await?;
    provision_heal_consumer(jetstream).await?;
    for bucket in buckets(config) {
        retried("creating or updating a bucket", || {
            jetstream.create_or_update_key_value(bucket.clone())
        })
        .await?;
    }
    // An object store bucket is a stream of the shape the object store protocol expects;
    // made as one, so that an existing bucket is updated rather than refused.
    retried("creating or updating an object store bucket", || {
        jetstream.create_or_update_stream(snapshot_bucket(config))
    })
    .await?;
    Ok(())
}

/// The monitors' snapshot bucket: room for the one snapshot and the one replacing it (a put
/// stores the new version whole before it purges the old), bounded by its count of messages of
/// a bounded size, and past that a put is refused (`discard: new`) rather than evicting the
/// snapshot in place. Compressed at rest (S2): a
/// snapshot is JSON, mostly repeated keys.
fn snapshot_bucket(config: &LogConfig) -> stream::Config {
    let bucket = names::MONITOR_SNAPSHOT_BUCKET;
    stream::Config {
        name: names::object_store_stream(bucket),
        subjects: names::object_store_stream_subjects(bucket).into(),
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_messages: SNAPSHOT_BUCKET_MESSAGES_MAX,
        max_message_size: SNAPSHOT_BUCKET_MESSAGE_BYTES_MAX,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        compression: Some(stream::Compression::S2),
        ..Default::default()
    }
}

/// The lifecycle log: file-backed, no message ever deleted or purged.
fn lifecycle_stream(config: &LogConfig) -> stream::Config {
    stream::Config {
        name: names::LIFECYCLE_STREAM.into(),
        subjects: vec![names::LIFECYCLE_SUBJECTS.into()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        duplicate_window: DUPLICATE_WINDOW,
        max_message_size: LIFECYCLE_MESSAGE_BYTES_MAX,
        ..Default::default()
    }
}

/// VDU state changes, `bad_action` rejections, suspect reports and refused targets, and a copy
/// of every failure report (sourced from the failure stream, under its own subject): kept a
/// month ([`MONITOR_RETENTION`]) for the audit, and past its size bound new messages are
/// refused, never old ones evicted (see [`MONITOR_STREAM_BYTES_MAX`]).
fn monitor_stream(config: &LogConfig) -> stream::Config {
    stream::Config {
        name: names::MONITOR_STREAM.into(),
        subjects: names::MONITOR_STREAM_SUBJECTS.map(str::to_owned).into(),
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_age: MONITOR_RETENTION,
        max_bytes: MONITOR_STREAM_BYTES_MAX,
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        duplicate_window: DUPLICATE_WINDOW,
        sources: Some(vec![stream::Source {
            name: names::FAILURE_STREAM.into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// Failure reports waiting to be handled: interest retention, so that a report leaves when
/// every consumer has it, which is `conductor-heal`'s ack (the monitor stream's source takes
/// its copy as soon as it is stored). No age limit, and past its size bound new reports are
/// refused rather than old ones evicted ([`FAILURE_STREAM_BYTES_MAX`]): nothing but handling
/// removes a report.
fn failure_stream(config: &LogConfig) -> stream::Config {
    stream::Config {
        name: names::FAILURE_STREAM.into(),
        subjects: names::FAILURE_STREAM_SUBJECTS.map(str::to_owned).into(),
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        retention: stream::RetentionPolicy::Interest,
        max_bytes: FAILURE_STREAM_BYTES_MAX,
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// `conductor-heal` on the failure stream, made here when missing rather than by the first
/// conductor: an interest stream keeps a report only for the consumers that exist when it is
/// stored, so the consumer must exist before any report does. Its conductors set their own
/// `ack_wait` when they open it.
async fn provision_heal_consumer(jetstream: &jetstream::Context) -> Result<(), StoreError> {
    let failures = retried("opening the failure stream", || {
        jetstream.get_stream(names::FAILURE_STREAM)
    })
    .await?;
    retried("creating the heal consumer", || {
        failures.get_or_create_consumer(names::HEAL_CONSUMER, heal_consumer())
    })
    .await?;
    // An older build's `conductor-heal` read the monitor stream; it has nothing left to hand
    // over (see `refuse_unhandled_failures_of_an_older_build`), and left there it would count
    // the failure reports' copies as pending forever.
    let monitor = retried("opening the monitor stream", || {
        jetstream.get_stream(names::MONITOR_STREAM)
    })
    .await?;
    match monitor
        .delete_consumer(names::HEAL_CONSUMER)
        .await
        .map_err(|e| NatsError::new("removing the old heal consumer", e))
    {
        Ok(_) => tracing::info!(
            consumer = names::HEAL_CONSUMER,
            from = names::MONITOR_STREAM,
            to = names::FAILURE_STREAM,
            "Failure reports now have a stream of their own; removed the old consumer."
        ),
        Err(e) if e.kind() == NatsErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The heal consumer as made by `setup`: every failure report, each acked on its own.
pub fn heal_consumer() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(names::HEAL_CONSUMER.into()),
        filter_subject: names::FAILURE_SUBJECTS.into(),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    }
}

/// Refuses to move failure reports to their own stream while an older build's monitor stream
/// still holds some that its `conductor-heal` has not handled (pending or unacked; every one
/// when that consumer was never made): moved, they would leave the consumer that knows which
/// are handled. An error names how many and what to do; nothing is changed.
async fn refuse_unhandled_failures_of_an_older_build(
    jetstream: &jetstream::Context,
) -> Result<(), StoreError> {
    let monitor = match jetstream
        .get_stream(names::MONITOR_STREAM)
        .await
        .map_err(|e| NatsError::new("opening the monitor stream", e))
    {
        Ok(monitor) => monitor,
        Err(e) if e.kind() == NatsErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let subjects = &monitor.cached_info().config.subjects;
    let older = subjects.iter().any(|subject| {
        subject == names::FAILURE_SUBJECTS || subject == names::ALL_MONITOR_SUBJECTS
    });
    if !older {
        return Ok(());
    }
    let unhandled = match monitor
        .consumer_info(names::HEAL_CONSUMER)
        .await
        .map_err(|e| NatsError::new("reading the old heal consumer", e))
    {
        Ok(heal) => heal.num_pending + heal.num_ack_pending as u64,
        Err(e) if e.kind() == NatsErrorKind::NotFound => {
            let mut reports = monitor
                .info_with_subjects(names::FAILURE_SUBJECTS)
                .await
                .map_err(|e| NatsError::new("counting the failure reports", e))?;
            let mut count = 0;
            while let Some((_, messages)) = reports
                .try_next()
                .await
                .map_err(|e| NatsError::new("counting the failure reports", e))?
            {
                count += messages as u64;
            }
            count
        }
        Err(e) => return Err(e.into()),
    };
    if unhandled > 0 {
        return Err(StoreError::Misconfigured(format!(
            "{unhandled} failure reports in {} are not handled yet; this build's conductors \
             read failure reports from {} instead. Run the conductors of the build that made \
             it until its consumer `{}` has none pending, then set up again.",
            names::MONITOR_STREAM,
            names::FAILURE_STREAM,
            names::HEAL_CONSUMER
        )));
    }
    Ok(())
}

/// Probe rounds and their rosters, bounded by age and size: the oldest go first, and nothing
/// else is there to go with them. An older deployment's stream, which took rounds alone,
/// gains the roster subjects by this update.
fn telemetry_stream(config: &LogConfig) -> stream::Config {
    stream::Config {
        name: names::TELEMETRY_STREAM.into(),
        subjects: names::TELEMETRY_STREAM_SUBJECTS.map(str::to_owned).into(),
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_age: TELEMETRY_RETENTION,
        max_bytes: config.telemetry_bytes_max,
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    }
}

/// Removes the probe rounds an older build stored in the monitor stream (which took
/// `vnfm.monitor.>` then); a no-op once they are gone. Answers how many it removed.
async fn purge_old_rounds(jetstream: &jetstream::Context) -> Result<u64, StoreError> {
    let monitor = retried("opening the monitor stream", || {
        jetstream.get_stream(names::MONITOR_STREAM)
    })
    .await?;
    let mut purged = 0;
    for subjects in names::TELEMETRY_STREAM_SUBJECTS {
        let answer = retried("purging old probe rounds from the monitor stream", || {
            monitor.purge().filter(subjects).into_future()
        })
        .await?;
        purged += answer.purged;
    }
    if purged > 0 {
        tracing::info!(
            purged,
            from = names::MONITOR_STREAM,
            to = names::TELEMETRY_STREAM,
            "Probe rounds now have a stream of their own; removed the old ones."
        );
    }
    Ok(purged)
}

/// The VNF, VNFD and VIM tables, the monitor states, the monitor leases (whose entries expire
/// [`LEASE_TTL`] after their last write), the data keys (one revision each, so that a
/// destroyed key leaves nothing behind in its bucket), the names' claims and the loopback VIM's
/// addresses.
fn buckets(config: &LogConfig) -> [kv::Config; 8] {
    let bucket = |name: &str| kv::Config {
        bucket: name.into(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        ..Default::default()
    };
    [
        bucket(names::VNF_TABLE_BUCKET),
        bucket(names::VNFD_TABLE_BUCKET),
        bucket(names::VIM_TABLE_BUCKET),
        bucket(names::MONITOR_STATE_BUCKET),
        kv::Config {
            max_age: LEASE_TTL,
            ..bucket(names::MONITOR_LEASE_BUCKET)
        },
        bucket(names::DATA_KEY_BUCKET),
        bucket(names::NAME_CLAIM_BUCKET),
        bucket(names::LOOPBACK_VIM_BUCKET),
    ]
}

/// Runs `request` until it answers, asking again after a timeout.
async fn retried<T, K, F>(
    context: &'static str,
    mut request: impl FnMut() -> F,
) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, async_nats::error::Error<K>>>,
    K: HasNatsKind
        + Clone
        + std::fmt::Debug
        + std::fmt::Display
        + PartialEq
        + Send
        + Sync
        + 'static,
{
    let mut attempt = 1;
    loop {
        let error = match request().await {
            Ok(done) => return Ok(done),
            Err(error) => NatsError::new(context, error),
        };
        if error.kind() != NatsErrorKind::TimedOut || attempt >= PROVISION_ATTEMPTS_MAX {
            return Err(error.into());
        }
        tracing::warn!(context, attempt, error = %error, "No answer; asking again.");
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::StreamRead;
    use testkit::wait::eventually;
    use testkit::{Identity, NatsServer};

    /// The monitor stream as builds before the telemetry stream made it: every monitor subject,
    /// a week, 1 GiB, the oldest evicted first.
    fn monitor_stream_before_telemetry() -> stream::Config {
        stream::Config {
            name: names::MONITOR_STREAM.into(),
            subjects: vec![names::ALL_MONITOR_SUBJECTS.into()],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1024 * 1024 * 1024,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        }
    }

    async fn publish(jetstream: &jetstream::Context, subject: String, payload: &str) -> u64 {
        jetstream
            .publish(subject, payload.to_owned().into())
            .await
            .unwrap()
            .await
            .unwrap()
            .sequence
    }

    /// Every message of `stream` on `filter`: (sequence, subject).
    async fn stored(stream: &stream::Stream, filter: &str) -> Vec<(u64, String)> {
        let mut read = StreamRead::open(stream, filter, 1).await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = read.next().await.unwrap() {
            messages.push((message.sequence, message.subject));
        }
        messages
    }

    #[tokio::test]
    async fn a_monitor_stream_holding_rounds_is_migrated_by_the_admin_and_keeps_its_reports() {
        let server = NatsServer::start().await;
        let old = jetstream::new(server.client().await);
        old.create_stream(monitor_stream_before_telemetry())
            .await
            .unwrap();
        let mut kept = Vec::new();
        for n in 0..3 {
            publish(&old, names::round_subject("m1"), "round").await;
            let vnf = format!("v{n}");
            kept.push((
                publish(&old, names::failure_subject(&vnf), "failure").await,
                names::failure_subject(&vnf),
            ));
            kept.push((
                publish(&old, names::vdu_state_subject(&vnf), "down").await,
                names::vdu_state_subject(&vnf),
            ));
            publish(&old, names::round_subject("m2"), "round").await;
        }
        kept.push((
            publish(&old, names::suspect_subject("m1"), "suspect").await,
            names::suspect_subject("m1"),
        ));
        kept.push((
            publish(&old, names::bad_action_subject("v0"), "bad").await,
            names::bad_action_subject("v0"),
        ));
        // The older build's conductors handled every failure report.
        let old_heal = old_heal_consumer(&old).await;
        ack_every_report(&old_heal, 3).await;

        // The next start, as the admin identity (with only its rights), migrates it.
        let admin = jetstream::new(server.client_as(Identity::Admin).await);
        let config = LogConfig {
            telemetry_bytes_max: TELEMETRY_STREAM_BYTES_MIN,
            ..LogConfig::default()
        };
        provision(&admin, &config).await.unwrap();

        let mut monitor = old.get_stream(names::MONITOR_STREAM).await.unwrap();
        assert!(
            monitor.consumer_info(names::HEAL_CONSUMER).await.is_err(),
            "the old heal consumer is removed"
        );
        let mut failures = old.get_stream(names::FAILURE_STREAM).await.unwrap();
        let failure_config = failures.info().await.unwrap().config.clone();
        assert_eq!(failure_config.subjects, names::FAILURE_STREAM_SUBJECTS);
        assert_eq!(failure_config.retention, stream::RetentionPolicy::Interest);
        assert_eq!(failure_config.discard, stream::DiscardPolicy::New);
        assert_eq!(failure_config.max_age, Duration::ZERO, "no age limit");
        assert_eq!(failure_config.max_bytes, FAILURE_STREAM_BYTES_MAX);
        let heal = failures.consumer_info(names::HEAL_CONSUMER).await.unwrap();
        assert_eq!(heal.config.filter_subject, names::FAILURE_SUBJECTS);
        let info = monitor.info().await.unwrap().clone();
        assert_eq!(info.config.subjects, names::MONITOR_STREAM_SUBJECTS);
        assert_eq!(info.config.discard, stream::DiscardPolicy::New);
        assert_eq!(info.config.max_age, MONITOR_RETENTION);
        assert_eq!(info.config.max_bytes, MONITOR_STREAM_BYTES_MAX);
        assert_eq!(
            stored(&monitor, names::ALL_MONITOR_SUBJECTS).await,
            kept,
            "every report kept at its sequence, every round gone"
        );
        let mut telemetry = old.get_stream(names::TELEMETRY_STREAM).await.unwrap();
        let telemetry_config = telemetry.info().await.unwrap().config.clone();
        assert_eq!(telemetry_config.subjects, names::TELEMETRY_STREAM_SUBJECTS);
        assert_eq!(telemetry_config.max_bytes, TELEMETRY_STREAM_BYTES_MIN);
        assert_eq!(telemetry_config.discard, stream::DiscardPolicy::Old);

        // Rounds now land in the telemetry stream, reports still in the monitor stream.
        let round = publish(&old, names::round_subject("m1"), "round").await;
        assert_eq!(
            stored(&telemetry, names::ROUND_SUBJECTS).await,
            [(round, names::round_subject("m1"))]
        );
        // A failure report lands in the failure stream, and its copy in the monitor stream.
        let ack = old
            .publish(names::failure_subject("v9"), "failure".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.stream, names::FAILURE_STREAM);
        let copy = eventually(
            "the report's copy is in the monitor stream",
            PATIENCE,
            || async {
                let copies = stored(&monitor, names::FAILURE_SUBJECTS).await;
                match copies.last() {
                    Some(last) if copies.len() == 4 => Ok(last.clone()),
                    _ => Err(format!("{copies:?}")),
                }
            },
        )
        .await;
        assert_eq!(copy.1, names::failure_subject("v9"));
        kept.push(copy);

        // Starting again changes nothing.
        provision(&admin, &config).await.unwrap();
        assert_eq!(stored(&monitor, names::ALL_MONITOR_SUBJECTS).await, kept);
        assert_eq!(
            stored(&telemetry, names::ROUND_SUBJECTS).await,
            [(round, names::round_subject("m1"))]
        );
    }

    /// An older build's heal consumer, on the monitor stream.
    async fn old_heal_consumer(
        jetstream: &jetstream::Context,
    ) -> consumer::Consumer<consumer::pull::Config> {
        jetstream
            .get_stream(names::MONITOR_STREAM)
            .await
            .unwrap()
            .create_consumer(heal_consumer())
            .await
            .unwrap()
    }

    /// Takes `count` failure reports from `heal` and acks each, as conductors do.
    async fn ack_every_report(heal: &consumer::Consumer<consumer::pull::Config>, count: usize) {
        let mut batch = heal.fetch().max_messages(count).messages().await.unwrap();
        let mut acked = 0;
        while let Some(message) = batch.try_next().await.unwrap() {
            message.double_ack().await.unwrap();
            acked += 1;
        }
        assert_eq!(acked, count);
    }

    /// Time for the server to do what it does on its own: copy a source's message, remove an
    /// acked one.
    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn an_older_builds_unhandled_failure_reports_stop_the_migration_naming_them() {
        let server = NatsServer::start().await;
        let old = jetstream::new(server.client().await);
        old.create_stream(monitor_stream_before_telemetry())
            .await
            .unwrap();
        for n in 0..3 {
            publish(&old, names::failure_subject(&format!("v{n}")), "failure").await;
        }
        let admin = jetstream::new(server.client_as(Identity::Admin).await);
        let config = LogConfig::default();

        // No conductor ever read them: all three wait.
        let error = provision(&admin, &config).await.unwrap_err().to_string();
        assert!(error.contains("3 failure reports"), "{error}");
        assert!(error.contains(names::HEAL_CONSUMER), "{error}");
        // One handled: two wait.
        let old_heal = old_heal_consumer(&old).await;
        ack_every_report(&old_heal, 1).await;
        let error = provision(&admin, &config).await.unwrap_err().to_string();
        assert!(error.contains("2 failure reports"), "{error}");

        let mut monitor = old.get_stream(names::MONITOR_STREAM).await.unwrap();
        assert_eq!(
            monitor.info().await.unwrap().config.subjects,
            [names::ALL_MONITOR_SUBJECTS],
            "nothing changed"
        );
        assert!(old.get_stream(names::FAILURE_STREAM).await.is_err());
        assert!(monitor.consumer_info(names::HEAL_CONSUMER).await.is_ok());

        // Every one handled: the migration goes through.
        ack_every_report(&old_heal, 2).await;
        provision(&admin, &config).await.unwrap();
        assert!(old.get_stream(names::FAILURE_STREAM).await.is_ok());
    }

    /// A failure report stays in the failure stream, whoever reads it, until the heal consumer
    /// acks it, and no longer; its copy stays in the monitor stream for the audit.
    #[tokio::test]
    async fn a_failure_report_stays_until_it_is_handled_and_its_copy_stays_for_the_audit() {
        let server = NatsServer::start().await;
        let admin = jetstream::new(server.client_as(Identity::Admin).await);
        provision(&admin, &LogConfig::default()).await.unwrap();
        let monitor_identity = jetstream::new(server.client_as(Identity::Monitor).await);
        let ack = monitor_identity
            .publish(names::failure_subject("v1"), "failure".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.stream, names::FAILURE_STREAM);

        let conductor = jetstream::new(server.client_as(Identity::Conductor).await);
        let mut failures = conductor.get_stream(names::FAILURE_STREAM).await.unwrap();
        let monitor = conductor.get_stream(names::MONITOR_STREAM).await.unwrap();
        let copied = || async {
            match stored(&monitor, names::FAILURE_SUBJECTS).await.as_slice() {
                [(_, subject)] if *subject == names::failure_subject("v1") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        };
        eventually(
            "the report's copy is in the monitor stream",
            PATIENCE,
            copied,
        )
        .await;
        // Read whole by a reader (an ordered consumer), and delivered but not acked: kept.
        assert_eq!(
            stored(&failures, names::FAILURE_SUBJECTS).await,
            [(ack.sequence, names::failure_subject("v1"))]
        );
        let heal = failures
            .get_consumer::<consumer::pull::Config>(names::HEAL_CONSUMER)
            .await
            .unwrap();
        let mut batch = heal.fetch().max_messages(1).messages().await.unwrap();
        let delivered = batch.try_next().await.unwrap().expect("the report");
        assert_eq!(failures.info().await.unwrap().state.messages, 1);

        // Acked: gone from the failure stream, its copy still in the monitor stream.
        delivered.double_ack().await.unwrap();
        eventually("the handled report leaves", PATIENCE, || {
            let mut failures = failures.clone();
            async move {
                match failures.info().await.unwrap().state.messages {
                    0 => Ok(()),
                    left => Err(format!("{left} messages")),
                }
            }
        })
        .await;
        copied().await.unwrap();
    }

    /// A deployment whose telemetry stream holds rounds alone (before rosters) gains the
    /// roster subjects at the next start, keeps its rounds, and a further start changes
    /// nothing.
    #[tokio::test]
    async fn a_telemetry_stream_without_rosters_gains_them_and_keeps_its_rounds() {
        let server = NatsServer::start().await;
        let old = jetstream::new(server.client().await);
        let config = LogConfig {
            telemetry_bytes_max: TELEMETRY_STREAM_BYTES_MIN,
            ..LogConfig::default()
        };
        old.create_stream(stream::Config {
            subjects: vec![names::ROUND_SUBJECTS.into()],
            ..telemetry_stream(&config)
        })
        .await
        .unwrap();
        let round = publish(&old, names::round_subject("m1"), "round").await;
        let roster_subject = names::roster_subject("m1", "0123abcd");
        assert!(
            old.publish(roster_subject.clone(), "roster".into())
                .await
                .unwrap()
                .await
                .is_err(),
            "no stream took rosters before"
        );

        let admin = jetstream::new(server.client_as(Identity::Admin).await);
        let mut telemetry = old.get_stream(names::TELEMETRY_STREAM).await.unwrap();
        for start in 0..2 {
            provision(&admin, &config).await.unwrap();
            let info = telemetry.info().await.unwrap().clone();
            assert_eq!(
                info.config.subjects,
                names::TELEMETRY_STREAM_SUBJECTS,
                "start {start}"
            );
            assert_eq!(
                stored(&telemetry, names::ROUND_SUBJECTS).await,
                [(round, names::round_subject("m1"))],
                "start {start}"
            );
        }
        let roster = publish(&old, roster_subject.clone(), "roster").await;
        assert_eq!(
            stored(&telemetry, names::ROSTER_SUBJECTS).await,
            [(roster, roster_subject)]
        );
    }

    #[tokio::test]
    async fn a_telemetry_bound_below_the_minimum_is_refused_naming_it() {
        let server = NatsServer::start().await;
        let admin = jetstream::new(server.client_as(Identity::Admin).await);
        let config = LogConfig {
            telemetry_bytes_max: 1024,
            ..LogConfig::default()
        };
        let error = provision(&admin, &config).await.unwrap_err().to_string();
        assert!(error.contains("telemetry stream's size bound"), "{error}");
        assert!(error.contains("got 1024"), "{error}");
        assert!(
            admin.get_stream(names::MONITOR_STREAM).await.is_err(),
            "nothing made"
        );
    }

    #[test]
    fn the_snapshot_bucket_holds_two_of_the_largest_snapshots_and_their_metadata() {
        let chunk = i64::try_from(SNAPSHOT_CHUNK_BYTES).unwrap();
        let chunks = (SNAPSHOT_BYTES_MAX + chunk - 1) / chunk;
        assert!(SNAPSHOT_BUCKET_MESSAGES_MAX >= 2 * (chunks + 1));
        assert!(i64::from(SNAPSHOT_BUCKET_MESSAGE_BYTES_MAX) > chunk);
    }

    #[test]
    fn every_bucket_is_provisioned() {
        let made: Vec<String> = buckets(&LogConfig::default())
            .into_iter()
            .map(|b| b.bucket)
            .collect();
        assert_eq!(made, names::BUCKETS);
    }
}
