//! The shared suite (basic, edge, stress) against level02.

backprop_harness::suite!(level02::Level02);
