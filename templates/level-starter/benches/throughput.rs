//! This level's training step and epoch beside level02, level03 and the GEMM floor, in the
//! table format of `cargo bench --bench train_throughput`:
//!
//! ```sh
//! cargo bench -p level-starter
//! ```

fn main() {
    backprop::bench::main::<level_starter::MyLevel>()
}
