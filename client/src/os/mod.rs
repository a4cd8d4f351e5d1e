//! The operating-system layer: the only module of this crate with `unsafe` code.
//!
//! - [`memfd_create`], [`fd_size`], [`fd_seals`]: anonymous shared files (the per-tenant region and
//!   host buffers), optionally sealed so the peer cannot shrink them under our mapping (a shrunk
//!   file would turn our accesses into `SIGBUS`).
//! - [`Mapping`]: a `MAP_SHARED` mapping with bounds-checked byte copies in and out, and
//!   [`SharedAtomic`] handles to aligned atomic words inside it (each handle keeps the mapping alive).
//! - [`futex_wait`] / [`futex_wake`]: non-private futex operations, so they work across processes
//!   on a word in a `MAP_SHARED` mapping (the kernel keys them by file and offset).
//! - [`send_fds`], [`recv_fds`], [`peer_credentials`] (in `socket.rs`): `SCM_RIGHTS` file
//!   descriptor passing and `SO_PEERCRED` on Unix stream sockets.
//!
//! Byte copies into the mapping use plain (non-atomic) copies. The protocols built on top (ring,
//! reply slots, staging) guarantee that a well-behaved peer never writes bytes we are copying; a
//! misbehaving peer can only make us copy garbage, which is why the consumer side always copies a
//! record out first and validates the copy ("copy, then validate").

use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

mod socket;

pub use socket::{peer_credentials, recv_fds, send_all, send_fds, PeerCredentials, MAX_FDS};

/// Errors of the operating-system layer.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// The failing operation (system call name).
        op: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// An access outside the mapping.
    #[error("access of {len} bytes at offset {offset:#x} is outside the {size:#x}-byte mapping")]
    OutOfBounds {
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Size of the mapping.
        size: usize,
    },
    /// An atomic word at an offset that is not aligned to its size.
    #[error("atomic word at offset {offset:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Offset of the word.
        offset: usize,
        /// Required alignment.
        align: usize,
    },
    /// More file descriptors than [`MAX_FDS`] to send.
    #[error("cannot pass {0} file descriptors in one message (at most {MAX_FDS})")]
    TooManyFds(usize),
    /// The peer sent more file descriptors than the receive buffer had room for; the kernel closed
    /// the excess ones.
    #[error("received file descriptors were truncated (more than the {0} expected)")]
    FdsTruncated(usize),
    /// A zero-length mapping or file was asked for.
    #[error("zero-length mapping")]
    ZeroLength,
}

fn last_error(op: &'static str) -> OsError {
    OsError::Io {
        op,
        source: io::Error::last_os_error(),
    }
}

/// Creates an anonymous memory file of `size` bytes (`memfd_create`, close-on-exec). With
/// `seal`, the size is sealed (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so no process holding
/// the descriptor can change it afterwards.
pub fn memfd_create(name: &str, size: u64, seal: bool) -> Result<OwnedFd, OsError> {
    if size == 0 {
        return Err(OsError::ZeroLength);
    }
    let cname: Vec<u8> = name
        .bytes()
        .filter(|&b| b != 0)
        .chain(std::iter::once(0))
        .collect();
    let flags = libc::MFD_CLOEXEC | if seal { libc::MFD_ALLOW_SEALING } else { 0 };
    // SAFETY: `cname` is a NUL-terminated byte string that outlives the call.
    let raw = unsafe { libc::memfd_create(cname.as_ptr().cast(), flags) };
    if raw < 0 {
        return Err(last_error("memfd_create"));
    }
    // SAFETY: `raw` is a descriptor the kernel just returned to us and nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = libc::off_t::try_from(size).map_err(|_| OsError::Io {
        op: "ftruncate",
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: plain system call on a descriptor we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
        return Err(last_error("ftruncate"));
    }
    if seal {
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: plain system call on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(last_error("fcntl(F_ADD_SEALS)"));
        }
    }
    Ok(fd)
}

/// The size of the file behind `fd` (`fstat`).
pub fn fd_size(fd: BorrowedFd<'_>) -> Result<u64, OsError> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a writable `struct stat`; `fd` is a live descriptor for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(last_error("fstat"));
    }
    // SAFETY: fstat succeeded, so it initialised the structure (and it was zeroed before anyway).
    let st = unsafe { st.assume_init() };
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// The seals of a memory file (`F_GET_SEALS`); an error for descriptors that are not memfds.
pub fn fd_seals(fd: BorrowedFd<'_>) -> Result<u32, OsError> {
    // SAFETY: plain system call on a live descriptor.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 {
        return Err(last_error("fcntl(F_GET_SEALS)"));
    }
    Ok(seals as u32)
}

/// True when `fd`'s size can no longer shrink (`F_SEAL_SHRINK` is set): mapping it cannot fault.
pub fn is_shrink_sealed(fd: BorrowedFd<'_>) -> bool {
    fd_seals(fd).is_ok_and(|s| s & libc::F_SEAL_SHRINK as u32 != 0)
}

/// A read-write `MAP_SHARED` mapping, unmapped on drop.
///
/// All accesses are bounds-checked. Bytes move in and out by copy ([`Mapping::write`],
/// [`Mapping::read`]); words shared with the peer are reached through [`SharedAtomic`] handles.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access goes through raw-pointer
// copies or atomics, so sharing it between threads introduces no data race of Rust references.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only allows copies and atomic accesses.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` shared and read-write. With `populate` the pages are
    /// pre-faulted (`MAP_POPULATE`): first touch of fresh shared pages is slow (~1.8 GB/s here), so
    /// a region that will be used for bulk copies should be populated once, up front.
    pub fn map_fd(fd: BorrowedFd<'_>, len: usize, populate: bool) -> Result<Mapping, OsError> {
        Self::map(Some(fd), len, populate)
    }

    /// An anonymous shared mapping (inherited across `fork`, not across `exec`): for tests,
    /// benchmarks and single-process use of the ring.
    pub fn anonymous(len: usize) -> Result<Mapping, OsError> {
        Self::map(None, len, false)
    }

    fn map(fd: Option<BorrowedFd<'_>>, len: usize, populate: bool) -> Result<Mapping, OsError> {
        if len == 0 {
            return Err(OsError::ZeroLength);
        }
        let mut flags = libc::MAP_SHARED;
        if populate {
            flags |= libc::MAP_POPULATE;
        }
        let raw_fd = match fd {
            Some(fd) => fd.as_raw_fd(),
            None => {
                flags |= libc::MAP_ANONYMOUS;
                -1
            }
        };
        // SAFETY: a new mapping at an address the kernel chooses; it overlaps nothing we use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(last_error("mmap"));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| last_error("mmap"))?;
        Ok(Mapping { ptr, len })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (mappings are never empty); for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The base address. Using it is the caller's business (e.g. the broker registers the staging
    /// area with the driver and passes addresses inside it to asynchronous copies).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The address of `[offset, offset + len)`, bounds-checked.
    pub fn ptr_at(&self, offset: usize, len: usize) -> Result<*mut u8, OsError> {
        self.check(offset, len)?;
        Ok(self.ptr.as_ptr().wrapping_add(offset))
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), OsError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OsError::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copies `src` into the mapping at `offset`.
    #[inline]
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), OsError> {
        self.check(offset, src.len())?;
        // SAFETY: the destination range is inside the mapping (checked above), and `src` is a
        // Rust slice, which cannot overlap the mapping: no reference into the mapping is ever
        // handed out.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        };
        Ok(())
    }

    /// Copies bytes at `offset` out of the mapping into `dst`.
    #[inline]
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OsError> {
        self.check(offset, dst.len())?;
        // SAFETY: the source range is inside the mapping (checked above); `dst` is a Rust slice
        // outside the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
        Ok(())
    }

    /// Fills `[offset, offset + len)` with `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), OsError> {
        self.check(offset, len)?;
        // SAFETY: the range is inside the mapping (checked above).
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), byte, len) };
        Ok(())
    }

    /// A reference to the aligned atomic word of type `A` at `offset`, valid while `self` is
    /// borrowed (for tables of words, where a handle per word would cost an `Arc` each).
    pub fn atomic_ref<A: AtomicWord>(&self, offset: usize) -> Result<&A, OsError> {
        let size = std::mem::size_of::<A>();
        self.check(offset, size)?;
        if offset & (size - 1) != 0 {
            return Err(OsError::Misaligned {
                offset,
                align: size,
            });
        }
        // SAFETY: in bounds and aligned (the base is page aligned, the offset a multiple of the
        // size, which equals the alignment); the mapping outlives the borrow of `self`; every bit
        // pattern is a valid atomic value; the peer only modifies the word atomically.
        Ok(unsafe { &*self.ptr.as_ptr().add(offset).cast::<A>() })
    }

    /// A handle to the aligned atomic word of type `A` at `offset`.
    pub fn atomic<A: AtomicWord>(
        self: &Arc<Self>,
        offset: usize,
    ) -> Result<SharedAtomic<A>, OsError> {
        let size = std::mem::size_of::<A>();
        self.check(offset, size)?;
        if offset & (size - 1) != 0 {
            return Err(OsError::Misaligned {
                offset,
                align: size,
            });
        }
        // The mapping base is page aligned, so an offset aligned to the word's size gives an
        // address aligned for the atomic type.
        let ptr = NonNull::new(self.ptr.as_ptr().wrapping_add(offset).cast::<A>())
            .ok_or(OsError::ZeroLength)?;
        Ok(SharedAtomic {
            _map: Arc::clone(self),
            ptr,
            _marker: PhantomData,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; no references into it exist (only `SharedAtomic` handles,
        // which hold an `Arc` to this value, so they are gone by now).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::sync::atomic::AtomicU32 {}
    impl Sealed for std::sync::atomic::AtomicU64 {}
}

/// Atomic types that may live in a shared mapping (`AtomicU32`, `AtomicU64`): valid for any bit
/// pattern, size equal to alignment.
pub trait AtomicWord: sealed::Sealed + Sync + Send {}
impl AtomicWord for AtomicU32 {}
impl AtomicWord for AtomicU64 {}

/// An atomic word inside a [`Mapping`]; dereferences to the atomic type. Keeps the mapping alive.
pub struct SharedAtomic<A: AtomicWord> {
    _map: Arc<Mapping>,
    ptr: NonNull<A>,
    _marker: PhantomData<A>,
}

// SAFETY: the pointee is an atomic (Sync) inside a mapping kept alive by the Arc.
unsafe impl<A: AtomicWord> Send for SharedAtomic<A> {}
// SAFETY: as above; only shared references to the atomic are handed out.
unsafe impl<A: AtomicWord> Sync for SharedAtomic<A> {}

impl<A: AtomicWord> Clone for SharedAtomic<A> {
    fn clone(&self) -> Self {
        SharedAtomic {
            _map: Arc::clone(&self._map),
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

impl<A: AtomicWord> Deref for SharedAtomic<A> {
    type Target = A;
    #[inline]
    fn deref(&self) -> &A {
        // SAFETY: the pointer is in bounds and aligned (checked by `Mapping::atomic`), the mapping
        // outlives `self` (we hold an Arc), every bit pattern is a valid value of the atomic type,
        // and concurrent modification by the peer is atomic by protocol.
        unsafe { self.ptr.as_ref() }
    }
}

impl<A: AtomicWord + std::fmt::Debug> std::fmt::Debug for SharedAtomic<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Outcome of [`futex_wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken by `FUTEX_WAKE` (or spuriously).
    Woken,
    /// The word did not hold the expected value (`EAGAIN`): nothing to wait for.
    ValueChanged,
    /// The timeout elapsed.
    TimedOut,
    /// A signal interrupted the wait.
    Interrupted,
}

/// `FUTEX_WAIT` (non-private) on `word`: sleeps while it holds `expected`, at most `timeout`.
pub fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> Result<FutexWait, OsError> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the kernel reads the aligned u32 behind `word`, which lives for the whole call, and
    // the optional timespec, also alive for the call. Non-private: valid for shared mappings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == 0 {
        return Ok(FutexWait::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Ok(FutexWait::ValueChanged),
        Some(libc::ETIMEDOUT) => Ok(FutexWait::TimedOut),
        Some(libc::EINTR) => Ok(FutexWait::Interrupted),
        _ => Err(OsError::Io {
            op: "futex(FUTEX_WAIT)",
            source: err,
        }),
    }
}

/// `FUTEX_WAKE` (non-private) on `word`: wakes up to `count` waiters; returns how many woke.
pub fn futex_wake(word: &AtomicU32, count: u32) -> Result<u32, OsError> {
    let count = count.min(i32::MAX as u32);
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key; it is alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(last_error("futex(FUTEX_WAKE)"));
    }
    Ok(rc as u32)
}

/// Waits until the peer of a socket hangs up (`poll` for `POLLRDHUP | POLLHUP`), at most
/// `timeout`. Returns true on hang-up, false on timeout. Does not consume any data.
pub fn wait_hangup(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool, OsError> {
    let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid, writable pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc >= 0 {
            let hup = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
            return Ok(rc > 0 && pfd.revents & hup != 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(OsError::Io {
                op: "poll",
                source: err,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;

    #[test]
    fn memfd_sealed_size_and_mapping() {
        let fd = memfd_create("gpushare-test", 8192, true).unwrap();
        assert_eq!(fd_size(fd.as_fd()).unwrap(), 8192);
        assert!(is_shrink_sealed(fd.as_fd()));
        let map = Arc::new(Mapping::map_fd(fd.as_fd(), 8192, true).unwrap());
        map.write(100, b"hello").unwrap();
        let mut out = [0u8; 5];
        map.read(100, &mut out).unwrap();
        assert_eq!(&out, b"hello");
        assert!(matches!(
            map.write(8190, b"abc"),
            Err(OsError::OutOfBounds { .. })
        ));
        assert!(matches!(
            map.read(usize::MAX, &mut out),
            Err(OsError::OutOfBounds { .. })
        ));
        assert!(matches!(
            map.atomic::<AtomicU64>(4),
            Err(OsError::Misaligned { .. })
        ));
        let w = map.atomic::<AtomicU64>(8).unwrap();
        w.store(7, Ordering::SeqCst);
        let mut b = [0u8; 8];
        map.read(8, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), 7);
        // A second mapping of the same file sees the same bytes.
        let map2 = Mapping::map_fd(fd.as_fd(), 8192, false).unwrap();
        map2.read(100, &mut out).unwrap();
        assert_eq!(&out, b"hello");
        // Sealed: cannot shrink.
        // SAFETY: plain system call on a descriptor we own; expected to fail.
        let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), 4096) };
        assert_ne!(rc, 0);
    }

    #[test]
    fn unsealed_memfd_is_not_shrink_sealed() {
        let fd = memfd_create("gpushare-test", 4096, false).unwrap();
        assert!(!is_shrink_sealed(fd.as_fd()));
        assert!(matches!(
            memfd_create("x", 0, false),
            Err(OsError::ZeroLength)
        ));
    }

    #[test]
    fn futex_value_changed_and_timeout() {
        let w = AtomicU32::new(5);
        assert_eq!(futex_wait(&w, 4, None).unwrap(), FutexWait::ValueChanged);
        assert_eq!(
            futex_wait(&w, 5, Some(Duration::from_millis(1))).unwrap(),
            FutexWait::TimedOut
        );
        assert_eq!(futex_wake(&w, 1).unwrap(), 0);
    }
}
