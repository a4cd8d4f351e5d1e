//! `CUresult` as a Rust `Result`: [`CuError`] is a non-zero CUDA error code, so `?` works in exports.

use std::fmt;
use std::num::NonZeroU32;

use crate::error_table::ERROR_TABLE;

/// The raw C result code.
pub type CUresult = u32;

/// A CUDA driver error: any `CUresult` other than `CUDA_SUCCESS`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct CuError(NonZeroU32);

/// `Result<T, CuError>`; `Ok(())` crosses the FFI as `CUDA_SUCCESS`.
pub type CuResult<T = ()> = Result<T, CuError>;

macro_rules! error_codes {
    ($($name:ident / $raw:ident = $value:expr,)*) => {
        impl CuError {
            $(
                #[doc = concat!("`CUDA_ERROR_", stringify!($name), "`")]
                pub const $name: CuError = CuError(match NonZeroU32::new($value) {
                    Some(v) => v,
                    None => panic!("zero is success"),
                });
            )*
        }

        /// The same codes as raw `CUresult` values, for code that carries codes as numbers (the
        /// protocol, the broker): `codes::ERROR_INVALID_VALUE == CuError::INVALID_VALUE.code()`.
        pub mod codes {
            use super::CUresult;

            /// `CUDA_SUCCESS`
            pub const SUCCESS: CUresult = 0;
            $(
                #[doc = concat!("`CUDA_", stringify!($raw), "`")]
                pub const $raw: CUresult = $value;
            )*
        }
    };
}

error_codes! {
    INVALID_VALUE / ERROR_INVALID_VALUE = 1,
    OUT_OF_MEMORY / ERROR_OUT_OF_MEMORY = 2,
    NOT_INITIALIZED / ERROR_NOT_INITIALIZED = 3,
    DEINITIALIZED / ERROR_DEINITIALIZED = 4,
    DEVICE_UNAVAILABLE / ERROR_DEVICE_UNAVAILABLE = 46,
    NO_DEVICE / ERROR_NO_DEVICE = 100,
    INVALID_DEVICE / ERROR_INVALID_DEVICE = 101,
    DEVICE_NOT_LICENSED / ERROR_DEVICE_NOT_LICENSED = 102,
    INVALID_IMAGE / ERROR_INVALID_IMAGE = 200,
    INVALID_CONTEXT / ERROR_INVALID_CONTEXT = 201,
    CONTEXT_ALREADY_CURRENT / ERROR_CONTEXT_ALREADY_CURRENT = 202,
    MAP_FAILED / ERROR_MAP_FAILED = 205,
    UNMAP_FAILED / ERROR_UNMAP_FAILED = 206,
    ALREADY_MAPPED / ERROR_ALREADY_MAPPED = 208,
    NO_BINARY_FOR_GPU / ERROR_NO_BINARY_FOR_GPU = 209,
    ALREADY_ACQUIRED / ERROR_ALREADY_ACQUIRED = 210,
    NOT_MAPPED / ERROR_NOT_MAPPED = 211,
    UNSUPPORTED_LIMIT / ERROR_UNSUPPORTED_LIMIT = 215,
    CONTEXT_ALREADY_IN_USE / ERROR_CONTEXT_ALREADY_IN_USE = 216,
    INVALID_PTX / ERROR_INVALID_PTX = 218,
    INVALID_SOURCE / ERROR_INVALID_SOURCE = 300,
    FILE_NOT_FOUND / ERROR_FILE_NOT_FOUND = 301,
    OPERATING_SYSTEM / ERROR_OPERATING_SYSTEM = 304,
    INVALID_HANDLE / ERROR_INVALID_HANDLE = 400,
    ILLEGAL_STATE / ERROR_ILLEGAL_STATE = 401,
    NOT_FOUND / ERROR_NOT_FOUND = 500,
    NOT_READY / ERROR_NOT_READY = 600,
    ILLEGAL_ADDRESS / ERROR_ILLEGAL_ADDRESS = 700,
    LAUNCH_OUT_OF_RESOURCES / ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    LAUNCH_TIMEOUT / ERROR_LAUNCH_TIMEOUT = 702,
    PEER_ACCESS_ALREADY_ENABLED / ERROR_PEER_ACCESS_ALREADY_ENABLED = 704,
    PRIMARY_CONTEXT_ACTIVE / ERROR_PRIMARY_CONTEXT_ACTIVE = 708,
    CONTEXT_IS_DESTROYED / ERROR_CONTEXT_IS_DESTROYED = 709,
    ASSERT / ERROR_ASSERT = 710,
    HOST_MEMORY_ALREADY_REGISTERED / ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
    HOST_MEMORY_NOT_REGISTERED / ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
    HARDWARE_STACK_ERROR / ERROR_HARDWARE_STACK_ERROR = 714,
    ILLEGAL_INSTRUCTION / ERROR_ILLEGAL_INSTRUCTION = 715,
    MISALIGNED_ADDRESS / ERROR_MISALIGNED_ADDRESS = 716,
    INVALID_ADDRESS_SPACE / ERROR_INVALID_ADDRESS_SPACE = 717,
    INVALID_PC / ERROR_INVALID_PC = 718,
    LAUNCH_FAILED / ERROR_LAUNCH_FAILED = 719,
    NOT_PERMITTED / ERROR_NOT_PERMITTED = 800,
    NOT_SUPPORTED / ERROR_NOT_SUPPORTED = 801,
    STREAM_CAPTURE_UNSUPPORTED / ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
    STREAM_CAPTURE_INVALIDATED / ERROR_STREAM_CAPTURE_INVALIDATED = 901,
    STREAM_CAPTURE_MERGE / ERROR_STREAM_CAPTURE_MERGE = 902,
    STREAM_CAPTURE_UNMATCHED / ERROR_STREAM_CAPTURE_UNMATCHED = 903,
    STREAM_CAPTURE_UNJOINED / ERROR_STREAM_CAPTURE_UNJOINED = 904,
    STREAM_CAPTURE_ISOLATION / ERROR_STREAM_CAPTURE_ISOLATION = 905,
    STREAM_CAPTURE_IMPLICIT / ERROR_STREAM_CAPTURE_IMPLICIT = 906,
    CAPTURED_EVENT / ERROR_CAPTURED_EVENT = 907,
    STREAM_CAPTURE_WRONG_THREAD / ERROR_STREAM_CAPTURE_WRONG_THREAD = 908,
    GRAPH_EXEC_UPDATE_FAILURE / ERROR_GRAPH_EXEC_UPDATE_FAILURE = 910,
    TIMEOUT / ERROR_TIMEOUT = 909,
    UNKNOWN / ERROR_UNKNOWN = 999,
}

impl CuError {
    /// Wraps a non-zero code; `None` for `CUDA_SUCCESS`.
    pub fn from_code(code: CUresult) -> Option<CuError> {
        NonZeroU32::new(code).map(CuError)
    }

    /// The C value.
    pub fn code(self) -> CUresult {
        self.0.get()
    }

    /// `CUDA_ERROR_…` name, as `cuGetErrorName` reports it.
    pub fn name(self) -> &'static str {
        name_of(self.code()).unwrap_or("CUDA_ERROR_UNKNOWN")
    }

    /// True for errors that poison a context for good (sticky errors, as on real hardware).
    pub fn is_sticky(self) -> bool {
        is_context_fatal(self.code())
    }
}

/// Whether `code` is an error after which a CUDA context is unusable, every later call of the
/// context returning it (`cuda.h`: illegal address 700, launch timeout 702, device assert 710,
/// and the device faults 714–719).
pub fn is_context_fatal(code: CUresult) -> bool {
    matches!(code, 700 | 702 | 710 | 714..=719)
}

/// Converts a result into the code that crosses the FFI.
pub fn to_code(result: CuResult) -> CUresult {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// `CUDA_…` name of a code, if cuda.h defines it.
pub fn name_of(code: CUresult) -> Option<&'static str> {
    ERROR_TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, name, _)| *name)
}

/// Description of a code, if cuda.h defines it.
pub fn description_of(code: CUresult) -> Option<&'static str> {
    ERROR_TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, _, desc)| *desc)
}

impl fmt::Debug for CuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.code())
    }
}

impl fmt::Display for CuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl std::error::Error for CuError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_header_table() {
        assert_eq!(CuError::INVALID_VALUE.name(), "CUDA_ERROR_INVALID_VALUE");
        assert_eq!(
            CuError::ILLEGAL_ADDRESS.name(),
            "CUDA_ERROR_ILLEGAL_ADDRESS"
        );
        assert_eq!(name_of(0), Some("CUDA_SUCCESS"));
        assert_eq!(name_of(12345), None);
        assert!(CuError::ILLEGAL_ADDRESS.is_sticky());
        assert!(!CuError::INVALID_VALUE.is_sticky());
        assert_eq!(to_code(Err(CuError::NOT_READY)), 600);
    }

    #[test]
    fn every_constant_is_a_header_code() {
        for e in [
            CuError::INVALID_PTX,
            CuError::NOT_SUPPORTED,
            CuError::MISALIGNED_ADDRESS,
        ] {
            assert!(name_of(e.code()).is_some(), "{e:?}");
        }
    }
}
