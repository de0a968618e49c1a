//! Making vnfm's streams and buckets: the admin identity's one job (`vnfm setup`, and `vnfm up`
//! at start). [`provision`] creates each one missing and brings each existing one to the
//! configuration below; the roles only bind to them ([`store`](crate::store)'s `open*`), and
//! may not create, update or delete one ([`access`](crate::access)). Nothing here ever deletes
//! a stream, and the one purge is a migration's: probe rounds left in the monitor stream by a
//! build that kept them there (before [`names::TELEMETRY_STREAM`]), which no reader looks for
//! there any more and which would otherwise stay a month (the monitor stream's age limit).

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

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
/// evicting old ones (`discard: new`), so that no failure report is ever
/// removed unhandled: a monitor's publish then fails with the server's "maximum bytes
/// exceeded", which it logs and retries (failure reports and state changes are retried until
/// stored). Its messages are small and rare (a failure report is about 600 bytes), so 1 GiB
/// is well over a million failures and state changes. Not larger: a single nats-server
/// reserves every stream's `max_bytes` against its store's limit (75 % of the free disk by
/// default) and refuses a stream that does not fit.
pub const MONITOR_STREAM_BYTES_MAX: i64 = 1024 * 1024 * 1024;
/// How long the monitor stream keeps a message: a month. Only age removes what is there, and
/// only this old: a failure report still unhandled after a month of conductors down is a site
/// that was gone, whose VDUs the monitors report afresh when they fail again. Without it the
/// handled reports and state changes would pile up until the size bound refused every new
/// failure report.
pub const MONITOR_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
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
    // The monitor stream first: an older build's took every monitor subject, rounds included,
    // and streams may not overlap, so it gives up the rounds before the telemetry stream takes
    // them.
    for stream in [
        lifecycle_stream(config),
        monitor_stream(config),
        telemetry_stream(config),
    ] {
        retried("creating or updating a stream", || {
            jetstream.create_or_update_stream(stream.clone())
        })
        .await?;
    }
    purge_old_rounds(jetstream).await?;
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

/// VDU state changes, failure reports, `bad_action` rejections, suspect reports and refused
/// targets: kept a month ([`MONITOR_RETENTION`]), and past its size bound new messages are
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
        ..Default::default()
    }
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

        // The next start, as the admin identity (with only its rights), migrates it.
        let admin = jetstream::new(server.client_as(Identity::Admin).await);
        let config = LogConfig {
            telemetry_bytes_max: TELEMETRY_STREAM_BYTES_MIN,
            ..LogConfig::default()
        };
        provision(&admin, &config).await.unwrap();

        let mut monitor = old.get_stream(names::MONITOR_STREAM).await.unwrap();
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
        let failure = publish(&old, names::failure_subject("v9"), "failure").await;
        kept.push((failure, names::failure_subject("v9")));

        // Starting again changes nothing.
        provision(&admin, &config).await.unwrap();
        assert_eq!(stored(&monitor, names::ALL_MONITOR_SUBJECTS).await, kept);
        assert_eq!(
            stored(&telemetry, names::ROUND_SUBJECTS).await,
            [(round, names::round_subject("m1"))]
        );
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
