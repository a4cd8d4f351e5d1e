//! The [`Driver`] operations other than memory ([`super::memory`]): initialisation, modules,
//! launches, host functions, streams, events, context limits — thin, checked wrappers over the
//! driver entry points.
//!
//! Each wrapper makes the device's context current on the calling thread, passes only pointers
//! to live Rust values or to mappings it holds, and maps the `CUresult` to [`DeviceError`].

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::AssertUnwindSafe;
use std::ptr::null_mut;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUdevice_attribute_enum;
use gpushare_client::proto::{DeviceInfo, ParamInfo};

use super::api::{Api, Rc};
use super::memory::usize_of;
use super::{check, DResult, DeviceError, Driver, Event, FunctionRaw, ModuleRaw, Stream, BOUND};
use crate::worker::driver::loader::Backend;

/// `CU_STREAM_NON_BLOCKING`
const STREAM_NON_BLOCKING: u32 =
    cudarc::driver::sys::CUstream_flags_enum::CU_STREAM_NON_BLOCKING as u32;
/// `CUDA_ERROR_NOT_READY`
const NOT_READY: Rc = 600;
/// `CU_LAUNCH_PARAM_BUFFER_POINTER`, `CU_LAUNCH_PARAM_BUFFER_SIZE`, `CU_LAUNCH_PARAM_END`.
const LAUNCH_PARAM_BUFFER_POINTER: usize = 1;
const LAUNCH_PARAM_BUFFER_SIZE: usize = 2;
const LAUNCH_PARAM_END: usize = 0;
/// Most kernel parameters asked of `cuFuncGetParamInfo` (the launch record holds 4 KiB).
const MAX_PARAMS: usize = 4096;

extern "C" fn host_fn_trampoline(data: *mut c_void) {
    // SAFETY: `data` is the pointer `launch_host_fn` produced with `Box::into_raw` for exactly
    // this callback; the driver calls each host function once.
    let f = unsafe { Box::from_raw(data.cast::<Box<dyn FnOnce() + Send>>()) };
    // A panic must not unwind into the driver's thread.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(f));
}

impl Driver {
    pub(super) fn init((api, backend): (Api, Backend)) -> DResult<Driver> {
        let mut version: c_int = 0;
        let mut count: c_int = 0;
        let mut dev = 0;
        let mut ctx = null_mut();
        // SAFETY: plain driver calls with out-pointers to live locals.
        unsafe {
            check("cuInit", (api.init)(0))?;
            check("cuDriverGetVersion", (api.driver_get_version)(&mut version))?;
            check("cuDeviceGetCount", (api.device_get_count)(&mut count))?;
            if count < 1 {
                return Err(DeviceError::NoDevice);
            }
            check("cuDeviceGet", (api.device_get)(&mut dev, 0))?;
            check(
                "cuDevicePrimaryCtxRetain",
                (api.primary_ctx_retain)(&mut ctx, dev),
            )?;
            check("cuCtxSetCurrent", (api.ctx_set_current)(ctx))?;
        }
        BOUND.with(|b| b.set(ctx as usize));
        let info = device_info(&api, dev)?;
        let mut device = Driver {
            api,
            backend,
            dev,
            ctx: ctx as usize,
            driver_version: version,
            info,
            granularity: 0,
            shareable: std::sync::atomic::AtomicBool::new(true),
            read_buffers: std::sync::Mutex::default(),
        };
        let mut g = 0usize;
        let prop = device.prop();
        // SAFETY: out-pointer to a live local; `prop` is a valid property struct.
        let rc = unsafe { (device.api.mem_get_allocation_granularity)(&mut g, &prop, 0) };
        check("cuMemGetAllocationGranularity", rc)?;
        device.granularity = (g as u64).max(4096);
        tracing::info!(
            backend = %device.backend,
            name = %device.info.name,
            total_mem = device.info.total_mem,
            driver_version = version,
            granularity = device.granularity,
            "device ready"
        );
        Ok(device)
    }

    /// `cuModuleLoadData`. `image` must be complete: NUL-terminated PTX, or a cubin / fatbin
    /// whose headers the caller checked against the buffer's length.
    pub fn module_load(&self, image: &[u8]) -> DResult<ModuleRaw> {
        self.bind()?;
        if image.is_empty() {
            return Err(DeviceError::Invalid("empty module image"));
        }
        let mut m = null_mut();
        // SAFETY: `image` is live for the call; the driver copies what it keeps.
        check("cuModuleLoadData", unsafe {
            (self.api.module_load_data)(&mut m, image.as_ptr().cast())
        })?;
        Ok(ModuleRaw(m as usize))
    }

    /// `cuModuleUnload`.
    pub fn module_unload(&self, m: ModuleRaw) -> DResult<()> {
        self.bind()?;
        // SAFETY: `m` came from `module_load` and the caller unloads it once.
        check("cuModuleUnload", unsafe {
            (self.api.module_unload)(m.0 as _)
        })
    }

    /// `cuModuleGetFunction`.
    pub fn module_get_function(&self, m: ModuleRaw, name: &CStr) -> DResult<FunctionRaw> {
        self.bind()?;
        let mut f = null_mut();
        // SAFETY: `name` is NUL-terminated and live; `m` is a loaded module.
        check("cuModuleGetFunction", unsafe {
            (self.api.module_get_function)(&mut f, m.0 as _, name.as_ptr())
        })?;
        Ok(FunctionRaw(f as usize))
    }

    /// `cuModuleGetGlobal`: (address, size).
    pub fn module_get_global(&self, m: ModuleRaw, name: &CStr) -> DResult<(u64, u64)> {
        self.bind()?;
        let (mut ptr, mut size) = (0u64, 0usize);
        // SAFETY: out-pointers to live locals; `name` is NUL-terminated; `m` is loaded.
        check("cuModuleGetGlobal", unsafe {
            (self.api.module_get_global)(&mut ptr, &mut size, m.0 as _, name.as_ptr())
        })?;
        Ok((ptr, size as u64))
    }

    /// The kernel's parameter layout from `cuFuncGetParamInfo`; `None` when the driver lacks it.
    pub fn func_param_info(&self, f: FunctionRaw) -> DResult<Option<Vec<ParamInfo>>> {
        self.bind()?;
        let Some(get) = self.api.func_get_param_info else {
            return Ok(None);
        };
        let mut params = Vec::new();
        for index in 0..MAX_PARAMS {
            let (mut offset, mut size) = (0usize, 0usize);
            // SAFETY: out-pointers to live locals; `f` is a function of a loaded module.
            let rc = unsafe { get(f.0 as _, index, &mut offset, &mut size) };
            if rc != 0 {
                break;
            }
            let (Ok(offset), Ok(size)) = (u32::try_from(offset), u32::try_from(size)) else {
                return Err(DeviceError::Invalid("parameter layout out of range"));
            };
            params.push(ParamInfo { offset, size });
        }
        Ok(Some(params))
    }

    /// `cuFuncGetAttribute`.
    pub fn func_get_attribute(&self, f: FunctionRaw, attr: i32) -> DResult<i32> {
        self.bind()?;
        let mut v: c_int = 0;
        // SAFETY: out-pointer to a live local; `f` is a loaded function.
        check("cuFuncGetAttribute", unsafe {
            (self.api.func_get_attribute)(&mut v, attr, f.0 as _)
        })?;
        Ok(v)
    }

    /// `cuFuncSetAttribute`.
    pub fn func_set_attribute(&self, f: FunctionRaw, attr: i32, value: i32) -> DResult<()> {
        self.bind()?;
        // SAFETY: plain values; `f` is a loaded function.
        check("cuFuncSetAttribute", unsafe {
            (self.api.func_set_attribute)(f.0 as _, attr, value)
        })
    }

    /// `cuLaunchKernel` with the packed parameter bytes: through `kernelParams` built from
    /// `layout` when it is known, else through `extra` (one buffer).
    #[allow(clippy::too_many_arguments)]
    pub fn launch(
        &self,
        f: FunctionRaw,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        stream: &Stream,
        params: &[u8],
        layout: &[ParamInfo],
    ) -> DResult<()> {
        self.bind()?;
        let mut len = params.len();
        let mut ptrs: Vec<*mut c_void> = Vec::new();
        let mut extra: [*mut c_void; 5];
        let (kp, ex) = if !layout.is_empty() {
            for p in layout {
                let end = p.offset as usize + p.size as usize;
                if end > params.len() {
                    return Err(DeviceError::Invalid(
                        "parameter bytes shorter than the layout",
                    ));
                }
                ptrs.push(params[p.offset as usize..].as_ptr() as *mut c_void);
            }
            (ptrs.as_mut_ptr(), null_mut())
        } else if !params.is_empty() {
            extra = [
                LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
                params.as_ptr() as *mut c_void,
                LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
                (&mut len as *mut usize).cast(),
                LAUNCH_PARAM_END as *mut c_void,
            ];
            (null_mut(), extra.as_mut_ptr())
        } else {
            (null_mut(), null_mut())
        };
        // SAFETY: `kp` points to one pointer per parameter, each into `params` with `size`
        // bytes available (checked above), or `ex` is a well-formed `extra` list naming
        // `params` and `len`; all are live for the call, and the driver copies the values
        // before returning.
        check("cuLaunchKernel", unsafe {
            (self.api.launch_kernel)(
                f.0 as _,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                shared,
                stream.raw as _,
                kp,
                ex,
            )
        })
    }

    /// Runs `f(0)` on a driver thread once all earlier work on `stream` has completed
    /// (`cuLaunchHostFunc`); it also releases the host memory the stream's earlier copies kept.
    /// `f` must not call the driver. If the host function cannot be enqueued, the stream is
    /// synchronised and `f(code)` runs on the calling thread with the driver's error.
    pub fn launch_host_fn(&self, stream: &Stream, f: Box<dyn FnOnce(u32) + Send>) -> DResult<()> {
        self.bind()?;
        let kept = stream.take_kept();
        let failed = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let code = Arc::clone(&failed);
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            f(code.load(AtomicOrdering::Acquire));
            drop(kept);
        });
        let data = Box::into_raw(Box::new(job));
        // SAFETY: `data` is a leaked box the trampoline reclaims exactly once.
        let rc = unsafe {
            (self.api.launch_host_func)(stream.raw as _, Some(host_fn_trampoline), data.cast())
        };
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the driver refused the callback, so `data` was not handed over; reclaim it.
        let job = unsafe { Box::from_raw(data) };
        failed.store(rc, AtomicOrdering::Release);
        // Before the job runs: a completion marker reports the failure with the batch.
        let _ =
            stream
                .failed
                .compare_exchange(0, rc, AtomicOrdering::AcqRel, AtomicOrdering::Acquire);
        // SAFETY: plain driver call on a live stream.
        let _ = unsafe { (self.api.stream_synchronize)(stream.raw as _) };
        job();
        check("cuLaunchHostFunc", rc)
    }

    /// Creates a non-blocking stream (`flags` are or-ed with `CU_STREAM_NON_BLOCKING`).
    pub fn stream_create(self: &Arc<Self>, flags: u32, priority: i32) -> DResult<Arc<Stream>> {
        self.bind()?;
        let mut s = null_mut();
        // SAFETY: out-pointer to a live local.
        check("cuStreamCreateWithPriority", unsafe {
            (self.api.stream_create_with_priority)(&mut s, flags | STREAM_NON_BLOCKING, priority)
        })?;
        Ok(Arc::new(Stream {
            failed: std::sync::atomic::AtomicU32::new(0),
            dev: Arc::clone(self),
            raw: s as usize,
            keep: Mutex::new(Vec::new()),
        }))
    }

    /// Destroys a stream (from its `Drop`: nothing names it any more); pending work still
    /// completes and releases its host memory.
    pub(super) fn stream_destroy(&self, stream: &Stream) -> DResult<()> {
        self.bind()?;
        self.launch_host_fn(stream, Box::new(|_| {}))?;
        // SAFETY: the stream was created by `stream_create` and is destroyed once.
        check("cuStreamDestroy", unsafe {
            (self.api.stream_destroy)(stream.raw as _)
        })
    }

    /// `cuStreamQuery`: `Ok(true)` when idle, `Ok(false)` when work is pending.
    pub fn stream_query(&self, stream: &Stream) -> DResult<bool> {
        self.bind()?;
        // SAFETY: plain driver call on a live stream.
        let rc = unsafe { (self.api.stream_query)(stream.raw as _) };
        ready_or(rc, "cuStreamQuery")
    }

    /// `cuStreamSynchronize`; afterwards the host memory of earlier copies is released.
    pub fn stream_synchronize(&self, stream: &Stream) -> DResult<()> {
        self.bind()?;
        let kept = stream.take_kept();
        // SAFETY: plain driver call on a live stream.
        let rc = unsafe { (self.api.stream_synchronize)(stream.raw as _) };
        if rc != 0 {
            // The copies may not have run; keep their memory alive.
            for m in kept {
                stream.keep(m);
            }
        }
        check("cuStreamSynchronize", rc)
    }

    /// `cuStreamWaitEvent`.
    pub fn stream_wait_event(&self, stream: &Stream, e: &Event, flags: u32) -> DResult<()> {
        self.bind()?;
        // SAFETY: plain driver call on a live stream and event.
        check("cuStreamWaitEvent", unsafe {
            (self.api.stream_wait_event)(stream.raw as _, e.raw as _, flags)
        })
    }

    /// `cuEventCreate`.
    pub fn event_create(self: &Arc<Self>, flags: u32) -> DResult<Arc<Event>> {
        self.bind()?;
        let mut e = null_mut();
        // SAFETY: out-pointer to a live local.
        check("cuEventCreate", unsafe {
            (self.api.event_create)(&mut e, flags)
        })?;
        Ok(Arc::new(Event {
            dev: Arc::clone(self),
            raw: e as usize,
        }))
    }

    /// `cuEventDestroy` (from the event's `Drop`).
    pub(super) fn event_destroy(&self, e: &Event) -> DResult<()> {
        self.bind()?;
        // SAFETY: `e` was created by `event_create` and is destroyed once, by its `Drop`.
        check("cuEventDestroy", unsafe {
            (self.api.event_destroy)(e.raw as _)
        })
    }

    /// `cuEventRecordWithFlags`.
    pub fn event_record(&self, e: &Event, stream: &Stream, flags: u32) -> DResult<()> {
        self.bind()?;
        // SAFETY: plain driver call on a live event and stream.
        check("cuEventRecord", unsafe {
            (self.api.event_record_with_flags)(e.raw as _, stream.raw as _, flags)
        })
    }

    /// `cuEventQuery`: `Ok(true)` when complete.
    pub fn event_query(&self, e: &Event) -> DResult<bool> {
        self.bind()?;
        // SAFETY: plain driver call on a live event.
        let rc = unsafe { (self.api.event_query)(e.raw as _) };
        ready_or(rc, "cuEventQuery")
    }

    /// `cuEventSynchronize`.
    pub fn event_synchronize(&self, e: &Event) -> DResult<()> {
        self.bind()?;
        // SAFETY: plain driver call on a live event.
        check("cuEventSynchronize", unsafe {
            (self.api.event_synchronize)(e.raw as _)
        })
    }

    /// `cuEventElapsedTime` in milliseconds.
    pub fn event_elapsed(&self, start: &Event, end: &Event) -> DResult<f32> {
        self.bind()?;
        let mut ms = 0f32;
        // SAFETY: out-pointer to a live local; live events.
        check("cuEventElapsedTime", unsafe {
            (self.api.event_elapsed_time)(&mut ms, start.raw as _, end.raw as _)
        })?;
        Ok(ms)
    }

    /// `cuCtxGetLimit`.
    pub fn ctx_get_limit(&self, limit: u32) -> DResult<u64> {
        self.bind()?;
        let mut v = 0usize;
        // SAFETY: out-pointer to a live local.
        check("cuCtxGetLimit", unsafe {
            (self.api.ctx_get_limit)(&mut v, limit)
        })?;
        Ok(v as u64)
    }

    /// `cuCtxSetLimit` (on the shared context: it applies to every tenant).
    pub fn ctx_set_limit(&self, limit: u32, value: u64) -> DResult<()> {
        self.bind()?;
        let value = usize_of(value)?;
        // SAFETY: plain values.
        check("cuCtxSetLimit", unsafe {
            (self.api.ctx_set_limit)(limit, value)
        })
    }

    /// `cuCtxGetStreamPriorityRange`: (least, greatest).
    pub fn stream_priority_range(&self) -> DResult<(i32, i32)> {
        self.bind()?;
        let (mut least, mut greatest) = (0, 0);
        // SAFETY: out-pointers to live locals.
        check("cuCtxGetStreamPriorityRange", unsafe {
            (self.api.ctx_get_stream_priority_range)(&mut least, &mut greatest)
        })?;
        Ok((least, greatest))
    }
}

fn ready_or(rc: Rc, call: &'static str) -> DResult<bool> {
    match rc {
        0 => Ok(true),
        NOT_READY => Ok(false),
        code => Err(DeviceError::Cuda { call, code }),
    }
}

fn c_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The device snapshot tenants see (`DeviceInfo`).
fn device_info(api: &Api, dev: i32) -> DResult<DeviceInfo> {
    let mut name = [0 as c_char; 256];
    let mut uuid = [0u8; 16];
    let mut total = 0usize;
    let mut bus = [0 as c_char; 64];
    // SAFETY: out-buffers are live locals of the sizes passed.
    unsafe {
        check(
            "cuDeviceGetName",
            (api.device_get_name)(name.as_mut_ptr(), name.len() as c_int, dev),
        )?;
        check("cuDeviceGetUuid", (api.device_get_uuid)(&mut uuid, dev))?;
        check("cuDeviceTotalMem", (api.device_total_mem)(&mut total, dev))?;
        if (api.device_get_pci_bus_id)(bus.as_mut_ptr(), bus.len() as c_int, dev) != 0 {
            bus[0] = 0;
        }
    }
    // CUDA 13.5's CU_DEVICE_ATTRIBUTE_MAX (cuda.h 12.9's is 144): a 13.x driver's newer
    // attributes reach tenants built against 13.x headers.
    let max = (CUdevice_attribute_enum::CU_DEVICE_ATTRIBUTE_MAX as c_int).max(162);
    // Attributes the driver rejects (and 0, which is none) stay UNSUPPORTED, so the shim answers
    // them with CUDA_ERROR_INVALID_VALUE as the driver would.
    let mut attributes = vec![DeviceInfo::UNSUPPORTED; max as usize];
    for (i, slot) in attributes.iter_mut().enumerate().skip(1) {
        let mut v: c_int = 0;
        // SAFETY: out-pointer to a live local.
        if unsafe { (api.device_get_attribute)(&mut v, i as c_int, dev) } == 0 {
            *slot = v;
        }
    }
    let attr = |a: CUdevice_attribute_enum| {
        attributes
            .get(a as usize)
            .copied()
            .filter(|&v| v != DeviceInfo::UNSUPPORTED)
            .unwrap_or(0)
    };
    Ok(DeviceInfo {
        ordinal: 0,
        name: c_string(&name),
        uuid,
        total_mem: total as u64,
        cc_major: attr(CUdevice_attribute_enum::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
        cc_minor: attr(CUdevice_attribute_enum::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
        pci_bus_id: c_string(&bus),
        attributes,
    })
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Driver>();
    is::<Stream>();
}
