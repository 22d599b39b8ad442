//! CreatePartitions: raise a topic's partition count (never lower it).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::message;
use crate::server::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for t in request.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
        if let Err(e) = broker
            .create_partitions(&name, t.count, request.validate_only)
            .await
        {
            r.error_code = e.code();
            r.error_message = message(e.to_string());
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}
