//! The copy engine's bulk copies: rows of [`STREAMING_MIN`] bytes and more are written with
//! non-temporal (streaming) stores, as a GPU's DMA engine writes memory without passing through
//! the CPU's caches.
//!
//! A plain `memcpy` of a large buffer reads every destination line before it overwrites it (a
//! read for ownership) and fills the caches with bytes no one reads soon. On the 2-vCPU
//! development host, one thread copied 64 MiB at 9.6–10.6 GB/s with `memcpy` and at 13.5–15.3
//! GB/s with streaming stores; from a cache-resident staging slot into device memory, at 12
//! against 18 GB/s (docs/benchmarks-transfers.md, "Streaming stores").
//!
//! Which copies are the engine's ([`is_engine_copy`]): those a GPU does by DMA. Into device
//! memory, copies from page-locked host memory, from a driver staging buffer, or within the
//! device. Into page-locked host memory, rows of [`HOST_STREAMING_MIN`] and more only: a smaller
//! download is likely read by the CPU right away, and may be a staging slot whose reader is
//! another core (a streamed download's 1 MiB pieces), so it should stay in the cache. A copy
//! from or to pageable memory stays a CPU copy with ordinary stores, as CUDA's own copy of
//! pageable memory through its staging buffers is; so pinned copies keep their edge over pageable
//! ones, as on a GPU.
//!
//! The streaming copy itself is `gpushare_os::raw::streaming` (the shim's large downloads use it
//! too); it ends with a store fence, so whatever the caller publishes afterwards (an operation's
//! completion, a stream write, a futex word) is seen after the bytes.

use super::timing::CopyKind;

/// Rows of at least this many bytes are copied with streaming stores.
pub const STREAMING_MIN: usize = 256 << 10;

/// Rows into page-locked host memory stream from this many bytes on: more than a core's cache
/// keeps for the CPU that reads them next.
pub const HOST_STREAMING_MIN: u64 = 4 << 20;

/// Whether a copy of `kind` with rows of `width` bytes is the copy engine's (written with
/// [`copy`]); `pinned`: its host side is page-locked (always true within the device); `staged`:
/// its source was staged into a driver buffer at submission.
pub fn is_engine_copy(kind: CopyKind, pinned: bool, staged: bool, width: u64) -> bool {
    match kind {
        CopyKind::H2D => pinned || staged,
        CopyKind::D2D => true,
        CopyKind::D2H => pinned && width >= HOST_STREAMING_MIN,
        CopyKind::H2H => false,
    }
}

/// Copies `len` bytes from `src` to `dst` (which may overlap: overlapping ranges, and rows shorter
/// than [`STREAMING_MIN`], are copied with `ptr::copy`).
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    let disjoint = (dst as usize).abs_diff(src as usize) >= len;
    if len < STREAMING_MIN || !disjoint {
        // SAFETY: the caller guarantees both ranges; `ptr::copy` tolerates overlap.
        unsafe { std::ptr::copy(src, dst, len) };
        return;
    }
    // SAFETY: the caller guarantees both ranges, and they are disjoint (checked above).
    unsafe { gpushare_os::raw::streaming::copy_nonoverlapping(dst, src, len) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Every misalignment of source and destination, lengths around the threshold and around a
    /// line: the destination holds exactly the source's bytes, and nothing outside it changes.
    #[test]
    fn streaming_copies_match_the_source_at_any_alignment() {
        let lens = [
            STREAMING_MIN,
            STREAMING_MIN + 1,
            STREAMING_MIN + 63,
            STREAMING_MIN + 64 + 15,
            3 * STREAMING_MIN + 17,
        ];
        for &len in &lens {
            for (so, dof) in [(0, 0), (1, 0), (0, 1), (7, 13), (15, 15), (16, 3), (63, 64)] {
                let src = pattern(len + 64, 5);
                let mut dst = vec![0xEEu8; len + 128];
                // SAFETY: both buffers hold `len` bytes past the offsets; they are distinct.
                unsafe { copy(dst.as_mut_ptr().add(dof), src.as_ptr().add(so), len) };
                assert_eq!(
                    &dst[dof..dof + len],
                    &src[so..so + len],
                    "len {len} at {so}/{dof}"
                );
                assert!(
                    dst[..dof].iter().all(|&b| b == 0xEE),
                    "bytes before the copy changed"
                );
                assert!(
                    dst[dof + len..].iter().all(|&b| b == 0xEE),
                    "bytes after the copy changed"
                );
            }
        }
    }

    /// Overlapping ranges (a device-to-device copy within one allocation) keep `memmove`'s
    /// meaning in both directions.
    #[test]
    fn overlapping_copies_keep_memmove_semantics() {
        let len = STREAMING_MIN + 100;
        for shift in [1usize, 64, 4096] {
            let orig = pattern(len + shift, 9);
            let mut fwd = orig.clone();
            let p = fwd.as_mut_ptr();
            // SAFETY: both ranges lie within `fwd`.
            unsafe { copy(p.add(shift), p, len) };
            assert_eq!(&fwd[shift..shift + len], &orig[..len]);
            let mut back = orig.clone();
            let p = back.as_mut_ptr();
            // SAFETY: both ranges lie within `back`.
            unsafe { copy(p, p.add(shift), len) };
            assert_eq!(&back[..len], &orig[shift..shift + len]);
        }
    }

    /// Copies the engine makes (the module's rules): pageable sides never, small downloads never.
    #[test]
    fn engine_copies_are_the_dma_kinds() {
        let big = HOST_STREAMING_MIN;
        assert!(is_engine_copy(CopyKind::H2D, true, false, 1));
        assert!(is_engine_copy(CopyKind::H2D, false, true, 1));
        assert!(!is_engine_copy(CopyKind::H2D, false, false, big));
        assert!(is_engine_copy(CopyKind::D2D, true, false, 1));
        assert!(is_engine_copy(CopyKind::D2H, true, false, big));
        assert!(!is_engine_copy(CopyKind::D2H, true, false, big - 1));
        assert!(!is_engine_copy(CopyKind::D2H, false, false, big));
        assert!(!is_engine_copy(CopyKind::H2H, true, false, big));
    }

    /// Short rows go through `ptr::copy` and are exact too.
    #[test]
    fn short_rows_are_copied_exactly() {
        for len in [0usize, 1, 15, 64, 4096, STREAMING_MIN - 1] {
            let src = pattern(len, 1);
            let mut dst = vec![0u8; len];
            // SAFETY: both buffers hold `len` bytes.
            unsafe { copy(dst.as_mut_ptr(), src.as_ptr(), len) };
            assert_eq!(dst, src);
        }
    }
}
