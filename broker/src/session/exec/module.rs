//! The `module` family: modules (loaded by the worker from images staged in shared memory, which
//! it copies out and checks before its driver sees them), their functions (with the parameter
//! layout launches are checked against) and globals, function attributes.
//!
//! A load is bounded by `max_modules` and `max_module_bytes` ([`crate::session::limits`]), and
//! the bytes the module's variables declare are charged to the tenant's memory quota: the worker
//! refuses an image whose variables exceed what is left of the quota before its driver
//! allocates anything (`CUDA_ERROR_OUT_OF_MEMORY`), and the charge is undone at unload or when
//! the session ends.

use std::ffi::CString;
use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::request::ModuleRequest;
use gpushare_client::proto::{HostSpan, Reply};

use super::support::{sync_tenant, with_state};
use crate::memory::{Owner, Range};
use crate::session::error::{ExecError, ExecResult};
use crate::session::host::image_span;
use crate::session::limits::Limit;
use crate::session::state::{FunctionEntry, ModuleEntry, TenantState};
use crate::session::tenant::Tenant;
use crate::work::SlicedFunction;

/// Executes a `module` request.
pub fn execute(t: &Tenant, req: ModuleRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        ModuleRequest::ModuleLoad { image } => load(t, image),
        ModuleRequest::ModuleUnload { module } => {
            let entry = with_state(t, |st| Ok(st.remove_module(module)?))?;
            // Kernels of the module may still be running.
            sync_tenant(t)?;
            dev.module_unload(entry.raw)?;
            Ok(Reply::Empty)
        }
        ModuleRequest::ModuleGetFunction { module, name } => get_function(t, module, name),
        ModuleRequest::ModuleGetGlobal { module, name } => get_global(t, module, name),
        ModuleRequest::FuncGetAttribute {
            function,
            attribute,
        } => {
            let raw = with_state(t, |st| Ok(st.functions.get(function)?.raw))?;
            Ok(Reply::Int(dev.func_get_attribute(raw, attribute)?))
        }
        ModuleRequest::FuncSetAttribute {
            function,
            attribute,
            value,
        } => {
            let raw = with_state(t, |st| Ok(st.functions.get(function)?.raw))?;
            dev.func_set_attribute(raw, attribute, value)?;
            Ok(Reply::Empty)
        }
    }
}

/// Checks that one more module of `len` bytes fits the tenant's bounds.
fn fits(t: &Tenant, st: &TenantState, len: u64) -> Result<(), ExecError> {
    t.limits
        .check(Limit::Modules, st.modules.len() as u64, 1)
        .and_then(|()| t.limits.check(Limit::ModuleBytes, st.module_bytes, len))
        .map_err(|e| ExecError::Code(e.code()))
}

/// `ModuleLoad`: bounded, with the module's variables charged (see the module documentation).
/// The bounds and the quota are checked again once the worker has loaded it (another request
/// may have taken the room meanwhile); a module that no longer fits is unloaded.
fn load(t: &Tenant, image: HostSpan) -> ExecResult {
    let dev = &t.dev;
    let (att, offset, len) = image_span(t, image)?;
    let room = with_state(t, |st| {
        fits(t, st, len)?;
        Ok(st.memory.room())
    })?;
    let (raw, globals) = dev.module_load(&att, (offset, len), room)?;
    let module = with_state(t, |st| {
        fits(t, st, len)?;
        st.memory.can_charge(globals)?;
        Ok(st.add_module(ModuleEntry {
            raw,
            image_bytes: len,
            globals,
        })?)
    });
    if module.is_err() {
        let _ = dev.module_unload(raw);
    }
    Ok(Reply::Module { module: module? })
}

/// `ModuleGetFunction`: the tenant's handle of the kernel (one per module and name) and its
/// parameter layout.
fn get_function(t: &Tenant, module: u64, name: String) -> ExecResult {
    let dev = &t.dev;
    let existing = with_state(t, |st| {
        let raw = st.modules.get(module)?.raw;
        let found = st
            .functions
            .iter()
            .find(|(_, f)| f.module == module && *f.name == *name)
            .map(|(h, f)| (*h, f.layout.to_vec()));
        Ok((raw, found))
    })?;
    let raw = match existing {
        (_, Some((function, params))) => return Ok(Reply::Function { function, params }),
        (raw, None) => raw,
    };
    let cname = CString::new(name.clone()).map_err(|_| code::ERROR_INVALID_VALUE)?;
    let (f, params, may_write) = dev.module_get_function(raw, &cname)?;
    let params = params.unwrap_or_else(|| {
        tracing::warn!(
            session = t.info.id,
            "driver lacks cuFuncGetParamInfo: no parameter layout for {name}"
        );
        Vec::new()
    });
    // The block-range variant the worker added for kernel slicing, if any (it needs the
    // parameter layout: slices append their parameters after the kernel's own).
    let sliced = if params.is_empty() {
        None
    } else {
        let variant = format!("{name}{}", gpushare_ptx::SLICE_SUFFIX);
        CString::new(variant.as_str())
            .ok()
            .and_then(|n| dev.module_get_function(raw, &n).ok())
            .map(|(function, _, _)| {
                Arc::new(SlicedFunction {
                    function,
                    name: variant.into(),
                })
            })
    };
    let function = with_state(t, |st| {
        st.modules.get(module)?;
        Ok(st.functions.insert(FunctionEntry {
            raw: f,
            module,
            name: name.into(),
            layout: params.clone().into(),
            sliced,
            may_write: may_write.map(Into::into),
        })?)
    })?;
    Ok(Reply::Function { function, params })
}

/// `ModuleGetGlobal`: the variable's address and size; the range becomes the tenant's (owned by
/// the module) so copies to and from it pass the memory checks.
fn get_global(t: &Tenant, module: u64, name: String) -> ExecResult {
    let dev = &t.dev;
    let raw = with_state(t, |st| Ok(st.modules.get(module)?.raw))?;
    let cname = CString::new(name).map_err(|_| code::ERROR_INVALID_VALUE)?;
    let (ptr, size) = dev.module_get_global(raw, &cname)?;
    with_state(t, |st| {
        st.modules.get(module)?;
        if size > 0 && st.memory.range_at(ptr).is_none() {
            st.memory.add_range(Range {
                base: ptr,
                len: size,
                owner: Owner::Global { module },
            })?;
        }
        Ok(())
    })?;
    Ok(Reply::Global { ptr, size })
}
