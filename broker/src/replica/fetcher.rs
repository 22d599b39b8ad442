//! Followers' fetchers (Kafka's `ReplicaFetcherManager` / `ReplicaFetcherThread`): one task per
//! source broker fetches, in one Fetch request, every partition this broker follows from it.
//!
//! Each fetch names the follower (`replica_id`), its log end offset as the fetch offset, the epoch
//! of its last batch (`last_fetched_epoch`) and the leader epoch it believes current. The leader's
//! batches are appended unchanged; a `diverging_epoch` in the answer truncates the log to where it
//! agrees with the leader (KIP-320 via Fetch v12+). Errors back off for `replica.fetch.backoff.ms`;
//! a change of leader moves the partition to another fetcher through the reactor's fetch plan.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{BrokerClient, ClientError, FetchPlan};
use crate::metrics::PartitionLabel;
use crate::partition::{Partition, PartitionKey, Role};
use crate::server::Broker;

/// Fetch version followers use: the newest with `replica_id` in the body and topic names.
const FETCH_VERSION: i16 = 12;

/// Starts and stops one fetcher per source broker as the fetch plan changes, until `shutdown`.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut plan = broker.replicas.subscribe_fetch_plan();
    let mut fetchers: HashMap<i32, (CancellationToken, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    loop {
        let leaders: Vec<i32> = plan.borrow_and_update().keys().copied().collect();
        fetchers.retain(|leader, (stop, _)| {
            let keep = leaders.contains(leader);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for leader in leaders {
            fetchers.entry(leader).or_insert_with(|| {
                let stop = shutdown.child_token();
                let task = tokio::spawn(fetch_from(
                    broker.clone(),
                    leader,
                    plan.clone(),
                    stop.clone(),
                ));
                (stop, task)
            });
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = plan.changed() => if changed.is_err() { break },
        }
    }
    for (_, (stop, task)) in fetchers {
        stop.cancel();
        let _ = task.await;
    }
}

/// A partition in flight: what its fetch asked, to check the answer still applies.
struct InFlight {
    partition: Arc<Partition>,
    leader_epoch: i32,
}

/// Fetches from `leader` until `stop`.
async fn fetch_from(
    broker: Arc<Broker>,
    leader: i32,
    plan: watch::Receiver<FetchPlan>,
    stop: CancellationToken,
) {
    let repl = broker.config.replication.clone();
    let mut client: Option<BrokerClient> = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let keys: Vec<PartitionKey> = plan
            .borrow()
            .get(&leader)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let (request, in_flight) = build_request(&broker, leader, &keys);
        if in_flight.is_empty() {
            // The manager stops this task when the leader has no partitions left.
            if sleep_or_stop(&stop, repl.fetch_backoff).await {
                return;
            }
            continue;
        }
        let c = match client.take() {
            Some(c) => c,
            None => match connect(&broker, leader).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot reach the leader");
                    if sleep_or_stop(&stop, repl.fetch_backoff).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut c = c;
        let response = tokio::select! {
            () = stop.cancelled() => return,
            r = c.send(&request, FETCH_VERSION) => r,
        };
        let response = match response {
            Ok(r) => {
                client = Some(c);
                r
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "fetch from the leader failed");
                if sleep_or_stop(&stop, repl.fetch_backoff).await {
                    return;
                }
                continue;
            }
        };
        let progressed = handle_response(&broker, leader, &in_flight, response);
        if !progressed && sleep_or_stop(&stop, repl.fetch_backoff).await {
            return;
        }
    }
}

/// Sleeps for `d` unless stopped first; returns whether stopped.
async fn sleep_or_stop(stop: &CancellationToken, d: std::time::Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

async fn connect(broker: &Broker, leader: i32) -> Result<BrokerClient, ClientError> {
    let addr = {
        let state = broker.metadata.read();
        state
            .brokers
            .get(&leader)
            .map(|b| format!("{}:{}", b.host, b.port))
    };
    let Some(addr) = addr else {
        return Err(ClientError::Connect {
            addr: format!("broker {leader}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "broker is not registered"),
        });
    };
    let repl = &broker.config.replication;
    let limit = usize::try_from(repl.fetch_response_max_bytes).unwrap_or(usize::MAX);
    BrokerClient::connect(
        &addr,
        &format!("broker-{}-fetcher-{leader}", broker.config.node_id),
        limit.saturating_mul(2).max(1 << 20),
    )
    .await
}

/// The Fetch request for the partitions this broker still follows from `leader`.
fn build_request(
    broker: &Broker,
    leader: i32,
    keys: &[PartitionKey],
) -> (FetchRequest, HashMap<PartitionKey, InFlight>) {
    let repl = &broker.config.replication;
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut in_flight = HashMap::new();
    for (topic, index) in keys {
        let Some(p) = broker.replicas.get(topic, *index) else {
            continue;
        };
        if !matches!(p.role(), Role::Follower { leader: l } if l == leader) {
            continue;
        }
        let fetch = FetchPartition::default()
            .with_partition(*index)
            .with_current_leader_epoch(p.leader_epoch())
            .with_fetch_offset(p.log_end_offset())
            .with_last_fetched_epoch(p.log().latest_epoch().unwrap_or(-1))
            .with_log_start_offset(p.log_start_offset())
            .with_partition_max_bytes(repl.fetch_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(fetch),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![fetch]),
            ),
        }
        in_flight.insert(
            (topic.clone(), *index),
            InFlight {
                leader_epoch: p.leader_epoch(),
                partition: p,
            },
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_max_wait_ms(i32::try_from(repl.fetch_wait_max.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(1)
        .with_max_bytes(repl.fetch_response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, in_flight)
}

/// Applies a Fetch response; returns whether any partition answered without error.
fn handle_response(
    broker: &Broker,
    leader: i32,
    in_flight: &HashMap<PartitionKey, InFlight>,
    response: FetchResponse,
) -> bool {
    if response.error_code != 0 {
        tracing::debug!(leader, error_code = response.error_code, "fetch refused");
        return false;
    }
    let mut progressed = false;
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        for data in topic.partitions {
            let key = (name.clone(), data.partition_index);
            let Some(f) = in_flight.get(&key) else {
                continue;
            };
            // The role may have changed while the fetch was in flight: then the answer is stale.
            let p = &f.partition;
            if p.leader_epoch() != f.leader_epoch
                || !matches!(p.role(), Role::Follower { leader: l } if l == leader)
            {
                continue;
            }
            match apply_partition(broker, p, f.leader_epoch, data) {
                Ok(true) => progressed = true,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, leader, error = %e, "applying fetched data failed");
                }
            }
        }
    }
    progressed
}

/// Why fetched data could not be applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("leader answered error code {0}")]
    Leader(i16),
    #[error(transparent)]
    Append(#[from] crate::partition::AppendError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// Applies one partition's answer; `Ok(true)` when it was not an error.
fn apply_partition(
    broker: &Broker,
    p: &Partition,
    leader_epoch: i32,
    data: PartitionData,
) -> Result<bool, ApplyError> {
    let code = data.error_code;
    if code == ResponseError::OffsetOutOfRange.code() {
        let leo = p.log_end_offset();
        if leo < data.log_start_offset {
            // The leader deleted what this follower still needs: start over at its log start.
            tracing::info!(topic = %p.topic, partition = p.index, from = leo, to = data.log_start_offset, "follower fell below the leader's log start");
            p.truncate_fully_and_start_at(leader_epoch, data.log_start_offset)?;
            return Ok(true);
        }
        if data.high_watermark >= 0 && leo > data.high_watermark {
            // Ahead of the leader without epoch information: keep only what is committed.
            p.truncate_as_follower(leader_epoch, data.high_watermark)?;
            return Ok(true);
        }
        return Err(ApplyError::Leader(code));
    }
    if code != 0 {
        return Err(ApplyError::Leader(code));
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 && diverging.end_offset >= 0 {
        let (own_epoch, own_end) = p.log().end_offset_for_epoch(diverging.epoch);
        let target = if own_epoch < 0 {
            diverging.end_offset
        } else {
            diverging.end_offset.min(own_end)
        };
        tracing::info!(topic = %p.topic, partition = p.index, diverging_epoch = diverging.epoch, leader_end_offset = diverging.end_offset, truncate_to = target, "truncating a log that diverged from the leader");
        p.truncate_as_follower(leader_epoch, target)?;
        return Ok(true);
    }
    let records = data.records.unwrap_or_default();
    p.append_as_follower(
        leader_epoch,
        &records,
        data.high_watermark,
        data.log_start_offset,
    )?;
    let lag = (data.high_watermark - p.log_end_offset()).max(0);
    broker
        .metrics
        .follower_fetch_lag
        .get_or_create(&PartitionLabel {
            topic: p.topic.clone(),
            partition: p.index,
        })
        .set(lag);
    Ok(true)
}
