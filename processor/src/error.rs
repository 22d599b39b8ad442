//! Error types at the runtime's module boundaries: the local store, task code and the Kafka edge.
//!
//! Store and task errors are values a job can match on; everything that reaches `run` is reported with
//! its chain and ends the process, so that the orchestrator restarts it and the restore path takes over.

use std::path::PathBuf;

/// Failures of the local embedded store (one redb file per store and input partition).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file could not be created or opened.
    #[error("cannot open store file {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// A read or write transaction failed.
    #[error("store {store} transaction failed: {message}")]
    Transaction {
        /// The store name.
        store: String,
        /// The underlying error, rendered.
        message: String,
    },
    /// A key in the reserved namespace (first byte 0) was written by task code.
    #[error("store key {key:?} is reserved: keys may not start with byte 0")]
    ReservedKey {
        /// The offending key.
        key: Vec<u8>,
    },
    /// A file system operation on the state directory failed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn txn(store: &str, err: impl std::fmt::Display) -> Self {
        Self::Transaction {
            store: store.to_owned(),
            message: err.to_string(),
        }
    }
}

/// Failures raised by task code (built-in or user jobs).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task asked for a store it did not declare.
    #[error("store {0} is not declared by this job")]
    UnknownStore(String),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task's own failure.
    #[error("{0}")]
    Other(String),
}

/// Failures of the Kafka edge and the runtime around tasks.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A Kafka client call failed.
    #[error("kafka {op} failed: {source}")]
    Kafka {
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The input topic does not exist (the runtime needs its partition count).
    #[error("input topic {0} does not exist")]
    MissingInput(String),
    /// A changelog record could not be decoded.
    #[error("changelog {topic} partition {partition} offset {offset}: {reason}")]
    Changelog {
        /// The changelog topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task failed.
    #[error("task for partition {partition} failed at offset {offset}: {source}")]
    Task {
        /// The input partition.
        partition: i32,
        /// The input offset being processed.
        offset: i64,
        /// Why.
        #[source]
        source: TaskError,
    },
}

impl RuntimeError {
    pub(crate) fn kafka(op: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        move |source| Self::Kafka { op, source }
    }
}
