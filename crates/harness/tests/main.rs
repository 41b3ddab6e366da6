//! The harness's own tests, one test binary (`--test integration`): the allocation check, the
//! hint files, ReLU kinks in finite differences, and the mutants every check must reject.

mod allocation_check;
mod hints;
mod kinks;
mod mutants;
