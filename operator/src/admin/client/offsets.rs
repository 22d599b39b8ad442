//! Offset requests of the admin client: ListOffsets at each partition's leader, OffsetFetch at
//! the group's coordinator.

use super::*;

impl KafkaAdminClient {
    pub(super) async fn end_offsets_impl(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut names: Vec<String> = partitions.iter().map(|p| p.topic.clone()).collect();
        names.sort();
        names.dedup();
        let metadata = self.metadata(Some(&names)).await?;
        let addrs = Self::broker_addrs(&metadata);
        let mut leaders: HashMap<(String, i32), i32> = HashMap::new();
        for t in &metadata.topics {
            let name = t.name.as_ref().map(|n| text(&n.0)).unwrap_or_default();
            for p in &t.partitions {
                leaders.insert((name.clone(), p.partition_index), p.leader_id.0);
            }
        }
        // Group by leader so each broker gets one request.
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for tp in partitions {
            let leader = leaders
                .get(&(tp.topic.clone(), tp.partition))
                .copied()
                .filter(|l| *l >= 0)
                .ok_or_else(|| {
                    AdminError::from_code(
                        "ListOffsets",
                        format!("{}-{}", tp.topic, tp.partition),
                        UNKNOWN_TOPIC_OR_PARTITION,
                        Some("partition has no leader".to_owned()),
                    )
                    .unwrap_or(AdminError::Protocol {
                        addr: String::new(),
                        api: "ListOffsets",
                        message: "partition has no leader".to_owned(),
                    })
                })?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(tp.topic.clone())
                .or_default()
                .push(tp.partition);
        }
        let mut offsets = BTreeMap::new();
        for (leader, topics) in by_leader {
            let addr = addrs.get(&leader).cloned();
            let request_topics: Vec<ListOffsetsTopic> = topics
                .iter()
                .map(|(name, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(LATEST_TIMESTAMP)
                                })
                                .collect(),
                        )
                })
                .collect();
            let response = self
                .send(addr.as_deref(), |_| {
                    ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_isolation_level(0)
                        .with_topics(request_topics.clone())
                })
                .await?;
            for t in &response.topics {
                for p in &t.partitions {
                    let tp = TopicPartition {
                        topic: text(&t.name.0),
                        partition: p.partition_index,
                    };
                    if let Some(e) = AdminError::from_code(
                        "ListOffsets",
                        format!("{}-{}", tp.topic, tp.partition),
                        p.error_code,
                        None,
                    ) {
                        return Err(e);
                    }
                    offsets.insert(tp, p.offset);
                }
            }
        }
        Ok(offsets)
    }

    pub(super) async fn committed_offsets_impl(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        let coordinator = self
            .send(None, |version| {
                let request = FindCoordinatorRequest::default().with_key_type(0);
                if version >= 4 {
                    request.with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())])
                } else {
                    request.with_key(StrBytes::from_string(group.to_owned()))
                }
            })
            .await?;
        let (code, message, host, port) = match coordinator.coordinators.first() {
            Some(c) => (c.error_code, c.error_message.as_ref(), &c.host, c.port),
            None => (
                coordinator.error_code,
                coordinator.error_message.as_ref(),
                &coordinator.host,
                coordinator.port,
            ),
        };
        if let Some(e) = AdminError::from_code("FindCoordinator", group, code, opt_text(message)) {
            return Err(e);
        }
        let addr = format!("{}:{port}", host.as_str());

        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let response = self
            .send(Some(&addr), |version| {
                let group_id = GroupId(StrBytes::from_string(group.to_owned()));
                // v8+ batch groups; older versions name one group at the top level.
                if version >= 8 {
                    OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(group_id)
                            .with_topics(Some(
                                by_topic
                                    .iter()
                                    .map(|(t, ps)| {
                                        OffsetFetchRequestTopics::default()
                                            .with_name(topic_name(t))
                                            .with_partition_indexes(ps.clone())
                                    })
                                    .collect(),
                            )),
                    ])
                } else {
                    OffsetFetchRequest::default()
                        .with_group_id(group_id)
                        .with_topics(Some(
                            by_topic
                                .iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopic::default()
                                        .with_name(topic_name(t))
                                        .with_partition_indexes(ps.clone())
                                })
                                .collect(),
                        ))
                }
            })
            .await?;
        let mut offsets = BTreeMap::new();
        let mut record = |topic: &str, partition: i32, offset: i64, code: i16| {
            if let Some(e) =
                AdminError::from_code("OffsetFetch", format!("{topic}-{partition}"), code, None)
            {
                return Err(e);
            }
            // -1: the group has no committed offset for this partition.
            if offset >= 0 {
                offsets.insert(
                    TopicPartition {
                        topic: topic.to_owned(),
                        partition,
                    },
                    offset,
                );
            }
            Ok(())
        };
        if let Some(e) = AdminError::from_code("OffsetFetch", group, response.error_code, None) {
            return Err(e);
        }
        for g in &response.groups {
            if let Some(e) = AdminError::from_code("OffsetFetch", group, g.error_code, None) {
                return Err(e);
            }
            for t in &g.topics {
                for p in &t.partitions {
                    record(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )?;
                }
            }
        }
        for t in &response.topics {
            for p in &t.partitions {
                record(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
        Ok(offsets)
    }
}
