use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_are_kafkas() {
    let c = LogConfig::default();
    assert_eq!(c.segment_bytes, 1_073_741_824);
    assert_eq!(c.retention_ms, 604_800_000);
    assert_eq!(c.retention_bytes, -1);
    assert_eq!(c.max_message_bytes, 1_048_588);
    assert_eq!(c.index_interval_bytes, 4096);
    assert_eq!(c.cleanup_policy, CleanupPolicy::Delete);
    assert_eq!(c.value_of("flush.messages").unwrap(), "9223372036854775807");
    for d in known_configs() {
        if !d.internal {
            assert_eq!(c.value_of(d.name).as_deref(), Some(d.default), "{}", d.name);
        }
    }
    assert!(c.describe().iter().all(|e| e.is_default));
}

#[test]
fn kafka_configs_set_the_typed_fields() {
    let c = LogConfig::from_kafka_configs(&map(&[
        ("retention.ms", "-1"),
        ("retention.bytes", "1000000"),
        ("segment.bytes", "1048576"),
        ("segment.ms", "60000"),
        ("cleanup.policy", "delete, compact"),
        ("max.message.bytes", "2000000"),
        ("delete.retention.ms", "10"),
        ("min.compaction.lag.ms", "5"),
        ("flush.messages", "1"),
        ("flush.ms", "1000"),
        ("index.interval.bytes", "128"),
        ("min.insync.replicas", "2"),
        ("message.timestamp.type", "LogAppendTime"),
    ]))
    .unwrap();
    assert_eq!(c.retention_ms, -1);
    assert_eq!(c.retention_bytes, 1_000_000);
    assert_eq!(c.segment_bytes, 1_048_576);
    assert_eq!(c.segment_ms, 60_000);
    assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
    assert_eq!(c.max_message_bytes, 2_000_000);
    assert_eq!(c.delete_retention_ms, 10);
    assert_eq!(c.min_compaction_lag_ms, 5);
    assert_eq!(c.flush_messages, 1);
    assert_eq!(c.flush_ms, 1_000);
    assert_eq!(c.index_interval_bytes, 128);
    assert_eq!(c.min_insync_replicas, 2);
    assert_eq!(
        c.message_timestamp_type,
        MessageTimestampType::LogAppendTime
    );
    assert_eq!(c.value_of("cleanup.policy").unwrap(), "compact,delete");
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let err = LogConfig::from_kafka_configs(&map(&[("retention.hours", "1")])).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Unknown {
            name: "retention.hours".to_owned()
        }
    );
    assert!(err.to_string().contains("retention.hours"));
}

#[test]
fn invalid_values_are_errors_naming_key_and_value() {
    for (k, v) in [
        ("retention.ms", "abc"),
        ("retention.ms", "-2"),
        ("segment.bytes", "1000"),
        ("segment.bytes", "99999999999"),
        ("cleanup.policy", "shred"),
        ("cleanup.policy", ""),
        ("min.insync.replicas", "0"),
        ("message.timestamp.type", "Now"),
        ("compression.type", "brotli"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("preallocate", "yes"),
        ("flush.messages", "0"),
    ] {
        let err = LogConfig::from_kafka_configs(&map(&[(k, v)])).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{k}={v}");
        assert!(msg.contains(k) && msg.contains(v), "{msg}");
    }
}

#[test]
fn other_known_configs_are_stored_and_described() {
    let c = LogConfig::from_kafka_configs(&map(&[
        ("compression.type", "zstd"),
        ("unclean.leader.election.enable", "TRUE"),
        ("retention.ms", "604800000"),
    ]))
    .unwrap();
    let described = c.describe();
    let find = |n: &str| described.iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(find("compression.type").value, "zstd");
    assert!(!find("compression.type").is_default);
    assert_eq!(find("unclean.leader.election.enable").value, "true");
    // Set explicitly to the default value: still reported as a topic override, as Kafka does.
    assert!(!find("retention.ms").is_default);
    assert!(find("segment.ms").is_default);
    assert!(described.iter().all(|e| e.name != "internal.segment.bytes"));
    let round_trip = LogConfig::from_kafka_configs(&c.to_kafka_configs()).unwrap();
    assert_eq!(round_trip, c);
}

#[test]
fn reset_restores_the_default() {
    let mut c = LogConfig::default();
    c.set("retention.ms", "5").unwrap();
    c.set("compression.type", "lz4").unwrap();
    c.reset("retention.ms").unwrap();
    c.reset("compression.type").unwrap();
    assert_eq!(c, LogConfig::default());
    assert!(c.reset("nope").is_err());
}

#[test]
fn the_internal_segment_size_override_bypasses_the_minimum() {
    let mut c = LogConfig::from_kafka_configs(&map(&[("internal.segment.bytes", "1024")])).unwrap();
    assert_eq!(c.segment_bytes, 1024);
    c.set("segment.bytes", "2097152").unwrap();
    assert_eq!(c.segment_bytes, 1024);
    assert_eq!(c.value_of("segment.bytes").unwrap(), "2097152");
    c.reset("internal.segment.bytes").unwrap();
    assert_eq!(c.segment_bytes, 2_097_152);
}

#[test]
fn config_types_follow_kafkas_describe_codes() {
    let code = |n: &str| config_def(n).unwrap().kafka_type();
    assert_eq!(code("retention.ms"), 5);
    assert_eq!(code("max.message.bytes"), 3);
    assert_eq!(code("cleanup.policy"), 7);
    assert_eq!(code("compression.type"), 2);
    assert_eq!(code("preallocate"), 1);
    assert_eq!(code("min.cleanable.dirty.ratio"), 6);
}
