//! The Processor controller: a StatefulSet sized by `spec.replicas` or, with `spec.autoscale`, by the
//! lag autoscaler (`crate::planner::autoscaler`), and a status with lag, rates and the last scaling
//! decision.
//!
//! Each reconcile samples the inputs' latest offsets and the group's committed offsets; rates come from
//! the difference to the previous sample, kept in memory. Without a measurable cluster the StatefulSet
//! keeps its size.

pub mod lag;
pub mod resources;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Resource};
use odradek_crds::processor::{ProcessorStatus, ScalingDecision};
use odradek_crds::{Broker, Processor};

use self::lag::{LagSample, Rates};
use crate::conditions::{self, FALSE, NewCondition, TRUE};
use crate::controllers::broker::resources::bootstrap_address;
use crate::controllers::{apply, apply_status, keep_immutable, key, name_ns};
use crate::planner::autoscaler::{self, AutoscalePolicy, AutoscalerState, ProcessorObservation};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "processor";
/// Condition: every desired pod is ready.
pub const READY: &str = "Ready";

/// What the controller remembers about one Processor between reconciles.
#[derive(Debug, Default)]
pub struct ProcessorMemory {
    /// The autoscaler's own state (recent recommendations, trusted capacity).
    pub autoscaler: AutoscalerState,
    /// The previous offset sample.
    pub last: Option<LagSample>,
    /// Rates of the last interval.
    pub rates: Option<Rates>,
}

/// Reconciles one Processor.
///
/// # Errors
/// Kubernetes failures; the error policy retries them.
pub async fn reconcile(processor: Arc<Processor>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let action = apply_processor(&processor, &ctx).await?;
    ctx.succeeded(&key(processor.as_ref()));
    Ok(action)
}

/// The error policy: back off by error kind.
#[allow(clippy::needless_pass_by_value)] // the signature kube\'s `Controller::run` requires
pub fn error_policy(processor: Arc<Processor>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::controllers::error_policy(CONTROLLER, processor.as_ref(), error, &ctx)
}

fn to_u32(v: i32) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(0)
}

/// Desired replicas: the autoscaler's decision when autoscaling, else `spec.replicas`.
/// Returns the replicas and the decision's reason and message (for autoscaling only).
#[must_use]
pub fn desired_replicas(
    processor: &Processor,
    current: i32,
    ready: i32,
    sample: Option<&LagSample>,
    rates: Option<&Rates>,
    restoring: bool,
    state: &mut AutoscalerState,
) -> (i32, Option<(String, String)>) {
    let Some(auto) = &processor.spec.autoscale else {
        return (processor.spec.replicas, None);
    };
    let policy = AutoscalePolicy {
        min_replicas: to_u32(auto.min_replicas),
        max_replicas: to_u32(auto.max_replicas),
        target_lag_seconds: f64::from(auto.target_lag_seconds.max(1)),
        scale_down_stabilization_seconds: u64::from(to_u32(auto.scale_down_stabilization_seconds)),
    };
    let Some(sample) = sample else {
        // Nothing measured: keep the size, within bounds.
        let hold = current.clamp(auto.min_replicas, auto.max_replicas);
        return (
            hold,
            Some((
                "NoMetrics".to_owned(),
                "consumer lag could not be read".to_owned(),
            )),
        );
    };
    let observation = ProcessorObservation {
        now_seconds: u64::try_from(sample.at_seconds).unwrap_or(0),
        current_replicas: to_u32(current),
        ready_replicas: to_u32(ready),
        partitions: sample.partitions,
        total_lag: u64::try_from(sample.total_lag).unwrap_or(0),
        input_rate: rates.map_or(0.0, |r| r.input),
        processing_rate: rates.map(|r| r.processing),
        busy_ratio: None,
        restoring,
    };
    let decision = autoscaler::decide(&policy, &observation, state);
    (
        i32::try_from(decision.desired_replicas).unwrap_or(i32::MAX),
        Some((decision.reason.as_str().to_owned(), decision.message)),
    )
}

async fn apply_processor(processor: &Processor, ctx: &Context) -> Result<Action> {
    let (name, ns) = name_ns(processor)?;
    let api = Api::<Processor>::namespaced(ctx.client.clone(), &ns);
    let previous = processor.status.clone().unwrap_or_default();
    let generation = processor.meta().generation;
    let now = ctx.now();

    let brokers = Api::<Broker>::namespaced(ctx.client.clone(), &ns);
    if brokers.get_opt(&processor.spec.cluster).await?.is_none() {
        let mut status = previous.clone();
        conditions::set(
            &mut status.conditions,
            NewCondition {
                type_: READY,
                status: FALSE,
                reason: "ClusterNotFound",
                message: format!(
                    "Broker {} does not exist in namespace {ns}",
                    processor.spec.cluster
                ),
            },
            generation,
            now,
        );
        status.observed_generation = generation;
        apply_status(&api, &name, &status).await?;
        return Ok(Action::requeue(ctx.config.poll));
    }
    let bootstrap = bootstrap_address(&processor.spec.cluster, &ns, &ctx.config.cluster_domain);

    let statefulsets = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    let existing = statefulsets.get_opt(&name).await?;
    let current = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(processor.spec.replicas);
    let ready = existing
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);

    let admin = ctx.admin.admin(&bootstrap);
    let sample = match lag::sample(
        admin.as_ref(),
        &processor.spec.inputs,
        &name,
        now.as_second(),
    )
    .await
    {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(processor = %key(processor), error = %e, "cannot read consumer lag");
            None
        }
    };

    let (desired, decision) = {
        let mut memory = ctx
            .processors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let memory = memory.entry(key(processor)).or_default();
        if let Some(s) = &sample {
            if let Some(r) = memory.last.as_ref().and_then(|last| lag::rates(last, s)) {
                memory.rates = Some(r);
            }
            memory.last = Some(*s);
        }
        let rates = memory.rates;
        let (desired, decision) = desired_replicas(
            processor,
            current,
            ready,
            sample.as_ref(),
            rates.as_ref(),
            false,
            &mut memory.autoscaler,
        );
        (desired, decision.map(|d| (d, rates)))
    };

    let mut wanted = resources::statefulset(processor, desired, &bootstrap, &ctx.config);
    keep_immutable(&mut wanted, existing.as_ref());
    let sts = apply(&statefulsets, &wanted).await?;
    let sts_status = sts.status.unwrap_or_default();

    let rates = decision.as_ref().and_then(|(_, r)| *r).or_else(|| {
        ctx.processors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key(processor))
            .and_then(|m| m.rates)
    });
    let previous_desired = if previous.desired_replicas > 0 || previous.last_scaling.is_some() {
        previous.desired_replicas
    } else {
        current
    };
    let last_scaling = if desired == previous_desired {
        previous.last_scaling.clone()
    } else {
        Some(ScalingDecision {
            time: Time(now),
            from: previous_desired,
            to: desired,
            reason: match &decision {
                Some(((reason, message), _)) => format!("{reason}: {message}"),
                None => "spec.replicas changed".to_owned(),
            },
        })
    };

    let ready_replicas = sts_status.ready_replicas.unwrap_or(0);
    let mut conditions = previous.conditions.clone();
    let (status_, reason, message) = if ready_replicas >= desired {
        (
            TRUE,
            "AllReplicasReady",
            format!("{desired} of {desired} pods are ready"),
        )
    } else {
        (
            FALSE,
            "ReplicasNotReady",
            format!("{ready_replicas} of {desired} pods are ready"),
        )
    };
    conditions::set(
        &mut conditions,
        NewCondition {
            type_: READY,
            status: status_,
            reason,
            message,
        },
        generation,
        now,
    );
    let status = ProcessorStatus {
        replicas: sts_status.replicas,
        ready_replicas,
        desired_replicas: desired,
        total_lag: sample.map_or(previous.total_lag, |s| s.total_lag),
        processing_rate: rates.map(|r| r.processing),
        input_rate: rates.map(|r| r.input),
        last_scaling,
        selector: Some(resources::selector_string(&name)),
        observed_generation: generation,
        conditions,
    };
    apply_status(&api, &name, &status).await?;

    Ok(
        if processor.spec.autoscale.is_some() || ready_replicas < desired {
            Action::requeue(ctx.config.poll)
        } else {
            Action::requeue(ctx.config.resync)
        },
    )
}

#[cfg(test)]
mod tests;
