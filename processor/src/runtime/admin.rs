//! Creating the changelog topics: compacted, with the input's partition count, if absent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::changelog::changelog_topic;
use crate::config::Config;
use crate::error::RuntimeError;
use crate::runtime::client_config;
use crate::task::Job;

/// How long to wait for the input topic to appear before giving up.
const INPUT_WAIT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The input's partition count, after making sure every changelog topic exists.
pub(crate) async fn ensure_changelogs(
    config: &Config,
    job: &dyn Job,
    shutdown: &CancellationToken,
) -> Result<i32, RuntimeError> {
    let admin: AdminClient<DefaultClientContext> = client_config(config)
        .create()
        .map_err(RuntimeError::kafka("create admin client"))?;
    let input = job.input().to_owned();
    let deadline = Instant::now() + INPUT_WAIT;
    let (partitions, existing) = loop {
        let topics = topic_partitions(config).await?;
        if let Some(&count) = topics.get(&input) {
            break (count, topics);
        }
        if Instant::now() > deadline || shutdown.is_cancelled() {
            return Err(RuntimeError::MissingInput(input));
        }
        tracing::info!(topic = input, "waiting for the input topic");
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    let mut names = Vec::new();
    for store in job.stores() {
        let name = changelog_topic(&config.name, &store);
        match existing.get(&name) {
            Some(&n) if n != partitions => tracing::warn!(
                topic = name,
                partitions = n,
                input_partitions = partitions,
                "changelog topic has a different partition count than the input"
            ),
            Some(_) => {}
            None => names.push(name),
        }
    }
    if names.is_empty() {
        return Ok(partitions);
    }
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                partitions,
                TopicReplication::Fixed(config.changelog_replication_factor),
            )
            .set("cleanup.policy", "compact")
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .map_err(RuntimeError::kafka("create changelog topics"))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "created changelog topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "changelog topic exists");
            }
            Err((topic, code)) => {
                return Err(RuntimeError::Kafka {
                    op: "create changelog topic",
                    source: KafkaError::AdminOp(code),
                })
                .inspect_err(|_| tracing::error!(topic, ?code, "cannot create changelog topic"));
            }
        }
    }
    Ok(partitions)
}

/// Partition counts of every topic in the cluster (error-free topics only).
async fn topic_partitions(config: &Config) -> Result<HashMap<String, i32>, RuntimeError> {
    let client: BaseConsumer = client_config(config)
        .create()
        .map_err(RuntimeError::kafka("create metadata client"))?;
    // Metadata requests block: run them off the executor.
    let metadata = tokio::task::spawn_blocking(move || {
        client.fetch_metadata(None, REQUEST_TIMEOUT).map(|m| {
            m.topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .map(|t| {
                    let n = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
                    (t.name().to_owned(), n)
                })
                .collect::<HashMap<_, _>>()
        })
    })
    .await
    .map_err(|_| RuntimeError::kafka("fetch metadata")(KafkaError::Canceled))?;
    metadata.map_err(RuntimeError::kafka("fetch metadata"))
}
