//! The shared suite (basic, edge, stress) against level01.

backprop_harness::suite!(level01::Level01);
