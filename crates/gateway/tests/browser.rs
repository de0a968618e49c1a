//! What a page in a browser can send to a gateway on loopback without authentication, sent
//! over TCP to `gateway::serve` against a real nats-server: a `text/plain` post (no CORS
//! preflight needed), a request under a rebound DNS name, and a cross-origin request. None is
//! served, nothing is stored, and no answer carries a CORS header.

use std::net::SocketAddr;

use events::fixtures;
use events::store::EventLog;
use gateway::{Gateway, GatewayConfig, GuardConfig, PublicHost};
use projector::Tables;
use serde_json::{Value, json};
use testkit::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const MONITOR: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-monitor.yaml");

/// The public name the gateway under test is also served under.
const PUBLIC_HOST: &str = "vnfm.example.org";

/// A gateway served on a free loopback port.
struct Served {
    address: SocketAddr,
    log: EventLog,
    _stop: oneshot::Sender<()>,
    _nats: NatsServer,
}

impl Served {
    async fn start() -> Served {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let tables = Tables::open(log.jetstream()).await.expect("the tables");
        let config = GatewayConfig {
            guard: GuardConfig {
                public_hosts: vec![PUBLIC_HOST.parse::<PublicHost>().unwrap()],
                ..GuardConfig::default()
            },
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(log.clone(), tables, config)
            .await
            .expect("the gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway::serve(listener, gateway, async move {
            let _ = stopped.await;
        }));
        Served {
            address,
            log,
            _stop: stop,
            _nats: nats,
        }
    }

    /// Sends one HTTP/1.1 request with `headers` (lines without CRLF); answers the status,
    /// the response's header lines, lowercase, and its JSON body.
    async fn send(
        &self,
        request_line: &str,
        headers: &[&str],
        body: &str,
    ) -> (u16, Vec<String>, Value) {
        let mut stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let mut lines = vec![request_line.to_owned(), "Connection: close".to_owned()];
        lines.extend(headers.iter().map(|header| (*header).to_owned()));
        if !body.is_empty() {
            lines.push(format!("Content-Length: {}", body.len()));
        }
        let request = format!("{}\r\n\r\n{body}", lines.join("\r\n"));
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a response head");
        let mut lines = head.lines();
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines.map(str::to_ascii_lowercase).collect();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
        };
        (status, headers, body)
    }

    fn host(&self) -> String {
        format!("Host: {}", self.address)
    }

    async fn log_length(&self) -> u64 {
        let mut stream = self.log.stream().clone();
        stream.info().await.unwrap().state.last_sequence
    }
}

fn vnfd_body() -> String {
    json!({"vnfd": {"name": "from-a-page", "attributes": {"vnfd": MONITOR}}}).to_string()
}

fn tacker_type(body: &Value) -> &str {
    body["TackerError"]["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_text_plain_post_is_refused_and_nothing_is_stored() {
    let served = Served::start().await;
    let before = served.log_length().await;
    let host = served.host();
    let (status, _, body) = served
        .send(
            "POST /v1.0/vnfds HTTP/1.1",
            &[
                &host,
                "Content-Type: text/plain",
                "Origin: http://evil.example",
            ],
            &vnfd_body(),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(tacker_type(&body), "HTTPUnsupportedMediaType");
    assert!(
        body["TackerError"]["message"]
            .as_str()
            .unwrap()
            .contains("text/plain"),
        "{body}"
    );
    let (status, _, body) = served
        .send("POST /v1.0/vnfds HTTP/1.1", &[&host], &vnfd_body())
        .await;
    assert_eq!(status, 415, "no Content-Type at all: {body}");
    assert_eq!(served.log_length().await, before, "nothing was appended");
    let (status, _, body) = served
        .send(
            "POST /v1.0/vnfds.json HTTP/1.1",
            &[&host, "Content-Type: application/json; charset=utf-8"],
            &vnfd_body(),
        )
        .await;
    assert_eq!(status, 201, "JSON is served: {body}");
}

#[tokio::test]
async fn a_foreign_host_is_misdirected_and_nothing_is_stored() {
    let served = Served::start().await;
    let before = served.log_length().await;
    for host in [
        "Host: rebind.evil.example".to_owned(),
        format!("Host: rebind.evil.example:{}", served.address.port()),
    ] {
        let (status, _, body) = served
            .send(
                "POST /v1.0/vnfds HTTP/1.1",
                &[&host, "Content-Type: application/json"],
                &vnfd_body(),
            )
            .await;
        assert_eq!(status, 421, "{host}: {body}");
        assert_eq!(tacker_type(&body), "HTTPMisdirectedRequest");
        assert!(
            body["TackerError"]["message"]
                .as_str()
                .unwrap()
                .contains("rebind.evil.example"),
            "{body}"
        );
        let (status, _, _) = served.send("GET /v1.0/vnfds HTTP/1.1", &[&host], "").await;
        assert_eq!(status, 421, "{host}: reading is refused too");
    }
    assert_eq!(served.log_length().await, before, "nothing was appended");
    let localhost = format!("Host: localhost:{}", served.address.port());
    let public = format!("Host: {PUBLIC_HOST}");
    for host in [served.host(), localhost, public] {
        let (status, _, body) = served.send("GET /v1.0/vnfds HTTP/1.1", &[&host], "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test]
async fn no_answer_carries_a_cors_header() {
    let served = Served::start().await;
    let host = served.host();
    let origin = "Origin: http://evil.example";
    let requests: [(&str, Vec<&str>, String); 4] = [
        (
            "GET /v1.0/vnfds HTTP/1.1",
            vec![&host, origin],
            String::new(),
        ),
        (
            "POST /v1.0/vnfds HTTP/1.1",
            vec![&host, origin, "Content-Type: application/json"],
            vnfd_body(),
        ),
        (
            "OPTIONS /v1.0/vnfds HTTP/1.1",
            vec![
                &host,
                origin,
                "Access-Control-Request-Method: DELETE",
                "Access-Control-Request-Headers: content-type",
            ],
            String::new(),
        ),
        (
            "POST /v1.0/vnfds HTTP/1.1",
            vec![&host, origin, "Content-Type: text/plain"],
            vnfd_body(),
        ),
    ];
    for (line, headers, body) in requests {
        let (status, answered, _) = served.send(line, &headers, &body).await;
        assert!(
            answered
                .iter()
                .all(|header| !header.starts_with("access-control-")),
            "{line} answered {status} with {answered:?}"
        );
    }
}
