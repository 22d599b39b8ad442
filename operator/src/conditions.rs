//! metav1-style status conditions: set one by type, keeping `lastTransitionTime` when the status
//! did not change, so that a periodic resync does not churn the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition status `True`.
pub const TRUE: &str = "True";
/// Condition status `False`.
pub const FALSE: &str = "False";

/// A condition to set; the time and generation are filled in by [`set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCondition<'a> {
    /// Condition type, e.g. `Ready`.
    pub type_: &'a str,
    /// `True` or `False`.
    pub status: &'a str,
    /// CamelCase reason.
    pub reason: &'a str,
    /// Human-readable message.
    pub message: String,
}

/// Sets `new` in `conditions`, replacing a condition of the same type. `lastTransitionTime` is `now`
/// when the status changed (or the condition is new), else kept.
pub fn set(
    conditions: &mut Vec<Condition>,
    new: NewCondition<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let old = conditions.iter().position(|c| c.type_ == new.type_);
    let last_transition_time = match old.and_then(|i| conditions.get(i)) {
        Some(c) if c.status == new.status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: new.type_.to_owned(),
        status: new.status.to_owned(),
        reason: new.reason.to_owned(),
        message: new.message,
        observed_generation: generation,
        last_transition_time,
    };
    match old {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// Removes the condition of `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if present.
#[must_use]
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &str, reason: &str) -> NewCondition<'static> {
        NewCondition {
            type_: "Ready",
            status: if status == TRUE { TRUE } else { FALSE },
            reason: if reason == "A" { "A" } else { "B" },
            message: format!("{status} {reason}"),
        }
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut c = Vec::new();
        set(&mut c, ready(TRUE, "A"), Some(1), t0);
        set(&mut c, ready(TRUE, "B"), Some(2), t1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].reason, "B");
        assert_eq!(c[0].observed_generation, Some(2));
        set(&mut c, ready(FALSE, "B"), Some(2), t1);
        assert_eq!(c[0].last_transition_time, Time(t1));
        remove(&mut c, "Ready");
        assert!(get(&c, "Ready").is_none());
    }
}
