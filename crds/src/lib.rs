//! Odradek's custom resources: `Topic`, `Broker` and `Processor` in the API group `odradek.dev/v1alpha1`.
//!
//! # Layout
//! - [`topic`]: a Kafka topic (partitions, replication factor, configs, deletion policy).
//! - [`broker`]: a broker cluster (replicas, image, storage, rack awareness, rebalancing on scale).
//! - [`processor`]: a stateful stream processor (job, inputs/outputs/stores, replicas or autoscaling).
//! - [`crdgen`]: renders the CustomResourceDefinitions as YAML for `manifests/crds/`.
//!
//! The types derive their OpenAPI schema (every field's doc comment becomes its description) and carry
//! CEL rules (`x-kubernetes-validations`) for what the API server must never accept; each module tests its
//! rules client-side with kube's CEL evaluator.

// `#[kube(printcolumn(type_ = ...))]` repeats keys across columns by design; clippy reads them as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

// The `KubeSchema` derive re-emits each type inside a function to build its schema; those copies keep
// their `pub` and would trip `unreachable_pub`, so the lint is off for the type modules only.
#[allow(unreachable_pub)]
pub mod broker;
pub mod crdgen;
#[allow(unreachable_pub)]
pub mod processor;
#[allow(unreachable_pub)]
pub mod topic;

pub use broker::{Broker, BrokerSpec, BrokerStatus};
pub use processor::{Processor, ProcessorSpec, ProcessorStatus};
pub use topic::{DeletionPolicy, Topic, TopicSpec, TopicStatus};

/// The API group of every Odradek resource.
pub const GROUP: &str = "odradek.dev";
