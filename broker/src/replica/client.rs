//! A minimal Kafka client for broker-to-broker requests: one connection, one request in flight,
//! requests encoded and responses decoded with `kafka-protocol`. Followers fetch with it; tests
//! use it to speak to brokers directly.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request to another broker failed. The connection is unusable after any of them.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding a request for {addr}: {reason}")]
    Encode { addr: String, reason: String },
    #[error("decoding a response from {addr}: {reason}")]
    Decode { addr: String, reason: String },
    #[error("response from {addr} has correlation id {got}, expected {expected}")]
    Correlation {
        addr: String,
        got: i32,
        expected: i32,
    },
    #[error("response frame of {size} bytes from {addr} is over the limit of {limit}")]
    FrameTooLarge {
        addr: String,
        size: i64,
        limit: usize,
    },
}

/// One connection to a broker.
#[derive(Debug)]
pub struct BrokerClient {
    addr: String,
    stream: TcpStream,
    client_id: String,
    next_correlation: i32,
    max_response_bytes: usize,
}

impl BrokerClient {
    /// Connects to `addr` (`host:port`). Responses over `max_response_bytes` close the connection.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        max_response_bytes: usize,
    ) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(BrokerClient {
            addr: addr.to_owned(),
            stream,
            client_id: client_id.to_owned(),
            next_correlation: 1,
            max_response_bytes,
        })
    }

    /// The address this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits for its response. Not cancel safe: a request
    /// dropped mid-way leaves the connection unusable, so drop the client with it.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| request.encode(&mut buf, version))
            .map_err(|e| ClientError::Encode {
                addr: self.addr.clone(),
                reason: format!("{e:#}"),
            })?;
        let size = i32::try_from(buf.len() - 4).unwrap_or(i32::MAX);
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await.map_err(|e| self.io(e))?;

        let size = self.stream.read_i32().await.map_err(|e| self.io(e))?;
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        if len > self.max_response_bytes || size < 4 {
            return Err(ClientError::FrameTooLarge {
                addr: self.addr.clone(),
                size: i64::from(size),
                limit: self.max_response_bytes,
            });
        }
        let mut frame = BytesMut::zeroed(len);
        self.stream
            .read_exact(&mut frame)
            .await
            .map_err(|e| self.io(e))?;
        let mut frame: Bytes = frame.freeze();
        let decode_error = |e: anyhow::Error| ClientError::Decode {
            addr: self.addr.clone(),
            reason: format!("{e:#}"),
        };
        let header = ResponseHeader::decode(
            &mut frame,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(decode_error)?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::Correlation {
                addr: self.addr.clone(),
                got: header.correlation_id,
                expected: correlation_id,
            });
        }
        let response = R::Response::decode(&mut frame, version).map_err(decode_error)?;
        if frame.has_remaining() {
            tracing::debug!(addr = %self.addr, left = frame.remaining(), "response had trailing bytes");
        }
        Ok(response)
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }
}
