//! The shared suite (basic, edge, stress, gates 1-4) against level03, and level03's own checks:
//! bit-identical results on 1 and 2 threads, and the fused update against the unfused one.

backprop_harness::suite!(level03::Level03);

mod determinism;
mod fused_update;
