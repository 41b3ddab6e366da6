//! The shared suite (basic, edge, stress and the four gates) against this level.
//!
//! `cargo test -p level-starter gate1` runs success level 1 only; `cargo run -- check level-starter`
//! runs the four gates in order and explains the first failure.

backprop_harness::suite!(level_starter::MyLevel);
