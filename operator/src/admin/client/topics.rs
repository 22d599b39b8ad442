//! Topic and config requests of the admin client (Metadata, CreateTopics, CreatePartitions,
//! DeleteTopics, DescribeConfigs, IncrementalAlterConfigs).

use super::*;

impl KafkaAdminClient {
    pub(super) async fn describe_topics_impl(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicDescription>, AdminError> {
        let metadata = self.metadata(names).await?;
        let mut topics = Vec::new();
        for t in &metadata.topics {
            let name = t.name.as_ref().map(|n| text(&n.0)).unwrap_or_default();
            if t.error_code == UNKNOWN_TOPIC_OR_PARTITION {
                continue;
            }
            if let Some(e) = AdminError::from_code("Metadata", &name, t.error_code, None) {
                return Err(e);
            }
            let mut partitions: Vec<PartitionDescription> = t
                .partitions
                .iter()
                .map(|p| PartitionDescription {
                    partition: p.partition_index,
                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.push(TopicDescription {
                name,
                topic_id: topic_id_text(&t.topic_id),
                is_internal: t.is_internal,
                partitions,
            });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    pub(super) async fn create_topic_impl(&self, topic: &NewTopic) -> Result<String, AdminError> {
        let creatable = CreatableTopic::default()
            .with_name(topic_name(&topic.name))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor)
            .with_configs(
                topic
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                CreateTopicsRequest::default()
                    .with_topics(vec![creatable.clone()])
                    .with_timeout_ms(timeout)
            })
            .await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| AdminError::Protocol {
                addr: self.bootstrap.join(","),
                api: "CreateTopics",
                message: format!("no result for topic {}", topic.name),
            })?;
        if let Some(e) = AdminError::from_code(
            "CreateTopics",
            &topic.name,
            result.error_code,
            opt_text(result.error_message.as_ref()),
        ) {
            return Err(e);
        }
        Ok(topic_id_text(&result.topic_id))
    }

    pub(super) async fn create_partitions_impl(
        &self,
        topic: &str,
        total: i32,
    ) -> Result<(), AdminError> {
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                CreatePartitionsRequest::default()
                    .with_topics(vec![
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(topic))
                            .with_count(total),
                    ])
                    .with_timeout_ms(timeout)
            })
            .await?;
        for r in &response.results {
            if let Some(e) = AdminError::from_code(
                "CreatePartitions",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    pub(super) async fn delete_topic_impl(&self, topic: &str) -> Result<(), AdminError> {
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |version| {
                let request = DeleteTopicsRequest::default().with_timeout_ms(timeout);
                // v6 names topics in `topics` (name or id); older versions in `topic_names`.
                if version >= 6 {
                    request.with_topics(vec![
                        DeleteTopicState::default().with_name(Some(topic_name(topic))),
                    ])
                } else {
                    request.with_topic_names(vec![topic_name(topic)])
                }
            })
            .await?;
        for r in &response.responses {
            if let Some(e) = AdminError::from_code(
                "DeleteTopics",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    pub(super) async fn describe_topic_configs_impl(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError> {
        let response = self
            .send(None, |_| {
                DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string(topic.to_owned()))
                        .with_configuration_keys(None),
                ])
            })
            .await?;
        let mut configs = BTreeMap::new();
        for r in &response.results {
            if let Some(e) = AdminError::from_code(
                "DescribeConfigs",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
            for c in &r.configs {
                configs.insert(
                    text(&c.name),
                    ConfigValue {
                        value: opt_text(c.value.as_ref()),
                        is_topic_override: c.config_source == SOURCE_DYNAMIC_TOPIC_CONFIG,
                    },
                );
            }
        }
        Ok(configs)
    }

    pub(super) async fn alter_topic_configs_impl(
        &self,
        topic: &str,
        ops: &[ConfigOp],
    ) -> Result<(), AdminError> {
        if ops.is_empty() {
            return Ok(());
        }
        let configs: Vec<AlterableConfig> = ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set { name, value } => AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_string(value.clone()))),
                ConfigOp::Delete { name } => AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_config_operation(OP_DELETE)
                    .with_value(None),
            })
            .collect();
        let response = self
            .send(None, |_| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string(topic.to_owned()))
                        .with_configs(configs.clone()),
                ])
            })
            .await?;
        for r in &response.responses {
            if let Some(e) = AdminError::from_code(
                "IncrementalAlterConfigs",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }
}
