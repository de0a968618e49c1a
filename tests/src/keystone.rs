//! A real OpenStack Keystone for the tests of the gateway's Keystone authentication: Debian's
//! package (installed by `ops/install-keystone.sh`), its WSGI application run by uwsgi on a
//! free loopback port over a sqlite database in a temporary directory, bootstrapped with an
//! admin, and killed on drop. Projects, users, role assignments and catalog entries are made
//! through its own v3 API, as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::PATIENCE;

/// The admin's password: a throwaway for a throwaway Keystone.
const ADMIN_PASSWORD: &str = "keystone-test-admin";
/// The region every catalog entry is in.
const REGION: &str = "RegionOne";
/// Pause between readiness probes of a starting Keystone (Python takes seconds to import).
const READY_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A running Keystone; stopped on drop.
pub struct Keystone {
    dir: TempDir,
    uwsgi: Child,
    /// `http://127.0.0.1:<port>/v3`.
    pub url: String,
    http: reqwest::Client,
}

impl Keystone {
    /// Makes the database, the token keys and the admin, starts Keystone and returns once it
    /// answers.
    ///
    /// # Panics
    ///
    /// When Keystone is not installed (run `ops/install-keystone.sh`), or does not start.
    pub async fn start() -> Keystone {
        let dir = tempfile::Builder::new()
            .prefix("keystone-")
            .tempdir()
            .expect("a temporary directory");
        let port = testkit::free_port();
        let url = format!("http://127.0.0.1:{port}/v3");
        let config = write_config(dir.path());
        manage(&config, &["db_sync"]);
        write_ahead_log(&dir.path().join("keystone.db"));
        manage(
            &config,
            &[
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-public-url",
                &url,
                "--bootstrap-region-id",
                REGION,
            ],
        );
        let log = std::fs::File::create(dir.path().join("uwsgi.log")).expect("the uwsgi log");
        let uwsgi = Command::new("uwsgi")
            .args(["--plugin", "python3", "--http-socket"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--wsgi-file", "/usr/bin/keystone-wsgi-public"])
            .env("OS_KEYSTONE_CONFIG_FILES", &config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the uwsgi log"))
            .stderr(log)
            .spawn()
            .expect("start uwsgi (run ops/install-keystone.sh)");
        let keystone = Keystone {
            dir,
            uwsgi,
            url,
            // uwsgi's plain HTTP socket closes every connection after its answer.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client"),
        };
        let what = format!("Keystone answers at {}", keystone.url);
        testkit::eventually_every(what, PATIENCE, READY_POLL_INTERVAL, || async {
            match keystone.http.get(&keystone.url).send().await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(format!("{}", answer.status())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        keystone
    }

    /// A token of `user` scoped to `project` (names, in the default domain).
    ///
    /// # Panics
    ///
    /// When Keystone refuses.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }});
        let answer = self
            .http
            .post(format!("{}/auth/tokens", self.url))
            .json(&body)
            .send()
            .await
            .expect("Keystone answers");
        assert_eq!(answer.status(), 201, "token of {user}: {}", answer.status());
        answer.headers()["X-Subject-Token"]
            .to_str()
            .expect("an ASCII token")
            .to_owned()
    }

    /// The bootstrap admin's token, scoped to the `admin` project.
    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin").await
    }

    /// `POST {url}/{path}` as the admin; answers the JSON body.
    async fn create(&self, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .post(format!("{}/{path}", self.url))
            .header("X-Auth-Token", self.admin_token().await)
            .json(&body)
            .send()
            .await
            .expect("Keystone answers");
        assert!(
            answer.status().is_success(),
            "POST {path}: {}",
            answer.status()
        );
        answer.json().await.expect("a JSON answer")
    }

    /// Makes a project; answers its id.
    pub async fn project(&self, name: &str) -> String {
        let made = self
            .create(
                "projects",
                json!({"project": {"name": name, "domain_id": "default"}}),
            )
            .await;
        made["project"]["id"].as_str().expect("an id").to_owned()
    }

    /// Makes a user with `password` holding `role` (admin, member or reader) on `project_id`;
    /// answers the user's id.
    pub async fn user(&self, name: &str, password: &str, project_id: &str, role: &str) -> String {
        let made = self
            .create(
                "users",
                json!({"user": {"name": name, "password": password, "domain_id": "default"}}),
            )
            .await;
        let user_id = made["user"]["id"].as_str().expect("an id").to_owned();
        let roles: Value = self
            .http
            .get(format!("{}/roles?name={role}", self.url))
            .header("X-Auth-Token", self.admin_token().await)
            .send()
            .await
            .expect("Keystone answers")
            .json()
            .await
            .expect("a JSON answer");
        let role_id = roles["roles"][0]["id"].as_str().expect("the role exists");
        let granted = self
            .http
            .put(format!(
                "{}/projects/{project_id}/users/{user_id}/roles/{role_id}",
                self.url
            ))
            .header("X-Auth-Token", self.admin_token().await)
            .send()
            .await
            .expect("Keystone answers");
        assert!(granted.status().is_success(), "grant: {}", granted.status());
        user_id
    }

    /// Registers `url` as the public endpoint of a service of `kind` (e.g.
    /// `nfv-orchestration`, which python-tackerclient looks up).
    pub async fn endpoint(&self, kind: &str, url: &str) {
        let service = self
            .create(
                "services",
                json!({"service": {"type": kind, "name": kind, "enabled": true}}),
            )
            .await;
        let service_id = service["service"]["id"].as_str().expect("an id");
        self.create(
            "endpoints",
            json!({"endpoint": {"service_id": service_id, "interface": "public",
                "url": url, "region_id": REGION}}),
        )
        .await;
    }

    /// A file with the credentials of a service user (the admin here), as `vnfm gateway
    /// --keystone-credentials` reads them.
    pub fn service_credentials(&self) -> PathBuf {
        let path = self.dir.path().join("service-credentials.json");
        let credentials = json!({
            "user_name": "admin", "user_domain_id": "default", "password": ADMIN_PASSWORD,
            "project_name": "admin", "project_domain_id": "default",
        });
        write_private(&path, &credentials.to_string());
        path
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.uwsgi.kill();
        let _ = self.uwsgi.wait();
    }
}

/// Writes `keystone.conf` (sqlite database, fernet token, receipt and credential keys, all in
/// `dir`: nothing of the machine's `/etc/keystone` is used) and the keys themselves; answers
/// the config's path.
fn write_config(dir: &Path) -> PathBuf {
    for repository in ["fernet-keys", "credential-keys"] {
        let keys = dir.join(repository);
        std::fs::create_dir(&keys).expect("a key repository");
        // Key 0 is the staged key, 1 the primary: what `keystone-manage fernet_setup` writes,
        // without its five seconds of Python start-up each.
        for index in ["0", "1"] {
            write_private(&keys.join(index), &fernet_key());
        }
    }
    let dir = dir.display();
    let config = format!(
        "[DEFAULT]\nlog_file = {dir}/keystone.log\n\
         [database]\nconnection = sqlite:///{dir}/keystone.db\n\
         [fernet_tokens]\nkey_repository = {dir}/fernet-keys\n\
         [fernet_receipts]\nkey_repository = {dir}/fernet-keys\n\
         [credential]\nkey_repository = {dir}/credential-keys\n\
         [token]\nprovider = fernet\nexpiration = 3600\n"
    );
    let path = PathBuf::from(format!("{dir}/keystone.conf"));
    std::fs::write(&path, config).expect("write keystone.conf");
    path
}

/// A Fernet key: 32 random bytes, URL-safe base64.
fn fernet_key() -> String {
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend(uuid::Uuid::new_v4().as_bytes());
    base64_url(&bytes)
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

fn write_private(path: &Path, contents: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(contents.as_bytes())
        .expect("write a private file");
}

/// Puts the sqlite database in write-ahead-log mode (a setting kept in the file): Keystone
/// reads and writes one request through two connections, and in sqlite's default mode the
/// reader's lock makes the writer fail with "database is locked".
fn write_ahead_log(database: &Path) {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')")
        .arg(database)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "WAL mode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `keystone-manage --config-file config ARGS`.
fn manage(config: &Path, args: &[&str]) {
    let out = Command::new("keystone-manage")
        .arg("--config-file")
        .arg(config)
        .args(args)
        .output()
        .expect("run keystone-manage (run ops/install-keystone.sh)");
    assert!(
        out.status.success(),
        "keystone-manage {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_pads_like_python() {
        assert_eq!(base64_url(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8=");
        assert_eq!(fernet_key().len(), 44);
    }
}
