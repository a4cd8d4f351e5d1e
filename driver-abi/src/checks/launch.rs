//! Kernel launches: the shape and shared-memory limits a launch is checked against, and the
//! packing of its arguments (`kernelParams` or an `extra` list) into the kernel's parameter
//! buffer. Rejections are messages: each library logs them its way and answers `INVALID_VALUE`.

use std::ffi::c_void;

use crate::cuda_h::{read_launch_extra, CuLaunchConfig};
use crate::error::CuResult;
use crate::sys::{CUfunction, CUstream};

/// A launch as the entry points receive it (`cuLaunchKernel`, `cuLaunchKernelEx`,
/// `cuLaunchCooperativeKernel`).
#[derive(Clone, Copy, Debug)]
pub struct LaunchArgs {
    /// The `CUfunction` (or `CUkernel`).
    pub func: CUfunction,
    /// Grid dimensions.
    pub grid: [u32; 3],
    /// Block dimensions.
    pub block: [u32; 3],
    /// Dynamic shared memory per block, bytes.
    pub shared: u32,
    /// The stream (NULL: the entry point's default stream).
    pub stream: CUstream,
    /// `kernelParams`: one pointer per parameter, or NULL.
    pub params: *mut *mut c_void,
    /// `extra`: a `CU_LAUNCH_PARAM_*` list, or NULL.
    pub extra: *mut *mut c_void,
}

impl LaunchArgs {
    /// `cuLaunchKernelEx`: the shape and stream from the `CUlaunchConfig` (checked by
    /// [`super::launch_config`]; its attributes are ignored).
    pub fn from_config(
        config: &CuLaunchConfig,
        func: CUfunction,
        params: *mut *mut c_void,
        extra: *mut *mut c_void,
    ) -> CuResult<LaunchArgs> {
        super::launch_config(config)?;
        Ok(LaunchArgs {
            func,
            grid: config.grid,
            block: config.block,
            shared: config.shared,
            stream: config.stream,
            params,
            extra,
        })
    }
}

/// Checks a launch shape: every grid and block dimension in `1..=max`, and at most
/// `max_threads` threads per block.
pub fn shape(
    grid: [u32; 3],
    block: [u32; 3],
    max_grid: [u32; 3],
    max_block: [u32; 3],
    max_threads: u32,
) -> Result<(), String> {
    for i in 0..3 {
        if block[i] == 0 || block[i] > max_block[i] {
            return Err(format!("block {block:?} outside 1..={max_block:?}"));
        }
        if grid[i] == 0 || grid[i] > max_grid[i] {
            return Err(format!("grid {grid:?} outside 1..={max_grid:?}"));
        }
    }
    let threads = u64::from(block[0]) * u64::from(block[1]) * u64::from(block[2]);
    if threads > u64::from(max_threads) {
        return Err(format!("{threads} threads per block, limit {max_threads}"));
    }
    Ok(())
}

/// Checks `dynamic` bytes of dynamic shared memory against the kernel's limit (`max_dynamic`,
/// which `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` raises) and, with its `static_`
/// shared memory, against the device's opt-in limit per block.
pub fn shared_memory(
    dynamic: u32,
    static_: u32,
    max_dynamic: u32,
    optin: u32,
) -> Result<(), String> {
    if dynamic > max_dynamic || static_.saturating_add(dynamic) > optin {
        return Err(format!(
            "{dynamic} bytes of dynamic shared memory, limit {max_dynamic} (raise it with \
             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)"
        ));
    }
    Ok(())
}

/// Packs a launch's arguments into `buf` by the kernel's parameter `layout` (offset and size of
/// each parameter, in declaration order; `need` bytes in all, which `buf` holds); returns the
/// bytes used.
///
/// The arguments are `params` (one pointer per parameter) or `extra` (a `CU_LAUNCH_PARAM_*` list
/// naming one packed buffer of at least `need` bytes, and at most `need` rounded up to
/// `tail_align`: a C struct mirroring the parameters may carry tail padding). Neither is allowed
/// for a kernel without parameters.
///
/// # Safety
/// `params` must be NULL or hold one valid pointer per parameter, each to a value of the
/// parameter's size; `extra` must be NULL or a list terminated by `CU_LAUNCH_PARAM_END` whose
/// buffer holds the size it states (as the CUDA driver API requires of the caller).
pub unsafe fn pack_params(
    layout: impl ExactSizeIterator<Item = (usize, usize)>,
    need: usize,
    tail_align: usize,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
    buf: &mut [u8],
) -> Result<usize, String> {
    match (params.is_null(), extra.is_null()) {
        (false, false) => Err("both kernelParams and extra given".into()),
        (true, true) if layout.len() == 0 => Ok(0),
        (true, true) => Err(format!("{} parameters but no arguments", layout.len())),
        (false, true) => {
            for (i, (offset, size)) in layout.enumerate() {
                // SAFETY: kernelParams holds one pointer per kernel parameter.
                let arg = unsafe { params.add(i).read() };
                if arg.is_null() {
                    return Err(format!("argument {i} is NULL"));
                }
                // SAFETY: the argument points to a value of the parameter's size.
                let bytes = unsafe { std::slice::from_raw_parts(arg.cast::<u8>(), size) };
                buf[offset..offset + size].copy_from_slice(bytes);
            }
            Ok(need)
        }
        (true, false) => {
            // SAFETY: `extra` is a key/value list terminated by CU_LAUNCH_PARAM_END.
            let (ptr, size) = unsafe { read_launch_extra(extra) }?;
            let size = size.unwrap_or(0);
            if size < need || size > need.next_multiple_of(tail_align.max(1)) {
                return Err(format!(
                    "argument buffer of {size} bytes, kernel needs {need}"
                ));
            }
            if need > 0 {
                if ptr.is_null() {
                    return Err("NULL CU_LAUNCH_PARAM_BUFFER_POINTER".into());
                }
                // SAFETY: the buffer holds `size >= need` bytes.
                buf[..need].copy_from_slice(unsafe { std::slice::from_raw_parts(ptr, need) });
            }
            Ok(need)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda_h::{LAUNCH_PARAM_BUFFER_POINTER, LAUNCH_PARAM_BUFFER_SIZE, LAUNCH_PARAM_END};

    #[test]
    fn shapes() {
        let (g, b) = ([65535, 65535, 65535], [1024, 1024, 64]);
        assert!(shape([1, 1, 1], [32, 1, 1], g, b, 1024).is_ok());
        assert!(shape([0, 1, 1], [32, 1, 1], g, b, 1024).is_err());
        assert!(shape([1, 1, 1], [64, 32, 1], g, b, 1024).is_err());
        assert!(shared_memory(100, 10, 200, 300).is_ok());
        assert!(shared_memory(201, 10, 200, 300).is_err());
        assert!(shared_memory(200, 101, 200, 300).is_err());
    }

    #[test]
    fn params_and_extra_pack_the_same() {
        let (a, b) = (7u32, 0x1122_3344_5566_7788u64);
        let layout = [(0usize, 4usize), (8, 8)];
        let mut ptrs = [
            (&a as *const u32).cast_mut().cast::<c_void>(),
            (&b as *const u64).cast_mut().cast::<c_void>(),
        ];
        let mut buf1 = [0u8; 16];
        // SAFETY: one valid pointer per parameter.
        let n = unsafe {
            pack_params(
                layout.into_iter(),
                16,
                8,
                ptrs.as_mut_ptr(),
                std::ptr::null_mut(),
                &mut buf1,
            )
        };
        assert_eq!(n, Ok(16));
        let mut size = 16usize;
        let mut extra = [
            LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
            buf1.as_mut_ptr().cast(),
            LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
            (&mut size as *mut usize).cast(),
            LAUNCH_PARAM_END as *mut c_void,
        ];
        let mut buf2 = [0u8; 16];
        // SAFETY: a terminated list naming a 16-byte buffer.
        let n = unsafe {
            pack_params(
                layout.into_iter(),
                16,
                8,
                std::ptr::null_mut(),
                extra.as_mut_ptr(),
                &mut buf2,
            )
        };
        assert_eq!(n, Ok(16));
        assert_eq!(buf1, buf2);
        // SAFETY: both lists as above.
        let both = unsafe {
            pack_params(
                layout.into_iter(),
                16,
                8,
                ptrs.as_mut_ptr(),
                extra.as_mut_ptr(),
                &mut buf2,
            )
        };
        assert!(both.is_err());
    }
}
