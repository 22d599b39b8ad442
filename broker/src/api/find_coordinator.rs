//! FindCoordinator: the group coordinator is the leader of `__consumer_offsets` partition 0, for
//! every group; while that partition has no leader the answer is `COORDINATOR_NOT_AVAILABLE` and
//! clients retry. Transaction coordinators do not exist (transactions are not supported), so key
//! type 1 answers `COORDINATOR_NOT_AVAILABLE` too.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::server::{Broker, group_coordinator};

const GROUP: i8 = 0;

/// Where the coordinator is, or why there is none.
type Found = Result<(BrokerId, StrBytes, i32), (ResponseError, String)>;

fn find(broker: &Broker, key_type: i8) -> Found {
    if key_type != GROUP {
        return Err((
            ResponseError::CoordinatorNotAvailable,
            "transactions are not supported".into(),
        ));
    }
    let state = broker.metadata.read();
    let leader = group_coordinator(&state);
    match state.brokers.get(&leader) {
        Some(b) if !state.fenced.contains(&leader) => Ok((
            BrokerId(b.id),
            StrBytes::from_string(b.host.clone()),
            b.port,
        )),
        _ => Err((
            ResponseError::CoordinatorNotAvailable,
            format!("the group coordinator partition has no live leader (leader {leader})"),
        )),
    }
}

pub(super) fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let found = find(broker, request.key_type);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match &found {
                    Ok((node, host, port)) => c
                        .with_node_id(*node)
                        .with_host(host.clone())
                        .with_port(*port),
                    Err((code, text)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(message(text.clone())),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match found {
        Ok((node, host, port)) => response.with_node_id(node).with_host(host).with_port(port),
        Err((code, text)) => {
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
