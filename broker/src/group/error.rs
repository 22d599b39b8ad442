//! Errors of the group coordinator that are not Kafka error codes: configuration, the coordinator log
//! and its contents. Errors a client sees travel as Kafka error codes inside responses instead.

/// What can go wrong building or persisting the coordinator's state.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A setting is out of range.
    #[error("invalid group coordinator config {name}: {value}")]
    InvalidConfig {
        /// The Kafka name of the setting.
        name: &'static str,
        /// The rejected value, with context.
        value: String,
    },
    /// The coordinator log could not append or read records.
    #[error("coordinator log failed: {0}")]
    Log(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record read back from the coordinator log cannot be decoded.
    #[error("coordinator log record {index} is malformed: {reason}")]
    Corrupt {
        /// Position of the record in the replayed sequence.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl GroupError {
    /// Wraps any I/O-level failure of a [`CoordinatorLog`](super::CoordinatorLog) implementation.
    pub fn log(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Log(source.into())
    }
}
