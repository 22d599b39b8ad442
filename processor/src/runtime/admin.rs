//! Creating the changelog topics: compacted, with the input's partition count, if absent.

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
    let partitions = loop {
        let count = input_partitions(config, &input).await?;
        if count > 0 {
            break count;
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
    let names: Vec<String> = job
        .stores()
        .iter()
        .map(|s| changelog_topic(&config.name, s))
        .collect();
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

async fn input_partitions(config: &Config, topic: &str) -> Result<i32, RuntimeError> {
    let client: BaseConsumer = client_config(config)
        .create()
        .map_err(RuntimeError::kafka("create metadata client"))?;
    let topic = topic.to_owned();
    // Metadata requests block: run them off the executor.
    let metadata = tokio::task::spawn_blocking(move || {
        client
            .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
            .map(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map_or(0, |t| {
                        i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)
                    })
            })
    })
    .await
    .map_err(|_| RuntimeError::kafka("fetch input metadata")(KafkaError::Canceled))?;
    metadata.map_err(RuntimeError::kafka("fetch input metadata"))
}
