//! Pointer attributes: `cuPointerGetAttribute`, `cuPointerGetAttributes`, `cuPointerSetAttribute`.
//!
//! Answered locally wherever the shim knows the memory: pinned host memory it allocated, managed
//! memory (device memory with IS_MANAGED = 1, one address for host and device, as on the CPU
//! device), host ranges registered with `cuMemHostRegister` (and the device addresses of those
//! registered with DEVICEMAP), `cuMemAlloc` allocations and VMM reservations. The
//! broker is asked (`PointerGetAttribute`) only about other device ranges of the tenant (module
//! globals), with the range attributes still answered from the shim's table. Memory nobody knows
//! is `INVALID_VALUE` for `cuPointerGetAttribute` and zero values for `cuPointerGetAttributes`, as
//! on the CPU device; values and their C widths are the shared ones of
//! [`gpushare_driver_abi::checks::pointer`].

use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::checks::pointer::{self as attrs, AttrValue, PointerAttributes};
use gpushare_driver_abi::cuda_h::pointer_attribute::*;
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::objects::Registered;
use crate::runtime::{current_ctx, require_current, runtime, HostAlloc, HostMemory, Runtime};
use crate::Shim;

/// Attributes of a remote range the shim answers itself: its range, and what CUDA does not
/// track for device memory (P2P tokens and unknown attributes fail locally too).
const LOCAL_ATTRIBUTES: [i32; 5] = [
    HOST_POINTER,
    SYNC_MEMOPS,
    RANGE_START_ADDR,
    RANGE_SIZE,
    IS_HW_DECOMPRESS_CAPABLE,
];

/// What the shim knows about a pointer: its attributes, and whether the broker holds the rest.
#[derive(Clone, Copy, Debug)]
struct Known {
    attrs: PointerAttributes,
    /// A device range of the tenant the shim has no details about: attributes other than the
    /// range's come from the broker.
    remote: bool,
}

/// Pinned memory: the allocation whose range starts at `base`, seen at device address
/// `dptr` and host address `host`.
fn pinned(alloc: &HostAlloc, base: u64, dptr: u64, host: u64) -> PointerAttributes {
    let range = (base, alloc.buffer.len());
    let mut a = PointerAttributes::new(true, alloc.ctx, range, u64::from(alloc.region));
    a.device_ptr = Ok(dptr);
    a.host_ptr = Some(host);
    a
}

/// Managed memory at `ptr` (host and device address), in the allocation starting at `base`.
fn managed(alloc: &HostAlloc, base: u64, ptr: u64) -> PointerAttributes {
    let range = (base, alloc.buffer.len());
    let mut a = PointerAttributes::new(false, alloc.ctx, range, u64::from(alloc.region));
    a.managed = true;
    a.device_ptr = Ok(ptr);
    a.host_ptr = Some(ptr);
    a
}

/// A `cuMemHostRegister` range starting at `start` seen at host address `host`.
fn registered(start: usize, r: &Registered, host: usize) -> PointerAttributes {
    let (s, len) = (start as u64, r.len as u64);
    let mut a = PointerAttributes::new(true, current_ctx(), (s, len), s);
    a.host_ptr = Some(host as u64);
    a.device_ptr = r.device_ptr(start, host).ok_or(CuError::NOT_SUPPORTED);
    a
}

/// What the shim knows about `ptr`, or `None` for memory CUDA does not know.
fn lookup(rt: &Runtime, ptr: u64) -> Option<Known> {
    let local = |attrs| {
        Some(Known {
            attrs,
            remote: false,
        })
    };
    if let HostMemory::Shared { alloc, offset } = rt.host_memory(ptr as usize, 1) {
        if alloc.managed {
            return local(managed(&alloc, ptr - offset, ptr));
        }
        return local(pinned(&alloc, ptr - offset, alloc.device_ptr + offset, ptr));
    }
    if let Some((start, r)) = rt.registration(ptr as usize) {
        return local(registered(start, &r, ptr as usize));
    }
    if let Some((base, alloc)) = rt.alloc_of(ptr) {
        let mut a = PointerAttributes::new(false, alloc.ctx, (base, alloc.size), alloc.id);
        a.device_ptr = Ok(ptr);
        a.legacy_ipc_capable = true;
        return local(a);
    }
    if let Some(v) = rt.vmm(|v| v.pointer_info(ptr)) {
        let mut a = PointerAttributes::new(false, v.ctx, v.range, v.id);
        a.mapping = v.mapping.unwrap_or(v.range);
        a.mapped = v.mapping.is_some();
        a.memory_block_id = v.block_id;
        a.allowed_handle_types = v.handle_types;
        a.access = v.access;
        if a.mapped {
            a.device_ptr = Ok(ptr);
        }
        return local(a);
    }
    let range = rt.device_range_of(ptr)?;
    if let Some((base, alloc)) = rt.host_alloc_by_device_ptr(ptr) {
        // The device address of a pinned buffer whose host address differs.
        let host = (base as u64) + (ptr - alloc.device_ptr);
        return local(pinned(&alloc, alloc.device_ptr, ptr, host));
    }
    if let Some((start, r)) = rt.registration_by_device_ptr(ptr) {
        // The device address of a DEVICEMAP registration (never its host address).
        let page = start & !(crate::runtime::memory::PAGE as usize - 1);
        let dev = r.mapped.as_ref().map_or(0, |m| m.device_ptr);
        let host = page + (ptr - dev) as usize;
        let mut a = registered(start, &r, host);
        a.device_ptr = Ok(ptr);
        return local(a);
    }
    let mut a = PointerAttributes::new(false, current_ctx(), range, range.0);
    a.device_ptr = Ok(ptr);
    Some(Known {
        attrs: a,
        remote: true,
    })
}

/// The value of `attr` for a known pointer (see [`PointerAttributes::value`]); for a remote
/// range the broker answers what the shim does not know.
fn value(rt: &Runtime, known: &Known, attr: i32, ptr: u64) -> CuResult<AttrValue> {
    let mut a = known.attrs;
    a.sync_memops = rt
        .sync_memops(|m| m.get(&a.range.0).copied())
        .unwrap_or(false);
    let local = LOCAL_ATTRIBUTES.contains(&attr) || attrs::width_of(attr, 0).is_none();
    if !known.remote || local {
        return a.value(attr);
    }
    let raw = match rt.call(Request::PointerGetAttribute {
        ptr,
        attribute: attr as u32,
    })? {
        Reply::Value(v) => v,
        _ => return Err(CuError::UNKNOWN),
    };
    attrs::width_of(attr, raw).ok_or(CuError::INVALID_VALUE)
}

/// `lookup`, with a log line for memory CUDA does not know (`INVALID_VALUE`).
fn known(rt: &Runtime, what: &str, ptr: u64) -> CuResult<Known> {
    lookup(rt, ptr).ok_or_else(|| {
        crate::log(
            || tracing::debug!(target: "gpushare::shim", "{what}({ptr:#x}): not CUDA memory"),
        );
        CuError::INVALID_VALUE
    })
}

gpushare_driver_abi::implement! {
    impl Pointer for Shim {
        /// `cuPointerGetAttribute`: `INVALID_VALUE` for memory CUDA does not know.
        unsafe fn pointer_get_attribute(data: *mut c_void, attribute: i32, ptr: CUdeviceptr) -> CuResult {
            let rt = runtime()?;
            if data.is_null() {
                return Err(CuError::INVALID_VALUE);
            }
            if attribute == DEVICE_POINTER && require_current().is_err() {
                return Err(CuError::INVALID_CONTEXT);
            }
            let k = known(rt, "cuPointerGetAttribute", ptr)?;
            let v = value(rt, &k, attribute, ptr)?;
            // SAFETY: the caller passes storage of the attribute's type.
            unsafe { attrs::store(data, v) }
        }

        /// `cuPointerGetAttributes`: never fails for unknown memory or for an attribute the
        /// pointer has no value for; those get zero (NULL, type 0, ordinal -2).
        unsafe fn pointer_get_attributes(num_attributes: u32, attributes: *const i32, data: *mut *mut c_void, ptr: CUdeviceptr) -> CuResult {
            let rt = runtime()?;
            let k = lookup(rt, ptr);
            let value = |attr| match &k {
                Some(k) => value(rt, k, attr, ptr),
                None => Err(CuError::INVALID_VALUE),
            };
            // SAFETY: the caller passes `num_attributes` attributes and data pointers, each with
            // room for its attribute's type.
            unsafe { attrs::get_attributes(num_attributes, attributes, data, value) }
        }

        /// `cuPointerSetAttribute`: only SYNC_MEMOPS (recorded; every synchronous call already
        /// synchronises).
        unsafe fn pointer_set_attribute(value: *const c_void, attribute: i32, ptr: CUdeviceptr) -> CuResult {
            let rt = runtime()?;
            if value.is_null() || attribute != SYNC_MEMOPS {
                crate::log(|| {
                    tracing::debug!(target: "gpushare::shim",
                        "cuPointerSetAttribute({attribute}): only SYNC_MEMOPS can be set")
                });
                return Err(CuError::INVALID_VALUE);
            }
            // SAFETY: non-NULL, and SYNC_MEMOPS takes a pointer to an unsigned int.
            let on = unsafe { value.cast::<u32>().read_unaligned() } != 0;
            let k = known(rt, "cuPointerSetAttribute", ptr)?;
            rt.sync_memops(|m| m.insert(k.attrs.range.0, on));
            Ok(())
        }
    }
}
