//! Reading a stream as it stands: every message of one subject ([`subject`]), or of a whole
//! stream under a filter ([`StreamRead`]), up to the last one present when the read started.
//!
//! Every reader of the log (the event store's loads, the projector's rebuild, the audit, the
//! tests' checker) reads through here, with one timeout ([`READ_MESSAGE_TIMEOUT`], reported as
//! a [`NatsError`] of kind [`NatsErrorKind::TimedOut`]). A read never decodes a payload (a
//! message that does not decode is the caller's to skip), never writes, and never waits for
//! messages stored after it began.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, message::StreamMessage, stream};
use futures::StreamExt;
use time::OffsetDateTime;

use crate::nats_error::{NatsError, NatsErrorKind};

/// How long a read waits for the next stored message (one direct get, or the next delivery
/// of a replay) before it gives up. A stored message arrives in well under a millisecond on
/// loopback; a few seconds ride out a cluster's leader election, and nothing waits longer on a
/// server that has gone away.
pub const READ_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// One stored message, as stored: not decoded.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The stream sequence: the message's position in the stream.
    pub sequence: u64,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: bytes::Bytes,
    /// When the server stored it.
    pub time: OffsetDateTime,
}

impl Stored {
    /// The value of header `name`, if the message carries it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(async_nats::HeaderValue::as_str)
    }
}

impl From<StreamMessage> for Stored {
    fn from(message: StreamMessage) -> Self {
        Stored {
            sequence: message.sequence,
            subject: message.subject.to_string(),
            headers: message.headers,
            payload: message.payload,
            time: message.time,
        }
    }
}

impl Stored {
    /// A message a consumer delivered, with its stream sequence and storing time.
    pub fn delivered(message: jetstream::Message) -> Result<Stored, NatsError> {
        let info = message
            .info()
            .map_err(|e| NatsError::other("reading a delivered message's position", e))?;
        let (sequence, time) = (info.stream_sequence, info.published);
        let message = message.message;
        Ok(Stored {
            sequence,
            subject: message.subject.to_string(),
            headers: message.headers.unwrap_or_default(),
            payload: message.payload,
            time,
        })
    }
}

/// Every message on `subject` of `stream`, oldest first, read from the stream's leader by
/// direct gets: one per message, however long the rest of the stream is.
pub async fn subject(stream: &stream::Stream, subject: &str) -> Result<Vec<Stored>, NatsError> {
    Ok(subject_after(stream, subject, 0).await?.messages)
}

/// The messages of one subject stored after a sequence: [`subject_after`]'s answer.
#[derive(Debug)]
pub struct Tail {
    /// The subject's messages after the sequence asked for, oldest first.
    pub messages: Vec<Stored>,
    /// Stream sequence of the subject's last message; 0 when it has none. Below the sequence
    /// asked for, the subject is not the one read before (the stream was made anew).
    pub last_sequence: u64,
}

/// The messages on `subject` of `stream` stored after stream sequence `after`, oldest first,
/// read from the stream's leader by direct gets: one for the subject's last message, and one
/// per message after `after` before it.
pub async fn subject_after(
    stream: &stream::Stream,
    subject: &str,
    after: u64,
) -> Result<Tail, NatsError> {
    let context = "reading a subject";
    let last = match timed(context, stream.get_last_raw_message_by_subject(subject)).await? {
        Ok(message) => message,
        Err(e) => {
            let error = NatsError::new("reading a subject's last message", e);
            return match error.kind() {
                NatsErrorKind::NotFound => Ok(Tail {
                    messages: Vec::new(),
                    last_sequence: 0,
                }),
                _ => Err(error),
            };
        }
    };
    let through = last.sequence;
    let mut messages = Vec::new();
    if through <= after {
        return Ok(Tail {
            messages,
            last_sequence: through,
        });
    }
    let mut next = after + 1;
    while next < through {
        let message = timed(
            context,
            stream.get_first_raw_message_by_subject(subject, next),
        )
        .await?
        .map_err(|e| NatsError::new(context, e))?;
        if message.sequence >= through {
            break;
        }
        next = message.sequence + 1;
        messages.push(message.into());
    }
    messages.push(last.into());
    Ok(Tail {
        messages,
        last_sequence: through,
    })
}

/// A replay of a stream's messages under a filter, from a start sequence up to the last
/// message present when it was opened. Messages stored later are not read.
pub struct StreamRead {
    /// `None` once the read is over.
    messages: Option<consumer::pull::Ordered>,
    through: u64,
}

impl std::fmt::Debug for StreamRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRead")
            .field("through", &self.through)
            .finish_non_exhaustive()
    }
}

impl StreamRead {
    /// Opens a replay of the messages of `stream` that match `filter`, from sequence `from`
    /// (1 for the whole stream).
    pub async fn open(stream: &stream::Stream, filter: &str, from: u64) -> Result<Self, NatsError> {
        Self::open_from(stream, filter, |_| from).await
    }

    /// Opens a replay of the messages of `stream` that match `filter` among its newest `count`.
    pub async fn newest(
        stream: &stream::Stream,
        filter: &str,
        count: u64,
    ) -> Result<Self, NatsError> {
        Self::open_from(stream, filter, |through| match count {
            0 => through.saturating_add(1),
            count => through.saturating_sub(count - 1).max(1),
        })
        .await
    }

    /// Opens a replay of the messages of `stream` that match `filter`, stored at `start` or
    /// later.
    pub async fn since(
        stream: &stream::Stream,
        filter: &str,
        start: time::OffsetDateTime,
    ) -> Result<Self, NatsError> {
        Self::open_with(stream, filter, |_| {
            Some(consumer::DeliverPolicy::ByStartTime { start_time: start })
        })
        .await
    }

    /// Opens a replay from the sequence `from` picks, given the stream's last sequence.
    async fn open_from(
        stream: &stream::Stream,
        filter: &str,
        from: impl FnOnce(u64) -> u64,
    ) -> Result<Self, NatsError> {
        Self::open_with(stream, filter, |through| {
            let from = from(through);
            if from > through {
                None
            } else if from <= 1 {
                Some(consumer::DeliverPolicy::All)
            } else {
                Some(consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                })
            }
        })
        .await
    }

    /// Opens a replay from where `policy` says, given the stream's last sequence (`None`:
    /// nothing to read).
    async fn open_with(
        stream: &stream::Stream,
        filter: &str,
        policy: impl FnOnce(u64) -> Option<consumer::DeliverPolicy>,
    ) -> Result<Self, NatsError> {
        let mut stream = stream.clone();
        let through = timed("reading a stream's state", stream.info())
            .await?
            .map_err(|e| NatsError::new("reading a stream's state", e))?
            .state
            .last_sequence;
        let mut read = StreamRead {
            messages: None,
            through,
        };
        if through == 0 {
            return Ok(read);
        }
        let Some(deliver_policy) = policy(through) else {
            return Ok(read);
        };
        let consumer = timed(
            "replaying a stream",
            stream.create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter.to_owned(),
                deliver_policy,
                ..Default::default()
            }),
        )
        .await?
        .map_err(|e| NatsError::new("replaying a stream", e))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(read);
        }
        let messages = timed("replaying a stream", consumer.messages())
            .await?
            .map_err(|e| NatsError::new("replaying a stream", e))?;
        read.messages = Some(messages);
        Ok(read)
    }

    /// The stream's last sequence when the read was opened: no later message is read.
    pub fn through(&self) -> u64 {
        self.through
    }

    /// The next message, oldest first; `None` once the last one present at the start is read.
    pub async fn next(&mut self) -> Result<Option<Stored>, NatsError> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let next = timed("replaying a stream", messages.next()).await?;
        let Some(message) = next else {
            self.messages = None;
            return Ok(None);
        };
        let message = message.map_err(|e| NatsError::new("replaying a stream", e))?;
        let pending = message
            .info()
            .map_err(|e| NatsError::other("reading a replayed message's position", e))?
            .pending;
        let stored = Stored::delivered(message)?;
        if stored.sequence > self.through {
            self.messages = None;
            return Ok(None);
        }
        // The last message present at the start, or the last one the filter matched by now.
        if stored.sequence >= self.through || pending == 0 {
            self.messages = None;
        }
        Ok(Some(stored))
    }
}

/// `future`, or a [`NatsErrorKind::TimedOut`] error after [`READ_MESSAGE_TIMEOUT`].
async fn timed<T>(context: &'static str, future: impl Future<Output = T>) -> Result<T, NatsError> {
    tokio::time::timeout(READ_MESSAGE_TIMEOUT, future)
        .await
        .map_err(|elapsed| NatsError::timed_out(context, elapsed))
}

#[cfg(test)]
mod tests;

pub mod rounds;
