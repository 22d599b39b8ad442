//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (Kafka's topic config names),
//! and DescribeConfigs for the broker (read-only: broker settings are static flags).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::server::{Broker, TopicError};
use crate::storage::config::{ConfigType, known_configs};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

// Config sources, as Kafka numbers them.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// One config as described to a client.
#[derive(Debug, Clone)]
pub(super) struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    /// Values under this one, most specific first (for include_synonyms).
    pub synonyms: Vec<(String, String, i8)>,
    pub doc: String,
    /// Kafka's ConfigType: 1 boolean, 2 string, 3 int, 4 short, 5 long, 6 double, 7 list.
    pub config_type: i8,
}

/// Every topic config with its effective value and where that value comes from.
pub(super) fn config_entries(
    broker: &Broker,
    topic_configs: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let defaults = broker.replicas.defaults();
    known_configs()
        .iter()
        .filter(|c| !c.internal)
        .map(|c| {
            let mut synonyms = Vec::new();
            if let Some(v) = topic_configs.get(c.name) {
                synonyms.push((c.name.to_owned(), v.clone(), DYNAMIC_TOPIC_CONFIG));
            }
            if let Some(v) = defaults.get(c.name) {
                synonyms.push((c.name.to_owned(), v.clone(), STATIC_BROKER_CONFIG));
            }
            synonyms.push((c.name.to_owned(), c.default.to_owned(), DEFAULT_CONFIG));
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or_default();
            ConfigEntry {
                name: c.name.to_owned(),
                value: Some(value),
                source,
                read_only: false,
                synonyms,
                doc: format!("Kafka topic config {}.", c.name),
                config_type: c.kafka_type(),
            }
        })
        .collect()
}

fn broker_entries(broker: &Broker) -> Vec<ConfigEntry> {
    let c = &broker.config;
    let entry = |name: &str, value: String, config_type: i8, doc: &str| ConfigEntry {
        name: name.to_owned(),
        value: Some(value.clone()),
        source: STATIC_BROKER_CONFIG,
        read_only: true,
        synonyms: vec![(name.to_owned(), value, STATIC_BROKER_CONFIG)],
        doc: doc.to_owned(),
        config_type,
    };
    vec![
        entry("node.id", c.node_id.to_string(), 3, "The broker's id."),
        entry("broker.id", c.node_id.to_string(), 3, "The broker's id."),
        entry(
            "num.partitions",
            c.default_partitions.to_string(),
            3,
            "Partitions of a topic created without a count.",
        ),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            1,
            "Create unknown topics asked for in Metadata.",
        ),
        entry(
            "log.dirs",
            c.data_dir.display().to_string(),
            2,
            "Directory of partition logs.",
        ),
        entry(
            "socket.request.max.bytes",
            c.max_request_bytes.to_string(),
            3,
            "Largest request frame accepted.",
        ),
        entry(
            "broker.rack",
            c.rack.clone().unwrap_or_default(),
            2,
            "Rack of this broker.",
        ),
    ]
}

pub(super) fn describe(
    broker: &Broker,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            let entries = match res.resource_type {
                TOPIC => match broker.metadata.read().topic(&name) {
                    Some(t) => Ok(config_entries(broker, &t.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic '{name}' does not exist"),
                    )),
                },
                BROKER if name.is_empty() || name == broker.config.node_id.to_string() => {
                    Ok(broker_entries(broker))
                }
                BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!("this is broker {}, not {name}", broker.config.node_id),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let keys: Option<Vec<String>> = res
                        .configuration_keys
                        .map(|k| k.iter().map(ToString::to_string).collect());
                    result.configs = entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                        .map(|e| {
                            describe_entry(
                                e,
                                request.include_synonyms,
                                request.include_documentation,
                                version,
                            )
                        })
                        .collect();
                }
                Err((code, text)) => {
                    result.error_code = code.code();
                    result.error_message = message(text);
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_entry(
    e: ConfigEntry,
    synonyms: bool,
    docs: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(e.name))
        .with_value(e.value.map(StrBytes::from_string))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false);
    if synonyms && version >= 1 {
        r.synonyms = e
            .synonyms
            .into_iter()
            .map(|(n, v, s)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(n))
                    .with_value(Some(StrBytes::from_string(v)))
                    .with_source(s)
            })
            .collect();
    }
    if version >= 3 {
        r.config_type = e.config_type;
        if docs {
            r.documentation = Some(StrBytes::from_string(e.doc));
        }
    }
    r
}

/// The legacy AlterConfigs: the given set replaces every config of the topic.
pub(super) async fn alter(
    broker: &Broker,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for res in request.resources {
        {
            let outcome = alter_resource(
                broker,
                res.resource_type,
                &res.resource_name,
                request.validate_only,
                |current| {
                    let mut changes: BTreeMap<String, Option<String>> =
                        current.keys().map(|k| (k.clone(), None)).collect();
                    for c in res.configs {
                        let value = c.value.ok_or_else(|| {
                            TopicError::InvalidConfig(format!(
                                "config {} has a null value",
                                c.name.as_str()
                            ))
                        })?;
                        changes.insert(c.name.to_string(), Some(value.to_string()));
                    }
                    Ok(changes)
                },
            )
            .await;
            let (error_code, error_message) = error_fields(outcome);
            responses.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name)
                    .with_error_code(error_code)
                    .with_error_message(error_message),
            );
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Applies the changes `changes_of` computes from a topic's current configs; other resource types
/// are refused (broker configs are flags).
async fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    changes_of: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Option<String>>, TopicError>,
) -> Result<(), TopicError> {
    match resource_type {
        TOPIC => {
            let name = name.to_string();
            let current = broker
                .metadata
                .read()
                .topic(&name)
                .map(|t| t.configs.clone())
                .ok_or_else(|| TopicError::Unknown(name.clone()))?;
            let changes = changes_of(&current)?;
            broker
                .alter_topic_configs(&name, changes, validate_only)
                .await
        }
        BROKER => Err(TopicError::InvalidRequest(
            "broker configs are set by flags and cannot be altered".into(),
        )),
        other => Err(TopicError::InvalidRequest(format!(
            "resource type {other} is not supported"
        ))),
    }
}

fn error_fields(outcome: Result<(), TopicError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code(), message(e.to_string())),
    }
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub(super) async fn incremental_alter(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for res in request.resources {
        {
            let outcome = alter_resource(
                broker,
                res.resource_type,
                &res.resource_name,
                request.validate_only,
                |current| {
                    let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
                    for c in res.configs {
                        let key = c.name.to_string();
                        if changes.contains_key(&key) {
                            return Err(TopicError::InvalidRequest(format!(
                                "config {key} is altered twice in one request"
                            )));
                        }
                        let value = c.value.map(|v| v.to_string());
                        let change = match c.config_operation {
                            SET => Some(value.ok_or_else(|| {
                                TopicError::InvalidConfig(format!("SET of {key} needs a value"))
                            })?),
                            DELETE => None,
                            APPEND | SUBTRACT => {
                                let spec = known_configs().iter().find(|s| s.name == key);
                                if spec.is_none_or(|s| s.kind != ConfigType::CleanupPolicy) {
                                    return Err(TopicError::InvalidConfig(format!(
                                        "{key} is not a list config; APPEND and SUBTRACT need one"
                                    )));
                                }
                                let base = current
                                    .get(&key)
                                    .cloned()
                                    .or_else(|| spec.map(|s| s.default.to_owned()))
                                    .unwrap_or_default();
                                let mut items: Vec<String> = base
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_owned)
                                    .collect();
                                let given: Vec<String> = value
                                    .unwrap_or_default()
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_owned)
                                    .collect();
                                if c.config_operation == APPEND {
                                    for g in given {
                                        if !items.contains(&g) {
                                            items.push(g);
                                        }
                                    }
                                } else {
                                    items.retain(|i| !given.contains(i));
                                }
                                Some(items.join(","))
                            }
                            op => {
                                return Err(TopicError::InvalidRequest(format!(
                                    "unknown config operation {op}"
                                )));
                            }
                        };
                        changes.insert(key, change);
                    }
                    Ok(changes)
                },
            )
            .await;
            let (error_code, error_message) = error_fields(outcome);
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name)
                    .with_error_code(error_code)
                    .with_error_message(error_message),
            );
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
