//! The decoder and dispatch under random and mutated input, without a network: whatever the bytes,
//! `handle` answers or asks to close the connection, and never panics.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use proptest::prelude::*;

use super::{Outcome, SUPPORTED, handle};
use crate::config::BrokerConfig;
use crate::server::Broker;

async fn broker() -> (std::sync::Arc<Broker>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let any: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let broker = Broker::open(BrokerConfig::local(dir.path().join("data"), any, any))
        .await
        .expect("open");
    (broker, dir)
}

fn frame<R: Request>(request: &R, version: i16) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("t")));
    let mut b = BytesMut::new();
    header
        .encode(&mut b, R::header_version(version))
        .expect("header");
    request.encode(&mut b, version).expect("body");
    b.freeze()
}

fn peer() -> SocketAddr {
    "127.0.0.1:1".parse().expect("addr")
}

#[tokio::test]
async fn a_valid_request_is_answered_with_its_correlation_id() {
    let (broker, _dir) = broker().await;
    match handle(&broker, frame(&ApiVersionsRequest::default(), 3), peer()).await {
        Outcome::Respond(r) => assert_eq!(&r[4..8], &1i32.to_be_bytes()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_truncated_body_closes_instead_of_panicking() {
    let (broker, _dir) = broker().await;
    let full = frame(&MetadataRequest::default().with_topics(None), 12);
    for len in 0..full.len() {
        let out = handle(&broker, full.slice(..len), peer()).await;
        assert!(
            matches!(out, Outcome::Close(_) | Outcome::Respond(_)),
            "len {len}"
        );
    }
}

/// Random bodies behind every served api key and version, through one broker.
#[test]
fn random_bodies_never_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (broker, _dir) = rt.block_on(broker());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        0..SUPPORTED.len(),
        0i16..20,
        proptest::collection::vec(any::<u8>(), 0..256),
    );
    runner
        .run(&strategy, |(api, version_offset, body)| {
            let (key, min, max) = SUPPORTED[api];
            let version = min + version_offset % (max - min + 1);
            let mut f = BytesMut::new();
            f.put_i16(key as i16);
            f.put_i16(version);
            f.put_i32(9);
            f.put_i16(-1);
            if key.request_header_version(version) >= 2 {
                f.put_u8(0);
            }
            f.put_slice(&body);
            // A decodable JoinGroup or Fetch may legitimately wait; a bounded wait is not a failure.
            let frame = f.freeze();
            let waited = rt.block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    handle(&broker, frame, peer()),
                )
                .await
            });
            match waited {
                Ok(out) => {
                    // Produce with acks=0 answers nothing; everything else answers or closes.
                    prop_assert!(key == ApiKey::Produce || !matches!(out, Outcome::NoResponse));
                }
                Err(_) => prop_assert!(
                    matches!(key, ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Fetch),
                    "{key:?} v{version} hung"
                ),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
