//! The VIM trait: how a conductor reaches infrastructure.
//!
//! Every call is idempotent under the instance id, which the VNF aggregate derives from the
//! operation id: deploying an instance that exists answers with the existing one, deleting
//! one that is gone succeeds.

pub mod local;
pub mod loopback;
pub mod openstack;

use std::net::Ipv4Addr;

use events::spec::{PlacementPolicy, VduSpec};

/// What a VDU instance needs to boot.
#[derive(Clone, PartialEq)]
pub struct DeployRequest {
    /// The operation (create, scale, heal) this deployment belongs to; for logs.
    pub operation_id: String,
    pub vnf_id: String,
    pub vdu: String,
    /// Unique across all VNFs; the idempotency key of the call.
    pub instance_id: String,
    /// When set, an HTTP responder answers on this port at the management IP (for `http_ping`).
    pub http_port: Option<u16>,
    /// When set, the VDU serves its metrics (Prometheus' text format, `GET /metrics`) on this
    /// port at the management IP: an alarm trigger of the VNFD watches the VDU
    /// ([`events::spec::VDU_METRICS_PORT`]).
    pub metrics_port: Option<u16>,
    /// The VDU as the VNF's recorded VNFD describes it (image, flavor or sizes, connection
    /// points...); none for a VNF whose log holds no VNFD. The `local` VIM reads none of it.
    pub vdu_spec: Option<VduSpec>,
    /// The VNF's placement policies that target this VDU, in template order.
    pub placement: Vec<PlacementPolicy>,
    /// The VDU's `user_data`, opened: a secret, so never printed by `Debug`.
    pub user_data: Option<String>,
}

impl std::fmt::Debug for DeployRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployRequest")
            .field("operation_id", &self.operation_id)
            .field("vnf_id", &self.vnf_id)
            .field("vdu", &self.vdu)
            .field("instance_id", &self.instance_id)
            .field("http_port", &self.http_port)
            .field("metrics_port", &self.metrics_port)
            .field("vdu_spec", &self.vdu_spec)
            .field("placement", &self.placement)
            .field("user_data", &self.user_data.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl DeployRequest {
    /// The ports the VDU answers HTTP on, each once, in order.
    pub fn http_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .http_port
            .into_iter()
            .chain(self.metrics_port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// A VNF's new config (`tacker vnf-update`), for every instance of the VNF.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRequest {
    /// The update operation; for logs.
    pub operation_id: String,
    pub vnf_id: String,
    /// The VNF's running instances.
    pub instance_ids: Vec<String>,
    /// The config as the log holds it: secret-bearing values stay sealed (a conductor holds
    /// no data key), so the VIM stores what it is given and opens nothing.
    pub config: serde_json::Value,
}

/// A VDU instance as the VIM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub instance_id: String,
    pub mgmt_ip: Ipv4Addr,
}

#[derive(Debug, thiserror::Error)]
pub enum VimError {
    /// The VIM has no room for another instance.
    #[error("VIM exhausted: {0}")]
    Exhausted(String),
    /// The VIM did not answer in time, refused the connection, or answered that it cannot
    /// now (an HTTP 5xx): the same call may succeed later. A driver tries again itself, within
    /// a named budget, before it answers with this.
    #[error("VIM unavailable: {0}")]
    Unavailable(String),
    /// Anything else that went wrong talking to the infrastructure.
    #[error("VIM failure: {0}")]
    Failed(String),
}

#[async_trait::async_trait]
pub trait Vim: Send + Sync + 'static {
    /// Boots the instance, or answers with it if it already exists.
    async fn deploy_vdu(&self, request: &DeployRequest) -> Result<Deployed, VimError>;
    /// Removes the instance; succeeds when it is already gone.
    async fn delete_vdu(&self, instance_id: &str) -> Result<(), VimError>;
    /// Gives every instance of the request the VNF's config; giving it again changes nothing.
    async fn apply_config(&self, request: &ConfigRequest) -> Result<(), VimError>;
    /// The instance's management IP, or `None` when it does not exist.
    async fn mgmt_ip(&self, instance_id: &str) -> Result<Option<Ipv4Addr>, VimError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_request_never_shows_its_user_data() {
        let request = DeployRequest {
            operation_id: "op".into(),
            vnf_id: "vnf".into(),
            vdu: "VDU1".into(),
            instance_id: "i".into(),
            http_port: None,
            metrics_port: None,
            vdu_spec: None,
            placement: vec![],
            user_data: Some("#!/bin/sh\necho root:hunter2 | chpasswd".into()),
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
