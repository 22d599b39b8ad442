//! Replication settings, from the broker's flags.

use std::time::Duration;

/// Replication settings (Kafka's `replica.*` and `default.replication.factor`).
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Replication factor of topics created without one.
    pub default_replication_factor: i16,
    /// `replica.lag.time.max.ms`: a follower not caught up for longer leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub hw_checkpoint_interval: Duration,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for data.
    pub fetch_wait_max: Duration,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch.
    pub fetch_backoff: Duration,
    /// `replica.fetch.max.bytes` per partition and `replica.fetch.response.max.bytes` per fetch.
    pub fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            default_replication_factor: 1,
            replica_lag_time_max: Duration::from_secs(30),
            hw_checkpoint_interval: Duration::from_secs(5),
            fetch_wait_max: Duration::from_millis(500),
            fetch_backoff: Duration::from_secs(1),
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
        }
    }
}
