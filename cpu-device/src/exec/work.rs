//! What an asynchronous operation does ([`Work`]), as the driver families submit it, and the
//! copies and memsets themselves — run by the executor thread, or by the host-callback thread
//! for those held behind a host function (`callback`).

use std::ffi::c_void;
use std::sync::Arc;

use super::bulk_copy;
use super::module::LoadedModule;
use super::op::OpState;
use super::timing::CopyKind;
use super::value_wait::{self, ValueWait};
use crate::error::{CuError, CuResult};
use crate::memory::DeviceMemory;

/// A raw pointer carried to the executor thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendPtr(pub *mut c_void);

// SAFETY: the pointer is only dereferenced on the executor or host-callback thread, at the point in
// stream order where CUDA requires the caller to keep it valid (host buffers of async copies,
// host-function user data).
unsafe impl Send for SendPtr {}

pub use gpushare_driver_abi::cuda_h::{CUhostFn as HostFn, CUstreamCallback as StreamCallback};

/// A kernel launch with its parameters copied at submission.
pub(crate) struct KernelWork {
    pub module: Arc<LoadedModule>,
    pub kernel: String,
    pub config: gpushare_ptx::LaunchConfig,
    pub params: Vec<u8>,
    pub shared_per_block: u32,
}

/// A (possibly 2-D) copy. Addresses are device addresses or host pointers depending on `kind`.
pub(crate) struct CopyWork {
    pub kind: CopyKind,
    pub dst: u64,
    pub src: u64,
    /// Bytes per row.
    pub width: u64,
    /// Rows (1 for linear copies).
    pub height: u64,
    pub dst_pitch: u64,
    pub src_pitch: u64,
    /// Whether the host side is page-locked.
    pub pinned: bool,
    /// Source bytes captured at submission (pageable async H2D), packed rows.
    pub staged: Option<Vec<u8>>,
}

/// A (possibly 2-D) memset of `elem`-byte elements.
pub(crate) struct MemsetWork {
    pub dst: u64,
    pub pitch: u64,
    /// Elements per row.
    pub width: u64,
    pub height: u64,
    pub elem: u8,
    pub value: u32,
    /// A stream write (`cuStreamWriteValue32`, one 4-byte element): stored atomically, then the
    /// word's futex waiters are woken.
    pub wake: bool,
}

/// What an op does.
pub(crate) enum Work {
    Kernel(Box<KernelWork>),
    Copy(CopyWork),
    Memset(MemsetWork),
    HostFn(HostFn, SendPtr),
    Callback(StreamCallback, SendPtr, SendPtr),
    /// Event record: no work, its end is the event's timestamp.
    Marker,
    /// Stream wait on an event record.
    Wait(Arc<OpState>),
    /// Stream wait on a word in memory (`cuStreamWaitValue32`/`64`).
    WaitValue(ValueWait),
    /// Drop timeline state of a destroyed stream or released context.
    Forget {
        stream: Option<u64>,
        ctx: Option<u64>,
    },
}

/// Host pointer for one side of a copy.
fn side(
    memory: &DeviceMemory,
    addr: u64,
    len: u64,
    device: bool,
    write: bool,
) -> CuResult<*mut u8> {
    if device {
        memory.device_range(addr, len, write).map_err(|_| {
            tracing::error!("copy touches {addr:#x}+{len}, which is no longer valid device memory");
            CuError::ILLEGAL_ADDRESS
        })
    } else {
        Ok(addr as *mut u8)
    }
}

pub(crate) fn run_copy(memory: &DeviceMemory, c: &CopyWork) -> CuResult {
    let (dst_dev, src_dev) = match c.kind {
        CopyKind::H2D => (true, false),
        CopyKind::D2H => (false, true),
        CopyKind::D2D => (true, true),
        CopyKind::H2H => (false, false),
    };
    let engine_copy = bulk_copy::is_engine_copy(c.kind, c.pinned, c.staged.is_some(), c.width);
    for row in 0..c.height {
        let d = side(memory, c.dst + row * c.dst_pitch, c.width, dst_dev, true)?;
        let s: *const u8 = match &c.staged {
            Some(buf) => {
                let off = (row * c.width) as usize;
                buf[off..off + c.width as usize].as_ptr()
            }
            None => side(memory, c.src + row * c.src_pitch, c.width, src_dev, false)?,
        };
        // SAFETY: both ranges were validated (device sides through the memory module; host sides are
        // the caller's buffers, valid until the copy completes per CUDA's rules). Both copies
        // tolerate overlap (device-to-device copies within one allocation).
        unsafe {
            if engine_copy {
                bulk_copy::copy(d, s, c.width as usize)
            } else {
                std::ptr::copy(s, d, c.width as usize)
            }
        };
    }
    Ok(())
}

pub(crate) fn run_memset(memory: &DeviceMemory, s: &MemsetWork) -> CuResult {
    if s.wake {
        return value_wait::write_and_wake(memory, s.dst, s.value);
    }
    let row_bytes = s.width * u64::from(s.elem);
    for row in 0..s.height {
        let p = side(memory, s.dst + row * s.pitch, row_bytes, true, true)?;
        match s.elem {
            1 => {
                // SAFETY: `p` is valid for `row_bytes` bytes of writes.
                unsafe { std::ptr::write_bytes(p, s.value as u8, row_bytes as usize) }
            }
            2 => {
                let v = (s.value as u16).to_ne_bytes();
                for i in 0..s.width as usize {
                    // SAFETY: element i lies within the validated row.
                    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(i * 2), 2) }
                }
            }
            _ => {
                let v = s.value.to_ne_bytes();
                for i in 0..s.width as usize {
                    // SAFETY: element i lies within the validated row.
                    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(i * 4), 4) }
                }
            }
        }
    }
    Ok(())
}
