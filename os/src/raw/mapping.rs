//! [`Mapping`]: a read-write `MAP_SHARED` mapping with bounds-checked byte copies, and
//! [`SharedAtomic`] handles to aligned atomic words inside it.
//!
//! # Contract
//!
//! A `Mapping` never hands out a `&[u8]` or `&mut [u8]` into the shared memory: the peer process
//! may write any byte at any time, which a Rust slice reference does not allow. Bytes move in and
//! out by copy ([`Mapping::write`], [`Mapping::read`], [`Mapping::fill`]); words that both sides
//! modify concurrently are atomics ([`Mapping::atomic`], [`Mapping::atomic_ref`]), for which
//! concurrent modification is defined.
//!
//! Byte copies are plain (non-atomic) copies. Protocols built on top (ring, reply slots,
//! staging) guarantee that a well-behaved peer never writes bytes we are copying; a misbehaving
//! peer can only make us copy garbage, which is why consumers copy a record out first and
//! validate the copy ("copy, then validate").
//!
//! The mapped file must not shrink under the mapping (an access past the file's end is
//! `SIGBUS`): map only files whose size is sealed ([`crate::is_shrink_sealed`]) or that no one
//! else can truncate.

use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

use rustix::mm::{self, MapFlags, ProtFlags};

use crate::OsError;

/// A read-write `MAP_SHARED` mapping, unmapped on drop.
///
/// All accesses are bounds-checked. Bytes move in and out by copy ([`Mapping::write`],
/// [`Mapping::read`]); words shared with the peer are reached through [`SharedAtomic`] handles.
#[derive(Debug)]
pub struct Mapping {
    /// Page-aligned start of a live mapping of `len` bytes that this value owns.
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access goes through raw-pointer
// copies or atomics, so sending it to another thread creates no aliasing Rust reference.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only allows copies and atomic accesses, both of which may race with other
// threads (and processes) without creating overlapping `&mut` references.
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
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        let mut flags = MapFlags::SHARED;
        if populate {
            flags |= MapFlags::POPULATE;
        }
        let null = std::ptr::null_mut();
        // SAFETY: a null address lets the kernel place the new mapping in unused address space:
        // it replaces nothing this process (or any Rust reference) uses.
        let ptr = unsafe {
            match fd {
                Some(fd) => mm::mmap(null, len, prot, flags, fd, 0),
                None => mm::mmap_anonymous(null, len, prot, flags),
            }
        }
        .map_err(|e| OsError::sys("mmap", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(OsError::ZeroLength)?;
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
        // SAFETY: the destination range is inside the live mapping (checked above). `src` is a
        // Rust slice, so it cannot point into the mapping (no slice into it is ever handed out):
        // the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        };
        Ok(())
    }

    /// Copies bytes at `offset` out of the mapping into `dst`.
    #[inline]
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OsError> {
        self.check(offset, dst.len())?;
        // SAFETY: the source range is inside the live mapping (checked above); `dst` is a Rust
        // slice outside the mapping. Any byte pattern is a valid `u8`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
        Ok(())
    }

    /// Copies bytes at `offset` out of the mapping into `dst` with streaming stores
    /// ([`super::streaming`]): for a large `dst` that no one reads soon.
    pub fn read_streaming(&self, offset: usize, dst: &mut [u8]) -> Result<(), OsError> {
        self.check(offset, dst.len())?;
        // SAFETY: as in `read`: the source range is inside the live mapping (checked above) and
        // `dst` is a Rust slice outside it, so the ranges do not overlap.
        unsafe {
            super::streaming::copy_nonoverlapping(
                dst.as_mut_ptr(),
                self.ptr.as_ptr().add(offset),
                dst.len(),
            )
        };
        Ok(())
    }

    /// Fills `[offset, offset + len)` with `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), OsError> {
        self.check(offset, len)?;
        // SAFETY: the range is inside the live, writable mapping (checked above), and no Rust
        // reference covers it except atomics, which the protocols never place in a filled range.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), byte, len) };
        Ok(())
    }

    /// Checks that an `A` fits at `offset` and is aligned there; returns its address.
    fn word<A: AtomicWord>(&self, offset: usize) -> Result<NonNull<A>, OsError> {
        let size = std::mem::size_of::<A>();
        self.check(offset, size)?;
        if !offset.is_multiple_of(size) {
            return Err(OsError::Misaligned {
                offset,
                align: size,
            });
        }
        // The base is page aligned and `offset` a multiple of the size, which equals the
        // alignment (AtomicWord's contract): the address is aligned for `A`.
        NonNull::new(self.ptr.as_ptr().wrapping_add(offset).cast::<A>()).ok_or(OsError::ZeroLength)
    }

    /// A reference to the aligned atomic word of type `A` at `offset`, valid while `self` is
    /// borrowed (for tables of words, where a handle per word would cost an `Arc` each).
    pub fn atomic_ref<A: AtomicWord>(&self, offset: usize) -> Result<&A, OsError> {
        let word = self.word::<A>(offset)?;
        // SAFETY: in bounds and aligned (`word` checked both); the mapping outlives the borrow of
        // `self`; every bit pattern is a valid value of the atomic type; the peer only modifies
        // the word atomically (by protocol), and a racing atomic access is defined behaviour.
        Ok(unsafe { word.as_ref() })
    }

    /// A handle to the aligned atomic word of type `A` at `offset`; it keeps the mapping alive.
    pub fn atomic<A: AtomicWord>(
        self: &Arc<Self>,
        offset: usize,
    ) -> Result<SharedAtomic<A>, OsError> {
        let ptr = self.word::<A>(offset)?;
        Ok(SharedAtomic {
            _map: Arc::clone(self),
            ptr,
            _marker: PhantomData,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and nothing refers into it any more: `atomic_ref`
        // references borrow `self`, and `SharedAtomic` handles hold an `Arc` to it, so both are
        // gone. Copies never leave pointers behind. A failure (impossible for a range we mapped)
        // would only leak address space.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::sync::atomic::AtomicU32 {}
    impl Sealed for std::sync::atomic::AtomicU64 {}
}

/// Atomic types that may live in a shared mapping (`AtomicU32`, `AtomicU64`): valid for any bit
/// pattern, size equal to alignment. Sealed: the `unsafe` code above relies on both properties.
pub trait AtomicWord: sealed::Sealed + Sync + Send {}
impl AtomicWord for AtomicU32 {}
impl AtomicWord for AtomicU64 {}

/// An atomic word inside a [`Mapping`]; dereferences to the atomic type. Keeps the mapping alive.
pub struct SharedAtomic<A: AtomicWord> {
    _map: Arc<Mapping>,
    /// In bounds and aligned inside `_map` (checked by `Mapping::word`).
    ptr: NonNull<A>,
    _marker: PhantomData<A>,
}

// SAFETY: the pointee is an atomic (`Sync + Send`) inside a mapping kept alive by the `Arc`,
// which is itself `Send`.
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
        // SAFETY: the pointer is in bounds and aligned (checked by `Mapping::word`), the mapping
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
