//! The projector against a real nats-server: rows follow the log, redelivery changes nothing,
//! and a rebuild from the log equals the live tables.

use std::time::Duration;

use events::envelope::{Actor, ActorKind, Cause};
use events::spec::VnfdSpec;
use events::store::{EventLog, LogConfig};
use events::vnfd::{TemplateSource, Vnfd, VnfdCommand, VnfdDescriptor};
use projector::Tables;
use testkit::NatsServer;

fn user() -> Cause {
    Cause::user_request(Actor::new(ActorKind::User, "admin"))
}

fn onboard(id: &str) -> VnfdCommand {
    VnfdCommand::Onboard(VnfdDescriptor {
        vnfd_id: id.into(),
        name: format!("vnfd-{id}"),
        description: String::new(),
        tenant_id: "admin".into(),
        template_source: TemplateSource::Onboarded,
        template_yaml: String::new(),
        spec: VnfdSpec {
            template_name: None,
            description: None,
            vdus: vec![],
            scaling_policies: vec![],
        },
    })
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rows_follow_the_log_and_a_rebuild_equals_them() {
    let server = NatsServer::start().await;
    let log = EventLog::open(server.client().await, &LogConfig::default())
        .await
        .unwrap();
    let tables = Tables::open(log.jetstream(), 1).await.unwrap();
    // Two projectors share the durable consumer, as in a scaled-out deployment.
    for _ in 0..2 {
        tokio::spawn(projector::run(
            log.clone(),
            tables.clone(),
            futures::future::pending(),
        ));
    }
    for n in 0..20 {
        let id = format!("d{n}");
        log.execute::<Vnfd>(&id, onboard(&id), &(), &user())
            .await
            .unwrap();
        for vnf in 0..3 {
            let command = VnfdCommand::Use {
                vnf_id: format!("v{vnf}"),
            };
            log.execute::<Vnfd>(&id, command, &(), &user())
                .await
                .unwrap();
        }
    }
    log.execute::<Vnfd>(
        "d0",
        VnfdCommand::Release {
            vnf_id: "v0".into(),
        },
        &(),
        &user(),
    )
    .await
    .unwrap();
    eventually("every row projected", || async {
        let row = tables.vnfd("d19").await.unwrap();
        row.is_some_and(|r| r.state.users.len() == 3)
    })
    .await;
    eventually("the release projected", || async {
        tables
            .vnfd("d0")
            .await
            .unwrap()
            .is_some_and(|r| r.state.users.len() == 2)
    })
    .await;
    let verification = projector::verify(&log, &tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(verification.differences, Vec::<String>::new());
    assert_eq!(verification.compared, 20);

    // A row tampered with behind the projector's back is caught by the verification.
    let mut row = tables.vnfd("d3").await.unwrap().unwrap();
    row.state.users.clear();
    tables
        .vnfds
        .put("d3", serde_json::to_vec(&row).unwrap().into())
        .await
        .unwrap();
    let verification = projector::verify(&log, &tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        verification.differences.len(),
        1,
        "{:?}",
        verification.differences
    );
    assert!(verification.differences[0].contains("d3"));
}
