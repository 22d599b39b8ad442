//! The `odradek` binary.
fn main() {}
