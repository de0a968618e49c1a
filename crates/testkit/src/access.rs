//! Who a test server lets in ([`Access`]): vnfm's six identities, with the permissions of
//! `events::access` and keys made by `events::credentials` in a temporary directory, and
//! testkit's own `superuser`, allowed everything, with which tests set a scene no role may
//! (create a test stream, forge a message). Production has no such user. Nobody else: an
//! anonymous connection is refused, as in production.

use std::path::PathBuf;
use std::sync::Arc;

use events::access::{self, Identity, Permissions};
use events::credentials::{self, Seed};
use events::secrets::DataKey;
use tempfile::TempDir;

/// Where `vnfm up` keeps the seeds in its data directory.
const CREDENTIALS: &str = "credentials";

/// The identities and keys of a test server (or of every node of a test cluster).
#[derive(Debug)]
pub struct Access {
    dir: TempDir,
    seeds: Vec<(Identity, Seed)>,
    superuser: Seed,
    /// Lets anybody in with every right, as vnfm's bus was before it had identities: only for
    /// benchmarks that measure what the permissions cost ([`Access::open`]).
    open: bool,
}

impl Access {
    /// Fresh keys for every identity and the superuser.
    ///
    /// # Panics
    ///
    /// When the temporary directory cannot be written.
    pub fn new() -> Access {
        let dir = tempfile::Builder::new()
            .prefix("testkit-credentials-")
            .tempdir()
            .expect("create a temporary credentials directory");
        let seeds =
            credentials::ensure(&dir.path().join(CREDENTIALS)).expect("make the identities' seeds");
        credentials::ensure_master_key(&credentials::master_key_path(
            &dir.path().join(CREDENTIALS),
        ))
        .expect("make the master key");
        let superuser = {
            // Beside the identities' directory, never in it: no vnfm command finds it there.
            let path = dir.path().join("superuser.nk");
            let written = credentials::ensure_seed(&path).expect("make the superuser's seed");
            Seed::read(written).expect("read the superuser's seed")
        };
        Access {
            dir,
            seeds,
            superuser,
            open: false,
        }
    }

    /// No authorization at all: every client is let in anonymously and may do anything. Only
    /// for benchmarks that compare with the open bus; every test runs with [`Access::new`].
    pub fn open() -> Access {
        Access {
            open: true,
            ..Access::new()
        }
    }

    /// Whether this is [`Access::open`].
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The server's `authorization` block: the six identities and the superuser (nothing when
    /// open).
    pub fn authorization(&self) -> String {
        if self.open {
            return String::new();
        }
        let everything = Permissions {
            publish_allow: vec![">".into()],
            publish_deny: Vec::new(),
            subscribe_allow: vec![">".into()],
        };
        access::authorization_of(
            self.seeds
                .iter()
                .map(|(identity, seed)| {
                    access::user(identity.name(), seed.public_key(), &identity.permissions())
                })
                .chain([access::user(
                    "testkit superuser",
                    self.superuser.public_key(),
                    &everything,
                )]),
        )
    }

    /// The seed file of `identity`, as `vnfm --nats-nkey` takes it.
    pub fn seed_path(&self, identity: Identity) -> PathBuf {
        credentials::seed_path(&self.dir(), identity)
    }

    /// The master key's file (made with the seeds, where `vnfm up` keeps it), as `vnfm
    /// gateway --master-key` takes it.
    pub fn master_key_path(&self) -> PathBuf {
        credentials::master_key_path(&self.dir())
    }

    /// The master key, for a gateway a test runs in its own process.
    ///
    /// # Panics
    ///
    /// When its file cannot be read.
    pub fn master_key(&self) -> Arc<DataKey> {
        Arc::new(credentials::read_master_key(&self.master_key_path()).expect("the master key"))
    }

    /// The flags of a `vnfm <command>` that runs as `identity`: its seed (`--nats-nkey`,
    /// unless the bus is open) and, for a gateway or a conductor, the master key (`--master-key`).
    pub fn role_args(&self, identity: Identity, command: &str) -> Vec<String> {
        let mut args = Vec::new();
        if !self.open {
            args.extend([
                "--nats-nkey".to_owned(),
                self.seed_path(identity).display().to_string(),
            ]);
        }
        // A conductor opens registered VIMs' credentials with it.
        if command == "gateway" || command == "conductor" {
            args.extend([
                "--master-key".to_owned(),
                self.master_key_path().display().to_string(),
            ]);
        }
        args
    }

    /// The directory of the identities' seed files (`<identity>.nk`).
    pub fn dir(&self) -> PathBuf {
        self.data_dir().join(CREDENTIALS)
    }

    /// A `vnfm up --data-dir` whose `credentials/` holds these seeds, for `vnfm up --nats-url`
    /// against this server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// How a client of `identity` connects (anonymously, on its inbox prefix, when open).
    pub fn options(&self, identity: Identity) -> async_nats::ConnectOptions {
        if self.open {
            return async_nats::ConnectOptions::new().custom_inbox_prefix(identity.inbox_prefix());
        }
        let (_, seed) = self
            .seeds
            .iter()
            .find(|(i, _)| *i == identity)
            .expect("every identity has a seed");
        credentials::connect_options(identity, seed)
    }

    /// How the superuser connects (anonymously when open).
    pub fn superuser_options(&self) -> async_nats::ConnectOptions {
        if self.open {
            return async_nats::ConnectOptions::new();
        }
        async_nats::ConnectOptions::with_nkey(self.superuser.secret().to_owned())
    }
}

impl Default for Access {
    fn default() -> Self {
        Access::new()
    }
}
