//! FindCoordinator: this broker coordinates every consumer group. Transaction coordinators do not
//! exist (transactions are not supported), so key type 1 answers `COORDINATOR_NOT_AVAILABLE`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::server::Broker;

const GROUP: i8 = 0;

pub(super) fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(broker.config.advertised_host.clone());
    let port = broker.config.advertised_port;
    let node = BrokerId(broker.config.node_id);
    let error = if request.key_type == GROUP {
        None
    } else {
        Some((
            ResponseError::CoordinatorNotAvailable,
            "transactions are not supported",
        ))
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match error {
                    None => c.with_node_id(node).with_host(host.clone()).with_port(port),
                    Some((code, text)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(message(text)),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match error {
        None => response.with_node_id(node).with_host(host).with_port(port),
        Some((code, text)) => {
            let r = response
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code.code());
            if version >= 1 {
                r.with_error_message(message(text))
            } else {
                r
            }
        }
    }
}
