//! The only module with `unsafe` code: access to host memory behind device
//! addresses returned by [`GlobalMemory::translate`], and CPU-feature
//! dispatched lane kernels.
//!
//! Soundness rests on the [`GlobalMemory`] contract: a successful
//! `translate(addr, len, write)` yields a pointer valid for `len` bytes (for
//! writing if requested) for the whole launch. [`HostSpan`] keeps the pointer
//! and length together and bounds-checks every access against that length.
#![allow(unsafe_code)]

use super::GlobalMemory;
use crate::error::MemFault;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

/// A translated, contiguous range of device memory.
#[derive(Clone, Copy)]
pub(crate) struct HostSpan {
    ptr: *mut u8,
    len: usize,
}

impl HostSpan {
    /// Translate `[addr, addr+len)`.
    #[inline]
    pub fn new(
        mem: &dyn GlobalMemory,
        addr: u64,
        len: u64,
        write: bool,
    ) -> Result<HostSpan, MemFault> {
        let ptr = mem.translate(addr, len, write)?;
        if ptr.is_null() {
            return Err(MemFault { addr, len, write });
        }
        Ok(HostSpan {
            ptr,
            len: len as usize,
        })
    }

    #[inline(always)]
    fn at(&self, off: usize, size: usize) -> Option<*mut u8> {
        if off.checked_add(size)? <= self.len {
            Some(self.ptr.wrapping_add(off))
        } else {
            None
        }
    }

    /// Load `size` (1, 2, 4, 8) bytes at `off`, little-endian, zero-extended.
    #[inline(always)]
    pub fn load(&self, off: usize, size: usize) -> u64 {
        let Some(p) = self.at(off, size) else {
            return 0;
        };
        if (p as usize) % size != 0 {
            let mut b = [0u8; 8];
            // SAFETY: `at` checked that [off, off+size) lies inside the span, which the
            // GlobalMemory contract guarantees readable; size <= 8.
            unsafe { std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), size) };
            return u64::from_le_bytes(b);
        }
        // SAFETY: in bounds (checked above), naturally aligned (checked above), and valid
        // for reads per the GlobalMemory contract; atomics make concurrent access defined.
        unsafe {
            match size {
                1 => AtomicU8::from_ptr(p).load(Relaxed) as u64,
                2 => AtomicU16::from_ptr(p as *mut u16).load(Relaxed) as u64,
                4 => AtomicU32::from_ptr(p as *mut u32).load(Relaxed) as u64,
                _ => AtomicU64::from_ptr(p as *mut u64).load(Relaxed),
            }
        }
    }

    /// Store the low `size` bytes of `v` at `off`.
    #[inline(always)]
    pub fn store(&self, off: usize, size: usize, v: u64) {
        let Some(p) = self.at(off, size) else { return };
        if (p as usize) % size != 0 {
            let b = v.to_le_bytes();
            // SAFETY: in bounds (checked by `at`), writable per the GlobalMemory contract
            // (spans used for stores are translated with write = true).
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, size) };
            return;
        }
        // SAFETY: in bounds, naturally aligned, writable per the GlobalMemory contract.
        unsafe {
            match size {
                1 => AtomicU8::from_ptr(p).store(v as u8, Relaxed),
                2 => AtomicU16::from_ptr(p as *mut u16).store(v as u16, Relaxed),
                4 => AtomicU32::from_ptr(p as *mut u32).store(v as u32, Relaxed),
                _ => AtomicU64::from_ptr(p as *mut u64).store(v, Relaxed),
            }
        }
    }

    /// Atomic read-modify-write of a 32-bit word: stores `f(old)` if `Some`, returns old.
    /// `None` if the host address is not 4-byte aligned or out of the span.
    #[inline]
    pub fn rmw32(&self, off: usize, f: impl Fn(u32) -> Option<u32>) -> Option<u32> {
        let p = self.at(off, 4)?;
        if (p as usize) % 4 != 0 {
            return None;
        }
        // SAFETY: in bounds, 4-byte aligned, writable per the GlobalMemory contract.
        let a = unsafe { AtomicU32::from_ptr(p as *mut u32) };
        let mut old = a.load(Relaxed);
        loop {
            let Some(new) = f(old) else { return Some(old) };
            match a.compare_exchange_weak(old, new, std::sync::atomic::Ordering::SeqCst, Relaxed) {
                Ok(_) => return Some(old),
                Err(cur) => old = cur,
            }
        }
    }

    /// Atomic read-modify-write of a 64-bit word (see [`HostSpan::rmw32`]).
    #[inline]
    pub fn rmw64(&self, off: usize, f: impl Fn(u64) -> Option<u64>) -> Option<u64> {
        let p = self.at(off, 8)?;
        if (p as usize) % 8 != 0 {
            return None;
        }
        // SAFETY: in bounds, 8-byte aligned, writable per the GlobalMemory contract.
        let a = unsafe { AtomicU64::from_ptr(p as *mut u64) };
        let mut old = a.load(Relaxed);
        loop {
            let Some(new) = f(old) else { return Some(old) };
            match a.compare_exchange_weak(old, new, std::sync::atomic::Ordering::SeqCst, Relaxed) {
                Ok(_) => return Some(old),
                Err(cur) => old = cur,
            }
        }
    }
}

use super::program::{lanes, FULL, LANES};

/// First lane of `m` whose access `[a+off, a+off+size)` does not fit in `len` bytes.
fn first_bad(a: &[u64; LANES], m: u32, off: usize, size: usize, len: usize) -> usize {
    lanes(m)
        .find(|&l| {
            a[l].checked_add((off + size) as u64)
                .is_none_or(|e| e > len as u64)
        })
        .unwrap_or(0)
}

#[inline(always)]
fn read_le<const SIZE: usize>(p: *const u8) -> u64 {
    // SAFETY: callers (gather) guarantee `p..p+SIZE` lies inside a live slice.
    unsafe {
        match SIZE {
            1 => *p as u64,
            2 => std::ptr::read_unaligned(p as *const u16) as u64,
            4 => std::ptr::read_unaligned(p as *const u32) as u64,
            _ => std::ptr::read_unaligned(p as *const u64),
        }
    }
}

/// Error of [`gather`] / [`scatter`]: the first offending lane and whether it is a
/// misalignment (else out of bounds).
pub(crate) struct WinFault {
    pub lane: usize,
    pub misaligned: bool,
}

#[inline(always)]
fn win_fault(
    a: &[u64; LANES],
    m: u32,
    off: usize,
    size: usize,
    align: u64,
    len: usize,
) -> WinFault {
    for l in lanes(m) {
        if a[l] & (align - 1) != 0 {
            return WinFault {
                lane: l,
                misaligned: true,
            };
        }
    }
    WinFault {
        lane: first_bad(a, m, off, size, len),
        misaligned: false,
    }
}

/// Check that every lane of `m` has `a[l]` aligned to `align` and `a[l]+off+size <= len`.
#[inline(always)]
fn win_check(
    a: &[u64; LANES],
    m: u32,
    off: usize,
    size: usize,
    align: u64,
    len: usize,
) -> Result<(), WinFault> {
    let Some(lim) = len.checked_sub(off + size) else {
        return Err(win_fault(a, m, off, size, align, len));
    };
    let lim = lim as u64;
    if m == FULL {
        // OR of all addresses bounds every address and exposes misalignment.
        let mut or = 0u64;
        for l in 0..LANES {
            or |= a[l];
        }
        if or & (align - 1) == 0 && or <= lim {
            return Ok(());
        }
        let mut mx = 0u64;
        for l in 0..LANES {
            mx = mx.max(a[l]);
        }
        if or & (align - 1) == 0 && mx <= lim {
            return Ok(());
        }
    } else {
        let mut or = 0u64;
        let mut mx = 0u64;
        for l in lanes(m) {
            or |= a[l];
            mx = mx.max(a[l]);
        }
        if or & (align - 1) == 0 && mx <= lim {
            return Ok(());
        }
    }
    Err(win_fault(a, m, off, size, align, len))
}

/// Gather `SIZE`-byte little-endian values from `s[a[l] + off]` into `out[l]` for the
/// lanes of `m`. Alignment (to `align`) and bounds are checked for all lanes first; on
/// failure nothing is written.
#[inline(always)]
pub(crate) fn gather<const SIZE: usize>(
    s: &[u8],
    a: &[u64; LANES],
    m: u32,
    off: usize,
    align: u64,
    out: &mut [u64; LANES],
) -> Result<(), WinFault> {
    win_check(a, m, off, SIZE, align, s.len())?;
    let p = s.as_ptr().wrapping_add(off);
    if m == FULL {
        // `a[l] + off + SIZE <= s.len()` for every lane (checked above). Chunks of 8
        // lanes that read one address (broadcast) or consecutive elements (the common
        // coalesced pattern) avoid the per-lane gather.
        for c in 0..LANES / 8 {
            let ch = &a[c * 8..c * 8 + 8];
            let a0 = ch[0];
            let (mut uni, mut con) = (0u64, 0u64);
            for k in 0..8 {
                uni |= ch[k] ^ a0;
                con |= ch[k] ^ a0.wrapping_add((k * SIZE) as u64);
            }
            let o = &mut out[c * 8..c * 8 + 8];
            if uni == 0 {
                let v = read_le::<SIZE>(p.wrapping_add(a0 as usize));
                o.fill(v);
            } else if con == 0 {
                // lanes a0 .. a0 + 7*SIZE are all in bounds, so the whole run is
                let q = p.wrapping_add(a0 as usize);
                for k in 0..8 {
                    o[k] = read_le::<SIZE>(q.wrapping_add(k * SIZE));
                }
            } else {
                for k in 0..8 {
                    o[k] = read_le::<SIZE>(p.wrapping_add(ch[k] as usize));
                }
            }
        }
    } else {
        for l in lanes(m) {
            out[l] = read_le::<SIZE>(p.wrapping_add(a[l] as usize));
        }
    }
    Ok(())
}

/// Scatter the low `SIZE` bytes of `v[l]` to `s[a[l] + off]` for the lanes of `m`, in
/// lane order, after checking alignment and bounds of every lane.
#[inline(always)]
pub(crate) fn scatter<const SIZE: usize>(
    s: &mut [u8],
    a: &[u64; LANES],
    m: u32,
    off: usize,
    align: u64,
    v: &[u64; LANES],
) -> Result<(), WinFault> {
    win_check(a, m, off, SIZE, align, s.len())?;
    let p = s.as_mut_ptr().wrapping_add(off);
    let put = |l: usize| {
        let q = p.wrapping_add(a[l] as usize);
        // SAFETY: every active lane satisfies a[l] + off + SIZE <= s.len() (checked above),
        // and `s` is borrowed mutably for the duration of the call.
        unsafe {
            match SIZE {
                1 => *q = v[l] as u8,
                2 => std::ptr::write_unaligned(q as *mut u16, v[l] as u16),
                4 => std::ptr::write_unaligned(q as *mut u32, v[l] as u32),
                _ => std::ptr::write_unaligned(q as *mut u64, v[l]),
            }
        }
    };
    if m == FULL {
        for l in 0..LANES {
            put(l);
        }
    } else {
        for l in lanes(m) {
            put(l);
        }
    }
    Ok(())
}

/// Whether the CPU-feature accelerated code paths may be used (x86-64 with AVX2, FMA,
/// BMI1/2, LZCNT, POPCNT; disable with `GPUSHARE_PTX_NO_SIMD=1`).
#[inline]
pub(crate) fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static S: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *S.get_or_init(|| {
            std::env::var_os("GPUSHARE_PTX_NO_SIMD").is_none()
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("bmi1")
                && std::is_x86_feature_detected!("bmi2")
                && std::is_x86_feature_detected!("lzcnt")
                && std::is_x86_feature_detected!("popcnt")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Run `f` compiled for AVX2+FMA when [`simd`] allows it (the closure and everything it
/// inlines get the wider instruction set), else run it as is.
#[inline(always)]
pub(crate) fn with_simd<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
        #[inline]
        unsafe fn inner<T, F: FnOnce() -> T>(f: F) -> T {
            f()
        }
        if simd() {
            // SAFETY: `simd()` verified at runtime that the CPU supports every feature
            // enabled on `inner`.
            return unsafe { inner(f) };
        }
    }
    f()
}
