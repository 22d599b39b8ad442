//! The Broker controller: the cluster's StatefulSet, Services, ConfigMap and PodDisruptionBudget, the
//! scale flow with partition reassignment, and the Broker's status.
//!
//! One reconcile: apply the ConfigMap, Services and PDB; read the StatefulSet and the cluster's
//! metadata (tolerating an unreachable cluster except during a scale-down); decide the scaling step
//! ([`scale::decide`]); apply the StatefulSet at the decided size; submit the next batch of
//! reassignments; write status. Broker deletion needs no finalizer: every child is owned and
//! garbage-collected.

pub mod resources;
pub mod scale;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use odradek_crds::Broker;
use odradek_crds::broker::{BrokerRow, BrokerStatus};

use self::scale::{ClusterView, ScaleError, ScaleStep};
use crate::admin::{AdminError, KafkaAdmin};
use crate::conditions::{self, FALSE, NewCondition, TRUE};
use crate::controllers::{apply, apply_status, keep_immutable, key, name_ns};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "broker";

/// Condition: every broker is ready and the cluster has the desired size.
pub const READY: &str = "Ready";
/// Condition: replicas are being moved between brokers.
pub const REBALANCING: &str = "Rebalancing";
/// Condition: a scale-down is refused (the message names the topic).
pub const SCALE_DOWN_REFUSED: &str = "ScaleDownRefused";

/// Reconciles one Broker.
///
/// # Errors
/// Kubernetes or Kafka admin failures; the error policy retries them.
pub async fn reconcile(broker: Arc<Broker>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let action = apply_broker(&broker, &ctx).await?;
    ctx.succeeded(&key(broker.as_ref()));
    Ok(action)
}

/// The error policy: back off by error kind.
#[allow(clippy::needless_pass_by_value)] // the signature kube\'s `Controller::run` requires
pub fn error_policy(broker: Arc<Broker>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::controllers::error_policy(CONTROLLER, broker.as_ref(), error, &ctx)
}

/// Reads the cluster's brokers, topics and reassignments in flight.
///
/// # Errors
/// Whatever the admin client fails with.
pub async fn observe(admin: &dyn KafkaAdmin) -> Result<ClusterView, AdminError> {
    let cluster = admin.describe_cluster().await?;
    let topics = admin.describe_topics(None).await?;
    // A broker that does not serve ListPartitionReassignments (no replication yet) has none in
    // flight; any other failure is a failure.
    let ongoing = match admin.list_partition_reassignments().await {
        Ok(ongoing) => ongoing,
        Err(AdminError::Unsupported { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(ClusterView {
        brokers: cluster.brokers,
        fenced: cluster.fenced,
        topics,
        ongoing,
    })
}

async fn apply_broker(broker: &Broker, ctx: &Context) -> Result<Action> {
    let (name, ns) = name_ns(broker)?;
    let client = ctx.client.clone();

    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &resources::config_map(broker),
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    apply(&services, &resources::headless_service(broker)).await?;
    apply(&services, &resources::bootstrap_service(broker)).await?;
    apply(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
        &resources::pod_disruption_budget(broker),
    )
    .await?;

    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let existing = statefulsets.get_opt(&name).await?;
    let current = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);

    let bootstrap = resources::bootstrap_address(&name, &ns, &ctx.config.cluster_domain);
    // A cluster that does not answer yet (pods starting) is normal; only a scale-down needs it.
    let mut observed = match current {
        Some(_) => Some(observe(ctx.admin.admin(&bootstrap).as_ref()).await),
        None => None,
    };
    if let Some(Err(e)) = &observed {
        tracing::debug!(broker = %key(broker), error = %e, "cluster metadata unavailable");
    }
    let view = observed.as_ref().and_then(|o| o.as_ref().ok()).cloned();

    let previous = broker.status.clone().unwrap_or_default();
    let step = match scale::decide(
        current,
        broker.spec.replicas,
        view.as_ref(),
        &broker.spec.rebalance,
        previous.reassignment.as_ref(),
    ) {
        Ok(step) => step,
        // Retry until the cluster answers; the StatefulSet keeps its size meanwhile.
        Err(ScaleError::NeedsClusterView { current, desired }) => {
            return Err(match observed.take() {
                Some(Err(e)) => Error::Admin(e),
                _ => Error::Plan(format!(
                    "scale-down from {current} to {desired} brokers needs the cluster's metadata"
                )),
            });
        }
        Err(ScaleError::Plan(e)) => return Err(Error::Plan(e)),
    };

    let mut desired = resources::statefulset(broker, step.statefulset_replicas, &ctx.config);
    keep_immutable(&mut desired, existing.as_ref());
    let sts = apply(&statefulsets, &desired).await?;

    if !step.submit.is_empty() {
        ctx.admin
            .admin(&bootstrap)
            .alter_partition_reassignments(&step.submit)
            .await?;
    }
    for id in &step.unregister {
        ctx.admin.admin(&bootstrap).unregister_broker(*id).await?;
        tracing::info!(broker = %key(broker), node_id = id, "unregistered a broker removed by the scale-down");
    }

    let status = status(
        broker,
        &previous,
        &sts,
        view.as_ref(),
        &step,
        bootstrap,
        ctx,
    );
    publish_events(broker, &previous, &status, &step, ctx).await;
    apply_status(&Api::<Broker>::namespaced(client, &ns), &name, &status).await?;

    Ok(if step.waiting {
        Action::requeue(ctx.config.poll)
    } else {
        Action::requeue(ctx.config.resync)
    })
}

/// The Broker's status from what was observed and decided.
fn status(
    broker: &Broker,
    previous: &BrokerStatus,
    sts: &StatefulSet,
    view: Option<&ClusterView>,
    step: &ScaleStep,
    bootstrap: String,
    ctx: &Context,
) -> BrokerStatus {
    let sts_status = sts.status.clone().unwrap_or_default();
    let generation = broker.meta().generation;
    let now = ctx.now();
    let desired = broker.spec.replicas;
    let ready_replicas = sts_status.ready_replicas.unwrap_or(0);
    let mut conditions = previous.conditions.clone();

    let (ready, reason, message) = if let Some(refused) = &step.refused {
        (FALSE, "ScaleDownRefused", refused.clone())
    } else if step.statefulset_replicas != desired {
        (
            FALSE,
            "Scaling",
            format!(
                "moving replicas off brokers {}..{} before the scale-down",
                desired, step.statefulset_replicas
            ),
        )
    } else if ready_replicas < desired {
        (
            FALSE,
            "BrokersNotReady",
            format!("{ready_replicas} of {desired} brokers are ready"),
        )
    } else {
        (
            TRUE,
            "AllBrokersReady",
            format!("{desired} brokers are ready"),
        )
    };
    conditions::set(
        &mut conditions,
        NewCondition {
            type_: READY,
            status: ready,
            reason,
            message,
        },
        generation,
        now,
    );
    match &step.refused {
        Some(refused) => conditions::set(
            &mut conditions,
            NewCondition {
                type_: SCALE_DOWN_REFUSED,
                status: TRUE,
                reason: "ReplicationFactorTooHigh",
                message: refused.clone(),
            },
            generation,
            now,
        ),
        None => conditions::remove(&mut conditions, SCALE_DOWN_REFUSED),
    }
    match &step.progress {
        Some(p) => conditions::set(
            &mut conditions,
            NewCondition {
                type_: REBALANCING,
                status: TRUE,
                reason: if p.reason == "ScaleDown" {
                    "ScaleDown"
                } else {
                    "ScaleUp"
                },
                message: format!(
                    "{} of {} partition moves done, {} in progress",
                    p.completed, p.total, p.in_progress
                ),
            },
            generation,
            now,
        ),
        None => conditions::set(
            &mut conditions,
            NewCondition {
                type_: REBALANCING,
                status: FALSE,
                reason: "Balanced",
                message: "no partition moves in progress".to_owned(),
            },
            generation,
            now,
        ),
    }

    BrokerStatus {
        replicas: sts_status.replicas,
        ready_replicas,
        selector: Some(resources::selector_string(&broker_name(broker))),
        brokers: view
            .map(broker_rows)
            .unwrap_or_else(|| previous.brokers.clone()),
        bootstrap: Some(bootstrap),
        reassignment: step.progress.clone(),
        observed_generation: generation,
        conditions,
    }
}

fn broker_name(broker: &Broker) -> String {
    broker.meta().name.clone().unwrap_or_default()
}

/// One row per registered broker: replicas and leaders it holds.
#[must_use]
pub fn broker_rows(view: &ClusterView) -> Vec<BrokerRow> {
    let mut rows: BTreeMap<i32, BrokerRow> = view
        .brokers
        .iter()
        .map(|b| {
            (
                b.id,
                BrokerRow {
                    id: b.id,
                    ready: true,
                    partitions: 0,
                    leaders: 0,
                },
            )
        })
        .collect();
    // Fenced brokers are registered but not serving (stopped, restarting, or leaving).
    for &id in &view.fenced {
        rows.entry(id).or_insert(BrokerRow {
            id,
            ready: false,
            partitions: 0,
            leaders: 0,
        });
    }
    for p in view.topics.iter().flat_map(|t| &t.partitions) {
        for r in &p.replicas {
            if let Some(row) = rows.get_mut(r) {
                row.partitions += 1;
            }
        }
        if let Some(row) = p.leader.and_then(|l| rows.get_mut(&l)) {
            row.leaders += 1;
        }
    }
    rows.into_values().collect()
}

/// Events a person should see: a refused scale-down and the start of a rebalance, once each.
async fn publish_events(
    broker: &Broker,
    previous: &BrokerStatus,
    status: &BrokerStatus,
    step: &ScaleStep,
    ctx: &Context,
) {
    let was = |t: &str| conditions::get(&previous.conditions, t).is_some_and(|c| c.status == TRUE);
    let mut events = Vec::new();
    if let Some(refused) = &step.refused
        && !was(SCALE_DOWN_REFUSED)
    {
        events.push(Event {
            type_: EventType::Warning,
            reason: "ScaleDownRefused".to_owned(),
            note: Some(refused.clone()),
            action: "Scale".to_owned(),
            secondary: None,
        });
    }
    if let Some(p) = &status.reassignment
        && !was(REBALANCING)
    {
        events.push(Event {
            type_: EventType::Normal,
            reason: "Rebalancing".to_owned(),
            note: Some(format!(
                "{}: moving {} partitions for {} brokers",
                p.reason, p.total, p.target_replicas
            )),
            action: "Reassign".to_owned(),
            secondary: None,
        });
    }
    for event in events {
        if let Err(e) = ctx.recorder.publish(&event, &broker.object_ref(&())).await {
            tracing::warn!(broker = %key(broker), error = %e, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests;
