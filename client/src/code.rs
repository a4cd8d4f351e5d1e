//! `CUresult` codes carried by every reply, from the one list in `gpushare-driver-abi`
//! (values from `cuda.h` 12.9).
//!
//! Replies carry the raw `u32` so that codes no list names still pass through unchanged.

pub use gpushare_driver_abi::error::codes::*;
pub use gpushare_driver_abi::error::is_context_fatal;

/// A raw `CUresult`.
pub type CuCode = gpushare_driver_abi::error::CUresult;

/// The `CUDA_…` name of a code, if `cuda.h` defines it.
pub fn name(code: CuCode) -> Option<&'static str> {
    gpushare_driver_abi::error::name_of(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(600), Some("CUDA_ERROR_NOT_READY"));
        assert_eq!(
            super::name(super::ERROR_TIMEOUT),
            Some("CUDA_ERROR_TIMEOUT")
        );
        assert_eq!(super::name(0), Some("CUDA_SUCCESS"));
        assert_eq!(super::name(12345), None);
        assert!(super::is_context_fatal(super::ERROR_ILLEGAL_ADDRESS));
        assert!(!super::is_context_fatal(super::ERROR_INVALID_VALUE));
    }
}
