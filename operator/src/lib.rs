//! Odradek operator crate.
