//! The process's one metrics recorder and the `/metrics` endpoint of `--metrics-listen`.
//!
//! The libraries only call the `metrics` macros under `events::telemetry`'s names; the recorder
//! is installed here, once per process and only when `--metrics-listen` is given, so that roles
//! run in one test process never fight over it. `vnfm up` serves every role's metrics on one
//! endpoint, since its roles share the recorder.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use events::telemetry;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often the recorder's histograms are tidied (drained into their buckets): the exporter
/// leaves it to its caller, and a scrape renders the buckets as of the last upkeep or its own.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The text format's content type, as Prometheus asks for it.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's configuration: every histogram of `events::telemetry` with its buckets.
fn builder() -> PrometheusBuilder {
    telemetry::HISTOGRAMS
        .iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                .expect("every histogram has buckets")
        })
}

/// The process's recorder, installed on the first call.
fn handle() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = builder()
        .install_recorder()
        .context("installing the metrics recorder")?;
    telemetry::describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// `GET /metrics` and nothing else.
fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                record_heap();
                ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render()).into_response()
            }
        }),
    )
}

/// Sets the heap gauges to the allocator's figures of now (none where it cannot tell).
fn record_heap() {
    if let Some(heap) = gateway::glibc_heap::usage() {
        metrics::gauge!(telemetry::HEAP_IN_USE).set(heap.in_use as f64);
        metrics::gauge!(telemetry::HEAP_FREE).set(heap.free as f64);
    }
}

/// Installs the recorder and binds `listen`; answers the bound address and the server, which
/// runs until `shutdown`.
pub async fn bind(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = std::io::Result<()>> + Send)> {
    let handle = handle()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--metrics-listen: cannot listen on {listen}"))?;
    let bound = listener.local_addr().unwrap_or(listen);
    let upkeep = handle.clone();
    let serve = async move {
        let upkeep = async move {
            let mut every = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        };
        tokio::select! {
            served = gateway::serve_side_endpoint(listener, router(handle), shutdown) => served,
            () = upkeep => Ok(()),
        }
    };
    Ok((bound, serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a scrape shows for a few of vnfm's metrics, recorded with a recorder of this
    /// configuration (local to the test, so that no global one is installed).
    fn rendered(record: impl FnOnce()) -> String {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            telemetry::describe();
            record();
        });
        handle.render()
    }

    #[test]
    fn counters_and_histograms_render_as_prometheus_text_under_their_names() {
        let text = rendered(|| {
            metrics::counter!(telemetry::PROBE_ATTEMPTS, "driver" => "ping", "outcome" => "up")
                .increment(3);
            metrics::counter!(telemetry::HEALS_CLAIMED).increment(1);
            metrics::gauge!(telemetry::CONSUMER_PENDING, "consumer" => "conductor").set(7.0);
            metrics::histogram!(telemetry::APPEND_LATENCY, "outcome" => "stored").record(0.002);
            metrics::histogram!(telemetry::HEAL_LATENCY).record(0.3);
        });
        for line in [
            "# TYPE vnfm_probe_attempts_total counter",
            "vnfm_probe_attempts_total{driver=\"ping\",outcome=\"up\"} 3",
            "# TYPE vnfm_heals_claimed_total counter",
            "vnfm_heals_claimed_total 1",
            "# TYPE vnfm_consumer_pending_messages gauge",
            "vnfm_consumer_pending_messages{consumer=\"conductor\"} 7",
            "# TYPE vnfm_append_seconds histogram",
            "vnfm_append_seconds_bucket{outcome=\"stored\",le=\"0.001\"} 0",
            "vnfm_append_seconds_bucket{outcome=\"stored\",le=\"0.0025\"} 1",
            "vnfm_append_seconds_bucket{outcome=\"stored\",le=\"+Inf\"} 1",
            "vnfm_append_seconds_count{outcome=\"stored\"} 1",
            "# TYPE vnfm_heal_seconds histogram",
            "vnfm_heal_seconds_bucket{le=\"0.25\"} 0",
            "vnfm_heal_seconds_bucket{le=\"0.5\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("# HELP vnfm_heal_seconds ")),
            "no help for vnfm_heal_seconds in:\n{text}"
        );
    }

    #[test]
    fn a_scrape_shows_the_heap_in_use_and_free() {
        let text = rendered(record_heap);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no sample of {name} in:\n{text}"))
        };
        assert!(
            text.lines()
                .any(|l| l == "# TYPE vnfm_heap_in_use_bytes gauge")
        );
        // This test process has allocated at least the page it renders.
        assert!(value(telemetry::HEAP_IN_USE) > 1000.0, "{text}");
        assert!(value(telemetry::HEAP_FREE) >= 0.0, "{text}");
    }

    /// Every name `ops/grafana/vnfm.json` queries is one vnfm exports (a histogram's
    /// `_bucket`, `_sum` and `_count` series included), so a renamed metric breaks this test
    /// and not only the dashboard.
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        let dashboard = include_str!("../../../ops/grafana/vnfm.json");
        let exported = [
            telemetry::PROBE_ATTEMPTS,
            telemetry::PROBE_LATENESS,
            telemetry::MONITOR_TARGETS,
            telemetry::MONITOR_PARTITIONS,
            telemetry::MONITOR_LIFECYCLE_PENDING,
            telemetry::MONITOR_LEASE_RENEWAL,
            telemetry::MONITOR_LEASES_LOST,
            telemetry::FAILURES_REPORTED,
            telemetry::HEALS_CLAIMED,
            telemetry::HEALS_COMPLETED,
            telemetry::HEALS_FAILED,
            telemetry::HEAL_LATENCY,
            telemetry::CONSUMER_PENDING,
            telemetry::CONSUMER_ACK_PENDING,
            telemetry::APPEND_LATENCY,
            telemetry::HTTP_REQUEST_LATENCY,
            telemetry::HEAP_IN_USE,
            telemetry::HEAP_FREE,
        ];
        let histograms: Vec<&str> = telemetry::HISTOGRAMS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        let mut queried = 0;
        for (start, _) in dashboard.match_indices("vnfm_") {
            let name: String = dashboard[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| histograms.contains(base))
                })
                .unwrap_or(&name);
            assert!(exported.contains(&family), "the dashboard queries {name}");
            queried += 1;
        }
        assert!(queried >= exported.len(), "{queried} queries");
    }

    #[test]
    fn every_histogram_has_rising_buckets() {
        for (name, buckets) in telemetry::HISTOGRAMS {
            assert!(
                buckets.windows(2).all(|pair| pair[0] < pair[1]),
                "{name}: {buckets:?}"
            );
        }
    }
}
