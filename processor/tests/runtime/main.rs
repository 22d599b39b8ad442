//! The runtime against librdkafka's in-process mock cluster (a Kafka-protocol broker on 127.0.0.1):
//! group membership, handover between instances, commit order and restore from the changelog.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use odradek_processor::jobs::pageview::PageViewCount;
use odradek_processor::jobs::{PageViewCountJob, ProfileFanoutJob};
use odradek_processor::{Config, run_job};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;
const DEADLINE: Duration = Duration::from_secs(90);

fn config(bootstrap: &str, job: &str, instance: &str, state: &Path) -> Config {
    Config {
        bootstrap: bootstrap.to_owned(),
        job: job.to_owned(),
        name: format!("test-{job}"),
        instance_id: Some(instance.to_owned()),
        input: None,
        outputs: Vec::new(),
        state_dir: state.to_owned(),
        http: "127.0.0.1:0".parse().unwrap(),
        commit_interval: Duration::from_millis(200),
        window_ms: 1_000_000,
        grace_ms: 1_000_000,
        changelog_replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        kafka_config: Vec::new(),
        shutdown_grace: Duration::from_secs(20),
    }
}

struct Instance {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    fn pageview(bootstrap: &str, name: &str, state: &Path) -> Self {
        let stop = CancellationToken::new();
        let job = Arc::new(PageViewCountJob::new(
            "page-views",
            "pageview-counts",
            1_000_000,
            1_000_000,
        ));
        let task = tokio::spawn(run_job(
            config(bootstrap, "pageview-count", name, state),
            job,
            stop.clone(),
        ));
        Self { stop, task }
    }

    fn profile(bootstrap: &str, name: &str, state: &Path) -> Self {
        let stop = CancellationToken::new();
        let job = Arc::new(ProfileFanoutJob::new(
            "user-profile-updates",
            "newsfeed",
            "search-index",
        ));
        let task = tokio::spawn(run_job(
            config(bootstrap, "profile-fanout", name, state),
            job,
            stop.clone(),
        ));
        Self { stop, task }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        (&mut self.task).await.unwrap().unwrap();
    }
}

impl Drop for Instance {
    /// A failing test must not leave a consumer thread that keeps the runtime alive.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn produce(bootstrap: &str, topic: &str, records: &[(i32, String, String)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let sends: Vec<_> = records
        .iter()
        .map(|(p, k, v)| {
            producer.send(
                FutureRecord::to(topic).partition(*p).key(k).payload(v),
                Duration::from_secs(10),
            )
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }
}

/// The latest value per key of every partition of `topic` (what compaction would keep).
fn read_latest(bootstrap: &str, topic: &str) -> BTreeMap<String, Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if high > 0 {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
    }
    let mut latest = BTreeMap::new();
    if ends.is_empty() {
        return latest;
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    while !ends.is_empty() {
        assert!(
            started.elapsed() < DEADLINE,
            "reading {topic} took too long"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            if let (Some(k), Some(v)) = (m.key(), m.payload()) {
                latest.insert(String::from_utf8_lossy(k).into_owned(), v.to_vec());
            }
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
    }
    latest
}

fn counts(bootstrap: &str) -> BTreeMap<String, u64> {
    read_latest(bootstrap, "pageview-counts")
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                serde_json::from_slice::<PageViewCount>(&v).unwrap().count,
            )
        })
        .collect()
}

/// Polls `check` until it returns true or the deadline passes.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Page views numbered `from..to`, keyed (and partitioned) by page as the job requires; returns
/// them and adds them to `truth`.
fn views(from: usize, to: usize, truth: &mut BTreeMap<String, u64>) -> Vec<(i32, String, String)> {
    (from..to)
        .map(|i| {
            let n = (i * 5 + i / 11) % 7;
            let page = format!("/p{n}");
            *truth.entry(format!("{page}@0")).or_default() += 1;
            let p = i32::try_from(n).unwrap() % PARTITIONS;
            (
                p,
                page.clone(),
                format!(r#"{{"page":"{page}","timestamp":{}}}"#, 1_000 + i),
            )
        })
        .collect()
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ))
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pageview_counts_are_exact_across_handover_and_restore_from_the_changelog() {
    init_logs();
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("page-views", PARTITIONS, 1).unwrap();
    mock.create_topic("pageview-counts", PARTITIONS, 1).unwrap();
    mock.create_topic("test-pageview-count-counts-changelog", PARTITIONS, 1)
        .unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut truth = BTreeMap::new();

    produce(&bootstrap, "page-views", &views(0, 2_000, &mut truth)).await;
    let a = Instance::pageview(&bootstrap, "a", dirs[0].path());
    eventually("first counts", || !counts(&bootstrap).is_empty()).await;
    let b = Instance::pageview(&bootstrap, "b", dirs[1].path());
    produce(&bootstrap, "page-views", &views(2_000, 4_000, &mut truth)).await;
    a.stop().await;
    produce(&bootstrap, "page-views", &views(4_000, 5_000, &mut truth)).await;
    eventually("counts equal to the truth", || {
        let got = counts(&bootstrap);
        if got != truth {
            tracing::warn!(?got, ?truth, "not yet");
        }
        got == truth
    })
    .await;
    b.stop().await;

    // A fresh instance (no local files) restores every partition from the changelog alone.
    let c = Instance::pageview(&bootstrap, "c", dirs[2].path());
    produce(&bootstrap, "page-views", &views(5_000, 6_000, &mut truth)).await;
    eventually("counts after restore equal to the truth", || {
        counts(&bootstrap) == truth
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_profile_store_survives_handover() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    for t in [
        "user-profile-updates",
        "newsfeed",
        "search-index",
        "test-profile-fanout-profiles-changelog",
    ] {
        mock.create_topic(t, PARTITIONS, 1).unwrap();
    }
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut truth: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut updates = |from: usize, to: usize| -> Vec<(i32, String, String)> {
        (from..to)
            .map(|i| {
                let user = format!("u{}", i % 50);
                let company = format!("c{}", (i / 50) % 3);
                let entry = truth
                    .entry(user.clone())
                    .or_insert_with(|| serde_json::json!({"user_id": user}));
                entry["company"] = company.clone().into();
                let p = i32::try_from(i % 50).unwrap() % PARTITIONS;
                (
                    p,
                    user.clone(),
                    serde_json::json!({"user_id": user, "company": company}).to_string(),
                )
            })
            .collect()
    };
    let first = updates(0, 600);
    let second = updates(600, 1_200);
    produce(&bootstrap, "user-profile-updates", &first).await;
    let a = Instance::profile(&bootstrap, "a", dirs[0].path());
    let b = Instance::profile(&bootstrap, "b", dirs[1].path());
    produce(&bootstrap, "user-profile-updates", &second).await;
    a.stop().await;
    let search = || -> BTreeMap<String, String> {
        read_latest(&bootstrap, "search-index")
            .into_iter()
            .map(|(k, v)| {
                let doc: serde_json::Value = serde_json::from_slice(&v).unwrap();
                (k, doc["company"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    let want: BTreeMap<String, String> = truth
        .iter()
        .map(|(k, v)| (k.clone(), v["company"].as_str().unwrap().to_owned()))
        .collect();
    eventually("search documents equal to the latest profiles", || {
        search() == want
    })
    .await;
    b.stop().await;
    let feed = read_latest(&bootstrap, "newsfeed");
    assert!(!feed.is_empty(), "company changes produced newsfeed events");
}
