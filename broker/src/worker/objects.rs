//! What a worker holds for the broker: its driver, and the objects the broker names by id —
//! streams, events, modules, functions (with their parameter layouts) and attached regions
//! (tenants' regions and host buffers, registered with the driver when asked).
//!
//! Ids are the worker's own (a counter); an unknown id is the broker's bug or a stale handle,
//! answered with `CUDA_ERROR_INVALID_HANDLE`, never a crash. Each table has its own lock; none is
//! held while another is taken or while the driver is called.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use gpushare_client::code;
use gpushare_client::os::Mapping;
use gpushare_client::proto::ParamInfo;

use super::driver::{
    DResult, DeviceError, Driver, Event, FunctionRaw, HostMem, HostRegistration, ModuleRaw, Stream,
};

/// A function with the layout its launches are packed by.
#[derive(Clone, Debug)]
pub struct Function {
    /// The driver's handle.
    pub raw: FunctionRaw,
    /// The module it belongs to.
    pub module: u64,
    /// Parameter layout (empty when the driver cannot tell: then launches pass one buffer).
    pub layout: Arc<[ParamInfo]>,
}

/// An attached region.
struct Attached {
    map: Arc<Mapping>,
    registration: Option<HostRegistration>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// An id the broker named that the worker does not know.
fn unknown(what: &'static str) -> DeviceError {
    tracing::warn!("unknown {what} id");
    DeviceError::Cuda {
        call: what,
        code: code::ERROR_INVALID_HANDLE,
    }
}

/// Per kernel name, which parameters the kernel may store through (`gpushare_ptx::writes`).
pub type KernelWrites = HashMap<String, Vec<bool>>;

/// A kernel found: its id, its parameter layout (`None`: the driver cannot tell), which
/// parameters it may store through (`None`: unknown).
pub type FoundFunction = (u64, Option<Vec<ParamInfo>>, Option<Vec<bool>>);

/// The worker's driver and tables.
pub struct Objects {
    /// The driver (the group's context).
    pub drv: Arc<Driver>,
    streams: RwLock<HashMap<u64, Arc<Stream>>>,
    events: RwLock<HashMap<u64, Arc<Event>>>,
    modules: RwLock<HashMap<u64, ModuleRaw>>,
    /// Per module loaded from PTX text: per kernel, which parameters it may store through.
    writes: RwLock<HashMap<u64, Arc<KernelWrites>>>,
    functions: RwLock<HashMap<u64, Function>>,
    regions: RwLock<HashMap<u32, Attached>>,
    next: AtomicU64,
}

impl Objects {
    /// Empty tables over `drv`.
    pub fn new(drv: Arc<Driver>) -> Objects {
        Objects {
            drv,
            streams: RwLock::default(),
            events: RwLock::default(),
            modules: RwLock::default(),
            writes: RwLock::default(),
            functions: RwLock::default(),
            regions: RwLock::default(),
            next: AtomicU64::new(1),
        }
    }

    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A stream by id.
    pub fn stream(&self, id: u64) -> DResult<Arc<Stream>> {
        read(&self.streams)
            .get(&id)
            .cloned()
            .ok_or_else(|| unknown("stream"))
    }

    /// Creates a stream; returns its id.
    pub fn add_stream(&self, flags: u32, priority: i32) -> DResult<u64> {
        let s = self.drv.stream_create(flags, priority)?;
        let id = self.id();
        write(&self.streams).insert(id, s);
        Ok(id)
    }

    /// Forgets a stream (its work still completes; the driver stream goes with the last
    /// reference, which pending host functions may hold).
    pub fn remove_stream(&self, id: u64) -> DResult<()> {
        write(&self.streams)
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| unknown("stream"))
    }

    /// An event by id.
    pub fn event(&self, id: u64) -> DResult<Arc<Event>> {
        read(&self.events)
            .get(&id)
            .cloned()
            .ok_or_else(|| unknown("event"))
    }

    /// Creates an event; returns its id.
    pub fn add_event(&self, flags: u32) -> DResult<u64> {
        let e = self.drv.event_create(flags)?;
        let id = self.id();
        write(&self.events).insert(id, e);
        Ok(id)
    }

    /// Forgets an event.
    pub fn remove_event(&self, id: u64) -> DResult<()> {
        write(&self.events)
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| unknown("event"))
    }

    /// A module by id.
    pub fn module(&self, id: u64) -> DResult<ModuleRaw> {
        read(&self.modules)
            .get(&id)
            .copied()
            .ok_or_else(|| unknown("module"))
    }

    /// Checks and loads an image whose module variables may take at most `max_globals` bytes
    /// of device memory (more: `CUDA_ERROR_OUT_OF_MEMORY`, before the driver sees the image);
    /// returns the module's id and the bytes its variables declare.
    pub fn load_module(&self, image: Vec<u8>, max_globals: u64) -> DResult<(u64, u64)> {
        let image = super::image::prepare_image(image).map_err(|e| DeviceError::Cuda {
            call: "cuModuleLoadData",
            code: e.code(),
        })?;
        let globals = super::globals::declared_bytes(&image);
        if globals > max_globals {
            return Err(DeviceError::Cuda {
                call: "cuModuleLoadData",
                code: code::ERROR_OUT_OF_MEMORY,
            });
        }
        let m = match super::image::with_slices(&image) {
            Some(sliced) => match self.drv.module_load(&sliced) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(
                        "the module with kernel slices did not load ({e}); loading it as given"
                    );
                    self.drv.module_load(&image)?
                }
            },
            None => self.drv.module_load(&image)?,
        };
        let id = self.id();
        write(&self.modules).insert(id, m);
        if let Some(w) = super::image::param_writes(&image) {
            write(&self.writes).insert(id, Arc::new(w));
        }
        Ok((id, globals))
    }

    /// Unloads a module and forgets its functions.
    pub fn unload_module(&self, id: u64) -> DResult<()> {
        let m = write(&self.modules)
            .remove(&id)
            .ok_or_else(|| unknown("module"))?;
        write(&self.functions).retain(|_, f| f.module != id);
        write(&self.writes).remove(&id);
        self.drv.module_unload(m)
    }

    /// A function by id.
    pub fn function(&self, id: u64) -> DResult<Function> {
        read(&self.functions)
            .get(&id)
            .cloned()
            .ok_or_else(|| unknown("function"))
    }

    /// Looks a kernel up by name; returns its id, its parameter layout, and per parameter
    /// whether it may store through it (when its module came as PTX text and the analysis
    /// agrees with the layout on the parameters).
    pub fn get_function(&self, module: u64, name: &std::ffi::CStr) -> DResult<FoundFunction> {
        let m = self.module(module)?;
        let raw = self.drv.module_get_function(m, name)?;
        let params = self.drv.func_param_info(raw)?;
        let may_write = read(&self.writes)
            .get(&module)
            .and_then(|w| w.get(name.to_str().ok()?).cloned())
            .filter(|w| params.as_ref().is_some_and(|p| p.len() == w.len()));
        let layout: Arc<[ParamInfo]> = params.clone().unwrap_or_default().into();
        let id = self.id();
        write(&self.functions).insert(
            id,
            Function {
                raw,
                module,
                layout,
            },
        );
        Ok((id, params, may_write))
    }

    /// `len` bytes at `offset` of attached region `id`.
    pub fn host_mem(&self, id: u32, offset: u64, len: u64) -> DResult<HostMem> {
        let map = read(&self.regions)
            .get(&id)
            .map(|a| Arc::clone(&a.map))
            .ok_or_else(|| unknown("region"))?;
        let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
            return Err(DeviceError::Invalid("host span does not fit"));
        };
        HostMem::new(map, offset, len).ok_or(DeviceError::Invalid("host span outside its region"))
    }

    /// The device address of byte `offset` of region `id`, which must be registered.
    pub fn host_device_ptr(&self, id: u32, offset: u64) -> DResult<u64> {
        read(&self.regions)
            .get(&id)
            .ok_or_else(|| unknown("region"))?
            .registration
            .as_ref()
            .map(|r| r.device_ptr() + offset)
            .ok_or(DeviceError::Invalid(
                "region not registered with the driver",
            ))
    }

    /// Copies `len` bytes at `offset` of region `id` out (module images).
    pub fn read_region(&self, id: u32, offset: u64, len: u64) -> DResult<Vec<u8>> {
        let map = read(&self.regions)
            .get(&id)
            .map(|a| Arc::clone(&a.map))
            .ok_or_else(|| unknown("region"))?;
        let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
            return Err(DeviceError::Invalid("image span does not fit"));
        };
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| DeviceError::Cuda {
            call: "module image",
            code: code::ERROR_OUT_OF_MEMORY,
        })?;
        out.resize(len, 0);
        map.read(offset, &mut out)
            .map_err(|_| DeviceError::Invalid("image outside its region"))?;
        Ok(out)
    }

    /// Attaches a mapping as region `id` (registering it with the driver when asked); returns
    /// the registration's device address.
    pub fn attach(&self, id: u32, map: Arc<Mapping>, register: bool) -> DResult<Option<u64>> {
        let registration = if register {
            Some(self.drv.host_register(Arc::clone(&map), 0, map.len())?)
        } else {
            None
        };
        let device_ptr = registration.as_ref().map(HostRegistration::device_ptr);
        if let Some(old) = write(&self.regions).insert(id, Attached { map, registration }) {
            self.release(old);
        }
        Ok(device_ptr)
    }

    /// Detaches region `id` (unregistering it; the driver waits for work that uses it).
    pub fn detach(&self, id: u32) {
        if let Some(old) = write(&self.regions).remove(&id) {
            self.release(old);
        }
    }

    fn release(&self, a: Attached) {
        if let Some(reg) = a.registration {
            if let Err(e) = self.drv.host_unregister(reg) {
                tracing::warn!("unregistering a host buffer: {e}");
            }
        }
    }
}
