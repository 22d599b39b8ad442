//! Mutated frames thrown at a live connection: whatever arrives, the broker answers or closes that
//! connection, never dies, and keeps serving everyone else.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use kafka_protocol::records::Compression;
use proptest::prelude::*;

use crate::common::BrokerProcess;
use crate::common::wire::Wire;
use crate::protocol::{batch, produce_request};

fn frame<R: Request>(request: &R, version: i16) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .expect("header");
    request.encode(&mut body, version).expect("body");
    body.to_vec()
}

fn seeds() -> Vec<Vec<u8>> {
    let topic = TopicName(StrBytes::from_static_str("fuzz"));
    vec![
        frame(&ApiVersionsRequest::default(), 3),
        frame(&MetadataRequest::default().with_topics(None), 12),
        frame(
            &produce_request("fuzz", 0, batch(3, None, Compression::Lz4, true), -1),
            9,
        ),
        frame(
            &FetchRequest::default()
                .with_max_wait_ms(0)
                .with_topics(vec![
                    fetch_request::FetchTopic::default()
                        .with_topic(topic.clone())
                        .with_partitions(vec![
                            fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
            12,
        ),
        frame(
            &JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range")),
                ]),
            9,
        ),
        frame(
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("x")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
            7,
        ),
        frame(
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id_or_member_epoch(-1),
            8,
        ),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        value: u8,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Overwrite 4 bytes with a large or negative count (array lengths, string lengths).
    BigCount {
        at: usize,
        value: i32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (
            any::<usize>(),
            prop_oneof![Just(i32::MAX), Just(-2), Just(0x0fff_ffff), any::<i32>()]
        )
            .prop_map(|(at, value)| Mutation::BigCount { at, value }),
    ]
}

fn apply(mut f: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = f.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if let Some(b) = f.get_mut(at % n) {
                *b ^= mask;
            }
        }
        Mutation::Set { at, value } => {
            if let Some(b) = f.get_mut(at % n) {
                *b = *value;
            }
        }
        Mutation::Truncate { len } => f.truncate(len % n),
        Mutation::Insert { at, bytes } => {
            let at = at % n;
            f.splice(at..at, bytes.iter().copied());
        }
        Mutation::BigCount { at, value } => {
            let at = at % n;
            for (i, b) in value.to_be_bytes().iter().enumerate() {
                if let Some(x) = f.get_mut(at + i) {
                    *x = *b;
                }
            }
        }
    }
    f
}

#[test]
fn mutated_frames_never_take_the_broker_down() {
    let mut broker = BrokerProcess::start(&[]);
    crate::admin::create_topic(broker.kafka, "fuzz", 1, &[]);
    let seeds = seeds();
    let addr = broker.kafka;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(0..seeds.len(), proptest::collection::vec(mutation(), 1..4)),
            |(seed, mutations)| {
                let mut body = seeds[seed].clone();
                for m in &mutations {
                    body = apply(body, m);
                }
                let mut wire = Wire::connect(addr);
                // acks=0 produce answers nothing; a short wait tells a hang from silence well enough.
                wire.set_timeout(std::time::Duration::from_millis(500));
                let mut framed = BytesMut::new();
                framed.put_i32(body.len() as i32);
                framed.put_slice(&body);
                let _ = wire.send_bytes(&framed);
                // Either an answer or a closed connection; both are fine. A hang is not (read timeout).
                let _ = wire.read_frame();
                drop(wire);
                let mut probe = Wire::connect(addr);
                let ok = probe
                    .try_call(&ApiVersionsRequest::default(), 3)
                    .map(|r| r.error_code == 0);
                prop_assert_eq!(
                    ok,
                    Ok(true),
                    "broker stopped answering after {:?}",
                    mutations
                );
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", broker.log()));
    assert!(broker.is_running(), "broker died:\n{}", broker.log());
    assert!(
        !broker.log().contains("panicked"),
        "a panic was logged:\n{}",
        broker.log()
    );
}
