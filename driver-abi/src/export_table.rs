//! `cuGetExportTable`: the hidden driver tables NVIDIA's libcudart needs.
//!
//! libcudart (12.9.79 observed; 13.0.96 and 13.5.37 too) asks the driver for private tables of
//! function pointers, each named by a UUID, and fails every runtime call with "operation not
//! supported" (or "integrity checks failed", or "driver version insufficient") when one is missing
//! or misbehaves. The layouts and
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
//! | TOOLS_CONTEXT | 21318c60-9714-3248-8ca6-41ff7324c8f2 | none; libcudart 13.5 only asks for it (`export_table/tools_context.rs`) |
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
    pub device_get_uuid: unsafe extern "C" fn(*mut crate::cuda_h::CUuuid, CUdevice) -> CUresult,
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

mod context_storage;
#[cfg(test)]
use context_storage::{cls_delete, cls_get, cls_put};
pub use context_storage::{context_destroyed, StorageDestructor, CONTEXT_LOCAL_STORAGE_TABLE};

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

mod integrity;
pub use integrity::{integrity_hash, IntegrityInputs, INTEGRITY_CHECK_TABLE};
mod tools_context;
pub use tools_context::{TOOLS_CONTEXT, TOOLS_CONTEXT_TABLE};

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
        TOOLS_CONTEXT => TOOLS_CONTEXT_TABLE.as_ptr(),
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
        TOOLS_CONTEXT => "TOOLS_CONTEXT",
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
mod tests;
