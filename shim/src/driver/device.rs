//! Device queries, answered from the snapshot the broker sent at connect time (no round trip).

use gpushare_client::proto::DeviceInfo;
use gpushare_driver_abi::checks;
use gpushare_driver_abi::surface::prelude::*;
use gpushare_driver_abi::sys::write_c_string;

use crate::runtime::runtime;
use crate::Shim;

/// The device `dev` names.
fn device(dev: CUdevice) -> CuResult<&'static DeviceInfo> {
    runtime()?.device(dev)
}

gpushare_driver_abi::implement! {
    impl Device for Shim {
        /// `cuDeviceGetCount`
        fn device_get_count(count: Out<'_, i32>) -> CuResult {
            count.write(runtime()?.devices.len() as i32)
        }

        /// `cuDeviceGet`
        fn device_get(dev: Out<'_, CUdevice>, ordinal: i32) -> CuResult {
            runtime()?.device(ordinal)?;
            dev.write(ordinal)
        }

        /// `cuDeviceGetName`
        unsafe fn device_get_name(name: *mut c_char, len: i32, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            // SAFETY: the caller's buffer holds `len` bytes (write_c_string checks NULL and len).
            unsafe { write_c_string(name, len, &d.name) }
        }

        /// `cuDeviceTotalMem`: the tenant's view (its quota, when one is set).
        fn device_total_mem(bytes: Out<'_, usize>, dev: CUdevice) -> CuResult {
            bytes.write(device(dev)?.total_mem as usize)
        }

        /// `cuDeviceGetAttribute`
        fn device_get_attribute(value: Out<'_, i32>, attrib: i32, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            value.write(d.attribute(attrib).ok_or(CuError::INVALID_VALUE)?)
        }

        /// `cuDeviceComputeCapability`
        fn device_compute_capability(major: Out<'_, i32>, minor: Out<'_, i32>, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            major.write(d.cc_major)?;
            minor.write(d.cc_minor)
        }

        /// `cuDeviceGetUuid`
        fn device_get_uuid(uuid: Out<'_, CUuuid>, dev: CUdevice) -> CuResult {
            uuid.write(CUuuid { bytes: device(dev)?.uuid })
        }

        /// `cuDeviceGetPCIBusId`
        unsafe fn device_get_pci_bus_id(bus_id: *mut c_char, len: i32, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            // SAFETY: the caller's buffer holds `len` bytes (write_c_string checks NULL and len).
            unsafe { write_c_string(bus_id, len, &d.pci_bus_id) }
        }

        /// `cuDeviceGetByPCIBusId`: the full (`dddd:bb:dd.f`) or short (`bb:dd.f`) form.
        fn device_get_by_pci_bus_id(dev: Out<'_, CUdevice>, bus_id: &str) -> CuResult {
            let rt = runtime()?;
            let found = rt
                .devices
                .iter()
                .find(|d| checks::pci_bus_id_matches(bus_id, &d.pci_bus_id));
            dev.write(found.ok_or(CuError::INVALID_DEVICE)?.ordinal)
        }

        /// `cuDeviceCanAccessPeer`: no peer access between tenants' devices.
        fn device_can_access_peer(can: Out<'_, i32>, dev: CUdevice, peer: CUdevice) -> CuResult {
            device(dev)?;
            device(peer)?;
            can.write(0)
        }

        /// `cuDeviceGetP2PAttribute`: there are no peer pairs.
        fn device_get_p2p_attribute(value: Out<'_, i32>, attrib: i32, src: CUdevice, dst: CUdevice) -> CuResult {
            let _ = (value, attrib);
            device(src)?;
            device(dst)?;
            Err(CuError::INVALID_DEVICE)
        }
    }
}
