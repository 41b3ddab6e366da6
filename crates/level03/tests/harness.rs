//! The shared suite (basic, edge, stress, gates 1-4) against level03.

backprop_harness::suite!(level03::Level03);
