//! One NATS error type for every role: [`NatsError`], a failed NATS call with what was being
//! done and the kind of failure, so that callers branch on the kind instead of on strings.
//!
//! async-nats gives each call its own error type (`Error<K>` for a call-specific kind `K`);
//! this module folds the kinds vnfm meets into one [`NatsErrorKind`] and keeps the original
//! error as the source. It never retries, logs or decides anything itself.
//!
//! Use: `.map_err(|e| NatsError::new("reading a row", e))?` for any async-nats `Error<K>` whose
//! kind is listed below (implement [`HasNatsKind`] for a new one); [`NatsError::other`] for
//! errors that carry no kind (boxed `async_nats::Error`s); then `match error.kind()`.

use std::fmt::{Debug, Display};

use async_nats::jetstream::{self, consumer, context, kv, stream};

/// What went wrong, in the terms a caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsErrorKind {
    /// No answer in time: a busy or electing server. Asking again may succeed.
    TimedOut,
    /// Nobody serves the request: no server connected, or no stream or bucket behind the
    /// subject (it was never created, or it was removed).
    Unavailable,
    /// What was asked for does not exist: no such message, stream, bucket or consumer.
    NotFound,
    /// A compare-and-set lost: the subject's last sequence (a KV key's revision) was not the
    /// expected one, or the key to create exists already. Re-read and decide again.
    Conflict,
    /// The message is larger than the server or the stream accepts.
    TooLarge,
    /// Anything else (a refused request, an invalid name, a broken connection). Asking again
    /// unchanged is not expected to help.
    Other,
}

/// A failed NATS call: what vnfm was doing (`context`), the kind, and async-nats' error.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {context}: {source}")]
pub struct NatsError {
    context: &'static str,
    kind: NatsErrorKind,
    #[source]
    source: async_nats::Error,
}

impl NatsError {
    /// An async-nats error whose kind maps onto a [`NatsErrorKind`].
    pub fn new<K>(context: &'static str, error: async_nats::error::Error<K>) -> Self
    where
        K: HasNatsKind + Clone + Debug + Display + PartialEq + Send + Sync + 'static,
    {
        let kind = refined(error.kind().nats_kind(), &error);
        NatsError {
            context,
            kind,
            source: error.into(),
        }
    }

    /// An error that carries no kind of its own; its kind is [`NatsErrorKind::Other`].
    pub fn other(context: &'static str, error: impl Into<async_nats::Error>) -> Self {
        NatsError {
            context,
            kind: NatsErrorKind::Other,
            source: error.into(),
        }
    }

    /// A call that vnfm gave up waiting for (its own deadline, not the client's): the kind is
    /// [`NatsErrorKind::TimedOut`].
    pub fn timed_out(context: &'static str, elapsed: tokio::time::error::Elapsed) -> Self {
        NatsError {
            context,
            kind: NatsErrorKind::TimedOut,
            source: elapsed.into(),
        }
    }

    pub fn kind(&self) -> NatsErrorKind {
        self.kind
    }

    /// What vnfm was doing when the call failed.
    pub fn context(&self) -> &'static str {
        self.context
    }
}

/// `kind`, or for [`Other`] the kind of the first error in `error`'s sources that has one.
///
/// async-nats wraps the error of an inner call in the outer call's catch-all kind: a KV update
/// refused because the row is too large is `UpdateErrorKind::Other` with the publish error
/// (`MaxPayloadExceeded`, or the server's "message exceeds maximum") as its source.
fn refined(kind: NatsErrorKind, error: &(dyn std::error::Error + 'static)) -> NatsErrorKind {
    if kind != Other {
        return kind;
    }
    let mut source = error.source();
    while let Some(inner) = source {
        if let Some(publish) = inner.downcast_ref::<context::PublishError>() {
            return refined(publish.kind().nats_kind(), publish);
        }
        if let Some(answer) = inner.downcast_ref::<jetstream::Error>() {
            return jetstream_kind(answer);
        }
        source = inner.source();
    }
    Other
}

/// An async-nats error kind that says which [`NatsErrorKind`] it is.
pub trait HasNatsKind {
    fn nats_kind(&self) -> NatsErrorKind;
}

use NatsErrorKind::{Conflict, NotFound, Other, TimedOut, TooLarge, Unavailable};

/// The JetStream API's own answer: "no message found", "stream not found" and their kin are
/// [`NotFound`], "message exceeds maximum" is [`TooLarge`], the rest [`Other`].
fn jetstream_kind(error: &jetstream::Error) -> NatsErrorKind {
    use jetstream::ErrorCode;
    match error.error_code() {
        ErrorCode::NO_MESSAGE_FOUND
        | ErrorCode::STREAM_NOT_FOUND
        | ErrorCode::CONSUMER_NOT_FOUND => NotFound,
        ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM => TooLarge,
        _ => Other,
    }
}

impl HasNatsKind for context::PublishErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::WrongLastSequence => Conflict,
            Self::TimedOut => TimedOut,
            Self::StreamNotFound => Unavailable,
            Self::MaxPayloadExceeded => TooLarge,
            Self::WrongLastMessageId | Self::BrokenPipe | Self::MaxAckPending | Self::Other => {
                Other
            }
        }
    }
}

impl HasNatsKind for context::RequestErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::NoResponders => Unavailable,
            Self::InvalidSubject | Self::Other => Other,
        }
    }
}

impl HasNatsKind for context::ConsumerInfoErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::NoResponders | Self::Offline => Unavailable,
            Self::NotFound | Self::StreamNotFound => NotFound,
            Self::JetStream(e) => jetstream_kind(e),
            Self::InvalidName | Self::Request => Other,
        }
    }
}

impl HasNatsKind for context::CreateStreamErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::JetStreamUnavailable => Unavailable,
            Self::NotFound => NotFound,
            Self::JetStream(e) => jetstream_kind(e),
            _ => Other,
        }
    }
}

impl HasNatsKind for context::CreateKeyValueErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            _ => Other,
        }
    }
}

impl HasNatsKind for context::GetStreamErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::JetStream(e) => jetstream_kind(e),
            _ => Other,
        }
    }
}

impl HasNatsKind for stream::LastRawMessageErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::NoMessageFound => NotFound,
            Self::JetStream(e) => jetstream_kind(e),
            Self::InvalidSubject | Self::Other => Other,
        }
    }
}

impl HasNatsKind for stream::PurgeErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::JetStream(e) => jetstream_kind(e),
            Self::Request => Other,
        }
    }
}

impl HasNatsKind for stream::ConsumerErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::JetStream(e) => jetstream_kind(e),
            Self::Request | Self::InvalidConsumerType | Self::InvalidName | Self::Other => Other,
        }
    }
}

impl HasNatsKind for consumer::StreamErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::Other => Other,
        }
    }
}

impl HasNatsKind for consumer::pull::OrderedErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::NoResponders => Unavailable,
            Self::ConsumerDeleted => NotFound,
            _ => Other,
        }
    }
}

impl HasNatsKind for consumer::pull::MessagesErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::NoResponders => Unavailable,
            Self::ConsumerDeleted => NotFound,
            _ => Other,
        }
    }
}

impl HasNatsKind for kv::EntryErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::InvalidKey | Self::Other => Other,
        }
    }
}

impl HasNatsKind for kv::UpdateErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::WrongLastRevision => Conflict,
            Self::TimedOut => TimedOut,
            Self::InvalidKey | Self::Other => Other,
        }
    }
}

impl HasNatsKind for kv::CreateErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::AlreadyExists => Conflict,
            Self::InvalidKey | Self::Publish | Self::Ack | Self::Other => Other,
        }
    }
}

impl HasNatsKind for kv::PutErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        Other
    }
}

impl HasNatsKind for kv::WatchErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        match self {
            Self::TimedOut => TimedOut,
            Self::InvalidKey | Self::ConsumerCreate | Self::Other => Other,
        }
    }
}

impl HasNatsKind for kv::WatcherErrorKind {
    fn nats_kind(&self) -> NatsErrorKind {
        Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_kind_and_says_what_was_being_done() {
        let lost = kv::UpdateError::new(kv::UpdateErrorKind::WrongLastRevision);
        let error = NatsError::new("writing a row", lost);
        assert_eq!(error.kind(), Conflict);
        assert_eq!(error.context(), "writing a row");
        assert!(
            error.to_string().starts_with("NATS: writing a row: "),
            "{error}"
        );
        let exists = kv::CreateError::new(kv::CreateErrorKind::AlreadyExists);
        assert_eq!(NatsError::new("creating a row", exists).kind(), Conflict);
        let other = kv::CreateError::new(kv::CreateErrorKind::Publish);
        assert_eq!(NatsError::new("creating a row", other).kind(), Other);
    }

    #[test]
    fn a_catch_all_kind_takes_the_kind_of_its_source() {
        // A row too large for the client, refused before it is sent.
        let too_large = context::PublishError::new(context::PublishErrorKind::MaxPayloadExceeded);
        let update = kv::UpdateError::with_source(kv::UpdateErrorKind::Other, too_large);
        assert_eq!(NatsError::new("updating a row", update).kind(), TooLarge);
        // Too large for the stream: the server's answer, wrapped twice.
        let answer: jetstream::Error = serde_json::from_str(
            r#"{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}"#,
        )
        .unwrap();
        let refused = context::PublishError::with_source(context::PublishErrorKind::Other, answer);
        let put = kv::PutError::with_source(kv::PutErrorKind::Ack, refused);
        assert_eq!(NatsError::new("writing a row", put).kind(), TooLarge);
        // A catch-all without a source with a kind stays one.
        let broken = context::PublishError::with_source(context::PublishErrorKind::Other, "closed");
        let update = kv::UpdateError::with_source(kv::UpdateErrorKind::Other, broken);
        assert_eq!(NatsError::new("updating a row", update).kind(), Other);
    }
}
