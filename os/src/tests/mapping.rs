use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::{memfd_create, Mapping, OsError};

#[test]
fn copies_are_bounds_checked() {
    let fd = memfd_create("gpushare-test", 8192, true).unwrap();
    let map = Mapping::map_fd(fd.as_fd(), 8192, true).unwrap();
    assert_eq!(map.len(), 8192);
    assert!(!map.is_empty());
    map.write(100, b"hello").unwrap();
    let mut out = [0u8; 5];
    map.read(100, &mut out).unwrap();
    assert_eq!(&out, b"hello");
    // The last byte is reachable, one past it is not.
    map.write(8191, b"z").unwrap();
    assert!(matches!(
        map.write(8190, b"abc"),
        Err(OsError::OutOfBounds {
            offset: 8190,
            len: 3,
            size: 8192
        })
    ));
    assert!(matches!(
        map.read(usize::MAX, &mut out),
        Err(OsError::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.fill(8000, 193, 0),
        Err(OsError::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.ptr_at(1, usize::MAX),
        Err(OsError::OutOfBounds { .. })
    ));
    assert_eq!(map.ptr_at(16, 16).unwrap(), map.as_ptr().wrapping_add(16));
    map.fill(100, 3, b'x').unwrap();
    map.read(100, &mut out).unwrap();
    assert_eq!(&out, b"xxxlo");
    // Nothing out of bounds was written.
    let mut all = vec![0u8; 8192];
    map.read(0, &mut all).unwrap();
    assert_eq!(all.iter().filter(|&&b| b != 0).count(), 6);
}

#[test]
fn second_mapping_of_the_file_sees_the_same_bytes() {
    let fd = memfd_create("gpushare-test", 4096, true).unwrap();
    let a = Mapping::map_fd(fd.as_fd(), 4096, false).unwrap();
    let b = Mapping::map_fd(fd.as_fd(), 4096, true).unwrap();
    a.write(10, b"shared").unwrap();
    let mut out = [0u8; 6];
    b.read(10, &mut out).unwrap();
    assert_eq!(&out, b"shared");
}

#[test]
fn atomic_words_are_checked_and_keep_the_mapping_alive() {
    let map = Arc::new(Mapping::anonymous(4096).unwrap());
    assert!(matches!(
        map.atomic::<AtomicU64>(4),
        Err(OsError::Misaligned {
            offset: 4,
            align: 8
        })
    ));
    assert!(matches!(
        map.atomic_ref::<AtomicU32>(2),
        Err(OsError::Misaligned { .. })
    ));
    assert!(matches!(
        map.atomic::<AtomicU64>(4096),
        Err(OsError::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.atomic_ref::<AtomicU32>(4094),
        Err(OsError::OutOfBounds { .. })
    ));
    let w = map.atomic::<AtomicU64>(8).unwrap();
    w.store(7, Ordering::SeqCst);
    let mut b = [0u8; 8];
    map.read(8, &mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), 7);
    let r = map.atomic_ref::<AtomicU32>(4092).unwrap();
    r.store(0xdead_beef, Ordering::SeqCst);
    let mut b = [0u8; 4];
    map.read(4092, &mut b).unwrap();
    assert_eq!(u32::from_le_bytes(b), 0xdead_beef);
    let w2 = w.clone();
    drop(map);
    // The handles still reach the (now otherwise unreferenced) mapping.
    assert_eq!(w2.fetch_add(1, Ordering::SeqCst), 7);
    assert_eq!(w.load(Ordering::SeqCst), 8);
}

#[test]
fn zero_length_mappings_are_refused() {
    let fd = memfd_create("gpushare-test", 4096, false).unwrap();
    assert!(matches!(
        Mapping::map_fd(fd.as_fd(), 0, false),
        Err(OsError::ZeroLength)
    ));
    assert!(matches!(Mapping::anonymous(0), Err(OsError::ZeroLength)));
}

/// Streaming reads (`raw::streaming`): bounds-checked like `read`, and exact at every alignment
/// of source and destination, for lengths around a cache line and beyond, with nothing outside
/// the destination touched.
#[test]
fn streaming_reads_are_exact_and_bounds_checked() {
    let size = 1 << 20;
    let fd = memfd_create("gpushare-test", size as u64, true).unwrap();
    let map = Mapping::map_fd(fd.as_fd(), size, true).unwrap();
    let pattern: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    map.write(0, &pattern).unwrap();
    for len in [0, 1, 15, 63, 64, 65, 200, 4096 + 17, 300_000] {
        for (from, to) in [(0, 0), (1, 0), (0, 1), (7, 13), (16, 3), (63, 64)] {
            let mut out = vec![0xEEu8; len + 128];
            map.read_streaming(from, &mut out[to..to + len]).unwrap();
            assert_eq!(&out[to..to + len], &pattern[from..from + len], "len {len}");
            assert!(out[..to].iter().all(|&b| b == 0xEE), "before, len {len}");
            assert!(
                out[to + len..].iter().all(|&b| b == 0xEE),
                "after, len {len}"
            );
        }
    }
    let mut out = [0u8; 2];
    assert!(matches!(
        map.read_streaming(size - 1, &mut out),
        Err(OsError::OutOfBounds { .. })
    ));
}
