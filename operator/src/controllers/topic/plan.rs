//! The config part of a Topic sync, pure: which IncrementalAlterConfigs operations bring Kafka's
//! topic configs to the spec.

use std::collections::BTreeMap;

use crate::admin::{ConfigOp, ConfigValue};

/// Config changes: values to set and overrides to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Configs whose value differs from the spec (or are missing), with the spec's value.
    pub set: BTreeMap<String, String>,
    /// Topic overrides the spec no longer names; removing them restores the broker default.
    pub delete: Vec<String>,
}

impl ConfigDiff {
    /// Whether nothing needs to change.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }

    /// The IncrementalAlterConfigs operations, sets then deletes.
    #[must_use]
    pub fn ops(&self) -> Vec<ConfigOp> {
        self.set
            .iter()
            .map(|(name, value)| ConfigOp::Set {
                name: name.clone(),
                value: value.clone(),
            })
            .chain(
                self.delete
                    .iter()
                    .map(|name| ConfigOp::Delete { name: name.clone() }),
            )
            .collect()
    }

    /// A short text for an Event: `set a=1, b=2; reset c`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            let set: Vec<String> = self.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("set {}", set.join(", ")));
        }
        if !self.delete.is_empty() {
            parts.push(format!("reset {}", self.delete.join(", ")));
        }
        parts.join("; ")
    }
}

/// The changes that make `current` (DescribeConfigs) match `desired` (the spec): a desired config
/// whose value differs is set; a topic-level override the spec does not name is removed. Broker
/// defaults that the spec does not name are left alone.
#[must_use]
pub fn config_diff(
    desired: &BTreeMap<String, String>,
    current: &BTreeMap<String, ConfigValue>,
) -> ConfigDiff {
    let set = desired
        .iter()
        .filter(|(k, v)| current.get(*k).and_then(|c| c.value.as_ref()) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete = current
        .iter()
        .filter(|(k, c)| c.is_topic_override && !desired.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    ConfigDiff { set, delete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value(v: &str, over: bool) -> ConfigValue {
        ConfigValue {
            value: Some(v.to_owned()),
            is_topic_override: over,
        }
    }

    #[test]
    fn changed_and_missing_configs_are_set_and_stray_overrides_reset() {
        let desired = BTreeMap::from([
            ("retention.ms".to_owned(), "1000".to_owned()),
            ("cleanup.policy".to_owned(), "compact".to_owned()),
        ]);
        let current = BTreeMap::from([
            ("retention.ms".to_owned(), value("1000", true)),
            ("cleanup.policy".to_owned(), value("delete", false)),
            ("segment.bytes".to_owned(), value("1024", true)),
            ("max.message.bytes".to_owned(), value("1048588", false)),
        ]);
        let diff = config_diff(&desired, &current);
        assert_eq!(
            diff.set,
            BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())])
        );
        assert_eq!(diff.delete, vec!["segment.bytes".to_owned()]);
        assert_eq!(
            diff.describe(),
            "set cleanup.policy=compact; reset segment.bytes"
        );
        assert_eq!(
            diff.ops(),
            vec![
                ConfigOp::Set {
                    name: "cleanup.policy".into(),
                    value: "compact".into()
                },
                ConfigOp::Delete {
                    name: "segment.bytes".into()
                },
            ]
        );
    }

    proptest! {
        /// Applying the diff to the current configs yields exactly the desired overrides, and a
        /// second diff is empty.
        #[test]
        fn applying_the_diff_converges(
            desired in proptest::collection::btree_map("[a-d]", "[0-2]", 0..4),
            overrides in proptest::collection::btree_map("[a-d]", "[0-2]", 0..4),
            defaults in proptest::collection::btree_map("[a-f]", "[0-2]", 0..6),
        ) {
            let mut current: BTreeMap<String, ConfigValue> = defaults
                .iter()
                .map(|(k, v)| (k.clone(), value(v, false)))
                .collect();
            for (k, v) in &overrides {
                current.insert(k.clone(), value(v, true));
            }
            let diff = config_diff(&desired, &current);
            for op in diff.ops() {
                match op {
                    ConfigOp::Set { name, value: v } => { current.insert(name, value(&v, true)); }
                    ConfigOp::Delete { name } => {
                        match defaults.get(&name) {
                            Some(d) => { current.insert(name, value(d, false)); }
                            None => { current.remove(&name); }
                        }
                    }
                }
            }
            for (k, v) in &desired {
                prop_assert_eq!(current.get(k).and_then(|c| c.value.clone()), Some(v.clone()));
            }
            for (k, c) in &current {
                prop_assert!(!c.is_topic_override || desired.contains_key(k));
            }
            prop_assert!(config_diff(&desired, &current).is_empty());
        }
    }
}
