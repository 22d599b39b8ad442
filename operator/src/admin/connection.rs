//! One TCP connection to one broker: size-prefixed frames, correlation ids and API version
//! negotiation, sans any knowledge of which request goes where.
//!
//! Requests are strictly sequential on a connection (one in flight), which is all the operator needs
//! and keeps response matching trivial.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::AdminError;

/// Kafka's `UNSUPPORTED_VERSION` error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// A connection with the API versions its broker announced.
#[derive(Debug)]
pub(crate) struct Connection {
    addr: String,
    stream: BufReader<TcpStream>,
    /// Broker's supported version range per API key.
    versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: i32,
    client_id: StrBytes,
    timeout: Duration,
    max_response_bytes: usize,
}

impl Connection {
    /// Connects and asks the broker which API versions it serves.
    pub(crate) async fn open(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Self, AdminError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| AdminError::Connect {
                addr: addr.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|source| AdminError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Admin requests are small; latency matters more than batching.
        let _ = stream.set_nodelay(true);
        let mut conn = Self {
            addr: addr.to_owned(),
            stream: BufReader::new(stream),
            versions: HashMap::new(),
            next_correlation_id: 0,
            client_id: StrBytes::from_string(client_id.to_owned()),
            timeout,
            max_response_bytes,
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// The broker's address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    async fn negotiate(&mut self) -> Result<(), AdminError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("odradek-operator"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 first (what modern clients send); a broker that only knows older versions answers
        // UNSUPPORTED_VERSION in the v0 format, and then v0 is used.
        let mut response: ApiVersionsResponse = self.round_trip(&request, 3).await?;
        if response.error_code == UNSUPPORTED_VERSION {
            response = self.round_trip(&request, 0).await?;
        }
        if let Some(err) =
            AdminError::from_code("ApiVersions", &self.addr, response.error_code, None)
        {
            return Err(err);
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version of `R` both sides speak.
    pub(crate) fn version_for<R: Request>(&self) -> Result<i16, AdminError> {
        let ours = R::VERSIONS;
        let unsupported = || AdminError::Unsupported {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
            min: ours.min,
            max: ours.max,
        };
        let &(min, max) = self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let version = ours.max.min(max);
        if version < ours.min.max(min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` in `version` (from [`Self::version_for`]) and returns the decoded response.
    pub(crate) async fn send<R>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, AdminError>
    where
        R: Request,
    {
        self.round_trip(request, version).await
    }

    async fn round_trip<R>(&mut self, request: &R, version: i16) -> Result<R::Response, AdminError>
    where
        R: Request,
    {
        let api = api_name(R::KEY);
        match tokio::time::timeout(self.timeout, self.exchange(request, version)).await {
            Ok(result) => result,
            Err(_) => Err(AdminError::Timeout {
                addr: self.addr.clone(),
                api,
            }),
        }
    }

    async fn exchange<R>(&mut self, request: &R, version: i16) -> Result<R::Response, AdminError>
    where
        R: Request,
    {
        let api = api_name(R::KEY);
        let protocol = |message: String| AdminError::Protocol {
            addr: self.addr.clone(),
            api,
            message,
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));

        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| protocol(format!("cannot encode request header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| protocol(format!("cannot encode request v{version}: {e}")))?;
        let size = i32::try_from(buf.len() - 4)
            .map_err(|_| protocol(format!("request of {} bytes is too large", buf.len())))?;
        buf[..4].copy_from_slice(&size.to_be_bytes());

        let io = |source| AdminError::Io {
            addr: self.addr.clone(),
            source,
        };
        self.stream.get_mut().write_all(&buf).await.map_err(io)?;
        let size = self.stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= self.max_response_bytes)
            .ok_or_else(|| protocol(format!("response size {size} is out of bounds")))?;
        let mut body = vec![0; size];
        self.stream.read_exact(&mut body).await.map_err(io)?;

        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| protocol(format!("cannot decode response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol(format!(
                "correlation id {} does not match request {correlation_id}",
                header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| protocol(format!("cannot decode response v{version}: {e}")))?;
        if body.has_remaining() {
            tracing::debug!(
                api,
                remaining = body.remaining(),
                "response has trailing bytes"
            );
        }
        Ok(response)
    }
}

/// The API's name for messages and metrics (a fixed set: safe as a label).
pub(crate) fn api_name(key: i16) -> &'static str {
    ApiKey::try_from(key).map_or("Unknown", |k| match k {
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::Metadata => "Metadata",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        _ => "Other",
    })
}

#[cfg(test)]
mod tests;
