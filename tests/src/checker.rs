//! A command checker for fault tests: drives load through the gateway's HTTP API while a test
//! breaks NATS, then holds every issued command against the lifecycle log and the effects.
//!
//! Every command carries a unique name, so that it can be found in the log whatever id the
//! gateway gave it and whether or not the client heard the answer. A command is issued once and
//! never retried under a new identity (a client retry would be a second command). Afterwards
//! each one is classified:
//!
//! - applied once: exactly one aggregate in the log carries its name;
//! - lost: acknowledged (2xx) but absent from the log;
//! - duplicated: more than one aggregate (or more than one creation event) carries its name;
//! - not applied: unacknowledged and absent, which a fault may legitimately cause.
//!
//! The effects are checked too: every VNF in the log ends ACTIVE with exactly its planned
//! instances, which exist once as namespaces of the test's VIM prefix and nothing else does;
//! its VNFD lists it as a user; the gateway's lists show every VNFD and VNF of the log exactly
//! once; and `vnfm rebuild --verify` finds the tables equal to the log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use events::access::Identity;
use events::credentials::{self, Seed};
use events::names::{self, AggregateKind};
use events::read::{Stored, StreamRead};
use events::store::EventLog;
use events::vnf::{Vnf, VnfEvent, VnfStatus};
use events::vnfd::{Vnfd, VnfdEvent};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long one request may take before it counts as unacknowledged. Longer than the store's
/// retries of one append through a leader election (a few seconds each), so that the answer
/// of a command that does commit is normally heard.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause of a worker after an unacknowledged command, so that a gateway refusing everything
/// quickly while NATS is down does not produce thousands of commands.
const FAILURE_PAUSE: Duration = Duration::from_millis(200);

/// Pause of a worker between two jobs, so that a load of about ten seconds stays a few
/// hundred commands (enough around a fault, cheap to check) and its VNF creates spread over
/// the whole load rather than all coming before the fault.
const JOB_PAUSE: Duration = Duration::from_millis(100);

/// Every this many jobs, one also creates a VNF from the VNFD it onboards; the others only
/// onboard (cheap: one append).
const VNF_JOB_EVERY: u64 = 8;

/// The most VNF creates one load issues: each builds a real network namespace.
const VNF_CREATES_MAX: u64 = 60;

/// How long [`check`] waits for every VNF of the log to finish its create (a conductor whose
/// ack was lost in the fault gets the request again after its ack wait).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(45);

/// How long [`check`] waits for the gateway's lists to show the whole log (its mirror of the
/// tables follows the projector).
const LIST_TIMEOUT: Duration = Duration::from_secs(15);

/// Bound on `vnfm rebuild --verify` (which itself waits up to 30 s for the projector).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between two looks at the log or the lists while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The VNFD every command onboards: one VDU and no monitoring policy, so no monitor is needed
/// and each VNF is one namespace.
const VNFD_SAMPLE: &str = "functional-test-samples/sample-tosca-vnfd-no-monitor.yaml";

/// The system under test, as the checker reaches it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Every gateway's API root, `http://127.0.0.1:<port>/v1.0`: commands go to each in turn,
    /// and every one's lists are checked.
    pub apis: Vec<String>,
    /// Comma-separated NATS URLs, as the roles were given them.
    pub nats_urls: String,
    /// The directory of the identities' seed files (`<identity>.nk`): the checker reads as
    /// the reader.
    pub credentials: std::path::PathBuf,
    /// The conductor's VIM prefix: every namespace with it belongs to this test.
    pub vim_prefix: String,
}

impl Target {
    /// The seed file of `identity`.
    pub fn seed(&self, identity: Identity) -> std::path::PathBuf {
        credentials::seed_path(&self.credentials, identity)
    }
}

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CommandKind {
    /// `POST /v1.0/vnfds`.
    OnboardVnfd,
    /// `POST /v1.0/vnfs`.
    CreateVnf,
}

/// One issued command and what the client heard.
#[derive(Debug, Clone)]
pub struct Issued {
    pub kind: CommandKind,
    /// Unique among all commands of the load.
    pub name: String,
    /// When the request was sent.
    pub sent_at: Instant,
    /// The id in a 2xx answer; `None` when the command was not acknowledged.
    pub acknowledged_id: Option<String>,
    /// The status or error when not acknowledged.
    pub failure: Option<String>,
}

/// Load running in the background: `workers` commands in flight at a time.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
    issued: Arc<Mutex<Vec<Issued>>>,
}

/// What the workers share.
struct Driver {
    apis: Vec<String>,
    http: reqwest::Client,
    template: String,
    /// Prefix of every command name (the VIM prefix: unique to the test).
    names: String,
    next_job: AtomicU64,
    vnf_creates: AtomicU64,
    issued: Arc<Mutex<Vec<Issued>>>,
}

impl Load {
    /// Starts `workers` workers, each issuing one command after another until
    /// [`stop`](Self::stop).
    pub fn start(target: &Target, workers: usize) -> Load {
        let issued = Arc::new(Mutex::new(Vec::new()));
        let driver = Arc::new(Driver {
            apis: target.apis.clone(),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            template: crate::sample(VNFD_SAMPLE),
            names: target.vim_prefix.clone(),
            next_job: AtomicU64::new(0),
            vnf_creates: AtomicU64::new(0),
            issued: issued.clone(),
        });
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let driver = driver.clone();
            let stop = stop.subscribe();
            tasks.spawn(async move { driver.work(stop).await });
        }
        Load {
            stop,
            workers: tasks,
            issued,
        }
    }

    /// Commands issued so far.
    pub fn issued(&self) -> usize {
        self.issued.lock().expect("the issued list").len()
    }

    /// Commands sent at or after `since` and acknowledged.
    pub fn acknowledged_since(&self, since: Instant) -> usize {
        self.issued
            .lock()
            .expect("the issued list")
            .iter()
            .filter(|c| c.sent_at >= since && c.acknowledged_id.is_some())
            .count()
    }

    /// Waits until at least `count` commands sent at or after `since` are acknowledged: the
    /// system makes progress again.
    ///
    /// # Panics
    ///
    /// After `timeout`.
    pub async fn wait_acknowledged_since(&self, since: Instant, count: usize, timeout: Duration) {
        let what = format!("{count} commands are acknowledged");
        testkit::eventually(what, timeout, || async {
            let acknowledged = self.acknowledged_since(since);
            if acknowledged >= count {
                Ok(())
            } else {
                let issued = self.issued();
                Err(format!(
                    "{acknowledged} acknowledged of {issued} issued in all"
                ))
            }
        })
        .await;
    }

    /// Stops issuing, waits for the commands in flight, and answers every issued command.
    pub async fn stop(mut self) -> Vec<Issued> {
        self.stop.send_replace(true);
        while let Some(joined) = self.workers.join_next().await {
            joined.expect("a load worker panicked");
        }
        self.issued.lock().expect("the issued list").clone()
    }
}

impl Driver {
    async fn work(&self, stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let job = self.next_job.fetch_add(1, Ordering::Relaxed);
            let with_vnf = job.is_multiple_of(VNF_JOB_EVERY)
                && self.vnf_creates.fetch_add(1, Ordering::Relaxed) < VNF_CREATES_MAX;
            let body = json!({"vnfd": {
                "name": format!("{}-d{job}", self.names),
                "attributes": {"vnfd": self.template},
            }});
            let api = &self.apis
                [usize::try_from(job).expect("a job number fits usize") % self.apis.len()];
            let vnfd_id = self
                .issue(api, CommandKind::OnboardVnfd, "/vnfds", body)
                .await;
            if let (true, Some(vnfd_id)) = (with_vnf, vnfd_id) {
                let body = json!({"vnf": {
                    "name": format!("{}-v{job}", self.names),
                    "vnfd_id": vnfd_id,
                }});
                self.issue(api, CommandKind::CreateVnf, "/vnfs", body).await;
            }
            tokio::time::sleep(JOB_PAUSE).await;
        }
    }

    /// Sends one command once, records what came back, and answers the id when acknowledged.
    async fn issue(&self, api: &str, kind: CommandKind, path: &str, body: Value) -> Option<String> {
        let root = match kind {
            CommandKind::OnboardVnfd => "vnfd",
            CommandKind::CreateVnf => "vnf",
        };
        let name = body[root]["name"]
            .as_str()
            .expect("every command is named")
            .to_owned();
        let sent_at = Instant::now();
        let answer = self
            .http
            .post(format!("{api}{path}"))
            .header("X-Auth-Token", "")
            .json(&body)
            .send()
            .await;
        let outcome = match answer {
            Ok(response) if response.status().is_success() => {
                let status = response.status();
                match response.json::<Value>().await {
                    Ok(json) => json[root]["id"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{status} without an id: {json}")),
                    Err(e) => Err(format!("{status} with an unreadable body: {e}")),
                }
            }
            Ok(response) => {
                let status = response.status();
                Err(format!(
                    "{status}: {}",
                    response.text().await.unwrap_or_default()
                ))
            }
            Err(e) => Err(format!("no answer: {e}")),
        };
        let (acknowledged_id, failure) = match outcome {
            Ok(id) => (Some(id), None),
            Err(failure) => (None, Some(failure)),
        };
        self.issued.lock().expect("the issued list").push(Issued {
            kind,
            name,
            sent_at,
            acknowledged_id: acknowledged_id.clone(),
            failure,
        });
        if acknowledged_id.is_none() {
            tokio::time::sleep(FAILURE_PAUSE).await;
        }
        acknowledged_id
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub issued: usize,
    pub acknowledged: usize,
    pub applied_once: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub not_applied: usize,
    /// VNFs in the log (all of them ACTIVE when [`problems`](Self::problems) is empty).
    pub vnfs: usize,
    /// Everything wrong, one line each: lost and duplicated commands by name, and effects
    /// that do not match the log.
    pub problems: Vec<String>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checker: issued {}, acknowledged {}, applied once {}, lost {}, duplicated {}, \
             not applied {} ({} VNFs), other problems {}",
            self.issued,
            self.acknowledged,
            self.applied_once,
            self.lost,
            self.duplicated,
            self.not_applied,
            self.vnfs,
            self.problems.len() - self.lost - self.duplicated,
        )
    }
}

impl Verdict {
    /// Fails the test unless nothing was lost, nothing duplicated and every effect matches.
    ///
    /// # Panics
    ///
    /// With every problem listed.
    pub fn assert_clean(&self) {
        assert!(
            self.problems.is_empty(),
            "{self}\n{}",
            self.problems.join("\n")
        );
    }
}

/// The lifecycle log as the checker reads it.
#[derive(Debug, Default)]
struct LogScan {
    /// VNFD ids by the name they were onboarded under.
    vnfds_by_name: BTreeMap<String, Vec<String>>,
    /// VNF ids by name, one entry per `CreateRequested` (so two on one subject count twice).
    vnfs_by_name: BTreeMap<String, Vec<String>>,
    /// Messages by `Nats-Msg-Id`, for appends stored twice.
    message_ids: BTreeMap<String, Vec<u64>>,
}

/// Waits for the system to settle, then classifies every issued command and checks the
/// effects; prints the counts.
///
/// # Panics
///
/// When the log cannot be read at all (NATS unreachable); every finding goes into the
/// [`Verdict`] instead.
pub async fn check(target: &Target, issued: &[Issued]) -> Verdict {
    let reader = Seed::read(&target.seed(Identity::Reader)).expect("the reader's seed");
    let client = credentials::connect_options(Identity::Reader, &reader)
        .connect(
            target
                .nats_urls
                .split(',')
                .map(str::trim)
                .collect::<Vec<_>>(),
        )
        .await
        .expect("connect to NATS as the reader");
    let log = EventLog::open(client)
        .await
        .expect("open the lifecycle log");
    let mut verdict = Verdict::default();

    let started = Instant::now();
    let (scan, vnfs) = settle(&log).await;
    let settled = started.elapsed();
    classify(issued, &scan, &mut verdict);
    check_vnfs(target, &log, &vnfs, &mut verdict).await;
    let vnfs_checked = started.elapsed();
    check_lists(target, &scan, &vnfs, &mut verdict).await;
    let lists_checked = started.elapsed();
    verify_tables(target, &mut verdict).await;
    println!(
        "checker: settled in {:.1} s, VNFs checked at {:.1} s, lists at {:.1} s, tables \
         verified at {:.1} s",
        settled.as_secs_f64(),
        vnfs_checked.as_secs_f64(),
        lists_checked.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!("{verdict}");
    verdict
}

/// Reads the log until every VNF in it has finished its create, or [`SETTLE_TIMEOUT`] passes;
/// answers the last scan and every VNF as the log leaves it.
async fn settle(log: &EventLog) -> (LogScan, BTreeMap<String, Vnf>) {
    let settled = testkit::poll(SETTLE_TIMEOUT, POLL_INTERVAL, || async {
        let scan = scan_log(log).await;
        let mut vnfs = BTreeMap::new();
        for id in scan.vnfs_by_name.values().flatten() {
            let vnf = log
                .load::<Vnf>(id)
                .await
                .unwrap_or_else(|e| panic!("load VNF {id}: {e}"))
                .aggregate;
            vnfs.insert(id.clone(), vnf);
        }
        if vnfs.values().all(|vnf| vnf.pending.is_none()) {
            Ok((scan, vnfs))
        } else {
            Err((scan, vnfs))
        }
    })
    .await;
    // Unsettled VNFs are findings of check_vnfs, not a failure here.
    settled.unwrap_or_else(|unsettled| unsettled)
}

/// Reads the whole lifecycle stream, from its first message to its last.
async fn scan_log(log: &EventLog) -> LogScan {
    let mut read = StreamRead::open(log.stream(), names::LIFECYCLE_SUBJECTS, 1)
        .await
        .expect("a replay of the lifecycle stream");
    let mut scan = LogScan::default();
    while let Some(message) = read.next().await.expect("a lifecycle message") {
        record(&mut scan, &message);
    }
    scan
}

/// Adds one stored message to the scan.
fn record(scan: &mut LogScan, message: &Stored) {
    let sequence = message.sequence;
    if let Some(id) = message.header(names::headers::MSG_ID) {
        scan.message_ids
            .entry(id.to_owned())
            .or_default()
            .push(sequence);
    }
    match names::parse_lifecycle_subject(&message.subject) {
        Some((AggregateKind::Vnfd, id)) => {
            let envelope = events::envelope::decode::<VnfdEvent>(&message.payload)
                .unwrap_or_else(|e| panic!("message {sequence} does not decode: {e}"));
            for event in envelope.events {
                if let VnfdEvent::Onboarded(descriptor) = event {
                    scan.vnfds_by_name
                        .entry(descriptor.name)
                        .or_default()
                        .push(id.to_owned());
                }
            }
        }
        Some((AggregateKind::Vnf, id)) => {
            let envelope = events::envelope::decode::<VnfEvent>(&message.payload)
                .unwrap_or_else(|e| panic!("message {sequence} does not decode: {e}"));
            for event in envelope.events {
                if let VnfEvent::CreateRequested { details, .. } = event {
                    scan.vnfs_by_name
                        .entry(details.name)
                        .or_default()
                        .push(id.to_owned());
                }
            }
        }
        // The checker's workloads register no VIM.
        Some((AggregateKind::Vim, _)) => {}
        None => panic!(
            "message {sequence} on {} is no aggregate's",
            message.subject
        ),
    }
}

/// Counts each issued command as applied once, lost, duplicated or not applied, and notes
/// names in the log that nobody issued and appends stored twice.
fn classify(issued: &[Issued], scan: &LogScan, verdict: &mut Verdict) {
    let mut names = BTreeSet::new();
    for command in issued {
        names.insert((command.kind, command.name.as_str()));
        let applied = match command.kind {
            CommandKind::OnboardVnfd => scan.vnfds_by_name.get(&command.name),
            CommandKind::CreateVnf => scan.vnfs_by_name.get(&command.name),
        }
        .map_or(&[][..], Vec::as_slice);
        verdict.issued += 1;
        if command.acknowledged_id.is_some() {
            verdict.acknowledged += 1;
        }
        match (applied, &command.acknowledged_id) {
            ([_], None) => verdict.applied_once += 1,
            ([id], Some(acknowledged)) if id == acknowledged => verdict.applied_once += 1,
            ([id], Some(acknowledged)) => {
                verdict.applied_once += 1;
                verdict.problems.push(format!(
                    "{:?} {}: acknowledged as {acknowledged} but stored as {id}",
                    command.kind, command.name
                ));
            }
            ([], None) => verdict.not_applied += 1,
            ([], Some(id)) => {
                verdict.lost += 1;
                verdict.problems.push(format!(
                    "lost: {:?} {} acknowledged as {id}, not in the log",
                    command.kind, command.name
                ));
            }
            (ids, _) => {
                verdict.duplicated += 1;
                verdict.problems.push(format!(
                    "duplicated: {:?} {} applied {} times: {ids:?} (acknowledged: {:?}, {:?})",
                    command.kind,
                    command.name,
                    ids.len(),
                    command.acknowledged_id,
                    command.failure
                ));
            }
        }
    }
    let logged = scan
        .vnfds_by_name
        .keys()
        .map(|name| (CommandKind::OnboardVnfd, name.as_str()))
        .chain(
            scan.vnfs_by_name
                .keys()
                .map(|name| (CommandKind::CreateVnf, name.as_str())),
        );
    for (kind, name) in logged {
        if !names.contains(&(kind, name)) {
            verdict.problems.push(format!(
                "{kind:?} {name} is in the log but was never issued"
            ));
        }
    }
    for (id, sequences) in &scan.message_ids {
        if sequences.len() > 1 {
            verdict.problems.push(format!(
                "append {id} stored {} times: messages {sequences:?}",
                sequences.len()
            ));
        }
    }
}

/// Every VNF is ACTIVE with exactly its planned instances, used by its VNFD, and the VIM holds
/// exactly those instances' namespaces.
async fn check_vnfs(
    target: &Target,
    log: &EventLog,
    vnfs: &BTreeMap<String, Vnf>,
    verdict: &mut Verdict,
) {
    verdict.vnfs = vnfs.len();
    let mut expected_namespaces = BTreeSet::new();
    for (id, vnf) in vnfs {
        if vnf.status != Some(VnfStatus::Active) || vnf.pending.is_some() {
            verdict.problems.push(format!(
                "VNF {id} ended {:?} (pending {:?}, error {:?}), not ACTIVE",
                vnf.status, vnf.pending, vnf.error_reason
            ));
        }
        let planned = planned_instances(log, id).await;
        let running: Vec<&str> = vnf
            .instances
            .iter()
            .map(|i| i.instance_id.as_str())
            .collect();
        if running != planned.iter().map(String::as_str).collect::<Vec<_>>() {
            verdict.problems.push(format!(
                "VNF {id} runs instances {running:?}, planned {planned:?}"
            ));
        }
        for instance in &running {
            if !expected_namespaces.insert(format!("{}-{instance}", target.vim_prefix)) {
                verdict
                    .problems
                    .push(format!("instance {instance} belongs to two VNFs"));
            }
        }
        let vnfd_id = &vnf.details.as_ref().expect("a created VNF").vnfd_id;
        let vnfd = log
            .load::<Vnfd>(vnfd_id)
            .await
            .unwrap_or_else(|e| panic!("load VNFD {vnfd_id}: {e}"))
            .aggregate;
        if !vnfd.users.contains(id) {
            verdict.problems.push(format!(
                "VNF {id} exists but its VNFD {vnfd_id} does not list it as a user ({:?})",
                vnfd.users
            ));
        }
    }
    let remnants =
        conductor::vim::local::remnants(&target.vim_prefix).expect("list the VIM's namespaces");
    let namespaces: BTreeSet<String> = remnants.namespaces.iter().cloned().collect();
    for extra in namespaces.difference(&expected_namespaces) {
        verdict
            .problems
            .push(format!("namespace {extra} belongs to no VNF instance"));
    }
    for missing in expected_namespaces.difference(&namespaces) {
        verdict.problems.push(format!(
            "namespace {missing} of a running instance is missing"
        ));
    }
    if remnants.links.len() != expected_namespaces.len() {
        verdict.problems.push(format!(
            "{} host links for {} instances: {:?}",
            remnants.links.len(),
            expected_namespaces.len(),
            remnants.links
        ));
    }
}

/// The instance ids the VNF's create planned (its `CreateRequested` events'), in order.
async fn planned_instances(log: &EventLog, vnf_id: &str) -> Vec<String> {
    log.read_subject::<VnfEvent>(&names::vnf_subject(vnf_id))
        .await
        .unwrap_or_else(|e| panic!("read VNF {vnf_id}: {e}"))
        .into_iter()
        .flat_map(|recorded| recorded.envelope.events)
        .filter_map(|event| match event {
            VnfEvent::CreateRequested { add, .. } => Some(add),
            _ => None,
        })
        .flatten()
        .map(|planned| planned.instance_id)
        .collect()
}

/// Every gateway lists every VNFD and VNF of the log exactly once (and nothing else), every VNF
/// ACTIVE; waits up to [`LIST_TIMEOUT`] for its mirror to catch up.
async fn check_lists(
    target: &Target,
    scan: &LogScan,
    vnfs: &BTreeMap<String, Vnf>,
    verdict: &mut Verdict,
) {
    let expected_vnfds: BTreeMap<String, String> = scan
        .vnfds_by_name
        .iter()
        .flat_map(|(name, ids)| ids.iter().map(move |id| (id.clone(), name.clone())))
        .collect();
    let expected_vnfs: BTreeMap<String, String> = vnfs
        .iter()
        .map(|(id, vnf)| {
            let name = vnf.details.as_ref().expect("a created VNF").name.clone();
            (id.clone(), name)
        })
        .collect();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client");
    let listed = testkit::poll(LIST_TIMEOUT, POLL_INTERVAL, || async {
        let mut problems = Vec::new();
        for api in &target.apis {
            problems.extend(list_problems(&http, api, "vnfds", &expected_vnfds, None).await);
            problems
                .extend(list_problems(&http, api, "vnfs", &expected_vnfs, Some("ACTIVE")).await);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    })
    .await;
    if let Err(problems) = listed {
        verdict.problems.extend(problems);
    }
}

/// How `GET /v1.0/<collection>` differs from `expected` (id → name); when `status` is given,
/// every entry must have it.
async fn list_problems(
    http: &reqwest::Client,
    api: &str,
    collection: &str,
    expected: &BTreeMap<String, String>,
    status: Option<&str>,
) -> Vec<String> {
    let answer = async {
        let response = http
            .get(format!("{api}/{collection}"))
            .header("X-Auth-Token", "")
            .send()
            .await?
            .error_for_status()?;
        response.json::<Value>().await
    }
    .await;
    let body = match answer {
        Ok(body) => body,
        Err(e) => return vec![format!("GET /{collection}: {e}")],
    };
    let mut listed: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for entry in body[collection].as_array().into_iter().flatten() {
        let id = entry["id"].as_str().unwrap_or_default().to_owned();
        listed.entry(id).or_default().push(entry);
    }
    let mut problems = Vec::new();
    for (id, name) in expected {
        match listed.get(id).map(Vec::as_slice) {
            Some([entry]) => {
                if entry["name"] != name.as_str() {
                    problems.push(format!(
                        "{api}/{collection} lists {id} as {}",
                        entry["name"]
                    ));
                }
                if let Some(status) = status.filter(|s| entry["status"] != *s) {
                    problems.push(format!(
                        "{api}/{collection} lists {id} as {}, not {status}",
                        entry["status"]
                    ));
                }
            }
            None => problems.push(format!("{api}/{collection} does not list {id} ({name})")),
            Some(entries) => problems.push(format!(
                "{api}/{collection} lists {id} ({name}) {} times",
                entries.len()
            )),
        }
    }
    for id in listed.keys().filter(|id| !expected.contains_key(*id)) {
        problems.push(format!(
            "{api}/{collection} lists {id}, which is not in the log"
        ));
    }
    problems
}

/// `vnfm rebuild --verify` exits 0: the projected tables equal the log.
async fn verify_tables(target: &Target, verdict: &mut Verdict) {
    let run = tokio::process::Command::new(testkit::vnfm_bin())
        .args(["rebuild", "--verify", "--nats-url", &target.nats_urls])
        .arg("--nats-nkey")
        .arg(target.seed(Identity::Reader))
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(VERIFY_TIMEOUT, run).await {
        Ok(Ok(output)) if output.status.success() => {
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
        Ok(Ok(output)) => verdict.problems.push(format!(
            "vnfm rebuild --verify failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Ok(Err(e)) => verdict
            .problems
            .push(format!("vnfm rebuild --verify did not run: {e}")),
        Err(_) => verdict.problems.push(format!(
            "vnfm rebuild --verify did not finish within {VERIFY_TIMEOUT:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(kind: CommandKind, name: &str, acknowledged_id: Option<&str>) -> Issued {
        Issued {
            kind,
            name: name.into(),
            sent_at: Instant::now(),
            acknowledged_id: acknowledged_id.map(str::to_owned),
            failure: acknowledged_id.is_none().then(|| "no answer".into()),
        }
    }

    fn ids(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(name, ids)| {
                (
                    (*name).to_owned(),
                    ids.iter().map(|id| (*id).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn every_command_is_classified_by_its_name_in_the_log() {
        use CommandKind::{CreateVnf, OnboardVnfd};
        let issued = [
            command(OnboardVnfd, "d-once", Some("a")),
            command(OnboardVnfd, "d-unheard", None),
            command(OnboardVnfd, "d-lost", Some("b")),
            command(OnboardVnfd, "d-failed", None),
            command(CreateVnf, "v-twice", Some("c")),
            command(CreateVnf, "v-once", Some("e")),
        ];
        let scan = LogScan {
            vnfds_by_name: ids(&[("d-once", &["a"]), ("d-unheard", &["x"])]),
            vnfs_by_name: ids(&[("v-twice", &["c", "d"]), ("v-once", &["e"])]),
            message_ids: BTreeMap::from([("m1".into(), vec![1]), ("m2".into(), vec![2, 3])]),
        };
        let mut verdict = Verdict::default();
        classify(&issued, &scan, &mut verdict);
        assert_eq!(
            (
                verdict.issued,
                verdict.acknowledged,
                verdict.applied_once,
                verdict.lost,
                verdict.duplicated,
                verdict.not_applied
            ),
            (6, 4, 3, 1, 1, 1),
            "{verdict}"
        );
        // The lost command, the duplicated one, and the append stored twice.
        assert_eq!(verdict.problems.len(), 3, "{:#?}", verdict.problems);
        assert!(verdict.problems[0].starts_with("lost: OnboardVnfd d-lost"));
        assert!(verdict.problems[1].starts_with("duplicated: CreateVnf v-twice"));
        assert!(verdict.problems[2].starts_with("append m2 stored 2 times"));
    }

    #[test]
    fn names_nobody_issued_and_ids_other_than_acknowledged_are_problems() {
        let issued = [command(CommandKind::OnboardVnfd, "d1", Some("a"))];
        let scan = LogScan {
            vnfds_by_name: ids(&[("d1", &["b"]), ("stranger", &["c"])]),
            ..LogScan::default()
        };
        let mut verdict = Verdict::default();
        classify(&issued, &scan, &mut verdict);
        assert_eq!(verdict.applied_once, 1);
        assert_eq!(verdict.problems.len(), 2, "{:#?}", verdict.problems);
    }
}
