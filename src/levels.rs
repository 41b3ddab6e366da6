//! The registry of the built-in levels: the one place that lists level01, level02 and level03.
//!
//! clap takes its allowed `--level` values from [`BuiltinLevel`] (a `ValueEnum`), and
//! [`BuiltinLevel::dispatch`] turns the choice into a type, so no other code matches on a level
//! number. A learner's own level needs no entry here: its crate calls [`crate::cli::main`].

use backprop_core::Level;
use clap::ValueEnum;

/// Something to run with a level chosen at run time: a command, a bench row.
pub trait WithLevel {
    /// What the run gives back.
    type Output;
    /// Runs with level `L`.
    fn run<L: Level<f32> + Level<f64>>(self) -> Self::Output;
}

/// The levels that ship with the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuiltinLevel {
    /// level01: explicit loops.
    #[value(name = "1")]
    Loops,
    /// level02: vectorised with ndarray.
    #[value(name = "2")]
    Vectorised,
    /// level03: in place, preallocated buffers, matrixmultiply and rayon.
    #[value(name = "3")]
    InPlace,
}

impl BuiltinLevel {
    /// Every built-in level, in order.
    pub const ALL: [BuiltinLevel; 3] = [
        BuiltinLevel::Loops,
        BuiltinLevel::Vectorised,
        BuiltinLevel::InPlace,
    ];

    /// Runs `work` with this level's marker type.
    pub fn dispatch<W: WithLevel>(self, work: W) -> W::Output {
        match self {
            BuiltinLevel::Loops => work.run::<level01::Level01>(),
            BuiltinLevel::Vectorised => work.run::<level02::Level02>(),
            BuiltinLevel::InPlace => work.run::<level03::Level03>(),
        }
    }

    /// The level's name: `level01`, `level02`, `level03`.
    pub fn name(self) -> &'static str {
        struct Name;
        impl WithLevel for Name {
            type Output = &'static str;
            fn run<L: Level<f32> + Level<f64>>(self) -> &'static str {
                <L as Level<f32>>::NAME
            }
        }
        self.dispatch(Name)
    }
}
