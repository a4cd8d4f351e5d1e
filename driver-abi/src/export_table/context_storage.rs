//! The CONTEXT_LOCAL_STORAGE table: values libcudart keeps per (context, key), with an optional
//! destructor run when the context goes away ([`context_destroyed`]).

use super::*;

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
pub(super) unsafe extern "C" fn cls_put(
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
pub(super) unsafe extern "C" fn cls_delete(ctx: CUcontext, key: *mut c_void) -> CUresult {
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
pub(super) unsafe extern "C" fn cls_get(
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
