//! The geometry of copies and memsets: a (possibly 2-D) copy as both libraries check it before
//! anything moves — its two sides, its rows and pitches, the bytes each side spans — and the
//! extent of a memset.

use crate::cuda_h::{
    CudaMemcpy2D, MEMORYTYPE_ARRAY, MEMORYTYPE_DEVICE, MEMORYTYPE_HOST, MEMORYTYPE_UNIFIED,
};
use crate::error::{CuError, CuResult};

use super::{debug, warn};

/// A copy of `height` rows of `width` bytes, `dst_pitch`/`src_pitch` bytes apart, between two
/// addresses that are device memory (`*_dev`) or host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyShape {
    /// Address of the destination's first byte.
    pub dst: u64,
    /// Address of the source's first byte.
    pub src: u64,
    /// Whether the destination is device memory.
    pub dst_dev: bool,
    /// Whether the source is device memory.
    pub src_dev: bool,
    /// Bytes per row.
    pub width: u64,
    /// Rows.
    pub height: u64,
    /// Bytes from one destination row to the next.
    pub dst_pitch: u64,
    /// Bytes from one source row to the next.
    pub src_pitch: u64,
}

impl CopyShape {
    /// A linear copy of `bytes` bytes.
    pub fn linear(dst_dev: bool, src_dev: bool, dst: u64, src: u64, bytes: u64) -> CopyShape {
        CopyShape {
            dst,
            src,
            dst_dev,
            src_dev,
            width: bytes,
            height: 1,
            dst_pitch: bytes,
            src_pitch: bytes,
        }
    }

    /// A `CUDA_MEMCPY2D`: each side's first byte from its memory type, position and pitch;
    /// `is_device` classifies `CU_MEMORYTYPE_UNIFIED` addresses. CUDA arrays are
    /// `NOT_SUPPORTED`, unknown memory types `INVALID_VALUE`.
    pub fn from_2d(c: &CudaMemcpy2D, is_device: impl Fn(u64) -> bool) -> CuResult<CopyShape> {
        let side = |ty, host: u64, device: u64, x: usize, y: usize, pitch: usize| {
            let (base, dev) = match ty {
                MEMORYTYPE_HOST => (host, false),
                MEMORYTYPE_DEVICE => (device, true),
                MEMORYTYPE_UNIFIED => (device, is_device(device)),
                MEMORYTYPE_ARRAY => {
                    warn(format_args!(
                        "cuMemcpy2D with CUDA arrays is not supported by gpushare"
                    ));
                    return Err(CuError::NOT_SUPPORTED);
                }
                _ => return Err(CuError::INVALID_VALUE),
            };
            let off = (y as u64)
                .checked_mul(pitch as u64)
                .and_then(|v| v.checked_add(x as u64))
                .ok_or(CuError::INVALID_VALUE)?;
            Ok((base.checked_add(off).ok_or(CuError::INVALID_VALUE)?, dev))
        };
        let (src, src_dev) = side(
            c.src_memory_type,
            c.src_host as u64,
            c.src_device,
            c.src_x_in_bytes,
            c.src_y,
            c.src_pitch,
        )?;
        let (dst, dst_dev) = side(
            c.dst_memory_type,
            c.dst_host as u64,
            c.dst_device,
            c.dst_x_in_bytes,
            c.dst_y,
            c.dst_pitch,
        )?;
        Ok(CopyShape {
            dst,
            src,
            dst_dev,
            src_dev,
            width: c.width_in_bytes as u64,
            height: c.height as u64,
            dst_pitch: c.dst_pitch as u64,
            src_pitch: c.src_pitch as u64,
        })
    }

    /// Whether the copy moves nothing (a successful no-op).
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// Whether the rows are adjacent on both sides (one contiguous run).
    pub fn is_linear(&self) -> bool {
        self.height == 1 || (self.dst_pitch == self.width && self.src_pitch == self.width)
    }

    /// The bytes each side spans, (destination, source), for a non-empty copy; a pitch smaller
    /// than a row is `INVALID_VALUE` (`what` names the call in the log line).
    pub fn spans(&self, what: &str) -> CuResult<(u64, u64)> {
        if self.height > 1 && (self.dst_pitch < self.width || self.src_pitch < self.width) {
            warn(format_args!("{what}: pitch smaller than the row width"));
            return Err(CuError::INVALID_VALUE);
        }
        Ok((
            span(self.width, self.height, self.dst_pitch)?,
            span(self.width, self.height, self.src_pitch)?,
        ))
    }

    /// Checks both sides of a non-empty copy with the given spans: a device side must be a range
    /// `device_ok(ptr, len, write)` accepts, a host side must not be NULL; else `INVALID_VALUE`
    /// with a log line.
    pub fn check_sides(
        &self,
        what: &str,
        (dst_span, src_span): (u64, u64),
        mut device_ok: impl FnMut(u64, u64, bool) -> bool,
    ) -> CuResult {
        for (dev, ptr, len, write) in [
            (self.dst_dev, self.dst, dst_span, true),
            (self.src_dev, self.src, src_span, false),
        ] {
            if dev {
                device_range(what, ptr, len, write, device_ok(ptr, len, write))?;
            } else if ptr == 0 {
                warn(format_args!("{what}: NULL host pointer"));
                return Err(CuError::INVALID_VALUE);
            }
        }
        Ok(())
    }
}

/// A device range a copy or memset touches: `INVALID_VALUE` with a log line unless it is
/// `inside` one allocation (with write access, for a destination: `write`).
pub fn device_range(what: &str, ptr: u64, len: u64, write: bool, inside: bool) -> CuResult {
    if inside {
        return Ok(());
    }
    warn(format_args!(
        "{what}: device range {ptr:#x}+{len} is not inside one allocation{}",
        if write { " with write access" } else { "" }
    ));
    Err(CuError::INVALID_VALUE)
}

/// Bytes from the first to the last byte touched by `height` (at least 1) rows of `width` bytes
/// `pitch` apart; `INVALID_VALUE` if that overflows.
pub fn span(width: u64, height: u64, pitch: u64) -> CuResult<u64> {
    (height.max(1) - 1)
        .checked_mul(pitch)
        .and_then(|v| v.checked_add(width))
        .ok_or(CuError::INVALID_VALUE)
}

/// The bytes a non-empty memset of `height` rows of `width` elements of `elem` bytes, `pitch`
/// bytes apart, spans; a pitch smaller than a row is `INVALID_VALUE`.
pub fn memset_span(what: &str, width: u64, height: u64, pitch: u64, elem: u8) -> CuResult<u64> {
    let row = width
        .checked_mul(u64::from(elem))
        .ok_or(CuError::INVALID_VALUE)?;
    if height > 1 && pitch < row {
        debug(format_args!(
            "{what}: pitch {pitch} smaller than the row ({row} bytes)"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    span(row, height, pitch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_pitches() {
        let mut c = CopyShape::linear(true, false, 0x1000, 0x2000, 64);
        assert!(c.is_linear());
        assert_eq!(c.spans("t"), Ok((64, 64)));
        (c.height, c.dst_pitch, c.src_pitch) = (3, 100, 64);
        assert!(!c.is_linear());
        assert_eq!(c.spans("t"), Ok((264, 192)));
        c.src_pitch = 10;
        assert_eq!(c.spans("t"), Err(CuError::INVALID_VALUE));
        assert_eq!(memset_span("t", 4, 2, 8, 4), Err(CuError::INVALID_VALUE));
        assert_eq!(memset_span("t", 4, 2, 16, 4), Ok(32));
    }

    #[test]
    fn sides_are_checked() {
        let c = CopyShape::linear(true, false, 0x1000, 0, 8);
        let spans = c.spans("t").unwrap();
        assert_eq!(
            c.check_sides("t", spans, |_, _, _| true),
            Err(CuError::INVALID_VALUE),
            "NULL host source"
        );
        let c = CopyShape::linear(true, true, 0x1000, 0x2000, 8);
        assert_eq!(
            c.check_sides("t", spans, |p, _, w| w == (p == 0x1000)),
            Ok(())
        );
        assert_eq!(
            c.check_sides("t", spans, |_, _, w| !w),
            Err(CuError::INVALID_VALUE)
        );
    }
}
