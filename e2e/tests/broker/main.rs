//! End-to-end tests of `odradek broker` with clients nobody here wrote (kcat, kafka-python,
//! librdkafka) and with raw Kafka frames.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod cluster;
mod cluster_metadata;
mod dev;
mod fuzz;
mod kcat;
mod librdkafka;
mod protocol;
mod python;
mod replication;
