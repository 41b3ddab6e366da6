//! The `backprop` command with this level: train, eval, diagnose and graph, every flag of the
//! built-in levels' but `--level`.
//!
//! ```sh
//! cargo run -p level-starter --release --example backprop -- train
//! cargo run -p level-starter --release --example backprop -- eval --model runs/seed0-level-starter/model.npz
//! cargo run -p level-starter --release --example backprop -- diagnose --synthetic
//! cargo run -p level-starter --release --example backprop -- graph
//! ```

fn main() -> std::process::ExitCode {
    backprop::cli::main::<level_starter::MyLevel>()
}
