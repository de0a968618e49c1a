//! The nkey credentials of vnfm's identities ([`Identity`]): one seed file per identity in a
//! directory (`<identity>.nk`, mode 0600, the directory 0700), made on first use and reused
//! after; and the master key that wraps the secrets' data keys (`master.key`, 0600, the same
//! way). A seed never leaves its file but to sign a connection's challenge: [`Seed`] does not
//! print it, and only public keys go into the server's configuration.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::access::Identity;
use crate::secrets::DataKey;

/// The mode of a seed file (and of a TLS private key): its owner reads and writes it, nobody
/// else sees it.
const SEED_FILE_MODE: u32 = 0o600;
/// The mode of the credentials directory.
const CREDENTIALS_DIR_MODE: u32 = 0o700;
/// Mode bits that let anybody but the owner read, write or run a file.
const NOT_OWNER_BITS: u32 = 0o077;
/// The largest seed file read: a seed is 58 characters.
const SEED_FILE_BYTES_MAX: u64 = 4096;
/// The master key's file name in a credentials directory.
const MASTER_KEY_FILE: &str = "master.key";
/// The largest master key file read: a key is 64 hex digits and a newline.
const MASTER_KEY_FILE_BYTES_MAX: u64 = 128;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} can be read by others (mode {mode:04o}); a seed file must be 0600 (chmod 600 {path})"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} holds no NATS user nkey seed (a line starting with SU): {reason}")]
    NotASeed { path: PathBuf, reason: String },
    #[error("{path} is {bytes} bytes, more than the {max} such a file may have")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
    #[error("{path} holds no master key (64 hex digits, as `vnfm up` writes it)")]
    NotAMasterKey { path: PathBuf },
    #[error("cannot make the TLS certificates in {dir}: {reason}")]
    Certificate { dir: PathBuf, reason: String },
}

/// A user nkey seed read from its file. Its `Debug` shows the public key only.
#[derive(Clone)]
pub struct Seed {
    seed: String,
    public_key: String,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl Seed {
    /// The seed, for the client to sign the server's challenge with; never for a log.
    pub fn secret(&self) -> &str {
        &self.seed
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Reads the seed in `path`: its first line that is not blank or a comment. Refuses a file
    /// others can read, and anything but a user seed.
    pub fn read(path: &Path) -> Result<Seed, CredentialsError> {
        let text = read_private(path, SEED_FILE_BYTES_MAX)?;
        let seed = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("//"))
            .unwrap_or_default();
        Seed::parse(seed).map_err(|reason| CredentialsError::NotASeed {
            path: path.to_owned(),
            reason,
        })
    }

    fn parse(seed: &str) -> Result<Seed, String> {
        if !seed.starts_with("SU") {
            return Err("it does not start with SU".to_owned());
        }
        let pair = nkeys::KeyPair::from_seed(seed).map_err(|e| e.to_string())?;
        Ok(Seed {
            seed: seed.to_owned(),
            public_key: pair.public_key(),
        })
    }
}

/// The text of `path`, a file only its owner may read (else [`CredentialsError::Exposed`]),
/// of at most `bytes_max` bytes.
fn read_private(path: &Path, bytes_max: u64) -> Result<String, CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & NOT_OWNER_BITS != 0 {
        return Err(CredentialsError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    if metadata.len() > bytes_max {
        return Err(CredentialsError::TooLarge {
            path: path.to_owned(),
            bytes: metadata.len(),
            max: bytes_max,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// The master key's file in a credentials directory.
pub fn master_key_path(dir: &Path) -> PathBuf {
    dir.join(MASTER_KEY_FILE)
}

/// The master key in `path`, written there first (a fresh random key, 0600) when the file does
/// not exist yet. An existing file is read, never rewritten: a new key would make every
/// secret sealed under the old one unreadable.
pub fn ensure_master_key(path: &Path) -> Result<DataKey, CredentialsError> {
    if !path.exists() {
        let key = DataKey::generate().map_err(|e| CredentialsError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
        write_private(path, &format!("{}\n", key.to_hex()))?;
    }
    read_master_key(path)
}

/// The master key in `path`, a file only its owner may read.
pub fn read_master_key(path: &Path) -> Result<DataKey, CredentialsError> {
    let text = read_private(path, MASTER_KEY_FILE_BYTES_MAX)?;
    DataKey::from_hex(&text).ok_or_else(|| CredentialsError::NotAMasterKey {
        path: path.to_owned(),
    })
}

/// How a client of `identity` connects with `seed`: signing the server's challenge with it, and
/// receiving replies on the identity's own inbox prefix (the only inbox it may subscribe to).
pub fn connect_options(identity: Identity, seed: &Seed) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_nkey(seed.secret().to_owned())
        .custom_inbox_prefix(identity.inbox_prefix())
}

/// The seed file of `identity` in `dir`.
pub fn seed_path(dir: &Path, identity: Identity) -> PathBuf {
    dir.join(format!("{}.nk", identity.name()))
}

/// The seed of every identity in `dir`, each made (a fresh random user nkey, written 0600) when
/// its file does not exist yet. Existing files are read, never rewritten.
pub fn ensure(dir: &Path) -> Result<Vec<(Identity, Seed)>, CredentialsError> {
    private_dir(dir)?;
    Identity::ALL
        .into_iter()
        .map(|identity| {
            Ok((
                identity,
                Seed::read(ensure_seed(&seed_path(dir, identity))?)?,
            ))
        })
        .collect()
}

/// `path`, after writing a fresh random user seed there (0600) if it does not exist yet.
pub fn ensure_seed(path: &Path) -> Result<&Path, CredentialsError> {
    if !path.exists() {
        write_new_seed(path)?;
    }
    Ok(path)
}

fn write_new_seed(path: &Path) -> Result<(), CredentialsError> {
    let seed = nkeys::KeyPair::new_user()
        .seed()
        .map_err(|e| CredentialsError::NotASeed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    write_private(path, &format!("{seed}\n"))
}

/// Writes `contents` to a new file at `path` that only its owner can read (0600). Fails if the
/// file exists: two processes making the same file never both write it.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SEED_FILE_MODE)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Makes `dir` (0700) and its parents when missing.
pub(crate) fn private_dir(dir: &Path) -> Result<(), CredentialsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(CREDENTIALS_DIR_MODE)
        .create(dir)
        .map_err(|source| CredentialsError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("credentials");
        let first = ensure(&dir).unwrap();
        assert_eq!(first.len(), Identity::ALL.len());
        let mode = std::fs::metadata(seed_path(&dir, Identity::Gateway))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, SEED_FILE_MODE);
        let again = ensure(&dir).unwrap();
        let keys = |seeds: &[(Identity, Seed)]| -> Vec<String> {
            seeds
                .iter()
                .map(|(_, s)| s.public_key().to_owned())
                .collect()
        };
        assert_eq!(keys(&first), keys(&again));
        assert!(first[0].1.public_key().starts_with('U'));
        assert!(!format!("{:?}", first[0].1).contains(first[0].1.secret()));
    }

    #[test]
    fn the_master_key_is_made_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = master_key_path(dir.path());
        let made = ensure_master_key(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            SEED_FILE_MODE
        );
        assert_eq!(ensure_master_key(&path).unwrap().to_hex(), made.to_hex());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_master_key(&path),
            Err(CredentialsError::Exposed { .. })
        ));
        let other = dir.path().join("other.key");
        write_private(&other, "not a key\n").unwrap();
        let error = read_master_key(&other).unwrap_err().to_string();
        assert!(error.contains("holds no master key"), "{error}");
    }

    #[test]
    fn an_exposed_or_foreign_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.nk");
        std::fs::write(&path, "SUNOTASEED\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let exposed = Seed::read(&path).unwrap_err().to_string();
        assert!(exposed.contains("mode 0644"), "{exposed}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let foreign = Seed::read(&path).unwrap_err().to_string();
        assert!(
            foreign.contains("holds no NATS user nkey seed"),
            "{foreign}"
        );
    }
}
