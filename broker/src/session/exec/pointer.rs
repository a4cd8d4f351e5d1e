//! The `pointer` family: pointer attributes, answered from the tenant's own tables.

use gpushare_client::code;
use gpushare_client::proto::request::PointerRequest;
use gpushare_client::proto::Reply;

use super::support::with_state;
use crate::memory::Owner;
use crate::session::error::{ExecError, ExecResult};
use crate::session::state::ContextEntry;
use crate::session::tenant::Tenant;

/// Executes a `pointer` request.
pub fn execute(t: &Tenant, req: PointerRequest) -> ExecResult {
    match req {
        PointerRequest::PointerGetAttribute { ptr, attribute } => {
            pointer_attribute(t, ptr, attribute)
        }
    }
}

/// `CUpointer_attribute` values answered from the tenant's tables (values from cudarc's `sys`).
mod attr {
    use cudarc::driver::sys::CUpointer_attribute_enum as A;

    pub const CONTEXT: u32 = A::CU_POINTER_ATTRIBUTE_CONTEXT as u32;
    pub const MEMORY_TYPE: u32 = A::CU_POINTER_ATTRIBUTE_MEMORY_TYPE as u32;
    pub const DEVICE_POINTER: u32 = A::CU_POINTER_ATTRIBUTE_DEVICE_POINTER as u32;
    pub const SYNC_MEMOPS: u32 = A::CU_POINTER_ATTRIBUTE_SYNC_MEMOPS as u32;
    pub const BUFFER_ID: u32 = A::CU_POINTER_ATTRIBUTE_BUFFER_ID as u32;
    pub const IS_MANAGED: u32 = A::CU_POINTER_ATTRIBUTE_IS_MANAGED as u32;
    pub const DEVICE_ORDINAL: u32 = A::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL as u32;
    pub const IS_LEGACY_CUDA_IPC_CAPABLE: u32 =
        A::CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE as u32;
    pub const RANGE_START_ADDR: u32 = A::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR as u32;
    pub const RANGE_SIZE: u32 = A::CU_POINTER_ATTRIBUTE_RANGE_SIZE as u32;
    pub const MAPPED: u32 = A::CU_POINTER_ATTRIBUTE_MAPPED as u32;
    pub const ALLOWED_HANDLE_TYPES: u32 = A::CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES as u32;
    pub const IS_GPU_DIRECT_RDMA_CAPABLE: u32 =
        A::CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE as u32;
    pub const ACCESS_FLAGS: u32 = A::CU_POINTER_ATTRIBUTE_ACCESS_FLAGS as u32;
    pub const MEMPOOL_HANDLE: u32 = A::CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE as u32;
    pub const MAPPING_SIZE: u32 = A::CU_POINTER_ATTRIBUTE_MAPPING_SIZE as u32;
    pub const MAPPING_BASE_ADDR: u32 = A::CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR as u32;
    pub const MEMORY_BLOCK_ID: u32 = A::CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID as u32;
}

fn pointer_attribute(t: &Tenant, ptr: u64, attribute: u32) -> ExecResult {
    with_state(t, |st| {
        let r = *st
            .memory
            .range_containing(ptr)
            .ok_or(ExecError::Code(code::ERROR_INVALID_VALUE))?;
        let host = matches!(r.owner, Owner::Host { .. });
        let v = match attribute {
            attr::CONTEXT => match st.primary {
                Some((h, _)) => h,
                None => {
                    let h = st.contexts.insert(ContextEntry { primary: true })?;
                    st.primary = Some((h, 0));
                    h
                }
            },
            // CU_MEMORYTYPE_HOST 1, CU_MEMORYTYPE_DEVICE 2.
            attr::MEMORY_TYPE => {
                if host {
                    1
                } else {
                    2
                }
            }
            attr::DEVICE_POINTER => ptr,
            attr::SYNC_MEMOPS | attr::MAPPED => 1,
            attr::BUFFER_ID | attr::MEMORY_BLOCK_ID | attr::RANGE_START_ADDR => r.base,
            attr::MAPPING_BASE_ADDR => r.base,
            attr::RANGE_SIZE | attr::MAPPING_SIZE => r.len,
            attr::IS_MANAGED
            | attr::DEVICE_ORDINAL
            | attr::IS_LEGACY_CUDA_IPC_CAPABLE
            | attr::ALLOWED_HANDLE_TYPES
            | attr::IS_GPU_DIRECT_RDMA_CAPABLE
            | attr::MEMPOOL_HANDLE => 0,
            // CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE
            attr::ACCESS_FLAGS => 3,
            _ => return Err(ExecError::Code(code::ERROR_NOT_SUPPORTED)),
        };
        Ok(Reply::Value(v))
    })
}
