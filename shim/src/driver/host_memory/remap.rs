//! Re-backing application memory for `cuMemHostRegister(DEVICEMAP | READ_ONLY)`: the worker, a
//! process of its own, cannot reach the tenant's private pages, so the registered range's whole
//! pages are moved into a memfd it can map.
//!
//! 1. `/proc/self/maps` must show every page as private anonymous read-write memory (`rw-p`:
//!    the heap, `malloc`'s and the application's anonymous mappings, other threads' stacks), or
//!    pages an earlier registration re-backed (`rw-s` of a `gpushare-host` memfd). Anything else
//!    is `NOT_SUPPORTED` with a log line naming the reason: file-backed or shared mappings (their
//!    sharing would change), read-only or executable pages, the main thread's `[stack]` and the
//!    calling thread's stack (the shim's own frames live there).
//! 2. A sealed memfd of the pages' size is created and registered with the broker (which passes
//!    it to the worker): nothing of the application is touched if that fails.
//! 3. The pages' bytes are copied into the memfd, then the memfd is mapped over them (`MAP_SHARED
//!    | MAP_FIXED`, read-write: the protection they had). The replacement is one system call.
//!
//! Hazards, documented in docs/architecture.md: a write another thread makes to those pages
//! between the copy and the replacement is lost (CUDA does not forbid it; mprotect-ing the
//! range during the copy would turn such a write into a crash instead); afterwards the pages are
//! shared memory, so a `fork` child shares them instead of copying them, and
//! `madvise(MADV_DONTNEED)` keeps their contents instead of zeroing them. Unregistering leaves
//! the memfd mapped, so the application's memory stays valid with its contents.

use std::ffi::c_void;
use std::sync::Arc;

use gpushare_client::os::{self, Prot};
use gpushare_client::shm::HostBuffer;
use gpushare_driver_abi::surface::prelude::*;

use super::{host_alloc_of, register_buffer};
use crate::runtime::{HostAlloc, Runtime};

/// The name [`HostBuffer::create`] gives its memfds, as `/proc/self/maps` shows it.
const OWN_MEMFD: &str = "/memfd:gpushare-host";

/// One line of `/proc/self/maps`: `[start, end)`, permissions, path (empty for anonymous).
struct Area<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    path: &'a str,
}

fn parse(line: &str) -> Option<Area<'_>> {
    let mut f = line.splitn(6, ' ');
    let (range, perms) = (f.next()?, f.next()?);
    let (_offset, _dev, _inode) = (f.next()?, f.next()?, f.next()?);
    let path = f.next().unwrap_or("").trim();
    let (a, b) = range.split_once('-')?;
    Some(Area {
        start: usize::from_str_radix(a, 16).ok()?,
        end: usize::from_str_radix(b, 16).ok()?,
        perms,
        path,
    })
}

/// Why the area cannot be re-backed, if it cannot. `stack` is an address on the calling thread's
/// stack.
fn refusal(a: &Area<'_>, stack: usize) -> Option<String> {
    let anonymous = a.path.is_empty() || a.path == "[heap]" || a.path.starts_with("[anon:");
    if a.path == "[stack]" || (a.start..a.end).contains(&stack) {
        return Some("it is on a thread's stack that the shim itself runs on".into());
    }
    if a.perms == "rw-s" && a.path.starts_with(OWN_MEMFD) {
        return None; // re-backed by an earlier registration
    }
    if !anonymous {
        return Some(format!("it is a mapping of {}", a.path));
    }
    match a.perms {
        "rw-p" => None,
        p if p.ends_with('s') => Some("it is shared memory".into()),
        p => Some(format!("its pages are {p}, not read-write")),
    }
}

/// Checks that `[start, end)` can be re-backed (see the module documentation): `Err` with the
/// reason otherwise.
fn check_backing(start: usize, end: usize) -> Result<(), String> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("/proc/self/maps is unreadable ({e})"))?;
    let here = 0u8;
    let stack = std::ptr::addr_of!(here) as usize;
    let mut at = start;
    for a in maps.lines().filter_map(parse) {
        if a.end <= at || a.start >= end {
            continue;
        }
        if a.start > at {
            break;
        }
        if let Some(why) = refusal(&a, stack) {
            return Err(why);
        }
        at = a.end;
        if at >= end {
            return Ok(());
        }
    }
    Err("part of it is not mapped".into())
}

/// Re-backs the pages `[start, end)` holding the registration of `p` and registers them with the
/// broker: the buffer, as a [`HostAlloc`] whose first byte is `start`'s.
pub(super) fn reback(
    rt: &Runtime,
    p: *mut c_void,
    start: usize,
    end: usize,
    flags: u32,
) -> CuResult<Arc<HostAlloc>> {
    if let Err(why) = check_backing(start, end) {
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}, flags {flags:#x}): gpushare maps registered memory into \
                 its worker by moving the pages into shared memory, which it cannot do here: \
                 {why}; allocate with cuMemHostAlloc instead")
        });
        return Err(CuError::NOT_SUPPORTED);
    }
    let len = end - start;
    let buffer = HostBuffer::create(len as u64, false).map_err(|e| {
        crate::log(|| tracing::warn!(target: "gpushare::shim", "cuMemHostRegister({p:p}): {e}"));
        CuError::OUT_OF_MEMORY
    })?;
    let (region, device_ptr) = register_buffer(rt, &buffer, len as u64, flags)?;
    // SAFETY: `[start, end)` is mapped readable (checked above: rw-p or rw-s pages) and the
    // buffer's own mapping is `len` bytes that nothing else uses yet; the two do not overlap (the
    // buffer was just mapped elsewhere). A write another thread makes meanwhile is the documented
    // hazard (it may be lost), not undefined behaviour of this copy, which reads bytes only.
    unsafe {
        std::ptr::copy_nonoverlapping(start as *const u8, buffer.mapping().as_ptr(), len);
    }
    // SAFETY: the range is the application's memory, checked above to be private anonymous (or
    // an earlier memfd of ours) read-write pages; the new mapping holds the same bytes with the
    // same protection at the same address, so every pointer into it stays valid. The memfd is
    // sealed against shrinking, so no access past its end can fault.
    let mapped =
        unsafe { os::map_fd_fixed(start as u64, len as u64, buffer.fd(), 0, Prot::ReadWrite) };
    if let Err(e) = mapped {
        let _ = rt.call_empty(gpushare_client::proto::Request::HostUnregister { region });
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}): mapping the shared copy over the range failed: {e}")
        });
        return Err(CuError::OUT_OF_MEMORY);
    }
    Ok(host_alloc_of(region, buffer, device_ptr, flags, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges_areas() {
        let heap = parse("55d0c000-55d2d000 rw-p 00000000 00:00 0      [heap]").unwrap();
        assert_eq!((heap.start, heap.end), (0x55d0c000, 0x55d2d000));
        assert_eq!(refusal(&heap, 0), None);
        let file = parse("7f00-7f10 rw-p 00001000 08:01 123  /usr/lib/libc.so.6").unwrap();
        assert!(refusal(&file, 0).unwrap().contains("libc.so.6"));
        let shared = parse("7f00-7f10 rw-s 00000000 00:01 9  /dev/zero (deleted)").unwrap();
        assert!(refusal(&shared, 0).is_some());
        let ours = parse("7f00-7f10 rw-s 00000000 00:01 9  /memfd:gpushare-host (deleted)");
        assert_eq!(refusal(&ours.unwrap(), 0), None);
        let ro = parse("7f00-7f10 r--p 00000000 00:00 0").unwrap();
        assert!(refusal(&ro, 0).unwrap().contains("r--p"));
        let anon = parse("7f00-7f10 rw-p 00000000 00:00 0").unwrap();
        assert!(refusal(&anon, 0x7f08).unwrap().contains("stack"));
        assert!(refusal(&parse("7f00-7f10 rw-p 0 0 0 [stack]").unwrap(), 0).is_some());
    }

    #[test]
    fn own_stack_and_unmapped_ranges_are_refused() {
        let here = [0u8; 64];
        let page = here.as_ptr() as usize & !4095;
        assert!(check_backing(page, page + 4096)
            .unwrap_err()
            .contains("stack"));
        assert!(check_backing(8192, 16384).is_err());
        let heap = vec![0u8; 1 << 16];
        let p = (heap.as_ptr() as usize + 4095) & !4095;
        assert_eq!(check_backing(p, p + 4096), Ok(()));
    }
}
