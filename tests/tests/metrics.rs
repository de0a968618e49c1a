//! Prometheus metrics end to end: every role a `vnfm` process of its own with
//! `--metrics-listen`, each `/metrics` parsed as strict Prometheus text, and the counters that
//! tell a heal (failures reported, heals claimed and completed) moving as one happens.

use std::collections::BTreeMap;
use std::time::Duration;

use events::vnf::VnfStatus;
use testkit::RoleProcess;
use vnfm_tests::{System, monitored_vnfd};

/// The flag every role is started with: any free port, read back from the role's log.
const METRICS_FLAGS: [&str; 2] = ["--metrics-listen", "127.0.0.1:0"];

/// How long a role may take to say where it serves its metrics.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a gauge refreshed from consumer info may take to appear: its interval (5 s) and
/// the consumer's creation.
const GAUGE_PATIENCE: Duration = Duration::from_secs(30);

/// One scrape: every sample, keyed `name{labels}` as the exporter wrote it, with its value;
/// and each family's declared type.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Scrape {
    /// The sample `key` (`name` or `name{labels}`), when present.
    fn get(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }

    /// The counter `key`, 0 when absent (a counter not yet incremented is not exported).
    ///
    /// # Panics
    ///
    /// When its value is not a whole number.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked whole and not negative first"
    )]
    fn counter(&self, key: &str) -> u64 {
        let value = self.get(key).unwrap_or(0.0);
        assert!(
            value >= 0.0 && value.fract() == 0.0,
            "{key} = {value} is no count"
        );
        value as u64
    }

    /// The sum of every sample of `name` whatever its labels.
    fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(key, _)| key.split('{').next() == Some(name))
            .map(|(_, value)| value)
            .sum()
    }
}

/// Parses the Prometheus text format strictly: `# HELP` and `# TYPE` lines, and samples
/// `name{label="value",...} value` whose family was typed before; anything else is an error.
fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape {
        text: text.to_owned(),
        ..Scrape::default()
    };
    for (number, line) in text.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| fail("HELP without text"))?;
            check_name(name).map_err(|e| fail(&e))?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without type"))?;
            check_name(name).map_err(|e| fail(&e))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(fail("unknown type"));
            }
            if scrape
                .types
                .insert(name.to_owned(), kind.to_owned())
                .is_some()
            {
                return Err(fail("family typed twice"));
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(fail("a comment that is neither HELP nor TYPE"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| fail("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => number
                .parse::<f64>()
                .map_err(|_| fail("value not a number"))?,
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .ok_or_else(|| fail("labels not closed"))?;
                check_labels(labels).map_err(|e| fail(&e))?;
                name
            }
            None => series,
        };
        check_name(name).map_err(|e| fail(&e))?;
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| scrape.types.get(*base).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        if !scrape.types.contains_key(family) {
            return Err(fail("sample of a family with no TYPE before it"));
        }
        if scrape.samples.insert(series.to_owned(), value).is_some() {
            return Err(fail("series given twice"));
        }
    }
    Ok(scrape)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// `k="v",k2="v2"`, values with `\\`, `\"` and `\n` escapes only.
fn check_labels(mut labels: &str) -> Result<(), String> {
    while !labels.is_empty() {
        let (name, rest) = labels
            .split_once("=\"")
            .ok_or_else(|| format!("bad label in {labels:?}"))?;
        let mut chars = name.chars();
        if !(chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!("bad label name {name:?}"));
        }
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match (escaped, c) {
                (true, '\\' | '"' | 'n') => escaped = false,
                (true, _) => return Err(format!("bad escape in {rest:?}")),
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => return Err("newline in a label value".to_owned()),
                (false, _) => {}
            }
        }
        let end = end.ok_or_else(|| format!("label value not closed in {rest:?}"))?;
        labels = &rest[end + 1..];
        if let Some(more) = labels.strip_prefix(',') {
            labels = more;
        } else if !labels.is_empty() {
            return Err(format!("junk after a label: {labels:?}"));
        }
    }
    Ok(())
}

/// One scrape of `url`, which must answer 200 in the text format and parse.
async fn scrape(http: &reqwest::Client, url: &str) -> Scrape {
    let response = http.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{url}: {content_type}"
    );
    let text = response.text().await.expect("scrape body");
    parse(&text).unwrap_or_else(|e| panic!("{url} is not Prometheus text: {e}\n{text}"))
}

/// Scrapes `url` until `ready` holds, answering that scrape.
async fn scrape_until(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    ready: impl Fn(&Scrape) -> bool,
) -> Scrape {
    testkit::eventually(what, GAUGE_PATIENCE, || async {
        let scraped = scrape(http, url).await;
        if ready(&scraped) {
            Ok(scraped)
        } else {
            Err(scraped.text)
        }
    })
    .await
}

#[test]
fn the_parser_refuses_what_is_not_prometheus_text() {
    assert!(parse("# TYPE a counter\na 1\n").is_ok());
    assert!(parse("# TYPE a counter\na{x=\"1\",y=\"a\\\"b\"} 2\n").is_ok());
    for bad in [
        "a 1\n",                                           // no TYPE
        "# TYPE a counter\na one\n",                       // not a number
        "# TYPE a counter\na{x=1} 1\n",                    // unquoted label value
        "# TYPE a counter\na{x=\"1\" 1\n",                 // labels not closed
        "# TYPE a counter\n1a 1\n",                        // bad name
        "# TYPE a bogus\na 1\n",                           // unknown type
        "# TYPE a counter\na 1\na 2\n",                    // series twice
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nx 1\n", // x untyped
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_roles_metrics_parse_and_a_heal_moves_its_counters() {
    let mut system = System::start_separate_with(&METRICS_FLAGS).await;
    let mut conductor = system
        .spawn_conductor("conductor-metrics", &METRICS_FLAGS)
        .await;
    let mut monitor = system
        .spawn_monitor_with("monitor-metrics", &METRICS_FLAGS)
        .await;
    let http = reqwest::Client::new();
    let gateway_url = system
        .process("gateway")
        .wait_for_metrics_url(LISTEN_TIMEOUT)
        .await;
    let projector_url = system
        .process("projector")
        .wait_for_metrics_url(LISTEN_TIMEOUT)
        .await;
    let conductor_url = conductor.wait_for_metrics_url(LISTEN_TIMEOUT).await;
    let monitor_url = monitor.wait_for_metrics_url(LISTEN_TIMEOUT).await;

    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "respawn", false))
        .await;
    let vnf = system.vnf(&vnf_id).await;
    let old = vnf.instances[0].clone();
    system.wait_probed(old.mgmt_ip, old.booted_at, true).await;

    // Before the failure: probes counted up, nothing reported or healed.
    let monitor_before = scrape_until(&http, &monitor_url, "probes counted", |s| {
        s.counter("vnfm_probe_attempts_total{driver=\"ping\",outcome=\"up\"}") >= 1
            && s.get("vnfm_monitor_targets") == Some(1.0)
            // It has read the log to its end.
            && s.get("vnfm_monitor_lifecycle_pending_messages") == Some(0.0)
    })
    .await;
    assert_eq!(monitor_before.get("vnfm_monitor_partitions"), Some(64.0));
    assert!(monitor_before.sum("vnfm_probe_lateness_seconds_count") >= 1.0);
    // It renewed its leases (it holds partitions) and, alone, lost none.
    assert!(monitor_before.sum("vnfm_monitor_lease_renewal_seconds_count") >= 1.0);
    assert_eq!(monitor_before.counter("vnfm_monitor_leases_lost_total"), 0);
    let conductor_before = scrape(&http, &conductor_url).await;
    let reported_before = monitor_before.counter("vnfm_failures_reported_total");
    let claimed_before = conductor_before.counter("vnfm_heals_claimed_total");
    let completed_before = conductor_before.counter("vnfm_heals_completed_total");
    assert_eq!(
        (reported_before, claimed_before, completed_before),
        (0, 0, 0),
        "no failure yet"
    );

    system.kill_vdu(&old.instance_id).await;
    system
        .wait_log(&vnf_id, "respawned", |v| {
            v.status == Some(VnfStatus::Active) && v.instances[0].instance_id != old.instance_id
        })
        .await;

    let monitor_after = scrape(&http, &monitor_url).await;
    assert_eq!(
        monitor_after.counter("vnfm_failures_reported_total"),
        reported_before + 1,
        "one failure reported:\n{}",
        monitor_after.text
    );
    assert!(
        monitor_after.counter("vnfm_probe_attempts_total{driver=\"ping\",outcome=\"down\"}") >= 1,
        "{}",
        monitor_after.text
    );
    let conductor_after = scrape(&http, &conductor_url).await;
    assert_eq!(
        conductor_after.counter("vnfm_heals_claimed_total"),
        claimed_before + 1,
        "{}",
        conductor_after.text
    );
    assert_eq!(
        conductor_after.counter("vnfm_heals_completed_total"),
        completed_before + 1,
        "{}",
        conductor_after.text
    );
    assert_eq!(conductor_after.get("vnfm_heal_seconds_count"), Some(1.0));
    let heal_seconds = conductor_after.get("vnfm_heal_seconds_sum").unwrap();
    assert!(
        heal_seconds > 0.0 && heal_seconds < 60.0,
        "heal latency {heal_seconds} s"
    );
    assert!(conductor_after.counter("vnfm_append_seconds_count{outcome=\"stored\"}") >= 2);
    assert_eq!(
        conductor_after
            .types
            .get("vnfm_heal_seconds")
            .map(String::as_str),
        Some("histogram")
    );

    // Every durable consumer's lag, from its owner.
    let conductor_lag = scrape_until(
        &http,
        &conductor_url,
        "the conductor's consumer gauges",
        |s| {
            ["conductor", "conductor-heal"].iter().all(|consumer| {
                s.get(&format!(
                    "vnfm_consumer_pending_messages{{consumer=\"{consumer}\"}}"
                ))
                .is_some()
                    && s.get(&format!(
                        "vnfm_consumer_ack_pending_messages{{consumer=\"{consumer}\"}}"
                    ))
                    .is_some()
            })
        },
    )
    .await;
    assert_eq!(
        conductor_lag
            .types
            .get("vnfm_consumer_pending_messages")
            .map(String::as_str),
        Some("gauge")
    );
    scrape_until(
        &http,
        &projector_url,
        "the projector's consumer gauge",
        |s| {
            s.get("vnfm_consumer_pending_messages{consumer=\"projector\"}")
                .is_some()
        },
    )
    .await;

    // The gateway: its appends, and its requests by route template, never by path.
    let (code, _) = system.get(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 200);
    let gateway = scrape(&http, &gateway_url).await;
    assert!(gateway.counter("vnfm_append_seconds_count{outcome=\"stored\"}") >= 1);
    assert!(
        gateway.counter(
            "vnfm_http_request_seconds_count{route=\"/v1.0/vnfs\",method=\"POST\",status=\"2xx\"}"
        ) >= 1,
        "{}",
        gateway.text
    );
    assert!(
        gateway.counter(
            "vnfm_http_request_seconds_count{route=\"/v1.0/vnfs/{id}\",method=\"GET\",status=\"2xx\"}"
        ) >= 1,
        "{}",
        gateway.text
    );
    for (url, scraped) in [
        (&gateway_url, &gateway),
        (&conductor_url, &conductor_after),
        (&monitor_url, &monitor_after),
    ] {
        assert!(
            !scraped.text.contains(&vnf_id) && !scraped.text.contains(&old.instance_id),
            "{url} names a VNF or an instance:\n{}",
            scraped.text
        );
    }
}

/// `vnfm up` serves every role's metrics on its one `--metrics-listen` port: the projector's
/// and both conductor consumers' gauges, the monitor's partitions and the gateway's requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_every_roles_metrics_on_one_port() {
    let data_dir = tempfile::Builder::new()
        .prefix("vnfm-up-metrics-")
        .tempdir()
        .expect("a temporary data dir");
    let prefix = vnfm_tests::unique_vim_prefix('m');
    let nats_server_bin = testkit::nats_server_bin();
    let mut up = RoleProcess::spawn(
        "up --metrics-listen",
        &[
            "up",
            "--data-dir",
            data_dir.path().to_str().expect("a UTF-8 temporary path"),
            "--listen",
            "127.0.0.1:0",
            "--vim-prefix",
            &prefix,
            "--nats-server-bin",
            nats_server_bin.to_str().expect("a UTF-8 binary path"),
            METRICS_FLAGS[0],
            METRICS_FLAGS[1],
        ],
    );
    let listen = up.wait_for_listen_address(LISTEN_TIMEOUT).await;
    let url = up.wait_for_metrics_url(LISTEN_TIMEOUT).await;
    let http = reqwest::Client::new();
    let status = http
        .get(format!("http://{listen}/v1.0/vnfds"))
        .send()
        .await
        .expect("list VNFDs")
        .status();
    assert_eq!(status, 200);
    let scraped = scrape_until(&http, &url, "every role's series", |s| {
        ["projector", "conductor", "conductor-heal"]
            .iter()
            .all(|consumer| {
                s.get(&format!(
                    "vnfm_consumer_pending_messages{{consumer=\"{consumer}\"}}"
                ))
                .is_some()
            })
            && s.get("vnfm_monitor_partitions") == Some(64.0)
            && s.get("vnfm_monitor_targets") == Some(0.0)
    })
    .await;
    assert_eq!(
        scraped.counter(
            "vnfm_http_request_seconds_count{route=\"/v1.0/vnfds\",method=\"GET\",status=\"2xx\"}"
        ),
        1,
        "{}",
        scraped.text
    );
}
