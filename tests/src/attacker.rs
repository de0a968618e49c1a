//! A client of one identity that tries what it may not, and tells the server's refusal (its
//! `-ERR 'Permissions Violation'`) from an answer: [`Attacker`]. For tests of the trusted bus;
//! it never decides whether an outcome is right, the test does.

use std::time::Duration;

use async_nats::HeaderMap;
use testkit::{Identity, NatsServer};
use tokio::sync::mpsc;

/// How long a refused subscription may take to be answered with an error: the server answers
/// at once, and an allowed subscription is answered with nothing at all.
const SUBSCRIBE_REFUSAL_TIMEOUT: Duration = Duration::from_millis(500);

/// What the server did with one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (JetStream's answer, possibly an error of its own, as text).
    Answered(String),
    /// It refused the identity: a permissions violation naming the subject.
    Refused,
}

/// A client connected as one identity, with the server's errors to it in a channel.
pub struct Attacker {
    pub identity: Identity,
    pub client: async_nats::Client,
    /// Filled by the client's event callback, emptied by each try. Unbounded: a test makes a
    /// bounded number of tries, each earning at most one error.
    violations: mpsc::UnboundedReceiver<String>,
}

impl Attacker {
    /// Connects to the test server `server` as `identity`.
    ///
    /// # Panics
    ///
    /// When the server does not let the identity in.
    pub async fn connect(server: &NatsServer, identity: Identity) -> Attacker {
        Attacker::connect_to(&server.url(), server.access().options(identity), identity).await
    }

    /// Connects to `url` with `options`, the connect options of `identity` (its seed).
    ///
    /// # Panics
    ///
    /// When the server does not let the identity in.
    pub async fn connect_to(
        url: &str,
        options: async_nats::ConnectOptions,
        identity: Identity,
    ) -> Attacker {
        let (sender, violations) = mpsc::unbounded_channel();
        let client = options
            .event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        let _ = sender.send(error.to_string());
                    }
                }
            })
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("{identity:?} is let in at {url}: {e}"));
        Attacker {
            identity,
            client,
            violations,
        }
    }

    /// Sends `payload` to `subject` as a request, and answers whether the server refused it or
    /// something answered.
    pub async fn try_request(&mut self, subject: &str, payload: impl AsRef<[u8]>) -> Outcome {
        self.try_request_with_headers(subject, HeaderMap::new(), payload)
            .await
    }

    /// Like [`try_request`](Self::try_request), with `headers` (a `Nats-Msg-Id`, an expected
    /// last subject sequence), as a role would publish.
    ///
    /// # Panics
    ///
    /// When the request gets neither an answer nor a refusal, or a refusal of another subject.
    pub async fn try_request_with_headers(
        &mut self,
        subject: &str,
        headers: HeaderMap,
        payload: impl AsRef<[u8]>,
    ) -> Outcome {
        while self.violations.try_recv().is_ok() {}
        let request = self.client.request_with_headers(
            subject.to_owned(),
            headers,
            payload.as_ref().to_vec().into(),
        );
        tokio::select! {
            answer = request => match answer {
                Ok(message) => Outcome::Answered(String::from_utf8_lossy(&message.payload).into_owned()),
                Err(e) => panic!("{:?} on {subject}: no refusal and no answer: {e}", self.identity),
            },
            Some(violation) = self.violations.recv() => {
                assert!(
                    violation.contains("Permissions Violation") && violation.contains(subject),
                    "{:?} on {subject}: {violation}",
                    self.identity
                );
                Outcome::Refused
            }
        }
    }

    /// Subscribes to `subject`, and answers whether the server refused it.
    ///
    /// # Panics
    ///
    /// When the connection is gone.
    pub async fn try_subscribe(&mut self, subject: &str) -> Outcome {
        while self.violations.try_recv().is_ok() {}
        let _subscription = self.client.subscribe(subject.to_owned()).await.unwrap();
        self.client.flush().await.unwrap();
        match tokio::time::timeout(SUBSCRIBE_REFUSAL_TIMEOUT, self.violations.recv()).await {
            Ok(Some(violation)) => {
                assert!(violation.contains("Permissions Violation"), "{violation}");
                Outcome::Refused
            }
            _ => Outcome::Answered(String::new()),
        }
    }
}

/// Asserts that the server at `url` refuses a client without credentials.
///
/// # Panics
///
/// When it lets one in, or fails it for another reason.
pub async fn assert_anonymous_refused(url: &str) {
    let error = async_nats::connect(url)
        .await
        .expect_err("an anonymous client is refused");
    assert!(
        matches!(
            error.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication
        ),
        "{error:?}"
    );
}
