//! Offset expiry (`offsets.retention.ms`) and the removal of groups left with nothing.

use std::collections::HashSet;

use super::classic_group::{CONSUMER_PROTOCOL_TYPE, GroupState, TopicPartition};
use super::clock::Now;
use super::coordinator::{GroupCoordinator, State};
use super::offsets::offset_tombstones;
use super::records::RecordKey;

impl GroupCoordinator {
    /// Removes expired offsets, then groups left with neither members nor offsets. Kafka 2.1+ rule:
    /// offsets of an empty group expire `offsets.retention.ms` after the group became empty (or
    /// after the commit, if later); a consumer group that is running only loses offsets of topics
    /// it no longer subscribes to. Commits with an explicit retention expire at their own time.
    pub(crate) fn expire_offsets(&self, state: &mut State, now: Now) {
        let retention_ms = self.config.offsets_retention_ms;
        // A group whose offsets are still pending is not empty: they become visible shortly.
        let pending: HashSet<String> = state
            .pending_offsets
            .iter()
            .map(|p| p.group_id.clone())
            .collect();
        let mut dead: Vec<String> = Vec::new();
        for group in state.groups.values_mut() {
            let subscribed = match group.state {
                GroupState::Empty => Some(HashSet::new()),
                GroupState::Stable
                    if group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) =>
                {
                    group.subscribed_topics()
                }
                _ => None,
            };
            let expired: Vec<TopicPartition> = group
                .offsets
                .iter()
                .filter(|((topic, _), value)| match value.expire_timestamp_ms {
                    Some(expire) => now.wall_ms >= expire,
                    None => subscribed.as_ref().is_some_and(|s| {
                        let base = if group.state == GroupState::Empty {
                            value.commit_timestamp_ms.max(group.state_timestamp_ms)
                        } else {
                            value.commit_timestamp_ms
                        };
                        !s.contains(topic) && now.wall_ms.saturating_sub(base) >= retention_ms
                    }),
                })
                .map(|(tp, _)| tp.clone())
                .collect();
            if !expired.is_empty() {
                if let Err(err) = self.append(offset_tombstones(&group.group_id, &expired)) {
                    tracing::warn!(group_id = %group.group_id, %err, "expiring offsets failed");
                    continue;
                }
                tracing::info!(group_id = %group.group_id, count = expired.len(), "expired committed offsets");
                for tp in &expired {
                    group.offsets.remove(tp);
                }
            }
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
                && !pending.contains(&group.group_id)
            {
                dead.push(group.group_id.clone());
            }
        }
        for group_id in dead {
            let tombstone = (
                RecordKey::Group {
                    group_id: group_id.clone(),
                }
                .encode(),
                None,
            );
            match self.append(vec![tombstone]) {
                Ok(()) => {
                    tracing::info!(%group_id, "removed empty group without offsets");
                    state.groups.remove(&group_id);
                }
                Err(err) => tracing::warn!(%group_id, %err, "removing empty group failed"),
            }
        }
    }
}
