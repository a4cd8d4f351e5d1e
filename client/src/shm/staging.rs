//! The bulk staging area and its chunk allocator.
//!
//! The staging area is `staging_chunks` chunks of `staging_chunk` bytes. Each chunk has a u32
//! owner word in the chunk state table: 0 free, 1 allocated. The tenant allocates runs of
//! contiguous chunks by compare-and-swap (lock-free, usable from any shim thread), copies bytes
//! in, and names the span in a copy command or request by offset and length. Freeing stores 0 in
//! each word and bumps the region's "staging freed" counter, which a tenant waiting for space
//! sleeps on.
//!
//! Allocation is lowest-first: the lowest free run is handed out, so a copy pipeline that frees
//! its pieces as it goes gets the same few MiB of staging again and again, which stay in the
//! CPU caches. (Next-fit, which this replaced, walked the whole 64 MiB area: every piece went
//! through DRAM twice more, and pipelined 64 MiB pageable copies ran at a median of 8.8–8.9
//! GB/s instead of 10.8–12.2 on the CPU device; docs/benchmarks-transfers.md.)
//!
//! Ownership rule (one side frees each allocation, never both):
//! - an asynchronous copy command with `COPY_RELEASE_STAGING` hands the span to the broker, which
//!   frees it once the copy has consumed (or filled) the bytes;
//! - a synchronous request leaves the span with the tenant, which frees (or reuses) it after the
//!   reply.
//!
//! Bigger transfers than the area are split by the shim into chunk-sized pieces and pipelined.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::os::{Mapping, OsError};
use crate::wait::{Cancel, SeqWord, WaitError, WaitPolicy};

/// Errors of the staging allocator and accessors.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// A zero-byte allocation.
    #[error("zero-length staging allocation")]
    ZeroLength,
    /// More than the whole staging area.
    #[error("staging allocation of {len} bytes exceeds the {max}-byte staging area")]
    TooLarge {
        /// Requested bytes.
        len: u64,
        /// Staging area size.
        max: u64,
    },
    /// A span outside the staging area, or one not starting on a chunk.
    #[error("staging span {offset:#x}+{len:#x} is outside the staging area or misaligned")]
    BadSpan {
        /// Offset from the start of the staging area.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Waiting for free chunks failed.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// A shared-memory access failed.
    #[error(transparent)]
    Os(#[from] OsError),
}

/// An allocated run of chunks: `len` usable bytes at `offset` (from the start of the staging
/// area; always on a chunk boundary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagingSpan {
    /// Offset from the start of the staging area.
    pub offset: u64,
    /// Bytes requested (the run covers `ceil(len / chunk)` chunks).
    pub len: u64,
}

/// Allocator and accessors of a region's staging area. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Staging {
    map: Arc<Mapping>,
    base: u64,
    states: u64,
    chunk: u64,
    chunks: u32,
    freed: SeqWord,
}

impl Staging {
    pub(crate) fn new(
        map: Arc<Mapping>,
        base: u64,
        states: u64,
        chunk: u64,
        chunks: u32,
        freed: SeqWord,
    ) -> Staging {
        Staging {
            map,
            base,
            states,
            chunk,
            chunks,
            freed,
        }
    }

    /// Total staging bytes.
    pub fn size(&self) -> u64 {
        self.chunk * u64::from(self.chunks)
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> u64 {
        self.chunk
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> u32 {
        self.chunks
    }

    fn state(&self, i: u32) -> Result<&AtomicU32, OsError> {
        self.map
            .atomic_ref::<AtomicU32>(self.states as usize + 4 * i as usize)
    }

    /// Chunks currently allocated.
    pub fn chunks_in_use(&self) -> u32 {
        (0..self.chunks)
            .filter(|&i| self.state(i).is_ok_and(|s| s.load(Ordering::Relaxed) != 0))
            .count() as u32
    }

    fn chunks_for(&self, len: u64) -> Result<u32, StagingError> {
        if len == 0 {
            return Err(StagingError::ZeroLength);
        }
        if len > self.size() {
            return Err(StagingError::TooLarge {
                len,
                max: self.size(),
            });
        }
        Ok(len.div_ceil(self.chunk) as u32)
    }

    /// Allocates `len` bytes of contiguous chunks if available now: the lowest free run.
    pub fn try_alloc(&self, len: u64) -> Result<Option<StagingSpan>, StagingError> {
        let k = self.chunks_for(len)?;
        let n = self.chunks;
        let mut i = 0;
        while i + k <= n {
            let mut j = i;
            while j < i + k {
                // A load first: most chunks below the free run are taken, and a failing
                // compare-and-swap would take their cache lines from the side that frees them.
                let word = self.state(j)?;
                let claimed = word.load(Ordering::Relaxed) == 0
                    && word
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok();
                if !claimed {
                    break;
                }
                j += 1;
            }
            if j == i + k {
                return Ok(Some(StagingSpan {
                    offset: u64::from(i) * self.chunk,
                    len,
                }));
            }
            for m in i..j {
                self.state(m)?.store(0, Ordering::Release);
            }
            if j > i {
                // Another allocator may have found these chunks taken and gone to sleep: they
                // are free again, so wake it as a free would.
                self.freed.publish_add(1);
            }
            // Chunk j is taken: no run starting at or before it fits, go on after it.
            i = j + 1;
        }
        Ok(None)
    }

    /// Allocates `len` bytes, waiting (spin, then futex on the "staging freed" counter) while
    /// the area is full.
    pub fn alloc(
        &self,
        len: u64,
        policy: &WaitPolicy,
        cancel: &Cancel,
    ) -> Result<StagingSpan, StagingError> {
        loop {
            let seen = self.freed.load();
            if let Some(span) = self.try_alloc(len)? {
                return Ok(span);
            }
            self.freed
                .wait_until_or(|v| v != seen, policy, || cancel.is_cancelled())?;
        }
    }

    /// The chunk range of a span, validated (start on a chunk, inside the area).
    fn chunk_range(&self, span: StagingSpan) -> Result<std::ops::Range<u32>, StagingError> {
        let bad = || StagingError::BadSpan {
            offset: span.offset,
            len: span.len,
        };
        if span.len == 0 || span.offset & (self.chunk - 1) != 0 {
            return Err(bad());
        }
        let end = span.offset.checked_add(span.len).ok_or_else(bad)?;
        if end > self.size() {
            return Err(bad());
        }
        let first = (span.offset / self.chunk) as u32;
        let last = end.div_ceil(self.chunk) as u32;
        Ok(first..last)
    }

    /// Frees a span (tenant after a synchronous request, or broker after a released copy).
    pub fn free(&self, span: StagingSpan) -> Result<(), StagingError> {
        for i in self.chunk_range(span)? {
            self.state(i)?.store(0, Ordering::Release);
        }
        self.freed.publish_add(1);
        Ok(())
    }

    /// Checks that `[offset, offset + len)` lies inside the staging area; returns the offset in
    /// the region.
    pub fn check(&self, offset: u64, len: u64) -> Result<usize, StagingError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok((self.base + offset) as usize),
            _ => Err(StagingError::BadSpan { offset, len }),
        }
    }

    /// Copies `bytes` into the staging area at `offset`.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), StagingError> {
        let at = self.check(offset, bytes.len() as u64)?;
        Ok(self.map.write(at, bytes)?)
    }

    /// Copies bytes at `offset` out of the staging area.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), StagingError> {
        let at = self.check(offset, out.len() as u64)?;
        Ok(self.map.read(at, out)?)
    }

    /// Copies bytes at `offset` out of the staging area with streaming stores
    /// ([`Mapping::read_streaming`]): for a large `out` that no one reads soon.
    pub fn read_streaming(&self, offset: u64, out: &mut [u8]) -> Result<(), StagingError> {
        let at = self.check(offset, out.len() as u64)?;
        Ok(self.map.read_streaming(at, out)?)
    }

    /// The streamed-copy channel at the start of `span` ([`super::channel`]).
    pub fn channel(&self, span: StagingSpan) -> Result<super::channel::Channel, StagingError> {
        let at = self.check(span.offset, super::channel::CHANNEL_BYTES)?;
        Ok(super::channel::Channel::at(&self.map, at)?)
    }

    /// The address of `[offset, offset + len)` in this process's mapping (for the broker: to
    /// register the area with the driver and to name host memory in asynchronous copies).
    pub fn ptr(&self, offset: u64, len: u64) -> Result<*mut u8, StagingError> {
        let at = self.check(offset, len)?;
        Ok(self.map.ptr_at(at, len as usize)?)
    }
}
