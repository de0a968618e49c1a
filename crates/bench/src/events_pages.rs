//! `vnfm-bench events [VNFS]`: `GET /v1.0/events`' reads on a long lifecycle log, timed
//! in-process (the log reads and the fold the gateway answers with, without HTTP):
//! a page of the newest events, a page after a marker deep in the log, and the events of a VNF
//! with a long history and of one with a short one, each as p50/p99.

use std::time::{Duration, Instant};

use futures::StreamExt;

use events::fixtures;
use events::vnf::{Vnf, VnfEvent};
use gateway::audit::{self, EVENT_ID_STRIDE, PagePlace};

use crate::{IN_FLIGHT, cause, ms, percentiles, sample_event};

/// VNFs written by default: a create and a monitor attached each, two messages.
pub const VNFS_DEFAULT: usize = 50_000;
/// Messages of the VNF with a long history.
const LONG_HISTORY_MESSAGES: u64 = 2_000;
/// Requests timed of each kind.
const REQUESTS: usize = 200;

pub async fn events_pages(vnfs: usize) -> anyhow::Result<()> {
    let server = testkit::NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let ids: Vec<String> = (0..vnfs)
        .map(|n| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &n.to_be_bytes()).to_string())
        .collect();
    let long = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"long-history").to_string();
    let started = Instant::now();
    // The long history first, so that its VNF's subject spans the whole log's start.
    let mut at = log
        .append::<Vnf>(&long, 0, &cause(), sample_event(0))
        .await?;
    for n in 1..LONG_HISTORY_MESSAGES {
        let event = VnfEvent::MonitorAttached {
            action_id: format!("action-{n}"),
        };
        at = log.append::<Vnf>(&long, at, &cause(), vec![event]).await?;
    }
    futures::stream::iter(ids.iter().enumerate())
        .map(|(n, id)| {
            let log = log.clone();
            async move {
                let created = log.append::<Vnf>(id, 0, &cause(), sample_event(n)).await?;
                let attached = VnfEvent::MonitorAttached {
                    action_id: format!("action-{n}"),
                };
                log.append::<Vnf>(id, created, &cause(), vec![attached])
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|r| {
            r.expect("VNF written");
            async {}
        })
        .await;
    let messages = LONG_HISTORY_MESSAGES + 2 * vnfs as u64;
    println!(
        "events: wrote {messages} lifecycle messages ({vnfs} VNFs of 2 messages, one of \
         {LONG_HISTORY_MESSAGES}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let limit = audit::EVENTS_PAGE_DEFAULT_ITEMS;
    let newest = time(REQUESTS, |_| {
        let log = &log;
        async move {
            let page = audit::page(log, PagePlace::Newest, limit).await?;
            anyhow::ensure!(page.events.len() == limit, "a short page");
            Ok(page.events.iter().map(audit::TackerEvent::to_json).count())
        }
    })
    .await?;
    print("a page of the newest events", limit, newest);
    let deep = time(REQUESTS, |n| {
        let log = &log;
        // Markers spread over the VNFs' part of the log.
        let sequence = LONG_HISTORY_MESSAGES + 1 + (n as u64 * 7919) % (2 * vnfs as u64 - 200);
        async move {
            let page =
                audit::page(log, PagePlace::After(sequence * EVENT_ID_STRIDE), limit).await?;
            anyhow::ensure!(page.events.len() == limit, "a short page");
            Ok(page.events.iter().map(audit::TackerEvent::to_json).count())
        }
    })
    .await?;
    print("a page after a marker in the log", limit, deep);
    for (label, id, count) in [
        ("a VNF's events, long history", &long, LONG_HISTORY_MESSAGES),
        ("a VNF's events, short history", &ids[vnfs / 2], 2),
    ] {
        let latency = time(REQUESTS, |_| {
            let log = &log;
            async move {
                let events = audit::resource_events::<Vnf>(log, id, None).await?;
                anyhow::ensure!(events.len() as u64 == count, "{} events", events.len());
                Ok(events.iter().map(audit::TackerEvent::to_json).count())
            }
        })
        .await?;
        print(label, usize::try_from(count)?, latency);
    }
    println!(
        "events: pages of {limit} (goal <= 100 ms), a VNF's events (goal <= 50 ms), on \
         {messages} messages"
    );
    Ok(())
}

async fn time<F, Fut>(requests: usize, mut request: F) -> anyhow::Result<(Duration, Duration)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut samples = Vec::with_capacity(requests);
    for n in 0..requests {
        let started = Instant::now();
        request(n).await?;
        samples.push(started.elapsed());
    }
    Ok(percentiles(&mut samples))
}

fn print(label: &str, events: usize, (p50, p99): (Duration, Duration)) {
    println!(
        "events: {label} ({events} events): p50 {:.1} ms, p99 {:.1} ms",
        ms(p50),
        ms(p99)
    );
}
