//! The `module` family: modules (loaded from images staged in shared memory), their functions
//! (with the parameter layout launches are checked against) and globals, function attributes.

use std::ffi::CString;

use gpushare_client::code;
use gpushare_client::proto::request::ModuleRequest;
use gpushare_client::proto::Reply;

use super::support::{sync_tenant, with_state};
use crate::memory::{Owner, Range};
use crate::session::error::{ExecError, ExecResult};
use crate::session::host::read_host;
use crate::session::state::{FunctionEntry, ModuleEntry};
use crate::session::tenant::Tenant;

/// Executes a `module` request.
pub fn execute(t: &Tenant, req: ModuleRequest) -> ExecResult {
    let dev = &t.env.dev;
    match req {
        ModuleRequest::ModuleLoad { image } => {
            let bytes = read_host(t, image)?;
            let image = prepare_image(bytes)?;
            let raw = dev.module_load(&image)?;
            let module = with_state(t, |st| Ok(st.modules.insert(ModuleEntry { raw })?));
            if module.is_err() {
                let _ = dev.module_unload(raw);
            }
            Ok(Reply::Module { module: module? })
        }
        ModuleRequest::ModuleUnload { module } => {
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

/// `ModuleGetFunction`: the tenant's handle of the kernel (one per module and name) and its
/// parameter layout.
fn get_function(t: &Tenant, module: u64, name: String) -> ExecResult {
    let dev = &t.env.dev;
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

/// `ModuleGetGlobal`: the variable's address and size; the range becomes the tenant's (owned by
/// the module) so copies to and from it pass the memory checks.
fn get_global(t: &Tenant, module: u64, name: String) -> ExecResult {
    let dev = &t.env.dev;
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
