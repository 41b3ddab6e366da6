//! The umbrella package of the backprop workspace: the `backprop` command-line tool, the
//! training loop, the bench tables, and the cross-level tests in `tests/`.
//!
//! Everything that runs a level is generic over [`backprop_core::Level`], so a learner's own
//! level crate gets the whole tool with one line: [`cli::main`] in an example, and
//! [`bench::main`] in a bench. The built-in levels are listed once, in [`levels`].

pub use backprop_core as core;
pub use level01;

pub use level02;
pub use level03;
pub mod arch;
pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod diagnose;
pub mod error;
pub mod eval;
pub mod graph;
pub mod hint;
pub mod levels;
pub mod limits;
pub mod model_file;
pub mod new_level;
pub mod output;
pub mod pictures;
pub mod plots;
pub mod run_folder;
pub mod safetensors_file;
pub mod train;
pub mod watch;
