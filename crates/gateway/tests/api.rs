//! The Tacker v1.0 API in process (`tower::ServiceExt::oneshot` on the router) against a real
//! nats-server, with a projector filling the tables. No conductor runs: where a test needs a
//! VNF to be ACTIVE it records the conductor's completion on the log itself.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use events::envelope::Cause;
use events::fixtures;
use events::store::EventLog;
use events::vnf::{Instance, PendingOperation, RespawnLimit, Vnf, VnfCommand, VnfStatus};
use gateway::auth::{NoAuth, TokenFile};
use gateway::{Authenticator, Gateway, GatewayConfig, REQUEST_BODY_BYTES_MAX};
use projector::Tables;
use serde_json::{Value, json};
use testkit::{NatsServer, eventually};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// How long a test waits for the projector (and the gateway's mirror) to show a change; they
/// take milliseconds.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

const MONITOR: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-monitor.yaml");
const HTTP_MONITOR: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-http-monitor.yaml");
const SCALE: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-scale.yaml");
const ALARM_SCALE: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-alarm-scale.yaml");
const ALARM_RESPAWN: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-alarm-respawn.yaml");

/// A gateway over a fresh nats-server.
struct Api {
    router: Router,
    log: EventLog,
    tables: Tables,
    projector: Option<JoinHandle<()>>,
    _gateway: Gateway,
    nats: NatsServer,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(projector) = &self.projector {
            projector.abort();
        }
    }
}

struct Options {
    auth: Arc<dyn Authenticator>,
    projector: bool,
    quotas: gateway::quota::Quotas,
    respawn_limit: RespawnLimit,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: Arc::new(NoAuth),
            projector: true,
            quotas: gateway::quota::Quotas::default(),
            respawn_limit: RespawnLimit::default(),
        }
    }
}

impl Api {
    async fn start() -> Api {
        Api::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> Api {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let tables = Tables::open(log.jetstream())
            .await
            .expect("open the tables");
        let projector = options.projector.then(|| {
            let (log, tables) = (log.clone(), tables.clone());
            tokio::spawn(async move {
                projector::run(log, tables, futures::future::pending())
                    .await
                    .expect("projector runs");
            })
        });
        let config = GatewayConfig {
            auth: options.auth,
            instance: "gateway-test".into(),
            quotas: options.quotas,
            master_key: nats.access().master_key(),
            respawn_limit: options.respawn_limit,
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(log.clone(), tables.clone(), config)
            .await
            .expect("start the gateway");
        Api {
            router: gateway.router(),
            log,
            tables,
            projector,
            _gateway: gateway,
            nats,
        }
    }

    /// Another gateway over the same log and tables, as a second `vnfm gateway` process
    /// would be; it has seen none of the first one's requests.
    async fn second_gateway(&self) -> Api2 {
        let gateway = Gateway::new(
            self.log.clone(),
            self.tables.clone(),
            GatewayConfig {
                master_key: self.nats.access().master_key(),
                ..GatewayConfig::default()
            },
        )
        .await
        .expect("start a second gateway");
        Api2 {
            router: gateway.router(),
            _gateway: gateway,
        }
    }

    /// Sends a request as python-tackerclient does in noauth mode (an empty `X-Auth-Token`).
    async fn call(&self, method: &str, uri: &str, body: Body) -> (StatusCode, Value) {
        self.call_with_token(method, uri, body, Some("")).await
    }

    async fn call_with_token(
        &self,
        method: &str,
        uri: &str,
        body: Body,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        send(&self.router, method, uri, body, token).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Body::empty()).await
    }

    async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.call("POST", uri, Body::from(body.to_string())).await
    }

    async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call("DELETE", uri, Body::empty()).await
    }

    /// Onboards `template` (YAML text) under `name`; returns the VNFD id.
    async fn onboard(&self, template: &str, name: &str) -> String {
        let body = json!({"vnfd": {
            "name": name,
            "service_types": [{"service_type": "vnfd"}],
            "attributes": {"vnfd": template},
        }});
        let (status, vnfd) = self.post("/v1.0/vnfds.json", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{vnfd}");
        id_of(&vnfd["vnfd"])
    }

    /// Creates a VNF as `vnf-create` does; returns the VNF object.
    async fn create_vnf(&self, vnfd_id: &str, name: &str) -> Value {
        let body = json!({"vnf": {"attributes": {}, "name": name, "vnfd_id": vnfd_id}});
        let (status, vnf) = self.post("/v1.0/vnfs.json", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{vnf}");
        vnf["vnf"].clone()
    }

    /// Shows the VNF until `done` holds.
    async fn show_until(&self, vnf_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let uri = format!("/v1.0/vnfs/{vnf_id}.json");
        let what = format!("VNF {vnf_id} reaches the wanted state");
        eventually(what, CATCH_UP_TIMEOUT, || async {
            let (status, vnf) = self.get(&uri).await;
            if status == StatusCode::OK && done(&vnf["vnf"]) {
                Ok(vnf["vnf"].clone())
            } else {
                Err(format!("{status} {vnf}"))
            }
        })
        .await
    }

    /// Records, as a conductor would, that the pending create deployed its planned instances,
    /// with management IPs from 198.18.0.`first_ip` on.
    async fn complete_create(&self, vnf_id: &str, first_ip: u8) {
        let pending = self.pending(vnf_id).await;
        let command = VnfCommand::CompleteCreate {
            instances: deployed(&pending, first_ip),
            operation_id: pending.operation_id,
        };
        self.log
            .execute::<Vnf>(vnf_id, command, &(), &conductor())
            .await
            .expect("complete the create");
    }

    async fn complete_scale(&self, vnf_id: &str, first_ip: u8) {
        let pending = self.pending(vnf_id).await;
        let command = VnfCommand::CompleteScale {
            added: deployed(&pending, first_ip),
            operation_id: pending.operation_id,
        };
        self.log
            .execute::<Vnf>(vnf_id, command, &(), &conductor())
            .await
            .expect("complete the scale");
    }

    async fn pending(&self, vnf_id: &str) -> PendingOperation {
        *self
            .log
            .load::<Vnf>(vnf_id)
            .await
            .expect("load the VNF")
            .aggregate
            .pending
            .expect("an operation is pending")
    }

    async fn log_length(&self) -> u64 {
        let mut stream = self.log.stream().clone();
        stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence
    }
}

/// A second gateway on an [`Api`]'s server.
struct Api2 {
    router: Router,
    _gateway: Gateway,
}

impl Api2 {
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        send(&self.router, "GET", uri, Body::empty(), Some("")).await
    }

    async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        send(
            &self.router,
            "POST",
            uri,
            Body::from(body.to_string()),
            Some(""),
        )
        .await
    }
}

/// Sends a request to `router` with a JSON content type and, if given, an `X-Auth-Token`.
async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: Body,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("x-auth-token", token);
    }
    let response = router
        .clone()
        .oneshot(request.body(body).expect("a request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri} answered {status} with a body that is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, value)
}

fn deployed(pending: &PendingOperation, first_ip: u8) -> Vec<Instance> {
    (0_u8..)
        .zip(&pending.add)
        .map(|(n, planned)| Instance {
            instance_id: planned.instance_id.clone(),
            vdu: planned.vdu.clone(),
            mgmt_ip: Ipv4Addr::new(198, 18, 0, first_ip + n),
            booted_at: OffsetDateTime::now_utc(),
        })
        .collect()
}

fn conductor() -> Cause {
    fixtures::conductor("conductor-test")
}

fn id_of(object: &Value) -> String {
    object["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {object}"))
        .to_owned()
}

/// Asserts a Tacker error body and returns its message.
#[track_caller]
fn tacker_error(body: &Value, kind: &str) -> String {
    let error = &body["TackerError"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["detail"], "", "{body}");
    error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_owned()
}

fn yaml_to_json(text: &str) -> Value {
    vnfd::yaml_to_json(text).expect("a sample is YAML")
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn versions_and_index_answer() {
    let api = Api::start().await;
    let (status, versions) = api.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions["versions"][0]["id"], "v1.0");
    assert_eq!(versions["versions"][0]["status"], "CURRENT");
    let (status, index) = api.get("/v1.0.json").await;
    assert_eq!(status, StatusCode::OK);
    let collections: Vec<&str> = index["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["collection"].as_str())
        .collect();
    assert_eq!(collections, vec!["vims", "vnfds", "vnfs", "events"]);
}

#[tokio::test]
async fn onboards_samples_as_objects_and_as_yaml_text() {
    let api = Api::start().await;
    let mut onboarded = Vec::new();
    for (stem, text) in [
        ("monitor", MONITOR),
        ("http-monitor", HTTP_MONITOR),
        ("scale", SCALE),
    ] {
        for (form, template) in [("yaml", json!(text)), ("object", yaml_to_json(text))] {
            let name = format!("{stem}-{form}");
            let body = json!({"vnfd": {
                "name": name,
                "description": format!("{stem} as {form}"),
                "service_types": [{"service_type": "vnfd"}],
                "attributes": {"vnfd": template},
            }});
            let (status, created) = api.post("/v1.0/vnfds.json", &body).await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {created}");
            let vnfd = &created["vnfd"];
            assert_eq!(vnfd["name"], name.as_str());
            assert_eq!(vnfd["description"], format!("{stem} as {form}"));
            assert_eq!(vnfd["tenant_id"], "admin");
            assert_eq!(vnfd["mgmt_driver"], "noop");
            assert_eq!(vnfd["template_source"], "onboarded");
            assert_eq!(vnfd["service_types"], json!(["vnfd"]));
            assert!(vnfd["created_at"].is_string(), "{vnfd}");
            assert!(vnfd["updated_at"].is_string(), "{vnfd}");
            let stored = vnfd["attributes"]["vnfd"]
                .as_str()
                .unwrap_or_else(|| panic!("attributes.vnfd is not YAML text: {vnfd}"));
            assert_eq!(
                yaml_to_json(stored),
                yaml_to_json(text),
                "{name} is shown back as the same document"
            );

            let id = id_of(vnfd);
            let (status, shown) = api.get(&format!("/v1.0/vnfds/{id}.json")).await;
            assert_eq!(status, StatusCode::OK, "{shown}");
            assert_eq!(&shown["vnfd"], vnfd);
            onboarded.push((name, id));
        }
    }

    // Without a name, the template's metadata.template_name names it.
    let body = json!({"vnfd": {"attributes": {"vnfd": SCALE}}});
    let (status, created) = api.post("/v1.0/vnfds", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["vnfd"]["name"], "sample-tosca-vnfd-scaling");
    assert_eq!(created["vnfd"]["description"], "sample-tosca-vnfd-scaling");

    let every_id: Vec<String> = onboarded.iter().map(|(_, id)| id.clone()).collect();
    let listed = eventually("the list shows every VNFD", CATCH_UP_TIMEOUT, || async {
        let (status, list) = api.get("/v1.0/vnfds.json?template_source=onboarded").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let listed = ids(&list["vnfds"]);
        if every_id.iter().all(|id| listed.contains(id)) {
            Ok(listed)
        } else {
            Err(format!("{listed:?}"))
        }
    })
    .await;
    assert_eq!(listed.len(), every_id.len() + 1, "{listed:?}");

    // How python-tackerclient resolves a name.
    let (name, id) = &onboarded[4];
    let (status, found) = api
        .get(&format!("/v1.0/vnfds.json?name={name}&fields=id"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["vnfds"], json!([{"id": id}]));
    let (_, none) = api.get("/v1.0/vnfds.json?name=no-such-vnfd").await;
    assert_eq!(none["vnfds"], json!([]));
}

#[tokio::test]
async fn an_invalid_vnfd_is_refused_naming_its_field_and_nothing_is_stored() {
    let api = Api::start().await;
    api.onboard(MONITOR, "valid").await;
    let before = eventually("the valid VNFD is listed", CATCH_UP_TIMEOUT, || async {
        let (_, list) = api.get("/v1.0/vnfds.json").await;
        if list["vnfds"].as_array().is_some_and(|l| l.len() == 1) {
            Ok(list)
        } else {
            Err(list.to_string())
        }
    })
    .await;
    let log_before = api.log_length().await;

    let broken = MONITOR.replacen("count: 3", "count: -1", 1);
    assert_ne!(broken, MONITOR);
    for template in [json!(broken), yaml_to_json(&broken)] {
        let body = json!({"vnfd": {"name": "broken", "attributes": {"vnfd": template}}});
        let (status, refused) = api.post("/v1.0/vnfds.json", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        let message = tacker_error(&refused, "InvalidVNFD");
        assert!(
            message.starts_with(
                "vnfd.attributes.vnfd.topology_template.node_templates.VDU1.properties.monitoring_policy.parameters.count: "
            ),
            "{message}"
        );
    }
    let (status, refused) = api
        .post(
            "/v1.0/vnfds.json",
            &json!({"vnfd": {"name": "no-template"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        tacker_error(&refused, "InvalidInput").starts_with("vnfd.attributes: required"),
        "{refused}"
    );
    let (status, refused) = api
        .post(
            "/v1.0/vnfds.json",
            &json!({"vnfd": {"attributes": {"vnfd": 42}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        tacker_error(&refused, "InvalidInput").starts_with("vnfd.attributes.vnfd: "),
        "{refused}"
    );

    assert_eq!(api.log_length().await, log_before, "nothing was appended");
    let (_, after) = api.get("/v1.0/vnfds.json").await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_in_tacker_shape() {
    let api = Api::start().await;
    let log_before = api.log_length().await;
    for uri in ["/v1.0/vnfds.json", "/v1.0/vnfs.json"] {
        for (body, says) in [
            ("{\"vnfd\": ", "not JSON"),
            ("", "empty"),
            ("[1, 2]", "JSON object"),
        ] {
            let (status, refused) = api.call("POST", uri, Body::from(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body:?}: {refused}");
            let message = tacker_error(&refused, "MalformedRequestBody");
            assert!(message.contains(says), "{message}");
        }
        let oversized = format!(
            "{{\"vnfd\": {{\"name\": \"{}\"}}}}",
            "x".repeat(REQUEST_BODY_BYTES_MAX)
        );
        let (status, refused) = api.call("POST", uri, Body::from(oversized)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        let message = tacker_error(&refused, "MalformedRequestBody");
        assert!(
            message.contains(&REQUEST_BODY_BYTES_MAX.to_string()),
            "{message}"
        );
    }
    // A VNFD within the body limit but over the VNFD limit is refused by the parser.
    let padded = format!("{MONITOR}\n# {}\n", "x".repeat(vnfd::VNFD_BYTES_MAX));
    let body = json!({"vnfd": {"name": "big", "attributes": {"vnfd": padded}}});
    let (status, refused) = api.post("/v1.0/vnfds.json", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let message = tacker_error(&refused, "InvalidVNFD");
    assert!(
        message.contains(&vnfd::VNFD_BYTES_MAX.to_string()),
        "{message}"
    );
    assert_eq!(api.log_length().await, log_before, "nothing was appended");
}

#[tokio::test]
async fn unknown_ids_and_paths_answer_404_in_tacker_shape() {
    let api = Api::start().await;
    let unknown = "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11";
    for (method, uri, kind) in [
        ("GET", format!("/v1.0/vnfds/{unknown}.json"), "VNFDNotFound"),
        (
            "DELETE",
            format!("/v1.0/vnfds/{unknown}.json"),
            "VNFDNotFound",
        ),
        ("GET", format!("/v1.0/vnfs/{unknown}.json"), "VNFNotFound"),
        ("GET", format!("/v1.0/vnfs/{unknown}"), "VNFNotFound"),
        (
            "DELETE",
            format!("/v1.0/vnfs/{unknown}.json"),
            "VNFNotFound",
        ),
        (
            "GET",
            format!("/v1.0/vnfs/{unknown}/resources.json"),
            "VNFNotFound",
        ),
        ("GET", "/v1.0/vnfs/not-an-id.json".into(), "VNFNotFound"),
        ("GET", "/v1.0/vnfds/*.json".into(), "VNFDNotFound"),
        ("GET", "/v1.0/events/123000.json".into(), "EventNotFound"),
        ("GET", "/v1.0/events/abc.json".into(), "EventNotFound"),
        ("GET", "/v1.0/nothing.json".into(), "HTTPNotFound"),
    ] {
        let (status, body) = api.call(method, &uri, Body::empty()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {body}");
        let message = tacker_error(&body, kind);
        let named = uri
            .trim_end_matches(".json")
            .trim_end_matches("/resources")
            .rsplit('/')
            .next()
            .unwrap();
        assert!(message.contains(named), "{method} {uri}: {message}");
    }
    let scale = json!({"scale": {"type": "out", "policy": "SP1"}});
    let (status, body) = api
        .post(&format!("/v1.0/vnfs/{unknown}/actions.json"), &scale)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(tacker_error(&body, "VNFNotFound").contains(unknown));
    let body = json!({"vnf": {"name": "orphan", "vnfd_id": unknown}});
    let (status, body) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(tacker_error(&body, "VNFDNotFound").contains(unknown));

    let (status, body) = api.call("PUT", "/v1.0/vnfs.json", Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    tacker_error(&body, "HTTPMethodNotAllowed");
}

#[tokio::test]
async fn a_created_vnf_is_pending_and_shown_at_once_even_before_the_projector_has_it() {
    let api = Api::start_with(Options {
        projector: false,
        ..Options::default()
    })
    .await;
    let vnfd_id = api.onboard(MONITOR, "monitored").await;
    let body = json!({"vnf": {
        "name": "vnf1",
        "vnfd_id": vnfd_id,
        "attributes": {"config": {"param0": "key1"}},
        "placement_attr": {"region_name": "RegionOne"},
    }});
    let (status, created) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let vnf = &created["vnf"];
    assert_eq!(vnf["status"], "PENDING_CREATE");
    assert_eq!(vnf["name"], "vnf1");
    assert_eq!(vnf["vnfd_id"], vnfd_id.as_str());
    assert_eq!(vnf["tenant_id"], "admin");
    assert_eq!(vnf["description"], "Demo example", "defaults to the VNFD's");
    assert_eq!(vnf["mgmt_ip_address"], Value::Null);
    assert_eq!(vnf["error_reason"], Value::Null);
    assert_eq!(vnf["placement_attr"], json!({"region_name": "RegionOne"}));
    assert_eq!(vnf["attributes"]["config"], json!({"param0": "key1"}));
    assert!(
        vnf["action_id"].is_string(),
        "a monitored VNF has an action id: {vnf}"
    );
    assert!(vnf["instance_id"].is_string(), "{vnf}");
    let policy = vnf["attributes"]["monitoring_policy"]
        .as_str()
        .unwrap_or_else(|| panic!("monitoring_policy is not a JSON string: {vnf}"));
    assert_eq!(
        serde_json::from_str::<Value>(policy).unwrap(),
        json!({"vdus": {"VDU1": {"ping": {
            "name": "ping",
            "actions": {"failure": "respawn"},
            "parameters": {"monitoring_delay": 45, "count": 3, "interval": 1, "timeout": 2, "retry": 1},
        }}}})
    );

    let vnf_id = id_of(vnf);
    let (status, shown) = api.get(&format!("/v1.0/vnfs/{vnf_id}.json")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a show right after a create is never 404: {shown}"
    );
    let mut shown_vnf = shown["vnf"].clone();
    let monitor = shown_vnf.as_object_mut().unwrap().remove("monitor");
    assert_eq!(monitor, Some(json!({})), "no monitor has reported yet");
    assert_eq!(&shown_vnf, vnf);
    // A gateway that did not create it, with no projector to fill the tables, reads the log.
    let other = api.second_gateway().await;
    let (status, shown) = other.get(&format!("/v1.0/vnfs/{vnf_id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let mut shown_vnf = shown["vnf"].clone();
    shown_vnf.as_object_mut().unwrap().remove("monitor");
    assert_eq!(&shown_vnf, vnf);
    let (status, shown) = other.get(&format!("/v1.0/vnfds/{vnfd_id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    // python-tackerclient resolves an id with a filtered list before it shows.
    let (status, found) = api
        .get(&format!("/v1.0/vnfs.json?id={vnf_id}&fields=id"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["vnfs"], json!([{"id": vnf_id}]));
}

#[tokio::test]
async fn a_vnfd_in_use_cannot_be_deleted_and_the_events_tell_the_story() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(MONITOR, "monitored").await;
    let vnf_id = id_of(&api.create_vnf(&vnfd_id, "vnf1").await);

    let (status, refused) = api.delete(&format!("/v1.0/vnfds/{vnfd_id}.json")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        tacker_error(&refused, "VNFDInUse").contains(&vnf_id),
        "{refused}"
    );
    let (status, _) = api.get(&format!("/v1.0/vnfds/{vnfd_id}.json")).await;
    assert_eq!(status, StatusCode::OK, "still there");

    // As `vnf-events-list` asks.
    let (status, events) = api
        .get(&format!(
            "/v1.0/events.json?resource_id={vnf_id}&resource_type=vnf"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let events = events["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    let create = &events[0];
    assert_eq!(create["resource_id"], vnf_id.as_str());
    assert_eq!(create["resource_type"], "vnf");
    assert_eq!(create["event_type"], "CREATE");
    assert_eq!(create["resource_state"], "PENDING_CREATE");
    assert!(create["timestamp"].is_string());
    let details = create["event_details"].as_str().unwrap();
    assert!(
        details.starts_with("VNF create requested by user:anonymous (project admin)"),
        "{details}"
    );
    assert_eq!(events[1]["event_type"], "MONITOR");

    let event_id = create["id"].as_u64().expect("a numeric id");
    let (status, shown) = api.get(&format!("/v1.0/events/{event_id}.json")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(&shown["event"], create);

    let (_, vnfd_events) = api
        .get(&format!("/v1.0/events.json?resource_id={vnfd_id}"))
        .await;
    let kinds: Vec<(&str, &str)> = vnfd_events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["resource_state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("CREATE", "OnBoarded"), ("UPDATE", "OnBoarded")]
    );

    let (_, all) = api.get("/v1.0/events.json").await;
    let resources: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource_id"].as_str().unwrap())
        .collect();
    assert!(resources.contains(&vnf_id.as_str()) && resources.contains(&vnfd_id.as_str()));
    let (_, monitors) = api.get("/v1.0/events.json?event_type=MONITOR").await;
    assert_eq!(
        monitors["events"].as_array().unwrap().len(),
        1,
        "{monitors}"
    );
    let (_, vnfd_only) = api
        .get("/v1.0/events.json?resource_type=vnfd&event_type=CREATE")
        .await;
    let vnfd_only = vnfd_only["events"].as_array().unwrap();
    assert_eq!(vnfd_only.len(), 1);
    assert_eq!(vnfd_only[0]["resource_id"], vnfd_id.as_str());
}

#[tokio::test]
async fn a_pending_vnf_refuses_scale_delete_and_resources() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(SCALE, "scaled").await;
    let vnf_id = id_of(&api.create_vnf(&vnfd_id, "vnf1").await);
    let actions = format!("/v1.0/vnfs/{vnf_id}/actions.json");

    let scale = json!({"scale": {"type": "out", "policy": "SP1"}});
    let (status, refused) = api.post(&actions, &scale).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        tacker_error(&refused, "VNFInvalidState").contains("PENDING_CREATE"),
        "{refused}"
    );
    let (status, refused) = api.delete(&format!("/v1.0/vnfs/{vnf_id}.json")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    tacker_error(&refused, "VNFInvalidState");
    let (status, refused) = api
        .get(&format!("/v1.0/vnfs/{vnf_id}/resources.json"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    tacker_error(&refused, "VNFInactive");

    for (body, field) in [
        (
            json!({"scale": {"type": "sideways", "policy": "SP1"}}),
            "scale.type",
        ),
        (json!({"scale": {"policy": "SP1"}}), "scale.type"),
        (json!({"scale": {"type": "in"}}), "scale.policy"),
        (json!({"heal": {}}), "scale"),
    ] {
        let (status, refused) = api.post(&actions, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {refused}");
        let message = tacker_error(&refused, "InvalidInput");
        assert!(message.starts_with(field), "{message}");
    }
    let (_, shown) = api.get(&format!("/v1.0/vnfs/{vnf_id}.json")).await;
    assert_eq!(shown["vnf"]["status"], "PENDING_CREATE");
}

/// The users of the token-file tests: two projects, a member and a reader in `p1`, a member
/// in `p2`, and an admin of `admin`.
const USERS: [(&str, &str, &str, &str); 4] = [
    ("t-alice", "alice", "p1", "member"),
    ("t-rita", "rita", "p1", "reader"),
    ("t-bob", "bob", "p2", "member"),
    ("t-root", "root", "admin", "admin"),
];

/// A gateway whose token file holds [`USERS`]; the directory holds the file.
async fn api_with_users() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tokens");
    for (token, user, project, role) in USERS {
        let line = gateway::auth::entry_line(token, user, project, &[role.to_owned()])
            .expect("a valid entry");
        gateway::auth::append_line(&path, &line).expect("write the token file");
    }
    let file = TokenFile::open(&path).expect("the token file is accepted");
    let api = Api::start_with(Options {
        auth: Arc::new(file),
        ..Options::default()
    })
    .await;
    (api, dir)
}

impl Api {
    async fn call_as(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.call_with_token(method, uri, body, Some(token)).await
    }

    /// `GET /v1.0/events?resource_id=` as `token`'s user: the whole answer.
    async fn events_of(&self, token: &str, resource_id: &str) -> Value {
        let uri = format!("/v1.0/events.json?resource_id={resource_id}");
        self.call_as(token, "GET", &uri, None).await.1
    }

    /// Onboards the SCALE sample as `token`'s user, with an optional `tenant_id`.
    async fn onboard_as(
        &self,
        token: &str,
        name: &str,
        tenant: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut body = json!({"vnfd": {"name": name, "attributes": {"vnfd": SCALE}}});
        if let Some(tenant) = tenant {
            body["vnfd"]["tenant_id"] = tenant.into();
        }
        self.call_as(token, "POST", "/v1.0/vnfds.json", Some(&body))
            .await
    }

    async fn create_vnf_as(
        &self,
        token: &str,
        vnfd_id: &str,
        name: &str,
        tenant: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut body = json!({"vnf": {"attributes": {}, "name": name, "vnfd_id": vnfd_id}});
        if let Some(tenant) = tenant {
            body["vnf"]["tenant_id"] = tenant.into();
        }
        self.call_as(token, "POST", "/v1.0/vnfs.json", Some(&body))
            .await
    }
}

#[tokio::test]
async fn token_auth_refuses_requests_without_a_known_token() {
    let (api, _dir) = api_with_users().await;
    let uri = "/v1.0/vnfds.json";
    for token in [None, Some(""), Some("t-alic"), Some("wrong")] {
        let (status, refused) = api.call_with_token("GET", uri, Body::empty(), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {refused}");
        tacker_error(&refused, "HTTPUnauthorized");
    }
    let (status, refused) = api
        .call_with_token("POST", "/v1.0/vnfs.json", Body::from("{}"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    let (status, list) = api.call_as("t-alice", "GET", uri, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list, json!({"vnfds": []}));
    let (status, _) = api.call_with_token("GET", "/", Body::empty(), None).await;
    assert_eq!(status, StatusCode::OK, "version discovery stays open");
}

/// The table of cases of issue 11 against the token-file back end: each project sees and
/// changes only its own resources (another project's answer 404), a reader only reads, an
/// admin sees every project, and the log names the user and project of every command.
#[tokio::test]
async fn projects_are_isolated_readers_only_read_and_the_log_names_the_user() {
    let (api, _dir) = api_with_users().await;
    let (status, vnfd) = api.onboard_as("t-alice", "a-vnfd", None).await;
    assert_eq!(status, StatusCode::CREATED, "{vnfd}");
    assert_eq!(vnfd["vnfd"]["tenant_id"], "p1");
    let a_vnfd = id_of(&vnfd["vnfd"]);
    let (status, vnf) = api.create_vnf_as("t-alice", &a_vnfd, "a-vnf", None).await;
    assert_eq!(status, StatusCode::CREATED, "{vnf}");
    assert_eq!(vnf["vnf"]["tenant_id"], "p1");
    let a_vnf = id_of(&vnf["vnf"]);
    let (status, vnfd) = api.onboard_as("t-bob", "b-vnfd", Some("p2")).await;
    assert_eq!(status, StatusCode::CREATED, "{vnfd}");
    let b_vnfd = id_of(&vnfd["vnfd"]);
    // The admin creates in p2 for bob.
    let (status, vnf) = api
        .create_vnf_as("t-root", &b_vnfd, "b-vnf", Some("p2"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vnf}");
    assert_eq!(vnf["vnf"]["tenant_id"], "p2");
    let b_vnf = id_of(&vnf["vnf"]);

    // A member cannot create in another project, nor from another project's VNFD.
    let (status, refused) = api.onboard_as("t-alice", "sneaky", Some("p2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        tacker_error(&refused, "HTTPBadRequest").contains("requires admin privileges"),
        "{refused}"
    );
    let (status, refused) = api
        .create_vnf_as("t-alice", &a_vnfd, "sneaky", Some("p2"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, refused) = api.create_vnf_as("t-alice", &b_vnfd, "sneaky", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    tacker_error(&refused, "VNFDNotFound");

    // Lists: each project its own; the admin all.
    let listed = |token: &'static str, what: &'static str| {
        let api = &api;
        async move {
            let (status, list) = api
                .call_as(token, "GET", &format!("/v1.0/{what}.json"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            let mut found = ids(&list[what]);
            found.sort();
            found
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    for (token, vnfds, vnfs) in [
        ("t-alice", vec![a_vnfd.clone()], vec![a_vnf.clone()]),
        ("t-rita", vec![a_vnfd.clone()], vec![a_vnf.clone()]),
        ("t-bob", vec![b_vnfd.clone()], vec![b_vnf.clone()]),
        (
            "t-root",
            sorted(vec![a_vnfd.clone(), b_vnfd.clone()]),
            sorted(vec![a_vnf.clone(), b_vnf.clone()]),
        ),
    ] {
        assert_eq!(listed(token, "vnfds").await, vnfds, "{token}");
        assert_eq!(listed(token, "vnfs").await, vnfs, "{token}");
        // An id filter (how python-tackerclient resolves an id) does not reveal either.
        let (_, list) = api
            .call_as(
                token,
                "GET",
                &format!("/v1.0/vnfs.json?id={a_vnf}&id={b_vnf}"),
                None,
            )
            .await;
        assert_eq!(sorted(ids(&list["vnfs"])), vnfs, "{token} by id");
    }

    // Another project's resources answer 404 to show, resources, delete, scale and events.
    let scale = json!({"scale": {"type": "out", "policy": "SP1"}});
    for (token, vnfd_id, vnf_id) in [
        ("t-bob", &a_vnfd, &a_vnf),
        ("t-alice", &b_vnfd, &b_vnf),
        ("t-rita", &b_vnfd, &b_vnf),
    ] {
        let before = api.log_length().await;
        let cases: [(&str, String, Option<&Value>, &str); 5] = [
            (
                "GET",
                format!("/v1.0/vnfds/{vnfd_id}.json"),
                None,
                "VNFDNotFound",
            ),
            (
                "GET",
                format!("/v1.0/vnfs/{vnf_id}.json"),
                None,
                "VNFNotFound",
            ),
            (
                "GET",
                format!("/v1.0/vnfs/{vnf_id}/resources.json"),
                None,
                "VNFNotFound",
            ),
            (
                "DELETE",
                format!("/v1.0/vnfs/{vnf_id}.json"),
                None,
                "VNFNotFound",
            ),
            (
                "POST",
                format!("/v1.0/vnfs/{vnf_id}/actions.json"),
                Some(&scale),
                "VNFNotFound",
            ),
        ];
        for (method, uri, body, kind) in cases {
            let (status, refused) = api.call_as(token, method, &uri, body).await;
            let expected = if token == "t-rita" && method != "GET" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(status, expected, "{token} {method} {uri}: {refused}");
            if expected == StatusCode::NOT_FOUND {
                tacker_error(&refused, kind);
            }
        }
        let (status, refused) = api
            .call_as(
                token,
                "DELETE",
                &format!("/v1.0/vnfds/{vnfd_id}.json"),
                None,
            )
            .await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::FORBIDDEN].contains(&status),
            "{token}: {refused}"
        );
        assert_eq!(api.log_length().await, before, "{token}: nothing recorded");
        for resource_id in [vnf_id, vnfd_id] {
            let events = api.events_of(token, resource_id).await;
            assert_eq!(events, json!({"events": []}), "{token} {resource_id}");
        }
        let (_, events) = api.call_as(token, "GET", "/v1.0/events.json", None).await;
        let shown: Vec<&str> = events["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["resource_id"].as_str())
            .collect();
        assert!(!shown.is_empty(), "{token} sees its own project's events");
        assert!(
            !shown.contains(&vnf_id.as_str()) && !shown.contains(&vnfd_id.as_str()),
            "{token}: {shown:?}"
        );
    }
    // One event of another project, shown by id: 404.
    let events = api.events_of("t-root", &a_vnf).await;
    let event_id = events["events"][0]["id"]
        .as_u64()
        .expect("an event of a-vnf");
    let (status, _) = api
        .call_as(
            "t-bob",
            "GET",
            &format!("/v1.0/events/{event_id}.json"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call_as(
            "t-rita",
            "GET",
            &format!("/v1.0/events/{event_id}.json"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The reader: 403 on every write, even in its own project, and nothing recorded.
    let before = api.log_length().await;
    let vnfd_body = json!({"vnfd": {"name": "r", "attributes": {"vnfd": SCALE}}});
    let vnf_body = json!({"vnf": {"name": "r", "vnfd_id": a_vnfd, "attributes": {}}});
    for (method, uri, body) in [
        ("POST", "/v1.0/vnfds.json".to_owned(), Some(&vnfd_body)),
        ("POST", "/v1.0/vnfs.json".to_owned(), Some(&vnf_body)),
        ("DELETE", format!("/v1.0/vnfds/{a_vnfd}.json"), None),
        ("DELETE", format!("/v1.0/vnfs/{a_vnf}.json"), None),
        (
            "POST",
            format!("/v1.0/vnfs/{a_vnf}/actions.json"),
            Some(&scale),
        ),
    ] {
        let (status, refused) = api.call_as("t-rita", method, &uri, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {refused}");
        let message = tacker_error(&refused, "HTTPForbidden");
        assert!(
            message.contains("rita") && message.contains("reader"),
            "{message}"
        );
    }
    assert_eq!(api.log_length().await, before, "a reader records nothing");
    let (status, _) = api
        .call_as("t-rita", "GET", &format!("/v1.0/vnfs/{a_vnf}.json"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The owner's delete goes through, and the log names the user and project of each command.
    api.complete_create(&a_vnf, 3).await;
    let (status, deleted) = api
        .call_as(
            "t-alice",
            "DELETE",
            &format!("/v1.0/vnfs/{a_vnf}.json"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{deleted}");
    let actors = |vnf_id: String| {
        let log = api.log.clone();
        async move {
            let history = log
                .history::<events::vnf::VnfEvent>(&events::names::vnf_subject(&vnf_id))
                .await
                .expect("the VNF's history");
            history
                .split()
                .0
                .into_iter()
                .map(|stored| stored.envelope.cause.actor.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        actors(a_vnf.clone()).await,
        [
            "user:alice (project p1)",
            "conductor:conductor-test",
            "user:alice (project p1)"
        ]
    );
    assert_eq!(actors(b_vnf.clone()).await, ["user:root (project admin)"]);
    let events = api.events_of("t-alice", &a_vnf).await;
    let details = events["events"][0]["event_details"]
        .as_str()
        .expect("details");
    assert!(details.contains("user:alice (project p1)"), "{details}");
}

#[tokio::test]
async fn an_active_vnf_shows_its_ips_and_resources_and_scales_within_its_policy() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(SCALE, "scaled").await;
    let vnf_id = id_of(&api.create_vnf(&vnfd_id, "vnf1").await);
    let vnf_uri = format!("/v1.0/vnfs/{vnf_id}.json");
    api.complete_create(&vnf_id, 3).await;

    let vnf = api.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
    assert_eq!(vnf["action_id"], Value::Null, "no VDU is monitored");
    assert!(
        vnf["attributes"].get("monitoring_policy").is_none(),
        "{vnf}"
    );
    let ips = vnf["mgmt_ip_address"]
        .as_str()
        .unwrap_or_else(|| panic!("mgmt_ip_address is not a JSON string: {vnf}"));
    assert_eq!(
        serde_json::from_str::<Value>(ips).unwrap(),
        json!({"VDU1": ["198.18.0.3", "198.18.0.4"], "VDU2": ["198.18.0.5", "198.18.0.6"]})
    );

    let (status, resources) = api
        .get(&format!("/v1.0/vnfs/{vnf_id}/resources.json"))
        .await;
    assert_eq!(status, StatusCode::OK, "{resources}");
    let resources = resources["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 4);
    let planned = api
        .log
        .load::<Vnf>(&vnf_id)
        .await
        .unwrap()
        .aggregate
        .instances;
    for (resource, instance) in resources.iter().zip(&planned) {
        assert_eq!(resource["name"], instance.vdu.as_str());
        assert_eq!(resource["type"], "OS::Nova::Server");
        assert_eq!(resource["id"], instance.instance_id.as_str());
    }

    let actions = format!("/v1.0/vnfs/{vnf_id}/actions.json");
    let out = json!({"scale": {"type": "out", "policy": "SP1"}});
    let (status, answer) = api.post(&actions, &out).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer, json!({}));
    let (_, shown) = api.get(&vnf_uri).await;
    assert_eq!(
        shown["vnf"]["status"], "PENDING_SCALE_OUT",
        "a gateway shows its own writes"
    );

    api.complete_scale(&vnf_id, 7).await;
    let vnf = api.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
    let ips: Value = serde_json::from_str(vnf["mgmt_ip_address"].as_str().unwrap()).unwrap();
    assert_eq!(ips["VDU1"].as_array().unwrap().len(), 3, "{ips}");

    let (status, refused) = api.post(&actions, &out).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        tacker_error(&refused, "VNFScaleLimit").contains("max_instances of 3"),
        "{refused}"
    );
    let unknown_policy = json!({"scale": {"type": "in", "policy": "SP9"}});
    let (status, refused) = api.post(&actions, &unknown_policy).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert!(
        tacker_error(&refused, "VNFPolicyNotFound").contains("SP9"),
        "{refused}"
    );

    let (_, events) = api
        .get(&format!(
            "/v1.0/events.json?resource_id={vnf_id}&event_type=SCALE"
        ))
        .await;
    let states: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource_state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["PENDING_SCALE_OUT", "ACTIVE"]);

    let (status, body) = api.delete(&vnf_uri).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, shown) = api.get(&vnf_uri).await;
    assert_eq!(shown["vnf"]["status"], "PENDING_DELETE");
    let (_, pending) = api
        .get("/v1.0/vnfs.json?status=PENDING_DELETE&fields=id")
        .await;
    assert_eq!(pending["vnfs"], json!([{"id": vnf_id}]));
}

#[tokio::test]
async fn a_single_instance_ip_is_a_plain_string_and_monitoring_is_shown() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(HTTP_MONITOR, "http-monitored").await;
    let vnf_id = id_of(&api.create_vnf(&vnfd_id, "web").await);
    api.complete_create(&vnf_id, 9).await;
    let vnf = api.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
    assert_eq!(vnf["mgmt_ip_address"], r#"{"VDU1":"198.18.0.9"}"#);
    let policy: Value =
        serde_json::from_str(vnf["attributes"]["monitoring_policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        policy,
        json!({"vdus": {"VDU1": {"http_ping": {
            "name": "http_ping",
            "actions": {"failure": "respawn"},
            "parameters": {"monitoring_delay": 30, "count": 5, "interval": 1, "timeout": 10, "retry": 5, "port": 8000},
        }}}})
    );
    assert!(vnf["action_id"].is_string());
}

#[tokio::test]
async fn vnf_lists_filter_like_tacker() {
    let api = Api::start().await;
    let monitored = api.onboard(MONITOR, "monitored").await;
    let scaled = api.onboard(SCALE, "scaled").await;
    let a = id_of(&api.create_vnf(&monitored, "vnf-a").await);
    let b = id_of(&api.create_vnf(&scaled, "vnf-b").await);
    let c = id_of(&api.create_vnf(&scaled, "vnf-c").await);

    let (status, all) = api.get("/v1.0/vnfs.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&all["vnfs"]),
        vec![a.clone(), b.clone(), c.clone()],
        "oldest first"
    );
    let (_, named) = api.get("/v1.0/vnfs.json?name=vnf-b&fields=id").await;
    assert_eq!(named["vnfs"], json!([{"id": b}]));
    let (_, by_vnfd) = api.get(&format!("/v1.0/vnfs?vnfd_id={scaled}")).await;
    assert_eq!(ids(&by_vnfd["vnfs"]), vec![b.clone(), c.clone()]);
    let (_, either) = api.get("/v1.0/vnfs.json?name=vnf-a&name=vnf-c").await;
    assert_eq!(ids(&either["vnfs"]), vec![a.clone(), c.clone()]);
    let (_, by_id) = api.get(&format!("/v1.0/vnfs.json?id={c}&fields=id")).await;
    assert_eq!(by_id["vnfs"], json!([{"id": c}]));
    let (_, active) = api.get("/v1.0/vnfs.json?status=ACTIVE").await;
    assert_eq!(active["vnfs"], json!([]));
    let (_, pending) = api.get("/v1.0/vnfs.json?status=PENDING_CREATE").await;
    assert_eq!(ids(&pending["vnfs"]).len(), 3);
    let (_, nonsense) = api.get("/v1.0/vnfs.json?id=*&id=not-an-id").await;
    assert_eq!(nonsense["vnfs"], json!([]));

    // A gateway started later loads the table before it serves.
    eventually("the projector has every VNF", CATCH_UP_TIMEOUT, || async {
        let rows = api
            .tables
            .all::<Vnf>(events::names::AggregateKind::Vnf)
            .await
            .unwrap();
        match rows.len() {
            3 => Ok(()),
            n => Err(format!("{n} rows")),
        }
    })
    .await;
    let other = api.second_gateway().await;
    let (_, listed) = other.get("/v1.0/vnfs.json").await;
    assert_eq!(listed, all);
}

#[tokio::test]
async fn a_vnf_from_an_inline_template_onboards_its_own_vnfd() {
    let api = Api::start().await;
    let body = json!({"vnf": {"name": "inline", "vnfd_template": yaml_to_json(MONITOR)}});
    let (status, created) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let vnf = &created["vnf"];
    let vnf_id = id_of(vnf);
    let vnfd_id = vnf["vnfd_id"].as_str().unwrap().to_owned();
    assert!(vnf["action_id"].is_string());

    let (status, vnfd) = api.get(&format!("/v1.0/vnfds/{vnfd_id}.json")).await;
    assert_eq!(status, StatusCode::OK, "{vnfd}");
    assert_eq!(vnfd["vnfd"]["template_source"], "inline");
    assert_eq!(vnfd["vnfd"]["name"], format!("tmpl-{}", &vnf_id[..8]));

    eventually("the inline VNFD is listed", CATCH_UP_TIMEOUT, || async {
        let (_, all) = api.get("/v1.0/vnfds.json").await;
        if ids(&all["vnfds"]).contains(&vnfd_id) {
            Ok(())
        } else {
            Err(all.to_string())
        }
    })
    .await;
    let (_, onboarded) = api.get("/v1.0/vnfds.json?template_source=onboarded").await;
    assert_eq!(
        onboarded["vnfds"],
        json!([]),
        "vnfd-list shows onboarded VNFDs only"
    );
    let (_, any) = api.get("/v1.0/vnfds.json?template_source=all").await;
    assert_eq!(ids(&any["vnfds"]), vec![vnfd_id.clone()]);

    let log_before = api.log_length().await;
    let broken = MONITOR.replacen("failure: respawn", "failure: reboot", 1);
    let body = json!({"vnf": {"name": "broken", "vnfd_template": broken}});
    let (status, refused) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let message = tacker_error(&refused, "InvalidVNFD");
    assert!(
        message.starts_with("vnf.vnfd_template.topology_template.node_templates.VDU1.properties.monitoring_policy.actions"),
        "{message}"
    );
    let both = json!({"vnf": {"name": "both", "vnfd_id": vnfd_id, "vnfd_template": MONITOR}});
    let (status, refused) = api.post("/v1.0/vnfs.json", &both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    tacker_error(&refused, "InvalidInput");
    let (status, refused) = api
        .post("/v1.0/vnfs.json", &json!({"vnf": {"vnfd_id": vnfd_id}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(tacker_error(&refused, "InvalidInput").starts_with("vnf.name"));
    assert_eq!(api.log_length().await, log_before, "nothing was appended");
}

/// A request over one of its project's quotas answers 409 naming the quota, its limit and the
/// use, and stores nothing: a second VNFD, a second VNF, and a template whose VDUs exceed the
/// per-VNFD quota (the issue's 1,350 VDUs, in small).
#[tokio::test]
async fn a_request_over_a_quota_is_refused_naming_it_and_stores_nothing() {
    let api = Api::start_with(Options {
        quotas: gateway::quota::Quotas {
            vnfds: 1,
            vnfs: 1,
            instances: 100,
            vdus_per_vnfd: 2,
            instances_per_scale_step: 10,
        },
        ..Options::default()
    })
    .await;
    let vnfd_id = api.onboard(SCALE, "first").await;
    let last_sequence = || async {
        api.log
            .stream()
            .clone()
            .info()
            .await
            .unwrap()
            .state
            .last_sequence
    };
    let before = last_sequence().await;
    let body = json!({"vnfd": {"name": "second", "attributes": {"vnfd": SCALE}}});
    let (status, refused) = api.post("/v1.0/vnfds.json", &body).await;
    assert_over(status, &refused, "vnfds");
    assert!(
        refused.to_string().contains("limit is 1, 1 in use"),
        "{refused}"
    );
    assert_eq!(
        last_sequence().await,
        before,
        "the refused VNFD is not stored"
    );
    api.create_vnf(&vnfd_id, "vnf1").await;
    let before = last_sequence().await;
    let (status, refused) = api
        .post(
            "/v1.0/vnfs.json",
            &json!({"vnf": {"attributes": {}, "name": "vnf2", "vnfd_id": vnfd_id}}),
        )
        .await;
    assert_over(status, &refused, "vnfs");
    assert_eq!(
        last_sequence().await,
        before,
        "the refused VNF is not stored"
    );

    // A template with more VDUs than a VNFD may have, given inline with a create.
    let small = Api::start_with(Options {
        quotas: gateway::quota::Quotas {
            vdus_per_vnfd: 1,
            ..gateway::quota::Quotas::default()
        },
        ..Options::default()
    })
    .await;
    let (status, refused) = small
        .post(
            "/v1.0/vnfs.json",
            &json!({"vnf": {"attributes": {}, "name": "inline", "vnfd_template": SCALE}}),
        )
        .await;
    assert_over(status, &refused, "vdus_per_vnfd");
    let stored = small
        .log
        .stream()
        .clone()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored, 0, "nothing stored");
}

/// A 409 `OverQuota` naming `quota`.
fn assert_over(status: StatusCode, refused: &Value, quota: &str) {
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["TackerError"]["type"], "OverQuota", "{refused}");
    let message = refused["TackerError"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(&format!("quota {quota} ")), "{message}");
}

const PARAM_VNFD: &str =
    include_str!("../../vnfd/tests/corpus/test-samples/sample-tosca-vnfd-param.yaml");
const PARAM_VALUES: &str =
    include_str!("../../vnfd/tests/corpus/params/sample-tosca-vnf-values.yaml");

#[tokio::test]
async fn a_vnf_create_resolves_the_vnfds_inputs_with_its_param_values() {
    let api = Api::start().await;
    // Onboarded although `image_name` has no default, as Tacker did.
    let vnfd_id = api.onboard(PARAM_VNFD, "param").await;
    let log_before = api.log_length().await;
    let create = |name: &str, param_values: Value| json!({"vnf": {"name": name, "vnfd_id": vnfd_id, "attributes": {"param_values": param_values}}});
    for (param_values, says) in [
        (json!(null), "vnf.attributes.param_values.image_name: "),
        (
            json!({"image_name": ["a list"], "flavor": "m1.tiny", "zone": "nova", "network": "n",
                   "management": "true", "pkt_in_network": "a", "pkt_out_network": "b",
                   "vendor": "v"}),
            "vnf.attributes.param_values.image_name: input \"image_name\" is of type string",
        ),
        (
            json!(PARAM_VALUES.replace("management: 'true',", "")),
            "vnf.attributes.param_values.management: the VNFD's input \"management\" has no default",
        ),
        (
            json!(PARAM_VALUES.replace("management: 'true'", "management: 'maybe'")),
            "vnf.attributes.param_values, in the VNFD.topology_template.node_templates.CP1.properties.management: ",
        ),
    ] {
        let (status, refused) = api
            .post("/v1.0/vnfs.json", &create("bad", param_values))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        let message = refused["TackerError"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.starts_with(says), "{refused}");
    }
    assert_eq!(api.log_length().await, log_before, "nothing was appended");

    // As python-tackerclient's `vnf-create --param-file` sends it: the file's text.
    let (status, vnf) = api
        .post("/v1.0/vnfs.json", &create("good", json!(PARAM_VALUES)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vnf}");
    let vnf_id = id_of(&vnf["vnf"]);
    let recorded = api.log.load::<Vnf>(&vnf_id).await.unwrap().aggregate;
    let spec = recorded.vnfd.expect("the create records the spec");
    assert_eq!(
        spec.vdus[0].image.as_deref(),
        Some("cirros-0.5.2-x86_64-disk")
    );
    assert_eq!(spec.vdus[0].flavor.as_deref(), Some("m1.tiny"));
    assert_eq!(spec.vdus[0].mgmt_cp.as_deref(), Some("CP1"));
    // The parameters stay a sealed secret on the log.
    let attributes = &recorded.details.expect("details").attributes;
    assert!(
        events::secrets::holds_sealed(attributes),
        "param_values are sealed: {attributes}"
    );
    assert!(!attributes.to_string().contains("cirros"), "{attributes}");
}

#[tokio::test]
async fn tackers_legacy_vnfds_onboard_or_are_refused_naming_their_field() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../vnfd/tests/corpus");
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{corpus}/table.json")).unwrap())
            .unwrap();
    let api = Api::start().await;
    let (mut accepted, mut refused) = (0, 0);
    for row in table["vnfds"].as_array().unwrap() {
        let file = row["file"].as_str().unwrap();
        let template = std::fs::read_to_string(format!("{corpus}/{file}")).unwrap();
        let body = json!({"vnfd": {"name": file, "attributes": {"vnfd": template}}});
        let (status, answer) = api.post("/v1.0/vnfds.json", &body).await;
        if row["tacker"] == "accepted" {
            assert_eq!(status, StatusCode::CREATED, "{file}: {answer}");
            accepted += 1;
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{file}: {answer}");
            let message = tacker_error(&answer, "InvalidVNFD");
            let field = row["field"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("vnfd.attributes.vnfd.{field}: ")),
                "{file}: {message}"
            );
            refused += 1;
        }
    }
    assert!(
        accepted > 60 && refused >= 4,
        "{accepted} accepted, {refused} refused"
    );
}

/// A VNFD's or a VNF's name is unique among its project's live ones: a second one answers 409
/// naming the first and records nothing, two gateways racing for one name give it to one, and
/// a delete frees the name.
#[tokio::test]
async fn names_are_unique_per_project_and_freed_by_delete() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(SCALE, "web").await;
    let log_before = api.log_length().await;
    let body = json!({"vnfd": {"name": "web", "attributes": {"vnfd": SCALE}}});
    let (status, refused) = api.post("/v1.0/vnfds.json", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let message = tacker_error(&refused, "DuplicateEntity");
    assert!(
        message.starts_with("VNFD name \"web\" is already used in project")
            && message.contains(&vnfd_id),
        "{message}"
    );

    let vnf_id = id_of(&api.create_vnf(&vnfd_id, "vnf-1").await);
    let log_after_create = api.log_length().await;
    assert!(log_after_create > log_before);
    let body = json!({"vnf": {"name": "vnf-1", "vnfd_id": vnfd_id}});
    let (status, refused) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let message = tacker_error(&refused, "DuplicateEntity");
    assert!(
        message.starts_with("VNF name \"vnf-1\"") && message.contains(&vnf_id),
        "{message}"
    );
    // An inline VNFD is not onboarded for a VNF whose name is taken.
    let body = json!({"vnf": {"name": "vnf-1", "vnfd_template": yaml_to_json(SCALE)}});
    let (status, refused) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        api.log_length().await,
        log_after_create,
        "nothing was appended"
    );

    // Two gateways, neither of which has seen the other's request, race for one name.
    let other = api.second_gateway().await;
    let body = json!({"vnfd": {"name": "raced", "attributes": {"vnfd": SCALE}}});
    let (first, second) = tokio::join!(
        api.post("/v1.0/vnfds.json", &body),
        other.post("/v1.0/vnfds.json", &body)
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        first.1,
        second.1
    );

    // A deleted VNF frees its name once its delete completes; a deleted VNFD at once.
    api.complete_create(&vnf_id, 10).await;
    let (status, _) = api.delete(&format!("/v1.0/vnfs/{vnf_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let body = json!({"vnf": {"name": "vnf-1", "vnfd_id": vnfd_id}});
    let (status, refused) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a VNF being deleted keeps its name: {refused}"
    );
    let pending = api.pending(&vnf_id).await;
    api.log
        .execute::<Vnf>(
            &vnf_id,
            VnfCommand::CompleteDelete {
                operation_id: pending.operation_id,
            },
            &(),
            &conductor(),
        )
        .await
        .expect("complete the delete");
    // The gateway's copy of the tables may show the VNF live a moment longer: a name check
    // errs only towards a clash.
    eventually(
        "the deleted VNF's name is free",
        CATCH_UP_TIMEOUT,
        || async {
            match api.post("/v1.0/vnfs.json", &body).await {
                (StatusCode::CREATED, _) => Ok(()),
                (status, answer) => Err(format!("{status} {answer}")),
            }
        },
    )
    .await;
    let unused = api.onboard(MONITOR, "unused").await;
    let (status, _) = api.delete(&format!("/v1.0/vnfds/{unused}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.onboard(MONITOR, "unused").await;
}

/// Every page of `first` by its `next` links: the ids, and the pages' sizes.
async fn walk(api: &Api, first: &str, collection: &str) -> (Vec<String>, Vec<usize>) {
    let (mut walked, mut sizes) = (Vec::new(), Vec::new());
    let mut uri = first.to_owned();
    loop {
        let (status, page) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        let items = page[collection].as_array().expect("a list");
        sizes.push(items.len());
        walked.extend(items.iter().map(|item| match &item["id"] {
            Value::String(id) => id.clone(),
            other => other.to_string(),
        }));
        let next = page[format!("{collection}_links")]
            .as_array()
            .into_iter()
            .flatten()
            .find(|link| link["rel"] == "next")
            .map(|link| link["href"].as_str().expect("an href").to_owned());
        match next {
            Some(href) => uri = href,
            None => return (walked, sizes),
        }
        assert!(sizes.len() <= 100, "the links go round: {walked:?}");
    }
}

/// Every list pages as Tacker's v1.0 API did: `limit` items, `<resources>_links` with rel
/// `next` while more follow (and `previous` after the first page), and following the links
/// walks the whole list once, in order, with the filters, sort and fields kept.
#[tokio::test]
async fn lists_page_with_limit_marker_and_links() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(SCALE, "paged").await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(id_of(&api.create_vnf(&vnfd_id, &format!("vnf-{n}")).await));
    }

    let (walked, sizes) = walk(&api, "/v1.0/vnfs.json?limit=2&fields=id", "vnfs").await;
    assert_eq!(walked, created);
    assert_eq!(sizes, vec![2, 2, 1]);
    let (_, second) = api
        .get(&format!("/v1.0/vnfs?limit=2&marker={}", created[1]))
        .await;
    let rels: Vec<&Value> = second["vnfs_links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|link| &link["rel"])
        .collect();
    assert_eq!(rels, vec!["next", "previous"]);
    let (walked, _) = walk(
        &api,
        "/v1.0/vnfs?limit=2&sort_key=name&sort_dir=desc",
        "vnfs",
    )
    .await;
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(walked, newest_first);
    let (walked, _) = walk(&api, "/v1.0/vnfds?limit=1", "vnfds").await;
    assert_eq!(walked, vec![vnfd_id.clone()]);
    let (all_events, _) = walk(&api, "/v1.0/events", "events").await;
    let (paged_events, sizes) = walk(&api, "/v1.0/events?limit=3", "events").await;
    assert_eq!(paged_events, all_events);
    assert!(
        sizes.len() > 1 && sizes.iter().all(|n| *n <= 3),
        "{sizes:?}"
    );

    let (status, refused) = api.get("/v1.0/vnfs?marker=not-in-the-list").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(tacker_error(&refused, "InvalidInput").starts_with("marker:"));
}

/// Walking every page of VNFs, VNFDs and events by their `next` links while VNFs and VNFDs
/// are created shows every item that was there before the walk, and none twice; the events in
/// the log's order.
#[tokio::test]
async fn walking_the_pages_under_concurrent_creates_shows_every_item_once() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(SCALE, "walked").await;
    for n in 0..5 {
        api.create_vnf(&vnfd_id, &format!("before-{n}")).await;
        api.onboard(SCALE, &format!("before-{n}")).await;
    }
    for (collection, limit) in [("vnfs", 2), ("vnfds", 2), ("events", 3)] {
        let first = format!("/v1.0/{collection}.json?limit={limit}");
        let (before, _) = walk(&api, &first, collection).await;
        let creating = async {
            for n in 0..6 {
                let name = format!("{collection}-during-{n}");
                api.create_vnf(&vnfd_id, &name).await;
                api.onboard(SCALE, &name).await;
            }
        };
        let ((walked, sizes), ()) = tokio::join!(walk(&api, &first, collection), creating);
        assert!(sizes.iter().all(|n| *n <= limit), "{collection}: {sizes:?}");
        let mut once = walked.clone();
        once.sort();
        once.dedup();
        assert_eq!(
            once.len(),
            walked.len(),
            "{collection}: one twice in {walked:?}"
        );
        for id in &before {
            assert!(
                walked.contains(id),
                "{collection}: {id} missing from {walked:?}"
            );
        }
        if collection == "events" {
            let ids: Vec<u64> = walked.iter().map(|id| id.parse().unwrap()).collect();
            assert!(ids.is_sorted(), "{ids:?}");
            let (after, _) = walk(&api, &first, collection).await;
            // Each VNF created: its create and its VNFD's use; each VNFD: its onboarding.
            assert!(after.len() >= before.len() + 6 * 3, "{after:?}");
        }
    }
}

/// `PUT /v1.0/vnfs/{id}` (`tacker vnf-update --config-file`): an ACTIVE VNF goes
/// PENDING_UPDATE with the new config as its own, sealed on the log; the conductor's completion
/// makes it ACTIVE again, and the events tell both. A VNF that is not ACTIVE refuses, and a
/// body with anything but a config is refused naming the field.
#[tokio::test]
async fn an_update_records_the_new_config_sealed_and_the_vnf_goes_pending_update() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(SCALE, "updated").await;
    let vnf_id = id_of(&api.create_vnf(&vnfd_id, "vnf-u").await);
    let uri = format!("/v1.0/vnfs/{vnf_id}");
    let put = |body: Value| {
        let api = &api;
        let uri = uri.clone();
        async move { api.call("PUT", &uri, Body::from(body.to_string())).await }
    };
    let config = json!({"vdus": {"VDU1": {"config": {"mode": "fast", "motd": "hello-update"}}}});
    let body = json!({"vnf": {"attributes": {"config": config}}});
    let (status, refused) = put(body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "PENDING_CREATE: {refused}");
    assert!(tacker_error(&refused, "VNFInvalidState").contains("cannot update"));

    api.complete_create(&vnf_id, 20).await;
    for (bad, field) in [
        (json!({"vnf": {"attributes": {}}}), "vnf.attributes.config"),
        (
            json!({"vnf": {"attributes": {"config": 3}}}),
            "vnf.attributes.config",
        ),
        (
            json!({"vnf": {"name": "x", "attributes": {"config": config}}}),
            "vnf.name",
        ),
        (
            json!({"vnf": {"attributes": {"config": config, "flavor": "big"}}}),
            "vnf.attributes.flavor",
        ),
    ] {
        let (status, refused) = put(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        let message = tacker_error(&refused, "InvalidInput");
        assert!(message.starts_with(&format!("{field}:")), "{message}");
    }
    let log_before = api.log_length().await;
    let (status, updated) = put(body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["vnf"]["status"], "PENDING_UPDATE");
    assert_eq!(updated["vnf"]["attributes"]["config"], config);
    assert_eq!(api.log_length().await, log_before + 1, "one append");
    let (status, refused) = put(body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    // The log holds the config sealed, never in clear.
    let history = api
        .log
        .read_subject::<events::vnf::VnfEvent>(&events::names::vnf_subject(&vnf_id))
        .await
        .unwrap();
    let recorded = serde_json::to_string(&history.last().unwrap().envelope).unwrap();
    assert!(recorded.contains("UpdateRequested"), "{recorded}");
    assert!(!recorded.contains("hello-update"), "{recorded}");
    assert!(recorded.contains(events::secrets::SEALED_TAG), "{recorded}");

    let pending = api.pending(&vnf_id).await;
    api.log
        .execute::<Vnf>(
            &vnf_id,
            VnfCommand::CompleteUpdate {
                operation_id: pending.operation_id,
            },
            &(),
            &conductor(),
        )
        .await
        .expect("complete the update");
    let shown = api
        .show_until(&vnf_id, |vnf| vnf["status"] == "ACTIVE")
        .await;
    assert_eq!(shown["attributes"]["config"], config);
    let (_, events) = api
        .get(&format!(
            "/v1.0/events?resource_id={vnf_id}&event_type=UPDATE"
        ))
        .await;
    let details: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_details"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 2, "{events}");
    assert!(
        details[0].starts_with("VNF config update requested by"),
        "{details:?}"
    );
    assert!(
        details[1].starts_with("VNF config update completed by"),
        "{details:?}"
    );
}

// Alarms.

/// `vnf`'s alarm URL of `trigger` (its show's `attributes.<trigger>`), as a path.
fn alarm_path(vnf: &Value, trigger: &str) -> String {
    let url = vnf["attributes"][trigger]
        .as_str()
        .unwrap_or_else(|| panic!("no alarm URL of {trigger} in {vnf}"));
    let at = url
        .find("/v1.0/")
        .unwrap_or_else(|| panic!("not an alarm URL: {url}"));
    url[at..].to_owned()
}

/// Tacker's alarm receiver body: the alarm `alarm_id` in state `current`.
fn trigger_body(trigger: &str, action: &str, alarm_id: &str, current: &str, key: &str) -> Value {
    json!({"trigger": {
        "policy_name": trigger,
        "action_name": action,
        "params": {"data": {"alarm_id": alarm_id, "current": current}, "credential": key},
    }})
}

/// An Aodh notification as it posts one to an alarm URL.
fn aodh(alarm_id: &str, current: &str) -> Value {
    json!({"alarm_id": alarm_id, "alarm_name": "cpu", "current": current, "previous": "ok",
           "reason": "Transition to alarm due to 1 samples outside threshold", "severity": "low"})
}

impl Api {
    /// An ACTIVE VNF of `template` with the show (secrets opened) that gives its alarm URLs.
    async fn alarmed_vnf(&self, template: &str, name: &str) -> (String, Value) {
        let vnfd_id = self.onboard(template, name).await;
        let vnf_id = id_of(&self.create_vnf(&vnfd_id, name).await);
        self.complete_create(&vnf_id, 3).await;
        let vnf = self.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
        (vnf_id, vnf)
    }

    /// Records, as a conductor would, that the pending heal deployed its replacements.
    async fn complete_pending(&self, vnf_id: &str, first_ip: u8) {
        let pending = self.pending(vnf_id).await;
        let command = pending.completion(Ok(deployed(&pending, first_ip)));
        self.log
            .execute::<Vnf>(vnf_id, command, &(), &conductor())
            .await
            .expect("complete the pending operation");
    }
}

#[tokio::test]
async fn a_vnf_shows_one_alarm_url_per_trigger_and_a_wrong_key_stores_nothing() {
    let api = Api::start().await;
    let (vnf_id, vnf) = api.alarmed_vnf(ALARM_SCALE, "alarmed").await;
    let out = alarm_path(&vnf, "vdu_hcpu_usage_scaling_out");
    let in_ = alarm_path(&vnf, "vdu_lcpu_usage_scaling_in");
    let prefix = format!("/v1.0/vnfs/{vnf_id}/vdu_hcpu_usage_scaling_out/SP1-out/");
    assert!(out.starts_with(&prefix), "{out}");
    assert!(in_.contains("/vdu_lcpu_usage_scaling_in/SP1-in/"), "{in_}");
    let key = out[prefix.len()..].to_owned();
    assert_eq!(key.len(), 64, "32 random bytes, in hex: {key}");
    assert!(vnf["attributes"].get("alarm_key").is_none(), "{vnf}");
    // Never in clear on the log.
    let (_, events) = api
        .get(&format!("/v1.0/events.json?resource_id={vnf_id}"))
        .await;
    assert!(!events.to_string().contains(&key), "{events}");
    // A list shows no secret.
    let (_, list) = api.get("/v1.0/vnfs.json").await;
    assert!(!list.to_string().contains(&key), "{list}");

    let before = api.log_length().await;
    let wrong = format!(
        "/v1.0/vnfs/{vnf_id}/vdu_hcpu_usage_scaling_out/SP1-out/{}",
        "0".repeat(64)
    );
    let refusals = [
        api.call_with_token("POST", &wrong, Body::from(aodh("a1", "alarm").to_string()), None).await,
        api.call_with_token("POST", &format!("/v1.0/vnfs/{vnf_id}/triggers"),
            Body::from(trigger_body("vdu_hcpu_usage_scaling_out", "SP1-out", "a1", "alarm", "nope").to_string()), None).await,
        api.call_with_token("POST", &format!("/v1.0/vnfs/{vnf_id}/triggers"),
            Body::from(json!({"trigger": {"policy_name": "vdu_hcpu_usage_scaling_out", "action_name": "SP1-out"}}).to_string()), None).await,
    ];
    for (status, refused) in refusals {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
        assert!(
            tacker_error(&refused, "HTTPUnauthorized").contains("alarm key"),
            "{refused}"
        );
    }
    assert_eq!(
        api.log_length().await,
        before,
        "a refused alarm stores nothing"
    );
    // An unknown VNF is 404, with or without a key.
    let (status, refused) = api
        .call_with_token(
            "POST",
            "/v1.0/vnfs/0b9c3d0e-1a2b-4c3d-8e9f-001122334455/triggers",
            Body::from(trigger_body("t", "log", "a1", "alarm", &key).to_string()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    // With the key, a trigger or action the VNFD does not have is refused naming it.
    let triggers = format!("/v1.0/vnfs/{vnf_id}/triggers");
    let (status, refused) = api
        .post(
            &triggers,
            &trigger_body("disk_full", "respawn", "a1", "alarm", &key),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        tacker_error(&refused, "InvalidInput").contains("\"disk_full\""),
        "{refused}"
    );
    let (status, refused) = api
        .post(
            &triggers,
            &trigger_body("vdu_hcpu_usage_scaling_out", "SP1-in", "a1", "alarm", &key),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let message = tacker_error(&refused, "InvalidInput");
    assert!(
        message.contains("vdu_hcpu_usage_scaling_out")
            && message.contains("SP1-in")
            && message.contains("SP1-out"),
        "{message}"
    );
    assert_eq!(
        api.log_length().await,
        before,
        "a refused alarm stores nothing"
    );
    // With the key and no token, the alarm URL acts.
    let (status, answer) = api
        .call_with_token(
            "POST",
            &out,
            Body::from(aodh("a1", "alarm").to_string()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["alarm"]["outcome"], "acted", "{answer}");
    let shown = api
        .show_until(&vnf_id, |v| v["status"] == "PENDING_SCALE_OUT")
        .await;
    assert_eq!(shown["status"], "PENDING_SCALE_OUT");
}

#[tokio::test]
async fn a_vnf_without_triggers_has_no_alarm_key_and_its_alarms_answer_404() {
    let api = Api::start().await;
    let (vnf_id, vnf) = api.alarmed_vnf(SCALE, "plain").await;
    assert!(vnf["attributes"].get("alarm_key").is_none(), "{vnf}");
    let (status, refused) = api
        .call_with_token(
            "POST",
            &format!("/v1.0/vnfs/{vnf_id}/triggers"),
            Body::from(trigger_body("t", "log", "a1", "alarm", "k").to_string()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert!(
        tacker_error(&refused, "AlarmUrlNotFound").contains("no alarm key"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_same_alarm_posted_five_times_to_two_gateways_scales_out_once() {
    let api = Api::start().await;
    let other = api.second_gateway().await;
    let (vnf_id, vnf) = api.alarmed_vnf(ALARM_SCALE, "raced").await;
    let out = alarm_path(&vnf, "vdu_hcpu_usage_scaling_out");
    let key = out.rsplit('/').next().unwrap().to_owned();
    let triggers = format!("/v1.0/vnfs/{vnf_id}/triggers");
    let body = trigger_body(
        "vdu_hcpu_usage_scaling_out",
        "SP1-out",
        "alarm-1",
        "alarm",
        &key,
    );
    let before = api.log_length().await;
    let answers = futures::future::join_all((0..5).map(|n| {
        let (triggers, body) = (triggers.clone(), body.clone());
        let (api, other) = (&api, &other);
        async move {
            if n % 2 == 0 {
                api.post(&triggers, &body).await
            } else {
                other.post(&triggers, &body).await
            }
        }
    }))
    .await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{answer}");
            answer["alarm"]["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "acted",
            "already handled",
            "already handled",
            "already handled",
            "already handled"
        ]
    );
    assert_eq!(
        api.log_length().await,
        before + 1,
        "one claim, with its scale, in one message"
    );
    let vnf = api.log.load::<Vnf>(&vnf_id).await.unwrap().aggregate;
    assert_eq!(vnf.status, Some(VnfStatus::PendingScaleOut));
    assert_eq!(vnf.pending.as_ref().unwrap().add.len(), 1);
    assert_eq!(vnf.handled_alarms, ["tacker:alarm-1"]);
}

#[tokio::test]
async fn a_scale_in_alarm_inside_the_cooldown_is_refused_with_the_seconds_left() {
    let api = Api::start().await;
    let (vnf_id, vnf) = api.alarmed_vnf(ALARM_SCALE, "cooling").await;
    let (out, in_) = (
        alarm_path(&vnf, "vdu_hcpu_usage_scaling_out"),
        alarm_path(&vnf, "vdu_lcpu_usage_scaling_in"),
    );
    let (status, answer) = api.post(&out, &aodh("high", "alarm")).await;
    assert_eq!(
        (status, &answer["alarm"]["outcome"]),
        (StatusCode::ACCEPTED, &json!("acted")),
        "{answer}"
    );
    api.complete_scale(&vnf_id, 9).await;
    api.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
    let before = api.log_length().await;
    let (status, refused) = api.post(&in_, &aodh("low", "alarm")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let message = tacker_error(&refused, "VNFScaleCooldown");
    assert!(
        message.contains("cooldown of 120 s") && message.contains("retry in"),
        "{message}"
    );
    let seconds_left: u64 = message
        .rsplit("retry in ")
        .next()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds left in {message}"));
    assert!((100..=120).contains(&seconds_left), "{message}");
    assert_eq!(
        api.log_length().await,
        before,
        "a refused alarm stores nothing"
    );
}

#[tokio::test]
async fn a_respawn_alarm_respawns_once_and_counts_toward_the_heal_limit() {
    let api = Api::start_with(Options {
        respawn_limit: RespawnLimit {
            heals_max: 2,
            window: time::Duration::minutes(10),
        },
        ..Options::default()
    })
    .await;
    let (vnf_id, vnf) = api.alarmed_vnf(ALARM_RESPAWN, "respawned").await;
    let url = alarm_path(&vnf, "vdu_hcpu_usage_respawning");
    assert!(url.contains("/vdu_hcpu_usage_respawning/respawn/"), "{url}");
    let outcome = |answer: &Value| {
        answer["alarm"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let (status, answer) = api.post(&url, &aodh("a1", "alarm")).await;
    assert_eq!(
        (status, outcome(&answer).as_str()),
        (StatusCode::ACCEPTED, "acted"),
        "{answer}"
    );
    api.show_until(&vnf_id, |v| v["status"] == "DEAD").await;
    let (_, answer) = api.post(&url, &aodh("a1", "alarm")).await;
    assert_eq!(outcome(&answer), "already handled", "{answer}");
    api.complete_pending(&vnf_id, 20).await;
    api.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
    // Aodh's repeats of a raised alarm act once; its `ok` frees it for the next episode.
    let (_, answer) = api.post(&url, &aodh("a1", "alarm")).await;
    assert_eq!(outcome(&answer), "already handled", "{answer}");
    let (_, answer) = api.post(&url, &aodh("a1", "insufficient data")).await;
    assert_eq!(outcome(&answer), "nothing to do", "{answer}");
    let (status, answer) = api.post(&url, &aodh("a1", "ok")).await;
    assert_eq!(
        (status, outcome(&answer).as_str()),
        (StatusCode::ACCEPTED, "cleared"),
        "{answer}"
    );
    let (_, answer) = api.post(&url, &aodh("a1", "ok")).await;
    assert_eq!(outcome(&answer), "nothing to clear", "{answer}");
    let (_, answer) = api.post(&url, &aodh("a1", "alarm")).await;
    assert_eq!(outcome(&answer), "acted", "{answer}");
    api.complete_pending(&vnf_id, 30).await;
    api.show_until(&vnf_id, |v| v["status"] == "ACTIVE").await;
    // The third within the window is at the limit of 2: no respawn, the VNF waits for a person.
    let (_, answer) = api.post(&url, &aodh("a2", "alarm")).await;
    assert_eq!(outcome(&answer), "acted", "{answer}");
    let vnf = api.show_until(&vnf_id, |v| v["status"] == "ERROR").await;
    assert!(
        vnf["error_reason"].as_str().unwrap().contains("limit of 2"),
        "{vnf}"
    );
    let state = api.log.load::<Vnf>(&vnf_id).await.unwrap().aggregate;
    assert_eq!(state.heals_at.len(), 2, "two respawns, not three");
    assert_eq!(state.pending, None);
}

/// Alertmanager's webhook payload (version 4) of one alert.
fn alertmanager_payload(status: &str, vnf_id: &str, trigger: &str, fingerprint: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{vnf_id=\"x\"}",
        "status": status,
        "receiver": "vnfm",
        "groupLabels": {"vnf_id": vnf_id},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [{
            "status": status,
            "labels": {"alertname": "x", "vnf_id": vnf_id, "trigger": trigger},
            "annotations": {},
            "startsAt": "2026-12-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": fingerprint,
        }],
    })
}

/// Sends `body` with `Authorization: Bearer <token>` (as Alertmanager's `http_config` does);
/// answers the status and the body's text.
async fn send_bearer(
    api: &Api,
    method: &str,
    uri: &str,
    body: Option<&Value>,
    token: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("a request");
    let response = api
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn alertmanager_firing_twice_scales_once_resolved_does_nothing_and_a_bearer_token_works() {
    let (api, _dir) = api_with_users().await;
    let (status, vnfd) = api
        .call_as(
            "t-alice",
            "POST",
            "/v1.0/vnfds.json",
            Some(&json!({"vnfd": {"name": "am", "attributes": {"vnfd": ALARM_SCALE}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vnfd}");
    let vnfd_id = id_of(&vnfd["vnfd"]);
    let (status, vnf) = api.create_vnf_as("t-alice", &vnfd_id, "am1", None).await;
    assert_eq!(status, StatusCode::CREATED, "{vnf}");
    let vnf_id = id_of(&vnf["vnf"]);
    api.complete_create(&vnf_id, 3).await;
    eventually("the VNF is ACTIVE", CATCH_UP_TIMEOUT, || async {
        let (_, vnf) = api
            .call_as("t-alice", "GET", &format!("/v1.0/vnfs/{vnf_id}"), None)
            .await;
        if vnf["vnf"]["status"] == "ACTIVE" {
            Ok(())
        } else {
            Err(vnf.to_string())
        }
    })
    .await;

    // The rules name the VNFD's triggers.
    let (status, rules) = send_bearer(&api, "GET", "/v1.0/prometheus/rules", None, "t-alice").await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    assert!(
        rules.contains(&format!(
            "expr: \"avg by (vnf_id) (cpu_util{{vnfd_id=\\\"{vnfd_id}\\\"}}) > 80\""
        )),
        "{rules}"
    );
    assert!(
        rules.contains("alert: \"am-vdu_lcpu_usage_scaling_in\""),
        "{rules}"
    );
    // Another project's user sees no rule of it.
    let (_, others) = send_bearer(&api, "GET", "/v1.0/prometheus/rules", None, "t-bob").await;
    assert_eq!(others, "groups: []\n");

    let firing = alertmanager_payload("firing", &vnf_id, "vdu_hcpu_usage_scaling_out", "fp1");
    let (status, first) =
        send_bearer(&api, "POST", "/v1.0/alertmanager", Some(&firing), "t-alice").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["alerts"][0]["outcome"], "acted", "{first}");
    let (_, again) =
        send_bearer(&api, "POST", "/v1.0/alertmanager", Some(&firing), "t-alice").await;
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["alerts"][0]["outcome"], "already handled", "{again}");
    let vnf = api.log.load::<Vnf>(&vnf_id).await.unwrap().aggregate;
    assert_eq!(vnf.status, Some(VnfStatus::PendingScaleOut));
    assert_eq!(vnf.handled_alarms, ["am:fp1:2026-12-01T10:00:00Z"]);

    let before = api.log_length().await;
    let resolved = alertmanager_payload("resolved", &vnf_id, "vdu_hcpu_usage_scaling_out", "fp1");
    let (status, answer) = send_bearer(
        &api,
        "POST",
        "/v1.0/alertmanager",
        Some(&resolved),
        "t-alice",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("resolved: nothing to do"), "{answer}");
    // Refusals are reported per alert, never as a 5xx Alertmanager would retry.
    let foreign = alertmanager_payload("firing", &vnf_id, "vdu_hcpu_usage_scaling_out", "fp2");
    let (status, answer) =
        send_bearer(&api, "POST", "/v1.0/alertmanager", Some(&foreign), "t-bob").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["alerts"][0]["outcome"], "refused", "{answer}");
    let unknown = alertmanager_payload("firing", &vnf_id, "no_such_trigger", "fp3");
    let (_, answer) = send_bearer(
        &api,
        "POST",
        "/v1.0/alertmanager",
        Some(&unknown),
        "t-alice",
    )
    .await;
    assert!(answer.contains("no alarm trigger named"), "{answer}");
    assert_eq!(api.log_length().await, before, "nothing stored");
    // A wrong bearer token is refused like a wrong X-Auth-Token.
    let (status, _) = send_bearer(&api, "POST", "/v1.0/alertmanager", Some(&firing), "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A VNFD whose VDU1 has `user_data` (a marker line) and `config_drive`.
const USER_DATA_VNFD: &str = "\
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: vnfm-guest
        flavor: m1.tiny
        config_drive: true
        user_data_format: RAW
        user_data: |
          #!/bin/sh
          echo ud-marker-5e1f > /tmp/marker
    VDU2:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: vnfm-guest
        flavor: m1.tiny
";

/// A VNF's create records its VDUs' user_data sealed with the VNF's key (from an onboarded
/// VNFD and from an inline one), never in clear on the log, and a show never has it.
#[tokio::test]
async fn a_vnf_create_records_the_vdus_user_data_sealed_and_a_show_never_has_it() {
    let api = Api::start().await;
    let vnfd_id = api.onboard(USER_DATA_VNFD, "with-user-data").await;
    let onboarded = id_of(&api.create_vnf(&vnfd_id, "ud-onboarded").await);
    let body = json!({"vnf": {"name": "ud-inline", "vnfd_template": USER_DATA_VNFD}});
    let (status, created) = api.post("/v1.0/vnfs.json", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let inline = id_of(&created["vnf"]);
    assert!(!created.to_string().contains("ud-marker-5e1f"), "{created}");

    for vnf_id in [onboarded, inline] {
        let history = api
            .log
            .read_subject::<events::vnf::VnfEvent>(&events::names::vnf_subject(&vnf_id))
            .await
            .unwrap();
        let recorded = serde_json::to_string(&history[0].envelope).unwrap();
        assert!(recorded.contains("CreateRequested"), "{recorded}");
        assert!(!recorded.contains("ud-marker-5e1f"), "{recorded}");
        let details = api
            .log
            .load::<Vnf>(&vnf_id)
            .await
            .unwrap()
            .aggregate
            .details
            .expect("details");
        let user_data = details.user_data.expect("user_data");
        assert!(
            user_data.get(events::secrets::SEALED_TAG).is_some(),
            "user_data is sealed whole: {user_data}"
        );
        // The spec keeps the config drive and leaves the user_data out.
        let spec = api.log.load::<Vnf>(&vnf_id).await.unwrap().aggregate.vnfd;
        assert!(spec.expect("spec").vdus[0].config_drive);

        let uri = format!("/v1.0/vnfs/{vnf_id}.json");
        let shown = api
            .show_until(&vnf_id, |vnf| vnf["status"] == "PENDING_CREATE")
            .await;
        assert!(shown.get("user_data").is_none(), "{shown}");
        let (status, raw) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{raw}");
        assert!(raw["vnf"].get("user_data").is_none(), "{raw}");
        assert!(!raw.to_string().contains("ud-marker-5e1f"), "{raw}");
    }

    // A VNF whose VDUs have no user_data records none.
    let plain = api.onboard(SCALE, "no-user-data").await;
    let vnf_id = id_of(&api.create_vnf(&plain, "ud-none").await);
    let details = api
        .log
        .load::<Vnf>(&vnf_id)
        .await
        .unwrap()
        .aggregate
        .details;
    assert!(details.expect("details").user_data.is_none());
}
