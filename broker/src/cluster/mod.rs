//! Cluster metadata: brokers, topics with ids, partitions with replicas and leaders, topic configs,
//! and the producer-id allocator.
//!
//! The state changes only by applying [`MetadataRecord`]s ([`ClusterState::apply`]), so the same
//! records can be replicated by consensus: [`MetadataStore`] persists them as a local journal (one
//! broker) or through the metadata Raft group ([`raft`], a cluster of brokers).

pub mod raft;
mod state;
mod store;

pub use raft::{MetadataBatch, RaftOptions};
pub use state::{BrokerInfo, ClusterState, MetadataRecord, PartitionInfo, TopicInfo};
pub use store::{MetadataError, MetadataStore};

/// Whether a topic name is one Kafka accepts: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}: only ASCII alphanumerics, '.', '_' and '-' are legal"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_topic_name;

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(validate_topic_name("page-views").is_ok());
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name("slash/y").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
