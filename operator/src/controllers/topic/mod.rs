//! The Topic controller: a finalizer, then create the Kafka topic, raise its partitions, keep its
//! configs as the spec says (correcting drift found on the periodic resync, with an Event), and delete
//! it on CR deletion unless the deletion policy retains it.
//!
//! Two Topic resources naming one Kafka topic: the older (by creation time, then name) manages it;
//! the other gets a `Conflict` condition and never touches Kafka, not even on deletion. When the
//! cluster is gone, deletion releases the finalizer without talking to Kafka, so namespaces never hang.

pub mod plan;

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use odradek_crds::{Broker, DeletionPolicy, Topic, TopicStatus};

use self::plan::{ConfigDiff, config_diff};
use crate::admin::{
    AdminError, KafkaAdmin, NewTopic, TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::conditions::{self, FALSE, NewCondition, TRUE};
use crate::controllers::broker::resources::bootstrap_address;
use crate::controllers::{apply_status, key, name_ns};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "topic";
/// The finalizer guarding deletion of the Kafka topic.
pub const FINALIZER: &str = "odradek.dev/topic";
/// Condition: the topic exists as specified.
pub const READY: &str = "Ready";
/// Condition: another, older Topic manages the same Kafka topic.
pub const CONFLICT: &str = "Conflict";

/// Reconciles one Topic.
///
/// # Errors
/// Kubernetes or Kafka admin failures; the error policy retries them.
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let (_, ns) = name_ns(topic.as_ref())?;
    let api = Api::<Topic>::namespaced(ctx.client.clone(), &ns);
    let action = finalizer(&api, FINALIZER, topic.clone(), |event| async {
        match event {
            Event::Apply(t) => apply_topic(&t, &ctx).await,
            Event::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.succeeded(&key(topic.as_ref()));
    Ok(action)
}

/// The error policy: back off by error kind.
#[allow(clippy::needless_pass_by_value)] // the signature kube\'s `Controller::run` requires
pub fn error_policy(topic: Arc<Topic>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::controllers::error_policy(CONTROLLER, topic.as_ref(), error, &ctx)
}

/// The Topic among those in the same namespace, cluster and Kafka name that manages the Kafka topic:
/// the oldest, ties broken by name. `None` when `topic` itself is the owner.
#[must_use]
pub fn older_owner(topic: &Topic, all: &[Arc<Topic>]) -> Option<String> {
    let rank = |t: &Topic| (t.meta().creation_timestamp.clone(), t.name_any());
    let me = rank(topic);
    all.iter()
        .filter(|o| {
            o.namespace() == topic.namespace()
                && o.spec.cluster == topic.spec.cluster
                && o.kafka_name() == topic.kafka_name()
                && o.meta().deletion_timestamp.is_none()
                && o.name_any() != topic.name_any()
        })
        .map(|o| rank(o))
        .filter(|r| *r < me)
        .min()
        .map(|(_, name)| name)
}

fn set_condition(status: &mut TopicStatus, topic: &Topic, ctx: &Context, new: NewCondition<'_>) {
    conditions::set(
        &mut status.conditions,
        new,
        topic.meta().generation,
        ctx.now(),
    );
}

async fn apply_topic(topic: &Topic, ctx: &Context) -> Result<Action> {
    let (name, ns) = name_ns(topic)?;
    let api = Api::<Topic>::namespaced(ctx.client.clone(), &ns);
    let mut status = topic.status.clone().unwrap_or_default();

    if let Some(owner) = older_owner(topic, &ctx.topics.state()) {
        set_condition(
            &mut status,
            topic,
            ctx,
            NewCondition {
                type_: CONFLICT,
                status: TRUE,
                reason: "DuplicateTopic",
                message: format!(
                    "Topic {owner} already manages Kafka topic {} in cluster {}",
                    topic.kafka_name(),
                    topic.spec.cluster
                ),
            },
        );
        set_condition(
            &mut status,
            topic,
            ctx,
            NewCondition {
                type_: READY,
                status: FALSE,
                reason: "DuplicateTopic",
                message: format!("this resource is ignored while Topic {owner} exists"),
            },
        );
        apply_status(&api, &name, &status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    conditions::remove(&mut status.conditions, CONFLICT);

    let brokers = Api::<Broker>::namespaced(ctx.client.clone(), &ns);
    if brokers.get_opt(&topic.spec.cluster).await?.is_none() {
        set_condition(
            &mut status,
            topic,
            ctx,
            NewCondition {
                type_: READY,
                status: FALSE,
                reason: "ClusterNotFound",
                message: format!(
                    "Broker {} does not exist in namespace {ns}",
                    topic.spec.cluster
                ),
            },
        );
        apply_status(&api, &name, &status).await?;
        return Ok(Action::requeue(ctx.config.poll));
    }

    let admin = ctx.admin.admin(&bootstrap_address(
        &topic.spec.cluster,
        &ns,
        &ctx.config.cluster_domain,
    ));
    let outcome = sync(topic, admin.as_ref()).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let transient = e.is_transient();
            set_condition(
                &mut status,
                topic,
                ctx,
                NewCondition {
                    type_: READY,
                    status: FALSE,
                    reason: if transient {
                        "ClusterUnavailable"
                    } else {
                        "KafkaError"
                    },
                    message: e.to_string(),
                },
            );
            apply_status(&api, &name, &status).await?;
            return Err(Error::Admin(e));
        }
    };

    // Drift: Kafka differs from a spec this operator had already applied (same generation).
    let spec_unchanged = status.observed_generation.is_some()
        && status.observed_generation == topic.meta().generation;
    publish_events(topic, &outcome, spec_unchanged, ctx).await;

    status.topic_id = Some(outcome.topic_id.clone());
    status.partitions = Some(outcome.partitions);
    status.replication_factor = Some(outcome.replication_factor);
    status.observed_generation = topic.meta().generation;
    let (ready, reason, message) = if outcome.partitions > topic.spec.partitions {
        (
            TRUE,
            "MorePartitionsThanSpecified",
            format!(
                "the topic has {} partitions, more than the {} specified; Kafka cannot remove partitions",
                outcome.partitions, topic.spec.partitions
            ),
        )
    } else {
        (
            TRUE,
            "TopicReady",
            format!("topic {} is in sync", topic.kafka_name()),
        )
    };
    set_condition(
        &mut status,
        topic,
        ctx,
        NewCondition {
            type_: READY,
            status: ready,
            reason,
            message,
        },
    );
    apply_status(&api, &name, &status).await?;
    Ok(Action::requeue(ctx.config.resync))
}

/// What [`sync`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    /// Kafka's topic id.
    pub topic_id: String,
    /// Partition count after the sync.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// The topic was created now.
    pub created: bool,
    /// Partitions were raised from this count.
    pub raised_from: Option<i32>,
    /// Configs that were changed.
    pub config: ConfigDiff,
}

/// Brings the Kafka topic in line with the spec: create it, raise partitions, set configs.
///
/// # Errors
/// Admin failures.
pub async fn sync(topic: &Topic, admin: &dyn KafkaAdmin) -> Result<SyncOutcome, AdminError> {
    let name = topic.kafka_name().to_owned();
    let existing = match describe(admin, &name).await? {
        Some(t) => t,
        None => {
            let new = NewTopic {
                name: name.clone(),
                partitions: topic.spec.partitions,
                replication_factor: i16::try_from(topic.spec.replication_factor)
                    .unwrap_or(i16::MAX),
                configs: topic.spec.config.clone(),
            };
            match admin.create_topic(&new).await {
                Ok(topic_id) => {
                    return Ok(SyncOutcome {
                        topic_id,
                        partitions: topic.spec.partitions,
                        replication_factor: topic.spec.replication_factor,
                        created: true,
                        ..SyncOutcome::default()
                    });
                }
                // Created between our describe and create (a client, another operator replica):
                // carry on as for an existing topic.
                Err(e) if e.kafka_code() == Some(TOPIC_ALREADY_EXISTS) => {
                    describe(admin, &name).await?.ok_or(e)?
                }
                Err(e) => return Err(e),
            }
        }
    };

    let mut outcome = SyncOutcome {
        topic_id: existing.topic_id.clone(),
        partitions: i32::try_from(existing.partitions.len()).unwrap_or(i32::MAX),
        replication_factor: i32::try_from(existing.replication_factor()).unwrap_or(i32::MAX),
        ..SyncOutcome::default()
    };
    if outcome.partitions < topic.spec.partitions {
        admin
            .create_partitions(&name, topic.spec.partitions)
            .await?;
        outcome.raised_from = Some(outcome.partitions);
        outcome.partitions = topic.spec.partitions;
    }
    let current = admin.describe_topic_configs(&name).await?;
    let diff = config_diff(&topic.spec.config, &current);
    if !diff.is_empty() {
        admin.alter_topic_configs(&name, &diff.ops()).await?;
    }
    outcome.config = diff;
    Ok(outcome)
}

async fn describe(
    admin: &dyn KafkaAdmin,
    name: &str,
) -> Result<Option<crate::admin::TopicDescription>, AdminError> {
    Ok(admin
        .describe_topics(Some(&[name.to_owned()]))
        .await?
        .into_iter()
        .find(|t| t.name == name))
}

async fn publish_events(topic: &Topic, outcome: &SyncOutcome, spec_unchanged: bool, ctx: &Context) {
    let mut events = Vec::new();
    if outcome.created {
        events.push((
            EventType::Normal,
            "Created",
            "Create",
            format!(
                "created Kafka topic {} with {} partitions",
                topic.kafka_name(),
                outcome.partitions
            ),
        ));
    }
    if let Some(from) = outcome.raised_from {
        let (kind, reason) = if spec_unchanged {
            (EventType::Warning, "DriftCorrected")
        } else {
            (EventType::Normal, "PartitionsRaised")
        };
        events.push((
            kind,
            reason,
            "RaisePartitions",
            format!("raised partitions from {from} to {}", outcome.partitions),
        ));
    }
    if !outcome.config.is_empty() {
        let (kind, reason) = if spec_unchanged {
            (EventType::Warning, "DriftCorrected")
        } else {
            (EventType::Normal, "ConfigUpdated")
        };
        events.push((
            kind,
            reason,
            "AlterConfigs",
            format!("configs {}", outcome.config.describe()),
        ));
    }
    for (type_, reason, action, note) in events {
        let event = KubeEvent {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &topic.object_ref(&())).await {
            tracing::warn!(topic = %key(topic), error = %e, "cannot publish event");
        }
    }
}

async fn cleanup(topic: &Topic, ctx: &Context) -> Result<Action> {
    let (_, ns) = name_ns(topic)?;
    if topic.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Action::await_change());
    }
    // A Topic that never managed the Kafka topic must not delete it.
    if older_owner(topic, &ctx.topics.state()).is_some() {
        return Ok(Action::await_change());
    }
    let brokers = Api::<Broker>::namespaced(ctx.client.clone(), &ns);
    match brokers.get_opt(&topic.spec.cluster).await? {
        // The cluster is gone or going: its data goes with it; release the finalizer.
        None => return Ok(Action::await_change()),
        Some(b) if b.meta().deletion_timestamp.is_some() => return Ok(Action::await_change()),
        Some(_) => {}
    }
    let admin = ctx.admin.admin(&bootstrap_address(
        &topic.spec.cluster,
        &ns,
        &ctx.config.cluster_domain,
    ));
    match admin.delete_topic(topic.kafka_name()).await {
        Ok(()) => Ok(Action::await_change()),
        Err(e) if e.kafka_code() == Some(UNKNOWN_TOPIC_OR_PARTITION) => Ok(Action::await_change()),
        Err(e) => Err(Error::Admin(e)),
    }
}

#[cfg(test)]
mod tests;
