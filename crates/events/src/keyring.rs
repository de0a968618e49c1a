//! Where the aggregates' data keys live (see [`secrets`](crate::secrets)): the bucket
//! [`names::DATA_KEY_BUCKET`], never the lifecycle log, each key wrapped with the master key
//! and bound to its name ([`names::data_key_name`]). A gateway makes an aggregate's key when it
//! seals the aggregate's first secret and reads it to show the secrets; a projector destroys
//! it when the aggregate is deleted ([`shred`]), after which the aggregate's sealed values on
//! the log can never be opened again.

use std::sync::Arc;

use async_nats::jetstream::{self, kv};

use crate::names::{self, AggregateKind};
use crate::nats_error::NatsError;
use crate::secrets::{DataKey, SecretError};
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A stored key that does not open with this master key (another deployment's key file?).
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The data keys, as a gateway reads and makes them with the master key.
#[derive(Clone)]
pub struct Keyring {
    bucket: kv::Store,
    master: Arc<DataKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

impl Keyring {
    /// Binds to the data keys' bucket.
    pub async fn open(
        jetstream: &jetstream::Context,
        master: Arc<DataKey>,
    ) -> Result<Keyring, StoreError> {
        Ok(Keyring {
            bucket: open_bucket(jetstream).await?,
            master,
        })
    }

    /// The aggregate's data key, made and stored first when it has none. Two gateways racing
    /// to make it both answer the one stored first.
    pub async fn key_for(&self, kind: AggregateKind, id: &str) -> Result<DataKey, KeyringError> {
        let name = names::data_key_name(kind, id);
        let key = DataKey::generate()?;
        let wrapped = key.wrap(&self.master, &name)?;
        match self.bucket.create(&name, wrapped.into()).await {
            Ok(_) => Ok(key),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.get(kind, id).await?.ok_or_else(|| {
                    NatsError::new("storing a data key destroyed while it was made", e).into()
                })
            }
            Err(e) => Err(NatsError::new("storing a data key", e).into()),
        }
    }

    /// The aggregate's data key; `None` when it never had one or it was destroyed.
    pub async fn get(
        &self,
        kind: AggregateKind,
        id: &str,
    ) -> Result<Option<DataKey>, KeyringError> {
        let name = names::data_key_name(kind, id);
        let Some(wrapped) = self
            .bucket
            .get(&name)
            .await
            .map_err(|e| NatsError::new("reading a data key", e))?
        else {
            return Ok(None);
        };
        let wrapped = String::from_utf8_lossy(&wrapped);
        Ok(Some(DataKey::unwrap(&wrapped, &self.master, &name)?))
    }
}

/// Binds to the data keys' bucket (a projector, to destroy keys; it cannot read them).
pub async fn open_bucket(jetstream: &jetstream::Context) -> Result<kv::Store, StoreError> {
    store::open_bucket(jetstream, names::DATA_KEY_BUCKET).await
}

/// Destroys the data key of a deleted aggregate, every stored revision of it, so that its
/// secrets on the log are unreadable for good. Idempotent.
pub async fn shred(bucket: &kv::Store, kind: AggregateKind, id: &str) -> Result<(), NatsError> {
    bucket
        .purge(names::data_key_name(kind, id))
        .await
        .map_err(|e| NatsError::new("destroying a data key", e))
}
