//! Odradek crds crate.
