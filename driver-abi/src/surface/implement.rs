//! [`implement!`](crate::implement): a library's implementation of one family, with the list of
//! the methods it implements recorded as the family's `IMPLEMENTED` constant.

/// Implements a family trait and records which methods it overrides.
///
/// ```ignore
/// gpushare_driver_abi::implement! {
///     impl Stream for CpuDevice {
///         fn stream_query(stream: CUstream, default_stream: DefaultStream) -> CuResult { ... }
///         unsafe fn stream_add_callback(/* ... */) -> CuResult { ... }
///     }
/// }
/// ```
#[macro_export]
macro_rules! implement {
    (impl $family:ident for $lib:ty { $($items:tt)* }) => {
        $crate::implement!(@munch [$family, $lib] [] [] $($items)*);
    };
    (@munch $head:tt [$($names:ident)*] [$($done:tt)*]
        $(#[$meta:meta])* unsafe fn $name:ident $args:tt -> $ret:ty $body:block $($rest:tt)*) => {
        $crate::implement!(@munch $head [$($names)* $name]
            [$($done)* $(#[$meta])* unsafe fn $name $args -> $ret $body] $($rest)*);
    };
    (@munch $head:tt [$($names:ident)*] [$($done:tt)*]
        $(#[$meta:meta])* fn $name:ident $args:tt -> $ret:ty $body:block $($rest:tt)*) => {
        $crate::implement!(@munch $head [$($names)* $name]
            [$($done)* $(#[$meta])* fn $name $args -> $ret $body] $($rest)*);
    };
    (@munch [$family:ident, $lib:ty] [$($names:ident)*] [$($done:tt)*]) => {
        impl $crate::surface::$family for $lib {
            const IMPLEMENTED: &'static [&'static str] = &[$(stringify!($names)),*];
            $($done)*
        }
    };
}
