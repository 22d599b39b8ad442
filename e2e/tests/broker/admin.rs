//! Topic administration through the wire, shared by the suites.

use std::net::SocketAddr;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::common::wire::Wire;

/// Creates a topic and asserts it was created.
pub(crate) fn create_topic(
    addr: SocketAddr,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut wire = Wire::connect(addr);
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string((*k).to_owned()))
                        .with_value(Some(StrBytes::from_string((*v).to_owned())))
                })
                .collect(),
        );
    let response = wire.call(
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(5000),
        7,
    );
    let result = &response.topics[0];
    assert_eq!(
        result.error_code, 0,
        "creating {name}: {:?}",
        result.error_message
    );
}
