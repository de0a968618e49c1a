//! The test server is a real, new enough nats-server whose JetStream store survives a crash and
//! a restart on the same port.

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpStream};

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use testkit::{NatsCluster, NatsServer};

#[tokio::test]
async fn a_stored_message_survives_kill_and_restart() -> anyhow::Result<()> {
    let mut server = NatsServer::start().await;
    let (url, port) = (server.url(), server.port());
    let js = jetstream::new(server.client().await);
    js.create_stream(stream::Config {
        name: "EVENTS".to_string(),
        subjects: vec!["events.>".to_string()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let ack = js
        .publish("events.created", "first event".into())
        .await?
        .await?;
    drop(js);

    server.kill();
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "a killed server still accepts connections"
    );
    assert!(
        server.store_dir().join("jetstream").is_dir(),
        "JetStream did not write to {}",
        server.store_dir().display()
    );

    server.restart().await;
    assert_eq!((server.url(), server.port()), (url, port));
    let js = jetstream::new(server.client().await);
    let message = js
        .get_stream("EVENTS")
        .await
        .context("the stream is gone after the restart")?
        .get_raw_message(ack.sequence)
        .await
        .context("the acknowledged message is gone after the restart")?;
    assert_eq!(message.subject.as_str(), "events.created");
    assert_eq!(message.payload.as_ref(), b"first event");

    // A second restart without a kill first works too.
    server.restart().await;
    let info = jetstream::new(server.client().await)
        .get_stream("EVENTS")
        .await?
        .info()
        .await?
        .clone();
    assert_eq!(info.state.messages, 1);
    Ok(())
}

#[tokio::test]
async fn servers_are_new_enough_and_independent() -> anyhow::Result<()> {
    let first = NatsServer::start().await;
    let second = NatsServer::start().await;
    assert_ne!(first.port(), second.port());
    assert_ne!(first.store_dir(), second.store_dir());

    let client = first.client().await;
    let info = client.server_info();
    let mut version = info.version.split('.').map(str::parse::<u64>);
    let (Some(Ok(major)), Some(Ok(minor))) = (version.next(), version.next()) else {
        anyhow::bail!("unparsable server version {:?}", info.version);
    };
    assert!(
        (major, minor) >= (2, 12),
        "server {} is older than 2.12",
        info.version
    );
    assert_eq!(info.max_payload, 8 * 1024 * 1024);

    // A stream on one server does not exist on the other.
    jetstream::new(client)
        .create_stream(stream::Config {
            name: "ONLY_FIRST".to_string(),
            subjects: vec!["first.>".to_string()],
            ..Default::default()
        })
        .await?;
    assert!(
        jetstream::new(second.client().await)
            .get_stream("ONLY_FIRST")
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn dropping_the_server_stops_it_and_removes_its_store() {
    let server = NatsServer::start().await;
    let (port, store_dir) = (server.port(), server.store_dir().to_path_buf());
    drop(server);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    assert!(!store_dir.exists());
}

/// A cluster's routes are authenticated and encrypted: no node speaks the plain route protocol
/// (a plain route port greets with `INFO` at once; these wait for a TLS handshake), and the
/// cluster still forms and places three replicas, so the nodes verified each other's
/// certificates (`verify: true`).
#[tokio::test]
async fn a_cluster_s_routes_demand_tls() {
    let cluster = NatsCluster::start().await;
    for node in 0..3 {
        let mut route = TcpStream::connect((Ipv4Addr::LOCALHOST, cluster.route_port(node)))
            .expect("the route port accepts a connection");
        route
            .set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        let mut greeting = [0u8; 4096];
        let read = route.read(&mut greeting).unwrap_or(0);
        let greeting = String::from_utf8_lossy(&greeting[..read]);
        assert!(
            !greeting.contains("INFO"),
            "node {node} greets a plain route: {greeting}"
        );
    }
}
