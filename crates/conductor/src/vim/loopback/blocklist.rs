//! Which loopback instances are unreachable: an ipset `hash:ip` set of blocked addresses and
//! one iptables rule that drops every packet arriving on `lo` for an address in it (ICMP echo
//! requests and TCP among them, so a probe goes unanswered and times out, as for a dead host).
//!
//! The set is `{prefix}-lo-blocked` and the rule `-A INPUT -i lo -m set --match-set SET dst -j
//! DROP`, first in `INPUT`. A conductor makes both at start unless they exist ([`Blocklist::ensure`],
//! under a host-wide `flock` so that two conductors starting together add one rule); nothing
//! but [`Blocklist::remove`] (a test's cleanup) takes them away. Tests and benchmarks block and
//! unblock addresses in bulk, one `ipset restore` per [`BLOCK_BATCH_ADDRESSES_MAX`] addresses
//! (`vnfm vim loopback block|unblock`, or this API).
//!
//! `ipset` and `iptables` (nf_tables backend) are Debian packages; `ops/install-loopback-vim.sh`
//! installs them. The command text is pure ([`restore_script`]); the rest runs them.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::vim::VimError;

/// The most addresses one set holds (`ipset`'s `maxelem`; its default, 65,536, is too few for
/// a storm at fleet scale): 10 % of a fleet of ten million. A block past it fails, naming it.
pub const BLOCKED_ADDRESSES_MAX: usize = 1 << 20;

/// The most addresses one `ipset restore` call carries: a bigger block is cut into calls of
/// this size. 65,536 lines are about 2 MiB of script, which `ipset` reads in well under a
/// second; one call per storm of 10,000 addresses.
pub const BLOCK_BATCH_ADDRESSES_MAX: usize = 65_536;

/// An `ipset` or `iptables` call takes milliseconds, a full batch under a second; a minute
/// means the tool or the kernel is stuck.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One lock file per host: every loopback VIM on it checks and adds its rule under it.
const LOCK_PATH: &str = "/run/vnfm-loopback-vim.lock";

/// What the set's name adds to the VIM's prefix; with a prefix of at most 5 characters it
/// stays within `ipset`'s 31.
const SET_SUFFIX: &str = "-lo-blocked";

/// What a batch does to the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlocklistOp {
    Block,
    Unblock,
}

/// The `ipset restore -exist` script that applies `op` to `addresses` in `set`: blocking a
/// blocked address or unblocking a reachable one changes nothing.
pub fn restore_script(set: &str, op: BlocklistOp, addresses: &[Ipv4Addr]) -> String {
    let verb = match op {
        BlocklistOp::Block => "add",
        BlocklistOp::Unblock => "del",
    };
    let mut script = String::with_capacity(addresses.len() * (verb.len() + set.len() + 18));
    for address in addresses {
        script.push_str(verb);
        script.push(' ');
        script.push_str(set);
        script.push(' ');
        script.push_str(&address.to_string());
        script.push('\n');
    }
    script
}

/// The iptables rule (after the chain) that drops what arrives on `lo` for `set`'s addresses.
pub fn rule(set: &str) -> [&str; 10] {
    [
        "INPUT",
        "-i",
        "lo",
        "-m",
        "set",
        "--match-set",
        set,
        "dst",
        "-j",
        "DROP",
    ]
}

/// The addresses of an `ipset save SET` listing (`add SET 127.128.0.5` lines), sorted.
pub fn parse_members(set: &str, listing: &str) -> Vec<Ipv4Addr> {
    let mut members: Vec<Ipv4Addr> = listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("add"), Some(name), Some(address)) if name == set => address.parse().ok(),
                _ => None,
            }
        })
        .collect();
    members.sort_unstable();
    members
}

/// A loopback VIM's blocklist: its set and rule on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocklist {
    set: String,
}

/// A failed command, with what it said.
fn command_failed(program: &str, args: &[&str], detail: impl std::fmt::Display) -> VimError {
    VimError::Failed(format!("`{program} {}` failed: {detail}", args.join(" ")))
}

/// Runs `program args`, feeding it `stdin`, and answers its standard output.
async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, VimError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            command_failed(
                program,
                args,
                format!("cannot run it ({e}); ops/install-loopback-vim.sh installs it"),
            )
        })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(text.as_bytes())
            .await
            .map_err(|e| command_failed(program, args, format!("writing its input: {e}")))?;
    }
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| command_failed(program, args, format!("no end within {COMMAND_TIMEOUT:?}")))?
        .map_err(|e| command_failed(program, args, e))?;
    answer(program, args, &output)
}

impl Blocklist {
    /// The blocklist of the loopback VIM whose names start with `prefix` (the conductor's
    /// `--vim-prefix`: 1 to 5 of `[a-z0-9]`).
    pub fn new(prefix: &str) -> Result<Self, VimError> {
        crate::vim::local::validate_prefix(prefix).map_err(VimError::Failed)?;
        Ok(Blocklist {
            set: format!("{prefix}{SET_SUFFIX}"),
        })
    }

    /// The ipset set's name.
    pub fn set(&self) -> &str {
        &self.set
    }

    /// Makes the set and its rule unless they exist.
    pub async fn ensure(&self) -> Result<(), VimError> {
        let maxelem = BLOCKED_ADDRESSES_MAX.to_string();
        run(
            "ipset",
            &[
                "create", &self.set, "hash:ip", "maxelem", &maxelem, "-exist",
            ],
            None,
        )
        .await?;
        let lock = host_lock().await?;
        let rule = rule(&self.set);
        let check = [&["-w", "-C"][..], &rule[..]].concat();
        if run("iptables", &check, None).await.is_err() {
            let insert = [&["-w", "-I"][..], &rule[..1], &["1"][..], &rule[1..]].concat();
            run("iptables", &insert, None).await?;
            tracing::info!(set = %self.set, "Made the loopback VIM's blocklist rule.");
        }
        drop(lock);
        Ok(())
    }

    /// Makes `addresses` unreachable, in batches of [`BLOCK_BATCH_ADDRESSES_MAX`].
    pub async fn block(&self, addresses: &[Ipv4Addr]) -> Result<(), VimError> {
        self.apply(BlocklistOp::Block, addresses).await
    }

    /// Makes `addresses` reachable again, in batches of [`BLOCK_BATCH_ADDRESSES_MAX`].
    pub async fn unblock(&self, addresses: &[Ipv4Addr]) -> Result<(), VimError> {
        self.apply(BlocklistOp::Unblock, addresses).await
    }

    /// Applies `op` to `addresses`, in batches of [`BLOCK_BATCH_ADDRESSES_MAX`].
    pub async fn apply(&self, op: BlocklistOp, addresses: &[Ipv4Addr]) -> Result<(), VimError> {
        for batch in addresses.chunks(BLOCK_BATCH_ADDRESSES_MAX) {
            let script = restore_script(&self.set, op, batch);
            run("ipset", &["restore", "-exist"], Some(&script))
                .await
                .map_err(|e| match (op, e) {
                    (BlocklistOp::Block, VimError::Failed(reason))
                        if reason.contains("is full") =>
                    {
                        VimError::Exhausted(format!(
                            "{}: holds at most {BLOCKED_ADDRESSES_MAX} addresses",
                            self.set
                        ))
                    }
                    (_, e) => e,
                })?;
        }
        Ok(())
    }

    /// The blocked addresses, sorted.
    pub async fn members(&self) -> Result<Vec<Ipv4Addr>, VimError> {
        let listing = run("ipset", &["save", &self.set], None).await?;
        Ok(parse_members(&self.set, &listing))
    }

    /// Removes the rule and the set (a test's cleanup, from its `Drop`: blocking; no role
    /// calls it).
    pub fn remove_blocking(&self) -> Result<(), VimError> {
        let lock = host_lock_blocking()?;
        let rule = rule(&self.set);
        let delete = [&["-w", "-D"][..], &rule[..]].concat();
        while run_blocking("iptables", &delete).is_ok() {}
        drop(lock);
        match run_blocking("ipset", &["destroy", &self.set]) {
            Err(VimError::Failed(reason)) if reason.contains("does not exist") => Ok(()),
            other => other.map(drop),
        }
    }
}

/// A finished command's standard output, or an error with its status and standard error.
fn answer(program: &str, args: &[&str], output: &Output) -> Result<String, VimError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(command_failed(
            program,
            args,
            format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ))
    }
}

/// Runs `program args` on this thread and answers its standard output.
fn run_blocking(program: &str, args: &[&str]) -> Result<String, VimError> {
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| command_failed(program, args, format!("cannot run it ({e})")))?;
    answer(program, args, &output)
}

/// The host-wide lock of the rules, held until the file is dropped.
fn host_lock_blocking() -> Result<File, VimError> {
    let path = PathBuf::from(LOCK_PATH);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| VimError::Failed(format!("cannot open {}: {e}", path.display())))?;
    file.lock()
        .map_err(|e| VimError::Failed(format!("cannot lock {}: {e}", path.display())))?;
    Ok(file)
}

/// [`host_lock_blocking`], off the runtime's workers.
async fn host_lock() -> Result<File, VimError> {
    tokio::task::spawn_blocking(host_lock_blocking)
        .await
        .map_err(|e| VimError::Failed(format!("locking the blocklist rules: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_line_per_address() {
        let addresses = [Ipv4Addr::new(127, 128, 0, 5), Ipv4Addr::new(127, 200, 1, 2)];
        assert_eq!(
            restore_script("t1-lo-blocked", BlocklistOp::Block, &addresses),
            "add t1-lo-blocked 127.128.0.5\nadd t1-lo-blocked 127.200.1.2\n"
        );
        assert_eq!(
            restore_script("t1-lo-blocked", BlocklistOp::Unblock, &addresses[..1]),
            "del t1-lo-blocked 127.128.0.5\n"
        );
        assert_eq!(restore_script("s", BlocklistOp::Block, &[]), "");
    }

    #[test]
    fn the_rule_drops_what_arrives_on_lo_for_the_set() {
        assert_eq!(
            rule("vnfm-lo-blocked").join(" "),
            "INPUT -i lo -m set --match-set vnfm-lo-blocked dst -j DROP"
        );
    }

    #[test]
    fn a_set_name_fits_ipset_and_takes_a_valid_prefix_only() {
        let longest = Blocklist::new("abcde").unwrap();
        assert!(longest.set().len() <= 31, "{}", longest.set());
        assert_eq!(Blocklist::new("vnfm").unwrap().set(), "vnfm-lo-blocked");
        for bad in ["", "abcdef", "A", "a-b"] {
            assert!(Blocklist::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn members_are_read_from_a_save_listing() {
        let listing = "create s hash:ip family inet hashsize 1024 maxelem 1048576\nadd s 127.200.1.2\nadd s 127.128.0.5\nadd other 127.1.1.1\n";
        assert_eq!(
            parse_members("s", listing),
            vec![Ipv4Addr::new(127, 128, 0, 5), Ipv4Addr::new(127, 200, 1, 2)]
        );
    }
}
