//! Device queries, answered from the snapshot the broker sent at connect time (no round trip).

use std::ffi::c_char;

use gpushare_client::proto::DeviceInfo;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{c_str, write_out, CUdevice};

use crate::runtime::{runtime, Runtime};
pub use gpushare_driver_abi::cuda_h::CUuuid;
use gpushare_driver_abi::sys::write_c_string;

/// The device `dev` names.
pub(crate) fn device(dev: CUdevice) -> CuResult<(&'static Runtime, &'static DeviceInfo)> {
    let rt = runtime()?;
    Ok((rt, rt.device(dev)?))
}

cuda_exports! {
    /// `cuDeviceGetCount`
    fn cuDeviceGetCount(count: *mut i32) {
        let rt = runtime()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(count, rt.devices.len() as i32) }
    }

    /// `cuDeviceGet`
    fn cuDeviceGet(dev: *mut CUdevice, ordinal: i32) {
        let rt = runtime()?;
        if dev.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        rt.device(ordinal)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(dev, ordinal) }
    }

    /// `cuDeviceGetName`
    fn cuDeviceGetName(name: *mut c_char, len: i32, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: the caller's buffer of `len` bytes.
        unsafe { write_c_string(name, len, &d.name) }
    }

    /// `cuDeviceTotalMem` (v1: 32-bit result, saturated)
    fn cuDeviceTotalMem(bytes: *mut u32, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(bytes, d.total_mem.min(u32::MAX as u64) as u32) }
    }

    /// `cuDeviceTotalMem_v2`: the tenant's view (its quota, when one is set).
    fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(bytes, d.total_mem as usize) }
    }

    /// `cuDeviceGetAttribute`
    fn cuDeviceGetAttribute(value: *mut i32, attrib: i32, dev: CUdevice) {
        let (_, d) = device(dev)?;
        if value.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let v = d.attribute(attrib).ok_or(CuError::INVALID_VALUE)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(value, v) }
    }

    /// `cuDeviceComputeCapability`
    fn cuDeviceComputeCapability(major: *mut i32, minor: *mut i32, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: out-pointers from the caller.
        unsafe {
            write_out(major, d.cc_major)?;
            write_out(minor, d.cc_minor)
        }
    }

    /// `cuDeviceGetUuid`
    fn cuDeviceGetUuid(uuid: *mut CUuuid, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(uuid, CUuuid { bytes: d.uuid }) }
    }

    /// `cuDeviceGetUuid_v2`
    fn cuDeviceGetUuid_v2(uuid: *mut CUuuid, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(uuid, CUuuid { bytes: d.uuid }) }
    }

    /// `cuDeviceGetPCIBusId`
    fn cuDeviceGetPCIBusId(bus_id: *mut c_char, len: i32, dev: CUdevice) {
        let (_, d) = device(dev)?;
        // SAFETY: the caller's buffer of `len` bytes.
        unsafe { write_c_string(bus_id, len, &d.pci_bus_id) }
    }

    /// `cuDeviceGetByPCIBusId`: the full (`dddd:bb:dd.f`) or short (`bb:dd.f`) form.
    fn cuDeviceGetByPCIBusId(dev: *mut CUdevice, bus_id: *const c_char) {
        let rt = runtime()?;
        // SAFETY: NUL-terminated string from the caller.
        let text = unsafe { c_str(bus_id) }?.trim().to_ascii_lowercase();
        let found = rt.devices.iter().find(|d| {
            let ours = d.pci_bus_id.to_ascii_lowercase();
            let short = ours.split_once(':').map(|(_, rest)| rest.to_string()).unwrap_or_default();
            text == ours || text == short
        });
        let d = found.ok_or(CuError::INVALID_DEVICE)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(dev, d.ordinal) }
    }

    /// `cuDeviceCanAccessPeer`: no peer access between tenants' devices.
    fn cuDeviceCanAccessPeer(can: *mut i32, dev: CUdevice, peer: CUdevice) {
        device(dev)?;
        device(peer)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(can, 0) }
    }

    /// `cuDeviceGetP2PAttribute`: there are no peer pairs.
    fn cuDeviceGetP2PAttribute(value: *mut i32, attrib: i32, src: CUdevice, dst: CUdevice) {
        let _ = (value, attrib);
        device(src)?;
        device(dst)?;
        Err(CuError::INVALID_DEVICE)
    }
}
