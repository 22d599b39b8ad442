//! Cluster-wide requests of the admin client (DescribeCluster, AlterPartitionReassignments,
//! ListPartitionReassignments).

use super::*;

impl KafkaAdminClient {
    pub(super) async fn describe_cluster_impl(&self) -> Result<ClusterDescription, AdminError> {
        let response = self
            .send(None, |v| {
                DescribeClusterRequest::default().with_include_fenced_brokers(v >= 2)
            })
            .await?;
        if let Some(e) = AdminError::from_code(
            "DescribeCluster",
            "cluster",
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            return Err(e);
        }
        let mut brokers: Vec<BrokerNode> = response
            .brokers
            .iter()
            .filter(|b| !b.is_fenced)
            .map(|b| BrokerNode {
                id: b.broker_id.0,
                host: text(&b.host),
                port: b.port,
                rack: opt_text(b.rack.as_ref()),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        let mut fenced: Vec<i32> = response
            .brokers
            .iter()
            .filter(|b| b.is_fenced)
            .map(|b| b.broker_id.0)
            .collect();
        fenced.sort_unstable();
        Ok(ClusterDescription {
            cluster_id: text(&response.cluster_id),
            controller_id: response.controller_id.0,
            brokers,
            fenced,
        })
    }

    pub(super) async fn unregister_broker_impl(&self, id: i32) -> Result<(), AdminError> {
        let response = self
            .send(None, |_| {
                UnregisterBrokerRequest::default().with_broker_id(BrokerId(id))
            })
            .await?;
        match AdminError::from_code(
            "UnregisterBroker",
            format!("broker {id}"),
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            Some(e) if response.error_code != BROKER_ID_NOT_REGISTERED => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) async fn alter_partition_reassignments_impl(
        &self,
        reassignments: &[PartitionReassignmentRequest],
    ) -> Result<(), AdminError> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for r in reassignments {
            by_topic.entry(&r.topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(r.partition)
                    .with_replicas(
                        r.replicas
                            .as_ref()
                            .map(|rs| rs.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let topics: Vec<ReassignableTopic> = by_topic
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect();
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout)
                    .with_topics(topics.clone())
            })
            .await?;
        if let Some(e) = AdminError::from_code(
            "AlterPartitionReassignments",
            "cluster",
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            return Err(e);
        }
        for t in &response.responses {
            for p in &t.partitions {
                let resource = format!("{}-{}", t.name.0.as_str(), p.partition_index);
                if let Some(e) = AdminError::from_code(
                    "AlterPartitionReassignments",
                    resource,
                    p.error_code,
                    opt_text(p.error_message.as_ref()),
                ) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub(super) async fn list_partition_reassignments_impl(
        &self,
    ) -> Result<Vec<OngoingReassignment>, AdminError> {
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout)
                    .with_topics(None)
            })
            .await?;
        if let Some(e) = AdminError::from_code(
            "ListPartitionReassignments",
            "cluster",
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            return Err(e);
        }
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut ongoing: Vec<OngoingReassignment> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OngoingReassignment {
                    topic: text(&t.name.0),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(ongoing)
    }
}
