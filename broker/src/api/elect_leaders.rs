//! ElectLeaders: preferred-leader elections on demand (what `kafka-leader-election.sh` and the
//! admin clients send). An UNCLEAN election of a partition that has a leader is not needed; of one
//! without, a live in-sync replica is elected when there is one and otherwise the request is
//! refused: this cluster never elects a replica outside the ISR, since that can lose acknowledged
//! records.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::cluster::ClusterState;
use crate::controller::{self, ElectionError, NO_LEADER};
use crate::server::Broker;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

type Outcome = Result<(), (ResponseError, String)>;

/// Decides the election of one partition on the working copy `state`, applying it there.
fn elect(
    state: &mut ClusterState,
    records: &mut Vec<crate::cluster::MetadataRecord>,
    election_type: i8,
    topic: &str,
    partition: i32,
) -> Outcome {
    match election_type {
        PREFERRED => match controller::elect_preferred(state, topic, partition) {
            Ok(record) => {
                state.apply(&record);
                records.push(record);
                Ok(())
            }
            Err(e) => {
                let code = match e {
                    ElectionError::UnknownPartition { .. } => {
                        ResponseError::UnknownTopicOrPartition
                    }
                    ElectionError::NotNeeded { .. } => ResponseError::ElectionNotNeeded,
                    ElectionError::PreferredNotAvailable { .. } => {
                        ResponseError::PreferredLeaderNotAvailable
                    }
                };
                Err((code, e.to_string()))
            }
        },
        UNCLEAN => match state.partition(topic, partition) {
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("topic {topic} has no partition {partition}"),
            )),
            Some(p) if p.leader != NO_LEADER => Err((
                ResponseError::ElectionNotNeeded,
                format!("{topic}-{partition} has a leader ({})", p.leader),
            )),
            // A live in-sync replica is elected as Kafka would; never an out-of-sync one.
            Some(_) => match controller::elect_leaderless(state, topic, partition) {
                Some(record) => {
                    state.apply(&record);
                    records.push(record);
                    Ok(())
                }
                None => Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "unclean leader election of {topic}-{partition} is not supported: it could lose acknowledged records"
                    ),
                )),
            },
        },
        other => Err((
            ResponseError::InvalidRequest,
            format!("unknown election type {other}"),
        )),
    }
}

pub(super) async fn handle(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    // v0 has no election type: it is always a preferred election.
    let election_type = if version >= 1 {
        request.election_type
    } else {
        PREFERRED
    };
    let mut state = broker.metadata.read().clone();
    let mut records = Vec::new();
    let mut results: Vec<(String, Vec<(i32, Outcome)>)> = Vec::new();
    match request.topic_partitions {
        Some(topics) => {
            for t in topics {
                let topic = t.topic.0.to_string();
                let outcomes = t
                    .partitions
                    .iter()
                    .map(|&p| (p, elect(&mut state, &mut records, election_type, &topic, p)))
                    .collect();
                results.push((topic, outcomes));
            }
        }
        None => {
            // Every partition; as in Kafka, those already led as asked are not reported.
            let all: Vec<(String, Vec<i32>)> = state
                .topics
                .values()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.partitions.iter().map(|p| p.index).collect(),
                    )
                })
                .collect();
            for (topic, partitions) in all {
                let outcomes: Vec<(i32, Outcome)> = partitions
                    .into_iter()
                    .map(|p| (p, elect(&mut state, &mut records, election_type, &topic, p)))
                    .filter(|(_, o)| !matches!(o, Err((ResponseError::ElectionNotNeeded, _))))
                    .collect();
                if !outcomes.is_empty() {
                    results.push((topic, outcomes));
                }
            }
        }
    }
    let elections = records.len() as u64;
    let committed = if records.is_empty() {
        Ok(())
    } else {
        broker.metadata.commit(records).await
    };
    if committed.is_ok() {
        broker.metrics.leader_elections.inc_by(elections);
    }
    let replica_election_results = results
        .into_iter()
        .map(|(topic, outcomes)| {
            let partition_result = outcomes
                .into_iter()
                .map(|(p, outcome)| {
                    let r = PartitionResult::default().with_partition_id(p);
                    match (outcome, &committed) {
                        (Ok(()), Ok(())) => r.with_error_message(None),
                        (Ok(()), Err(e)) => r
                            .with_error_code(ResponseError::UnknownServerError.code())
                            .with_error_message(message(format!(
                                "committing the election failed: {e}"
                            ))),
                        (Err((code, text)), _) => r
                            .with_error_code(code.code())
                            .with_error_message(message(text)),
                    }
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(replica_election_results)
}
