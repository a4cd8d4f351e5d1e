//! Modules, functions, libraries and library kernels.
//!
//! A module is a parsed PTX module instantiated in one context: its `.global`/`.const` variables
//! are allocated in device memory at load (with their initialisers) and freed when the module is
//! dropped. A library (`cuLibrary*`) is context-independent: it keeps the parsed PTX and
//! instantiates a module per context on first use. A `CUkernel` names a kernel of a library and
//! resolves to a `CUfunction` of the current context's instance.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex};

use gpushare_driver_abi::checks::legacy::LegacyLaunch;

use super::image;
use super::Executor;
use crate::context::Context;
use crate::error::{CuError, CuResult};
use crate::memory::DeviceMemory;
use crate::profile::DeviceProfile;

/// One module variable in device memory.
#[derive(Clone, Debug)]
pub struct DeviceGlobal {
    /// Variable name.
    pub name: String,
    /// Device address.
    pub dptr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A module instantiated in a context.
pub struct LoadedModule {
    /// Owning context.
    pub ctx: u64,
    /// The parsed PTX (shared with the library and other instances).
    pub ptx: Arc<gpushare_ptx::Module>,
    /// `.target sm_NN` of the PTX.
    pub target: u32,
    /// Device copies of the module's variables, in `ptx.globals()` order.
    pub globals: Vec<DeviceGlobal>,
    /// Their addresses, as `gpushare_ptx::launch` wants them.
    pub global_addrs: Vec<u64>,
    /// The library this instance belongs to (0 for `cuModuleLoad*` modules).
    pub library: u64,
    /// Function handles already handed out, by name.
    functions: Mutex<HashMap<String, u64>>,
    /// The memory `globals` live in (freed on drop).
    memory: Arc<DeviceMemory>,
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        for g in &self.globals {
            let _ = self.memory.free(g.dptr);
        }
    }
}

/// Per-function settings (`cuFuncSetAttribute`, `cuFuncSetCacheConfig`).
#[derive(Clone, Copy, Debug)]
pub struct FuncAttrs {
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`
    pub max_dynamic_shared: u32,
    /// `CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT` (-1 = default)
    pub carveout: i32,
    /// `CUfunc_cache`
    pub cache_config: i32,
}

/// A `CUfunction`: a kernel of a loaded module.
pub struct Function {
    /// The module instance.
    pub module: Arc<LoadedModule>,
    /// The module's handle.
    pub module_handle: u64,
    /// Kernel name (for `cuFuncGetName`).
    pub name: CString,
    /// Settings (shared with the `CUkernel` for library kernels).
    pub attrs: Arc<Mutex<FuncAttrs>>,
    /// What the deprecated `cuFuncSetBlockShape`/`cuParamSet*` calls set (for `cuLaunch*`).
    pub legacy: Mutex<LegacyLaunch>,
}

impl Function {
    /// The parsed kernel.
    pub fn kernel(&self) -> CuResult<&gpushare_ptx::Kernel> {
        self.module
            .ptx
            .kernel(self.name.to_str().unwrap_or_default())
            .ok_or(CuError::INVALID_HANDLE)
    }

    /// The kernel name as UTF-8.
    pub fn name_str(&self) -> &str {
        self.name.to_str().unwrap_or_default()
    }
}

/// A `CUlibrary`.
pub struct Library {
    /// The parsed PTX.
    pub ptx: Arc<gpushare_ptx::Module>,
    /// `.target sm_NN` of the PTX.
    pub target: u32,
    /// Module instance per context: context id → module handle.
    instances: Mutex<HashMap<u64, u64>>,
    /// Kernel handles already handed out, by name.
    kernels: Mutex<HashMap<String, u64>>,
}

/// A `CUkernel`.
pub struct KernelObj {
    /// The library.
    pub library: Arc<Library>,
    /// The library's handle.
    pub library_handle: u64,
    /// Kernel name.
    pub name: CString,
    /// Settings applied to every context's function.
    pub attrs: Arc<Mutex<FuncAttrs>>,
}

impl KernelObj {
    /// The parsed kernel.
    pub fn kernel(&self) -> CuResult<&gpushare_ptx::Kernel> {
        self.library
            .ptx
            .kernel(self.name.to_str().unwrap_or_default())
            .ok_or(CuError::INVALID_HANDLE)
    }
}

/// A load failure with the text for the JIT error log.
#[derive(Debug)]
pub struct LoadError {
    /// The result code.
    pub code: CuError,
    /// What went wrong.
    pub message: String,
}

impl From<CuError> for LoadError {
    fn from(code: CuError) -> Self {
        LoadError {
            code,
            message: format!("module image rejected: {}", code.name()),
        }
    }
}

/// Parses PTX text. Malformed PTX, and PTX using a feature the interpreter does not implement,
/// give `INVALID_PTX` (as a JIT failure does on real hardware), logged with the parser's message.
pub fn compile(text: &str) -> Result<Arc<gpushare_ptx::Module>, LoadError> {
    gpushare_ptx::Module::load(text).map(Arc::new).map_err(|e| {
        match e {
            gpushare_ptx::PtxError::Unsupported { .. } => {
                tracing::warn!("PTX uses something the CPU device does not support: {e}")
            }
            _ => tracing::warn!("PTX rejected: {e}"),
        }
        LoadError {
            code: CuError::INVALID_PTX,
            message: e.to_string(),
        }
    })
}

/// Fails with `OUT_OF_MEMORY`, before anything is allocated, when the module's variables
/// (each charged as the device charges an allocation: rounded up to whole pages) do not fit in
/// the device's free memory. Sizes come from the PTX, so the sum is checked arithmetic.
fn check_globals_fit(memory: &DeviceMemory, ptx: &gpushare_ptx::Module) -> CuResult {
    let page = crate::memory::PAGE;
    let need = ptx.globals().iter().try_fold(0u64, |sum, var| {
        let size = u64::try_from(var.size).ok()?.max(1);
        sum.checked_add(size.checked_next_multiple_of(page)?)
    });
    let free = memory.free_bytes();
    match need {
        Some(need) if need <= free => Ok(()),
        _ => {
            tracing::warn!(
                "module variables need {} bytes of device memory, {free} free",
                need.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            );
            Err(CuError::OUT_OF_MEMORY)
        }
    }
}

fn default_attrs(profile: &DeviceProfile, kernel: Option<&gpushare_ptx::Kernel>) -> FuncAttrs {
    let static_shared = kernel.map_or(0, |k| k.static_shared_bytes());
    FuncAttrs {
        max_dynamic_shared: profile.shared_per_block.saturating_sub(static_shared),
        carveout: -1,
        cache_config: 0,
    }
}

impl Executor {
    /// Instantiates `ptx` in context `ctx`: allocates and initialises its variables.
    fn instantiate(
        &self,
        ctx: u64,
        ptx: Arc<gpushare_ptx::Module>,
        target: u32,
        library: u64,
    ) -> CuResult<u64> {
        let mut module = LoadedModule {
            ctx,
            ptx: Arc::clone(&ptx),
            target,
            globals: Vec::new(),
            global_addrs: Vec::new(),
            library,
            functions: Mutex::new(HashMap::new()),
            memory: Arc::clone(&self.memory),
        };
        check_globals_fit(&self.memory, &ptx)?;
        // On error, dropping `module` frees what was allocated so far.
        for var in ptx.globals() {
            let size = var.size as u64;
            let dptr = self.memory.alloc(ctx, size.max(1))?;
            module.globals.push(DeviceGlobal {
                name: var.name.clone(),
                dptr,
                size,
            });
            module.global_addrs.push(dptr);
        }
        for (var, g) in ptx.globals().iter().zip(&module.globals) {
            let init = var.resolved_init(&module.global_addrs);
            let n = init.len().min(var.size);
            let p = self.memory.device_range(g.dptr, n as u64, true)?;
            // SAFETY: `p` is valid for `n` bytes of writes (a fresh allocation of at least `n`
            // bytes); fresh allocations are zeroed, which covers uninitialised tails.
            unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), p, n) };
        }
        Ok(self.modules.insert(Arc::new(module)))
    }

    /// Loads PTX text as a module of `ctx`; returns the module handle.
    pub fn load_module(&self, ctx: &Context, text: &str) -> Result<u64, LoadError> {
        let ptx = compile(text)?;
        let target = image::sm_number(ptx.target());
        Ok(self.instantiate(ctx.id(), ptx, target, 0)?)
    }

    /// `cuModuleUnload`: the module's variables are freed once pending launches that use it finish.
    pub fn unload_module(&self, handle: u64) -> CuResult {
        let m = self.modules.get(handle).ok_or(CuError::INVALID_HANDLE)?;
        if m.library != 0 {
            tracing::warn!("cuModuleUnload on a library's module; unload the library instead");
            return Err(CuError::INVALID_HANDLE);
        }
        self.modules.remove(handle);
        self.functions.remove_where(|f| f.module_handle == handle);
        Ok(())
    }

    /// The function `name` of module `handle` (stable handle per name).
    pub fn module_function(&self, handle: u64, name: &str) -> CuResult<u64> {
        let m = self.modules.get(handle).ok_or(CuError::INVALID_HANDLE)?;
        let mut fns = m.functions.lock().map_err(|_| CuError::UNKNOWN)?;
        if let Some(&h) = fns.get(name) {
            return Ok(h);
        }
        let Some(kernel) = m.ptx.kernel(name) else {
            tracing::debug!("no kernel named {name:?} in module {handle:#x}");
            return Err(CuError::NOT_FOUND);
        };
        let attrs = match self.library_kernel_attrs(m.library, name) {
            Some(a) => a,
            None => Arc::new(Mutex::new(default_attrs(&self.profile, Some(kernel)))),
        };
        let f = Function {
            module: Arc::clone(&m),
            module_handle: handle,
            name: CString::new(name).map_err(|_| CuError::INVALID_VALUE)?,
            attrs,
            legacy: Mutex::new(LegacyLaunch::default()),
        };
        let h = self.functions.insert(Arc::new(f));
        fns.insert(name.to_owned(), h);
        Ok(h)
    }

    fn library_kernel_attrs(&self, library: u64, name: &str) -> Option<Arc<Mutex<FuncAttrs>>> {
        if library == 0 {
            return None;
        }
        let lib = self.libraries.get(library)?;
        let kh = *lib.kernels.lock().ok()?.get(name)?;
        Some(Arc::clone(&self.kernels.get(kh)?.attrs))
    }

    /// The variable `name` of module `handle`: (address, size).
    pub fn module_global(&self, handle: u64, name: &str) -> CuResult<(u64, u64)> {
        let m = self.modules.get(handle).ok_or(CuError::INVALID_HANDLE)?;
        m.globals
            .iter()
            .find(|g| g.name == name)
            .map(|g| (g.dptr, g.size))
            .ok_or(CuError::NOT_FOUND)
    }

    /// Resolves a `CUfunction` argument, which may also be a `CUkernel` (resolved in `ctx`).
    pub fn resolve_function(&self, ctx: &Context, raw: u64) -> CuResult<Arc<Function>> {
        if let Some(f) = self.functions.get(raw) {
            return Ok(f);
        }
        if self.kernels.get(raw).is_some() {
            let h = self.kernel_function(ctx, raw)?;
            return self.functions.get(h).ok_or(CuError::INVALID_HANDLE);
        }
        tracing::warn!("invalid function handle {raw:#x}");
        Err(CuError::INVALID_HANDLE)
    }

    /// Loads PTX text as a library; returns the library handle.
    pub fn load_library(&self, text: &str) -> Result<u64, LoadError> {
        let ptx = compile(text)?;
        let lib = Library {
            target: image::sm_number(ptx.target()),
            ptx,
            instances: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
        };
        Ok(self.libraries.insert(Arc::new(lib)))
    }

    /// `cuLibraryUnload`: drops every context's instance and the library's kernels.
    pub fn unload_library(&self, handle: u64) -> CuResult {
        let lib = self
            .libraries
            .remove(handle)
            .ok_or(CuError::INVALID_HANDLE)?;
        let instances: Vec<u64> = lib
            .instances
            .lock()
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        for m in instances {
            self.modules.remove(m);
            self.functions.remove_where(|f| f.module_handle == m);
        }
        self.kernels.remove_where(|k| k.library_handle == handle);
        Ok(())
    }

    /// The module instance of library `handle` in `ctx`, created on first use.
    pub fn library_module(&self, ctx: &Context, handle: u64) -> CuResult<u64> {
        let lib = self.libraries.get(handle).ok_or(CuError::INVALID_HANDLE)?;
        let mut inst = lib.instances.lock().map_err(|_| CuError::UNKNOWN)?;
        if let Some(&m) = inst.get(&ctx.id()) {
            if self.modules.get(m).is_some() {
                return Ok(m);
            }
        }
        let m = self.instantiate(ctx.id(), Arc::clone(&lib.ptx), lib.target, handle)?;
        inst.insert(ctx.id(), m);
        Ok(m)
    }

    /// The kernel `name` of library `handle` (stable handle per name).
    pub fn library_kernel(&self, handle: u64, name: &str) -> CuResult<u64> {
        let lib = self.libraries.get(handle).ok_or(CuError::INVALID_HANDLE)?;
        let mut ks = lib.kernels.lock().map_err(|_| CuError::UNKNOWN)?;
        if let Some(&h) = ks.get(name) {
            return Ok(h);
        }
        let Some(kernel) = lib.ptx.kernel(name) else {
            tracing::debug!("no kernel named {name:?} in library {handle:#x}");
            return Err(CuError::NOT_FOUND);
        };
        let k = KernelObj {
            library: Arc::clone(&lib),
            library_handle: handle,
            name: CString::new(name).map_err(|_| CuError::INVALID_VALUE)?,
            attrs: Arc::new(Mutex::new(default_attrs(&self.profile, Some(kernel)))),
        };
        let h = self.kernels.insert(Arc::new(k));
        ks.insert(name.to_owned(), h);
        Ok(h)
    }

    /// `cuKernelGetFunction`: the function of kernel `handle` in `ctx`.
    pub fn kernel_function(&self, ctx: &Context, handle: u64) -> CuResult<u64> {
        let k = self.kernels.get(handle).ok_or(CuError::INVALID_HANDLE)?;
        let m = self.library_module(ctx, k.library_handle)?;
        self.module_function(m, k.name.to_str().map_err(|_| CuError::INVALID_VALUE)?)
    }

    /// Drops every module and function of context `ctx` (and library instances in it).
    pub(crate) fn release_modules(&self, ctx: u64) {
        self.functions.remove_where(|f| f.module.ctx == ctx);
        self.modules.remove_where(|m| m.ctx == ctx);
        for (_, lib) in self.libraries.snapshot() {
            if let Ok(mut inst) = lib.instances.lock() {
                inst.remove(&ctx);
            }
        }
    }
}
