//! CreateTopics (validate_only included): per topic, validate name, partitions, replication factor or
//! assignment, and configs, then create it.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin_configs::config_entries;
use super::message;
use crate::server::{Broker, TopicError, TopicSpec};

pub(super) async fn handle(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut topics = Vec::new();
    for t in request.topics {
        {
            let name = t.name.0.to_string();
            let mut result = CreatableTopicResult::default().with_name(t.name.clone());
            let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
                Err(TopicError::InvalidRequest(format!(
                    "topic '{name}' is named more than once in the request"
                )))
            } else {
                match spec_of(&name, t) {
                    Ok(spec) => broker.create_topic(spec, request.validate_only).await,
                    Err(e) => Err(e),
                }
            };
            match outcome {
                Ok(topic) => {
                    if version >= 7 {
                        result.topic_id = topic.id;
                    }
                    if version >= 5 {
                        result.num_partitions = topic.partitions.len() as i32;
                        result.replication_factor = topic.replication_factor() as i16;
                        result.configs = Some(
                            config_entries(broker, &topic.configs)
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_string(e.name))
                                        .with_value(e.value.map(StrBytes::from_string))
                                        .with_config_source(e.source)
                                        .with_is_sensitive(false)
                                        .with_read_only(false)
                                })
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    tracing::debug!(topic = %name, error = %e, "topic not created");
                    result.error_code = e.code();
                    if version >= 1 {
                        result.error_message = message(e.to_string());
                    }
                    if version >= 5 {
                        result.num_partitions = -1;
                        result.replication_factor = -1;
                        result.topic_config_error_code = match e {
                            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
                            _ => 0,
                        };
                    }
                }
            }
            topics.push(result);
        }
    }
    CreateTopicsResponse::default().with_topics(topics)
}

fn spec_of(
    name: &str,
    t: kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<TopicSpec, TopicError> {
    let mut configs = BTreeMap::new();
    for c in t.configs {
        let Some(value) = c.value else {
            return Err(TopicError::InvalidConfig(format!(
                "config {} has a null value",
                c.name.as_str()
            )));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    let assignments = if t.assignments.is_empty() {
        None
    } else {
        let mut a = t.assignments;
        a.sort_by_key(|x| x.partition_index);
        if a.iter()
            .enumerate()
            .any(|(i, x)| x.partition_index != i as i32)
        {
            return Err(TopicError::InvalidRequest(
                "replica assignment partitions must be 0..n without gaps".into(),
            ));
        }
        Some(
            a.into_iter()
                .map(|x| x.broker_ids.into_iter().map(|b| b.0).collect())
                .collect(),
        )
    };
    Ok(TopicSpec {
        name: name.to_owned(),
        partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        configs,
        assignments,
    })
}
