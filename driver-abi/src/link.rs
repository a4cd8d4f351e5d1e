//! The driver linker (`cuLinkCreate`, `cuLinkAddData`, `cuLinkAddFile`, `cuLinkComplete`,
//! `cuLinkDestroy`), run locally and identically by both libraries over
//! [`gpushare_ptx::link_ptx`]: the linked image is PTX text, which the caller then loads with
//! `cuModuleLoadData` (the CPU device interprets it; through the shim a real driver JIT-compiles
//! it at load).
//!
//! Inputs: `CU_JIT_INPUT_PTX`, and `CU_JIT_INPUT_FATBINARY` (its PTX, chosen by the library as its
//! module loader chooses). Cubins, objects, libraries and NVVM IR: `CUDA_ERROR_NOT_SUPPORTED`,
//! said in the error log. Options of `cuLinkCreate`: the info and error log buffers and their
//! sizes (written at every add and at complete, NUL-terminated, sizes written back),
//! `CU_JIT_LOG_VERBOSE` (the info log also lists the inputs), `CU_JIT_WALL_TIME` (the link's wall
//! time in ms); every other option (register caps, threads per block, optimisation level,
//! targets, `CU_JIT_GENERATE_*`, caches) is accepted and ignored: PTX is linked as text, nothing
//! is compiled here. Per-input options of `cuLinkAdd*` are checked for shape and ignored.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::checks::jit::JitLogs;
use crate::cuda_h::CUjitOption;
use crate::error::{CuError, CuResult};
use crate::surface::Out;

/// `CUlinkState`
pub type CUlinkState = *mut c_void;

/// `CU_JIT_LOG_VERBOSE`
pub const JIT_LOG_VERBOSE: CUjitOption = 12;

/// `CUjitInputType` values.
pub mod input {
    /// `CU_JIT_INPUT_CUBIN`
    pub const CUBIN: u32 = 0;
    /// `CU_JIT_INPUT_PTX`
    pub const PTX: u32 = 1;
    /// `CU_JIT_INPUT_FATBINARY`
    pub const FATBINARY: u32 = 2;
    /// `CU_JIT_INPUT_OBJECT`
    pub const OBJECT: u32 = 3;
    /// `CU_JIT_INPUT_LIBRARY`
    pub const LIBRARY: u32 = 4;
    /// `CU_JIT_INPUT_NVVM`
    pub const NVVM: u32 = 5;
}

/// The caller's log buffers, named at `cuLinkCreate` and written until `cuLinkDestroy`.
struct CallerLogs(JitLogs<'static>);

// SAFETY: the pointers in `JitLogs` are the caller's option values and log buffers, which CUDA
// requires to stay valid from `cuLinkCreate` until `cuLinkDestroy`; they are only dereferenced
// inside `cuLink*` calls on this state, one at a time under the table's mutex, on whatever thread
// the caller makes them (as the real driver does).
unsafe impl Send for CallerLogs {}

/// One link in progress.
struct LinkState {
    logs: CallerLogs,
    verbose: bool,
    units: Vec<(String, String)>,
    /// The linked image (NUL-terminated PTX): the pointer `cuLinkComplete` returned stays valid
    /// until `cuLinkDestroy`.
    output: Option<Box<[u8]>>,
}

/// A library's link states, by handle.
pub struct LinkTable {
    states: Mutex<Option<HashMap<usize, LinkState>>>,
    next: AtomicUsize,
}

impl Default for LinkTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Handles are `BASE + 16 * n`: non-NULL, distinct, never reused within a process.
const BASE: usize = 0x4c49_4e4b_0000;

impl LinkTable {
    /// An empty table (for a `static`).
    pub const fn new() -> LinkTable {
        LinkTable {
            states: Mutex::new(None),
            next: AtomicUsize::new(1),
        }
    }

    fn with<T>(
        &self,
        handle: CUlinkState,
        f: impl FnOnce(&mut LinkState) -> CuResult<T>,
    ) -> CuResult<T> {
        let mut g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let state = g
            .get_or_insert_with(HashMap::new)
            .get_mut(&(handle as usize))
            .ok_or(CuError::INVALID_HANDLE)?;
        f(state)
    }

    /// `cuLinkCreate`: a new state whose logs go to the buffers in `options`.
    ///
    /// # Safety
    /// `options`/`values` hold `n` entries (or `n` is 0), and the log buffers and the value array
    /// they name stay valid until [`destroy`](Self::destroy), as CUDA requires.
    pub unsafe fn create(
        &self,
        n: u32,
        options: *const CUjitOption,
        values: *mut *mut c_void,
        out: Out<'_, CUlinkState>,
    ) -> CuResult {
        // SAFETY: the caller's contract, for the life of the state.
        let logs = unsafe { JitLogs::parse(n, options, values)? };
        let verbose = (0..n as usize).any(|i| {
            // SAFETY: `parse` accepted the arrays, which hold `n` entries.
            let (o, v) = unsafe { (options.add(i).read(), values.add(i).read()) };
            o == JIT_LOG_VERBOSE && !v.is_null()
        });
        let handle = BASE + 16 * self.next.fetch_add(1, Ordering::Relaxed);
        let state = LinkState {
            logs: CallerLogs(logs),
            verbose,
            units: Vec::new(),
            output: None,
        };
        let mut g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert_with(HashMap::new).insert(handle, state);
        drop(g);
        out.write(handle as CUlinkState)
    }

    /// `cuLinkAddData`: `data` holds `size` bytes of an input of `kind`; `fatbin_ptx` takes the
    /// PTX out of a fatbin as the library's module loader does.
    ///
    /// # Safety
    /// `data` is NULL or readable for `size` bytes; `name` is NULL or a C string; `options` and
    /// `values` hold `n` entries (or `n` is 0).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn add_data(
        &self,
        handle: CUlinkState,
        kind: u32,
        data: *mut c_void,
        size: usize,
        name: *const c_char,
        n: u32,
        options: *mut CUjitOption,
        values: *mut *mut c_void,
        fatbin_ptx: &dyn Fn(&[u8]) -> CuResult<String>,
    ) -> CuResult {
        let name = if name.is_null() {
            String::new()
        } else {
            // SAFETY: a C string, per the caller.
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        self.with(handle, |state| {
            // SAFETY: the caller's contract; the per-input options are only checked.
            unsafe { JitLogs::parse(n, options, values)? };
            if data.is_null() || size == 0 {
                return Err(CuError::INVALID_VALUE);
            }
            // SAFETY: readable for `size` bytes, per the caller.
            let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) };
            state.add(kind, bytes, name, fatbin_ptx)
        })
    }

    /// `cuLinkAddFile`: the input is the file at `path`.
    ///
    /// # Safety
    /// As [`add_data`](Self::add_data) for the options.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn add_file(
        &self,
        handle: CUlinkState,
        kind: u32,
        path: &str,
        n: u32,
        options: *mut CUjitOption,
        values: *mut *mut c_void,
        fatbin_ptx: &dyn Fn(&[u8]) -> CuResult<String>,
    ) -> CuResult {
        self.with(handle, |state| {
            // SAFETY: the caller's contract; the per-input options are only checked.
            unsafe { JitLogs::parse(n, options, values)? };
            let bytes = std::fs::read(path).map_err(|e| {
                state.fail(&format!("error: cannot read '{path}': {e}"));
                CuError::FILE_NOT_FOUND
            })?;
            state.add(kind, &bytes, path.to_string(), fatbin_ptx)
        })
    }

    /// `cuLinkComplete`: links the inputs; the image stays valid until `cuLinkDestroy`.
    pub fn complete(
        &self,
        handle: CUlinkState,
        image: Out<'_, *mut c_void>,
        size: Out<'_, usize>,
    ) -> CuResult {
        self.with(handle, |state| {
            let (ptr, len) = state.complete()?;
            image.write(ptr)?;
            size.write(len)
        })
    }

    /// `cuLinkDestroy`
    pub fn destroy(&self, handle: CUlinkState) -> CuResult {
        let mut g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert_with(HashMap::new)
            .remove(&(handle as usize))
            .map(|_| ())
            .ok_or(CuError::INVALID_HANDLE)
    }
}

impl LinkState {
    /// Writes `message` to the error log (and nothing to the info log).
    fn fail(&self, message: &str) {
        crate::export::log_quietly(|| tracing::warn!(target: "gpushare::api", "cuLink: {message}"));
        self.logs.0.finish("", message);
    }

    fn add(
        &mut self,
        kind: u32,
        bytes: &[u8],
        name: String,
        fatbin_ptx: &dyn Fn(&[u8]) -> CuResult<String>,
    ) -> CuResult {
        let name = if name.is_empty() {
            format!("input{}", self.units.len())
        } else {
            name
        };
        let text = match kind {
            input::PTX => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                std::str::from_utf8(&bytes[..end])
                    .map(str::to_owned)
                    .map_err(|_| {
                        self.fail(&format!("error in input '{name}': PTX is not UTF-8 text"));
                        CuError::INVALID_PTX
                    })?
            }
            input::FATBINARY => fatbin_ptx(bytes).inspect_err(|_| {
                self.fail(&format!(
                    "error in input '{name}': the fatbin has no usable PTX"
                ));
            })?,
            input::CUBIN | input::OBJECT | input::LIBRARY | input::NVVM => {
                self.fail(&format!(
                    "error in input '{name}': input type {kind} is not supported; gpushare links PTX (and the PTX of fatbins) only"
                ));
                return Err(CuError::NOT_SUPPORTED);
            }
            _ => return Err(CuError::INVALID_VALUE),
        };
        if let Err(e) = gpushare_ptx::check_unit(&text) {
            self.fail(&format!("error in input '{name}': {e}"));
            return Err(CuError::INVALID_PTX);
        }
        self.units.push((name, text));
        self.output = None;
        Ok(())
    }

    fn complete(&mut self) -> CuResult<(*mut c_void, usize)> {
        let start = Instant::now();
        let units: Vec<gpushare_ptx::LinkUnit<'_>> = self
            .units
            .iter()
            .map(|(name, ptx)| gpushare_ptx::LinkUnit { name, ptx })
            .collect();
        let linked = match gpushare_ptx::link_ptx(&units) {
            Ok(l) => l,
            Err(e) => {
                let code = match e {
                    gpushare_ptx::LinkError::NoInput => CuError::INVALID_VALUE,
                    _ => CuError::INVALID_PTX,
                };
                self.fail(&e.to_string());
                return Err(code);
            }
        };
        let mut info = format!("info: {}", linked.info);
        if self.verbose {
            for (i, (name, ptx)) in self.units.iter().enumerate() {
                info.push_str(&format!(
                    "\ninfo: input {i} '{name}': {} bytes of PTX",
                    ptx.len()
                ));
            }
        }
        let mut image = linked.ptx.into_bytes();
        image.push(0);
        let image = self.output.insert(image.into_boxed_slice());
        let ms = start.elapsed().as_secs_f32() * 1000.0;
        self.logs.0.finish_timed(&info, "", ms);
        Ok((image.as_mut_ptr().cast(), image.len()))
    }
}
