//! OffsetCommit, OffsetFetch and OffsetDelete, the removal of a deleted topic's offsets, and offset
//! expiry.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::CoordinatorRecord;
use super::classic_group::{Group, GroupState, TopicPartition};
use super::clock::Now;
use super::coordinator::{GroupCoordinator, PendingOffset, State};
use super::membership::refresh_session;
use super::records::{OffsetValue, RecordKey};

/// One partition of an offset commit: topic, partition, and the offset to write or the error code.
type PartitionCommit = (String, i32, Result<OffsetValue, i16>);

/// One partition's committed offset as OffsetFetch reports it; offset -1 when there is none.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

impl GroupCoordinator {
    /// OffsetCommit (v2-9): stores offsets once they are in the coordinator log.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        if !self.is_active() {
            return super::not_coordinator::offset_commit(&req);
        }
        let (mut results, commit) = self.commit_locked(&req, version);
        // Acknowledged, and visible to OffsetFetch, only once the offsets log's replication has it
        // (acks=all on the log).
        if let Some(commit) = commit {
            let timeout =
                std::time::Duration::from_millis(self.config.offsets_commit_timeout_ms as u64);
            let durable = match tokio::time::timeout(timeout, self.log.wait_durable()).await {
                Ok(Ok(())) => true,
                Ok(Err(err)) => {
                    tracing::warn!(group_id = %req.group_id.as_str(), %err, "offset commit not durable");
                    false
                }
                Err(_) => {
                    tracing::warn!(group_id = %req.group_id.as_str(), ?timeout, "offset commit not replicated in time");
                    false
                }
            };
            if durable {
                let wall_ms = self.now().wall_ms;
                self.lock().publish_offsets(commit, wall_ms);
            } else {
                // Still pending: a later commit whose wait succeeds publishes it, being durable
                // by then; the client, told it failed, retries meanwhile.
                for result in results.iter_mut().filter(|r| r.2.is_ok()) {
                    result.2 = Err(ResponseError::CoordinatorNotAvailable.code());
                }
            }
        }
        let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
        for (topic, partition, outcome) in results {
            let entry = OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(outcome.err().unwrap_or(0));
            match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// Validates a commit and writes its valid offsets to the log, pending until durable, under
    /// the lock: per partition, the offset written or the error, and the commit's number when
    /// anything was written.
    fn commit_locked(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
    ) -> (Vec<PartitionCommit>, Option<u64>) {
        let now = self.now();
        // One lock for validation, the log append and the update, so that a rebalance cannot slip
        // in between and a commit of a stale generation is never accepted.
        let mut state = self.lock();
        let group_error = validate_commit(&state, req);
        // Per partition: the error, or the offset to write.
        let mut results: Vec<PartitionCommit> = Vec::new();
        for topic in &req.topics {
            for partition in &topic.partitions {
                let outcome = match group_error {
                    Some(error) => Err(error.code()),
                    None => self
                        .check_partition(
                            topic.name.as_str(),
                            partition.partition_index,
                            partition.committed_metadata.as_deref(),
                        )
                        .map(|()| OffsetValue {
                            offset: partition.committed_offset,
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: partition
                                .committed_metadata
                                .as_deref()
                                .unwrap_or_default()
                                .to_owned(),
                            commit_timestamp_ms: now.wall_ms,
                            // v2-v4 may ask for a retention of their own; -1 means the broker's.
                            expire_timestamp_ms: (version <= 4 && req.retention_time_ms >= 0)
                                .then(|| now.wall_ms.saturating_add(req.retention_time_ms)),
                        }),
                };
                results.push((topic.name.to_string(), partition.partition_index, outcome));
            }
        }
        let commit = if group_error.is_none() {
            self.apply_commit(&mut state, req, &mut results, now)
        } else {
            None
        };
        (results, commit)
    }

    fn check_partition(
        &self,
        topic: &str,
        partition: i32,
        metadata: Option<&str>,
    ) -> Result<(), i16> {
        if metadata.is_some_and(|m| m.len() > self.config.offset_metadata_max_bytes) {
            return Err(ResponseError::OffsetMetadataTooLarge.code());
        }
        if !self.partitions.partition_exists(topic, partition) {
            return Err(ResponseError::UnknownTopicOrPartition.code());
        }
        Ok(())
    }

    /// Writes the valid offsets of a commit to the log, then queues them as pending: the
    /// commit's number, or `None` when nothing was written.
    fn apply_commit(
        &self,
        state: &mut State,
        req: &OffsetCommitRequest,
        results: &mut [PartitionCommit],
        now: Now,
    ) -> Option<u64> {
        let group_id = req.group_id.to_string();
        // Offsets become visible only after the log has them, and only once it has them durably
        // (`publish_offsets`): a fetch must never see an offset that a restart or a failover of
        // the offsets partition would lose.
        let records: Vec<CoordinatorRecord> = results
            .iter()
            .filter_map(|(topic, partition, outcome)| {
                let value = outcome.as_ref().ok()?;
                let key = RecordKey::Offset {
                    group_id: group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                Some((key.encode(), Some(value.encode())))
            })
            .collect();
        if records.is_empty() {
            return None;
        }
        if let Err(err) = self.append(records) {
            tracing::warn!(%group_id, %err, "persisting offset commit failed");
            for result in results.iter_mut().filter(|r| r.2.is_ok()) {
                result.2 = Err(ResponseError::CoordinatorNotAvailable.code());
            }
            return None;
        }
        let commit = state.next_commit;
        state.next_commit += 1;
        for (topic, partition, outcome) in results.iter() {
            if let Ok(value) = outcome {
                state.pending_offsets.push(PendingOffset {
                    commit,
                    group_id: group_id.clone(),
                    partition: (topic.clone(), *partition),
                    value: value.clone(),
                });
            }
        }
        let group = state
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id, now.wall_ms));
        // A commit from a member in good standing also proves it is alive.
        if req.generation_id_or_member_epoch >= 0 {
            refresh_session(group, req.member_id.as_str(), now);
        }
        Some(commit)
    }

    /// OffsetFetch (v1-9): committed offsets of one group (v1-7) or several (v8+); null topics mean
    /// every partition the group has an offset for.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        if !self.is_active() {
            return super::not_coordinator::offset_fetch(&req, version);
        }
        let state = self.lock();
        if version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let wanted = g.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect::<Vec<_>>()
                    });
                    let topics = fetch(&state, g.group_id.as_str(), wanted)
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p.partition)
                                                .with_committed_offset(p.offset)
                                                .with_committed_leader_epoch(p.leader_epoch)
                                                .with_metadata(Some(StrBytes::from_string(
                                                    p.metadata,
                                                )))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_topics(topics)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let wanted = req.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let topics = fetch(&state, req.group_id.as_str(), wanted)
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p.partition)
                                    .with_committed_offset(p.offset)
                                    // v1-4 have no leader epoch; -1 is also the field's default.
                                    .with_committed_leader_epoch(if version >= 5 {
                                        p.leader_epoch
                                    } else {
                                        -1
                                    })
                                    .with_metadata(Some(StrBytes::from_string(p.metadata)))
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// OffsetDelete (v0): deletes a group's offsets for partitions it no longer consumes.
    pub async fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
        _version: i16,
    ) -> OffsetDeleteResponse {
        if !self.is_active() {
            return super::not_coordinator::offset_delete();
        }
        let group_id = req.group_id.to_string();
        let mut state = self.lock();
        let Some(group) = state.groups.get_mut(&group_id) else {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code());
        };
        // Kafka only looks inside subscriptions of "consumer" groups; a group of another protocol
        // type must be empty before its offsets can be deleted.
        let is_consumer_group =
            group.protocol_type.as_deref() == Some(super::classic_group::CONSUMER_PROTOCOL_TYPE);
        if group.state == GroupState::Dead {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code());
        }
        if !is_consumer_group && group.state != GroupState::Empty {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::NonEmptyGroup.code());
        }
        // `None`: the subscriptions cannot be read, so every topic counts as subscribed.
        let subscribed = group.subscribed_topics();
        let mut deleted: Vec<TopicPartition> = Vec::new();
        let mut topics = Vec::new();
        for topic in &req.topics {
            let name = topic.name.as_str();
            let in_use = subscribed
                .as_ref()
                .is_none_or(|s: &HashSet<String>| s.contains(name));
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = if !self.partitions.partition_exists(name, p.partition_index) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if in_use {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        deleted.push((name.to_owned(), p.partition_index));
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        let to_delete: Vec<TopicPartition> = deleted
            .into_iter()
            .filter(|tp| group.offsets.contains_key(tp))
            .collect();
        if !to_delete.is_empty() {
            if let Err(err) = self.append(offset_tombstones(&group_id, &to_delete)) {
                tracing::warn!(%group_id, %err, "persisting offset deletion failed");
                return OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code());
            }
            for tp in &to_delete {
                group.offsets.remove(tp);
            }
            state.drop_pending(|g, tp| g == group_id && to_delete.contains(tp));
        }
        OffsetDeleteResponse::default().with_topics(topics)
    }

    /// Called when a topic is deleted: drop its committed offsets.
    pub async fn topic_deleted(&self, topic: &str) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut removed: Vec<(String, TopicPartition)> = Vec::new();
        for group in state.groups.values_mut() {
            let mut gone: Vec<TopicPartition> = group
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            // Offsets still waiting to be durable get a tombstone too.
            for p in &state.pending_offsets {
                if p.group_id == group.group_id
                    && p.partition.0 == topic
                    && !gone.contains(&p.partition)
                {
                    gone.push(p.partition.clone());
                }
            }
            if gone.is_empty() {
                continue;
            }
            if let Err(err) = self.append(offset_tombstones(&group.group_id, &gone)) {
                // The offsets stay in memory and in the log; the next expiry or deletion retries.
                tracing::warn!(group_id = %group.group_id, %topic, %err, "removing offsets of a deleted topic failed");
                continue;
            }
            for tp in &gone {
                group.offsets.remove(tp);
            }
            removed.extend(gone.into_iter().map(|tp| (group.group_id.clone(), tp)));
        }
        state.drop_pending(|g, tp| removed.iter().any(|(rg, rtp)| rg == g && rtp == tp));
    }
}

/// Kafka's group-level checks of a commit, done once for the whole request.
fn validate_commit(state: &State, req: &OffsetCommitRequest) -> Option<ResponseError> {
    if req.group_id.is_empty() {
        return Some(ResponseError::InvalidGroupId);
    }
    let generation_id = req.generation_id_or_member_epoch;
    let member_id = req.member_id.as_str();
    let instance_id = req.group_instance_id.as_deref();
    let Some(group) = state.groups.get(req.group_id.as_str()) else {
        // Only a commit outside group management may create a group.
        let simple = generation_id < 0 && member_id.is_empty() && instance_id.is_none();
        return (!simple).then_some(ResponseError::IllegalGeneration);
    };
    if generation_id < 0 && group.state == GroupState::Empty {
        // Tools and consumers that assign partitions themselves commit with generation -1.
        return None;
    }
    if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
        if let Some(code) = group.validate_member(member_id, instance_id) {
            return ResponseError::try_from_code(code);
        }
        if generation_id != group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
    } else if group.state != GroupState::Empty {
        return Some(ResponseError::UnknownMemberId);
    }
    if group.state == GroupState::CompletingRebalance {
        // The member has the new generation but not its assignment yet: commit after syncing.
        return Some(ResponseError::RebalanceInProgress);
    }
    None
}

/// Tombstones for the given offsets of `group_id`.
pub(crate) fn offset_tombstones(
    group_id: &str,
    partitions: &[TopicPartition],
) -> Vec<CoordinatorRecord> {
    partitions
        .iter()
        .map(|(topic, partition)| {
            let key = RecordKey::Offset {
                group_id: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            };
            (key.encode(), None)
        })
        .collect()
}

/// Committed offsets of `group_id` for the wanted topics and partitions (`None`: all committed ones),
/// grouped by topic in request order.
fn fetch(
    state: &State,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<Fetched>)> {
    let group = state.groups.get(group_id);
    let lookup = |topic: &str, partition: i32| {
        let value = group.and_then(|g| g.offsets.get(&(topic.to_owned(), partition)));
        match value {
            Some(v) => Fetched {
                partition,
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata.clone(),
            },
            None => Fetched {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            },
        }
    };
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let fetched = partitions.into_iter().map(|p| lookup(&topic, p)).collect();
                (topic, fetched)
            })
            .collect(),
        None => {
            let mut out: Vec<(String, Vec<Fetched>)> = Vec::new();
            for (topic, partition) in group.map(|g| g.offsets.keys()).into_iter().flatten() {
                let fetched = lookup(topic, *partition);
                match out.last_mut() {
                    Some((last, partitions)) if last == topic => partitions.push(fetched),
                    _ => out.push((topic.clone(), vec![fetched])),
                }
            }
            out
        }
    }
}
