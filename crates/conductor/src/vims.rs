//! Which VIM carries out a VNF's operations, and what each registered VIM's check finds.
//!
//! A VNF names its VIM (`vim_id`, recorded at its create). The built-in `local` VIM is the
//! conductor's own. Any other is a VIM registered on the log (`events::vim`): its record is
//! loaded from its subject at each use (one read), its credentials are opened with its data
//! key (`VNFM_DATA_KEYS`, unwrapped with the master key), and its driver is kept while the
//! record stays as it was, so that its Keystone token is reused. A conductor without the
//! master key drives the local VIM only.
//!
//! The same keys open a VNF's sealed `user_data` (its VDUs', for a registered VIM's servers):
//! a conductor reads the `vnf.<id>` data keys as it reads the `vim.<id>` ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::TryStreamExt;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use events::envelope::{Actor, Cause};
use events::keyring::{Keyring, KeyringError};
use events::names::{self, AggregateKind};
use events::nats_error::NatsError;
use events::store::{CommandError, EventLog, StoreError};
use events::vim::{
    LOCAL_VIM_ID, OPENSTACK_VIM_TYPE, Vim as VimRecord, VimCommand, VimCredentials, VimDetails,
    VimError as VimRecordError, VimStatus,
};
use events::vnf::USER_DATA_PATH;

use crate::vim::Vim;
use crate::vim::openstack::{Credentials, OpenStackAccess, OpenStackVim, TaggedInventory};

/// Why a VNF's VIM cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VimsError {
    /// The log or the keys could not be read now; the operation waits and is offered again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The VIM can never carry out the operation as things stand: the operation fails with
    /// this reason.
    #[error("{0}")]
    Unusable(String),
}

impl From<KeyringError> for VimsError {
    fn from(error: KeyringError) -> Self {
        match error {
            KeyringError::Nats(e) => VimsError::Store(e.into()),
            KeyringError::Secret(e) => VimsError::Unusable(format!(
                "the VIM's data key does not open with this conductor's master key: {e}"
            )),
        }
    }
}

/// The VIMs a conductor reaches.
pub struct Vims {
    /// The built-in VIM; `None` for a reader of registered VIMs alone (`vnfm vim orphans`).
    local: Option<Arc<dyn Vim>>,
    /// How registered VIMs are read and opened; `None` without a master key.
    registry: Option<Registry>,
    /// Each registered VIM's driver, with the sequence of the record it was made from.
    drivers: Mutex<HashMap<String, (u64, Arc<OpenStackVim>)>>,
}

struct Registry {
    log: EventLog,
    keyring: Keyring,
}

impl std::fmt::Debug for Vims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vims")
            .field("registered", &self.registry.is_some())
            .finish_non_exhaustive()
    }
}

impl Vims {
    /// The local VIM alone: a VNF on a registered VIM fails, naming the missing master key.
    pub fn local_only(local: Arc<dyn Vim>) -> Self {
        Vims {
            local: Some(local),
            registry: None,
            drivers: Mutex::default(),
        }
    }

    /// The VIMs registered on `log`, opened with `keyring`, and no local VIM: what a command
    /// that looks at registered VIMs (`vnfm vim orphans`) reaches.
    pub fn registered_only(log: EventLog, keyring: Keyring) -> Self {
        Vims {
            local: None,
            registry: Some(Registry { log, keyring }),
            drivers: Mutex::default(),
        }
    }

    /// The same local VIM, and every VIM registered on `log`, opened with `keyring`.
    #[must_use]
    pub fn with_registry(&self, log: EventLog, keyring: Keyring) -> Self {
        Vims {
            local: self.local.clone(),
            registry: Some(Registry { log, keyring }),
            drivers: Mutex::default(),
        }
    }

    /// Each VDU's `user_data` of the VNF `vnf_id` (VDU name -> text), opened from `sealed`
    /// (`VnfDetails::user_data`) with the VNF's data key; empty when the VNF has none.
    /// Without a master key, or when the key is gone or does not open it, the operation
    /// cannot give its servers their user_data: [`VimsError::Unusable`], naming why.
    pub async fn user_data(
        &self,
        vnf_id: &str,
        sealed: &serde_json::Value,
    ) -> Result<BTreeMap<String, String>, VimsError> {
        if sealed.is_null() {
            return Ok(BTreeMap::new());
        }
        let Some(registry) = &self.registry else {
            return Err(VimsError::Unusable(format!(
                "VNF {vnf_id}: this conductor has no master key (--master-key), so it cannot open the VDUs' user_data"
            )));
        };
        let key = match registry.keyring.get(AggregateKind::Vnf, vnf_id).await {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Err(VimsError::Unusable(format!(
                    "VNF {vnf_id}: its data key is gone, so its VDUs' user_data does not open"
                )));
            }
            Err(KeyringError::Nats(e)) => return Err(VimsError::Store(e.into())),
            Err(KeyringError::Secret(e)) => {
                return Err(VimsError::Unusable(format!(
                    "VNF {vnf_id}: its data key does not open with this conductor's master key: {e}"
                )));
            }
        };
        let opened = events::secrets::open_secrets(sealed, &key, USER_DATA_PATH).map_err(|e| {
            VimsError::Unusable(format!(
                "VNF {vnf_id}: its VDUs' user_data does not open: {e}"
            ))
        })?;
        serde_json::from_value(opened).map_err(|e| {
            VimsError::Unusable(format!(
                "VNF {vnf_id}: its VDUs' user_data is not a map of VDU names to text: {e}"
            ))
        })
    }

    /// Whether registered VIMs are reached (a master key was given).
    pub fn has_registry(&self) -> bool {
        self.registry.is_some()
    }

    /// The VIM of that id, ready to call.
    pub async fn get(&self, vim_id: &str) -> Result<Arc<dyn Vim>, VimsError> {
        if vim_id == LOCAL_VIM_ID {
            return self
                .local
                .clone()
                .ok_or_else(|| VimsError::Unusable("the local VIM is not driven here".to_owned()));
        }
        Ok(self.registered(vim_id).await?)
    }

    async fn registered(&self, vim_id: &str) -> Result<Arc<OpenStackVim>, VimsError> {
        let Some(registry) = &self.registry else {
            return Err(VimsError::Unusable(format!(
                "VIM {vim_id}: this conductor has no master key (--master-key), so it cannot open a registered VIM's credentials"
            )));
        };
        let loaded = registry.log.load::<VimRecord>(vim_id).await?;
        let Some(details) = loaded.aggregate.live() else {
            return Err(VimsError::Unusable(format!(
                "VIM {vim_id} is not registered (deleted, or never registered)"
            )));
        };
        let mut drivers = self.drivers.lock().await;
        if let Some((sequence, driver)) = drivers.get(vim_id)
            && *sequence == loaded.last_sequence
        {
            return Ok(driver.clone());
        }
        let key = registry
            .keyring
            .get(AggregateKind::Vim, vim_id)
            .await?
            .ok_or_else(|| {
                VimsError::Unusable(format!("VIM {vim_id}: its data key is gone (deleted VIM)"))
            })?;
        let credentials = details.credentials(&key).map_err(|e| {
            VimsError::Unusable(format!("VIM {vim_id}: its credentials do not open: {e}"))
        })?;
        let driver = Arc::new(
            OpenStackVim::new(access(details, credentials)?)
                .map_err(|e| VimsError::Unusable(format!("VIM {vim_id}: {e}")))?,
        );
        drivers.insert(vim_id.to_owned(), (loaded.last_sequence, driver.clone()));
        Ok(driver)
    }

    /// Checks every registered VIM once and records each one whose status or reason changed
    /// (`VimCommand::RecordStatus`: the aggregate appends nothing when neither did, so that
    /// several conductors checking the same VIM record it once).
    pub async fn check_all(&self, actor: &Actor) -> Result<(), StoreError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        for vim_id in registered_ids(&registry.log).await? {
            let (status, reason) = match self.registered(&vim_id).await {
                Ok(driver) => match driver.check().await {
                    Ok(()) => (VimStatus::Reachable, None),
                    Err(reason) => (VimStatus::Unreachable, Some(reason)),
                },
                Err(VimsError::Store(e)) => return Err(e),
                // Deleted while listed: nothing to record.
                Err(VimsError::Unusable(_)) if !self.is_live(&vim_id).await? => continue,
                Err(VimsError::Unusable(reason)) => (VimStatus::Unreachable, Some(reason)),
            };
            let at = OffsetDateTime::now_utc();
            let cause = Cause::user_request(actor.clone());
            let command = VimCommand::RecordStatus { status, reason, at };
            match registry
                .log
                .execute::<VimRecord>(&vim_id, command, &(), &cause)
                .await
            {
                Ok(executed) if !executed.events.is_empty() => {
                    tracing::info!(vim_id, status = status.as_str(), "VIM status recorded.");
                }
                Ok(_) | Err(CommandError::Rejected(VimRecordError::NotFound)) => {}
                Err(CommandError::Rejected(e)) => {
                    tracing::warn!(vim_id, error = %e, "VIM status refused.");
                }
                Err(CommandError::Store(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// The ids of the registered VIMs that are not deleted.
    pub async fn live_ids(&self) -> Result<Vec<String>, StoreError> {
        let Some(registry) = &self.registry else {
            return Ok(Vec::new());
        };
        let mut live = Vec::new();
        for vim_id in registered_ids(&registry.log).await? {
            if self.is_live(&vim_id).await? {
                live.push(vim_id);
            }
        }
        Ok(live)
    }

    /// Every server and port vnfm tagged on a registered VIM (one Nova and one Neutron list).
    pub async fn inventory(&self, vim_id: &str) -> Result<TaggedInventory, VimsError> {
        self.registered(vim_id)
            .await?
            .tagged_inventory()
            .await
            .map_err(|e| VimsError::Unusable(format!("VIM {vim_id}: {e}")))
    }

    async fn is_live(&self, vim_id: &str) -> Result<bool, StoreError> {
        let Some(registry) = &self.registry else {
            return Ok(false);
        };
        let loaded = registry.log.load::<VimRecord>(vim_id).await?;
        Ok(loaded.aggregate.live().is_some())
    }
}

/// The ids of every VIM ever registered: the lifecycle stream's VIM subjects, in one request.
async fn registered_ids(log: &EventLog) -> Result<Vec<String>, StoreError> {
    let subjects = log
        .stream()
        .info_with_subjects(names::VIM_SUBJECTS)
        .await
        .map_err(|e| NatsError::new("listing the VIM subjects", e))?;
    let mut ids: Vec<String> = subjects
        .map_ok(|(subject, _count)| subject)
        .try_collect::<Vec<String>>()
        .await
        .map_err(|e| NatsError::new("listing the VIM subjects", e))?
        .into_iter()
        .filter_map(|subject| match names::parse_lifecycle_subject(&subject) {
            Some((AggregateKind::Vim, id)) => Some(id.to_owned()),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// What the `openstack` driver needs of a registered VIM.
fn access(details: &VimDetails, credentials: VimCredentials) -> Result<OpenStackAccess, VimsError> {
    if details.vim_type != OPENSTACK_VIM_TYPE {
        return Err(VimsError::Unusable(format!(
            "VIM {}: type {:?} has no driver (only {OPENSTACK_VIM_TYPE:?})",
            details.vim_id, details.vim_type
        )));
    }
    let VimCredentials {
        username,
        password,
        user_domain_name,
        application_credential_id,
        application_credential_secret,
        project_name,
        project_domain_name,
        cert_verify,
    } = credentials;
    let credentials = match (
        username,
        password,
        application_credential_id,
        application_credential_secret,
    ) {
        (Some(username), Some(password), None, None) => {
            Credentials::Password { username, password }
        }
        (None, None, Some(id), Some(secret)) => Credentials::ApplicationCredential { id, secret },
        _ => {
            return Err(VimsError::Unusable(format!(
                "VIM {}: its credentials are neither a username with a password nor an application credential",
                details.vim_id
            )));
        }
    };
    Ok(OpenStackAccess {
        auth_url: details.auth_url.clone(),
        credentials,
        project_name,
        project_domain_name: or_default(project_domain_name),
        user_domain_name: or_default(user_domain_name.unwrap_or_default()),
        region_name: details
            .placement_attr
            .get("region_name")
            .and_then(|region| region.as_str())
            .map(str::to_owned),
        cert_verify,
    })
}

/// Keystone's own default domain when none is named (as Tacker's VIM config did).
fn or_default(domain: String) -> String {
    if domain.is_empty() {
        "Default".to_owned()
    } else {
        domain
    }
}

#[cfg(test)]
mod user_data_tests {
    use super::*;

    fn without_master_key() -> Vims {
        Vims {
            local: None,
            registry: None,
            drivers: Mutex::default(),
        }
    }

    #[tokio::test]
    async fn a_vnf_without_user_data_needs_no_key() {
        let opened = without_master_key()
            .user_data("v1", &serde_json::Value::Null)
            .await
            .expect("nothing to open");
        assert!(opened.is_empty());
    }

    #[tokio::test]
    async fn sealed_user_data_without_the_master_key_fails_naming_it() {
        let key = events::secrets::DataKey::generate().unwrap();
        let sealed = events::secrets::seal(
            &serde_json::json!({"VDU1": "#!/bin/sh"}),
            &key,
            USER_DATA_PATH,
        )
        .unwrap();
        match without_master_key().user_data("v1", &sealed).await {
            Err(VimsError::Unusable(reason)) => {
                assert!(reason.contains("--master-key"), "{reason}");
                assert!(reason.contains("v1"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
