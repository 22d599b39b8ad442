//! Fetch: whole record batches from each requested partition, within `max_bytes` and each
//! partition's `partition_max_bytes` (the first batch of the response is returned even when larger,
//! as Kafka does, so a consumer can always make progress). When fewer than `min_bytes` are available the
//! request waits up to `max_wait_ms` and is answered the moment a partition's high watermark moves.
//! Fetch sessions (KIP-227) are not kept: every response says session 0, so clients send full fetches.
//!
//! A fetch with a replica id (`replica_id` below v15, `replica_state.replica_id` from v15) comes
//! from a follower: it reads up to the log end offset rather than the high watermark, its fetch
//! offset is the follower's log end offset (which may move the high watermark and let it join the
//! ISR), and its `last_fetched_epoch` (v12+) is checked against the leader's epoch cache: a
//! follower whose log diverged gets `diverging_epoch` (the largest epoch at most its own and where
//! it ends) instead of records. Only the leader serves fetches (NOT_LEADER_OR_FOLLOWER otherwise);
//! `current_leader_epoch` older than the leader's is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.

use std::time::Duration;

use bytes::Bytes;
use futures::future::{FutureExt, select_all};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;

use crate::partition::EpochError;
use crate::server::Broker;

/// One requested partition, resolved.
struct Wanted {
    topic_slot: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    /// Decided before reading: an error, or the follower's log diverged here.
    verdict: Option<Verdict>,
}

/// Why a partition answers without records.
#[derive(Clone, Copy)]
enum Verdict {
    Error(ResponseError),
    Diverging { epoch: i32, end_offset: i64 },
}

pub(super) async fn handle(broker: &Broker, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };

    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    // Resolve names (or ids from v13) once.
    let mut topics: Vec<(FetchableTopicResponse, Option<String>)> =
        Vec::with_capacity(request.topics.len());
    let mut wanted = Vec::new();
    for t in &request.topics {
        let name = if version >= 13 {
            broker
                .metadata
                .read()
                .topic_name(&t.topic_id)
                .map(str::to_owned)
        } else {
            Some(t.topic.0.to_string())
        };
        let mut response = FetchableTopicResponse::default();
        if version >= 13 {
            response.topic_id = t.topic_id;
        } else {
            response.topic = t.topic.clone();
        }
        let slot = topics.len();
        topics.push((response, name.clone()));
        for p in &t.partitions {
            let verdict = name.as_deref().and_then(|n| {
                check_partition(
                    broker,
                    n,
                    p.partition,
                    replica_id,
                    p.current_leader_epoch,
                    p.fetch_offset,
                    if version >= 12 {
                        p.last_fetched_epoch
                    } else {
                        -1
                    },
                )
            });
            wanted.push(Wanted {
                topic_slot: slot,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                verdict,
            });
        }
    }

    let mut receivers: Option<Vec<watch::Receiver<i64>>> = None;
    loop {
        let (parts, total, any_error) = read_all(
            broker,
            &topics,
            &wanted,
            max_bytes,
            version,
            request.isolation_level,
            replica_id >= 0,
        );
        let now = tokio::time::Instant::now();
        if total >= min_bytes || any_error || now >= deadline || wanted.is_empty() {
            broker.metrics.fetched_bytes.inc_by(total as u64);
            let mut out: Vec<FetchableTopicResponse> = topics.into_iter().map(|(t, _)| t).collect();
            for (w, data) in wanted.iter().zip(parts) {
                if let Some(t) = out.get_mut(w.topic_slot) {
                    t.partitions.push(data);
                }
            }
            return FetchResponse::default().with_responses(out);
        }
        // Subscribe once, then wait for any high watermark to move (or the deadline). Data that
        // arrived between the read above and the subscription would wake nobody, so the first
        // subscription is followed by one more read rather than by a wait.
        let first_wait = receivers.is_none();
        let rx = receivers.get_or_insert_with(|| {
            wanted
                .iter()
                .filter_map(|w| {
                    let name = topics.get(w.topic_slot)?.1.as_deref()?;
                    let p = broker.replicas.get(name, w.partition)?;
                    // Followers wait for the log end offset, but also learn a new high watermark.
                    let mut rxs = vec![p.subscribe()];
                    if replica_id >= 0 {
                        rxs.push(p.subscribe_leo());
                    }
                    for rx in &mut rxs {
                        rx.borrow_and_update();
                    }
                    Some(rxs)
                })
                .flatten()
                .collect()
        });
        if rx.is_empty() {
            tokio::time::sleep_until(deadline).await;
            continue;
        }
        if first_wait {
            continue;
        }
        let changed = select_all(rx.iter_mut().map(|r| r.changed().boxed()));
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}

/// Reads every wanted partition once: the per-partition answers, the bytes gathered, whether any
/// partition answered an error (which makes Kafka answer at once).
fn read_all(
    broker: &Broker,
    topics: &[(FetchableTopicResponse, Option<String>)],
    wanted: &[Wanted],
    max_bytes: usize,
    version: i16,
    isolation_level: i8,
    from_follower: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        // Clients expect an empty record set, not null, even next to an error.
        let mut data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_records(Some(Bytes::new()));
        if isolation_level == 1 {
            data.aborted_transactions = Some(Vec::new());
        }
        let name = topics.get(w.topic_slot).and_then(|t| t.1.as_deref());
        let partition = name.and_then(|n| broker.replicas.get(n, w.partition));
        let Some(partition) = partition else {
            data.error_code = match name {
                None if version >= 13 => ResponseError::UnknownTopicId.code(),
                None => ResponseError::UnknownTopicOrPartition.code(),
                Some(n) => super::not_hosted(broker, n, w.partition).code(),
            };
            data.high_watermark = -1;
            any_error = true;
            out.push(data);
            continue;
        };
        let hw = partition.high_watermark();
        let log_start = partition.log_start_offset();
        data.high_watermark = hw;
        data.last_stable_offset = hw;
        data.log_start_offset = log_start;
        match w.verdict {
            Some(Verdict::Error(code)) => {
                data.error_code = code.code();
                if code == ResponseError::NotLeaderOrFollower && version >= 12 {
                    data.current_leader = leader_hint(broker, name, w.partition);
                }
                any_error = true;
                out.push(data);
                continue;
            }
            Some(Verdict::Diverging { epoch, end_offset }) => {
                data.diverging_epoch = EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset);
                any_error = true;
                out.push(data);
                continue;
            }
            None => {}
        }
        // Followers read up to the log end offset, consumers up to the high watermark. An offset
        // between the two is in range for both (Kafka checks against the log end): a new leader's
        // high watermark may still be catching up with the one its consumers saw.
        let leo = partition.log_end_offset();
        let limit = if from_follower { leo } else { hw };
        if w.fetch_offset < log_start || w.fetch_offset > leo {
            data.error_code = ResponseError::OffsetOutOfRange.code();
            any_error = true;
            out.push(data);
            continue;
        }
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        if w.fetch_offset < limit && (budget > 0 || total == 0) {
            let read = if from_follower {
                partition.read_for_follower(w.fetch_offset, budget.max(1), total == 0)
            } else {
                partition.read_bounded(w.fetch_offset, budget.max(1), total == 0)
            };
            match read {
                Ok(bytes) => {
                    total += bytes.len();
                    data.records = Some(bytes);
                }
                Err(e) => {
                    tracing::error!(topic = name, partition = w.partition, error = %e, "read failed");
                    data.error_code = ResponseError::KafkaStorageError.code();
                    any_error = true;
                }
            }
        }
        out.push(data);
    }
    (out, total, any_error)
}

/// Leadership, leader epoch and (for followers) divergence checks, done once per request before
/// reading; records a follower's progress. `None`: read normally.
fn check_partition(
    broker: &Broker,
    topic: &str,
    index: i32,
    replica_id: i32,
    current_leader_epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> Option<Verdict> {
    let partition = broker.replicas.get(topic, index)?;
    if !partition.is_leader() {
        return Some(Verdict::Error(ResponseError::NotLeaderOrFollower));
    }
    match partition.check_leader_epoch(current_leader_epoch) {
        Ok(()) => {}
        Err(EpochError::Fenced { .. }) => {
            return Some(Verdict::Error(ResponseError::FencedLeaderEpoch));
        }
        Err(EpochError::Unknown { .. }) => {
            return Some(Verdict::Error(ResponseError::UnknownLeaderEpoch));
        }
    }
    if replica_id < 0 {
        return None;
    }
    if last_fetched_epoch >= 0 {
        let (epoch, end_offset) = partition.log().end_offset_for_epoch(last_fetched_epoch);
        // An unknown epoch (-1) has nothing to compare with (the leader's log start moved past
        // it): the fetch offset is then checked against the log start as usual.
        if epoch >= 0 && (epoch < last_fetched_epoch || end_offset < fetch_offset) {
            // KIP-595/KIP-320: the follower's log is not a prefix of ours from here on.
            return Some(Verdict::Diverging { epoch, end_offset });
        }
    }
    let (follower, joins) = partition.record_follower_fetch(replica_id, fetch_offset);
    if !follower {
        tracing::debug!(
            topic,
            partition = index,
            replica_id,
            "fetch from a broker that is not a replica"
        );
    }
    if joins {
        broker.replicas.wake_isr_check();
    }
    None
}

/// The partition's leader as the metadata says, for NOT_LEADER_OR_FOLLOWER answers (v12+).
fn leader_hint(broker: &Broker, topic: Option<&str>, index: i32) -> LeaderIdAndEpoch {
    let (leader, epoch) = super::current_leader(broker, topic, index);
    LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(epoch)
}
