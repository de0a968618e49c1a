//! python-tackerclient 1.14.0 (`ops/install-tackerclient.sh`), unmodified, drives the API: the
//! README's walk-through with Tacker's own client, its legacy VNFM commands and their output.

use std::path::PathBuf;

use vnfm_tests::System;
use vnfm_tests::tacker::{id_in, run, run_refused, tacker_output};

/// The id of the VNF whose `vnf-create` printed `created`, once it is ACTIVE.
async fn active_vnf(system: &System, created: &str) -> String {
    let id = id_in(created);
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

/// The rest of the legacy API through Tacker's client: a duplicate VNFD or VNF name refused
/// naming the clash, `vnf-list --page-size 2` walking every page by the `vnfs_links`, and
/// `vnf-update --config-file` taking the VNF through PENDING_UPDATE back to ACTIVE with the
/// config handed to the local VIM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tackers_own_client_refuses_duplicates_pages_and_updates() {
    let system = System::start().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/vnfd/tests/samples");
    let vnfd_file = samples.join("tosca-vnfd-monitor.yaml");
    let vnfd_file = vnfd_file.to_str().expect("a UTF-8 path").to_owned();
    let config_dir = tempfile::tempdir().unwrap();
    let config_file = config_dir.path().join("config.yaml");
    std::fs::write(
        &config_file,
        "vdus:\n  VDU1:\n    config:\n      motd: updated-by-the-client\n",
    )
    .unwrap();
    let config_file = config_file.to_str().expect("a UTF-8 path").to_owned();

    let ids = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            run(&root, &["vnfd-create", "--vnfd-file", &vnfd_file, "web"]);
            let refused = run_refused(&root, &["vnfd-create", "--vnfd-file", &vnfd_file, "web"]);
            assert!(
                refused.contains("VNFD name \"web\" is already used"),
                "{refused}"
            );
            let ids: Vec<String> = ["vnf-a", "vnf-b", "vnf-c"]
                .iter()
                .map(|name| id_in(&run(&root, &["vnf-create", "--vnfd-name", "web", name])))
                .collect();
            let refused = run_refused(&root, &["vnf-create", "--vnfd-name", "web", "vnf-a"]);
            assert!(
                refused.contains("VNF name \"vnf-a\" is already used") && refused.contains(&ids[0]),
                "{refused}"
            );
            ids
        }
    })
    .await
    .unwrap();

    let (listed, requests) = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            let out = tacker_output(&root, &["--debug", "vnf-list", "--page-size", "2"]);
            assert!(out.status.success(), "{out:?}");
            let requests: Vec<String> = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|line| line.contains("curl -i") && line.contains("/vnfs"))
                .map(str::to_owned)
                .collect();
            (String::from_utf8_lossy(&out.stdout).into_owned(), requests)
        }
    })
    .await
    .unwrap();
    for id in &ids {
        assert!(listed.contains(id), "{id} missing from {listed}");
    }
    assert_eq!(requests.len(), 2, "two pages of two: {requests:#?}");
    assert!(requests[1].contains("marker="), "{requests:#?}");

    // `events-list` follows the events' `next` links (pages read from the log) to the end.
    let (events, vnf_events) = tokio::task::spawn_blocking({
        let (root, vnf_id) = (root.clone(), ids[1].clone());
        move || {
            (
                run(&root, &["events-list", "--resource-type", "vnf"]),
                run(&root, &["vnf-events-list", "--resource-id", &vnf_id]),
            )
        }
    })
    .await
    .unwrap();
    for id in &ids {
        assert!(events.contains(id), "{id} missing from {events}");
    }
    assert!(events.contains("PENDING_CREATE"), "{events}");
    assert!(
        vnf_events.contains(&ids[1]) && !vnf_events.contains(&ids[0]),
        "{vnf_events}"
    );

    let vnf_id = ids[0].clone();
    system
        .wait_vnf(&vnf_id, "ACTIVE", |code, vnf| {
            code == 200 && vnf["vnf"]["status"] == "ACTIVE"
        })
        .await;
    let updated = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            run(
                &root,
                &["vnf-update", "--config-file", &config_file, "vnf-a"],
            )
        }
    })
    .await
    .unwrap();
    assert!(updated.contains("Updated vnf: vnf-a"), "{updated}");
    system
        .wait_vnf(&vnf_id, "ACTIVE again", |code, vnf| {
            code == 200
                && vnf["vnf"]["status"] == "ACTIVE"
                && vnf["vnf"]["attributes"]["config"]["vdus"]["VDU1"]["config"]["motd"]
                    == "updated-by-the-client"
        })
        .await;
    let (_, resources) = system.get(&format!("/vnfs/{vnf_id}/resources")).await;
    let instance_id = resources["resources"][0]["id"]
        .as_str()
        .expect("an instance")
        .to_owned();
    let written = std::fs::read(conductor::vim::local::config_path(
        &system.vim_prefix,
        &instance_id,
    ))
    .expect("the local VIM wrote the config");
    // What the log holds: the config sealed (a conductor holds no data key).
    let written: serde_json::Value = serde_json::from_slice(&written).unwrap();
    assert!(
        written.get(events::secrets::SEALED_TAG).is_some(),
        "{written}"
    );
    let recorded = system.vnf(&vnf_id).await.details.unwrap().attributes["config"].clone();
    assert_eq!(written, recorded);
    let (_, events) = system
        .get(&format!("/events?resource_id={vnf_id}&event_type=UPDATE"))
        .await;
    let details = events.to_string();
    assert!(details.contains("VNF config update completed"), "{details}");
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

/// The VIM registry through Tacker's client: `vim-register --config-file` (a made-up
/// Keystone nothing contacts here), `vim-list` with the built-in `local` VIM beside it,
/// `vim-show` without the password, `vim-update`, `vnf-create --vim-name`, and `vim-delete`
/// refused while the VNF exists and done after. The password never reaches the lifecycle
/// stream in clear, as the reader identity reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tackers_own_client_registers_lists_updates_uses_and_deletes_a_vim() {
    const PASSWORD: &str = "vim-pw-K3yst0ne-s3cret";
    let system = System::start().await;
    let root = system.api.trim_end_matches("/v1.0").to_owned();
    let dir = tempfile::tempdir().unwrap();
    // The VIM is the real all-in-one's Keystone (`ops/openstack-aio`; Tacker's vim-update keeps
    // the auth_url), first with made-up credentials, then rotated to its real ones: the VNF made
    // on it is carried out, fails (the sample's image is not in its Glance) and is deleted on a
    // cloud that answers; on an unreachable VIM its delete could not be carried out.
    let aio = testkit::openstack::VimConfig::read();
    let new_password = aio.get("password");
    let second = aio.path.clone();
    let auth_url = aio.get("auth_url");
    let config = |password: &str| {
        format!(
            "auth_url: '{auth_url}'\nusername: 'nfv_user'\npassword: '{password}'\n\
             project_name: 'nfv'\nproject_domain_name: 'Default'\nuser_domain_name: 'Default'\n\
             cert_verify: 'False'\n"
        )
    };
    let first = dir.path().join("vim.yaml");
    std::fs::write(&first, config(PASSWORD)).unwrap();
    let vnfd_file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/vnfd/tests/samples/tosca-vnfd-monitor.yaml");
    let paths = [first, second, vnfd_file].map(|p| p.to_str().unwrap().to_owned());

    let (vim_id, vnf_id) = tokio::task::spawn_blocking({
        let root = root.clone();
        let new_password = new_password.clone();
        move || {
            let new_password = new_password.as_str();
            let [first, second, vnfd_file] = &paths;
            let registered = run(
                &root,
                &[
                    "vim-register",
                    "--config-file",
                    first,
                    "--is-default",
                    "site",
                ],
            );
            assert!(!registered.contains(PASSWORD), "{registered}");
            let vim_id = id_in(&registered);
            let listed = run(&root, &["vim-list"]);
            assert!(
                listed.contains("| local ") && listed.contains(&vim_id),
                "{listed}"
            );
            let shown = run(&root, &["vim-show", "site"]);
            assert!(
                shown.contains("PENDING") && shown.contains("nfv_user"),
                "{shown}"
            );
            assert!(
                !shown.contains(PASSWORD) && !shown.contains("password"),
                "{shown}"
            );
            let updated = run(
                &root,
                &[
                    "vim-update",
                    "--config-file",
                    second,
                    "--description",
                    "the all-in-one",
                    "--is-default",
                    "True",
                    "site",
                ],
            );
            assert!(updated.contains("Updated vim: site"), "{updated}");
            let shown = run(&root, &["vim-show", &vim_id]);
            assert!(shown.contains("the all-in-one"), "{shown}");
            assert!(!shown.contains(new_password), "{shown}");
            run(&root, &["vnfd-create", "--vnfd-file", vnfd_file, "web"]);
            let created = run(
                &root,
                &[
                    "vnf-create",
                    "--vnfd-name",
                    "web",
                    "--vim-name",
                    "site",
                    "vnf-on-site",
                ],
            );
            assert!(created.contains(&vim_id), "{created}");
            let refused = run_refused(&root, &["vim-delete", "site"]);
            assert!(
                refused.contains("still used by 1 VNF(s)") && refused.contains(&id_in(&created)),
                "{refused}"
            );
            let refused = run_refused(&root, &["vim-delete", "local"]);
            assert!(refused.contains("built-in"), "{refused}");
            (vim_id, id_in(&created))
        }
    })
    .await
    .unwrap();

    // The VNF fails on the all-in-one (no such image there) and is deleted from it.
    system
        .wait_vnf(&vnf_id, "out of PENDING_CREATE", |code, vnf| {
            code == 200
                && ["ACTIVE", "ERROR"].contains(&vnf["vnf"]["status"].as_str().unwrap_or(""))
        })
        .await;
    tokio::task::spawn_blocking({
        let root = root.clone();
        move || run(&root, &["vnf-delete", "vnf-on-site"])
    })
    .await
    .unwrap();
    system
        .wait_vnf(&vnf_id, "deleted", |code, _| code == 404)
        .await;
    let listed = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            run(&root, &["vim-delete", "site"]);
            run(&root, &["vim-list"])
        }
    })
    .await
    .unwrap();
    assert!(
        !listed.contains(&vim_id) && listed.contains("| local "),
        "{listed}"
    );

    let reader = async_nats::jetstream::new(system.nats.client_as(testkit::Identity::Reader).await);
    let stream = reader
        .get_stream(events::names::LIFECYCLE_STREAM)
        .await
        .expect("the reader reads the lifecycle stream");
    let mut read = events::read::StreamRead::open(&stream, events::names::LIFECYCLE_SUBJECTS, 1)
        .await
        .expect("a replay");
    // What the user did, in order; a conductor's status checks record in between.
    let mut vim_changes = Vec::new();
    while let Some(message) = read.next().await.expect("the replay goes on") {
        if let Some((events::names::AggregateKind::Vim, _)) =
            events::names::parse_lifecycle_subject(&message.subject)
        {
            let envelope = events::envelope::decode::<events::vim::VimEvent>(&message.payload)
                .expect("a VIM message decodes");
            vim_changes.extend(envelope.events.iter().filter_map(|event| match event {
                events::vim::VimEvent::Registered(_) => Some("registered"),
                events::vim::VimEvent::Updated { .. } => Some("updated"),
                events::vim::VimEvent::Deleted => Some("deleted"),
                events::vim::VimEvent::StatusRecorded { .. } => None,
            }));
        }
        let payload = String::from_utf8_lossy(&message.payload);
        assert!(
            !payload.contains(PASSWORD) && !payload.contains(&new_password),
            "a VIM password in clear on the log: {payload}"
        );
    }
    assert_eq!(vim_changes, ["registered", "updated", "deleted"]);
    // The VIM table is what a replay of the log makes of it.
    system.verify_tables().await;
}
