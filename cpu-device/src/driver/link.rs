//! The driver linker (`cuLink*`): the shared link states of [`gpushare_driver_abi::link`], whose
//! linked image is one PTX program that `cuModuleLoadData` then loads. A fatbin input gives the
//! PTX the module loader would take from it for this device ([`crate::exec::image`]).

use std::ffi::{c_char, c_void};

use gpushare_driver_abi::cuda_h::CUjitOption;
use gpushare_driver_abi::link::{CUlinkState, LinkTable};
use gpushare_driver_abi::surface::Out;

use crate::error::CuResult;
use crate::exec::image;
use crate::state;
use crate::CpuDevice;

/// This library's link states.
static LINKS: LinkTable = LinkTable::new();

/// The SM version of the device of the current context (which a link requires).
fn current_sm() -> CuResult<u32> {
    let (d, _ctx) = state::current()?;
    let (major, minor) = d.profile.compute_capability;
    Ok(major * 10 + minor)
}

gpushare_driver_abi::implement! {
    impl Link for CpuDevice {
        unsafe fn link_create(n: u32, options: *mut CUjitOption, values: *mut *mut c_void, out: Out<'_, CUlinkState>) -> CuResult {
            current_sm()?;
            // SAFETY: the caller's contract (cuLinkCreate's), forwarded.
            unsafe { LINKS.create(n, options, values, out) }
        }
        unsafe fn link_add_data(state: CUlinkState, kind: u32, data: *mut c_void, size: usize, name: *const c_char, n: u32, options: *mut CUjitOption, values: *mut *mut c_void) -> CuResult {
            let sm = current_sm()?;
            let ptx = |bytes: &[u8]| image::ptx_from_bytes(bytes, sm);
            // SAFETY: the caller's contract (cuLinkAddData's), forwarded.
            unsafe { LINKS.add_data(state, kind, data, size, name, n, options, values, &ptx) }
        }
        unsafe fn link_add_file(state: CUlinkState, kind: u32, path: &str, n: u32, options: *mut CUjitOption, values: *mut *mut c_void) -> CuResult {
            let sm = current_sm()?;
            let ptx = |bytes: &[u8]| image::ptx_from_bytes(bytes, sm);
            // SAFETY: the caller's contract (cuLinkAddFile's), forwarded.
            unsafe { LINKS.add_file(state, kind, path, n, options, values, &ptx) }
        }
        fn link_complete(state: CUlinkState, image: Out<'_, *mut c_void>, size: Out<'_, usize>) -> CuResult {
            current_sm()?;
            LINKS.complete(state, image, size)
        }
        fn link_destroy(state: CUlinkState) -> CuResult {
            LINKS.destroy(state)
        }
    }
}
