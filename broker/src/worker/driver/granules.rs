//! The [`Driver`]'s operations on single granules, for deduplication (`crate::dedup`): an
//! allocation made of one physical allocation per granule (so each can be swapped), mapping a
//! shared copy read-only in place of a private one, a private copy in place of a shared one
//! (copy-on-write), and the content key of what the device holds.
//!
//! Each remap unmaps and maps whole granules: CUDA unmaps only whole mappings, which is why
//! such allocations map every granule separately. The callers quiesce the tenant's work on the
//! addresses first (`Op::Exclusive`).

use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use cudarc::driver::sys::CUmemAllocationHandleType;

use super::memory::usize_of;
use super::{check, AccessFlags, DResult, DeviceError, Driver};

impl Driver {
    /// A read-write allocation of `size` bytes (rounded up to the granularity) whose every
    /// granule is a physical allocation of its own: `(address, handles in order)`. Undone on
    /// failure.
    pub fn vmm_alloc_granules(&self, asked: u64) -> DResult<(u64, Vec<u64>)> {
        let g = self.granularity().max(1);
        let size = self
            .round_up(asked.max(1))
            .ok_or(DeviceError::Invalid("allocation size overflows"))?;
        let ptr = self.address_reserve(size, 0, 0, 0)?;
        let mut handles = Vec::with_capacity((size / g) as usize);
        let mut failed = None;
        for i in 0..size / g {
            match self.map_new_granule(ptr + i * g, g) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let zeroed = match failed {
            Some(e) => Err(e),
            None => self.zero_tail(ptr + asked, size - asked),
        };
        if let Err(e) = zeroed {
            let _ = self.vmm_free_granules(ptr, &handles_padded(&handles, size / g));
            return Err(e);
        }
        Ok((ptr, handles))
    }

    /// Zeroes the last granule's bytes past the allocation (`len` at `at`; none when it ends
    /// on a granule): `cuMemCreate` does not promise zeroed memory, and deduplication shares
    /// a last granule only if that tail is zero (docs/dedup.md). On the context's legacy
    /// stream, which the keying copies (`cuMemcpyDtoH`, also on it) follow.
    fn zero_tail(&self, at: u64, len: u64) -> DResult<()> {
        if len == 0 {
            return Ok(());
        }
        self.bind()?;
        let len = usize_of(len)?;
        // SAFETY: plain values; `[at, at + len)` was just mapped read-write by this worker.
        check("cuMemsetD8Async", unsafe {
            (self.api.memset_d8_async)(at, 0, len, std::ptr::null_mut())
        })
    }

    /// Creates a granule, exportable where the driver allows ([`Driver::granule_export`]).
    fn create_granule(&self, g: u64) -> DResult<u64> {
        if self.shareable.load(Ordering::Relaxed) {
            let mut prop = self.prop();
            prop.requestedHandleTypes = CUmemAllocationHandleType(POSIX_FD as _);
            match self.mem_create_with(g, prop) {
                Ok(h) => return Ok(h),
                Err(e) if e.code() == gpushare_client::code::ERROR_OUT_OF_MEMORY => return Err(e),
                Err(e) => {
                    tracing::info!(
                        "granules cannot be exported ({e}): deduplication stays within this worker"
                    );
                    self.shareable.store(false, Ordering::Relaxed);
                }
            }
        }
        self.mem_create(g)
    }

    /// Creates a granule and maps it read-write at `addr`.
    fn map_new_granule(&self, addr: u64, g: u64) -> DResult<u64> {
        let h = self.create_granule(g)?;
        if let Err(e) = self.mem_map(addr, g, 0, h) {
            let _ = self.mem_release(h);
            return Err(e);
        }
        if let Err(e) = self.mem_set_access(addr, g, AccessFlags::ReadWrite) {
            let _ = self.mem_unmap(addr, g);
            let _ = self.mem_release(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Frees a [`Driver::vmm_alloc_granules`] allocation at `ptr`: every granule is unmapped,
    /// the non-zero `handles` (the ones the tenant still owns) released, the range freed.
    /// Returns the first error but attempts every step.
    pub fn vmm_free_granules(&self, ptr: u64, handles: &[u64]) -> DResult<()> {
        let g = self.granularity().max(1);
        let mut first = Ok(());
        for (i, &h) in handles.iter().enumerate() {
            let addr = ptr + i as u64 * g;
            let r = self.mem_unmap(addr, g);
            let r = if h != 0 {
                r.and(self.mem_release(h))
            } else {
                r
            };
            if first.is_ok() {
                first = r;
            }
        }
        let r = self.address_free(ptr, handles.len() as u64 * g);
        first.and(r)
    }

    /// Maps the shared physical copy `shared` read-only at granule `addr` in place of the
    /// private `old` (released).
    pub fn granule_join(&self, addr: u64, old: u64, shared: u64) -> DResult<()> {
        let g = self.granularity().max(1);
        self.mem_unmap(addr, g)?;
        if let Err(e) = self
            .mem_map(addr, g, 0, shared)
            .and_then(|()| self.mem_set_access(addr, g, AccessFlags::Read))
        {
            // Put the private copy back: the tenant keeps what it had.
            let _ = self.mem_unmap(addr, g);
            let _ = self.mem_map(addr, g, 0, old);
            let _ = self.mem_set_access(addr, g, AccessFlags::ReadWrite);
            return Err(e);
        }
        // Mapped: the join happened. A failed release only leaks the private granule.
        if let Err(e) = self.mem_release(old) {
            tracing::warn!("releasing a granule replaced by a shared copy: {e}");
        }
        Ok(())
    }

    /// Copy-on-write: a new physical granule with the bytes mapped at `addr` (the shared
    /// copy, which stays), mapped read-write at `addr` in its place. Returns its handle.
    pub fn granule_privatize(&self, addr: u64) -> DResult<u64> {
        let g = self.granularity().max(1);
        let temp = self.address_reserve(g, 0, 0, 0)?;
        let copied =
            self.map_new_granule(temp, g)
                .and_then(|h| match self.copy_dtod(temp, addr, g) {
                    Ok(()) => Ok(h),
                    Err(e) => {
                        let _ = self.mem_unmap(temp, g);
                        let _ = self.mem_release(h);
                        Err(e)
                    }
                });
        let handle = match copied {
            Ok(h) => h,
            Err(e) => {
                let _ = self.address_free(temp, g);
                return Err(e);
            }
        };
        let _ = self.mem_unmap(temp, g);
        let _ = self.address_free(temp, g);
        let swapped = self.mem_unmap(addr, g).and_then(|()| {
            self.mem_map(addr, g, 0, handle)
                .and_then(|()| self.mem_set_access(addr, g, AccessFlags::ReadWrite))
        });
        match swapped {
            Ok(()) => Ok(handle),
            Err(e) => {
                let _ = self.mem_release(handle);
                Err(e)
            }
        }
    }

    /// A POSIX file descriptor of physical granule `handle`, for another worker to import
    /// ([`Driver::granule_import`]): `cuMemExportToShareableHandle`.
    pub fn granule_export(&self, handle: u64) -> DResult<OwnedFd> {
        self.bind()?;
        let mut fd: c_int = -1;
        // SAFETY: for POSIX_FILE_DESCRIPTOR the shareable handle is an `int` the call writes;
        // `fd` is a live local.
        check("cuMemExportToShareableHandle", unsafe {
            (self.api.mem_export_to_shareable_handle)(
                (&mut fd as *mut c_int).cast::<c_void>(),
                handle,
                POSIX_FD,
                0,
            )
        })?;
        if fd < 0 {
            return Err(DeviceError::Invalid("the driver exported no descriptor"));
        }
        // SAFETY: the driver returned a new descriptor that the caller owns (the API's
        // contract); nothing else holds it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A handle in this worker for the physical memory behind `fd` (another worker's
    /// [`Driver::granule_export`]): `cuMemImportFromShareableHandle`. The caller keeps `fd`.
    pub fn granule_import(&self, fd: BorrowedFd<'_>) -> DResult<u64> {
        self.bind()?;
        let mut handle = 0u64;
        // SAFETY: for POSIX_FILE_DESCRIPTOR the OS handle is the descriptor's number cast to
        // a pointer; `fd` stays open for the call; `handle` is a live local.
        check("cuMemImportFromShareableHandle", unsafe {
            (self.api.mem_import_from_shareable_handle)(
                &mut handle,
                fd.as_raw_fd() as usize as *mut c_void,
                POSIX_FD,
            )
        })?;
        Ok(handle)
    }

    /// Synchronous device-to-device copy (on the context's legacy stream, which no broker
    /// stream waits for: the caller quiesced the addresses).
    fn copy_dtod(&self, dst: u64, src: u64, len: u64) -> DResult<()> {
        self.bind()?;
        let len = usize_of(len)?;
        // SAFETY: plain values; the driver validates the device addresses.
        check("cuMemcpyDtoD", unsafe {
            (self.api.memcpy_dtod)(dst, src, len)
        })
    }
}

/// `CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR`.
const POSIX_FD: c_int = 1;

/// `handles` followed by zeros up to `n` (granules never created own nothing to release; the
/// unmap of a never-mapped granule fails harmlessly).
fn handles_padded(handles: &[u64], n: u64) -> Vec<u64> {
    let mut v = handles.to_vec();
    v.resize(n as usize, 0);
    v
}
