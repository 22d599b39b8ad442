//! Odradek processor crate.
