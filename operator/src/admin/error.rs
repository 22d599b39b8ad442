//! Errors of the Kafka admin client, classified as transient (retry soon) or permanent.

use kafka_protocol::error::ResponseError;

/// Kafka error code `UNKNOWN_TOPIC_OR_PARTITION`.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka error code `TOPIC_ALREADY_EXISTS`.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka error code `INVALID_PARTITIONS` (e.g. fewer partitions than the topic has).
pub const INVALID_PARTITIONS: i16 = 37;
/// Kafka error code `INVALID_REPLICATION_FACTOR` (more replicas than brokers).
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// Kafka error code `UNKNOWN_TOPIC_ID`.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// `BROKER_ID_NOT_REGISTERED`.
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;

/// An admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No connection to any bootstrap address.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried last.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke while a request was in flight.
    #[error("i/o error talking to {addr}")]
    Io {
        /// The broker's address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The broker did not answer in time.
    #[error("{api} request to {addr} timed out")]
    Timeout {
        /// The broker's address.
        addr: String,
        /// The API that timed out.
        api: &'static str,
    },
    /// The broker does not serve a version of the API this client speaks.
    #[error("broker {addr} does not support {api} in versions {min}..={max}")]
    Unsupported {
        /// The broker's address.
        addr: String,
        /// The API.
        api: &'static str,
        /// Lowest version this client speaks.
        min: i16,
        /// Highest version this client speaks.
        max: i16,
    },
    /// A request could not be encoded or a response not decoded.
    #[error("{api} protocol error with {addr}: {message}")]
    Protocol {
        /// The broker's address.
        addr: String,
        /// The API.
        api: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("{api} for {resource} failed with kafka error {code} ({name}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// The API.
        api: &'static str,
        /// The topic, partition or group the error is about.
        resource: String,
        /// The Kafka error code.
        code: i16,
        /// The error's name.
        name: String,
        /// The broker's error message, if any.
        message: Option<String>,
    },
}

impl AdminError {
    /// Builds a [`AdminError::Kafka`] from a response's error code; `None` when the code is 0.
    #[must_use]
    pub fn from_code(
        api: &'static str,
        resource: impl Into<String>,
        code: i16,
        message: Option<String>,
    ) -> Option<Self> {
        let err = ResponseError::try_from_code(code)?;
        Some(Self::Kafka {
            api,
            resource: resource.into(),
            code,
            name: format!("{err:?}"),
            message: message.filter(|m| !m.is_empty()),
        })
    }

    /// The Kafka error code, when the broker answered with one.
    #[must_use]
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Self::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed: network trouble and Kafka's retriable codes.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Io { .. } | Self::Timeout { .. } => true,
            Self::Unsupported { .. } | Self::Protocol { .. } => false,
            Self::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_errors_and_retriable_codes_are_transient() {
        let timeout = AdminError::Timeout {
            addr: "a:1".into(),
            api: "Metadata",
        };
        assert!(timeout.is_transient());
        // NOT_CONTROLLER is retriable in Kafka, TOPIC_ALREADY_EXISTS is not.
        assert!(
            AdminError::from_code("CreateTopics", "t", 41, None)
                .unwrap()
                .is_transient()
        );
        let exists =
            AdminError::from_code("CreateTopics", "t", TOPIC_ALREADY_EXISTS, None).unwrap();
        assert!(!exists.is_transient());
        assert_eq!(exists.kafka_code(), Some(TOPIC_ALREADY_EXISTS));
        assert!(AdminError::from_code("CreateTopics", "t", 0, None).is_none());
    }

    #[test]
    fn kafka_errors_name_the_code_and_resource() {
        let e = AdminError::from_code(
            "CreateTopics",
            "page-views",
            38,
            Some("only 1 broker".into()),
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "CreateTopics for page-views failed with kafka error 38 (InvalidReplicationFactor): only 1 broker"
        );
    }
}
