//! Fetch: whole record batches from each requested partition, within `max_bytes` and each
//! partition's `partition_max_bytes` (the first batch of the response is returned even when larger,
//! as Kafka does, so a consumer can always make progress). When fewer than `min_bytes` are available the
//! request waits up to `max_wait_ms` and is answered the moment a partition's high watermark moves.
//! Fetch sessions (KIP-227) are not kept: every response says session 0, so clients send full fetches.

use std::time::Duration;

use bytes::Bytes;
use futures::future::{FutureExt, select_all};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;

use crate::server::Broker;

/// One requested partition, resolved.
struct Wanted {
    topic_slot: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
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
        topics.push((response, name));
        for p in &t.partitions {
            wanted.push(Wanted {
                topic_slot: slot,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
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
        // Subscribe once, then wait for any high watermark to move (or the deadline).
        let rx = receivers.get_or_insert_with(|| {
            wanted
                .iter()
                .filter_map(|w| {
                    let name = topics.get(w.topic_slot)?.1.as_deref()?;
                    let mut rx = broker.replicas.get(name, w.partition)?.subscribe();
                    rx.borrow_and_update();
                    Some(rx)
                })
                .collect()
        });
        if rx.is_empty() {
            tokio::time::sleep_until(deadline).await;
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
            data.error_code = if version >= 13 && name.is_none() {
                ResponseError::UnknownTopicId.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
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
        if w.fetch_offset < log_start || w.fetch_offset > hw {
            data.error_code = ResponseError::OffsetOutOfRange.code();
            any_error = true;
            out.push(data);
            continue;
        }
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        if w.fetch_offset < hw && (budget > 0 || total == 0) {
            match partition.read_bounded(w.fetch_offset, budget.max(1), total == 0) {
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
