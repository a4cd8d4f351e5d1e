//! `cuGetExportTable`: the hidden driver tables NVIDIA's libcudart needs.
//!
//! libcudart (12.9.79 observed) asks the driver for private tables of function pointers, each named
//! by a UUID, and fails every runtime call with "operation not supported" (or "integrity checks
//! failed", or "driver version insufficient") when one is missing or misbehaves. The layouts and
//! semantics below come from public reverse-engineering notes (ZLUDA's `dark_api`) and were checked
//! here by handing libcudart logging trampolines and recording which slots it calls, with which
//! arguments (docs/compatibility.md has the trace and what each slot does).
//!
//! | table | UUID | slots libcudart 12.9 calls |
//! |---|---|---|
//! | CUDART_INTERFACE | 6bd5fb6c-5bf4-e74a-8987-d93912fd9df9 | 2: primary context, not retained (1, 6, 8 load a module from a fatbin; 12.9 uses `cuLibraryLoadData` instead) |
//! | TOOLS_RUNTIME_CALLBACK_HOOKS | a094798c-2e74-2e74-93f2-0800200c0a66 | 2, 6: hook buffers |
//! | TOOLS_TLS | 42d85a81-23f6-cb47-8298-f6e78a3aecdc | none (slot 0, the size, only) |
//! | CONTEXT_LOCAL_STORAGE | c693336e-1121-df11-a8c3-68f355d89593 | 0 put, 1 delete, 2 get |
//! | CONTEXT_CHECKS | 263e8860-7cd2-6143-92f6-bbd5006dfa7e | 3 at start-up (returns 0); 2 per context |
//! | INTEGRITY_CHECK | d4082055-bde6-704b-8d34-ba123c66e1f2 | 1: keyed hash, versions 12090..12092 |
//!
//! Slot 0 of every table except CONTEXT_LOCAL_STORAGE is the table's size in bytes. Slots whose
//! meaning is unknown hold logging trampolines that return `CUDA_ERROR_NOT_SUPPORTED`, so a runtime
//! that starts calling one fails with a log line naming the table, slot and arguments instead of
//! jumping to NULL. Unknown UUIDs (libcudart's first probe, f8cff951-2146-8b4e-b9e2-fb469e7c0dd9,
//! among them) get `CUDA_ERROR_INVALID_VALUE` and a NULL table, with a debug log naming the UUID;
//! libcudart tolerates that.
//!
//! The tables are independent of the CPU device: every slot is a function over the driver entry
//! points in a [`DriverEntryPoints`] (plain C function pointers, filled from the exported symbols of
//! whichever library hands the tables out) plus state kept here (context-local storage). The CPU
//! device installs its own exports ([`cpu_device_entry_points`]); a forwarding shim can install its
//! own and reuse this module unchanged. The only thing a driver must add is a call to
//! [`context_destroyed`] when a context goes away, which runs libcudart's storage destructors.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, OnceLock};

/// `CUresult`
pub type CUresult = u32;
/// `CUcontext`
pub type CUcontext = *mut c_void;
/// `CUmodule`
pub type CUmodule = *mut c_void;
/// `CUdevice`
pub type CUdevice = i32;

const SUCCESS: CUresult = 0;
const INVALID_VALUE: CUresult = 1;
const INVALID_CONTEXT: CUresult = 201;
const INVALID_HANDLE: CUresult = 400;
const NOT_SUPPORTED: CUresult = 801;

/// `CU_DEVICE_ATTRIBUTE_PCI_BUS_ID`
const ATTR_PCI_BUS_ID: i32 = 33;
/// `CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID`
const ATTR_PCI_DEVICE_ID: i32 = 34;
/// `CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID`
const ATTR_PCI_DOMAIN_ID: i32 = 50;

/// The public driver entry points the tables are built on.
#[derive(Clone, Copy, Debug)]
pub struct DriverEntryPoints {
    /// `cuDriverGetVersion`
    pub driver_get_version: unsafe extern "C" fn(*mut i32) -> CUresult,
    /// `cuDeviceGetCount`
    pub device_get_count: unsafe extern "C" fn(*mut i32) -> CUresult,
    /// `cuDeviceGetUuid` (16 bytes)
    pub device_get_uuid: unsafe extern "C" fn(*mut [u8; 16], CUdevice) -> CUresult,
    /// `cuDeviceGetAttribute`
    pub device_get_attribute: unsafe extern "C" fn(*mut i32, i32, CUdevice) -> CUresult,
    /// `cuDevicePrimaryCtxRetain`
    pub primary_ctx_retain: unsafe extern "C" fn(*mut CUcontext, CUdevice) -> CUresult,
    /// `cuDevicePrimaryCtxRelease_v2`
    pub primary_ctx_release: unsafe extern "C" fn(CUdevice) -> CUresult,
    /// `cuCtxGetCurrent`
    pub ctx_get_current: unsafe extern "C" fn(*mut CUcontext) -> CUresult,
    /// `cuModuleLoadData` (accepts a fatbin wrapper, a fatbin or PTX)
    pub module_load_data: unsafe extern "C" fn(*mut CUmodule, *const c_void) -> CUresult,
}

static ENTRY_POINTS: OnceLock<DriverEntryPoints> = OnceLock::new();

/// Set once the process is exiting. libcudart calls some slots (context-local storage delete)
/// from its exit handlers, after the log subscriber's thread-locals are gone, when logging would
/// panic; nothing is logged from then on.
static EXITING: AtomicBool = AtomicBool::new(false);

extern "C" fn mark_exiting() {
    EXITING.store(true, Ordering::Relaxed);
}

/// `tracing` with the target `gpushare::export_table`, silent while the process exits.
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        if !EXITING.load(Ordering::Relaxed) {
            tracing::$level!(target: "gpushare::export_table", $($arg)*);
        }
    };
}

/// Installs the entry points the tables call (the first installation wins).
pub fn install(entry_points: DriverEntryPoints) {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function with no preconditions. Handlers run in reverse
        // order of registration, so this one runs before the exit handlers libcudart registered
        // when it was loaded (before it could call cuGetExportTable).
        unsafe { libc::atexit(mark_exiting) };
    });
    let _ = ENTRY_POINTS.set(entry_points);
}

fn entry_points() -> Option<&'static DriverEntryPoints> {
    let eps = ENTRY_POINTS.get();
    if eps.is_none() {
        log!(error, "export table used before install()");
    }
    eps
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` from the 16 bytes in memory order.
pub fn uuid_string(bytes: &[u8; 16]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

/// 16 bytes from a `xxxxxxxx-xxxx-...` string, in memory order (for the UUID constants).
const fn uuid(s: &str) -> [u8; 16] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex digit"),
        }
    }
    let s = s.as_bytes();
    let mut out = [0u8; 16];
    let (mut i, mut n) = (0, 0);
    while i < s.len() {
        if s[i] == b'-' {
            i += 1;
            continue;
        }
        out[n] = nibble(s[i]) << 4 | nibble(s[i + 1]);
        n += 1;
        i += 2;
    }
    assert!(n == 16, "a UUID has 16 bytes");
    out
}

/// CUDART_INTERFACE
pub const CUDART_INTERFACE: [u8; 16] = uuid("6bd5fb6c-5bf4-e74a-8987-d93912fd9df9");
/// TOOLS_TLS
pub const TOOLS_TLS: [u8; 16] = uuid("42d85a81-23f6-cb47-8298-f6e78a3aecdc");
/// TOOLS_RUNTIME_CALLBACK_HOOKS
pub const TOOLS_RUNTIME_CALLBACK_HOOKS: [u8; 16] = uuid("a094798c-2e74-2e74-93f2-0800200c0a66");
/// CONTEXT_LOCAL_STORAGE_INTERFACE_V0301
pub const CONTEXT_LOCAL_STORAGE: [u8; 16] = uuid("c693336e-1121-df11-a8c3-68f355d89593");
/// CONTEXT_CHECKS
pub const CONTEXT_CHECKS: [u8; 16] = uuid("263e8860-7cd2-6143-92f6-bbd5006dfa7e");
/// INTEGRITY_CHECK
pub const INTEGRITY_CHECK: [u8; 16] = uuid("d4082055-bde6-704b-8d34-ba123c66e1f2");

/// A table as libcudart sees it: an array of pointer-sized slots.
#[repr(C)]
pub struct Table<const N: usize>([*const c_void; N]);

// SAFETY: the slots are immutable function addresses and integers, readable from any thread.
unsafe impl<const N: usize> Sync for Table<N> {}

impl<const N: usize> Table<N> {
    /// The table's address, as handed to libcudart.
    pub fn as_ptr(&self) -> *const c_void {
        self.0.as_ptr().cast()
    }
}

/// Slot 0 of a sized table: its size in bytes.
const fn size_slot(slots: usize) -> *const c_void {
    std::ptr::without_provenance(slots * std::mem::size_of::<usize>())
}

/// Logs a call to a slot whose meaning is unknown and fails it.
fn unknown_slot(table: &str, slot: usize, args: [usize; 6]) -> CUresult {
    guard_void(|| {
        log!(warn,
            "{table} slot {slot} called (unknown; returning NOT_SUPPORTED), first registers {args:#x?}");
    });
    NOT_SUPPORTED
}

/// Defines logging trampolines for unknown slots: `extern "C" fn(6 × usize) -> CUresult`.
macro_rules! unknown_slots {
    ($table:literal: $($name:ident = $slot:literal),* $(,)?) => {
        $(
            extern "C" fn $name(a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> CUresult {
                unknown_slot($table, $slot, [a, b, c, d, e, f])
            }
        )*
    };
}

unknown_slots!("CUDART_INTERFACE": cudart_3 = 3, cudart_4 = 4, cudart_5 = 5, cudart_9 = 9,
    cudart_10 = 10, cudart_11 = 11);
unknown_slots!("TOOLS_TLS": tls_1 = 1, tls_2 = 2, tls_3 = 3);
unknown_slots!("TOOLS_RUNTIME_CALLBACK_HOOKS": hooks_1 = 1, hooks_3 = 3, hooks_4 = 4,
    hooks_5 = 5);
unknown_slots!("CONTEXT_LOCAL_STORAGE": cls_3 = 3);
unknown_slots!("CONTEXT_CHECKS": checks_1 = 1);

/// Runs a slot body, turning a panic into `CUDA_ERROR_UNKNOWN` (nothing unwinds into libcudart).
/// Logging happens inside the guard too: libcudart calls some slots from its exit handlers, when
/// the log subscriber's thread-locals may already be gone (and logging panics).
fn guard(what: &'static str, body: impl FnOnce() -> CUresult) -> CUresult {
    let run = || {
        crate::log::init();
        let r = body();
        log!(debug, "{what} -> {r}");
        r
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => {
            let _ = std::panic::catch_unwind(|| {
                log!(error, "internal error in {what}");
            });
            999
        }
    }
}

/// Runs a slot body that has no result, catching panics (see [`guard`]).
fn guard_void(body: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::log::init();
        body()
    }));
}

// ---------------------------------------------------------------------------------------------
// CUDART_INTERFACE

/// Loads a module from a fatbin wrapper, fatbin or image through `cuModuleLoadData`.
fn load_module(out: *mut CUmodule, image: *const c_void) -> CUresult {
    let Some(eps) = entry_points() else {
        return NOT_SUPPORTED;
    };
    if out.is_null() || image.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: pointers from libcudart, passed on under cuModuleLoadData's contract.
    unsafe { (eps.module_load_data)(out, image) }
}

/// Slot 1: `(CUmodule *out, const __fatBinC_Wrapper_t *wrapper)`.
unsafe extern "C" fn cudart_get_module_from_cubin(
    out: *mut CUmodule,
    wrapper: *const c_void,
) -> CUresult {
    guard("CUDART_INTERFACE[1] module from fatbin", || {
        log!(debug, "CUDART_INTERFACE[1]({out:p}, {wrapper:p})");
        load_module(out, wrapper)
    })
}

/// Slot 2: `(CUcontext *out, CUdevice dev)`: the device's primary context, not retained (libcudart
/// retains it itself before use). Done as retain + release through the public entry points, which
/// leaves the retain count as it was.
unsafe extern "C" fn cudart_get_primary_context(out: *mut CUcontext, dev: CUdevice) -> CUresult {
    guard("CUDART_INTERFACE[2] primary context", || {
        let Some(eps) = entry_points() else {
            return NOT_SUPPORTED;
        };
        if out.is_null() {
            return INVALID_VALUE;
        }
        let mut ctx: CUcontext = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let r = unsafe { (eps.primary_ctx_retain)(&mut ctx, dev) };
        if r != SUCCESS {
            return r;
        }
        // SAFETY: plain call; undoes the retain above.
        let r = unsafe { (eps.primary_ctx_release)(dev) };
        if r != SUCCESS {
            return r;
        }
        // SAFETY: checked non-null; libcudart passes a CUcontext slot.
        unsafe { out.write_unaligned(ctx) };
        log!(debug, "CUDART_INTERFACE[2](dev {dev}) = {ctx:p}");
        SUCCESS
    })
}

/// Slots 6 and 8 take three more arguments, which every observed call passes as NULL, NULL, 0.
fn check_extra_args(what: &str, a: *mut c_void, b: *mut c_void, c: u32) {
    if !(a.is_null() && b.is_null() && c == 0) {
        log!(
            warn,
            "{what}: unexpected extra arguments {a:p} {b:p} {c}; ignored"
        );
    }
}

/// Slot 6: `(CUmodule *out, const __fatBinC_Wrapper_t *wrapper, void*, void*, unsigned)`.
unsafe extern "C" fn cudart_get_module_from_cubin_ext1(
    out: *mut CUmodule,
    wrapper: *const c_void,
    a: *mut c_void,
    b: *mut c_void,
    c: u32,
) -> CUresult {
    guard("CUDART_INTERFACE[6] module from fatbin", || {
        log!(
            debug,
            "CUDART_INTERFACE[6]({out:p}, {wrapper:p}, {a:p}, {b:p}, {c})"
        );
        check_extra_args("CUDART_INTERFACE[6]", a, b, c);
        load_module(out, wrapper)
    })
}

/// Slot 7: `(size_t)`, no result; observed never called. Accepted and ignored.
unsafe extern "C" fn cudart_fn7(arg: usize) {
    guard_void(|| {
        log!(debug, "CUDART_INTERFACE[7]({arg:#x}) ignored");
    })
}

/// Slot 8: `(const fatBinaryHeader *fatbin, CUmodule *out, void*, void*, unsigned)`.
unsafe extern "C" fn cudart_get_module_from_cubin_ext2(
    fatbin: *const c_void,
    out: *mut CUmodule,
    a: *mut c_void,
    b: *mut c_void,
    c: u32,
) -> CUresult {
    guard("CUDART_INTERFACE[8] module from fatbin", || {
        log!(
            debug,
            "CUDART_INTERFACE[8]({fatbin:p}, {out:p}, {a:p}, {b:p}, {c})"
        );
        check_extra_args("CUDART_INTERFACE[8]", a, b, c);
        load_module(out, fatbin)
    })
}

/// Slot 12: loads the JIT compilers (ptxas, libnvvm) in NVIDIA's driver; nothing to load here.
unsafe extern "C" fn cudart_load_compilers() -> CUresult {
    guard("CUDART_INTERFACE[12] load compilers", || SUCCESS)
}

/// CUDART_INTERFACE: 13 slots.
pub static CUDART_INTERFACE_TABLE: Table<13> = Table([
    size_slot(13),
    cudart_get_module_from_cubin as *const c_void,
    cudart_get_primary_context as *const c_void,
    cudart_3 as *const c_void,
    cudart_4 as *const c_void,
    cudart_5 as *const c_void,
    cudart_get_module_from_cubin_ext1 as *const c_void,
    cudart_fn7 as *const c_void,
    cudart_get_module_from_cubin_ext2 as *const c_void,
    cudart_9 as *const c_void,
    cudart_10 as *const c_void,
    cudart_11 as *const c_void,
    cudart_load_compilers as *const c_void,
]);

// ---------------------------------------------------------------------------------------------
// TOOLS_TLS

/// TOOLS_TLS: 4 slots; libcudart reads the size and calls nothing.
pub static TOOLS_TLS_TABLE: Table<4> = Table([
    size_slot(4),
    tls_1 as *const c_void,
    tls_2 as *const c_void,
    tls_3 as *const c_void,
]);

// ---------------------------------------------------------------------------------------------
// TOOLS_RUNTIME_CALLBACK_HOOKS

/// Zeroed memory handed out to libcudart (tools hook tables: all-zero means no tool attached).
struct HookBuffer<const N: usize>(std::cell::UnsafeCell<[u64; N]>);

// SAFETY: the driver never reads or writes the buffer; it only hands out its address, and
// libcudart synchronises its own accesses.
unsafe impl<const N: usize> Sync for HookBuffer<N> {}

/// Sizes reported to libcudart (the buffers are larger than reported).
const HOOK_BUFFER_1_SIZE: usize = 1024;
const HOOK_BUFFER_2_SIZE: usize = 14;
static HOOK_BUFFER_1: HookBuffer<1024> = HookBuffer(std::cell::UnsafeCell::new([0; 1024]));
static HOOK_BUFFER_2: HookBuffer<64> = HookBuffer(std::cell::UnsafeCell::new([0; 64]));

fn hand_out(ptr: *mut *mut c_void, size: *mut usize, buffer: *mut c_void, len: usize) {
    if !ptr.is_null() {
        // SAFETY: non-null out-pointer from libcudart.
        unsafe { ptr.write_unaligned(buffer) };
    }
    if !size.is_null() {
        // SAFETY: non-null out-pointer from libcudart.
        unsafe { size.write_unaligned(len) };
    }
}

/// Slot 2: `(void **buffer, size_t *size)`, no result.
unsafe extern "C" fn hooks_buffer_1(ptr: *mut *mut c_void, size: *mut usize) {
    guard_void(|| {
        log!(debug, "TOOLS_RUNTIME_CALLBACK_HOOKS[2]");
        hand_out(ptr, size, HOOK_BUFFER_1.0.get().cast(), HOOK_BUFFER_1_SIZE);
    })
}

/// Slot 6: `(void **buffer, size_t *size)`, no result.
unsafe extern "C" fn hooks_buffer_2(ptr: *mut *mut c_void, size: *mut usize) {
    guard_void(|| {
        log!(debug, "TOOLS_RUNTIME_CALLBACK_HOOKS[6]");
        hand_out(ptr, size, HOOK_BUFFER_2.0.get().cast(), HOOK_BUFFER_2_SIZE);
    })
}

/// TOOLS_RUNTIME_CALLBACK_HOOKS: 7 slots.
pub static TOOLS_RUNTIME_CALLBACK_HOOKS_TABLE: Table<7> = Table([
    size_slot(7),
    hooks_1 as *const c_void,
    hooks_buffer_1 as *const c_void,
    hooks_3 as *const c_void,
    hooks_4 as *const c_void,
    hooks_5 as *const c_void,
    hooks_buffer_2 as *const c_void,
]);

// ---------------------------------------------------------------------------------------------
// CONTEXT_LOCAL_STORAGE

/// Destructor libcudart registers with a value: `(CUcontext, key, value)`.
pub type StorageDestructor = unsafe extern "C" fn(CUcontext, *mut c_void, *mut c_void);

#[derive(Clone, Copy)]
struct StorageEntry {
    value: usize,
    dtor: Option<StorageDestructor>,
}

/// (context, key) -> value.
static STORAGE: Mutex<Option<HashMap<(usize, usize), StorageEntry>>> = Mutex::new(None);

fn with_storage<T>(f: impl FnOnce(&mut HashMap<(usize, usize), StorageEntry>) -> T) -> T {
    let mut guard = STORAGE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// `ctx`, or the calling thread's current context when `ctx` is NULL.
fn resolve_context(ctx: CUcontext) -> Result<usize, CUresult> {
    if !ctx.is_null() {
        return Ok(ctx as usize);
    }
    let eps = entry_points().ok_or(NOT_SUPPORTED)?;
    let mut current: CUcontext = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    let r = unsafe { (eps.ctx_get_current)(&mut current) };
    match r {
        SUCCESS if !current.is_null() => Ok(current as usize),
        SUCCESS => Err(INVALID_CONTEXT),
        e => Err(e),
    }
}

/// Slot 0: `(CUcontext ctx, void *key, void *value, dtor)`: stores `value` under (ctx, key),
/// replacing any previous one.
unsafe extern "C" fn cls_put(
    ctx: CUcontext,
    key: *mut c_void,
    value: *mut c_void,
    dtor: Option<StorageDestructor>,
) -> CUresult {
    guard("CONTEXT_LOCAL_STORAGE[0] put", || {
        let ctx = match resolve_context(ctx) {
            Ok(c) => c,
            Err(e) => return e,
        };
        log!(
            debug,
            "CONTEXT_LOCAL_STORAGE put ({ctx:#x}, {key:p}) = {value:p}"
        );
        let entry = StorageEntry {
            value: value as usize,
            dtor,
        };
        with_storage(|s| s.insert((ctx, key as usize), entry));
        SUCCESS
    })
}

/// Slot 1: `(CUcontext ctx, void *key)`: removes the entry without calling its destructor.
unsafe extern "C" fn cls_delete(ctx: CUcontext, key: *mut c_void) -> CUresult {
    guard("CONTEXT_LOCAL_STORAGE[1] delete", || {
        let ctx = match resolve_context(ctx) {
            Ok(c) => c,
            Err(e) => return e,
        };
        log!(debug, "CONTEXT_LOCAL_STORAGE delete ({ctx:#x}, {key:p})");
        match with_storage(|s| s.remove(&(ctx, key as usize))) {
            Some(_) => SUCCESS,
            None => INVALID_HANDLE,
        }
    })
}

/// Slot 2: `(void **value, CUcontext ctx, void *key)`: the stored value; a missing entry fails
/// (`CUDA_ERROR_INVALID_HANDLE`), which is how libcudart learns that a context is new to it.
unsafe extern "C" fn cls_get(
    value: *mut *mut c_void,
    ctx: CUcontext,
    key: *mut c_void,
) -> CUresult {
    guard("CONTEXT_LOCAL_STORAGE[2] get", || {
        if value.is_null() {
            return INVALID_VALUE;
        }
        let ctx = match resolve_context(ctx) {
            Ok(c) => c,
            Err(e) => return e,
        };
        let found = with_storage(|s| s.get(&(ctx, key as usize)).copied());
        log!(
            debug,
            "CONTEXT_LOCAL_STORAGE get ({ctx:#x}, {key:p}) = {:?}",
            found.map(|e| e.value as *const c_void)
        );
        match found {
            Some(e) => {
                // SAFETY: checked non-null out-pointer from libcudart.
                unsafe { value.write_unaligned(e.value as *mut c_void) };
                SUCCESS
            }
            None => INVALID_HANDLE,
        }
    })
}

/// CONTEXT_LOCAL_STORAGE: 4 slots, no size slot.
pub static CONTEXT_LOCAL_STORAGE_TABLE: Table<4> = Table([
    cls_put as *const c_void,
    cls_delete as *const c_void,
    cls_get as *const c_void,
    cls_3 as *const c_void,
]);

/// Tells the storage that `ctx` was destroyed (or the primary context reset or released to zero):
/// removes its entries and runs their destructors, `dtor(ctx, key, value)`, with no lock held.
/// Drivers call this after tearing a context down.
pub fn context_destroyed(ctx: CUcontext) {
    let ctx = ctx as usize;
    let mut gone: Vec<((usize, usize), StorageEntry)> = with_storage(|s| {
        let keys: Vec<(usize, usize)> = s.keys().filter(|k| k.0 == ctx).copied().collect();
        keys.into_iter()
            .filter_map(|k| s.remove(&k).map(|e| (k, e)))
            .collect()
    });
    gone.sort_by_key(|(k, _)| k.1);
    for ((c, key), entry) in gone {
        if let Some(dtor) = entry.dtor {
            log!(
                debug,
                "CONTEXT_LOCAL_STORAGE destructor ({c:#x}, {key:#x}, {:#x})",
                entry.value
            );
            // SAFETY: the destructor and its arguments are what libcudart registered.
            unsafe {
                dtor(
                    c as CUcontext,
                    key as *mut c_void,
                    entry.value as *mut c_void,
                )
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CONTEXT_CHECKS

/// Slot 2: `(CUcontext ctx, unsigned *result, const void **extra)`: writes 0 (no special state).
unsafe extern "C" fn checks_context(
    ctx: CUcontext,
    result: *mut u32,
    _extra: *mut *const c_void,
) -> CUresult {
    guard("CONTEXT_CHECKS[2]", || {
        log!(debug, "CONTEXT_CHECKS[2]({ctx:p})");
        if !result.is_null() {
            // SAFETY: non-null out-pointer from libcudart.
            unsafe { result.write_unaligned(0) };
        }
        SUCCESS
    })
}

/// Slot 3: returns 0 (observed: called once at start-up with a pointer argument it ignores).
unsafe extern "C" fn checks_fn3() -> u32 {
    guard_void(|| log!(debug, "CONTEXT_CHECKS[3] -> 0"));
    0
}

/// CONTEXT_CHECKS: 4 slots.
pub static CONTEXT_CHECKS_TABLE: Table<4> = Table([
    size_slot(4),
    checks_1 as *const c_void,
    checks_context as *const c_void,
    checks_fn3 as *const c_void,
]);

// ---------------------------------------------------------------------------------------------
// INTEGRITY_CHECK

/// What [`integrity_hash`] mixes in besides the call's own arguments.
#[derive(Clone, Debug, Default)]
pub struct IntegrityInputs {
    /// `cuDriverGetVersion`
    pub driver_version: u32,
    /// `getpid()`
    pub process: u32,
    /// `pthread_self()`, truncated to 32 bits.
    pub thread: u32,
    /// Address of the CUDART_INTERFACE table handed out.
    pub cudart_table: u64,
    /// Address of the INTEGRITY_CHECK table handed out.
    pub integrity_table: u64,
    /// Its slot 1 (the function called).
    pub integrity_fn: u64,
    /// Per device: UUID, PCI domain, bus and device ids.
    pub devices: Vec<([u8; 16], i32, i32, i32)>,
}

/// The keyed hash libcudart checks, for its `version` and `unix_seconds` arguments.
///
/// Versions ending in 0 and 1 get fixed values. Others get HMAC-MD2 (RFC 2104 over RFC 1319,
/// block size 16) with a fixed 16-byte key over, little-endian: u32 driver version, u32 `version`,
/// u32 process id, u32 thread, u64 CUDART_INTERFACE table address, u64 INTEGRITY_CHECK table address,
/// u64 address of its slot-1 function, u64 `unix_seconds`; then per device the 16-byte UUID and the
/// i32 PCI domain, bus and device ids. (Facts from ZLUDA's notes; libcudart 12.9.79 calls it with
/// versions 12090, 12091 and 12092 and rejects a wrong 12092 answer with "integrity checks failed".)
pub fn integrity_hash(version: u32, unix_seconds: u64, inputs: &IntegrityInputs) -> [u64; 2] {
    match version % 10 {
        0 => return [0x3341_181C_03CB_675C, 0x8ED3_83AA_1F4C_D1E8],
        1 => return [0x1841_181C_03CB_675C, 0x8ED3_83AA_1F4C_D1E8],
        _ => {}
    }
    const KEY: [u8; 16] = [
        0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9, 0xA7, 0x52, 0xAA, 0x08, 0x41, 0x36, 0x0B, 0xF5, 0x5A,
        0x9F,
    ];
    let mut msg = Vec::with_capacity(48 + 28 * inputs.devices.len());
    for v in [
        inputs.driver_version,
        version,
        inputs.process,
        inputs.thread,
    ] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        inputs.cudart_table,
        inputs.integrity_table,
        inputs.integrity_fn,
        unix_seconds,
    ] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    for (uuid, domain, bus, device) in &inputs.devices {
        msg.extend_from_slice(uuid);
        for v in [domain, bus, device] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
    }
    let digest = md2::hmac(&KEY, &msg);
    [
        u64::from_le_bytes(digest[0..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(digest[8..16].try_into().expect("8 bytes")),
    ]
}

/// Gathers [`IntegrityInputs`] through the entry points, as libcudart sees them.
fn integrity_inputs(eps: &DriverEntryPoints) -> Result<IntegrityInputs, CUresult> {
    let check = |r: CUresult| if r == SUCCESS { Ok(()) } else { Err(r) };
    let mut driver_version = 0;
    // SAFETY: all calls: valid out-pointers.
    check(unsafe { (eps.driver_get_version)(&mut driver_version) })?;
    let mut count = 0;
    // SAFETY: as above.
    check(unsafe { (eps.device_get_count)(&mut count) })?;
    let mut devices = Vec::new();
    for dev in 0..count {
        let mut uuid = [0u8; 16];
        // SAFETY: as above.
        check(unsafe { (eps.device_get_uuid)(&mut uuid, dev) })?;
        let mut ids = [0i32; 3];
        for (slot, attr) in
            ids.iter_mut()
                .zip([ATTR_PCI_DOMAIN_ID, ATTR_PCI_BUS_ID, ATTR_PCI_DEVICE_ID])
        {
            // SAFETY: as above.
            check(unsafe { (eps.device_get_attribute)(slot, attr, dev) })?;
        }
        devices.push((uuid, ids[0], ids[1], ids[2]));
    }
    // SAFETY: getpid and pthread_self have no preconditions.
    let (process, thread) = unsafe { (libc::getpid() as u32, libc::pthread_self() as u32) };
    Ok(IntegrityInputs {
        driver_version: driver_version as u32,
        process,
        thread,
        cudart_table: CUDART_INTERFACE_TABLE.as_ptr() as u64,
        integrity_table: INTEGRITY_CHECK_TABLE.as_ptr() as u64,
        integrity_fn: INTEGRITY_CHECK_TABLE.0[1] as u64,
        devices,
    })
}

/// Slot 1: `(unsigned version, unsigned long long unix_seconds, unsigned long long result[2])`.
unsafe extern "C" fn integrity_check(
    version: u32,
    unix_seconds: u64,
    result: *mut [u64; 2],
) -> CUresult {
    guard("INTEGRITY_CHECK[1]", || {
        if result.is_null() {
            return INVALID_VALUE;
        }
        let hash = if version % 10 < 2 {
            integrity_hash(version, unix_seconds, &IntegrityInputs::default())
        } else {
            let Some(eps) = entry_points() else {
                return NOT_SUPPORTED;
            };
            match integrity_inputs(eps) {
                Ok(inputs) => integrity_hash(version, unix_seconds, &inputs),
                Err(e) => return e,
            }
        };
        log!(
            debug,
            "INTEGRITY_CHECK[1]({version}, {unix_seconds}) = {hash:#x?}"
        );
        // SAFETY: checked non-null out-pointer from libcudart.
        unsafe { result.write_unaligned(hash) };
        SUCCESS
    })
}

/// INTEGRITY_CHECK: 3 slots (slot 2 unknown).
pub static INTEGRITY_CHECK_TABLE: Table<3> = Table([
    size_slot(3),
    integrity_check as *const c_void,
    integrity_2 as *const c_void,
]);

unknown_slots!("INTEGRITY_CHECK": integrity_2 = 2);

/// MD2 (RFC 1319) and HMAC-MD2 (RFC 2104 with a 16-byte block).
mod md2 {
    /// The RFC 1319 substitution table (a permutation of 0..=255 built from the digits of pi).
    const S: [u8; 256] = [
        41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19, 98, 167, 5, 243, 192,
        199, 115, 140, 152, 147, 43, 217, 188, 76, 130, 202, 30, 155, 87, 60, 253, 212, 224, 22,
        103, 66, 111, 24, 138, 23, 229, 18, 190, 78, 196, 214, 218, 158, 222, 73, 160, 251, 245,
        142, 187, 47, 238, 122, 169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16, 137, 11, 34, 95,
        33, 128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247, 151, 3, 255, 25, 48,
        179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198, 79, 184, 56, 210, 150, 164,
        125, 182, 118, 252, 107, 226, 156, 116, 4, 241, 69, 157, 112, 89, 100, 113, 135, 32, 134,
        91, 207, 101, 230, 45, 168, 2, 27, 96, 37, 173, 174, 176, 185, 246, 28, 70, 97, 105, 52,
        64, 126, 15, 85, 71, 163, 35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38, 44,
        83, 13, 110, 133, 40, 132, 9, 211, 223, 205, 244, 65, 129, 77, 82, 106, 220, 55, 200, 108,
        193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74, 120, 136, 149, 139, 227, 99, 232, 109,
        233, 203, 213, 254, 59, 0, 29, 57, 242, 239, 183, 14, 102, 88, 208, 228, 166, 119, 114,
        248, 235, 117, 75, 10, 49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131,
        20,
    ];

    #[cfg(test)]
    pub const S_FOR_TESTS: [u8; 256] = S;

    /// Incremental MD2.
    pub struct Md2 {
        x: [u8; 48],
        checksum: [u8; 16],
        block: [u8; 16],
        len: usize,
    }

    impl Md2 {
        pub fn new() -> Md2 {
            Md2 {
                x: [0; 48],
                checksum: [0; 16],
                block: [0; 16],
                len: 0,
            }
        }

        fn compress(&mut self) {
            let block = self.block;
            for (j, &b) in block.iter().enumerate() {
                self.x[16 + j] = b;
                self.x[32 + j] = b ^ self.x[j];
            }
            let mut t = 0u8;
            for round in 0..18u8 {
                for k in 0..48 {
                    self.x[k] ^= S[usize::from(t)];
                    t = self.x[k];
                }
                t = t.wrapping_add(round);
            }
            let mut l = self.checksum[15];
            for (c, &b) in self.checksum.iter_mut().zip(&block) {
                *c ^= S[usize::from(b ^ l)];
                l = *c;
            }
        }

        pub fn update(&mut self, data: &[u8]) {
            for &b in data {
                self.block[self.len] = b;
                self.len += 1;
                if self.len == 16 {
                    self.compress();
                    self.len = 0;
                }
            }
        }

        pub fn finish(mut self) -> [u8; 16] {
            let pad = (16 - self.len) as u8;
            self.update(&vec![pad; usize::from(pad)]);
            let checksum = self.checksum;
            self.update(&checksum);
            let mut out = [0u8; 16];
            out.copy_from_slice(&self.x[..16]);
            out
        }
    }

    /// MD2 of `data`.
    #[cfg(test)]
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Md2::new();
        h.update(data);
        h.finish()
    }

    /// HMAC-MD2 with a key of exactly one block.
    pub fn hmac(key: &[u8; 16], msg: &[u8]) -> [u8; 16] {
        let mut inner = Md2::new();
        inner.update(&key.map(|b| b ^ 0x36));
        inner.update(msg);
        let inner = inner.finish();
        let mut outer = Md2::new();
        outer.update(&key.map(|b| b ^ 0x5c));
        outer.update(&inner);
        outer.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Lookup

/// The table for `uuid`, if this module provides one.
pub fn lookup(uuid: &[u8; 16]) -> Option<*const c_void> {
    Some(match *uuid {
        CUDART_INTERFACE => CUDART_INTERFACE_TABLE.as_ptr(),
        TOOLS_TLS => TOOLS_TLS_TABLE.as_ptr(),
        TOOLS_RUNTIME_CALLBACK_HOOKS => TOOLS_RUNTIME_CALLBACK_HOOKS_TABLE.as_ptr(),
        CONTEXT_LOCAL_STORAGE => CONTEXT_LOCAL_STORAGE_TABLE.as_ptr(),
        CONTEXT_CHECKS => CONTEXT_CHECKS_TABLE.as_ptr(),
        INTEGRITY_CHECK => INTEGRITY_CHECK_TABLE.as_ptr(),
        _ => return None,
    })
}

/// The name of a known table, for logs.
pub fn table_name(uuid: &[u8; 16]) -> Option<&'static str> {
    Some(match *uuid {
        CUDART_INTERFACE => "CUDART_INTERFACE",
        TOOLS_TLS => "TOOLS_TLS",
        TOOLS_RUNTIME_CALLBACK_HOOKS => "TOOLS_RUNTIME_CALLBACK_HOOKS",
        CONTEXT_LOCAL_STORAGE => "CONTEXT_LOCAL_STORAGE",
        CONTEXT_CHECKS => "CONTEXT_CHECKS",
        INTEGRITY_CHECK => "INTEGRITY_CHECK",
        _ => return None,
    })
}

/// The body of `cuGetExportTable(const void **table, const CUuuid *id)` over installed entry
/// points: NULL arguments give `CUDA_ERROR_INVALID_VALUE`; an unknown UUID `*table = NULL` and
/// `CUDA_ERROR_INVALID_VALUE` (what NVIDIA's driver returns for a UUID it does not know).
///
/// # Safety
/// `table` must be NULL or valid for a pointer write; `id` NULL or 16 readable bytes.
pub unsafe fn get_export_table(table: *mut *const c_void, id: *const [u8; 16]) -> CUresult {
    crate::log::init();
    if table.is_null() || id.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: non-null; 16 plain bytes.
    let uuid = unsafe { id.read_unaligned() };
    let found = lookup(&uuid);
    match found {
        Some(t) => log!(
            debug,
            "cuGetExportTable({}) = {} at {t:p}",
            uuid_string(&uuid),
            table_name(&uuid).unwrap_or("?")
        ),
        None => log!(
            debug,
            "cuGetExportTable({}): no such export table",
            uuid_string(&uuid)
        ),
    }
    // SAFETY: non-null out-pointer from the caller.
    unsafe { table.write_unaligned(found.unwrap_or(std::ptr::null())) };
    if found.is_some() {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md2_matches_rfc_1319_test_suite() {
        assert_eq!(hex(&md2::digest(b"")), "8350e5a3e24c153df2275c9f80692773");
        assert_eq!(hex(&md2::digest(b"a")), "32ec01ec4a6dac72c0ab96fb34c0b5d1");
        assert_eq!(
            hex(&md2::digest(b"abc")),
            "da853b0d3f88d99b30283a69e6ded6bb"
        );
        assert_eq!(
            hex(&md2::digest(b"message digest")),
            "ab4f496bfb2a530b219ff33031fe06b0"
        );
        assert_eq!(
            hex(&md2::digest(b"abcdefghijklmnopqrstuvwxyz")),
            "4e8ddff3650292ab5a4108c3aa47940b"
        );
        let digits =
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(
            hex(&md2::digest(digits)),
            "d5976f79d83d3a0dc9806c3c66f3efd8"
        );
    }

    #[test]
    fn md2_s_table_is_a_permutation() {
        let mut seen = [false; 256];
        for &b in &md2::S_FOR_TESTS {
            assert!(!seen[usize::from(b)]);
            seen[usize::from(b)] = true;
        }
    }

    #[test]
    fn uuids_match_their_strings() {
        assert_eq!(
            uuid_string(&CUDART_INTERFACE),
            "6bd5fb6c-5bf4-e74a-8987-d93912fd9df9"
        );
        assert_eq!(
            CUDART_INTERFACE,
            [
                0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd,
                0x9d, 0xf9
            ]
        );
        assert_eq!(
            uuid_string(&INTEGRITY_CHECK),
            "d4082055-bde6-704b-8d34-ba123c66e1f2"
        );
        assert_eq!(
            uuid_string(&uuid("f8cff951-2146-8b4e-b9e2-fb469e7c0dd9")),
            "f8cff951-2146-8b4e-b9e2-fb469e7c0dd9"
        );
    }

    #[test]
    fn integrity_constants_and_hash() {
        let inputs = IntegrityInputs::default();
        assert_eq!(
            integrity_hash(12090, 1, &inputs),
            [0x3341181C03CB675C, 0x8ED383AA1F4CD1E8]
        );
        assert_eq!(
            integrity_hash(12091, 1, &inputs),
            [0x1841181C03CB675C, 0x8ED383AA1F4CD1E8]
        );
        // The keyed hash depends on every input.
        let base = IntegrityInputs {
            driver_version: 12090,
            process: 42,
            thread: 7,
            cudart_table: 0x1000,
            integrity_table: 0x2000,
            integrity_fn: 0x3000,
            devices: vec![([1; 16], 0, 1, 0)],
        };
        let h = integrity_hash(12092, 100, &base);
        assert_ne!(h, integrity_hash(12092, 101, &base));
        assert_ne!(h, integrity_hash(12093, 100, &base));
        let mut other = base.clone();
        other.devices[0].2 = 2;
        assert_ne!(h, integrity_hash(12092, 100, &other));
        assert_eq!(h, integrity_hash(12092, 100, &base.clone()));
    }

    #[test]
    fn tables_have_their_sizes_in_slot_0() {
        let size = |p: *const c_void| {
            // SAFETY: every table has at least one slot.
            unsafe { p.cast::<usize>().read() }
        };
        assert_eq!(size(CUDART_INTERFACE_TABLE.as_ptr()), 13 * 8);
        assert_eq!(size(TOOLS_TLS_TABLE.as_ptr()), 4 * 8);
        assert_eq!(size(TOOLS_RUNTIME_CALLBACK_HOOKS_TABLE.as_ptr()), 7 * 8);
        assert_eq!(size(CONTEXT_CHECKS_TABLE.as_ptr()), 4 * 8);
        assert_eq!(size(INTEGRITY_CHECK_TABLE.as_ptr()), 3 * 8);
    }

    #[test]
    fn unknown_uuids_and_null_arguments_are_refused() {
        let probe = uuid("f8cff951-2146-8b4e-b9e2-fb469e7c0dd9");
        let mut table: *const c_void = std::ptr::dangling();
        // SAFETY: valid pointers.
        let refused = unsafe { get_export_table(&mut table, &probe) };
        assert_eq!(refused, INVALID_VALUE);
        assert!(table.is_null());
        // SAFETY: NULL arguments are what is under test.
        unsafe {
            assert_eq!(
                get_export_table(std::ptr::null_mut(), &CUDART_INTERFACE),
                INVALID_VALUE
            );
            assert_eq!(
                get_export_table(&mut table, std::ptr::null()),
                INVALID_VALUE
            );
        }
        // SAFETY: valid pointers.
        let found = unsafe { get_export_table(&mut table, &CUDART_INTERFACE) };
        assert_eq!(found, SUCCESS);
        assert_eq!(table, CUDART_INTERFACE_TABLE.as_ptr());
    }

    #[test]
    fn context_local_storage_put_get_delete() {
        // Explicit (fake) contexts: the storage is keyed by value and needs no driver for them.
        let ctx = 0x5150_0000usize as CUcontext;
        let other = 0x5150_0008usize as CUcontext;
        let key = 0x77usize as *mut c_void;
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: all calls: valid pointers; the contexts are only map keys.
        unsafe {
            assert_eq!(cls_get(&mut out, ctx, key), INVALID_HANDLE);
            assert_eq!(cls_put(ctx, key, 0x1234usize as *mut c_void, None), SUCCESS);
            assert_eq!(cls_get(&mut out, ctx, key), SUCCESS);
            assert_eq!(out as usize, 0x1234);
            assert_eq!(cls_get(&mut out, other, key), INVALID_HANDLE);
            assert_eq!(cls_put(ctx, key, 0x5678usize as *mut c_void, None), SUCCESS);
            assert_eq!(cls_get(&mut out, ctx, key), SUCCESS);
            assert_eq!(out as usize, 0x5678);
            assert_eq!(cls_delete(ctx, key), SUCCESS);
            assert_eq!(cls_get(&mut out, ctx, key), INVALID_HANDLE);
            assert_eq!(cls_delete(ctx, key), INVALID_HANDLE);
            assert_eq!(cls_get(std::ptr::null_mut(), ctx, key), INVALID_VALUE);
        }
    }

    static DESTROYED: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn record(ctx: CUcontext, key: *mut c_void, value: *mut c_void) {
        DESTROYED
            .lock()
            .unwrap()
            .push((ctx as usize, key as usize, value as usize));
    }

    #[test]
    fn destroying_a_context_runs_its_destructors() {
        let ctx = 0x6160_0000usize as CUcontext;
        let other = 0x6160_0008usize as CUcontext;
        let (k1, k2) = (
            std::ptr::without_provenance_mut(1),
            std::ptr::without_provenance_mut(2),
        );
        // SAFETY: all calls: valid pointers; the contexts are only map keys.
        unsafe {
            assert_eq!(
                cls_put(ctx, k1, 10usize as *mut c_void, Some(record)),
                SUCCESS
            );
            assert_eq!(cls_put(ctx, k2, 20usize as *mut c_void, None), SUCCESS);
            assert_eq!(
                cls_put(other, k1, 30usize as *mut c_void, Some(record)),
                SUCCESS
            );
        }
        context_destroyed(ctx);
        assert_eq!(*DESTROYED.lock().unwrap(), vec![(ctx as usize, 1, 10)]);
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid pointers.
        unsafe {
            assert_eq!(cls_get(&mut out, ctx, k2), INVALID_HANDLE);
            assert_eq!(cls_get(&mut out, other, k1), SUCCESS);
        }
        assert_eq!(out as usize, 30);
        context_destroyed(other);
        assert_eq!(DESTROYED.lock().unwrap().len(), 2);
    }
}
