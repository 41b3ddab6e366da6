//! # backprop-harness: one test suite for every level
//!
//! The harness runs the same checks against any crate that implements
//! [`backprop_core::Level`]. A level crate's whole integration is one line in a test file:
//!
//! ```
//! // crates/level02/tests/harness.rs
//! backprop_harness::suite!(level02::Level02);
//! # fn main() {}
//! ```
//!
//! which stamps one `#[test]` per check, grouped as `basic::`, `edge::` and `stress::`, so a
//! group or a single check runs on its own: `cargo test -p level02 edge::`.
//!
//! ## The success levels
//!
//! A learner's crate climbs four levels; the `basic` group holds their gates:
//!
//! 1. `basic::gate1_single_layer_backward`: each layer's and loss's backward is right (against
//!    the harness's own [`reference`](mod@reference) formulas on random data);
//! 2. `basic::gate2_multi_layer_backward`: a whole MLP's backward is right;
//! 3. `basic::gate3_finite_differences_layers` and `basic::gate3_finite_differences_mlp`: every
//!    gradient matches central differences in `f64`;
//! 4. `basic::gate4_pytorch_layers`, `_losses`, `_mlps` and `_training`: every output and
//!    gradient matches PyTorch's autograd, from fixtures written by `reference/make_fixtures.py`
//!    and shipped in `crates/harness/fixtures/` (see [`parity`]). These need `Level<f32>` too.
//!
//! ## The groups
//!
//! - [`basic`]: hand-checkable values for each layer and loss, through a non-uniform upstream
//!   gradient, and the gates;
//! - [`edge`]: batch of one, empty batch, zeros, ReLU at exactly 0, huge logits, one class,
//!   bad targets, NaN, the `*_into` forms, the accumulate-until-`zero_grad` rule, stale caches,
//!   shape errors;
//! - [`norm`]: batch norm, layer norm and dropout (the group after gate 4): by hand, against
//!   the reference, finite differences through the batch statistics, evaluation mode, one-row
//!   batches, constant features, normalized networks, and PyTorch's fixtures
//!   (`norm::gate5_pytorch_normalization`);
//! - [`conv`]: `Conv2d` and `MaxPool2d` (the group after normalization): by hand, against the
//!   reference on many geometries, finite differences alone and in a small CNN, a 1x1 kernel
//!   as a per-pixel `Linear`, a whole-image kernel as a `Linear`, the refusal of a kernel larger
//!   than its padded input, the gradient rule, a CNN that trains, allocations per CNN step,
//!   and PyTorch's fixtures (`conv::gate6_pytorch_convolution`);
//! - [`stress`]: a 30-layer tanh net, random shapes (proptest), 1024-wide layers, training runs
//!   and MNIST. Sizes stay small unless `BACKPROP_STRESS=full`.
//!
//! Every failure names the tensor, its shape, the worst entry, what the level gave and what was
//! expected. The harness's own tests feed it deliberately broken levels to prove each check can
//! fail.
#![warn(missing_docs)]

pub mod alloc;
pub mod basic;
pub mod conv;
pub mod diagnosis;
pub mod edge;
pub mod expect;
pub mod fixtures;
pub mod norm;
pub mod parity;
pub mod reference;
pub mod stress;
pub mod tolerance;

/// Stamps the whole suite into `#[test]` functions for one level.
///
/// `$level` must implement `Level<f64>` and `Level<f32>` (the f32 training checks and the f32
/// PyTorch fixtures).
#[macro_export]
macro_rules! suite {
    ($level:ty) => {
        // Counts allocations for stress::allocations_per_training_step.
        #[global_allocator]
        static BACKPROP_HARNESS_ALLOCATOR: $crate::alloc::CountingAllocator =
            $crate::alloc::CountingAllocator;

        mod basic {
            $crate::__stamp!($level; basic;
                linear_forward_matches_hand_computation,
                linear_backward_matches_hand_computation,
                relu_matches_hand_computation,
                sigmoid_matches_hand_computation,
                tanh_matches_hand_computation,
                softmax_cross_entropy_matches_hand_computation,
                mse_matches_hand_computation,
                gate1_single_layer_backward,
                gate2_multi_layer_backward,
                gate3_finite_differences_layers,
                gate3_finite_differences_mlp,
            );
            $crate::__stamp!($level; parity;
                gate4_pytorch_layers,
                gate4_pytorch_losses,
                gate4_pytorch_mlps,
                gate4_pytorch_training,
            );
        }
        mod edge {
            $crate::__stamp!($level; edge;
                batch_of_one,
                empty_batch_layers_give_empty_outputs,
                empty_batch_loss_panics,
                zero_inputs,
                relu_at_exactly_zero_has_zero_gradient,
                huge_logits_give_finite_loss_and_gradient,
                all_targets_same_class,
                single_output_class,
                out_of_range_target_panics,
                nan_input_propagates_to_the_loss,
                into_forms_agree_with_allocating_forms,
                gradients_accumulate_until_zero_grad,
                backward_uses_the_latest_forward,
                shape_mismatch_panics_with_both_shapes,
                activations_stay_finite_at_large_inputs,
                activations_propagate_nan,
                layers_accept_any_memory_layout,
                linear_zero_grad_clears_both_gradients,
                loss_targets_must_match_the_predictions,
            );
        }
        mod norm {
            $crate::__stamp!($level; norm;
                batch_norm_matches_hand_computation,
                normalization_matches_reference,
                normalization_passes_finite_differences,
                batch_norm_refuses_one_row_in_training,
                constant_features_stay_finite,
                normalized_mlp_passes_finite_differences,
                evaluation_mode_turns_dropout_off,
            );
            $crate::__stamp!($level; parity;
                gate5_pytorch_normalization,
            );
        }
        mod conv {
            $crate::__stamp!($level; conv;
                conv2d_matches_hand_computation,
                max_pool_matches_hand_computation,
                conv_matches_reference,
                conv_passes_finite_differences,
                cnn_passes_finite_differences,
                one_by_one_conv_is_linear_on_each_pixel,
                kernel_as_large_as_the_input_is_linear,
                kernel_larger_than_the_padded_input_is_refused,
                conv_gradients_accumulate_and_into_forms_agree,
                cnn_training_reduces_the_loss,
                cnn_allocations_per_training_step,
            );
            $crate::__stamp!($level; parity;
                gate6_pytorch_convolution,
            );
        }
        mod stress {
            $crate::__stamp!($level; stress;
                deep_tanh_mlp_passes_finite_differences,
                random_shapes_pass_finite_differences,
                wide_layers_match_reference,
                training_reduces_the_loss,
                initial_loss_is_near_ln_10,
                overfits_64_mnist_images,
                allocations_per_training_step,
            );
        }
    };
}

/// Stamps `#[test] fn check() { $crate::group::check::<Level>() }` for each check.
#[doc(hidden)]
#[macro_export]
macro_rules! __stamp {
    ($level:ty; $group:ident; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::$group::$check::<$level>();
            }
        )*
    };
}
