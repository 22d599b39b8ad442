//! Tests of `connection`.

use super::*;
use bytes::BufMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Reads one request frame; returns (api key, version, correlation id).
async fn read_request(s: &mut TcpStream) -> (i16, i16, i32) {
    let len = s.read_i32().await.unwrap();
    let mut body = vec![0; usize::try_from(len).unwrap()];
    s.read_exact(&mut body).await.unwrap();
    let mut body = bytes::Bytes::from(body);
    let header = kafka_protocol::protocol::decode_request_header_from_buffer(&mut body).unwrap();
    // The body must decode as the request the header announces.
    RequestKind::decode(
        ApiKey::try_from(header.request_api_key).unwrap(),
        &mut body,
        header.request_api_version,
    )
    .unwrap();
    (
        header.request_api_key,
        header.request_api_version,
        header.correlation_id,
    )
}

async fn write_response<R: Encodable + HeaderVersion>(
    s: &mut TcpStream,
    correlation_id: i32,
    version: i16,
    response: &R,
) {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    response.encode(&mut buf, version).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(i32::try_from(buf.len()).unwrap());
    framed.extend_from_slice(&buf);
    s.write_all(&framed).await.unwrap();
}

fn versions(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        keys.iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

#[tokio::test]
async fn negotiates_the_highest_common_version_and_refuses_unadvertised_apis() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (key, version, id) = read_request(&mut s).await;
        assert_eq!((key, version), (ApiKey::ApiVersions as i16, 3));
        // Metadata up to v9 only; no reassignment APIs.
        let v = versions(&[(ApiKey::ApiVersions, 0, 4), (ApiKey::Metadata, 0, 9)]);
        write_response(&mut s, id, 3, &v).await;
        let (key, version, id) = read_request(&mut s).await;
        assert_eq!((key, version), (ApiKey::Metadata as i16, 9));
        write_response(&mut s, id, 9, &MetadataResponse::default()).await;
    });
    let mut conn = Connection::open(&addr, "t", Duration::from_secs(5), 1 << 20)
        .await
        .unwrap();
    let version = conn.version_for::<MetadataRequest>().unwrap();
    assert_eq!(version, 9);
    conn.send(&MetadataRequest::default(), version)
        .await
        .unwrap();
    let err = conn
        .version_for::<kafka_protocol::messages::ListPartitionReassignmentsRequest>()
        .unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Unsupported {
                api: "ListPartitionReassignments",
                ..
            }
        ),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_response_larger_than_the_bound_is_refused_without_allocating_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (_, _, id) = read_request(&mut s).await;
        write_response(&mut s, id, 3, &versions(&[(ApiKey::Metadata, 0, 12)])).await;
        let _ = read_request(&mut s).await;
        // Announce 2 GiB.
        s.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
    });
    let mut conn = Connection::open(&addr, "t", Duration::from_secs(5), 1024)
        .await
        .unwrap();
    let err = conn
        .send(&MetadataRequest::default(), 12)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdminError::Protocol { message, .. } if message.contains("out of bounds")),
        "{err}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_silent_broker_times_out_as_a_transient_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = read_request(&mut s).await;
        // Never answer; hold the socket until the client gives up.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let err = Connection::open(&addr, "t", Duration::from_millis(200), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Timeout {
                api: "ApiVersions",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    server.await.unwrap();
}
