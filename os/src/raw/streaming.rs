//! Copies with streaming (non-temporal) stores, for large copies whose destination no one reads
//! soon: the CPU device's copy engine (as a GPU's DMA writes memory without passing through the
//! CPU's caches), and the shim's read-out of large downloads from staging into the
//! application's buffer.
//!
//! A plain `memcpy` reads every destination line before it overwrites it (a read for ownership)
//! and fills the caches with the destination's bytes. Streaming stores skip both: for a
//! destination larger than the caches, they save a third of the memory traffic.
//!
//! Streaming stores are weakly ordered: [`copy_nonoverlapping`] ends with a store fence, so
//! whatever the caller publishes afterwards (a completion, a stream write, a futex word) is seen
//! after the bytes. SSE2 is part of the x86-64 baseline, so no feature detection is needed; other
//! architectures copy with `ptr::copy_nonoverlapping`.

/// Copies `len` bytes from `src` to `dst`: ordinary stores up to `dst`'s first cache-line
/// boundary and for the tail, streaming stores of whole lines between, then a store fence.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and the two ranges must
/// not overlap.
pub unsafe fn copy_nonoverlapping(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract, passed on.
    unsafe { imp::copy_nonoverlapping(dst, src, len) }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};

    /// Bytes moved per loop iteration: one cache line, as four 16-byte stores.
    const LINE: usize = 64;

    /// # Safety
    /// `src` valid for reads and `dst` for writes of `len` bytes; the ranges do not overlap.
    pub(super) unsafe fn copy_nonoverlapping(dst: *mut u8, src: *const u8, len: usize) {
        // Ordinary stores up to the destination's first cache-line boundary: streaming stores of
        // `__m128i` need a 16-byte aligned address, and four of them then fill whole lines, which
        // the write-combining buffers send out in one burst each.
        let head = dst.align_offset(LINE).min(len);
        // SAFETY: `head <= len`, within both ranges, which do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, head) };
        let body = (len - head) / LINE * LINE;
        let mut i = head;
        while i < head + body {
            // SAFETY: `i + LINE <= len`, so the four loads and stores stay within the ranges;
            // `dst + i` is line-aligned (`head` aligned it, and `LINE` keeps it); the loads
            // are unaligned loads.
            unsafe {
                let s = src.add(i) as *const __m128i;
                let d = dst.add(i) as *mut __m128i;
                let a = _mm_loadu_si128(s);
                let b = _mm_loadu_si128(s.add(1));
                let c = _mm_loadu_si128(s.add(2));
                let e = _mm_loadu_si128(s.add(3));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
            }
            i += LINE;
        }
        // SAFETY: the tail `i..len` lies within both ranges.
        unsafe { std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i) };
        // SAFETY: SSE is part of the x86-64 baseline; the fence touches no memory.
        unsafe { _mm_sfence() };
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    /// # Safety
    /// `src` valid for reads and `dst` for writes of `len` bytes; the ranges do not overlap.
    pub(super) unsafe fn copy_nonoverlapping(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: as the caller guarantees.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    }
}
