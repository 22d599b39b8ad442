//! DescribeCluster: cluster id, controller and brokers (what the admin clients and the operator use);
//! v2 lists fenced brokers too when asked.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::server::Broker;

/// Endpoint type 1: brokers (2 would be controllers, which this cluster does not expose separately).
const BROKERS: i8 = 1;

pub(super) fn handle(
    broker: &Broker,
    request: &DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    if version >= 1 && request.endpoint_type != BROKERS {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(message("only broker endpoints are served"))
            .with_endpoint_type(request.endpoint_type);
    }
    let state = broker.metadata.read();
    // Registered, unfenced brokers, as Kafka lists them; from v2 the fenced ones too when asked
    // (KIP-1073), flagged, so that an operator can find brokers to unregister.
    let with_fenced = version >= 2 && request.include_fenced_brokers;
    let brokers = state
        .brokers
        .values()
        .filter(|b| with_fenced || !state.fenced.contains(&b.id))
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
                .with_is_fenced(state.fenced.contains(&b.id))
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(
            broker.metadata.cluster_id().to_owned(),
        ))
        .with_controller_id(BrokerId(
            broker.metadata.controller_id(broker.config.node_id),
        ))
        .with_brokers(brokers);
    if version >= 1 {
        response.endpoint_type = BROKERS;
    }
    response
}
