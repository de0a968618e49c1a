//! A real OpenStack for the tests of the `openstack` VIM: the all-in-one `ops/openstack-aio up`
//! brings up on this machine, named by the VIM config file (Tacker's `vim-register` format)
//! at the path in `VNFM_OPENSTACK_VIM_CONFIG`, and its APIs called directly, as an operator
//! (or a fault) would behind vnfm's back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::{Value, json};

/// The variable naming the VIM config file.
pub const CONFIG_ENV: &str = "VNFM_OPENSTACK_VIM_CONFIG";
/// The all-in-one's guest image: answers ping, and HTTP on ports 80 and 8080.
pub const IMAGE: &str = "vnfm-guest";
/// The all-in-one's flat provider network, which this host reaches.
pub const NETWORK: &str = "net_mgmt";
/// `net_mgmt`'s subnet: the only addresses the OpenStack tests send traffic to.
pub const NETWORK_PREFIX: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 51, 100, 0), 24);
/// The Nova microversion of the direct calls (tags filter servers since 2.26).
const NOVA_MICROVERSION: &str = "compute 2.64";

/// Whether `ip` is in `net_mgmt`'s subnet.
pub fn in_test_network(ip: Ipv4Addr) -> bool {
    let (network, len) = NETWORK_PREFIX;
    let mask = u32::MAX << (32 - len);
    u32::from(ip) & mask == u32::from(network)
}

/// The VIM config file, as Tacker's `vim-register --config-file` reads it.
#[derive(Debug, Clone)]
pub struct VimConfig {
    pub path: PathBuf,
    values: BTreeMap<String, String>,
}

impl VimConfig {
    /// The file `VNFM_OPENSTACK_VIM_CONFIG` names; panics, saying how to get one, without it.
    pub fn read() -> VimConfig {
        let path = std::env::var(CONFIG_ENV)
            .ok()
            .filter(|path| !path.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{CONFIG_ENV} is not set: these tests need a real OpenStack. Bring one up \
                     with `ops/openstack-aio up` (its last line is the VIM config file's path) \
                     and run with {CONFIG_ENV}=<that path>"
                )
            });
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{CONFIG_ENV}={path}: {e}"));
        // A flat mapping of strings: `key: 'value'`.
        let values = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| {
                let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
                (key.trim().to_owned(), value.to_owned())
            })
            .collect();
        VimConfig {
            path: PathBuf::from(path),
            values,
        }
    }

    /// The value of `key`; panics when the file has none.
    pub fn get(&self, key: &str) -> String {
        self.values
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("the VIM config has no {key}"))
    }

    /// The same file's text with `key` set to `value` (say, a wrong password).
    pub fn with(&self, key: &str, value: &str) -> String {
        let mut values = self.values.clone();
        values.insert(key.to_owned(), value.to_owned());
        values.iter().fold(String::new(), |mut text, (key, value)| {
            let _ = writeln!(text, "{key}: '{value}'");
            text
        })
    }
}

/// Nova's and Neutron's APIs, called directly with the VIM config's credentials.
pub struct Cloud {
    http: reqwest::Client,
    token: String,
    compute: String,
    network: String,
}

impl Cloud {
    /// Logs in to Keystone (a password token scoped to the config's project).
    pub async fn login(config: &VimConfig) -> Cloud {
        // No idle connections: the all-in-one's uwsgi resets a reused one on POST.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let auth_url = config.get("auth_url");
        let auth_url = auth_url.trim_end_matches('/');
        let auth_url = if auth_url.ends_with("/v3") {
            auth_url.to_owned()
        } else {
            format!("{auth_url}/v3")
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": config.get("username"),
                "domain": {"name": config.get("user_domain_name")},
                "password": config.get("password")}}},
            "scope": {"project": {"name": config.get("project_name"),
                                  "domain": {"name": config.get("project_domain_name")}}}}});
        let answer = http
            .post(format!("{auth_url}/auth/tokens"))
            .json(&body)
            .send()
            .await
            .expect("Keystone answers");
        assert_eq!(answer.status().as_u16(), 201, "Keystone issues a token");
        let token = answer.headers()["X-Subject-Token"]
            .to_str()
            .expect("a token")
            .to_owned();
        let body: Value = answer.json().await.expect("JSON");
        let endpoint = |kind: &str| {
            body["token"]["catalog"]
                .as_array()
                .expect("a catalog")
                .iter()
                .find(|s| s["type"] == kind)
                .and_then(|s| {
                    s["endpoints"]
                        .as_array()?
                        .iter()
                        .find(|e| e["interface"] == "public")
                })
                .and_then(|e| e["url"].as_str())
                .unwrap_or_else(|| panic!("a public {kind} endpoint"))
                .trim_end_matches('/')
                .to_owned()
        };
        Cloud {
            compute: endpoint("compute"),
            network: endpoint("network"),
            http,
            token,
        }
    }

    async fn call(&self, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", NOVA_MICROVERSION);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("OpenStack answers");
        let status = answer.status();
        let text = answer.text().await.expect("a body");
        assert!(status.is_success(), "{method} {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The servers (as Nova lists them, with details) that carry `tag`.
    pub async fn servers_tagged(&self, tag: &str) -> Vec<Value> {
        let url = format!("{}/servers/detail?tags={tag}", self.compute);
        let list = self.call(reqwest::Method::GET, url, None).await;
        list["servers"].as_array().cloned().unwrap_or_default()
    }

    /// The server of that Nova id, as Nova shows it (to an admin of its project, with its
    /// `OS-EXT-SRV-ATTR:user_data`).
    pub async fn server(&self, server_id: &str) -> Value {
        let url = format!("{}/servers/{server_id}", self.compute);
        self.call(reqwest::Method::GET, url, None).await["server"].clone()
    }

    /// The server groups named `name`.
    pub async fn server_groups_named(&self, name: &str) -> Vec<Value> {
        let url = format!("{}/os-server-groups", self.compute);
        let list = self.call(reqwest::Method::GET, url, None).await;
        list["server_groups"]
            .as_array()
            .expect("server groups")
            .iter()
            .filter(|g| g["name"] == name)
            .cloned()
            .collect()
    }

    /// Deletes a server by its Nova id.
    pub async fn delete_server(&self, server_id: &str) {
        let url = format!("{}/servers/{server_id}", self.compute);
        self.call(reqwest::Method::DELETE, url, None).await;
    }

    /// Stops a server (Nova's `os-stop`): it goes SHUTOFF.
    pub async fn stop_server(&self, server_id: &str) {
        let url = format!("{}/servers/{server_id}/action", self.compute);
        let body = json!({"os-stop": null});
        self.call(reqwest::Method::POST, url, Some(body)).await;
    }

    /// The ports that carry `tag`.
    pub async fn ports_tagged(&self, tag: &str) -> Vec<Value> {
        let url = format!("{}/v2.0/ports?tags={tag}", self.network);
        let list = self.call(reqwest::Method::GET, url, None).await;
        list["ports"].as_array().cloned().unwrap_or_default()
    }

    /// Sets a port's administrative state (down: the guest behind it is cut off).
    pub async fn set_port_up(&self, port_id: &str, up: bool) {
        let url = format!("{}/v2.0/ports/{port_id}", self.network);
        let body = json!({"port": {"admin_state_up": up}});
        self.call(reqwest::Method::PUT, url, Some(body)).await;
    }
}
