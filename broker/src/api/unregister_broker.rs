//! UnregisterBroker: removes a broker from the cluster for good (the last step of a scale-down).
//! Refused while any partition still has a replica on it: the replicas must be moved off first
//! (AlterPartitionReassignments), or their data would be lost with the broker.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::message;
use crate::cluster::MetadataRecord;
use crate::server::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: &UnregisterBrokerRequest,
    _version: i16,
) -> UnregisterBrokerResponse {
    let id = request.broker_id.0;
    let refused = |code: ResponseError, text: String| {
        UnregisterBrokerResponse::default()
            .with_error_code(code.code())
            .with_error_message(message(text))
    };
    let hosted: Vec<String> = {
        let state = broker.metadata.read();
        if !state.brokers.contains_key(&id) {
            return refused(
                ResponseError::BrokerIdNotRegistered,
                format!("broker {id} is not registered"),
            );
        }
        state
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.replicas.contains(&id))
                    .map(move |p| format!("{}-{}", t.name, p.index))
            })
            .collect()
    };
    if let Some(first) = hosted.first() {
        return refused(
            ResponseError::InvalidRequest,
            format!(
                "broker {id} still hosts {} replica(s), e.g. {first}: reassign them to other brokers first",
                hosted.len()
            ),
        );
    }
    match broker
        .metadata
        .commit(vec![MetadataRecord::UnregisterBroker { id }])
        .await
    {
        Ok(()) => UnregisterBrokerResponse::default().with_error_message(None),
        Err(e) => refused(
            ResponseError::UnknownServerError,
            format!("unregistering broker {id} failed: {e}"),
        ),
    }
}
