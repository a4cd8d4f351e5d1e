//! Synchronous requests: device queries, contexts, modules, functions, streams and events.
//!
//! Contexts: every tenant context handle aliases the broker's one shared context on device 0;
//! the tenant's resources belong to the session, not to a context (they are freed when the
//! session ends). Limits set with `CtxSetLimit` apply to the shared context, i.e. to everyone.

use std::ffi::CString;
use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::{Reply, Request};

use super::exec::{sync_stream, sync_tenant, with_state, ExecError, ExecResult};
use super::state::{
    ContextEntry, FunctionEntry, ModuleEntry, TenantState, TenantStream, JOIN_EVENT_FLAGS,
    STREAM_NON_BLOCKING,
};
use super::Tenant;
use crate::memory::{Owner, Range};

/// Errors of this module are [`ExecError`]s.
pub type MiscResult = ExecResult;

fn device0(device: i32) -> Result<(), ExecError> {
    if device == 0 {
        Ok(())
    } else {
        Err(ExecError::Code(code::ERROR_INVALID_DEVICE))
    }
}

/// Executes a device, context, module, stream or event request.
pub fn execute(t: &Arc<Tenant>, req: Request) -> MiscResult {
    let dev = &t.env.dev;
    match req {
        Request::GetDeviceInfo { device } => {
            device0(device)?;
            let mut info = dev.info().clone();
            let quota = with_state(t, |st| Ok(st.memory.quota()))?;
            if quota != 0 {
                info.total_mem = quota.min(info.total_mem);
            }
            Ok(Reply::Device(info))
        }
        Request::CtxCreate { device, .. } => {
            device0(device)?;
            let ctx = with_state(t, |st| {
                Ok(st.contexts.insert(ContextEntry { primary: false })?)
            })?;
            Ok(Reply::Context { ctx })
        }
        Request::CtxDestroy { ctx } => with_state(t, |st| match st.contexts.get(ctx) {
            Ok(c) if !c.primary => {
                st.contexts.remove(ctx)?;
                Ok(Reply::Empty)
            }
            _ => Err(ExecError::Code(code::ERROR_INVALID_CONTEXT)),
        }),
        Request::PrimaryCtxRetain { device } => {
            device0(device)?;
            with_state(t, |st| {
                let ctx = match st.primary {
                    Some((h, n)) => {
                        st.primary = Some((h, n.saturating_add(1)));
                        h
                    }
                    None => {
                        let h = st.contexts.insert(ContextEntry { primary: true })?;
                        st.primary = Some((h, 1));
                        h
                    }
                };
                Ok(Reply::Context { ctx })
            })
        }
        Request::PrimaryCtxRelease { device } => {
            device0(device)?;
            with_state(t, |st| match st.primary {
                Some((h, n)) if n > 0 => {
                    st.primary = Some((h, n - 1));
                    Ok(Reply::Empty)
                }
                _ => Err(ExecError::Code(code::ERROR_INVALID_CONTEXT)),
            })
        }
        Request::CtxSynchronize { ctx } => {
            with_state(t, |st| {
                if ctx == 0 || st.contexts.get(ctx).is_ok() {
                    Ok(())
                } else {
                    Err(ExecError::Code(code::ERROR_INVALID_CONTEXT))
                }
            })?;
            sync_tenant(t)?;
            Ok(Reply::Empty)
        }
        Request::CtxGetLimit { limit } => Ok(Reply::Value(dev.ctx_get_limit(limit)?)),
        Request::CtxSetLimit { limit, value } => {
            dev.ctx_set_limit(limit, value)?;
            Ok(Reply::Empty)
        }
        Request::CtxGetStreamPriorityRange => {
            let (least, greatest) = dev.stream_priority_range()?;
            Ok(Reply::PriorityRange { least, greatest })
        }
        Request::ModuleLoad { image } => {
            let bytes = super::exec_mem::read_host(t, image)?;
            let image = prepare_image(bytes)?;
            let raw = dev.module_load(&image)?;
            let module = with_state(t, |st| Ok(st.modules.insert(ModuleEntry { raw })?));
            if module.is_err() {
                let _ = dev.module_unload(raw);
            }
            Ok(Reply::Module { module: module? })
        }
        Request::ModuleUnload { module } => {
            let entry = with_state(t, |st| {
                let m = st.modules.remove(module)?;
                st.functions.extract(|f| f.module == module);
                st.memory
                    .remove_ranges(|r| r.owner == Owner::Global { module });
                Ok(m)
            })?;
            // Kernels of the module may still be running.
            sync_tenant(t)?;
            dev.module_unload(entry.raw)?;
            Ok(Reply::Empty)
        }
        Request::ModuleGetFunction { module, name } => {
            let existing = with_state(t, |st| {
                let raw = st.modules.get(module)?.raw;
                let found = st
                    .functions
                    .iter()
                    .find(|(_, f)| f.module == module && f.name == name)
                    .map(|(h, f)| (*h, f.layout.to_vec()));
                Ok((raw, found))
            })?;
            let raw = match existing {
                (_, Some((function, params))) => return Ok(Reply::Function { function, params }),
                (raw, None) => raw,
            };
            let cname = CString::new(name.clone()).map_err(|_| code::ERROR_INVALID_VALUE)?;
            let f = dev.module_get_function(raw, &cname)?;
            let params = dev.func_param_info(f)?.unwrap_or_else(|| {
                tracing::warn!(
                    session = t.info.id,
                    "driver lacks cuFuncGetParamInfo: no parameter layout for {name}"
                );
                Vec::new()
            });
            let function = with_state(t, |st| {
                st.modules.get(module)?;
                Ok(st.functions.insert(FunctionEntry {
                    raw: f,
                    module,
                    name,
                    layout: params.clone().into(),
                })?)
            })?;
            Ok(Reply::Function { function, params })
        }
        Request::ModuleGetGlobal { module, name } => {
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
        Request::FuncGetAttribute {
            function,
            attribute,
        } => {
            let raw = with_state(t, |st| Ok(st.functions.get(function)?.raw))?;
            Ok(Reply::Int(dev.func_get_attribute(raw, attribute)?))
        }
        Request::FuncSetAttribute {
            function,
            attribute,
            value,
        } => {
            let raw = with_state(t, |st| Ok(st.functions.get(function)?.raw))?;
            dev.func_set_attribute(raw, attribute, value)?;
            Ok(Reply::Empty)
        }
        Request::StreamCreate { flags, priority } => stream_create(t, flags, priority),
        Request::StreamDestroy { stream } => with_state(t, |st| {
            if TenantState::is_legacy(stream) {
                return Err(ExecError::Code(code::ERROR_INVALID_HANDLE));
            }
            let s = st.streams.remove(stream)?;
            st.put_slot(s.slot);
            // The driver stream is destroyed when the last queued operation naming it is gone.
            Ok(Reply::Empty)
        }),
        Request::StreamQuery { stream } => {
            let s = with_state(t, |st| Ok(Arc::clone(&st.stream(stream)?.dev)))?;
            if dev.stream_query(&s)? {
                Ok(Reply::Empty)
            } else {
                Err(ExecError::Code(code::ERROR_NOT_READY))
            }
        }
        Request::StreamSynchronize { stream } => {
            let s = with_state(t, |st| Ok(Arc::clone(&st.stream(stream)?.dev)))?;
            sync_stream(t, &s)?;
            Ok(Reply::Empty)
        }
        Request::EventCreate { flags } => {
            let e = dev.event_create(flags)?;
            let event = with_state(t, |st| Ok(st.events.insert(e)?))?;
            Ok(Reply::Event { event })
        }
        Request::EventDestroy { event } => with_state(t, |st| {
            st.events.remove(event)?;
            Ok(Reply::Empty)
        }),
        Request::EventQuery { event } => {
            let e = with_state(t, |st| Ok(Arc::clone(st.events.get(event)?)))?;
            if dev.event_query(&e)? {
                Ok(Reply::Empty)
            } else {
                Err(ExecError::Code(code::ERROR_NOT_READY))
            }
        }
        Request::EventSynchronize { event } => {
            let e = with_state(t, |st| Ok(Arc::clone(st.events.get(event)?)))?;
            dev.event_synchronize(&e)?;
            Ok(Reply::Empty)
        }
        Request::EventElapsedTime { start, end } => {
            let (a, b) = with_state(t, |st| {
                Ok((
                    Arc::clone(st.events.get(start)?),
                    Arc::clone(st.events.get(end)?),
                ))
            })?;
            Ok(Reply::ElapsedMs(dev.event_elapsed(&a, &b)?))
        }
        _ => Err(ExecError::Code(code::ERROR_NOT_SUPPORTED)),
    }
}

fn stream_create(t: &Arc<Tenant>, flags: u32, priority: i32) -> MiscResult {
    let dev = &t.env.dev;
    let slot = with_state(t, |st| Ok(st.take_slot()?))?;
    let created = dev
        .stream_create(flags, priority)
        .and_then(|s| Ok((s, dev.event_create(JOIN_EVENT_FLAGS)?)));
    let (s, join) = match created {
        Ok(x) => x,
        Err(e) => {
            with_state(t, |st| {
                st.put_slot(slot);
                Ok(())
            })?;
            return Err(e.into());
        }
    };
    let blocking = flags & STREAM_NON_BLOCKING == 0;
    let stream = with_state(t, |st| {
        // A new blocking stream's first operation waits for the legacy stream's work so far.
        Ok(st
            .streams
            .insert(TenantStream::new(s, slot, blocking, join))?)
    })?;
    Ok(Reply::Stream {
        stream,
        completion_slot: slot,
    })
}

/// ELF magic.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// Fatbin wrapper magic (`__fatBinC_Wrapper_t`): holds a pointer into the tenant's process.
const FATBIN_WRAPPER_MAGIC: u32 = 0x4662_43B1;
/// Fatbin magic.
const FATBIN_MAGIC: u32 = 0xBA55_ED50;

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2)
        .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Checks a module image against its own length before the driver sees it (the driver's
/// `cuModuleLoadData` takes no length): cubin headers and tables must lie inside the buffer, a
/// fatbin's payload too; a fatbin *wrapper* is refused (it points into the tenant's memory: the
/// shim must send the fatbin itself); PTX text gets a terminating NUL.
pub fn prepare_image(mut image: Vec<u8>) -> Result<Vec<u8>, ExecError> {
    let invalid = ExecError::Code(code::ERROR_INVALID_IMAGE);
    let len = image.len() as u64;
    let magic = image
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    if image.starts_with(ELF_MAGIC) {
        let table_end = |off: usize, num: usize, size: usize| -> Option<u64> {
            u64_at(&image, off)?
                .checked_add(u16_at(&image, num)?.checked_mul(u16_at(&image, size)?)?)
        };
        let ok = image.len() >= 64
            && table_end(0x28, 0x3c, 0x3a).is_some_and(|e| e <= len)
            && table_end(0x20, 0x38, 0x36).is_some_and(|e| e <= len);
        return if ok { Ok(image) } else { Err(invalid) };
    }
    match magic {
        Some(FATBIN_WRAPPER_MAGIC) => Err(invalid),
        Some(FATBIN_MAGIC) => {
            let header = u16_at(&image, 6).ok_or(ExecError::Code(code::ERROR_INVALID_IMAGE))?;
            let payload = u64_at(&image, 8).ok_or(ExecError::Code(code::ERROR_INVALID_IMAGE))?;
            match header.checked_add(payload) {
                Some(end) if end <= len => Ok(image),
                _ => Err(invalid),
            }
        }
        _ => {
            if !image.contains(&0) {
                image.push(0);
            }
            Ok(image)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_checked_against_their_length() {
        assert_eq!(
            prepare_image(b".version 8.0".to_vec()).unwrap().last(),
            Some(&0)
        );
        let mut fat = vec![0u8; 32];
        fat[..4].copy_from_slice(&FATBIN_MAGIC.to_le_bytes());
        fat[6] = 16;
        fat[8] = 16;
        assert!(prepare_image(fat.clone()).is_ok());
        fat[8] = 17;
        assert!(prepare_image(fat).is_err());
        assert!(prepare_image(FATBIN_WRAPPER_MAGIC.to_le_bytes().to_vec()).is_err());
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(ELF_MAGIC);
        assert!(prepare_image(elf.clone()).is_ok());
        elf[0x28] = 60;
        elf[0x3c] = 1;
        elf[0x3a] = 64;
        assert!(prepare_image(elf).is_err());
    }
}
