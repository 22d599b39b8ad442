//! ListPartitionReassignments: the partitions with a reassignment in progress, all of them or
//! those asked for. Unknown topics and partitions, and partitions not being reassigned, are left
//! out, as Kafka does.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::PartitionInfo;
use crate::controller;
use crate::server::Broker;

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().copied().map(BrokerId).collect()
}

fn ongoing(p: &PartitionInfo) -> OngoingPartitionReassignment {
    OngoingPartitionReassignment::default()
        .with_partition_index(p.index)
        .with_replicas(ids(&p.replicas))
        .with_adding_replicas(ids(&p.adding_replicas))
        .with_removing_replicas(ids(&p.removing_replicas))
}

pub(super) fn handle(
    broker: &Broker,
    request: &ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let state = broker.metadata.read();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    let mut add = |topic: &str, p: &PartitionInfo| {
        if !controller::in_progress(p) {
            return;
        }
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(ongoing(p)),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![ongoing(p)]),
            ),
        }
    };
    match &request.topics {
        None => {
            for (topic, p) in controller::reassignments(&state) {
                add(topic, p);
            }
        }
        Some(wanted) => {
            for t in wanted {
                for &index in &t.partition_indexes {
                    if let Some(p) = state.partition(t.name.0.as_str(), index) {
                        add(t.name.0.as_str(), p);
                    }
                }
            }
        }
    }
    ListPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_topics(topics)
}
