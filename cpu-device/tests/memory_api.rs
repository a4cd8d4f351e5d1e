//! The memory families through their C entry points: device allocations, host memory, pointer
//! attributes and VMM, including sharing VMM memory with a second process through a file
//! descriptor.
//!
//! Tests share one driver (it is process-global), so they take [`LOCK`] to keep the memory
//! accounting they check undisturbed.

mod cuda;

use std::ffi::c_void;
use std::ptr::{null, null_mut};
use std::sync::Mutex;

use cuda::*;
use gpushare_cpu_device::error::CuError;
use gpushare_driver_abi::cuda_h::{
    CUmemAccessDesc, CUmemAllocFlags, CUmemAllocationProp, CUmemLocation,
};

static LOCK: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;
const POSIX_FD: i32 = 1;

fn code(e: CuError) -> u32 {
    e.code()
}

/// Initialises the driver and makes the primary context current on this thread.
fn setup() -> (std::sync::MutexGuard<'static, ()>, *mut c_void) {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut ctx = null_mut();
    // SAFETY: valid out-pointers; the driver API is callable from any thread.
    unsafe {
        assert_eq!(cuInit(0), 0);
        assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), 0);
        assert_eq!(cuCtxSetCurrent(ctx), 0);
    }
    (guard, ctx)
}

fn mem_info() -> (usize, usize) {
    let (mut free, mut total) = (0, 0);
    // SAFETY: valid out-pointers.
    assert_eq!(unsafe { cuMemGetInfo_v2(&mut free, &mut total) }, 0);
    (free, total)
}

fn attr_u32(attr: i32, p: u64) -> Result<u32, u32> {
    let mut v = 0xdead_beef_u32;
    // SAFETY: a u32 attribute into a u32.
    match unsafe { cuPointerGetAttribute((&mut v as *mut u32).cast(), attr, p) } {
        0 => Ok(v),
        e => Err(e),
    }
}

fn attr_u64(attr: i32, p: u64) -> Result<u64, u32> {
    let mut v = 0xdead_beef_u64;
    // SAFETY: an 8-byte attribute into a u64.
    match unsafe { cuPointerGetAttribute((&mut v as *mut u64).cast(), attr, p) } {
        0 => Ok(v),
        e => Err(e),
    }
}

#[test]
fn alloc_free_info_and_address_range() {
    let (_g, _ctx) = setup();
    let (free0, total) = mem_info();
    assert!(free0 <= total && total > 0);
    let mut p = 0u64;
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(cuMemAlloc_v2(&mut p, 64 * MIB), 0);
        assert_eq!(p % 256, 0);
        assert!(mem_info().0 + 64 * MIB <= free0);
        let (mut base, mut size) = (0u64, 0usize);
        assert_eq!(cuMemGetAddressRange_v2(&mut base, &mut size, p + 12345), 0);
        assert_eq!((base, size), (p, 64 * MIB));
        assert_eq!(
            cuMemGetAddressRange_v2(null_mut(), &mut size, p + 64 * MIB as u64 - 1),
            0
        );
        assert_eq!(
            cuMemGetAddressRange_v2(&mut base, &mut size, p + 64 * MIB as u64),
            code(CuError::NOT_FOUND),
            "the guard gap is in no allocation"
        );
        // Device memory is plain host memory at the device address.
        std::ptr::write_bytes(p as *mut u8, 0x11, 64);
        assert_eq!(cuMemAlloc_v2(&mut base, 0), code(CuError::INVALID_VALUE));
        assert_eq!(cuMemAlloc_v2(null_mut(), 16), code(CuError::INVALID_VALUE));
        assert_eq!(
            cuMemAlloc_v2(&mut base, total + MIB),
            code(CuError::OUT_OF_MEMORY)
        );
        assert_eq!(cuMemFree_v2(p + 16), code(CuError::INVALID_VALUE));
        assert_eq!(cuMemFree_v2(0x1234), code(CuError::INVALID_VALUE));
        assert_eq!(cuMemFree_v2(p), 0);
        assert_eq!(cuMemFree_v2(p), code(CuError::INVALID_VALUE));
        assert_eq!(mem_info().0, free0);

        // The v1 ABI: sizes work, 32-bit device pointers cannot hold an arena address.
        let (mut f32_, mut t32) = (0u32, 0u32);
        assert_eq!(cuMemGetInfo(&mut f32_, &mut t32), 0);
        assert_eq!(t32 as usize, total.min(u32::MAX as usize));
        let mut small = 0u32;
        assert_eq!(cuMemAlloc(&mut small, 4096), code(CuError::NOT_SUPPORTED));
        assert_eq!(
            mem_info().0,
            free0,
            "the failed v1 allocation was given back"
        );
    }
}

#[test]
fn pitch_and_managed_allocations() {
    let (_g, _ctx) = setup();
    let (mut p, mut pitch) = (0u64, 0usize);
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(cuMemAllocPitch_v2(&mut p, &mut pitch, 1000, 3, 4), 0);
        assert_eq!(pitch, 1024);
        let mut size = 0usize;
        assert_eq!(cuMemGetAddressRange_v2(null_mut(), &mut size, p), 0);
        assert_eq!(size, 3 * 1024);
        assert_eq!(cuMemFree_v2(p), 0);
        assert_eq!(
            cuMemAllocPitch_v2(&mut p, &mut pitch, 1000, 3, 3),
            code(CuError::INVALID_VALUE)
        );

        let mut m = 0u64;
        assert_eq!(cuMemAllocManaged(&mut m, 4096, 1), 0);
        *(m as *mut u32) = 5; // the host touches managed memory directly
        assert_eq!(attr_u32(8, m), Ok(1), "IS_MANAGED");
        assert_eq!(attr_u64(4, m), Ok(m), "HOST_POINTER of managed memory");
        assert_eq!(cuMemFree_v2(m), 0);
        assert_eq!(
            cuMemAllocManaged(&mut m, 4096, 7),
            code(CuError::INVALID_VALUE)
        );
    }
}

/// Single attributes of device pointer `p + 100` (an 8 KiB allocation of context `ctx`);
/// returns the buffer id.
fn device_pointer_attributes(p: u64, ctx: *mut c_void) -> u64 {
    assert_eq!(attr_u32(2, p + 100), Ok(2), "MEMORY_TYPE device");
    assert_eq!(attr_u64(3, p + 100), Ok(p + 100), "DEVICE_POINTER");
    assert_eq!(attr_u64(1, p + 100), Ok(ctx as u64), "CONTEXT");
    assert_eq!(
        attr_u64(4, p),
        Err(code(CuError::INVALID_VALUE)),
        "no host pointer"
    );
    assert_eq!(attr_u64(11, p + 100), Ok(p), "RANGE_START_ADDR");
    assert_eq!(attr_u64(12, p + 100), Ok(8192), "RANGE_SIZE");
    assert_eq!(attr_u32(9, p), Ok(0), "DEVICE_ORDINAL");
    assert_eq!(attr_u32(13, p), Ok(1), "MAPPED");
    assert_eq!(attr_u32(16, p), Ok(3), "ACCESS_FLAGS");
    assert_eq!(
        attr_u64(5, p),
        Err(code(CuError::NOT_SUPPORTED)),
        "P2P tokens"
    );
    attr_u64(7, p).unwrap()
}

/// `cuPointerGetAttributes` on device pointer `p + 8` and on `unknown` memory (defaults, not
/// errors).
fn attribute_lists(p: u64, ctx: *mut c_void, unknown: u64) {
    let attrs = [2i32, 1, 11, 12, 9];
    let (mut mt, mut c, mut start, mut size, mut ord) = (77u32, 1usize, 1u64, 1usize, 5i32);
    let mut data: [*mut c_void; 5] = [
        (&mut mt as *mut u32).cast(),
        (&mut c as *mut usize).cast(),
        (&mut start as *mut u64).cast(),
        (&mut size as *mut usize).cast(),
        (&mut ord as *mut i32).cast(),
    ];
    let host_attr = [4i32];
    let mut hp = 1usize;
    let mut hdata: [*mut c_void; 1] = [(&mut hp as *mut usize).cast()];
    // SAFETY: each data pointer points at a live local of the attribute's size.
    unsafe {
        assert_eq!(
            cuPointerGetAttributes(5, attrs.as_ptr(), data.as_mut_ptr(), p + 8),
            0
        );
        assert_eq!((mt, c, start, size, ord), (2, ctx as usize, p, 8192, 0));
        assert_eq!(
            cuPointerGetAttributes(5, attrs.as_ptr(), data.as_mut_ptr(), unknown),
            0
        );
        assert_eq!(
            (mt, c, start, size, ord),
            (0, 0, 0, 0, -2),
            "defaults for unknown memory"
        );
        assert_eq!(
            cuPointerGetAttributes(1, host_attr.as_ptr(), hdata.as_mut_ptr(), p),
            0
        );
    }
    assert_eq!(
        hp, 0,
        "device memory has no host pointer: NULL, not an error"
    );
}

#[test]
fn pointer_attributes() {
    let (_g, ctx) = setup();
    let mut p = 0u64;
    let stack = 0u64;
    let unknown = &stack as *const u64 as u64;
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(cuMemAlloc_v2(&mut p, 8192), 0);
    }
    let id = device_pointer_attributes(p, ctx);
    assert_eq!(attr_u32(2, unknown), Err(code(CuError::INVALID_VALUE)));
    attribute_lists(p, ctx, unknown);
    let on = 1u32;
    // SAFETY: valid pointers and arguments throughout.
    unsafe {
        assert_eq!(cuPointerSetAttribute((&on as *const u32).cast(), 6, p), 0);
        assert_eq!(attr_u32(6, p), Ok(1), "SYNC_MEMOPS");
        assert_eq!(
            cuPointerSetAttribute((&on as *const u32).cast(), 2, p),
            code(CuError::INVALID_VALUE)
        );
        assert_eq!(
            cuPointerSetAttribute((&on as *const u32).cast(), 6, unknown),
            code(CuError::INVALID_VALUE)
        );
        assert_eq!(cuMemFree_v2(p), 0);
        assert_eq!(cuMemAlloc_v2(&mut p, 8192), 0);
        assert_ne!(attr_u64(7, p).unwrap(), id, "buffer ids are not reused");
        assert_eq!(cuMemFree_v2(p), 0);
    }
}

#[test]
fn host_memory_and_registration() {
    let (_g, _ctx) = setup();
    let free0 = mem_info().0;
    let mut h: *mut c_void = null_mut();
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(cuMemHostAlloc(&mut h, 40_000, 0x3), 0);
        assert_eq!(
            mem_info().0,
            free0,
            "pinned host memory is not device memory"
        );
        std::ptr::write_bytes(h.cast::<u8>(), 7, 40_000);
        let mut flags = 0u32;
        assert_eq!(cuMemHostGetFlags(&mut flags, h), 0);
        assert_eq!(flags, 0x3);
        let mut d = 0u64;
        assert_eq!(cuMemHostGetDevicePointer_v2(&mut d, h, 0), 0);
        assert_eq!(d, h as u64, "unified addressing");
        assert_eq!(
            cuMemHostGetDevicePointer_v2(&mut d, h, 1),
            code(CuError::INVALID_VALUE)
        );
        assert_eq!(attr_u32(2, h as u64), Ok(1), "MEMORY_TYPE host");
        assert_eq!(attr_u64(4, h as u64 + 8), Ok(h as u64 + 8), "HOST_POINTER");
        assert_eq!(cuMemFree_v2(h as u64), code(CuError::INVALID_VALUE));
        assert_eq!(cuMemFreeHost(h), 0);
        assert_eq!(cuMemFreeHost(h), code(CuError::INVALID_VALUE));

        let mut pinned: *mut c_void = null_mut();
        assert_eq!(cuMemAllocHost_v2(&mut pinned, 100), 0);
        assert_eq!(cuMemHostGetFlags(&mut flags, pinned), 0);
        assert_eq!(flags, 0);
        assert_eq!(cuMemFreeHost(pinned), 0);

        let mut buf = vec![0f32; 10_003];
        let x = buf.as_mut_ptr().add(3).cast::<c_void>();
        let bytes = 10_000 * 4;
        assert_eq!(cuMemHostRegister_v2(x, bytes, 0x2), 0);
        assert_eq!(
            cuMemHostRegister_v2(x, bytes, 0x2),
            code(CuError::HOST_MEMORY_ALREADY_REGISTERED)
        );
        assert_eq!(cuMemHostGetDevicePointer_v2(&mut d, x, 0), 0);
        assert_eq!(d, x as u64);
        assert_eq!(attr_u32(2, x as u64), Ok(1));
        assert_eq!(
            attr_u64(12, x as u64),
            Ok(bytes as u64),
            "RANGE_SIZE of a registration"
        );
        assert_eq!(
            cuMemHostGetFlags(&mut flags, x),
            code(CuError::INVALID_VALUE)
        );
        assert_eq!(cuMemHostUnregister(x), 0);
        assert_eq!(
            cuMemHostUnregister(x),
            code(CuError::HOST_MEMORY_NOT_REGISTERED)
        );
        assert_eq!(attr_u32(2, x as u64), Err(code(CuError::INVALID_VALUE)));
        assert_eq!(cuMemHostRegister(x, 0, 0), code(CuError::INVALID_VALUE));
        assert_eq!(cuMemFreeHost(x), code(CuError::INVALID_VALUE));
        drop(buf);
    }
}

#[test]
fn context_destruction_frees_its_memory() {
    let (_g, primary) = setup();
    let free0 = mem_info().0;
    let mut ctx = null_mut();
    let (mut p, mut h) = (0u64, null_mut());
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(cuCtxCreate_v2(&mut ctx, 0, 0), 0);
        assert_eq!(cuMemAlloc_v2(&mut p, 4 * MIB), 0);
        assert_eq!(cuMemHostAlloc(&mut h, 4096, 0), 0);
        assert_eq!(attr_u64(1, p), Ok(ctx as u64));
        assert!(mem_info().0 < free0);
        assert_eq!(cuCtxDestroy_v2(ctx), 0);
        assert_eq!(cuCtxSetCurrent(primary), 0);
        assert_eq!(mem_info().0, free0);
        assert_eq!(
            attr_u32(2, p),
            Err(code(CuError::INVALID_VALUE)),
            "freed with its context"
        );
        assert_eq!(cuMemFreeHost(h), code(CuError::INVALID_VALUE));
    }
}

fn device_prop(handle_types: i32) -> CUmemAllocationProp {
    CUmemAllocationProp {
        type_: 1,
        requested_handle_types: handle_types,
        location: CUmemLocation { type_: 1, id: 0 },
        win32_handle_meta_data: null_mut(),
        alloc_flags: CUmemAllocFlags::default(),
    }
}

const RW: CUmemAccessDesc = CUmemAccessDesc {
    location: CUmemLocation { type_: 1, id: 0 },
    flags: 3,
};

/// Reserves `size` bytes, maps `handle` there and makes it read-write.
///
/// # Safety
/// `handle` must be a live allocation of at least `size` bytes.
unsafe fn map_rw(handle: u64, size: usize) -> u64 {
    let mut va = 0u64;
    // SAFETY: valid out-pointers; the caller vouches for the handle.
    unsafe {
        assert_eq!(cuMemAddressReserve(&mut va, size, 0, 0, 0), 0);
        assert_eq!(cuMemMap(va, size, 0, handle, 0), 0);
        assert_eq!(cuMemSetAccess(va, size, &RW, 1), 0);
    }
    va
}

/// The VMM granularity (minimum and recommended: 2 MiB) and its argument checks.
fn vmm_granularity(prop: &CUmemAllocationProp) -> usize {
    let mut g = 0usize;
    // SAFETY: valid out-pointers and property structs; NULL is the case under test.
    unsafe {
        assert_eq!(cuMemGetAllocationGranularity(&mut g, prop, 0), 0);
        assert_eq!(g, 2 * MIB);
        assert_eq!(cuMemGetAllocationGranularity(&mut g, prop, 1), 0);
        assert_eq!(g, 2 * MIB);
        assert_eq!(
            cuMemGetAllocationGranularity(&mut g, null(), 0),
            code(CuError::INVALID_VALUE)
        );
        let bad_dev = CUmemAllocationProp {
            location: CUmemLocation { type_: 1, id: 3 },
            ..*prop
        };
        assert_eq!(
            cuMemGetAllocationGranularity(&mut g, &bad_dev, 0),
            code(CuError::INVALID_DEVICE)
        );
    }
    g
}

/// Creates `2 × g` of physical memory exportable as a POSIX descriptor, maps it read-write,
/// checks what the driver reports about it and writes a word at byte 800; returns the handle
/// and the address.
fn vmm_create_and_map(prop: &CUmemAllocationProp, g: usize, free0: usize) -> (u64, u64) {
    let mut h = 0u64;
    // SAFETY: valid out-pointers and property structs; `va` maps `2 × g` bytes read-write.
    unsafe {
        assert_eq!(cuMemCreate(&mut h, 2 * g, prop, 0), 0);
        assert_eq!(mem_info().0 + 2 * g, free0, "physical memory is charged");
        let mut odd = 0u64;
        assert_eq!(
            cuMemCreate(&mut odd, g + 4096, prop, 0),
            code(CuError::INVALID_VALUE)
        );
        let fabric = device_prop(8);
        assert_eq!(
            cuMemCreate(&mut odd, g, &fabric, 0),
            code(CuError::NOT_SUPPORTED)
        );
        let va = map_rw(h, 2 * g);
        let mut flags = 0u64;
        let loc = CUmemLocation { type_: 1, id: 0 };
        assert_eq!(cuMemGetAccess(&mut flags, &loc, va + g as u64), 0);
        assert_eq!(flags, 3);
        (va as *mut u64).add(100).write(0x0123_4567_89ab_cdef);
        assert_eq!(attr_u32(2, va + 800), Ok(2), "VMM memory is device memory");
        assert_eq!(
            attr_u32(14, va),
            Ok(POSIX_FD as u32),
            "ALLOWED_HANDLE_TYPES"
        );
        let mut got = device_prop(0);
        assert_eq!(cuMemGetAllocationPropertiesFromHandle(&mut got, h), 0);
        assert_eq!(
            (got.type_, got.requested_handle_types, got.location),
            (1, POSIX_FD, loc)
        );
        let mut h2 = 0u64;
        assert_eq!(
            cuMemRetainAllocationHandle(&mut h2, (va + 4096) as *mut c_void),
            0
        );
        assert_eq!(h2, h);
        assert_eq!(cuMemRelease(h2), 0);
        (h, va)
    }
}

/// Exports `h` (mapped at `va`), imports it back and maps it a second time: both addresses
/// show the same bytes. Returns the imported handle and its address.
fn vmm_export_and_import(h: u64, va: u64, g: usize) -> (u64, u64) {
    let mut fd = -1i32;
    let mut imported = 0u64;
    // SAFETY: valid out-pointers; `va` maps `2 × g` bytes of `h`, written at byte 800 by
    // vmm_create_and_map; `fd` is the descriptor just exported.
    unsafe {
        assert_eq!(
            cuMemExportToShareableHandle((&mut fd as *mut i32).cast(), h, POSIX_FD, 0),
            0
        );
        assert!(fd >= 0);
        assert_eq!(
            cuMemExportToShareableHandle((&mut fd as *mut i32).cast(), h, 8, 0),
            code(CuError::NOT_SUPPORTED)
        );
        assert_eq!(
            cuMemImportFromShareableHandle(&mut imported, fd as usize as *mut c_void, POSIX_FD),
            0
        );
        assert_eq!(libc::close(fd), 0, "the caller still owns its descriptor");
        let va2 = map_rw(imported, 2 * g);
        assert_eq!((va2 as *const u64).add(100).read(), 0x0123_4567_89ab_cdef);
        (va2 as *mut u32).write(42);
        assert_eq!((va as *const u32).read(), 42);
        (imported, va2)
    }
}

/// Read-only access to `2 × g` bytes at `va` (whose first word is 42).
fn vmm_read_only_access(va: u64, g: usize) {
    let loc = CUmemLocation { type_: 1, id: 0 };
    let mut flags = 0u64;
    // SAFETY: `va` maps `2 × g` bytes, readable in every access mode set here.
    unsafe {
        let ro = CUmemAccessDesc { flags: 1, ..RW };
        assert_eq!(cuMemSetAccess(va, 2 * g, &ro, 1), 0);
        assert_eq!(cuMemGetAccess(&mut flags, &loc, va), 0);
        assert_eq!(flags, 1);
        assert_eq!((va as *const u32).read(), 42, "still readable");
        let bad = CUmemAccessDesc { flags: 2, ..RW };
        assert_eq!(
            cuMemSetAccess(va, 2 * g, &bad, 1),
            code(CuError::INVALID_VALUE)
        );
    }
}

#[test]
fn vmm_lifecycle_export_and_import() {
    let (_g, _ctx) = setup();
    let free0 = mem_info().0;
    let prop = device_prop(POSIX_FD);
    let g = vmm_granularity(&prop);
    let (h, va) = vmm_create_and_map(&prop, g, free0);
    let (imported, va2) = vmm_export_and_import(h, va, g);
    vmm_read_only_access(va, g);
    // SAFETY: unmapping and releasing what this test mapped and created.
    unsafe {
        for (va, h) in [(va, h), (va2, imported)] {
            assert_eq!(
                cuMemAddressFree(va, 2 * g),
                code(CuError::INVALID_VALUE),
                "still mapped"
            );
            assert_eq!(cuMemUnmap(va, 2 * g), 0);
            assert_eq!(cuMemRelease(h), 0);
            assert_eq!(cuMemAddressFree(va, 2 * g), 0);
        }
        assert_eq!(cuMemRelease(h), code(CuError::INVALID_VALUE));
    }
    assert_eq!(mem_info().0, free0);
}

/// Environment variable naming the parent's `pid:fd` for [`vmm_child_process`].
const CHILD_ENV: &str = "GPUSHARE_MEMTEST_SHARED_FD";
const CHILD_SIZE: usize = 2 * MIB;

#[test]
fn vmm_memory_is_shared_with_another_process() {
    let (_g, _ctx) = setup();
    let prop = device_prop(POSIX_FD);
    let (mut h, mut fd) = (0u64, -1i32);
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(cuMemCreate(&mut h, CHILD_SIZE, &prop, 0), 0);
        let va = map_rw(h, CHILD_SIZE);
        (va as *mut u64).write(0x5eed);
        assert_eq!(
            cuMemExportToShareableHandle((&mut fd as *mut i32).cast(), h, POSIX_FD, 0),
            0
        );
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "vmm_child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}:{fd}", std::process::id()))
            .status()
            .unwrap();
        assert!(status.success(), "child failed: {status}");
        assert_eq!(
            (va as *const u64).add(1).read(),
            0x5eed + 1,
            "the child's write is visible here"
        );
        assert_eq!(libc::close(fd), 0);
        assert_eq!(cuMemUnmap(va, CHILD_SIZE), 0);
        assert_eq!(cuMemRelease(h), 0);
        assert_eq!(cuMemAddressFree(va, CHILD_SIZE), 0);
    }
}

/// The second process of [`vmm_memory_is_shared_with_another_process`]: opens the parent's
/// descriptor through /proc, imports and maps it, checks the parent's value and answers.
#[test]
#[ignore = "run by vmm_memory_is_shared_with_another_process"]
fn vmm_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (pid, fd) = spec.split_once(':').unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .unwrap();
    let (_g, _ctx) = setup();
    let mut h = 0u64;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: valid out-pointers and arguments throughout.
    unsafe {
        assert_eq!(
            cuMemImportFromShareableHandle(&mut h, raw as usize as *mut c_void, POSIX_FD),
            0
        );
        let va = map_rw(h, CHILD_SIZE);
        assert_eq!((va as *const u64).read(), 0x5eed);
        (va as *mut u64).add(1).write(0x5eed + 1);
        assert_eq!(cuMemUnmap(va, CHILD_SIZE), 0);
        assert_eq!(cuMemRelease(h), 0);
    }
}
