//! Metadata: brokers, cluster id, controller, and topics with partitions, leaders and replicas.
//! Topics may be asked for by name or (v10+) by id; unknown ones answer `UNKNOWN_TOPIC_OR_PARTITION`
//! (or `UNKNOWN_TOPIC_ID`) unless auto-creation is on and the client allows it.
//! Partitions carry leader, leader epoch, replicas, ISR and offline (fenced) replicas; a partition
//! without a leader answers LEADER_NOT_AVAILABLE. Only registered, unfenced brokers are listed.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::TopicInfo;
use crate::server::{Broker, OFFSETS_TOPIC, TopicSpec};

pub(super) async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0 has no null: an empty list means every topic. From v1 on, empty means none.
    let wanted: Option<Vec<(Option<String>, uuid::Uuid)>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    // Kafka 4 ignores allow_auto_topic_creation below v4 as if it were true.
    let allow_auto = version < 4 || request.allow_auto_topic_creation;

    let mut topics = Vec::new();
    match wanted {
        None => {
            let state = broker.metadata.read();
            topics.extend(
                state
                    .topics
                    .values()
                    .map(|t| topic_response(t, &state.fenced, version)),
            );
        }
        Some(list) => {
            for (name, id) in list {
                topics.push(lookup(broker, name, id, allow_auto, version).await);
            }
        }
    }

    let state = broker.metadata.read();
    let brokers = state
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(
            broker.metadata.controller_id(broker.config.node_id),
        ))
        .with_topics(topics);
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(
            broker.metadata.cluster_id().to_owned(),
        ));
    }
    if version < 8 || !request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = i32::MIN;
    }
    response
}

async fn lookup(
    broker: &Broker,
    name: Option<String>,
    id: uuid::Uuid,
    allow_auto: bool,
    version: i16,
) -> MetadataResponseTopic {
    let Some(name) = name else {
        // By id (v10+).
        let state = broker.metadata.read();
        return match state.topic_name(&id).and_then(|n| state.topic(n)) {
            Some(t) => topic_response(t, &state.fenced, version),
            None => MetadataResponseTopic::default()
                .with_error_code(ResponseError::UnknownTopicId.code())
                .with_name(None)
                .with_topic_id(id),
        };
    };
    {
        let state = broker.metadata.read();
        if let Some(t) = state.topic(&name) {
            return topic_response(t, &state.fenced, version);
        }
    }
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_error_code(code.code())
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
    };
    if !(broker.config.auto_create_topics && allow_auto) {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    let spec = TopicSpec {
        name: name.clone(),
        partitions: -1,
        replication_factor: -1,
        configs: Default::default(),
        assignments: None,
    };
    match broker.auto_create_topic(spec).await {
        // Kafka answers LEADER_NOT_AVAILABLE while a new topic's leaders are elected; ours are immediate.
        Ok(t) => topic_response(&t, &broker.metadata.read().fenced, version),
        Err(crate::server::TopicError::AlreadyExists(_)) => {
            let state = broker.metadata.read();
            match state.topic(&name) {
                Some(t) => topic_response(t, &state.fenced, version),
                None => error(ResponseError::LeaderNotAvailable),
            }
        }
        Err(crate::server::TopicError::InvalidName(_)) => {
            error(ResponseError::InvalidTopicException)
        }
        Err(e) => {
            tracing::warn!(topic = %name, error = %e, "auto-creation failed");
            error(ResponseError::UnknownTopicOrPartition)
        }
    }
}

fn topic_response(
    t: &TopicInfo,
    fenced: &std::collections::BTreeSet<i32>,
    version: i16,
) -> MetadataResponseTopic {
    let ids = |v: &[i32]| -> Vec<BrokerId> { v.iter().map(|&r| BrokerId(r)).collect() };
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| fenced.contains(r))
                .collect();
            let mut mp = MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr));
            if p.leader < 0 {
                mp.error_code = ResponseError::LeaderNotAvailable.code();
            }
            if version >= 5 {
                mp.offline_replicas = ids(&offline);
            }
            if version >= 7 {
                mp.leader_epoch = p.leader_epoch;
            }
            mp
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_is_internal(t.name == OFFSETS_TOPIC)
        .with_partitions(partitions);
    if version >= 10 {
        topic.topic_id = t.id;
    }
    topic
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::cluster::{BrokerInfo, MetadataRecord};
    use crate::config::BrokerConfig;

    #[tokio::test]
    async fn partitions_show_isr_and_fenced_replicas_and_only_live_brokers_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let any: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let broker = Broker::open(BrokerConfig::local(dir.path().join("data"), any, any))
            .await
            .unwrap();
        let register = |id| {
            MetadataRecord::RegisterBroker(BrokerInfo {
                id,
                host: "127.0.0.1".into(),
                port: 9100 + id,
                rack: None,
            })
        };
        broker
            .metadata
            .commit(vec![
                register(1),
                register(2),
                MetadataRecord::FenceBroker { id: 2 },
            ])
            .await
            .unwrap();
        let spec = TopicSpec {
            name: "t".into(),
            partitions: -1,
            replication_factor: -1,
            configs: Default::default(),
            assignments: Some(vec![vec![0, 1, 2], vec![2, 1, 0]]),
        };
        broker.create_topic(spec, false).await.unwrap();
        let change = |index, leader, isr: Vec<i32>| MetadataRecord::PartitionChange {
            topic: "t".into(),
            index,
            expected_partition_epoch: None,
            leader: Some(leader),
            isr: Some(isr),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        };
        broker
            .metadata
            .commit(vec![change(0, 0, vec![0, 1]), change(1, -1, vec![])])
            .await
            .unwrap();

        let response = handle(&broker, MetadataRequest::default().with_topics(None), 12).await;
        let ids: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(ids, vec![0, 1]);
        let topic = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "t"))
            .unwrap();
        let p0 = &topic.partitions[0];
        assert_eq!(p0.error_code, 0);
        assert_eq!(p0.leader_id, BrokerId(0));
        assert_eq!(p0.isr_nodes, vec![BrokerId(0), BrokerId(1)]);
        assert_eq!(p0.offline_replicas, vec![BrokerId(2)]);
        assert_eq!(p0.leader_epoch, 0);
        let p1 = &topic.partitions[1];
        assert_eq!(p1.error_code, ResponseError::LeaderNotAvailable.code());
        assert_eq!(p1.leader_id, BrokerId(-1));
        assert_eq!(p1.leader_epoch, 1);
    }
}
