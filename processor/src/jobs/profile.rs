//! `profile-fanout`: one `UserProfileUpdate` stream drives several back ends.
//!
//! Store `profiles` keeps the latest profile per user (updates are partial: absent fields keep their
//! value). When an update changes nothing, nothing is emitted. Every change emits the full profile as
//! a search document upsert (key: user id) to the search topic; a change of company of a known user
//! also emits a newsfeed event (key: user id, with a deterministic `event_id` of input partition and
//! offset, so that a replayed event can be recognised downstream).

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::task::{Job, Record, Task, TaskContext};

/// The store of this job.
pub const STORE: &str = "profiles";

/// A `UserProfileUpdate` event (the input). Only `user_id` is required; absent fields are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfileUpdate {
    /// The user.
    pub user_id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Current employer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When the user made the change, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

/// The latest profile of a user (the store value and the search document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user.
    pub user_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Current employer.
    pub company: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Time of the last change, milliseconds since the epoch.
    pub updated_at: Option<i64>,
}

impl Profile {
    /// This profile with `update` applied (absent fields keep their value).
    #[must_use]
    pub fn merged(&self, update: &UserProfileUpdate) -> Self {
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
        Self {
            user_id: update.user_id.clone(),
            name: pick(&update.name, &self.name),
            company: pick(&update.company, &self.company),
            title: pick(&update.title, &self.title),
            location: pick(&update.location, &self.location),
            updated_at: update.updated_at.or(self.updated_at),
        }
    }

    /// Whether the visible fields differ (a new `updated_at` alone is not a change).
    fn differs(&self, other: &Self) -> bool {
        (&self.name, &self.company, &self.title, &self.location)
            != (&other.name, &other.company, &other.title, &other.location)
    }
}

/// A newsfeed event, emitted when a known user changes company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewsfeedEvent {
    /// Always `company_change`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Deterministic id: `<input partition>-<input offset>`.
    pub event_id: String,
    /// The user.
    pub user_id: String,
    /// The user's name, if known.
    pub name: Option<String>,
    /// The company before.
    pub previous_company: Option<String>,
    /// The company now.
    pub company: Option<String>,
    /// When, milliseconds since the epoch (the update's `updated_at`, else the record timestamp).
    pub at: Option<i64>,
}

/// The job: reads `input`, writes to `newsfeed` and `search`.
#[derive(Debug, Clone)]
pub struct ProfileFanoutJob {
    input: String,
    newsfeed: String,
    search: String,
}

impl ProfileFanoutJob {
    /// A job over `input` emitting to the `newsfeed` and `search` topics.
    #[must_use]
    pub fn new(input: &str, newsfeed: &str, search: &str) -> Self {
        Self {
            input: input.to_owned(),
            newsfeed: newsfeed.to_owned(),
            search: search.to_owned(),
        }
    }
}

impl Job for ProfileFanoutJob {
    fn input(&self) -> &str {
        &self.input
    }
    fn outputs(&self) -> Vec<String> {
        vec![self.newsfeed.clone(), self.search.clone()]
    }
    fn stores(&self) -> Vec<String> {
        vec![STORE.to_owned()]
    }
    fn create_task(&self, _partition: i32) -> Box<dyn Task> {
        Box::new(ProfileFanoutTask {
            newsfeed: self.newsfeed.clone(),
            search: self.search.clone(),
        })
    }
}

struct ProfileFanoutTask {
    newsfeed: String,
    search: String,
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, TaskError> {
    serde_json::to_vec(value).map_err(|e| TaskError::Other(e.to_string()))
}

impl Task for ProfileFanoutTask {
    fn process(&mut self, record: &Record<'_>, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let Some(update) = record
            .value
            .and_then(|v| serde_json::from_slice::<UserProfileUpdate>(v).ok())
            .filter(|u| !u.user_id.is_empty())
        else {
            ctx.skip_record();
            return Ok(());
        };
        let store = ctx.store(STORE)?;
        let key = update.user_id.as_bytes();
        let old: Option<Profile> = store.get(key)?.and_then(|v| serde_json::from_slice(v).ok());
        let base = old.clone().unwrap_or_default();
        let new = base.merged(&update);
        if old.as_ref().is_some_and(|o| !o.differs(&new)) {
            return Ok(());
        }
        store.put(key, &json(&new)?)?;
        let at = update.updated_at.or(record.timestamp);
        if let Some(old) = &old
            && old.company != new.company
        {
            let event = NewsfeedEvent {
                kind: "company_change".to_owned(),
                event_id: format!("{}-{}", record.partition, record.offset),
                user_id: new.user_id.clone(),
                name: new.name.clone(),
                previous_company: old.company.clone(),
                company: new.company.clone(),
                at,
            };
            ctx.send(&self.newsfeed, key.to_vec(), Some(json(&event)?), at);
        }
        ctx.send(&self.search, key.to_vec(), Some(json(&new)?), at);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
