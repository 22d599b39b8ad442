//! Broker configs of the group coordinator, with Kafka's names and defaults.
//!
//! Each field mirrors a Kafka broker config (`group.min.session.timeout.ms` and so on) so operators can
//! carry their Kafka settings over unchanged.

use super::GroupError;

/// Broker-level settings of the group coordinator.
///
/// Build it with [`GroupConfig::default`] and override fields: new settings may be added over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`: the shortest session timeout a member may ask for.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: the longest session timeout a member may ask for.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits for
    /// more members before it completes, so a group starting up does not rebalance once per member.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.max.size`: the most members one group may have.
    pub group_max_size: i32,
    /// `offsets.retention.ms`: how long committed offsets of an empty group are kept.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets and dead groups are removed.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: the largest metadata string an offset commit may carry.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.commit.timeout.ms`: how long an offset commit waits for the offsets log to be
    /// replicated before it fails with `COORDINATOR_NOT_AVAILABLE`.
    pub offsets_commit_timeout_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: i32::MAX,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_commit_timeout_ms: 5_000,
        }
    }
}

impl GroupConfig {
    /// Checks that the values make sense together; the error names the offending setting.
    pub fn validate(&self) -> Result<(), GroupError> {
        let bad =
            |name: &'static str, value: String| Err(GroupError::InvalidConfig { name, value });
        if self.group_min_session_timeout_ms <= 0 {
            return bad(
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
            );
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return bad(
                "group.max.session.timeout.ms",
                format!(
                    "{} (below group.min.session.timeout.ms {})",
                    self.group_max_session_timeout_ms, self.group_min_session_timeout_ms
                ),
            );
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            return bad(
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
            );
        }
        if self.group_max_size < 1 {
            return bad("group.max.size", self.group_max_size.to_string());
        }
        if self.offsets_retention_ms <= 0 {
            return bad(
                "offsets.retention.ms",
                self.offsets_retention_ms.to_string(),
            );
        }
        if self.offsets_retention_check_interval_ms <= 0 {
            return bad(
                "offsets.retention.check.interval.ms",
                self.offsets_retention_check_interval_ms.to_string(),
            );
        }
        if self.offsets_commit_timeout_ms <= 0 {
            return bad(
                "offsets.commit.timeout.ms",
                self.offsets_commit_timeout_ms.to_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = GroupConfig::default();
        assert_eq!(config.offsets_retention_ms, 604_800_000);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn max_session_timeout_below_min_is_rejected_by_name() {
        let config = GroupConfig {
            group_max_session_timeout_ms: 1000,
            ..GroupConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("group.max.session.timeout.ms"), "{err}");
    }

    #[test]
    fn zero_group_max_size_is_rejected() {
        let config = GroupConfig {
            group_max_size: 0,
            ..GroupConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
