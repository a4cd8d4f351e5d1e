//! The deprecated execution control (`cuFuncSetBlockShape`, `cuFuncSetSharedSize`,
//! `cuParamSet*`, `cuLaunch`, `cuLaunchGrid`, `cuLaunchGridAsync`), written once for both
//! libraries: the per-function state those calls set ([`LegacyLaunch`], kept with each library's
//! function handle) and the launch it turns into — a launch whose arguments are the bytes set
//! with `cuParamSet*`, passed as a `CU_LAUNCH_PARAM_BUFFER_POINTER` `extra` list to the library's
//! ordinary launch path ([`LegacyLaunch::with_launch`]).
//!
//! Rules (CUDA driver API, "Execution Control [DEPRECATED]"): a block dimension of 0 or less is
//! `INVALID_VALUE`; `cuParamSet*` writes at a byte offset inside the size `cuParamSetSize` set
//! (beyond it: `INVALID_VALUE`); a launch before `cuFuncSetBlockShape` is `INVALID_VALUE`; the
//! parameter size must cover the kernel's parameters (bytes past them are ignored); a grid
//! dimension of 0 or less is `INVALID_VALUE` (the ordinary launch checks).

use std::ffi::c_void;

use super::launch::LaunchArgs;
use crate::cuda_h::{LAUNCH_PARAM_BUFFER_POINTER, LAUNCH_PARAM_BUFFER_SIZE, LAUNCH_PARAM_END};
use crate::error::{CuError, CuResult};
use crate::sys::{CUfunction, CUstream};

/// The largest parameter buffer a kernel may take (bytes; CUDA 12.1+).
pub const MAX_PARAM_SIZE: u32 = 32764;

/// What the deprecated calls set on one function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyLaunch {
    /// `cuFuncSetBlockShape`; `None` until set.
    block: Option<[u32; 3]>,
    /// `cuFuncSetSharedSize`.
    shared: u32,
    /// The parameter buffer: `cuParamSetSize` sets its length, `cuParamSet*` its bytes.
    params: Vec<u8>,
}

impl LegacyLaunch {
    /// `cuFuncSetBlockShape`: every dimension positive (the launch checks the device limits).
    pub fn set_block_shape(&mut self, x: i32, y: i32, z: i32) -> CuResult {
        let dim = |v: i32| u32::try_from(v).ok().filter(|&v| v > 0);
        match (dim(x), dim(y), dim(z)) {
            (Some(x), Some(y), Some(z)) => {
                self.block = Some([x, y, z]);
                Ok(())
            }
            _ => {
                super::debug(format_args!("cuFuncSetBlockShape({x}, {y}, {z})"));
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// `cuFuncSetSharedSize` (checked at launch, like a launch's dynamic shared memory).
    pub fn set_shared_size(&mut self, bytes: u32) {
        self.shared = bytes;
    }

    /// `cuParamSetSize`: bytes already set inside the new size are kept, new ones are zero.
    pub fn set_size(&mut self, bytes: u32) -> CuResult {
        if bytes > MAX_PARAM_SIZE {
            super::debug(format_args!(
                "cuParamSetSize({bytes}): above {MAX_PARAM_SIZE}"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        self.params.resize(bytes as usize, 0);
        Ok(())
    }

    /// `cuParamSeti`/`cuParamSetf`/`cuParamSetv`: `bytes` at `offset`, inside the size set.
    pub fn set_bytes(&mut self, offset: i32, bytes: &[u8]) -> CuResult {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|o| Some(o..o.checked_add(bytes.len())?))
            .filter(|r| r.end <= self.params.len());
        let Some(range) = range else {
            super::debug(format_args!(
                "cuParamSet*: {} bytes at offset {offset}, parameter size {}",
                bytes.len(),
                self.params.len()
            ));
            return Err(CuError::INVALID_VALUE);
        };
        self.params[range].copy_from_slice(bytes);
        Ok(())
    }

    /// The launch this state describes on a `grid` of blocks (`cuLaunch`: 1 × 1,
    /// `cuLaunchGrid*`: width × height), for a kernel whose parameters take `need` bytes: `f`
    /// gets the [`LaunchArgs`], whose `extra` list (a `CU_LAUNCH_PARAM_BUFFER_POINTER` to the
    /// first `need` bytes set, `CU_LAUNCH_PARAM_BUFFER_SIZE`, `CU_LAUNCH_PARAM_END`) is valid
    /// while `f` runs.
    pub fn with_launch<T>(
        &self,
        func: CUfunction,
        grid: (i32, i32),
        stream: CUstream,
        need: usize,
        f: impl FnOnce(LaunchArgs) -> CuResult<T>,
    ) -> CuResult<T> {
        let Some(block) = self.block else {
            super::debug(format_args!("legacy launch before cuFuncSetBlockShape"));
            return Err(CuError::INVALID_VALUE);
        };
        if self.params.len() < need {
            super::debug(format_args!(
                "legacy launch: parameter size {} but the kernel's parameters take {need} bytes",
                self.params.len()
            ));
            return Err(CuError::INVALID_VALUE);
        }
        // A negative dimension becomes 0, which the launch's shape check rejects.
        let dim = |v: i32| u32::try_from(v).unwrap_or(0);
        let mut size = need;
        let mut extra = [
            LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
            self.params.as_ptr().cast_mut().cast(),
            LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
            (&mut size as *mut usize).cast(),
            LAUNCH_PARAM_END as *mut c_void,
        ];
        f(LaunchArgs {
            func,
            grid: [dim(grid.0), dim(grid.1), 1],
            block,
            shared: self.shared,
            stream,
            params: std::ptr::null_mut(),
            extra: extra.as_mut_ptr(),
        })
    }
}

/// `cuParamSetv`'s source: `len` bytes at `ptr` (NULL is `INVALID_VALUE` unless `len` is 0).
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `len` bytes for `'a`, as `cuParamSetv` requires.
pub unsafe fn source_bytes<'a>(ptr: *const c_void, len: u32) -> CuResult<&'a [u8]> {
    match (ptr.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(CuError::INVALID_VALUE),
        // SAFETY: non-NULL and valid for `len` bytes per the caller's contract.
        (false, n) => Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), n as usize) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda_h::read_launch_extra;

    #[test]
    fn parameters_are_set_by_offset_inside_the_size() {
        let mut l = LegacyLaunch::default();
        assert_eq!(
            l.set_bytes(0, &[1]),
            Err(CuError::INVALID_VALUE),
            "no size yet"
        );
        l.set_size(12).unwrap();
        l.set_bytes(0, &7u32.to_ne_bytes()).unwrap();
        l.set_bytes(8, &1.5f32.to_ne_bytes()).unwrap();
        assert_eq!(l.set_bytes(9, &[0; 4]), Err(CuError::INVALID_VALUE));
        assert_eq!(l.set_bytes(-1, &[0]), Err(CuError::INVALID_VALUE));
        assert_eq!(l.set_size(MAX_PARAM_SIZE + 1), Err(CuError::INVALID_VALUE));
        l.set_size(16).unwrap();
        assert_eq!(&l.params[..4], &7u32.to_ne_bytes(), "kept across a resize");
        assert_eq!(&l.params[12..], &[0; 4]);
    }

    #[test]
    fn the_launch_passes_the_bytes_as_an_extra_buffer() {
        let mut l = LegacyLaunch::default();
        let f = std::ptr::null_mut();
        let launch = |l: &LegacyLaunch, need| l.with_launch(f, (3, 2), f.cast(), need, |_| Ok(()));
        assert_eq!(launch(&l, 0), Err(CuError::INVALID_VALUE), "no block shape");
        assert_eq!(l.set_block_shape(0, 1, 1), Err(CuError::INVALID_VALUE));
        l.set_block_shape(64, 2, 1).unwrap();
        l.set_shared_size(256);
        l.set_size(8).unwrap();
        l.set_bytes(4, &[9, 9, 9, 9]).unwrap();
        assert_eq!(launch(&l, 12), Err(CuError::INVALID_VALUE), "too few bytes");
        let got = l
            .with_launch(f, (3, -2), f.cast(), 6, |a| {
                // SAFETY: the list `with_launch` built, alive during the closure.
                let (ptr, size) = unsafe { read_launch_extra(a.extra) }.unwrap();
                // SAFETY: the buffer holds `size` bytes.
                let bytes = unsafe { std::slice::from_raw_parts(ptr, size.unwrap()) }.to_vec();
                Ok((a.grid, a.block, a.shared, a.params.is_null(), bytes))
            })
            .unwrap();
        assert_eq!(
            got,
            ([3, 0, 1], [64, 2, 1], 256, true, vec![0, 0, 0, 0, 9, 9])
        );
    }
}
