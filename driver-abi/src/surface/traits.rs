//! One trait per API family, generated from the declaration: a library implements the methods it
//! supports with [`implement!`](crate::implement); every other method keeps its default, which
//! the generated export never calls (it answers `CUDA_ERROR_NOT_SUPPORTED` itself, with a log line
//! naming the symbol).
//!
//! Methods take converted arguments and return [`CuResult`]: outputs go through [`Out`] /
//! [`OptOut`], so the `Result` only says whether the call succeeded.

#[allow(unused_imports)]
use super::prelude::*;

/// Expands the declaration into the family traits.
macro_rules! family_traits {
    (
        $(
            $(#[$fmeta:meta])*
            family $family:ident {
                $(
                    $(#[$meta:meta])*
                    fn $method:ident $args:tt $($unsafe:ident)? {
                        $sym:ident $(| $pt:ident)? $(, $alias:ident $(| $apt:ident)? $(( $($raw:ty),* ))? )*
                    }
                )*
            }
        )*
        undeclared { $($undeclared:ident)* }
    ) => {
        $(
            $(#[$fmeta])*
            #[allow(unused_variables, clippy::too_many_arguments, clippy::missing_safety_doc)]
            pub trait $family {
                /// The methods this library implements (set by [`implement!`](crate::implement)).
                const IMPLEMENTED: &'static [&'static str] = &[];
                $(
                    family_method!([$(#[$meta])*] [$($unsafe)?] $method $args [$($pt)?]);
                )*
            }
        )*

        /// Every declared entry point: family, method, symbol (per-thread twins and aliases
        /// included).
        pub const ENTRIES: &[super::Entry] = &[
            $($(
                super::Entry { family: stringify!($family), method: stringify!($method), symbol: stringify!($sym) },
                $(super::Entry { family: stringify!($family), method: stringify!($method), symbol: stringify!($pt) },)?
                $(
                    super::Entry { family: stringify!($family), method: stringify!($method), symbol: stringify!($alias) },
                    $(super::Entry { family: stringify!($family), method: stringify!($method), symbol: stringify!($apt) },)?
                )*
            )*)*
        ];

        /// Every symbol exported as a NOT_SUPPORTED stub because nothing declares it.
        pub const UNDECLARED: &[&str] = &[$(stringify!($undeclared)),*];
    };
}

/// One trait method with its NOT_SUPPORTED default; with a per-thread twin it also takes the
/// default stream the symbol implies.
macro_rules! family_method {
    ([$(#[$meta:meta])*] [$($unsafe:ident)?] $method:ident ($($arg:ident : $ty:ty),* $(,)?) []) => {
        $(#[$meta])*
        $($unsafe)? fn $method($($arg: $ty),*) -> CuResult {
            Err(CuError::NOT_SUPPORTED)
        }
    };
    ([$(#[$meta:meta])*] [$($unsafe:ident)?] $method:ident ($($arg:ident : $ty:ty),* $(,)?) [$pt:ident]) => {
        $(#[$meta])*
        $($unsafe)? fn $method($($arg: $ty,)* default_stream: DefaultStream) -> CuResult {
            Err(CuError::NOT_SUPPORTED)
        }
    };
}

crate::driver_surface!(family_traits);
