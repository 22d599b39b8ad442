//! Test helpers: record batches built with the Kafka record codec, as a producer would send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record's key and value, either possibly null.
pub(crate) type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A record of a non-idempotent producer. The sequence follows the offset so that the encoder
/// keeps all records of a call in one batch.
pub(crate) fn record(
    offset: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    timestamp: i64,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: i32::try_from(offset).unwrap_or(0) - 1,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
    }
}

/// One batch of `(key, value)` records with offsets from 0 and timestamps from `timestamp`.
pub(crate) fn batch_of(
    records: &[KeyValue<'_>],
    timestamp: i64,
    compression: Compression,
) -> BytesMut {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let i = i64::try_from(i).unwrap_or(0);
            record(i, *k, *v, timestamp + i)
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("test batch encodes");
    buf
}

/// An uncompressed batch of `count` keyless records with `value_len`-byte values.
pub(crate) fn values_batch(count: usize, value_len: usize, timestamp: i64) -> BytesMut {
    let value = vec![b'v'; value_len];
    let records: Vec<KeyValue<'_>> = (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    batch_of(&records, timestamp, Compression::None)
}

/// A batch with one keyed record.
pub(crate) fn keyed(key: &str, value: Option<&str>, timestamp: i64) -> BytesMut {
    batch_of(
        &[(Some(key.as_bytes()), value.map(str::as_bytes))],
        timestamp,
        Compression::None,
    )
}

/// All records of concatenated batches.
pub(crate) fn decode_all(bytes: &Bytes) -> Vec<Record> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("stored batches decode")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}
