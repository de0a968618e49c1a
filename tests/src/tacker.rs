//! python-tackerclient 1.14.0 (`ops/install-tackerclient.sh`), unmodified: the `tacker` CLI
//! run against a test's API, without Keystone.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Tacker's client, as `ops/install-tackerclient.sh` leaves it.
pub fn tacker() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/.venv-tacker/bin/tacker");
    assert!(
        path.exists(),
        "{} is missing: run ops/install-tackerclient.sh",
        path.display()
    );
    path
}

/// Runs `tacker ARGS` against `root` (the API's root URL) without Keystone.
pub fn tacker_output(root: &str, args: &[&str]) -> Output {
    Command::new(tacker())
        .args(["--os-auth-strategy", "noauth", "--os-url", root])
        .args(args)
        .output()
        .expect("run tacker")
}

/// Runs `tacker ARGS`, which must succeed; answers stdout.
pub fn run(root: &str, args: &[&str]) -> String {
    let out = tacker_output(root, args);
    assert!(
        out.status.success(),
        "tacker {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tacker ARGS`, which must fail; answers what it printed.
pub fn run_refused(root: &str, args: &[&str]) -> String {
    let out = tacker_output(root, args);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "tacker {args:?} succeeded: {printed}"
    );
    printed
}

/// The `id` row of a `tacker *-create`'s table.
pub fn id_in(table: &str) -> String {
    table
        .lines()
        .find(|line| line.contains("| id "))
        .and_then(|line| line.split('|').nth(2))
        .map(str::trim)
        .expect("an id row")
        .to_owned()
}
