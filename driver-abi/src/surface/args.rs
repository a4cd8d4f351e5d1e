//! Argument conversion: every raw C argument of an entry point is converted once, by the
//! generated export, before a library's implementation runs (ZLUDA's `FromCuda`).
//!
//! - [`CudaArg`] names the C type an argument type has when the declaration does not say
//!   otherwise (`Out<'_, T>` is `*mut T`, `&CStr` is `*const c_char`, plain values are
//!   themselves).
//! - [`FromCuda<Raw>`] converts a raw C value: a NULL out-pointer or string is
//!   `CUDA_ERROR_INVALID_VALUE`; a [`Flags`] value with an unknown bit is `CUDA_ERROR_INVALID_VALUE`;
//!   a v1-ABI (32-bit) argument widens to the type the implementation takes.
//! - [`Out`] is the one checked type every out-pointer is written through: unaligned writes (C
//!   callers pass packed structures), and narrowing for the v1 ABI — a device pointer that does
//!   not fit in 32 bits is `CUDA_ERROR_NOT_SUPPORTED` with a log line, a size is clamped.
//!
//! Conversion is `unsafe`: the raw pointers come from the C caller, who guarantees what the CUDA
//! driver API requires of them (valid for a write of the pointee, NUL-terminated strings). The
//! generated export is the only caller; an implementation receives safe values.

use std::ffi::{c_char, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::{CuError, CuResult};

/// The C type an argument type has by default in an exported signature.
pub trait CudaArg {
    /// The raw C type.
    type Raw;
}

/// Conversion from a raw C argument.
pub trait FromCuda<Raw>: Sized {
    /// Converts `raw`, failing with the `CUresult` CUDA gives for a bad argument.
    ///
    /// # Safety
    /// Raw pointers in `raw` must be valid as the CUDA driver API requires of the caller for the
    /// duration of the entry-point call (NULL is checked here where CUDA forbids it).
    unsafe fn from_cuda(raw: Raw) -> CuResult<Self>;
}

/// Values passed through unchanged.
macro_rules! plain {
    ($($t:ty),* $(,)?) => {$(
        impl CudaArg for $t {
            type Raw = $t;
        }
        impl FromCuda<$t> for $t {
            #[inline(always)]
            unsafe fn from_cuda(raw: $t) -> CuResult<Self> {
                Ok(raw)
            }
        }
    )*};
}

plain!(
    u8,
    u16,
    u32,
    i32,
    u64,
    i64,
    usize,
    f32,
    crate::cuda_h::CUmemLocation
);

impl<T> CudaArg for *mut T {
    type Raw = *mut T;
}
impl<T> FromCuda<*mut T> for *mut T {
    #[inline(always)]
    unsafe fn from_cuda(raw: *mut T) -> CuResult<Self> {
        Ok(raw)
    }
}
impl<T> CudaArg for *const T {
    type Raw = *const T;
}
impl<T> FromCuda<*const T> for *const T {
    #[inline(always)]
    unsafe fn from_cuda(raw: *const T) -> CuResult<Self> {
        Ok(raw)
    }
}
impl<F: Copy> CudaArg for Option<F> {
    type Raw = Option<F>;
}
impl<F: Copy> FromCuda<Option<F>> for Option<F> {
    #[inline(always)]
    unsafe fn from_cuda(raw: Option<F>) -> CuResult<Self> {
        Ok(raw)
    }
}

/// Callbacks the caller must give (`cuLaunchHostFunc`, `cuStreamAddCallback`): a NULL function
/// pointer is `CUDA_ERROR_INVALID_VALUE`, before anything else is looked at.
macro_rules! required_callback {
    ($($f:ty),*) => {$(
        impl CudaArg for $f {
            type Raw = Option<$f>;
        }
        impl FromCuda<Option<$f>> for $f {
            #[inline(always)]
            unsafe fn from_cuda(raw: Option<$f>) -> CuResult<Self> {
                raw.ok_or(CuError::INVALID_VALUE)
            }
        }
    )*};
}

required_callback!(crate::cuda_h::CUhostFn, crate::cuda_h::CUstreamCallback);

/// v1 ABI: 32-bit sizes and device pointers widen.
macro_rules! widen {
    ($($from:ty => $to:ty),* $(,)?) => {$(
        impl FromCuda<$from> for $to {
            #[inline(always)]
            unsafe fn from_cuda(raw: $from) -> CuResult<Self> {
                Ok(raw as $to)
            }
        }
    )*};
}

widen!(u32 => usize, u32 => u64);

/// How an [`Out`] stores its value.
enum Slot<T> {
    /// The caller's pointee has the value's own type.
    Same(NonNull<T>),
    /// v1 ABI: a 32-bit pointee for a 64-bit device pointer or size, and how to narrow.
    Narrow(NonNull<u32>, fn(T) -> CuResult<u32>),
}

/// A non-NULL out-pointer of the caller, valid for the call: the one way implementations return
/// values through pointers.
pub struct Out<'a, T> {
    slot: Slot<T>,
    _caller: PhantomData<&'a mut T>,
}

impl<T> std::fmt::Debug for Out<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Out({:p})", self.as_ptr())
    }
}

/// A device pointer in the v1 ABI: above 4 GiB it cannot be expressed.
fn narrow_device_ptr(v: u64) -> CuResult<u32> {
    u32::try_from(v).map_err(|_| {
        crate::export::log_quietly(|| {
            tracing::warn!(target: "gpushare::api",
                "the v1 ABI's 32-bit CUdeviceptr cannot hold {v:#x}; use the _v2 entry point")
        });
        CuError::NOT_SUPPORTED
    })
}

/// A size in the v1 ABI: clamped, as a 32-bit caller can see no more.
fn narrow_size(v: usize) -> CuResult<u32> {
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

impl<'a, T> Out<'a, T> {
    /// An out-pointer to a Rust value, for code that calls a library method itself.
    pub fn to(value: &'a mut T) -> Self {
        Out {
            slot: Slot::Same(NonNull::from(value)),
            _caller: PhantomData,
        }
    }
}

impl<T> Out<'_, T> {
    /// Writes `value` to the caller's pointer (v1 ABI: narrowed, which may fail).
    #[inline]
    pub fn write(self, value: T) -> CuResult {
        match self.slot {
            // SAFETY: `from_cuda` got this non-NULL pointer from a caller who guarantees it is
            // valid for a write of `T` during the call, which `'a` spans; unaligned writes are
            // tolerated because C callers sometimes pass packed structures.
            Slot::Same(p) => unsafe { p.as_ptr().write_unaligned(value) },
            // SAFETY: as above, for the caller's 32-bit pointee.
            Slot::Narrow(p, narrow) => unsafe { p.as_ptr().write_unaligned(narrow(value)?) },
        }
        Ok(())
    }

    /// The caller's pointer, for an implementation that fills an array or a structure in place.
    pub fn as_ptr(&self) -> *mut T {
        match self.slot {
            Slot::Same(p) => p.as_ptr(),
            Slot::Narrow(p, _) => p.cast().as_ptr(),
        }
    }
}

impl<T> CudaArg for Out<'_, T> {
    type Raw = *mut T;
}

impl<T> FromCuda<*mut T> for Out<'_, T> {
    #[inline(always)]
    unsafe fn from_cuda(raw: *mut T) -> CuResult<Self> {
        let slot = Slot::Same(NonNull::new(raw).ok_or(CuError::INVALID_VALUE)?);
        Ok(Out {
            slot,
            _caller: PhantomData,
        })
    }
}

macro_rules! narrow_out {
    ($($t:ty => $narrow:path),*) => {$(
        impl FromCuda<*mut u32> for Out<'_, $t> {
            #[inline(always)]
            unsafe fn from_cuda(raw: *mut u32) -> CuResult<Self> {
                let p = NonNull::new(raw).ok_or(CuError::INVALID_VALUE)?;
                Ok(Out { slot: Slot::Narrow(p, $narrow), _caller: PhantomData })
            }
        }
        impl FromCuda<*mut u32> for OptOut<'_, $t> {
            #[inline(always)]
            unsafe fn from_cuda(raw: *mut u32) -> CuResult<Self> {
                // SAFETY: the caller's contract is forwarded.
                Ok(OptOut((!raw.is_null()).then(|| unsafe { Out::from_cuda(raw) }).transpose()?))
            }
        }
    )*};
}

narrow_out!(u64 => narrow_device_ptr, usize => narrow_size);

/// An out-pointer the caller may leave NULL (then nothing is written).
pub struct OptOut<'a, T>(Option<Out<'a, T>>);

impl<'a, T> OptOut<'a, T> {
    /// An out-pointer to a Rust value, for code that calls a library method itself.
    pub fn to(value: &'a mut T) -> Self {
        OptOut(Some(Out::to(value)))
    }

    /// No pointer: nothing is written.
    pub fn none() -> Self {
        OptOut(None)
    }

    /// Writes `value` if the caller gave a pointer.
    #[inline]
    pub fn write(self, value: T) -> CuResult {
        self.0.map_or(Ok(()), |o| o.write(value))
    }

    /// Whether the caller gave a pointer.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

impl<T> CudaArg for OptOut<'_, T> {
    type Raw = *mut T;
}

impl<T> FromCuda<*mut T> for OptOut<'_, T> {
    #[inline(always)]
    unsafe fn from_cuda(raw: *mut T) -> CuResult<Self> {
        // SAFETY: the caller's contract is forwarded.
        Ok(OptOut(
            (!raw.is_null())
                .then(|| unsafe { Out::from_cuda(raw) })
                .transpose()?,
        ))
    }
}

/// A structure the caller passes by pointer (non-NULL), read once into a copy.
#[derive(Clone, Copy, Debug)]
pub struct In<T>(pub T);

impl<T> std::ops::Deref for In<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> CudaArg for In<T> {
    type Raw = *const T;
}

impl<T: Copy> FromCuda<*const T> for In<T> {
    #[inline(always)]
    unsafe fn from_cuda(raw: *const T) -> CuResult<Self> {
        if raw.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: non-NULL, and the caller guarantees it points to a `T`; read unaligned because
        // C callers sometimes pass packed structures.
        Ok(In(unsafe { raw.read_unaligned() }))
    }
}

impl CudaArg for &CStr {
    type Raw = *const c_char;
}

impl FromCuda<*const c_char> for &CStr {
    #[inline]
    unsafe fn from_cuda(raw: *const c_char) -> CuResult<Self> {
        if raw.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: non-NULL and NUL-terminated per the caller's contract, alive for the call.
        Ok(unsafe { CStr::from_ptr(raw) })
    }
}

impl CudaArg for &str {
    type Raw = *const c_char;
}

impl FromCuda<*const c_char> for &str {
    /// A NUL-terminated UTF-8 name (kernel and variable names, paths); NULL or invalid UTF-8 is
    /// `CUDA_ERROR_INVALID_VALUE`.
    #[inline]
    unsafe fn from_cuda(raw: *const c_char) -> CuResult<Self> {
        // SAFETY: the caller's contract is forwarded.
        let s: &CStr = unsafe { FromCuda::from_cuda(raw)? };
        s.to_str().map_err(|_| CuError::INVALID_VALUE)
    }
}

/// A flags word whose only valid bits are `MASK`: any other bit is `CUDA_ERROR_INVALID_VALUE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags<const MASK: u32>(pub u32);

impl<const MASK: u32> Flags<MASK> {
    /// The flags.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl<const MASK: u32> CudaArg for Flags<MASK> {
    type Raw = u32;
}

impl<const MASK: u32> FromCuda<u32> for Flags<MASK> {
    #[inline(always)]
    unsafe fn from_cuda(raw: u32) -> CuResult<Self> {
        if raw & !MASK != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(Flags(raw))
    }
}

/// Which stream a NULL stream handle names: the entry point's plain symbol means the legacy
/// default stream, its `_ptds`/`_ptsz` twin the calling thread's per-thread default stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultStream {
    /// `CU_STREAM_LEGACY` semantics.
    Legacy,
    /// `CU_STREAM_PER_THREAD` semantics.
    PerThread,
}

impl DefaultStream {
    /// Whether this is the per-thread default stream.
    pub fn per_thread(self) -> bool {
        self == DefaultStream::PerThread
    }
}
