//! # backprop-data: what a training run reads
//!
//! Apart from the contract ([`backprop_core`]), which no data format is part of:
//!
//! - [`mnist`]: the IDX reader (plain or gzip'd), every size a file declares checked against
//!   its real length and the machine's memory before anything is allocated, and [`Dataset`];
//! - [`batches`]: [`Batches`], the seeded shuffle and the gather of each batch's rows;
//! - [`memory`]: the machine's memory (`/proc/meminfo`) and byte counts for messages;
//! - [`files`]: opening what a user names only when it is a regular file (a FIFO would block);
//! - [`workers`]: the rayon pool's other workers kept polling for work through an epoch.
//!
//! The harness reads MNIST through it for its stress checks, the `backprop` command for every
//! run.
#![warn(missing_docs)]

pub mod batches;
pub mod files;
pub mod memory;
pub mod mnist;
pub mod workers;

pub use batches::Batches;
pub use mnist::{Dataset, load_mnist};
