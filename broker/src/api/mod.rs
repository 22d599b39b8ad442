//! The Kafka API layer: decode a request frame, dispatch by API key to the handler in this module's
//! per-key files, encode the response. Handlers receive `kafka-protocol`'s decoded request and the
//! negotiated version and return the response struct; they never see bytes or sockets.
//!
//! What Kafka does with bad input, and so do we: a frame whose header or body cannot be decoded, an
//! unknown or disabled API key, or an unsupported version of anything but ApiVersions closes the
//! connection (Kafka's `InvalidRequestException` path) with a log line; ApiVersions at a version we do
//! not know is answered at v0 with `UNSUPPORTED_VERSION` and our version table, so the client can
//! retry at one we support.

mod admin_configs;
mod alter_partition_reassignments;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod init_producer_id;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod unregister_broker;

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::group::ClientInfo;
use crate::server::Broker;

pub use api_versions::{SUPPORTED, supported_versions};

/// What the connection does after a request.
#[derive(Debug)]
pub enum Outcome {
    /// Write this frame (size prefix included).
    Respond(BytesMut),
    /// Nothing to write (Produce with acks=0).
    NoResponse,
    /// Close the connection, for this reason.
    Close(String),
}

/// Handles one request frame (without its size prefix).
pub async fn handle(broker: &Broker, mut frame: Bytes, peer: SocketAddr) -> Outcome {
    let Some((key, version)) = peek_key_version(&frame) else {
        return Outcome::Close("frame too short for a request header".into());
    };
    let Ok(api_key) = ApiKey::try_from(key) else {
        tracing::warn!(api_key = key, "unknown api key; closing the connection");
        return Outcome::Close(format!("unknown api key {key}"));
    };
    if api_key == ApiKey::ApiVersions && supported_versions(api_key).is_some_and(|r| version > r.1)
    {
        // KIP-511: a version from the future is answered at v0, so that any client can read the error
        // and our table. Only the correlation id is needed; the rest of a newer header may not parse.
        let correlation_id = frame
            .get(4..8)
            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let header = RequestHeader::default().with_correlation_id(correlation_id);
        return respond(
            &header,
            api_key,
            0,
            &api_versions::unsupported_version_response(),
        );
    }
    let header = match RequestHeader::decode(&mut frame, api_key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(?api_key, version, error = %e, "malformed request header; closing the connection");
            return Outcome::Close(format!("malformed request header: {e}"));
        }
    };
    let Some(range) = supported_versions(api_key) else {
        tracing::warn!(
            ?api_key,
            "request for an api this broker does not serve; closing the connection"
        );
        return Outcome::Close(format!("api {api_key:?} is not served"));
    };
    if version < range.0 || version > range.1 {
        tracing::warn!(
            ?api_key,
            version,
            "unsupported api version; closing the connection"
        );
        return Outcome::Close(format!("{api_key:?} v{version} is not supported"));
    }
    let request = match RequestKind::decode(api_key, &mut frame, version) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(?api_key, version, error = %e, "malformed request body; closing the connection");
            return Outcome::Close(format!("malformed {api_key:?} v{version} request: {e:#}"));
        }
    };
    broker.metrics.request(api_key);
    let ctx = RequestContext {
        client: ClientInfo {
            client_id: header
                .client_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            client_host: format!("/{}", peer.ip()),
        },
        version,
    };
    dispatch(broker, &header, api_key, ctx, request).await
}

/// What a handler may want to know about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub client: ClientInfo,
    pub version: i16,
}

async fn dispatch(
    broker: &Broker,
    header: &RequestHeader,
    key: ApiKey,
    ctx: RequestContext,
    request: RequestKind,
) -> Outcome {
    let v = ctx.version;
    match request {
        RequestKind::ApiVersions(r) => respond(header, key, v, &api_versions::handle(&r, v)),
        RequestKind::Metadata(r) => respond(header, key, v, &metadata::handle(broker, r, v).await),
        RequestKind::Produce(r) => match produce::handle(broker, r, v).await {
            Some(resp) => respond(header, key, v, &resp),
            None => Outcome::NoResponse,
        },
        RequestKind::Fetch(r) => respond(header, key, v, &fetch::handle(broker, r, v).await),
        RequestKind::ListOffsets(r) => respond(header, key, v, &list_offsets::handle(broker, r, v)),
        RequestKind::CreateTopics(r) => {
            respond(header, key, v, &create_topics::handle(broker, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            respond(header, key, v, &delete_topics::handle(broker, r, v).await)
        }
        RequestKind::CreatePartitions(r) => respond(
            header,
            key,
            v,
            &create_partitions::handle(broker, r, v).await,
        ),
        RequestKind::DescribeConfigs(r) => {
            respond(header, key, v, &admin_configs::describe(broker, r, v))
        }
        RequestKind::AlterConfigs(r) => {
            respond(header, key, v, &admin_configs::alter(broker, r, v).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => respond(
            header,
            key,
            v,
            &admin_configs::incremental_alter(broker, r, v).await,
        ),
        RequestKind::DeleteRecords(r) => {
            respond(header, key, v, &delete_records::handle(broker, r, v))
        }
        RequestKind::OffsetForLeaderEpoch(r) => respond(
            header,
            key,
            v,
            &offset_for_leader_epoch::handle(broker, r, v),
        ),
        RequestKind::DescribeCluster(r) => {
            respond(header, key, v, &describe_cluster::handle(broker, &r, v))
        }
        RequestKind::FindCoordinator(r) => {
            respond(header, key, v, &find_coordinator::handle(broker, r, v))
        }
        RequestKind::InitProducerId(r) => respond(
            header,
            key,
            v,
            &init_producer_id::handle(broker, &r, v).await,
        ),
        RequestKind::JoinGroup(r) => respond(
            header,
            key,
            v,
            &broker.groups.join_group_with_client(r, v, ctx.client).await,
        ),
        RequestKind::SyncGroup(r) => respond(header, key, v, &broker.groups.sync_group(r, v).await),
        RequestKind::Heartbeat(r) => respond(header, key, v, &broker.groups.heartbeat(r, v).await),
        RequestKind::LeaveGroup(r) => {
            respond(header, key, v, &broker.groups.leave_group(r, v).await)
        }
        RequestKind::OffsetCommit(r) => {
            respond(header, key, v, &broker.groups.offset_commit(r, v).await)
        }
        RequestKind::OffsetFetch(r) => {
            respond(header, key, v, &broker.groups.offset_fetch(r, v).await)
        }
        RequestKind::ListGroups(r) => {
            respond(header, key, v, &broker.groups.list_groups(r, v).await)
        }
        RequestKind::DescribeGroups(r) => {
            respond(header, key, v, &broker.groups.describe_groups(r, v).await)
        }
        RequestKind::DeleteGroups(r) => {
            respond(header, key, v, &broker.groups.delete_groups(r, v).await)
        }
        RequestKind::OffsetDelete(r) => {
            respond(header, key, v, &broker.groups.offset_delete(r, v).await)
        }
        RequestKind::AlterPartitionReassignments(r) => respond(
            header,
            key,
            v,
            &alter_partition_reassignments::handle(broker, r, v).await,
        ),
        RequestKind::ListPartitionReassignments(r) => respond(
            header,
            key,
            v,
            &list_partition_reassignments::handle(broker, &r, v),
        ),
        RequestKind::ElectLeaders(r) => {
            respond(header, key, v, &elect_leaders::handle(broker, r, v).await)
        }
        RequestKind::UnregisterBroker(r) => respond(
            header,
            key,
            v,
            &unregister_broker::handle(broker, &r, v).await,
        ),
        other => {
            // supported_versions() admits only the keys above; this is a table mismatch, not client input.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for an advertised api");
            Outcome::Close("no handler".into())
        }
    }
}

fn peek_key_version(frame: &[u8]) -> Option<(i16, i16)> {
    let b = frame.get(..4)?;
    Some((
        i16::from_be_bytes([b[0], b[1]]),
        i16::from_be_bytes([b[2], b[3]]),
    ))
}

/// Encodes `header` + `body` as a size-prefixed response frame.
fn respond<R: Encodable>(request: &RequestHeader, key: ApiKey, version: i16, body: &R) -> Outcome {
    let header = ResponseHeader::default().with_correlation_id(request.correlation_id);
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let encoded = header
        .encode(&mut buf, key.response_header_version(version))
        .and_then(|()| body.encode(&mut buf, version));
    match encoded {
        Ok(()) => {
            let size = (buf.len() - 4) as i32;
            buf[..4].copy_from_slice(&size.to_be_bytes());
            Outcome::Respond(buf)
        }
        Err(e) => {
            // A response we built that does not fit its version: a broker bug, reported loudly.
            tracing::error!(?key, version, error = %e, "failed to encode a response");
            Outcome::Close(format!("failed to encode {key:?} v{version} response"))
        }
    }
}

/// The error for a partition this broker does not host: NOT_LEADER_OR_FOLLOWER when the partition
/// exists elsewhere in the cluster (the client's metadata is stale), UNKNOWN_TOPIC_OR_PARTITION
/// when it does not exist at all.
pub(crate) fn not_hosted(
    broker: &Broker,
    topic: &str,
    index: i32,
) -> kafka_protocol::ResponseError {
    if broker.metadata.read().partition(topic, index).is_some() {
        kafka_protocol::ResponseError::NotLeaderOrFollower
    } else {
        kafka_protocol::ResponseError::UnknownTopicOrPartition
    }
}

/// `Some(message)` for versions that carry an error message, shaped as kafka-protocol wants it.
pub(crate) fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}

#[cfg(test)]
mod tests;

/// A partition's leader and leader epoch as the metadata says (`(-1, -1)` when unknown), for the
/// hints that come with NOT_LEADER_OR_FOLLOWER.
fn current_leader(broker: &Broker, topic: Option<&str>, index: i32) -> (i32, i32) {
    let state = broker.metadata.read();
    topic
        .and_then(|t| state.partition(t, index))
        .map_or((-1, -1), |p| (p.leader, p.leader_epoch))
}
