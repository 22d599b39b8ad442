//! InitProducerId for idempotent producers: a fresh producer id at epoch 0, or (v3+, KIP-360) the
//! same id with its epoch bumped when the client asks to recover one. Transactional ids are refused:
//! transactions are not supported.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::server::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    // Kafka: an empty transactional id is a malformed request; a real one needs transactions.
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|t| t.0.is_empty())
    {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if version >= 3
        && request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return InitProducerIdResponse::default()
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "producer id allocation failed");
            InitProducerIdResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
