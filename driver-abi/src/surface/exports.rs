//! The generated C layer: [`driver_exports!`](crate::driver_exports) expands the declaration into
//! every exported symbol of a library, in the library's thin cdylib.
//!
//! For a declared symbol the export is one line of substance: if the library's family trait does
//! not list the method in `IMPLEMENTED` (decided at compile time), it is a NOT_SUPPORTED stub that
//! logs the symbol once; otherwise, under the panic guard, each raw argument is converted
//! ([`FromCuda`](super::FromCuda)) and the method called. Undeclared symbols are stubs.
//! `cuGetProcAddress` (v1, `_v2`), `cuGetExportTable`, `cuGetErrorName` and `cuGetErrorString`
//! are built in: they resolve over this layer's own table, [`EXPORTS`](#exports), so a
//! library cannot hand out an address its exports do not have.
//!
//! Invoke it in a module of its own (it glob-imports the declaration's names there).
//! `driver_exports!(Lib, "name")` exports with `#[no_mangle]` (the cdylib);
//! `driver_exports!(Lib, "name", unexported)` generates the same functions with Rust-mangled
//! names, for in-process tests that call a library's C layer without exporting it.

/// Generates a library's C layer: `driver_exports!(path::to::Library, "the library")`.
#[macro_export]
macro_rules! driver_exports {
    ($lib:ty, $name:literal) => {
        $crate::driver_surface!($crate::__surface_exports, [[#[no_mangle]] $name; $lib]);
    };
    ($lib:ty, $name:literal, unexported) => {
        $crate::driver_surface!($crate::__surface_exports, [[] $name; $lib]);
    };
}

/// The callback [`driver_exports!`](crate::driver_exports) hands to the declaration.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_exports {
    (
        [$attrs:tt $name:literal; $lib:ty]
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
        #[allow(unused_imports)]
        use $crate::surface::prelude::*;

        $($(
            $crate::__surface_entry! {
                attrs $attrs lib [$name, $lib] family $family docs [$(#[$meta])*]
                unsafe [$($unsafe)?] method $method args $args
                symbols { $sym $(| $pt)? $(, $alias $(| $apt)? $(( $($raw),* ))? )* }
            }
        )*)*

        $($crate::__surface_stub!($attrs $name $undeclared);)*

        /// Every symbol of this layer with its address, and whether the library implements it.
        pub static EXPORTS: &[($crate::export::Export, bool)] = &[
            $($(
                $crate::__surface_symbol!($lib, $family, $method, $sym),
                $($crate::__surface_symbol!($lib, $family, $method, $pt),)?
                $(
                    $crate::__surface_symbol!($lib, $family, $method, $alias),
                    $($crate::__surface_symbol!($lib, $family, $method, $apt),)?
                )*
            )*)*
            $(($crate::export::Export { name: stringify!($undeclared), addr: $undeclared as *const () }, false),)*
        ];

        $crate::__surface_builtins!($attrs $name);
    };
}

/// The exports of one declared entry: its symbol, its per-thread twin, its aliases.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_entry {
    // Without a per-thread twin: every symbol calls the method as declared.
    (
        attrs $attrs:tt lib $lib:tt family $family:ident docs $docs:tt unsafe $unsafe:tt
        method $method:ident args $args:tt
        symbols { $sym:ident $(, $alias:ident $(( $($raw:ty),* ))? )* }
    ) => {
        $crate::__surface_export_fn! {
            attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
            symbol $sym args $args raw [] extra []
        }
        $(
            $crate::__surface_export_fn! {
                attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
                symbol $alias args $args raw [$([$($raw),*])?] extra []
            }
        )*
    };
    // With one: plain symbols pass the legacy default stream, twins the per-thread one.
    (
        attrs $attrs:tt lib $lib:tt family $family:ident docs $docs:tt unsafe $unsafe:tt
        method $method:ident args $args:tt
        symbols { $sym:ident | $pt:ident $(, $alias:ident $(| $apt:ident)? $(( $($raw:ty),* ))? )* }
    ) => {
        $crate::__surface_export_fn! {
            attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
            symbol $sym args $args raw [] extra [$crate::surface::DefaultStream::Legacy]
        }
        $crate::__surface_export_fn! {
            attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
            symbol $pt args $args raw [] extra [$crate::surface::DefaultStream::PerThread]
        }
        $(
            $crate::__surface_alias! {
                attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
                args $args alias $alias $(| $apt)? raw [$([$($raw),*])?]
            }
        )*
    };
}

/// An alias of an entry with a per-thread twin, and the alias's own twin if it has one.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_alias {
    (
        attrs $attrs:tt lib $lib:tt family $family:ident docs $docs:tt unsafe $unsafe:tt
        method $method:ident args $args:tt alias $alias:ident $(| $apt:ident)? raw $raw:tt
    ) => {
        $crate::__surface_export_fn! {
            attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
            symbol $alias args $args raw $raw extra [$crate::surface::DefaultStream::Legacy]
        }
        $(
            $crate::__surface_export_fn! {
                attrs $attrs lib $lib family $family docs $docs unsafe $unsafe method $method
                symbol $apt args $args raw $raw extra [$crate::surface::DefaultStream::PerThread]
            }
        )?
    };
}

/// A NOT_SUPPORTED stub for an undeclared symbol.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_stub {
    ([$($attr:tt)*] $name:literal $sym:ident) => {
        #[doc = concat!("`", stringify!($sym), "`: not declared, so not supported by ", $name, ".")]
        ///
        /// # Safety
        /// Reads no arguments (the C ABI lets a callee ignore its caller's), so any call is sound.
        $($attr)*
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn $sym() -> $crate::error::CUresult {
            $crate::export::not_supported(stringify!($sym), $name)
        }
    };
}

/// One row of `EXPORTS`.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_symbol {
    ($lib:ty, $family:ident, $method:ident, $sym:ident) => {
        (
            $crate::export::Export {
                name: stringify!($sym),
                addr: $sym as *const (),
            },
            $crate::surface::implements(
                <$lib as $crate::surface::$family>::IMPLEMENTED,
                stringify!($method),
            ),
        )
    };
}

/// One declared symbol: convert, then call the method (or answer NOT_SUPPORTED).
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_export_fn {
    (
        attrs $attrs:tt lib $lib:tt family $family:ident docs $docs:tt
        unsafe $unsafe:tt method $method:ident symbol $sym:ident
        args ($($arg:ident : $ty:ty),* $(,)?) raw [] extra [$($extra:tt)*]
    ) => {
        $crate::__surface_export_fn! {
            attrs $attrs lib $lib family $family docs $docs
            unsafe $unsafe method $method symbol $sym
            args ($($arg : $ty),*) raw [[$(<$ty as $crate::surface::CudaArg>::Raw),*]] extra [$($extra)*]
        }
    };
    (
        attrs [$($attr:tt)*] lib [$name:literal, $lib:ty] family $family:ident
        docs [$(#[$meta:meta])*] unsafe [$($unsafe:ident)?] method $method:ident symbol $sym:ident
        args ($($arg:ident : $ty:ty),* $(,)?) raw [[$($raw:ty),*]] extra [$($extra:tt)*]
    ) => {
        $(#[$meta])*
        ///
        /// # Safety
        /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
        $($attr)*
        #[allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]
        pub unsafe extern "C" fn $sym($($arg: $raw),*) -> $crate::error::CUresult {
            const IMPLEMENTED: bool = $crate::surface::implements(
                <$lib as $crate::surface::$family>::IMPLEMENTED,
                stringify!($method),
            );
            if !IMPLEMENTED {
                return $crate::export::not_supported(stringify!($sym), $name);
            }
            // Calls that may synchronise implicitly are refused while a stream capture forbids
            // them (one relaxed load when nothing captures).
            const CAPTURE_UNSAFE: bool = $crate::surface::implements(
                $crate::graph::capture::UNSAFE_CALLS,
                stringify!($method),
            );
            $crate::export::guard(stringify!($sym), || {
                if CAPTURE_UNSAFE {
                    $crate::graph::capture::check_unsafe_call(stringify!($sym))?;
                }
                $(
                    // SAFETY: the C caller's argument, valid as the CUDA driver API requires.
                    let $arg: $ty = unsafe { $crate::surface::FromCuda::from_cuda($arg) }
                        .map_err(|e| $crate::surface::rejected(stringify!($sym), stringify!($arg), e))?;
                )*
                // SAFETY (for an `unsafe` method): its contract is the C caller's, forwarded.
                $($unsafe)? { <$lib as $crate::surface::$family>::$method($($arg,)* $($extra)*) }
            })
        }
    };
}

/// The built-in symbols: `cuGetProcAddress` (v1, `_v2`) and `cuGetExportTable` over this layer's
/// `EXPORTS`, and the error strings.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_builtins {
    ([$($attr:tt)*] $name:literal) => {
        /// This layer's `cuGetProcAddress` resolver, built on first use.
        pub fn proc_resolver() -> &'static $crate::procaddress::ProcResolver {
            static RESOLVER: ::std::sync::OnceLock<$crate::procaddress::ProcResolver> =
                ::std::sync::OnceLock::new();
            RESOLVER.get_or_init(|| {
                $crate::procaddress::ProcResolver::with_support(
                    EXPORTS.iter().chain(BUILTINS.iter()).map(|(e, s)| (e, *s)),
                )
            })
        }

        /// The built-in symbols, for `cuGetProcAddress`.
        static BUILTINS: &[($crate::export::Export, bool)] = &[
            ($crate::export::Export { name: "cuGetProcAddress", addr: cuGetProcAddress as *const () }, true),
            ($crate::export::Export { name: "cuGetProcAddress_v2", addr: cuGetProcAddress_v2 as *const () }, true),
            ($crate::export::Export { name: "cuGetExportTable", addr: cuGetExportTable as *const () }, true),
            ($crate::export::Export { name: "cuGetErrorName", addr: cuGetErrorName as *const () }, true),
            ($crate::export::Export { name: "cuGetErrorString", addr: cuGetErrorString as *const () }, true),
        ];

        /// Every symbol of this layer (declared, undeclared and built in) with its address and
        /// whether it is supported.
        pub fn all_symbols() -> impl Iterator<Item = &'static ($crate::export::Export, bool)> {
            EXPORTS.iter().chain(BUILTINS.iter())
        }

        /// `cuGetProcAddress` (CUDA 11.3 ABI, no status out-parameter).
        ///
        /// # Safety
        /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
        $($attr)*
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn cuGetProcAddress(
            symbol: *const ::std::ffi::c_char,
            pfn: *mut *mut ::std::ffi::c_void,
            cuda_version: i32,
            flags: u64,
        ) -> $crate::error::CUresult {
            $crate::export::guard("cuGetProcAddress", || {
                // SAFETY: the caller's pointers, passed on under the same contract.
                unsafe {
                    proc_resolver().get_proc_address(symbol, pfn, cuda_version, flags, ::std::ptr::null_mut())
                }
            })
        }

        /// `cuGetProcAddress_v2` (CUDA 12.0 ABI): also reports a `CUdriverProcAddressQueryResult`.
        ///
        /// # Safety
        /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
        $($attr)*
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn cuGetProcAddress_v2(
            symbol: *const ::std::ffi::c_char,
            pfn: *mut *mut ::std::ffi::c_void,
            cuda_version: i32,
            flags: u64,
            symbol_status: *mut $crate::procaddress::CUdriverProcAddressQueryResult,
        ) -> $crate::error::CUresult {
            $crate::export::guard("cuGetProcAddress_v2", || {
                // SAFETY: the caller's pointers, passed on under the same contract.
                unsafe { proc_resolver().get_proc_address(symbol, pfn, cuda_version, flags, symbol_status) }
            })
        }

        /// `cuGetExportTable`: the hidden tables libcudart needs, bound to this layer's entry
        /// points.
        ///
        /// # Safety
        /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
        $($attr)*
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn cuGetExportTable(
            table: *mut *const ::std::ffi::c_void,
            id: *const $crate::cuda_h::CUuuid,
        ) -> $crate::error::CUresult {
            $crate::export::guard("cuGetExportTable", || {
                $crate::export_table::install($crate::export_table::DriverEntryPoints {
                    driver_get_version: cuDriverGetVersion,
                    device_get_count: cuDeviceGetCount,
                    device_get_uuid: cuDeviceGetUuid,
                    device_get_attribute: cuDeviceGetAttribute,
                    primary_ctx_retain: cuDevicePrimaryCtxRetain,
                    primary_ctx_release: cuDevicePrimaryCtxRelease_v2,
                    ctx_get_current: cuCtxGetCurrent,
                    module_load_data: cuModuleLoadData,
                });
                // SAFETY: the caller's pointers, under the same contract; CUuuid is 16 bytes.
                let r = unsafe { $crate::export_table::get_export_table(table, id.cast()) };
                $crate::error::CuError::from_code(r).map_or(Ok(()), Err)
            })
        }

        /// `cuGetErrorName`
        ///
        /// # Safety
        /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
        $($attr)*
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn cuGetErrorName(
            error: $crate::error::CUresult,
            out: *mut *const ::std::ffi::c_char,
        ) -> $crate::error::CUresult {
            $crate::export::guard("cuGetErrorName", || {
                // SAFETY: the caller's out-pointer, under the same contract.
                unsafe { $crate::error_strings::get_error_name(error, out) }
            })
        }

        /// `cuGetErrorString`
        ///
        /// # Safety
        /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
        $($attr)*
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn cuGetErrorString(
            error: $crate::error::CUresult,
            out: *mut *const ::std::ffi::c_char,
        ) -> $crate::error::CUresult {
            $crate::export::guard("cuGetErrorString", || {
                // SAFETY: the caller's out-pointer, under the same contract.
                unsafe { $crate::error_strings::get_error_string(error, out) }
            })
        }
    };
}
