//! Throughput of `pageview-count` and changelog restore rate, measured end to end through Kafka.
//!
//! 1. Preloads `--events` page views into `page-views`, then runs the job until every input offset is
//!    committed: events/s (wall) and events per CPU-second of this process (per core).
//! 2. Fills a changelog partition with `--restore-mb` of store writes plus a commit marker, starts a
//!    fresh instance with an empty state directory and reads the restore rate it reports on /metrics.
//!
//! Without `--bootstrap` it hosts librdkafka's mock cluster in this process; then the CPU figure also
//! counts the mock broker's work, so it understates the processor's own rate.
//!
//! Run: `cargo run --release -p odradek-processor --example throughput -- [--bootstrap HOST:PORT]
//! [--events N] [--restore-mb N]` (or `e2e/bench/processor.sh`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use odradek_processor::changelog::{MARKER_KEY, marker_value};
use odradek_processor::jobs::PageViewCountJob;
use odradek_processor::{Config, run_job};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is field 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn config(bootstrap: &str, name: &str, state: &std::path::Path, http: &str) -> Config {
    Config {
        bootstrap: bootstrap.to_owned(),
        job: "pageview-count".to_owned(),
        name: name.to_owned(),
        instance_id: Some(format!("{name}-0")),
        input: None,
        outputs: Vec::new(),
        state_dir: state.to_owned(),
        http: http.parse().expect("address"),
        commit_interval: Duration::from_secs(1),
        window_ms: 300_000,
        grace_ms: 1_000_000_000,
        changelog_replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        kafka_config: Vec::new(),
        shutdown_grace: Duration::from_secs(30),
    }
}

fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn send_all(
    p: &ThreadedProducer<DefaultProducerContext>,
    records: impl Iterator<Item = (String, i32, Vec<u8>, Vec<u8>)>,
) {
    for (topic, partition, key, value) in records {
        let mut rec = BaseRecord::to(&topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
}

async fn create(bootstrap: &str, topics: &[(&str, bool)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, compact)| {
            let n = NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1));
            if *compact {
                n.set("cleanup.policy", "compact")
            } else {
                n
            }
        })
        .collect();
    let _ = admin.create_topics(&new, &AdminOptions::new()).await;
}

fn committed_total(bootstrap: &str, group: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("page-views", p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .map(|t| {
            t.elements()
                .iter()
                .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
                .sum()
        })
        .unwrap_or(0)
}

async fn metrics(http: &str) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(http).await else {
        return String::new();
    };
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

#[tokio::main]
async fn main() {
    let events: usize = arg("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let restore_mb: usize = arg("--restore-mb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mock = if arg("--bootstrap").is_none() {
        Some(MockCluster::new(1).expect("mock"))
    } else {
        None
    };
    let bootstrap = arg("--bootstrap").unwrap_or_else(|| {
        mock.as_ref()
            .map(MockCluster::bootstrap_servers)
            .unwrap_or_default()
    });
    if let Some(m) = &mock {
        for t in [
            "page-views",
            "pageview-counts",
            "bench-counts-changelog",
            "restore-counts-changelog",
        ] {
            m.create_topic(t, PARTITIONS, 1).expect("topic");
        }
    } else {
        create(
            &bootstrap,
            &[("page-views", false), ("pageview-counts", true)],
        )
        .await;
    }
    let state = tempfile::tempdir().expect("tempdir");

    // 1. Processing rate.
    println!("preloading {events} page views");
    let p = producer(&bootstrap);
    send_all(
        &p,
        (0..events).map(|i| {
            let page = format!("/page/{}", i % 1_000);
            let partition = i32::try_from(i % 1_000).unwrap_or(0) % PARTITIONS;
            let value = format!(
                r#"{{"page":"{page}","user_id":"u{}","timestamp":{}}}"#,
                i % 5_000,
                1_700_000_000_000_i64 + i64::try_from(i).unwrap_or(0)
            );
            (
                "page-views".to_owned(),
                partition,
                page.into_bytes(),
                value.into_bytes(),
            )
        }),
    );
    let stop = CancellationToken::new();
    let job = Arc::new(PageViewCountJob::new(
        "page-views",
        "pageview-counts",
        300_000,
        1_000_000_000,
    ));
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let task = tokio::spawn(run_job(
        config(
            &bootstrap,
            "bench",
            &state.path().join("a"),
            "127.0.0.1:19645",
        ),
        job.clone(),
        stop.clone(),
    ));
    let target = i64::try_from(events).unwrap_or(i64::MAX);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = bootstrap.clone();
        let done = tokio::task::spawn_blocking(move || committed_total(&b, "bench"))
            .await
            .unwrap_or(0);
        if done >= target {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "processing took too long ({done} of {target})"
        );
    }
    let (cpu, secs) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    stop.cancel();
    let _ = task.await;
    #[allow(clippy::cast_precision_loss)]
    let n = events as f64;
    println!(
        "pageview-count: {events} events in {secs:.2} s wall = {:.0} events/s; {cpu:.2} CPU-s = {:.0} events per CPU-second",
        n / secs,
        n / cpu
    );

    // 2. Restore rate: a changelog partition of `restore_mb` MB, restored by a fresh instance.
    let value = vec![b'x'; 200];
    let per_partition =
        restore_mb * 1_000_000 / (value.len() + 24) / usize::try_from(PARTITIONS).unwrap_or(1);
    println!("filling restore-counts-changelog with {restore_mb} MB");
    if mock.is_none() {
        create(&bootstrap, &[("restore-counts-changelog", true)]).await;
    }
    send_all(
        &p,
        (0..PARTITIONS).flat_map(|part| {
            let value = value.clone();
            (0..=per_partition).map(move |i| {
                if i == per_partition {
                    (
                        "restore-counts-changelog".to_owned(),
                        part,
                        MARKER_KEY.to_vec(),
                        marker_value(0).to_vec(),
                    )
                } else {
                    (
                        "restore-counts-changelog".to_owned(),
                        part,
                        format!("w{i:020}").into_bytes(),
                        value.clone(),
                    )
                }
            })
        }),
    );
    let stop = CancellationToken::new();
    let t0 = Instant::now();
    let task = tokio::spawn(run_job(
        config(
            &bootstrap,
            "restore",
            &state.path().join("b"),
            "127.0.0.1:19646",
        ),
        job,
        stop.clone(),
    ));
    // Restore time: from the first poll that sees a partition restoring to the one that sees none.
    let mut report = String::new();
    let mut restoring_since: Option<Instant> = None;
    let mut restore_secs = 0.0;
    while t0.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let m = metrics("127.0.0.1:19646").await;
        if restoring_since.is_none()
            && m.lines().any(|l| {
                l.starts_with("odradek_processor_restoring_partitions ") && !l.ends_with(" 0")
            })
        {
            restoring_since = Some(Instant::now());
        }
        if m.contains("odradek_processor_restore_bytes_per_second{")
            && m.contains("odradek_processor_restoring_partitions 0")
        {
            restore_secs = restoring_since.map_or(0.0, |s| s.elapsed().as_secs_f64());
            report = m;
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.cancel();
    let _ = task.await;
    let bytes: f64 = report
        .lines()
        .filter(|l| l.starts_with("odradek_processor_restore_bytes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "restore: {:.1} MB in {secs:.2} s from start to ready = {:.1} MB/s (including group join)",
        bytes / 1e6,
        bytes / 1e6 / secs
    );
    if restore_secs > 0.0 {
        println!(
            "restore: {:.1} MB in {restore_secs:.2} s while partitions were restoring = {:.1} MB/s",
            bytes / 1e6,
            bytes / 1e6 / restore_secs
        );
    }
    for l in report
        .lines()
        .filter(|l| l.starts_with("odradek_processor_restore_bytes_per_second"))
    {
        println!("  {l}");
    }
}
