//! End-to-end: real `odradek processor` processes against a Kafka-protocol cluster on 127.0.0.1.
//!
//! Scenario (for each built-in job): produce a known input, run two processors, `kill -9` one
//! mid-stream, restart it, scale to three and back to one; the final outputs equal the ground truth
//! exactly. The cluster is one `odradek broker` process; the processors create their changelog
//! topics themselves.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;
const DEADLINE: Duration = Duration::from_secs(120);

/// One `odradek processor` process; killed on drop. Its log goes to `<state>.log`, printed when a
/// test fails.
struct Processor {
    child: Child,
    name: String,
    log: PathBuf,
    http: std::net::SocketAddr,
}

impl Processor {
    fn start(bootstrap: &str, job: &str, instance: &str, state: &Path) -> Self {
        let log = state.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let http = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_odradek"))
            .args(["processor", "--bootstrap", bootstrap, "--job", job])
            .args(["--name", &format!("e2e-{job}"), "--instance-id", instance])
            .arg("--state-dir")
            .arg(state)
            .args(["--http", &http.to_string(), "--commit-interval-ms", "200"])
            .args(["--window-ms", "100000000", "--grace-ms", "100000000"])
            .args(["--session-timeout-ms", "6000"])
            .env("ODRADEK_LOG", "warn,odradek_processor=info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start odradek processor");
        Self {
            child,
            name: instance.to_owned(),
            log,
            http,
        }
    }

    /// A gauge from its /metrics (0 when absent or unreachable).
    fn gauge(&self, name: &str) -> i64 {
        common::http_get(self.http, "/metrics")
            .and_then(|(_, body)| {
                body.lines()
                    .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                    .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Waits until it owns at least one partition and has restored it (ready).
    fn wait_owning_partitions(&self) {
        eventually(&format!("{} to own partitions", self.name), || {
            self.gauge("odradek_processor_assigned_partitions") > 0
                && common::http_get(self.http, "/readyz").is_some_and(|(code, _)| code == 200)
        });
    }

    /// SIGKILL: no chance to commit.
    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then the process must commit and exit 0.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(started.elapsed() < DEADLINE, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("ODRADEK_E2E_SHOW_LOGS").is_some() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- {} ({}) ----\n{log}", self.name, self.log.display());
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn create_topics(bootstrap: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let results = runtime()
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

fn produce(bootstrap: &str, topic: &str, records: &[(i32, String, String)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    runtime().block_on(async {
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
            r.expect("produce");
        }
    });
}

/// The latest value per key over every partition of `topic`.
fn read_latest(bootstrap: &str, topic: &str) -> BTreeMap<String, Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        // A topic with fewer partitions answers an error for the others.
        let Ok((_, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) else {
            continue;
        };
        if high > 0 {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("tpl");
        }
    }
    let mut latest = BTreeMap::new();
    if ends.is_empty() {
        return latest;
    }
    consumer.assign(&tpl).expect("assign");
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

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs the scenario: `input(i)` makes the i-th input record, `observed()` reads the outputs, and
/// `truth(n)` is what the outputs must be after the first n records.
fn scenario(
    job: &str,
    input_topic: &str,
    topics: &[&str],
    input: &dyn Fn(usize) -> (i32, String, String),
    observed: &dyn Fn(&str) -> BTreeMap<String, String>,
    truth: &dyn Fn(usize) -> BTreeMap<String, String>,
) {
    let broker = common::BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topics(&bootstrap, topics);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = |i: usize| -> PathBuf { dir.path().join(format!("p{i}")) };
    let batch =
        |from: usize, to: usize| -> Vec<(i32, String, String)> { (from..to).map(input).collect() };

    produce(&bootstrap, input_topic, &batch(0, 3_000));
    let p0 = Processor::start(&bootstrap, job, "p0", &state(0));
    let p1 = Processor::start(&bootstrap, job, "p1", &state(1));
    p0.wait_owning_partitions();
    p1.wait_owning_partitions();
    eventually("first outputs", || !observed(&bootstrap).is_empty());
    // Mid-stream: more input arrives while p1 is killed without a chance to commit.
    produce(&bootstrap, input_topic, &batch(3_000, 4_500));
    p1.kill9();
    produce(&bootstrap, input_topic, &batch(4_500, 6_000));
    let p1 = Processor::start(&bootstrap, job, "p1", &state(1));
    // Scale to three.
    let p2 = Processor::start(&bootstrap, job, "p2", &state(2));
    produce(&bootstrap, input_topic, &batch(6_000, 8_000));
    p1.wait_owning_partitions();
    p2.wait_owning_partitions();
    eventually("outputs after scaling to three", || {
        observed(&bootstrap) == truth(8_000)
    });
    // Back to one.
    p2.terminate();
    p1.terminate();
    produce(&bootstrap, input_topic, &batch(8_000, 10_000));
    eventually("outputs equal to the ground truth", || {
        observed(&bootstrap) == truth(10_000)
    });
    // The survivor reports lag for each of its partitions, drained to zero.
    eventually("lag metrics drained to zero", || {
        let body = common::http_get(p0.http, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        (0..PARTITIONS).all(|p| {
            body.contains(&format!(
                "odradek_processor_lag{{topic=\"{input_topic}\",partition=\"{p}\"}} 0"
            ))
        }) && p0.gauge("odradek_processor_lag_total") == 0
    });
    p0.terminate();
}

/// The i-th page view, keyed and partitioned by page as pageview-count requires.
fn page_view(i: usize) -> (i32, String, String) {
    let n = (i * 7 + i / 13) % 11;
    let page = format!("/p{n}");
    let p = i32::try_from(n).expect("small") % PARTITIONS;
    let value = format!(
        r#"{{"page":"{page}","user_id":"u{i}","timestamp":{}}}"#,
        1_000 + i
    );
    (p, page, value)
}

#[test]
fn pageview_counts_equal_the_ground_truth_after_kill_restart_and_scaling() {
    let observed = |bootstrap: &str| -> BTreeMap<String, String> {
        read_latest(bootstrap, "pageview-counts")
            .into_iter()
            .map(|(k, v)| {
                let doc: serde_json::Value = serde_json::from_slice(&v).expect("json");
                (k, doc["count"].to_string())
            })
            .collect()
    };
    let truth = |n: usize| -> BTreeMap<String, String> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..n {
            let (_, _, v) = page_view(i);
            let doc: serde_json::Value = serde_json::from_str(&v).expect("json");
            *counts
                .entry(format!("{}@0", doc["page"].as_str().expect("page")))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(k, c)| (k, c.to_string()))
            .collect()
    };
    scenario(
        "pageview-count",
        "page-views",
        &[
            "page-views",
            "pageview-counts",
            "e2e-pageview-count-counts-changelog",
        ],
        &page_view,
        &observed,
        &truth,
    );
}

fn profile_update(i: usize) -> (i32, String, String) {
    let user = format!("u{}", i % 120);
    let p = i32::try_from(i % 120).expect("small") % PARTITIONS;
    let mut v = serde_json::json!({"user_id": user, "updated_at": i});
    if !i.is_multiple_of(3) {
        v["company"] = format!("c{}", (i / 120) % 4).into();
    }
    if i.is_multiple_of(2) {
        v["title"] = format!("t{}", i % 5).into();
    }
    (p, user, v.to_string())
}

#[test]
fn latest_profiles_equal_the_ground_truth_after_kill_restart_and_scaling() {
    let observed = |bootstrap: &str| -> BTreeMap<String, String> {
        read_latest(bootstrap, "search-index")
            .into_iter()
            .map(|(k, v)| {
                let doc: serde_json::Value = serde_json::from_slice(&v).expect("json");
                (k, format!("{}|{}", doc["company"], doc["title"]))
            })
            .collect()
    };
    let truth = |n: usize| -> BTreeMap<String, String> {
        let mut latest: BTreeMap<String, (serde_json::Value, serde_json::Value)> = BTreeMap::new();
        for i in 0..n {
            let (_, user, v) = profile_update(i);
            let doc: serde_json::Value = serde_json::from_str(&v).expect("json");
            let e = latest
                .entry(user)
                .or_insert((serde_json::Value::Null, serde_json::Value::Null));
            if !doc["company"].is_null() {
                e.0 = doc["company"].clone();
            }
            if !doc["title"].is_null() {
                e.1 = doc["title"].clone();
            }
        }
        latest
            .into_iter()
            .map(|(k, (c, t))| (k, format!("{c}|{t}")))
            .collect()
    };
    scenario(
        "profile-fanout",
        "user-profile-updates",
        &["user-profile-updates", "newsfeed", "search-index"],
        &profile_update,
        &observed,
        &truth,
    );
}

/// The `odradek dev` demo: generator, both jobs and the live report run against a broker and the
/// counts and search documents appear.
#[test]
fn the_demo_pipeline_produces_counts_and_search_documents() {
    let broker = common::BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = odradek_processor::demo::DemoOptions::new(&bootstrap);
    options.state_dir = dir.path().to_owned();
    options.pageview_http = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    options.profile_http = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    options.report_every = Duration::from_secs(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = tokio_util::sync::CancellationToken::new();
    let demo = rt.spawn(odradek_processor::demo::run_demo(options, stop.clone()));
    eventually("demo counts and search documents", || {
        let counts = read_latest(&bootstrap, "pageview-counts");
        let docs = read_latest(&bootstrap, "search-index");
        !counts.is_empty() && !docs.is_empty()
    });
    stop.cancel();
    rt.block_on(demo)
        .expect("demo task")
        .expect("demo stops cleanly");
}
