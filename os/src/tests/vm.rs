//! The address-space functions. Ranges are created by each test itself; `release` and the other
//! `unsafe fn`s are only called on those.

use std::os::fd::AsFd;

use crate::{
    advise_huge_pages, map_anonymous, map_anonymous_fixed, map_fd_fixed, map_shared_fixed,
    memfd_create, populate, protect, range_is_mapped, release, reserve_aligned, reserve_fixed,
    unmap_to_reserved, Mapping, OsError, Prot, PAGE,
};

/// A free range of `len` bytes: reserved, then released. Another thread may take it before the
/// caller does; callers retry on `Occupied`.
fn free_range(len: u64) -> u64 {
    let addr = reserve_aligned(len, PAGE).unwrap();
    // SAFETY: the reservation was just made by this test and nothing uses it.
    unsafe { release(addr, len) }.unwrap();
    addr
}

/// Runs `f` on free ranges until it does not report `Occupied` (a race with another thread).
fn on_free_range(len: u64, mut f: impl FnMut(u64) -> Result<bool, OsError>) -> u64 {
    for _ in 0..16 {
        let addr = free_range(len);
        match f(addr) {
            Ok(true) => return addr,
            Err(OsError::Occupied { .. }) => continue,
            other => panic!("{other:?}"),
        }
    }
    panic!("no free range")
}

#[test]
fn fixed_reservation_refuses_an_occupied_range() {
    let len = 16 * PAGE;
    let addr = reserve_aligned(len, PAGE).unwrap();
    assert!(range_is_mapped(addr, len));
    for (a, l) in [
        (addr, PAGE),
        (addr + 4 * PAGE, 2 * PAGE),
        (addr - PAGE, 2 * PAGE),
    ] {
        assert!(
            matches!(reserve_fixed(a, l), Err(OsError::Occupied { .. })),
            "{a:#x}+{l:#x}"
        );
    }
    assert!(range_is_mapped(addr, len));
    // SAFETY: reserved above by this test, unused.
    unsafe { release(addr, len) }.unwrap();
}

#[test]
fn fixed_reservation_takes_exactly_a_free_range() {
    let len = 8 * PAGE;
    // An odd length is rounded up to pages.
    let addr = on_free_range(len, |a| reserve_fixed(a, len - 100));
    assert!(range_is_mapped(addr, len));
    assert!(matches!(
        reserve_fixed(addr, PAGE),
        Err(OsError::Occupied { .. })
    ));
    // SAFETY: reserved above by this test, unused.
    unsafe { release(addr, len) }.unwrap();
    assert!(!range_is_mapped(addr, len));
}

#[test]
fn fixed_reservation_rejects_bad_ranges() {
    for (a, l) in [
        (0, PAGE),
        (PAGE + 1, PAGE),
        (PAGE, 0),
        (u64::MAX - PAGE + 1, PAGE),
    ] {
        assert!(
            matches!(reserve_fixed(a, l), Err(OsError::BadRange { .. })),
            "{a:#x}+{l:#x}"
        );
    }
    let fd = memfd_create("gpushare-test", PAGE, true).unwrap();
    assert!(matches!(
        map_shared_fixed(fd.as_fd(), 3, PAGE),
        Err(OsError::BadRange { .. })
    ));
}

#[test]
fn aligned_reservation() {
    let align = 2 << 20;
    let addr = reserve_aligned(3 * align, align).unwrap();
    assert_eq!(addr % align, 0);
    assert!(range_is_mapped(addr, 3 * align));
    // SAFETY: reserved above by this test, unused.
    unsafe { release(addr, 3 * align) }.unwrap();
    assert!(matches!(
        reserve_aligned(PAGE, 3 * PAGE),
        Err(OsError::BadAlignment(_))
    ));
    assert!(matches!(
        reserve_aligned(PAGE, 1024),
        Err(OsError::BadAlignment(1024))
    ));
    assert!(matches!(
        reserve_aligned(0, PAGE),
        Err(OsError::BadRange { .. })
    ));
}

#[test]
fn anonymous_memory_inside_a_reservation() {
    let len = 4 * PAGE;
    let base = reserve_aligned(len, PAGE).unwrap();
    let p = base as usize as *mut u64;
    // SAFETY: `[base, base + 2 pages)` is inside this test's reservation, unused.
    unsafe { map_anonymous_fixed(base, 2 * PAGE, Prot::ReadWrite) }.unwrap();
    // SAFETY: mapped read-write just above; aligned; nothing else uses it.
    unsafe {
        assert_eq!(p.read_volatile(), 0);
        p.write_volatile(42);
    }
    // SAFETY: the range is this test's; no reference into it exists.
    unsafe { protect(base, 2 * PAGE, Prot::Read) }.unwrap();
    // SAFETY: still mapped, now read-only: reading is allowed.
    assert_eq!(unsafe { p.read_volatile() }, 42);
    // SAFETY: as above.
    unsafe { unmap_to_reserved(base, 2 * PAGE) }.unwrap();
    assert!(range_is_mapped(base, len));
    // SAFETY: as above.
    unsafe { map_anonymous_fixed(base, PAGE, Prot::ReadWrite) }.unwrap();
    // SAFETY: mapped again, fresh: its old contents are gone.
    assert_eq!(unsafe { p.read_volatile() }, 0);
    // SAFETY: reserved above by this test, unused.
    unsafe { release(base, len) }.unwrap();
}

#[test]
fn populating_keeps_the_bytes_and_refuses_unwritable_ranges() {
    let len = 4 * PAGE;
    let base = reserve_aligned(len, PAGE).unwrap();
    let p = base as usize as *mut u64;
    // SAFETY: inside this test's reservation, unused.
    unsafe { map_anonymous_fixed(base, len, Prot::ReadWrite) }.unwrap();
    // SAFETY: mapped read-write just above; aligned; nothing else uses it.
    unsafe { p.write_volatile(42) };
    assert!(populate(base, len).unwrap(), "this kernel populates");
    // SAFETY: still mapped read-write.
    unsafe {
        assert_eq!(p.read_volatile(), 42);
        assert_eq!(p.add(PAGE as usize / 8).read_volatile(), 0);
    }
    // SAFETY: as above.
    unsafe { protect(base, len, Prot::Read) }.unwrap();
    assert!(
        !matches!(populate(base, len), Ok(true)),
        "populated a read-only range for writing"
    );
    assert!(populate(base, 0).is_err());
    // SAFETY: reserved above by this test, unused.
    unsafe { release(base, len) }.unwrap();
}

/// How many of the pages of `[addr, addr + len)` are resident (`mincore`).
fn resident_pages(addr: u64, len: u64) -> usize {
    let mut vec = vec![0u8; (len / PAGE) as usize];
    // SAFETY: mincore only reads the page tables of the range and writes `len / PAGE` bytes into
    // `vec`, which has exactly that many.
    let rc = unsafe {
        libc::mincore(
            addr as usize as *mut libc::c_void,
            len as usize,
            vec.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&v| v & 1 != 0).count()
}

/// The kernel's count of huge-page faults that fell back to small pages.
fn huge_page_fallbacks() -> u64 {
    let stat = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    stat.lines()
        .find_map(|l| l.strip_prefix("thp_fault_fallback "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn huge_page_advice_backs_an_aligned_range_at_its_first_touch() {
    const HUGE: u64 = 2 << 20;
    let len = 2 * HUGE;
    let base = reserve_aligned(len, HUGE).unwrap();
    let p = base as usize as *mut u8;
    // SAFETY: this test's reservation, unused.
    unsafe { map_anonymous_fixed(base, len, Prot::ReadWrite) }.unwrap();
    let advised = advise_huge_pages(base, len).unwrap();
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    assert_eq!(
        advised,
        thp.is_ok(),
        "a kernel with huge pages takes the advice"
    );
    let usable = thp.is_ok_and(|t| !t.contains("[never]"));
    let fallbacks = huge_page_fallbacks();
    // SAFETY: mapped read-write just above; nothing else uses it.
    unsafe { p.write_volatile(7) };
    if usable && huge_page_fallbacks() == fallbacks {
        assert_eq!(
            resident_pages(base, HUGE),
            (HUGE / PAGE) as usize,
            "one touch, 2 MiB"
        );
    }
    assert_eq!(
        resident_pages(base + HUGE, HUGE),
        0,
        "the untouched half commits nothing"
    );
    // SAFETY: still mapped read-write.
    unsafe {
        assert_eq!(p.read_volatile(), 7);
        assert_eq!(p.add(HUGE as usize - 1).read_volatile(), 0);
    }
    // SAFETY: reserved above by this test, unused.
    unsafe { release(base, len) }.unwrap();
    assert!(
        advise_huge_pages(free_range(HUGE), HUGE).is_err(),
        "an unmapped range"
    );
}

#[test]
fn file_mapped_at_a_fixed_address() {
    let fd = memfd_create("gpushare-test", 2 * PAGE, true).unwrap();
    let view = Mapping::map_fd(fd.as_fd(), 2 * PAGE as usize, false).unwrap();
    view.write(PAGE as usize, &7u64.to_ne_bytes()).unwrap();
    let base = reserve_aligned(4 * PAGE, PAGE).unwrap();
    // SAFETY: inside this test's reservation, unused; the file is sealed against shrinking.
    unsafe { map_fd_fixed(base + PAGE, 2 * PAGE, fd.as_fd(), 0, Prot::Read) }.unwrap();
    let p = (base + 2 * PAGE) as usize as *const u64;
    // SAFETY: mapped readable just above; aligned.
    assert_eq!(unsafe { p.read_volatile() }, 7);
    view.write(PAGE as usize, &9u64.to_ne_bytes()).unwrap();
    // SAFETY: as above; the mapping is shared, so it sees the new value.
    assert_eq!(unsafe { p.read_volatile() }, 9);
    // SAFETY: reserved above by this test, unused.
    unsafe { release(base, 4 * PAGE) }.unwrap();
}

#[test]
fn shared_alias_at_a_free_address() {
    let len = 2 * PAGE;
    let fd = memfd_create("gpushare-test", len, true).unwrap();
    let view = Mapping::map_fd(fd.as_fd(), len as usize, false).unwrap();
    let addr = on_free_range(len, |a| map_shared_fixed(fd.as_fd(), a, len));
    let p = addr as usize as *mut u8;
    // SAFETY: mapped read-write at `addr` just above; nothing else uses this alias.
    unsafe { p.add(5).write_volatile(b'q') };
    let mut b = [0u8; 1];
    view.read(5, &mut b).unwrap();
    assert_eq!(b[0], b'q');
    assert!(matches!(
        map_shared_fixed(fd.as_fd(), addr + PAGE, PAGE),
        Err(OsError::Occupied { .. })
    ));
    // SAFETY: the alias created above, no longer used.
    unsafe { release(addr, len) }.unwrap();
}

#[test]
fn private_table_and_mapped_ranges() {
    let table = map_anonymous(3 * PAGE + 5).unwrap();
    assert!(range_is_mapped(table, 3 * PAGE + 5));
    let p = table as usize as *mut u8;
    // SAFETY: a fresh read-write mapping of this test; the last byte is inside it.
    unsafe {
        assert_eq!(p.add(3 * PAGE as usize + 4).read_volatile(), 0);
        p.write_volatile(1);
    }
    // SAFETY: created above by this test, unused.
    unsafe { release(table, 3 * PAGE + 5) }.unwrap();
    let local = 0u64;
    assert!(range_is_mapped(&raw const local as u64, 8));
    // An empty range is mapped wherever it is.
    assert!(range_is_mapped(PAGE * 3, 0));
    assert!(!range_is_mapped(u64::MAX - 3, 8));
    assert!(matches!(map_anonymous(0), Err(OsError::BadRange { .. })));
}
