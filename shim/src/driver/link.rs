//! The driver linker (`cuLink*`), local: the shim links PTX itself with the shared link states of
//! [`gpushare_driver_abi::link`], and the linked image (one PTX program) reaches the broker only
//! when the tenant loads it with `cuModuleLoadData`, through the ordinary module path. No request
//! of the protocol is involved; on a real GPU the worker's driver JIT-compiles the linked PTX at
//! that load. A fatbin input gives the PTX the CPU device's loader would choose for the device
//! ([`gpushare_driver_abi::fatbin::select_ptx`]); a compressed PTX entry is `NOT_SUPPORTED` here.

use std::ffi::{c_char, c_void};

use gpushare_driver_abi::fatbin;
use gpushare_driver_abi::link::{CUlinkState, LinkTable};
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::{ctx_rt, current};
use crate::Shim;

/// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` / `_MINOR`
const ATTR_CC_MAJOR: i32 = 75;
const ATTR_CC_MINOR: i32 = 76;

/// This library's link states.
static LINKS: LinkTable = LinkTable::new();

/// The SM version of the device of the current context (which a link requires).
fn current_sm() -> CuResult<u32> {
    let rt = ctx_rt()?;
    let dev = rt.device(current()?.device)?;
    let cc = |a| dev.attribute(a).ok_or(CuError::INVALID_VALUE);
    Ok((cc(ATTR_CC_MAJOR)? * 10 + cc(ATTR_CC_MINOR)?).max(0) as u32)
}

gpushare_driver_abi::implement! {
    impl Link for Shim {
        unsafe fn link_create(n: u32, options: *mut CUjitOption, values: *mut *mut c_void, out: Out<'_, CUlinkState>) -> CuResult {
            current_sm()?;
            // SAFETY: the caller's contract (cuLinkCreate's), forwarded.
            unsafe { LINKS.create(n, options, values, out) }
        }
        unsafe fn link_add_data(state: CUlinkState, kind: u32, data: *mut c_void, size: usize, name: *const c_char, n: u32, options: *mut CUjitOption, values: *mut *mut c_void) -> CuResult {
            let sm = current_sm()?;
            let ptx = |bytes: &[u8]| fatbin::select_ptx(bytes, sm);
            // SAFETY: the caller's contract (cuLinkAddData's), forwarded.
            unsafe { LINKS.add_data(state, kind, data, size, name, n, options, values, &ptx) }
        }
        unsafe fn link_add_file(state: CUlinkState, kind: u32, path: &str, n: u32, options: *mut CUjitOption, values: *mut *mut c_void) -> CuResult {
            let sm = current_sm()?;
            let ptx = |bytes: &[u8]| fatbin::select_ptx(bytes, sm);
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
