//! The reconcilers' error type, classified for backoff (transient or permanent) and for metrics (a
//! fixed label per kind, never a Debug string: label values must stay a small, known set).

use crate::admin::AdminError;

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API request failed.
    #[error("kubernetes api request failed: {0}")]
    Kube(#[source] kube::Error),
    /// A Kafka admin request failed.
    #[error("kafka admin request failed: {0}")]
    Admin(#[source] AdminError),
    /// Adding or removing a finalizer failed, or cleanup failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object lacks a field the API server always sets (name, namespace).
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
    /// The reassignment planner rejected its input.
    #[error("cannot plan reassignment: {0}")]
    Plan(String),
    /// A value could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Serialization {
        /// What was being serialized.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Self::Kube(e)
    }
}

impl From<AdminError> for Error {
    fn from(e: AdminError) -> Self {
        Self::Admin(e)
    }
}

impl Error {
    /// Whether retrying soon may help (network, conflicts, server-side trouble) as opposed to an error
    /// that needs a change of the object or the cluster (bad spec, forbidden, unsupported).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(e) => kube_is_transient(e),
            Self::Admin(e) => e.is_transient(),
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.is_transient(),
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e) => kube_is_transient(e),
                _ => false,
            },
            Self::MissingObjectKey(_) | Self::Plan(_) | Self::Serialization { .. } => false,
        }
    }

    /// A fixed label for the `errors` metric.
    #[must_use]
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Admin(_) => "kafka_admin",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.metric_label(),
                _ => "finalizer",
            },
            Self::MissingObjectKey(_) => "missing_object_key",
            Self::Plan(_) => "plan",
            Self::Serialization { .. } => "serialization",
        }
    }
}

/// Kubernetes errors worth retrying soon: transport trouble, conflicts, throttling, server errors.
fn kube_is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 409 || status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => true,
        _ => false,
    }
}

/// Result of reconcile steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        let status = kube::core::Status::failure("x", "Reason").with_code(code);
        Error::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn conflicts_and_server_errors_are_transient_but_forbidden_is_not() {
        assert!(api_error(409).is_transient());
        assert!(api_error(503).is_transient());
        assert!(!api_error(403).is_transient());
        assert!(!api_error(422).is_transient());
        assert_eq!(api_error(409).metric_label(), "kube");
    }

    #[test]
    fn admin_errors_keep_their_classification() {
        let e = Error::Admin(AdminError::Timeout {
            addr: "a".into(),
            api: "Metadata",
        });
        assert!(e.is_transient());
        assert_eq!(e.metric_label(), "kafka_admin");
        assert!(!Error::Plan("x".into()).is_transient());
    }
}
