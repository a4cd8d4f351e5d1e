//! `CUresult` codes carried by every reply (values from `cuda.h` 12.9).
//!
//! Replies carry the raw `u32` so that codes this crate does not name still pass through
//! unchanged; the constants below are the ones the broker and shim produce themselves.

/// A raw `CUresult`.
pub type CuCode = u32;

macro_rules! codes {
    ($($name:ident = $value:expr,)*) => {
        $(
            #[doc = concat!("`CUDA_", stringify!($name), "` (", stringify!($value), ")")]
            pub const $name: CuCode = $value;
        )*

        /// The `CUDA_…` name of a code, if it is one this crate names.
        pub fn name(code: CuCode) -> Option<&'static str> {
            match code {
                $($value => Some(concat!("CUDA_", stringify!($name))),)*
                _ => None,
            }
        }
    };
}

codes! {
    SUCCESS = 0,
    ERROR_INVALID_VALUE = 1,
    ERROR_OUT_OF_MEMORY = 2,
    ERROR_NOT_INITIALIZED = 3,
    ERROR_DEINITIALIZED = 4,
    ERROR_NO_DEVICE = 100,
    ERROR_INVALID_DEVICE = 101,
    ERROR_INVALID_IMAGE = 200,
    ERROR_INVALID_CONTEXT = 201,
    ERROR_MAP_FAILED = 205,
    ERROR_UNMAP_FAILED = 206,
    ERROR_ALREADY_MAPPED = 208,
    ERROR_NO_BINARY_FOR_GPU = 209,
    ERROR_NOT_MAPPED = 211,
    ERROR_UNSUPPORTED_LIMIT = 215,
    ERROR_INVALID_PTX = 218,
    ERROR_OPERATING_SYSTEM = 304,
    ERROR_INVALID_HANDLE = 400,
    ERROR_ILLEGAL_STATE = 401,
    ERROR_NOT_FOUND = 500,
    ERROR_NOT_READY = 600,
    ERROR_ILLEGAL_ADDRESS = 700,
    ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    ERROR_LAUNCH_TIMEOUT = 702,
    ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
    ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
    ERROR_LAUNCH_FAILED = 719,
    ERROR_NOT_PERMITTED = 800,
    ERROR_NOT_SUPPORTED = 801,
    ERROR_TIMEOUT = 909,
    ERROR_UNKNOWN = 999,
}

/// Whether `code` is an error after which a CUDA context is unusable (every later call of the
/// context returns it): the device faults of `cuda.h` (700, 702, 714–719).
pub fn is_context_fatal(code: CuCode) -> bool {
    matches!(code, 700 | 702 | 714..=719)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(600), Some("CUDA_ERROR_NOT_READY"));
        assert_eq!(super::name(0), Some("CUDA_SUCCESS"));
        assert_eq!(super::name(12345), None);
    }
}
