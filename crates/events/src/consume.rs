//! A durable pull consumer that outlives NATS outages: [`Durable`].
//!
//! The projector and the conductors share durable consumers. A role must not end because its
//! message stream did (the server restarted, a cluster moved the consumer's leader, the
//! consumer was removed by hand): it opens the consumer again, with the same configuration,
//! and goes on from the consumer's durable position on the server. Nothing is lost by doing so:
//! unacked messages are redelivered, acked ones are not.
//!
//! A message that can never be handled (it does not decode, or names nothing this build knows)
//! is parked with [`Durable::park`]: terminated, so the server never redelivers it, and logged
//! with its stream sequence and the reason. Nothing here decodes or decides on a message.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures::StreamExt;

use crate::nats_error::NatsError;
use crate::telemetry;

/// Pause before opening a consumer again after a failure: an outage or an election lasts
/// seconds, and retrying faster only fills the log.
const REOPEN_DELAY: Duration = Duration::from_secs(1);

/// Errors in a row after which the message stream is opened anew rather than read on. The
/// client reports a missed heartbeat every few seconds while the server is away; a few of them
/// in a row mean the pull requests it made are gone with the server.
const ERRORS_BEFORE_REOPEN: u32 = 3;

/// How often a consumer's pending and ack-pending counts are read for its gauges: one small
/// request per consumer, and a Prometheus scrape (15 s by default) sees fresh figures.
pub const CONSUMER_LAG_INTERVAL: Duration = Duration::from_secs(5);

/// The messages of one durable pull consumer, reopened whenever they stop coming.
pub struct Durable {
    stream: stream::Stream,
    config: consumer::pull::Config,
    messages: Option<consumer::pull::Stream>,
    errors_in_a_row: u32,
}

impl Durable {
    /// The consumer `config.durable_name` on `stream`, created with `config` if missing and
    /// brought to it if not (`setup` makes the heal consumer before any conductor, which then
    /// sets its own `ack_wait`). Nothing is opened until the first [`next`](Self::next).
    ///
    /// # Panics
    ///
    /// When `config` has no durable name.
    pub fn new(stream: stream::Stream, config: consumer::pull::Config) -> Durable {
        assert!(
            config.durable_name.is_some(),
            "a durable consumer has a name"
        );
        Durable {
            stream,
            config,
            messages: None,
            errors_in_a_row: 0,
        }
    }

    fn name(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }

    /// Sets the consumer's pending and ack-pending gauges (label `consumer`) from its info
    /// every [`CONSUMER_LAG_INTERVAL`], until dropped. A failed read leaves them as they were
    /// (a consumer not yet created has none to read).
    pub fn report_lag(&self) -> impl Future<Output = ()> + Send + 'static {
        let stream = self.stream.clone();
        let name = self.name().to_owned();
        async move {
            let pending = metrics::gauge!(telemetry::CONSUMER_PENDING, "consumer" => name.clone());
            let ack_pending =
                metrics::gauge!(telemetry::CONSUMER_ACK_PENDING, "consumer" => name.clone());
            let mut every = tokio::time::interval(CONSUMER_LAG_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match stream.consumer_info(&name).await {
                    Ok(info) => {
                        pending.set(info.num_pending as f64);
                        ack_pending.set(info.num_ack_pending as f64);
                    }
                    Err(e) => {
                        tracing::debug!(consumer = %name, error = %e, "Cannot read the consumer's info.");
                    }
                }
            }
        }
    }

    /// The next message. Never ends: through an outage it logs, waits and opens the consumer
    /// again until messages come. Cancel-safe: dropping the future loses no message.
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => match self.open().await {
                    Ok(messages) => self.messages.insert(messages),
                    Err(e) => {
                        tracing::warn!(consumer = self.name(), error = %e, "Cannot open the consumer; retrying.");
                        tokio::time::sleep(REOPEN_DELAY).await;
                        continue;
                    }
                },
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    self.errors_in_a_row = 0;
                    return message;
                }
                Some(Err(e)) => {
                    self.errors_in_a_row += 1;
                    tracing::warn!(consumer = self.name(), error = %e, "Consumer hiccup.");
                    if self.errors_in_a_row >= ERRORS_BEFORE_REOPEN {
                        self.reopen_later().await;
                    }
                }
                None => {
                    tracing::warn!(consumer = self.name(), "Consumer ended; opening it again.");
                    self.reopen_later().await;
                }
            }
        }
    }

    /// Parks `message`, which can never be handled: terminates it (`AckKind::Term`) so that the
    /// server never delivers it again, and logs `reason` with the message's stream sequence.
    /// Never fails: a term that is lost only means one more delivery, parked again.
    pub async fn park(&self, message: &jetstream::Message, reason: &str) {
        let sequence = message.info().map_or(0, |info| info.stream_sequence);
        tracing::error!(
            consumer = self.name(),
            subject = %message.subject,
            sequence,
            reason,
            "Message cannot be handled; parked."
        );
        if let Err(e) = message.ack_with(AckKind::Term).await {
            tracing::warn!(consumer = self.name(), sequence, error = %e, "Park lost; the message will come again.");
        }
    }

    async fn reopen_later(&mut self) {
        self.messages = None;
        self.errors_in_a_row = 0;
        tokio::time::sleep(REOPEN_DELAY).await;
    }

    async fn open(&self) -> Result<consumer::pull::Stream, NatsError> {
        let consumer = self
            .stream
            .create_consumer(self.config.clone())
            .await
            .map_err(|e| NatsError::new("opening a durable consumer", e))?;
        consumer
            .messages()
            .await
            .map_err(|e| NatsError::new("reading a durable consumer", e))
    }
}
