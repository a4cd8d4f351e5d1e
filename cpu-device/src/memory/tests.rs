//! Unit tests of device memory: arena, permissions, allocation and accounting, guard gaps, host
//! memory and registration, VMM.

use gpushare_ptx::GlobalMemory;

use super::*;
use crate::profile::DeviceProfile;

fn mem() -> DeviceMemory {
    DeviceMemory::new(&DeviceProfile::small()).unwrap()
}

fn can_read(m: &DeviceMemory, addr: u64, len: u64) -> bool {
    m.translate(addr, len, false).is_ok()
}

fn can_write(m: &DeviceMemory, addr: u64, len: u64) -> bool {
    m.translate(addr, len, true).is_ok()
}

#[test]
fn alloc_free_and_accounting() {
    let m = mem();
    assert_eq!(m.used_bytes(), 0);
    assert_eq!(m.free_bytes(), 1 << 30);
    let p = m.alloc(7, 1000).unwrap();
    assert_eq!(p % 256, 0);
    assert_eq!(m.used_bytes(), PAGE, "charged in whole pages");
    assert_eq!(m.classify(p), Some(MemoryKind::Device));
    assert!(can_write(&m, p, 8) && can_read(&m, p + 992, 8));
    let host = m.translate(p + 16, 4, true).unwrap();
    // SAFETY: translate vouched for 4 writable bytes.
    unsafe { (host as *mut u32).write(0xabcd) };
    let back = m.device_range(p + 16, 4, false).unwrap();
    // SAFETY: device_range vouched for 4 readable bytes.
    assert_eq!(unsafe { (back as *const u32).read() }, 0xabcd);

    assert_eq!(
        m.free(p + 16),
        Err(CuError::INVALID_VALUE),
        "interior pointer"
    );
    m.free(p).unwrap();
    assert_eq!(m.used_bytes(), 0);
    assert!(!can_read(&m, p, 4), "use after free faults");
    assert_eq!(m.free(p), Err(CuError::INVALID_VALUE), "double free");
    assert_eq!(m.free(0x1234), Err(CuError::INVALID_VALUE));
}

#[test]
fn zero_and_oversized_allocations() {
    let m = mem();
    assert_eq!(m.alloc(1, 0), Err(CuError::INVALID_VALUE));
    assert_eq!(m.alloc(1, (1 << 30) + 1), Err(CuError::OUT_OF_MEMORY));
    assert_eq!(m.alloc(1, 1 << 62), Err(CuError::OUT_OF_MEMORY));
    assert_eq!(m.alloc(1, u64::MAX), Err(CuError::OUT_OF_MEMORY));
    assert_eq!(m.used_bytes(), 0);
    // The whole device fits exactly once.
    let all = m.alloc(1, 1 << 30).unwrap();
    assert_eq!(all % GRANULARITY, 0, "large allocations are 2 MiB aligned");
    assert_eq!(m.free_bytes(), 0);
    assert_eq!(m.alloc(1, 1), Err(CuError::OUT_OF_MEMORY));
    m.free(all).unwrap();
    assert_eq!(m.free_bytes(), 1 << 30);
}

#[test]
fn guard_gaps_and_ranges() {
    let m = mem();
    let a = m.alloc(1, 4096).unwrap();
    let b = m.alloc(1, 4096).unwrap();
    assert!(
        b >= a + 4096 + GUARD || a >= b + 4096 + GUARD,
        "gap between allocations"
    );
    assert!(can_write(&m, a + 4092, 4));
    assert!(!can_read(&m, a + 4096, 1), "the guard gap faults");
    assert!(
        !can_read(&m, a + 4094, 4),
        "an access straddling into the gap faults"
    );
    assert!(m.device_range(a, 4096, true).is_ok());
    assert_eq!(
        m.device_range(a + 4000, 200, false),
        Err(CuError::INVALID_VALUE)
    );
    assert_eq!(
        m.device_range(a + 4096, 1, false),
        Err(CuError::INVALID_VALUE)
    );
    assert_eq!(m.address_range(a + 100), Ok((a, 4096)));
    assert_eq!(m.address_range(a + 4096), Err(CuError::NOT_FOUND));
    assert_eq!(m.address_range(0x1000), Err(CuError::NOT_FOUND));
    // Byte-precise bounds for copies even inside the last page.
    let c = m.alloc(1, 100).unwrap();
    assert!(m.device_range(c, 100, true).is_ok());
    assert_eq!(m.device_range(c + 96, 8, true), Err(CuError::INVALID_VALUE));
    assert_eq!(
        m.classify(a + 4096),
        Some(MemoryKind::Device),
        "arena gaps are device side"
    );
    assert_eq!(m.classify(0x1000), None);
}

#[test]
fn release_context_frees_only_its_memory() {
    let m = mem();
    let a = m.alloc(1, 1 << 20).unwrap();
    let b = m.alloc(2, 1 << 20).unwrap();
    let h = m.host_alloc(1, 4096, 0).unwrap();
    let mut buf = vec![0u8; 8192];
    m.register(1, buf.as_mut_ptr() as u64, 100, 0).unwrap();
    m.release_context(1);
    assert_eq!(m.used_bytes(), 1 << 20);
    assert_eq!(m.free(a), Err(CuError::INVALID_VALUE));
    assert_eq!(m.host_free(h), Err(CuError::INVALID_VALUE));
    assert!(
        m.pointer_info(buf.as_ptr() as u64).is_none(),
        "registration dropped"
    );
    m.free(b).unwrap();
}

#[test]
fn host_allocations() {
    let m = mem();
    let h = m.host_alloc(1, 10_000, 0x3).unwrap();
    assert_eq!(m.used_bytes(), 0, "host memory is not device memory");
    assert_eq!(m.classify(h + 5), Some(MemoryKind::Host));
    assert!(m.host_is_pinned((h + 8) as *const u8, 1000));
    assert!(
        !m.host_is_pinned((h + 9_000) as *const u8, 2000),
        "runs past the end"
    );
    assert_eq!(
        m.classify(h + 12_288),
        Some(MemoryKind::Device),
        "its guard gap is not host memory"
    );
    assert_eq!(m.host_flags(h + 100), Ok(0x3));
    assert_eq!(m.host_device_pointer(h + 100), Ok(h + 100));
    assert!(can_write(&m, h, 4), "kernels reach mapped host memory");
    assert_eq!(
        m.free(h),
        Err(CuError::INVALID_VALUE),
        "cuMemFree of host memory"
    );
    assert_eq!(m.host_free(h + 1), Err(CuError::INVALID_VALUE));
    assert_eq!(m.host_alloc(1, 16, 0x8), Err(CuError::INVALID_VALUE));
    let d = m.alloc(1, 64).unwrap();
    assert_eq!(
        m.host_free(d),
        Err(CuError::INVALID_VALUE),
        "cuMemFreeHost of device memory"
    );
    assert!(!m.host_is_pinned(d as *const u8, 8));
    assert_eq!(m.host_flags(d), Err(CuError::INVALID_VALUE));
    let info = m.pointer_info(h + 1).unwrap();
    assert_eq!(info.kind, MemoryKind::Host);
    assert!(info.host_accessible);
    m.host_free(h).unwrap();
    assert!(m.pointer_info(h).is_none());
}

#[test]
fn host_registration() {
    let m = mem();
    let mut buf = vec![0u32; 4096];
    let p = buf.as_mut_ptr() as u64 + 12; // deliberately not page aligned
    let len = 4 * 1000;
    m.register(3, p, len, 0x2).unwrap();
    assert_eq!(
        m.register(3, p, len, 0x2),
        Err(CuError::HOST_MEMORY_ALREADY_REGISTERED)
    );
    assert_eq!(
        m.register(3, p + 100, 8, 0),
        Err(CuError::HOST_MEMORY_ALREADY_REGISTERED)
    );
    assert_eq!(m.classify(p), Some(MemoryKind::Host));
    assert!(m.host_is_pinned(p as *const u8, len as usize));
    assert_eq!(m.host_device_pointer(p), Ok(p));
    assert!(
        can_write(&m, p + 40, 4),
        "slow path admits registered memory"
    );
    assert_eq!(m.device_range(p, len, true).map(|x| x as u64), Ok(p));
    let info = m.pointer_info(p + 8).unwrap();
    assert_eq!(
        (info.kind, info.range_start, info.range_size),
        (MemoryKind::Host, p, len)
    );
    assert_eq!(
        m.unregister(p + 4),
        Err(CuError::HOST_MEMORY_NOT_REGISTERED)
    );
    m.unregister(p).unwrap();
    assert_eq!(m.unregister(p), Err(CuError::HOST_MEMORY_NOT_REGISTERED));
    assert!(!can_read(&m, p, 4));
    assert!(m.pointer_info(p).is_none());

    // Read-only registration: kernel writes fault, copies into it are refused.
    m.register(3, p, len, 0x8).unwrap();
    assert!(can_read(&m, p, 4));
    assert!(!can_write(&m, p, 4));
    assert_eq!(m.device_range(p, 4, true), Err(CuError::INVALID_VALUE));
    m.unregister(p).unwrap();

    assert_eq!(m.register(3, p, 0, 0), Err(CuError::INVALID_VALUE));
    assert_eq!(m.register(3, 0, 8, 0), Err(CuError::INVALID_VALUE));
    assert_eq!(
        m.register(3, 0x1000, 8, 0),
        Err(CuError::INVALID_VALUE),
        "unmapped memory"
    );
    assert_eq!(
        m.register(3, p, 8, 0x4),
        Err(CuError::NOT_SUPPORTED),
        "IOMEMORY"
    );
    let h = m.host_alloc(3, 4096, 0).unwrap();
    assert_eq!(
        m.register(3, h, 16, 0),
        Err(CuError::HOST_MEMORY_ALREADY_REGISTERED)
    );
    let d = m.alloc(3, 4096).unwrap();
    assert_eq!(m.register(3, d, 16, 0), Err(CuError::INVALID_VALUE));
    drop(buf);
}

#[test]
fn managed_memory_is_host_accessible() {
    let m = mem();
    let p = m.alloc_managed(1, 256).unwrap();
    // SAFETY: managed memory is plain read-write host memory at the device address.
    unsafe { (p as *mut u64).write(42) };
    let info = m.pointer_info(p).unwrap();
    assert!(info.managed && info.host_accessible && !info.legacy_ipc_capable);
    assert_eq!(m.used_bytes(), PAGE);
    m.free(p).unwrap();
}

/// Whether the kernel may back the mapping that holds `addr` with huge pages (`THPeligible` in
/// `/proc/self/smaps`).
fn huge_page_eligible(addr: u64) -> bool {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix("THPeligible:") {
                return v.trim() == "1";
            }
        }
    }
    false
}

#[test]
fn large_allocations_ask_for_huge_pages() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    if !thp.is_ok_and(|t| t.contains("[madvise]")) {
        return; // nothing to see: huge pages are off, or given to every mapping unasked
    }
    let m = mem();
    let device = m.alloc(1, 2 * GRANULARITY).unwrap();
    let host = m.host_alloc(1, GRANULARITY, 0).unwrap();
    let managed = m.alloc_managed(1, 3 * GRANULARITY).unwrap();
    let small = m.alloc(1, GRANULARITY / 2).unwrap();
    assert!(huge_page_eligible(device), "device memory");
    assert!(huge_page_eligible(host), "page-locked memory");
    assert!(huge_page_eligible(managed), "managed memory");
    assert!(
        !huge_page_eligible(small),
        "below 2 MiB there is no huge page to take"
    );
    for p in [device, managed, small] {
        m.free(p).unwrap();
    }
    m.host_free(host).unwrap();
}

fn vmm_setup(m: &DeviceMemory, size: u64, types: u32) -> (u64, u64) {
    let va = m.reserve(1, size, 0, 0).unwrap();
    let h = m.create(size, types).unwrap();
    m.map(1, va, size, 0, h).unwrap();
    (va, h)
}

#[test]
fn vmm_map_access_unmap() {
    let m = mem();
    let g = GRANULARITY;
    let (va, h) = vmm_setup(&m, 2 * g, 0);
    assert_eq!(va % g, 0);
    assert_eq!(m.used_bytes(), 2 * g, "physical memory is charged");
    assert!(!can_read(&m, va, 4), "no access before cuMemSetAccess");
    assert_eq!(m.device_range(va, 4, false), Err(CuError::INVALID_VALUE));
    assert_eq!(m.access(va), Ok(PERM_NONE));
    m.set_access(va, 2 * g, PERM_RW).unwrap();
    assert_eq!(m.access(va + g), Ok(PERM_RW));
    assert!(can_write(&m, va + g - 2, 4), "across the two granules");
    let p = m.device_range(va + g - 8, 16, true).unwrap();
    // SAFETY: device_range vouched for 16 writable bytes.
    unsafe { std::ptr::write_bytes(p, 0x5a, 16) };
    let info = m.pointer_info(va + 5).unwrap();
    assert_eq!(info.kind, MemoryKind::Device);
    assert_eq!((info.range_start, info.range_size), (va, 2 * g));
    assert_eq!((info.mapping_start, info.mapping_size), (va, 2 * g));
    assert_eq!(m.address_range(va + 5), Ok((va, 2 * g)));

    m.set_access(va, 2 * g, PERM_READ).unwrap();
    assert!(can_read(&m, va + g - 8, 16));
    assert!(
        !can_write(&m, va, 4),
        "kernel writes to a read-only mapping fault"
    );
    assert_eq!(m.device_range(va, 4, true), Err(CuError::INVALID_VALUE));
    let r = m.device_range(va + g - 8, 16, false).unwrap();
    // SAFETY: 16 readable bytes, written above.
    assert_eq!(unsafe { *r.add(15) }, 0x5a);

    assert_eq!(
        m.address_free(va, 2 * g),
        Err(CuError::INVALID_VALUE),
        "still mapped"
    );
    assert_eq!(
        m.unmap(va, g),
        Err(CuError::INVALID_VALUE),
        "part of a mapping"
    );
    m.unmap(va, 2 * g).unwrap();
    assert!(!can_read(&m, va, 4));
    assert_eq!(m.used_bytes(), 2 * g, "the handle is still alive");
    m.release(h).unwrap();
    assert_eq!(m.used_bytes(), 0);
    assert_eq!(m.physical_count(), 0);
    assert_eq!(m.release(h), Err(CuError::INVALID_VALUE));
    m.address_free(va, 2 * g).unwrap();
    assert_eq!(m.address_free(va, 2 * g), Err(CuError::INVALID_VALUE));
}

#[test]
fn vmm_argument_checks() {
    let m = mem();
    let g = GRANULARITY;
    assert_eq!(m.create(g + 4096, 0), Err(CuError::INVALID_VALUE));
    assert_eq!(m.create(0, 0), Err(CuError::INVALID_VALUE));
    assert_eq!(m.create(2 << 30, 0), Err(CuError::OUT_OF_MEMORY));
    assert_eq!(m.reserve(1, g + 1, 0, 0), Err(CuError::INVALID_VALUE));
    assert_eq!(m.reserve(1, g, 3 << 20, 0), Err(CuError::INVALID_VALUE));
    let va = m.reserve(1, 4 * g, 8 * g, 0).unwrap();
    assert_eq!(va % (8 * g), 0, "alignment honoured");
    let h = m.create(2 * g, 0).unwrap();
    assert_eq!(
        m.map(1, va, 2 * g, g, h),
        Err(CuError::INVALID_VALUE),
        "offset"
    );
    assert_eq!(
        m.map(1, va, g + 4096, 0, h),
        Err(CuError::INVALID_VALUE),
        "size"
    );
    assert_eq!(
        m.map(1, va, 4 * g, 0, h),
        Err(CuError::INVALID_VALUE),
        "larger than the handle"
    );
    assert_eq!(
        m.map(1, va + 3 * g, 2 * g, 0, h),
        Err(CuError::INVALID_VALUE),
        "past the reservation"
    );
    assert_eq!(
        m.map(1, va, g, 0, 0xdead),
        Err(CuError::INVALID_VALUE),
        "bad handle"
    );
    m.map(1, va, 2 * g, 0, h).unwrap();
    assert_eq!(
        m.map(1, va + g, g, 0, h),
        Err(CuError::INVALID_VALUE),
        "overlap"
    );
    m.map(1, va + 2 * g, g, 0, h).unwrap();
    assert_eq!(
        m.set_access(va, 4 * g, PERM_RW),
        Err(CuError::INVALID_VALUE),
        "not fully mapped"
    );
    m.set_access(va, 3 * g, PERM_RW).unwrap();
    // Both mappings show the same memory.
    let a = m.device_range(va, 8, true).unwrap();
    // SAFETY: 8 writable bytes.
    unsafe { (a as *mut u64).write(77) };
    let b = m.device_range(va + 2 * g, 8, false).unwrap();
    // SAFETY: 8 readable bytes of the same physical page.
    assert_eq!(unsafe { (b as *const u64).read() }, 77);
    assert_eq!(
        m.export_fd(h).err(),
        Some(CuError::INVALID_VALUE),
        "not exportable"
    );
    m.unmap(va, 3 * g).unwrap();
    m.release(h).unwrap();
    assert_eq!(m.physical_count(), 0);
    m.address_free(va, 4 * g).unwrap();
    assert_eq!(m.used_bytes(), 0);
}

#[test]
fn vmm_handle_references() {
    let m = mem();
    let g = GRANULARITY;
    let (va, h) = vmm_setup(&m, g, 0);
    m.release(h).unwrap();
    assert_eq!(m.physical_count(), 1, "mapped memory outlives its handle");
    assert_eq!(m.used_bytes(), g);
    let again = m.retain_handle(va + 4096).unwrap();
    assert_eq!(again, h, "the handle that was mapped");
    m.release(again).unwrap();
    assert_eq!(
        m.retain_handle(va + g),
        Err(CuError::INVALID_VALUE),
        "past the mapping"
    );
    m.unmap(va, g).unwrap();
    assert_eq!(m.physical_count(), 0);
    assert_eq!(m.used_bytes(), 0);
    m.address_free(va, g).unwrap();
}

#[test]
fn vmm_export_import_same_process() {
    let m = mem();
    let g = GRANULARITY;
    let (va, h) = vmm_setup(&m, g, vmm::HANDLE_TYPE_POSIX_FD);
    m.set_access(va, g, PERM_RW).unwrap();
    let p = m.device_range(va + 64, 8, true).unwrap();
    // SAFETY: 8 writable bytes.
    unsafe { (p as *mut u64).write(0x1122_3344) };
    let fd = m.export_fd(h).unwrap();
    let h2 = m.import_fd(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    drop(fd);
    assert_ne!(h, h2);
    assert_eq!(m.handle_properties(h2), Ok((g, vmm::HANDLE_TYPE_POSIX_FD)));
    assert_eq!(m.used_bytes(), g, "imports are not charged twice");
    let va2 = m.reserve(1, g, 0, 0).unwrap();
    m.map(1, va2, g, 0, h2).unwrap();
    m.set_access(va2, g, PERM_RW).unwrap();
    let q = m.device_range(va2 + 64, 8, true).unwrap();
    // SAFETY: 8 readable and writable bytes of the shared memory.
    unsafe {
        assert_eq!((q as *const u64).read(), 0x1122_3344);
        (q as *mut u64).write(99);
        assert_eq!((p as *const u64).read(), 99);
    }
    assert_eq!(m.import_fd(-1), Err(CuError::INVALID_VALUE));
    for (va, h) in [(va, h), (va2, h2)] {
        m.unmap(va, g).unwrap();
        m.release(h).unwrap();
        m.address_free(va, g).unwrap();
    }
    assert_eq!(m.used_bytes(), 0);
}

#[test]
fn vmm_reserve_hint_grows_contiguously() {
    let m = mem();
    let g = GRANULARITY;
    let a = m.reserve(1, 2 * g, 0, 0).unwrap();
    let b = m.reserve(1, 2 * g, 0, a + 2 * g).unwrap();
    assert_eq!(b, a + 2 * g, "hint right after a reservation is honoured");
    let c = m.reserve(1, g, 0, a).unwrap();
    assert_ne!(c, a, "a taken hint is only a hint");
    let info = m.pointer_info(a + 5).unwrap();
    assert!(!info.mapped);
    for (p, s) in [(a, 2 * g), (b, 2 * g), (c, g)] {
        m.address_free(p, s).unwrap();
    }
}

#[test]
fn sync_memops_attribute() {
    let m = mem();
    let p = m.alloc(1, 64).unwrap();
    assert!(!m.pointer_info(p).unwrap().sync_memops);
    m.set_sync_memops(p + 8, true).unwrap();
    assert!(m.pointer_info(p).unwrap().sync_memops);
    assert_eq!(m.set_sync_memops(0x1000, true), Err(CuError::INVALID_VALUE));
}

#[test]
fn buffer_ids_are_unique() {
    let m = mem();
    let a = m.alloc(1, 64).unwrap();
    let id_a = m.pointer_info(a).unwrap().buffer_id;
    m.free(a).unwrap();
    let b = m.alloc(1, 64).unwrap();
    assert_ne!(m.pointer_info(b).unwrap().buffer_id, id_a);
}

#[test]
fn concurrent_allocations() {
    let m = mem();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let m = &m;
            s.spawn(move || {
                for i in 0..200u64 {
                    let p = m.alloc(t, 1 + i * 37).unwrap();
                    assert!(m.translate(p, 1, true).is_ok());
                    m.free(p).unwrap();
                }
            });
        }
    });
    assert_eq!(m.used_bytes(), 0);
}
