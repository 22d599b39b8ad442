//! A minimal blocking Kafka wire client for tests: send any request at any version, decode the
//! response. Used to exercise every API and version the broker advertises, and bad input.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub struct Wire {
    stream: TcpStream,
    correlation: i32,
}

impl Wire {
    /// Connects, or says why not (for brokers that may be down).
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Wire {
            stream,
            correlation: 0,
        })
    }

    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Wire {
            stream,
            correlation: 0,
        }
    }

    /// How long a read may wait.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }

    /// Sends `request` at `version` and decodes the response.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.try_call(request, version)
            .unwrap_or_else(|e| panic!("{} v{version}: {e}", std::any::type_name::<R>()))
    }

    pub fn try_call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        self.send(request, version)?;
        self.receive::<R>(version)
    }

    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<(), String> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("odradek-e2e")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| e.to_string())?;
        request
            .encode(&mut body, version)
            .map_err(|e| e.to_string())?;
        self.send_raw(&body)
    }

    pub fn receive<R: Request>(&mut self, version: i16) -> Result<R::Response, String> {
        let mut frame = self.read_frame()?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| e.to_string())?;
        if header.correlation_id != self.correlation {
            return Err(format!(
                "correlation id {} != {}",
                header.correlation_id, self.correlation
            ));
        }
        let response = R::Response::decode(&mut frame, version).map_err(|e| format!("{e:#}"))?;
        if frame.has_remaining() {
            return Err(format!(
                "{} bytes left after the response",
                frame.remaining()
            ));
        }
        Ok(response)
    }

    /// Writes a size prefix and `body`.
    pub fn send_raw(&mut self, body: &[u8]) -> Result<(), String> {
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(body);
        self.stream.write_all(&frame).map_err(|e| e.to_string())
    }

    /// Writes bytes as they are, no prefix.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| e.to_string())
    }

    pub fn read_frame(&mut self) -> Result<Bytes, String> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| e.to_string())?;
        let len = i32::from_be_bytes(len);
        let mut buf = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| e.to_string())?;
        Ok(Bytes::from(buf))
    }

    /// True when the broker closed the connection (read returns EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}
