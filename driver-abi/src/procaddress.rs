//! `cuGetProcAddress` (v1 and `_v2`) resolution, shared by every gpushare driver library.
//!
//! libcudart does not `dlsym` the driver: it resolves every entry point through
//! `cuGetProcAddress_v2(base name, &pfn, cudaVersion, flags, &status)`. Resolution follows the
//! generated [`PROC_TABLE`] (from NVIDIA's cudaTypedefs.h and cuda.h):
//!
//! - `symbol` is a base name (`cuMemAlloc`, not `cuMemAlloc_v2`). The answer is the newest legacy
//!   variant introduced at or before `cudaVersion` (`cuMemAlloc` for 2000..3019, `cuMemAlloc_v2`
//!   from 3020).
//! - `flags`: `CU_GET_PROC_ADDRESS_DEFAULT` (0) and `_LEGACY_STREAM` (1) give legacy-stream
//!   variants. The documented default follows the caller's compile-time per-thread setting, which
//!   the driver cannot see: cuda.h's inline wrapper adds `_PER_THREAD_DEFAULT_STREAM` itself when
//!   the caller compiles with per-thread default streams, so 0 reaching the driver means legacy.
//!   `_PER_THREAD_DEFAULT_STREAM` (2) gives the `_ptds`/`_ptsz` form of the chosen variant where
//!   one exists by `cudaVersion`, else the legacy one. Other bits, or 1 and 2 together:
//!   `CUDA_ERROR_INVALID_VALUE`.
//! - Unknown base name (including libcudart's first probe, the empty string): `*pfn = NULL`, status
//!   `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`. Known, but every variant newer than `cudaVersion`:
//!   `*pfn = NULL`, status `CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT`. Both return
//!   `CUDA_ERROR_NOT_FOUND`, as NVIDIA's driver does (cuda.h's comment says `CUDA_SUCCESS`; callers
//!   that follow it check `pfn`/status, which are set either way).
//! - A variant the library does not implement resolves to its exported stub (status SUCCESS),
//!   which returns `CUDA_ERROR_NOT_SUPPORTED` when called. NVIDIA's driver hands out a pointer for
//!   every name it knows and libcudart looks up hundreds of them at start-up, treating a missing
//!   one as a driver too old for the runtime; a stub keeps start-up working and fails only the
//!   calls that are actually made, with a log line naming them.
//! - NULL `symbol` or `pfn`: `CUDA_ERROR_INVALID_VALUE` (and `*pfn = NULL` where `pfn` is not).
//!
//! [`ProcResolver`] is a `HashMap` from base name to its variants, with addresses from the
//! library's implemented exports and its generated NOT_SUPPORTED stubs; a library builds it once.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};

use crate::error::{CuError, CuResult};
use crate::export::Export;
use crate::proc_table::PROC_TABLE;
use crate::sys::write_out;

/// `CU_GET_PROC_ADDRESS_LEGACY_STREAM`
pub const CU_GET_PROC_ADDRESS_LEGACY_STREAM: u64 = 1 << 0;
/// `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM`
pub const CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM: u64 = 1 << 1;

/// `CUdriverProcAddressQueryResult`
pub type CUdriverProcAddressQueryResult = i32;
/// `CU_GET_PROC_ADDRESS_SUCCESS`
pub const CU_GET_PROC_ADDRESS_SUCCESS: CUdriverProcAddressQueryResult = 0;
/// `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`
pub const CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND: CUdriverProcAddressQueryResult = 1;
/// `CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT`
pub const CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT: CUdriverProcAddressQueryResult = 2;

/// One resolvable variant of a base name.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    /// The CUDA version that introduced it.
    pub version: i32,
    /// The exported symbol, e.g. `cuMemAlloc_v2`.
    pub symbol: &'static str,
    /// A `_ptds`/`_ptsz` variant.
    pub per_thread: bool,
    /// The function's address.
    pub addr: usize,
    /// Implemented by a family module (false: an unsupported stub).
    pub supported: bool,
}

/// Why a lookup found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// No such base name.
    SymbolNotFound,
    /// Every variant is newer than the requested version.
    VersionNotSufficient,
}

impl Miss {
    fn status(self) -> CUdriverProcAddressQueryResult {
        match self {
            Miss::SymbolNotFound => CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
            Miss::VersionNotSufficient => CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
        }
    }
}

/// Base name -> its variants (oldest first), with the addresses of one library's exports.
#[derive(Debug)]
pub struct ProcResolver {
    map: HashMap<&'static str, Vec<Resolved>>,
}

impl ProcResolver {
    /// Builds the table from a library's implemented entry points and its NOT_SUPPORTED stubs
    /// (an implemented entry point wins over a stub of the same name).
    pub fn new<'a>(
        implemented: impl IntoIterator<Item = &'a Export>,
        stubs: impl IntoIterator<Item = &'a Export>,
    ) -> ProcResolver {
        let mut addrs: HashMap<&'static str, (usize, bool)> = HashMap::new();
        for e in implemented {
            addrs.insert(e.name, (e.addr as usize, true));
        }
        for e in stubs {
            addrs.entry(e.name).or_insert((e.addr as usize, false));
        }
        let mut map: HashMap<&'static str, Vec<Resolved>> =
            HashMap::with_capacity(PROC_TABLE.len());
        // PROC_TABLE is sorted by base, then version, so each list is oldest first.
        for e in PROC_TABLE {
            let Some(&(addr, supported)) = addrs.get(e.symbol) else {
                // Only when the generated files are stale (or an entry point bypasses
                // the declaration): the surface tests report it.
                crate::export::log_quietly(
                    || tracing::warn!(target: "gpushare::api", "cuGetProcAddress: {} has no address", e.symbol),
                );
                continue;
            };
            map.entry(e.base).or_default().push(Resolved {
                version: e.version,
                symbol: e.symbol,
                per_thread: e.per_thread,
                addr,
                supported,
            });
        }
        ProcResolver { map }
    }

    /// Builds the table from every symbol of a library with whether it is supported (the
    /// generated layer's `EXPORTS`).
    pub fn with_support<'a>(symbols: impl IntoIterator<Item = (&'a Export, bool)>) -> ProcResolver {
        let (supported, stubs): (Vec<_>, Vec<_>) = symbols.into_iter().partition(|(_, s)| *s);
        ProcResolver::new(
            supported.into_iter().map(|(e, _)| e),
            stubs.into_iter().map(|(e, _)| e),
        )
    }

    /// Resolves `base` as `cuGetProcAddress` does for `version` and the per-thread flag.
    pub fn resolve(&self, base: &str, version: i32, per_thread: bool) -> Result<Resolved, Miss> {
        let variants = self.map.get(base).ok_or(Miss::SymbolNotFound)?;
        let legacy = variants
            .iter()
            .rev()
            .find(|v| !v.per_thread && v.version <= version)
            .ok_or(Miss::VersionNotSufficient)?;
        if per_thread {
            if let Some(pt) = variants.iter().rev().find(|v| {
                v.per_thread
                    && v.version <= version
                    && is_per_thread_form_of(v.symbol, legacy.symbol)
            }) {
                return Ok(*pt);
            }
        }
        Ok(*legacy)
    }

    /// The shared body of both `cuGetProcAddress` entry points.
    ///
    /// # Safety
    /// `symbol` must be NULL or NUL-terminated; `pfn` and `status` NULL or valid for writes.
    pub unsafe fn get_proc_address(
        &self,
        symbol: *const c_char,
        pfn: *mut *mut c_void,
        version: i32,
        flags: u64,
        status: *mut CUdriverProcAddressQueryResult,
    ) -> CuResult {
        if pfn.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: non-null and valid for a write per the caller's contract. Every failure leaves NULL.
        unsafe { write_out(pfn, std::ptr::null_mut()) }?;
        if symbol.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let known =
            CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
        if flags & !known != 0 || flags == known {
            return Err(CuError::INVALID_VALUE);
        }
        let per_thread = flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM != 0;
        // SAFETY: non-null and NUL-terminated per the caller's contract.
        let name = unsafe { CStr::from_ptr(symbol) };
        // A name that is not UTF-8 is no driver symbol.
        let found = name
            .to_str()
            .map_err(|_| Miss::SymbolNotFound)
            .and_then(|base| self.resolve(base, version, per_thread));
        let (addr, query) = match found {
            Ok(r) => {
                crate::export::log_quietly(|| {
                    tracing::trace!(target: "gpushare::api",
                    "cuGetProcAddress({name:?}, {version}, {flags}) -> {}{}",
                    r.symbol, if r.supported { "" } else { " (unsupported stub)" })
                });
                (r.addr as *mut c_void, CU_GET_PROC_ADDRESS_SUCCESS)
            }
            Err(miss) => {
                crate::export::log_quietly(|| {
                    tracing::debug!(target: "gpushare::api",
                    "cuGetProcAddress({name:?}, {version}, {flags}) -> {miss:?}")
                });
                (std::ptr::null_mut(), miss.status())
            }
        };
        // SAFETY: `pfn` is non-null and valid for a write per the caller's contract.
        unsafe { write_out(pfn, addr) }?;
        if !status.is_null() {
            // SAFETY: non-null, valid for a write per the caller's contract.
            unsafe { write_out(status, query) }?;
        }
        if query == CU_GET_PROC_ADDRESS_SUCCESS {
            Ok(())
        } else {
            Err(CuError::NOT_FOUND)
        }
    }
}

/// Whether `pt` is the `_ptds`/`_ptsz` form of `legacy`.
fn is_per_thread_form_of(pt: &str, legacy: &str) -> bool {
    pt.strip_prefix(legacy)
        .is_some_and(|rest| rest == "_ptds" || rest == "_ptsz")
}
