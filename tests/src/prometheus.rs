//! Real Prometheus and Alertmanager for the end-to-end test of alarm-driven scaling: Debian's
//! packages (installed by `ops/install-prometheus.sh`), each run on a free loopback port over
//! a temporary directory, configured as the README's "Alarm-driven scaling with Prometheus"
//! tells an operator to (service discovery and rules from vnfm, alerts to vnfm's webhook, the
//! token as `Authorization: Bearer` from a file), with intervals of a second so that a test
//! takes seconds, and killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::PATIENCE;

/// Debian's binaries.
const PROMETHEUS: &str = "prometheus";
const ALERTMANAGER: &str = "prometheus-alertmanager";
/// Scrape, discovery refresh and rule evaluation: every second, so that an alert's `for:`
/// of a few seconds is what the test waits for, not the intervals.
const INTERVAL: &str = "1s";
/// How often Alertmanager re-sends a firing alert: the receiver must answer each repeat of
/// an occurrence once only, and a repeat is how a refused occurrence (inside a cooldown) is
/// tried again.
const REPEAT_INTERVAL: &str = "2s";

/// A running Alertmanager and Prometheus, pointed at one vnfm gateway; stopped on drop.
pub struct Monitoring {
    dir: TempDir,
    alertmanager: Child,
    prometheus: Child,
    /// `http://127.0.0.1:<port>` of Prometheus.
    pub prometheus_url: String,
    /// `http://127.0.0.1:<port>` of Alertmanager.
    pub alertmanager_url: String,
    http: reqwest::Client,
}

impl Monitoring {
    /// Starts Alertmanager (its webhook at `api`'s `/alertmanager`) and Prometheus (targets
    /// from `api`'s `/prometheus/targets`, the rule file `rules`), both sending `token` as a
    /// bearer token, and answers once both are ready.
    ///
    /// # Panics
    ///
    /// When either is not installed (run `ops/install-prometheus.sh`) or does not start.
    pub async fn start(api: &str, token: &str, rules: &str) -> Monitoring {
        let dir = tempfile::Builder::new()
            .prefix("prometheus-")
            .tempdir()
            .expect("a temporary directory");
        let token_file = dir.path().join("vnfm.token");
        write_private(&token_file, token);
        let rules_file = dir.path().join("vnfm-rules.yml");
        std::fs::write(&rules_file, rules).expect("write the rule file");

        let alertmanager_port = testkit::free_port();
        let alertmanager_url = format!("http://127.0.0.1:{alertmanager_port}");
        let alertmanager_config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &alertmanager_config,
            alertmanager_config_text(api, &token_file),
        )
        .expect("write alertmanager.yml");
        let alertmanager = spawn(
            ALERTMANAGER,
            &[
                &format!("--config.file={}", alertmanager_config.display()),
                &format!("--storage.path={}", dir.path().join("am-data").display()),
                &format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
                // One Alertmanager: no gossip port to bind.
                "--cluster.listen-address=",
            ],
            &dir.path().join("alertmanager.log"),
        );

        let prometheus_port = testkit::free_port();
        let prometheus_url = format!("http://127.0.0.1:{prometheus_port}");
        let prometheus_config = dir.path().join("prometheus.yml");
        std::fs::write(
            &prometheus_config,
            prometheus_config_text(api, &token_file, &rules_file, alertmanager_port),
        )
        .expect("write prometheus.yml");
        let prometheus = spawn(
            PROMETHEUS,
            &[
                &format!("--config.file={}", prometheus_config.display()),
                &format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                &format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
                "--web.enable-lifecycle",
            ],
            &dir.path().join("prometheus.log"),
        );
        let monitoring = Monitoring {
            dir,
            alertmanager,
            prometheus,
            prometheus_url,
            alertmanager_url,
            http: reqwest::Client::new(),
        };
        monitoring
            .wait_ready(&monitoring.alertmanager_url, "alertmanager.log")
            .await;
        monitoring
            .wait_ready(&monitoring.prometheus_url, "prometheus.log")
            .await;
        monitoring
    }

    async fn wait_ready(&self, url: &str, log: &str) {
        let ready = format!("{url}/-/ready");
        let what = format!("{ready} answers 200");
        let log = self.dir.path().join(log);
        testkit::eventually(what, PATIENCE, || async {
            match self.http.get(&ready).send().await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(format!("{}; log: {}", answer.status(), tail(&log))),
                Err(e) => Err(format!("{e}; log: {}", tail(&log))),
            }
        })
        .await;
    }

    /// Prometheus' active targets (`/api/v1/targets`), each with its labels and health.
    pub async fn active_targets(&self) -> Vec<Value> {
        let answer: Value = self
            .http
            .get(format!(
                "{}/api/v1/targets?state=active",
                self.prometheus_url
            ))
            .send()
            .await
            .expect("ask Prometheus for its targets")
            .json()
            .await
            .expect("Prometheus answers JSON");
        answer["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alerts Prometheus holds now (pending or firing), each with its labels and state.
    pub async fn alerts(&self) -> Vec<Value> {
        let answer: Value = self
            .http
            .get(format!("{}/api/v1/alerts", self.prometheus_url))
            .send()
            .await
            .expect("ask Prometheus for its alerts")
            .json()
            .await
            .expect("Prometheus answers JSON");
        answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many notifications Alertmanager has sent to its webhook so far (its own counter,
    /// `alertmanager_notifications_total{integration="webhook"}`).
    pub async fn webhook_notifications(&self) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.alertmanager_url))
            .send()
            .await
            .expect("ask Alertmanager for its metrics")
            .text()
            .await
            .expect("Alertmanager answers text");
        text.lines()
            .find(|line| {
                line.starts_with("alertmanager_notifications_total{")
                    && line.contains("integration=\"webhook\"")
            })
            .and_then(|line| line.rsplit(' ').next())
            // A counter of whole notifications, printed as an integer.
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// The ends of both logs, for a failing test's message.
    pub fn logs(&self) -> String {
        format!(
            "prometheus: {}\nalertmanager: {}",
            tail(&self.dir.path().join("prometheus.log")),
            tail(&self.dir.path().join("alertmanager.log"))
        )
    }
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        for child in [&mut self.prometheus, &mut self.alertmanager] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Prometheus' configuration: the README's, with one-second intervals.
fn prometheus_config_text(
    api: &str,
    token_file: &Path,
    rules_file: &Path,
    alertmanager_port: u16,
) -> String {
    format!(
        "global:
  scrape_interval: {INTERVAL}
  evaluation_interval: {INTERVAL}
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{alertmanager_port}']
scrape_configs:
  - job_name: vnfm-vdus
    http_sd_configs:
      - url: {api}/prometheus/targets
        refresh_interval: {INTERVAL}
        authorization:
          type: Bearer
          credentials_file: {token}
",
        rules = rules_file.display(),
        token = token_file.display(),
    )
}

/// Alertmanager's configuration: the README's, with one-second grouping.
fn alertmanager_config_text(api: &str, token_file: &Path) -> String {
    format!(
        "route:
  receiver: vnfm
  group_by: [vnf_id, trigger]
  group_wait: 0s
  group_interval: {INTERVAL}
  repeat_interval: {REPEAT_INTERVAL}
receivers:
  - name: vnfm
    webhook_configs:
      - url: {api}/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token}
",
        token = token_file.display(),
    )
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("create the log file");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a second handle on the log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (run ops/install-prometheus.sh): {e}"))
}

/// Writes `text` readable by its owner only: it is a token.
fn write_private(path: &PathBuf, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create the token file");
    file.write_all(text.as_bytes())
        .expect("write the token file");
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
