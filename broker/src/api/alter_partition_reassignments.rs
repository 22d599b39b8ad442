//! AlterPartitionReassignments: start, replace or cancel partition reassignments. The decisions
//! are [`controller::alter`]'s; this file maps requests to them and their errors to Kafka's codes.
//! All accepted changes of one request are committed together.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::message;
use crate::controller::{self, ReassignmentError};
use crate::server::Broker;

/// Accepted, or refused with a code and a message.
type Outcome = Result<(), (ResponseError, String)>;

/// The Kafka error code of a refused reassignment.
fn code(err: &ReassignmentError) -> ResponseError {
    match err {
        ReassignmentError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
        ReassignmentError::NoReassignmentInProgress { .. } => {
            ResponseError::NoReassignmentInProgress
        }
        ReassignmentError::EmptyTarget { .. }
        | ReassignmentError::DuplicateBroker { .. }
        | ReassignmentError::UnknownBroker { .. }
        | ReassignmentError::CancelNeedsUncleanElection { .. } => {
            ResponseError::InvalidReplicaAssignment
        }
    }
}

pub(super) async fn handle(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    // v0 has no such flag: any replication factor goes.
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    // Decisions are made on a working copy that already holds the earlier ones of this request.
    let mut state = broker.metadata.read().clone();
    let mut records = Vec::new();
    let mut results: Vec<(_, Vec<(i32, Outcome)>)> = Vec::new();
    for t in request.topics {
        let topic = t.name.0.to_string();
        let mut partitions = Vec::new();
        for p in t.partitions {
            let index = p.partition_index;
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let original = state
                .partition(&topic, index)
                .map(controller::original_replicas);
            let outcome = match (&target, original) {
                (Some(target), Some(original))
                    if !allow_rf_change && target.len() != original.len() =>
                {
                    Err((
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "the replication factor of {topic}-{index} would change from {} to {} but allowReplicationFactorChange is false",
                            original.len(),
                            target.len()
                        ),
                    ))
                }
                _ => controller::alter(&state, &topic, index, target)
                    .map(|new| {
                        for r in &new {
                            state.apply(r);
                        }
                        records.extend(new);
                    })
                    .map_err(|e| (code(&e), e.to_string())),
            };
            partitions.push((index, outcome));
        }
        results.push((t.name, partitions));
    }
    let committed = if records.is_empty() {
        Ok(())
    } else {
        broker.metadata.commit(records).await
    };
    let responses = results
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, outcome)| {
                    let r = ReassignablePartitionResponse::default().with_partition_index(index);
                    match (outcome, &committed) {
                        (Ok(()), Ok(())) => r.with_error_message(None),
                        (Ok(()), Err(e)) => r
                            .with_error_code(ResponseError::UnknownServerError.code())
                            .with_error_message(message(format!(
                                "committing the reassignment failed: {e}"
                            ))),
                        (Err((code, text)), _) => r
                            .with_error_code(code.code())
                            .with_error_message(message(text)),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    let mut response = AlterPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_responses(responses);
    if version >= 1 {
        response.allow_replication_factor_change = allow_rf_change;
    }
    response
}
