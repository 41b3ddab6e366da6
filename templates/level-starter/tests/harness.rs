//! The shared suite (basic, edge, stress and the four gates) against this level.
//!
//! `cargo test -p level-starter gate1` runs success level 1 only; `cargo test -p level-starter gate`
//! runs the four gates.

backprop_harness::suite!(level_starter::MyLevel);
