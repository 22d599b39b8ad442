//! The demo behind `odradek dev`: a generator of page views and profile updates, both built-in jobs,
//! and a live line every few seconds with the top pages of the current window.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::jobs::pageview::PageViewCount;
use crate::jobs::{PageViewCountJob, ProfileFanoutJob};

/// Pages the generator picks from; earlier ones are more popular.
const PAGES: [&str; 8] = [
    "/",
    "/jobs",
    "/feed",
    "/profile",
    "/search",
    "/messages",
    "/company/acme",
    "/learning",
];
const COMPANIES: [&str; 5] = ["Acme", "Initech", "Globex", "Umbrella", "Hooli"];
const TITLES: [&str; 4] = ["Engineer", "Manager", "Designer", "Analyst"];

/// What the demo runs against and where it keeps state.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Directory for both jobs' local stores.
    pub state_dir: PathBuf,
    /// HTTP address of the pageview-count processor (metrics, health).
    pub pageview_http: SocketAddr,
    /// HTTP address of the profile-fanout processor.
    pub profile_http: SocketAddr,
    /// Window size of the page-view counts.
    pub window_ms: i64,
    /// Page views generated per second.
    pub views_per_second: u32,
    /// Seconds between live lines.
    pub report_every: Duration,
}

impl DemoOptions {
    /// Defaults for a local cluster at `bootstrap`: one-minute windows, 200 views per second.
    #[must_use]
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            state_dir: PathBuf::from(".odradek/demo"),
            pageview_http: SocketAddr::from(([127, 0, 0, 1], 9646)),
            profile_http: SocketAddr::from(([127, 0, 0, 1], 9647)),
            window_ms: 60_000,
            views_per_second: 200,
            report_every: Duration::from_secs(5),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A random page view at `now`: (key, JSON value). Pages follow a rough power law.
pub fn page_view(rng: &mut impl Rng, now: i64) -> (String, String) {
    let user = format!("u{}", rng.random_range(0..1_000));
    // Skewed pick: the minimum of two uniform draws favours low indexes.
    let page = PAGES[rng
        .random_range(0..PAGES.len())
        .min(rng.random_range(0..PAGES.len()))];
    let value = serde_json::json!({"page": page, "user_id": user, "timestamp": now}).to_string();
    (user, value)
}

/// A random partial profile update at `now`: (key, JSON value).
pub fn profile_update(rng: &mut impl Rng, now: i64) -> (String, String) {
    let user = format!("u{}", rng.random_range(0..200));
    let mut v =
        serde_json::json!({"user_id": user, "name": format!("User {user}"), "updated_at": now});
    if rng.random_bool(0.5) {
        v["company"] = COMPANIES[rng.random_range(0..COMPANIES.len())].into();
    }
    if rng.random_bool(0.5) {
        v["title"] = TITLES[rng.random_range(0..TITLES.len())].into();
    }
    (user, v.to_string())
}

/// Runs the demo until `shutdown`: creates the topics, starts the generator, both jobs and the live
/// report.
///
/// # Errors
/// The cluster cannot be reached, or a job fails.
pub async fn run_demo(options: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    create_topics(&options.bootstrap).await?;
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let base = |job: &str, http: SocketAddr| Config {
        bootstrap: options.bootstrap.clone(),
        job: job.to_owned(),
        name: format!("demo-{job}"),
        instance_id: Some(format!("demo-{job}-0")),
        input: None,
        outputs: Vec::new(),
        state_dir: options.state_dir.clone(),
        http,
        commit_interval: Duration::from_secs(1),
        window_ms: options.window_ms,
        grace_ms: 5_000,
        changelog_replication_factor: 1,
        session_timeout: Duration::from_secs(10),
        kafka_config: Vec::new(),
        shutdown_grace: Duration::from_secs(10),
    };
    let pv = base("pageview-count", options.pageview_http);
    let pf = base("profile-fanout", options.profile_http);
    tasks.spawn(crate::run_job(
        pv,
        Arc::new(PageViewCountJob::new(
            "page-views",
            "pageview-counts",
            options.window_ms,
            5_000,
        )),
        shutdown.clone(),
    ));
    tasks.spawn(crate::run_job(
        pf,
        Arc::new(ProfileFanoutJob::new(
            "user-profile-updates",
            "newsfeed",
            "search-index",
        )),
        shutdown.clone(),
    ));
    tasks.spawn(generate(
        options.bootstrap.clone(),
        options.views_per_second,
        shutdown.clone(),
    ));
    tasks.spawn(report(
        options.bootstrap.clone(),
        options.report_every,
        shutdown.clone(),
    ));
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let r = done.map_err(anyhow::Error::from).and_then(|r| r);
        if r.is_err() && result.is_ok() {
            shutdown.cancel();
            result = r;
        }
    }
    result
}

async fn create_topics(bootstrap: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let topics = [
        NewTopic::new("page-views", 4, TopicReplication::Fixed(1)),
        NewTopic::new("pageview-counts", 4, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact"),
        NewTopic::new("user-profile-updates", 4, TopicReplication::Fixed(1)),
        NewTopic::new("newsfeed", 4, TopicReplication::Fixed(1)),
        NewTopic::new("search-index", 4, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact"),
    ];
    for r in admin.create_topics(&topics, &AdminOptions::new()).await? {
        if let Err((topic, code)) = r
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            anyhow::bail!("cannot create topic {topic}: {code}");
        }
    }
    Ok(())
}

async fn generate(
    bootstrap: String,
    per_second: u32,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()?;
    let ticks_per_second = 10u32;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let mut batch = Vec::new();
        {
            let mut rng = rand::rng();
            for _ in 0..per_second.div_ceil(ticks_per_second) {
                batch.push(("page-views", page_view(&mut rng, now)));
            }
            n += 1;
            if n.is_multiple_of(2) {
                batch.push(("user-profile-updates", profile_update(&mut rng, now)));
            }
        }
        let sends: Vec<_> = batch
            .iter()
            .map(|(topic, (key, value))| {
                producer.send(
                    FutureRecord::to(topic).key(key).payload(value),
                    Duration::from_secs(5),
                )
            })
            .collect();
        for r in futures::future::join_all(sends).await {
            if let Err((e, _)) = r {
                tracing::warn!(error = %e, "demo generator: produce failed");
            }
        }
    }
}

async fn report(
    bootstrap: String,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "demo-report")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&["pageview-counts"])?;
    let mut counts: HashMap<(i64, String), u64> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => print_top(&counts),
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    if let Some(c) = m.payload().and_then(|p| serde_json::from_slice::<PageViewCount>(p).ok()) {
                        counts.insert((c.window_start, c.page), c.count);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "demo report: consume failed"),
            },
        }
    }
}

fn print_top(counts: &HashMap<(i64, String), u64>) {
    let Some(current) = counts.keys().map(|(w, _)| *w).max() else {
        println!("pageview-count: no windows yet");
        return;
    };
    let mut top: Vec<(&str, u64)> = counts
        .iter()
        .filter(|((w, _), _)| *w == current)
        .map(|((_, p), c)| (p.as_str(), *c))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let line: Vec<String> = top
        .iter()
        .take(5)
        .map(|(p, c)| format!("{p} {c}"))
        .collect();
    println!("window starting {current}: top pages: {}", line.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::pageview::PageView;
    use crate::jobs::profile::UserProfileUpdate;

    #[test]
    fn generated_events_parse_as_the_jobs_inputs() {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let (_, v) = page_view(&mut rng, 5);
            let view: PageView<'_> = serde_json::from_str(&v).unwrap();
            assert!(PAGES.contains(&view.page.as_ref()));
            assert_eq!(view.timestamp, Some(5));
            let (k, v) = profile_update(&mut rng, 5);
            let u: UserProfileUpdate = serde_json::from_str(&v).unwrap();
            assert_eq!(u.user_id, k);
        }
    }
}
