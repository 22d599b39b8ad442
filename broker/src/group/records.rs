//! Encoding of the coordinator's records in `__consumer_offsets`, in Kafka's own formats so that the
//! log reads like Kafka's: `OffsetCommitKey` v1, `OffsetCommitValue` v3 (v1 when the commit carries an
//! explicit retention), `GroupMetadataKey` v2 and `GroupMetadataValue` v3.
//!
//! Every key and value starts with an `int16` schema version; the body uses Kafka's classic
//! (non-flexible) encoding: big-endian integers, `int16`-length strings (-1 for null) and
//! `int32`-length byte arrays. Decoding accepts every older version Kafka ever wrote, so the format
//! can evolve by adding versions.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The key of a coordinator record: which group or which committed offset it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RecordKey {
    /// `OffsetCommitKey`: the committed offset of one partition for one group.
    Offset {
        group_id: String,
        topic: String,
        partition: i32,
    },
    /// `GroupMetadataKey`: the membership of one group.
    Group { group_id: String },
}

/// `OffsetCommitValue`: one committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetValue {
    pub(crate) offset: i64,
    /// -1 when unknown (values before v3 do not carry it).
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp_ms: i64,
    /// Set only by old commits that asked for an explicit retention time.
    pub(crate) expire_timestamp_ms: Option<i64>,
}

/// `GroupMetadataValue`: a group's generation, protocol and members with their assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupValue {
    pub(crate) protocol_type: String,
    pub(crate) generation_id: i32,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) state_timestamp_ms: i64,
    pub(crate) members: Vec<MemberValue>,
}

/// One member inside [`GroupValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberValue {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub(crate) subscription: Bytes,
    pub(crate) assignment: Bytes,
}

/// Why a record could not be decoded.
pub(crate) type DecodeError = String;

impl RecordKey {
    /// Encodes the key in its current version.
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            Self::Offset {
                group_id,
                topic,
                partition,
            } => {
                buf.put_i16(1);
                put_string(&mut buf, group_id);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            Self::Group { group_id } => {
                buf.put_i16(2);
                put_string(&mut buf, group_id);
            }
        }
        buf.freeze()
    }

    /// Decodes a key. `Ok(None)` for key versions this coordinator does not use (for example records
    /// of Kafka's newer consumer protocol), which replay skips.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Option<Self>, DecodeError> {
        let mut reader = Reader(bytes.clone());
        let key = match reader.i16()? {
            0 | 1 => Self::Offset {
                group_id: reader.string()?,
                topic: reader.string()?,
                partition: reader.i32()?,
            },
            2 => Self::Group {
                group_id: reader.string()?,
            },
            _ => return Ok(None),
        };
        reader.finish()?;
        Ok(Some(key))
    }
}

impl OffsetValue {
    /// Encodes as v3, or v1 when the commit has an explicit expiry (which v3 cannot express).
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self.expire_timestamp_ms {
            Some(expire) => {
                buf.put_i16(1);
                buf.put_i64(self.offset);
                put_string(&mut buf, &self.metadata);
                buf.put_i64(self.commit_timestamp_ms);
                buf.put_i64(expire);
            }
            None => {
                buf.put_i16(3);
                buf.put_i64(self.offset);
                buf.put_i32(self.leader_epoch);
                put_string(&mut buf, &self.metadata);
                buf.put_i64(self.commit_timestamp_ms);
            }
        }
        buf.freeze()
    }

    /// Decodes any version from 0 to 3.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader(bytes.clone());
        let version = reader.i16()?;
        let offset = reader.i64()?;
        let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
        let metadata = reader.string()?;
        let commit_timestamp_ms = reader.i64()?;
        let expire_timestamp_ms = match version {
            0 | 2 | 3 => None,
            1 => Some(reader.i64()?).filter(|&t| t >= 0),
            other => return Err(format!("offset value version {other} is not supported")),
        };
        // Flexible versions (4+) append tagged fields; older ones must end here.
        reader.finish()?;
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupValue {
    /// Encodes as v3.
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(3);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation_id);
        put_nullable_string(&mut buf, self.protocol_name.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.state_timestamp_ms);
        put_len_i32(&mut buf, self.members.len());
        for member in &self.members {
            put_string(&mut buf, &member.member_id);
            put_nullable_string(&mut buf, member.group_instance_id.as_deref());
            put_string(&mut buf, &member.client_id);
            put_string(&mut buf, &member.client_host);
            buf.put_i32(member.rebalance_timeout_ms);
            buf.put_i32(member.session_timeout_ms);
            put_bytes(&mut buf, &member.subscription);
            put_bytes(&mut buf, &member.assignment);
        }
        buf.freeze()
    }

    /// Decodes any version from 0 to 3.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader(bytes.clone());
        let version = reader.i16()?;
        if !(0..=3).contains(&version) {
            return Err(format!("group value version {version} is not supported"));
        }
        let protocol_type = reader.string()?;
        let generation_id = reader.i32()?;
        let protocol_name = reader.nullable_string()?;
        let leader = reader.nullable_string()?;
        let state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
        let count = reader.i32()?;
        let count = usize::try_from(count).map_err(|_| format!("negative member count {count}"))?;
        // Each member takes at least 20 bytes, so a count beyond that is corrupt; checking first keeps a
        // bad count from reserving a huge vector.
        if count > reader.0.remaining() / 20 + 1 {
            return Err(format!(
                "member count {count} exceeds the {} bytes left",
                reader.0.remaining()
            ));
        }
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let member_id = reader.string()?;
            let group_instance_id = if version >= 3 {
                reader.nullable_string()?
            } else {
                None
            };
            let client_id = reader.string()?;
            let client_host = reader.string()?;
            let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { -1 };
            let session_timeout_ms = reader.i32()?;
            let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            };
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: reader.bytes()?,
                assignment: reader.bytes()?,
            });
        }
        reader.finish()?;
        Ok(Self {
            protocol_type,
            generation_id,
            protocol_name,
            leader,
            state_timestamp_ms,
            members,
        })
    }
}

fn put_len_i32(buf: &mut BytesMut, len: usize) {
    // Lengths come from strings and byte arrays that arrived in Kafka requests, which are themselves
    // bounded far below i32::MAX; saturate rather than wrap if that ever changes.
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

fn put_string(buf: &mut BytesMut, s: &str) {
    put_nullable_string(buf, Some(s));
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => buf.put_i16(-1),
        Some(s) => {
            // Kafka strings are at most i16::MAX bytes long; requests cannot carry longer ones.
            let len = s.len().min(i16::MAX as usize);
            buf.put_i16(i16::try_from(len).unwrap_or(i16::MAX));
            buf.put_slice(s.as_bytes().get(..len).unwrap_or_default());
        }
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    put_len_i32(buf, b.len());
    buf.put_slice(b);
}

/// Bounds-checked reading of the classic encoding.
struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.0.remaining() < n {
            return Err(format!(
                "needs {n} more bytes but only {} are left",
                self.0.remaining()
            ));
        }
        Ok(())
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }

    fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let len = self.i16()?;
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        self.need(len)?;
        let raw = self.0.split_to(len);
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|e| format!("string is not utf-8: {e}"))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.nullable_string()?
            .ok_or_else(|| "null where a string is required".to_owned())
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.i32()?;
        let Ok(len) = usize::try_from(len) else {
            return Ok(Bytes::new());
        };
        self.need(len)?;
        Ok(self.0.split_to(len))
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.has_remaining() {
            return Err(format!("{} trailing bytes", self.0.remaining()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn offset_key_matches_kafkas_layout() {
        let key = RecordKey::Offset {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let bytes = key.encode();
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(RecordKey::decode(&bytes).unwrap(), Some(key));
    }

    #[test]
    fn group_key_uses_version_two() {
        let key = RecordKey::Group {
            group_id: "grp".into(),
        };
        let bytes = key.encode();
        assert_eq!(&bytes[..2], &[0, 2]);
        assert_eq!(RecordKey::decode(&bytes).unwrap(), Some(key));
    }

    #[test]
    fn unknown_key_versions_are_skipped_not_errors() {
        assert_eq!(
            RecordKey::decode(&Bytes::from_static(&[0, 9, 1, 2])),
            Ok(None)
        );
    }

    #[test]
    fn truncated_values_are_errors() {
        let value = OffsetValue {
            offset: 5,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp_ms: 10,
            expire_timestamp_ms: None,
        }
        .encode();
        for cut in 0..value.len() {
            assert!(
                OffsetValue::decode(&value.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn offset_value_with_expiry_round_trips_through_v1() {
        let value = OffsetValue {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 10,
            expire_timestamp_ms: Some(99),
        };
        let bytes = value.encode();
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(OffsetValue::decode(&bytes).unwrap(), value);
    }

    fn member() -> impl Strategy<Value = MemberValue> {
        (
            ".{0,8}",
            proptest::option::of(".{0,8}"),
            ".{0,8}",
            1..100_000i32,
            1..100_000i32,
            proptest::collection::vec(any::<u8>(), 0..16),
            proptest::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(
                |(id, instance, client, rebalance, session, sub, assignment)| MemberValue {
                    member_id: id,
                    group_instance_id: instance,
                    client_id: client,
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: rebalance,
                    session_timeout_ms: session,
                    subscription: sub.into(),
                    assignment: assignment.into(),
                },
            )
    }

    proptest! {
        #[test]
        fn group_values_round_trip(
            protocol_type in ".{0,8}",
            generation_id in any::<i32>(),
            protocol_name in proptest::option::of(".{0,8}"),
            leader in proptest::option::of(".{0,8}"),
            state_timestamp_ms in any::<i64>(),
            members in proptest::collection::vec(member(), 0..4),
        ) {
            let value = GroupValue { protocol_type, generation_id, protocol_name, leader, state_timestamp_ms, members };
            prop_assert_eq!(GroupValue::decode(&value.encode()).unwrap(), value);
        }

        #[test]
        fn offset_values_round_trip(offset in any::<i64>(), leader_epoch in any::<i32>(), metadata in ".{0,32}", ts in any::<i64>()) {
            let value = OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms: ts, expire_timestamp_ms: None };
            prop_assert_eq!(OffsetValue::decode(&value.encode()).unwrap(), value);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = Bytes::from(bytes);
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupValue::decode(&bytes);
        }
    }
}
