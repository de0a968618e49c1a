//! `vnfm-bench`: measures and prints; asserts nothing. Run with `ops/bench`.
//!
//! 1. Appends per second through the event store (expected-sequence check and message id)
//!    against raw JetStream publishes of the same messages, in the same run, same concurrency.
//! 2. Gateway latency (p50/p99) of VNF show and list with 10,000 VNFs in the table, first
//!    without monitoring, then with a monitor pinging all 10,000 VDUs (loopback) every second,
//!    and the ratio of the two p99s.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use time::OffsetDateTime;

use events::envelope::{Actor, ActorKind, Cause, Envelope, SCHEMA_VERSION};
use events::names::{self, AggregateKind};
use events::spec::{MonitorDriver, MonitoringPolicy, PolicyAction, VduSpec, VnfdSpec};
use events::store::{EventLog, LogConfig};
use events::vnf::{Instance, Vnf, VnfCommand, VnfDetails, VnfEvent};
use gateway::{Auth, Gateway, GatewayConfig};
use projector::Tables;
use testkit::{Durability, NatsServer};

/// Messages per append run: enough for a steady rate over several seconds on two cores.
const APPENDS: usize = 50_000;
/// Publishes in flight, as in DESIGN.md's anchor (169k/s raw, 131k/s with the header).
const IN_FLIGHT: usize = 256;
/// VNFs in the table for the gateway measurement.
const VNFS: usize = 10_000;
/// Show requests measured, and list requests (each returns all VNFS).
const SHOWS: usize = 2_000;
const LISTS: usize = 30;
/// Time for a monitor to replay 10,000 VNFs and reach steady one-second rounds.
const MONITOR_WARM_UP: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for (durability, label) in [
        (Durability::ServerDefault, "server default sync"),
        (Durability::SyncAlways, "sync_interval: always"),
    ] {
        let (raw, checked) = appends(durability).await?;
        println!(
            "appends ({label}, {APPENDS} messages, {IN_FLIGHT} in flight): raw JetStream {raw:.0}/s, \
             event store (expected sequence + msg id) {checked:.0}/s, ratio {:.2} (goal >= 0.5)",
            checked / raw
        );
    }
    gateway_latency().await
}

fn sample_event(n: usize) -> Vec<VnfEvent> {
    vec![VnfEvent::CreateRequested {
        details: details(&format!("bench-{n}")),
        vnfd: vnfd(),
        operation_id: format!("op-{n}"),
        add: vec![],
    }]
}

fn details(vnf_id: &str) -> VnfDetails {
    VnfDetails {
        vnf_id: vnf_id.into(),
        name: vnf_id.into(),
        description: String::new(),
        tenant_id: "admin".into(),
        vnfd_id: "vnfd-bench".into(),
        vim_id: "local".into(),
        attributes: serde_json::json!({}),
        placement_attr: serde_json::json!({}),
    }
}

fn vnfd() -> VnfdSpec {
    VnfdSpec {
        template_name: Some("bench".into()),
        description: None,
        vdus: vec![VduSpec {
            name: "VDU1".into(),
            image: None,
            flavor: None,
            mgmt_cp: "CP1".into(),
            // Pinged every second, as in the scale-out issue's measurement; `log` so that no
            // failure would need a VIM.
            monitoring_policy: Some(MonitoringPolicy {
                driver: MonitorDriver::Ping,
                monitoring_delay_ms: 0,
                count: 1,
                interval_ms: 1_000,
                timeout_ms: 1_000,
                retry: 3,
                port: None,
                failure_action: PolicyAction::Log,
            }),
        }],
        scaling_policies: vec![],
    }
}

fn cause() -> Cause {
    Cause::user_request(Actor::new(ActorKind::User, "bench"))
}

/// Both runs on a fresh server each (same durability), the raw one first.
async fn appends(durability: Durability) -> anyhow::Result<(f64, f64)> {
    let raw = {
        let server = NatsServer::start_with(durability).await;
        let log = EventLog::open(server.client().await, &LogConfig::default()).await?;
        let js = log.jetstream().clone();
        let payloads: Vec<(String, bytes::Bytes)> = (0..APPENDS)
            .map(|n| {
                let envelope = Envelope {
                    schema_version: SCHEMA_VERSION,
                    aggregate: AggregateKind::Vnf,
                    aggregate_id: format!("raw-{n}"),
                    cause: cause(),
                    recorded_at: OffsetDateTime::now_utc(),
                    events: sample_event(n),
                };
                let payload = serde_json::to_vec(&envelope).expect("encodable");
                (names::vnf_subject(&format!("raw-{n}")), payload.into())
            })
            .collect();
        let started = Instant::now();
        futures::stream::iter(payloads)
            .map(|(subject, payload)| {
                let js = js.clone();
                async move { js.publish(subject, payload).await?.await.map(|_| ()) }
            })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|r| {
                r.expect("raw publish");
                async {}
            })
            .await;
        APPENDS as f64 / started.elapsed().as_secs_f64()
    };
    let checked = {
        let server = NatsServer::start_with(durability).await;
        let log = EventLog::open(server.client().await, &LogConfig::default()).await?;
        let started = Instant::now();
        futures::stream::iter(0..APPENDS)
            .map(|n| {
                let log = log.clone();
                async move {
                    log.append::<Vnf>(&format!("chk-{n}"), 0, &cause(), sample_event(n))
                        .await
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|r| {
                r.expect("checked append");
                async {}
            })
            .await;
        APPENDS as f64 / started.elapsed().as_secs_f64()
    };
    Ok((raw, checked))
}

async fn gateway_latency() -> anyhow::Result<()> {
    let server = NatsServer::start().await;
    let log = EventLog::open(server.client().await, &LogConfig::default()).await?;
    let tables = Tables::open(log.jetstream(), 1).await?;
    tokio::spawn(projector::run(
        log.clone(),
        tables.clone(),
        futures::future::pending(),
    ));
    // VNFs written through the log without a VIM: a create and its completion each.
    // The gateway accepts only UUIDs as ids.
    let ids: Vec<String> = (0..VNFS)
        .map(|n| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &n.to_be_bytes()).to_string())
        .collect();
    futures::stream::iter(ids.iter().enumerate())
        .map(|(n, id)| {
            let log = log.clone();
            async move {
                let create = VnfCommand::Create {
                    details: details(id),
                    vnfd: vnfd(),
                    operation_id: format!("op-{id}"),
                };
                let created = log.execute::<Vnf>(id, create, &(), &cause()).await?;
                let planned = created.aggregate.pending.expect("pending create").add;
                let instances = planned
                    .into_iter()
                    .map(|p| Instance {
                        instance_id: p.instance_id,
                        vdu: p.vdu,
                        // Loopback addresses: every one answers ICMP on this machine.
                        mgmt_ip: Ipv4Addr::from(0x7F01_0001 + n as u32),
                        booted_at: OffsetDateTime::now_utc(),
                    })
                    .collect();
                let complete = VnfCommand::CompleteCreate {
                    operation_id: format!("op-{id}"),
                    instances,
                };
                log.execute::<Vnf>(id, complete, &(), &cause()).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|r| {
            r.expect("VNF written");
            async {}
        })
        .await;
    let gateway = Gateway::new(
        log.clone(),
        tables.clone(),
        GatewayConfig {
            auth: Auth::None,
            tenant_id: "admin".into(),
            instance: "bench".into(),
            ..GatewayConfig::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}/v1.0", listener.local_addr()?);
    tokio::spawn(gateway::serve(
        listener,
        gateway,
        futures::future::pending(),
    ));
    let http = reqwest::Client::new();
    // Wait until the table (and the gateway's view of it) holds every VNF.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body: serde_json::Value = http.get(format!("{api}/vnfs")).send().await?.json().await?;
        let count = body["vnfs"].as_array().map_or(0, Vec::len);
        if count == VNFS {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {count} of {VNFS} VNFs listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let quiet = measure(&http, &api, &ids).await?;
    quiet.print("without monitoring");
    // The same table with every VNF's VDU probed by ICMP every second (all on loopback).
    let prober = monitor::probe::Prober::new().context("a raw ICMP socket needs root")?;
    let monitor = monitor::Monitor::new(
        log.clone(),
        std::sync::Arc::new(prober),
        monitor::MonitorConfig {
            instance: "bench-monitor".into(),
            ..monitor::MonitorConfig::default()
        },
    );
    tokio::spawn(monitor.run(futures::future::pending()));
    // Let the monitor replay the log and settle into its one-second rounds.
    tokio::time::sleep(MONITOR_WARM_UP).await;
    let started = time::OffsetDateTime::now_utc();
    let busy = measure(&http, &api, &ids).await?;
    let probed = probes_since(&log, started).await?;
    let seconds = (time::OffsetDateTime::now_utc() - started).as_seconds_f64();
    busy.print(&format!(
        "while the monitor probed {probed} targets ({:.0}/s, all up)",
        probed as f64 / seconds
    ));
    println!(
        "gateway p99 under monitoring / without: show {:.2}, list {:.2} (goal <= 1.5)",
        busy.show_p99.as_secs_f64() / quiet.show_p99.as_secs_f64(),
        busy.list_p99.as_secs_f64() / quiet.list_p99.as_secs_f64()
    );
    Ok(())
}

/// Successful probe results the monitor stream holds from after `since`.
async fn probes_since(log: &EventLog, since: time::OffsetDateTime) -> anyhow::Result<usize> {
    use events::monitor::{MonitorEvent, MonitorMessage};
    let stream = log.jetstream().get_stream(names::MONITOR_STREAM).await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: names::ROUND_SUBJECTS.into(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut probed = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(2), messages.next()).await
    {
        let message = message?;
        if let Ok(MonitorMessage {
            event: MonitorEvent::Round { results, .. },
            ..
        }) = serde_json::from_slice(&message.payload)
        {
            probed += results
                .iter()
                .filter(|r| r.at > since && r.outcome.is_up())
                .count();
        }
        if message.info().map_or(true, |info| info.pending == 0) {
            break;
        }
    }
    Ok(probed)
}

/// Gateway latencies of one measurement.
struct Latency {
    show_p50: Duration,
    show_p99: Duration,
    list_p50: Duration,
    list_p99: Duration,
}

impl Latency {
    fn print(&self, label: &str) {
        println!(
            "gateway with {VNFS} VNFs, {label}: show p50 {:.2} ms p99 {:.2} ms ({SHOWS} requests); list p50 {:.1} ms p99 {:.1} ms ({LISTS} requests)",
            ms(self.show_p50),
            ms(self.show_p99),
            ms(self.list_p50),
            ms(self.list_p99)
        );
    }
}

async fn measure(http: &reqwest::Client, api: &str, ids: &[String]) -> anyhow::Result<Latency> {
    let mut shows = Vec::with_capacity(SHOWS);
    for n in 0..SHOWS {
        let id = &ids[(n * 7919) % VNFS];
        let started = Instant::now();
        let response = http.get(format!("{api}/vnfs/{id}")).send().await?;
        anyhow::ensure!(response.status() == 200, "show {id}: {}", response.status());
        response.bytes().await.context("show body")?;
        shows.push(started.elapsed());
    }
    let mut lists = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        let started = Instant::now();
        let body = http
            .get(format!("{api}/vnfs"))
            .send()
            .await?
            .bytes()
            .await?;
        lists.push(started.elapsed());
        anyhow::ensure!(
            body.len() > VNFS * 100,
            "list too small: {} bytes",
            body.len()
        );
    }
    let (show_p50, show_p99) = percentiles(&mut shows);
    let (list_p50, list_p99) = percentiles(&mut lists);
    Ok(Latency {
        show_p50,
        show_p99,
        list_p50,
        list_p99,
    })
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
