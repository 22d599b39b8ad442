//! DeleteTopics: by name, or by id from v6.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::server::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (name or id); earlier versions in `topic_names`.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match name {
            Some(n) => Some(n),
            None => broker.metadata.read().topic_name(&id).map(str::to_owned),
        };
        let mut r = DeletableTopicResult::default();
        match resolved {
            None => {
                r.error_code = ResponseError::UnknownTopicId.code();
                r.topic_id = id;
                r.name = None;
            }
            Some(n) => {
                r.name = Some(TopicName(StrBytes::from_string(n.clone())));
                match broker.delete_topic(&n).await {
                    Ok(topic_id) => {
                        if version >= 6 {
                            r.topic_id = topic_id;
                        }
                    }
                    Err(e) => {
                        r.error_code = e.code();
                        if version >= 5 {
                            r.error_message = message(e.to_string());
                        }
                    }
                }
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
