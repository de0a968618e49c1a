//! The status board in a real browser (Debian's Chromium, headless): a member signs in with a
//! token, sees a VNF created through the API appear on the list without a reload, sees a
//! killed VDU go down and come back healed on the VNF's timeline; a write signed by the
//! session without its CSRF token is refused; a reader's page has no button that writes and a
//! forged write from it is refused; another project's VNF is not found. A screenshot of each
//! page is written to the test's target directory (and to `docs/` with
//! `VNFM_UPDATE_SCREENSHOTS=1`, which is how the README's pictures are made).

use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;
use vnfm_tests::browser::Browser;
use vnfm_tests::{Options, PATIENCE, System, call, client_with, monitored_vnfd, token_file};

/// The browser window: a laptop screen.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 860;

/// Writes the page's screenshot as `name`.png into the test's directory, and into `docs/`
/// when asked to.
async fn screenshot(browser: &mut Browser, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board");
    browser.screenshot(&dir.join(format!("{name}.png"))).await;
    if std::env::var_os("VNFM_UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
        browser
            .screenshot(&docs.join(format!("board-{name}.png")))
            .await;
    }
}

/// Signs the page in with `token` through the board's form.
async fn sign_in(browser: &mut Browser, base: &str, token: &str) {
    browser.clear_cookies().await;
    browser.open(&format!("{base}/")).await;
    browser
        .wait_until(
            "the sign-in form",
            "!!document.getElementById('login') && !document.getElementById('login').hidden",
            PATIENCE,
        )
        .await;
    browser
        .eval(&format!(
            "document.getElementById('token').value = {token:?}; \
             document.getElementById('login-form').requestSubmit(); true"
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_the_fleet_live_and_lets_only_members_act() {
    let (tokens, _dir) = token_file(&[
        ("t-alice", "alice", "p1", "member"),
        ("t-rita", "rita", "p1", "reader"),
        ("t-bob", "bob", "p2", "member"),
    ]);
    let system = System::start_with(Options {
        auth: Some(tokens),
        ..Options::default()
    })
    .await;
    let api = &system.api;
    let base = api.trim_end_matches("/v1.0").to_owned();
    let alice = client_with("t-alice");
    let mut browser = Browser::start(WIDTH, HEIGHT).await;

    // `/` sends a browser to the board, which asks for a token.
    sign_in(&mut browser, &base, "t-alice").await;
    browser
        .wait_until(
            "alice signed in",
            "document.getElementById('who').textContent.includes('alice')",
            PATIENCE,
        )
        .await;
    browser
        .show(
            "#/vnfs",
            "the VNF list",
            "!!document.getElementById('vnf-list') && document.getElementById('live').textContent === 'live'",
            PATIENCE,
        )
        .await;
    // Set on this page load: still there later means the page never reloaded.
    browser
        .eval("window.boardTestMarker = 'same page'; true")
        .await;

    // With an alarm trigger, which the VNFD page shows as vnfm understood it.
    let template = monitored_vnfd("ping", "respawn", false)
        + "    - AP1:\n        type: tosca.policies.tacker.Alarming\n        triggers:\n          cpu_high:\n            event_type: {type: tosca.events.resource.utilization, implementation: ceilometer}\n            metric: cpu_util\n            condition: {threshold: 80, comparison_operator: gt, evaluations: 2, period: 60}\n            action: [SP1]\n";
    let body = json!({"vnfd": {"name": "web", "attributes": {"vnfd": template}}});
    let (code, vnfd) = call(&alice, api, Method::POST, "/vnfds", Some(body)).await;
    assert_eq!(code, 201, "{vnfd}");
    let vnfd_id = vnfd["vnfd"]["id"].as_str().unwrap().to_owned();
    let body = json!({"vnf": {"name": "board-web", "vnfd_id": vnfd_id, "attributes": {}}});
    let (code, made) = call(&alice, api, Method::POST, "/vnfs", Some(body)).await;
    assert_eq!(code, 201, "{made}");
    let vnf_id = made["vnf"]["id"].as_str().unwrap().to_owned();
    browser
        .wait_until(
            "board-web listed without a reload",
            "document.getElementById('vnf-list').innerText.includes('board-web') \
             && window.boardTestMarker === 'same page'",
            PATIENCE,
        )
        .await;
    screenshot(&mut browser, "vnfs").await;

    // The VNF's page: its VDU up, then killed, down, and healed on the timeline.
    browser
        .show(
            &format!("#/vnf/{vnf_id}"),
            "the VDU shown up",
            "!!document.querySelector('#instances tr[data-state=\"up\"]')",
            PATIENCE,
        )
        .await;
    let instance = system.probed_instance(&vnf_id, 0).await;
    system.kill_vdu(&instance.instance_id).await;
    browser
        .wait_until(
            "the failure and the heal on the timeline",
            "(() => { const t = document.getElementById('timeline').innerText; \
               return t.includes(' down (') && t.includes('respawn claimed by') \
                 && t.includes('after the failure'); })()",
            PATIENCE,
        )
        .await;
    browser
        .wait_until(
            "the new VDU shown up",
            "!!document.querySelector('#instances tr[data-state=\"up\"]') \
             && window.boardTestMarker === 'same page'",
            PATIENCE,
        )
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('[data-action]').length")
            .await,
        json!(3),
        "a member has scale out, scale in and delete"
    );
    browser
        .wait_until(
            "the new VDU's round trips charted",
            "document.querySelector('#instances svg.spark polyline')\
               .getAttribute('points').split(' ').length >= 5",
            PATIENCE,
        )
        .await;
    screenshot(&mut browser, "vnf").await;
    browser
        .show(
            "#/",
            "the heal on the overview",
            "document.getElementById('heals-count').textContent === '1 heal'",
            PATIENCE,
        )
        .await;
    screenshot(&mut browser, "overview").await;
    browser
        .show(
            &format!("#/vnfd/{vnfd_id}"),
            "the VNFD page",
            "document.body.innerText.includes('TOSCA') && document.body.innerText.includes('respawn') \
             && document.body.innerText.includes('mean(cpu_util) > 80') \
             && document.body.innerText.includes('SP1-out')",
            PATIENCE,
        )
        .await;
    screenshot(&mut browser, "vnfd").await;

    // A write signed only by the session cookie, without the CSRF echo, is refused.
    let forged = format!("fetch('/v1.0/vnfs/{vnf_id}', {{method: 'DELETE'}}).then(r => r.status)");
    assert_eq!(browser.eval(&forged).await, json!(403));
    let (code, _) = call(&alice, api, Method::GET, &format!("/vnfs/{vnf_id}"), None).await;
    assert_eq!(code, 200, "the VNF is still there");

    // A reader sees the VNF and no button that writes; a forged write is refused even with
    // the CSRF echo.
    sign_in(&mut browser, &base, "t-rita").await;
    browser
        .show(
            &format!("#/vnf/{vnf_id}"),
            "rita's view of the VNF",
            "document.getElementById('who').textContent.includes('rita') \
             && !!document.getElementById('timeline')",
            PATIENCE,
        )
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('[data-action]').length")
            .await,
        json!(0)
    );
    let forged = format!(
        "fetch('/v1.0/vnfs/{vnf_id}/actions', {{method: 'POST', \
           headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': \
             document.cookie.split('; ').find(c => c.startsWith('vnfm_csrf=')).slice(10)}}, \
           body: JSON.stringify({{scale: {{type: 'out', policy: 'SP1'}}}})}}).then(r => r.status)"
    );
    assert_eq!(browser.eval(&forged).await, json!(403));
    screenshot(&mut browser, "reader").await;
    // The same page on a phone's screen.
    browser
        .command(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        )
        .await;
    screenshot(&mut browser, "phone").await;
    browser
        .command("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;

    // Another project's member: the VNF is not found.
    sign_in(&mut browser, &base, "t-bob").await;
    browser
        .wait_until(
            "bob signed in",
            "document.getElementById('who').textContent.includes('bob')",
            PATIENCE,
        )
        .await;
    let status = format!("fetch('/v1.0/board/vnfs/{vnf_id}').then(r => r.status)");
    assert_eq!(browser.eval(&status).await, json!(404));
    let (_, listed) = call(&client_with("t-bob"), api, Method::GET, "/board/vnfs", None).await;
    assert_eq!(listed["total"], 0, "{listed}");
}
