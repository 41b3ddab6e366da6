//! The umbrella package of the backprop workspace.
//!
//! It re-exports the contract and the levels, and hosts what spans them: the cross-level tests
//! in `tests/`, and (with their issues) the `backprop` command-line tool and the benches.

pub use backprop_core as core;
pub use level01;

pub use level02;
pub use level03;
pub mod check;
pub mod diagnose;
pub mod graph;
pub mod new_level;
pub mod plots;
pub mod run;
pub mod watch;
