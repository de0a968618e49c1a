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

/// Every message on `subject` of `stream`, oldest first: the subject's last message read from
/// the stream's leader, the rest in batches (see [`subject_after`]).
pub async fn subject(
    client: &async_nats::Client,
    stream: &stream::Stream,
    subject: &str,
) -> Result<Vec<Stored>, NatsError> {
    Ok(subject_after(client, stream, subject, 0).await?.messages)
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

/// The messages on `subject` of `stream` stored after stream sequence `after`, oldest first.
/// The subject's last message is read from the stream's leader (one get). Those before it, if
/// any, are read by one batched direct get of up to [`SUBJECT_BATCH_MESSAGES`], and what that
/// batch leaves (a longer history, or a replica behind the leader answered) by an ordered
/// consumer: the server delivers a consumer's messages at about a third of a direct get's cost
/// each, which pays for the consumer's setup past a hundred messages or so.
pub async fn subject_after(
    client: &async_nats::Client,
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
    let mut next = after + 1;
    if next < through {
        let batch = direct_batch(
            client,
            stream,
            subject,
            next,
            SUBJECT_BATCH_MESSAGES,
            DIRECT_BATCH_BYTES_MAX,
        )
        .await?;
        for message in batch.messages {
            if message.sequence >= through {
                next = through;
                break;
            }
            next = message.sequence + 1;
            messages.push(message);
        }
    }
    if next < through {
        let mut rest = StreamRead::open(stream, subject, next).await?;
        while let Some(message) = rest.next().await? {
            if message.sequence >= through {
                break;
            }
            messages.push(message);
        }
    }
    if through > after {
        messages.push(last.into());
    }
    Ok(Tail {
        messages,
        last_sequence: through,
    })
}

/// The most messages of one subject [`subject_after`] reads by a batched direct get before it
/// reads the rest by an ordered consumer.
pub const SUBJECT_BATCH_MESSAGES: usize = 100;

/// The messages of `stream` from sequence `from` through `through`, oldest first, as one
/// batched direct get answers them: all of them, or those from `from` that fit in `max_bytes`
/// (as the server counts a message: its subject and payload; always one at least).
///
/// Meant for a stream that never deletes a message (the lifecycle log), where every sequence
/// up to the last holds one: where the answer stops short of `through` with nothing left past
/// it (a replica behind the leader answered), the rest is read from the leader, one get each,
/// within the same byte bound.
pub async fn run(
    client: &async_nats::Client,
    stream: &stream::Stream,
    from: u64,
    through: u64,
    max_bytes: usize,
) -> Result<Vec<Stored>, NatsError> {
    if through < from {
        return Ok(Vec::new());
    }
    let count = usize::try_from(through - from + 1)
        .unwrap_or(usize::MAX)
        .min(DIRECT_BATCH_MESSAGES_MAX);
    let batch = direct_batch(client, stream, ">", from, count, max_bytes).await?;
    let mut run: Vec<Stored> = Vec::with_capacity(batch.messages.len());
    for message in batch.messages {
        let expected = from + run.len() as u64;
        if message.sequence != expected || message.sequence > through {
            break;
        }
        run.push(message);
    }
    let reached = from + run.len() as u64;
    let cut_by_the_server = run.len() == count || batch.pending > 0;
    if reached > through || (cut_by_the_server && !run.is_empty()) {
        return Ok(run);
    }
    let mut bytes: usize = run.iter().map(|m| m.payload.len()).sum();
    for sequence in reached..=through {
        if !run.is_empty() && bytes >= max_bytes {
            break;
        }
        let context = "reading a message";
        match timed(context, stream.get_raw_message(sequence)).await? {
            Ok(message) => {
                bytes += message.payload.len();
                run.push(message.into());
            }
            Err(e) => {
                let error = NatsError::new(context, e);
                if error.kind() != NatsErrorKind::NotFound {
                    return Err(error);
                }
            }
        }
    }
    Ok(run)
}

/// The newest messages of `from` through `through` that fit in `max_bytes` (one at least),
/// oldest first: [`run`] for reading backwards. A run cut short by the bound is read again,
/// starting about as many messages below `through` as fit.
pub async fn newest_run(
    client: &async_nats::Client,
    stream: &stream::Stream,
    mut from: u64,
    through: u64,
    max_bytes: usize,
) -> Result<Vec<Stored>, NatsError> {
    loop {
        let read = run(client, stream, from, through, max_bytes).await?;
        match read.last() {
            Some(last) if last.sequence < through && from < through => {
                let fits = u64::try_from(read.len()).unwrap_or(u64::MAX);
                from = (from + 1).max((through + 1).saturating_sub(fits));
            }
            _ => return Ok(read),
        }
    }
}

/// The most messages one batched direct get asks for.
pub const DIRECT_BATCH_MESSAGES_MAX: usize = 1_000;
/// The most bytes one batched direct get of a subject asks for: the server sends no more in
/// one answer (and at least one message), and an ordered consumer reads what it leaves.
pub const DIRECT_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What one batched direct get answered.
#[derive(Debug, Default)]
pub struct Batch {
    /// The messages, oldest first.
    pub messages: Vec<Stored>,
    /// How many messages matching the filter the answering server holds past the batch.
    pub pending: u64,
}

/// Up to `count` messages of `stream` matching `filter`, from sequence `from` on, oldest first,
/// in one batched direct get (`$JS.API.DIRECT.GET.<stream>` with `batch`, answered by the
/// messages and then an empty end-of-batch status, 204 `EOB`): at most `max_bytes` (subjects and
/// payloads, as the server counts them) and at least one message. Any replica of the stream may answer, so the batch may lack the
/// newest messages; it never holds a wrong one. The answers come to an inbox of the
/// connection's own prefix, which only this identity may read.
pub async fn direct_batch(
    client: &async_nats::Client,
    stream: &stream::Stream,
    filter: &str,
    from: u64,
    count: usize,
    max_bytes: usize,
) -> Result<Batch, NatsError> {
    let context = "reading a batch of messages";
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| NatsError::other(context, e))?;
    let request = serde_json::json!({
        "seq": from.max(1),
        "next_by_subj": filter,
        "batch": count.max(1),
        "max_bytes": max_bytes.max(1),
    });
    let name = &stream.cached_info().config.name;
    client
        .publish_with_reply(
            format!("{}.DIRECT.GET.{name}", crate::access::API),
            inbox,
            request.to_string().into(),
        )
        .await
        .map_err(|e| NatsError::other(context, e))?;
    let mut batch = Batch::default();
    loop {
        let Some(reply) = timed(context, replies.next()).await? else {
            return Err(NatsError::other(context, "the reply subscription ended"));
        };
        match reply.status.map(|status| status.as_u16()) {
            None | Some(200) => {
                let message =
                    StreamMessage::try_from(reply).map_err(|e| NatsError::other(context, e))?;
                batch.messages.push(message.into());
            }
            // The end of the batch.
            Some(204) => {
                batch.pending = reply
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(NUM_PENDING))
                    .and_then(|pending| pending.as_str().parse().ok())
                    .unwrap_or(0);
                return Ok(batch);
            }
            // Nothing matches from `from` on.
            Some(404) => return Ok(batch),
            Some(status) => {
                let description = reply.description.unwrap_or_default();
                return Err(NatsError::other(
                    context,
                    format!("the server answered {status} {description}"),
                ));
            }
        }
    }
}

/// The header of a batch's end that counts the matching messages past it.
const NUM_PENDING: &str = "Nats-Num-Pending";

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
