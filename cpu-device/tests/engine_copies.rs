//! The copy engine's large copies (`exec::bulk_copy`: streaming stores) through the entry points:
//! rows from pinned memory, from a staged pageable buffer, within the device and into pinned
//! memory land exactly at odd offsets, overlapping or not, and no byte around them changes.

mod common;
mod cuda;

use common::*;

/// Large rows from pinned memory, from a staged pageable buffer and within the device are the copy
/// engine's (streaming stores, `exec::bulk_copy`): at odd offsets on both sides, disjoint and
/// overlapping, every byte lands and none around the copy changes.
#[test]
fn large_engine_copies_land_exactly_at_odd_offsets() {
    setup();
    let n = 3 << 20;
    let (a, b, s) = (alloc(n), alloc(n), new_stream(0));
    let pinned = alloc_pinned(n);
    let pattern = |seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(13) ^ (i >> 12) as u8 ^ seed)
            .collect()
    };
    let (src, pageable) = (pattern(1), pattern(2));
    let len = (1 << 20) + 77;
    // The model: what each allocation must hold afterwards.
    let mut want_a = vec![0x5au8; n];
    want_a[5..5 + 2 * len].copy_from_slice(&src[3..3 + 2 * len]);
    let mut want_b = vec![0x5au8; n];
    want_b[1..1 + len].copy_from_slice(&want_a[5..5 + len]);
    want_a.copy_within(5..5 + len, 5 + 4099);
    want_b[len + 100..2 * len + 100].copy_from_slice(&pageable[7..7 + len]);
    // SAFETY: `pinned` holds n bytes; every range below lies within its buffer or allocation.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), pinned, n);
        ok(cuda::cuMemsetD8_v2(a, 0x5a, n));
        ok(cuda::cuMemsetD8_v2(b, 0x5a, n));
        ok(cuda::cuMemcpyHtoD_v2(a + 5, pinned.add(3).cast(), 2 * len));
        ok(cuda::cuMemcpyDtoDAsync_v2(b + 1, a + 5, len, s));
        ok(cuda::cuMemcpyDtoDAsync_v2(a + 5 + 4099, a + 5, len, s));
        let staged = pageable[7..].as_ptr().cast();
        ok(cuda::cuMemcpyHtoDAsync_v2(
            b + len as u64 + 100,
            staged,
            len,
            s,
        ));
        ok(cuda::cuStreamSynchronize(s));
    }
    for (dev, want, name) in [(a, &want_a, "a"), (b, &want_b, "b")] {
        let mut got = vec![0u8; n];
        // SAFETY: `got` holds n bytes.
        ok(unsafe { cuda::cuMemcpyDtoH_v2(got.as_mut_ptr().cast(), dev, n) });
        let first = got.iter().zip(want.iter()).position(|(g, w)| g != w);
        assert_eq!(first, None, "allocation {name}: first differing byte");
    }
    // SAFETY: valid stream.
    ok(unsafe { cuda::cuStreamDestroy_v2(s) });
}

/// A download of more than `bulk_copy::HOST_STREAMING_MIN` into page-locked memory streams too:
/// at odd offsets every byte lands and the bytes around it keep theirs.
#[test]
fn large_downloads_into_pinned_memory_land_exactly() {
    setup();
    let n = (4 << 20) + 4096;
    let len = (4 << 20) + 33;
    let (dev, s) = (alloc(n), new_stream(0));
    let pinned = alloc_pinned(n);
    let src: Vec<u8> = (0..n)
        .map(|i| (i as u8).wrapping_mul(7) ^ (i >> 9) as u8)
        .collect();
    // SAFETY: `pinned` holds n bytes; the copies stay within it and the allocation.
    let got = unsafe {
        std::ptr::write_bytes(pinned, 0xc3, n);
        ok(cuda::cuMemcpyHtoD_v2(dev, src.as_ptr().cast(), n));
        ok(cuda::cuMemcpyDtoHAsync_v2(
            pinned.add(5).cast(),
            dev + 11,
            len,
            s,
        ));
        ok(cuda::cuStreamSynchronize(s));
        std::slice::from_raw_parts(pinned, n)
    };
    assert_eq!(got[..5], [0xc3; 5], "bytes before the download changed");
    let first = (0..len).find(|&i| got[5 + i] != src[11 + i]);
    assert_eq!(first, None, "first differing byte of the download");
    assert!(
        got[5 + len..].iter().all(|&b| b == 0xc3),
        "bytes after the download changed"
    );
    // SAFETY: valid stream.
    ok(unsafe { cuda::cuStreamDestroy_v2(s) });
}
