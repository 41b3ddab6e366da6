//! The `backprop` package's integration tests, one test binary (`--test integration`): the CLI
//! end to end, the levels against each other, hostile and fuzzed input files, interrupted runs,
//! the diagnose grid's verdicts, the gradient-flow statistics, the graph command and the
//! learner's starter crate. One module per file; filter by module, e.g.
//! `cargo test --test integration interrupted_runs::`.

mod cli;
mod common;
mod cross_level;
mod diagnose_verdicts;
mod flow_statistics;
mod fuzz_inputs;
mod gradient_flow;
mod graph;
mod hostile_inputs;
mod interrupted_runs;
mod report_page;
mod safetensors;
mod starter;
