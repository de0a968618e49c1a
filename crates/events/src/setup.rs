//! Making vnfm's streams and buckets: the admin identity's one job (`vnfm setup`, and `vnfm up`
//! at start). [`provision`] creates each one missing and brings each existing one to the
//! configuration below; the roles only bind to them ([`store`](crate::store)'s `open*`), and
//! may not create, update or delete one ([`access`](crate::access)). Nothing here ever deletes
//! or purges a stream.

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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { replicas: 1 }
    }
}

/// The window in which the server recognises a repeated `Nats-Msg-Id`. Longer than any client's
/// retry loop (attempts × publish timeout), short enough to keep the server's id table small.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// The largest lifecycle message: a VNFD with its template is the biggest, and the VNFD parser
/// caps templates well below this.
const LIFECYCLE_MESSAGE_BYTES_MAX: i32 = 4 * 1024 * 1024;
/// How long probe rounds, state changes and failure reports are kept: long enough to audit a
/// week of incidents, bounded so that high-rate results never fill the disk.
const MONITOR_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The monitor stream's size bound; the oldest results go first.
const MONITOR_STREAM_BYTES_MAX: i64 = 1024 * 1024 * 1024;
/// How long a monitor's membership and partition leases live after their last write: four
/// renewals (`monitor::share` renews every second), so one late renewal loses nothing.
pub const LEASE_TTL: Duration = Duration::from_secs(4);

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
    for stream in [lifecycle_stream(config), monitor_stream(config)] {
        retried("creating or updating a stream", || {
            jetstream.create_or_update_stream(stream.clone())
        })
        .await?;
    }
    for bucket in buckets(config) {
        retried("creating or updating a bucket", || {
            jetstream.create_or_update_key_value(bucket.clone())
        })
        .await?;
    }
    Ok(())
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

/// Probe rounds, VDU state changes, failure reports and `bad_action` rejections, bounded by
/// age and size.
fn monitor_stream(config: &LogConfig) -> stream::Config {
    stream::Config {
        name: names::MONITOR_STREAM.into(),
        subjects: vec![names::MONITOR_SUBJECTS.into()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_age: MONITOR_RETENTION,
        max_bytes: MONITOR_STREAM_BYTES_MAX,
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
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

    #[test]
    fn every_bucket_is_provisioned() {
        let made: Vec<String> = buckets(&LogConfig::default())
            .into_iter()
            .map(|b| b.bucket)
            .collect();
        assert_eq!(made, names::BUCKETS);
    }
}
