//! No code: a dependency of `backprop-core` whose only job is to turn on, in every build of a
//! workspace crate, the dependency features that `cargo test --workspace` turns on, so that a
//! build of one package reuses the workspace's compiled dependencies (see `Cargo.toml`).
