//! The reader against a real nats-server.

use async_nats::jetstream;
use testkit::NatsServer;

use super::*;

/// A stream `T` over `t.>` holding, in order, `t.a` "a1", `t.b` "b1", `t.a` "a2", `t.b` "b2".
async fn four_messages(server: &NatsServer) -> (jetstream::Context, stream::Stream) {
    let jetstream = jetstream::new(server.client().await);
    let stream = jetstream
        .create_stream(stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for (subject, payload) in [("t.a", "a1"), ("t.b", "b1"), ("t.a", "a2"), ("t.b", "b2")] {
        jetstream
            .publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    (jetstream, stream)
}

fn payloads(messages: &[Stored]) -> Vec<(u64, &str)> {
    messages
        .iter()
        .map(|m| (m.sequence, std::str::from_utf8(&m.payload).unwrap()))
        .collect()
}

async fn read_all(mut read: StreamRead) -> Vec<Stored> {
    let mut messages = Vec::new();
    while let Some(message) = read.next().await.unwrap() {
        messages.push(message);
    }
    messages
}

#[tokio::test]
async fn a_subject_reads_its_own_messages_and_nothing_else() {
    let server = NatsServer::start().await;
    let (jetstream, stream) = four_messages(&server).await;
    let client = jetstream.client();
    let read = subject(&client, &stream, "t.a").await.unwrap();
    assert_eq!(payloads(&read), vec![(1, "a1"), (3, "a2")]);
    assert_eq!(read[0].subject, "t.a");
    assert!(
        subject(&client, &stream, "t.none")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_subjects_tail_reads_only_what_was_stored_after_a_sequence() {
    let server = NatsServer::start().await;
    let (jetstream, stream) = four_messages(&server).await;
    let tail = subject_after(&jetstream.client(), &stream, "t.a", 1)
        .await
        .unwrap();
    assert_eq!(payloads(&tail.messages), vec![(3, "a2")]);
    assert_eq!(tail.last_sequence, 3);
    let tail = subject_after(&jetstream.client(), &stream, "t.a", 3)
        .await
        .unwrap();
    assert!(tail.messages.is_empty());
    assert_eq!(tail.last_sequence, 3);
    // Past the subject's last message: nothing, and the last sequence shows it.
    let tail = subject_after(&jetstream.client(), &stream, "t.a", 9)
        .await
        .unwrap();
    assert!(tail.messages.is_empty());
    assert_eq!(tail.last_sequence, 3);
    for payload in ["a3", "a4"] {
        jetstream
            .publish("t.a", payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let tail = subject_after(&jetstream.client(), &stream, "t.a", 3)
        .await
        .unwrap();
    assert_eq!(payloads(&tail.messages), vec![(5, "a3"), (6, "a4")]);
    assert_eq!(tail.last_sequence, 6);
    let none = subject_after(&jetstream.client(), &stream, "t.none", 0)
        .await
        .unwrap();
    assert!(none.messages.is_empty());
    assert_eq!(none.last_sequence, 0);
}

#[tokio::test]
async fn a_stream_read_stops_at_the_last_message_present_when_it_began() {
    let server = NatsServer::start().await;
    let (jetstream, stream) = four_messages(&server).await;
    let read = StreamRead::open(&stream, "t.>", 1).await.unwrap();
    assert_eq!(read.through(), 4);
    jetstream
        .publish("t.a", "later".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let messages = read_all(read).await;
    assert_eq!(
        payloads(&messages),
        vec![(1, "a1"), (2, "b1"), (3, "a2"), (4, "b2")]
    );

    let from_three = read_all(StreamRead::open(&stream, "t.>", 3).await.unwrap()).await;
    assert_eq!(
        payloads(&from_three),
        vec![(3, "a2"), (4, "b2"), (5, "later")]
    );
    let newest_two = read_all(StreamRead::newest(&stream, "t.>", 2).await.unwrap()).await;
    assert_eq!(payloads(&newest_two), vec![(4, "b2"), (5, "later")]);
    let none = read_all(StreamRead::newest(&stream, "t.>", 0).await.unwrap()).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_filter_whose_last_match_is_not_the_streams_last_message_ends_without_waiting() {
    let server = NatsServer::start().await;
    let (_, stream) = four_messages(&server).await;
    let started = tokio::time::Instant::now();
    let messages = read_all(StreamRead::open(&stream, "t.a", 1).await.unwrap()).await;
    assert_eq!(payloads(&messages), vec![(1, "a1"), (3, "a2")]);
    let nothing = read_all(StreamRead::open(&stream, "t.none", 1).await.unwrap()).await;
    assert!(nothing.is_empty());
    assert!(
        started.elapsed() < READ_MESSAGE_TIMEOUT,
        "waited {:?} for messages that would never come",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_empty_stream_reads_nothing() {
    let server = NatsServer::start().await;
    let jetstream = jetstream::new(server.client().await);
    let stream = jetstream
        .create_stream(stream::Config {
            name: "E".into(),
            subjects: vec!["e.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let read = StreamRead::open(&stream, "e.>", 1).await.unwrap();
    assert_eq!(read.through(), 0);
    assert!(read_all(read).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_read_that_gets_no_answer_gives_up_after_its_timeout_with_that_kind() {
    let started = tokio::time::Instant::now();
    let error = timed("reading a subject", std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), READ_MESSAGE_TIMEOUT);
    assert_eq!(error.kind(), NatsErrorKind::TimedOut);
    assert_eq!(error.context(), "reading a subject");
}

/// A stream `L` over `l.>` holding `messages` messages, every third on `l.long` and the rest
/// spread over other subjects, each payload its index.
async fn interleaved(server: &NatsServer, messages: usize) -> (jetstream::Context, stream::Stream) {
    let jetstream = jetstream::new(server.client().await);
    let stream = jetstream
        .create_stream(stream::Config {
            name: "L".into(),
            subjects: vec!["l.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut acks = Vec::new();
    for n in 0..messages {
        let subject = if n % 3 == 0 {
            "l.long".to_owned()
        } else {
            format!("l.other.{}", n % 7)
        };
        acks.push(
            jetstream
                .publish(subject, n.to_string().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    (jetstream, stream)
}

#[tokio::test]
async fn a_long_subject_is_read_whole_and_in_order_past_its_first_batch() {
    let server = NatsServer::start().await;
    let messages = 3 * (2 * SUBJECT_BATCH_MESSAGES) + 10;
    let (jetstream, stream) = interleaved(&server, messages).await;
    let client = jetstream.client();
    let expected: Vec<(u64, String)> = (0..messages)
        .filter(|n| n % 3 == 0)
        .map(|n| (n as u64 + 1, n.to_string()))
        .collect();
    let read = subject(&client, &stream, "l.long").await.unwrap();
    let read: Vec<(u64, String)> = payloads(&read)
        .into_iter()
        .map(|(sequence, payload)| (sequence, payload.to_owned()))
        .collect();
    assert_eq!(
        read.len(),
        2 * SUBJECT_BATCH_MESSAGES + 4,
        "more than one batch"
    );
    assert_eq!(read, expected);
    assert!(
        read.iter()
            .all(|(_, payload)| payload.parse::<usize>().unwrap() % 3 == 0)
    );
    // A tail from the middle: only what follows.
    let middle = expected[50].0;
    let tail = subject_after(&client, &stream, "l.long", middle)
        .await
        .unwrap();
    assert_eq!(tail.messages.len(), expected.len() - 51);
    assert_eq!(tail.messages[0].sequence, expected[51].0);
    assert_eq!(tail.last_sequence, expected.last().unwrap().0);
}

#[tokio::test]
async fn a_run_of_sequences_is_read_whole_or_cut_at_its_byte_bound() {
    let server = NatsServer::start().await;
    let (jetstream, stream) = interleaved(&server, 50).await;
    let client = jetstream.client();
    let sequences =
        |run: &[Stored]| -> Vec<u64> { run.iter().map(|message| message.sequence).collect() };
    let whole = run(&client, &stream, 5, 30, 1 << 20).await.unwrap();
    assert_eq!(sequences(&whole), (5..=30).collect::<Vec<_>>());
    assert_eq!(whole[0].payload, "4");
    assert_eq!(whole[0].subject, "l.other.4");
    // The server counts a message's subject too: about a dozen bytes each here.
    let cut = run(&client, &stream, 20, 40, 60).await.unwrap();
    assert!((2..=10).contains(&cut.len()), "{}", cut.len());
    assert_eq!(
        sequences(&cut),
        (20..20 + cut.len() as u64).collect::<Vec<_>>()
    );
    // One message at least, however small the bound.
    assert_eq!(
        sequences(&run(&client, &stream, 7, 9, 1).await.unwrap()),
        vec![7]
    );
    // Past the end, and an empty range.
    assert_eq!(
        sequences(&run(&client, &stream, 49, 60, 1 << 20).await.unwrap()),
        vec![49, 50]
    );
    assert!(
        run(&client, &stream, 9, 8, 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );
}
