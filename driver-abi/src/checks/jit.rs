//! The JIT options of a module load (`cuModuleLoadDataEx`, `cuLibraryLoad*`): the info and error
//! log buffers, and the outputs a driver writes back (bytes of each log, the wall time).

use std::ffi::c_void;
use std::marker::PhantomData;

use crate::cuda_h::{CUjitOption, JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
use crate::error::{CuError, CuResult};

/// `CU_JIT_WALL_TIME`
pub const JIT_WALL_TIME: CUjitOption = 2;
/// `CU_JIT_INFO_LOG_BUFFER`
pub const JIT_INFO_LOG_BUFFER: CUjitOption = 3;
/// `CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES`
pub const JIT_INFO_LOG_BUFFER_SIZE_BYTES: CUjitOption = 4;

/// The log buffers and output slots named in a caller's `CUjit_option` list, valid for `'a`.
#[derive(Debug)]
pub struct JitLogs<'a> {
    values: *mut *mut c_void,
    info: Option<(*mut u8, usize)>,
    error: Option<(*mut u8, usize)>,
    info_size_slot: Option<usize>,
    error_size_slot: Option<usize>,
    wall_time_slot: Option<usize>,
    _caller: PhantomData<&'a mut c_void>,
}

impl JitLogs<'_> {
    /// No options: nothing to write.
    pub fn none() -> JitLogs<'static> {
        JitLogs {
            values: std::ptr::null_mut(),
            info: None,
            error: None,
            info_size_slot: None,
            error_size_slot: None,
            wall_time_slot: None,
            _caller: PhantomData,
        }
    }

    /// Reads `n` options and their values; unknown options are accepted and ignored. A count
    /// without arrays is `INVALID_VALUE`.
    ///
    /// # Safety
    /// `options` and `values` must be NULL or hold `n` entries, and the log buffers they name must
    /// be valid for writes of their stated sizes, for as long as the result lives (the load call).
    pub unsafe fn parse<'a>(
        n: u32,
        options: *const CUjitOption,
        values: *mut *mut c_void,
    ) -> CuResult<JitLogs<'a>> {
        let mut logs = JitLogs {
            values,
            ..JitLogs::none()
        };
        if n == 0 {
            return Ok(logs);
        }
        if options.is_null() || values.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let (mut info_buf, mut err_buf, mut info_len, mut err_len) = (None, None, 0, 0);
        for i in 0..n as usize {
            // SAFETY: both arrays hold `n` entries.
            let (opt, val) = unsafe { (options.add(i).read(), values.add(i).read()) };
            match opt {
                JIT_INFO_LOG_BUFFER => info_buf = Some(val.cast::<u8>()),
                JIT_ERROR_LOG_BUFFER => err_buf = Some(val.cast::<u8>()),
                JIT_INFO_LOG_BUFFER_SIZE_BYTES => {
                    info_len = val as usize;
                    logs.info_size_slot = Some(i);
                }
                JIT_ERROR_LOG_BUFFER_SIZE_BYTES => {
                    err_len = val as usize;
                    logs.error_size_slot = Some(i);
                }
                JIT_WALL_TIME => logs.wall_time_slot = Some(i),
                _ => {}
            }
        }
        logs.info = info_buf
            .filter(|p| !p.is_null() && info_len > 0)
            .map(|p| (p, info_len));
        logs.error = err_buf
            .filter(|p| !p.is_null() && err_len > 0)
            .map(|p| (p, err_len));
        Ok(logs)
    }

    /// Writes the logs (truncated, NUL-terminated; their size options become the bytes written,
    /// terminator included) and the wall time (0).
    pub fn finish(&self, info: &str, error: &str) {
        self.finish_timed(info, error, 0.0);
    }

    /// [`finish`](Self::finish) with the wall time, in milliseconds, for `CU_JIT_WALL_TIME`.
    pub fn finish_timed(&self, info: &str, error: &str, wall_ms: f32) {
        // SAFETY (all blocks below): `parse`'s caller guarantees the buffers and the value array
        // of the option list, with the sizes it declared, for the life of `self`.
        let put = |buf: Option<(*mut u8, usize)>, slot: Option<usize>, text: &str| {
            let Some((p, cap)) = buf else { return };
            let n = text.len().min(cap - 1);
            // SAFETY: see above; `n + 1 <= cap`.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), p, n);
                p.add(n).write(0);
            }
            if let Some(i) = slot {
                // SAFETY: see above.
                unsafe { self.values.add(i).write((n + 1) as *mut c_void) };
            }
        };
        put(self.info, self.info_size_slot, info);
        put(self.error, self.error_size_slot, error);
        if let Some(i) = self.wall_time_slot {
            // SAFETY: see above. The wall time is a float stored in the value slot itself.
            unsafe { self.values.add(i).cast::<f32>().write_unaligned(wall_ms) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_written_truncated() {
        let (mut info, mut err) = ([0xffu8; 8], [0xffu8; 4]);
        let opts = [
            JIT_INFO_LOG_BUFFER,
            JIT_INFO_LOG_BUFFER_SIZE_BYTES,
            JIT_ERROR_LOG_BUFFER,
            JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        let mut vals: [*mut c_void; 4] = [
            info.as_mut_ptr().cast(),
            8 as *mut c_void,
            err.as_mut_ptr().cast(),
            4 as *mut c_void,
        ];
        // SAFETY: four options with buffers of the stated sizes.
        let logs = unsafe { JitLogs::parse(4, opts.as_ptr(), vals.as_mut_ptr()) }.unwrap();
        logs.finish("ok", "failure");
        assert_eq!(&info[..3], b"ok\0");
        assert_eq!(&err, b"fai\0");
        assert_eq!((vals[1] as usize, vals[3] as usize), (3, 4));
        // SAFETY: a count without arrays is rejected before anything is read.
        let bad = unsafe { JitLogs::parse(1, std::ptr::null(), std::ptr::null_mut()) };
        assert!(bad.is_err());
    }
}
