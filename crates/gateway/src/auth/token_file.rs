//! The token-file back end (`--auth token --token-file FILE`): many tokens, each with a user,
//! a project and roles, stored as SHA-256 hashes only, one a line:
//!
//! ```text
//! # sha256-hex-of-token                                           user   project  roles
//! 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 alice  p1       member,reader
//! ```
//!
//! The file is checked for a change at most once per [`TOKEN_FILE_RELOAD_CHECK_INTERVAL`] and
//! re-read when it changed, so tokens rotate without a restart. A file open to group or others
//! is refused: at start with an error, on a reload by keeping the tokens read before.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::{AuthError, Authenticator, Principal, Role};

/// How often at most a request looks whether the token file changed: a removed token stops
/// working within a second, and a gateway answering thousands of requests a second makes one
/// `stat` a second, not one per request.
pub const TOKEN_FILE_RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Random bytes in a token `vnfm token create` makes: 256 bits, beyond any guessing.
const TOKEN_BYTES: usize = 32;
/// Permission bits that must be clear on a token file: nobody but its owner reads the hashes
/// (an offline guess at a weak token is then impossible) or adds a line (which would grant a role).
const OPEN_TO_OTHERS_MODE_BITS: u32 = 0o077;
/// The mode `vnfm token create` gives a token file it creates.
const TOKEN_FILE_MODE: u32 = 0o600;
/// Fields of a line: hash, user, project, roles.
const LINE_FIELDS: usize = 4;

/// One line of a token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    pub principal: Principal,
}

/// Why a token file cannot be used (or a token not added to it).
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is open to group or others (mode {mode:04o}); it must be readable by its owner only (chmod 600)",
        path.display()
    )]
    OpenToOthers { path: PathBuf, mode: u32 },
    #[error("{}, line {line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{} holds no token; add one with `vnfm token create`", path.display())]
    Empty { path: PathBuf },
    #[error("cannot add a token: {0}")]
    InvalidEntry(String),
    #[error("no random source for a new token: {0}")]
    Random(String),
}

/// A token file that could not be re-read; the tokens read before stay in force.
#[derive(Debug, thiserror::Error)]
#[error("token file not reloaded, the previous tokens stay in force: {0}")]
pub struct ReloadError(#[from] pub TokenFileError);

/// The entries of a token file's text; `Err((line, reason))` names the first bad line (from 1).
pub fn parse_token_file(text: &str) -> Result<Vec<TokenEntry>, (usize, String)> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        entries.push(parse_line(line).map_err(|reason| (index + 1, reason))?);
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Result<TokenEntry, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [hash, user, project, roles] = fields[..] else {
        return Err(format!(
            "expected {LINE_FIELDS} fields (sha256-hex user project role[,role...]), found {}",
            fields.len()
        ));
    };
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hash, &mut digest)
        .map_err(|_| format!("{hash:?} is not a SHA-256 in hex (64 hex digits)"))?;
    Ok(TokenEntry {
        hash: digest,
        principal: Principal {
            user_id: user.to_owned(),
            project_id: project.to_owned(),
            roles: parse_roles(roles.split(','))?,
        },
    })
}

/// Roles named in a token file or on `vnfm token create`'s command line. Unlike Keystone's
/// (where a user has other services' roles too), an unknown name here is a typo and refused.
pub fn parse_roles<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<BTreeSet<Role>, String> {
    let roles = names
        .into_iter()
        .map(|name| {
            Role::parse(name)
                .ok_or_else(|| format!("unknown role {name:?}; one of admin, member, reader"))
        })
        .collect::<Result<BTreeSet<Role>, String>>()?;
    if roles.is_empty() {
        return Err("at least one role is required".into());
    }
    Ok(roles)
}

/// A user or project id as a token file can hold it: one word without `#`.
pub fn check_word(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.contains(char::is_whitespace) || value.contains('#') {
        return Err(format!(
            "{what} {value:?} must be non-empty, without spaces or '#'"
        ));
    }
    Ok(())
}

/// The SHA-256 of a token, in hex: what a token file holds for it.
pub fn hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token: [`TOKEN_BYTES`] from the OS's random source, in hex.
pub fn new_token() -> Result<String, TokenFileError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| TokenFileError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The token file line of `token` for this user, project and roles; `Err` names a bad value.
pub fn entry_line(
    token: &str,
    user_id: &str,
    project_id: &str,
    roles: &[String],
) -> Result<String, TokenFileError> {
    check_word("user", user_id).map_err(TokenFileError::InvalidEntry)?;
    check_word("project", project_id).map_err(TokenFileError::InvalidEntry)?;
    let roles =
        parse_roles(roles.iter().map(String::as_str)).map_err(TokenFileError::InvalidEntry)?;
    let roles: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    Ok(format!(
        "{} {user_id} {project_id} {}\n",
        hash_hex(token),
        roles.join(",")
    ))
}

/// Appends `line` to the token file at `path`, creating it readable by its owner only. An
/// existing file open to others is refused: the gateway would refuse it too.
pub fn append_line(path: &Path, line: &str) -> Result<(), TokenFileError> {
    let write = |source| TokenFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(TOKEN_FILE_MODE)
        .open(path)
        .map_err(write)?;
    let mode = file.metadata().map_err(write)?.mode();
    if mode & OPEN_TO_OTHERS_MODE_BITS != 0 {
        return Err(TokenFileError::OpenToOthers {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    file.write_all(line.as_bytes()).map_err(write)?;
    file.sync_all().map_err(write)
}

/// What tells one version of the file from another without reading it: a rewrite changes the
/// modification time or the length, a `chmod` the change time, a rename-over the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        let ns = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
        Stamp {
            inode: metadata.ino(),
            len: metadata.len(),
            modified_ns: ns(metadata.mtime(), metadata.mtime_nsec()),
            changed_ns: ns(metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// Reads and checks the whole file; its stamp is taken from the same open file.
fn load(path: &Path) -> Result<(Vec<TokenEntry>, Stamp), TokenFileError> {
    let read = |source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let metadata = file.metadata().map_err(read)?;
    if metadata.mode() & OPEN_TO_OTHERS_MODE_BITS != 0 {
        return Err(TokenFileError::OpenToOthers {
            path: path.to_owned(),
            mode: metadata.mode() & 0o7777,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read)?;
    let entries = parse_token_file(&text).map_err(|(line, reason)| TokenFileError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    })?;
    Ok((entries, Stamp::of(&metadata)))
}

/// The token-file authenticator.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// Taken by every request for a moment (never across an await); replaced by the request
    /// that finds the file changed.
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    entries: Arc<Vec<TokenEntry>>,
    /// The version read, or refused, last: a refused version is not re-read (nor logged again)
    /// until the file changes again.
    stamp: Stamp,
    checked_at: Instant,
}

impl TokenFile {
    /// Reads the file, which must be its owner's only and hold at least one token.
    pub fn open(path: &Path) -> Result<TokenFile, TokenFileError> {
        let (entries, stamp) = load(path)?;
        if entries.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(TokenFile {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded {
                entries: Arc::new(entries),
                stamp,
                checked_at: Instant::now(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries in force, re-read first if the file changed and was not looked at for
    /// [`TOKEN_FILE_RELOAD_CHECK_INTERVAL`].
    fn entries(&self) -> Arc<Vec<TokenEntry>> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(loaded.checked_at) >= TOKEN_FILE_RELOAD_CHECK_INTERVAL {
            loaded.checked_at = now;
            if let Err(e) = self.reload(&mut loaded) {
                tracing::error!(path = %self.path.display(), error = %e, "Token file refused.");
            }
        }
        loaded.entries.clone()
    }

    fn reload(&self, loaded: &mut Loaded) -> Result<(), ReloadError> {
        let metadata = std::fs::metadata(&self.path).map_err(|source| TokenFileError::Read {
            path: self.path.clone(),
            source,
        })?;
        let stamp = Stamp::of(&metadata);
        if stamp == loaded.stamp {
            return Ok(());
        }
        loaded.stamp = stamp;
        let (entries, stamp) = load(&self.path)?;
        loaded.stamp = stamp;
        tracing::info!(path = %self.path.display(), tokens = entries.len(), "Token file reloaded.");
        loaded.entries = Arc::new(entries);
        Ok(())
    }
}

/// The principal of the entry whose hash is `token`'s. Every entry is compared in constant
/// time, so timing tells nothing about how close a guess came.
fn lookup(entries: &[TokenEntry], token: &str) -> Option<Principal> {
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for entry in entries {
        if bool::from(entry.hash.ct_eq(&hash)) {
            found = Some(&entry.principal);
        }
    }
    found.cloned()
}

#[async_trait::async_trait]
impl Authenticator for TokenFile {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        lookup(&self.entries(), token).ok_or(AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn line(token: &str, user: &str, project: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        entry_line(token, user, project, &roles).unwrap()
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_parses_into_hashes_users_projects_and_roles() {
        let text = format!(
            "# comment\n\n{}   {}",
            line("t1", "alice", "p1", &["member", "reader"]),
            line("t2", "bob", "p2", &["_member_"])
        );
        let entries = parse_token_file(&text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(hex::encode(entries[0].hash), hash_hex("t1"));
        assert_eq!(entries[0].principal.user_id, "alice");
        assert_eq!(entries[0].principal.project_id, "p1");
        assert_eq!(
            entries[0].principal.roles,
            BTreeSet::from([Role::Member, Role::Reader])
        );
        assert_eq!(entries[1].principal.roles, BTreeSet::from([Role::Member]));
        assert_eq!(lookup(&entries, "t2").unwrap().user_id, "bob");
        assert_eq!(lookup(&entries, "t3"), None);
    }

    #[test]
    fn a_bad_line_is_named() {
        let good = line("t1", "alice", "p1", &["member"]);
        let cases = [
            (format!("{good}abc alice p1 member\n"), 2, "not a SHA-256"),
            (
                format!("{} alice p1\n", hash_hex("x")),
                1,
                "expected 4 fields",
            ),
            (
                format!("{} alice p1 membr\n", hash_hex("x")),
                1,
                "unknown role",
            ),
        ];
        for (text, at, says) in cases {
            let (line, reason) = parse_token_file(&text).unwrap_err();
            assert_eq!(line, at, "{text}");
            assert!(reason.contains(says), "{reason}");
        }
        assert!(entry_line("t", "a b", "p", &["member".into()]).is_err());
        assert!(entry_line("t", "a", "p", &[]).is_err());
    }

    #[test]
    fn a_file_open_to_others_or_empty_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        write(&path, &line("t1", "alice", "p1", &["member"]), 0o644);
        let e = TokenFile::open(&path).unwrap_err();
        assert!(
            matches!(e, TokenFileError::OpenToOthers { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        write(&path, "# nothing yet\n", 0o600);
        assert!(matches!(
            TokenFile::open(&path),
            Err(TokenFileError::Empty { .. })
        ));
    }

    #[test]
    fn new_tokens_differ_and_are_256_bits() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_BYTES * 2);
    }

    #[test]
    fn appending_creates_the_file_for_its_owner_only_and_refuses_an_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        append_line(&path, &line("t1", "alice", "p1", &["member"])).unwrap();
        append_line(&path, &line("t2", "bob", "p1", &["reader"])).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            parse_token_file(&std::fs::read_to_string(&path).unwrap())
                .unwrap()
                .len(),
            2
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            append_line(&path, "x"),
            Err(TokenFileError::OpenToOthers { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_rotate_without_a_restart_and_a_bad_reload_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let first = line("t1", "alice", "p1", &["member"]);
        write(&path, &first, 0o600);
        let file = TokenFile::open(&path).unwrap();
        assert_eq!(file.authenticate("t1").await.unwrap().user_id, "alice");
        assert_eq!(file.authenticate("").await, Err(AuthError::Missing));

        // Added: not looked for within the interval, then in force.
        append_line(&path, &line("t2", "bob", "p2", &["reader"])).unwrap();
        assert_eq!(file.authenticate("t2").await, Err(AuthError::Invalid));
        tokio::time::advance(TOKEN_FILE_RELOAD_CHECK_INTERVAL).await;
        assert_eq!(file.authenticate("t2").await.unwrap().user_id, "bob");

        // Removed: refused after the next check.
        write(&path, &first, 0o600);
        tokio::time::advance(TOKEN_FILE_RELOAD_CHECK_INTERVAL).await;
        assert_eq!(file.authenticate("t2").await, Err(AuthError::Invalid));
        assert!(file.authenticate("t1").await.is_ok());

        // Opened to others, or garbled: the tokens read before stay.
        write(&path, &line("t3", "carol", "p1", &["admin"]), 0o644);
        tokio::time::advance(TOKEN_FILE_RELOAD_CHECK_INTERVAL).await;
        assert_eq!(file.authenticate("t3").await, Err(AuthError::Invalid));
        assert!(file.authenticate("t1").await.is_ok());
        write(&path, "garbage\n", 0o600);
        tokio::time::advance(TOKEN_FILE_RELOAD_CHECK_INTERVAL).await;
        assert!(file.authenticate("t1").await.is_ok());

        // Fixed: in force again.
        write(&path, &line("t3", "carol", "p1", &["admin"]), 0o600);
        tokio::time::advance(TOKEN_FILE_RELOAD_CHECK_INTERVAL).await;
        assert!(file.authenticate("t3").await.unwrap().is_admin());
        assert_eq!(file.authenticate("t1").await, Err(AuthError::Invalid));
    }
}
