//! python-tackerclient 1.14.0 (`ops/install-tackerclient.sh`), unmodified, drives the API: the
//! README's walk-through with Tacker's own client, its legacy VNFM commands and their output.

use std::path::PathBuf;
use std::process::Command;

use vnfm_tests::System;

/// Tacker's client, as `ops/install-tackerclient.sh` leaves it.
fn tacker() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/.venv-tacker/bin/tacker");
    assert!(
        path.exists(),
        "{} is missing: run ops/install-tackerclient.sh",
        path.display()
    );
    path
}

/// Runs `tacker ARGS` against `root` (the API's root URL) without Keystone; answers stdout.
fn run(root: &str, args: &[&str]) -> String {
    let out = Command::new(tacker())
        .args(["--os-auth-strategy", "noauth", "--os-url", root])
        .args(args)
        .output()
        .expect("run tacker");
    assert!(
        out.status.success(),
        "tacker {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The id of the VNF whose `vnf-create` printed `created`, once it is ACTIVE.
async fn active_vnf(system: &System, created: &str) -> String {
    let id = created
        .lines()
        .find(|line| line.contains("| id "))
        .and_then(|line| line.split('|').nth(2))
        .map(str::trim)
        .expect("the created VNF's id")
        .to_owned();
    system
        .wait_vnf(&id, "ACTIVE", |code, vnf| {
            code == 200 && vnf["vnf"]["status"] == "ACTIVE"
        })
        .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tackers_own_client_onboards_creates_shows_and_deletes() {
    let system = System::start().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let vnfd_file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/vnfd/tests/samples/tosca-vnfd-scale.yaml");
    let vnfd_file = vnfd_file.to_str().expect("a UTF-8 path");
    let created = tokio::task::spawn_blocking({
        let root = root.clone();
        let vnfd_file = vnfd_file.to_owned();
        move || {
            run(
                &root,
                &["vnfd-create", "--vnfd-file", &vnfd_file, "scaling"],
            );
            run(&root, &["vnf-create", "--vnfd-name", "scaling", "vnf1"])
        }
    })
    .await
    .unwrap();
    assert!(created.contains("vnf1"), "{created}");
    active_vnf(&system, &created).await;
    let shown = tokio::task::spawn_blocking({
        let root = root.clone();
        move || run(&root, &["vnf-show", "vnf1"])
    })
    .await
    .unwrap();
    assert!(shown.contains("ACTIVE"), "{shown}");
    let listed = tokio::task::spawn_blocking(move || {
        run(&root, &["vnf-delete", "vnf1"]);
        run(&root, &["vnfd-list"])
    })
    .await
    .unwrap();
    assert!(listed.contains("scaling"), "{listed}");
}

/// `vnf-create --param-file`: a VNFD whose inputs have no defaults onboards, and the VNF runs
/// with the file's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnf_create_with_a_param_file_runs_the_vnf_with_its_values() {
    let system = System::start().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/vnfd/tests/corpus");
    let vnfd_file = corpus.join("test-samples/sample-tosca-vnfd-param.yaml");
    let param_file = corpus.join("params/sample-tosca-vnf-values.yaml");
    let created = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            let vnfd_file = vnfd_file.to_str().expect("a UTF-8 path");
            let param_file = param_file.to_str().expect("a UTF-8 path");
            run(&root, &["vnfd-create", "--vnfd-file", vnfd_file, "param"]);
            run(
                &root,
                &[
                    "vnf-create",
                    "--vnfd-name",
                    "param",
                    "--param-file",
                    param_file,
                    "vnf-param",
                ],
            )
        }
    })
    .await
    .unwrap();
    let id = active_vnf(&system, &created).await;
    let spec = system.vnf(&id).await.vnfd.expect("the VNF's spec");
    assert_eq!(
        spec.vdus[0].image.as_deref(),
        Some("cirros-0.5.2-x86_64-disk")
    );
    assert_eq!(spec.vdus[0].mgmt_cp.as_deref(), Some("CP1"));
    tokio::task::spawn_blocking(move || run(&root, &["vnf-delete", "vnf-param"]))
        .await
        .unwrap();
    system.wait_vnf(&id, "deleted", |code, _| code == 404).await;
}
