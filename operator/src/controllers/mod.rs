//! The controllers, one per kind, and what they share: server-side apply under one field manager,
//! object keys, and the error policy with jittered exponential backoff.

pub mod broker;
pub mod processor;
pub mod topic;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, Error, Result};

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "odradek-operator";

/// Labels every child object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "odradek-operator");

/// `namespace/name` of an object, the key of per-object memory.
pub(crate) fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Name and namespace of an object, which the API server always sets.
pub(crate) fn name_ns<K: Resource>(obj: &K) -> Result<(String, String)> {
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingObjectKey("name"))?;
    let ns = obj
        .meta()
        .namespace
        .clone()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    Ok((name, ns))
}

/// Server-side applies `obj` under [`FIELD_MANAGER`], taking ownership of conflicting fields: the
/// operator is the only intended writer of its children.
pub(crate) async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingObjectKey("name"))?;
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Server-side applies `status` to the status subresource of `name`.
pub(crate) async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Keeps the immutable parts of an existing StatefulSet in the desired one: Kubernetes rejects any
/// change of `volumeClaimTemplates`, so a changed storage spec applies to new clusters only instead of
/// failing every reconcile.
pub(crate) fn keep_immutable(
    desired: &mut k8s_openapi::api::apps::v1::StatefulSet,
    existing: Option<&k8s_openapi::api::apps::v1::StatefulSet>,
) {
    let templates = existing
        .and_then(|e| e.spec.as_ref())
        .and_then(|s| s.volume_claim_templates.clone());
    if let (Some(templates), Some(spec)) = (templates, desired.spec.as_mut()) {
        spec.volume_claim_templates = Some(templates);
    }
}

/// Retry delay after the `failures`-th consecutive failure: transient errors back off exponentially
/// from `base` to `max`, permanent ones wait `permanent`; both are spread by ±25 % jitter (`jitter` in
/// `[0, 1)`) so that many failing objects do not retry in lockstep.
#[must_use]
pub fn backoff_delay(
    failures: u32,
    transient: bool,
    base: Duration,
    max: Duration,
    permanent: Duration,
    jitter: f64,
) -> Duration {
    let nominal = if transient {
        let exp = failures.saturating_sub(1).min(20);
        base.saturating_mul(1u32 << exp).min(max)
    } else {
        permanent
    };
    nominal.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The error policy of every controller: count the error, back off by its kind.
pub(crate) fn error_policy<K: Resource>(
    controller: &'static str,
    obj: &K,
    error: &Error,
    ctx: &Arc<Context>,
) -> Action {
    ctx.metrics.error(controller, error);
    let failures = ctx.failed(&key(obj));
    let delay = backoff_delay(
        failures,
        error.is_transient(),
        ctx.config.backoff_base,
        ctx.config.backoff_max,
        ctx.config.permanent_retry,
        rand::rng().random::<f64>(),
    );
    tracing::warn!(
        controller,
        object = %key(obj),
        error = %error,
        transient = error.is_transient(),
        failures,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Owner reference making `owner` the controller of a child (garbage collection deletes the child
/// with the owner).
pub(crate) fn owner_ref<K: Resource<DynamicType = ()>>(
    owner: &K,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    owner.controller_owner_ref(&())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn existing_volume_claim_templates_are_kept() {
        use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
        use k8s_openapi::api::core::v1::PersistentVolumeClaim;
        let sts = |claim: &str| StatefulSet {
            spec: Some(StatefulSetSpec {
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(claim.to_owned()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut desired = sts("new");
        keep_immutable(&mut desired, None);
        assert_eq!(desired, sts("new"));
        keep_immutable(&mut desired, Some(&sts("old")));
        assert_eq!(desired, sts("old"));
    }

    #[test]
    fn transient_errors_back_off_exponentially_up_to_the_cap() {
        let d = |n| {
            backoff_delay(
                n,
                true,
                S,
                Duration::from_secs(60),
                Duration::from_secs(600),
                0.5,
            )
        };
        assert_eq!(d(1), S);
        assert_eq!(d(2), 2 * S);
        assert_eq!(d(4), 8 * S);
        assert_eq!(d(30), Duration::from_secs(60));
    }

    #[test]
    fn permanent_errors_wait_the_long_delay_and_jitter_spreads_by_a_quarter() {
        let d = |j| {
            backoff_delay(
                1,
                false,
                S,
                Duration::from_secs(60),
                Duration::from_secs(600),
                j,
            )
        };
        assert_eq!(d(0.5), Duration::from_secs(600));
        assert_eq!(d(0.0), Duration::from_secs(450));
        assert!(d(0.999) < Duration::from_secs(750));
        assert!(d(0.999) > Duration::from_secs(749));
    }
}
